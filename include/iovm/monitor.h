/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Following the kernel instead of polling it: the host monitor reports PCI
 * and network-device changes as they happen, from two notification sockets:
 *
 *   - the kernel's uevents (NETLINK_KOBJECT_UEVENT, the kernel group) for
 *     subsystems "pci" and "net": add, remove, change, bind, unbind, move;
 *   - rtnetlink's RTNLGRP_LINK (libnl): RTM_NEWLINK/RTM_DELLINK, which is
 *     how a VF setting changed through the PF (`ip link set PF vf N mac ...`)
 *     shows up: the kernel sends no uevent for it.
 *
 * The monitor says what changed (a PCI device, a netdev), not what it is:
 * the caller maps an address to the PF or VF it knows and re-reads only that.
 * When notifications were lost (a socket's receive buffer overflowed), it
 * reports IOVM_HOST_CHANGE_RESYNC: anything may have changed.
 *
 * A fixture sysfs root (anything but "/sys") has no uevents: there
 * iovm_host_monitor_new() returns -EOPNOTSUPP and the caller polls instead
 * (iovm_pf_stamp() in sriov.h tells cheaply whether a fixture PF changed).
 */

#include <net/if.h>
#include <stddef.h>

#include "iovm/error.h"
#include "iovm/host.h"
#include "iovm/pci.h"

typedef struct iovm_host_monitor iovm_host_monitor;

typedef enum iovm_host_change_kind {
	IOVM_HOST_CHANGE_PCI,      /* a PCI device (pci uevent) */
	IOVM_HOST_CHANGE_NET,      /* a network interface (net uevent or rtnetlink) */
	IOVM_HOST_CHANGE_RESYNC,   /* notifications were lost: re-read everything */
} iovm_host_change_kind;

typedef enum iovm_host_action {
	IOVM_HOST_ACTION_ADD,
	IOVM_HOST_ACTION_REMOVE,
	IOVM_HOST_ACTION_CHANGE,   /* also every RTM_NEWLINK */
	IOVM_HOST_ACTION_BIND,
	IOVM_HOST_ACTION_UNBIND,
	IOVM_HOST_ACTION_MOVE,     /* a rename */
	IOVM_HOST_ACTION_OTHER,    /* online, offline, ... */
} iovm_host_action;

typedef struct iovm_host_change {
	iovm_host_change_kind kind;
	iovm_host_action action;
	/* The PCI device: for "pci", the device itself; for "net", the PCI
	 * device the interface sits on when the uevent's DEVPATH shows it.
	 * "" when unknown (rtnetlink never says). */
	char pci[IOVM_PCI_ADDR_MAX];
	char netdev[IF_NAMESIZE];  /* "net": the interface name ("" for "pci") */
	int ifindex;               /* "net": the interface index, 0 if unknown */
} iovm_host_change;

/* Opens both sockets (non-blocking, close-on-exec). -EOPNOTSUPP on a fixture
 * root; other errors name the socket that failed. */
int iovm_host_monitor_new(iovm_host *h, iovm_host_monitor **ret, iovm_error *err);
iovm_host_monitor *iovm_host_monitor_free(iovm_host_monitor *m);   /* NULL-safe */

/* Readable (POLLIN) while notifications wait; an epoll fd over both sockets,
 * owned by the monitor. */
int iovm_host_monitor_fd(const iovm_host_monitor *m);

typedef void (*iovm_host_change_fn)(const iovm_host_change *c, void *userdata);
/* Hands every waiting notification that concerns a PCI device or a netdev to
 * fn, without blocking. Returns how many it handed over (a lost batch counts
 * as one RESYNC), or a negative errno if a socket failed. */
int iovm_host_monitor_process(iovm_host_monitor *m, iovm_host_change_fn fn, void *userdata);

/* Pure: one kernel uevent datagram ("ACTION@DEVPATH\0KEY=VALUE\0...") ->
 * change. 1 if it concerns a PCI device or a netdev, 0 if not (another
 * subsystem, udev's own "libudev" messages), -EBADMSG if malformed. */
int iovm_host_uevent_parse(const char *buf, size_t len, iovm_host_change *ret);

const char *iovm_host_action_to_string(iovm_host_action a);
