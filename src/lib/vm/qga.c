/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest agent, for one thing: a guest interface's byte counters. See
 * include/iovm/qga.h. Blocking with one deadline per call, and an optional
 * file descriptor that cancels it; the daemon calls it from a sampler
 * thread of its own (src/iovmd/gsample.c).
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "shared/clock.h"
#include "iovm/qga.h"
#include "shared/json-util.h"
#include "shared/util.h"

typedef struct qga_conn {
	int fd;
	int cancel_fd;               /* readable: give up (-ECANCELED); -1: none */
	int64_t deadline_ms;
	const char *path;
	char *buf;                   /* received, not yet consumed */
	size_t len, cap;
} qga_conn;

static const char *why(int r)
{
	return r == -ETIMEDOUT ? "timed out" : r == -ECANCELED ? "cancelled" : strerror(-r);
}

/* Wait for EVENTS on the connection (fd >= 0) or only for time to pass
 * (fd < 0, at most SLICE_MS): 0, -ETIMEDOUT at the deadline, -ECANCELED
 * once cancel_fd is readable. */
static int wait_on(qga_conn *c, int fd, short events, int slice_ms)
{
	struct pollfd p[2];
	nfds_t n = 0;
	int64_t left;
	int r;

	if (fd >= 0)
		p[n++] = (struct pollfd){ .fd = fd, .events = events };
	if (c->cancel_fd >= 0)
		p[n++] = (struct pollfd){ .fd = c->cancel_fd, .events = POLLIN };
	for (;;) {
		left = c->deadline_ms - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		if (slice_ms > 0 && left > slice_ms)
			left = slice_ms;
		r = poll(p, n, left > 1000000 ? 1000000 : (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return negative_errno();
		if (c->cancel_fd >= 0 && p[n - 1].revents)
			return -ECANCELED;
		if (r > 0 || fd < 0)
			return 0;
		return -ETIMEDOUT;
	}
}

static int wait_fd(qga_conn *c, short events)
{
	return wait_on(c, c->fd, events, 0);
}

/* A chardev socket in QEMU serves one client and queues one more: with
 * both taken, a blocking connect() would wait for as long as the other
 * client stays. Non-blocking, the kernel says EAGAIN and the deadline
 * holds: ask again every 20 ms until it passes. */
static int connect_agent(qga_conn *c, const struct sockaddr_un *sa)
{
	for (;;) {
		int r;

		if (connect(c->fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
			return 0;
		if (errno == EINPROGRESS)
			return wait_fd(c, POLLOUT);
		if (errno != EAGAIN && errno != EINTR)
			return negative_errno();
		r = wait_on(c, -1, 0, 20);
		if (r < 0)
			return r;
	}
}

static int send_all(qga_conn *c, const char *s, size_t n)
{
	while (n) {
		ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (k > 0) {
			s += k;
			n -= (size_t)k;
			continue;
		}
		if (k < 0 && errno != EAGAIN && errno != EINTR)
			return negative_errno();
		int r = wait_fd(c, POLLOUT);
		if (r < 0)
			return r;
	}
	return 0;
}

static int send_cmd(qga_conn *c, json_object *cmd)
{
	const char *s = json_object_to_json_string_ext(cmd, JSON_C_TO_STRING_PLAIN);
	int r = send_all(c, s, strlen(s));

	return r < 0 ? r : send_all(c, "\n", 1);
}

/* More bytes into c->buf; 0 at end of stream is -ECONNRESET. */
static int fill(qga_conn *c)
{
	ssize_t k;
	int r;

	if (c->len == c->cap) {
		size_t cap = c->cap ? c->cap * 2 : 4096;
		char *b;

		if (cap > IOVM_QGA_REPLY_MAX + 1)
			return -EPROTO;
		b = realloc(c->buf, cap);
		if (!b)
			return -ENOMEM;
		c->buf = b;
		c->cap = cap;
	}
	for (;;) {
		k = recv(c->fd, c->buf + c->len, c->cap - c->len, MSG_DONTWAIT);
		if (k > 0) {
			c->len += (size_t)k;
			return 0;
		}
		if (k == 0)
			return -ECONNRESET;
		if (errno != EAGAIN && errno != EINTR)
			return negative_errno();
		r = wait_fd(c, POLLIN);
		if (r < 0)
			return r;
	}
}

static void consume(qga_conn *c, size_t n)
{
	memmove(c->buf, c->buf + n, c->len - n);
	c->len -= n;
}

/* The next newline-terminated JSON object. */
static int read_obj(qga_conn *c, json_object **ret)
{
	for (;;) {
		char *nl = memchr(c->buf, '\n', c->len);

		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			json_tokener *tok = json_tokener_new();
			json_object *o;

			if (!tok)
				return -ENOMEM;
			o = json_tokener_parse_ex(tok, c->buf, (int)n);
			if (o && tok->char_offset != (int)n) {
				json_object_put(o);
				o = NULL;
			}
			json_tokener_free(tok);
			consume(c, n + 1);
			if (!o || !json_object_is_type(o, json_type_object)) {
				json_object_put(o);
				return -EPROTO;
			}
			*ret = o;
			return 0;
		}
		int r = fill(c);
		if (r < 0)
			return r;
	}
}

/* guest-sync-delimited: the agent answers with 0xFF then the token; what
 * came before the 0xFF is a stale reply to someone else. */
static int sync_stream(qga_conn *c)
{
	_cleanup_json_ json_object *cmd = json_object_new_object();
	json_object *args = json_object_new_object();
	uint32_t token = 0;
	int r;

	if (getrandom(&token, sizeof(token), 0) != sizeof(token))
		token = (uint32_t)now_ms();
	token &= 0x7fffffff;
	json_object_object_add(cmd, "execute", json_object_new_string("guest-sync-delimited"));
	json_object_object_add(args, "id", json_object_new_int64(token));
	json_object_object_add(cmd, "arguments", args);
	r = send_cmd(c, cmd);
	if (r < 0)
		return r;
	for (;;) {
		char *ff = c->len ? memchr(c->buf, 0xff, c->len) : NULL;

		if (ff) {
			consume(c, (size_t)(ff - c->buf) + 1);
			break;
		}
		c->len = 0;            /* stale bytes before the delimiter */
		r = fill(c);
		if (r < 0)
			return r;
	}
	for (;;) {
		_cleanup_json_ json_object *o = NULL;
		json_object *v;

		r = read_obj(c, &o);
		if (r == -EPROTO)
			continue;       /* a partial stale line right after the delimiter */
		if (r < 0)
			return r;
		if (json_object_object_get_ex(o, "return", &v) && json_object_get_int64(v) == token)
			return 0;
	}
}

static int call(qga_conn *c, const char *command, json_object **ret_return, iovm_error *err)
{
	_cleanup_json_ json_object *cmd = json_object_new_object();
	int r;

	json_object_object_add(cmd, "execute", json_object_new_string(command));
	r = send_cmd(c, cmd);
	if (r < 0)
		return iovm_error_set(err, r, "guest agent %s: %s: %s", c->path, command, why(r));
	for (;;) {
		_cleanup_json_ json_object *o = NULL;
		json_object *v;

		r = read_obj(c, &o);
		if (r < 0)
			return iovm_error_set(err, r, "guest agent %s: %s: %s", c->path, command,
					      r == -EPROTO ? "malformed or oversized reply" : why(r));
		if (json_object_object_get_ex(o, "error", &v)) {
			json_object *d = NULL;

			json_object_object_get_ex(v, "desc", &d);
			return iovm_error_set(err, -EREMOTEIO, "guest agent %s: %s: %s", c->path, command,
					      d ? json_object_get_string(d) : "error");
		}
		if (json_object_object_get_ex(o, "return", &v)) {
			*ret_return = json_object_get(v);
			return 0;
		}
		/* anything else (an event-like line) is not ours */
	}
}

static int mac_equal(const char *a, const char *b)
{
	return a && b && strlen(a) == 17 && strcasecmp(a, b) == 0;
}

int iovm_qga_if_bytes_many(const char *socket_path, const char *const *macs, size_t n, int timeout_ms,
			   uint64_t *ret, int *status, iovm_error *err)
{
	return iovm_qga_if_bytes_many_cancel(socket_path, macs, n, timeout_ms, -1, ret, status, err);
}

int iovm_qga_if_bytes_many_cancel(const char *socket_path, const char *const *macs, size_t n, int timeout_ms,
				  int cancel_fd, uint64_t *ret, int *status, iovm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_json_ json_object *ifs = NULL;
	qga_conn c = { .fd = -1, .cancel_fd = cancel_fd, .path = socket_path };
	int r;

	if (!socket_path || (n && (!macs || !ret || !status)) || timeout_ms <= 0)
		return iovm_error_set(err, -EINVAL, "guest agent: invalid argument");
	for (size_t k = 0; k < n; k++) {
		if (!macs[k])
			return iovm_error_set(err, -EINVAL, "guest agent: invalid argument");
		status[k] = -ENOENT;
		ret[k] = 0;
	}
	if (strlen(socket_path) >= sizeof(sa.sun_path))
		return iovm_error_set(err, -ENAMETOOLONG, "guest agent %s: socket path too long", socket_path);
	strcpy(sa.sun_path, socket_path);
	c.deadline_ms = now_ms() + timeout_ms;
	c.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (c.fd < 0)
		return iovm_error_set(err, negative_errno(), "guest agent %s: socket: %m", socket_path);
	r = connect_agent(&c, &sa);
	if (r == -ETIMEDOUT || r == -ECANCELED) {
		r = iovm_error_set(err, r, "guest agent %s: cannot connect: %s (another client holds the agent)",
				   socket_path, why(r));
		goto out;
	}
	if (r < 0) {
		r = iovm_error_set(err, r, "guest agent %s: cannot connect: %s", socket_path, strerror(-r));
		goto out;
	}
	r = sync_stream(&c);
	if (r < 0) {
		r = iovm_error_set(err, r, "guest agent %s: no answer to guest-sync-delimited: %s", socket_path,
				   why(r));
		goto out;
	}
	r = call(&c, "guest-network-get-interfaces", &ifs, err);
	if (r < 0)
		goto out;
	if (!json_object_is_type(ifs, json_type_array)) {
		r = iovm_error_set(err, -EPROTO, "guest agent %s: guest-network-get-interfaces: not a list",
				   socket_path);
		goto out;
	}
	for (size_t k = 0; k < n; k++)
		for (size_t i = 0; i < json_object_array_length(ifs); i++) {
			json_object *it = json_object_array_get_idx(ifs, i), *hw, *st, *rx, *tx;

			if (!json_object_object_get_ex(it, "hardware-address", &hw) ||
			    !mac_equal(json_object_get_string(hw), macs[k]))
				continue;
			if (!json_object_object_get_ex(it, "statistics", &st) ||
			    !json_object_object_get_ex(st, "rx-bytes", &rx) ||
			    !json_object_object_get_ex(st, "tx-bytes", &tx))
				status[k] = -ENODATA;
			else {
				ret[k] = (uint64_t)json_object_get_int64(rx) + (uint64_t)json_object_get_int64(tx);
				status[k] = 0;
			}
			break;
		}
	r = 0;
out:
	close(c.fd);
	free(c.buf);
	return r;
}

int iovm_qga_if_bytes(const char *socket_path, const char *mac, int timeout_ms, uint64_t *ret,
		      iovm_error *err)
{
	uint64_t v = 0;
	int st = 0, r;

	if (!mac || !ret)
		return iovm_error_set(err, -EINVAL, "guest agent: invalid argument");
	r = iovm_qga_if_bytes_many(socket_path, &mac, 1, timeout_ms, &v, &st, err);
	if (r < 0)
		return r;
	if (st == -ENOENT)
		return iovm_error_set(err, -ENOENT, "guest agent %s: no interface with MAC %s", socket_path, mac);
	if (st == -ENODATA)
		return iovm_error_set(err, -ENODATA, "guest agent %s: interface with MAC %s has no statistics",
				      socket_path, mac);
	*ret = v;
	return 0;
}
