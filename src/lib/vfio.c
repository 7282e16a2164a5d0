/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Binding VFs to vfio-pci and back, IOMMU group viability, and who uses a VF.
 * The bind sequence follows the kernel and libvirt (virPCIDeviceBindToStub):
 * set driver_override, unbind from the current driver, write the address to
 * drivers_probe, then read the driver link back. Every write goes through a
 * deadline worker because unbinding a device that a VMM holds blocks.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "iovm/pci.h"
#include "iovm/sriov.h"
#include "iovm/vfio.h"
#include "pci-internal.h"
#include "sysfs.h"
#include "util.h"
#include "vfio-internal.h"

#define USEC_PER_SEC 1000000u

void desc_append(char *buf, size_t n, const char *fmt, ...)
{
	size_t len;
	va_list ap;
	int k;

	if (!buf || n == 0)
		return;
	len = strnlen(buf, n);
	if (len && len + 2 < n) {
		strcpy(buf + len, "; ");
		len += 2;
	}
	if (len + 1 >= n)
		return;
	va_start(ap, fmt);
	k = vsnprintf(buf + len, n - len, fmt, ap);
	va_end(ap);
	if (k >= 0 && (size_t)k >= n - len && n > 4)
		strcpy(buf + n - 4, "...");
}

/* Drivers the kernel lets share an IOMMU group with a VFIO user: VFIO
 * drivers, and drivers that declare driver_managed_dma (pci-stub, pcieport). */
static bool driver_vfio_compatible(const char *drv)
{
	return !drv[0] || strcmp(drv, "pci-stub") == 0 || strcmp(drv, "pcieport") == 0 ||
	       strstr(drv, "vfio") != NULL;
}

static bool is_proc_pid(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Processes with an fd on one of the paths; returns how many. */
static int scan_openers(const iovm_host *h, const char *const *paths, size_t n_paths,
			const char *what, char *desc, size_t n)
{
	_cleanup_(closedirp) DIR *proc = NULL;
	char p[PATH_MAX];
	struct dirent *de;
	int users = 0;

	if (proc_path(h, p, sizeof(p), "%s", "") < 0)
		return -ENAMETOOLONG;
	proc = opendir(p);
	if (!proc)
		return negative_errno();
	while ((de = readdir(proc))) {
		_cleanup_(closedirp) DIR *fds = NULL;
		struct dirent *fe;
		bool hit = false;

		if (!is_proc_pid(de->d_name) || proc_path(h, p, sizeof(p), "%s/fd", de->d_name) < 0)
			continue;
		fds = opendir(p);   /* gone or not ours to see: not a user we can name */
		if (!fds)
			continue;
		while (!hit && (fe = readdir(fds))) {
			char target[PATH_MAX];
			ssize_t k;

			if (fe->d_name[0] == '.' ||
			    proc_path(h, p, sizeof(p), "%s/fd/%s", de->d_name, fe->d_name) < 0)
				continue;
			k = readlink(p, target, sizeof(target) - 1);
			if (k < 0)
				continue;
			target[k] = '\0';
			for (size_t i = 0; i < n_paths; i++)
				if (strcmp(target, paths[i]) == 0)
					hit = true;
		}
		if (hit) {
			char comm[64] = "?";

			if (proc_path(h, p, sizeof(p), "%s/comm", de->d_name) == 0)
				sysfs_read_str(p, comm, sizeof(comm));
			desc_append(desc, n, "%s open by pid %s (%s)", what, de->d_name, comm);
			users++;
		}
	}
	return users;
}

static int upper_devices(const iovm_host *h, const char *ifname, char *desc, size_t n)
{
	_cleanup_(closedirp) DIR *d = NULL;
	char p[PATH_MAX];
	struct dirent *de;
	int users = 0;

	if (sysfs_path(h, p, sizeof(p), "class/net/%s", ifname) < 0)
		return -ENAMETOOLONG;
	d = opendir(p);
	if (!d)
		return 0;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "upper_", 6) == 0) {
			desc_append(desc, n, "netdev %s has upper device %s", ifname, de->d_name + 6);
			users++;
		}
	return users;
}

