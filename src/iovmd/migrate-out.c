/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The source's side of the explicit failover variant (docs/migration.md):
 * migrate-prepare takes a VM's VFs out of its guest before whoever drives
 * the migration starts it, with a deadline, and clears each VF's MAC so
 * the NIC stops steering the guest's frames to a VF nobody reads; the
 * guest carries on over its failover standby. What a destination and a
 * give-back need is kept in the VM's outgoing link, since neither QEMU nor
 * the PF shows it any more. migrate-abort, or the source QEMU reporting
 * its migration failed or cancelled, gives the VFs back (settings
 * restored, plugged with the same id, port and failover pair). Once the
 * source QEMU is gone the VFs are reclaimed as for any VM.
 *
 * Steps, with crash points (op "migrate-out"): "registered" (link written
 * "unplugging", assignments "attaching", one transaction), "unplugged"
 * (every VF out of the guest), "prepared" (MACs cleared, link
 * "prepared"). A restarted iovmd gives back what an "unplugging" link
 * took and keeps a "prepared" one while its QEMU runs.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovm/live.h"
#include "iovm/vfnet.h"
#include "iovmd/crash.h"
#include "iovmd/ops.h"
#include "shared/json-util.h"
#include "shared/util.h"

static json_object *vf_json(const iovm_store_incoming_vf *f, const char *devid)
{
	json_object *j = json_object_new_object();
	char net[256] = "";

	iovm_vfnet_config_format(&f->net, net, sizeof(net));
	obj_s(j, "vf", f->src_vf);
	obj_s(j, "pf", f->pf);
	obj_s(j, "devid", devid);
	obj_s(j, "port", f->port);
	obj_s(j, "failover_pair_id", f->pair);
	return obj_s(j, "net", net);
}

static json_object *reply(const char *vm, const char *state, json_object *vfs)
{
	json_object *j = obj_s(obj_s(json_object_new_object(), "vm", vm), "state", state);

	json_object_object_add(j, "vfs", vfs);
	return j;
}

/* One VF back into its guest: the settings it had, then device_add with
 * the same id, port and failover pair (unless the device is still there:
 * a prepare killed before its unplug). A VF that cannot go back is given
 * back to the host. */
static int give_vf_back(ops *o, vmrec *v, const iovm_store_incoming_vf *f, int timeout_ms, json_object *vfs,
			iovm_error *err)
{
	iovm_store_assignment a;
	iovm_error e2 = {};
	int r;

	if (iovm_store_assignment_get(o->store, f->src_vf, &a, NULL) < 0 || strcmp(a.vm, v->info.name)) {
		log_warning(0, "vm %s: vf %s is no longer the VM's: not given back", v->info.name, f->src_vf);
		return 0;
	}
	r = migrate_plug_primary(o, v, f->src_vf, a.devid, f, f->net.present & MIG_SETTINGS, true, timeout_ms, err);
	if (r < 0) {
		iovm_error_prefix(err, "vm %s: vf %s: giving it back to the guest", v->info.name, f->src_vf);
		log_error(err->code, "%s; the VF goes back to the host", err->msg);
		if (records_restore_vf(o, f->src_vf, &e2) < 0)
			log_warning(e2.code, "vm %s: vf %s: %s", v->info.name, f->src_vf, e2.msg);
		ops_emit(o, "VF_DETACHED", vm_vf_json(v->info.name, f->src_vf));
		return r;
	}
	records_set_assignment(o, f->src_vf, IOVM_STORE_ATTACHED, a.devid);
	if (vfs)
		json_object_array_add(vfs, vf_json(f, a.devid));
	log_info("vm %s: vf %s given back as %s (failover primary of %s)", v->info.name, f->src_vf, a.devid,
		 f->pair);
	return 0;
}

