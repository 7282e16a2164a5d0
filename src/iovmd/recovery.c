/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Start-up recovery (docs/iovmd.md, "Recovery at start-up"), before the
 * socket opens: every holder checked against its VM, saved settings
 * without a holder restored, the desired PF state re-applied, and every
 * open intent closed as done or rolled back.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovm/shared.h"
#include "iovm/vfnet.h"
#include "iovmd/ops.h"
#include "shared/util.h"

/* Is the device in the VM? 1 yes, 0 no, < 0 cannot tell (VM unreachable). */
static int device_in_vm(ops *o, vmrec *v, const char *devid)
{
	char port[IOVM_VM_ID_MAX];
	json_object *pci = NULL;
	int r;

	if (!v || vms_connect(o, v, NULL) < 0)
		return -ECONNREFUSED;
	r = iovm_qmp_execute(iovm_vm_get_qmp(v->vm), "query-pci", NULL, &pci, CONNECT_TIMEOUT_MS, NULL);
	if (r < 0)
		return r;
	r = iovm_vm_pci_find(pci, devid, port, sizeof(port));
	json_object_put(pci);
	return r == 0 ? 1 : 0;
}

/* The device is in the VM and the assignment was being detached: finish
 * the detach (the pool, derived from the store before recovery, has the
 * VF waiting for its guest); a guest that does not let go leaves it
 * RELEASE_PENDING. */
static void finish_detach(ops *o, vmrec *v, const iovm_store_assignment *a)
{
	iovm_error err = {};

	log_info("recovery: vf %s: finishing its detach from vm %s", a->vf, a->vm);
	if (iovm_vm_detach(v->vm, a->vf, o->d->cfg.detach_timeout_ms, &err) < 0) {
		log_warning(err.code, "recovery: vf %s: %s", a->vf, err.msg);
		records_set_assignment(o, a->vf, IOVM_STORE_RELEASE_PENDING, NULL);
		return;
	}
	records_release(o, a->vf);
}

/* Rule 1, exclusive holders. */
static void recover_assignment(ops *o, const iovm_store_assignment *a)
{
	vmrec *v = vms_find(o, a->vm);
	iovm_error err = {};
	int in;

	if (migrate_out_holds(o, a->vm, a->vf)) {
		log_info("recovery: vf %s stays out of vm %s for its migration", a->vf, a->vm);
		return;
	}
	in = a->devid[0] ? device_in_vm(o, v, a->devid) : 0;
	if (in == 1 && a->state == IOVM_STORE_DETACHING) {
		finish_detach(o, v, a);
		return;
	}
	if (in == 1) {
		records_set_assignment(o, a->vf, IOVM_STORE_ATTACHED, NULL);
		if (a->state != IOVM_STORE_ATTACHED)
			log_info("recovery: vf %s is in vm %s: attach completed", a->vf, a->vm);
		return;
	}
	/* Not in the VM (never got there, or left), or the VM is gone. */
	if (in < 0)
		log_info("recovery: vm %s unreachable: reclaiming vf %s", a->vm, a->vf);
	else
		log_info("recovery: vf %s is not in vm %s: giving it back", a->vf, a->vm);
	if (records_restore_vf(o, a->vf, &err) < 0) {
		log_warning(err.code, "recovery: vf %s: %s; kept reserved", a->vf, err.msg);
		records_set_assignment(o, a->vf, IOVM_STORE_RELEASE_PENDING, NULL);
	}
}

/* A share the VM no longer has: what a half-made one may have left (a
 * device, a macvtap) goes too. */
static void end_share(ops *o, vmrec *v, const iovm_store_share *sh)
{
	iovm_error err = {};
	int r;

	log_info("recovery: vm %s no longer has its share of vf %s: ending it", sh->vm, sh->vf);
	if (v && v->vm && (r = iovm_vm_detach_shared(v->vm, sh->vf, 1000, &err)) < 0 && r != -ENOENT)
		log_debug("recovery: vf %s: no device of vm %s to remove: %s (%s)", sh->vf, sh->vm, err.msg,
			  strerror(-r));
	err = (iovm_error){};
	if ((r = iovm_shared_reclaim(sh->vm, sh->vf, &err)) < 0)
		log_warning(err.code, "recovery: vf %s: deleting vm %s's macvtap: %s", sh->vf, sh->vm, err.msg);
}

