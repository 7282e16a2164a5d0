/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Sizes and enums that several layers share (the API, the state store, the
 * policy engine, iovmd and iovmctl), with their names: the names are the
 * words of the API and the text stored in the database, so they never change.
 */

#define IOVM_ADDR_MAX 16          /* a PCI address "dddd:bb:ss.f" + NUL, with room */
#define IOVM_NAME_MAX 64          /* VM names, QEMU device ids, drivers, steps */
#define IOVM_SOCKET_PATH_MAX 108  /* a UNIX socket path (sun_path) */

typedef enum iovm_priority {
	IOVM_PRIO_LOW,
	IOVM_PRIO_NORMAL,
	IOVM_PRIO_HIGH,
	_IOVM_PRIO_MAX,
} iovm_priority;

/* How a VM holds a VF. AUTO is for requests only: exclusive if a VF is
 * free, else shared; an assignment is always EXCLUSIVE or SHARED. */
typedef enum iovm_mode {
	IOVM_MODE_AUTO,
	IOVM_MODE_EXCLUSIVE,          /* the VF is passed through to the VM */
	IOVM_MODE_SHARED,             /* the VF stays on the host, the VM reaches it by macvtap */
	_IOVM_MODE_MAX,
} iovm_mode;

/* How pf-set-vfs lets a VM that holds a VF of the PF through the re-create
 * (docs/resize.md). AUTO is for requests only: pause if the VM's QEMU has
 * the VFIO pause, else failover if the VF is a failover primary, else
 * refused. */
typedef enum iovm_live_mode {
	IOVM_LIVE_AUTO,
	IOVM_LIVE_PAUSE,              /* x-vfio-pause / x-vfio-resume: the guest keeps its device */
	IOVM_LIVE_FAILOVER,           /* unplug and replug a failover primary: the standby carries traffic */
	IOVM_LIVE_REPLUG,             /* unplug and replug: the guest sees its NIC go and come back */
	_IOVM_LIVE_MAX,
} iovm_live_mode;

typedef enum iovm_vf_link_state {
	IOVM_VF_LINK_AUTO = 0,        /* follow the PF link (IFLA_VF_LINK_STATE_AUTO) */
	IOVM_VF_LINK_ENABLE = 1,
	IOVM_VF_LINK_DISABLE = 2,
	_IOVM_VF_LINK_MAX,
} iovm_vf_link_state;

/* The names, indexed by value (for parsers that list the choices). */
extern const char *const iovm_priority_names[_IOVM_PRIO_MAX];
extern const char *const iovm_mode_names[_IOVM_MODE_MAX];
extern const char *const iovm_vf_link_state_names[_IOVM_VF_LINK_MAX];
extern const char *const iovm_live_mode_names[_IOVM_LIVE_MAX];

/* "low" "normal" "high"; NULL if out of range. */
const char *iovm_priority_to_string(iovm_priority p);
int iovm_priority_from_string(const char *s);          /* iovm_priority, or -EINVAL */
/* "auto" "exclusive" "shared"; NULL if out of range. */
const char *iovm_mode_to_string(iovm_mode m);
int iovm_mode_from_string(const char *s);              /* iovm_mode, or -EINVAL */
/* "auto" "pause" "failover" "replug"; NULL if out of range. */
const char *iovm_live_mode_to_string(iovm_live_mode m);
int iovm_live_mode_from_string(const char *s);         /* iovm_live_mode, or -EINVAL */
/* "auto" "enable" "disable"; NULL if out of range. */
const char *iovm_vf_link_state_to_string(iovm_vf_link_state l);
int iovm_vf_link_state_from_string(const char *s);     /* iovm_vf_link_state, or -EINVAL */
