/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* An intent's arguments as the JSON object stored in intent.args, both ways,
 * with json-c. The members by kind are in store.h and docs/state.md. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/state/store-internal.h"
#include "shared/json-util.h"

static bool kind_has_vm(iovm_store_intent_kind kind)
{
	return kind == IOVM_INTENT_ATTACH || kind == IOVM_INTENT_DETACH;
}

static bool kind_has_count(iovm_store_intent_kind kind)
{
	return kind == IOVM_INTENT_SET_VFS || kind == IOVM_INTENT_CREATE_VFS;
}

int store_json_add_str(json_object *o, const char *key, const char *v, size_t max, bool required,
		   iovm_error *err)
{
	json_object *j;

	if (strnlen(v, max) >= max || (required && !*v))
		return iovm_error_set(err, -EINVAL, "member \"%s\" %s", key,
				      *v ? "is unterminated or too long" : "is missing");
	j = json_object_new_string(v);
	if (!j || json_object_object_add(o, key, j) < 0) {
		json_object_put(j);
		return iovm_error_set(err, -ENOMEM, "out of memory");
	}
	return 0;
}

static int add_holder(json_object *arr, const iovm_store_live_holder *h, iovm_error *err)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	const char *mode = iovm_live_mode_to_string(h->mode);
	char net[256];
	int r;

	if (!o)
		return iovm_error_set(err, -ENOMEM, "out of memory");
	if (h->mode == IOVM_LIVE_AUTO || !mode)
		return iovm_error_set(err, -EINVAL, "member \"live\": vm %s has no live mode", h->vm);
	if (iovm_vfnet_config_format(&h->net, net, sizeof(net)) < 0)
		return iovm_error_set(err, -EINVAL, "member \"live\": vm %s: VF settings do not format", h->vm);
	r = store_json_add_str(o, "vm", h->vm, sizeof(h->vm), true, err);
	if (r >= 0)
		r = store_json_add_str(o, "vf", h->vf, sizeof(h->vf), true, err);
	if (r >= 0)
		r = store_json_add_str(o, "mode", mode, IOVM_STORE_NAME_MAX, true, err);
	if (r >= 0)
		r = store_json_add_str(o, "devid", h->devid, sizeof(h->devid), true, err);
	if (r >= 0)
		r = store_json_add_str(o, "port", h->port, sizeof(h->port), false, err);
	if (r >= 0)
		r = store_json_add_str(o, "failover_pair_id", h->failover_pair_id, sizeof(h->failover_pair_id), false, err);
	if (r >= 0)
		r = store_json_add_str(o, "net", net, sizeof(net), false, err);
	if (r < 0)
		return r;
	json_object_object_add(o, "index", json_object_new_int64(h->index));
	json_object_array_add(arr, TAKE_PTR(o));
	return 0;
}

/* "live": {"mode", "from", "holders": [...]}, for a live set-vfs only. */
static int add_live(json_object *o, const iovm_store_intent_args *a, iovm_error *err)
{
	json_object *live, *arr;
	int r;

	if (a->n_live == 0)
		return 0;
	if (a->n_live > IOVM_STORE_LIVE_MAX)
		return iovm_error_set(err, -EINVAL, "member \"live\": %zu holders, at most %d", a->n_live,
				      IOVM_STORE_LIVE_MAX);
	live = json_object_new_object();
	arr = json_object_new_array();
	json_object_object_add(o, "live", live);
	json_object_object_add(live, "holders", arr);
	json_object_object_add(live, "from", json_object_new_int64(a->from));
	r = store_json_add_str(live, "mode", iovm_live_mode_to_string(a->live) ?: "", IOVM_STORE_NAME_MAX, true, err);
	for (size_t i = 0; r >= 0 && i < a->n_live; i++)
		r = add_holder(arr, &a->holders[i], err);
	return r;
}

