/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Per-device sysfs facts (the addresses themselves are pciaddr.c). */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "iovm/pci.h"
#include "lib/host/pci-internal.h"
#include "lib/host/sysfs.h"
#include "shared/util.h"

int pci_dev_dir(const iovm_host *h, const char *addr, char *buf, size_t n)
{
	return sysfs_path(h, buf, n, "bus/pci/devices/%s", addr);
}

int pci_dev_attr(const iovm_host *h, const char *addr, const char *attr, char *buf, size_t n)
{
	return sysfs_path(h, buf, n, "bus/pci/devices/%s/%s", addr, attr);
}

int pci_read_driver(const iovm_host *h, const char *addr, char *buf, size_t n)
{
	char p[PATH_MAX];
	int r;

	r = pci_dev_attr(h, addr, "driver", p, sizeof(p));
	if (r < 0)
		return r;
	r = sysfs_read_link_base(p, buf, n);
	if (r == -ENOENT) {
		buf[0] = '\0';
		return 0;
	}
	return r;
}

int pci_read_group(const iovm_host *h, const char *addr)
{
	char p[PATH_MAX], name[32];
	unsigned long g;
	char *end;
	int r;

	r = pci_dev_attr(h, addr, "iommu_group", p, sizeof(p));
	if (r < 0)
		return r;
	r = sysfs_read_link_base(p, name, sizeof(name));
	if (r < 0)
		return r;
	errno = 0;
	g = strtoul(name, &end, 10);
	if (errno || end == name || *end || g > INT_MAX)
		return -EINVAL;
	return (int)g;
}

int pci_first_netdev(const iovm_host *h, const char *addr, char *buf, size_t n)
{
	_cleanup_(closedirp) DIR *d = NULL;
	char p[PATH_MAX];
	struct dirent *de;
	int r;

	buf[0] = '\0';
	r = pci_dev_attr(h, addr, "net", p, sizeof(p));
	if (r < 0)
		return r;
	d = opendir(p);
	if (!d)
		return errno == ENOENT ? 0 : negative_errno();
	/* A NIC function has one netdev; take the first by name so the result
	 * does not depend on readdir order. */
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.' || strlen(de->d_name) >= n)
			continue;
		if (!buf[0] || strcmp(de->d_name, buf) < 0)
			strcpy(buf, de->d_name);
	}
	return 0;
}

int pci_dev_read(const iovm_host *h, const char *addr, bool want_override,
		 iovm_pci_dev *ret, iovm_error *err)
{
	iovm_pci_dev d = { .numa_node = -1, .iommu_group = -1 };
	char p[PATH_MAX];
	unsigned long v;
	long node;
	int r;

	snprintf(d.addr, sizeof(d.addr), "%s", addr);
	r = pci_dev_dir(h, d.addr, p, sizeof(p));
	if (r < 0 || !sysfs_exists(p))
		return iovm_error_set(err, -ENODEV, "pci device %s: no such device", d.addr);
	if (pci_dev_attr(h, d.addr, "vendor", p, sizeof(p)) < 0 ||
	    sysfs_read_ulong(p, 16, &v) < 0 || v > 0xffff)
		return iovm_error_set(err, -EIO, "pci device %s: unreadable vendor id", d.addr);
	d.vendor = (uint16_t)v;
	if (pci_dev_attr(h, d.addr, "device", p, sizeof(p)) < 0 ||
	    sysfs_read_ulong(p, 16, &v) < 0 || v > 0xffff)
		return iovm_error_set(err, -EIO, "pci device %s: unreadable device id", d.addr);
	d.device = (uint16_t)v;
	r = pci_read_driver(h, d.addr, d.driver, sizeof(d.driver));
	if (r < 0)
		return iovm_error_set(err, r, "pci device %s: unreadable driver link: %s",
				      d.addr, strerror(-r));
	/* driver_override_show() takes the device lock: read it through a
	 * deadline worker, and say so when the lock is held. */
	if (want_override && pci_dev_attr(h, d.addr, "driver_override", p, sizeof(p)) == 0) {
		r = host_read_blocking(h, p, d.driver_override, sizeof(d.driver_override));
		if (r == -ETIMEDOUT)
			d.locked = true;
		if (r < 0 || strcmp(d.driver_override, "(null)") == 0)
			d.driver_override[0] = '\0';
	}
	if (pci_dev_attr(h, d.addr, "numa_node", p, sizeof(p)) == 0 &&
	    sysfs_read_long(p, &node) == 0 && node >= 0 && node < INT_MAX)
		d.numa_node = (int)node;
	r = pci_read_group(h, d.addr);
	d.iommu_group = r >= 0 ? r : -1;
	pci_first_netdev(h, d.addr, d.netdev, sizeof(d.netdev));
	*ret = d;
	return 0;
}

int iovm_pci_dev_get(iovm_host *h, const char *addr, iovm_pci_dev *ret, iovm_error *err)
{
	char canon[IOVM_PCI_ADDR_MAX];
	int r;

	if (!h || !ret)
		return iovm_error_set(err, -EINVAL, "pci device: invalid argument");
	r = iovm_pci_addr_normalize(addr, canon, sizeof(canon), err);
	if (r < 0)
		return r;
	return pci_dev_read(h, canon, true, ret, err);
}

int iovm_pci_addr_from_netdev(iovm_host *h, const char *ifname, char *ret, size_t n,
			      iovm_error *err)
{
	char p[PATH_MAX], base[64];
	int r;

	if (!h || !ret || n < IOVM_PCI_ADDR_MAX)
		return iovm_error_set(err, -EINVAL, "netdev: invalid argument");
	if (!ifname || !*ifname || strlen(ifname) >= IF_NAMESIZE || strchr(ifname, '/') ||
	    strcmp(ifname, ".") == 0 || strcmp(ifname, "..") == 0)
		return iovm_error_set(err, -EINVAL, "netdev '%.32s': invalid name",
				      ifname ? ifname : "");
	r = sysfs_path(h, p, sizeof(p), "class/net/%s/device", ifname);
	if (r < 0)
		return iovm_error_set(err, r, "netdev %s: path too long", ifname);
	r = sysfs_read_link_base(p, base, sizeof(base));
	if (r == -ENOENT)
		return iovm_error_set(err, -ENODEV, "netdev %s: no such network device, "
				      "or not backed by a PCI device", ifname);
	if (r < 0)
		return iovm_error_set(err, r, "netdev %s: unreadable device link: %s",
				      ifname, strerror(-r));
	if (!iovm_pci_addr_valid(base))
		return iovm_error_set(err, -ENODEV, "netdev %s: device %s is not a PCI device",
				      ifname, base);
	return iovm_pci_addr_normalize(base, ret, n, err);
}
