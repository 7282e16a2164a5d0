/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * SR-IOV inventory and VF count changes. Kernel facts respected (Linux
 * drivers/pci/iov.c, sriov_numvfs_store()): the count changes only from 0 to
 * N or from N to 0 (-EBUSY otherwise), above sriov_totalvfs is -ERANGE, a PF
 * without a driver (or whose driver has no sriov_configure) is -ENOENT, and
 * the store holds the PF's device lock while VFs are removed, which waits
 * for every VMM to release its VF; sriov_numvfs_show() takes the same lock.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

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
#define MAX_VFS 256

static bool sriov_capable(const iovm_host *h, const char *addr)
{
	char p[PATH_MAX];

	return pci_dev_attr(h, addr, "sriov_totalvfs", p, sizeof(p)) == 0 && sysfs_exists(p);
}

int iovm_pf_resolve(iovm_host *h, const char *pf, char *ret, size_t n, iovm_error *err)
{
	char addr[IOVM_PCI_ADDR_MAX], p[PATH_MAX];
	int r;

	if (!h || !pf || !ret || n < IOVM_PCI_ADDR_MAX)
		return iovm_error_set(err, -EINVAL, "pf: invalid argument");
	if (iovm_pci_addr_valid(pf))
		r = iovm_pci_addr_normalize(pf, addr, sizeof(addr), err);
	else if (strchr(pf, ':'))
		/* Looks like an address, so say what is wrong with it. */
		r = iovm_pci_addr_normalize(pf, addr, sizeof(addr), err);
	else
		r = iovm_pci_addr_from_netdev(h, pf, addr, sizeof(addr), err);
	if (r < 0)
		return iovm_error_prefix(err, "pf %.32s", pf);
	if (pci_dev_dir(h, addr, p, sizeof(p)) < 0 || !sysfs_exists(p))
		return iovm_error_set(err, -ENODEV, "pf %s: no such PCI device", addr);
	if (!sriov_capable(h, addr))
		return iovm_error_set(err, -EOPNOTSUPP, "pf %s: not SR-IOV capable "
				      "(no sriov_totalvfs)", addr);
	memcpy(ret, addr, sizeof(addr));
	return 0;
}

static unsigned count_virtfn(const iovm_host *h, const char *addr)
{
	_cleanup_(closedirp) DIR *d = NULL;
	char p[PATH_MAX];
	struct dirent *de;
	unsigned n = 0;

	if (pci_dev_dir(h, addr, p, sizeof(p)) < 0 || !(d = opendir(p)))
		return 0;
	while ((de = readdir(d)))
		if (strncmp(de->d_name, "virtfn", 6) == 0)
			n++;
	return n;
}

