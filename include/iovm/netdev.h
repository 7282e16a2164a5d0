/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

#include "iovm/error.h"
#include "iovm/host.h"

/* Byte counters of a host netdev, from <sysfs>/class/net/IF/statistics/
 * {rx,tx}_bytes: the traffic of every macvtap on a shared VF passes through
 * the VF's netdev, so these sample the VF's throughput. */
int iovm_netdev_bytes(iovm_host *h, const char *ifname, uint64_t *rx, uint64_t *tx, iovm_error *err);
