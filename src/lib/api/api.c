/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The iovmd API protocol without I/O: one request line in, a validated and
 * typed iovm_api_request out; reply, error, event and greeting lines built
 * with json-c. Everything a client sends passes through here first, so this
 * file refuses rather than guesses: exact JSON types (an integer is never a
 * string or a double), closed sets of arguments per command, ranges, names.
 * Error texts name the command and the argument, and quote client-supplied
 * text only in a short, printable form.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iovm/api.h"
#include "iovm/pci.h"
#include "iovm/store.h"
#include "shared/util.h"
#include "shared/json-util.h"

#define JSON_DEPTH_MAX 16
#define QUOTE_MAX 32            /* client text quoted in an error message */
#define VF_INDEX_MAX 65535u


/* ---- commands and their arguments ----------------------------------------------- */

static const char *const cmd_names[_IOVM_API_CMD_MAX] = {
	[IOVM_API_QUERY_COMMANDS] = "query-commands",
	[IOVM_API_STATUS] = "status",
	[IOVM_API_PF_LIST] = "pf-list",
	[IOVM_API_PF_SHOW] = "pf-show",
	[IOVM_API_PF_SET_VFS] = "pf-set-vfs",
	[IOVM_API_VF_LIST] = "vf-list",
	[IOVM_API_VF_SHOW] = "vf-show",
	[IOVM_API_VF_SET] = "vf-set",
	[IOVM_API_VM_ADD] = "vm-add",
	[IOVM_API_VM_LIST] = "vm-list",
	[IOVM_API_VM_REMOVE] = "vm-remove",
	[IOVM_API_ATTACH] = "attach",
	[IOVM_API_DETACH] = "detach",
};

typedef enum arg_id {
	A_PF,
	A_VF,
	A_VM,          /* attach/detach "vm" */
	A_NAME,        /* vm-add/vm-remove "name", stored in vm */
	A_QMP,
	A_COUNT,
	A_DRIVER,
	A_PRIORITY,
	A_NUMA,
	A_MODE,
	A_MAC,
	A_VLAN,
	A_QOS,
	A_RATE,
	A_SPOOFCHK,
	A_TRUST,
	A_LINK,
	A_FAILOVER,
	A_TIMEOUT,
	A_QGA,
	_A_MAX,
} arg_id;

static const char *const arg_names[_A_MAX] = {
	[A_PF] = "pf",
	[A_VF] = "vf",
	[A_VM] = "vm",
	[A_NAME] = "name",
	[A_QMP] = "qmp",
	[A_COUNT] = "count",
	[A_DRIVER] = "driver",
	[A_PRIORITY] = "priority",
	[A_NUMA] = "numa_node",
	[A_MODE] = "mode",
	[A_MAC] = "mac",
	[A_VLAN] = "vlan",
	[A_QOS] = "qos",
	[A_RATE] = "rate",
	[A_SPOOFCHK] = "spoofchk",
	[A_TRUST] = "trust",
	[A_LINK] = "link",
	[A_FAILOVER] = "failover_pair_id",
	[A_TIMEOUT] = "timeout_ms",
	[A_QGA] = "qga",
};

#define B(a) (1u << (a))
#define VF_SET_FIELDS (B(A_MAC) | B(A_VLAN) | B(A_QOS) | B(A_RATE) | B(A_SPOOFCHK) | B(A_TRUST) | B(A_LINK))

static const struct cmd_def {
	unsigned allowed, required;
} cmd_defs[_IOVM_API_CMD_MAX] = {
	[IOVM_API_PF_SHOW] = { B(A_PF), B(A_PF) },
	[IOVM_API_PF_SET_VFS] = { B(A_PF) | B(A_COUNT) | B(A_DRIVER), B(A_PF) | B(A_COUNT) },
	[IOVM_API_VF_LIST] = { B(A_PF), 0 },
	[IOVM_API_VF_SHOW] = { B(A_VF), B(A_VF) },
	[IOVM_API_VF_SET] = { B(A_VF) | VF_SET_FIELDS, B(A_VF) },
	[IOVM_API_VM_ADD] = { B(A_NAME) | B(A_QMP) | B(A_QGA) | B(A_PRIORITY) | B(A_NUMA), B(A_NAME) | B(A_QMP) },
	[IOVM_API_VM_REMOVE] = { B(A_NAME), B(A_NAME) },
	/* No qos on attach: the VLAN is given to the device without a priority. */
	[IOVM_API_ATTACH] = { B(A_VM) | B(A_VF) | B(A_PF) | B(A_MODE) | B(A_MAC) | B(A_VLAN) |
			      B(A_FAILOVER) | B(A_TIMEOUT), B(A_VM) },
	[IOVM_API_DETACH] = { B(A_VM) | B(A_VF) | B(A_TIMEOUT), B(A_VM) },
};