/* sriov_numvfs through a deadline worker: its show() takes the device lock. */
static int read_numvfs(const iovm_host *h, const char *addr, unsigned *ret)
{
	char p[PATH_MAX], buf[32], *end;
	unsigned long v;
	int r;

	if (pci_dev_attr(h, addr, "sriov_numvfs", p, sizeof(p)) < 0)
		return -ENAMETOOLONG;
	r = host_read_blocking(h, p, buf, sizeof(buf));
	if (r < 0)
		return r;
	errno = 0;
	v = strtoul(buf, &end, 10);
	if (errno || end == buf || *end || v > MAX_VFS)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

static unsigned read_uint_attr(const iovm_host *h, const char *addr, const char *attr, int base)
{
	char p[PATH_MAX];
	unsigned long v;

	if (pci_dev_attr(h, addr, attr, p, sizeof(p)) < 0 || sysfs_read_ulong(p, base, &v) < 0 ||
	    v > UINT16_MAX)
		return 0;
	return (unsigned)v;
}

static int pf_fill(iovm_host *h, const char *addr, iovm_pf *ret, iovm_error *err)
{
	iovm_pf pf = { .numa_node = -1 };
	iovm_pci_dev dev;
	char p[PATH_MAX];
	unsigned long flags;
	int r;

	/* A PF's driver_override is of no interest, and reading it would wait
	 * for the device lock a pending resize holds. */
	r = pci_dev_read(h, addr, false, &dev, err);
	if (r < 0)
		return r;
	memcpy(pf.addr, dev.addr, sizeof(pf.addr));
	memcpy(pf.netdev, dev.netdev, sizeof(pf.netdev));
	memcpy(pf.driver, dev.driver, sizeof(pf.driver));
	pf.vendor = dev.vendor;
	pf.device = dev.device;
	pf.numa_node = dev.numa_node;
	pf.total_vfs = read_uint_attr(h, addr, "sriov_totalvfs", 10);
	pf.vf_offset = read_uint_attr(h, addr, "sriov_offset", 10);
	pf.vf_stride = read_uint_attr(h, addr, "sriov_stride", 10);
	pf.vf_device = (uint16_t)read_uint_attr(h, addr, "sriov_vf_device", 16);
	pf.drivers_autoprobe = read_uint_attr(h, addr, "sriov_drivers_autoprobe", 10) != 0;
	r = read_numvfs(h, addr, &pf.num_vfs);
	if (r == -ETIMEDOUT) {
		pf.num_vfs = count_virtfn(h, addr);
		pf.num_vfs_from_links = true;
	} else if (r < 0) {
		return iovm_error_set(err, r, "pf %s: sriov_numvfs unreadable: %s", addr, strerror(-r));
	}
	if (pf.netdev[0]) {
		if (sysfs_path(h, p, sizeof(p), "class/net/%s/operstate", pf.netdev) == 0)
			sysfs_read_str(p, pf.operstate, sizeof(pf.operstate));
		if (sysfs_path(h, p, sizeof(p), "class/net/%s/flags", pf.netdev) == 0 &&
		    sysfs_read_ulong(p, 16, &flags) == 0)
			pf.admin_up = flags & 0x1; /* IFF_UP */
	}
	*ret = pf;
	return 0;
}

int iovm_pf_get(iovm_host *h, const char *pf, iovm_pf *ret, iovm_error *err)
{
	char addr[IOVM_PCI_ADDR_MAX];
	int r;

	if (!ret)
		return iovm_error_set(err, -EINVAL, "pf: invalid argument");
	r = iovm_pf_resolve(h, pf, addr, sizeof(addr), err);
	if (r < 0)
		return r;
	return pf_fill(h, addr, ret, err);
}

static int cmp_pf(const void *a, const void *b)
{
	return strcmp(((const iovm_pf *)a)->addr, ((const iovm_pf *)b)->addr);
}

int iovm_pf_list(iovm_host *h, iovm_pf **ret, size_t *ret_n, iovm_error *err)
{
	_cleanup_(closedirp) DIR *d = NULL;
	_cleanup_free_ iovm_pf *list = NULL;
	size_t n = 0, cap = 0;
	char p[PATH_MAX];
	struct dirent *de;
	int r;

	if (!h || !ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "pf list: invalid argument");
	if (sysfs_path(h, p, sizeof(p), "bus/pci/devices") < 0 || !(d = opendir(p)))
		return iovm_error_set(err, -ENOENT, "pf list: %s unreadable: %m", p);
	while ((de = readdir(d))) {
		if (!iovm_pci_addr_valid(de->d_name) || !sriov_capable(h, de->d_name))
			continue;
		if (n == cap) {
			iovm_pf *nl = reallocarray(list, cap ? cap * 2 : 8, sizeof(*list));

			if (!nl)
				return iovm_error_set(err, -ENOMEM, "pf list: out of memory");
			list = nl;
			cap = cap ? cap * 2 : 8;
		}
		r = pf_fill(h, de->d_name, &list[n], err);
		if (r == -ENODEV)
			continue;   /* removed while we looked */
		if (r < 0)
			return r;
		n++;
	}
	if (n > 0)
		qsort(list, n, sizeof(*list), cmp_pf);
	*ret = TAKE_PTR(list);
	*ret_n = n;
	return 0;
}

/* Mixes a path's identity and times into h (FNV-1a over the fields): of
 * the link itself and of what it points to (bus/pci/devices/ADDR is a link
 * to the device's directory). */
static void stamp_mix(uint64_t *h, const char *path)
{
	for (int follow = 0; follow < 2; follow++) {
		struct stat st;
		uint64_t v[4] = {};

		if ((follow ? stat(path, &st) : lstat(path, &st)) == 0) {
			v[0] = (uint64_t)st.st_ino;
			v[1] = (uint64_t)st.st_mtim.tv_sec;
			v[2] = (uint64_t)st.st_mtim.tv_nsec;
			v[3] = (uint64_t)st.st_size;
		}
		for (size_t i = 0; i < ELEMENTSOF(v); i++)
			for (int b = 0; b < 64; b += 8) {
				*h ^= (v[i] >> b) & 0xff;
				*h *= 0x100000001b3ull;
			}
	}
}

int iovm_pf_stamp(iovm_host *h, const char *pf, uint64_t *ret)
{
	_cleanup_(closedirp) DIR *d = NULL;
	char p[PATH_MAX], addr[IOVM_PCI_ADDR_MAX];
	uint64_t v = 0xcbf29ce484222325ull;
	struct dirent *de;

	if (!h || !ret)
		return -EINVAL;
	if (!pf) {
		if (sysfs_path(h, p, sizeof(p), "bus/pci/devices") < 0)
			return -ENAMETOOLONG;
		stamp_mix(&v, p);
		*ret = v;
		return 0;
	}
	if (iovm_pci_addr_normalize(pf, addr, sizeof(addr), NULL) < 0 ||
	    pci_dev_dir(h, addr, p, sizeof(p)) < 0)
		return -EINVAL;
	stamp_mix(&v, p);
	if (!(d = opendir(p)))
		return negative_errno();
	/* Its own attributes that a fixture's writer changes, then each VF's
	 * directory (a bind or unbind replaces its driver link). */
	static const char *const attrs[] = { "sriov_numvfs", "sriov_drivers_autoprobe", "driver", "net" };
	for (size_t i = 0; i < ELEMENTSOF(attrs); i++)
		if (pci_dev_attr(h, addr, attrs[i], p, sizeof(p)) == 0)
			stamp_mix(&v, p);
	while ((de = readdir(d))) {
		char vaddr[64];

		if (strncmp(de->d_name, "virtfn", 6) || pci_dev_attr(h, addr, de->d_name, p, sizeof(p)) < 0 ||
		    sysfs_read_link_base(p, vaddr, sizeof(vaddr)) < 0 || !iovm_pci_addr_valid(vaddr) ||
		    pci_dev_dir(h, vaddr, p, sizeof(p)) < 0)
			continue;
		stamp_mix(&v, p);
		if (pci_dev_attr(h, vaddr, "net", p, sizeof(p)) == 0)
			stamp_mix(&v, p);
	}
	*ret = v;
	return 0;
}

static int group_peers(const iovm_host *h, iovm_vf *vf)
{
	_cleanup_(closedirp) DIR *d = NULL;
	char p[PATH_MAX];
	struct dirent *de;

	if (vf->iommu_group < 0)
		return 0;
	if (sysfs_path(h, p, sizeof(p), "kernel/iommu_groups/%d/devices", vf->iommu_group) < 0 ||
	    !(d = opendir(p)))
		return 0;
	while ((de = readdir(d))) {
		unsigned i;

		if (!iovm_pci_addr_valid(de->d_name) || strcmp(de->d_name, vf->addr) == 0)
			continue;
		vf->n_group_peers++;
		/* Keep the first ones in sorted order (insertion into a small array). */
		i = vf->n_group_peers <= IOVM_GROUP_PEERS_MAX ? vf->n_group_peers - 1
							       : IOVM_GROUP_PEERS_MAX;
		while (i > 0 && strcmp(vf->group_peers[i - 1], de->d_name) > 0) {
			if (i < IOVM_GROUP_PEERS_MAX)
				memcpy(vf->group_peers[i], vf->group_peers[i - 1], IOVM_PCI_ADDR_MAX);
			i--;
		}
		if (i < IOVM_GROUP_PEERS_MAX)
			snprintf(vf->group_peers[i], IOVM_PCI_ADDR_MAX, "%s", de->d_name);
	}
	return 0;
}

/* Fills a VF known to be virtfn index of pf. */
static int vf_fill(iovm_host *h, const char *pf, const char *pf_netdev, unsigned index,
		   const char *addr, iovm_vf *ret, iovm_error *err)
{
	iovm_vf vf = { .index = index };
	iovm_pci_dev dev;
	int r;

	r = pci_dev_read(h, addr, !h->skip_lock_probe, &dev, err);
	if (r < 0)
		return r;
	memcpy(vf.addr, dev.addr, sizeof(vf.addr));
	vf.locked = dev.locked;
	snprintf(vf.pf_addr, sizeof(vf.pf_addr), "%s", pf);
	snprintf(vf.pf_netdev, sizeof(vf.pf_netdev), "%s", pf_netdev);
	vf.vendor = dev.vendor;
	vf.device = dev.device;
	memcpy(vf.driver, dev.driver, sizeof(vf.driver));
	memcpy(vf.driver_override, dev.driver_override, sizeof(vf.driver_override));
	memcpy(vf.netdev, dev.netdev, sizeof(vf.netdev));
	vf.numa_node = dev.numa_node;
	vf.iommu_group = dev.iommu_group;
	group_peers(h, &vf);
	*ret = vf;
	return 0;
}

static int cmp_vf(const void *a, const void *b)
{
	const iovm_vf *x = a, *y = b;
	int c = strcmp(x->pf_addr, y->pf_addr);

	return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* Appends the VFs of one PF, from its virtfnN links; only the VF at address
 * only if that is not NULL (its attributes are the costly part: one read of
 * each, through the deadline workers). */
static int list_pf_vfs(iovm_host *h, const char *pf, const char *only, iovm_vf **list, size_t *n,
		       size_t *cap, iovm_error *err)
{
	_cleanup_(closedirp) DIR *d = NULL;
	char p[PATH_MAX], netdev[IF_NAMESIZE], vaddr[64];
	struct dirent *de;
	int r;

	pci_first_netdev(h, pf, netdev, sizeof(netdev));
	if (pci_dev_dir(h, pf, p, sizeof(p)) < 0 || !(d = opendir(p)))
		return iovm_error_set(err, -ENODEV, "pf %s: no such device", pf);
	while ((de = readdir(d))) {
		unsigned long idx;
		char *end;

		if (strncmp(de->d_name, "virtfn", 6) != 0)
			continue;
		errno = 0;
		idx = strtoul(de->d_name + 6, &end, 10);
		if (errno || end == de->d_name + 6 || *end || idx >= MAX_VFS)
			continue;
		if (pci_dev_attr(h, pf, de->d_name, p, sizeof(p)) < 0 ||
		    sysfs_read_link_base(p, vaddr, sizeof(vaddr)) < 0 || !iovm_pci_addr_valid(vaddr))
			continue;
		if (only && strcmp(vaddr, only) != 0)
			continue;
		if (*n == *cap) {
			iovm_vf *nl = reallocarray(*list, *cap ? *cap * 2 : 8, sizeof(**list));

			if (!nl)
				return iovm_error_set(err, -ENOMEM, "vf list: out of memory");
			*list = nl;
			*cap = *cap ? *cap * 2 : 8;
		}
		r = vf_fill(h, pf, netdev, (unsigned)idx, vaddr, &(*list)[*n], err);
		if (r == -ENODEV)
			continue;
		if (r < 0)
			return r;
		(*n)++;
	}
	return 0;
}

int iovm_vf_list(iovm_host *h, const char *pf, iovm_vf **ret, size_t *ret_n, iovm_error *err)
{
	_cleanup_free_ iovm_vf *list = NULL;
	_cleanup_free_ iovm_pf *pfs = NULL;
	char addr[IOVM_PCI_ADDR_MAX];
	size_t n = 0, cap = 0, n_pfs = 0;
	int r;

	if (!h || !ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "vf list: invalid argument");
	if (pf) {
		r = iovm_pf_resolve(h, pf, addr, sizeof(addr), err);
		if (r < 0)
			return r;
		r = list_pf_vfs(h, addr, NULL, &list, &n, &cap, err);
	} else {
		r = iovm_pf_list(h, &pfs, &n_pfs, err);
		for (size_t i = 0; r >= 0 && i < n_pfs; i++)
			r = list_pf_vfs(h, pfs[i].addr, NULL, &list, &n, &cap, err);
	}
	if (r < 0)
		return r;
	if (n > 0) /* qsort on a NULL array is undefined even for 0 items */
		qsort(list, n, sizeof(*list), cmp_vf);
	*ret = TAKE_PTR(list);
	*ret_n = n;
	return 0;
}

int iovm_vf_get(iovm_host *h, const char *vf_addr, iovm_vf *ret, iovm_error *err)
{
	_cleanup_free_ iovm_vf *list = NULL;
	char addr[IOVM_PCI_ADDR_MAX], p[PATH_MAX], pf[64];
	size_t n = 0, cap = 0;
	int r;

	if (!h || !ret)
		return iovm_error_set(err, -EINVAL, "vf: invalid argument");
	r = iovm_pci_addr_normalize(vf_addr, addr, sizeof(addr), err);
	if (r < 0)
		return r;
	if (pci_dev_dir(h, addr, p, sizeof(p)) < 0 || !sysfs_exists(p))
		return iovm_error_set(err, -ENODEV, "vf %s: no such device", addr);
	if (pci_dev_attr(h, addr, "physfn", p, sizeof(p)) < 0 ||
	    sysfs_read_link_base(p, pf, sizeof(pf)) < 0 || !iovm_pci_addr_valid(pf))
		return iovm_error_set(err, -ENODEV, "vf %s: not a virtual function (no physfn)", addr);
	r = list_pf_vfs(h, pf, addr, &list, &n, &cap, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (strcmp(list[i].addr, addr) == 0) {
			*ret = list[i];
			return 0;
		}
	return iovm_error_set(err, -ENODEV, "vf %s: pf %s has no virtfn link to it", addr, pf);
}

int iovm_vf_by_index(iovm_host *h, const char *pf, unsigned index, iovm_vf *ret,
		     iovm_error *err)
{
	char addr[IOVM_PCI_ADDR_MAX], p[PATH_MAX], name[32], vaddr[64], netdev[IF_NAMESIZE];
	int r;

	if (!ret)
		return iovm_error_set(err, -EINVAL, "vf: invalid argument");
	r = iovm_pf_resolve(h, pf, addr, sizeof(addr), err);
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "virtfn%u", index);
	if (pci_dev_attr(h, addr, name, p, sizeof(p)) < 0 ||
	    sysfs_read_link_base(p, vaddr, sizeof(vaddr)) < 0)
		return iovm_error_set(err, -ENODEV, "pf %s: no VF %u", addr, index);
	pci_first_netdev(h, addr, netdev, sizeof(netdev));
	return vf_fill(h, addr, netdev, index, vaddr, ret, err);
}

/* Every user of every current VF of pf, for the -EBUSY message. */
static int pf_vf_users(iovm_host *h, const char *pf, char *desc, size_t n, iovm_error *err)
{
	_cleanup_free_ iovm_vf *vfs = NULL;
	size_t n_vfs = 0, cap = 0;
	int r, total = 0;

	desc[0] = '\0';
	r = list_pf_vfs(h, pf, NULL, &vfs, &n_vfs, &cap, err);
	if (r < 0)
		return r;
	if (n_vfs > 0)
		qsort(vfs, n_vfs, sizeof(*vfs), cmp_vf);
	for (size_t i = 0; i < n_vfs; i++) {
		char one[256];

		r = vf_users(h, vfs[i].addr, one, sizeof(one));
		if (r > 0) {
			desc_append(desc, n, "vf %u %s: %s", vfs[i].index, vfs[i].addr, one);
			total += r;
		}
	}
	return total;
}

static int numvfs_write(iovm_host *h, const char *pf, const char *drv, unsigned from,
			unsigned to, iovm_error *err)
{
	char p[PATH_MAX], val[16];
	int r;

	if (pci_dev_attr(h, pf, "sriov_numvfs", p, sizeof(p)) < 0)
		return -ENAMETOOLONG;
	snprintf(val, sizeof(val), "%u", to);
	r = host_write(h, IOVM_TIMEOUT_NUMVFS, p, val);
	if (r >= 0)
		return 0;
	switch (r) {
	case -ETIMEDOUT:
		return iovm_error_set(err, r, "pf %s: setting VF count %u -> %u timed out after "
				      "%llus: the kernel is still waiting (a VMM may hold a VF); the "
				      "write was abandoned and may still complete", pf, from, to,
				      (unsigned long long)(h->timeout_usec[IOVM_TIMEOUT_NUMVFS] / USEC_PER_SEC));
	case -EBUSY:
		return iovm_error_set(err, r, "pf %s: device busy: kernel refused VF count %u -> %u "
				      "(VFs already enabled)", pf, from, to);
	case -ENOENT:
		return iovm_error_set(err, r, "pf %s: driver missing: %s cannot configure SR-IOV",
				      pf, drv[0] ? drv : "no driver");
	case -ERANGE:
		return iovm_error_set(err, r, "pf %s: VF count %u out of range", pf, to);
	default:
		return iovm_error_set(err, r, "pf %s: driver %s failed to set VF count %u -> %u: %s",
				      pf, drv, from, to, strerror(-r));
	}
}

static bool listed(const char *addr, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(addr, list[i]))
			return true;
	return false;
}

static int set_autoprobe(iovm_host *h, const char *addr, bool on, iovm_error *err)
{
	char ap[PATH_MAX];
	int r;

	if (pci_dev_attr(h, addr, "sriov_drivers_autoprobe", ap, sizeof(ap)) < 0)
		return -ENAMETOOLONG;
	r = host_write(h, IOVM_TIMEOUT_SYSFS, ap, on ? "1" : "0");
	if (r < 0)
		return iovm_error_set(err, r, "pf %s: setting sriov_drivers_autoprobe failed: %s", addr,
				      strerror(-r));
	return 0;
}

/* Binds the first n VFs of PF addr that have no driver, except those in
 * skip, to kind's driver; the host kind then turns autoprobe back on, as it
 * was documented to. */
static int bind_unbound(iovm_host *h, const char *addr, unsigned n, iovm_vf_driver_kind kind,
			const char *const *skip, size_t n_skip, iovm_error *err)
{
	/* One deadline worker per batch of VFs rather than per write: the
	 * fork is what libiovm pays over a plain script. */
	const char *target = kind == IOVM_VF_DRIVER_VFIO ? "vfio-pci" : NULL;
	char batch[BIND_BATCH][IOVM_PCI_ADDR_MAX], p[PATH_MAX];
	size_t k = 0;
	int r;

	if (kind == IOVM_VF_DRIVER_NONE)
		return 0;
	for (unsigned i = 0; i < n; i++) {
		char name[32], vaddr[64], drv[IOVM_DRIVER_MAX];

		snprintf(name, sizeof(name), "virtfn%u", i);
		if (pci_dev_attr(h, addr, name, p, sizeof(p)) < 0 ||
		    sysfs_read_link_base(p, vaddr, sizeof(vaddr)) < 0 ||
		    iovm_pci_addr_normalize(vaddr, batch[k], IOVM_PCI_ADDR_MAX, NULL) < 0)
			return iovm_error_set(err, -EIO, "pf %s: created %u VFs, but VF %u "
					      "has no virtfn link", addr, n, i);
		if (!listed(batch[k], skip, n_skip) && pci_read_driver(h, batch[k], drv, sizeof(drv)) >= 0 &&
		    !drv[0])
			k++;
		if (k > 0 && (k == BIND_BATCH || i + 1 == n)) {
			r = vf_bind_many(h, batch, k, target, err);
			for (size_t j = 0; r >= 0 && !target && j < k; j++)
				r = pf_ready_reprobe(h, batch[j], err);
			if (r < 0)
				return iovm_error_prefix(err, "pf %s: created %u VFs, but", addr, n);
			k = 0;
		}
	}
	return kind == IOVM_VF_DRIVER_HOST ? set_autoprobe(h, addr, true, err) : 0;
}

int iovm_pf_bind_vfs(iovm_host *h, const char *pf, iovm_vf_driver_kind kind, const char *const *skip,
		     size_t n_skip, iovm_error *err)
{
	char addr[IOVM_PCI_ADDR_MAX];
	int r;

	if (!h || kind < IOVM_VF_DRIVER_NONE || kind > IOVM_VF_DRIVER_VFIO || (n_skip && !skip))
		return iovm_error_set(err, -EINVAL, "pf bind-vfs: invalid argument");
	r = iovm_pf_resolve(h, pf, addr, sizeof(addr), err);
	if (r < 0)
		return r;
	return bind_unbound(h, addr, count_virtfn(h, addr), kind, skip, n_skip, err);
}

int iovm_pf_set_numvfs(iovm_host *h, const char *pf, unsigned n, iovm_vf_driver_kind kind,
		       unsigned flags, iovm_error *err)
{
	char addr[IOVM_PCI_ADDR_MAX], drv[IOVM_DRIVER_MAX];
	char users[IOVM_ERROR_MSG_MAX / 2];
	unsigned total, cur, links;
	int r;

	if (!h || kind < IOVM_VF_DRIVER_NONE || kind > IOVM_VF_DRIVER_VFIO || (flags & ~IOVM_SRIOV_FORCE))
		return iovm_error_set(err, -EINVAL, "pf set-vfs: invalid argument");
	r = iovm_pf_resolve(h, pf, addr, sizeof(addr), err);
	if (r < 0)
		return r;
	total = read_uint_attr(h, addr, "sriov_totalvfs", 10);
	if (n > total)
		return iovm_error_set(err, -ERANGE, "pf %s: VF count %u above sriov_totalvfs %u",
				      addr, n, total);
	r = pci_read_driver(h, addr, drv, sizeof(drv));
	if (r < 0 || !drv[0])
		return iovm_error_set(err, -ENOENT, "pf %s: driver missing: no driver bound to the "
				      "PF, the kernel cannot create VFs", addr);
	r = read_numvfs(h, addr, &cur);
	if (r == -ETIMEDOUT)
		return iovm_error_set(err, r, "pf %s: reading sriov_numvfs timed out after %llus: "
				      "the PF is locked by a pending VF change (a VMM may hold a VF)",
				      addr, (unsigned long long)(h->timeout_usec[IOVM_TIMEOUT_READ] / USEC_PER_SEC));
	if (r < 0)
		return iovm_error_set(err, r, "pf %s: sriov_numvfs unreadable: %s", addr, strerror(-r));
	if (cur == n)
		return 0;
	if (n > 0 && kind == IOVM_VF_DRIVER_VFIO) {
		char why[IOVM_ERROR_MSG_MAX / 2];

		/* Before any VF is destroyed or created: a driver that cannot
		 * be loaded must not leave new VFs unbound. */
		r = host_driver_ensure(h, "vfio-pci", why, sizeof(why));
		if (r < 0)
			return iovm_error_set(err, r, "pf %s: cannot create %u VFs for vfio-pci: %s",
					      addr, n, why);
	}
	if (cur > 0) {
		/* The kernel can only go through 0, which destroys every VF:
		 * growing is as destructive as shrinking. */
		if (!(flags & IOVM_SRIOV_FORCE)) {
			r = pf_vf_users(h, addr, users, sizeof(users), err);
			if (r < 0)
				return r;
			if (r > 0)
				return iovm_error_set(err, -EBUSY, "pf %s: refusing to change VF count "
						      "%u -> %u: device busy: VFs in use (%s)",
						      addr, cur, n, users);
		}
		r = numvfs_write(h, addr, drv, cur, 0, err);
		if (r < 0)
			return r;
	}
	if (n == 0)
		return 0;
	/* Off while the VFs are created, for every kind: for vfio/none a host
	 * driver must not grab them (it would bring up netdevs we must undo);
	 * for the host driver, the kernel would probe it inside the store, in
	 * pci_enable_sriov(), before igb reopens the PF with the VFs' mailbox
	 * served (igb_sriov_reinit()), and every handshake would fail ("PF
	 * still in reset state", lab 14). They are bound after the store. */
	r = set_autoprobe(h, addr, false, err);
	if (r < 0)
		return r;
	/* The PF driver must be open for the new VFs' mailbox handshake. */
	r = pf_ready_prepare(h, addr, err);
	if (r < 0)
		return r;
	r = numvfs_write(h, addr, drv, 0, n, err);
	if (r < 0)
		return r;
	r = pf_ready_check(h, addr, n, err);
	if (r < 0)
		return r;
	/* pci_iov_add_virtfn() creates the links before the store returns. */
	links = count_virtfn(h, addr);
	if (links != n)
		return iovm_error_set(err, -EIO, "pf %s: asked for %u VFs, the kernel shows %u",
				      addr, n, links);
	return bind_unbound(h, addr, n, kind, NULL, 0, err);
}

int iovm_pf_remove_vfs(iovm_host *h, const char *pf, unsigned flags, iovm_error *err)
{
	return iovm_pf_set_numvfs(h, pf, 0, IOVM_VF_DRIVER_NONE, flags, err);
}
