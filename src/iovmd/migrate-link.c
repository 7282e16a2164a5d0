/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The incoming link of a migration's destination in the state store
 * (docs/migration.md, "Journal and recovery"): saved at vm-add and at each
 * change of the migration's state, read back by a restarted iovmd, which
 * then asks the destination QEMU where the migration stands (it may have
 * gone on, or ended, while iovmd was down) and goes on following it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovm/live.h"
#include "iovmd/ops.h"
#include "shared/json-util.h"
#include "shared/util.h"

int migrate_plug_primary(ops *o, vmrec *v, const char *vf, const char *devid, const iovm_store_incoming_vf *f,
			 unsigned mask, bool keep_present, int timeout_ms, iovm_error *err)
{
	iovm_live_place now = {}, p = {};
	int r;

	if (mask && records_vf_net_set(o, vf, &f->net, mask, err) < 0)
		return iovm_error_prefix(err, "restoring its settings");
	if (keep_present) {
		r = iovm_vm_live_probe(v->vm, devid, CONNECT_TIMEOUT_MS, &now, err);
		if (r < 0 || now.present)
			return r;
	}
	snprintf(p.devid, sizeof(p.devid), "%s", devid);
	snprintf(p.port, sizeof(p.port), "%s", f->port);
	snprintf(p.failover_pair_id, sizeof(p.failover_pair_id), "%s", f->pair);
	return iovm_vm_live_restore(v->vm, vf, &p, IOVM_LIVE_FAILOVER, timeout_ms, err);
}

mig_state mig_state_from_string(const char *s)
{
	for (int i = MIG_WAITING; i < _MIG_STATE_MAX; i++)
		if (!strcmp(s, mig_state_to_string((mig_state)i)))
			return (mig_state)i;
	return MIG_NONE;
}

int migrate_save(ops *o, vmrec *v, iovm_error *err)
{
	iovm_store_incoming in = { .n_vfs = v->n_mig_vfs };
	int r;

	snprintf(in.vm, sizeof(in.vm), "%s", v->info.name);
	snprintf(in.source, sizeof(in.source), "%s", v->incoming_from);
	snprintf(in.state, sizeof(in.state), "%s", mig_state_to_string(v->mig));
	for (size_t i = 0; i < v->n_mig_vfs; i++)
		in.vfs[i] = v->mig_vfs[i].f;
	r = iovm_store_incoming_put(o->store, &in, err);
	if (r >= 0)
		v->mig_saved = v->mig;
	return r;
}

void migrate_load(ops *o, vmrec *v)
{
	iovm_store_incoming in;
	iovm_error err = {};
	mig_state s;
	int r;

	r = iovm_store_incoming_get(o->store, v->info.name, &in, &err);
	if (r == -ENOENT)
		return;
	if (r < 0) {
		log_error(r, "vm %s: its incoming link is lost: %s", v->info.name, err.msg);
		return;
	}
	s = mig_state_from_string(in.state);
	if (s == MIG_NONE) {
		log_error(-EBADMSG, "vm %s: incoming from vm %s: unknown state \"%s\" in the state db", v->info.name,
			  in.source, in.state);
		return;
	}
	snprintf(v->incoming_from, sizeof(v->incoming_from), "%s", in.source);
	v->mig = v->mig_saved = s;
	v->n_mig_vfs = in.n_vfs;
	for (size_t i = 0; i < in.n_vfs; i++)
		v->mig_vfs[i] = (mig_vf){ .f = in.vfs[i] };
	log_info("vm %s: incoming from vm %s (%s), %zu VF(s) to follow", v->info.name, in.source, in.state,
		 in.n_vfs);
}

/* What the destination QEMU reports of a migration iovmd did not see end
 * (it was down, or not connected): its run state (query-status) and its
 * incoming migration's status (query-migrate, "none" if it has none).
 * Pure. A destination running after a completed migration, or after one
 * iovmd saw under way, has resumed; one still receiving is active. */
