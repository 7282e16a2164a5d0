/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The inventory snapshot the main thread answers reads from (read.c):
 * {"pfs":[PF + "vfs":[VF]], "vms":[VM], "assignments":N, "open_intents":N,
 *  "taken_ms":T}. Built here, handed over whole in a message, so json-c
 * objects are never shared between threads. docs/iovmd.md on what keeps
 * it cheap.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovmd/ops.h"
#include "shared/clock.h"
#include "shared/util.h"

static json_object *config_json(const iovm_vfnet_config *c)
{
	json_object *o = json_object_new_object();
	char mac[18];

	if (c->present & IOVM_VFNET_MAC)
		obj_s(o, "mac", iovm_mac_format(c->mac, mac));
	if (c->present & IOVM_VFNET_VLAN) {
		json_object_object_add(o, "vlan", json_object_new_int(c->vlan));
		json_object_object_add(o, "qos", json_object_new_int(c->qos));
	}
	if (c->present & IOVM_VFNET_RATE)
		json_object_object_add(o, "rate", json_object_new_int64(c->max_tx_rate));
	if (c->present & IOVM_VFNET_SPOOFCHK)
		json_object_object_add(o, "spoofchk", json_object_new_boolean(c->spoofchk));
	if (c->present & IOVM_VFNET_TRUST)
		json_object_object_add(o, "trust", json_object_new_boolean(c->trust));
	if (c->present & IOVM_VFNET_LINK_STATE)
		obj_s(o, "link", iovm_vf_link_state_to_string(c->link_state) ?: "auto");
	return o;
}

/* The holders of every VF, read in two queries. */
static void load_holders(ops *o)
{
	iovm_error err = {};

	free(o->as);
	free(o->shs);
	o->as = NULL;
	o->shs = NULL;
	o->n_as = o->n_shs = 0;
	if (iovm_store_assignment_list(o->store, NULL, &o->as, &o->n_as, &err) < 0) {
		log_warning(err.code, "inventory: %s", err.msg);
		o->n_as = 0;
	}
	err = (iovm_error){};
	if (iovm_store_share_list(o->store, NULL, NULL, &o->shs, &o->n_shs, &err) < 0) {
		log_warning(err.code, "inventory: %s", err.msg);
		o->n_shs = 0;
	}
}

/* A shared VF: its sharers' names, comma-separated; NULL if not shared. */
static const char *share_state(ops *o, const char *vf, const char **ret_vm)
{
	static char names[512];
	size_t len = 0, first = SIZE_MAX;
	bool attached = false;

	names[0] = '\0';
	for (size_t i = 0; i < o->n_shs; i++) {
		if (strcmp(o->shs[i].vf, vf))
			continue;
		len += (size_t)snprintf(names + len, len < sizeof(names) ? sizeof(names) - len : 0, "%s%s",
					first == SIZE_MAX ? "" : ",", o->shs[i].vm);
		if (first == SIZE_MAX)
			first = i;
		attached |= o->shs[i].state == IOVM_STORE_ATTACHED;
	}
	if (first == SIZE_MAX)
		return NULL;
	*ret_vm = names;
	return attached ? "attached" : iovm_store_assign_state_to_string(o->shs[first].state);
}

static const char *state_name(ops *o, const char *vf, const char **ret_vm, const char **ret_mode)
{
	const char *st;

	*ret_vm = "";
	*ret_mode = "";
	st = share_state(o, vf, ret_vm);
	if (st) {
		*ret_mode = "shared";
		return st;
	}
	for (size_t i = 0; i < o->n_as; i++) {
		if (strcmp(o->as[i].vf, vf))
			continue;
		*ret_vm = o->as[i].vm;
		*ret_mode = iovm_mode_to_string(o->as[i].mode);
		return iovm_store_assign_state_to_string(o->as[i].state);
	}
	return "free";
}

