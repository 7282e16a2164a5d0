/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The host monitor (monitor.h): kernel uevents and rtnetlink link
 * notifications, behind one epoll fd.
 *
 * Uevents come straight from the kernel's multicast group, not through
 * sd-device's monitor: libsystemd (252, Debian 12) only subscribes to the
 * group udevd re-broadcasts on, and hosts without udevd (the lab's emulated
 * host, initramfs systems) would never see an event. The kernel's datagram
 * is a stable, documented format (lib/kobject_uevent.c): "ACTION@DEVPATH"
 * then NUL-separated KEY=VALUE pairs; only the kernel (port id 0) is
 * believed. Link notifications go through libnl.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <netlink/socket.h>

#include "iovm/monitor.h"
#include "shared/nlerr.h"
#include "shared/util.h"

#define UEVENT_GROUP_KERNEL 1u
#define RCVBUF_BYTES (4u << 20)   /* a burst of 256 VFs' add+bind+net events fits */
#define UEVENT_MAX 8192           /* the kernel's UEVENT_BUFFER_SIZE is 2048 */
#define MAX_ROUNDS 4096           /* per process() call, so a flood cannot starve the caller */

struct iovm_host_monitor {
	int epfd;
	int ufd;                      /* uevents */
	struct nl_sock *nl;           /* RTNLGRP_LINK */
	/* during process() */
	iovm_host_change_fn fn;
	void *userdata;
	int count;
};

static const char *const action_names[] = {
	[IOVM_HOST_ACTION_ADD] = "add",
	[IOVM_HOST_ACTION_REMOVE] = "remove",
	[IOVM_HOST_ACTION_CHANGE] = "change",
	[IOVM_HOST_ACTION_BIND] = "bind",
	[IOVM_HOST_ACTION_UNBIND] = "unbind",
	[IOVM_HOST_ACTION_MOVE] = "move",
	[IOVM_HOST_ACTION_OTHER] = "other",
};

const char *iovm_host_action_to_string(iovm_host_action a)
{
	return a >= 0 && (size_t)a < ELEMENTSOF(action_names) ? action_names[a] : NULL;
}

static iovm_host_action action_from(const char *s)
{
	for (size_t i = 0; i < ELEMENTSOF(action_names); i++)
		if (i != IOVM_HOST_ACTION_OTHER && !strcmp(s, action_names[i]))
			return (iovm_host_action)i;
	return IOVM_HOST_ACTION_OTHER;
}

/* The last component of devpath that is a PCI address, before "/net/" for
 * a netdev: "/devices/pci0000:00/0000:00:02.0/0000:01:00.0/net/eth0" ->
 * "0000:01:00.0". "" when there is none (a virtual device). */
static void devpath_pci(const char *devpath, bool net, char out[IOVM_PCI_ADDR_MAX])
{
	char comp[64];
	const char *end = devpath + strlen(devpath), *start;

	out[0] = '\0';
	if (net) {
		const char *n = strstr(devpath, "/net/");

		if (!n)
			return;
		end = n;
	}
	start = end;
	while (start > devpath && start[-1] != '/')
		start--;
	if ((size_t)(end - start) >= sizeof(comp))
		return;
	memcpy(comp, start, (size_t)(end - start));
	comp[end - start] = '\0';
	if (iovm_pci_addr_valid(comp))
		(void)iovm_pci_addr_normalize(comp, out, IOVM_PCI_ADDR_MAX, NULL);
}

