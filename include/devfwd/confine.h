/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Confinement of a devfwd worker (libdevfwd-confine, linked by the backend
 * only): the steps and the seccomp allow-list are described in
 * docs/security.md. Functions return a negative errno and never log; the
 * confinement reports what it had to leave out through the log callback.
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "devfwd/devfwd.h"

struct devfwd_confine_cfg {
	uid_t uid; /* the unprivileged identity; applied when running as root */
	gid_t gid;
	const struct devfwd_rules *rules; /* the ioctl commands the filter lets through */
	int broker_fd;                    /* the only fd for sendmsg/recvmsg; -1: none */
	bool no_seccomp;                  /* test builds only: every step but the filter */
	devfwd_log_fn log;                /* may be NULL */
	void *log_userdata;
	const char *peer_name;
};

/* Confines the calling process, in this order: empty mount, network and IPC
 * namespaces (each left out with a warning when the kernel refuses), the
 * bounding and ambient capability sets dropped, groups, gid and uid switched,
 * every remaining capability cleared, not dumpable, no_new_privs, then the
 * seccomp filters. Any failure but a namespace's is fatal: the caller must
 * exit without serving. */
int devfwd_confine(const struct devfwd_confine_cfg *c);

/* Loads the two seccomp filters for a guest's rules into the calling
 * process (which must have no_new_privs set): the allow-list, whose default
 * kills the process, and the ioctl filter, which answers EPERM to a command
 * outside the rules. sendmsg and recvmsg (descriptor passing) are allowed
 * on msg_fd only (-1: nowhere). */
int devfwd_seccomp_load(const struct devfwd_rules *r, int msg_fd);

/* Writes both filters as libseccomp's pseudo-code to fd (for reading). */
int devfwd_seccomp_export(const struct devfwd_rules *r, int msg_fd, int fd);

/* The system calls a worker may make, by name, NULL-terminated: those
 * allowed unconditionally. mmap, mprotect (never PROT_EXEC), fcntl (file
 * flags only), tgkill (itself only), sendmsg and recvmsg (the broker channel
 * only) and ioctl (the rules' commands) are allowed with argument checks on
 * top of these. */
extern const char *const devfwd_seccomp_allowed[];