int vf_users(const iovm_host *h, const char *addr, char *desc, size_t n)
{
	char drv[IOVM_DRIVER_MAX], p[PATH_MAX], ifname[IF_NAMESIZE];
	unsigned long flags;
	int r, users = 0;

	if (desc && n)
		desc[0] = '\0';
	r = pci_read_driver(h, addr, drv, sizeof(drv));
	if (r < 0)
		return r;
	/* Unbound counts too: while a removal waits for a VMM, the kernel has
	 * already dropped the driver link (driver_sysfs_remove() runs before
	 * remove()), yet the group is still open. */
	if (!drv[0] || strstr(drv, "vfio")) {
		char group_path[32], cdev_path[64] = "", what[64], cdev[32];
		const char *paths[2] = { group_path, cdev_path };
		int g = pci_read_group(h, addr);

		if (g < 0)
			return 0;
		snprintf(group_path, sizeof(group_path), "/dev/vfio/%d", g);
		/* Kernels >= 6.6 also offer a per-device cdev (vfio-dev/vfioX). */
		if (pci_dev_attr(h, addr, "vfio-dev", p, sizeof(p)) == 0) {
			_cleanup_(closedirp) DIR *d = opendir(p);
			struct dirent *de;

			while (d && (de = readdir(d)))
				if (strncmp(de->d_name, "vfio", 4) == 0 && strlen(de->d_name) < sizeof(cdev)) {
					strcpy(cdev, de->d_name);
					snprintf(cdev_path, sizeof(cdev_path), "/dev/vfio/devices/%s", cdev);
				}
		}
		snprintf(what, sizeof(what), "vfio group %d", g);
		return scan_openers(h, paths, cdev_path[0] ? 2 : 1, what, desc, n);
	}
	r = pci_first_netdev(h, addr, ifname, sizeof(ifname));
	if (r < 0 || !ifname[0])
		return 0;
	if (sysfs_path(h, p, sizeof(p), "class/net/%s/flags", ifname) == 0 &&
	    sysfs_read_ulong(p, 16, &flags) == 0 && (flags & 0x1 /* IFF_UP */)) {
		desc_append(desc, n, "netdev %s is up", ifname);
		users++;
	}
	r = upper_devices(h, ifname, desc, n);
	return r < 0 ? r : users + r;
}

int iovm_vf_users(iovm_host *h, const char *vf_addr, char *ret, size_t n, iovm_error *err)
{
	char addr[IOVM_PCI_ADDR_MAX], p[PATH_MAX];
	int r;

	if (!h || (!ret && n))
		return iovm_error_set(err, -EINVAL, "vf users: invalid argument");
	r = iovm_pci_addr_normalize(vf_addr, addr, sizeof(addr), err);
	if (r < 0)
		return r;
	if (pci_dev_dir(h, addr, p, sizeof(p)) < 0 || !sysfs_exists(p))
		return iovm_error_set(err, -ENODEV, "vf %s: no such device", addr);
	r = vf_users(h, addr, ret, n);
	if (r < 0)
		return iovm_error_set(err, r, "vf %s: cannot find its users: %s", addr, strerror(-r));
	return r;
}

static int group_check(const iovm_host *h, const char *addr, bool include_self,
		       iovm_error *err)
{
	_cleanup_(closedirp) DIR *d = NULL;
	char p[PATH_MAX], bad[IOVM_ERROR_MSG_MAX / 2] = "";
	struct dirent *de;
	int g, n_bad = 0;

	g = pci_read_group(h, addr);
	if (g < 0)
		return iovm_error_set(err, -ENODEV, "vf %s: no IOMMU group (is the IOMMU enabled, "
				      "intel_iommu=on?)", addr);
	if (sysfs_path(h, p, sizeof(p), "kernel/iommu_groups/%d/devices", g) < 0)
		return -ENAMETOOLONG;
	d = opendir(p);
	if (!d)
		return iovm_error_set(err, -EIO, "vf %s: IOMMU group %d unreadable: %m", addr, g);
	while ((de = readdir(d))) {
		char drv[IOVM_DRIVER_MAX];

		if (de->d_name[0] == '.' || (!include_self && strcmp(de->d_name, addr) == 0))
			continue;
		if (!iovm_pci_addr_valid(de->d_name) ||
		    pci_read_driver(h, de->d_name, drv, sizeof(drv)) < 0)
			continue;
		if (!driver_vfio_compatible(drv)) {
			desc_append(bad, sizeof(bad), "%s bound to %s", de->d_name, drv);
			n_bad++;
		}
	}
	if (n_bad)
		return iovm_error_set(err, -EBUSY, "vf %s: IOMMU group %d not viable (%s)",
				      addr, g, bad);
	return 0;
}

