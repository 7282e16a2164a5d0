/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The connection to iovmd: read the greeting, send a request, wait for the
 * reply with our id. PROGRESS events for our request are shown on stderr
 * once the operation has run for more than a second; other events are
 * ignored. A daemon error is printed and becomes the exit status of its
 * errno (16 for EBUSY...), any other failure 1.
 */
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "iovmctl/args.h"
#include "iovmctl/client.h"
#include "iovmctl/js.h"
#include "iovmctl/output.h"
#include "shared/clock.h"
#include "shared/util.h"

#define LINE_MAX_BYTES (64u << 20)   /* a reply longer than this is refused */
#define PROGRESS_AFTER_MS 1000

/* One line from the daemon (NUL-terminated, without '\n') into *ret, owned by
 * the caller. Returns 1 with a line, 0 at end of file, -ETIMEDOUT after
 * deadline (ms on the monotonic clock; < 0: none), else a negative errno. */
static int read_line(ctl *c, int64_t deadline, char **ret)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;

		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			char *line = malloc(n + 1);

			if (!line)
				return -ENOMEM;
			memcpy(line, c->buf, n);
			line[n] = '\0';
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			*ret = line;
			return 1;
		}
		if (c->len >= LINE_MAX_BYTES)
			return -EMSGSIZE;
		if (c->cap - c->len < 4096) {
			size_t cap = c->cap ? c->cap * 2 : 65536;
			char *b = realloc(c->buf, cap);

			if (!b)
				return -ENOMEM;
			c->buf = b;
			c->cap = cap;
		}

		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int wait = -1;

		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			wait = left > INT32_MAX ? INT32_MAX : (int)left;
		}
		int r = poll(&p, 1, wait);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		if (r == 0)
			continue;   /* the deadline check above decides */

		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return negative_errno();
		}
		if (n == 0)
			return 0;
		c->len += (size_t)n;
	}
}

static int64_t deadline_from(const ctl *c, int64_t start)
{
	return c->timeout_s > 0 ? start + (int64_t)(c->timeout_s * 1000) : -1;
}

/* errno names the daemon may send, to exit with their numbers. */
static int errno_from_name(const char *name)
{
	static const struct {
		const char *name;
		int value;
	} tab[] = {
		{ "EPERM", EPERM },           { "ENOENT", ENOENT },
		{ "EIO", EIO },               { "ENXIO", ENXIO },
		{ "EAGAIN", EAGAIN },         { "ENOMEM", ENOMEM },
		{ "EACCES", EACCES },         { "EBUSY", EBUSY },
		{ "EEXIST", EEXIST },         { "ENODEV", ENODEV },
		{ "EINVAL", EINVAL },         { "ENOSPC", ENOSPC },
		{ "EPIPE", EPIPE },           { "ERANGE", ERANGE },
		{ "ENOSYS", ENOSYS },         { "EBADMSG", EBADMSG },
		{ "EMSGSIZE", EMSGSIZE },     { "EOPNOTSUPP", EOPNOTSUPP },
		{ "ECONNRESET", ECONNRESET }, { "ETIMEDOUT", ETIMEDOUT },
		{ "ECONNREFUSED", ECONNREFUSED }, { "EALREADY", EALREADY },
		{ "EUSERS", EUSERS },
	};

	for (size_t i = 0; i < ELEMENTSOF(tab); i++)
		if (!strcmp(tab[i].name, name))
			return tab[i].value;
	return 0;
}

int ctl_connect(ctl *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_free_ char *line = NULL;
	_cleanup_json_ json_object *g = NULL;
	int r;

	if (strlen(c->socket) >= sizeof(sa.sun_path)) {
		fail("socket path too long: %s", c->socket);
		return EXIT_USAGE;
	}
	strcpy(sa.sun_path, c->socket);

	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail("socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		const char *hint = "";

		if (e == ENOENT || e == ECONNREFUSED)
			hint = " (is iovmd running?)";
		else if (e == EACCES || e == EPERM)
			hint = " (root or a member of the daemon's group may connect)";
		return fail("cannot connect to %s: %s%s", c->socket, strerror(e), hint);
	}

	r = read_line(c, deadline_from(c, now_ms()), &line);
	if (r == 0)
		return fail("%s: the server closed the connection before its greeting "
			    "(too many clients, or not allowed?)", c->socket);
	if (r == -ETIMEDOUT)
		return fail("%s: no greeting from the server within %g s", c->socket, c->timeout_s);
	if (r < 0)
		return fail("%s: reading the greeting: %s", c->socket, strerror(-r));
	g = json_tokener_parse(line);
	if (g && json_object_is_type(g, json_type_object) && js_has(g, "error")) {
		/* refused instead of greeted: access denied, too many clients */
		json_object *e = js_get(g, "error");
		int n = errno_from_name(js_str(e, "errno"));

		fail("%s: %s", c->socket, *js_str(e, "desc") ? js_str(e, "desc") : "connection refused");
		return n > 0 && n < 256 ? n : EXIT_FAILURE;
	}
	if (!g || !json_object_is_type(g, json_type_object) || !js_has(g, "iovm"))
		return fail("%s: unexpected greeting, is this an iovmd socket?", c->socket);
	return 0;
}

