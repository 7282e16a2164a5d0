/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The iovm_host context and path-relative sysfs/procfs helpers. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "iovm/deadline.h"
#include "lib/host/sysfs.h"
#include "shared/util.h"

/* Unbinding a device or probing a driver is quick unless something holds
 * the device; creating VFs is slow (each VF is probed), hence two values. */
#define DEFAULT_SYSFS_TIMEOUT_USEC (10u * 1000000u)
#define DEFAULT_NUMVFS_TIMEOUT_USEC (120u * 1000000u)
/* Inventory must stay responsive: a PF whose lock is held is reported from
 * its virtfn links instead (see sriov.c). */
#define DEFAULT_READ_TIMEOUT_USEC (2u * 1000000u)
/* Loading a module with its dependencies: quick on hardware, seconds in
 * an emulated host reading /lib/modules over 9p. */
#define DEFAULT_MODPROBE_TIMEOUT_USEC (60u * 1000000u)

int iovm_host_new(const char *sysfs_root, iovm_host **ret)
{
	_cleanup_free_ iovm_host *h = NULL;
	size_t len;

	if (!ret)
		return -EINVAL;
	if (!sysfs_root)
		sysfs_root = "/sys";
	len = strlen(sysfs_root);
	if (len == 0 || len > PATH_MAX / 2 || sysfs_root[0] != '/')
		return -EINVAL;
	h = calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->sysfs_root = strdup(sysfs_root);
	if (!h->sysfs_root)
		return -ENOMEM;
	/* Strip trailing slashes so joined paths read cleanly in messages. */
	while (len > 1 && h->sysfs_root[len - 1] == '/')
		h->sysfs_root[--len] = '\0';
	if (strcmp(h->sysfs_root, "/sys") == 0)
		h->proc_root = strdup("/proc");
	else if (asprintf(&h->proc_root, "%s/../proc", h->sysfs_root) < 0)
		h->proc_root = NULL;
	if (!h->proc_root) {
		free(h->sysfs_root);
		return -ENOMEM;
	}
	h->timeout_usec[IOVM_TIMEOUT_SYSFS] = DEFAULT_SYSFS_TIMEOUT_USEC;
	h->timeout_usec[IOVM_TIMEOUT_NUMVFS] = DEFAULT_NUMVFS_TIMEOUT_USEC;
	h->timeout_usec[IOVM_TIMEOUT_READ] = DEFAULT_READ_TIMEOUT_USEC;
	h->modprobe_timeout_usec = DEFAULT_MODPROBE_TIMEOUT_USEC;
	*ret = TAKE_PTR(h);
	return 0;
}

iovm_host *iovm_host_free(iovm_host *h)
{
	if (h) {
		free(h->sysfs_root);
		free(h->proc_root);
		free(h);
	}
	return NULL;
}

int iovm_host_set_lock_probe(iovm_host *h, bool on)
{
	if (!h)
		return -EINVAL;
	h->skip_lock_probe = !on;
	return 0;
}

int iovm_host_set_proc_root(iovm_host *h, const char *proc_root)
{
	char *p;

	if (!h || !proc_root || proc_root[0] != '/' || strlen(proc_root) > PATH_MAX / 2)
		return -EINVAL;
	p = strdup(proc_root);
	if (!p)
		return -ENOMEM;
	free(h->proc_root);
	h->proc_root = p;
	return 0;
}

int iovm_host_set_timeout(iovm_host *h, iovm_timeout_kind kind, uint64_t usec)
{
	if (!h || kind < 0 || kind >= _IOVM_TIMEOUT_MAX || usec == 0)
		return -EINVAL;
	h->timeout_usec[kind] = usec;
	return 0;
}

uint64_t iovm_host_get_timeout(const iovm_host *h, iovm_timeout_kind kind)
{
	if (!h || kind < 0 || kind >= _IOVM_TIMEOUT_MAX)
		return 0;
	return h->timeout_usec[kind];
}