static const char *const driver_names[] = {
	[IOVM_API_DRIVER_VFIO] = "vfio-pci",
	[IOVM_API_DRIVER_HOST] = "host",
};

const char *iovm_api_cmd_to_string(iovm_api_cmd c)
{
	return (unsigned)c < _IOVM_API_CMD_MAX ? cmd_names[c] : NULL;
}

int iovm_api_cmd_from_string(const char *s)
{
	for (unsigned i = 0; s && i < _IOVM_API_CMD_MAX; i++)
		if (strcmp(s, cmd_names[i]) == 0)
			return (int)i;
	return -ENOSYS;
}

bool iovm_api_cmd_is_mutating(iovm_api_cmd c)
{
	switch (c) {
	case IOVM_API_PF_SET_VFS:
	case IOVM_API_VF_SET:
	case IOVM_API_VM_ADD:
	case IOVM_API_VM_REMOVE:
	case IOVM_API_ATTACH:
	case IOVM_API_DETACH:
		return true;
	default:
		return false;
	}
}

/* ---- names --------------------------------------------------------------------- */

/* Client text for an error message: at most QUOTE_MAX bytes, anything but
 * printable ASCII shown as '?', "..." when cut. */
static const char *quote(const char *s, size_t len, char *buf, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < len && i < QUOTE_MAX && o + 1 < n; i++)
		buf[o++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
	if (i < len && o + 3 < n) {
		memcpy(buf + o, "...", 3);
		o += 3;
	}
	buf[o] = '\0';
	return buf;
}

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == ':' || c == '-';
}

/* [A-Za-z0-9_.:-]{1,63}, and not "." or ".." (names end up in sysfs paths). */
static bool name_valid(const char *s, size_t len)
{
	if (len == 0 || len >= IOVM_API_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char(s[i]))
			return false;
	return !(len == 1 && s[0] == '.') && !(len == 2 && s[0] == '.' && s[1] == '.');
}

/* "PF/INDEX" split at the last '/'; the PF part as a name, INDEX decimal. */
static int vf_split(const char *vf, size_t len, size_t *ret_pf_len, unsigned *ret_index)
{
	const char *slash = NULL;
	unsigned long idx = 0;
	size_t ndig;

	for (size_t i = 0; i < len; i++)
		if (vf[i] == '/')
			slash = vf + i;
	if (!slash || !name_valid(vf, (size_t)(slash - vf)))
		return -EINVAL;
	ndig = len - (size_t)(slash - vf) - 1;
	if (ndig == 0 || ndig > 5)
		return -EINVAL;
	for (size_t i = 0; i < ndig; i++) {
		char c = slash[1 + i];

		if (c < '0' || c > '9')
			return -EINVAL;
		idx = idx * 10 + (unsigned long)(c - '0');
	}
	if (idx > VF_INDEX_MAX)
		return -EINVAL;
	*ret_pf_len = (size_t)(slash - vf);
	*ret_index = (unsigned)idx;
	return 0;
}

int iovm_api_vf_split(const char *vf, char *ret_pf, size_t n, unsigned *ret_index)
{
	size_t len, pf_len;
	unsigned idx;
	int r;

	if (!vf)
		return -EINVAL;
	len = strnlen(vf, IOVM_API_VF_MAX);
	if (len >= IOVM_API_VF_MAX)
		return -EINVAL;
	r = vf_split(vf, len, &pf_len, &idx);
	if (r < 0)
		return r;
	if (ret_pf) {
		if (pf_len >= n)
			return -ENOBUFS;
		memcpy(ret_pf, vf, pf_len);
		ret_pf[pf_len] = '\0';
	}
	if (ret_index)
		*ret_index = idx;
	return 0;
}

bool iovm_api_vf_is_pci_address(const char *vf)
{
	return vf && strnlen(vf, IOVM_API_VF_MAX) < IOVM_API_VF_MAX && iovm_pci_addr_valid(vf);
}