/* cfg: the VF's settings as the PF reports them, NULL if unknown. */
json_object *snapshot_vf_json(ops *o, const iovm_vfnet_config *cfg, const iovm_vf *vf)
{
	static const iovm_vfnet_config none;
	json_object *j = json_object_new_object();
	iovm_policy_vf_info pi;
	const char *vm, *mode, *st = state_name(o, vf->addr, &vm, &mode);

	obj_s(j, "vf", vf->addr);
	obj_s(j, "pf", vf->pf_addr);
	obj_s(j, "pf_netdev", vf->pf_netdev);
	json_object_object_add(j, "index", json_object_new_int((int)vf->index));
	obj_s(j, "driver", vf->driver);
	json_object_object_add(j, "iommu_group", json_object_new_int(vf->iommu_group));
	obj_s(j, "netdev", vf->netdev);
	obj_s(j, "state", st);
	obj_s(j, "vm", vm);
	obj_s(j, "mode", mode);
	if (iovm_policy_vf_get(o->pol, vf->addr, &pi, NULL) < 0)
		memset(&pi, 0, sizeof(pi));
	json_object_object_add(j, "users", json_object_new_int(pi.users ? (int)pi.users : *vm ? 1 : 0));
	json_object_object_add(j, "config", config_json(cfg ? cfg : &none));
	json_object_object_add(j, "throughput_bps", json_object_new_int64((int64_t)pi.throughput_bps));
	json_object_object_add(j, "window_bytes", json_object_new_int64((int64_t)pi.window_bytes));
	json_object_object_add(j, "total_bytes", json_object_new_int64((int64_t)pi.total_bytes));
	return j;
}

/* The PF's VFs as last read (kernel.c), with their settings (cfgs[index],
 * ncfg of them; NULL: unknown). */
static json_object *pf_vfs_json(ops *o, const iovm_pf *p, const iovm_vfnet_config *cfgs, int ncfg)
{
	json_object *arr = json_object_new_array();

	for (size_t i = 0; i < o->n_inv; i++)
		if (!strcmp(o->inv[i].pf_addr, p->addr))
			json_object_array_add(arr, snapshot_vf_json(o, cfgs && (int)o->inv[i].index < ncfg ?
									  &cfgs[o->inv[i].index] : NULL,
								   &o->inv[i]));
	return arr;
}

json_object *snapshot_pf_json(ops *o, const iovm_pf *p, const iovm_vfnet_config *cfgs, int ncfg,
			      bool with_vfs)
{
	json_object *j = json_object_new_object();
	iovm_store_pf want;
	char id[8];

	obj_s(j, "pf", p->addr);
	obj_s(j, "netdev", p->netdev);
	obj_s(j, "driver", p->driver);
	snprintf(id, sizeof(id), "%04x", p->vendor);
	obj_s(j, "vendor", id);
	snprintf(id, sizeof(id), "%04x", p->device);
	obj_s(j, "device", id);
	json_object_object_add(j, "total_vfs", json_object_new_int((int)p->total_vfs));
	json_object_object_add(j, "num_vfs", json_object_new_int((int)p->num_vfs));
	json_object_object_add(j, "numa_node", json_object_new_int(p->numa_node));
	obj_s(j, "link", !p->netdev[0] ? "unknown" : !strcmp(p->operstate, "up") ? "up" : "down");
	if (iovm_store_pf_get(o->store, p->addr, &want, NULL) == 0) {
		json_object_object_add(j, "desired_vfs", json_object_new_int((int)want.num_vfs));
		obj_s(j, "desired_driver", want.driver);
	} else {
		json_object_object_add(j, "desired_vfs", NULL);
		json_object_object_add(j, "desired_driver", NULL);
	}
	if (with_vfs)
		json_object_object_add(j, "vfs", pf_vfs_json(o, p, cfgs, ncfg));
	return j;
}