/* Every VF of the link back, then the link gone. The first error. */
static int give_back(ops *o, vmrec *v, const iovm_store_outgoing *out, int timeout_ms, json_object *vfs,
		     iovm_error *err)
{
	iovm_error e = {};
	int first = 0;

	for (size_t i = 0; i < out->n_vfs; i++) {
		int r = give_vf_back(o, v, &out->vfs[i], timeout_ms, vfs, &e);

		if (r < 0 && !first) {
			first = r;
			if (err)
				*err = e;
		}
	}
	if (iovm_store_outgoing_delete(o->store, v->info.name, &e) < 0)
		log_warning(e.code, "%s", e.msg);
	v->out_prepared = v->out_giveback = false;
	views_sync(o, true);
	return first;
}

/* What follows the guest: each exclusive VF, attached, a failover
 * primary; anything else refuses the whole prepare, before any change. */
static int plan(ops *o, vmrec *v, iovm_store_outgoing *out, char (*devids)[IOVM_STORE_NAME_MAX], iovm_error *err)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	size_t n = 0;
	int r;

	r = iovm_store_assignment_list(o->store, v->info.name, &as, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		mig_vf m;

		if (as[i].mode != IOVM_MODE_EXCLUSIVE)
			continue;
		if (as[i].state != IOVM_STORE_ATTACHED)
			return iovm_error_set(err, -EBUSY, "vm %s: vf %s is being attached, detached or given "
					      "back: try again", v->info.name, as[i].vf);
		if (out->n_vfs >= ELEMENTSOF(out->vfs))
			return iovm_error_set(err, -E2BIG, "vm %s: more than %zu VFs to take out", v->info.name,
					      ELEMENTSOF(out->vfs));
		r = migrate_plan_vf(o, v, &as[i], &m, err);
		if (r < 0)
			return r;
		snprintf(devids[out->n_vfs], IOVM_STORE_NAME_MAX, "%s", as[i].devid);
		out->vfs[out->n_vfs++] = m.f;
	}
	return 0;
}

