/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * pf-set-vfs while VMs hold VFs of the PF (docs/resize.md): every holder
 * keeps its VF by index, with its settings, device id, port and failover
 * pair. Planned and refused up front (nothing changed) if any VM cannot go
 * through; then journaled:
 *   intent (holders in its args, their assignments attaching)
 *   -> released (each VF paused or unplugged) -> numvfs (re-created)
 *   -> configured (settings back) -> restored (each VF back in its VM) -> done
 * with crash points "set-vfs-live:STEP". Recovery finishes it forward
 * (live_recover).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "iovm/live.h"
#include "iovm/vfnet.h"
#include "iovmd/crash.h"
#include "iovmd/ops.h"
#include "shared/util.h"

#define OP "set-vfs-live"
/* How long a live resize waits for its PF's carrier to nudge paused VFs. */
#define CARRIER_WAIT_MS 10000
#define NET_KEPT (IOVM_VFNET_MAC | IOVM_VFNET_VLAN | IOVM_VFNET_RATE | IOVM_VFNET_TRUST | IOVM_VFNET_SPOOFCHK)

/* Refusals gathered while planning: "; "-separated, one per VM. */
typedef struct why {
	char text[IOVM_ERROR_MSG_MAX];
	unsigned n;
} why;

static void why_add(why *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why_add(why *w, const char *fmt, ...)
{
	size_t len = strlen(w->text);
	va_list ap;

	if (len + 3 >= sizeof(w->text))
		return;
	if (w->n++)
		len += (size_t)snprintf(w->text + len, sizeof(w->text) - len, "; ");
	va_start(ap, fmt);
	vsnprintf(w->text + len, sizeof(w->text) - len, fmt, ap);
	va_end(ap);
}

static int live_timeout(ops *o, const iovm_api_request *q)
{
	return q && q->timeout_ms > 0 ? q->timeout_ms : o->d->cfg.detach_timeout_ms;
}

static iovm_live_place place_of(const iovm_store_live_holder *h)
{
	iovm_live_place p = { .present = true };

	snprintf(p.devid, sizeof(p.devid), "%s", h->devid);
	snprintf(p.port, sizeof(p.port), "%s", h->port);
	snprintf(p.failover_pair_id, sizeof(p.failover_pair_id), "%s", h->failover_pair_id);
	p.can_pause = h->mode == IOVM_LIVE_PAUSE;
	return p;
}

/* Shared VFs of pf (host driver + macvtap) are not carried through. */
static void plan_shares(ops *o, const char *pf, why *w)
{
	_cleanup_free_ iovm_store_share *shs = NULL;
	size_t n = 0;

	if (iovm_store_share_list(o->store, NULL, NULL, &shs, &n, NULL) < 0)
		return;
	for (size_t i = 0; i < n; i++) {
		iovm_vf vf;

		if (iovm_vf_get(o->host, shs[i].vf, &vf, NULL) == 0 && !strcmp(vf.pf_addr, pf))
			why_add(w, "vm %s shares vf %s (index %u, host driver and macvtap): a shared VF is "
				"not carried through a resize; detach it first", shs[i].vm, shs[i].vf, vf.index);
	}
}

/* What QEMU and the kernel say about one holder; refusals go to w. */
static void plan_holder(ops *o, const iovm_store_assignment *a, const iovm_vf *vf, iovm_live_mode asked,
			int timeout_ms, iovm_store_live_holder *h, why *w)
{
	vmrec *v = vms_find(o, a->vm);
	iovm_live_place p;
	iovm_error e = {};
	char no[256];

	snprintf(h->vm, sizeof(h->vm), "%s", a->vm);
	snprintf(h->vf, sizeof(h->vf), "%s", a->vf);
	h->index = vf->index;
	if (a->devid[0])
		snprintf(h->devid, sizeof(h->devid), "%s", a->devid);
	else
		iovm_vm_device_id(a->vf, h->devid, sizeof(h->devid));
	if (a->state != IOVM_STORE_ATTACHED) {
		why_add(w, "vm %s: vf %s is %s, not attached; wait for it to settle", a->vm, a->vf,
			iovm_store_assign_state_to_string(a->state));
		return;
	}
	if (!v || vms_connect(o, v, &e) < 0) {
		why_add(w, "vm %s: vf %s: cannot reach the VM's QMP socket%s%s", a->vm, a->vf, e.msg[0] ? ": " : "",
			e.msg);
		return;
	}
	if (iovm_vm_live_probe(v->vm, h->devid, timeout_ms, &p, &e) < 0) {
		why_add(w, "%s", e.msg);
		return;
	}
	if (!p.present) {
		why_add(w, "vm %s: vf %s: its QEMU has no device %s", a->vm, a->vf, h->devid);
		return;
	}
	if (iovm_live_choose(asked, &p, &h->mode, no, sizeof(no)) < 0) {
		why_add(w, "vm %s (vf %s, device %s) cannot use --live %s: %s", a->vm, a->vf, h->devid,
			iovm_live_mode_to_string(asked), no);
		return;
	}
	snprintf(h->port, sizeof(h->port), "%s", p.port);
	snprintf(h->failover_pair_id, sizeof(h->failover_pair_id), "%s", p.failover_pair_id);
}

/* Of what netlink reports, what differs from a new VF's defaults: only
 * that is applied again (a rate of 0 set on a PF whose link is still down
 * after the re-create is refused by igb, for nothing). */
static void keep_set(iovm_vfnet_config *c)
{
	static const uint8_t zero[6];

	c->present &= NET_KEPT;
	if (!memcmp(c->mac, zero, sizeof(zero)))
		c->present &= ~(unsigned)IOVM_VFNET_MAC;
	if (!c->vlan && !c->qos)
		c->present &= ~(unsigned)IOVM_VFNET_VLAN;
	if (!c->max_tx_rate)
		c->present &= ~(unsigned)IOVM_VFNET_RATE;
	if (!c->trust)
		c->present &= ~(unsigned)IOVM_VFNET_TRUST;
	if (c->spoofchk)
		c->present &= ~(unsigned)IOVM_VFNET_SPOOFCHK;
}

/* The VF settings each holder keeps: what netlink reports for it now. */
static int plan_net(ops *o, const char *pf, iovm_store_intent_args *args, iovm_error *err)
{
	_cleanup_(iovm_vfnet_closep) iovm_vfnet *nl = NULL;
	iovm_pf info;
	int r;

	r = iovm_pf_get(o->host, pf, &info, err);
	if (r < 0 || !info.netdev[0])
		return r;   /* no netdev: no NIC settings to keep */
	r = iovm_vfnet_open(o->host, &nl, err);
	for (size_t i = 0; r >= 0 && i < args->n_live; i++) {
		iovm_store_live_holder *h = &args->holders[i];

		r = iovm_vfnet_save(nl, pf, h->index, &h->net, err);
		if (r < 0)
			iovm_error_prefix(err, "vm %s: vf %s: reading its settings", h->vm, h->vf);
		keep_set(&h->net);
	}
	return r;
}

/* Every holder of a VF of pf, each with its mode; -EBUSY / -EOPNOTSUPP
 * naming every VM that cannot go through, nothing changed. */
static int plan(ops *o, const char *pf, const iovm_api_request *q, iovm_store_intent_args *args, iovm_error *err)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	iovm_live_mode asked = q->live < 0 ? IOVM_LIVE_AUTO : (iovm_live_mode)q->live;
	why below = {}, cannot = {};
	size_t n = 0;
	int r;

	args->live = asked;
	plan_shares(o, pf, &below);
	r = iovm_store_assignment_list(o->store, NULL, &as, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		iovm_vf vf;

		if (iovm_vf_get(o->host, as[i].vf, &vf, NULL) < 0 || strcmp(vf.pf_addr, pf))
			continue;
		if (vf.index >= q->count) {
			why_add(&below, "vm %s holds vf %s (index %u)", as[i].vm, as[i].vf, vf.index);
			continue;
		}
		if (args->n_live == IOVM_STORE_LIVE_MAX)
			return iovm_error_set(err, -E2BIG, "pf %s: more than %d VMs hold its VFs", q->pf,
					      IOVM_STORE_LIVE_MAX);
		plan_holder(o, &as[i], &vf, asked, live_timeout(o, q), &args->holders[args->n_live++], &cannot);
	}
	if (below.n)
		return iovm_error_set(err, -EBUSY, "pf %s: cannot go to %u VFs: %s; detach first", q->pf, q->count,
				      below.text);
	if (cannot.n)
		return iovm_error_set(err, -EOPNOTSUPP, "pf %s: live resize refused, nothing changed: %s", q->pf,
				      cannot.text);
	return plan_net(o, pf, args, err);
}