/* Rule 1, sharers: kept if the VM still has the device, else ended. */
static void recover_share(ops *o, const iovm_store_share *sh)
{
	_cleanup_free_ iovm_shared_entry *in = NULL;
	vmrec *v = vms_find(o, sh->vm);
	iovm_error err = {};
	size_t n = 0;
	bool present = false;

	if (v && vms_connect(o, v, NULL) == 0 && iovm_vm_shared_list(v->vm, &in, &n, NULL) == 0)
		for (size_t i = 0; i < n; i++)
			present |= !strcmp(in[i].vf, sh->vf);
	if (present && sh->state != IOVM_STORE_DETACHING) {
		records_set_share(o, sh->vf, sh->vm, IOVM_STORE_ATTACHED, NULL, NULL);
		return;
	}
	if (!present) {
		end_share(o, v, sh);
	} else {
		log_info("recovery: vf %s: finishing vm %s's unshare", sh->vf, sh->vm);
		if (iovm_vm_detach_shared(v->vm, sh->vf, o->d->cfg.detach_timeout_ms, &err) < 0 &&
		    err.code != -ENOENT) {
			log_warning(err.code, "recovery: %s", err.msg);
			records_set_share(o, sh->vf, sh->vm, IOVM_STORE_RELEASE_PENDING, NULL, NULL);
			return;
		}
	}
	records_release_share(o, sh->vf, sh->vm);
}

static int recover_holders(ops *o, iovm_error *err)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	_cleanup_free_ iovm_store_share *shs = NULL;
	size_t na = 0, nsh = 0;
	int r;

	r = iovm_store_assignment_list(o->store, NULL, &as, &na, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < na; i++)
		recover_assignment(o, &as[i]);
	r = iovm_store_share_list(o->store, NULL, NULL, &shs, &nsh, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < nsh; i++)
		recover_share(o, &shs[i]);
	return 0;
}

/* Rule 2: settings saved for a VF nobody holds any more. */
static void recover_saved(ops *o, const iovm_store_vf_saved *sv)
{
	iovm_store_assignment a;
	iovm_error err = {};

	if (iovm_store_assignment_get(o->store, sv->vf, &a, NULL) == 0)
		return;
	log_info("recovery: vf %s has saved settings but no assignment: restoring", sv->vf);
	if (records_restore_vf(o, sv->vf, &err) < 0)
		log_warning(err.code, "recovery: %s", err.msg);
}

/* Rule 3 for one PF: after a host reboot its VFs are gone. */
static void recover_pf(ops *o, const iovm_store_pf *want)
{
	iovm_store_assignment a;
	iovm_error err = {};
	iovm_pf info;

	if (iovm_pf_get(o->host, want->pf, &info, &err) < 0) {
		log_warning(err.code, "recovery: desired state for %s: %s", want->pf, err.msg);
		return;
	}
	if (info.num_vfs == want->num_vfs)
		return;
	if (naming_assigned_vf_of_pf(o, want->pf, &a)) {
		log_warning(0, "recovery: pf %s has %u VFs, %u desired, but vf %s is in vm %s: not resizing",
			    want->pf, info.num_vfs, want->num_vfs, a.vf, a.vm);
		return;
	}
	log_info("recovery: pf %s has %u VFs, %u desired: re-applying", want->pf, info.num_vfs, want->num_vfs);
	if (iovm_pf_set_numvfs(o->host, want->pf, want->num_vfs, naming_driver_kind(want->driver), 0, &err) < 0 ||
	    cmd_apply_vf_configs(o, want->pf, want->num_vfs, &err) < 0)
		log_error(err.code, "recovery: pf %s: %s", want->pf, err.msg);
}

