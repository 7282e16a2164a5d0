/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal: loading a PCI driver's module on demand (modload.c). */
#pragma once

#include <stddef.h>

#include "iovm/host.h"

/* 0 if the PCI driver is registered (/sys/bus/pci/drivers/DRIVER), after
 * loading its module with modprobe when it was not. Else -errno and, in
 * ret_why, the cause without the object's name, e.g. "vfio-pci could not be
 * loaded: modprobe: FATAL: Module vfio-pci not found in directory ...". */
int host_driver_ensure(const iovm_host *h, const char *driver, char *ret_why, size_t n);

/* Loads the modules for a device's modalias (modprobe -b MODALIAS), as udev
 * does when a device appears: the host driver of a VF bound with autoprobe
 * off, whose name is not known. Best effort; a bind that still finds no
 * driver says so. */
void host_modalias_load(const iovm_host *h, const char *addr);
