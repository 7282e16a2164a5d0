/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal: pieces of vm.c that vm-shared.c (shared VFs over macvtap) uses
 * too. Not part of the public API. */
#pragma once

#include "iovm/vm.h"

/* The host the VM was opened with (may be NULL). */
iovm_host *vm_host(iovm_vm *vm);
/* The VF pool the VM was opened with. */
iovm_vf_pool *vm_pool(iovm_vm *vm);

/* A free hot-plug port of the VM (o->port / o->port_prefix restrict it;
 * other fields are ignored): not occupied in query-pci or QOM, not reserved
 * in the pool for this VM. */
int vm_pick_port(iovm_vm *vm, const iovm_attach_opts *o, int timeout_ms, char *ret, size_t n,
		 iovm_error *err);

/* devid sits behind port (query-pci) or, on a bus the guest has not
 * numbered, QOM knows it with type type_name. */
int vm_verify_device(iovm_vm *vm, const char *devid, const char *port, const char *type_name,
		     int timeout_ms, iovm_error *err);

/* device_del and wait for DEVICE_DELETED (or the guest's unplug error);
 * 0 if QEMU no longer has the device. -ETIMEDOUT with a message about a VF
 * that stays reserved: callers with other resources reword it. */
int vm_unplug(iovm_vm *vm, const char *devid, int timeout_ms, iovm_error *err);
