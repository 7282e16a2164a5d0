/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * VFs and running QEMU VMs: iovm_vm is one QMP connection, with attach and
 * detach of VFs and handling of the VM's events, so that VMs that die give
 * their VFs back. Shared VFs (macvtap) are in shared.h, the pure helpers in
 * qdev.h, the VF pool in pool.h. See docs/qmp.md.
 */

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "iovm/error.h"
#include "iovm/host.h"
#include "iovm/pool.h"
#include "iovm/qdev.h"
#include "iovm/qmp.h"

typedef struct iovm_vm iovm_vm;

/* Connects to the VM's QMP socket (blocking, with a deadline). host may be
 * NULL: VFs are then used as they are (no binding, no reclaim rebinding). */
int iovm_vm_open(const char *name, const char *qmp_path, iovm_host *host, iovm_vf_pool *pool,
		 int timeout_ms, iovm_vm **ret, iovm_error *err);
iovm_vm *iovm_vm_free(iovm_vm *vm);
/* For _cleanup_(iovm_vm_freep): iovm_vm_free(*p). */
static inline void iovm_vm_freep(iovm_vm **p)
{
	iovm_vm_free(*p);
}
iovm_qmp *iovm_vm_get_qmp(iovm_vm *vm);
const char *iovm_vm_name(const iovm_vm *vm);
bool iovm_vm_is_alive(const iovm_vm *vm);     /* socket open and no SHUTDOWN seen */
/* Events of the VM, passed on after iovm_vm's own handling (the QMP
 * connection's handler belongs to iovm_vm). */
void iovm_vm_set_event_handler(iovm_vm *vm, iovm_qmp_event_cb cb, void *userdata);

/* Steps of attach/detach/release, reported as they are reached so a caller
 * can journal them (iovmd's intent journal): attach "prepared" (VF
 * configured and on vfio-pci), "device-added" (device_add answered),
 * "verified" (seen in query-pci); detach "device-del" (about to send it),
 * "deleted" (DEVICE_DELETED came); "released" (the VF is back in the
 * pool: driver and settings restored), also on reclaim. */
typedef void (*iovm_vm_step_cb)(iovm_vm *vm, const char *vf, const char *step, void *userdata);
void iovm_vm_set_step_hook(iovm_vm *vm, iovm_vm_step_cb cb, void *userdata);

typedef struct iovm_attach_opts {
	const char *vf;                 /* required: VF PCI address */
	const char *port;               /* NULL: pick a free hot-plug port */
	const char *port_prefix;        /* with port NULL: only ports whose id starts so */
	const char *failover_pair_id;   /* virtio-net standby id, or NULL */
	const char *mac;                /* set the VF's MAC through the PF first, or NULL */
	int vlan;                       /* 1..4094: set the VF's VLAN through the PF; 0: leave */
	bool no_prepare;                /* VF already on vfio-pci: do not touch sysfs */
	int timeout_ms;                 /* per QMP step; <= 0: 10 s */
} iovm_attach_opts;

typedef struct iovm_attach_result {
	char devid[IOVM_VM_ID_MAX];
	char port[IOVM_VM_ID_MAX];
} iovm_attach_result;

/* Reserves the VF, sets MAC/VLAN if asked (saving the old settings for the
 * release), binds it to vfio-pci and checks its IOMMU group, picks a free port, device_add, and verifies with query-pci. On failure everything
 * done is undone and the VF is free again. */
int iovm_vm_attach(iovm_vm *vm, const iovm_attach_opts *o, iovm_attach_result *ret,
		   iovm_error *err);

/* device_del, then waits for DEVICE_DELETED (matched on path) until
 * timeout_ms (<= 0: 15 s). On time, waits for QEMU to close the VF, restores
 * its original driver and frees it. On timeout returns -ETIMEDOUT and the VF
 * stays IOVM_VF_RELEASE_PENDING: it is freed if the event comes later (see
 * iovm_vm_process) or its VM dies, and never handed out before. */
int iovm_vm_detach(iovm_vm *vm, const char *vf, int timeout_ms, iovm_error *err);

/* Event-loop entry: call when iovm_qmp_get_fd(iovm_vm_get_qmp(vm)) is
 * readable. Handles late DEVICE_DELETED, SHUTDOWN and a vanished socket;
 * VFs of a VM that went away are reclaimed (see iovm_vm_reclaim). Returns 0
 * while the VM is connected, -ECONNRESET once it is gone. */
int iovm_vm_process(iovm_vm *vm, iovm_error *err);

/* Returns to the pool every VF of this VM that QEMU released: all of them
 * once the VM is gone, else those whose DEVICE_DELETED came. Waits up to
 * timeout_ms (0: just look; < 0: 5 s) for QEMU to let go of each, restores
 * its driver, frees it. VFs still held stay IOVM_VF_RECLAIM and make it return
 * -EBUSY. Returns the number of VFs freed. */
int iovm_vm_reclaim(iovm_vm *vm, int timeout_ms, iovm_error *err);