int iovm_vfio_group_check(iovm_host *h, const char *vf_addr, iovm_error *err)
{
	char addr[IOVM_PCI_ADDR_MAX], p[PATH_MAX];
	int r;

	if (!h)
		return iovm_error_set(err, -EINVAL, "vfio group check: invalid argument");
	r = iovm_pci_addr_normalize(vf_addr, addr, sizeof(addr), err);
	if (r < 0)
		return r;
	if (pci_dev_dir(h, addr, p, sizeof(p)) < 0 || !sysfs_exists(p))
		return iovm_error_set(err, -ENODEV, "vf %s: no such device", addr);
	return group_check(h, addr, true, err);
}

int iovm_vfio_group_path(iovm_host *h, const char *vf_addr, char *ret, size_t n, iovm_error *err)
{
	char addr[IOVM_PCI_ADDR_MAX], p[PATH_MAX], buf[32];
	int r, g;

	if (!h || !ret)
		return iovm_error_set(err, -EINVAL, "vfio group path: invalid argument");
	r = iovm_pci_addr_normalize(vf_addr, addr, sizeof(addr), err);
	if (r < 0)
		return r;
	if (pci_dev_dir(h, addr, p, sizeof(p)) < 0 || !sysfs_exists(p))
		return iovm_error_set(err, -ENODEV, "vf %s: no such device", addr);
	g = pci_read_group(h, addr);
	if (g < 0)
		return iovm_error_set(err, -ENODEV, "vf %s: no IOMMU group (is the IOMMU enabled?)",
				      addr);
	r = snprintf(buf, sizeof(buf), "/dev/vfio/%d", g);
	if ((size_t)r >= n)
		return iovm_error_set(err, -ENOBUFS, "vf %s: buffer too small for %s", addr, buf);
	memcpy(ret, buf, (size_t)r + 1);
	return 0;
}

static int write_err(const iovm_host *h, iovm_error *err, int r, const char *addr,
		     const char *step)
{
	if (r == -ETIMEDOUT)
		return iovm_error_set(err, r, "vf %s: %s timed out after %llus: the kernel is "
				      "still waiting for the device (held by a VMM?)", addr, step,
				      (unsigned long long)(h->timeout_usec[IOVM_TIMEOUT_SYSFS] / USEC_PER_SEC));
	return iovm_error_set(err, r, "vf %s: %s failed: %s", addr, step, strerror(-r));
}

static bool valid_driver_name(const char *d)
{
	size_t len = strlen(d);

	return len > 0 && len < IOVM_DRIVER_MAX && !strchr(d, '/') && !strchr(d, '\n') &&
	       strcmp(d, ".") && strcmp(d, "..");
}

/* With sriov_drivers_autoprobe off, the kernel only probes a VF that has a
 * driver_override (pci_device_can_probe()); to let it pick the VF's own host
 * driver from its ID tables, autoprobe is switched on around the probe. */
static int probe(const iovm_host *h, const char *addr, bool host_driver, iovm_error *err)
{
	char p[PATH_MAX], pf[64], ap[PATH_MAX], val[8];
	bool restore = false;
	int r, r2;

	if (host_driver && pci_dev_attr(h, addr, "physfn", p, sizeof(p)) == 0 &&
	    sysfs_read_link_base(p, pf, sizeof(pf)) == 0 &&
	    pci_dev_attr(h, pf, "sriov_drivers_autoprobe", ap, sizeof(ap)) == 0 &&
	    sysfs_read_str(ap, val, sizeof(val)) >= 0 && strcmp(val, "0") == 0) {
		r = host_write(h, IOVM_TIMEOUT_SYSFS, ap, "1");
		if (r < 0)
			return iovm_error_set(err, r, "vf %s: enabling autoprobe on pf %s failed: %s",
					      addr, pf, strerror(-r));
		restore = true;
	}
	if (sysfs_path(h, p, sizeof(p), "bus/pci/drivers_probe") < 0)
		return -ENAMETOOLONG;
	r = host_write(h, IOVM_TIMEOUT_SYSFS, p, addr);
	if (r < 0)
		write_err(h, err, r, addr, "drivers_probe");
	if (restore) {
		r2 = host_write(h, IOVM_TIMEOUT_SYSFS, ap, "0");
		if (r2 < 0 && r >= 0)
			r = iovm_error_set(err, r2, "vf %s: restoring autoprobe off on pf %s failed: %s",
					   addr, pf, strerror(-r2));
	}
	return r < 0 ? r : 0;
}

