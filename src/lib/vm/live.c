/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A VF out of a running VM and back around its PF's re-create (live.h,
 * docs/resize.md). The QMP interface of the VFIO pause is QEMU's
 * x-vfio-pause {"id"} and x-vfio-resume {"id", "host"}, with the device's
 * read-only QOM bool x-paused, and x-vfio-nudge {"id", "kind"}.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>

#include "iovm/live.h"
#include "iovm/sriov.h"
#include "iovm/vfio.h"
#include "lib/vm/vm-internal.h"
#include "shared/clock.h"
#include "shared/json-util.h"
#include "shared/util.h"

#define LIVE_TIMEOUT_MS 15000
#define LET_GO_POLL_MS 20

static bool has_command(json_object *cmds, const char *name)
{
	for (size_t i = 0; json_object_is_type(cmds, json_type_array) && i < json_object_array_length(cmds); i++) {
		json_object *c = json_object_array_get_idx(cmds, i), *n;

		if (json_object_object_get_ex(c, "name", &n) && !strcmp(json_object_get_string(n), name))
			return true;
	}
	return false;
}

/* qom-get of one property of devid: the reply, or NULL (err set). */
static int qom_get(iovm_vm *vm, const char *devid, const char *prop, int timeout_ms, json_object **ret,
		   iovm_error *err)
{
	_cleanup_json_ json_object *a = json_object_new_object();
	char path[IOVM_VM_ID_MAX + 32];

	iovm_vm_device_path(devid, path, sizeof(path));
	json_object_object_add(a, "path", json_object_new_string(path));
	json_object_object_add(a, "property", json_object_new_string(prop));
	return iovm_qmp_execute(iovm_vm_get_qmp(vm), "qom-get", a, ret, timeout_ms, err);
}

