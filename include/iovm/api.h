/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The iovmd API protocol, without I/O: newline-delimited JSON in QMP's shape
 * (docs/api.md).
 *
 *   -> {"execute":"vf-set","arguments":{"vf":"eth0/2","vlan":100},"id":7}
 *   <- {"return":{...},"id":7}
 *   <- {"error":{"class":"InvalidParameter","desc":"...","errno":"EINVAL"},"id":7}
 *   <- {"event":"VF_ATTACHED","data":{...},"timestamp":{"seconds":S,"microseconds":U}}
 *
 * iovm_api_parse_request() turns one line into a validated, typed request:
 * every command, every argument's type and range, unknown commands and
 * unknown or missing arguments are refused here, so the daemon only ever
 * acts on well-formed input. The formatters build the reply lines.
 * Pure code: unit-tested and fuzzed (tests/fuzz/api-fuzz-request.c).
 */

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "iovm/api-schema.h"
#include "iovm/error.h"
#include "iovm/types.h"
#include "iovm/vfconfig.h"

#define IOVM_API_VERSION 1
#define IOVM_API_LINE_MAX 65536           /* a request line longer than this is refused */

typedef struct iovm_api_request {
	iovm_api_cmd cmd;
	json_object *id;           /* the request's "id" (a reference), NULL if none */

	/* Arguments. Strings are "" when absent; which ones a command takes is
	 * listed at iovm_api_cmd. Names are checked: pf/vm [A-Za-z0-9_.:-]{1,63};
	 * vf a PCI address "dddd:bb:ss.f" or "PF/INDEX"; qmp an absolute path
	 * shorter than sun_path. */
	char pf[IOVM_API_NAME_MAX];
	char vf[IOVM_API_VF_MAX];
	char vm[IOVM_API_NAME_MAX];           /* attach/detach "vm", vm-add/vm-remove "name" */
	char qmp[IOVM_API_PATH_MAX];
	char qga[IOVM_API_PATH_MAX];          /* vm-add: guest-agent socket, "" = none */
	char failover_pair_id[IOVM_API_NAME_MAX];
	char incoming[IOVM_API_NAME_MAX];     /* vm-add: the VM on this host it migrates from, "" = none */

	unsigned count;                       /* pf-set-vfs: 0..65535 */
	iovm_api_driver driver;
	int live;                             /* pf-set-vfs: iovm_live_mode; -1 absent (nothing
					       * held on the PF: as without; held: auto) */
	iovm_mode mode;
	int priority;                         /* iovm_priority; -1 absent (normal) */
	int numa_node;                        /* -1 absent / no preference; else 0..1023 */
	int timeout_ms;                       /* 0 absent (daemon default); else 100..600000 */

	/* vf-set, and attach's mac/vlan: cfg.present says which fields were given
	 * (IOVM_VFNET_*). vlan 0..4094, qos 0..7 (only with vlan), rate >= 0
	 * Mbit/s, link "auto"|"enable"|"disable", mac unicast "xx:xx:xx:xx:xx:xx". */
	iovm_vfnet_config cfg;
} iovm_api_request;

/* Parses and validates one request (buf need not be NUL-terminated; a
 * trailing "\n" or "\r\n" is allowed). On success fills ret and returns 0.
 * On failure returns a negative errno with err naming the problem, e.g.
 * "vf-set: argument 'vlan' must be an integer 0..4094":
 *   -EMSGSIZE  longer than IOVM_API_LINE_MAX
 *   -EBADMSG   not JSON, not an object, or top-level keys other than
 *              execute/arguments/id; "id" not a string or integer
 *   -ENOSYS    unknown command
 *   -EINVAL    missing, unknown, ill-typed or out-of-range argument
 * ret->id is set whenever the id could be read, even on failure, so the
 * error reply can carry it; always call iovm_api_request_done(). */
int iovm_api_parse_request(const char *buf, size_t len, iovm_api_request *ret, iovm_error *err);
void iovm_api_request_done(iovm_api_request *r);   /* drops r->id; idempotent */

/* The error class for a negative errno:
 *   -ENOSYS -> "CommandNotFound"      -EINVAL, -ERANGE, -EBADMSG, -EMSGSIZE -> "InvalidParameter"
 *   -ENOENT, -ENODEV, -ENXIO -> "NotFound"     -EBUSY, -EEXIST, -EALREADY -> "Busy"
 *   -ETIMEDOUT -> "Timeout"           -EOPNOTSUPP -> "NotSupported"
 *   -EACCES, -EPERM -> "PermissionDenied"      -ECONNRESET, -ECONNREFUSED, -EPIPE -> "VMUnreachable"
 *   anything else -> "GenericError" */
const char *iovm_api_error_class(int code);

/* Reply lines, each a malloc()ed NUL-terminated string ending in "\n"
 * (NULL only on allocation failure). id may be NULL (then no "id" member).
 * format_return borrows ret (NULL means {}). format_error's code is a
 * negative errno; "errno" carries its name (e.g. "EBUSY"). */
char *iovm_api_format_return(json_object *id, json_object *ret);
char *iovm_api_format_error(json_object *id, int code, const char *desc);
/* {"event":NAME,"data":DATA,"timestamp":{...}}; borrows data (NULL: {}). */
char *iovm_api_format_event(const char *name, json_object *data);
/* The greeting sent on connect: {"iovm":{"version":"X.Y.Z","api":1}}. */
char *iovm_api_format_greeting(const char *version);
