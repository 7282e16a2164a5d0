/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared VFs: a VF that stays on its host driver is handed to several VMs,
 * each through a macvtap (bridge mode) on the VF's netdev that QEMU gets as
 * a tap fd (getfd + netdev_add + device_add virtio-net-pci). The macvtaps are
 * made with libnl-route's macvtap link type. The sequence is in docs/qmp.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <netlink/netlink.h>
#include <netlink/cache.h>
#include <netlink/route/link.h>
#include <netlink/route/link/macvtap.h>

#include "iovm/pci.h"
#include "iovm/sriov.h"
#include "iovm/vfnet.h"
#include "iovm/shared.h"
#include "shared/nlerr.h"
#include "shared/util.h"
#include "lib/vm/vm-internal.h"
#include "shared/json-util.h"

#define SHARED_TIMEOUT_MS 10000
#define SHARED_DETACH_TIMEOUT_MS 15000
/* Waiting for the VF netdev's carrier: per try, and down/up bounces. */
#define SHARED_CARRIER_WAIT_MS 5000
#define SHARED_CARRIER_BOUNCES 2
/* devtmpfs creates /dev/tapN when the macvtap registers; allow a moment. */
#define TAP_NODE_WAIT_MS 2000
#define ALIAS_MAX 128


/* ---- pure helpers ------------------------------------------------------ */

/* prefix + address with ':' as '-' (QEMU ids may not contain ':'). */
static int id_from_vf(const char *prefix, const char *vf, char *ret, size_t n)
{
	int len;

	/* Canonical addresses only, so that the id maps back to the VF. */
	if (!vf || strlen(vf) != IOVM_VM_ADDR_MAX - 1 || !iovm_pci_addr_valid(vf) || !ret)
		return -EINVAL;
	len = snprintf(ret, n, "%s%s", prefix, vf);
	if (len < 0 || (size_t)len >= n)
		return -ENAMETOOLONG;
	for (char *c = ret + strlen(prefix); *c; c++)
		if (*c == ':')
			*c = '-';
	return 0;
}

int iovm_shared_device_id(const char *vf, char *ret, size_t n)
{
	return id_from_vf(IOVM_SHARED_DEVID_PREFIX, vf, ret, n);
}

int iovm_shared_netdev_id(const char *vf, char *ret, size_t n)
{
	return id_from_vf("iovm-shn-", vf, ret, n);
}

int iovm_shared_fd_name(const char *vf, char *ret, size_t n)
{
	return id_from_vf("iovm-shfd-", vf, ret, n);
}

int iovm_shared_vf_from_device_id(const char *devid, char *ret, size_t n)
{
	size_t pl = strlen(IOVM_SHARED_DEVID_PREFIX);
	char addr[IOVM_VM_ADDR_MAX];

	if (!devid || !ret || strncmp(devid, IOVM_SHARED_DEVID_PREFIX, pl) ||
	    strlen(devid + pl) >= sizeof(addr))
		return -EINVAL;
	snprintf(addr, sizeof(addr), "%s", devid + pl);
	/* "dddd-bb-ss.f": the first two '-' were ':'. */
	if (strlen(addr) != 12 || addr[4] != '-' || addr[7] != '-')
		return -EINVAL;
	addr[4] = addr[7] = ':';
	if (!iovm_pci_addr_valid(addr))
		return -EINVAL;
	if (strlen(addr) >= n)
		return -ENAMETOOLONG;
	snprintf(ret, n, "%s", addr);
	return 0;
}

/* FNV-1a over salt, vm and vf, each with its terminating NUL so that
 * ("ab","c") and ("a","bc") differ. */
static uint64_t pair_hash(const char *salt, const char *vm, const char *vf)
{
	const char *parts[] = { salt, vm, vf };
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < ELEMENTSOF(parts); i++) {
		const unsigned char *c = (const unsigned char *)parts[i];

		do {
			h ^= *c;
			h *= 0x100000001b3ULL;
		} while (*c++);
	}
	return h;
}