/* ---- typed argument readers ------------------------------------------------------- */

static int arg_string(const char *cmd, const char *arg, json_object *v, const char **ret,
		      size_t *ret_len, iovm_error *err)
{
	const char *s;
	int len;

	if (!json_object_is_type(v, json_type_string))
		return iovm_error_set(err, -EINVAL, "%s: argument '%s' must be a string", cmd, arg);
	s = json_object_get_string(v);
	len = json_object_get_string_len(v);
	if (!s || len < 0 || memchr(s, '\0', (size_t)len))
		return iovm_error_set(err, -EINVAL, "%s: argument '%s' must not contain NUL characters",
				      cmd, arg);
	*ret = s;
	*ret_len = (size_t)len;
	return 0;
}

static bool path_valid(const char *s, size_t len)
{
	return len > 0 && s[0] == '/' && len < IOVM_API_PATH_MAX;
}

/* A PCI address, or PF/INDEX. s is NUL-terminated at len (arg_string). */
static bool vf_valid(const char *s, size_t len)
{
	size_t pf_len;
	unsigned idx;

	if (len == 0 || len >= IOVM_API_VF_MAX)
		return false;
	return vf_split(s, len, &pf_len, &idx) == 0 || (!memchr(s, '/', len) && iovm_pci_addr_valid(s));
}

/* A string argument that valid() accepts, copied into ret (n bytes, more
 * than any accepted length); else an error saying it must be what. */
static int arg_checked(const char *cmd, const char *arg, json_object *v,
		       bool (*valid)(const char *s, size_t len), const char *what, char *ret, size_t n,
		       iovm_error *err)
{
	const char *s;
	size_t len;
	int r;

	r = arg_string(cmd, arg, v, &s, &len, err);
	if (r < 0)
		return r;
	if (!valid(s, len) || len >= n)
		return iovm_error_set(err, -EINVAL, "%s: argument '%s' must be %s", cmd, arg, what);
	memcpy(ret, s, len);
	ret[len] = '\0';
	return 0;
}

#define NAME_RULE "1..63 characters of A-Z a-z 0-9 _ . : -"
_Static_assert(IOVM_API_NAME_MAX == 64 && IOVM_API_PATH_MAX == 108, "the messages spell these out");

static int arg_name(const char *cmd, const char *arg, json_object *v, char ret[IOVM_API_NAME_MAX],
		    iovm_error *err)
{
	return arg_checked(cmd, arg, v, name_valid, NAME_RULE, ret, IOVM_API_NAME_MAX, err);
}

static int arg_vf(const char *cmd, const char *arg, json_object *v, char ret[IOVM_API_VF_MAX],
		  iovm_error *err)
{
	int r = arg_checked(cmd, arg, v, vf_valid, "a VF's PCI address (0000:01:10.2) or PF/INDEX (eth0/2)",
			    ret, IOVM_API_VF_MAX, err);

	/* A PCI address is kept in its canonical form. */
	if (r == 0 && iovm_api_vf_is_pci_address(ret))
		r = iovm_pci_addr_normalize(ret, ret, IOVM_API_VF_MAX, err);
	return r;
}

static int arg_int(const char *cmd, const char *arg, json_object *v, int64_t min, int64_t max,
		   int64_t *ret, iovm_error *err)
{
	int64_t x;

	/* json-c reads integers above INT64_MAX as json_type_int too, and
	 * json_object_get_int64() clamps them to INT64_MAX: out of range. */
	if (json_object_is_type(v, json_type_int)) {
		x = json_object_get_int64(v);
		if (x >= min && x <= max) {
			*ret = x;
			return 0;
		}
	}
	return iovm_error_set(err, -EINVAL, "%s: argument '%s' must be an integer %" PRId64 "..%" PRId64,
			      cmd, arg, min, max);
}

static int arg_bool(const char *cmd, const char *arg, json_object *v, bool *ret, iovm_error *err)
{
	if (!json_object_is_type(v, json_type_boolean))
		return iovm_error_set(err, -EINVAL, "%s: argument '%s' must be true or false", cmd, arg);
	*ret = json_object_get_boolean(v);
	return 0;
}

