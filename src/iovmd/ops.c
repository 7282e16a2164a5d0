/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ops thread: owns the host (sysfs, netlink), the state store and every
 * VM's QMP connection (a QMP socket serves one client, so iovmd holds it).
 * Mutating commands run here one at a time. Each multi-step one writes its
 * intent to the journal before acting, records each step, and finishes it
 * (done or rolled back); recovery at start-up reconciles open intents and
 * assignments with what the kernel and the VMs show. docs/iovmd.md.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shared/clock.h"
#include "iovm/pci.h"
#include "iovm/policy.h"
#include "iovm/qga.h"
#include "iovm/sriov.h"
#include "iovm/store.h"
#include "iovm/vfio.h"
#include "iovm/shared.h"
#include "iovm/vfnet.h"
#include "iovm/vm.h"
#include "iovmd/gsample.h"
#include "iovmd/iovmd.h"
#include "shared/util.h"

#define CONNECT_TIMEOUT_MS 2000
#define LET_GO_MS 5000

typedef struct vmrec {
	struct vmrec *next;
	iovm_store_vm info;
	iovm_vm *vm;                 /* NULL while not connected */
	int64_t next_try_ms;
	unsigned failures;           /* connection attempts failed in a row */
	int64_t qga_next_try_ms;     /* guest agent: not asked again before this */
	bool qga_warned;             /* its last failure is logged */
} vmrec;

typedef struct ops {
	iovmd *d;
	iovm_host *host;
	iovm_host *inv_host;         /* the same sysfs, for the snapshot: no per-VF lock probe */
	iovm_store *store;
	iovm_vf_pool *pool;
	iovm_policy *pol;            /* who gets which VF (docs/allocation.md) */
	char (*known)[IOVM_STORE_ADDR_MAX];   /* VFs the policy knows */
	size_t n_known;
	/* Read once per snapshot, not once per VF or VM. */
	iovm_store_assignment *as;
	size_t n_as;
	iovm_store_share *shs;
	size_t n_shs;
	iovm_vf *inv;                /* the VFs at the last snapshot, for sampling */
	size_t n_inv;
	vmrec *vms;
	gsample *gs;                 /* the guest agents' questions (NULL: none asked) */
	/* a rebalancing move proposed by the policy, carried out after the
	 * job or tick that freed the VF (--rebalance) */
	iovm_policy_move move;
	bool move_pending;
	/* the job being run, for progress and the step hook */
	const iovmd_job *job;
	const char *op;
	int64_t intent;
} ops;

/* ---- messages to the main thread ------------------------------------------ */

static void post(ops *o, uint64_t client, char *line, bool final)
{
	iovmd_msg *m = calloc(1, sizeof(*m));

	if (!m || !line) {
		free(m);
		free(line);
		return;
	}
	m->client = client;
	m->line = line;
	m->final = final;
	iovmd_queue_push(&o->d->msgs, m);
}

static void emit(ops *o, const char *event, json_object *data)
{
	post(o, 0, iovm_api_format_event(event, data), false);
	json_object_put(data);
}

static void progress(ops *o, const char *step, int done, int total)
{
	json_object *data;

	if (!o->job || !o->job->client)
		return;
	data = json_object_new_object();
	json_object_object_add(data, "command",
			       json_object_new_string(iovm_api_cmd_to_string(o->job->req.cmd)));
	json_object_object_add(data, "id", json_object_get(o->job->req.id));
	json_object_object_add(data, "step", json_object_new_string(step));
	json_object_object_add(data, "done", json_object_new_int(done));
	json_object_object_add(data, "total", json_object_new_int(total));
	post(o, o->job->client, iovm_api_format_event("PROGRESS", data), false);
	json_object_put(data);
}

static json_object *obj_s(json_object *o, const char *k, const char *v)
{
	json_object_object_add(o, k, json_object_new_string(v));
	return o;
}

/* ---- VMs -------------------------------------------------------------------- */

static vmrec *vm_find(ops *o, const char *name)
{
	for (vmrec *v = o->vms; v; v = v->next)
		if (!strcmp(v->info.name, name))
			return v;
	return NULL;
}

static void step_hook(iovm_vm *vm, const char *vf, const char *step, void *userdata)
{
	ops *o = userdata;
	char text[160];

	if (o->intent > 0) {
		iovm_error err = {};

		if (iovm_store_intent_step(o->store, o->intent, step, &err) < 0)
			log_error(err.code, "journal: %s", err.msg);
		iovmd_crash_point(o->op, step);
	}
	snprintf(text, sizeof(text), "vf %s: %s", vf, step);
	progress(o, text, 0, 0);
	log_debug("vm %s: vf %s: %s", iovm_vm_name(vm), vf, step);
}

static int vm_connect(ops *o, vmrec *v, iovm_error *err)
{
	int r;

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
	log_info("vm %s: connected to %s", v->info.name, v->info.qmp);
	return 0;
}

static void policy_forget(ops *o, const char *vm, const char *vf);

/* Commits what a step wrote in one transaction (begun with
 * iovm_store_begin; if that failed, each write committed on its own). */
static int store_commit(ops *o)
{
	iovm_error err = {};
	int r;

	if (!iovm_store_in_transaction(o->store))
		return 0;
	r = iovm_store_commit(o->store, &err);
	if (r < 0)
		log_error(r, "store: %s", err.msg);
	return r;
}

static void release_record(ops *o, const char *vf)
{
	iovm_store_assignment a;
	iovm_error err = {};

	if (iovm_store_assignment_get(o->store, vf, &a, NULL) == 0)
		policy_forget(o, a.vm, vf);

	if (iovm_store_unassign(o->store, vf, &err) < 0 && err.code != -ENOENT)
		log_error(err.code, "store: %s", err.msg);
	err = (iovm_error){};
	if (iovm_store_vf_saved_delete(o->store, vf, &err) < 0 && err.code != -ENOENT)
		log_error(err.code, "store: %s", err.msg);
}

/* A sharer is gone: its row and its hold in the policy. The last sharer
 * out gives the VF its original driver back (settings were never changed:
 * sharing does not touch the VF's PF-side configuration). */
static void release_share(ops *o, const char *vf, const char *vm)
{
	_cleanup_free_ iovm_store_share *left = NULL;
	iovm_store_vf_saved saved;
	size_t n = 0;

	if (iovm_store_share_remove(o->store, vf, vm, NULL) < 0)
		return;
	policy_forget(o, vm, vf);
	if (iovm_store_share_list(o->store, vf, NULL, &left, &n, NULL) < 0 || n > 0)
		return;
	if (iovm_store_vf_saved_get(o->store, vf, &saved, NULL) == 0) {
		iovm_vf info;

		if (saved.cfg.present && iovm_vf_get(o->host, vf, &info, NULL) == 0 && info.pf_netdev[0]) {
			iovm_vfnet *nl = NULL;
			iovm_error err = {};

			if (iovm_vfnet_open(o->host, &nl, &err) < 0 ||
			    iovm_vfnet_restore(nl, info.pf_addr, info.index, &saved.cfg, &err) < 0)
				log_warning(err.code, "vf %s: restoring its settings after sharing: %s", vf, err.msg);
			iovm_vfnet_close(nl);
		}
		if (saved.driver[0] && iovm_vf_get(o->host, vf, &info, NULL) == 0 &&
		    strcmp(saved.driver, info.driver)) {
			iovm_error err = {};

			if (iovm_vf_bind(o->host, vf, saved.driver, &err) < 0)
				log_warning(err.code, "vf %s: back to %s after sharing: %s", vf, saved.driver,
					    err.msg);
		}
		iovm_store_vf_saved_delete(o->store, vf, NULL);
	}
}

/* Brings the store's assignments of a VM in line with the pool: a VF the
 * pool let go of is unassigned (VF_DETACHED); one waiting for its guest or
 * its dead VM is RELEASE_PENDING. Returns how many were released. */
static int sync_vm(ops *o, vmrec *v, json_object *released)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	size_t n = 0;
	int freed = 0;

	if (iovm_store_assignment_list(o->store, v->info.name, &as, &n, NULL) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		iovm_vf_entry *e = iovm_vf_pool_get(o->pool, as[i].vf);

		if (!e || strcmp(e->vm, v->info.name)) {
			if (as[i].state == IOVM_STORE_RESERVED || as[i].state == IOVM_STORE_ATTACHING)
				continue;   /* an attach in progress owns it */
			release_record(o, as[i].vf);
			log_info("vm %s: vf %s released", v->info.name, as[i].vf);
			if (released)
				json_object_array_add(released, json_object_new_string(as[i].vf));
			else
				emit(o, "VF_DETACHED", obj_s(obj_s(json_object_new_object(), "vm", v->info.name),
							    "vf", as[i].vf));
			freed++;
		} else if ((e->use == IOVM_VF_RELEASE_PENDING || e->use == IOVM_VF_RECLAIM) &&
			   as[i].state != IOVM_STORE_RELEASE_PENDING) {
			iovm_store_assignment_set_state(o->store, as[i].vf, IOVM_STORE_RELEASE_PENDING, NULL, NULL);
		}
	}
	return freed;
}

/* Ends every share of a VM that is gone: its macvtaps are deleted (QEMU
 * closed their taps when it exited) and the rows released. */
static void reclaim_shares(ops *o, const char *vm, json_object *reclaimed)
{
	_cleanup_free_ iovm_store_share *shs = NULL;
	iovm_error err = {};
	size_t n = 0;

	if (iovm_store_share_list(o->store, NULL, vm, &shs, &n, NULL) < 0 || n == 0)
		return;
	if (iovm_shared_reclaim(vm, NULL, &err) < 0)
		log_warning(err.code, "vm %s: deleting its macvtaps: %s", vm, err.msg);
	for (size_t i = 0; i < n; i++) {
		release_share(o, shs[i].vf, vm);
		if (reclaimed)
			json_object_array_add(reclaimed, json_object_new_string(shs[i].vf));
	}
}

/* The VM's connection went away: reclaim what QEMU let go of. */
static void vm_lost(ops *o, vmrec *v, const char *why)
{
	json_object *reclaimed = json_object_new_array();
	json_object *data;

	log_warning(0, "vm %s: %s; reclaiming its VFs", v->info.name, why);
	iovm_vm_reclaim(v->vm, LET_GO_MS, NULL);
	sync_vm(o, v, reclaimed);
	reclaim_shares(o, v->info.name, reclaimed);
	v->vm = iovm_vm_free(v->vm);
	v->next_try_ms = now_ms() + o->d->cfg.refresh_interval_ms;
	data = obj_s(json_object_new_object(), "vm", v->info.name);
	json_object_object_add(data, "reclaimed", reclaimed);
	emit(o, "VM_GONE", data);
}


/* ---- the allocation policy ------------------------------------------------------ */

static void policy_forget(ops *o, const char *vm, const char *vf)
{
	iovm_policy_move move = {};
	int r = iovm_policy_release(o->pol, vm, vf, &move, NULL);

	if (r > 0) {
		log_info("policy: %s (%s -> %s): %s", move.vm, move.from_vf, move.to_vf, move.reason);
		o->move = move;
		o->move_pending = true;
	}
}

