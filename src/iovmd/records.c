/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The store writes the commands, recovery and the VM watch share: the
 * journal's steps and ends, holder states, and giving a VF back (its
 * records, its saved settings and driver). A write that fails here is
 * logged with its errno and the command goes on: the journal and the
 * recovery rules (docs/iovmd.md) settle what the store missed.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "iovm/vfnet.h"
#include "iovmd/ops.h"
#include "shared/clock.h"
#include "shared/util.h"

static void log_store(const iovm_error *err)
{
	log_error(err->code, "store: %s", err->msg);
}

/* Opens a transaction for the writes of one step; if that fails, each
 * write commits on its own (what `what` writes is then not atomic). */
void records_begin(ops *o, const char *what)
{
	iovm_error err = {};

	if (iovm_store_begin(o->store, &err) < 0)
		log_warning(err.code, "%s: store: no transaction, each write commits on its own: %s", what,
			    err.msg);
}

/* Commits what a step wrote (nothing to do if records_begin failed). */
int records_commit(ops *o)
{
	iovm_error err = {};
	int r;

	if (!iovm_store_in_transaction(o->store))
		return 0;
	r = iovm_store_commit(o->store, &err);
	if (r < 0)
		log_store(&err);
	return r;
}

iovm_store_intent_args records_vm_args(const char *vm, iovm_mode mode, const char *devid)
{
	iovm_store_intent_args args = { .mode = mode };

	snprintf(args.vm, sizeof(args.vm), "%s", vm);
	snprintf(args.devid, sizeof(args.devid), "%s", devid ? devid : "");
	return args;
}

void records_step(ops *o, int64_t id, const char *step)
{
	iovm_error err = {};

	if (iovm_store_intent_step(o->store, id, step, &err) < 0)
		log_error(err.code, "journal: %s", err.msg);
}

void records_finish(ops *o, int64_t id, iovm_store_intent_status status)
{
	iovm_error err = {};

	if (iovm_store_intent_finish(o->store, id, status, &err) < 0)
		log_error(err.code, "journal: intent %lld: %s", (long long)id, err.msg);
}

void records_set_assignment(ops *o, const char *vf, iovm_store_assign_state st, const char *devid)
{
	iovm_error err = {};

	if (iovm_store_assignment_set_state(o->store, vf, st, devid, &err) < 0)
		log_store(&err);
}

void records_set_share(ops *o, const char *vf, const char *vm, iovm_store_assign_state st,
		       const char *devid, const char *ifname)
{
	iovm_error err = {};

	if (iovm_store_share_set_state(o->store, vf, vm, st, devid, ifname, &err) < 0)
		log_store(&err);
}

/* Forgets an exclusive holder: its assignment and the saved settings
 * (restored, or not to be restored, by the caller). The policy follows
 * (views_sync). */
void records_release(ops *o, const char *vf)
{
	iovm_error err = {};

	if (iovm_store_unassign(o->store, vf, &err) < 0 && err.code != -ENOENT)
		log_store(&err);
	err = (iovm_error){};
	if (iovm_store_vf_saved_delete(o->store, vf, &err) < 0 && err.code != -ENOENT)
		log_store(&err);
}

/* Puts back a VF's settings as saved, through its PF (NIC VFs only). */
static int restore_settings(ops *o, const iovm_vf *vf, const iovm_store_vf_saved *saved, iovm_error *err)
{
	iovm_vfnet *nl = NULL;
	int r;

	if (!saved->cfg.present || !vf->pf_netdev[0])
		return 0;
	r = iovm_vfnet_open(o->host, &nl, err);
	if (r >= 0)
		r = iovm_vfnet_restore(nl, vf->pf_addr, vf->index, &saved->cfg, err);
	iovm_vfnet_close(nl);
	return r;
}

/* The last sharer out gives the VF its saved settings and original driver
 * back. */
static void unshare_vf(ops *o, const char *vf)
{
	iovm_store_vf_saved saved;
	iovm_error err = {};
	iovm_vf info;

	if (iovm_store_vf_saved_get(o->store, vf, &saved, NULL) < 0)
		return;
	if (iovm_vf_get(o->host, vf, &info, NULL) == 0 && restore_settings(o, &info, &saved, &err) < 0)
		log_warning(err.code, "vf %s: restoring its settings after sharing: %s", vf, err.msg);
	err = (iovm_error){};
	if (saved.driver[0] && iovm_vf_get(o->host, vf, &info, NULL) == 0 && strcmp(saved.driver, info.driver) &&
	    iovm_vf_bind(o->host, vf, saved.driver, &err) < 0)
		log_warning(err.code, "vf %s: back to %s after sharing: %s", vf, saved.driver, err.msg);
	err = (iovm_error){};
	if (iovm_store_vf_saved_delete(o->store, vf, &err) < 0)
		log_store(&err);
}

/* A sharer is gone: its row (the views follow, views_sync); the
 * last one out restores the VF. */
void records_release_share(ops *o, const char *vf, const char *vm)
{
	_cleanup_free_ iovm_store_share *left = NULL;
	size_t n = 0;

	if (iovm_store_share_remove(o->store, vf, vm, NULL) < 0)
		return;
	if (iovm_store_share_list(o->store, vf, NULL, &left, &n, NULL) < 0 || n > 0)
		return;
	unshare_vf(o, vf);
}

/* Waits up to LET_GO_MS for whoever holds vf to let go. */
static int wait_let_go(ops *o, const char *vf, iovm_error *err)
{
	int64_t deadline = now_ms() + LET_GO_MS;
	char who[256] = "";
	int r;

	while ((r = iovm_vf_users(o->host, vf, who, sizeof(who), err)) > 0) {
		if (now_ms() >= deadline)
			return iovm_error_set(err, -EBUSY, "vf %s: still held: %s", vf, who);
		poll(NULL, 0, 50);
	}
	return r;
}

/* Gives a VF back without its VM: waits for whoever holds it to let go,
 * restores the saved settings and driver, forgets it. */
int records_restore_vf(ops *o, const char *vfaddr, iovm_error *err)
{
	iovm_store_vf_saved saved;
	iovm_vf vf;
	int r;

	if (iovm_vf_get(o->host, vfaddr, &vf, NULL) < 0) {
		log_info("recovery: vf %s no longer exists; forgetting it", vfaddr);
		records_release(o, vfaddr);
		return 0;
	}
	r = wait_let_go(o, vfaddr, err);
	if (r < 0)
		return r;
	if (iovm_store_vf_saved_get(o->store, vfaddr, &saved, NULL) == 0) {
		r = restore_settings(o, &vf, &saved, err);
		if (r < 0)
			return r;
		if (saved.driver[0] && strcmp(saved.driver, vf.driver) && strcmp(saved.driver, "vfio-pci")) {
			r = iovm_vf_bind(o->host, vfaddr, saved.driver, err);
			if (r < 0)
				return r;
		}
	}
	records_release(o, vfaddr);
	return 0;
}

int records_vf_net_set(ops *o, const char *vf, const iovm_vfnet_config *cfg, unsigned mask, iovm_error *err)
{
	_cleanup_(iovm_vfnet_closep) iovm_vfnet *nl = NULL;
	iovm_vf info;
	int r;

	r = iovm_vf_get(o->host, vf, &info, err);
	if (r >= 0)
		r = iovm_vfnet_open(o->host, &nl, err);
	if (r >= 0)
		r = iovm_vfnet_set(nl, info.pf_addr, info.index, cfg, mask, err);
	return r;
}
