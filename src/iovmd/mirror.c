/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The allocation policy's view of the host (docs/allocation.md): the VFs of
 * the inventory, the VMs, and who holds what. The policy lives in memory;
 * these keep it in step with the snapshot and the store. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovmd/ops.h"
#include "shared/util.h"

/* vm let go of vf. A move the policy proposes in exchange (--rebalance)
 * is carried out after the job or tick (rebalance.c). */
void mirror_forget(ops *o, const char *vm, const char *vf)
{
	iovm_policy_move move = {};
	int r = iovm_policy_release(o->pol, vm, vf, &move, NULL);

	if (r > 0) {
		log_info("policy: %s (%s -> %s): %s", move.vm, move.from_vf, move.to_vf, move.reason);
		o->move = move;
		o->move_pending = true;
	}
}

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

static void hold(ops *o, const char *vm, const char *vf, iovm_mode mode)
{
	iovm_error err = {};

	if (iovm_policy_assign(o->pol, vm, vf, mode, &err) < 0)
		log_warning(err.code, "policy: %s", err.msg);
}

/* Who holds what, from the store (at start-up, after recovery). */
void mirror_load_holders(ops *o)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	_cleanup_free_ iovm_store_share *shs = NULL;
	iovm_error err = {};
	size_t na = 0, nsh = 0;

	if (iovm_store_assignment_list(o->store, NULL, &as, &na, &err) < 0)
		log_warning(err.code, "policy: assignments: %s", err.msg);
	for (size_t i = 0; i < na; i++)
		hold(o, as[i].vm, as[i].vf, as[i].mode);
	err = (iovm_error){};
	if (iovm_store_share_list(o->store, NULL, NULL, &shs, &nsh, &err) < 0)
		log_warning(err.code, "policy: shares: %s", err.msg);
	for (size_t i = 0; i < nsh; i++)
		hold(o, shs[i].vm, shs[i].vf, IOVM_MODE_SHARED);
}