/* One of names (NULL entries skipped); the index into names. */
static int arg_enum(const char *cmd, const char *arg, json_object *v, const char *const *names,
		    size_t n, int *ret, iovm_error *err)
{
	char list[128] = "";
	const char *s;
	size_t len;
	int r;

	r = arg_string(cmd, arg, v, &s, &len, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++)
		if (names[i] && strlen(names[i]) == len && memcmp(names[i], s, len) == 0) {
			*ret = (int)i;
			return 0;
		}
	for (size_t i = 0; i < n; i++)
		if (names[i]) {
			size_t l = strlen(list);

			snprintf(list + l, sizeof(list) - l, "%s\"%s\"", l ? ", " : "", names[i]);
		}
	return iovm_error_set(err, -EINVAL, "%s: argument '%s' must be one of %s", cmd, arg, list);
}

static int arg_mac(const char *cmd, const char *arg, json_object *v, uint8_t ret[6], iovm_error *err)
{
	static const uint8_t zero[6];
	const char *s;
	size_t len;
	int r;

	r = arg_string(cmd, arg, v, &s, &len, err);
	if (r < 0)
		return r;
	if (iovm_mac_parse(s, ret) < 0)
		return iovm_error_set(err, -EINVAL, "%s: argument '%s' must be a MAC address "
				      "xx:xx:xx:xx:xx:xx", cmd, arg);
	if (ret[0] & 1)
		return iovm_error_set(err, -EINVAL, "%s: argument '%s' must be a unicast MAC address "
				      "(%s is multicast)", cmd, arg, s);
	if (memcmp(ret, zero, sizeof(zero)) == 0)
		return iovm_error_set(err, -EINVAL, "%s: argument '%s' must be a unicast MAC address, "
				      "not all zeroes", cmd, arg);
	return 0;
}

static int parse_arg(const char *cmd, arg_id a, json_object *v, iovm_api_request *req, iovm_error *err)
{
	const char *name = arg_names[a];
	int64_t x = 0;
	bool b = false;
	int e = 0, r;

	switch (a) {
	case A_PF:
		return arg_name(cmd, name, v, req->pf, err);
	case A_VM:
	case A_NAME:
		return arg_name(cmd, name, v, req->vm, err);
	case A_FAILOVER:
		return arg_name(cmd, name, v, req->failover_pair_id, err);
	case A_VF:
		return arg_vf(cmd, name, v, req->vf, err);
	case A_QMP:
	case A_QGA:
		return arg_checked(cmd, name, v, path_valid, "an absolute path shorter than 108 bytes",
				   a == A_QMP ? req->qmp : req->qga, a == A_QMP ? sizeof(req->qmp) : sizeof(req->qga),
				   err);
	case A_COUNT:
		r = arg_int(cmd, name, v, 0, 65535, &x, err);
		req->count = (unsigned)x;
		return r;
	case A_NUMA:
		r = arg_int(cmd, name, v, -1, 1023, &x, err);
		req->numa_node = (int)x;
		return r;
	case A_TIMEOUT:
		r = arg_int(cmd, name, v, 100, 600000, &x, err);
		req->timeout_ms = (int)x;
		return r;
	case A_VLAN:
		r = arg_int(cmd, name, v, 0, 4094, &x, err);
		req->cfg.vlan = (uint16_t)x;
		req->cfg.present |= IOVM_VFNET_VLAN;
		return r;
	case A_QOS:
		r = arg_int(cmd, name, v, 0, 7, &x, err);
		req->cfg.qos = (uint8_t)x;
		return r;
	case A_RATE:
		r = arg_int(cmd, name, v, 0, UINT32_MAX, &x, err);
		req->cfg.max_tx_rate = (uint32_t)x;
		req->cfg.present |= IOVM_VFNET_RATE;
		return r;
	case A_SPOOFCHK:
		r = arg_bool(cmd, name, v, &b, err);
		req->cfg.spoofchk = b;
		req->cfg.present |= IOVM_VFNET_SPOOFCHK;
		return r;
	case A_TRUST:
		r = arg_bool(cmd, name, v, &b, err);
		req->cfg.trust = b;
		req->cfg.present |= IOVM_VFNET_TRUST;
		return r;
	case A_MAC:
		req->cfg.present |= IOVM_VFNET_MAC;
		return arg_mac(cmd, name, v, req->cfg.mac, err);
	case A_LINK:
		r = arg_enum(cmd, name, v, iovm_vf_link_state_names, _IOVM_VF_LINK_MAX, &e, err);
		req->cfg.link_state = (iovm_vf_link_state)e;
		req->cfg.present |= IOVM_VFNET_LINK_STATE;
		return r;
	case A_DRIVER:
		r = arg_enum(cmd, name, v, driver_names, ELEMENTSOF(driver_names), &e, err);
		req->driver = (iovm_api_driver)e;
		return r;
	case A_MODE:
		r = arg_enum(cmd, name, v, iovm_mode_names, _IOVM_MODE_MAX, &e, err);
		req->mode = (iovm_mode)e;
		return r;
	case A_PRIORITY:
		r = arg_enum(cmd, name, v, iovm_priority_names, _IOVM_PRIO_MAX, &e, err);
		req->priority = e;
		return r;
	default:
		return iovm_error_set(err, -EINVAL, "%s: argument '%s' not handled", cmd, name);
	}
}