struct live_record {
	const iovm_store_pf *want;
	const iovm_store_intent_args *args;
	char object[IOVM_STORE_OBJECT_MAX];
	int64_t *ret_id;
};

/* The desired state, the intent and every holder attaching, in one
 * transaction: while out of QEMU the VF stays theirs. */
static int write_live(iovm_store *s, void *userdata, iovm_error *err)
{
	const struct live_record *w = userdata;
	int r = iovm_store_pf_put(s, w->want, err);

	if (r >= 0)
		r = iovm_store_intent_begin(s, IOVM_INTENT_SET_VFS, w->object, w->args, w->ret_id, err);
	for (size_t i = 0; r >= 0 && i < w->args->n_live; i++)
		r = iovm_store_assignment_set_state(s, w->args->holders[i].vf, IOVM_STORE_ATTACHING, NULL, err);
	return r;
}

static void progress(ops *o, const char *what, const iovm_store_live_holder *h, int done, int total)
{
	char text[192];

	snprintf(text, sizeof(text), "vm %s: vf %s: %s", h->vm, h->vf, what);
	ops_progress(o, text, done, total);
}

/* Gives h its VF back (the same one, or the re-created one at its
 * address). 0, or the error naming VM, VF and cause. */
static int give_back(ops *o, const iovm_store_live_holder *h, bool look_first, int timeout_ms, iovm_error *err)
{
	iovm_live_place p = place_of(h), now;
	vmrec *v = vms_find(o, h->vm);
	int r;

	if (!v || vms_connect(o, v, NULL) < 0)
		return iovm_error_set(err, -ENOTCONN, "vm %s: vf %s: the VM is gone (its QMP socket does not "
				      "answer)", h->vm, h->vf);
	/* Recovery: the last run may have given it back already. */
	if (look_first && iovm_vm_live_probe(v->vm, h->devid, timeout_ms, &now, NULL) >= 0 && now.present &&
	    !now.paused) {
		records_set_assignment(o, h->vf, IOVM_STORE_ATTACHED, NULL);
		return 0;
	}
	r = iovm_vm_live_restore(v->vm, h->vf, &p, h->mode, timeout_ms, err);
	if (r >= 0)
		records_set_assignment(o, h->vf, IOVM_STORE_ATTACHED, NULL);
	return r;
}

