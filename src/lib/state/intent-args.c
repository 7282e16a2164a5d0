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

static int add_str(json_object *o, const char *key, const char *v, size_t max, bool required,
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
		r = add_str(o, "vm", a->vm, sizeof(a->vm), true, err);
		if (r >= 0 && a->mode != IOVM_MODE_EXCLUSIVE && a->mode != IOVM_MODE_SHARED)
			return iovm_error_set(err, -EINVAL, "member \"mode\": %s is neither exclusive nor shared",
					      mode ?: "an unknown mode");
		if (r >= 0)
			r = add_str(o, "mode", mode, IOVM_STORE_NAME_MAX, true, err);
		if (r >= 0 && a->mode == IOVM_MODE_EXCLUSIVE)
			r = add_str(o, "devid", a->devid, sizeof(a->devid), false, err);
	} else if (kind_has_count(kind)) {
		if (a->count > INT32_MAX)
			return iovm_error_set(err, -EINVAL, "member \"count\": %u is out of range", a->count);
		json_object_object_add(o, "count", json_object_new_int64(a->count));
		r = add_str(o, "driver", a->driver, sizeof(a->driver), true, err);
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

/* The whole of text as one JSON object: trailing text is an error too. */
static int parse_object(const char *text, json_object **ret, iovm_error *err)
{
	json_tokener *tok = json_tokener_new();
	json_object *o;
	size_t len = strlen(text);

	if (!tok)
		return iovm_error_set(err, -ENOMEM, "out of memory");
	o = json_tokener_parse_ex(tok, text, (int)len);
	if (!o || json_tokener_get_error(tok) != json_tokener_success ||
	    json_tokener_get_parse_end(tok) != len || !json_object_is_type(o, json_type_object)) {
		json_object_put(o);
		json_tokener_free(tok);
		return iovm_error_set(err, -EBADMSG, "not a JSON object");
	}
	json_tokener_free(tok);
	*ret = o;
	return 0;
}

/* Member key as a string into buf: -EBADMSG if it is not a string or too
 * long, or if it is absent and required (absent and optional: ""). */
static int get_str(json_object *o, const char *key, bool required, char *buf, size_t n, iovm_error *err)
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

	r = get_str(o, "vm", true, a->vm, sizeof(a->vm), err);
	if (r >= 0)
		r = get_str(o, "mode", false, mode, sizeof(mode), err);
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
	return get_str(o, "devid", false, a->devid, sizeof(a->devid), err);
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
	return get_str(o, "driver", true, a->driver, sizeof(a->driver), err);
}

int intent_args_decode(iovm_store_intent_kind kind, const char *text, iovm_store_intent_args *ret,
		       iovm_error *err)
{
	_cleanup_json_ json_object *o = NULL;
	iovm_store_intent_args a = {};
	int r;

	r = parse_object(text ? text : "", &o, err);
	if (r < 0)
		return r;
	if (kind_has_vm(kind))
		r = get_vm_args(o, &a, err);
	else if (kind_has_count(kind))
		r = get_count_args(o, &a, err);
	if (r < 0)
		return r;
	*ret = a;
	return 0;
}
