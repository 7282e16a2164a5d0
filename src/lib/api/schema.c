/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The API schema: the commands, their arguments with kind and range, and
 * which arguments each command takes. The request parser (parse.c) and
 * iovmctl both read it, so the two cannot disagree on a name or a range.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "iovm/api-schema.h"

static const char *const cmd_names[_IOVM_API_CMD_MAX] = {
	[IOVM_API_QUERY_COMMANDS] = "query-commands",
	[IOVM_API_STATUS] = "status",
	[IOVM_API_PF_LIST] = "pf-list",
	[IOVM_API_PF_SHOW] = "pf-show",
	[IOVM_API_PF_SET_VFS] = "pf-set-vfs",
	[IOVM_API_VF_LIST] = "vf-list",
	[IOVM_API_VF_SHOW] = "vf-show",
	[IOVM_API_VF_SET] = "vf-set",
	[IOVM_API_VM_ADD] = "vm-add",
	[IOVM_API_VM_LIST] = "vm-list",
	[IOVM_API_VM_REMOVE] = "vm-remove",
	[IOVM_API_ATTACH] = "attach",
	[IOVM_API_DETACH] = "detach",
	[IOVM_API_MIGRATE_PREPARE] = "migrate-prepare",
	[IOVM_API_MIGRATE_ABORT] = "migrate-abort",
};

const char *const iovm_api_driver_names[_IOVM_API_DRIVER_MAX] = {
	[IOVM_API_DRIVER_VFIO] = "vfio-pci",
	[IOVM_API_DRIVER_HOST] = "host",
};

#define STRING(n, k) { .name = n, .kind = IOVM_API_KIND_##k }
#define INT(n, lo, hi) { .name = n, .kind = IOVM_API_KIND_INT, .min = lo, .max = hi }
#define ENUM(n, names, count) { .name = n, .kind = IOVM_API_KIND_ENUM, .choices = names, .nchoices = count }

static const iovm_api_arg_def arg_defs[_IOVM_API_ARG_MAX] = {
	[IOVM_API_ARG_PF] = STRING("pf", NAME),
	[IOVM_API_ARG_VF] = STRING("vf", VF),
	[IOVM_API_ARG_VM] = STRING("vm", NAME),
	[IOVM_API_ARG_NAME] = STRING("name", NAME),
	[IOVM_API_ARG_QMP] = STRING("qmp", PATH),
	[IOVM_API_ARG_COUNT] = INT("count", 0, 65535),
	[IOVM_API_ARG_DRIVER] = ENUM("driver", iovm_api_driver_names, _IOVM_API_DRIVER_MAX),
	[IOVM_API_ARG_PRIORITY] = ENUM("priority", iovm_priority_names, _IOVM_PRIO_MAX),
	[IOVM_API_ARG_NUMA_NODE] = INT("numa_node", -1, 1023),
	[IOVM_API_ARG_MODE] = ENUM("mode", iovm_mode_names, _IOVM_MODE_MAX),
	[IOVM_API_ARG_MAC] = STRING("mac", MAC),
	[IOVM_API_ARG_VLAN] = INT("vlan", 0, 4094),
	[IOVM_API_ARG_QOS] = INT("qos", 0, 7),
	[IOVM_API_ARG_RATE] = INT("rate", 0, UINT32_MAX),
	[IOVM_API_ARG_SPOOFCHK] = STRING("spoofchk", BOOL),
	[IOVM_API_ARG_TRUST] = STRING("trust", BOOL),
	[IOVM_API_ARG_LINK] = ENUM("link", iovm_vf_link_state_names, _IOVM_VF_LINK_MAX),
	[IOVM_API_ARG_FAILOVER_PAIR_ID] = STRING("failover_pair_id", NAME),
	[IOVM_API_ARG_TIMEOUT_MS] = INT("timeout_ms", 100, 600000),
	[IOVM_API_ARG_QGA] = STRING("qga", PATH),
	[IOVM_API_ARG_LIVE] = ENUM("live", iovm_live_mode_names, _IOVM_LIVE_MAX),
	[IOVM_API_ARG_INCOMING] = STRING("incoming", NAME),
};

