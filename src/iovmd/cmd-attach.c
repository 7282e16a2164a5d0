/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * attach: a VF into a VM, exclusively (the VF on vfio-pci, hot-plugged as a
 * vfio-pci device) or shared (the VF stays on its host driver; the VM gets
 * a macvtap on its netdev as a virtio-net device). Which VF and which mode
 * the policy decides unless the request names them (docs/allocation.md).
 * Journaled: reserved -> prepared -> device-added -> verified -> done.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovm/shared.h"
#include "iovm/vfnet.h"
#include "iovmd/crash.h"
#include "iovmd/ops.h"

/* A named VF: the policy holds it for the VM. An auto mode joins a VF that
 * is already shared, else takes it exclusively. */
static int choose_named(ops *o, vmrec *v, iovm_mode want, const iovm_vf *vf, iovm_mode *ret_mode,
			iovm_error *err)
{
	iovm_policy_vf_info pi;
	int r;

	if (want == IOVM_MODE_AUTO)
		want = iovm_policy_vf_get(o->pol, vf->addr, &pi, NULL) == 0 &&
		       pi.state == IOVM_POLICY_VF_SHARED ? IOVM_MODE_SHARED : IOVM_MODE_EXCLUSIVE;
	r = iovm_policy_assign(o->pol, v->info.name, vf->addr, want, err);
	if (r < 0)
		return r;
	*ret_mode = want;
	log_info("policy: vm %s takes the named vf %s %s", v->info.name, vf->addr, iovm_mode_to_string(want));
	return 0;
}

/* Auto mode leaves --shared-reserve free VFs for sharing, counted among
 * the VFs this request may get (on pf if named, else all). */
static iovm_mode reserve_for_sharing(ops *o, vmrec *v, const char *pf, iovm_mode want)
{
	unsigned free_here = 0;

	if (want != IOVM_MODE_AUTO || !o->d->cfg.shared_reserve)
		return want;
	for (size_t i = 0; i < o->n_inv; i++) {
		iovm_policy_vf_info pi;

		if ((!pf[0] || !strcmp(o->inv[i].pf_addr, pf)) &&
		    iovm_policy_vf_get(o->pol, o->inv[i].addr, &pi, NULL) == 0 && pi.state == IOVM_POLICY_VF_FREE)
			free_here++;
	}
	if (free_here > o->d->cfg.shared_reserve)
		return want;
	log_info("policy: vm %s: %u free VF%s left%s%s, --shared-reserve %u: asking to share", v->info.name,
		 free_here, free_here == 1 ? "" : "s", pf[0] ? " on pf " : "", pf, o->d->cfg.shared_reserve);
	return IOVM_MODE_SHARED;
}

/* Picks a VF for an attach through the policy, or takes the one named;
 * either way the policy holds it for the VM, until views_sync()
 * finds no record of it if the attach did not get as far as one. The
 * decision and its reason are logged. named: q->vf already resolved into
 * *ret (else it is resolved here). */
static int choose_vf(ops *o, vmrec *v, const iovm_api_request *q, bool named, iovm_vf *ret,
		     iovm_mode *ret_mode, iovm_error *err)
{
	iovm_policy_decision dec = {};
	char pf[IOVM_PCI_ADDR_MAX] = "";
	int r;

	if (q->vf[0]) {
		r = named ? 0 : naming_resolve_vf(o, q->vf, ret, err);
		return r < 0 ? r : choose_named(o, v, q->mode, ret, ret_mode, err);
	}
	if (q->pf[0] && iovm_pf_resolve(o->host, q->pf, pf, sizeof(pf), err) < 0)
		return err->code;
	r = iovm_policy_request(o->pol, &(iovm_policy_req){ .vm = v->info.name,
							      .mode = reserve_for_sharing(o, v, pf, q->mode),
							      .pf = pf[0] ? pf : NULL }, &dec, err);
	if (r < 0) {
		log_info("policy: vm %s: no VF: %s", v->info.name, err->msg);
		return r;
	}
	log_info("policy: vm %s gets vf %s: %s", v->info.name, dec.vf, dec.reason);
	*ret_mode = dec.mode;
	return iovm_vf_get(o->host, dec.vf, ret, err);
}