static void progress_clear(ctl *c)
{
	if (c->progress_open) {
		fputs("\r\033[K", stderr);
		c->progress_open = false;
	}
}

static void progress_show(ctl *c, json_object *data)
{
	const char *step = js_str(data, "step");
	int64_t done = js_int(data, "done", -1), total = js_int(data, "total", -1);
	char count[64] = "";

	if (total > 0 && done >= 0)
		snprintf(count, sizeof(count), " (%lld/%lld)", (long long)done, (long long)total);
	if (c->progress_tty) {
		fprintf(stderr, "\r\033[Kiovmctl: %s%s", step, count);
		c->progress_open = true;
	} else {
		fprintf(stderr, "iovmctl: %s%s\n", step, count);
	}
	fflush(stderr);
}

static bool id_is(json_object *v, int64_t id)
{
	return v && json_object_is_type(v, json_type_int) && json_object_get_int64(v) == id;
}

int ctl_call(ctl *c, const char *cmd, json_object *args, json_object **ret)
{
	_cleanup_json_ json_object *req = json_object_new_object();
	int64_t id = ++c->next_id, start = now_ms(), deadline = deadline_from(c, start);
	const char *s;
	size_t n, off = 0;

	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", json_object_get(args));
	json_object_object_add(req, "id", json_object_new_int64(id));
	s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	_cleanup_free_ char *out = NULL;
	if (asprintf(&out, "%s\n", s) < 0)
		return fail("out of memory");
	n = strlen(out);
	while (off < n) {
		ssize_t w = send(c->fd, out + off, n - off, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return fail("sending '%s' to %s: %s", cmd, c->socket, strerror(errno));
		}
		off += (size_t)w;
	}

	for (;;) {
		_cleanup_free_ char *line = NULL;
		_cleanup_json_ json_object *m = NULL;
		json_object *v;
		int r = read_line(c, deadline, &line);

		if (r <= 0)
			progress_clear(c);
		if (r == 0)
			return fail("the daemon closed the connection before replying to '%s'", cmd);
		if (r == -ETIMEDOUT)
			return fail("no reply from the daemon to '%s' within %g s", cmd, c->timeout_s);
		if (r < 0)
			return fail("reading the reply to '%s': %s", cmd, strerror(-r));

		m = json_tokener_parse(line);
		if (!m || !json_object_is_type(m, json_type_object)) {
			progress_clear(c);
			return fail("malformed reply from the daemon: %.80s", line);
		}
		if (js_has(m, "event")) {
			json_object *data = js_get(m, "data");

			if (!strcmp(js_str(m, "event"), "PROGRESS") && id_is(js_get(data, "id"), id) &&
			    now_ms() - start > PROGRESS_AFTER_MS)
				progress_show(c, data);
			continue;
		}
		v = js_get(m, "id");
		if (v && !id_is(v, id))
			continue;   /* not ours */
		progress_clear(c);
		if (json_object_object_get_ex(m, "error", &v)) {
			const char *desc = js_str(v, "desc");
			int e = errno_from_name(js_str(v, "errno"));

			fail("%s", *desc ? desc : *js_str(v, "class") ? js_str(v, "class") : "unknown error");
			return e > 0 && e < 256 ? e : EXIT_FAILURE;
		}
		if (json_object_object_get_ex(m, "return", &v)) {
			*ret = v ? json_object_get(v) : json_object_new_object();
			return 0;
		}
		return fail("malformed reply from the daemon: %.80s", line);
	}
}

int ctl_drain_until(ctl *c, int64_t deadline)
{
	for (;;) {
		_cleanup_free_ char *line = NULL;
		int r = read_line(c, deadline, &line);

		if (r == -ETIMEDOUT)
			return 0;
		if (r == 0)
			return fail("the daemon closed the connection");
		if (r < 0)
			return fail("reading from %s: %s", c->socket, strerror(-r));
	}
}

int ctl_run(ctl *c, const char *name, json_object *args, void (*print)(json_object *))
{
	_cleanup_json_ json_object *a = args, *ret = NULL;
	int r = ctl_connect(c);

	if (r)
		return r;
	r = ctl_call(c, name, a, &ret);
	if (r)
		return r;
	if (c->json)
		print_json(ret);
	else if (print)
		print(ret);
	return 0;
}

void ctl_done(ctl *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
}
