/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Attach and detach VFs to running QEMU VMs over QMP, and give back the VFs
 * of VMs that went away. The sequence and its timeouts are in docs/qmp.md.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/clock.h"
#include "iovm/pci.h"
#include "iovm/sriov.h"
#include "iovm/vfio.h"
#include "iovm/vfnet.h"
#include "iovm/vm.h"
#include "shared/util.h"
#include "lib/vm/vm-internal.h"
#include "shared/json-util.h"

#define ATTACH_TIMEOUT_MS 10000
#define DETACH_TIMEOUT_MS 15000
/* After DEVICE_DELETED QEMU has closed the VF's fds; give the kernel a moment
 * to drop the last reference before the VF counts as free. */
#define LET_GO_TIMEOUT_MS 5000
#define LET_GO_POLL_MS 20

struct iovm_vm {
	char name[IOVM_VM_ID_MAX];
	iovm_qmp *qmp;
	iovm_host *host;
	iovm_vf_pool *pool;
	bool shutdown_seen;
	bool gone;
	iovm_qmp_event_cb event_cb;
	void *event_userdata;
	iovm_vm_step_cb step_cb;
	void *step_userdata;
};

static void step(iovm_vm *vm, const char *vf, const char *name)
{
	if (vm->step_cb)
		vm->step_cb(vm, vf, name, vm->step_userdata);
}

void iovm_vm_set_step_hook(iovm_vm *vm, iovm_vm_step_cb cb, void *userdata)
{
	vm->step_cb = cb;
	vm->step_userdata = userdata;
}

/* Events seen by the VM's connection, whoever is waiting. A DEVICE_DELETED for
 * one of our VFs means QEMU let go of it: it is returned by iovm_vm_process()
 * (or by the detach that is waiting for it). */
static void on_event(iovm_qmp *q, const char *event, json_object *data, json_object *ts, void *ud)
{
	iovm_vm *vm = ud;

	if (!strcmp(event, "SHUTDOWN"))
		vm->shutdown_seen = true;
	for (size_t i = 0; i < iovm_vf_pool_size(vm->pool); i++) {
		iovm_vf_entry *e = iovm_vf_pool_at(vm->pool, i);

		if (!strcmp(e->vm, vm->name) && e->devid[0] &&
		    (e->use == IOVM_VF_IN_USE || e->use == IOVM_VF_RELEASE_PENDING) &&
		    iovm_vm_is_device_deleted(event, data, e->devid))
			e->use = IOVM_VF_RECLAIM;
	}
	if (vm->event_cb)
		vm->event_cb(q, event, data, ts, vm->event_userdata);
}

void iovm_vm_set_event_handler(iovm_vm *vm, iovm_qmp_event_cb cb, void *userdata)
{
	if (vm) {
		vm->event_cb = cb;
		vm->event_userdata = userdata;
	}
}

int iovm_vm_open(const char *name, const char *qmp_path, iovm_host *host, iovm_vf_pool *pool,
		 int timeout_ms, iovm_vm **ret, iovm_error *err)
{
	iovm_vm *vm;
	int r;

	if (!name || !*name || strlen(name) >= IOVM_VM_ID_MAX || !qmp_path || !pool || !ret)
		return iovm_error_set(err, -EINVAL, "vm %s: invalid argument", name ? name : "(null)");
	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return iovm_error_set(err, -ENOMEM, "vm %s: out of memory", name);
	snprintf(vm->name, sizeof(vm->name), "%s", name);
	vm->host = host;
	vm->pool = pool;
	r = iovm_qmp_connect(qmp_path, timeout_ms, &vm->qmp, err);
	if (r < 0) {
		free(vm);
		return iovm_error_prefix(err, "vm %s", name);
	}
	iovm_qmp_set_event_handler(vm->qmp, on_event, vm);
	*ret = vm;
	return 0;
}

iovm_vm *iovm_vm_free(iovm_vm *vm)
{
	if (vm) {
		iovm_qmp_free(vm->qmp);
		free(vm);
	}
	return NULL;
}

iovm_host *vm_host(iovm_vm *vm)
{
	return vm ? vm->host : NULL;
}

iovm_vf_pool *vm_pool(iovm_vm *vm)
{
	return vm->pool;
}

iovm_qmp *iovm_vm_get_qmp(iovm_vm *vm)
{
	return vm ? vm->qmp : NULL;
}

const char *iovm_vm_name(const iovm_vm *vm)
{
	return vm ? vm->name : NULL;
}