int iovm_host_uevent_parse(const char *buf, size_t len, iovm_host_change *ret)
{
	const char *action = NULL, *devpath = NULL, *subsystem = NULL, *slot = NULL;
	const char *ifname = NULL, *ifindex = NULL, *p, *end = buf + len;
	iovm_host_change c = {};
	size_t hl;

	if (!buf || !ret)
		return -EINVAL;
	hl = strnlen(buf, len);
	if (hl == len)
		return -EBADMSG;   /* no NUL after the header */
	if (hl == 7 && !memcmp(buf, "libudev", 7))
		return 0;          /* udevd's re-broadcast, not the kernel's */
	if (!memchr(buf, '@', hl))
		return -EBADMSG;
	for (p = buf + hl + 1; p < end; p += strnlen(p, (size_t)(end - p)) + 1) {
		size_t l = strnlen(p, (size_t)(end - p));

		if (p + l == end)
			return -EBADMSG;   /* the last pair is not terminated */
		if (!strncmp(p, "ACTION=", 7))
			action = p + 7;
		else if (!strncmp(p, "DEVPATH=", 8))
			devpath = p + 8;
		else if (!strncmp(p, "SUBSYSTEM=", 10))
			subsystem = p + 10;
		else if (!strncmp(p, "PCI_SLOT_NAME=", 14))
			slot = p + 14;
		else if (!strncmp(p, "INTERFACE=", 10))
			ifname = p + 10;
		else if (!strncmp(p, "IFINDEX=", 8))
			ifindex = p + 8;
	}
	if (!action || !devpath || !subsystem)
		return -EBADMSG;
	if (!strcmp(subsystem, "pci")) {
		c.kind = IOVM_HOST_CHANGE_PCI;
		if (slot && iovm_pci_addr_valid(slot))
			(void)iovm_pci_addr_normalize(slot, c.pci, sizeof(c.pci), NULL);
		else
			devpath_pci(devpath, false, c.pci);
		if (!c.pci[0])
			return -EBADMSG;
	} else if (!strcmp(subsystem, "net")) {
		c.kind = IOVM_HOST_CHANGE_NET;
		devpath_pci(devpath, true, c.pci);
		if (!ifname || !*ifname || strlen(ifname) >= sizeof(c.netdev))
			return -EBADMSG;
		snprintf(c.netdev, sizeof(c.netdev), "%s", ifname);
		if (ifindex) {
			char *e;
			long v = strtol(ifindex, &e, 10);

			c.ifindex = *e || v <= 0 || v > INT32_MAX ? 0 : (int)v;
		}
	} else {
		return 0;
	}
	c.action = action_from(action);
	*ret = c;
	return 1;
}

static int on_link(struct nl_msg *msg, void *arg)
{
	iovm_host_monitor *m = arg;
	struct nlmsghdr *h = nlmsg_hdr(msg);
	struct nlattr *tb[IFLA_MAX + 1];
	struct ifinfomsg *ifi;
	iovm_host_change c = { .kind = IOVM_HOST_CHANGE_NET };

	if (h->nlmsg_type != RTM_NEWLINK && h->nlmsg_type != RTM_DELLINK)
		return NL_SKIP;
	if (nlmsg_parse(h, sizeof(*ifi), tb, IFLA_MAX, NULL) < 0)
		return NL_SKIP;
	ifi = nlmsg_data(h);
	c.action = h->nlmsg_type == RTM_DELLINK ? IOVM_HOST_ACTION_REMOVE : IOVM_HOST_ACTION_CHANGE;
	c.ifindex = ifi->ifi_index;
	if (tb[IFLA_IFNAME])
		snprintf(c.netdev, sizeof(c.netdev), "%s", nla_get_string(tb[IFLA_IFNAME]));
	m->fn(&c, m->userdata);
	m->count++;
	return NL_OK;
}

static void resync(iovm_host_monitor *m)
{
	static const iovm_host_change c = { .kind = IOVM_HOST_CHANGE_RESYNC };

	m->fn(&c, m->userdata);
	m->count++;
}

