/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal: the iovm_host context and sysfs/procfs access relative to its
 * roots. Plain reads here are for attributes that never take a device lock
 * (vendor, device, links); anything that can block goes through
 * host_write()/host_read_blocking(), which use the deadline workers. */
#pragma once

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iovm/host.h"

/* Test seam: when set, every host_write() goes here instead of a deadline
 * worker, so a unit test can play the kernel synchronously (a real store()
 * has done its work when write() returns). Never set outside tests. */
typedef int (*host_write_hook)(void *userdata, const char *path, const char *value);
/* Test seam for modload.c: plays modprobe (0, or -errno with its stderr in
 * why). Never set outside tests. */
typedef int (*host_modprobe_hook)(void *userdata, const char *module, char *why, size_t n);

struct iovm_host {
	char *sysfs_root;
	char *proc_root;
	uint64_t timeout_usec[_IOVM_TIMEOUT_MAX];
	host_write_hook write_hook;
	void *write_hook_data;
	host_modprobe_hook modprobe_hook;
	void *modprobe_hook_data;
	uint64_t modprobe_timeout_usec;
	/* Test seam for pfready.c: plays RTM_SETLINK IFF_UP. */
	int (*link_up_hook)(void *userdata, const char *ifname);
	void *link_up_hook_data;
	bool skip_lock_probe;        /* listings do not read driver_override */
};

/* root + "/" + formatted tail into buf; -ENAMETOOLONG if it does not fit. */
int root_path(const char *root, char *buf, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
#define sysfs_path(h, buf, n, ...) root_path((h)->sysfs_root, (buf), (n), __VA_ARGS__)
#define proc_path(h, buf, n, ...) root_path((h)->proc_root, (buf), (n), __VA_ARGS__)

/* Read a small attribute, trailing newline stripped. */
int sysfs_read_str(const char *path, char *buf, size_t n);
int sysfs_read_ulong(const char *path, int base, unsigned long *ret);
int sysfs_read_long(const char *path, long *ret);
/* Last path component of a symlink's target ("driver" -> "vfio-pci"). */
int sysfs_read_link_base(const char *path, char *buf, size_t n);
bool sysfs_exists(const char *path);

/* Write through a deadline worker; -ETIMEDOUT when the kernel does not
 * return in time. */
int host_write(const iovm_host *h, iovm_timeout_kind kind, const char *path, const char *value);
/* Several writes in one deadline worker (deadline = sum of the steps'
 * kinds). On failure returns the errno and the failed step in *ret_failed. */
typedef struct host_step {
	const char *path;
	const char *value;
	iovm_timeout_kind kind;
} host_step;
int host_write_many(const iovm_host *h, const host_step *steps, size_t n, size_t *ret_failed);
int host_read_blocking(const iovm_host *h, const char *path, char *buf, size_t n);
/* A child of ours that a deadline gave up on: reaped by pid later
 * (iovm_sysop_reap()), never by waitpid(-1). deadline.c. */
void host_abandon_child(int pid);