/* The VF is not coming back to a VM that is gone: released, as when a VM
 * vanishes (its settings and driver restored, the assignment forgotten). */
static void let_go(ops *o, const iovm_store_live_holder *h, const char *cause)
{
	iovm_error e = {};

	log_warning(0, "vm %s: vf %s: %s; releasing the VF", h->vm, h->vf, cause);
	if (records_restore_vf(o, h->vf, &e) < 0) {
		log_warning(e.code, "vm %s: vf %s: %s; kept reserved", h->vm, h->vf, e.msg);
		records_set_assignment(o, h->vf, IOVM_STORE_RELEASE_PENDING, NULL);
	}
	ops_emit(o, "VF_DETACHED", obj_s(vm_vf_json(h->vm, h->vf), "reason", cause));
}

/* Gives the first n holders their VF back; those whose VM is gone are
 * released. Returns the number that failed with their VM alive (their VF
 * stays attaching, reserved), the first error in err. */
static unsigned give_all_back(ops *o, const iovm_store_intent_args *args, size_t n, bool look_first,
			      int timeout_ms, iovm_error *err)
{
	unsigned failed = 0;

	for (size_t i = 0; i < n; i++) {
		const iovm_store_live_holder *h = &args->holders[i];
		iovm_error e = {};
		vmrec *v;

		progress(o, "giving it back", h, (int)i, (int)n);
		if (give_back(o, h, look_first, timeout_ms, &e) >= 0) {
			log_info("vm %s: vf %s (index %u) back as %s (%s)", h->vm, h->vf, h->index, h->devid,
				 iovm_live_mode_to_string(h->mode));
			continue;
		}
		v = vms_find(o, h->vm);
		if (!v || !v->vm || !iovm_vm_is_alive(v->vm)) {
			let_go(o, h, e.msg);
			continue;
		}
		log_error(e.code, "%s; the VF stays reserved for the VM", e.msg);
		if (!failed++ && err)
			*err = e;
	}
	return failed;
}

