/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The iovmd API schema: the commands, their arguments, which arguments each
 * command takes, and the checks every argument passes. The daemon's request
 * parser (iovm_api_parse_request) is built on these, and so is iovmctl: a
 * client that checks its input here refuses exactly what the daemon would,
 * with the daemon's message, before anything is sent.
 *
 * Every check returns 0 or -EINVAL with err set to the daemon's text for
 * that command and argument, e.g.
 *   "vm-add: argument 'name' must be 1..63 characters of A-Z a-z 0-9 _ . : -".
 * No I/O, no allocation; iovmctl links this part of libiovm alone
 * (libiovm-api, with the enum names of iovm/types.h).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

#include "iovm/error.h"
#include "iovm/types.h"

#define IOVM_API_NAME_MAX 64              /* VM names, PF names, ids */
#define IOVM_API_VF_MAX 80                /* "0000:01:10.2" or "PF/INDEX" */
#define IOVM_API_PATH_MAX 108             /* sun_path */
#define IOVM_API_DEFAULT_SOCKET "/run/iovm/iovm.sock"

typedef enum iovm_api_cmd {
	IOVM_API_QUERY_COMMANDS,   /* no arguments; returns the command names */
	IOVM_API_STATUS,           /* no arguments */
	IOVM_API_PF_LIST,          /* no arguments */
	IOVM_API_PF_SHOW,          /* pf */
	IOVM_API_PF_SET_VFS,       /* pf, count, [driver], [live], [timeout_ms] */
	IOVM_API_VF_LIST,          /* [pf] */
	IOVM_API_VF_SHOW,          /* vf */
	IOVM_API_VF_SET,           /* vf, at least one of mac vlan qos rate spoofchk trust link */
	IOVM_API_VM_ADD,           /* name, qmp, [qga], [priority], [numa_node] */
	IOVM_API_VM_LIST,          /* no arguments */
	IOVM_API_VM_REMOVE,        /* name */
	IOVM_API_ATTACH,           /* vm, [vf | pf], [mode], [mac], [vlan], [failover_pair_id], [timeout_ms] */
	IOVM_API_DETACH,           /* vm, [vf], [timeout_ms] */
	IOVM_API_MIGRATE_PREPARE,  /* vm, [timeout_ms]: its VFs out before its migration */
	IOVM_API_MIGRATE_ABORT,    /* vm, [timeout_ms]: the VFs prepare took out given back */
	_IOVM_API_CMD_MAX,
} iovm_api_cmd;

/* The arguments, named as in a request's "arguments" object. */
typedef enum iovm_api_arg {
	IOVM_API_ARG_PF,               /* "pf" */
	IOVM_API_ARG_VF,               /* "vf" */
	IOVM_API_ARG_VM,               /* "vm" (attach, detach) */
	IOVM_API_ARG_NAME,             /* "name" (vm-add, vm-remove) */
	IOVM_API_ARG_QMP,              /* "qmp" */
	IOVM_API_ARG_COUNT,            /* "count" */
	IOVM_API_ARG_DRIVER,           /* "driver" */
	IOVM_API_ARG_PRIORITY,         /* "priority" */
	IOVM_API_ARG_NUMA_NODE,        /* "numa_node" */
	IOVM_API_ARG_MODE,             /* "mode" */
	IOVM_API_ARG_MAC,              /* "mac" */
	IOVM_API_ARG_VLAN,             /* "vlan" */
	IOVM_API_ARG_QOS,              /* "qos" */
	IOVM_API_ARG_RATE,             /* "rate" */
	IOVM_API_ARG_SPOOFCHK,         /* "spoofchk" */
	IOVM_API_ARG_TRUST,            /* "trust" */
	IOVM_API_ARG_LINK,             /* "link" */
	IOVM_API_ARG_FAILOVER_PAIR_ID, /* "failover_pair_id" */
	IOVM_API_ARG_TIMEOUT_MS,       /* "timeout_ms" */
	IOVM_API_ARG_QGA,              /* "qga" */
	IOVM_API_ARG_LIVE,             /* "live" (pf-set-vfs) */
	IOVM_API_ARG_INCOMING,         /* "incoming" (vm-add): the VM it migrates from */
	_IOVM_API_ARG_MAX,
} iovm_api_arg;

