/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vm-add, vm-remove: the VM registry (docs/iovmd.md, "VMs"). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovmd/crash.h"
#include "iovmd/ops.h"

json_object *cmd_vm_add(ops *o, const iovm_api_request *q, iovm_error *err)
{
	iovm_store_vm rec = {};
	iovm_error cerr = {};
	vmrec *v;

	if (vms_find(o, q->vm)) {
		iovm_error_set(err, -EEXIST, "vm %s: already registered", q->vm);
		return NULL;
	}
	snprintf(rec.name, sizeof(rec.name), "%s", q->vm);
	snprintf(rec.qmp, sizeof(rec.qmp), "%s", q->qmp);
	snprintf(rec.qga, sizeof(rec.qga), "%s", q->qga);
	rec.priority = q->priority < 0 ? IOVM_PRIO_NORMAL : (iovm_priority)q->priority;
	rec.numa_node = q->numa_node;
	if (q->incoming[0]) {
		/* What follows the guest is read from its source before anything
		 * is recorded: a source iovm cannot follow is refused here. */
		vmrec tmp = { .info = rec };

		if (migrate_plan(o, &tmp, q->incoming, err) < 0)
			return NULL;
		if (vms_find(o, q->vm)) {
			iovm_error_set(err, -EEXIST, "vm %s: already registered", q->vm);
			return NULL;
		}
		/* The VM and its link in one transaction: a restarted iovmd
		 * knows both or neither. */
		if (iovm_store_begin(o->store, err) < 0)
			return NULL;
		if (iovm_store_vm_put(o->store, &rec, err) < 0 || migrate_save(o, &tmp, err) < 0 ||
		    iovm_store_commit(o->store, err) < 0) {
			iovm_store_rollback(o->store);
			return NULL;
		}
		v = vms_add(o, &rec);
		if (v) {
			memcpy(v->incoming_from, tmp.incoming_from, sizeof(v->incoming_from));
			memcpy(v->mig_vfs, tmp.mig_vfs, sizeof(v->mig_vfs));
			v->n_mig_vfs = tmp.n_mig_vfs;
			v->mig = v->mig_saved = tmp.mig;
			log_info("vm %s: incoming from vm %s, %zu VF(s) to follow", q->vm, q->incoming, v->n_mig_vfs);
		}
		iovmd_crash_point("migrate-in", "registered");
	} else {
		if (iovm_store_vm_put(o->store, &rec, err) < 0)
			return NULL;
		v = vms_add(o, &rec);
	}
	if (!v) {
		iovm_error_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	if (vms_connect(o, v, &cerr) < 0)
		log_warning(cerr.code, "vm %s: registered, not connected yet: %s", q->vm, cerr.msg);
	return snapshot_vm_json(o, v);
}

json_object *cmd_vm_remove(ops *o, const iovm_api_request *q, iovm_error *err)
{
	if (vms_remove(o, q->vm, err) < 0)
		return NULL;
	return json_object_new_object();
}