static bool known_has(ops *o, const char *vf, size_t *ret_i)
{
	for (size_t i = 0; i < o->n_known; i++)
		if (!strcmp(o->known[i], vf)) {
			if (ret_i)
				*ret_i = i;
			return true;
		}
	return false;
}

/* Tells the policy about VFs that appeared and that went away. seen: the
 * inventory's VFs. */
static void policy_sync_vfs(ops *o, const iovm_vf *vfs, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		iovm_policy_vf pv = {
			.id = vfs[i].addr, .pf = vfs[i].pf_addr, .numa_node = vfs[i].numa_node,
			/* A NIC VF can stay on its host driver and be shared. */
			.shareable = vfs[i].pf_netdev[0] != '\0',
		};
		void *p;

		if (known_has(o, vfs[i].addr, NULL))
			continue;
		if (iovm_policy_vf_add(o->pol, &pv, NULL) < 0)
			continue;
		p = realloc(o->known, (o->n_known + 1) * sizeof(*o->known));
		if (!p)
			continue;
		o->known = p;
		snprintf(o->known[o->n_known++], IOVM_STORE_ADDR_MAX, "%s", vfs[i].addr);
	}
	for (size_t i = 0; i < o->n_known;) {
		bool present = false;

		for (size_t j = 0; j < n && !present; j++)
			present = !strcmp(vfs[j].addr, o->known[i]);
		if (present || iovm_policy_vf_remove(o->pol, o->known[i], NULL) < 0) {
			i++;
			continue;
		}
		memmove(o->known[i], o->known[i + 1], (o->n_known - i - 1) * sizeof(*o->known));
		o->n_known--;
	}
}

static void policy_add_vm(ops *o, const iovm_store_vm *rec)
{
	iovm_policy_vm pv = { .name = rec->name, .priority = rec->priority, .numa_node = rec->numa_node };
	iovm_error err = {};

	if (iovm_policy_vm_add(o->pol, &pv, &err) < 0 && err.code != -EEXIST)
		log_warning(err.code, "policy: %s", err.msg);
}

/* ---- inventory snapshot ------------------------------------------------------ */

static json_object *config_json(const iovm_vfnet_config *c)
{
	json_object *o = json_object_new_object();
	char mac[18];

	if (c->present & IOVM_VFNET_MAC) {
		obj_s(o, "mac", iovm_mac_format(c->mac, mac));
	}
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
	free(o->as);
	free(o->shs);
	o->as = NULL;
	o->shs = NULL;
	o->n_as = o->n_shs = 0;
	if (iovm_store_assignment_list(o->store, NULL, &o->as, &o->n_as, NULL) < 0)
		o->n_as = 0;
	if (iovm_store_share_list(o->store, NULL, NULL, &o->shs, &o->n_shs, NULL) < 0)
		o->n_shs = 0;
}

static const char *state_name(ops *o, const char *vf, const char **ret_vm, const char **ret_mode)
{
	static char names[512];
	iovm_vf_entry *e = iovm_vf_pool_get(o->pool, vf);
	size_t len = 0, first = SIZE_MAX;
	bool attached = false;

	*ret_vm = "";
	*ret_mode = "";
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
	if (first != SIZE_MAX) {
		*ret_vm = names;
		*ret_mode = "shared";
		return attached ? "attached" : iovm_store_assign_state_to_string(o->shs[first].state);
	}
	for (size_t i = 0; i < o->n_as; i++) {
		if (strcmp(o->as[i].vf, vf))
			continue;
		*ret_vm = o->as[i].vm;
		*ret_mode = iovm_mode_to_string(o->as[i].mode);
		return iovm_store_assign_state_to_string(o->as[i].state);
	}
	if (e) {
		*ret_vm = e->vm;
		return e->use == IOVM_VF_IN_USE ? "attached" : e->use == IOVM_VF_ATTACHING ? "attaching"
										      : "release-pending";
	}
	return "free";
}

/* cfg: the VF's settings as the PF reports them, NULL if unknown. */
static json_object *vf_json(ops *o, const iovm_vfnet_config *cfg, const iovm_vf *vf)
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

static json_object *pf_json(ops *o, iovm_vfnet *nl, const iovm_pf *p, bool with_vfs)
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
	if (with_vfs) {
		json_object *arr = json_object_new_array();
		_cleanup_free_ iovm_vfnet_config *cfgs = NULL;
		int ncfg = -1;

		/* Every VF's settings in one request to the PF. */
		if (nl && p->netdev[0] && p->num_vfs && (cfgs = calloc(p->num_vfs, sizeof(*cfgs))))
			ncfg = iovm_vfnet_get_all(nl, p->addr, cfgs, NULL, p->num_vfs, NULL);
		/* The VFs listed at the start of this snapshot. */
		for (size_t i = 0; i < o->n_inv; i++)
			if (!strcmp(o->inv[i].pf_addr, p->addr))
				json_object_array_add(arr, vf_json(o, (int)o->inv[i].index < ncfg ?
								      &cfgs[o->inv[i].index] : NULL,
								  &o->inv[i]));
		json_object_object_add(j, "vfs", arr);
	}
	return j;
}

static json_object *vm_json(ops *o, vmrec *v)
{
	json_object *j = json_object_new_object(), *vfs = json_object_new_array();
	json_object *shared = json_object_new_array();

	obj_s(j, "name", v->info.name);
	obj_s(j, "qmp", v->info.qmp);
	obj_s(j, "qga", v->info.qga);
	obj_s(j, "priority", iovm_priority_to_string(v->info.priority));
	json_object_object_add(j, "numa_node", json_object_new_int(v->info.numa_node));
	json_object_object_add(j, "connected", json_object_new_boolean(v->vm && iovm_vm_is_alive(v->vm)));
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

/* The whole snapshot, in m (allocated here if NULL). */
static void publish_into(ops *o, iovmd_msg *m)
{
	_cleanup_free_ iovm_pf *pfs = NULL;
	_cleanup_free_ iovm_store_intent *open = NULL;
	json_object *snap = json_object_new_object(), *arr = json_object_new_array();
	iovm_vfnet *nl = NULL;
	size_t n = 0, na = 0, ni = 0;
	iovm_error err = {};

	load_holders(o);
	{
		iovm_vf *all = NULL;
		size_t nall = 0;

		if (iovm_vf_list(o->inv_host, NULL, &all, &nall, NULL) >= 0) {
			policy_sync_vfs(o, all, nall);
			free(o->inv);
			o->inv = all;
			o->n_inv = nall;
		}
	}
	if (iovm_vfnet_open(o->host, &nl, NULL) < 0)
		nl = NULL;
	if (iovm_pf_list(o->inv_host, &pfs, &n, &err) < 0)
		log_warning(err.code, "inventory: %s", err.msg);
	for (size_t i = 0; i < n; i++)
		json_object_array_add(arr, pf_json(o, nl, &pfs[i], true));
	iovm_vfnet_close(nl);
	json_object_object_add(snap, "pfs", arr);
	arr = json_object_new_array();
	for (vmrec *v = o->vms; v; v = v->next)
		json_object_array_add(arr, vm_json(o, v));
	json_object_object_add(snap, "vms", arr);
	na = o->n_as + o->n_shs;
	(void)iovm_store_intent_list_open(o->store, &open, &ni, NULL);
	json_object_object_add(snap, "assignments", json_object_new_int((int)na));
	json_object_object_add(snap, "open_intents", json_object_new_int((int)ni));
	json_object_object_add(snap, "taken_ms", json_object_new_int64(now_ms()));
	if (!m && !(m = calloc(1, sizeof(*m)))) {
		json_object_put(snap);
		return;
	}
	m->snapshot = snap;
	iovmd_queue_push(&o->d->msgs, m);
}

static void publish(ops *o)
{
	publish_into(o, NULL);
}

/* The VM list alone, for changes that touch nothing else (vm-add,
 * vm-remove): a whole snapshot reads every VF. */
static void publish_vms(ops *o, iovmd_msg *m)
{
	json_object *part = json_object_new_object(), *arr = json_object_new_array();

	if (!m && !(m = calloc(1, sizeof(*m)))) {
		json_object_put(part);
		json_object_put(arr);
		return;
	}
	for (vmrec *v = o->vms; v; v = v->next)
		json_object_array_add(arr, vm_json(o, v));
	json_object_object_add(part, "vms", arr);
	m->snapshot = part;
	m->partial = true;
	iovmd_queue_push(&o->d->msgs, m);
}

/* ---- naming ------------------------------------------------------------------- */

/* A VF named by PCI address or PF/INDEX -> its inventory record. */
static int resolve_vf(ops *o, const char *name, iovm_vf *ret, iovm_error *err)
{
	char pf[IOVM_API_NAME_MAX];
	unsigned index;

	if (iovm_api_vf_split(name, pf, sizeof(pf), &index) == 0)
		return iovm_vf_by_index(o->host, pf, index, ret, err);
	return iovm_vf_get(o->host, name, ret, err);
}

static bool vf_taken(ops *o, const char *vf)
{
	iovm_store_assignment a;

	return iovm_vf_pool_get(o->pool, vf) || iovm_store_assignment_get(o->store, vf, &a, NULL) == 0;
}

/* ---- commands ----------------------------------------------------------------- */

static iovm_vf_driver_kind driver_kind(const char *driver)
{
	return !strcmp(driver, "vfio-pci") ? IOVM_VF_DRIVER_VFIO : IOVM_VF_DRIVER_HOST;
}

/* Applies the desired VF configs of a PF (after its VFs were created). */
static int apply_vf_configs(ops *o, const char *pf, iovm_error *err)
{
	_cleanup_free_ iovm_store_vf_config *cs = NULL;
	iovm_vfnet *nl = NULL;
	size_t n = 0;
	int r;

	r = iovm_store_vf_config_list(o->store, pf, &cs, &n, err);
	if (r < 0 || n == 0)
		return r < 0 ? r : 0;
	r = iovm_vfnet_open(o->host, &nl, err);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = iovm_vfnet_set(nl, pf, cs[i].vf, &cs[i].cfg, cs[i].cfg.present, err);
	iovm_vfnet_close(nl);
	return r;
}

static int assigned_vf_of_pf(ops *o, const char *pf, iovm_store_assignment *ret)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	size_t n = 0;

	if (iovm_store_assignment_list(o->store, NULL, &as, &n, NULL) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		iovm_vf vf;

		if (iovm_vf_get(o->host, as[i].vf, &vf, NULL) == 0 && !strcmp(vf.pf_addr, pf)) {
			*ret = as[i];
			return 1;
		}
	}
	return 0;
}

