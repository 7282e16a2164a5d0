/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading the daemon's replies: members by key, with a default when absent
 * or of another type. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "shared/json-util.h"

/* The string member key of o, "" if absent or not a string (borrowed). */
static inline const char *js_str(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

/* Present and not null. */
static inline bool js_has(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) && v;
}

static inline int64_t js_int(json_object *o, const char *key, int64_t def)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return def;
	return json_object_get_int64(v);
}

static inline json_object *js_get(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

static inline bool is_array(json_object *v)
{
	return v && json_object_is_type(v, json_type_array);
}
