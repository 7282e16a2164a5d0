/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Throughput: byte counters sampled per VF, the window reset that turns
 * them into a rate, and the VF state names. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/policy/policy-internal.h"
#include "shared/util.h"

/* ---- throughput ------------------------------------------------------------------------ */

int iovm_policy_sample(iovm_policy *p, const char *id, uint64_t counter, iovm_error *err)
{
	uint64_t delta = 0;
	vf *v;
	int r;

	if (!p)
		return iovm_error_set(err, -EINVAL, "sample: no engine given");
	r = policy_find_vf(p, id, &v, err);
	if (r < 0)
		return r;
	if (v->have_counter && counter >= v->counter)
		delta = counter - v->counter;
	v->counter = counter;
	v->have_counter = true;
	if (!delta)
		return 0;
	v->window_bytes += delta;
	v->total_bytes += delta;
	if (!v->dirty && p->indexed) {
		v->dirty = true;
		v->dirty_idx = p->n_dirty;
		p->dirty[p->n_dirty++] = v;   /* room reserved in vf_add */
	}
	return 0;
}

static uint64_t bits_per_second(uint64_t bytes, uint64_t ns)
{
#ifdef __SIZEOF_INT128__
	unsigned __int128 x = (unsigned __int128)bytes * 8u * 1000000000u / ns;

	return x > UINT64_MAX ? UINT64_MAX : (uint64_t)x;
#else
	long double x = (long double)bytes * 8e9L / (long double)ns;

	return x >= 18446744073709551615.0L ? UINT64_MAX : (uint64_t)x;
#endif
}

static void set_tput(iovm_policy *p, vf *v, uint64_t tput)
{
	if (v->tput == tput)
		return;
	v->tput = tput;
	if (!p->indexed)
		return;
	for (int k = 0; k < _K_MAX; k++)
		if (v->pos[SLOT(k, H_SHARE)] != HEAP_NO_POS)
			heap_fix(&v->pools[k]->h[H_SHARE], v);
}

int iovm_policy_window_reset(iovm_policy *p, uint64_t now_ns, iovm_error *err)
{
	uint64_t len;
	size_t kept = 0;

	if (!p)
		return iovm_error_set(err, -EINVAL, "window: no engine given");
	if (now_ns <= p->last_reset)
		return iovm_error_set(err, -EINVAL, "window: reset at %llu ns is not after the last one at %llu ns",
				      (unsigned long long)now_ns, (unsigned long long)p->last_reset);
	len = now_ns - p->last_reset;
	if (p->indexed) {
		/* only VFs that moved bytes in this window or the last one can change */
		for (size_t i = 0; i < p->n_dirty; i++) {
			vf *v = p->dirty[i];

			set_tput(p, v, bits_per_second(v->window_bytes, len));
			v->window_bytes = 0;
			v->dirty = v->tput != 0;
			if (v->dirty) {
				v->dirty_idx = kept;
				p->dirty[kept++] = v;
			}
		}
		p->n_dirty = kept;
	} else
		for (size_t i = 0; i < p->n_vfs; i++) {
			vf *v = p->vfs[i];

			set_tput(p, v, bits_per_second(v->window_bytes, len));
			v->window_bytes = 0;
		}
	p->last_reset = now_ns;
	return 0;
}

uint64_t iovm_policy_last_reset(const iovm_policy *p)
{
	return p ? p->last_reset : 0;
}

/* ---- names --------------------------------------------------------------------------- */

static const char *const vf_state_names[] = {
	[IOVM_POLICY_VF_FREE] = "free",
	[IOVM_POLICY_VF_EXCLUSIVE] = "exclusive",
	[IOVM_POLICY_VF_SHARED] = "shared",
};

const char *iovm_policy_vf_state_to_string(iovm_policy_vf_state s)
{
	return (unsigned)s < ELEMENTSOF(vf_state_names) ? vf_state_names[s] : NULL;
}
