/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Kernel calls with a deadline.
 *
 * A sysfs write on a VF that a VMM holds (unbind, sriov_numvfs, even a read of
 * sriov_numvfs under the PF's device lock on recent kernels) can sleep in the
 * kernel for as long as the VMM keeps the device, in uninterruptible sleep
 * (vfio_unregister_group_dev() ignores signals once interrupted). A thread in
 * that state cannot be killed or joined, and it would also keep its process
 * from exiting. So every such call runs in a short-lived forked child that
 * only does open/read/write/close/_exit (async-signal-safe, so forking a
 * threaded daemon is fine) and reports through a pipe:
 *
 *   - iovm_sysop_write()/iovm_sysop_read() start the call and return at once;
 *     iovm_sysop_fd() becomes readable when it finished (event-loop use), then
 *     iovm_sysop_finish() collects the result without blocking;
 *   - iovm_sysop_wait() polls with a deadline and returns -ETIMEDOUT;
 *   - iovm_sysop_free() on an unfinished call SIGKILLs the child and leaves it
 *     to be reaped later (iovm_sysop_reap(), also run at each new call): the
 *     caller never waits for the kernel.
 *
 * The children are reaped by pid; callers must not waitpid(-1) them away.
 */

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

typedef struct iovm_sysop iovm_sysop;

/* Largest reply a read op returns (sysfs attributes are one page at most). */
#define IOVM_SYSOP_READ_MAX 4000

/* Start writing value to path (one write(2), like `echo -n value > path`). */
int iovm_sysop_write(const char *path, const char *value, iovm_sysop **ret);
/* Several writes in one worker, in order, stopping at the first error (one
 * fork for a whole bind sequence). The result is n, or the failed step's
 * errno with iovm_sysop_failed_step() telling which step. steps and their
 * strings need only live until this returns. */
typedef struct iovm_sysop_step {
	const char *path;
	const char *value;
} iovm_sysop_step;
int iovm_sysop_write_many(const iovm_sysop_step *steps, size_t n, iovm_sysop **ret);
size_t iovm_sysop_failed_step(const iovm_sysop *op);

/* Start reading up to IOVM_SYSOP_READ_MAX bytes of path. */
int iovm_sysop_read(const char *path, iovm_sysop **ret);

/* Readable (POLLIN/POLLHUP) once the call has finished. Owned by op. */
int iovm_sysop_fd(const iovm_sysop *op);
pid_t iovm_sysop_pid(const iovm_sysop *op);

/* Non-blocking. -EAGAIN while running; else the call's result: bytes written
 * or read (>= 0; a read's data is copied NUL-terminated into ret_buf, size n)
 * or the negative errno of open/read/write. -ECHILD if the worker died. */
int iovm_sysop_finish(iovm_sysop *op, char *ret_buf, size_t n);

/* Wait at most timeout_usec for the result; -ETIMEDOUT if the call is still in
 * the kernel (the op stays valid: wait again or free it). */
int iovm_sysop_wait(iovm_sysop *op, uint64_t timeout_usec, char *ret_buf, size_t n);

/* NULL-safe. Abandons a running call (see above). Returns NULL. */
iovm_sysop *iovm_sysop_free(iovm_sysop *op);
/* For _cleanup_(iovm_sysop_freep): iovm_sysop_free(*p). */
static inline void iovm_sysop_freep(iovm_sysop **p)
{
	iovm_sysop_free(*p);
}

/* Reap abandoned children that have exited; returns how many are still stuck. */
unsigned iovm_sysop_reap(void);

/* Synchronous helpers: start + wait + free. */
int iovm_sysfs_write_deadline(const char *path, const char *value, uint64_t timeout_usec);
int iovm_sysfs_read_deadline(const char *path, char *ret_buf, size_t n, uint64_t timeout_usec);
