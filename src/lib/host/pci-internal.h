/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal PCI sysfs helpers shared by pci.c, sriov.c and vfio.c. addr is
 * always a canonical address here. */
#pragma once

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>

#include "iovm/error.h"

#include "iovm/host.h"

int pci_dev_dir(const iovm_host *h, const char *addr, char *buf, size_t n);
int pci_dev_attr(const iovm_host *h, const char *addr, const char *attr, char *buf, size_t n);
/* "" when unbound. */
int pci_read_driver(const iovm_host *h, const char *addr, char *buf, size_t n);
/* group number, or negative errno (-ENOENT: no IOMMU group). */
int pci_read_group(const iovm_host *h, const char *addr);
/* iovm_pci_dev_get() on a canonical address; driver_override (which needs
 * a deadline worker) only when want_override. */
struct iovm_pci_dev;
int pci_dev_read(const iovm_host *h, const char *addr, bool want_override,
		 struct iovm_pci_dev *ret, iovm_error *err);
int pci_first_netdev(const iovm_host *h, const char *addr, char *buf, size_t n);
