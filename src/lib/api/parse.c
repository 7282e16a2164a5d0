/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The request parser: one line in, a validated and typed iovm_api_request
 * out. Everything a client sends passes through here first, so this refuses
 * rather than guesses: exact JSON types (an integer is never a string or a
 * double), closed sets of arguments per command (schema.c), and each value
 * through its check (validate.c). Error texts name the command and the
 * argument, and quote client-supplied text only in a short, printable form.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/api.h"
#include "iovm/pci.h"
#include "lib/api/api-internal.h"
#include "shared/json-util.h"
#include "shared/util.h"

#define JSON_DEPTH_MAX 16
#define QUOTE_MAX 32            /* client text quoted in an error message */
#define B(a) (1u << (a))
#define VF_SET_FIELDS (B(IOVM_API_ARG_MAC) | B(IOVM_API_ARG_VLAN) | B(IOVM_API_ARG_QOS) | \
		       B(IOVM_API_ARG_RATE) | B(IOVM_API_ARG_SPOOFCHK) | B(IOVM_API_ARG_TRUST) | \
		       B(IOVM_API_ARG_LINK))

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

/* ---- one argument ----------------------------------------------------------------- */

/* An argument's value once read and checked. */
typedef struct value {
	const char *s;          /* NAME VF PATH MAC ENUM: borrowed from the JSON */
	int64_t x;              /* INT */
	bool b;                 /* BOOL */
	int e;                  /* ENUM: the index into the choices */
	uint8_t mac[6];         /* MAC */
} value;

/* A JSON string without NUL characters, so the checks can take it as a C string. */
static int read_string(iovm_api_cmd c, iovm_api_arg a, json_object *v, const char **ret, iovm_error *err)
{
	const char *s;
	int len;

	if (!json_object_is_type(v, json_type_string))
		return api_refuse(c, a, err, "be a string");
	s = json_object_get_string(v);
	len = json_object_get_string_len(v);
	if (!s || len < 0 || memchr(s, '\0', (size_t)len))
		return api_refuse(c, a, err, "not contain NUL characters");
	*ret = s;
	return 0;
}

static int read_value(iovm_api_cmd c, iovm_api_arg a, json_object *v, value *ret, iovm_error *err)
{
	const iovm_api_arg_def *d = iovm_api_arg_get(a);
	int r;

	switch (d->kind) {
	case IOVM_API_KIND_INT:
		/* json-c reads integers above INT64_MAX as json_type_int too, and
		 * json_object_get_int64() clamps them to INT64_MAX: out of range. */
		if (!json_object_is_type(v, json_type_int))
			return api_refuse_int(c, a, err);
		ret->x = json_object_get_int64(v);
		return iovm_api_check_int(c, a, ret->x, err);
	case IOVM_API_KIND_BOOL:
		if (!json_object_is_type(v, json_type_boolean))
			return api_refuse(c, a, err, "be true or false");
		ret->b = json_object_get_boolean(v);
		return 0;
	default:
		break;
	}
	r = read_string(c, a, v, &ret->s, err);
	if (r < 0)
		return r;
	switch (d->kind) {
	case IOVM_API_KIND_NAME:
		return iovm_api_check_name(c, a, ret->s, err);
	case IOVM_API_KIND_VF:
		return iovm_api_check_vf(c, a, ret->s, err);
	case IOVM_API_KIND_PATH:
		return iovm_api_check_path(c, a, ret->s, err);
	case IOVM_API_KIND_MAC:
		return iovm_api_check_mac(c, a, ret->s, ret->mac, err);
	case IOVM_API_KIND_ENUM:
		return iovm_api_check_enum(c, a, ret->s, &ret->e, err);
	default:
		return iovm_error_set(err, -EINVAL, "%s: argument '%s' not handled", iovm_api_cmd_to_string(c),
				      iovm_api_arg_to_string(a));
	}
}

/* s was checked, so it fits. */
static void copy(char *dst, size_t n, const char *s)
{
	snprintf(dst, n, "%s", s);
}