int intent_args_encode(iovm_store_intent_kind kind, const iovm_store_intent_args *a, char **ret,
		       iovm_error *err)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	const char *mode = iovm_mode_to_string(a->mode);
	const char *text;
	int r = 0;

	if (!o)
		return iovm_error_set(err, -ENOMEM, "out of memory");
	if (kind_has_vm(kind)) {
		r = store_json_add_str(o, "vm", a->vm, sizeof(a->vm), true, err);
		if (r >= 0 && a->mode != IOVM_MODE_EXCLUSIVE && a->mode != IOVM_MODE_SHARED)
			return iovm_error_set(err, -EINVAL, "member \"mode\": %s is neither exclusive nor shared",
					      mode ?: "an unknown mode");
		if (r >= 0)
			r = store_json_add_str(o, "mode", mode, IOVM_STORE_NAME_MAX, true, err);
		if (r >= 0 && a->mode == IOVM_MODE_EXCLUSIVE)
			r = store_json_add_str(o, "devid", a->devid, sizeof(a->devid), false, err);
	} else if (kind_has_count(kind)) {
		if (a->count > INT32_MAX)
			return iovm_error_set(err, -EINVAL, "member \"count\": %u is out of range", a->count);
		json_object_object_add(o, "count", json_object_new_int64(a->count));
		r = store_json_add_str(o, "driver", a->driver, sizeof(a->driver), true, err);
		if (r >= 0 && kind == IOVM_INTENT_SET_VFS)
			r = add_live(o, a, err);
	}
	if (r < 0)
		return r;
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		return iovm_error_set(err, -ENOMEM, "out of memory");
	if (strlen(text) >= IOVM_STORE_ARGS_MAX)
		return iovm_error_set(err, -E2BIG, "longer than %d bytes as JSON", IOVM_STORE_ARGS_MAX - 1);
	*ret = strdup(text);
	return *ret ? 0 : iovm_error_set(err, -ENOMEM, "out of memory");
}

/* The whole of text as one JSON value of the type: trailing text is an
 * error too. */
int store_json_parse(const char *text, json_type type, json_object **ret, iovm_error *err)
{
	json_tokener *tok = json_tokener_new();
	json_object *o;
	size_t len = strlen(text);

	if (!tok)
		return iovm_error_set(err, -ENOMEM, "out of memory");
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, type)) {
		json_object_put(o);
		json_tokener_free(tok);
		return iovm_error_set(err, -EBADMSG, "not a JSON %s", json_type_to_name(type));
	}
	json_tokener_free(tok);
	*ret = o;
	return 0;
}

/* Member key as a string into buf: -EBADMSG if it is not a string or too
 * long, or if it is absent and required (absent and optional: ""). */
int store_json_get_str(json_object *o, const char *key, bool required, char *buf, size_t n, iovm_error *err)
{
	json_object *v;
	const char *s;

	if (!json_object_object_get_ex(o, key, &v)) {
		buf[0] = '\0';
		return required ? iovm_error_set(err, -EBADMSG, "member \"%s\" is missing", key) : 0;
	}
	if (!json_object_is_type(v, json_type_string))
		return iovm_error_set(err, -EBADMSG, "member \"%s\" is not a string", key);
	s = json_object_get_string(v);
	if (strlen(s) >= n || (required && !*s))
		return iovm_error_set(err, -EBADMSG, "member \"%s\" is %s", key, *s ? "too long" : "empty");
	memcpy(buf, s, strlen(s) + 1);
	return 0;
}

static int get_vm_args(json_object *o, iovm_store_intent_args *a, iovm_error *err)
{
	char mode[IOVM_STORE_NAME_MAX];
	int r;

	r = store_json_get_str(o, "vm", true, a->vm, sizeof(a->vm), err);
	if (r >= 0)
		r = store_json_get_str(o, "mode", false, mode, sizeof(mode), err);
	if (r < 0)
		return r;
	if (!*mode || !strcmp(mode, "exclusive"))   /* rows before "mode" was written: exclusive */
		a->mode = IOVM_MODE_EXCLUSIVE;
	else if (!strcmp(mode, "shared"))
		a->mode = IOVM_MODE_SHARED;
	else
		return iovm_error_set(err, -EBADMSG, "member \"mode\" is neither exclusive nor shared");
	if (a->mode == IOVM_MODE_SHARED)
		return 0;   /* a share has no device id when it starts */
	/* Optional: recovery does not need it. */
	return store_json_get_str(o, "devid", false, a->devid, sizeof(a->devid), err);
}

static int get_uint(json_object *o, const char *key, unsigned *ret, iovm_error *err)
{
	json_object *v;
	int64_t x;

	if (!json_object_object_get_ex(o, key, &v))
		return iovm_error_set(err, -EBADMSG, "member \"%s\" is missing", key);
	if (!json_object_is_type(v, json_type_int))
		return iovm_error_set(err, -EBADMSG, "member \"%s\" is not an integer", key);
	x = json_object_get_int64(v);
	if (x < 0 || x > INT32_MAX)
		return iovm_error_set(err, -EBADMSG, "member \"%s\" is out of range", key);
	*ret = (unsigned)x;
	return 0;
}

