/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VMs iovmd knows: their records, their QMP connections (with back-off
 * from a VM that is not running), and what happens when one goes away. */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/shared.h"
#include "iovmd/crash.h"
#include "iovmd/ops.h"
#include "shared/clock.h"
#include "shared/util.h"

vmrec *vms_find(ops *o, const char *name)
{
	for (vmrec *v = o->vms; v; v = v->next)
		if (!strcmp(v->info.name, name))
			return v;
	return NULL;
}

/* A new record at the head of the list, known to the policy. */
vmrec *vms_add(ops *o, const iovm_store_vm *rec)
{
	vmrec *v = calloc(1, sizeof(*v));

	if (!v)
		return NULL;
	v->info = *rec;
	v->next = o->vms;
	o->vms = v;
	mirror_add_vm(o, &v->info);
	return v;
}

static vmrec *vm_free(vmrec *v)
{
	vmrec *next = v->next;

	iovm_vm_free(v->vm);
	free(v);
	return next;
}

/* Forgets a VM: its record in the store, the policy and here. */
int vms_remove(ops *o, const char *name, iovm_error *err)
{
	iovm_error perr = {};
	vmrec **pp;
	int r;

	for (pp = &o->vms; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->info.name, name))
			break;
	if (!*pp)
		return iovm_error_set(err, -ENOENT, "vm %s: not registered", name);
	r = iovm_store_vm_delete(o->store, name, err);
	if (r < 0)
		return r;
	if (iovm_policy_vm_remove(o->pol, name, &perr) < 0)
		log_warning(perr.code, "policy: vm %s: %s", name, perr.msg);
	*pp = vm_free(*pp);
	return 0;
}

void vms_free_all(ops *o)
{
	while (o->vms)
		o->vms = vm_free(o->vms);
}

/* Every step an attach or detach records: journaled (then maybe the crash
 * point) and reported as progress. */
static void step_hook(iovm_vm *vm, const char *vf, const char *step, void *userdata)
{
	ops *o = userdata;
	char text[160];

	if (o->intent > 0) {
		records_step(o, o->intent, step);
		iovmd_crash_point(o->op, step);
	}
	snprintf(text, sizeof(text), "vf %s: %s", vf, step);
	ops_progress(o, text, 0, 0);
	log_debug("vm %s: vf %s: %s", iovm_vm_name(vm), vf, step);
}

int vms_connect(ops *o, vmrec *v, iovm_error *err)
{
	int r;

	assert(v);
	if (v->vm && iovm_vm_is_alive(v->vm))
		return 0;
	v->vm = iovm_vm_free(v->vm);
	r = iovm_vm_open(v->info.name, v->info.qmp, o->host, o->pool, CONNECT_TIMEOUT_MS, &v->vm, err);
	if (r < 0) {
		/* Back off (up to a minute) from a VM that is not running. */
		int64_t delay = (int64_t)o->d->cfg.refresh_interval_ms << (v->failures < 6 ? v->failures : 6);

		v->vm = NULL;
		v->failures++;
		v->next_try_ms = now_ms() + (delay < 60000 ? delay : 60000);
		return r;
	}
	v->failures = 0;
	iovm_vm_set_step_hook(v->vm, step_hook, o);
	migrate_watch(o, v);
	log_info("vm %s: connected to %s", v->info.name, v->info.qmp);
	return 0;
}

/* What the VM layer did to the VM's VFs (QEMU's events, a reclaim),
 * recorded in the store (views_record). A VF given back is added to
 * released, or announced (VF_DETACHED) if released is NULL. Returns how
 * many were given back. */
int vms_sync(ops *o, vmrec *v, json_object *released)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	iovm_error err = {};
	size_t n = 0;
	int freed = 0;

	if (iovm_store_assignment_list(o->store, v->info.name, &as, &n, &err) < 0) {
		log_warning(err.code, "vm %s: %s", v->info.name, err.msg);
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (views_record(o, &as[i], false, released))
			continue;
		if (!released)
			ops_emit(o, "VF_DETACHED", vm_vf_json(v->info.name, as[i].vf));
		freed++;
	}
	return freed;
}

/* What QEMU's events did to a VM's VFs while a command waited on its
 * connection (another VF's DEVICE_DELETED, say), recorded before the views
 * are derived again. */
void vms_record(ops *o, const char *name)
{
	vmrec *v = name && name[0] ? vms_find(o, name) : NULL;

	if (v && v->vm)
		vms_sync(o, v, NULL);
}

/* Ends every share of a VM that is gone: its macvtaps are deleted (QEMU
 * closed their taps when it exited) and the rows released. */
static void reclaim_shares(ops *o, const char *vm, json_object *reclaimed)
{
	_cleanup_free_ iovm_store_share *shs = NULL;
	iovm_error err = {};
	size_t n = 0;

	if (iovm_store_share_list(o->store, NULL, vm, &shs, &n, &err) < 0) {
		log_warning(err.code, "vm %s: %s", vm, err.msg);
		return;
	}
	if (n == 0)
		return;
	if (iovm_shared_reclaim(vm, NULL, &err) < 0)
		log_warning(err.code, "vm %s: deleting its macvtaps: %s", vm, err.msg);
	for (size_t i = 0; i < n; i++) {
		records_release_share(o, shs[i].vf, vm);
		if (reclaimed)
			json_object_array_add(reclaimed, json_object_new_string(shs[i].vf));
	}
}

/* The VM's connection went away: reclaim what QEMU let go of. */
void vms_lost(ops *o, vmrec *v, const char *why)
{
	json_object *reclaimed = json_object_new_array();
	json_object *data;

	log_warning(0, "vm %s: %s; reclaiming its VFs", v->info.name, why);
	migrate_out_lost(o, v);
	iovm_vm_reclaim(v->vm, LET_GO_MS, NULL);
	vms_sync(o, v, reclaimed);
	reclaim_shares(o, v->info.name, reclaimed);
	v->vm = iovm_vm_free(v->vm);
	v->next_try_ms = now_ms() + o->d->cfg.refresh_interval_ms;
	data = obj_s(json_object_new_object(), "vm", v->info.name);
	json_object_object_add(data, "reclaimed", reclaimed);
	ops_emit(o, "VM_GONE", data);
}