json_object *cmd_migrate_prepare(ops *o, const iovm_api_request *q, iovm_error *err)
{
	static const iovm_vfnet_config no_mac = { .present = IOVM_VFNET_MAC };
	char devids[IOVM_STORE_INCOMING_VFS_MAX][IOVM_STORE_NAME_MAX];
	int timeout_ms = q->timeout_ms > 0 ? q->timeout_ms : o->d->cfg.detach_timeout_ms;
	iovm_store_outgoing out = {};
	json_object *vfs;
	vmrec *v = vms_find(o, q->vm);
	size_t i;
	int r;

	if (!v) {
		iovm_error_set(err, -ENOENT, "vm %s: not registered", q->vm);
		return NULL;
	}
	if (iovm_store_outgoing_get(o->store, v->info.name, &out, NULL) == 0) {
		iovm_error_set(err, -EALREADY, "vm %s: its VFs are already out for its migration (%s); "
			       "migrate-abort gives them back", v->info.name, out.state);
		return NULL;
	}
	out = (iovm_store_outgoing){};
	snprintf(out.vm, sizeof(out.vm), "%s", v->info.name);
	snprintf(out.state, sizeof(out.state), "unplugging");
	if (vms_connect(o, v, err) < 0) {
		iovm_error_prefix(err, "vm %s", v->info.name);
		return NULL;
	}
	if (plan(o, v, &out, devids, err) < 0)
		return NULL;
	if (out.n_vfs == 0)
		return reply(v->info.name, "prepared", json_object_new_array());

	/* The link and the VFs' new state in one transaction. */
	o->op = "migrate-out";
	records_begin(o, "migrate-out");
	r = iovm_store_outgoing_put(o->store, &out, err);
	for (i = 0; r >= 0 && i < out.n_vfs; i++)
		records_set_assignment(o, out.vfs[i].src_vf, IOVM_STORE_ATTACHING, NULL);
	if (r < 0) {
		iovm_store_rollback(o->store);
		return NULL;
	}
	records_commit(o);
	iovmd_crash_point("migrate-out", "registered");
	/* A failed or cancelled migration is reported by MIGRATION events. */
	migrate_events_on(o, v);

	for (i = 0; i < out.n_vfs; i++) {
		iovm_live_place p = {};

		snprintf(p.devid, sizeof(p.devid), "%s", devids[i]);
		snprintf(p.port, sizeof(p.port), "%s", out.vfs[i].port);
		snprintf(p.failover_pair_id, sizeof(p.failover_pair_id), "%s", out.vfs[i].pair);
		ops_progress(o, "unplugging", (int)i, (int)out.n_vfs);
		r = iovm_vm_live_release(v->vm, out.vfs[i].src_vf, &p, IOVM_LIVE_FAILOVER, timeout_ms, err);
		if (r < 0)
			break;
		log_info("vm %s: vf %s out of the guest before its migration (device %s, standby %s)",
			 v->info.name, out.vfs[i].src_vf, devids[i], out.vfs[i].pair);
	}
	if (r >= 0) {
		iovmd_crash_point("migrate-out", "unplugged");
		for (i = 0; r >= 0 && i < out.n_vfs; i++)
			if ((r = records_vf_net_set(o, out.vfs[i].src_vf, &no_mac, IOVM_VFNET_MAC, err)) < 0)
				iovm_error_prefix(err, "vm %s: vf %s: clearing its MAC", v->info.name,
						  out.vfs[i].src_vf);
	}
	if (r < 0) {
		/* Nothing half-done: every VF goes back where it was. A guest
		 * that did not let go in time may still do so; its VF is then
		 * given back to the host by the usual release. */
		log_error(r, "vm %s: migrate-prepare: %s; giving its VFs back", v->info.name, err->msg);
		give_back(o, v, &out, timeout_ms, NULL, NULL);
		o->op = "";
		return NULL;
	}
	snprintf(out.state, sizeof(out.state), "prepared");
	if (iovm_store_outgoing_put(o->store, &out, err) < 0) {
		give_back(o, v, &out, timeout_ms, NULL, NULL);
		o->op = "";
		return NULL;
	}
	iovmd_crash_point("migrate-out", "prepared");
	o->op = "";
	v->out_prepared = true;
	vfs = json_object_new_array();
	for (i = 0; i < out.n_vfs; i++)
		json_object_array_add(vfs, vf_json(&out.vfs[i], devids[i]));
	log_info("vm %s: prepared for its migration: %zu VF(s) out, MACs cleared", v->info.name, out.n_vfs);
	ops_emit(o, "VM_MIGRATE_PREPARED", obj_s(json_object_new_object(), "vm", v->info.name));
	return reply(v->info.name, "prepared", vfs);
}

json_object *cmd_migrate_abort(ops *o, const iovm_api_request *q, iovm_error *err)
{
	int timeout_ms = q->timeout_ms > 0 ? q->timeout_ms : o->d->cfg.attach_timeout_ms;
	iovm_store_outgoing out;
	json_object *vfs;
	vmrec *v = vms_find(o, q->vm);

	if (!v) {
		iovm_error_set(err, -ENOENT, "vm %s: not registered", q->vm);
		return NULL;
	}
	if (iovm_store_outgoing_get(o->store, v->info.name, &out, err) < 0) {
		if (err->code == -ENOENT)
			iovm_error_set(err, -ENOENT, "vm %s: no VFs out for a migration", v->info.name);
		return NULL;
	}
	if (vms_connect(o, v, err) < 0) {
		iovm_error_prefix(err, "vm %s: its VFs are reclaimed once its QEMU is gone", v->info.name);
		return NULL;
	}
	vfs = json_object_new_array();
	if (give_back(o, v, &out, timeout_ms, vfs, err) < 0) {
		json_object_put(vfs);
		return NULL;
	}
	return reply(v->info.name, "given-back", vfs);
}

/* Source QEMU events: a migration that failed or was cancelled after a
 * prepare gives the VFs back (QEMU only plugs back what it unplugged
 * itself). Pure on the event. */
