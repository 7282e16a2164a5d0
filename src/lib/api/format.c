/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The lines iovmd sends: replies, errors with their class and errno name,
 * events and the greeting, built with json-c. Text that came from a client
 * or the system is made valid UTF-8 first, so a client's parser never
 * chokes on a reply.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iovm/api.h"
#include "shared/json-util.h"
#include "shared/util.h"

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