/* Takes every VF out from under its guest. On a failure the ones taken
 * are given back (nothing re-created yet) and the error names the VM. */
static int release_all(ops *o, const iovm_store_intent_args *args, int timeout_ms, iovm_error *err)
{
	for (size_t i = 0; i < args->n_live; i++) {
		const iovm_store_live_holder *h = &args->holders[i];
		iovm_live_place p = place_of(h);
		vmrec *v = vms_find(o, h->vm);
		int r;

		progress(o, h->mode == IOVM_LIVE_PAUSE ? "pausing" : "unplugging", h, (int)i, (int)args->n_live);
		if (!v)
			r = iovm_error_set(err, -ENOENT, "vm %s: vf %s: the VM is no longer registered", h->vm, h->vf);
		else if ((r = vms_connect(o, v, err)) < 0)
			iovm_error_prefix(err, "vm %s: vf %s: cannot reach the VM", h->vm, h->vf);
		else
			r = iovm_vm_live_release(v->vm, h->vf, &p, h->mode, timeout_ms, err);
		if (r >= 0) {
			log_debug("live resize: vm %s: vf %s released (%s)", h->vm, h->vf,
				  iovm_live_mode_to_string(h->mode));
			continue;
		}
		/* The ones before go back where they were; this one is still
		 * in its VM unless its guest is letting go late. */
		give_all_back(o, args, i, false, timeout_ms, NULL);
		records_set_assignment(o, h->vf, r == -ETIMEDOUT ? IOVM_STORE_RELEASE_PENDING : IOVM_STORE_ATTACHED,
				       NULL);
		for (size_t j = i + 1; j < args->n_live; j++)
			records_set_assignment(o, args->holders[j].vf, IOVM_STORE_ATTACHED, NULL);
		return r;
	}
	return 0;
}

/* Each held index is where it was: the re-created VF has the address the
 * assignment is keyed by (offset and stride), as its virtfn link says. */
static int check_addresses(ops *o, const char *pf, const iovm_store_intent_args *args, iovm_error *err)
{
	for (size_t i = 0; i < args->n_live; i++) {
		const iovm_store_live_holder *h = &args->holders[i];
		iovm_vf vf;
		int r = iovm_vf_by_index(o->host, pf, h->index, &vf, err);

		if (r >= 0 && strcmp(vf.addr, h->vf))
			r = iovm_error_set(err, -EIO, "vf %u of pf %s is %s after the re-create, not %s", h->index, pf,
					   vf.addr, h->vf);
		if (r < 0)
			return iovm_error_prefix(err, "vm %s: vf %s", h->vm, h->vf);
	}
	return 0;
}

/* The stored settings of every VF, then each holder's kept ones. A
 * failure does not keep the VFs from their VMs: it is reported (the
 * first in err) once they are back. */
static int reapply(ops *o, const char *pf, const iovm_store_intent_args *args, iovm_error *err)
{
	_cleanup_(iovm_vfnet_closep) iovm_vfnet *nl = NULL;
	int r = cmd_apply_vf_configs(o, pf, args->count, err), first = r < 0 ? r : 0;

	if (r < 0)
		log_error(err->code, "pf %s: applying the stored VF settings: %s", pf, err->msg);
	for (size_t i = 0; i < args->n_live; i++) {
		const iovm_store_live_holder *h = &args->holders[i];
		iovm_error e = {};

		if (!h->net.present)
			continue;
		r = nl ? 0 : iovm_vfnet_open(o->host, &nl, &e);
		if (r >= 0)
			r = iovm_vfnet_set(nl, pf, h->index, &h->net, h->net.present, &e);
		if (r >= 0)
			continue;
		iovm_error_prefix(&e, "vm %s: vf %s: its settings", h->vm, h->vf);
		log_error(e.code, "%s", e.msg);
		if (!first) {
			first = r;
			*err = e;
		}
	}
	return first;
}

