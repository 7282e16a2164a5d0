/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Pure helpers on QMP data for VF attach/detach: device ids, query-pci
 * parsing (free hot-plug ports), event matching. Nothing here talks to
 * QEMU; unit-tested on canned replies. See docs/qmp.md.
 */

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "iovm/error.h"

#define IOVM_VM_ID_MAX 64            /* QEMU device/port ids, VM names */
#define IOVM_VM_ADDR_MAX 13          /* "dddd:bb:ss.f" */

/* The QEMU device id of a VF: "iovm-" + address with ':' as '-', e.g.
 * "iovm-0000-01-10.2" (QEMU ids may not contain ':'). Stable, so a VF that
 * is still in a VM is recognised after a restart of the manager. */
int iovm_vm_device_id(const char *vf_addr, char *ret, size_t n);

/* QOM path of a device id: "/machine/peripheral/ID". */
int iovm_vm_device_path(const char *devid, char *ret, size_t n);

typedef struct iovm_vm_port {
	char id[IOVM_VM_ID_MAX];      /* qdev id of the root port */
	int bus, slot, function;      /* where the port itself sits */
	int secondary;                /* bus behind it; 0 = not yet set up by the guest */
	unsigned n_devices;           /* devices behind it (meaningful if secondary) */
	char first_device[IOVM_VM_ID_MAX]; /* qdev id of the first one, "" if none */
} iovm_vm_port;

/* Hot-plug ports in a query-pci "return" value: PCI bridges that carry a
 * qdev id (pcie-root-port and alike), in bus/slot order. ret is freed with
 * free(). -EBADMSG if the reply does not have query-pci's shape. */
int iovm_vm_ports_parse(json_object *query_pci, iovm_vm_port **ret, size_t *ret_n, iovm_error *err);

/* Finds the device with qdev id devid anywhere in a query-pci reply; writes
 * the qdev id of the port it sits behind ("" if on a root bus) to ret_port.
 * -ENOENT if absent. */
int iovm_vm_pci_find(json_object *query_pci, const char *devid, char *ret_port, size_t n);

/* The arguments of device_add for a VF: {"driver":"vfio-pci","host":VF,
 * "id":DEVID,"bus":PORT[,"failover_pair_id":ID]}. NULL on bad input. */
json_object *iovm_vm_device_add_args(const char *vf_addr, const char *devid, const char *port,
				     const char *failover_pair_id);

/* DEVICE_DELETED for devid, matched on data.path ("/machine/peripheral/ID"). */
bool iovm_vm_is_device_deleted(const char *event, json_object *data, const char *devid);