json_object *snapshot_vm_json(ops *o, vmrec *v)
{
	json_object *j = json_object_new_object(), *vfs = json_object_new_array();
	json_object *shared = json_object_new_array();

	obj_s(j, "name", v->info.name);
	obj_s(j, "qmp", v->info.qmp);
	obj_s(j, "qga", v->info.qga);
	obj_s(j, "priority", iovm_priority_to_string(v->info.priority));
	json_object_object_add(j, "numa_node", json_object_new_int(v->info.numa_node));
	json_object_object_add(j, "connected", json_object_new_boolean(v->vm && iovm_vm_is_alive(v->vm)));
	if (v->incoming_from[0]) {
		obj_s(j, "incoming", v->incoming_from);
		obj_s(j, "migration", mig_state_to_string(v->mig));
	}
	for (size_t i = 0; i < o->n_as; i++)
		if (!strcmp(o->as[i].vm, v->info.name))
			json_object_array_add(vfs, json_object_new_string(o->as[i].vf));
	for (size_t i = 0; i < o->n_shs; i++)
		if (!strcmp(o->shs[i].vm, v->info.name))
			json_object_array_add(shared, json_object_new_string(o->shs[i].vf));
	json_object_object_add(j, "vfs", vfs);
	json_object_object_add(j, "shared_vfs", shared);
	return j;
}

/* Every PF from the kernel's view: only what changed since the last
 * snapshot is read (kernel.c). */
static json_object *pfs_json(ops *o)
{
	json_object *arr = json_object_new_array();

	kernel_refresh(o);
	for (size_t i = 0; i < kernel_n_pfs(o); i++) {
		const iovm_vfnet_config *cfgs;
		int ncfg;
		const iovm_pf *p = kernel_pf(o, i, &cfgs, &ncfg);

		json_object_array_add(arr, snapshot_pf_json(o, p, cfgs, ncfg, true));
	}
	return arr;
}

static json_object *vms_json(ops *o)
{
	json_object *arr = json_object_new_array();

	for (vmrec *v = o->vms; v; v = v->next)
		json_object_array_add(arr, snapshot_vm_json(o, v));
	return arr;
}

static size_t count_open_intents(ops *o)
{
	_cleanup_free_ iovm_store_intent *open = NULL;
	iovm_error err = {};
	size_t n = 0;

	if (iovm_store_intent_list_open(o->store, &open, &n, &err) < 0) {
		log_warning(err.code, "inventory: open intents: %s", err.msg);
		return 0;
	}
	return n;
}

/* Hands snap to the main thread in m (allocated here if NULL); a snapshot
 * that could not be made still ends a job's wait for one. */
static void hand_over(ops *o, iovmd_msg *m, json_object *snap, iovmd_msg_kind kind)
{
	if (!m && !(m = calloc(1, sizeof(*m)))) {
		log_error(-ENOMEM, "inventory: cannot hand the snapshot over");
		json_object_put(snap);
		return;
	}
	m->kind = snap ? kind : IOVMD_MSG_NO_SNAPSHOT;
	m->snapshot = snap;
	iovmd_queue_push(&o->d->msgs, m);
}

/* The whole snapshot. */
void snapshot_publish(ops *o, iovmd_msg *m)
{
	json_object *snap = json_object_new_object();

	load_holders(o);
	o->stale = false;
	json_object_object_add(snap, "pfs", pfs_json(o));
	json_object_object_add(snap, "vms", vms_json(o));
	json_object_object_add(snap, "assignments", json_object_new_int((int)(o->n_as + o->n_shs)));
	json_object_object_add(snap, "open_intents", json_object_new_int((int)count_open_intents(o)));
	json_object_object_add(snap, "taken_ms", json_object_new_int64(now_ms()));
	hand_over(o, m, snap, IOVMD_MSG_SNAPSHOT);
}

/* The VM list alone, for changes that touch nothing else (vm-add,
 * vm-remove): a whole snapshot reads every VF. */
void snapshot_publish_vms(ops *o, iovmd_msg *m)
{
	json_object *part = json_object_new_object();

	json_object_object_add(part, "vms", vms_json(o));
	hand_over(o, m, part, IOVMD_MSG_SNAPSHOT_PART);
}