/* The VF's settings before iovm touches it: its driver and, for a NIC VF,
 * everything the PF reports about it. */
static void original_settings(ops *o, const iovm_vf *vf, iovm_store_vf_saved *saved)
{
	iovm_vfnet *nl = NULL;
	iovm_error err = {};

	memset(saved, 0, sizeof(*saved));
	snprintf(saved->vf, sizeof(saved->vf), "%s", vf->addr);
	snprintf(saved->pf, sizeof(saved->pf), "%s", vf->pf_addr);
	saved->vf_index = vf->index;
	snprintf(saved->driver, sizeof(saved->driver), "%s", vf->driver);
	if (vf->pf_netdev[0] && iovm_vfnet_open(o->host, &nl, NULL) == 0) {
		if (iovm_vfnet_save(nl, vf->pf_addr, vf->index, &saved->cfg, &err) < 0)
			log_warning(err.code, "vf %s: its settings are not saved, so not restored on release: %s",
				    vf->addr, err.msg);
		iovm_vfnet_close(nl);
	}
}

/* Writes, in one transaction, the attach intent, the holder's row (an
 * exclusive assignment a, or a share sh) and the original settings (kept if
 * already saved: the first save is the original). */
struct attach_record {
	char object[IOVM_STORE_OBJECT_MAX];
	const iovm_store_intent_args *args;
	const iovm_store_assignment *a;
	const iovm_store_share *sh;
	const iovm_store_vf_saved *saved;
	int64_t *ret_id;
};

static int write_attach(iovm_store *s, void *userdata, iovm_error *err)
{
	const struct attach_record *w = userdata;
	int r;

	r = iovm_store_intent_begin(s, IOVM_INTENT_ATTACH, w->object, w->args, w->ret_id, err);
	if (r >= 0)
		r = w->a ? iovm_store_assign(s, w->a, err) : iovm_store_share_add(s, w->sh, err);
	if (r < 0)
		return r;
	/* Kept if already saved: the first save is the original. */
	r = iovm_store_vf_saved_put(s, w->saved, err);
	return r == -EEXIST ? 0 : r;
}

static int journal_attach(ops *o, const char *vf, const iovm_store_intent_args *args,
			  const iovm_store_assignment *a,
			  const iovm_store_share *sh, const iovm_store_vf_saved *saved, int64_t *ret_id,
			  iovm_error *err)
{
	struct attach_record w = { .args = args, .a = a, .sh = sh, .saved = saved, .ret_id = ret_id };

	snprintf(w.object, sizeof(w.object), "vf %s", vf);
	return iovm_store_transaction(o->store, write_attach, &w, err);
}

static int attach_timeout(ops *o, const iovm_api_request *q)
{
	return q->timeout_ms > 0 ? q->timeout_ms : o->d->cfg.attach_timeout_ms;
}

/* A VF the policy turned from free to shared may sit on vfio-pci: back to
 * its host driver. Then the sharers' frames carry their own MACs, one
 * unicast filter each: the VF must not drop them as spoofed, and igb
 * grants a VF extra filters only when trusted (original settings saved
 * before). */
static int prepare_for_sharing(ops *o, iovm_vf *vf, iovm_error *err)
{
	iovm_vfnet_config cfg = { .spoofchk = false, .trust = true };
	iovm_vfnet *nl = NULL;
	int r;

	if (!vf->netdev[0]) {
		ops_progress(o, "binding the VF to its host driver for sharing", 0, 0);
		r = iovm_vf_bind(o->host, vf->addr, NULL, err);
		if (r >= 0)
			r = iovm_vf_get(o->host, vf->addr, vf, err);
		if (r >= 0 && !vf->netdev[0])
			r = iovm_error_set(err, -ENODEV, "vf %s: no host netdev after binding %s", vf->addr,
					   vf->driver);
		if (r < 0)
			return r;
	}
	r = iovm_vfnet_open(o->host, &nl, err);
	if (r >= 0)
		r = iovm_vfnet_set(nl, vf->pf_addr, vf->index, &cfg, IOVM_VFNET_SPOOFCHK | IOVM_VFNET_TRUST, err);
	iovm_vfnet_close(nl);
	return r;
}

