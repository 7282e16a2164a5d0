/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * detach: a VF out of a VM (device_del, wait for the guest to let go, the
 * VF's settings and driver restored), or a VM's share of a VF ended.
 * Journaled: intent -> device-del -> deleted -> released -> done.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovm/shared.h"
#include "iovmd/crash.h"
#include "iovmd/ops.h"
#include "shared/util.h"

static int detach_timeout(ops *o, const iovm_api_request *q)
{
	return q->timeout_ms > 0 ? q->timeout_ms : o->d->cfg.detach_timeout_ms;
}

/* The guest does not let go (or the VM cannot be reached): the VF waits
 * for it, RELEASE_PENDING. */
static void release_pending(ops *o, const char *vm, const char *vf, const char *reason)
{
	ops_emit(o, "VF_RELEASE_PENDING", obj_s(vm_vf_json(vm, vf), "reason", reason));
}

static json_object *detached(ops *o, const char *vm, const char *vf)
{
	ops_emit(o, "VF_DETACHED", vm_vf_json(vm, vf));
	return vm_vf_json(vm, vf);
}

static json_object *detach_shared(ops *o, vmrec *v, const iovm_api_request *q, const char *vf,
				  iovm_error *err)
{
	iovm_store_intent_args args = records_vm_args(v->info.name, IOVM_MODE_SHARED, NULL);
	char object[IOVM_STORE_OBJECT_MAX];
	const char *vm = v->info.name;
	int64_t id = 0;
	int r;

	snprintf(object, sizeof(object), "vf %s", vf);
	if (iovm_store_intent_begin(o->store, IOVM_INTENT_DETACH, object, &args, &id, err) < 0)
		return NULL;
	o->intent = id;
	o->op = "detach";
	records_set_share(o, vf, vm, IOVM_STORE_DETACHING, NULL, NULL);
	iovmd_crash_point("detach", "intent");
	if (vms_connect(o, v, NULL) < 0) {
		records_finish(o, id, IOVM_INTENT_ROLLED_BACK);
		records_set_share(o, vf, vm, IOVM_STORE_RELEASE_PENDING, NULL, NULL);
		iovm_error_set(err, -ECONNREFUSED, "vm %s: cannot reach its QMP socket %s; its share of vf %s "
			       "ends when the VM is found gone", vm, v->info.qmp, vf);
		return NULL;
	}
	iovmd_crash_point("detach", "device-del");
	r = iovm_vm_detach_shared(v->vm, vf, detach_timeout(o, q), err);
	if (r < 0 && r != -ENOENT) {
		records_finish(o, id, IOVM_INTENT_DONE);
		records_set_share(o, vf, vm, IOVM_STORE_RELEASE_PENDING, NULL, NULL);
		release_pending(o, vm, vf, err->msg);
		return NULL;
	}
	iovmd_crash_point("detach", "released");
	records_release_share(o, vf, vm);
	records_finish(o, id, IOVM_INTENT_DONE);
	iovmd_crash_point("detach", "done");
	log_info("vm %s: no longer shares vf %s", vm, vf);
	return detached(o, vm, vf);
}

/* The VF to detach: the one named, or the only one the VM holds. */
static int detach_which(ops *o, const iovm_api_request *q, char vfaddr[static IOVM_STORE_ADDR_MAX],
			iovm_error *err)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	_cleanup_free_ iovm_store_share *shs = NULL;
	size_t n = 0, ns = 0;
	iovm_vf vf;
	int r;

	if (q->vf[0]) {
		r = naming_resolve_vf(o, q->vf, &vf, err);
		if (r >= 0)
			snprintf(vfaddr, IOVM_STORE_ADDR_MAX, "%s", vf.addr);
		return r;
	}
	r = iovm_store_assignment_list(o->store, q->vm, &as, &n, err);
	if (r >= 0)
		r = iovm_store_share_list(o->store, NULL, q->vm, &shs, &ns, err);
	if (r < 0)
		return r;
	if (n + ns != 1)
		return iovm_error_set(err, n + ns ? -EINVAL : -ENOENT, "vm %s: %s; name the VF with 'vf'", q->vm,
				      n + ns ? "holds several VFs" : "holds no VF");
	snprintf(vfaddr, IOVM_STORE_ADDR_MAX, "%s", n ? as[0].vf : shs[0].vf);
	return 0;
}