bool iovm_vm_is_alive(const iovm_vm *vm)
{
	return vm && !vm->gone && !vm->shutdown_seen && iovm_qmp_is_connected(vm->qmp);
}

/* Waits until no process holds the VF (QEMU closed its VFIO group). */
static int wait_let_go(iovm_vm *vm, const char *vf, int timeout_ms, iovm_error *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	char who[256] = "";

	if (!vm->host)
		return 0;
	for (;;) {
		int r = iovm_vf_users(vm->host, vf, who, sizeof(who), err);

		if (r <= 0)
			return r;
		if (now_ms() >= deadline)
			return iovm_error_set(err, -EBUSY, "vf %s: still held after leaving vm %s: %s",
					      vf, vm->name, who);
		poll(NULL, 0, LET_GO_POLL_MS);
	}
}

static int restore_net(iovm_vm *vm, const char *vf, const char *saved, iovm_error *err)
{
	iovm_vfnet_config cfg;
	iovm_vfnet *nl = NULL;
	iovm_vf info;
	int r;

	r = iovm_vf_get(vm->host, vf, &info, err);
	if (r < 0)
		return r;
	r = iovm_vfnet_config_parse(saved, &cfg, err);
	if (r >= 0)
		r = iovm_vfnet_open(vm->host, &nl, err);
	if (r >= 0)
		r = iovm_vfnet_restore(nl, info.pf_addr, info.index, &cfg, err);
	iovm_vfnet_close(nl);
	if (r < 0)
		return iovm_error_prefix(err, "vf %s: restoring its settings after vm %s", vf, vm->name);
	return 0;
}

/* Sets MAC and VLAN through the PF before the guest's driver sees the VF
 * (igb VFs read their MAC at probe), keeping the old settings in the pool. */
static int configure_net(iovm_vm *vm, iovm_vf_entry *e, const iovm_vf *info, const iovm_attach_opts *o,
			 iovm_error *err)
{
	iovm_vfnet_config saved, cfg = {};
	iovm_vfnet *nl = NULL;
	unsigned mask = 0;
	int r;

	if (o->mac) {
		if (iovm_mac_parse(o->mac, cfg.mac) < 0)
			return iovm_error_set(err, -EINVAL, "vf %s: bad MAC address \"%s\"", e->vf, o->mac);
		mask |= IOVM_VFNET_MAC;
	}
	if (o->vlan) {
		if (o->vlan < 1 || o->vlan > 4094)
			return iovm_error_set(err, -EINVAL, "vf %s: VLAN %d out of range 1..4094", e->vf, o->vlan);
		cfg.vlan = (uint16_t)o->vlan;
		mask |= IOVM_VFNET_VLAN;
	}
	if (!mask)
		return 0;
	r = iovm_vfnet_open(vm->host, &nl, err);
	if (r >= 0)
		r = iovm_vfnet_save(nl, info->pf_addr, info->index, &saved, err);
	if (r >= 0)
		r = iovm_vfnet_config_format(&saved, e->saved_net, sizeof(e->saved_net));
	if (r >= 0)
		r = iovm_vfnet_set(nl, info->pf_addr, info->index, &cfg, mask, err);
	if (r < 0 && e->saved_net[0]) {
		/* A half-applied change is undone before the VF goes back. */
		(void)iovm_vfnet_restore(nl, info->pf_addr, info->index, &saved, NULL);
		e->saved_net[0] = '\0';
	}
	iovm_vfnet_close(nl);
	return r < 0 ? r : 0;
}

/* Gives a VF that QEMU released back to the pool: its original driver again
 * (a VF that had none stays on vfio-pci, ready for the next VM), then free. */
static int release_vf(iovm_vm *vm, const char *vf, int timeout_ms, iovm_error *err)
{
	iovm_vf_entry *e = iovm_vf_pool_get(vm->pool, vf);
	char driver[64];
	int r;

	if (!e)
		return 0;
	snprintf(driver, sizeof(driver), "%s", e->orig_driver);
	r = wait_let_go(vm, vf, timeout_ms, err);
	if (r < 0) {
		e->use = IOVM_VF_RECLAIM;
		return r;
	}
	if (vm->host && e->saved_net[0]) {
		r = restore_net(vm, vf, e->saved_net, err);
		if (r < 0) {
			e->use = IOVM_VF_RECLAIM;
			return r;
		}
		e->saved_net[0] = '\0';
	}
	if (vm->host && driver[0] && strcmp(driver, "vfio-pci")) {
		r = iovm_vf_bind(vm->host, vf, driver, err);
		if (r < 0) {
			e->use = IOVM_VF_RECLAIM;
			return iovm_error_prefix(err, "vf %s: restoring driver %s after vm %s", vf, driver,
						 vm->name);
		}
	}
	r = iovm_vf_pool_set(vm->pool, vf, IOVM_VF_FREE);
	if (r >= 0)
		step(vm, vf, "released");
	return r;
}

