/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * A minimal, blocking client of the QEMU guest agent (qemu-ga over a
 * virtio-serial port, the host end a UNIX socket), for interface counters
 * of a VF that is inside a guest: a driver such as igb keeps no per-VF
 * statistics on the host, so the guest's own count is the only one.
 *
 * The agent has no greeting and keeps no per-client state: a client that connects
 * may find replies meant for an earlier one still queued. Every call first
 * sends guest-sync-delimited with a fresh token and drops everything up to
 * the agent's 0xFF delimiter and the matching reply (as the agent's
 * documentation asks), then sends its command. Each call has a deadline
 * for all of it, connecting included (an agent whose one connection and
 * one queue slot are taken makes the call wait, never hang); one reply may
 * be at most IOVM_QGA_REPLY_MAX bytes.
 */

#include <stddef.h>
#include <stdint.h>

#include "iovm/error.h"

#define IOVM_QGA_REPLY_MAX (1u << 20)

/* The receive and transmit byte counters of the guest interface whose MAC
 * is MAC ("xx:xx:xx:xx:xx:xx", any case), summed, from
 * guest-network-get-interfaces. -ENOENT: no interface has that MAC;
 * -ENODATA: the agent reports no statistics (qemu-ga < 5.2); -ETIMEDOUT:
 * the deadline passed (also while other clients hold the agent); -EPROTO:
 * a malformed or oversized reply; other -errno from connecting. */
int iovm_qga_if_bytes(const char *socket_path, const char *mac, int timeout_ms, uint64_t *ret,
		      iovm_error *err);

/* The same for N MACs with one question to the agent: ret[k] and
 * status[k] (0, -ENOENT or -ENODATA as above) for macs[k]. Returns 0 when
 * the agent answered (whatever the statuses), or the errors above for the
 * agent as a whole. */
int iovm_qga_if_bytes_many(const char *socket_path, const char *const *macs, size_t n, int timeout_ms,
			   uint64_t *ret, int *status, iovm_error *err);

/* iovm_qga_if_bytes_many that another thread can stop: once CANCEL_FD
 * (an eventfd or a pipe's read end; -1: none) is readable, the call
 * returns -ECANCELED at its next wait, having closed its connection.
 * CANCEL_FD is only polled, never read. */
int iovm_qga_if_bytes_many_cancel(const char *socket_path, const char *const *macs, size_t n, int timeout_ms,
				  int cancel_fd, uint64_t *ret, int *status, iovm_error *err);
