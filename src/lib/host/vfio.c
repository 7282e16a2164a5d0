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
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "iovm/pci.h"
#include "iovm/sriov.h"
#include "iovm/vfio.h"
#include "lib/host/modload.h"
#include "lib/host/pci-internal.h"
#include "lib/host/pfready.h"
#include "lib/host/sysfs.h"
#include "shared/util.h"
#include "lib/host/vfio-internal.h"

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

/* Whether anyone holds VFIO group G, asked of the kernel: a group's
 * character device opens once at a time (vfio_group_fops_open() answers
 * EBUSY while it is open), so opening it and closing it at once is an O(1)
 * check where the /proc scan reads every process's fds. Returns 0 (free),
 * 1 (held) or -errno when it cannot tell (not the machine's own /sys and
 * /proc, no group device, a kernel with per-device cdevs, which bypass the
 * group); then the caller scans. */
static int group_held(const iovm_host *h, int g, bool has_cdev)
{
	char dev[32];
	int fd;

	if (has_cdev || strcmp(h->sysfs_root, "/sys") || strcmp(h->proc_root, "/proc"))
		return -EOPNOTSUPP;
	snprintf(dev, sizeof(dev), "/dev/vfio/%d", g);
	fd = open(dev, O_RDWR | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	return errno == EBUSY ? 1 : -errno;
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
		r = group_held(h, g, cdev_path[0]);
		if (r == 0)
			return 0;
		/* Held, or unknown: the scan names the holders. */
		users = scan_openers(h, paths, cdev_path[0] ? 2 : 1, what, desc, n);
		if (r == 1 && users == 0) {
			/* Held by a process this one cannot see (another PID namespace). */
			desc_append(desc, n, "%s is open (by a process not visible here)", what);
			users = 1;
		}
		return users;
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

static bool valid_driver_name(const char *d)
{
	size_t len = strlen(d);

	return len > 0 && len < IOVM_DRIVER_MAX && !strchr(d, '/') && !strchr(d, '\n') &&
	       strcmp(d, ".") && strcmp(d, "..");
}

/* A VF whose current driver is the one asked for (NULL: any host driver). */
static bool on_target(const char *cur, const char *driver)
{
	return driver ? strcmp(cur, driver) == 0 : (cur[0] && !strstr(cur, "vfio"));
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

/* The write plan of one bind batch: per VF driver_override, unbind (if
 * bound), drivers_probe; for the host driver with autoprobe off, autoprobe
 * on before and off after (the kernel only probes a VF that has an override
 * or whose PF has autoprobe on: pci_device_can_probe(), and we do not know
 * the host driver's name, so its ID tables must pick it). */
struct plan {
	host_step steps[2 + 3 * BIND_BATCH];
	const char *what[2 + 3 * BIND_BATCH];
	const char *addr[2 + 3 * BIND_BATCH];
	char paths[2 + 3 * BIND_BATCH][PATH_MAX];
	size_t n;
};

static int plan_add(const iovm_host *h, struct plan *pl, const char *addr, const char *attr,
		    const char *value, const char *what)
{
	int r = attr[0] == '/' ? (snprintf(pl->paths[pl->n], PATH_MAX, "%s", attr), 0)
			       : pci_dev_attr(h, addr, attr, pl->paths[pl->n], PATH_MAX);

	if (r < 0)
		return r;
	pl->steps[pl->n] = (host_step){ pl->paths[pl->n], value, IOVM_TIMEOUT_SYSFS };
	pl->what[pl->n] = what;
	pl->addr[pl->n] = addr;
	pl->n++;
	return 0;
}

int vf_bind_many(const iovm_host *h, char (*addrs)[IOVM_PCI_ADDR_MAX], size_t n,
		 const char *driver, iovm_error *err)
{
	_cleanup_free_ struct plan *pl = NULL;
	char cur[IOVM_DRIVER_MAX], p[PATH_MAX], probe_path[PATH_MAX], users[256];
	char pf[64] = "", ap_path[PATH_MAX] = "", val[8];
	const char *target = driver ? driver : "host driver";
	size_t failed, first_probe = 0;
	bool toggle = false;
	int r;

	if (n == 0 || n > BIND_BATCH)
		return iovm_error_set(err, -EINVAL, "vf bind: %zu devices in one batch", n);
	if (driver) {
		char why[IOVM_ERROR_MSG_MAX / 2];

		/* Loaded on demand: driver_override never makes the kernel load it. */
		r = host_driver_ensure(h, driver, why, sizeof(why));
		if (r < 0)
			return iovm_error_set(err, r, "vf %s: bind to %s failed: %s", addrs[0],
					      driver, why);
	} else {
		/* The host driver is the one whose ID table matches: its module may
		 * not be loaded (VFs created with autoprobe off, nothing else asked). */
		host_modalias_load(h, addrs[0]);
	}
	if (sysfs_path(h, probe_path, sizeof(probe_path), "bus/pci/drivers_probe") < 0)
		return -ENAMETOOLONG;
	pl = calloc(1, sizeof(*pl));
	if (!pl)
		return iovm_error_set(err, -ENOMEM, "vf bind: out of memory");
	for (size_t i = 0; i < n; i++) {
		const char *a = addrs[i];

		r = pci_read_driver(h, a, cur, sizeof(cur));
		if (r < 0)
			return iovm_error_set(err, r, "vf %s: driver link unreadable: %s", a, strerror(-r));
		if (on_target(cur, driver))
			continue;
		if (driver && strcmp(driver, "vfio-pci") == 0) {
			r = group_check(h, a, false, err);
			if (r < 0)
				return iovm_error_prefix(err, "bind to vfio-pci refused");
		}
		if (cur[0] && vf_users(h, a, users, sizeof(users)) > 0)
			return iovm_error_set(err, -EBUSY, "vf %s: bind to %s refused: device busy (%s)",
					      a, target, users);
		if (!driver && !pf[0] && pci_dev_attr(h, a, "physfn", p, sizeof(p)) == 0 &&
		    sysfs_read_link_base(p, pf, sizeof(pf)) == 0 &&
		    pci_dev_attr(h, pf, "sriov_drivers_autoprobe", ap_path, sizeof(ap_path)) == 0 &&
		    sysfs_read_str(ap_path, val, sizeof(val)) >= 0 && strcmp(val, "0") == 0) {
			toggle = true;
			r = plan_add(h, pl, a, ap_path, "1", "enabling autoprobe on its PF");
			first_probe = pl->n;
			if (r < 0)
				return r;
		}
		/* "\n" clears driver_override (an empty line means none). */
		r = plan_add(h, pl, a, "driver_override", driver ? driver : "\n",
			     "writing driver_override");
		if (r >= 0 && cur[0])
			r = plan_add(h, pl, a, "driver/unbind", a, "unbind from its driver");
		if (r >= 0)
			r = plan_add(h, pl, a, probe_path, a, "drivers_probe");
		if (r < 0)
			return -ENAMETOOLONG;
	}
	if (toggle && plan_add(h, pl, addrs[0], ap_path, "0", "restoring autoprobe off") < 0)
		return -ENAMETOOLONG;
	if (pl->n > 0) {
		r = host_write_many(h, pl->steps, pl->n, &failed);
		if (r < 0) {
			/* Never leave autoprobe on: the next VFs created would be
			 * grabbed by their host driver. */
			if (toggle && failed >= first_probe && failed + 1 < pl->n)
				host_write(h, IOVM_TIMEOUT_SYSFS, ap_path, "0");
			if (r == -ETIMEDOUT)
				return iovm_error_set(err, r, "vf %s: bind to %s timed out after %llus: "
						      "the kernel is still waiting for the device "
						      "(held by a VMM?)", addrs[0], target,
						      (unsigned long long)(h->timeout_usec[IOVM_TIMEOUT_SYSFS] *
									   pl->n / USEC_PER_SEC));
			return iovm_error_set(err, r, "vf %s: bind to %s failed: %s: %s",
					      pl->addr[failed], target, pl->what[failed], strerror(-r));
		}
	}
	for (size_t i = 0; i < n; i++) {
		r = verify(h, addrs[i], driver, err);
		if (r < 0)
			return r;
	}
	return 0;
}

int iovm_vf_bind(iovm_host *h, const char *vf_addr, const char *driver, iovm_error *err)
{
	char addr[1][IOVM_PCI_ADDR_MAX], p[PATH_MAX];
	int r;

	if (!h)
		return iovm_error_set(err, -EINVAL, "vf bind: invalid argument");
	r = iovm_pci_addr_normalize(vf_addr, addr[0], sizeof(addr[0]), err);
	if (r < 0)
		return r;
	if (driver && !valid_driver_name(driver))
		return iovm_error_set(err, -EINVAL, "vf %s: invalid driver name '%.64s'", addr[0],
				      driver);
	if (pci_dev_dir(h, addr[0], p, sizeof(p)) < 0 || !sysfs_exists(p))
		return iovm_error_set(err, -ENODEV, "vf %s: no such device", addr[0]);
	r = vf_bind_many(h, addr, 1, driver, err);
	if (r >= 0 && !driver)
		r = pf_ready_reprobe(h, addr[0], err);
	return r < 0 ? r : 0;
}