/* Puts a checked value where the request keeps it. */
static int store_value(iovm_api_request *req, iovm_api_arg a, const value *v, iovm_error *err)
{
	iovm_vfnet_config *cfg = &req->cfg;

	switch (a) {
	case IOVM_API_ARG_PF:
		copy(req->pf, sizeof(req->pf), v->s);
		return 0;
	case IOVM_API_ARG_VM:
	case IOVM_API_ARG_NAME:
		copy(req->vm, sizeof(req->vm), v->s);
		return 0;
	case IOVM_API_ARG_FAILOVER_PAIR_ID:
		copy(req->failover_pair_id, sizeof(req->failover_pair_id), v->s);
		return 0;
	case IOVM_API_ARG_VF:
		copy(req->vf, sizeof(req->vf), v->s);
		/* A PCI address is kept in its canonical form. */
		if (iovm_api_vf_is_pci_address(req->vf))
			return iovm_pci_addr_normalize(req->vf, req->vf, sizeof(req->vf), err);
		return 0;
	case IOVM_API_ARG_QMP:
		copy(req->qmp, sizeof(req->qmp), v->s);
		return 0;
	case IOVM_API_ARG_QGA:
		copy(req->qga, sizeof(req->qga), v->s);
		return 0;
	case IOVM_API_ARG_INCOMING:
		copy(req->incoming, sizeof(req->incoming), v->s);
		return 0;
	case IOVM_API_ARG_COUNT:
		req->count = (unsigned)v->x;
		return 0;
	case IOVM_API_ARG_NUMA_NODE:
		req->numa_node = (int)v->x;
		return 0;
	case IOVM_API_ARG_TIMEOUT_MS:
		req->timeout_ms = (int)v->x;
		return 0;
	case IOVM_API_ARG_DRIVER:
		req->driver = (iovm_api_driver)v->e;
		return 0;
	case IOVM_API_ARG_MODE:
		req->mode = (iovm_mode)v->e;
		return 0;
	case IOVM_API_ARG_LIVE:
		req->live = v->e;
		return 0;
	case IOVM_API_ARG_PRIORITY:
		req->priority = v->e;
		return 0;
	case IOVM_API_ARG_VLAN:
		cfg->vlan = (uint16_t)v->x;
		cfg->present |= IOVM_VFNET_VLAN;
		return 0;
	case IOVM_API_ARG_QOS:
		cfg->qos = (uint8_t)v->x;
		return 0;
	case IOVM_API_ARG_RATE:
		cfg->max_tx_rate = (uint32_t)v->x;
		cfg->present |= IOVM_VFNET_RATE;
		return 0;
	case IOVM_API_ARG_SPOOFCHK:
		cfg->spoofchk = v->b;
		cfg->present |= IOVM_VFNET_SPOOFCHK;
		return 0;
	case IOVM_API_ARG_TRUST:
		cfg->trust = v->b;
		cfg->present |= IOVM_VFNET_TRUST;
		return 0;
	case IOVM_API_ARG_MAC:
		memcpy(cfg->mac, v->mac, sizeof(cfg->mac));
		cfg->present |= IOVM_VFNET_MAC;
		return 0;
	case IOVM_API_ARG_LINK:
		cfg->link_state = (iovm_vf_link_state)v->e;
		cfg->present |= IOVM_VFNET_LINK_STATE;
		return 0;
	default:
		return iovm_error_set(err, -EINVAL, "%s: argument '%s' not handled",
				      iovm_api_cmd_to_string(req->cmd), iovm_api_arg_to_string(a));
	}
}

/* ---- the arguments object ----------------------------------------------------------- */

static int parse_arguments(iovm_api_request *req, json_object *args, iovm_error *err)
{
	const char *cmd = iovm_api_cmd_to_string(req->cmd);
	unsigned seen = 0;
	char q[QUOTE_MAX + 4];
	int r;

	if (args) {
		json_object_object_foreach(args, key, val) {
			int a = iovm_api_arg_from_string(key);
			value v = {};

			if (a < 0 || !iovm_api_cmd_takes(req->cmd, (iovm_api_arg)a))
				return iovm_error_set(err, -EINVAL, "%s: unknown argument '%s'", cmd,
						      quote(key, strlen(key), q, sizeof(q)));
			r = read_value(req->cmd, (iovm_api_arg)a, val, &v, err);
			if (r < 0)
				return r;
			r = store_value(req, (iovm_api_arg)a, &v, err);
			if (r < 0)
				return r;
			seen |= B(a);
		}
	}
	for (unsigned i = 0; i < _IOVM_API_ARG_MAX; i++)
		if (iovm_api_cmd_requires(req->cmd, (iovm_api_arg)i) && !(seen & B(i)))
			return iovm_error_set(err, -EINVAL, "%s: missing argument '%s'", cmd,
					      iovm_api_arg_to_string((iovm_api_arg)i));
	if (req->cmd == IOVM_API_VF_SET && !(seen & VF_SET_FIELDS))
		return iovm_error_set(err, -EINVAL, "%s: needs at least one of the arguments mac, vlan, "
				      "qos, rate, spoofchk, trust, link", cmd);
	if ((seen & B(IOVM_API_ARG_QOS)) && !(seen & B(IOVM_API_ARG_VLAN)))
		return iovm_error_set(err, -EINVAL, "%s: argument 'qos' needs argument 'vlan'", cmd);
	if ((seen & B(IOVM_API_ARG_VF)) && (seen & B(IOVM_API_ARG_PF)) && req->cmd == IOVM_API_ATTACH)
		return iovm_error_set(err, -EINVAL, "%s: arguments 'vf' and 'pf' exclude each other", cmd);
	return 0;
}

/* "arguments" present (args may be json null) and not an object. */
static int refuse_arguments(iovm_api_cmd c, iovm_error *err)
{
	return iovm_error_set(err, -EINVAL, "%s: 'arguments' must be an object", iovm_api_cmd_to_string(c));
}

/* ---- the request line ------------------------------------------------------------- */

static void request_reset(iovm_api_request *req)
{
	memset(req, 0, sizeof(*req));
	req->priority = -1;
	req->numa_node = -1;
	req->live = -1;
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
		return refuse_arguments(req->cmd, err);
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

int iovm_api_check_arguments(iovm_api_cmd c, json_object *args, iovm_error *err)
{
	iovm_api_request req;

	if (!iovm_api_cmd_to_string(c))
		return iovm_error_set(err, -ENOSYS, "unknown command");
	if (args && !json_object_is_type(args, json_type_object))
		return refuse_arguments(c, err);
	request_reset(&req);
	req.cmd = c;
	return parse_arguments(&req, args, err);
}
