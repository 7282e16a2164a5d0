/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Following a live migration on this host, stock failover path
 * (docs/migration.md). A VM registered with vm-add "incoming": SRC is the
 * destination QEMU of SRC's migration. At registration iovmd notes what
 * SRC holds that must follow it: each exclusive VF that is the failover
 * primary of a virtio-net standby, with its port, failover pair and
 * settings. QEMU's own failover path unplugs the primary from the source
 * when the migration starts (status wait-unplug) and plugs it back there
 * if the migration fails or is cancelled; the source's VF is freed by the
 * usual reclaim once its QEMU is gone. On the destination, as soon as its
 * QEMU reports the migration under way, iovmd reserves a VF of the same PF
 * (journalled as an attach), gives it the source's MAC, VLAN, rate,
 * spoofchk and trust and binds it to vfio-pci; right after RESUME (not on
 * the command line, not inside the stop-and-copy window) it plugs it with
 * the source's port and failover pair, as a live resize gives a failover
 * primary back. A migration that fails gives the reserved VF back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovm/live.h"
#include "iovm/shared.h"
#include "iovm/vfnet.h"
#include "iovmd/crash.h"
#include "iovmd/ops.h"
#include "shared/json-util.h"
#include "shared/util.h"

static const char *const mig_state_names[_MIG_STATE_MAX] = {
	[MIG_NONE] = "none",       [MIG_WAITING] = "waiting", [MIG_ACTIVE] = "active",
	[MIG_RESUMED] = "resumed", [MIG_DONE] = "done",       [MIG_FAILED] = "failed",
};

const char *mig_state_to_string(mig_state s)
{
	return (unsigned)s < _MIG_STATE_MAX ? mig_state_names[s] : NULL;
}

/* What a QMP event of the destination QEMU makes of its migration's state.
 * Pure. A RESUME before the migration was seen to start is the start of a
 * VM that was never incoming: it changes nothing. */
mig_state mig_next(mig_state s, const char *event, const char *status)
{
	if (s != MIG_WAITING && s != MIG_ACTIVE)
		return s;
	if (!strcmp(event, "MIGRATION") && status) {
		if (!strcmp(status, "failed") || !strcmp(status, "cancelled"))
			return MIG_FAILED;
		if (!strcmp(status, "completed") || !strcmp(status, "active") || !strcmp(status, "setup") ||
		    !strcmp(status, "device"))
			return MIG_ACTIVE;
		return s;
	}
	if (!strcmp(event, "RESUME") && s == MIG_ACTIVE)
		return MIG_RESUMED;
	/* The destination QEMU gone before RESUME: the guest still runs on its
	 * source (QEMU's failover path plugs the primary back there). */
	if (!strcmp(event, "SHUTDOWN"))
		return MIG_FAILED;
	return s;
}

static const char *const followed[] = { "MIGRATION", "STOP", "RESUME", "UNPLUG_PRIMARY", "FAILOVER_NEGOTIATED",
					"SHUTDOWN" };

static void on_event(iovm_qmp *q, const char *event, json_object *data, json_object *ts, void *ud)
{
	vmrec *v = ud;
	json_object *st = NULL;
	const char *status = NULL;
	bool known = false;
	mig_state next;

	(void)q;
	(void)ts;
	for (size_t i = 0; i < ELEMENTSOF(followed); i++)
		known = known || !strcmp(event, followed[i]);
	if (!known)
		return;
	if (data && json_object_object_get_ex(data, "status", &st))
		status = json_object_get_string(st);
	log_info("vm %s: %s%s%s%s", v->info.name, event, status ? " " : "", status ? status : "",
		 data && strcmp(event, "MIGRATION") ? json_object_to_json_string(data) : "");
	if (v->out_prepared && migrate_out_ended(event, status))
		v->out_giveback = true;
	if (!v->incoming_from[0])
		return;
	next = mig_next(v->mig, event, status);
	if (next != v->mig)
		log_info("vm %s: incoming from vm %s: %s -> %s", v->info.name, v->incoming_from,
			 mig_state_to_string(v->mig), mig_state_to_string(next));
	v->mig = next;
}