static json_object *cmd_set_vfs(ops *o, const iovm_api_request *q, iovm_error *err)
{
	char pf[IOVM_PCI_ADDR_MAX], object[IOVM_STORE_OBJECT_MAX], text[96];
	iovm_store_intent_args args = { .count = q->count };
	iovm_store_pf want = {}, before = {};
	iovm_store_assignment a;
	bool had_before;
	iovm_pf info;
	int64_t id = 0;
	int r;

	r = iovm_pf_resolve(o->host, q->pf, pf, sizeof(pf), err);
	if (r < 0)
		return NULL;
	if (assigned_vf_of_pf(o, pf, &a)) {
		iovm_error_set(err, -EBUSY, "pf %s: vf %s is assigned to vm %s; detach it first (resizing "
			       "a PF whose VFs are in VMs is not supported yet)", q->pf, a.vf, a.vm);
		return NULL;
	}
	had_before = iovm_store_pf_get(o->store, pf, &before, NULL) == 0;
	snprintf(want.pf, sizeof(want.pf), "%s", pf);
	want.num_vfs = q->count;
	snprintf(want.driver, sizeof(want.driver), "%s", q->driver == IOVM_API_DRIVER_HOST ? "host" :
			q->driver == IOVM_API_DRIVER_VFIO ? "vfio-pci" : had_before ? before.driver : "vfio-pci");
	snprintf(args.driver, sizeof(args.driver), "%s", want.driver);
	snprintf(object, sizeof(object), "pf %s", pf);
	/* Desired state and intent first, in one transaction. */
	r = iovm_store_begin(o->store, err);
	if (r >= 0)
		r = iovm_store_pf_put(o->store, &want, err);
	if (r >= 0)
		r = iovm_store_intent_begin(o->store, IOVM_INTENT_SET_VFS, object, &args, &id, err);
	if (r >= 0)
		r = iovm_store_commit(o->store, err);
	else
		iovm_store_rollback(o->store);
	if (r < 0)
		return NULL;
	o->intent = id;
	iovmd_crash_point("set-vfs", "intent");
	snprintf(text, sizeof(text), "setting %s to %u VFs (%s)", q->pf, q->count, want.driver);
	progress(o, text, 0, 2);
	r = iovm_pf_set_numvfs(o->host, pf, q->count, driver_kind(want.driver), 0, err);
	if (r < 0) {
		iovm_error e2 = {};

		/* Nothing changed in the kernel (in-use and range checks come
		 * first) or it timed out: the old desired state stands. */
		if (had_before)
			iovm_store_pf_put(o->store, &before, &e2);
		else
			iovm_store_pf_delete(o->store, pf, &e2);
		iovm_store_intent_finish(o->store, id, IOVM_INTENT_ROLLED_BACK, &e2);
		return NULL;
	}
	iovm_store_intent_step(o->store, id, "numvfs", NULL);
	iovmd_crash_point("set-vfs", "numvfs");
	progress(o, "applying VF settings", 1, 2);
	r = apply_vf_configs(o, pf, err);
	if (r < 0) {
		iovm_store_intent_finish(o->store, id, IOVM_INTENT_DONE, NULL);
		iovm_error_prefix(err, "pf %s: %u VFs created, but applying their saved settings failed",
				  q->pf, q->count);
		return NULL;
	}
	iovm_store_intent_finish(o->store, id, IOVM_INTENT_DONE, NULL);
	iovmd_crash_point("set-vfs", "done");
	json_object *ev = obj_s(obj_s(json_object_new_object(), "pf", pf), "driver", want.driver);
	json_object_object_add(ev, "num_vfs", json_object_new_int((int)q->count));
	emit(o, "VFS_CHANGED", ev);
	if (iovm_pf_get(o->host, pf, &info, err) < 0)
		return NULL;
	return pf_json(o, NULL, &info, false);
}

static json_object *cmd_vf_set(ops *o, const iovm_api_request *q, iovm_error *err)
{
	iovm_store_vf_config c = {};
	iovm_vfnet *nl = NULL;
	iovm_vf vf;
	int r;

	if (resolve_vf(o, q->vf, &vf, err) < 0)
		return NULL;
	if (!vf.pf_netdev[0]) {
		iovm_error_set(err, -EOPNOTSUPP, "vf %s: its PF %s has no network device; only NIC VFs "
			       "have settings", q->vf, vf.pf_addr);
		return NULL;
	}
	r = iovm_vfnet_open(o->host, &nl, err);
	if (r >= 0)
		r = iovm_vfnet_set(nl, vf.pf_addr, vf.index, &q->cfg, q->cfg.present, err);
	iovm_vfnet_close(nl);
	if (r < 0)
		return NULL;
	/* Remember it as desired, merged with what was desired before, so it
	 * is applied again when the VFs are re-created (reboot, resize). */
	if (iovm_store_vf_config_get(o->store, vf.pf_addr, vf.index, &c, NULL) < 0) {
		memset(&c, 0, sizeof(c));
		snprintf(c.pf, sizeof(c.pf), "%s", vf.pf_addr);
		c.vf = vf.index;
	}
	{
		unsigned keep = c.cfg.present & ~q->cfg.present;
		iovm_vfnet_config merged = q->cfg;

		if (keep & IOVM_VFNET_MAC) memcpy(merged.mac, c.cfg.mac, 6);
		if (keep & IOVM_VFNET_VLAN) { merged.vlan = c.cfg.vlan; merged.qos = c.cfg.qos; }
		if (keep & IOVM_VFNET_RATE) merged.max_tx_rate = c.cfg.max_tx_rate;
		if (keep & IOVM_VFNET_SPOOFCHK) merged.spoofchk = c.cfg.spoofchk;
		if (keep & IOVM_VFNET_TRUST) merged.trust = c.cfg.trust;
		if (keep & IOVM_VFNET_LINK_STATE) merged.link_state = c.cfg.link_state;
		merged.present = q->cfg.present | c.cfg.present;
		c.cfg = merged;
	}
	if (iovm_store_pf_get(o->store, vf.pf_addr, &(iovm_store_pf){}, NULL) < 0) {
		iovm_store_pf p = {};
		iovm_pf info;

		snprintf(p.pf, sizeof(p.pf), "%s", vf.pf_addr);
		p.num_vfs = iovm_pf_get(o->host, vf.pf_addr, &info, NULL) == 0 ? info.num_vfs : vf.index + 1;
		snprintf(p.driver, sizeof(p.driver), "%s", !strcmp(vf.driver, "vfio-pci") ? "vfio-pci" : "host");
		if (iovm_store_pf_put(o->store, &p, err) < 0)
			return NULL;
	}
	if (iovm_store_vf_config_put(o->store, &c, err) < 0)
		return NULL;
	{
		iovm_vfnet_config now;
		iovm_vfnet *nl2 = NULL;
		bool have = iovm_vfnet_open(o->host, &nl2, NULL) == 0 &&
			    iovm_vfnet_get(nl2, vf.pf_addr, vf.index, &now, NULL) == 0;

		iovm_vfnet_close(nl2);
		return vf_json(o, have ? &now : NULL, &vf);
	}
}

static json_object *cmd_vm_add(ops *o, const iovm_api_request *q, iovm_error *err)
{
	iovm_store_vm rec = {};
	iovm_error cerr = {};
	vmrec *v;

	if (vm_find(o, q->vm)) {
		iovm_error_set(err, -EEXIST, "vm %s: already registered", q->vm);
		return NULL;
	}
	snprintf(rec.name, sizeof(rec.name), "%s", q->vm);
	snprintf(rec.qmp, sizeof(rec.qmp), "%s", q->qmp);
	snprintf(rec.qga, sizeof(rec.qga), "%s", q->qga);
	rec.priority = q->priority < 0 ? IOVM_PRIO_NORMAL : (iovm_priority)q->priority;
	rec.numa_node = q->numa_node;
	if (iovm_store_vm_put(o->store, &rec, err) < 0)
		return NULL;
	v = calloc(1, sizeof(*v));
	if (!v) {
		iovm_error_set(err, -ENOMEM, "out of memory");
		return NULL;
	}
	v->info = rec;
	v->next = o->vms;
	o->vms = v;
	policy_add_vm(o, &rec);
	if (vm_connect(o, v, &cerr) < 0)
		log_warning(cerr.code, "vm %s: registered, not connected yet: %s", q->vm, cerr.msg);
	return vm_json(o, v);
}

static json_object *cmd_vm_remove(ops *o, const iovm_api_request *q, iovm_error *err)
{
	vmrec **pp, *v;

	for (pp = &o->vms; *pp; pp = &(*pp)->next)
		if (!strcmp((*pp)->info.name, q->vm))
			break;
	if (!*pp) {
		iovm_error_set(err, -ENOENT, "vm %s: not registered", q->vm);
		return NULL;
	}
	if (iovm_store_vm_delete(o->store, q->vm, err) < 0)
		return NULL;
	v = *pp;
	*pp = v->next;
	(void)iovm_policy_vm_remove(o->pol, v->info.name, NULL);
	iovm_vm_free(v->vm);
	free(v);
	return json_object_new_object();
}

/* Picks a VF for an attach through the policy (docs/allocation.md), or
 * takes the one named; either way the policy holds it for the VM until
 * policy_forget(). The decision and its reason are logged. */
/* named: q->vf already resolved into *ret (else it is resolved here). */
static int choose_vf(ops *o, vmrec *v, const iovm_api_request *q, bool named, iovm_vf *ret,
		     iovm_mode *ret_mode, iovm_error *err)
{
	iovm_mode want = q->mode;
	iovm_policy_decision dec = {};
	char pf[IOVM_PCI_ADDR_MAX] = "";
	int r;

	if (q->vf[0]) {
		r = named ? 0 : resolve_vf(o, q->vf, ret, err);
		if (r < 0)
			return r;
		if (want == IOVM_MODE_AUTO) {
			iovm_policy_vf_info pi;

			/* A named VF that is already shared is joined; else exclusive. */
			want = iovm_policy_vf_get(o->pol, ret->addr, &pi, NULL) == 0 &&
			       pi.state == IOVM_POLICY_VF_SHARED ? IOVM_MODE_SHARED : IOVM_MODE_EXCLUSIVE;
		}
		r = iovm_policy_assign(o->pol, v->info.name, ret->addr, want, err);
		if (r < 0)
			return r;
		*ret_mode = want;
		log_info("policy: vm %s takes the named vf %s %s", v->info.name, ret->addr,
			 iovm_mode_to_string(want));
		return 0;
	}
	if (q->pf[0] && iovm_pf_resolve(o->host, q->pf, pf, sizeof(pf), err) < 0)
		return err->code;
	/* Auto mode leaves --shared-reserve free VFs for sharing, counted
	 * among the VFs this request may get (the PF asked for, else all). */
	if (want == IOVM_MODE_AUTO && o->d->cfg.shared_reserve) {
		unsigned free_here = 0;

		for (size_t i = 0; i < o->n_inv; i++) {
			iovm_policy_vf_info pi;

			if ((!pf[0] || !strcmp(o->inv[i].pf_addr, pf)) &&
			    iovm_policy_vf_get(o->pol, o->inv[i].addr, &pi, NULL) == 0 &&
			    pi.state == IOVM_POLICY_VF_FREE)
				free_here++;
		}
		if (free_here <= o->d->cfg.shared_reserve) {
			want = IOVM_MODE_SHARED;
			log_info("policy: vm %s: %u free VF%s left%s%s, --shared-reserve %u: asking to share",
				 v->info.name, free_here, free_here == 1 ? "" : "s", pf[0] ? " on pf " : "", pf,
				 o->d->cfg.shared_reserve);
		}
	}
	r = iovm_policy_request(o->pol, &(iovm_policy_req){ .vm = v->info.name, .mode = want,
							      .pf = pf[0] ? pf : NULL }, &dec, err);
	if (r < 0) {
		log_info("policy: vm %s: no VF: %s", v->info.name, err->msg);
		return r;
	}
	log_info("policy: vm %s gets vf %s: %s", v->info.name, dec.vf, dec.reason);
	*ret_mode = dec.mode;
	r = iovm_vf_get(o->host, dec.vf, ret, err);
	if (r < 0)
		policy_forget(o, v->info.name, dec.vf);
	return r;
}