mig_state mig_settle(mig_state s, const char *run, const char *status)
{
	if (s != MIG_WAITING && s != MIG_ACTIVE && s != MIG_RESUMED)
		return s;
	if (!strcmp(status, "failed") || !strcmp(status, "cancelled"))
		return MIG_FAILED;
	if (!strcmp(run, "inmigrate"))
		return s == MIG_WAITING && strcmp(status, "none") ? MIG_ACTIVE : s;
	if (!strcmp(run, "running") && (!strcmp(status, "completed") || s != MIG_WAITING))
		return MIG_RESUMED;
	return s;
}

static int query_status(vmrec *v, const char *cmd, char *buf, size_t n, iovm_error *err)
{
	json_object *res = NULL, *st;
	int r;

	r = iovm_qmp_execute(iovm_vm_get_qmp(v->vm), cmd, NULL, &res, CONNECT_TIMEOUT_MS, err);
	if (r < 0)
		return r;
	snprintf(buf, n, "%s",
		 res && json_object_object_get_ex(res, "status", &st) ? json_object_get_string(st) : "none");
	json_object_put(res);
	return 0;
}

void migrate_settle(ops *o, vmrec *v)
{
	char run[32], status[32];
	iovm_error err = {};
	mig_state next;

	(void)o;
	if (!v->incoming_from[0] || !v->vm || (v->mig != MIG_WAITING && v->mig != MIG_ACTIVE && v->mig != MIG_RESUMED))
		return;
	if (query_status(v, "query-status", run, sizeof(run), &err) < 0 ||
	    query_status(v, "query-migrate", status, sizeof(status), &err) < 0) {
		log_warning(err.code, "vm %s: incoming from vm %s: cannot ask its QEMU where the migration stands: %s",
			    v->info.name, v->incoming_from, err.msg);
		return;
	}
	next = mig_settle(v->mig, run, status);
	if (next != v->mig)
		log_info("vm %s: incoming from vm %s: %s -> %s (its QEMU is %s, its incoming migration %s)",
			 v->info.name, v->incoming_from, mig_state_to_string(v->mig), mig_state_to_string(next), run,
			 status);
	v->mig = next;
}

/* After a restart: the VFs the destination already holds, attached (the
 * plug and its record done before iovmd went down), each counted for one
 * followed VF of the same PF, so that no second VF is plugged for it. */
static void claim_held(ops *o, vmrec *v)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	iovm_error err = {};
	size_t n = 0;

	if (iovm_store_assignment_list(o->store, v->info.name, &as, &n, &err) < 0) {
		log_warning(err.code, "vm %s: %s", v->info.name, err.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		iovm_vf info;

		if (as[i].mode != IOVM_MODE_EXCLUSIVE || as[i].state != IOVM_STORE_ATTACHED ||
		    iovm_vf_get(o->host, as[i].vf, &info, NULL) < 0)
			continue;
		for (size_t k = 0; k < v->n_mig_vfs; k++) {
			mig_vf *m = &v->mig_vfs[k];

			if (m->done || m->intent || strcmp(m->f.pf, info.pf_netdev))
				continue;
			m->done = true;
			snprintf(m->vf, sizeof(m->vf), "%s", as[i].vf);
			snprintf(m->devid, sizeof(m->devid), "%s", as[i].devid);
			log_info("vm %s: vf %s, attached, follows vf %s of vm %s", v->info.name, m->vf, m->f.src_vf,
				 v->incoming_from);
			break;
		}
	}
}

void migrate_recover(ops *o)
{
	for (vmrec *v = o->vms; v; v = v->next) {
		if (!v->incoming_from[0] || (v->mig != MIG_WAITING && v->mig != MIG_ACTIVE && v->mig != MIG_RESUMED))
			continue;
		/* A destination QEMU gone while iovmd was down: the guest runs
		 * on its source (or nowhere); nothing follows it here. */
		if (!v->vm && v->mig != MIG_WAITING) {
			log_info("vm %s: incoming from vm %s: its QEMU is gone; the migration is over", v->info.name,
				 v->incoming_from);
			v->mig = MIG_FAILED;
		}
		claim_held(o, v);
		migrate_follow(o, v);
	}
}