int iovm_vm_live_probe(iovm_vm *vm, const char *devid, int timeout_ms, iovm_live_place *ret, iovm_error *err)
{
	_cleanup_json_ json_object *cmds = NULL;
	_cleanup_json_ json_object *pci = NULL;
	_cleanup_json_ json_object *fo = NULL;
	_cleanup_json_ json_object *paused = NULL;
	_cleanup_json_ json_object *bus = NULL;
	iovm_live_place p = {};
	iovm_qmp *q;
	int r;

	if (!vm || !devid || !ret)
		return iovm_error_set(err, -EINVAL, "live probe: invalid argument");
	if (timeout_ms <= 0)
		timeout_ms = LIVE_TIMEOUT_MS;
	q = iovm_vm_get_qmp(vm);
	snprintf(p.devid, sizeof(p.devid), "%s", devid);
	r = iovm_qmp_execute(q, "query-commands", NULL, &cmds, timeout_ms, err);
	if (r >= 0)
		r = iovm_qmp_execute(q, "query-pci", NULL, &pci, timeout_ms, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: device %s", iovm_vm_name(vm), devid);
	p.can_pause = has_command(cmds, "x-vfio-pause");
	p.present = iovm_vm_pci_find(pci, devid, p.port, sizeof(p.port)) == 0;
	/* Absent from query-pci: a paused device or one on a bus the guest
	 * has not numbered may still be in QOM. */
	if (qom_get(vm, devid, "failover_pair_id", timeout_ms, &fo, NULL) >= 0) {
		p.present = true;
		if (json_object_is_type(fo, json_type_string))
			snprintf(p.failover_pair_id, sizeof(p.failover_pair_id), "%s", json_object_get_string(fo));
	}
	if (p.present && !p.port[0] && qom_get(vm, devid, "parent_bus", timeout_ms, &bus, NULL) >= 0 &&
	    json_object_is_type(bus, json_type_string)) {
		/* "/machine/peripheral/hp1/hp1": a port's bus is named after it. */
		const char *b = strrchr(json_object_get_string(bus), '/');

		snprintf(p.port, sizeof(p.port), "%s", b ? b + 1 : json_object_get_string(bus));
	}
	if (p.present && p.can_pause && qom_get(vm, devid, "x-paused", timeout_ms, &paused, NULL) >= 0)
		p.paused = json_object_get_boolean(paused);
	*ret = p;
	return 0;
}

int iovm_live_choose(iovm_live_mode asked, const iovm_live_place *p, iovm_live_mode *ret, char *why, size_t n)
{
	const char *no = NULL;

	switch (asked) {
	case IOVM_LIVE_AUTO:
		if (p->can_pause)
			*ret = IOVM_LIVE_PAUSE;
		else if (p->failover_pair_id[0])
			*ret = IOVM_LIVE_FAILOVER;
		else
			no = "its QEMU has no VFIO pause (x-vfio-pause) and the VF is no failover primary "
			     "(no failover_pair_id); ask for --live replug to unplug and replug it";
		break;
	case IOVM_LIVE_PAUSE:
		if (p->can_pause)
			*ret = IOVM_LIVE_PAUSE;
		else
			no = "its QEMU has no VFIO pause (x-vfio-pause not in query-commands)";
		break;
	case IOVM_LIVE_FAILOVER:
		if (p->failover_pair_id[0])
			*ret = IOVM_LIVE_FAILOVER;
		else
			no = "the VF is no failover primary (its device has no failover_pair_id)";
		break;
	case IOVM_LIVE_REPLUG:
		*ret = IOVM_LIVE_REPLUG;
		break;
	default:
		no = "unknown live mode";
	}
	if (!no && p->paused && *ret != IOVM_LIVE_PAUSE)
		no = "its device is paused (x-paused)";
	if (!no && *ret != IOVM_LIVE_PAUSE && !p->port[0])
		no = "its device sits on no hot-plug port, so it cannot be unplugged and plugged back";
	if (!no)
		return 0;
	if (why && n)
		snprintf(why, n, "%s", no);
	return -EOPNOTSUPP;
}

/* Until no process holds the VF's VFIO group. */
static int wait_let_go(iovm_vm *vm, const char *vf, int timeout_ms, iovm_error *err)
{
	int64_t deadline = now_ms() + timeout_ms;
	iovm_host *h = vm_host(vm);
	char who[256] = "";
	int r;

	while (h && (r = iovm_vf_users(h, vf, who, sizeof(who), err)) != 0) {
		if (r < 0)
			return r;
		if (now_ms() >= deadline)
			return iovm_error_set(err, -EBUSY, "vm %s: vf %s: still held after its release: %s",
					      iovm_vm_name(vm), vf, who);
		poll(NULL, 0, LET_GO_POLL_MS);
	}
	return 0;
}

static void set_use(iovm_vm *vm, const char *vf, const char *devid, iovm_vf_use use)
{
	iovm_vf_pool *pool = vm_pool(vm);
	iovm_vf_entry *e = iovm_vf_pool_get(pool, vf);

	if (!e && iovm_vf_pool_reserve(pool, vf, iovm_vm_name(vm), NULL) >= 0)
		e = iovm_vf_pool_get(pool, vf);
	if (!e)
		return;
	snprintf(e->devid, sizeof(e->devid), "%s", devid);
	e->use = use;
}

static int pause_cmd(iovm_vm *vm, const char *cmd, const char *devid, const char *vf, int timeout_ms,
		     iovm_error *err)
{
	_cleanup_json_ json_object *a = json_object_new_object();

	json_object_object_add(a, "id", json_object_new_string(devid));
	if (vf)
		json_object_object_add(a, "host", json_object_new_string(vf));
	return iovm_qmp_execute(iovm_vm_get_qmp(vm), cmd, a, NULL, timeout_ms, err);
}

int iovm_vm_live_release(iovm_vm *vm, const char *vf, const iovm_live_place *p, iovm_live_mode mode,
			 int timeout_ms, iovm_error *err)
{
	int r;

	if (!vm || !vf || !p || mode == IOVM_LIVE_AUTO)
		return iovm_error_set(err, -EINVAL, "live release: invalid argument");
	if (timeout_ms <= 0)
		timeout_ms = LIVE_TIMEOUT_MS;
	if (!iovm_vm_is_alive(vm))
		return iovm_error_set(err, -ENOTCONN, "vm %s: vf %s: not running", iovm_vm_name(vm), vf);
	/* Out of QEMU but still this VM's: no DEVICE_DELETED handling frees it. */
	set_use(vm, vf, p->devid, IOVM_VF_ATTACHING);
	if (mode == IOVM_LIVE_PAUSE && !p->paused)
		r = pause_cmd(vm, "x-vfio-pause", p->devid, NULL, timeout_ms, err);
	else if (mode != IOVM_LIVE_PAUSE)
		r = vm_unplug(vm, p->devid, timeout_ms, err);
	else
		r = 0;
	if (r < 0) {
		set_use(vm, vf, p->devid, IOVM_VF_IN_USE);
		return iovm_error_prefix(err, "vm %s: vf %s: %s", iovm_vm_name(vm), vf,
					 mode == IOVM_LIVE_PAUSE ? "pausing device" : "unplugging device");
	}
	return wait_let_go(vm, vf, timeout_ms, err);
}

int iovm_vm_live_restore(iovm_vm *vm, const char *vf, const iovm_live_place *p, iovm_live_mode mode,
			 int timeout_ms, iovm_error *err)
{
	_cleanup_json_ json_object *args = NULL;
	iovm_host *h;
	iovm_vf info;
	int r;

	if (!vm || !vf || !p || mode == IOVM_LIVE_AUTO)
		return iovm_error_set(err, -EINVAL, "live restore: invalid argument");
	if (timeout_ms <= 0)
		timeout_ms = LIVE_TIMEOUT_MS;
	if (!iovm_vm_is_alive(vm))
		return iovm_error_set(err, -ENOTCONN, "vm %s: vf %s: not running (QEMU gone)", iovm_vm_name(vm), vf);
	h = vm_host(vm);
	if (h) {
		r = iovm_vf_get(h, vf, &info, err);
		if (r >= 0 && strcmp(info.driver, "vfio-pci"))
			r = iovm_vf_bind(h, vf, "vfio-pci", err);
		if (r >= 0)
			r = iovm_vfio_group_check(h, vf, err);
		if (r < 0)
			return iovm_error_prefix(err, "vm %s: vf %s: before plugging it back", iovm_vm_name(vm), vf);
	}
	if (mode == IOVM_LIVE_PAUSE) {
		r = pause_cmd(vm, "x-vfio-resume", p->devid, vf, timeout_ms, err);
		if (r < 0)
			return iovm_error_prefix(err, "vm %s: vf %s: resuming device %s (it stays paused)",
						 iovm_vm_name(vm), vf, p->devid);
	} else {
		args = iovm_vm_device_add_args(vf, p->devid, p->port[0] ? p->port : NULL,
					       p->failover_pair_id[0] ? p->failover_pair_id : NULL);
		if (!args)
			return iovm_error_set(err, -EINVAL, "vm %s: vf %s: bad device arguments", iovm_vm_name(vm), vf);
		r = iovm_qmp_execute(iovm_vm_get_qmp(vm), "device_add", args, NULL, timeout_ms, err);
		/* A failover primary is hidden until the guest negotiated
		 * failover: query-pci need not show it yet. */
		if (r >= 0 && !p->failover_pair_id[0])
			r = vm_verify_device(vm, p->devid, p->port, "vfio-pci", timeout_ms, err);
		if (r < 0)
			return iovm_error_prefix(err, "vm %s: vf %s: plugging device %s back%s%s", iovm_vm_name(vm),
						 vf, p->devid, p->port[0] ? " into port " : "", p->port);
	}
	set_use(vm, vf, p->devid, IOVM_VF_IN_USE);
	return 0;
}

int iovm_vm_live_nudge(iovm_vm *vm, const char *devid, int timeout_ms, iovm_error *err)
{
	_cleanup_json_ json_object *cmds = NULL;
	_cleanup_json_ json_object *a = NULL;
	iovm_qmp *q;
	int r;

	if (!vm || !devid)
		return iovm_error_set(err, -EINVAL, "live nudge: invalid argument");
	if (timeout_ms <= 0)
		timeout_ms = LIVE_TIMEOUT_MS;
	q = iovm_vm_get_qmp(vm);
	r = iovm_qmp_execute(q, "query-commands", NULL, &cmds, timeout_ms, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: device %s: nudge", iovm_vm_name(vm), devid);
	if (!has_command(cmds, "x-vfio-nudge"))
		return iovm_error_set(err, -EOPNOTSUPP, "vm %s: device %s: this QEMU has no x-vfio-nudge",
				      iovm_vm_name(vm), devid);
	a = json_object_new_object();
	json_object_object_add(a, "id", json_object_new_string(devid));
	json_object_object_add(a, "kind", json_object_new_string("msix"));
	r = iovm_qmp_execute(q, "x-vfio-nudge", a, NULL, timeout_ms, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: device %s: nudge", iovm_vm_name(vm), devid);
	return 0;
}
