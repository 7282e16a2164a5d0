/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Binding VFs to vfio-pci or back to their host driver, and IOMMU groups. */

#include <stddef.h>

#include "iovm/error.h"
#include "iovm/host.h"

/*
 * driver: "vfio-pci" or NULL for the VF's host driver (e.g. igbvf); another
 * driver name binds to that driver. Uses driver_override + drivers_probe
 * (sysfs writes with deadlines) and verifies the bind afterwards. Before a
 * bind to vfio-pci, the other members of the VF's IOMMU group must be viable.
 * A VF whose current binding is in use (see iovm_vf_users) is refused with
 * -EBUSY. Binding to the driver it already has is a verified no-op.
 */
int iovm_vf_bind(iovm_host *h, const char *vf_addr, const char *driver, iovm_error *err);

/* 0 if every device in the VF's IOMMU group is unbound or on vfio-pci (or on
 * pci-stub/pcieport, which the kernel lets share a group with VFIO users);
 * -EBUSY with names otherwise; -ENODEV if the device has no IOMMU group. */
int iovm_vfio_group_check(iovm_host *h, const char *vf_addr, iovm_error *err);

/* writes "/dev/vfio/N" for the VF's group into ret (size n) */
int iovm_vfio_group_path(iovm_host *h, const char *vf_addr, char *ret, size_t n, iovm_error *err);