static json_object *shared_json(vmrec *v, const iovm_vf *vf, const iovm_shared_result *res)
{
	json_object *ret = obj_s(obj_s(obj_s(vm_vf_json(v->info.name, vf->addr), "devid", res->devid), "port",
				       res->port), "mode", "shared");

	obj_s(obj_s(ret, "macvtap", res->ifname), "mac", res->mac);
	json_object_object_add(ret, "vf_carrier", json_object_new_boolean(res->vf_carrier));
	return ret;
}

/* Shares vf with the VM. Journaled like an exclusive attach; each sharer
 * is a row of vf_share. */
static json_object *attach_shared(ops *o, vmrec *v, const iovm_api_request *q, const iovm_vf *vf_in,
				  iovm_error *err)
{
	char mac[IOVM_MAC_STR_MAX] = "";
	iovm_store_intent_args args;
	iovm_store_share sh = {};
	iovm_store_vf_saved saved = {};
	iovm_shared_result res = {};
	iovm_shared_opts so = {};
	iovm_vf vf = *vf_in;
	json_object *ret;
	int64_t id = 0;

	original_settings(o, &vf, &saved);
	snprintf(sh.vf, sizeof(sh.vf), "%s", vf.addr);
	snprintf(sh.vm, sizeof(sh.vm), "%s", v->info.name);
	sh.state = IOVM_STORE_RESERVED;
	args = records_vm_args(v->info.name, IOVM_MODE_SHARED, NULL);
	if (journal_attach(o, vf.addr, &args, NULL, &sh, &saved, &id, err) < 0)
		return NULL;
	o->intent = id;
	o->op = "attach";
	iovmd_crash_point("attach", "reserved");
	if (prepare_for_sharing(o, &vf, err) < 0)
		goto fail;
	records_set_share(o, vf.addr, v->info.name, IOVM_STORE_ATTACHING, NULL, NULL);
	so.vf = vf.addr;
	if (q->cfg.present & IOVM_VFNET_MAC)
		so.mac = iovm_mac_format(q->cfg.mac, mac);
	so.timeout_ms = attach_timeout(o, q);
	if (iovm_vm_attach_shared(v->vm, &so, &res, err) < 0)
		goto fail;
	records_set_share(o, vf.addr, v->info.name, IOVM_STORE_ATTACHED, res.devid, res.ifname);
	records_finish(o, id, IOVM_INTENT_DONE);
	iovmd_crash_point("attach", "done");
	ret = shared_json(v, &vf, &res);
	if (!res.vf_carrier)
		log_warning(0, "vm %s: vf %s: its netdev %s has no carrier; the shared NIC has no link until it does",
			    v->info.name, vf.addr, res.vf_netdev);
	ops_emit(o, "VF_ATTACHED", json_object_get(ret));
	log_info("vm %s: shares vf %s (%s) through %s as %s on %s", v->info.name, vf.addr, res.vf_netdev,
		 res.ifname, res.devid, res.port);
	return ret;
fail:
	records_release_share(o, vf.addr, v->info.name);
	records_finish(o, id, IOVM_INTENT_ROLLED_BACK);
	return NULL;
}

/* The VM, connected; NULL and err if unknown or unreachable. */
static vmrec *attach_vm(ops *o, const char *name, iovm_error *err)
{
	iovm_error cerr = {};
	vmrec *v = vms_find(o, name);

	if (!v) {
		iovm_error_set(err, -ENOENT, "vm %s: not registered (vm-add it first)", name);
		return NULL;
	}
	if (vms_connect(o, v, &cerr) < 0) {
		iovm_error_set(err, -ECONNREFUSED, "%s (is the VM running?)", cerr.msg);
		return NULL;
	}
	return v;
}

