/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Host netdevs: byte counters from sysfs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/netdev.h"
#include "lib/host/sysfs.h"

static int read_u64(const char *path, uint64_t *ret)
{
	char buf[32], *end;
	unsigned long long v;
	int r = sysfs_read_str(path, buf, sizeof(buf));

	if (r < 0)
		return r;
	errno = 0;
	v = strtoull(buf, &end, 10);
	if (errno || end == buf || *end)
		return -EBADMSG;
	*ret = v;
	return 0;
}

int iovm_netdev_bytes(iovm_host *h, const char *ifname, uint64_t *rx, uint64_t *tx, iovm_error *err)
{
	char p[4096];
	uint64_t v[2];
	int r;

	if (!h || !ifname || !*ifname || strchr(ifname, '/'))
		return iovm_error_set(err, -EINVAL, "netdev bytes: invalid argument");
	for (int i = 0; i < 2; i++) {
		r = sysfs_path(h, p, sizeof(p), "class/net/%s/statistics/%s_bytes", ifname, i ? "tx" : "rx");
		if (r >= 0)
			r = read_u64(p, &v[i]);
		if (r < 0)
			return iovm_error_set(err, r, "netdev %s: %s: %s", ifname, p, strerror(-r));
	}
	if (rx)
		*rx = v[0];
	if (tx)
		*tx = v[1];
	return 0;
}