/* The VF's settings before iovm touches it: its driver and, for a NIC VF,
 * everything the PF reports about it. */
static void original_settings(ops *o, const iovm_vf *vf, iovm_store_vf_saved *saved)
{
	iovm_vfnet *nl = NULL;

	memset(saved, 0, sizeof(*saved));
	snprintf(saved->vf, sizeof(saved->vf), "%s", vf->addr);
	snprintf(saved->pf, sizeof(saved->pf), "%s", vf->pf_addr);
	saved->vf_index = vf->index;
	snprintf(saved->driver, sizeof(saved->driver), "%s", vf->driver);
	if (vf->pf_netdev[0] && iovm_vfnet_open(o->host, &nl, NULL) == 0) {
		(void)iovm_vfnet_save(nl, vf->pf_addr, vf->index, &saved->cfg, NULL);
		iovm_vfnet_close(nl);
	}
}

/* The arguments of an attach or detach intent (devid NULL: none). */
static iovm_store_intent_args vm_intent_args(const char *vm, iovm_mode mode, const char *devid)
{
	iovm_store_intent_args args = { .mode = mode };

	snprintf(args.vm, sizeof(args.vm), "%s", vm);
	snprintf(args.devid, sizeof(args.devid), "%s", devid ? devid : "");
	return args;
}

/* Writes, in one transaction, the attach intent, the holder's row (an
 * exclusive assignment a, or a share sh) and the original settings (kept if
 * already saved: the first save is the original). */
static int journal_attach(ops *o, const char *vf, const iovm_store_intent_args *args,
			  const iovm_store_assignment *a,
			  const iovm_store_share *sh, const iovm_store_vf_saved *saved, int64_t *ret_id,
			  iovm_error *err)
{
	char object[IOVM_STORE_OBJECT_MAX];
	int r;

	snprintf(object, sizeof(object), "vf %s", vf);
	r = iovm_store_begin(o->store, err);
	if (r >= 0)
		r = iovm_store_intent_begin(o->store, IOVM_INTENT_ATTACH, object, args, ret_id, err);
	if (r >= 0)
		r = a ? iovm_store_assign(o->store, a, err) : iovm_store_share_add(o->store, sh, err);
	if (r >= 0) {
		r = iovm_store_vf_saved_put(o->store, saved, err);
		if (r == -EEXIST)
			r = 0;
	}
	if (r >= 0)
		return iovm_store_commit(o->store, err);
	iovm_store_rollback(o->store);
	return r;
}

/* Shares vf with the VM: the VF stays on (or goes back to) its host driver,
 * the VM gets a macvtap on its netdev as a virtio-net device. Journaled
 * like an exclusive attach; each sharer is a row of vf_share. */
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
	int64_t id = 0;
	int r;

	original_settings(o, &vf, &saved);
	snprintf(sh.vf, sizeof(sh.vf), "%s", vf.addr);
	snprintf(sh.vm, sizeof(sh.vm), "%s", v->info.name);
	sh.state = IOVM_STORE_RESERVED;
	args = vm_intent_args(v->info.name, IOVM_MODE_SHARED, NULL);
	r = journal_attach(o, vf.addr, &args, NULL, &sh, &saved, &id, err);
	if (r < 0) {
		policy_forget(o, v->info.name, vf.addr);
		return NULL;
	}
	o->intent = id;
	o->op = "attach";
	iovmd_crash_point("attach", "reserved");
	/* A VF the policy turned from free to shared may sit on vfio-pci. */
	if (!vf.netdev[0]) {
		progress(o, "binding the VF to its host driver for sharing", 0, 0);
		r = iovm_vf_bind(o->host, vf.addr, NULL, err);
		if (r >= 0)
			r = iovm_vf_get(o->host, vf.addr, &vf, err);
		if (r >= 0 && !vf.netdev[0])
			r = iovm_error_set(err, -ENODEV, "vf %s: no host netdev after binding %s", vf.addr,
					   vf.driver);
		if (r < 0)
			goto fail;
	}
	/* The sharers' frames carry their own MACs, one unicast filter each:
	 * the VF must not drop them as spoofed, and igb grants a VF extra
	 * filters only when trusted (original settings saved above). */
	{
		iovm_vfnet_config cfg = { .spoofchk = false, .trust = true };
		iovm_vfnet *nl = NULL;

		r = iovm_vfnet_open(o->host, &nl, err);
		if (r >= 0)
			r = iovm_vfnet_set(nl, vf.pf_addr, vf.index, &cfg, IOVM_VFNET_SPOOFCHK | IOVM_VFNET_TRUST, err);
		iovm_vfnet_close(nl);
		if (r < 0)
			goto fail;
	}
	iovm_store_share_set_state(o->store, vf.addr, v->info.name, IOVM_STORE_ATTACHING, NULL, NULL, NULL);
	so.vf = vf.addr;
	if (q->cfg.present & IOVM_VFNET_MAC) {
		so.mac = iovm_mac_format(q->cfg.mac, mac);
	}
	so.timeout_ms = q->timeout_ms > 0 ? q->timeout_ms : o->d->cfg.attach_timeout_ms;
	r = iovm_vm_attach_shared(v->vm, &so, &res, err);
	if (r < 0)
		goto fail;
	iovm_store_share_set_state(o->store, vf.addr, v->info.name, IOVM_STORE_ATTACHED, res.devid, res.ifname,
				   NULL);
	iovm_store_intent_finish(o->store, id, IOVM_INTENT_DONE, NULL);
	iovmd_crash_point("attach", "done");
	json_object *ret = obj_s(obj_s(obj_s(obj_s(obj_s(json_object_new_object(), "vm", v->info.name),
						 "vf", vf.addr), "devid", res.devid), "port", res.port),
				 "mode", "shared");
	obj_s(obj_s(ret, "macvtap", res.ifname), "mac", res.mac);
	json_object_object_add(ret, "vf_carrier", json_object_new_boolean(res.vf_carrier));
	if (!res.vf_carrier)
		log_warning(0, "vm %s: vf %s: its netdev %s has no carrier; the shared NIC has no link until it does",
			    v->info.name, vf.addr, res.vf_netdev);
	emit(o, "VF_ATTACHED", json_object_get(ret));
	log_info("vm %s: shares vf %s (%s) through %s as %s on %s", v->info.name, vf.addr, res.vf_netdev,
		 res.ifname, res.devid, res.port);
	return ret;
fail:
	release_share(o, vf.addr, v->info.name);
	iovm_store_intent_finish(o->store, id, IOVM_INTENT_ROLLED_BACK, NULL);
	return NULL;
}

static json_object *cmd_attach(ops *o, const iovm_api_request *q, iovm_error *err)
{
	char mac[18] = "";
	iovm_store_intent_args args;
	iovm_store_assignment a = {};
	iovm_store_vf_saved saved = {};
	iovm_attach_result res = {};
	iovm_attach_opts ao = {};
	iovm_mode mode = IOVM_MODE_EXCLUSIVE;
	iovm_vf vf;
	int64_t id = 0;
	vmrec *v = vm_find(o, q->vm);
	bool named;
	int r;

	if (!v) {
		iovm_error_set(err, -ENOENT, "vm %s: not registered (vm-add it first)", q->vm);
		return NULL;
	}
	{
		iovm_error cerr = {};

		if (vm_connect(o, v, &cerr) < 0) {
			iovm_error_set(err, -ECONNREFUSED, "%s (is the VM running?)", cerr.msg);
			return NULL;
		}
	}
	named = q->vf[0] && resolve_vf(o, q->vf, &vf, NULL) == 0;
	if (named && vf_taken(o, vf.addr)) {
		iovm_store_assignment held;

		if (iovm_store_assignment_get(o->store, vf.addr, &held, NULL) == 0)
			iovm_error_set(err, -EBUSY, "vf %s: already assigned to vm %s (%s)", vf.addr, held.vm,
				       iovm_store_assign_state_to_string(held.state));
		else
			iovm_error_set(err, -EBUSY, "vf %s: being released; try again later", vf.addr);
		return NULL;
	}
	if (choose_vf(o, v, q, named, &vf, &mode, err) < 0)
		return NULL;
	log_debug("attach: vm %s: chose vf %s", q->vm, vf.addr);
	if (mode == IOVM_MODE_SHARED)
		return attach_shared(o, v, q, &vf, err);
	/* The original settings, saved before anything is touched. */
	original_settings(o, &vf, &saved);
	snprintf(a.vf, sizeof(a.vf), "%s", vf.addr);
	snprintf(a.vm, sizeof(a.vm), "%s", q->vm);
	a.mode = IOVM_MODE_EXCLUSIVE;
	a.state = IOVM_STORE_RESERVED;
	iovm_vm_device_id(vf.addr, a.devid, sizeof(a.devid));
	args = vm_intent_args(q->vm, IOVM_MODE_EXCLUSIVE, a.devid);
	r = journal_attach(o, vf.addr, &args, &a, NULL, &saved, &id, err);
	if (r < 0) {
		policy_forget(o, q->vm, vf.addr);
		return NULL;
	}
	log_debug("attach: vm %s: vf %s reserved (intent %lld)", q->vm, vf.addr, (long long)id);
	o->intent = id;
	o->op = "attach";
	iovmd_crash_point("attach", "reserved");

	ao.vf = vf.addr;
	ao.failover_pair_id = q->failover_pair_id[0] ? q->failover_pair_id : NULL;
	if (q->cfg.present & IOVM_VFNET_MAC) {
		ao.mac = iovm_mac_format(q->cfg.mac, mac);
	}
	ao.vlan = q->cfg.present & IOVM_VFNET_VLAN ? q->cfg.vlan : 0;
	ao.timeout_ms = q->timeout_ms > 0 ? q->timeout_ms : o->d->cfg.attach_timeout_ms;
	iovm_store_assignment_set_state(o->store, vf.addr, IOVM_STORE_ATTACHING, NULL, NULL);
	r = iovm_vm_attach(v->vm, &ao, &res, err);
	if (r < 0) {
		iovm_vf_entry *e = iovm_vf_pool_get(o->pool, vf.addr);

		if (!e) {
			release_record(o, vf.addr);
			iovm_store_intent_finish(o->store, id, IOVM_INTENT_ROLLED_BACK, NULL);
		} else {
			/* Half in and the guest does not let go: kept reserved. */
			iovm_store_assignment_set_state(o->store, vf.addr, IOVM_STORE_RELEASE_PENDING, NULL, NULL);
			iovm_store_intent_finish(o->store, id, IOVM_INTENT_ROLLED_BACK, NULL);
		}
		return NULL;
	}
	log_debug("attach: vm %s: vf %s in the guest", q->vm, vf.addr);
	/* One commit for both: the record and the journal agree. */
	(void)iovm_store_begin(o->store, NULL);
	iovm_store_assignment_set_state(o->store, vf.addr, IOVM_STORE_ATTACHED, res.devid, NULL);
	iovm_store_intent_finish(o->store, id, IOVM_INTENT_DONE, NULL);
	store_commit(o);
	iovmd_crash_point("attach", "done");
	json_object *ret = obj_s(obj_s(obj_s(obj_s(obj_s(json_object_new_object(), "vm", q->vm), "vf", vf.addr),
					   "devid", res.devid), "port", res.port), "mode", "exclusive");
	emit(o, "VF_ATTACHED", json_object_get(ret));
	log_info("vm %s: vf %s attached as %s on %s", q->vm, vf.addr, res.devid, res.port);
	return ret;
}

