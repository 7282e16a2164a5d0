/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * VFs and running QEMU VMs: attach a VF to a VM over QMP, detach it, and
 * notice VMs that die so their VFs come back. See docs/qmp.md.
 *
 * Three layers:
 *  - pure helpers on QMP data (query-pci parsing, device ids, event
 *    matching), unit-tested on canned replies;
 *  - the VF pool: which VF is free, being attached, in use, waiting for its
 *    guest to release it, or waiting to be reclaimed from a dead VM. A VF is
 *    handed out again only once it is free;
 *  - iovm_vm: one QMP connection, with attach/detach and event handling.
 */

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "iovm/error.h"
#include "iovm/host.h"
#include "iovm/qmp.h"

#define IOVM_VM_ID_MAX 64            /* QEMU device/port ids, VM names */
#define IOVM_VM_ADDR_MAX 13          /* "dddd:bb:ss.f" */

/* ---- pure helpers ------------------------------------------------------ */

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

/* ---- the VF pool -------------------------------------------------------- */

typedef enum iovm_vf_use {
	IOVM_VF_FREE,             /* no entry: may be handed out */
	IOVM_VF_ATTACHING,        /* reserved, device_add in progress */
	IOVM_VF_IN_USE,           /* in a VM */
	IOVM_VF_RELEASE_PENDING,  /* device_del sent, guest has not released it */
	IOVM_VF_RECLAIM,          /* its VM died; waiting to be returned */
} iovm_vf_use;

const char *iovm_vf_use_to_string(iovm_vf_use u);

typedef struct iovm_vf_entry {
	char vf[IOVM_VM_ADDR_MAX];
	iovm_vf_use use;
	char vm[IOVM_VM_ID_MAX];
	char devid[IOVM_VM_ID_MAX];
	char port[IOVM_VM_ID_MAX];
	char orig_driver[64];     /* driver before attach, restored on release; "" = none */
	char saved_net[160];      /* VF settings before attach (iovm_vfnet_config_format), "" = untouched */
} iovm_vf_entry;

typedef struct iovm_vf_pool iovm_vf_pool;

int iovm_vf_pool_new(iovm_vf_pool **ret);
iovm_vf_pool *iovm_vf_pool_free(iovm_vf_pool *p);

/* FREE -> ATTACHING for vm; -EBUSY naming the holder otherwise. */
int iovm_vf_pool_reserve(iovm_vf_pool *p, const char *vf, const char *vm, iovm_error *err);
/* Moves an existing entry to use (IOVM_VF_FREE removes it). -ENOENT if the
 * VF has no entry. */
int iovm_vf_pool_set(iovm_vf_pool *p, const char *vf, iovm_vf_use use);
/* Returns a pointer into the pool (valid until the next change) or NULL. */
iovm_vf_entry *iovm_vf_pool_get(iovm_vf_pool *p, const char *vf);
iovm_vf_entry *iovm_vf_pool_find_devid(iovm_vf_pool *p, const char *vm, const char *devid);
/* Iteration: entries 0..n-1. */
size_t iovm_vf_pool_size(const iovm_vf_pool *p);
iovm_vf_entry *iovm_vf_pool_at(iovm_vf_pool *p, size_t i);

/* The pool as JSON in a file, so separate CLI runs share it. A missing file
 * is an empty pool. Writes go through a temporary file and rename(). */
int iovm_vf_pool_load(iovm_vf_pool *p, const char *path, iovm_error *err);
int iovm_vf_pool_save(const iovm_vf_pool *p, const char *path, iovm_error *err);

/* ---- VMs ---------------------------------------------------------------- */

typedef struct iovm_vm iovm_vm;

/* Connects to the VM's QMP socket (blocking, with a deadline). host may be
 * NULL: VFs are then used as they are (no binding, no reclaim rebinding). */
int iovm_vm_open(const char *name, const char *qmp_path, iovm_host *host, iovm_vf_pool *pool,
		 int timeout_ms, iovm_vm **ret, iovm_error *err);
iovm_vm *iovm_vm_free(iovm_vm *vm);
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

/* ==== shared VFs (macvtap): vm-shared.c ================================== */

/*
 * A shared VF stays on its host driver (igbvf) and keeps its netdev. Each VM
 * sharing it gets a macvtap in bridge mode on that netdev (so the sharing
 * VMs reach each other and the wire), whose /dev/tapN is passed to the
 * running QEMU with QMP getfd and becomes a virtio-net-pci device through
 * netdev_add (type tap) and device_add on a hot-plug port. Nothing is kept
 * in the VF pool: a VF may have many sharing VMs, and everything can be
 * derived again from (VM name, VF): the names below are deterministic, and
 * each macvtap carries "iovm-shared VM VF" as its ifalias so that the
 * macvtaps of a VM that died can be found and deleted. See docs/qmp.md.
 */

#include <net/if.h>
#include <stdint.h>

#define IOVM_SHARED_DEVID_PREFIX "iovm-sh-"
#define IOVM_SHARED_IFNAME_PREFIX "iv"
#define IOVM_SHARED_ALIAS_PREFIX "iovm-shared "
#define IOVM_MAC_STR_MAX 18          /* "02:00:00:00:00:00" */

