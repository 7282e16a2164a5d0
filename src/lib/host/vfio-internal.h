/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal: VF users and binding helpers shared by vfio.c and sriov.c. */
#pragma once

#include <stddef.h>

#include "iovm/error.h"
#include "iovm/host.h"
#include "iovm/pci.h"

/* addr canonical. Same contract as iovm_vf_users(). */
int vf_users(const iovm_host *h, const char *addr, char *desc, size_t n);

/* Binds n VFs (canonical addresses) to driver (NULL: host driver) with one
 * deadline worker for all their writes, then verifies each. */
#define BIND_BATCH 16
int vf_bind_many(const iovm_host *h, char (*addrs)[IOVM_PCI_ADDR_MAX], size_t n,
		 const char *driver, iovm_error *err);

/* Appends "; "-separated text to a bounded buffer, marking truncation. */
void desc_append(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
