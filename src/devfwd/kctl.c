/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The control file of the guest kernel frontend (kmod/devfwd, devfwd.ko):
 * "add CID PORT HOSTPATH NAME" lines, one per forwarded device. The module
 * checks them again; this side names the device and the cause on error. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devfwd/devfwd.h"
#include "shared/util.h"

static int parse_u32(const char *s, size_t n, uint32_t *ret)
{
	uint64_t v = 0;

	if (n == 0 || n > 10)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

/* The module's rule for a /dev name: components of [A-Za-z0-9._-] joined by
 * '/', none empty, "." or "..", shorter than 64 bytes in all. */
static bool name_ok(const char *name)
{
	size_t len = strlen(name), comp = 0;

	if (len == 0 || len >= 64)
		return false;
	for (size_t i = 0; i <= len; i++) {
		char c = name[i];

		if (c == '/' || c == 0) {
			if (comp == 0 || (comp == 1 && name[i - 1] == '.') ||
			    (comp == 2 && name[i - 1] == '.' && name[i - 2] == '.'))
				return false;
			comp = 0;
			continue;
		}
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
		      c == '_' || c == '-'))
			return false;
		comp++;
	}
	return true;
}

int devfwd_kernel_line(const char *addr, const char *host_path, const char *name, char *buf, size_t size,
		       iovm_error *err)
{
	const char *cid, *colon;
	uint32_t c, p;
	int n;

	if (!addr || strncmp(addr, "vsock:", 6) != 0)
		return iovm_error_set(err, -EINVAL, "%s: the kernel frontend connects over vsock only, not '%s'",
				      host_path, addr ? addr : "");
	cid = addr + 6;
	colon = strchr(cid, ':');
	if (!colon || parse_u32(cid, (size_t)(colon - cid), &c) < 0 ||
	    parse_u32(colon + 1, strlen(colon + 1), &p) < 0)
		return iovm_error_set(err, -EINVAL, "%s: '%s' is not vsock:CID:PORT", host_path, addr);
	if (devfwd_path_check(host_path) < 0 || strlen(host_path) > DEVFWD_MAX_PATH || strpbrk(host_path, " \t\n"))
		return iovm_error_set(err, -EINVAL, "%s: not a clean absolute host path of at most %d bytes "
				      "without blanks", host_path, DEVFWD_MAX_PATH);
	if (!name_ok(name))
		return iovm_error_set(err, -EINVAL, "%s: the kernel frontend cannot name a device /dev/%s "
				      "(components of A-Z a-z 0-9 . _ -, under 64 bytes)", host_path, name);
	n = snprintf(buf, size, "add %" PRIu32 " %" PRIu32 " %s %s\n", c, p, host_path, name);
	if (n < 0 || (size_t)n >= size)
		return iovm_error_set(err, -ENOBUFS, "%s: control line too long", host_path);
	return 0;
}

int devfwd_kernel_add(const char *ctl, const char *line, const char *host_path, iovm_error *err)
{
	_cleanup_close_ int fd = -1;
	size_t len = strlen(line);
	ssize_t n;

	fd = open(ctl, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return iovm_error_set(err, -errno, "%s: cannot open %s (is devfwd.ko loaded?): %s", host_path, ctl,
				      strerror(errno));
	n = write(fd, line, len);
	if (n < 0)
		return iovm_error_set(err, -errno, "%s: %s refused '%.*s': %s", host_path, ctl,
				      (int)(len && line[len - 1] == '\n' ? len - 1 : len), line, strerror(errno));
	if ((size_t)n != len)
		return iovm_error_set(err, -EIO, "%s: short write to %s", host_path, ctl);
	return 0;
}