static int parse_arguments(iovm_api_request *req, json_object *args, iovm_error *err)
{
	const char *cmd = cmd_names[req->cmd];
	const struct cmd_def *def = &cmd_defs[req->cmd];
	unsigned seen = 0, missing;
	char q[QUOTE_MAX + 4];
	int r;

	if (args) {
		json_object_object_foreach(args, key, val) {
			arg_id a = _A_MAX;

			for (unsigned i = 0; i < _A_MAX; i++)
				if ((def->allowed & B(i)) && strcmp(key, arg_names[i]) == 0) {
					a = (arg_id)i;
					break;
				}
			if (a == _A_MAX)
				return iovm_error_set(err, -EINVAL, "%s: unknown argument '%s'", cmd,
						      quote(key, strlen(key), q, sizeof(q)));
			r = parse_arg(cmd, a, val, req, err);
			if (r < 0)
				return r;
			seen |= B(a);
		}
	}
	missing = def->required & ~seen;
	for (unsigned i = 0; i < _A_MAX; i++)
		if (missing & B(i))
			return iovm_error_set(err, -EINVAL, "%s: missing argument '%s'", cmd, arg_names[i]);
	if (req->cmd == IOVM_API_VF_SET && !(seen & VF_SET_FIELDS))
		return iovm_error_set(err, -EINVAL, "%s: needs at least one of the arguments mac, vlan, "
				      "qos, rate, spoofchk, trust, link", cmd);
	if ((seen & B(A_QOS)) && !(seen & B(A_VLAN)))
		return iovm_error_set(err, -EINVAL, "%s: argument 'qos' needs argument 'vlan'", cmd);
	if ((seen & B(A_VF)) && (seen & B(A_PF)) && req->cmd == IOVM_API_ATTACH)
		return iovm_error_set(err, -EINVAL, "%s: arguments 'vf' and 'pf' exclude each other", cmd);
	return 0;
}

/* ---- the request line ------------------------------------------------------------- */

static void request_reset(iovm_api_request *req)
{
	memset(req, 0, sizeof(*req));
	req->priority = -1;
	req->numa_node = -1;
}

static int parse_id(json_object *msg, iovm_api_request *req, iovm_error *err)
{
	json_object *jid;

	if (!json_object_object_get_ex(msg, "id", &jid))
		return 0;
	if (json_object_is_type(jid, json_type_int) ||
	    (json_object_is_type(jid, json_type_string) &&
	     json_object_get_string_len(jid) < IOVM_API_NAME_MAX)) {
		req->id = json_object_get(jid);
		return 0;
	}
	return iovm_error_set(err, -EBADMSG, "request: 'id' must be an integer or a string "
			      "of at most %d bytes", IOVM_API_NAME_MAX - 1);
}

static int parse_object(const char *buf, size_t len, json_object **ret, iovm_error *err)
{
	json_tokener *tok;
	json_object *o;
	enum json_tokener_error je;
	size_t end;

	if (memchr(buf, '\0', len))
		return iovm_error_set(err, -EBADMSG, "request: not JSON (contains a NUL byte)");
	tok = json_tokener_new_ex(JSON_DEPTH_MAX);
	if (!tok)
		return iovm_error_set(err, -ENOMEM, "request: out of memory");
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
	o = json_tokener_parse_ex(tok, buf, (int)len);
	je = json_tokener_get_error(tok);
	end = json_tokener_get_parse_end(tok);
	json_tokener_free(tok);
	if (je != json_tokener_success) {
		json_object_put(o);
		if (je == json_tokener_continue)
			return iovm_error_set(err, -EBADMSG, "request: not JSON (%s)",
					      len == 0 ? "empty line" : "incomplete");
		if (je == json_tokener_error_depth)
			return iovm_error_set(err, -EBADMSG, "request: JSON nested deeper than %d levels",
					      JSON_DEPTH_MAX);
		return iovm_error_set(err, -EBADMSG, "request: not JSON (%s at byte %zu)",
				      json_tokener_error_desc(je), end);
	}
	while (end < len && strchr(" \t\r\n", buf[end]))
		end++;
	if (end != len) {
		json_object_put(o);
		return iovm_error_set(err, -EBADMSG, "request: trailing data after the JSON object");
	}
	if (!json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		return iovm_error_set(err, -EBADMSG, "request: not a JSON object");
	}
	*ret = o;
	return 0;
}