/* The VFs that no VM holds, on the PF's driver, once the held ones are
 * back (a failure is reported, first in err if given: the VMs have their
 * VFs all the same). */
static int bind_the_others(ops *o, const char *pf, const char *driver, const iovm_store_intent_args *args,
			   iovm_error *err)
{
	const char *skip[IOVM_STORE_LIVE_MAX];
	iovm_error e = {};
	int r;

	for (size_t i = 0; i < args->n_live; i++)
		skip[i] = args->holders[i].vf;
	r = iovm_pf_bind_vfs(o->host, pf, naming_driver_kind(driver), skip, args->n_live, &e);
	if (r < 0) {
		log_error(e.code, "pf %s: the VFs no VM holds: %s", pf, e.msg);
		if (err)
			*err = e;
	}
	log_debug("live resize: pf %s: the other VFs bound", pf);
	return r;
}

/* The paused VFs were resumed before the PF had its link back: their guest
 * drivers looked at the link then, found none, and the PF's announcement
 * of it may have reached them while they were still re-initialising.
 * Once the PF has carrier, each is nudged to look again (at most
 * CARRIER_WAIT_MS, not longer than the operation's timeout). */
static void nudge_on_carrier(ops *o, const char *pf, const iovm_store_intent_args *args, int timeout_ms)
{
	iovm_error e = {};
	size_t n_paused = 0;
	int wait_ms, r;

	for (size_t i = 0; i < args->n_live; i++)
		n_paused += args->holders[i].mode == IOVM_LIVE_PAUSE;
	if (!n_paused)
		return;
	wait_ms = timeout_ms < CARRIER_WAIT_MS ? timeout_ms : CARRIER_WAIT_MS;
	r = iovm_pf_wait_carrier(o->host, pf, wait_ms, &e);
	if (r <= 0) {
		if (r == 0)
			log_info("pf %s: no carrier %d ms after the re-create; the guests find their link "
				 "by themselves", pf, wait_ms);
		else
			log_debug("live resize: %s", e.msg);
		return;
	}
	log_debug("live resize: pf %s: carrier back", pf);
	for (size_t i = 0; i < args->n_live; i++) {
		const iovm_store_live_holder *h = &args->holders[i];
		vmrec *v = vms_find(o, h->vm);

		if (h->mode != IOVM_LIVE_PAUSE || !v || !v->vm)
			continue;
		e = (iovm_error){};
		r = iovm_vm_live_nudge(v->vm, h->devid, timeout_ms, &e);
		if (r == -EOPNOTSUPP)
			log_debug("live resize: %s", e.msg);
		else if (r < 0)
			log_warning(e.code, "%s; the guest finds its link by itself", e.msg);
		else
			log_debug("live resize: vm %s: device %s nudged", h->vm, h->devid);
	}
}

/* The PF at args->count VFs (through 0), the settings back, the VFs back
 * in their VMs. Returns how many VMs could not take theirs back, or a
 * negative errno if the VFs could not be re-created as they were. Settings
 * that did not apply (the VFs back all the same) go to ret_net_err. */
