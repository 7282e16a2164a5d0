/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>

/*
 * iovm_host: the context every libiovm call about the host's PCI/SR-IOV state
 * takes. It names the sysfs root (so unit tests run on fixture trees), the
 * /proc root used to find which processes hold a VF, and the deadlines for
 * kernel calls that can block (see deadline.h).
 */

#include <stdint.h>

typedef struct iovm_host iovm_host;

typedef enum iovm_timeout_kind {
	IOVM_TIMEOUT_SYSFS,     /* one sysfs write or blocking read (bind, unbind, probe) */
	IOVM_TIMEOUT_NUMVFS,    /* one write to sriov_numvfs: creating VFs is slow */
	IOVM_TIMEOUT_READ,      /* a read that takes the device lock (sriov_numvfs) */
	_IOVM_TIMEOUT_MAX,
} iovm_timeout_kind;

/* sysfs_root NULL => "/sys". The /proc root defaults to "/proc" for "/sys"
 * and to "<sysfs_root>/../proc" otherwise (fixture trees carry their own). */
int iovm_host_new(const char *sysfs_root, iovm_host **ret);
iovm_host *iovm_host_free(iovm_host *h);   /* NULL-safe, returns NULL */
/* For _cleanup_(iovm_host_freep): iovm_host_free(*p). */
static inline void iovm_host_freep(iovm_host **p)
{
	iovm_host_free(*p);
}

int iovm_host_set_proc_root(iovm_host *h, const char *proc_root);
/* Whether VF inventory (iovm_vf_get/list) reads driver_override, whose
 * show() takes the device lock and so goes through a deadline worker (a
 * fork) per VF; it is what sets iovm_vf.locked. On by default. A caller that
 * lists often and needs no lock state (iovmd's snapshot) turns it off. */
int iovm_host_set_lock_probe(iovm_host *h, bool on);
int iovm_host_set_timeout(iovm_host *h, iovm_timeout_kind kind, uint64_t usec);
uint64_t iovm_host_get_timeout(const iovm_host *h, iovm_timeout_kind kind);
const char *iovm_host_sysfs_root(const iovm_host *h);