/* MIGRATION events are only sent with the events capability. */
void migrate_events_on(ops *o, vmrec *v)
{
	_cleanup_json_ json_object *args = json_object_new_object();
	json_object *caps = json_object_new_array(), *cap = json_object_new_object();
	iovm_error err = {};

	(void)o;
	json_object_object_add(cap, "capability", json_object_new_string("events"));
	json_object_object_add(cap, "state", json_object_new_boolean(true));
	json_object_array_add(caps, cap);
	json_object_object_add(args, "capabilities", caps);
	if (iovm_qmp_execute(iovm_vm_get_qmp(v->vm), "migrate-set-capabilities", args, NULL, CONNECT_TIMEOUT_MS,
			     &err) < 0)
		log_warning(err.code, "vm %s: cannot turn on migration events: %s", v->info.name, err.msg);
}

void migrate_watch(ops *o, vmrec *v)
{
	iovm_vm_set_event_handler(v->vm, on_event, v);
	migrate_settle(o, v);
	if ((v->incoming_from[0] && (v->mig == MIG_WAITING || v->mig == MIG_ACTIVE)) || v->out_prepared)
		migrate_events_on(o, v);
}

int migrate_plan_vf(ops *o, vmrec *src, const iovm_store_assignment *a, mig_vf *ret, iovm_error *err)
{
	iovm_live_place p = {};
	iovm_vfnet_config cfg = {};
	iovm_vfnet *nl = NULL;
	iovm_vf info;
	int r;

	r = iovm_vm_live_probe(src->vm, a->devid, CONNECT_TIMEOUT_MS, &p, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: vf %s", a->vm, a->vf);
	if (!p.present)
		return iovm_error_set(err, -ENODEV, "vm %s: vf %s: device %s is not in its QEMU", a->vm, a->vf,
				      a->devid);
	if (!p.failover_pair_id[0])
		return iovm_error_set(err, -EOPNOTSUPP,
				      "vm %s: vf %s: device %s is no failover primary: the stock migration path "
				      "needs a virtio-net standby (failover=on) paired with it",
				      a->vm, a->vf, a->devid);
	r = iovm_vf_get(o->host, a->vf, &info, err);
	if (r >= 0)
		r = iovm_vfnet_open(o->host, &nl, err);
	if (r >= 0)
		r = iovm_vfnet_get(nl, info.pf_addr, info.index, &cfg, err);
	iovm_vfnet_close(nl);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: vf %s: reading its settings", a->vm, a->vf);
	*ret = (mig_vf){ .f.net = cfg };
	snprintf(ret->f.src_vf, sizeof(ret->f.src_vf), "%s", a->vf);
	snprintf(ret->f.pf, sizeof(ret->f.pf), "%s", info.pf_netdev);
	snprintf(ret->f.pair, sizeof(ret->f.pair), "%s", p.failover_pair_id);
	snprintf(ret->f.port, sizeof(ret->f.port), "%s", p.port);
	return 0;
}

int migrate_plan(ops *o, vmrec *dst, const char *src_name, iovm_error *err)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	vmrec *src = vms_find(o, src_name);
	iovm_store_outgoing out;
	size_t n = 0;
	int r;

	if (!src)
		return iovm_error_set(err, -ENOENT, "vm %s: incoming from vm %s, which is not registered",
				      dst->info.name, src_name);
	if (src == dst)
		return iovm_error_set(err, -EINVAL, "vm %s: cannot migrate into itself", src_name);
	r = vms_connect(o, src, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: incoming from vm %s", dst->info.name, src_name);
	dst->n_mig_vfs = 0;
	/* VFs taken out by migrate-prepare: what follows is in the source's
	 * outgoing link (their devices and MACs are gone). */
	if (iovm_store_outgoing_get(o->store, src_name, &out, NULL) == 0 && !strcmp(out.state, "prepared")) {
		for (size_t i = 0; i < out.n_vfs; i++)
			dst->mig_vfs[i] = (mig_vf){ .f = out.vfs[i] };
		dst->n_mig_vfs = out.n_vfs;
		snprintf(dst->incoming_from, sizeof(dst->incoming_from), "%s", src_name);
		dst->mig = MIG_WAITING;
		return 0;
	}
	r = iovm_store_assignment_list(o->store, src_name, &as, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		if (as[i].mode != IOVM_MODE_EXCLUSIVE || as[i].state != IOVM_STORE_ATTACHED)
			continue;
		if (dst->n_mig_vfs >= ELEMENTSOF(dst->mig_vfs))
			return iovm_error_set(err, -E2BIG, "vm %s: more than %zu VFs to follow", src_name,
					      ELEMENTSOF(dst->mig_vfs));
		r = migrate_plan_vf(o, src, &as[i], &dst->mig_vfs[dst->n_mig_vfs], err);
		if (r < 0)
			return iovm_error_prefix(err, "vm %s: incoming", dst->info.name);
		dst->n_mig_vfs++;
	}
	snprintf(dst->incoming_from, sizeof(dst->incoming_from), "%s", src_name);
	dst->mig = MIG_WAITING;
	return 0;
}

/* Before the switch-over: for each followed VF, a VF of the same PF
 * reserved for the destination, with the source's settings, on vfio-pci. */
static void reserve_before_switch(ops *o, vmrec *v)
{
	for (size_t i = 0; i < v->n_mig_vfs; i++) {
		mig_vf *m = &v->mig_vfs[i];
		iovm_api_request q = { .cmd = IOVM_API_ATTACH, .mode = IOVM_MODE_EXCLUSIVE, .priority = -1,
				       .numa_node = -1, .live = -1 };
		iovm_error err = {};
		iovm_vf vf;

		if (m->intent || m->done)
			continue;
		snprintf(q.vm, sizeof(q.vm), "%s", v->info.name);
		snprintf(q.pf, sizeof(q.pf), "%s", m->f.pf);
		o->op = "migrate-in";
		/* All but the MAC: a VF with the guest's MAC takes the
		 * guest's frames from the NIC at once, from the standby's path
		 * too, and drops them until the guest's driver runs it; the MAC
		 * goes on at the plug, after RESUME. */
		if (attach_reserve(o, v, &q, &m->f.net, m->f.net.present & MIG_SETTINGS & ~IOVM_VFNET_MAC, &vf, m->devid,
				   sizeof(m->devid), &m->intent, &err) < 0) {
			log_error(err.code, "vm %s: migrating from vm %s: no VF reserved for vf %s (standby %s): %s",
				  v->info.name, v->incoming_from, m->f.src_vf, m->f.pair, err.msg);
			m->intent = 0;
			continue;
		}
		snprintf(m->vf, sizeof(m->vf), "%s", vf.addr);
		log_info("vm %s: vf %s reserved before the switch-over for vf %s of vm %s (standby %s)",
			 v->info.name, m->vf, m->f.src_vf, v->incoming_from, m->f.pair);
	}
	o->op = "";
	views_sync(o, true);
}

/* A reserved VF given back: its settings and driver restored, its
 * intent rolled back. */
static void unreserve(ops *o, vmrec *v, mig_vf *m, const char *why)
{
	iovm_error err = {};

	if (!m->intent)
		return;
	if (records_restore_vf(o, m->vf, &err) < 0)
		log_warning(err.code, "vm %s: vf %s: giving it back (%s): %s", v->info.name, m->vf, why, err.msg);
	records_finish(o, m->intent, IOVM_INTENT_ROLLED_BACK);
	log_info("vm %s: vf %s given back: %s", v->info.name, m->vf, why);
	m->intent = 0;
}

/* After RESUME: each reserved VF plugged with the source's port and
 * failover pair (device_add, as a live resize gives a failover primary
 * back), then recorded attached. */
static void plug_after_resume(ops *o, vmrec *v)
{
	unsigned held = 0;

	for (size_t i = 0; i < v->n_mig_vfs; i++) {
		mig_vf *m = &v->mig_vfs[i];
		iovm_error err = {};
		json_object *ev;

		if (!m->intent)
			continue;
		o->op = "migrate-in";
		o->intent = m->intent;
		records_set_assignment(o, m->vf, IOVM_STORE_ATTACHING, NULL);
		records_step(o, m->intent, "resumed");
		iovmd_crash_point("migrate-in", "resumed");
		if (migrate_plug_primary(o, v, m->vf, m->devid, &m->f, m->f.net.present & IOVM_VFNET_MAC, false,
					 o->d->cfg.attach_timeout_ms, &err) < 0) {
			log_error(err.code, "vm %s: after its migration from vm %s: vf %s for standby %s: %s",
				  v->info.name, v->incoming_from, m->vf, m->f.pair, err.msg);
			ops_emit(o, "MIGRATION_VF_FAILED",
				 obj_s(obj_s(vm_vf_json(v->info.name, m->f.src_vf), "reason", err.msg), "from",
				       v->incoming_from));
			unreserve(o, v, m, "not plugged");
			continue;
		}
		records_begin(o, "migrate-in");
		records_set_assignment(o, m->vf, IOVM_STORE_ATTACHED, m->devid);
		records_finish(o, m->intent, IOVM_INTENT_DONE);
		records_commit(o);
		iovmd_crash_point("migrate-in", "done");
		ev = obj_s(obj_s(obj_s(vm_vf_json(v->info.name, m->vf), "devid", m->devid), "port", m->f.port), "mode",
			   "exclusive");
		ops_emit(o, "VF_ATTACHED", ev);
		log_info("vm %s: vf %s plugged as %s on %s after RESUME (failover primary of %s, was vf %s of vm %s)",
			 v->info.name, m->vf, m->devid, m->f.port, m->f.pair, m->f.src_vf, v->incoming_from);
		m->intent = 0;
		m->done = true;
	}
	o->op = "";
	o->intent = 0;
	views_sync(o, true);
	for (size_t i = 0; i < v->n_mig_vfs; i++)
		held += v->mig_vfs[i].done;
	log_info("vm %s: migrated from vm %s: it holds %u of %zu VFs after RESUME", v->info.name, v->incoming_from,
		 held, v->n_mig_vfs);
	ops_emit(o, "VM_MIGRATED", obj_s(json_object_new_object(), "vm", v->info.name));
}

/* The migration's state in the store, before iovmd acts on it. */
static void save_state(ops *o, vmrec *v)
{
	iovm_error err = {};

	if (v->mig != v->mig_saved && migrate_save(o, v, &err) < 0)
		log_error(err.code, "vm %s: incoming from vm %s: state %s not saved: %s", v->info.name,
			  v->incoming_from, mig_state_to_string(v->mig), err.msg);
}

void migrate_follow(ops *o, vmrec *v)
{
	migrate_out_follow(o, v);
	if (!v->incoming_from[0])
		return;
	save_state(o, v);
	if (v->mig == MIG_ACTIVE || v->mig == MIG_RESUMED)
		reserve_before_switch(o, v);
	if (v->mig == MIG_RESUMED) {
		plug_after_resume(o, v);
		v->mig = MIG_DONE;
		save_state(o, v);
		kernel_invalidate(o);
		snapshot_publish(o, NULL);
	} else if (v->mig == MIG_FAILED && v->n_mig_vfs) {
		log_info("vm %s: the migration from vm %s did not complete: its VFs stay with vm %s",
			 v->info.name, v->incoming_from, v->incoming_from);
		for (size_t i = 0; i < v->n_mig_vfs; i++)
			unreserve(o, v, &v->mig_vfs[i], "the migration did not complete");
		v->n_mig_vfs = 0;
		save_state(o, v);
		views_sync(o, true);
		snapshot_publish(o, NULL);
	}
}
