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