static json_object *detach_shared(ops *o, vmrec *v, const iovm_api_request *q, const char *vf,
				  iovm_error *err)
{
	iovm_store_intent_args args = vm_intent_args(v->info.name, IOVM_MODE_SHARED, NULL);
	char object[IOVM_STORE_OBJECT_MAX];
	int64_t id = 0;
	int r;

	snprintf(object, sizeof(object), "vf %s", vf);
	if (iovm_store_intent_begin(o->store, IOVM_INTENT_DETACH, object, &args, &id, err) < 0)
		return NULL;
	o->intent = id;
	o->op = "detach";
	iovm_store_share_set_state(o->store, vf, v->info.name, IOVM_STORE_DETACHING, NULL, NULL, NULL);
	iovmd_crash_point("detach", "intent");
	if (vm_connect(o, v, NULL) < 0) {
		iovm_store_intent_finish(o->store, id, IOVM_INTENT_ROLLED_BACK, NULL);
		iovm_store_share_set_state(o->store, vf, v->info.name, IOVM_STORE_RELEASE_PENDING, NULL, NULL, NULL);
		iovm_error_set(err, -ECONNREFUSED, "vm %s: cannot reach its QMP socket %s; its share of vf %s "
			       "ends when the VM is found gone", v->info.name, v->info.qmp, vf);
		return NULL;
	}
	iovmd_crash_point("detach", "device-del");
	r = iovm_vm_detach_shared(v->vm, vf, q->timeout_ms > 0 ? q->timeout_ms : o->d->cfg.detach_timeout_ms,
				  err);
	if (r < 0 && r != -ENOENT) {
		iovm_store_intent_finish(o->store, id, IOVM_INTENT_DONE, NULL);
		iovm_store_share_set_state(o->store, vf, v->info.name, IOVM_STORE_RELEASE_PENDING, NULL, NULL, NULL);
		emit(o, "VF_RELEASE_PENDING", obj_s(obj_s(obj_s(json_object_new_object(), "vm", v->info.name),
						     "vf", vf), "reason", err->msg));
		return NULL;
	}
	iovmd_crash_point("detach", "released");
	release_share(o, vf, v->info.name);
	iovm_store_intent_finish(o->store, id, IOVM_INTENT_DONE, NULL);
	iovmd_crash_point("detach", "done");
	emit(o, "VF_DETACHED", obj_s(obj_s(json_object_new_object(), "vm", v->info.name), "vf", vf));
	log_info("vm %s: no longer shares vf %s", v->info.name, vf);
	return obj_s(obj_s(json_object_new_object(), "vm", v->info.name), "vf", vf);
}

static json_object *cmd_detach(ops *o, const iovm_api_request *q, iovm_error *err)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	char object[IOVM_STORE_OBJECT_MAX], vfaddr[IOVM_STORE_ADDR_MAX];
	iovm_store_intent_args args;
	iovm_store_assignment a;
	size_t n = 0;
	int64_t id = 0;
	vmrec *v = vm_find(o, q->vm);
	int r;

	if (!v) {
		iovm_error_set(err, -ENOENT, "vm %s: not registered", q->vm);
		return NULL;
	}
	if (q->vf[0]) {
		iovm_vf vf;

		if (resolve_vf(o, q->vf, &vf, err) < 0)
			return NULL;
		snprintf(vfaddr, sizeof(vfaddr), "%s", vf.addr);
	} else {
		_cleanup_free_ iovm_store_share *shs = NULL;
		size_t ns = 0;

		if (iovm_store_assignment_list(o->store, q->vm, &as, &n, err) < 0 ||
		    iovm_store_share_list(o->store, NULL, q->vm, &shs, &ns, err) < 0)
			return NULL;
		if (n + ns != 1) {
			iovm_error_set(err, n + ns ? -EINVAL : -ENOENT, "vm %s: %s; name the VF with 'vf'", q->vm,
				       n + ns ? "holds several VFs" : "holds no VF");
			return NULL;
		}
		snprintf(vfaddr, sizeof(vfaddr), "%s", n ? as[0].vf : shs[0].vf);
	}
	{
		iovm_store_share sh;

		if (iovm_store_share_get(o->store, vfaddr, q->vm, &sh, NULL) == 0)
			return detach_shared(o, v, q, vfaddr, err);
	}
	if (iovm_store_assignment_get(o->store, vfaddr, &a, NULL) < 0 || strcmp(a.vm, q->vm)) {
		iovm_error_set(err, -ENOENT, "vm %s: vf %s is not attached to it", q->vm, vfaddr);
		return NULL;
	}
	snprintf(object, sizeof(object), "vf %s", vfaddr);
	args = vm_intent_args(q->vm, IOVM_MODE_EXCLUSIVE, a.devid);
	(void)iovm_store_begin(o->store, NULL);
	if (iovm_store_intent_begin(o->store, IOVM_INTENT_DETACH, object, &args, &id, err) < 0) {
		iovm_store_rollback(o->store);
		return NULL;
	}
	o->intent = id;
	o->op = "detach";
	iovm_store_assignment_set_state(o->store, vfaddr, IOVM_STORE_DETACHING, NULL, NULL);
	if (store_commit(o) < 0) {
		iovm_error_set(err, -EIO, "vf %s: the state db did not take the detach; nothing done", vfaddr);
		return NULL;
	}
	iovmd_crash_point("detach", "intent");
	log_debug("detach: vm %s: vf %s journalled (intent %lld)", q->vm, vfaddr, (long long)id);
	if (!v->vm && vm_connect(o, v, NULL) < 0) {
		/* The VM is not there: its VF comes back through reclaim. */
		iovm_store_intent_finish(o->store, id, IOVM_INTENT_ROLLED_BACK, NULL);
		iovm_store_assignment_set_state(o->store, vfaddr, IOVM_STORE_RELEASE_PENDING, NULL, NULL);
		iovm_error_set(err, -ECONNREFUSED, "vm %s: cannot reach its QMP socket %s; vf %s is "
			       "returned when the VM is found gone", q->vm, v->info.qmp, vfaddr);
		return NULL;
	}
	r = iovm_vm_detach(v->vm, vfaddr, q->timeout_ms > 0 ? q->timeout_ms : o->d->cfg.detach_timeout_ms,
			   err);
	if (r < 0) {
		iovm_store_intent_finish(o->store, id, IOVM_INTENT_DONE, NULL);
		if (iovm_vf_pool_get(o->pool, vfaddr)) {
			iovm_store_assignment_set_state(o->store, vfaddr, IOVM_STORE_RELEASE_PENDING, NULL, NULL);
			emit(o, "VF_RELEASE_PENDING", obj_s(obj_s(obj_s(json_object_new_object(), "vm", q->vm),
							     "vf", vfaddr), "reason", err->msg));
		}
		return NULL;
	}
	log_debug("detach: vm %s: vf %s out of the guest", q->vm, vfaddr);
	(void)iovm_store_begin(o->store, NULL);
	release_record(o, vfaddr);
	iovm_store_intent_finish(o->store, id, IOVM_INTENT_DONE, NULL);
	store_commit(o);
	iovmd_crash_point("detach", "done");
	emit(o, "VF_DETACHED", obj_s(obj_s(json_object_new_object(), "vm", q->vm), "vf", vfaddr));
	log_info("vm %s: vf %s detached", q->vm, vfaddr);
	return obj_s(obj_s(json_object_new_object(), "vm", q->vm), "vf", vfaddr);
}

/* Carries out the rebalancing move the policy proposed when a VF freed up:
 * the sharer leaves its shared VF (its macvtap NIC is unplugged) and gets
 * the free VF exclusively (a VF appears in the guest). If the exclusive
 * attach fails, it shares its old VF again. Each outcome is logged and
 * sent as an event. */
static json_object *cmd_attach(ops *o, const iovm_api_request *q, iovm_error *err);
static json_object *cmd_detach(ops *o, const iovm_api_request *q, iovm_error *err);

static void run_move(ops *o)
{
	iovm_api_request q = {};
	iovm_store_share sh;
	iovm_policy_move m;
	iovm_error err = {};
	json_object *ret;
	vmrec *v;

	if (!o->move_pending)
		return;
	m = o->move;
	o->move_pending = false;
	v = vm_find(o, m.vm);
	if (!v || iovm_store_share_get(o->store, m.from_vf, m.vm, &sh, NULL) < 0 || sh.state != IOVM_STORE_ATTACHED ||
	    vf_taken(o, m.to_vf)) {
		log_info("rebalance: vm %s (%s -> %s): no longer applies", m.vm, m.from_vf, m.to_vf);
		return;
	}
	log_info("rebalance: vm %s leaves shared vf %s for vf %s", m.vm, m.from_vf, m.to_vf);
	o->op = "rebalance";
	q.cmd = IOVM_API_DETACH;
	snprintf(q.vm, sizeof(q.vm), "%s", m.vm);
	snprintf(q.vf, sizeof(q.vf), "%s", m.from_vf);
	ret = cmd_detach(o, &q, &err);
	if (!ret) {
		log_warning(err.code, "rebalance: vm %s: cannot leave shared vf %s: %s", m.vm, m.from_vf, err.msg);
		emit(o, "REBALANCE_FAILED", obj_s(obj_s(obj_s(obj_s(json_object_new_object(), "vm", m.vm),
							    "from_vf", m.from_vf), "to_vf", m.to_vf), "reason", err.msg));
		goto out;
	}
	json_object_put(ret);
	q.cmd = IOVM_API_ATTACH;
	q.mode = IOVM_MODE_EXCLUSIVE;
	snprintf(q.vf, sizeof(q.vf), "%s", m.to_vf);
	ret = cmd_attach(o, &q, &err);
	if (!ret) {
		iovm_error err2 = {};

		log_warning(err.code, "rebalance: vm %s: cannot take vf %s: %s; sharing vf %s again", m.vm, m.to_vf,
			    err.msg, m.from_vf);
		emit(o, "REBALANCE_FAILED", obj_s(obj_s(obj_s(obj_s(json_object_new_object(), "vm", m.vm),
							    "from_vf", m.from_vf), "to_vf", m.to_vf), "reason", err.msg));
		q.mode = IOVM_MODE_SHARED;
		snprintf(q.vf, sizeof(q.vf), "%s", m.from_vf);
		ret = cmd_attach(o, &q, &err2);
		if (!ret)
			log_error(err2.code, "rebalance: vm %s: cannot share vf %s again: %s", m.vm, m.from_vf, err2.msg);
		json_object_put(ret);
		goto out;
	}
	json_object_put(ret);
	emit(o, "VF_REBALANCED", obj_s(obj_s(obj_s(json_object_new_object(), "vm", m.vm), "from_vf", m.from_vf),
				       "to_vf", m.to_vf));
	log_info("rebalance: vm %s now holds vf %s exclusively (was sharing vf %s)", m.vm, m.to_vf, m.from_vf);
out:
	o->op = "";
	o->intent = 0;
	publish(o);
}