static int verify(const iovm_host *h, const char *addr, const char *driver, iovm_error *err)
{
	char cur[IOVM_DRIVER_MAX];
	int r;

	r = pci_read_driver(h, addr, cur, sizeof(cur));
	if (r < 0)
		return iovm_error_set(err, r, "vf %s: driver link unreadable: %s", addr, strerror(-r));
	if (driver && strcmp(cur, driver) != 0)
		return iovm_error_set(err, -EIO, "vf %s: bind to %s failed: device is %s%s after "
				      "probe (see the kernel log)", addr, driver,
				      cur[0] ? "bound to " : "unbound", cur);
	if (!driver && (!cur[0] || strstr(cur, "vfio")))
		return iovm_error_set(err, -ENOENT, "vf %s: bind to host driver failed: driver "
				      "missing (no host driver claimed the VF; is its module, e.g. "
				      "igbvf, loaded?)", addr);
	if (driver && strcmp(driver, "vfio-pci") == 0 && pci_read_group(h, addr) < 0)
		return iovm_error_set(err, -EIO, "vf %s: bound to vfio-pci without an IOMMU group",
				      addr);
	return 0;
}

int iovm_vf_bind(iovm_host *h, const char *vf_addr, const char *driver, iovm_error *err)
{
	char addr[IOVM_PCI_ADDR_MAX], cur[IOVM_DRIVER_MAX], p[PATH_MAX], users[256];
	const char *target = driver ? driver : "host driver";
	int r;

	if (!h)
		return iovm_error_set(err, -EINVAL, "vf bind: invalid argument");
	r = iovm_pci_addr_normalize(vf_addr, addr, sizeof(addr), err);
	if (r < 0)
		return r;
	if (driver && !valid_driver_name(driver))
		return iovm_error_set(err, -EINVAL, "vf %s: invalid driver name '%.64s'", addr, driver);
	if (pci_dev_dir(h, addr, p, sizeof(p)) < 0 || !sysfs_exists(p))
		return iovm_error_set(err, -ENODEV, "vf %s: no such device", addr);
	r = pci_read_driver(h, addr, cur, sizeof(cur));
	if (r < 0)
		return iovm_error_set(err, r, "vf %s: driver link unreadable: %s", addr, strerror(-r));
	if ((driver && strcmp(cur, driver) == 0) || (!driver && cur[0] && !strstr(cur, "vfio")))
		return verify(h, addr, driver ? driver : NULL, err);
	if (driver) {
		if (sysfs_path(h, p, sizeof(p), "bus/pci/drivers/%s", driver) < 0 || !sysfs_exists(p))
			return iovm_error_set(err, -ENOENT, "vf %s: bind to %s failed: driver missing "
					      "(modprobe %s)", addr, driver, driver);
		if (strcmp(driver, "vfio-pci") == 0) {
			r = group_check(h, addr, false, err);
			if (r < 0)
				return iovm_error_prefix(err, "bind to vfio-pci refused");
		}
	}
	if (cur[0]) {
		r = vf_users(h, addr, users, sizeof(users));
		if (r > 0)
			return iovm_error_set(err, -EBUSY, "vf %s: bind to %s refused: device busy (%s)",
					      addr, target, users);
	}
	if (pci_dev_attr(h, addr, "driver_override", p, sizeof(p)) < 0)
		return -ENAMETOOLONG;
	/* "\n" clears driver_override (the kernel treats an empty line as none). */
	r = host_write(h, IOVM_TIMEOUT_SYSFS, p, driver ? driver : "\n");
	if (r < 0)
		return write_err(h, err, r, addr, "writing driver_override");
	if (cur[0]) {
		if (pci_dev_attr(h, addr, "driver/unbind", p, sizeof(p)) < 0)
			return -ENAMETOOLONG;
		r = host_write(h, IOVM_TIMEOUT_SYSFS, p, addr);
		/* -ENODEV: it went away from its driver meanwhile, fine. */
		if (r < 0 && r != -ENODEV && r != -ENOENT)
			return write_err(h, err, r, addr, "unbind from its driver");
	}
	r = probe(h, addr, !driver, err);
	if (r < 0)
		return r;
	return verify(h, addr, driver, err);
}