/* What an argument's value is, and so which check applies. */
typedef enum iovm_api_arg_kind {
	IOVM_API_KIND_NAME,    /* string: [A-Za-z0-9_.:-]{1,63}, not "." or ".." */
	IOVM_API_KIND_VF,      /* string: a PCI address or "PF/INDEX" */
	IOVM_API_KIND_PATH,    /* string: absolute, shorter than IOVM_API_PATH_MAX */
	IOVM_API_KIND_MAC,     /* string: unicast "xx:xx:xx:xx:xx:xx", not all zeroes */
	IOVM_API_KIND_ENUM,    /* string: one of choices */
	IOVM_API_KIND_INT,     /* integer: min..max */
	IOVM_API_KIND_BOOL,    /* true or false */
} iovm_api_arg_kind;

typedef struct iovm_api_arg_def {
	const char *name;              /* "numa_node" */
	iovm_api_arg_kind kind;
	int64_t min, max;              /* INT */
	const char *const *choices;    /* ENUM: names indexed by value, NULL entries unused */
	size_t nchoices;
} iovm_api_arg_def;

typedef enum iovm_api_driver {
	IOVM_API_DRIVER_DEFAULT,   /* argument absent */
	IOVM_API_DRIVER_VFIO,      /* "vfio-pci" */
	IOVM_API_DRIVER_HOST,      /* "host": the PF's own VF driver */
	_IOVM_API_DRIVER_MAX,
} iovm_api_driver;

/* The pf-set-vfs "driver" names, indexed by value ([DEFAULT] is NULL). */
extern const char *const iovm_api_driver_names[_IOVM_API_DRIVER_MAX];

const char *iovm_api_cmd_to_string(iovm_api_cmd c);   /* "vf-set"; NULL if out of range */
int iovm_api_cmd_from_string(const char *s);           /* iovm_api_cmd, or -ENOSYS */
/* Commands that change host or daemon state (run one at a time, journaled). */
bool iovm_api_cmd_is_mutating(iovm_api_cmd c);

const iovm_api_arg_def *iovm_api_arg_get(iovm_api_arg a);   /* NULL if out of range */
const char *iovm_api_arg_to_string(iovm_api_arg a);         /* "vlan"; NULL if out of range */
int iovm_api_arg_from_string(const char *s);                 /* iovm_api_arg, or -EINVAL */
/* Whether command c takes argument a at all, and whether it must be given. */
bool iovm_api_cmd_takes(iovm_api_cmd c, iovm_api_arg a);
bool iovm_api_cmd_requires(iovm_api_cmd c, iovm_api_arg a);

/* One argument a of command c (c and a only name the argument in err; the
 * rule is a's). s is NUL-terminated. */
int iovm_api_check_name(iovm_api_cmd c, iovm_api_arg a, const char *s, iovm_error *err);
int iovm_api_check_vf(iovm_api_cmd c, iovm_api_arg a, const char *s, iovm_error *err);
int iovm_api_check_path(iovm_api_cmd c, iovm_api_arg a, const char *s, iovm_error *err);
/* ret_mac (may be NULL) receives the bytes. */
int iovm_api_check_mac(iovm_api_cmd c, iovm_api_arg a, const char *s, uint8_t ret_mac[6],
		       iovm_error *err);
/* ret (may be NULL) receives the index into a's choices. */
int iovm_api_check_enum(iovm_api_cmd c, iovm_api_arg a, const char *s, int *ret, iovm_error *err);
/* v within a's range. */
int iovm_api_check_int(iovm_api_cmd c, iovm_api_arg a, int64_t v, iovm_error *err);
/* Decimal text, as a command line gives it (an optional '-', digits), within
 * a's range; the message for text that is no integer is the range's. */
int iovm_api_parse_int(iovm_api_cmd c, iovm_api_arg a, const char *s, int64_t *ret, iovm_error *err);

/* A whole "arguments" object for c (NULL: none), as the request parser sees
 * it: unknown, ill-typed, out-of-range and missing arguments and the rules
 * across arguments (vf-set needs a setting, qos needs vlan, attach takes vf
 * or pf). */
int iovm_api_check_arguments(iovm_api_cmd c, json_object *args, iovm_error *err);

/* "PF/INDEX" -> pf, index. -EINVAL if vf is not of that form (a PCI address
 * is not: test with iovm_api_vf_is_pci_address). */
int iovm_api_vf_split(const char *vf, char *ret_pf, size_t n, unsigned *ret_index);
bool iovm_api_vf_is_pci_address(const char *vf);