static int recreate_and_give_back(ops *o, const char *pf, const char *driver, const iovm_store_intent_args *args,
				  int64_t id, bool recreate, bool had_carrier, int timeout_ms, iovm_error *err,
				  iovm_error *ret_net_err)
{
	iovm_error net_err = {};
	unsigned failed;
	int r;

	if (recreate) {
		/* Unbound: the held VFs go to vfio-pci and back to their VMs
		 * first, and no host driver probes a VF only to let it go. */
		r = iovm_pf_remove_vfs(o->host, pf, 0, err);
		if (r >= 0) {
			log_debug("live resize: pf %s: VFs removed", pf);
			r = iovm_pf_set_numvfs(o->host, pf, args->count, IOVM_VF_DRIVER_NONE, 0, err);
		}
		if (r < 0)
			return iovm_error_prefix(err, "pf %s: re-creating %u VFs", pf, args->count);
		log_debug("live resize: pf %s: %u VFs re-created", pf, args->count);
		records_step(o, id, "numvfs");
		iovmd_crash_point(OP, "numvfs");
	}
	kernel_invalidate(o);
	r = check_addresses(o, pf, args, err);
	if (r < 0)
		return r;
	r = reapply(o, pf, args, &net_err);
	log_debug("live resize: pf %s: settings applied", pf);
	records_step(o, id, "configured");
	iovmd_crash_point(OP, "configured");
	failed = give_all_back(o, args, args->n_live, !recreate, timeout_ms, err);
	log_debug("live resize: pf %s: VFs given back (%u failed)", pf, failed);
	/* Before the others are probed: the guests are waiting. */
	if (had_carrier)
		nudge_on_carrier(o, pf, args, timeout_ms);
	if (bind_the_others(o, pf, driver, args, r < 0 ? NULL : &net_err) < 0 && r >= 0)
		r = -EIO;
	if (failed)
		return (int)failed;
	if (r < 0)
		*ret_net_err = net_err;
	return 0;
}

static json_object *holders_json(const iovm_store_intent_args *args)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < args->n_live; i++) {
		const iovm_store_live_holder *h = &args->holders[i];
		json_object *j = obj_s(vm_vf_json(h->vm, h->vf), "devid", h->devid);

		json_object_object_add(j, "index", json_object_new_int((int)h->index));
		obj_s(j, "mode", iovm_live_mode_to_string(h->mode));
		json_object_array_add(arr, j);
	}
	return arr;
}

json_object *cmd_set_vfs_live(ops *o, const iovm_api_request *q, const iovm_store_pf *want,
			      const iovm_store_pf *before, iovm_error *err)
{
	static iovm_store_intent_args args;   /* large: off the ops thread's stack */
	int timeout_ms = live_timeout(o, q);
	struct live_record w = { .want = want, .args = &args };
	iovm_error net_err = {};
	json_object *ret, *ev;
	iovm_pf info;
	int64_t id = 0;
	bool had_carrier;
	int r;

	args = (iovm_store_intent_args){ .count = q->count };
	snprintf(args.driver, sizeof(args.driver), "%s", want->driver);
	if (iovm_pf_get(o->host, want->pf, &info, err) < 0)
		return NULL;
	args.from = info.num_vfs;
	if (plan(o, want->pf, q, &args, err) < 0)
		return NULL;
	snprintf(w.object, sizeof(w.object), "pf %s", want->pf);
	w.ret_id = &id;
	if (iovm_store_transaction(o->store, write_live, &w, err) < 0) {
		iovm_error_prefix(err, "pf %s: the state db did not take the live resize; nothing done", q->pf);
		return NULL;
	}
	o->intent = id;
	o->op = OP;
	iovmd_crash_point(OP, "intent");
	/* A PF without carrier now will not get it from the re-create. */
	had_carrier = iovm_pf_wait_carrier(o->host, want->pf, 0, NULL) == 1;
	if (release_all(o, &args, timeout_ms, err) < 0) {
		iovm_error r0 = {};

		r = before ? iovm_store_pf_put(o->store, before, &r0) : iovm_store_pf_delete(o->store, want->pf, &r0);
		if (r < 0)
			log_error(r0.code, "pf %s: putting back the desired state: %s", want->pf, r0.msg);
		records_finish(o, id, IOVM_INTENT_ROLLED_BACK);
		iovm_error_prefix(err, "pf %s: live resize rolled back, VF count unchanged", q->pf);
		return NULL;
	}
	records_step(o, id, "released");
	iovmd_crash_point(OP, "released");
	r = recreate_and_give_back(o, want->pf, want->driver, &args, id, true, had_carrier, timeout_ms, err,
				   &net_err);
	if (r != 0) {
		/* Left open: the journal says which VMs wait for their VF, and
		 * recovery at the next start tries again. */
		records_step(o, id, r < 0 ? "recreate-failed" : "restore-failed");
		iovm_error_prefix(err, "pf %s: live resize to %u VFs incomplete", q->pf, q->count);
		return NULL;
	}
	records_step(o, id, "restored");
	iovmd_crash_point(OP, "restored");
	records_finish(o, id, IOVM_INTENT_DONE);
	iovmd_crash_point(OP, "done");
	if (net_err.code) {
		*err = net_err;
		iovm_error_prefix(err, "pf %s: %u VFs and every VM has its VF back; not applied", q->pf, q->count);
		return NULL;
	}
	ev = obj_s(obj_s(json_object_new_object(), "pf", want->pf), "driver", want->driver);
	json_object_object_add(ev, "num_vfs", json_object_new_int((int)q->count));
	json_object_object_add(ev, "live", holders_json(&args));
	ops_emit(o, "VFS_CHANGED", ev);
	if (iovm_pf_get(o->host, want->pf, &info, err) < 0)
		return NULL;
	ret = snapshot_pf_json(o, &info, NULL, -1, false);
	if (ret)
		json_object_object_add(ret, "live", holders_json(&args));
	return ret;
}

