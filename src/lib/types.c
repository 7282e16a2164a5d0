/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The names of the shared enums (iovm/types.h): one table each. */
#include <errno.h>
#include <string.h>

#include "iovm/types.h"
#include "shared/util.h"

const char *const iovm_priority_names[_IOVM_PRIO_MAX] = {
	[IOVM_PRIO_LOW] = "low",
	[IOVM_PRIO_NORMAL] = "normal",
	[IOVM_PRIO_HIGH] = "high",
};
const char *const iovm_mode_names[_IOVM_MODE_MAX] = {
	[IOVM_MODE_AUTO] = "auto",
	[IOVM_MODE_EXCLUSIVE] = "exclusive",
	[IOVM_MODE_SHARED] = "shared",
};
const char *const iovm_vf_link_state_names[_IOVM_VF_LINK_MAX] = {
	[IOVM_VF_LINK_AUTO] = "auto",
	[IOVM_VF_LINK_ENABLE] = "enable",
	[IOVM_VF_LINK_DISABLE] = "disable",
};
const char *const iovm_live_mode_names[_IOVM_LIVE_MAX] = {
	[IOVM_LIVE_AUTO] = "auto",
	[IOVM_LIVE_PAUSE] = "pause",
	[IOVM_LIVE_FAILOVER] = "failover",
	[IOVM_LIVE_REPLUG] = "replug",
};

static const char *name_of(const char *const *names, size_t n, unsigned v)
{
	return v < n ? names[v] : NULL;
}

static int name_find(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; s && i < n; i++)
		if (names[i] && strcmp(names[i], s) == 0)
			return (int)i;
	return -EINVAL;
}

const char *iovm_priority_to_string(iovm_priority p)
{
	return name_of(iovm_priority_names, _IOVM_PRIO_MAX, p);
}

int iovm_priority_from_string(const char *s)
{
	return name_find(iovm_priority_names, _IOVM_PRIO_MAX, s);
}

const char *iovm_mode_to_string(iovm_mode m)
{
	return name_of(iovm_mode_names, _IOVM_MODE_MAX, m);
}

int iovm_mode_from_string(const char *s)
{
	return name_find(iovm_mode_names, _IOVM_MODE_MAX, s);
}

const char *iovm_vf_link_state_to_string(iovm_vf_link_state l)
{
	return name_of(iovm_vf_link_state_names, _IOVM_VF_LINK_MAX, l);
}

int iovm_vf_link_state_from_string(const char *s)
{
	return name_find(iovm_vf_link_state_names, _IOVM_VF_LINK_MAX, s);
}

const char *iovm_live_mode_to_string(iovm_live_mode m)
{
	return name_of(iovm_live_mode_names, _IOVM_LIVE_MAX, m);
}

int iovm_live_mode_from_string(const char *s)
{
	return name_find(iovm_live_mode_names, _IOVM_LIVE_MAX, s);
}
