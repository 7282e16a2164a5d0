/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* PCI addresses and the per-device facts libiovm reads from sysfs. */

#include <net/if.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iovm/error.h"
#include "iovm/host.h"

/* "dddd:bb:ss.f" plus NUL */
#define IOVM_PCI_ADDR_MAX 13
#define IOVM_DRIVER_MAX 64

/* Parses "DDDD:BB:SS.F" or "BB:SS.F" (domain 0), hex, case-insensitive, and
 * writes the canonical lower-case form "dddd:bb:ss.f" into ret (size n >=
 * IOVM_PCI_ADDR_MAX). -EINVAL names the cause in err. */
int iovm_pci_addr_normalize(const char *s, char *ret, size_t n, iovm_error *err);
bool iovm_pci_addr_valid(const char *s);

typedef struct iovm_pci_dev {
	char addr[IOVM_PCI_ADDR_MAX];
	uint16_t vendor, device;
	char driver[IOVM_DRIVER_MAX];      /* "" when unbound */
	char driver_override[IOVM_DRIVER_MAX]; /* "" when unset */
	char netdev[IF_NAMESIZE];          /* first netdev under the device, "" if none */
	int numa_node;                     /* -1 when unknown */
	int iommu_group;                   /* -1 when the device has none */
	/* driver_override could not be read before the deadline: its show()
	 * takes the device lock, held while a driver change or the device's
	 * removal waits (e.g. for a VMM); driver_override is then "". */
	bool locked;
} iovm_pci_dev;

/* Reads the device at addr (any accepted form). -ENODEV if it does not exist. */
int iovm_pci_dev_get(iovm_host *h, const char *addr, iovm_pci_dev *ret, iovm_error *err);

/* Resolves a netdev name to the PCI address of its device. */
int iovm_pci_addr_from_netdev(iovm_host *h, const char *ifname, char *ret, size_t n,
			      iovm_error *err);