static void run_job(ops *o, iovmd_job *j)
{
	iovm_error err = {};
	json_object *ret = NULL;
	iovmd_msg *snap, *reply;
	char *line;

	o->job = j;
	o->intent = 0;
	o->op = "";
	log_debug("running %s", iovm_api_cmd_to_string(j->req.cmd));
	switch (j->req.cmd) {
	case IOVM_API_PF_SET_VFS: o->op = "set-vfs"; ret = cmd_set_vfs(o, &j->req, &err); break;
	case IOVM_API_VF_SET: ret = cmd_vf_set(o, &j->req, &err); break;
	case IOVM_API_VM_ADD: ret = cmd_vm_add(o, &j->req, &err); break;
	case IOVM_API_VM_REMOVE: ret = cmd_vm_remove(o, &j->req, &err); break;
	case IOVM_API_ATTACH: ret = cmd_attach(o, &j->req, &err); break;
	case IOVM_API_DETACH: ret = cmd_detach(o, &j->req, &err); break;
	default:
		iovm_error_set(&err, -EINVAL, "%s: not an operation", iovm_api_cmd_to_string(j->req.cmd));
	}
	if (!ret && !err.code)
		iovm_error_set(&err, -EIO, "%s failed", iovm_api_cmd_to_string(j->req.cmd));
	if (!ret)
		log_error(err.code, "%s: %s", iovm_api_cmd_to_string(j->req.cmd), err.msg);
	/* The snapshot first, so a client reading right after the reply sees
	 * the change. */
	line = ret ? iovm_api_format_return(j->req.id, ret) : iovm_api_format_error(j->req.id, err.code, err.msg);
	/* The reply first, the snapshot (which reads the whole inventory)
	 * after it: the main thread holds back reads until that snapshot is
	 * in, so a client reading right after the reply still sees the
	 * change. The snapshot's message is allocated before the reply goes,
	 * so that the main thread is sure to get one. */
	snap = calloc(1, sizeof(*snap));
	reply = calloc(1, sizeof(*reply));
	if (snap && reply && line) {
		*reply = (iovmd_msg){ .client = j->client, .line = line, .final = true, .snapshot_follows = true };
		iovmd_queue_push(&o->d->msgs, reply);
		log_debug("%s: replied; publishing", iovm_api_cmd_to_string(j->req.cmd));
	} else {
		free(reply);
		post(o, j->client, line, true);
	}
	if (j->req.cmd == IOVM_API_VM_ADD || j->req.cmd == IOVM_API_VM_REMOVE)
		publish_vms(o, snap);
	else
		publish_into(o, snap);
	log_debug("%s: published", iovm_api_cmd_to_string(j->req.cmd));
	json_object_put(ret);
	o->job = NULL;
	o->intent = 0;
}

/* ---- recovery ----------------------------------------------------------------- */

/* Gives a VF back without its VM: waits for whoever holds it to let go,
 * restores the saved settings and driver, forgets it. */
static int restore_vf(ops *o, const char *vfaddr, iovm_error *err)
{
	iovm_store_vf_saved saved;
	iovm_vfnet *nl = NULL;
	char who[256] = "";
	int64_t deadline = now_ms() + LET_GO_MS;
	iovm_vf vf;
	int r;

	if (iovm_vf_get(o->host, vfaddr, &vf, NULL) < 0) {
		log_info("recovery: vf %s no longer exists; forgetting it", vfaddr);
		release_record(o, vfaddr);
		return 0;
	}
	while ((r = iovm_vf_users(o->host, vfaddr, who, sizeof(who), err)) > 0) {
		if (now_ms() >= deadline)
			return iovm_error_set(err, -EBUSY, "vf %s: still held: %s", vfaddr, who);
		poll(NULL, 0, 50);
	}
	if (r < 0)
		return r;
	if (iovm_store_vf_saved_get(o->store, vfaddr, &saved, NULL) == 0) {
		if (saved.cfg.present && vf.pf_netdev[0]) {
			r = iovm_vfnet_open(o->host, &nl, err);
			if (r >= 0)
				r = iovm_vfnet_restore(nl, vf.pf_addr, vf.index, &saved.cfg, err);
			iovm_vfnet_close(nl);
			if (r < 0)
				return r;
		}
		if (saved.driver[0] && strcmp(saved.driver, vf.driver) && strcmp(saved.driver, "vfio-pci")) {
			r = iovm_vf_bind(o->host, vfaddr, saved.driver, err);
			if (r < 0)
				return r;
		}
	}
	release_record(o, vfaddr);
	return 0;
}

/* Puts a VF that is (still) in a live VM back into the in-memory pool. */
static void adopt(ops *o, const iovm_store_assignment *a, const char *port)
{
	iovm_store_vf_saved saved;
	iovm_vf_entry *e;

	if (iovm_vf_pool_reserve(o->pool, a->vf, a->vm, NULL) < 0)
		return;
	e = iovm_vf_pool_get(o->pool, a->vf);
	e->use = a->state == IOVM_STORE_RELEASE_PENDING ? IOVM_VF_RELEASE_PENDING : IOVM_VF_IN_USE;
	snprintf(e->devid, sizeof(e->devid), "%s", a->devid);
	snprintf(e->port, sizeof(e->port), "%s", port);
	if (iovm_store_vf_saved_get(o->store, a->vf, &saved, NULL) == 0) {
		snprintf(e->orig_driver, sizeof(e->orig_driver), "%s", saved.driver);
		if (saved.cfg.present)
			iovm_vfnet_config_format(&saved.cfg, e->saved_net, sizeof(e->saved_net));
	}
}

/* Is the device in the VM? 1 yes, 0 no, < 0 cannot tell (VM unreachable). */
static int device_in_vm(ops *o, vmrec *v, const char *devid, char *port, size_t n)
{
	json_object *pci = NULL;
	int r;

	if (!v || vm_connect(o, v, NULL) < 0)
		return -ECONNREFUSED;
	r = iovm_qmp_execute(iovm_vm_get_qmp(v->vm), "query-pci", NULL, &pci, CONNECT_TIMEOUT_MS, NULL);
	if (r < 0)
		return r;
	r = iovm_vm_pci_find(pci, devid, port, n);
	json_object_put(pci);
	return r == 0 ? 1 : 0;
}

static void recover_assignment(ops *o, const iovm_store_assignment *a, bool detaching)
{
	vmrec *v = vm_find(o, a->vm);
	char port[IOVM_VM_ID_MAX] = "";
	iovm_error err = {};
	int in = a->devid[0] ? device_in_vm(o, v, a->devid, port, sizeof(port)) : 0;

	if (in == 1 && !detaching) {
		iovm_store_assignment_set_state(o->store, a->vf, IOVM_STORE_ATTACHED, NULL, NULL);
		adopt(o, a, port);
		if (a->state != IOVM_STORE_ATTACHED)
			log_info("recovery: vf %s is in vm %s: attach completed", a->vf, a->vm);
		return;
	}
	if (in == 1 && detaching) {
		iovm_store_assignment b = *a;

		b.state = IOVM_STORE_ATTACHED;
		adopt(o, &b, port);
		log_info("recovery: vf %s: finishing its detach from vm %s", a->vf, a->vm);
		if (iovm_vm_detach(v->vm, a->vf, o->d->cfg.detach_timeout_ms, &err) < 0) {
			log_warning(err.code, "recovery: vf %s: %s", a->vf, err.msg);
			iovm_store_assignment_set_state(o->store, a->vf, IOVM_STORE_RELEASE_PENDING, NULL, NULL);
			return;
		}
		release_record(o, a->vf);
		return;
	}
	/* Not in the VM (never got there, or left), or the VM is gone. */
	if (in < 0)
		log_info("recovery: vm %s unreachable: reclaiming vf %s", a->vm, a->vf);
	else
		log_info("recovery: vf %s is not in vm %s: giving it back", a->vf, a->vm);
	if (restore_vf(o, a->vf, &err) < 0) {
		log_warning(err.code, "recovery: vf %s: %s; kept reserved", a->vf, err.msg);
		iovm_store_assignment_set_state(o->store, a->vf, IOVM_STORE_RELEASE_PENDING, NULL, NULL);
		adopt(o, a, "");
		iovm_vf_pool_set(o->pool, a->vf, IOVM_VF_RECLAIM);
	}
}

static void recover_share(ops *o, const iovm_store_share *sh)
{
	_cleanup_free_ iovm_shared_entry *in = NULL;
	vmrec *v = vm_find(o, sh->vm);
	iovm_error err = {};
	size_t n = 0;
	bool present = false;

	if (v && vm_connect(o, v, NULL) == 0 && iovm_vm_shared_list(v->vm, &in, &n, NULL) == 0)
		for (size_t i = 0; i < n; i++)
			present |= !strcmp(in[i].vf, sh->vf);
	if (present && sh->state != IOVM_STORE_DETACHING) {
		iovm_store_share_set_state(o->store, sh->vf, sh->vm, IOVM_STORE_ATTACHED, NULL, NULL, NULL);
		return;
	}
	if (present) {
		log_info("recovery: vf %s: finishing vm %s's unshare", sh->vf, sh->vm);
		if (iovm_vm_detach_shared(v->vm, sh->vf, o->d->cfg.detach_timeout_ms, &err) < 0 &&
		    err.code != -ENOENT) {
			log_warning(err.code, "recovery: %s", err.msg);
			iovm_store_share_set_state(o->store, sh->vf, sh->vm, IOVM_STORE_RELEASE_PENDING, NULL, NULL,
						   NULL);
			return;
		}
	} else {
		log_info("recovery: vm %s no longer has its share of vf %s: ending it", sh->vm, sh->vf);
		/* A half-made share (crash before device_add) may have left a macvtap. */
		if (v && v->vm)
			(void)iovm_vm_detach_shared(v->vm, sh->vf, 1000, NULL);
		(void)iovm_shared_reclaim(sh->vm, sh->vf, NULL);
	}
	release_share(o, sh->vf, sh->vm);
}

