/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The allocation policy's view of the host (docs/allocation.md): the VFs of
 * the inventory, the VMs, and who holds what. The policy lives in memory.
 * Who holds a VF is recorded once, in the store (assignments and shares);
 * the policy's holds are derived from it here, when views_sync() says. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovmd/ops.h"
#include "shared/util.h"

static bool known_has(ops *o, const char *vf)
{
	for (size_t i = 0; i < o->n_known; i++)
		if (!strcmp(o->known[i], vf))
			return true;
	return false;
}

static void known_add(ops *o, const iovm_vf *vf)
{
	iovm_policy_vf pv = {
		.id = vf->addr, .pf = vf->pf_addr, .numa_node = vf->numa_node,
		/* A NIC VF can stay on its host driver and be shared. */
		.shareable = vf->pf_netdev[0] != '\0',
	};
	void *p;

	if (iovm_policy_vf_add(o->pol, &pv, NULL) < 0)
		return;
	p = realloc(o->known, (o->n_known + 1) * sizeof(*o->known));
	if (!p)
		return;
	o->known = p;
	snprintf(o->known[o->n_known++], IOVM_STORE_ADDR_MAX, "%s", vf->addr);
}

static bool vfs_have(const iovm_vf *vfs, size_t n, const char *vf)
{
	for (size_t j = 0; j < n; j++)
		if (!strcmp(vfs[j].addr, vf))
			return true;
	return false;
}

/* Tells the policy about VFs that appeared and that went away. vfs: the
 * inventory's VFs. */
void mirror_sync_vfs(ops *o, const iovm_vf *vfs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!known_has(o, vfs[i].addr))
			known_add(o, &vfs[i]);
	for (size_t i = 0; i < o->n_known;) {
		if (vfs_have(vfs, n, o->known[i]) || iovm_policy_vf_remove(o->pol, o->known[i], NULL) < 0) {
			i++;
			continue;
		}
		memmove(o->known[i], o->known[i + 1], (o->n_known - i - 1) * sizeof(*o->known));
		o->n_known--;
	}
}

void mirror_add_vm(ops *o, const iovm_store_vm *rec)
{
	iovm_policy_vm pv = { .name = rec->name, .priority = rec->priority, .numa_node = rec->numa_node };
	iovm_error err = {};

	if (iovm_policy_vm_add(o->pol, &pv, &err) < 0 && err.code != -EEXIST)
		log_warning(err.code, "policy: %s", err.msg);
}

/* A holder (vm, vf, mode) of the store, or of the policy. */
static bool holds_has(const iovm_policy_hold *h, size_t n, const char *vm, const char *vf, iovm_mode mode)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(h[i].vm, vm) && !strcmp(h[i].vf, vf) && h[i].mode == mode)
			return true;
	return false;
}

/* The store's holders: exclusive assignments and shares, in any state. */
static int store_holds(ops *o, iovm_policy_hold **ret, size_t *ret_n, iovm_error *err)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	_cleanup_free_ iovm_store_share *shs = NULL;
	iovm_policy_hold *h;
	size_t na = 0, nsh = 0;
	int r;

	r = iovm_store_assignment_list(o->store, NULL, &as, &na, err);
	if (r >= 0)
		r = iovm_store_share_list(o->store, NULL, NULL, &shs, &nsh, err);
	if (r < 0)
		return r;
	h = calloc(na + nsh + 1, sizeof(*h));
	if (!h)
		return iovm_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < na; i++) {
		snprintf(h[i].vm, sizeof(h[i].vm), "%s", as[i].vm);
		snprintf(h[i].vf, sizeof(h[i].vf), "%s", as[i].vf);
		h[i].mode = as[i].mode;
	}
	for (size_t i = 0; i < nsh; i++) {
		snprintf(h[na + i].vm, sizeof(h[na + i].vm), "%s", shs[i].vm);
		snprintf(h[na + i].vf, sizeof(h[na + i].vf), "%s", shs[i].vf);
		h[na + i].mode = IOVM_MODE_SHARED;
	}
	*ret = h;
	*ret_n = na + nsh;
	return 0;
}

/* A hold the store no longer has is given back; a move the policy proposes
 * in exchange (--rebalance) is carried out later (rebalance.c). */
static void release(ops *o, const iovm_policy_hold *h)
{
	iovm_policy_move move = {};
	iovm_error err = {};
	int r = iovm_policy_release(o->pol, h->vm, h->vf, &move, &err);

	if (r < 0) {
		log_warning(err.code, "policy: %s", err.msg);
		return;
	}
	if (r > 0) {
		log_info("policy: %s (%s -> %s): %s", move.vm, move.from_vf, move.to_vf, move.reason);
		o->move = move;
		o->move_pending = true;
	}
}

/* The policy's holds as the store's holders (views_sync). */
void mirror_sync_holders(ops *o)
{
	_cleanup_free_ iovm_policy_hold *want = NULL, *have = NULL;
	size_t nw = 0, nh = 0;
	iovm_error err = {};

	if (store_holds(o, &want, &nw, &err) < 0 || iovm_policy_holds(o->pol, &have, &nh, &err) < 0) {
		log_warning(err.code, "policy: reading who holds what: %s", err.msg);
		return;
	}
	for (size_t i = 0; i < nh; i++)
		if (!holds_has(want, nw, have[i].vm, have[i].vf, have[i].mode))
			release(o, &have[i]);
	for (size_t i = 0; i < nw; i++) {
		if (holds_has(have, nh, want[i].vm, want[i].vf, want[i].mode))
			continue;
		err = (iovm_error){};
		if (iovm_policy_assign(o->pol, want[i].vm, want[i].vf, want[i].mode, &err) < 0)
			log_warning(err.code, "policy: %s", err.msg);
	}
}