static int parse_request(const char *buf, size_t len, iovm_api_request *req, iovm_error *err)
{
	_cleanup_json_ json_object *msg = NULL;
	json_object *jexec = NULL, *jargs = NULL;
	const char *exec;
	char q[QUOTE_MAX + 4];
	int c, r;

	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len > IOVM_API_LINE_MAX)
		return iovm_error_set(err, -EMSGSIZE, "request: longer than %d bytes", IOVM_API_LINE_MAX);
	r = parse_object(buf, len, &msg, err);
	if (r < 0)
		return r;
	r = parse_id(msg, req, err);
	if (r < 0)
		return r;
	json_object_object_foreach(msg, key, val) {
		if (strcmp(key, "execute") && strcmp(key, "arguments") && strcmp(key, "id"))
			return iovm_error_set(err, -EBADMSG, "request: unknown member '%s' (expected "
					      "execute, arguments, id)", quote(key, strlen(key), q, sizeof(q)));
		(void)val;
	}
	if (!json_object_object_get_ex(msg, "execute", &jexec))
		return iovm_error_set(err, -EBADMSG, "request: missing 'execute'");
	if (!json_object_is_type(jexec, json_type_string))
		return iovm_error_set(err, -EBADMSG, "request: 'execute' must be a string");
	exec = json_object_get_string(jexec);
	c = iovm_api_cmd_from_string(exec);
	if (c < 0 || strlen(exec) != (size_t)json_object_get_string_len(jexec))
		return iovm_error_set(err, -ENOSYS, "unknown command '%s'",
				      quote(exec, (size_t)json_object_get_string_len(jexec), q, sizeof(q)));
	req->cmd = (iovm_api_cmd)c;
	if (json_object_object_get_ex(msg, "arguments", &jargs) &&
	    !json_object_is_type(jargs, json_type_object))
		return iovm_error_set(err, -EINVAL, "%s: 'arguments' must be an object", exec);
	return parse_arguments(req, jargs, err);
}

int iovm_api_parse_request(const char *buf, size_t len, iovm_api_request *ret, iovm_error *err)
{
	json_object *id;
	int r;

	if (!ret)
		return iovm_error_set(err, -EINVAL, "request: invalid argument");
	request_reset(ret);
	if (!buf && len > 0)
		return iovm_error_set(err, -EINVAL, "request: invalid argument");
	r = parse_request(buf ? buf : "", len, ret, err);
	if (r < 0) {
		/* Only the id survives a refusal, for the error reply. */
		id = ret->id;
		request_reset(ret);
		ret->id = id;
	}
	return r;
}

void iovm_api_request_done(iovm_api_request *r)
{
	if (r && r->id) {
		json_object_put(r->id);
		r->id = NULL;
	}
}

/* ---- replies ------------------------------------------------------------------------ */

const char *iovm_api_error_class(int code)
{
	switch (code) {
	case -ENOSYS:
		return "CommandNotFound";
	case -EINVAL:
	case -ERANGE:
	case -EBADMSG:
	case -EMSGSIZE:
		return "InvalidParameter";
	case -ENOENT:
	case -ENODEV:
	case -ENXIO:
		return "NotFound";
	case -EBUSY:
	case -EEXIST:
	case -EALREADY:
		return "Busy";
	case -ETIMEDOUT:
		return "Timeout";
	case -EOPNOTSUPP:
		return "NotSupported";
	case -EACCES:
	case -EPERM:
		return "PermissionDenied";
	case -ECONNRESET:
	case -ECONNREFUSED:
	case -EPIPE:
		return "VMUnreachable";
	default:
		return "GenericError";
	}
}

