/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A VF taken from under a running VM and given back once its PF has
 * re-created it (a live resize, docs/resize.md): by the VFIO pause of a
 * patched QEMU (x-vfio-pause / x-vfio-resume, the guest keeps its device),
 * or by device_del and device_add with the same id, port and failover pair
 * (stock QEMU). The VF keeps its pool entry throughout: IOVM_VF_ATTACHING
 * while out of QEMU, IOVM_VF_IN_USE once back.
 */

#include <stdbool.h>
#include <stddef.h>

#include "iovm/error.h"
#include "iovm/qdev.h"
#include "iovm/types.h"
#include "iovm/vm.h"

/* What QEMU says about a VF device, as a live resize needs it. */
typedef struct iovm_live_place {
	char devid[IOVM_VM_ID_MAX];
	char port[IOVM_VM_ID_MAX];             /* qdev id of its port; "" on a root bus */
	char failover_pair_id[IOVM_VM_ID_MAX]; /* "" if not a failover primary */
	bool can_pause;                        /* x-vfio-pause is in query-commands */
	bool present;                          /* the device exists (query-pci or QOM) */
	bool paused;                           /* its x-paused reads true */
} iovm_live_place;

/* Asks QEMU (query-commands, query-pci, qom-get) about device devid. A
 * device QEMU does not have is no error: present false. */
int iovm_vm_live_probe(iovm_vm *vm, const char *devid, int timeout_ms, iovm_live_place *ret,
		       iovm_error *err);

/* The mode a VM will use for the asked one: AUTO is pause if QEMU can,
 * else failover if the VF is a failover primary; PAUSE needs the pause,
 * FAILOVER a failover pair; REPLUG always goes. -EOPNOTSUPP with why (a
 * phrase naming what is missing) otherwise. Pure. */
int iovm_live_choose(iovm_live_mode asked, const iovm_live_place *p, iovm_live_mode *ret, char *why,
		     size_t n);

/* Takes vf out from under the guest: x-vfio-pause, or device_del and its
 * DEVICE_DELETED within timeout_ms (a guest that does not let go in time:
 * -ETIMEDOUT). Then waits for QEMU to close the VF. Nothing on the host is
 * changed: the VF's driver and settings stay. */
int iovm_vm_live_release(iovm_vm *vm, const char *vf, const iovm_live_place *p, iovm_live_mode mode,
			 int timeout_ms, iovm_error *err);

/* Gives vf back to the guest after the re-create: on vfio-pci with its
 * IOMMU group checked, then x-vfio-resume onto it (nudge left to QEMU), or
 * device_add with the same id, port and failover pair, verified. A resume
 * refused by QEMU leaves the device paused (a later one may succeed). */
int iovm_vm_live_restore(iovm_vm *vm, const char *vf, const iovm_live_place *p, iovm_live_mode mode,
			 int timeout_ms, iovm_error *err);

/* Prompts the guest driver of a resumed device to look at it again
 * (x-vfio-nudge, kind msix): for a link that came up while the driver was
 * still re-initialising after the resume. -EOPNOTSUPP if this QEMU has no
 * x-vfio-nudge (the driver then finds out from its own timer). */
int iovm_vm_live_nudge(iovm_vm *vm, const char *devid, int timeout_ms, iovm_error *err);