/* Binds the VF to vfio-pci and checks it can go into a VM; records the
 * driver it had so the release can restore it. */
static int prepare_vf(iovm_vm *vm, iovm_vf_entry *e, const iovm_attach_opts *o, iovm_error *err)
{
	char who[256] = "";
	iovm_vf info;
	int r;

	if (!vm->host)
		return 0;
	r = iovm_vf_get(vm->host, e->vf, &info, err);
	if (r < 0)
		return r;
	snprintf(e->orig_driver, sizeof(e->orig_driver), "%s", info.driver);
	/* Another VMM (or an earlier run that lost its state) may hold it. */
	r = iovm_vf_users(vm->host, e->vf, who, sizeof(who), err);
	if (r < 0)
		return r;
	if (r > 0)
		return iovm_error_set(err, -EBUSY, "vf %s: in use: %s", e->vf, who);
	r = configure_net(vm, e, &info, o, err);
	if (r < 0)
		return r;
	if (strcmp(info.driver, "vfio-pci")) {
		r = iovm_vf_bind(vm->host, e->vf, "vfio-pci", err);
		if (r < 0)
			return r;
	}
	return iovm_vfio_group_check(vm->host, e->vf, err);
}

static void unprepare_vf(iovm_vm *vm, const iovm_vf_entry *e)
{
	if (vm->host && e->saved_net[0])
		(void)restore_net(vm, e->vf, e->saved_net, NULL);
	if (vm->host && e->orig_driver[0] && strcmp(e->orig_driver, "vfio-pci"))
		(void)iovm_vf_bind(vm->host, e->vf, e->orig_driver, NULL);
}

/* Ports whose bus the guest has not numbered yet (a VM started with -S and
 * never run) show no devices in query-pci; ask QOM which peripheral sits on
 * which bus instead. */
static int port_busy_by_qom(iovm_vm *vm, const char *port, int timeout_ms, bool *ret_busy, iovm_error *err)
{
	_cleanup_json_ json_object *list = NULL;
	_cleanup_json_ json_object *args = json_object_new_object();
	char want[2 * IOVM_VM_ID_MAX + 32];
	int r;

	json_object_object_add(args, "path", json_object_new_string("/machine/peripheral"));
	r = iovm_qmp_execute(vm->qmp, "qom-list", args, &list, timeout_ms, err);
	if (r < 0)
		return r;
	snprintf(want, sizeof(want), "/machine/peripheral/%s/%s", port, port);
	*ret_busy = false;
	for (size_t i = 0; i < json_object_array_length(list) && !*ret_busy; i++) {
		json_object *o = json_object_array_get_idx(list, i), *name, *type;
		_cleanup_json_ json_object *bus = NULL;
		_cleanup_json_ json_object *a = NULL;
		char path[IOVM_VM_ID_MAX + 32];

		if (!json_object_object_get_ex(o, "name", &name) || !json_object_object_get_ex(o, "type", &type) ||
		    strncmp(json_object_get_string(type), "child<", 6))
			continue;
		snprintf(path, sizeof(path), "/machine/peripheral/%s", json_object_get_string(name));
		a = json_object_new_object();
		json_object_object_add(a, "path", json_object_new_string(path));
		json_object_object_add(a, "property", json_object_new_string("parent_bus"));
		if (iovm_qmp_execute(vm->qmp, "qom-get", a, &bus, timeout_ms, NULL) < 0)
			continue;
		*ret_busy = json_object_is_type(bus, json_type_string) &&
			    !strcmp(json_object_get_string(bus), want);
	}
	return 0;
}

static bool port_reserved(iovm_vm *vm, const char *port)
{
	for (size_t i = 0; i < iovm_vf_pool_size(vm->pool); i++) {
		iovm_vf_entry *e = iovm_vf_pool_at(vm->pool, i);

		if (!strcmp(e->vm, vm->name) && !strcmp(e->port, port))
			return true;
	}
	return false;
}