struct detach_record {
	const iovm_store_assignment *a;
	iovm_store_intent_args args;
	char object[IOVM_STORE_OBJECT_MAX];
	int64_t *ret_id;
};

static int write_detach(iovm_store *s, void *userdata, iovm_error *err)
{
	const struct detach_record *w = userdata;
	int r = iovm_store_intent_begin(s, IOVM_INTENT_DETACH, w->object, &w->args, w->ret_id, err);

	return r < 0 ? r : iovm_store_assignment_set_state(s, w->a->vf, IOVM_STORE_DETACHING, NULL, err);
}

/* The intent and the DETACHING state, in one transaction. */
static int journal_detach(ops *o, const iovm_store_assignment *a, int64_t *ret_id, iovm_error *err)
{
	struct detach_record w = { .a = a, .args = records_vm_args(a->vm, IOVM_MODE_EXCLUSIVE, a->devid),
				   .ret_id = ret_id };
	int r;

	snprintf(w.object, sizeof(w.object), "vf %s", a->vf);
	r = iovm_store_transaction(o->store, write_detach, &w, err);
	if (r < 0)
		return iovm_error_prefix(err, "vf %s: the state db did not take the detach; nothing done", a->vf);
	return 0;
}

static json_object *detach_exclusive(ops *o, vmrec *v, const iovm_api_request *q, const iovm_store_assignment *a,
				     iovm_error *err)
{
	const char *vf = a->vf;
	int64_t id = 0;

	if (journal_detach(o, a, &id, err) < 0)
		return NULL;
	o->intent = id;
	o->op = "detach";
	iovmd_crash_point("detach", "intent");
	log_debug("detach: vm %s: vf %s journalled (intent %lld)", q->vm, vf, (long long)id);
	if (!v->vm && vms_connect(o, v, NULL) < 0) {
		/* The VM is not there. The VF stays detaching, still in the
		 * guest as far as anyone knows: a detach retried once the VM
		 * answers takes it out, and recovery at the next start finishes
		 * the detach or, QEMU gone, gives the VF back. */
		records_finish(o, id, IOVM_INTENT_ROLLED_BACK);
		iovm_error_set(err, -ECONNREFUSED, "vm %s: cannot reach its QMP socket %s; vf %s stays "
			       "detaching until the VM answers or is found gone", q->vm, v->info.qmp, vf);
		return NULL;
	}
	if (iovm_vm_detach(v->vm, vf, detach_timeout(o, q), err) < 0) {
		iovm_store_assignment b = *a;

		/* The detach is over: a VF still held waits, release-pending. */
		records_finish(o, id, IOVM_INTENT_DONE);
		b.state = IOVM_STORE_DETACHING;
		if (views_record(o, &b, true, NULL)) {
			records_set_assignment(o, vf, IOVM_STORE_RELEASE_PENDING, NULL);
			release_pending(o, q->vm, vf, err->msg);
		}
		return NULL;
	}
	log_debug("detach: vm %s: vf %s out of the guest", q->vm, vf);
	records_begin(o, "detach");
	records_release(o, vf);
	records_finish(o, id, IOVM_INTENT_DONE);
	records_commit(o);
	iovmd_crash_point("detach", "done");
	log_info("vm %s: vf %s detached", q->vm, vf);
	return detached(o, q->vm, vf);
}

json_object *cmd_detach(ops *o, const iovm_api_request *q, iovm_error *err)
{
	char vfaddr[IOVM_STORE_ADDR_MAX];
	iovm_store_assignment a;
	iovm_store_share sh;
	vmrec *v = vms_find(o, q->vm);

	if (!v) {
		iovm_error_set(err, -ENOENT, "vm %s: not registered", q->vm);
		return NULL;
	}
	if (detach_which(o, q, vfaddr, err) < 0)
		return NULL;
	if (iovm_store_share_get(o->store, vfaddr, q->vm, &sh, NULL) == 0)
		return detach_shared(o, v, q, vfaddr, err);
	if (iovm_store_assignment_get(o->store, vfaddr, &a, NULL) < 0 || strcmp(a.vm, q->vm)) {
		iovm_error_set(err, -ENOENT, "vm %s: vf %s is not attached to it", q->vm, vfaddr);
		return NULL;
	}
	return detach_exclusive(o, v, q, &a, err);
}