const char *iovm_host_sysfs_root(const iovm_host *h)
{
	return h ? h->sysfs_root : NULL;
}

int root_path(const char *root, char *buf, size_t n, const char *fmt, ...)
{
	va_list ap;
	int a, b;

	a = snprintf(buf, n, "%s/", root);
	if (a < 0 || (size_t)a >= n)
		return -ENAMETOOLONG;
	va_start(ap, fmt);
	b = vsnprintf(buf + a, n - a, fmt, ap);
	va_end(ap);
	if (b < 0 || (size_t)b >= n - a)
		return -ENAMETOOLONG;
	return 0;
}

int sysfs_read_str(const char *path, char *buf, size_t n)
{
	_cleanup_close_ int fd = -1;
	ssize_t k;

	if (n == 0)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return negative_errno();
	k = read(fd, buf, n - 1);
	if (k < 0)
		return negative_errno();
	while (k > 0 && (buf[k - 1] == '\n' || buf[k - 1] == ' '))
		k--;
	buf[k] = '\0';
	return (int)k;
}

static int parse_ulong(const char *s, int base, unsigned long *ret)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || end == s || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int sysfs_read_ulong(const char *path, int base, unsigned long *ret)
{
	char buf[64];
	int r;

	r = sysfs_read_str(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	return parse_ulong(buf, base, ret);
}

int sysfs_read_long(const char *path, long *ret)
{
	char buf[64], *end;
	long v;
	int r;

	r = sysfs_read_str(path, buf, sizeof(buf));
	if (r < 0)
		return r;
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || *end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int sysfs_read_link_base(const char *path, char *buf, size_t n)
{
	char target[PATH_MAX];
	const char *base;
	ssize_t k;

	k = readlink(path, target, sizeof(target) - 1);
	if (k < 0)
		return negative_errno();
	target[k] = '\0';
	base = strrchr(target, '/');
	base = base ? base + 1 : target;
	if (strlen(base) >= n)
		return -ENAMETOOLONG;
	strcpy(buf, base);
	return 0;
}

bool sysfs_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

int host_write(const iovm_host *h, iovm_timeout_kind kind, const char *path, const char *value)
{
	if (h->write_hook)
		return h->write_hook(h->write_hook_data, path, value);
	return iovm_sysfs_write_deadline(path, value, h->timeout_usec[kind]);
}

int host_write_many(const iovm_host *h, const host_step *steps, size_t n, size_t *ret_failed)
{
	iovm_sysop_step st[64];
	iovm_sysop *op = NULL;
	uint64_t usec = 0;
	int r;

	*ret_failed = 0;
	if (n == 0 || n > ELEMENTSOF(st))
		return -EINVAL;
	if (h->write_hook) {
		for (size_t i = 0; i < n; i++) {
			r = h->write_hook(h->write_hook_data, steps[i].path, steps[i].value);
			if (r < 0) {
				*ret_failed = i;
				return r;
			}
		}
		return (int)n;
	}
	for (size_t i = 0; i < n; i++) {
		st[i] = (iovm_sysop_step){ .path = steps[i].path, .value = steps[i].value };
		usec += h->timeout_usec[steps[i].kind];
	}
	r = iovm_sysop_write_many(st, n, &op);
	if (r < 0)
		return r;
	r = iovm_sysop_wait(op, usec, NULL, 0);
	if (r < 0)
		*ret_failed = iovm_sysop_failed_step(op);
	iovm_sysop_free(op);
	return r;
}

int host_read_blocking(const iovm_host *h, const char *path, char *buf, size_t n)
{
	int r;

	r = iovm_sysfs_read_deadline(path, buf, n, h->timeout_usec[IOVM_TIMEOUT_READ]);
	if (r < 0)
		return r;
	while (r > 0 && buf[r - 1] == '\n')
		buf[--r] = '\0';
	return r;
}
