/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal: the PF-ready condition for new VFs (pfready.c). */
#pragma once

#include <stddef.h>

#include "iovm/error.h"
#include "iovm/host.h"

/* Before VFs are created on PF addr (canonical): brings the PF's netdev, if
 * it has one, administratively up. 0, or -errno with err naming the PF. */
int pf_ready_prepare(const iovm_host *h, const char *addr, iovm_error *err);
/* After the VFs are created: 0 if the PF's netdev (if any) is up, i.e. its
 * driver is open and answers the VFs' mailbox; else -EIO naming it. */
int pf_ready_check(const iovm_host *h, const char *addr, unsigned n, iovm_error *err);
/* After a VF was bound to its host driver: a NIC VF whose reset handshake
 * with the PF failed (its netdev does not have the MAC set for it through
 * the PF: igbvf took a random one, and it gets no link) is unbound and
 * probed again, at most twice. Returns how many times it was (0: it was
 * fine, or it cannot be told: no MAC set through the PF), or -EIO when the
 * handshake still failed, naming the VF and both MACs. Seen when the PF's
 * driver answers its mailbox late (an emulated host under load, lab 14). */
int pf_ready_reprobe(iovm_host *h, const char *vf_addr, iovm_error *err);
