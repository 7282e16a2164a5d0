/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * NIC VF settings through the PF over rtnetlink (libnl-route-3): MAC, VLAN +
 * QoS, max tx rate, spoof check, trust, link state; per-VF statistics; and
 * saving a VF's settings before a change so they can be restored on release.
 * The PF is named by PCI address or netdev name; its netdev must exist.
 *
 * Each field is set with its own RTM_SETLINK so a driver that lacks one
 * (igb has no VF link-state control) fails that field alone, by name, and
 * every set is read back: a value the driver accepted but did not apply
 * (igb ignores a VF MAC while the PF is down) is an error, not a success.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iovm/error.h"
#include "iovm/host.h"
#include "iovm/vfconfig.h"

typedef struct iovm_vfnet iovm_vfnet;


/* One rtnetlink socket; replies are awaited at most the host's SYSFS timeout
 * (SO_RCVTIMEO), so a stuck driver yields -ETIMEDOUT. */
int iovm_vfnet_open(iovm_host *h, iovm_vfnet **ret, iovm_error *err);
iovm_vfnet *iovm_vfnet_close(iovm_vfnet *nl);   /* NULL-safe, returns NULL */
/* For _cleanup_(iovm_vfnet_closep): iovm_vfnet_close(*p). */
static inline void iovm_vfnet_closep(iovm_vfnet **p)
{
	iovm_vfnet_close(*p);
}

int iovm_vfnet_get(iovm_vfnet *nl, const char *pf, unsigned vf, iovm_vfnet_config *ret,
		   iovm_error *err);
/* Applies the fields in mask, in the order MAC, VLAN, rate, spoofchk, trust,
 * link state, each verified by reading back. Stops at the first failure. */
int iovm_vfnet_set(iovm_vfnet *nl, const char *pf, unsigned vf, const iovm_vfnet_config *cfg,
		   unsigned mask, iovm_error *err);
/* Settings and statistics of every VF of a PF in one rtnetlink request
 * (iovm_vfnet_get per VF costs a request and a PF lookup each): cfgs[i] and
 * stats[i] (either array may be NULL) for VF index i < n; VFs the kernel
 * does not report are left zeroed (present 0). Returns the number of VFs
 * the PF has, capped at n. */
int iovm_vfnet_get_all(iovm_vfnet *nl, const char *pf, iovm_vfnet_config *cfgs, iovm_vfnet_stats *stats,
		       size_t n, iovm_error *err);
/* The same, named by the PF's netdev: no PF lookup in sysfs (whose
 * sriov_numvfs read costs a deadline worker, a fork), for callers that know
 * the netdev (a cached inventory, the throughput sampler). The VF count is
 * the kernel's IFLA_NUM_VF. */
int iovm_vfnet_get_all_netdev(iovm_vfnet *nl, const char *ifname, iovm_vfnet_config *cfgs,
			      iovm_vfnet_stats *stats, size_t n, iovm_error *err);

/* -EOPNOTSUPP when the kernel sends no IFLA_VF_STATS. Drivers without
 * ndo_get_vf_stats (igb) report zeros. */
int iovm_vfnet_get_stats(iovm_vfnet *nl, const char *pf, unsigned vf, iovm_vfnet_stats *ret,
		     iovm_error *err);

/* Save = get; restore = set every field the saved config has present. */
int iovm_vfnet_save(iovm_vfnet *nl, const char *pf, unsigned vf, iovm_vfnet_config *ret,
		    iovm_error *err);
int iovm_vfnet_restore(iovm_vfnet *nl, const char *pf, unsigned vf,
		       const iovm_vfnet_config *saved, iovm_error *err);