int iovm_shared_ifname(const char *vm, const char *vf, char *ret, size_t n)
{
	int len;

	if (!vm || !*vm || !vf || !*vf || !ret)
		return -EINVAL;
	/* 2 + 8 characters: well within IFNAMSIZ - 1. */
	len = snprintf(ret, n, IOVM_SHARED_IFNAME_PREFIX "%08" PRIx32,
		       (uint32_t)(pair_hash("ifname", vm, vf) >> 32));
	return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

int iovm_shared_mac(const char *vm, const char *vf, char *ret, size_t n)
{
	uint64_t h;
	int len;

	if (!vm || !*vm || !vf || !*vf || !ret)
		return -EINVAL;
	h = pair_hash("mac", vm, vf);
	/* 02: locally administered, unicast. */
	len = snprintf(ret, n, "02:%02x:%02x:%02x:%02x:%02x", (unsigned)(h >> 32) & 0xff,
		       (unsigned)(h >> 24) & 0xff, (unsigned)(h >> 16) & 0xff, (unsigned)(h >> 8) & 0xff,
		       (unsigned)h & 0xff);
	return len < 0 || (size_t)len >= n ? -ENAMETOOLONG : 0;
}

/* "aa:bb:..." in lower case, or -EINVAL; multicast addresses are refused. */
static int mac_normalize(const char *s, char *ret, size_t n, uint8_t bytes[6])
{
	if (iovm_mac_parse(s, bytes) < 0 || (bytes[0] & 1))
		return -EINVAL;
	snprintf(ret, n, "%02x:%02x:%02x:%02x:%02x:%02x", bytes[0], bytes[1], bytes[2], bytes[3],
		 bytes[4], bytes[5]);
	return 0;
}

json_object *iovm_shared_netdev_add_args(const char *netdev_id, const char *fdname)
{
	json_object *a;

	if (!netdev_id || !*netdev_id || !fdname || !*fdname)
		return NULL;
	a = json_object_new_object();
	if (!a)
		return NULL;
	json_object_object_add(a, "type", json_object_new_string("tap"));
	json_object_object_add(a, "id", json_object_new_string(netdev_id));
	json_object_object_add(a, "fd", json_object_new_string(fdname));
	/* vhost-net would need /dev/vhost-net and bypasses nothing we count. */
	json_object_object_add(a, "vhost", json_object_new_boolean(false));
	return a;
}

json_object *iovm_shared_device_add_args(const char *devid, const char *netdev_id, const char *port,
					 const char *mac)
{
	char m[IOVM_MAC_STR_MAX];
	uint8_t bytes[6];
	json_object *a;

	if (!devid || !*devid || !netdev_id || !*netdev_id || !port || !*port || !mac ||
	    mac_normalize(mac, m, sizeof(m), bytes) < 0)
		return NULL;
	a = json_object_new_object();
	if (!a)
		return NULL;
	json_object_object_add(a, "driver", json_object_new_string("virtio-net-pci"));
	json_object_object_add(a, "netdev", json_object_new_string(netdev_id));
	json_object_object_add(a, "id", json_object_new_string(devid));
	json_object_object_add(a, "bus", json_object_new_string(port));
	json_object_object_add(a, "mac", json_object_new_string(m));
	return a;
}

/* ---- macvtaps over rtnetlink ------------------------------------------- */

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

#define _cleanup_sk_ _cleanup_(nl_sock_freep)
#define _cleanup_link_ _cleanup_(link_putp)

static int nl_open(struct nl_sock **ret, iovm_error *err)
{
	struct nl_sock *sk = nl_socket_alloc();
	int r;

	if (!sk)
		return iovm_error_set(err, -ENOMEM, "rtnetlink: out of memory");
	r = nl_connect(sk, NETLINK_ROUTE);
	if (r < 0) {
		nl_socket_free(sk);
		return iovm_error_set(err, nlerr_to_errno(r), "rtnetlink socket: %s", nl_geterror(r));
	}
	*ret = sk;
	return 0;
}

/* Sets a link up unless it is, and its ifalias if alias is not NULL;
 * returns its ifindex. */
static int link_up(struct nl_sock *sk, const char *ifname, const char *alias, iovm_error *err)
{
	_cleanup_link_ struct rtnl_link *cur = NULL;
	_cleanup_link_ struct rtnl_link *change = NULL;
	int r;

	r = rtnl_link_get_kernel(sk, 0, ifname, &cur);
	if (r < 0)
		return iovm_error_set(err, nlerr_to_errno(r), "netdev %s: %s", ifname, nl_geterror(r));
	if (!(rtnl_link_get_flags(cur) & IFF_UP) || alias) {
		change = rtnl_link_alloc();
		if (!change)
			return iovm_error_set(err, -ENOMEM, "netdev %s: out of memory", ifname);
		rtnl_link_set_flags(change, IFF_UP);
		if (alias)
			rtnl_link_set_ifalias(change, alias);
		r = rtnl_link_change(sk, cur, change, 0);
		if (r < 0)
			return iovm_error_set(err, nlerr_to_errno(r), "netdev %s: setting it up: %s", ifname,
					      nl_geterror(r));
	}
	return rtnl_link_get_ifindex(cur);
}

/* Sets a link administratively down or up. */
static int link_set_state(struct nl_sock *sk, const char *ifname, bool up, iovm_error *err)
{
	_cleanup_link_ struct rtnl_link *cur = NULL;
	_cleanup_link_ struct rtnl_link *change = rtnl_link_alloc();
	int r;

	if (!change)
		return iovm_error_set(err, -ENOMEM, "netdev %s: out of memory", ifname);
	r = rtnl_link_get_kernel(sk, 0, ifname, &cur);
	if (r >= 0) {
		if (up)
			rtnl_link_set_flags(change, IFF_UP);
		else
			rtnl_link_unset_flags(change, IFF_UP);
		r = rtnl_link_change(sk, cur, change, 0);
	}
	if (r < 0)
		return iovm_error_set(err, nlerr_to_errno(r), "netdev %s: setting it %s: %s", ifname,
				      up ? "up" : "down", nl_geterror(r));
	return 0;
}

/* 1 if the link has carrier, 0 if not. */
static int link_carrier(struct nl_sock *sk, const char *ifname, iovm_error *err)
{
	_cleanup_link_ struct rtnl_link *l = NULL;
	int r;

	r = rtnl_link_get_kernel(sk, 0, ifname, &l);
	if (r < 0)
		return iovm_error_set(err, nlerr_to_errno(r), "netdev %s: %s", ifname, nl_geterror(r));
	return rtnl_link_get_carrier(l) ? 1 : 0;
}

/* A VF netdev that is up may still report no carrier, for good: igbvf
 * learns the link from the PF over the mailbox, and a reset handshake that
 * overran the driver's budgets (a loaded host; moving the netdev between
 * namespaces is one down, hence one reset) leaves it down until its next
 * down/up, which redoes the handshake. Waits for carrier, bouncing the
 * netdev up to SHARED_CARRIER_BOUNCES times (its users, if any, have no
 * link either). A link that stays down (no cable) is not an error: the
 * sharing works once it comes up. Returns 1 with carrier, 0 without. */
static int parent_carrier(struct nl_sock *sk, const char *ifname, iovm_error *err)
{
	for (int bounce = 0;; bounce++) {
		for (int waited = 0;; waited += 50) {
			int c = link_carrier(sk, ifname, err);

			if (c != 0)
				return c;
			if (waited >= SHARED_CARRIER_WAIT_MS)
				break;
			poll(NULL, 0, 50);
		}
		if (bounce == SHARED_CARRIER_BOUNCES)
			return 0;
		int r = link_set_state(sk, ifname, false, err);
		if (r >= 0)
			r = link_set_state(sk, ifname, true, err);
		if (r < 0)
			return r;
	}
}

static int macvtap_delete(struct nl_sock *sk, const char *ifname, iovm_error *err);

static int macvtap_create(struct nl_sock *sk, const char *parent, const char *ifname,
			  const uint8_t mac[6], const char *alias, bool *carrier, iovm_error *err)
{
	_cleanup_link_ struct rtnl_link *l = rtnl_link_macvtap_alloc();
	struct nl_addr *addr;
	int parent_index, r;

	if (!l)
		return iovm_error_set(err, -ENOMEM, "macvtap %s: out of memory", ifname);
	parent_index = link_up(sk, parent, NULL, err);
	if (parent_index < 0)
		return parent_index;
	r = parent_carrier(sk, parent, err);
	if (r < 0)
		return r;
	*carrier = r > 0;
	addr = nl_addr_build(AF_LLC, mac, 6);
	if (!addr)
		return iovm_error_set(err, -ENOMEM, "macvtap %s: out of memory", ifname);
	rtnl_link_set_link(l, parent_index);
	rtnl_link_set_name(l, ifname);
	rtnl_link_set_addr(l, addr);
	nl_addr_put(addr);
	rtnl_link_set_flags(l, IFF_UP);
	/* Bridge: the VMs sharing the VF reach each other, not only the wire. */
	rtnl_link_macvtap_set_mode(l, MACVLAN_MODE_BRIDGE);
	r = rtnl_link_add(sk, l, NLM_F_CREATE | NLM_F_EXCL);
	if (r < 0)
		return iovm_error_set(err, nlerr_to_errno(r), "macvtap %s on %s: %s", ifname, parent,
				      nl_geterror(r));
	/* The kernel applies IFLA_IFALIAS only to an existing link: set it
	 * (and up, if the new link's flags were not applied) in a second
	 * message. Returns the ifindex. */
	r = link_up(sk, ifname, alias, err);
	if (r < 0)
		(void)macvtap_delete(sk, ifname, NULL);
	return r;
}

static int macvtap_delete(struct nl_sock *sk, const char *ifname, iovm_error *err)
{
	_cleanup_link_ struct rtnl_link *l = NULL;
	int r;

	r = rtnl_link_get_kernel(sk, 0, ifname, &l);
	if (r < 0)
		return iovm_error_set(err, nlerr_to_errno(r), "macvtap %s: %s", ifname, nl_geterror(r));
	if (!rtnl_link_is_macvtap(l))
		return iovm_error_set(err, -EINVAL, "netdev %s is not a macvtap; not deleting it", ifname);
	r = rtnl_link_delete(sk, l);
	if (r < 0)
		return iovm_error_set(err, nlerr_to_errno(r), "macvtap %s: delete: %s", ifname, nl_geterror(r));
	return 0;
}

/* The character device of a macvtap. */
static int tap_open(int ifindex, iovm_error *err)
{
	char path[64];

	snprintf(path, sizeof(path), "/dev/tap%d", ifindex);
	for (int waited = 0;; waited += 20) {
		int fd = open(path, O_RDWR | O_CLOEXEC);

		if (fd >= 0)
			return fd;
		if (errno != ENOENT || waited >= TAP_NODE_WAIT_MS)
			return iovm_error_set(err, negative_errno(), "%s: %m", path);
		poll(NULL, 0, 20);
	}
}

static void alias_of(const char *vm, const char *vf, char *ret, size_t n)
{
	snprintf(ret, n, IOVM_SHARED_ALIAS_PREFIX "%s %s", vm, vf ? vf : "");
}

/* ---- attach / detach ----------------------------------------------------- */

static int qmp_simple(iovm_vm *vm, const char *command, const char *key, const char *value,
		      int timeout_ms, iovm_error *err)
{
	_cleanup_json_ json_object *a = json_object_new_object();

	if (!a)
		return iovm_error_set(err, -ENOMEM, "vm %s: out of memory", iovm_vm_name(vm));
	json_object_object_add(a, key, json_object_new_string(value));
	return iovm_qmp_execute(iovm_vm_get_qmp(vm), command, a, NULL, timeout_ms, err);
}

/* QEMU knows a device with this id (qom-get of its type); -ENODEV if not. */
static int device_present(iovm_vm *vm, const char *devid, int timeout_ms, iovm_error *err)
{
	_cleanup_json_ json_object *a = json_object_new_object();
	_cleanup_json_ json_object *type = NULL;
	char path[IOVM_VM_ID_MAX + 32];
	int r;

	iovm_vm_device_path(devid, path, sizeof(path));
	json_object_object_add(a, "path", json_object_new_string(path));
	json_object_object_add(a, "property", json_object_new_string("type"));
	r = iovm_qmp_execute(iovm_vm_get_qmp(vm), "qom-get", a, &type, timeout_ms, err);
	return r < 0 ? r : 1;
}

static int shared_names(iovm_vm *vm, const char *vf_in, char *vf, char *devid, char *netdev_id,
			char *ifname, iovm_error *err)
{
	int r = iovm_pci_addr_normalize(vf_in, vf, IOVM_PCI_ADDR_MAX, err);

	if (r < 0)
		return r;
	if (iovm_shared_device_id(vf, devid, IOVM_VM_ID_MAX) < 0 ||
	    iovm_shared_netdev_id(vf, netdev_id, IOVM_VM_ID_MAX) < 0 ||
	    iovm_shared_ifname(iovm_vm_name(vm), vf, ifname, IF_NAMESIZE) < 0)
		return iovm_error_set(err, -EINVAL, "vf %s: cannot derive the shared device's names", vf);
	return 0;
}

int iovm_vm_attach_shared(iovm_vm *vm, const iovm_shared_opts *o, iovm_shared_result *ret,
			  iovm_error *err)
{
	char vf[IOVM_PCI_ADDR_MAX], devid[IOVM_VM_ID_MAX], netdev_id[IOVM_VM_ID_MAX];
	char fdname[IOVM_VM_ID_MAX], port[IOVM_VM_ID_MAX], ifname[IF_NAMESIZE];
	char mac[IOVM_MAC_STR_MAX], alias[ALIAS_MAX];
	iovm_attach_opts po = {};
	_cleanup_json_ json_object *nargs = NULL;
	_cleanup_json_ json_object *dargs = NULL;
	_cleanup_json_ json_object *fargs = NULL;
	_cleanup_sk_ struct nl_sock *sk = NULL;
	_cleanup_close_ int tapfd = -1;
	const char *name = iovm_vm_name(vm);
	iovm_qmp *q = iovm_vm_get_qmp(vm);
	iovm_host *h = vm_host(vm);
	iovm_error e2 = {};
	uint8_t macb[6];
	int timeout_ms, ifindex, r;
	bool carrier = false;
	iovm_vf info;

	if (!vm || !o || !o->vf)
		return iovm_error_set(err, -EINVAL, "vm attach shared: invalid argument");
	r = shared_names(vm, o->vf, vf, devid, netdev_id, ifname, err);
	if (r < 0)
		return r;
	if (!h)
		return iovm_error_set(err, -EINVAL, "vm %s: sharing vf %s needs the host", name, vf);
	if (!iovm_vm_is_alive(vm))
		return iovm_error_set(err, -ENOTCONN, "vm %s: not running", name);
	timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : SHARED_TIMEOUT_MS;
	iovm_shared_fd_name(vf, fdname, sizeof(fdname));
	if (!o->mac)
		iovm_shared_mac(name, vf, mac, sizeof(mac));
	if (mac_normalize(o->mac ? o->mac : mac, mac, sizeof(mac), macb) < 0)
		return iovm_error_set(err, -EINVAL, "vm %s: share vf %s: bad MAC address \"%s\"", name, vf,
				      o->mac);

	r = iovm_vf_get(h, vf, &info, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: share vf", name);
	if (!strcmp(info.driver, "vfio-pci"))
		return iovm_error_set(err, -EBUSY, "vm %s: vf %s is on vfio-pci (exclusive use); a shared "
				      "VF stays on its host driver", name, vf);
	if (!info.netdev[0])
		return iovm_error_set(err, -ENODEV, "vm %s: vf %s has no host netdev (driver %s); a shared "
				      "VF needs one", name, vf, info.driver[0] ? info.driver : "none");
	r = device_present(vm, devid, timeout_ms, &e2);
	if (r > 0)
		return iovm_error_set(err, -EEXIST, "vm %s: already shares vf %s (device %s)", name, vf, devid);
	if (r != -ENODEV)
		return iovm_error_set(err, r, "vm %s: %s", name, e2.msg);

	po.port = o->port;
	po.port_prefix = o->port_prefix;
	r = vm_pick_port(vm, &po, timeout_ms, port, sizeof(port), err);
	if (r < 0)
		return r;
	nargs = iovm_shared_netdev_add_args(netdev_id, fdname);
	dargs = iovm_shared_device_add_args(devid, netdev_id, port, mac);
	fargs = json_object_new_object();
	if (!nargs || !dargs || !fargs)
		return iovm_error_set(err, -ENOMEM, "vm %s: share vf %s: out of memory", name, vf);
	json_object_object_add(fargs, "fdname", json_object_new_string(fdname));

	r = nl_open(&sk, err);
	if (r < 0)
		return r;
	alias_of(name, vf, alias, sizeof(alias));
	ifindex = macvtap_create(sk, info.netdev, ifname, macb, alias, &carrier, err);
	if (ifindex < 0)
		return iovm_error_prefix(err, "vm %s: share vf %s", name, vf);
	tapfd = tap_open(ifindex, err);
	if (tapfd < 0) {
		r = tapfd;
		goto fail_macvtap;
	}
	r = iovm_qmp_execute_with_fd(q, "getfd", fargs, tapfd, NULL, timeout_ms, err);
	if (r < 0)
		goto fail_macvtap;
	/* QEMU holds its own copy now. */
	tapfd = (close(tapfd), -1);
	r = iovm_qmp_execute(q, "netdev_add", nargs, NULL, timeout_ms, err);
	if (r < 0) {
		(void)qmp_simple(vm, "closefd", "fdname", fdname, timeout_ms, NULL);
		goto fail_macvtap;
	}
	r = iovm_qmp_execute(q, "device_add", dargs, NULL, timeout_ms, err);
	if (r < 0) {
		iovm_error_prefix(err, "port %s", port);
		goto fail_netdev;
	}
	r = vm_verify_device(vm, devid, port, "virtio-net-pci", timeout_ms, err);
	if (r < 0) {
		/* Half in: take it out the normal way; if the guest holds on
		 * to it, the netdev and macvtap have to stay. */
		if (vm_unplug(vm, devid, timeout_ms, &e2) < 0)
			return iovm_error_prefix(err, "vm %s: share vf %s (device %s left in place: %s)", name, vf,
						 devid, e2.msg);
		goto fail_netdev;
	}
	if (ret) {
		snprintf(ret->devid, sizeof(ret->devid), "%s", devid);
		snprintf(ret->netdev_id, sizeof(ret->netdev_id), "%s", netdev_id);
		snprintf(ret->port, sizeof(ret->port), "%s", port);
		snprintf(ret->mac, sizeof(ret->mac), "%s", mac);
		snprintf(ret->ifname, sizeof(ret->ifname), "%s", ifname);
		snprintf(ret->vf_netdev, sizeof(ret->vf_netdev), "%s", info.netdev);
		ret->ifindex = ifindex;
		ret->vf_carrier = carrier;
	}
	return 0;

fail_netdev:
	(void)qmp_simple(vm, "netdev_del", "id", netdev_id, timeout_ms, NULL);
fail_macvtap:
	(void)macvtap_delete(sk, ifname, NULL);
	return iovm_error_prefix(err, "vm %s: share vf %s", name, vf);
}

int iovm_vm_detach_shared(iovm_vm *vm, const char *vf_in, int timeout_ms, iovm_error *err)
{
	char vf[IOVM_PCI_ADDR_MAX], devid[IOVM_VM_ID_MAX], netdev_id[IOVM_VM_ID_MAX];
	char ifname[IF_NAMESIZE];
	_cleanup_sk_ struct nl_sock *sk = NULL;
	const char *name = iovm_vm_name(vm);
	bool found = false;
	iovm_error e2 = {};
	int r;

	if (!vm || !vf_in)
		return iovm_error_set(err, -EINVAL, "vm detach shared: invalid argument");
	r = shared_names(vm, vf_in, vf, devid, netdev_id, ifname, err);
	if (r < 0)
		return r;
	if (timeout_ms <= 0)
		timeout_ms = SHARED_DETACH_TIMEOUT_MS;
	if (iovm_qmp_is_connected(iovm_vm_get_qmp(vm))) {
		r = device_present(vm, devid, timeout_ms, &e2);
		if (r < 0 && r != -ENODEV)
			return iovm_error_set(err, r, "vm %s: %s", name, e2.msg);
		if (r > 0) {
			found = true;
			r = vm_unplug(vm, devid, timeout_ms, &e2);
			if (r == -ETIMEDOUT)
				return iovm_error_set(err, r, "vm %s: guest did not release device %s of shared vf "
						      "%s within %d ms (no DEVICE_DELETED); its netdev and macvtap "
						      "%s stay until it does", name, devid, vf, timeout_ms, ifname);
			if (r < 0)
				return iovm_error_set(err, r, "vm %s: detach shared vf %s: %s", name, vf, e2.msg);
		}
		/* Gone from the device list, the tap netdev may remain (an
		 * earlier detach that stopped half way). */
		r = qmp_simple(vm, "netdev_del", "id", netdev_id, timeout_ms, &e2);
		if (r == 0)
			found = true;
		else if (r != -ENODEV && !strstr(e2.msg, "not found"))
			return iovm_error_set(err, r, "vm %s: detach shared vf %s: netdev_del: %s", name, vf,
					      e2.msg);
	}
	r = nl_open(&sk, err);
	if (r < 0)
		return r;
	r = macvtap_delete(sk, ifname, &e2);
	if (r == 0)
		found = true;
	else if (r != -ENODEV)
		return iovm_error_set(err, r, "vm %s: detach shared vf %s: %s", name, vf, e2.msg);
	if (!found)
		return iovm_error_set(err, -ENOENT, "vm %s: does not share vf %s", name, vf);
	return 0;
}

int iovm_vm_shared_list(iovm_vm *vm, iovm_shared_entry **ret, size_t *ret_n, iovm_error *err)
{
	_cleanup_json_ json_object *a = json_object_new_object();
	_cleanup_json_ json_object *list = NULL;
	_cleanup_free_ iovm_shared_entry *v = NULL;
	size_t n = 0, len;
	int r;

	if (!vm || !ret || !ret_n || !a)
		return iovm_error_set(err, -EINVAL, "vm shared list: invalid argument");
	json_object_object_add(a, "path", json_object_new_string("/machine/peripheral"));
	r = iovm_qmp_execute(iovm_vm_get_qmp(vm), "qom-list", a, &list, SHARED_TIMEOUT_MS, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s", iovm_vm_name(vm));
	if (!json_object_is_type(list, json_type_array))
		return iovm_error_set(err, -EBADMSG, "vm %s: qom-list did not return a list", iovm_vm_name(vm));
	len = json_object_array_length(list);
	v = calloc(len ? len : 1, sizeof(*v));
	if (!v)
		return iovm_error_set(err, -ENOMEM, "vm %s: out of memory", iovm_vm_name(vm));
	for (size_t i = 0; i < len; i++) {
		json_object *o = json_object_array_get_idx(list, i), *nm;
		iovm_shared_entry *e = &v[n];

		if (!json_object_object_get_ex(o, "name", &nm) ||
		    iovm_shared_vf_from_device_id(json_object_get_string(nm), e->vf, sizeof(e->vf)) < 0)
			continue;
		snprintf(e->devid, sizeof(e->devid), "%s", json_object_get_string(nm));
		iovm_shared_ifname(iovm_vm_name(vm), e->vf, e->ifname, sizeof(e->ifname));
		n++;
	}
	*ret = TAKE_PTR(v);
	*ret_n = n;
	return 0;
}

struct reclaim_scan {
	char want[ALIAS_MAX];
	bool whole_vm;          /* want is a prefix ("... VM "), else the whole alias */
	char (*names)[IF_NAMESIZE];
	size_t n, cap;
	int oom;
};

static void reclaim_collect(struct nl_object *obj, void *ud)
{
	struct rtnl_link *l = (struct rtnl_link *)obj;
	struct reclaim_scan *s = ud;
	const char *alias = rtnl_link_get_ifalias(l);
	const char *ifname = rtnl_link_get_name(l);

	if (!alias || !ifname || !rtnl_link_is_macvtap(l) ||
	    (s->whole_vm ? strncmp(alias, s->want, strlen(s->want)) : strcmp(alias, s->want)))
		return;
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 8;
		void *p = realloc(s->names, cap * sizeof(*s->names));

		if (!p) {
			s->oom = 1;
			return;
		}
		s->names = p;
		s->cap = cap;
	}
	snprintf(s->names[s->n++], IF_NAMESIZE, "%s", ifname);
}

int iovm_shared_reclaim(const char *vm, const char *vf_in, iovm_error *err)
{
	_cleanup_sk_ struct nl_sock *sk = NULL;
	struct reclaim_scan s = {};
	struct nl_cache *cache = NULL;
	char vf[IOVM_PCI_ADDR_MAX];
	int r, deleted = 0;

	if (!vm || !*vm)
		return iovm_error_set(err, -EINVAL, "shared reclaim: invalid argument");
	if (vf_in) {
		r = iovm_pci_addr_normalize(vf_in, vf, sizeof(vf), err);
		if (r < 0)
			return r;
	}
	alias_of(vm, vf_in ? vf : NULL, s.want, sizeof(s.want));
	s.whole_vm = !vf_in;
	r = nl_open(&sk, err);
	if (r < 0)
		return r;
	r = rtnl_link_alloc_cache(sk, AF_UNSPEC, &cache);
	if (r < 0)
		return iovm_error_set(err, nlerr_to_errno(r), "shared reclaim of vm %s: listing links: %s", vm,
				      nl_geterror(r));
	nl_cache_foreach(cache, reclaim_collect, &s);
	nl_cache_free(cache);
	if (s.oom) {
		free(s.names);
		return iovm_error_set(err, -ENOMEM, "shared reclaim of vm %s: out of memory", vm);
	}
	r = 0;
	for (size_t i = 0; i < s.n; i++) {
		iovm_error e2 = {};
		int k = macvtap_delete(sk, s.names[i], &e2);

		if (k == 0 || k == -ENODEV)
			deleted += k == 0;
		else if (!r) {
			r = k;
			iovm_error_set(err, k, "shared reclaim of vm %s: %s", vm, e2.msg);
		}
	}
	free(s.names);
	return r < 0 ? r : deleted;
}
