/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

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

#include "iovm/host.h"
#include "iovm/vm.h"

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