static int recover(ops *o, iovm_error *err)
{
	_cleanup_free_ iovm_store_intent *open = NULL;
	_cleanup_free_ iovm_store_assignment *as = NULL;
	_cleanup_free_ iovm_store_vf_saved *sv = NULL;
	_cleanup_free_ iovm_store_pf *pfs = NULL;
	size_t ni = 0, na = 0, ns = 0, np = 0;
	int r;

	r = iovm_store_intent_list_open(o->store, &open, &ni, err);
	if (r < 0)
		return r;
	/* 1. Assignments: each is checked against its VM; open attach/detach
	 * intents decide which way a half-done one goes. */
	r = iovm_store_assignment_list(o->store, NULL, &as, &na, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < na; i++) {
		bool detaching = as[i].state == IOVM_STORE_DETACHING;

		recover_assignment(o, &as[i], detaching);
	}
	/* 1b. Shares: kept if the VM still has the device, else ended. */
	{
		_cleanup_free_ iovm_store_share *shs = NULL;
		size_t nsh = 0;

		r = iovm_store_share_list(o->store, NULL, NULL, &shs, &nsh, err);
		if (r < 0)
			return r;
		for (size_t i = 0; i < nsh; i++)
			recover_share(o, &shs[i]);
	}
	/* 2. Settings saved for a VF nobody holds any more: restore them. */
	r = iovm_store_vf_saved_list(o->store, &sv, &ns, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < ns; i++) {
		iovm_store_assignment a;
		iovm_error e2 = {};

		if (iovm_store_assignment_get(o->store, sv[i].vf, &a, NULL) == 0)
			continue;
		log_info("recovery: vf %s has saved settings but no assignment: restoring", sv[i].vf);
		if (restore_vf(o, sv[i].vf, &e2) < 0)
			log_warning(e2.code, "recovery: %s", e2.msg);
	}
	/* 3. Desired PF state: after a host reboot the VFs are gone. */
	r = iovm_store_pf_list(o->store, &pfs, &np, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < np; i++) {
		iovm_store_assignment a;
		iovm_error e2 = {};
		iovm_pf info;

		if (iovm_pf_get(o->host, pfs[i].pf, &info, &e2) < 0) {
			log_warning(e2.code, "recovery: desired state for %s: %s", pfs[i].pf, e2.msg);
			continue;
		}
		if (info.num_vfs == pfs[i].num_vfs)
			continue;
		if (assigned_vf_of_pf(o, pfs[i].pf, &a)) {
			log_warning(0, "recovery: pf %s has %u VFs, %u desired, but vf %s is in vm %s: not resizing",
				    pfs[i].pf, info.num_vfs, pfs[i].num_vfs, a.vf, a.vm);
			continue;
		}
		log_info("recovery: pf %s has %u VFs, %u desired: re-applying", pfs[i].pf, info.num_vfs,
			 pfs[i].num_vfs);
		if (iovm_pf_set_numvfs(o->host, pfs[i].pf, pfs[i].num_vfs, driver_kind(pfs[i].driver), 0, &e2) < 0 ||
		    apply_vf_configs(o, pfs[i].pf, &e2) < 0)
			log_error(e2.code, "recovery: pf %s: %s", pfs[i].pf, e2.msg);
	}
	/* 4. The journal: every open intent is now settled by the above. */
	for (size_t i = 0; i < ni; i++) {
		iovm_store_assignment a;
		char vf[IOVM_STORE_ADDR_MAX] = "";
		bool done = false;
		const char *vm = open[i].args.vm;
		iovm_store_share sh;
		bool shared = open[i].args.mode == IOVM_MODE_SHARED;

		if ((open[i].kind == IOVM_INTENT_ATTACH || open[i].kind == IOVM_INTENT_DETACH) &&
		    open[i].args_error[0])
			/* Which holder it was is unknown; the VF itself was
			 * settled from its records above. */
			log_warning(-EBADMSG, "recovery: intent %lld (%s %s): stored arguments unreadable: %s",
				    (long long)open[i].id, iovm_store_intent_kind_to_string(open[i].kind),
				    open[i].object, open[i].args_error);
		else if (open[i].kind == IOVM_INTENT_ATTACH && sscanf(open[i].object, "vf %15s", vf) == 1)
			done = shared ? iovm_store_share_get(o->store, vf, vm, &sh, NULL) == 0 &&
					sh.state == IOVM_STORE_ATTACHED
				      : iovm_store_assignment_get(o->store, vf, &a, NULL) == 0 &&
					a.state == IOVM_STORE_ATTACHED;
		else if (open[i].kind == IOVM_INTENT_DETACH && sscanf(open[i].object, "vf %15s", vf) == 1)
			done = shared ? iovm_store_share_get(o->store, vf, vm, &sh, NULL) < 0
				      : iovm_store_assignment_get(o->store, vf, &a, NULL) < 0;
		else
			done = true;   /* set-vfs: desired state re-applied above */
		iovm_store_intent_finish(o->store, open[i].id, done ? IOVM_INTENT_DONE : IOVM_INTENT_ROLLED_BACK, NULL);
		log_info("recovery: intent %lld (%s %s, last step '%s') %s", (long long)open[i].id,
			 iovm_store_intent_kind_to_string(open[i].kind), open[i].object, open[i].step,
			 done ? "completed" : "rolled back");
	}
	return 0;
}

/* ---- throughput sampling ---------------------------------------------------------- */

/* Byte counter of a VF for the policy's throughput window: a shared VF's
 * traffic passes through its host netdev (the macvtaps sit on it); an
 * exclusive one is counted by the PF's per-VF statistics where the driver
 * has them (igb reports zeros: see docs/allocation.md). */
static int vf_counter(ops *o, const iovm_vf *vf, uint64_t *ret)
{
	uint64_t sum = 0;

	if (!vf->netdev[0])
		return -ENODATA;
	for (int k = 0; k < 2; k++) {
		_cleanup_fclose_ FILE *f = NULL;
		unsigned long long v = 0;
		char path[512];

		snprintf(path, sizeof(path), "%s/class/net/%s/statistics/%s", o->d->cfg.sysfs_root, vf->netdev,
			 k ? "tx_bytes" : "rx_bytes");
		f = fopen(path, "re");
		if (!f || fscanf(f, "%llu", &v) != 1)
			return -EIO;
		sum += v;
	}
	*ret = sum;
	return 0;
}

/* An exclusive VF inside a guest, on a driver whose PF keeps no per-VF
 * counters (igb): the guest's own counters of the interface with the VF's
 * administrative MAC, through the VM's guest agent. sample() collects such
 * VFs as guest_q entries and hands each VM's agent one question for all of
 * its VFs (guest_counters) to the gsample workers, so a slow or busy agent
 * holds up no operation; the answers come back through gsample_fd()
 * (guest_answers). A failing agent is asked again after QGA_RETRY_MS; its
 * VFs get no sample meanwhile. */
#define QGA_RETRY_MS 10000
#define QGA_TIMEOUT_MS 20000
#define QGA_MIN_INTERVAL_MS 2000

typedef struct guest_q {
	vmrec *v;
	const char *vf;
	char mac[18];
} guest_q;

/* The VM that holds VF exclusively and has an agent, and the VF's MAC:
 * then VF is queued in *q (grown as needed) and 0 is returned; -ENODATA:
 * no agent, no MAC or not an exclusive VF in a VM. */
static int guest_counter_queue(ops *o, const iovm_vf *vf, const iovm_vfnet_config *cfg, guest_q **q,
			       size_t *n)
{
	static const uint8_t zero[6];
	vmrec *v = NULL;
	guest_q *nq;

	if (!(cfg->present & IOVM_VFNET_MAC) || !memcmp(cfg->mac, zero, 6))
		return -ENODATA;
	for (size_t i = 0; i < o->n_as && !v; i++)
		if (!strcmp(o->as[i].vf, vf->addr) && o->as[i].state == IOVM_STORE_ATTACHED)
			v = vm_find(o, o->as[i].vm);
	if (!v || !v->info.qga[0])
		return -ENODATA;
	nq = reallocarray(*q, *n + 1, sizeof(**q));
	if (!nq)
		return -ENOMEM;
	*q = nq;
	nq[*n] = (guest_q){ .v = v, .vf = vf->addr };
	iovm_mac_format(cfg->mac, nq[*n].mac);
	(*n)++;
	return 0;
}

/* One guest-network-get-interfaces per VM for all of its queued VFs, unless
 * the VM's last question is still pending or failed too recently. */
static void guest_counters(ops *o, const guest_q *q, size_t n)
{
	if (!o->gs)
		return;
	for (vmrec *v = o->vms; v; v = v->next) {
		_cleanup_free_ const char **vfs = NULL, **macs = NULL;
		size_t m = 0;
		int r;

		for (size_t i = 0; i < n; i++)
			m += q[i].v == v;
		if (!m || now_ms() < v->qga_next_try_ms || gsample_pending(o->gs, v->info.name))
			continue;
		vfs = calloc(m, sizeof(*vfs));
		macs = calloc(m, sizeof(*macs));
		if (!vfs || !macs)
			return;
		m = 0;
		for (size_t i = 0; i < n; i++)
			if (q[i].v == v) {
				vfs[m] = q[i].vf;
				macs[m++] = q[i].mac;
			}
		r = gsample_ask(o->gs, v->info.name, v->info.qga, m, vfs, macs);
		if (r < 0)
			log_debug("vm %s: no question for the guest agent: %s", v->info.name, strerror(-r));
		/* At most one question per QGA_MIN_INTERVAL_MS: the counters
		 * are cumulative, so fewer samples lose nothing, and the agent
		 * (one client at a time) stays free for others. */
		v->qga_next_try_ms = now_ms() + QGA_MIN_INTERVAL_MS;
	}
}

/* VF is still attached to VM (an answer can outlive the assignment it was
 * asked for; a count from another guest must not land on the VF). */
static bool vf_in_vm(const ops *o, const char *vf, const char *vm)
{
	for (size_t i = 0; i < o->n_as; i++)
		if (!strcmp(o->as[i].vf, vf) && !strcmp(o->as[i].vm, vm) && o->as[i].state == IOVM_STORE_ATTACHED)
			return true;
	return false;
}

/* The agents' answers so far, into the policy's counters. */
static void guest_answers(ops *o)
{
	gsample_q *all = gsample_take(o->gs);

	for (gsample_q *a = all; a; a = a->next) {
		vmrec *v = vm_find(o, a->vm);

		if (!v)
			continue;       /* removed meanwhile */
		if (a->r < 0) {
			v->qga_next_try_ms = now_ms() + QGA_RETRY_MS;
			if (!v->qga_warned)
				log_warning(a->r, "vm %s: no counters from the guest agent (asking again every %d s): %s",
					    v->info.name, QGA_RETRY_MS / 1000, a->err);
			v->qga_warned = true;
			continue;
		}
		if (v->qga_warned)
			log_info("vm %s: counters from the guest agent again", v->info.name);
		v->qga_warned = false;
		for (size_t k = 0; k < a->n; k++) {
			if (a->status[k] < 0) {
				/* The guest has no such interface (yet), or no
				 * statistics: no sample rather than a zero that
				 * would look like a counter reset. */
				log_debug("vm %s: vf %s: the guest agent has no counters for MAC %s: %s",
					  v->info.name, a->vf[k], a->mac[k], strerror(-a->status[k]));
				continue;
			}
			if (!vf_in_vm(o, a->vf[k], v->info.name))
				continue;
			log_debug("vm %s: vf %s: %llu bytes from the guest agent (interface %s)", v->info.name,
				  a->vf[k], (unsigned long long)a->bytes[k], a->mac[k]);
			(void)iovm_policy_sample(o->pol, a->vf[k], a->bytes[k], NULL);
		}
	}
	gsample_q_free(all);
}