int vm_pick_port(iovm_vm *vm, const iovm_attach_opts *o, int timeout_ms, char *ret, size_t n,
		 iovm_error *err)
{
	_cleanup_json_ json_object *pci = NULL;
	_cleanup_free_ iovm_vm_port *ports = NULL;
	size_t np = 0;
	int r;

	r = iovm_qmp_execute(vm->qmp, "query-pci", NULL, &pci, timeout_ms, err);
	if (r < 0)
		return r;
	r = iovm_vm_ports_parse(pci, &ports, &np, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < np; i++) {
		const iovm_vm_port *p = &ports[i];
		bool busy = p->n_devices > 0;

		if (o->port_prefix && strncmp(p->id, o->port_prefix, strlen(o->port_prefix)))
			continue;
		if (o->port && strcmp(p->id, o->port))
			continue;
		if (port_reserved(vm, p->id))
			continue;
		if (!busy && p->secondary == 0) {
			r = port_busy_by_qom(vm, p->id, timeout_ms, &busy, err);
			if (r < 0)
				return r;
		}
		if (busy) {
			if (o->port)
				return iovm_error_set(err, -EBUSY, "vm %s: port %s is occupied by %s", vm->name,
						      p->id, p->first_device[0] ? p->first_device : "a device");
			continue;
		}
		snprintf(ret, n, "%s", p->id);
		return 0;
	}
	if (o->port)
		return iovm_error_set(err, -ENOENT, "vm %s: no free hot-plug port %s", vm->name, o->port);
	return iovm_error_set(err, -ENOSPC, "vm %s: no free hot-plug port%s%s (%zu ports)", vm->name,
			      o->port_prefix ? " named " : "", o->port_prefix ? o->port_prefix : "", np);
}

/* The device is in the VM: query-pci shows it behind the port or, when the
 * guest has not numbered the port's bus, QOM knows it with that type. */
int vm_verify_device(iovm_vm *vm, const char *devid, const char *port, const char *type_name,
		     int timeout_ms, iovm_error *err)
{
	_cleanup_json_ json_object *pci = NULL;
	_cleanup_json_ json_object *type = NULL;
	_cleanup_json_ json_object *a = json_object_new_object();
	char where[IOVM_VM_ID_MAX] = "", path[IOVM_VM_ID_MAX + 32];
	int r;

	r = iovm_qmp_execute(vm->qmp, "query-pci", NULL, &pci, timeout_ms, err);
	if (r < 0)
		return r;
	r = iovm_vm_pci_find(pci, devid, where, sizeof(where));
	if (r == 0)
		return strcmp(where, port) ?
		       iovm_error_set(err, -EIO, "vm %s: device %s is behind %s, not %s", vm->name, devid,
				      where[0] ? where : "the root bus", port) : 0;
	iovm_vm_device_path(devid, path, sizeof(path));
	json_object_object_add(a, "path", json_object_new_string(path));
	json_object_object_add(a, "property", json_object_new_string("type"));
	r = iovm_qmp_execute(vm->qmp, "qom-get", a, &type, timeout_ms, err);
	if (r < 0 || strcmp(json_object_get_string(type), type_name))
		return iovm_error_set(err, -EIO, "vm %s: device %s not found after device_add", vm->name, devid);
	return 0;
}

struct unplug_wait {
	const char *devid;
	bool guest_error;
};

/* DEVICE_DELETED for our device, or the guest reporting that it failed to
 * unplug it (DEVICE_UNPLUG_GUEST_ERROR, same path): no point waiting on. */
static bool unplug_match(const char *event, json_object *data, void *ud)
{
	struct unplug_wait *w = ud;
	char path[IOVM_VM_ID_MAX + 32];
	json_object *p;

	if (iovm_vm_is_device_deleted(event, data, w->devid))
		return true;
	if (strcmp(event, "DEVICE_UNPLUG_GUEST_ERROR") || iovm_vm_device_path(w->devid, path, sizeof(path)) < 0 ||
	    !json_object_object_get_ex(data, "path", &p) || strcmp(json_object_get_string(p), path))
		return false;
	w->guest_error = true;
	return true;
}

/* device_del and wait for DEVICE_DELETED. -ENODEV from QEMU means the device
 * is already gone, which is what we wanted. */