/* Pure helpers. Device id "iovm-sh-" + VF address with ':' as '-' (same for
 * every VM: QEMU ids are per VM); netdev id "iovm-shn-..." and getfd name
 * "iovm-shfd-..." alike. vf is a canonical address. */
int iovm_shared_device_id(const char *vf, char *ret, size_t n);
int iovm_shared_netdev_id(const char *vf, char *ret, size_t n);
int iovm_shared_fd_name(const char *vf, char *ret, size_t n);
/* The VF address back from a device id; -EINVAL if devid is not one. */
int iovm_shared_vf_from_device_id(const char *devid, char *ret, size_t n);
/* The macvtap's name: "iv" + 8 hex digits of a hash of (vm, vf), so unique
 * per pair and within IFNAMSIZ. */
int iovm_shared_ifname(const char *vm, const char *vf, char *ret, size_t n);
/* The guest MAC when none is given: locally administered unicast
 * "02:xx:xx:xx:xx:xx" from another hash of (vm, vf). */
int iovm_shared_mac(const char *vm, const char *vf, char *ret, size_t n);
/* {"type":"tap","id":NETDEV_ID,"fd":FDNAME,"vhost":false}; NULL on bad input. */
json_object *iovm_shared_netdev_add_args(const char *netdev_id, const char *fdname);
/* {"driver":"virtio-net-pci","netdev":NETDEV_ID,"id":DEVID,"bus":PORT,
 * "mac":MAC}; NULL on bad input (a bad MAC included). */
json_object *iovm_shared_device_add_args(const char *devid, const char *netdev_id, const char *port,
					 const char *mac);

typedef struct iovm_shared_opts {
	const char *vf;                 /* required: a VF on its host driver, with a netdev */
	const char *mac;                /* guest MAC; NULL: iovm_shared_mac(vm, vf) */
	const char *port;               /* NULL: pick a free hot-plug port */
	const char *port_prefix;        /* with port NULL: only ports whose id starts so */
	int timeout_ms;                 /* per QMP step; <= 0: 10 s */
} iovm_shared_opts;

typedef struct iovm_shared_result {
	char devid[IOVM_VM_ID_MAX];
	char netdev_id[IOVM_VM_ID_MAX];
	char port[IOVM_VM_ID_MAX];
	char mac[IOVM_MAC_STR_MAX];
	char ifname[IF_NAMESIZE];       /* the macvtap */
	char vf_netdev[IF_NAMESIZE];    /* the VF's host netdev */
	int ifindex;                    /* the macvtap's: its tap is /dev/tapIFINDEX */
	bool vf_carrier;                /* the VF netdev had carrier (else: no link yet) */
} iovm_shared_result;

/* Creates the macvtap (and sets it and the VF netdev up; a VF netdev without
 * carrier is waited for, 5 s at a time, and bounced up to twice, which
 * redoes igbvf's reset handshake with the PF; one that stays down is
 * reported in vf_carrier, not as an error), opens its tap,
 * getfd + netdev_add + device_add, and verifies with query-pci. Refuses a VF
 * on vfio-pci or without a netdev (-EBUSY / -ENODEV), and a VF this VM
 * already shares (-EEXIST). On failure everything done is undone. The VM
 * needs a host (iovm_vm_open with host not NULL). */
int iovm_vm_attach_shared(iovm_vm *vm, const iovm_shared_opts *o, iovm_shared_result *ret,
			  iovm_error *err);

/* device_del, waits for DEVICE_DELETED until timeout_ms (<= 0: 15 s),
 * netdev_del, deletes the macvtap. On timeout returns -ETIMEDOUT and keeps
 * the netdev and the macvtap (the guest still has the device); calling it
 * again later finishes the job. -ENOENT if the VM has no such device and no
 * macvtap for the VF. */
int iovm_vm_detach_shared(iovm_vm *vm, const char *vf, int timeout_ms, iovm_error *err);

typedef struct iovm_shared_entry {
	char vf[IOVM_VM_ADDR_MAX];
	char devid[IOVM_VM_ID_MAX];
	char ifname[IF_NAMESIZE];
} iovm_shared_entry;

/* The VFs this VM shares, as QEMU knows them (qom-list /machine/peripheral,
 * ids starting with "iovm-sh-"). ret is freed with free(). */
int iovm_vm_shared_list(iovm_vm *vm, iovm_shared_entry **ret, size_t *ret_n, iovm_error *err);

/* Deletes the macvtaps made for vm (by their ifalias) whatever became of its
 * QEMU: for a VM that died (QEMU closed the taps; the links stay until
 * deleted). vf NULL: all of them. Returns how many were deleted. */
int iovm_shared_reclaim(const char *vm, const char *vf, iovm_error *err);

/* Byte counters of a host netdev, from <sysfs>/class/net/IF/statistics/
 * {rx,tx}_bytes: the traffic of every macvtap on a shared VF passes through
 * the VF's netdev, so these sample the VF's throughput. */
int iovm_netdev_bytes(iovm_host *h, const char *ifname, uint64_t *rx, uint64_t *tx, iovm_error *err);