/* An open live set-vfs (recovery, before the holders are settled): each
 * VF still in its VM is taken out, the PF re-created unless the journal
 * says it was and the count is right, and every VF given back. */
void live_recover(ops *o, const iovm_store_intent *in)
{
	static iovm_store_intent_args args;
	iovm_error net_err = {};
	char pf[IOVM_STORE_ADDR_MAX] = "";
	bool recreate = !in->step[0] || !strcmp(in->step, "released") || !strcmp(in->step, "recreate-failed");
	iovm_store_pf want;
	iovm_error err = {};
	iovm_pf info;
	int r;

	args = in->args;
	if (sscanf(in->object, "pf %15s", pf) != 1 || iovm_store_pf_get(o->store, pf, &want, NULL) < 0 ||
	    iovm_pf_get(o->host, pf, &info, &err) < 0) {
		log_error(err.code, "recovery: intent %lld (%s): cannot tell its PF: %s", (long long)in->id, in->object,
			  err.msg);
		records_finish(o, in->id, IOVM_INTENT_ROLLED_BACK);
		return;
	}
	log_info("recovery: intent %lld: live resize of pf %s to %u VFs, last step '%s': finishing it",
		 (long long)in->id, pf, args.count, in->step[0] ? in->step : "intent");
	if (info.num_vfs != args.count)
		recreate = true;
	for (size_t i = 0; recreate && i < args.n_live; i++) {
		iovm_store_live_holder *h = &args.holders[i];
		iovm_live_place p = place_of(h);
		vmrec *v = vms_find(o, h->vm);

		if (!v || vms_connect(o, v, NULL) < 0 ||
		    iovm_vm_live_probe(v->vm, h->devid, CONNECT_TIMEOUT_MS, &p, NULL) < 0)
			continue;   /* gone: let go once the VF is re-created */
		/* Still in the guest (present, not paused): take it out now. */
		r = p.present && !p.paused ? iovm_vm_live_release(v->vm, h->vf, &p, h->mode,
								  o->d->cfg.detach_timeout_ms, &err) : 0;
		if (r < 0)
			log_error(err.code, "recovery: %s", err.msg);
	}
	r = recreate_and_give_back(o, pf, want.driver, &args, in->id, recreate, true, o->d->cfg.detach_timeout_ms, &err,
				   &net_err);
	if (net_err.code)
		log_error(net_err.code, "recovery: pf %s: %s", pf, net_err.msg);
	if (r < 0)
		log_error(err.code, "recovery: pf %s: %s", pf, err.msg);
	else if (r > 0)
		log_error(err.code, "recovery: pf %s: %d VM(s) did not take their VF back, first: %s", pf, r, err.msg);
	records_finish(o, in->id, r == 0 ? IOVM_INTENT_DONE : IOVM_INTENT_ROLLED_BACK);
	log_info("recovery: intent %lld (live resize of pf %s) %s", (long long)in->id, pf,
		 r == 0 ? "completed" : "closed incomplete");
}
