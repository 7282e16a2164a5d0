/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * New VFs are ready to hand out only while their PF's driver is open. A NIC
 * VF's driver (igbvf, ixgbevf, iavf) starts with a reset handshake over the
 * VF<->PF mailbox, which the PF driver serves from an interrupt it enables
 * in its open: on igb, __igb_open() sets the mailbox interrupt and
 * CTRL_EXT.PFRSTD, which clears the VFs' "PF reset in progress" (RSTI) bit.
 * With the PF netdev down the handshake fails ("PF still in reset state. Is
 * the PF interface up?"), the VF takes a random MAC instead of the one set
 * through the PF and has no carrier (docs/sriov.md, "PF-ready"). igb
 * reopens a running PF inside the sriov_numvfs store, so a PF that is up
 * when the VFs are created is ready when the store returns: there is
 * nothing to wait for, only a netdev to bring up first.
 */
#include <errno.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <netlink/netlink.h>
#include <netlink/route/link.h>

#include "iovm/sriov.h"
#include "iovm/vfconfig.h"
#include "iovm/vfnet.h"
#include "lib/host/pci-internal.h"
#include "lib/host/pfready.h"
#include "lib/host/sysfs.h"
#include "lib/host/vfio-internal.h"
#include "shared/clock.h"
#include "shared/nlerr.h"
#include "shared/util.h"

/* How often the PF's carrier is looked at while waited for. */
#define CARRIER_POLL_MS 10
/* How many times a VF whose handshake failed is probed again, and the pause
 * before the first retry (it grows by as much for each next one): a PF
 * driver that answered its mailbox too late once is often still busy. */
#define REPROBE_MAX 4
#define REPROBE_PAUSE_MS 200

/* -1 without a netdev, else whether it is administratively up. */
static int pf_netdev_up(const iovm_host *h, const char *addr, char *ifname, size_t n)
{
	char p[PATH_MAX];
	unsigned long flags;

	if (pci_first_netdev(h, addr, ifname, n) < 0 || !ifname[0])
		return -1;
	if (sysfs_path(h, p, sizeof(p), "class/net/%s/flags", ifname) < 0 ||
	    sysfs_read_ulong(p, 16, &flags) < 0)
		return -1;
	return (flags & IFF_UP) != 0;
}

static void nl_sock_freep(struct nl_sock **sk)
{
	if (*sk)
		nl_socket_free(*sk);
}

static void link_putp(struct rtnl_link **l)
{
	if (*l)
		rtnl_link_put(*l);
}

/* RTM_SETLINK with IFF_UP, bounded by the SYSFS timeout. */
static int set_up(const iovm_host *h, const char *ifname, char *why, size_t n)
{
	_cleanup_(nl_sock_freep) struct nl_sock *sk = NULL;
	_cleanup_(link_putp) struct rtnl_link *cur = NULL;
	_cleanup_(link_putp) struct rtnl_link *change = NULL;
	uint64_t usec = h->timeout_usec[IOVM_TIMEOUT_SYSFS];
	struct timeval tv = { .tv_sec = (time_t)(usec / 1000000u),
			      .tv_usec = (suseconds_t)(usec % 1000000u) };
	int r;

	if (h->link_up_hook)
		return h->link_up_hook(h->link_up_hook_data, ifname);
	sk = nl_socket_alloc();
	change = rtnl_link_alloc();
	if (!sk || !change)
		return -ENOMEM;
	r = nl_connect(sk, NETLINK_ROUTE);
	if (r >= 0) {
		setsockopt(nl_socket_get_fd(sk), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		r = rtnl_link_get_kernel(sk, 0, ifname, &cur);
	}
	if (r >= 0) {
		rtnl_link_set_flags(change, IFF_UP);
		r = rtnl_link_change(sk, cur, change, 0);
	}
	if (r < 0) {
		snprintf(why, n, "%s", nl_geterror(r));
		return nlerr_to_errno(r);
	}
	return 0;
}

int pf_ready_prepare(const iovm_host *h, const char *addr, iovm_error *err)
{
	char ifname[IF_NAMESIZE] = "", why[128] = "";
	int r;

	if (pf_netdev_up(h, addr, ifname, sizeof(ifname)) != 0)
		return 0;   /* up already, or no netdev (not a NIC PF) */
	if (!h->link_up_hook && strcmp(h->sysfs_root, "/sys") != 0)
		return 0;   /* a fixture tree without a kernel to ask */
	r = set_up(h, ifname, why, sizeof(why));
	if (r < 0)
		return iovm_error_set(err, r, "pf %s: cannot bring its netdev %s up before creating "
				      "VFs (their driver's reset handshake needs the PF driver "
				      "open): %s", addr, ifname, why[0] ? why : strerror(-r));
	return 0;
}

int pf_ready_check(const iovm_host *h, const char *addr, unsigned n, iovm_error *err)
{
	char ifname[IF_NAMESIZE] = "";

	if (pf_netdev_up(h, addr, ifname, sizeof(ifname)) != 0)
		return 0;
	if (!h->link_up_hook && strcmp(h->sysfs_root, "/sys") != 0)
		return 0;   /* a fixture tree: its flags file plays no driver */
	return iovm_error_set(err, -EIO, "pf %s: created %u VFs, but its netdev %s is down: the "
			      "VFs' drivers get no answer from the PF (\"PF still in reset state\") "
			      "until it is up", addr, n, ifname);
}

/* 1 once the carrier file at path says 1, 0 at the deadline. */
static int wait_carrier(const char *path, int timeout_ms)
{
	int64_t deadline = now_ms() + timeout_ms;

	for (;;) {
		unsigned long c;

		/* EINVAL while the netdev is down: no carrier yet. */
		if (sysfs_read_ulong(path, 10, &c) == 0 && c == 1)
			return 1;
		if (now_ms() >= deadline)
			return 0;
		usleep(CARRIER_POLL_MS * 1000);
	}
}

int iovm_pf_wait_carrier(iovm_host *h, const char *pf, int timeout_ms, iovm_error *err)
{
	char addr[IOVM_PCI_ADDR_MAX], ifname[IF_NAMESIZE] = "", p[PATH_MAX];
	int r;

	if (!h || timeout_ms < 0)
		return iovm_error_set(err, -EINVAL, "pf wait-carrier: invalid argument");
	r = iovm_pf_resolve(h, pf, addr, sizeof(addr), err);
	if (r < 0)
		return r;
	r = pf_netdev_up(h, addr, ifname, sizeof(ifname));
	if (r < 0)
		return iovm_error_set(err, -ENODEV, "pf %s: no netdev: no carrier to wait for", addr);
	if (r == 0)
		return iovm_error_set(err, -ENETDOWN, "pf %s: its netdev %s is down: no carrier to wait for",
				      addr, ifname);
	if (sysfs_path(h, p, sizeof(p), "class/net/%s/carrier", ifname) < 0)
		return iovm_error_set(err, -ENAMETOOLONG, "pf %s: netdev path too long", addr);
	return wait_carrier(p, timeout_ms);
}

/* 1 when the VF's host netdev has the MAC set for it through the PF, 0 when
 * it has another (its driver's handshake failed and igbvf took a random
 * MAC), -1 when that cannot be told (no netdev, no MAC set through the
 * PF, no rtnetlink answer). have gets the netdev's MAC. */
static int vf_handshake_ok(iovm_host *h, const char *vf_addr, char *have, size_t n, char want[18])
{
	_cleanup_(iovm_vfnet_closep) iovm_vfnet *nl = NULL;
	static const uint8_t zero[6];
	iovm_vfnet_config c = {};
	char p[PATH_MAX];
	iovm_vf vf;

	if (strcmp(h->sysfs_root, "/sys") != 0)
		return -1;   /* a fixture tree: its netdevs are not the kernel's */
	if (iovm_vf_get(h, vf_addr, &vf, NULL) < 0 || !vf.netdev[0] || !vf.pf_netdev[0])
		return -1;
	if (iovm_vfnet_open(h, &nl, NULL) < 0 || iovm_vfnet_get(nl, vf.pf_addr, vf.index, &c, NULL) < 0 ||
	    !memcmp(c.mac, zero, sizeof(zero)))
		return -1;
	if (sysfs_path(h, p, sizeof(p), "class/net/%s/address", vf.netdev) < 0 || sysfs_read_str(p, have, n) < 0)
		return -1;
	iovm_mac_format(c.mac, want);
	return strcasecmp(have, want) == 0;
}

int pf_ready_reprobe(iovm_host *h, const char *vf_addr, iovm_error *err)
{
	char have[32] = "", want[18] = "", p[PATH_MAX], one[1][IOVM_PCI_ADDR_MAX];
	int i, r;

	snprintf(one[0], sizeof(one[0]), "%s", vf_addr);
	for (i = 0; (r = vf_handshake_ok(h, vf_addr, have, sizeof(have), want)) == 0 && i < REPROBE_MAX; i++) {
		usleep((i + 1) * REPROBE_PAUSE_MS * 1000);
		if (pci_dev_attr(h, vf_addr, "driver/unbind", p, sizeof(p)) < 0)
			return -ENAMETOOLONG;
		r = host_write(h, IOVM_TIMEOUT_SYSFS, p, vf_addr);
		if (r < 0)
			return iovm_error_set(err, r, "vf %s: its host driver's handshake with the PF failed (MAC %s, "
					      "not the PF-set %s); unbinding it to probe again: %s", vf_addr, have,
					      want, strerror(-r));
		r = vf_bind_many(h, one, 1, NULL, err);
		if (r < 0)
			return iovm_error_prefix(err, "vf %s: probing its host driver again after a failed "
						 "handshake with the PF", vf_addr);
	}
	if (r == 0)
		return iovm_error_set(err, -EIO, "vf %s: its host driver's handshake with the PF failed %d times "
				      "(its netdev has MAC %s, not the PF-set %s; the PF driver did not answer its "
				      "mailbox in time)", vf_addr, i + 1, have, want);
	return i;
}