int vm_unplug(iovm_vm *vm, const char *devid, int timeout_ms, iovm_error *err)
{
	_cleanup_json_ json_object *args = json_object_new_object();
	uint64_t mark = iovm_qmp_event_mark(vm->qmp);
	int64_t start = now_ms(), left;
	struct unplug_wait w = { .devid = devid };
	iovm_error e = {};
	int r;

	json_object_object_add(args, "id", json_object_new_string(devid));
	r = iovm_qmp_execute(vm->qmp, "device_del", args, NULL, timeout_ms, &e);
	if (r == -ENODEV)
		return 0;
	/* A retry while the guest still has the first request: QEMU refuses a
	 * second device_del (qdev-monitor.c); the first one's event counts. */
	if (r == -EREMOTEIO && strstr(e.msg, "already in the process of unplug"))
		r = 0;
	if (r < 0)
		return iovm_error_set(err, r, "%s", e.msg);
	left = timeout_ms - (now_ms() - start);
	r = iovm_qmp_wait_event(vm->qmp, mark, NULL, unplug_match, &w, NULL, left > 0 ? (int)left : 0, err);
	if (r == 0 && w.guest_error)
		return iovm_error_set(err, -EIO, "vm %s: guest reported it failed to release device %s "
				      "(DEVICE_UNPLUG_GUEST_ERROR); the VF stays reserved", vm->name, devid);
	if (r == -ETIMEDOUT)
		return iovm_error_set(err, -ETIMEDOUT,
				      "vm %s: guest did not release device %s within %d ms "
				      "(no DEVICE_DELETED); the VF stays reserved until it does or the VM goes away",
				      vm->name, devid, timeout_ms);
	return r;
}

int iovm_vm_attach(iovm_vm *vm, const iovm_attach_opts *o, iovm_attach_result *ret, iovm_error *err)
{
	char vf[IOVM_PCI_ADDR_MAX], devid[IOVM_VM_ID_MAX], port[IOVM_VM_ID_MAX];
	_cleanup_json_ json_object *args = NULL;
	int timeout_ms, r;
	iovm_vf_entry *e;

	if (!vm || !o || !o->vf)
		return iovm_error_set(err, -EINVAL, "vm attach: invalid argument");
	r = iovm_pci_addr_normalize(o->vf, vf, sizeof(vf), err);
	if (r < 0)
		return r;
	if (!iovm_vm_is_alive(vm))
		return iovm_error_set(err, -ENOTCONN, "vm %s: not running", vm->name);
	timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : ATTACH_TIMEOUT_MS;
	r = iovm_vm_device_id(vf, devid, sizeof(devid));
	if (r < 0)
		return iovm_error_set(err, r, "vf %s: cannot derive a device id", vf);
	r = iovm_vf_pool_reserve(vm->pool, vf, vm->name, err);
	if (r < 0)
		return r;
	e = iovm_vf_pool_get(vm->pool, vf);
	snprintf(e->devid, sizeof(e->devid), "%s", devid);
	if ((!vm->host || o->no_prepare) && (o->mac || o->vlan)) {
		r = iovm_error_set(err, -EINVAL, "vm %s: attach vf %s: MAC/VLAN need a host and preparation",
				   vm->name, vf);
		goto fail_unprepared;
	}
	r = o->no_prepare ? 0 : prepare_vf(vm, e, o, err);
	if (r < 0) {
		/* Undo what prepare_vf got done (settings, binding). */
		iovm_error_prefix(err, "vm %s: attach vf %s", vm->name, vf);
		goto fail;
	}
	step(vm, vf, "prepared");
	r = vm_pick_port(vm, o, timeout_ms, port, sizeof(port), err);
	if (r < 0)
		goto fail;
	args = iovm_vm_device_add_args(vf, devid, port, o->failover_pair_id);
	if (!args) {
		r = iovm_error_set(err, -EINVAL, "vm %s: attach vf %s: bad device arguments", vm->name, vf);
		goto fail;
	}
	e = iovm_vf_pool_get(vm->pool, vf);
	snprintf(e->port, sizeof(e->port), "%s", port);
	r = iovm_qmp_execute(vm->qmp, "device_add", args, NULL, timeout_ms, err);
	if (r < 0) {
		iovm_error_prefix(err, "vm %s: attach vf %s to port %s", vm->name, vf, port);
		goto fail;
	}
	e = iovm_vf_pool_get(vm->pool, vf);
	e->use = IOVM_VF_IN_USE;
	step(vm, vf, "device-added");
	r = vm_verify_device(vm, devid, port, "vfio-pci", timeout_ms, err);
	if (r < 0) {
		/* It may be half in: take it out the normal way, which keeps the
		 * VF reserved if the guest does not let go. */
		iovm_error e2 = {};

		e->use = IOVM_VF_RELEASE_PENDING;
		if (vm_unplug(vm, devid, timeout_ms, &e2) == 0)
			release_vf(vm, vf, LET_GO_TIMEOUT_MS, NULL);
		return r;
	}
	step(vm, vf, "verified");
	if (ret) {
		snprintf(ret->devid, sizeof(ret->devid), "%s", devid);
		snprintf(ret->port, sizeof(ret->port), "%s", port);
	}
	return 0;

fail:
	unprepare_vf(vm, iovm_vf_pool_get(vm->pool, vf));
fail_unprepared:
	iovm_vf_pool_set(vm->pool, vf, IOVM_VF_FREE);
	return r;
}