static void sample(ops *o, bool close_window)
{
	_cleanup_free_ guest_q *gq = NULL;
	iovm_vfnet *nl = NULL;
	size_t ngq = 0;

	if (iovm_vfnet_open(o->inv_host, &nl, NULL) < 0)
		nl = NULL;
	/* The inventory is sorted by PF: one group of VFs per PF. */
	for (size_t i = 0, end; i < o->n_inv; i = end) {
		_cleanup_free_ iovm_vfnet_stats *st = NULL;
		_cleanup_free_ iovm_vfnet_config *cf = NULL;
		unsigned nvf = 0;
		bool need_pf = false;
		int m = -1;

		for (end = i; end < o->n_inv && !strcmp(o->inv[end].pf_addr, o->inv[i].pf_addr); end++) {
			uint64_t c;

			if (vf_counter(o, &o->inv[end], &c) == 0)
				(void)iovm_policy_sample(o->pol, o->inv[end].addr, c, NULL);
			else
				need_pf = true;
			nvf = o->inv[end].index + 1 > nvf ? o->inv[end].index + 1 : nvf;
		}
		/* VFs without a host netdev: the PF's per-VF counters, one request;
		 * where those are zero, the guest's (guest_counters). */
		if (need_pf && nl && o->inv[i].pf_netdev[0] && (st = calloc(nvf, sizeof(*st))) &&
		    (cf = calloc(nvf, sizeof(*cf))))
			m = iovm_vfnet_get_all(nl, o->inv[i].pf_addr, cf, st, nvf, NULL);
		for (size_t k = i; m > 0 && k < end; k++) {
			const iovm_vf *vf = &o->inv[k];
			uint64_t c;

			if (vf->netdev[0] || (int)vf->index >= m)
				continue;
			c = st[vf->index].rx_bytes + st[vf->index].tx_bytes;
			/* Zero here and the guest counts: its sample comes
			 * from guest_counters below. */
			if (c == 0 && guest_counter_queue(o, vf, &cf[vf->index], &gq, &ngq) == 0)
				continue;
			(void)iovm_policy_sample(o->pol, vf->addr, c, NULL);
		}
	}
	iovm_vfnet_close(nl);
	guest_answers(o);
	guest_counters(o, gq, ngq);
	if (close_window)
		(void)iovm_policy_window_reset(o->pol, now_nsec(), NULL);
}

/* ---- the thread ---------------------------------------------------------------- */

/* Finished intents beyond --journal-keep: one bounded DELETE per tick,
 * nothing per request (docs/state.md). */
static void prune_journal(ops *o)
{
	iovm_error err = {};
	int r;

	r = iovm_store_intent_prune_keep(o->store, o->d->cfg.journal_keep, &err);
	if (r < 0)
		log_warning(r, "journal: %s", err.msg);
	else if (r > 0)
		log_debug("journal: pruned %d finished intents (keeping %u)", r, o->d->cfg.journal_keep);
}

static void tick(ops *o)
{
	int64_t now = now_ms();

	prune_journal(o);

	for (vmrec *v = o->vms; v; v = v->next) {
		if (v->vm) {
			/* VFs of a VM whose guest released them late, or that
			 * are waiting for QEMU to let go. */
			if (iovm_vm_reclaim(v->vm, 0, NULL) > 0)
				sync_vm(o, v, NULL);
			continue;
		}
		if (now >= v->next_try_ms && vm_connect(o, v, NULL) == 0) {
			iovm_vm_reclaim(v->vm, 0, NULL);
			sync_vm(o, v, NULL);
		}
	}
	/* A VF whose VM went away while we were not connected. */
	for (size_t i = 0; i < iovm_vf_pool_size(o->pool); i++) {
		iovm_vf_entry *e = iovm_vf_pool_at(o->pool, i);
		vmrec *v = vm_find(o, e->vm);

		if (e->use == IOVM_VF_RECLAIM && (!v || !v->vm)) {
			iovm_store_assignment a = {};
			iovm_error err = {};

			snprintf(a.vf, sizeof(a.vf), "%s", e->vf);
			if (restore_vf(o, a.vf, &err) == 0) {
				iovm_vf_pool_set(o->pool, a.vf, IOVM_VF_FREE);
				break;   /* the pool changed under the loop */
			}
		}
	}
	publish(o);
}

static void *thread_main(void *userdata)
{
	ops o = { .d = userdata };
	iovmd *d = o.d;
	_cleanup_free_ iovm_store_vm *vms = NULL;
	iovm_error err = {};
	size_t n = 0;
	uint64_t result = 2;
	int64_t next_tick, next_sample, next_window;
	int r;

	r = iovm_host_new(d->cfg.sysfs_root, &o.host);
	if (r >= 0)
		r = iovm_host_new(d->cfg.sysfs_root, &o.inv_host);
	if (r >= 0)
		r = iovm_host_set_lock_probe(o.inv_host, false);
	if (r < 0) {
		log_error(r, "sysfs root %s", d->cfg.sysfs_root);
		goto fail;
	}
	r = iovm_store_open(d->cfg.state_path, &o.store, &err);
	if (r < 0) {
		log_error(r, "state: %s", err.msg);
		goto fail;
	}
	r = iovm_vf_pool_new(&o.pool);
	if (r >= 0)
		r = iovm_policy_new(&(iovm_policy_config){ .algo = IOVM_POLICY_ALGO_INDEXED,
							    .max_users = d->cfg.max_users,
							    .rebalance = d->cfg.rebalance }, now_nsec(), &o.pol, &err);
	if (r >= 0)
		r = iovm_store_vm_list(o.store, &vms, &n, &err);
	if (r < 0) {
		log_error(r, "state: %s", err.msg);
		goto fail;
	}
	for (size_t i = 0; i < n; i++) {
		vmrec *v = calloc(1, sizeof(*v));
		iovm_error cerr = {};

		if (!v)
			goto fail;
		v->info = vms[i];
		v->next = o.vms;
		o.vms = v;
		policy_add_vm(&o, &v->info);
		if (vm_connect(&o, v, &cerr) < 0)
			log_info("vm %s: not reachable at start: %s", v->info.name, cerr.msg);
	}
	if (d->cfg.recover) {
		err = (iovm_error){};
		r = recover(&o, &err);
		if (r < 0) {
			log_error(r, "recovery failed: %s", err.msg);
			goto fail;
		}
	}
	/* The policy learns the VFs, then who holds what. */
	publish(&o);
	{
		_cleanup_free_ iovm_store_assignment *as = NULL;
		size_t na = 0;

		if (iovm_store_assignment_list(o.store, NULL, &as, &na, NULL) >= 0)
			for (size_t i = 0; i < na; i++) {
				iovm_error perr = {};

				if (iovm_policy_assign(o.pol, as[i].vm, as[i].vf, as[i].mode, &perr) < 0)
					log_warning(perr.code, "policy: %s", perr.msg);
			}
	}
	{
		_cleanup_free_ iovm_store_share *shs = NULL;
		size_t nsh = 0;

		if (iovm_store_share_list(o.store, NULL, NULL, &shs, &nsh, NULL) >= 0)
			for (size_t i = 0; i < nsh; i++) {
				iovm_error perr = {};

				if (iovm_policy_assign(o.pol, shs[i].vm, shs[i].vf, IOVM_MODE_SHARED, &perr) < 0)
					log_warning(perr.code, "policy: %s", perr.msg);
			}
	}
	r = gsample_new(QGA_TIMEOUT_MS, &o.gs);
	if (r < 0)
		log_warning(r, "no threads for the guest agents: exclusive VFs on igb will show no throughput");
	publish(&o);
	result = 1;
	(void)!write(d->ready_efd, &result, sizeof(result));
	next_tick = now_ms() + d->cfg.refresh_interval_ms;
	next_sample = now_ms() + d->cfg.sample_interval_ms;
	next_window = now_ms() + d->cfg.window_ms;

	while (!d->stopping) {
		struct pollfd pfd[2 + 256];
		vmrec *who[2 + 256];
		nfds_t k = 2;
		int64_t wait = (next_tick < next_sample ? next_tick : next_sample) - now_ms();

		pfd[0] = (struct pollfd){ .fd = d->jobs.efd, .events = POLLIN };
		/* the guest agents' answers (-1: no workers, ignored by poll) */
		pfd[1] = (struct pollfd){ .fd = o.gs ? gsample_fd(o.gs) : -1, .events = POLLIN };
		for (vmrec *v = o.vms; v && k < ELEMENTSOF(pfd); v = v->next)
			if (v->vm) {
				who[k] = v;
				pfd[k++] = (struct pollfd){ .fd = iovm_qmp_get_fd(iovm_vm_get_qmp(v->vm)),
							    .events = POLLIN };
			}
		r = poll(pfd, k, wait < 0 ? 0 : (int)wait);
		if (r < 0 && errno != EINTR) {
			log_error(errno, "poll");
			break;
		}
		if (r > 0 && pfd[1].revents)
			guest_answers(&o);
		for (nfds_t i = 2; r > 0 && i < k; i++) {
			if (!pfd[i].revents)
				continue;
			iovm_error perr = {};

			if (iovm_vm_process(who[i]->vm, &perr) == -ECONNRESET)
				vm_lost(&o, who[i], perr.msg[0] ? perr.msg : "QMP connection closed");
			else
				sync_vm(&o, who[i], NULL);
			publish(&o);
		}
		if (r > 0 && pfd[0].revents) {
			iovmd_job *j = iovmd_queue_pop_all(&d->jobs);

			while (j) {
				iovmd_job *next = j->next;

				if (!d->stopping && j->client)
					run_job(&o, j);
				iovm_api_request_done(&j->req);
				free(j);
				j = next;
			}
		}
		/* At most one move per turn of the loop: jobs and VM events
		 * come in between. */
		if (!d->stopping)
			run_move(&o);
		if (now_ms() >= next_sample) {
			bool close_window = now_ms() >= next_window;

			sample(&o, close_window);
			if (close_window)
				next_window = now_ms() + d->cfg.window_ms;
			next_sample = now_ms() + d->cfg.sample_interval_ms;
		}
		if (now_ms() >= next_tick) {
			tick(&o);
			next_tick = now_ms() + d->cfg.refresh_interval_ms;
		}
	}
	goto out;
fail:
	(void)!write(d->ready_efd, &result, sizeof(result));
out:
	/* Stops the questions under way (each polls the cancel fd). */
	gsample_free(o.gs);
	while (o.vms) {
		vmrec *v = o.vms;

		o.vms = v->next;
		iovm_vm_free(v->vm);
		free(v);
	}
	iovm_vf_pool_free(o.pool);
	iovm_policy_free(o.pol);
	free(o.known);
	free(o.as);
	free(o.shs);
	free(o.inv);
	iovm_store_close(o.store);
	iovm_host_free(o.host);
	iovm_host_free(o.inv_host);
	return NULL;
}

int iovmd_ops_start(iovmd *d, pthread_t *ret)
{
	return -pthread_create(ret, NULL, thread_main, d);
}