/* A named VF that someone holds, or that is being released: -EBUSY. */
static int check_named_free(ops *o, const iovm_vf *vf, iovm_error *err)
{
	iovm_store_assignment held;

	if (iovm_store_assignment_get(o->store, vf->addr, &held, NULL) < 0)
		return 0;
	return iovm_error_set(err, -EBUSY, "vf %s: already assigned to vm %s (%s)", vf->addr, held.vm,
			      iovm_store_assign_state_to_string(held.state));
}

/* The attach failed: what the VM layer left of it is recorded (a VF QEMU
 * let go of is forgotten; one half in whose guest does not let go is kept,
 * release-pending). */
static void attach_failed(ops *o, const iovm_store_assignment *a, int64_t id)
{
	views_record(o, a, true, NULL);
	records_finish(o, id, IOVM_INTENT_ROLLED_BACK);
}

static void attach_opts(ops *o, const iovm_api_request *q, const iovm_vf *vf, char *mac, iovm_attach_opts *ao)
{
	ao->vf = vf->addr;
	ao->failover_pair_id = q->failover_pair_id[0] ? q->failover_pair_id : NULL;
	if (q->cfg.present & IOVM_VFNET_MAC)
		ao->mac = iovm_mac_format(q->cfg.mac, mac);
	ao->vlan = q->cfg.present & IOVM_VFNET_VLAN ? q->cfg.vlan : 0;
	ao->timeout_ms = attach_timeout(o, q);
}

/* VF vf reserved for VM vm, exclusively: its original settings saved
 * before anything is touched, the attach intent opened and the assignment
 * reserved in one journal step (ret_a, ret_saved, ret_id filled). */
static int reserve_exclusive(ops *o, const char *vm, const iovm_vf *vf, iovm_store_assignment *ret_a,
			     iovm_store_vf_saved *ret_saved, int64_t *ret_id, iovm_error *err)
{
	iovm_store_intent_args args;

	original_settings(o, vf, ret_saved);
	snprintf(ret_a->vf, sizeof(ret_a->vf), "%s", vf->addr);
	snprintf(ret_a->vm, sizeof(ret_a->vm), "%s", vm);
	ret_a->mode = IOVM_MODE_EXCLUSIVE;
	ret_a->state = IOVM_STORE_RESERVED;
	iovm_vm_device_id(vf->addr, ret_a->devid, sizeof(ret_a->devid));
	args = records_vm_args(vm, IOVM_MODE_EXCLUSIVE, ret_a->devid);
	return journal_attach(o, vf->addr, &args, ret_a, NULL, ret_saved, ret_id, err);
}

/* The VF on vfio-pci into the VM, exclusively. */
static json_object *attach_exclusive(ops *o, vmrec *v, const iovm_api_request *q, const iovm_vf *vf,
				     iovm_error *err)
{
	char mac[18] = "";
	iovm_store_assignment a = {};
	iovm_store_vf_saved saved = {};
	iovm_attach_result res = {};
	iovm_attach_opts ao = {};
	json_object *ret;
	int64_t id = 0;

	if (reserve_exclusive(o, q->vm, vf, &a, &saved, &id, err) < 0)
		return NULL;
	log_debug("attach: vm %s: vf %s reserved (intent %lld)", q->vm, vf->addr, (long long)id);
	o->intent = id;
	o->op = "attach";
	iovmd_crash_point("attach", "reserved");
	attach_opts(o, q, vf, mac, &ao);
	records_set_assignment(o, vf->addr, IOVM_STORE_ATTACHING, NULL);
	if (iovm_vm_attach(v->vm, &ao, &res, err) < 0) {
		a.state = IOVM_STORE_ATTACHING;
		attach_failed(o, &a, id);
		return NULL;
	}
	log_debug("attach: vm %s: vf %s in the guest", q->vm, vf->addr);
	/* One commit for both: the record and the journal agree. */
	records_begin(o, "attach");
	records_set_assignment(o, vf->addr, IOVM_STORE_ATTACHED, res.devid);
	records_finish(o, id, IOVM_INTENT_DONE);
	records_commit(o);
	iovmd_crash_point("attach", "done");
	ret = obj_s(obj_s(obj_s(vm_vf_json(q->vm, vf->addr), "devid", res.devid), "port", res.port), "mode",
		    "exclusive");
	ops_emit(o, "VF_ATTACHED", json_object_get(ret));
	log_info("vm %s: vf %s attached as %s on %s", q->vm, vf->addr, res.devid, res.port);
	return ret;
}