static int get_live_mode(json_object *o, iovm_live_mode *ret, iovm_error *err)
{
	char mode[IOVM_STORE_NAME_MAX];
	int r = store_json_get_str(o, "mode", true, mode, sizeof(mode), err);

	if (r < 0)
		return r;
	r = iovm_live_mode_from_string(mode);
	if (r < 0)
		return iovm_error_set(err, -EBADMSG, "member \"mode\": \"%s\" is no live mode", mode);
	*ret = (iovm_live_mode)r;
	return 0;
}

static int get_holder(json_object *o, iovm_store_live_holder *h, iovm_error *err)
{
	char net[256];
	int r;

	if (!json_object_is_type(o, json_type_object))
		return iovm_error_set(err, -EBADMSG, "a live holder is not an object");
	r = store_json_get_str(o, "vm", true, h->vm, sizeof(h->vm), err);
	if (r >= 0)
		r = store_json_get_str(o, "vf", true, h->vf, sizeof(h->vf), err);
	if (r >= 0)
		r = get_uint(o, "index", &h->index, err);
	if (r >= 0)
		r = get_live_mode(o, &h->mode, err);
	if (r >= 0 && h->mode == IOVM_LIVE_AUTO)
		r = iovm_error_set(err, -EBADMSG, "live holder %s: mode auto is for requests only", h->vm);
	if (r >= 0)
		r = store_json_get_str(o, "devid", true, h->devid, sizeof(h->devid), err);
	if (r >= 0)
		r = store_json_get_str(o, "port", false, h->port, sizeof(h->port), err);
	if (r >= 0)
		r = store_json_get_str(o, "failover_pair_id", false, h->failover_pair_id, sizeof(h->failover_pair_id), err);
	if (r >= 0)
		r = store_json_get_str(o, "net", false, net, sizeof(net), err);
	if (r >= 0 && (r = iovm_vfnet_config_parse(net, &h->net, NULL)) < 0)
		r = iovm_error_set(err, -EBADMSG, "live holder %s: member \"net\" does not parse", h->vm);
	return r;
}

static int get_live_args(json_object *o, iovm_store_intent_args *a, iovm_error *err)
{
	json_object *live, *arr;
	size_t n;
	int r;

	if (!json_object_object_get_ex(o, "live", &live))
		return 0;
	if (!json_object_is_type(live, json_type_object) || !json_object_object_get_ex(live, "holders", &arr) ||
	    !json_object_is_type(arr, json_type_array))
		return iovm_error_set(err, -EBADMSG, "member \"live\" has no holders array");
	n = json_object_array_length(arr);
	if (n == 0 || n > IOVM_STORE_LIVE_MAX)
		return iovm_error_set(err, -EBADMSG, "member \"live\": %zu holders, 1..%d expected", n,
				      IOVM_STORE_LIVE_MAX);
	r = get_live_mode(live, &a->live, err);
	if (r >= 0)
		r = get_uint(live, "from", &a->from, err);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = get_holder(json_object_array_get_idx(arr, i), &a->holders[i], err);
	if (r >= 0)
		a->n_live = n;
	return r;
}

static int get_count_args(json_object *o, iovm_store_intent_args *a, iovm_error *err)
{
	json_object *v;
	int64_t x;

	if (!json_object_object_get_ex(o, "count", &v))
		return iovm_error_set(err, -EBADMSG, "member \"count\" is missing");
	if (!json_object_is_type(v, json_type_int))
		return iovm_error_set(err, -EBADMSG, "member \"count\" is not an integer");
	x = json_object_get_int64(v);
	if (x < 0 || x > INT32_MAX)
		return iovm_error_set(err, -EBADMSG, "member \"count\" is out of range");
	a->count = (unsigned)x;
	return store_json_get_str(o, "driver", true, a->driver, sizeof(a->driver), err);
}

int intent_args_decode(iovm_store_intent_kind kind, const char *text, iovm_store_intent_args *ret,
		       iovm_error *err)
{
	_cleanup_json_ json_object *o = NULL;
	iovm_store_intent_args a = {};
	int r;

	r = store_json_parse(text ? text : "", json_type_object, &o, err);
	if (r < 0)
		return r;
	if (kind_has_vm(kind))
		r = get_vm_args(o, &a, err);
	else if (kind_has_count(kind))
		r = get_count_args(o, &a, err);
	if (r >= 0 && kind == IOVM_INTENT_SET_VFS)
		r = get_live_args(o, &a, err);
	if (r < 0)
		return r;
	*ret = a;
	return 0;
}