static void set_rcvbuf(int fd)
{
	int sz = RCVBUF_BYTES;

	/* FORCE passes rmem_max (we are root); the plain one is capped there. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &sz, sizeof(sz)) < 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
}

static int uevent_open(iovm_error *err)
{
	struct sockaddr_nl sa = { .nl_family = AF_NETLINK, .nl_groups = UEVENT_GROUP_KERNEL };
	_cleanup_close_ int fd = -1;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, NETLINK_KOBJECT_UEVENT);
	if (fd < 0)
		return iovm_error_set(err, negative_errno(), "host monitor: uevent socket: %m");
	set_rcvbuf(fd);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return iovm_error_set(err, negative_errno(), "host monitor: uevent socket: bind: %m");
	return TAKE_FD(fd);
}

static int link_open(iovm_host_monitor *m, iovm_error *err)
{
	int r;

	m->nl = nl_socket_alloc();
	if (!m->nl)
		return iovm_error_set(err, -ENOMEM, "host monitor: out of memory");
	nl_socket_disable_seq_check(m->nl);
	nl_socket_modify_cb(m->nl, NL_CB_VALID, NL_CB_CUSTOM, on_link, m);
	r = nl_connect(m->nl, NETLINK_ROUTE);
	if (r >= 0)
		r = nl_socket_add_membership(m->nl, RTNLGRP_LINK);
	if (r >= 0)
		r = nl_socket_set_nonblocking(m->nl);
	if (r < 0)
		return iovm_error_set(err, nlerr_to_errno(r), "host monitor: rtnetlink socket: %s",
				      nl_geterror(r));
	set_rcvbuf(nl_socket_get_fd(m->nl));
	return 0;
}

int iovm_host_monitor_new(iovm_host *h, iovm_host_monitor **ret, iovm_error *err)
{
	iovm_host_monitor *m;
	struct epoll_event ev = { .events = EPOLLIN };
	int r;

	if (!h || !ret)
		return iovm_error_set(err, -EINVAL, "host monitor: invalid argument");
	if (strcmp(iovm_host_sysfs_root(h), "/sys"))
		return iovm_error_set(err, -EOPNOTSUPP, "host monitor: %s is not the kernel's sysfs: "
				      "no uevents", iovm_host_sysfs_root(h));
	m = calloc(1, sizeof(*m));
	if (!m)
		return iovm_error_set(err, -ENOMEM, "host monitor: out of memory");
	m->epfd = m->ufd = -1;
	r = m->ufd = uevent_open(err);
	if (r >= 0)
		r = link_open(m, err);
	if (r >= 0 && (m->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0)
		r = iovm_error_set(err, negative_errno(), "host monitor: epoll: %m");
	if (r >= 0 && epoll_ctl(m->epfd, EPOLL_CTL_ADD, m->ufd, &ev) < 0)
		r = iovm_error_set(err, negative_errno(), "host monitor: epoll: %m");
	if (r >= 0 && epoll_ctl(m->epfd, EPOLL_CTL_ADD, nl_socket_get_fd(m->nl), &ev) < 0)
		r = iovm_error_set(err, negative_errno(), "host monitor: epoll: %m");
	if (r < 0) {
		iovm_host_monitor_free(m);
		return r;
	}
	*ret = m;
	return 0;
}

iovm_host_monitor *iovm_host_monitor_free(iovm_host_monitor *m)
{
	if (!m)
		return NULL;
	if (m->epfd >= 0)
		close(m->epfd);
	if (m->ufd >= 0)
		close(m->ufd);
	nl_socket_free(m->nl);
	free(m);
	return NULL;
}

int iovm_host_monitor_fd(const iovm_host_monitor *m)
{
	return m ? m->epfd : -EBADF;
}

static int drain_uevents(iovm_host_monitor *m)
{
	char buf[UEVENT_MAX];

	for (int i = 0; i < MAX_ROUNDS; i++) {
		struct sockaddr_nl sa = {};
		struct iovec iov = { .iov_base = buf, .iov_len = sizeof(buf) - 1 };
		struct msghdr mh = { .msg_name = &sa, .msg_namelen = sizeof(sa), .msg_iov = &iov, .msg_iovlen = 1 };
		iovm_host_change c;
		ssize_t n = recvmsg(m->ufd, &mh, MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return 0;
			if (errno == ENOBUFS) {
				resync(m);
				continue;
			}
			return negative_errno();
		}
		if (sa.nl_pid != 0 || (mh.msg_flags & MSG_TRUNC))
			continue;   /* not the kernel's, or not whole */
		if (iovm_host_uevent_parse(buf, (size_t)n, &c) == 1) {
			m->fn(&c, m->userdata);
			m->count++;
		}
	}
	return 0;
}

static int drain_links(iovm_host_monitor *m)
{
	struct nl_cb *cb = nl_socket_get_cb(m->nl);
	int r = 0;

	if (!cb)
		return -ENOMEM;
	for (int i = 0; i < MAX_ROUNDS; i++) {
		r = nl_recvmsgs_report(m->nl, cb);
		if (r == 0 || r == -NLE_AGAIN || r == -NLE_INTR) {
			r = 0;
			break;
		}
		if (r == -NLE_NOMEM || r == -NLE_MSG_OVERFLOW) {
			resync(m);   /* ENOBUFS: the kernel dropped notifications */
			r = 0;
			continue;
		}
		if (r < 0) {
			r = nlerr_to_errno(r);
			break;
		}
	}
	nl_cb_put(cb);
	return r > 0 ? 0 : r;
}

int iovm_host_monitor_process(iovm_host_monitor *m, iovm_host_change_fn fn, void *userdata)
{
	int r, r2;

	if (!m || !fn)
		return -EINVAL;
	m->fn = fn;
	m->userdata = userdata;
	m->count = 0;
	r = drain_uevents(m);
	r2 = drain_links(m);
	m->fn = NULL;
	return r < 0 ? r : r2 < 0 ? r2 : m->count;
}