int iovm_vm_detach(iovm_vm *vm, const char *vf_in, int timeout_ms, iovm_error *err)
{
	char vf[IOVM_PCI_ADDR_MAX], devid[IOVM_VM_ID_MAX];
	iovm_vf_entry *e;
	int r;

	if (!vm || !vf_in)
		return iovm_error_set(err, -EINVAL, "vm detach: invalid argument");
	r = iovm_pci_addr_normalize(vf_in, vf, sizeof(vf), err);
	if (r < 0)
		return r;
	if (timeout_ms <= 0)
		timeout_ms = DETACH_TIMEOUT_MS;
	e = iovm_vf_pool_get(vm->pool, vf);
	if (!e || strcmp(e->vm, vm->name))
		return iovm_error_set(err, -ENOENT, "vm %s: vf %s is not attached to it%s%s", vm->name, vf,
				      e ? ", it belongs to vm " : "", e ? e->vm : "");
	if (e->use == IOVM_VF_ATTACHING)
		return iovm_error_set(err, -EBUSY, "vm %s: vf %s is still being attached", vm->name, vf);
	snprintf(devid, sizeof(devid), "%s", e->devid);
	if (e->use != IOVM_VF_RECLAIM) {
		if (!iovm_qmp_is_connected(vm->qmp))
			return iovm_error_set(err, -ENOTCONN, "vm %s: not connected; vf %s is reclaimed when "
					      "the VM is gone", vm->name, vf);
		e->use = IOVM_VF_RELEASE_PENDING;
		step(vm, vf, "device-del");
		r = vm_unplug(vm, devid, timeout_ms, err);
		if (r < 0)
			return iovm_error_prefix(err, "detach vf %s", vf);
		step(vm, vf, "deleted");
	}
	r = release_vf(vm, vf, LET_GO_TIMEOUT_MS, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: detach vf %s", vm->name, vf);
	return 0;
}

int iovm_vm_reclaim(iovm_vm *vm, int timeout_ms, iovm_error *err)
{
	int freed = 0, first_err = 0;

	if (!vm)
		return iovm_error_set(err, -EINVAL, "vm reclaim: invalid argument");
	if (timeout_ms < 0)
		timeout_ms = LET_GO_TIMEOUT_MS;
	for (size_t i = 0; i < iovm_vf_pool_size(vm->pool);) {
		iovm_vf_entry *e = iovm_vf_pool_at(vm->pool, i);
		char vf[IOVM_VM_ADDR_MAX];
		iovm_error e2 = {};
		int r;

		if (strcmp(e->vm, vm->name) || (!vm->gone && e->use != IOVM_VF_RECLAIM)) {
			i++;
			continue;
		}
		snprintf(vf, sizeof(vf), "%s", e->vf);
		e->use = IOVM_VF_RECLAIM;
		r = release_vf(vm, vf, timeout_ms, &e2);
		if (r < 0) {
			if (!first_err) {
				first_err = r;
				if (err)
					*err = e2;
			}
			i++;
			continue;
		}
		freed++;    /* the entry was removed: i now names the next one */
	}
	return first_err ? first_err : freed;
}

int iovm_vm_process(iovm_vm *vm, iovm_error *err)
{
	int r;

	if (!vm)
		return iovm_error_set(err, -EINVAL, "vm process: invalid argument");
	r = vm->gone ? -ECONNRESET : iovm_qmp_process(vm->qmp, err);
	if (r < 0 && !vm->gone) {
		/* Whatever broke the connection, we cannot manage this QEMU any
		 * more; when it really exited its VFs become free. */
		vm->gone = true;
		iovm_error_prefix(err, "vm %s", vm->name);
	}
	/* Only a quick look: an event loop must not wait for the kernel here.
	 * VFs still held stay IOVM_VF_RECLAIM for a later iovm_vm_reclaim(). */
	iovm_vm_reclaim(vm, 0, NULL);
	return vm->gone ? -ECONNRESET : 0;
}