/* Adds v (owned) to o; v NULL means an allocation failed. */
static int add(json_object *o, const char *key, json_object *v)
{
	if (!o || !v || json_object_object_add(o, key, v) < 0) {
		if (v)
			json_object_put(v);
		return -ENOMEM;
	}
	return 0;
}

/* The object as one line with "\n"; NULL if o is NULL or on allocation failure. */
static char *to_line(json_object *o)
{
	const char *s;
	size_t n = 0;
	char *line;

	if (!o)
		return NULL;
	s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE,
					      &n);
	if (!s)
		return NULL;
	line = malloc(n + 2);
	if (!line)
		return NULL;
	memcpy(line, s, n);
	line[n] = '\n';
	line[n + 1] = '\0';
	return line;
}

/* Length of the well-formed UTF-8 sequence at p (at most n bytes), 0 if
 * there is none: no overlong forms, surrogates or values past U+10FFFF. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	size_t need;
	unsigned cp;

	if (p[0] < 0x80)
		return 1;
	if ((p[0] & 0xe0) == 0xc0)
		need = 1, cp = p[0] & 0x1f;
	else if ((p[0] & 0xf0) == 0xe0)
		need = 2, cp = p[0] & 0x0f;
	else if ((p[0] & 0xf8) == 0xf0)
		need = 3, cp = p[0] & 0x07;
	else
		return 0;
	if (need >= n)
		return 0;
	for (size_t k = 1; k <= need; k++) {
		if ((p[k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[k] & 0x3f);
	}
	if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) || (need == 3 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return need + 1;
}

/* A JSON string of s made valid UTF-8: a byte that starts no well-formed
 * sequence becomes '?', so a client's JSON parser never chokes on a reply. */
static json_object *utf8_string(const char *s)
{
	size_t len = strlen(s), i = 0;
	json_object *o;
	char *c;

	c = strdup(s);
	if (!c)
		return NULL;
	while (i < len) {
		size_t l = utf8_len((const unsigned char *)c + i, len - i);

		if (l == 0) {
			c[i++] = '?';
			continue;
		}
		i += l;
	}
	o = json_object_new_string(c);
	free(c);
	return o;
}

char *iovm_api_format_return(json_object *id, json_object *ret)
{
	_cleanup_json_ json_object *o = json_object_new_object();

	if (add(o, "return", ret ? json_object_get(ret) : json_object_new_object()) < 0 ||
	    (id && add(o, "id", json_object_get(id)) < 0))
		return NULL;
	return to_line(o);
}

static void errno_name(int e, char *buf, size_t n)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
	const char *s = strerrorname_np(e);

	if (s) {
		snprintf(buf, n, "%s", s);
		return;
	}
#endif
	snprintf(buf, n, "%d", e);
}

char *iovm_api_format_error(json_object *id, int code, const char *desc)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *e = json_object_new_object();
	char name[32];

	if (code >= 0)
		code = -EIO;
	errno_name(-code, name, sizeof(name));
	if (add(o, "error", e) < 0)
		return NULL;
	if (add(e, "class", json_object_new_string(iovm_api_error_class(code))) < 0 ||
	    add(e, "desc", utf8_string(desc && *desc ? desc : strerror(-code))) < 0 ||
	    add(e, "errno", json_object_new_string(name)) < 0 ||
	    (id && add(o, "id", json_object_get(id)) < 0))
		return NULL;
	return to_line(o);
}

char *iovm_api_format_event(const char *name, json_object *data)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	_cleanup_json_ json_object *ts = json_object_new_object();
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	if (add(ts, "seconds", json_object_new_int64((int64_t)now.tv_sec)) < 0 ||
	    add(ts, "microseconds", json_object_new_int64((int64_t)(now.tv_nsec / 1000))) < 0 ||
	    add(o, "event", utf8_string(name ? name : "")) < 0 ||
	    add(o, "data", data ? json_object_get(data) : json_object_new_object()) < 0 ||
	    add(o, "timestamp", json_object_get(ts)) < 0)
		return NULL;
	return to_line(o);
}

char *iovm_api_format_greeting(const char *version)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	json_object *g = json_object_new_object();

	if (add(o, "iovm", g) < 0 ||
	    add(g, "version", utf8_string(version ? version : "")) < 0 ||
	    add(g, "api", json_object_new_int(IOVM_API_VERSION)) < 0)
		return NULL;
	return to_line(o);
}