/* Did the intent reach what it asked for? (set-vfs: its desired state
 * was re-applied by rule 3.) */
static bool intent_done(ops *o, const iovm_store_intent *in)
{
	char vf[IOVM_STORE_ADDR_MAX] = "";
	const char *vm = in->args.vm;
	bool shared = in->args.mode == IOVM_MODE_SHARED;
	iovm_store_assignment a;
	iovm_store_share sh;

	if ((in->kind == IOVM_INTENT_ATTACH || in->kind == IOVM_INTENT_DETACH) && in->args_error[0]) {
		/* Which holder it was is unknown; the VF itself was settled
		 * from its records above. */
		log_warning(-EBADMSG, "recovery: intent %lld (%s %s): stored arguments unreadable: %s",
			    (long long)in->id, iovm_store_intent_kind_to_string(in->kind), in->object,
			    in->args_error);
		return false;
	}
	if (in->kind == IOVM_INTENT_ATTACH && sscanf(in->object, "vf %15s", vf) == 1)
		return shared ? iovm_store_share_get(o->store, vf, vm, &sh, NULL) == 0 &&
				sh.state == IOVM_STORE_ATTACHED
			      : iovm_store_assignment_get(o->store, vf, &a, NULL) == 0 &&
				a.state == IOVM_STORE_ATTACHED;
	if (in->kind == IOVM_INTENT_DETACH && sscanf(in->object, "vf %15s", vf) == 1)
		return shared ? iovm_store_share_get(o->store, vf, vm, &sh, NULL) < 0
			      : iovm_store_assignment_get(o->store, vf, &a, NULL) < 0;
	return true;
}

static bool is_live(const iovm_store_intent *in)
{
	return in->kind == IOVM_INTENT_SET_VFS && !in->args_error[0] && in->args.n_live > 0;
}

/* Rule 4: every open intent is now settled by the above (a live resize
 * closed itself). */
static void recover_intents(ops *o, const iovm_store_intent *open, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		bool done;

		if (is_live(&open[i]))
			continue;
		done = intent_done(o, &open[i]);

		records_finish(o, open[i].id, done ? IOVM_INTENT_DONE : IOVM_INTENT_ROLLED_BACK);
		log_info("recovery: intent %lld (%s %s, last step '%s') %s", (long long)open[i].id,
			 iovm_store_intent_kind_to_string(open[i].kind), open[i].object, open[i].step,
			 done ? "completed" : "rolled back");
	}
}

/* Runs with the views derived from the store as it was left (ops_init). */
int recover(ops *o, iovm_error *err)
{
	_cleanup_free_ iovm_store_intent *open = NULL;
	_cleanup_free_ iovm_store_vf_saved *sv = NULL;
	_cleanup_free_ iovm_store_pf *pfs = NULL;
	size_t ni = 0, ns = 0, np = 0;
	int r;

	/* The intents open before anything is settled. A live resize goes
	 * first: its holders are out of their VMs by design until it ends. */
	r = iovm_store_intent_list_open(o->store, &open, &ni, err);
	for (size_t i = 0; r >= 0 && i < ni; i++)
		if (is_live(&open[i]))
			live_recover(o, &open[i]);
	/* So are the VFs that migrate-prepare took out. */
	if (r >= 0)
		migrate_out_recover(o);
	if (r >= 0)
		r = recover_holders(o, err);
	if (r >= 0)
		r = iovm_store_vf_saved_list(o->store, &sv, &ns, err);
	for (size_t i = 0; r >= 0 && i < ns; i++)
		recover_saved(o, &sv[i]);
	if (r >= 0)
		r = iovm_store_pf_list(o->store, &pfs, &np, err);
	for (size_t i = 0; r >= 0 && i < np; i++)
		recover_pf(o, &pfs[i]);
	if (r < 0)
		return r;
	recover_intents(o, open, ni);
	return 0;
}