bool migrate_out_ended(const char *event, const char *status)
{
	return !strcmp(event, "MIGRATION") && status && (!strcmp(status, "failed") || !strcmp(status, "cancelled"));
}

void migrate_out_follow(ops *o, vmrec *v)
{
	iovm_store_outgoing out;
	iovm_error err = {};

	if (!v->out_giveback || !v->vm)
		return;
	v->out_giveback = false;
	if (iovm_store_outgoing_get(o->store, v->info.name, &out, &err) < 0) {
		if (err.code != -ENOENT)
			log_warning(err.code, "%s", err.msg);
		return;
	}
	log_info("vm %s: its migration did not complete: giving its VFs back", v->info.name);
	if (give_back(o, v, &out, o->d->cfg.attach_timeout_ms, NULL, &err) < 0)
		log_error(err.code, "%s", err.msg);
	snapshot_publish(o, NULL);
}

/* Start-up, before the holders are checked: a link "unplugging" is given
 * back; a "prepared" one is kept while its QEMU answers (its VFs stay out,
 * "attaching"), and dropped when it does not (the holder rule reclaims
 * the VFs). */
void migrate_out_recover(ops *o)
{
	_cleanup_free_ iovm_store_outgoing *outs = NULL;
	iovm_error err = {};
	size_t n = 0;

	if (iovm_store_outgoing_list(o->store, &outs, &n, &err) < 0) {
		log_warning(err.code, "recovery: %s", err.msg);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		vmrec *v = vms_find(o, outs[i].vm);
		bool up = v && vms_connect(o, v, NULL) == 0;

		if (up && !strcmp(outs[i].state, "prepared")) {
			log_info("recovery: vm %s: %zu VF(s) stay out for its migration", outs[i].vm, outs[i].n_vfs);
			v->out_prepared = true;
			migrate_events_on(o, v);
			continue;
		}
		if (up) {
			log_info("recovery: vm %s: its migrate-prepare did not finish: giving its VFs back",
				 outs[i].vm);
			if (give_back(o, v, &outs[i], o->d->cfg.attach_timeout_ms, NULL, &err) < 0)
				log_error(err.code, "recovery: %s", err.msg);
			continue;
		}
		log_info("recovery: vm %s unreachable: its outgoing link is dropped, its VFs reclaimed", outs[i].vm);
		if (iovm_store_outgoing_delete(o->store, outs[i].vm, &err) < 0)
			log_warning(err.code, "recovery: %s", err.msg);
	}
}

/* Is vf out of vm's guest for its migration? (The holder rule keeps it.) */
bool migrate_out_holds(ops *o, const char *vm, const char *vf)
{
	vmrec *v = vms_find(o, vm);
	iovm_store_outgoing out;

	if (!v || !v->out_prepared || iovm_store_outgoing_get(o->store, vm, &out, NULL) < 0)
		return false;
	for (size_t i = 0; i < out.n_vfs; i++)
		if (!strcmp(out.vfs[i].src_vf, vf))
			return true;
	return false;
}

/* The source QEMU is gone (its migration completed, or it died): the VFs
 * it had out are reclaimed like any VM's, so they are no longer
 * "attaching", and the link goes. */
void migrate_out_lost(ops *o, vmrec *v)
{
	iovm_store_outgoing out;
	iovm_error err = {};

	v->out_prepared = v->out_giveback = false;
	if (iovm_store_outgoing_get(o->store, v->info.name, &out, NULL) < 0)
		return;
	records_begin(o, "migrate-out");
	for (size_t i = 0; i < out.n_vfs; i++)
		records_set_assignment(o, out.vfs[i].src_vf, IOVM_STORE_RELEASE_PENDING, NULL);
	if (iovm_store_outgoing_delete(o->store, v->info.name, &err) < 0)
		log_warning(err.code, "%s", err.msg);
	records_commit(o);
	log_info("vm %s: gone with %zu VF(s) out for its migration: reclaiming them", v->info.name, out.n_vfs);
}