json_object *cmd_attach(ops *o, const iovm_api_request *q, iovm_error *err)
{
	iovm_mode mode = IOVM_MODE_EXCLUSIVE;
	vmrec *v = attach_vm(o, q->vm, err);
	iovm_vf vf;
	bool named;

	if (!v)
		return NULL;
	named = q->vf[0] && naming_resolve_vf(o, q->vf, &vf, NULL) == 0;
	if (named && check_named_free(o, &vf, err) < 0)
		return NULL;
	if (choose_vf(o, v, q, named, &vf, &mode, err) < 0)
		return NULL;
	log_debug("attach: vm %s: chose vf %s", q->vm, vf.addr);
	if (mode == IOVM_MODE_SHARED)
		return attach_shared(o, v, q, &vf, err);
	return attach_exclusive(o, v, q, &vf, err);
}

/* A migration's destination (migrate.c): the VF the policy picks for VM
 * q->vm on q->pf, reserved and journalled as an attach (intent open,
 * assignment reserved, original settings saved), given the settings cfg
 * (mask: IOVM_VFNET_*) through its PF and bound to vfio-pci, its IOMMU
 * group checked; not plugged. On failure what was done is undone, the
 * intent rolled back. */
int attach_reserve(ops *o, vmrec *v, const iovm_api_request *q, const iovm_vfnet_config *cfg, unsigned mask,
		   iovm_vf *ret_vf, char *ret_devid, size_t n, int64_t *ret_id, iovm_error *err)
{
	iovm_mode mode = IOVM_MODE_EXCLUSIVE;
	iovm_store_assignment a = {};
	iovm_store_vf_saved saved;
	iovm_vfnet *nl = NULL;
	iovm_error e2 = {};
	int64_t id = 0;
	int r;

	if (choose_vf(o, v, q, false, ret_vf, &mode, err) < 0)
		return err->code ? err->code : -ENOSPC;
	if (mode != IOVM_MODE_EXCLUSIVE)
		return iovm_error_set(err, -ENOSPC, "vm %s: no free VF on %s (only a shared one)", q->vm, q->pf);
	if (reserve_exclusive(o, q->vm, ret_vf, &a, &saved, &id, err) < 0)
		return err->code;
	iovmd_crash_point("migrate-in", "reserved");
	r = iovm_vfnet_open(o->host, &nl, err);
	if (r >= 0 && mask)
		r = iovm_vfnet_set(nl, ret_vf->pf_addr, ret_vf->index, cfg, mask, err);
	iovm_vfnet_close(nl);
	if (r >= 0 && strcmp(ret_vf->driver, "vfio-pci"))
		r = iovm_vf_bind(o->host, ret_vf->addr, "vfio-pci", err);
	if (r >= 0)
		r = iovm_vfio_group_check(o->host, ret_vf->addr, err);
	if (r < 0) {
		iovm_error_prefix(err, "vm %s: vf %s: preparing it", q->vm, ret_vf->addr);
		if (records_restore_vf(o, ret_vf->addr, &e2) < 0)
			log_warning(e2.code, "vm %s: vf %s: %s", q->vm, ret_vf->addr, e2.msg);
		records_finish(o, id, IOVM_INTENT_ROLLED_BACK);
		return r;
	}
	records_step(o, id, "prepared");
	iovmd_crash_point("migrate-in", "prepared");
	snprintf(ret_devid, n, "%s", a.devid);
	*ret_id = id;
	return 0;
}
