/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * SR-IOV inventory and VF lifecycle, exactly as the kernel has it in sysfs.
 * A PF is named by PCI address ("0000:01:00.0" or "01:00.0") or by netdev
 * name ("enp1s0") everywhere. Arrays returned by *_list are freed with free().
 */

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iovm/error.h"
#include "iovm/host.h"
#include "iovm/pci.h"

#define IOVM_GROUP_PEERS_MAX 8

typedef struct iovm_pf {
	char addr[IOVM_PCI_ADDR_MAX];
	char netdev[IF_NAMESIZE];          /* "" if none */
	char driver[IOVM_DRIVER_MAX];      /* "" if unbound */
	uint16_t vendor, device;
	uint16_t vf_device;                /* sriov_vf_device, 0 if unknown */
	int numa_node;                     /* -1 unknown */
	unsigned total_vfs;
	unsigned num_vfs;
	unsigned vf_offset, vf_stride;
	bool drivers_autoprobe;
	/* sriov_numvfs could not be read before the deadline (its device lock is
	 * held, e.g. a resize waits for a VMM); num_vfs counts virtfn links. */
	bool num_vfs_from_links;
	char operstate[16];                /* netdev operstate ("up", "down", ...) or "" */
	bool admin_up;                     /* netdev IFF_UP */
} iovm_pf;

typedef struct iovm_vf {
	char addr[IOVM_PCI_ADDR_MAX];
	char pf_addr[IOVM_PCI_ADDR_MAX];
	char pf_netdev[IF_NAMESIZE];
	unsigned index;                    /* N of the PF's virtfnN */
	uint16_t vendor, device;
	char driver[IOVM_DRIVER_MAX];      /* "" if unbound */
	char driver_override[IOVM_DRIVER_MAX];
	char netdev[IF_NAMESIZE];          /* "" unless bound to a host net driver */
	int numa_node;
	int iommu_group;                   /* -1 without an IOMMU */
	unsigned n_group_peers;            /* other members of the group (total) */
	char group_peers[IOVM_GROUP_PEERS_MAX][IOVM_PCI_ADDR_MAX]; /* first ones, sorted */
	bool locked;                       /* device lock held (driver change/removal pending) */
} iovm_vf;

typedef enum iovm_vf_driver_kind {
	IOVM_VF_DRIVER_NONE,   /* leave new VFs unbound (autoprobe off) */
	IOVM_VF_DRIVER_HOST,   /* let the kernel probe the VF's host driver (autoprobe on) */
	IOVM_VF_DRIVER_VFIO,   /* autoprobe off, then bind every VF to vfio-pci */
} iovm_vf_driver_kind;

/* Skip the in-use check (the kernel call may then block: it has a deadline). */
#define IOVM_SRIOV_FORCE (1u << 0)

/* Resolves a PF name (address or netdev) to its canonical address.
 * -ENODEV: no such device; -EOPNOTSUPP: not SR-IOV capable. */
int iovm_pf_resolve(iovm_host *h, const char *pf, char *ret, size_t n, iovm_error *err);

int iovm_pf_get(iovm_host *h, const char *pf, iovm_pf *ret, iovm_error *err);
/* Every SR-IOV capable PCI device, sorted by address. */
int iovm_pf_list(iovm_host *h, iovm_pf **ret, size_t *ret_n, iovm_error *err);

/* A cheap fingerprint of a fixture PF (pf) or of the PCI device list (pf
 * NULL): the times and identities of the PF's directory and attributes and
 * of its VFs' directories, by lstat() alone (no reads, no forks). On a
 * fixture tree, any write a test makes changes it. The kernel's sysfs keeps
 * no such times: there, follow the kernel with the host monitor (monitor.h). */
int iovm_pf_stamp(iovm_host *h, const char *pf, uint64_t *ret);

/* VFs of one PF (pf != NULL) or of all PFs, sorted by PF then index. */
int iovm_vf_list(iovm_host *h, const char *pf, iovm_vf **ret, size_t *ret_n, iovm_error *err);
/* -ENODEV if vf_addr is not a VF (no physfn link). */
int iovm_vf_get(iovm_host *h, const char *vf_addr, iovm_vf *ret, iovm_error *err);
/* VF number index of a PF. */
int iovm_vf_by_index(iovm_host *h, const char *pf, unsigned index, iovm_vf *ret,
		     iovm_error *err);

/*
 * Who uses a VF: processes that hold its VFIO group (or VFIO cdev) open when
 * it is on vfio-pci; for a host-bound VF, its netdev being administratively
 * up or having an upper device (macvtap, bridge port, bond). Returns the
 * number of users (0 = free) and a description such as
 * "vfio group 14 open by pid 812 (qemu-system-x86)" in ret (size n, may be 0).
 */
int iovm_vf_users(iovm_host *h, const char *vf_addr, char *ret, size_t n, iovm_error *err);

/*
 * Sets the PF's VF count. The kernel only goes through 0, which destroys all
 * VFs, so a change from a non-zero count first checks every VF for users and
 * refuses with -EBUSY naming them (unless IOVM_SRIOV_FORCE), then writes 0.
 * sriov_drivers_autoprobe is set from kind before VFs are created. Errors:
 * -ERANGE count above sriov_totalvfs, -EOPNOTSUPP not SR-IOV capable,
 * -ENOENT no PF driver, -EBUSY in use, -ETIMEDOUT the kernel did not return
 * in time (the write is abandoned, not undone: see deadline.h).
 */
int iovm_pf_set_numvfs(iovm_host *h, const char *pf, unsigned n, iovm_vf_driver_kind kind,
		       unsigned flags, iovm_error *err);

/*
 * Waits up to timeout_ms for the PF's netdev to have carrier (igb drops it
 * while it reopens the PF to create VFs, and the VFs have no link until it
 * is back). 1 when it has, 0 at the deadline; -ENODEV without a netdev,
 * -ENETDOWN with one administratively down (nothing to wait for).
 */
int iovm_pf_wait_carrier(iovm_host *h, const char *pf, int timeout_ms, iovm_error *err);

/*
 * Binds every VF of the PF that has no driver, except the addresses in skip,
 * to kind's driver (the host kind then turns sriov_drivers_autoprobe back
 * on). For VFs created with IOVM_VF_DRIVER_NONE whose binding waits: a live
 * resize gives the held VFs back to their VMs before the others are probed.
 */
int iovm_pf_bind_vfs(iovm_host *h, const char *pf, iovm_vf_driver_kind kind, const char *const *skip,
		     size_t n_skip, iovm_error *err);

/* Removes all VFs of a PF: iovm_pf_set_numvfs(h, pf, 0, NONE, flags, err). */
int iovm_pf_remove_vfs(iovm_host *h, const char *pf, unsigned flags, iovm_error *err);