#define B(a) (1u << IOVM_API_ARG_##a)
_Static_assert(_IOVM_API_ARG_MAX <= 32, "a command's arguments are a 32-bit mask");

static const struct cmd_def {
	unsigned allowed, required;
} cmd_defs[_IOVM_API_CMD_MAX] = {
	[IOVM_API_PF_SHOW] = { B(PF), B(PF) },
	[IOVM_API_PF_SET_VFS] = { B(PF) | B(COUNT) | B(DRIVER) | B(LIVE) | B(TIMEOUT_MS), B(PF) | B(COUNT) },
	[IOVM_API_VF_LIST] = { B(PF), 0 },
	[IOVM_API_VF_SHOW] = { B(VF), B(VF) },
	[IOVM_API_VF_SET] = { B(VF) | B(MAC) | B(VLAN) | B(QOS) | B(RATE) | B(SPOOFCHK) | B(TRUST) | B(LINK),
			      B(VF) },
	[IOVM_API_VM_ADD] = { B(NAME) | B(QMP) | B(QGA) | B(PRIORITY) | B(NUMA_NODE) | B(INCOMING),
			      B(NAME) | B(QMP) },
	[IOVM_API_VM_REMOVE] = { B(NAME), B(NAME) },
	/* No qos on attach: the VLAN is given to the device without a priority. */
	[IOVM_API_ATTACH] = { B(VM) | B(VF) | B(PF) | B(MODE) | B(MAC) | B(VLAN) | B(FAILOVER_PAIR_ID) |
			      B(TIMEOUT_MS), B(VM) },
	[IOVM_API_DETACH] = { B(VM) | B(VF) | B(TIMEOUT_MS), B(VM) },
	[IOVM_API_MIGRATE_PREPARE] = { B(VM) | B(TIMEOUT_MS), B(VM) },
	[IOVM_API_MIGRATE_ABORT] = { B(VM) | B(TIMEOUT_MS), B(VM) },
};

const char *iovm_api_cmd_to_string(iovm_api_cmd c)
{
	return (unsigned)c < _IOVM_API_CMD_MAX ? cmd_names[c] : NULL;
}

int iovm_api_cmd_from_string(const char *s)
{
	for (unsigned i = 0; s && i < _IOVM_API_CMD_MAX; i++)
		if (strcmp(s, cmd_names[i]) == 0)
			return (int)i;
	return -ENOSYS;
}

bool iovm_api_cmd_is_mutating(iovm_api_cmd c)
{
	switch (c) {
	case IOVM_API_PF_SET_VFS:
	case IOVM_API_VF_SET:
	case IOVM_API_VM_ADD:
	case IOVM_API_VM_REMOVE:
	case IOVM_API_ATTACH:
	case IOVM_API_DETACH:
	case IOVM_API_MIGRATE_PREPARE:
	case IOVM_API_MIGRATE_ABORT:
		return true;
	default:
		return false;
	}
}

const iovm_api_arg_def *iovm_api_arg_get(iovm_api_arg a)
{
	return (unsigned)a < _IOVM_API_ARG_MAX ? &arg_defs[a] : NULL;
}

const char *iovm_api_arg_to_string(iovm_api_arg a)
{
	return (unsigned)a < _IOVM_API_ARG_MAX ? arg_defs[a].name : NULL;
}

int iovm_api_arg_from_string(const char *s)
{
	for (unsigned i = 0; s && i < _IOVM_API_ARG_MAX; i++)
		if (strcmp(s, arg_defs[i].name) == 0)
			return (int)i;
	return -EINVAL;
}

bool iovm_api_cmd_takes(iovm_api_cmd c, iovm_api_arg a)
{
	return (unsigned)c < _IOVM_API_CMD_MAX && (unsigned)a < _IOVM_API_ARG_MAX &&
	       (cmd_defs[c].allowed & (1u << a));
}

bool iovm_api_cmd_requires(iovm_api_cmd c, iovm_api_arg a)
{
	return (unsigned)c < _IOVM_API_CMD_MAX && (unsigned)a < _IOVM_API_ARG_MAX &&
	       (cmd_defs[c].required & (1u << a));
}
