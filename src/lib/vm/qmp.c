/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QMP client. One newline-terminated JSON object per message (QEMU ends them
 * with "\r\n"); commands carry integer ids and replies are matched by id, not
 * by order, so a reply that arrives after its caller gave up is recognised
 * and dropped instead of being handed to the next command.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "shared/clock.h"
#include "iovm/qmp.h"
#include "shared/util.h"

static void json_object_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}

#define READ_CHUNK (64 * 1024)
#define JSON_DEPTH 64

enum qmp_state { QMP_GREETING, QMP_NEGOTIATING, QMP_READY, QMP_BROKEN };

struct pending {
	struct pending *next;
	uint64_t id;
	char *command;
	char *line;             /* serialized request, until it is queued for output */
	iovm_qmp_reply_cb cb;   /* NULL once the caller gave up (timeout) */
	void *userdata;
};

struct event_slot {
	uint64_t seq;
	char *name;
	json_object *data;
};

struct waiter {
	uint64_t mark;
	const char *event;
	iovm_qmp_event_match match;
	void *userdata;
	json_object *found;     /* data of the matching event (a reference) */
	bool done;
};

struct iovm_qmp {
	int fd;
	char *name;
	enum qmp_state state;
	char version[32];

	char *in;
	size_t in_len, in_cap;
	char *out;
	size_t out_len, out_cap;

	uint64_t next_id;
	struct pending *pending, **pending_tail;

	iovm_qmp_event_cb event_cb;
	void *event_userdata;
	struct event_slot backlog[IOVM_QMP_EVENT_BACKLOG];
	uint64_t event_seq;
	struct waiter *waiter;

	int dispatching;
	bool free_requested;
	int broken_code;
	char broken_msg[IOVM_ERROR_MSG_MAX];
};

static int64_t deadline_from(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

static int pending_free(struct pending *p)
{
	if (p) {
		free(p->command);
		free(p->line);
		free(p);
	}
	return 0;
}

static void qmp_destroy(iovm_qmp *q)
{
	struct pending *p;

	while ((p = q->pending)) {
		q->pending = p->next;
		pending_free(p);
	}
	for (size_t i = 0; i < ELEMENTSOF(q->backlog); i++) {
		free(q->backlog[i].name);
		if (q->backlog[i].data)
			json_object_put(q->backlog[i].data);
	}
	if (q->fd >= 0)
		close(q->fd);
	free(q->in);
	free(q->out);
	free(q->name);
	free(q);
}

/* Detaches the whole pending list and fails every entry with code. Callbacks
 * run after the list is detached so that they may send new commands. */
static void fail_pending(iovm_qmp *q, int code, const char *why)
{
	struct pending *list = q->pending, *p;

	q->pending = NULL;
	q->pending_tail = &q->pending;
	q->dispatching++;
	while ((p = list)) {
		iovm_error e = {};

		list = p->next;
		iovm_error_set(&e, code, "qemu %s: %s: %s", q->name, p->command, why);
		if (p->cb)
			p->cb(q, code, NULL, &e, p->userdata);
		pending_free(p);
	}
	q->dispatching--;
}

/* Marks the connection unusable; the fd stays open until iovm_qmp_free() so
 * that an event loop watching it is not surprised by a recycled number. */
static int qmp_break(iovm_qmp *q, iovm_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int qmp_break(iovm_qmp *q, iovm_error *err, int code, const char *fmt, ...)
{
	char why[IOVM_ERROR_MSG_MAX];
	va_list ap;

	if (q->state == QMP_BROKEN)
		return iovm_error_set(err, q->broken_code, "%s", q->broken_msg);
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	q->state = QMP_BROKEN;
	q->broken_code = code;
	snprintf(q->broken_msg, sizeof(q->broken_msg), "qemu %s: %s", q->name, why);
	q->out_len = 0;
	fail_pending(q, code, why);
	return iovm_error_set(err, code, "%s", q->broken_msg);
}

static int buf_append(char **buf, size_t *len, size_t *cap, const char *data, size_t n)
{
	if (*len + n > *cap) {
		size_t ncap = *cap ? *cap : 4096;
		char *nb;

		while (ncap < *len + n)
			ncap *= 2;
		nb = realloc(*buf, ncap);
		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
	memcpy(*buf + *len, data, n);
	*len += n;
	return 0;
}

static int queue_line(iovm_qmp *q, struct pending *p)
{
	int r = buf_append(&q->out, &q->out_len, &q->out_cap, p->line, strlen(p->line));

	if (r < 0)
		return r;
	free(p->line);
	p->line = NULL;
	return 0;
}

static int flush_out(iovm_qmp *q, iovm_error *err)
{
	while (q->out_len > 0) {
		ssize_t n = send(q->fd, q->out, q->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			if (errno == EPIPE || errno == ECONNRESET)
				return qmp_break(q, err, -ECONNRESET, "QEMU went away (%s)", strerror(errno));
			return qmp_break(q, err, negative_errno(), "write failed: %s", strerror(errno));
		}
		memmove(q->out, q->out + n, q->out_len - (size_t)n);
		q->out_len -= (size_t)n;
	}
	return 0;
}

static struct pending *pending_take(iovm_qmp *q, bool by_id, uint64_t id)
{
	for (struct pending **pp = &q->pending; *pp; pp = &(*pp)->next) {
		struct pending *p = *pp;

		/* Without an id, only a command already on the wire qualifies. */
		if (by_id ? p->id != id : p->line != NULL)
			continue;
		*pp = p->next;
		if (!*pp)
			q->pending_tail = pp;
		return p;
	}
	return NULL;
}

static int qmp_error_code(const char *cls)
{
	if (!strcmp(cls, "DeviceNotFound"))
		return -ENODEV;
	if (!strcmp(cls, "CommandNotFound"))
		return -EOPNOTSUPP;
	return -EREMOTEIO;
}

static int dispatch_reply(iovm_qmp *q, json_object *msg, iovm_error *err)
{
	json_object *jid = NULL, *ret = NULL, *jerr = NULL;
	struct pending *p;
	bool has_id = json_object_object_get_ex(msg, "id", &jid);
	iovm_error e = {};
	int status = 0;

	if (has_id && !json_object_is_type(jid, json_type_int))
		return qmp_break(q, err, -EPROTO, "reply with a non-integer id");
	json_object_object_get_ex(msg, "return", &ret);
	json_object_object_get_ex(msg, "error", &jerr);
	/* QEMU answers input it could not parse with an error without id. */
	if (!has_id && !jerr)
		return qmp_break(q, err, -EPROTO, "reply without id");
	p = pending_take(q, has_id, has_id ? (uint64_t)json_object_get_int64(jid) : 0);
	if (!p)
		return qmp_break(q, err, -EPROTO, "reply matches no command");
	if (jerr) {
		json_object *jc = NULL, *jd = NULL;
		const char *cls, *desc;

		json_object_object_get_ex(jerr, "class", &jc);
		json_object_object_get_ex(jerr, "desc", &jd);
		cls = json_object_is_type(jc, json_type_string) ? json_object_get_string(jc) : "UnknownError";
		desc = json_object_is_type(jd, json_type_string) ? json_object_get_string(jd) : "(no description)";
		status = iovm_error_set(&e, qmp_error_code(cls), "qemu %s: %s failed: %s: %s",
					q->name, p->command, cls, desc);
		ret = NULL;
	}
	if (p->cb)
		p->cb(q, status, ret, status < 0 ? &e : NULL, p->userdata);
	pending_free(p);
	return 0;
}

static void dispatch_event(iovm_qmp *q, const char *name, json_object *msg)
{
	struct event_slot *s = &q->backlog[q->event_seq % IOVM_QMP_EVENT_BACKLOG];
	json_object *data = NULL, *ts = NULL;
	struct waiter *w = q->waiter;

	json_object_object_get_ex(msg, "data", &data);
	json_object_object_get_ex(msg, "timestamp", &ts);
	free(s->name);
	if (s->data)
		json_object_put(s->data);
	s->seq = q->event_seq++;
	s->name = strdup(name);
	s->data = data ? json_object_get(data) : NULL;
	if (w && !w->done && s->seq >= w->mark && (!w->event || !strcmp(name, w->event)) &&
	    (!w->match || w->match(name, data, w->userdata))) {
		w->done = true;
		w->found = data ? json_object_get(data) : NULL;
	}
	if (q->event_cb)
		q->event_cb(q, name, data, ts, q->event_userdata);
}

static void negotiated(iovm_qmp *q, int status, json_object *ret, const iovm_error *e, void *ud)
{
	if (status < 0) {
		qmp_break(q, NULL, status, "capabilities negotiation failed: %s", e ? e->msg : "");
		return;
	}
	q->state = QMP_READY;
	for (struct pending *p = q->pending; p; p = p->next)
		if (p->line && queue_line(q, p) < 0) {
			qmp_break(q, NULL, -ENOMEM, "out of memory");
			return;
		}
}

static int enqueue(iovm_qmp *q, const char *command, json_object *args, iovm_qmp_reply_cb cb,
		   void *userdata, bool now, uint64_t *ret_id)
{
	_cleanup_(json_object_putp) json_object *req = json_object_new_object();
	struct pending *p;

	if (!req)
		return -ENOMEM;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->id = q->next_id++;
	p->cb = cb;
	p->userdata = userdata;
	json_object_object_add(req, "execute", json_object_new_string(command));
	if (args)
		json_object_object_add(req, "arguments", json_object_get(args));
	json_object_object_add(req, "id", json_object_new_int64((int64_t)p->id));
	p->command = strdup(command);
	if (p->command && asprintf(&p->line, "%s\n",
				   json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN)) < 0)
		p->line = NULL;
	if (!p->command || !p->line || (now && queue_line(q, p) < 0))
		return pending_free(p), -ENOMEM;
	p->next = NULL;
	*q->pending_tail = p;
	q->pending_tail = &p->next;
	if (ret_id)
		*ret_id = p->id;
	return 0;
}

static int handle_greeting(iovm_qmp *q, json_object *msg, iovm_error *err)
{
	json_object *greet, *v;
	int r;

	if (!json_object_object_get_ex(msg, "QMP", &greet))
		return qmp_break(q, err, -EPROTO, "expected the QMP greeting");
	if (json_object_object_get_ex(greet, "version", &v) && json_object_object_get_ex(v, "qemu", &v)) {
		json_object *ma = NULL, *mi = NULL, *mc = NULL;

		json_object_object_get_ex(v, "major", &ma);
		json_object_object_get_ex(v, "minor", &mi);
		json_object_object_get_ex(v, "micro", &mc);
		snprintf(q->version, sizeof(q->version), "%d.%d.%d", json_object_get_int(ma),
			 json_object_get_int(mi), json_object_get_int(mc));
	}
	q->state = QMP_NEGOTIATING;
	/* Negotiation goes first on the wire, before anything queued earlier. */
	r = enqueue(q, "qmp_capabilities", NULL, negotiated, NULL, true, NULL);
	if (r < 0)
		return qmp_break(q, err, r, "out of memory");
	return 0;
}

static int dispatch_line(iovm_qmp *q, const char *line, size_t len, iovm_error *err)
{
	_cleanup_(json_object_putp) json_object *msg = NULL;
	json_tokener *tok;
	json_object *ev;
	size_t end;

	tok = json_tokener_new_ex(JSON_DEPTH);
	if (!tok)
		return qmp_break(q, err, -ENOMEM, "out of memory");
	msg = json_tokener_parse_ex(tok, line, (int)len);
	end = json_tokener_get_parse_end(tok);
	if (memchr(line, '\0', len)) {
		json_tokener_free(tok);
		return qmp_break(q, err, -EPROTO, "malformed message: NUL byte");
	}
	if (json_tokener_get_error(tok) != json_tokener_success) {
		enum json_tokener_error je = json_tokener_get_error(tok);
		int r = qmp_break(q, err, -EPROTO, "malformed message: %s",
				  je == json_tokener_continue ? "incomplete JSON" : json_tokener_error_desc(je));
		json_tokener_free(tok);
		return r;
	}
	json_tokener_free(tok);
	while (end < len && strchr(" \t\r", line[end]))
		end++;
	if (end != len)
		return qmp_break(q, err, -EPROTO, "malformed message: trailing data after JSON object");
	if (!json_object_is_type(msg, json_type_object))
		return qmp_break(q, err, -EPROTO, "malformed message: not a JSON object");
	if (q->state == QMP_GREETING)
		return handle_greeting(q, msg, err);
	if (json_object_object_get_ex(msg, "event", &ev)) {
		if (!json_object_is_type(ev, json_type_string))
			return qmp_break(q, err, -EPROTO, "event without a name");
		dispatch_event(q, json_object_get_string(ev), msg);
		return 0;
	}
	if (json_object_object_get_ex(msg, "return", NULL) || json_object_object_get_ex(msg, "error", NULL))
		return dispatch_reply(q, msg, err);
	if (json_object_object_get_ex(msg, "QMP", NULL))
		return qmp_break(q, err, -EPROTO, "unexpected second greeting");
	return qmp_break(q, err, -EPROTO, "message is neither reply nor event");
}

/* Dispatches every complete line already buffered. */
static int dispatch_buffered(iovm_qmp *q, iovm_error *err)
{
	while (q->state != QMP_BROKEN && !q->free_requested && q->in_len > 0) {
		char *nl = memchr(q->in, '\n', q->in_len);
		_cleanup_free_ char *line = NULL;
		size_t len;
		int r;

		if (!nl) {
			if (q->in_len > IOVM_QMP_MAX_MESSAGE)
				return qmp_break(q, err, -EMSGSIZE, "message larger than %d bytes",
						 IOVM_QMP_MAX_MESSAGE);
			return 0;
		}
		len = (size_t)(nl - q->in);
		if (len > IOVM_QMP_MAX_MESSAGE)
			return qmp_break(q, err, -EMSGSIZE, "message larger than %d bytes", IOVM_QMP_MAX_MESSAGE);
		/* Take the line out first: a callback may re-enter and read more.
		 * All len bytes, NULs included (strndup would stop at a NUL and
		 * leave line shorter than len); dispatch_line refuses NULs. */
		line = malloc(len + 1);
		if (!line)
			return qmp_break(q, err, -ENOMEM, "out of memory");
		memcpy(line, q->in, len);
		line[len] = '\0';
		memmove(q->in, nl + 1, q->in_len - len - 1);
		q->in_len -= len + 1;
		while (len > 0 && (line[len - 1] == ' ' || line[len - 1] == '\t' || line[len - 1] == '\r'))
			line[--len] = '\0';
		if (len == 0)
			continue;
		r = dispatch_line(q, line, len, err);
		if (r < 0)
			return r;
	}
	return q->state == QMP_BROKEN ? iovm_error_set(err, q->broken_code, "%s", q->broken_msg) : 0;
}

static int read_in(iovm_qmp *q, iovm_error *err)
{
	for (;;) {
		ssize_t n;

		if (q->in_cap - q->in_len < READ_CHUNK) {
			char *nb = realloc(q->in, q->in_len + READ_CHUNK);

			if (!nb)
				return qmp_break(q, err, -ENOMEM, "out of memory");
			q->in = nb;
			q->in_cap = q->in_len + READ_CHUNK;
		}
		n = recv(q->fd, q->in + q->in_len, q->in_cap - q->in_len, MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return 0;
			if (errno == ECONNRESET)
				return qmp_break(q, err, -ECONNRESET, "QEMU went away (connection reset)");
			return qmp_break(q, err, negative_errno(), "read failed: %s", strerror(errno));
		}
		if (n == 0) {
			int r = dispatch_buffered(q, err);

			if (r < 0)
				return r;
			return qmp_break(q, err, -ECONNRESET, q->in_len ?
					 "QEMU went away (connection closed inside a message)" :
					 "QEMU went away (connection closed)");
		}
		q->in_len += (size_t)n;
		/* Dispatch as we go so the buffer never holds more than one
		 * oversized message before it is refused. */
		n = dispatch_buffered(q, err);
		if (n < 0)
			return (int)n;
	}
}

int iovm_qmp_process(iovm_qmp *q, iovm_error *err)
{
	int r;

	if (!q)
		return iovm_error_set(err, -EINVAL, "qmp: no connection");
	if (q->state == QMP_BROKEN)
		return iovm_error_set(err, -ENOTCONN, "%s", q->broken_msg);
	q->dispatching++;
	r = dispatch_buffered(q, err);
	if (r >= 0)
		r = read_in(q, err);
	if (r >= 0)
		r = flush_out(q, err);
	q->dispatching--;
	if (q->free_requested && q->dispatching == 0) {
		qmp_destroy(q);
		return iovm_error_set(err, -ECANCELED, "qmp: connection freed by a callback");
	}
	return r < 0 ? r : 0;
}

typedef bool (*done_fn)(const iovm_qmp *q, const void *userdata);

/* Runs the connection until done() says so, the deadline, or a break. */
static int run_until(iovm_qmp *q, done_fn done, const void *ud, int64_t deadline, const char *what,
		     iovm_error *err)
{
	for (;;) {
		struct pollfd pfd = { .fd = q->fd };
		int timeout = -1, r;

		r = dispatch_buffered(q, err);
		if (r < 0)
			return r;
		if (done(q, ud))
			return 0;
		r = flush_out(q, err);
		if (r < 0)
			return r;
		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return iovm_error_set(err, -ETIMEDOUT, "qemu %s: %s: timed out", q->name, what);
			timeout = left > 0x7fffffff ? 0x7fffffff : (int)left;
		}
		pfd.events = iovm_qmp_get_events(q);
		r = poll(&pfd, 1, timeout);
		if (r < 0 && errno != EINTR)
			return iovm_error_set(err, negative_errno(), "qemu %s: poll failed: %m", q->name);
		if (r > 0) {
			r = read_in(q, err);
			if (r < 0)
				return r;
		}
	}
}

int iovm_qmp_new_from_fd(int fd, const char *name, iovm_qmp **ret, iovm_error *err)
{
	_cleanup_close_ int owned = fd;
	iovm_qmp *q;
	int fl;

	if (fd < 0 || !ret)
		return iovm_error_set(err, -EINVAL, "qmp: invalid argument");
	fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return iovm_error_set(err, negative_errno(), "qemu %s: cannot make socket non-blocking: %m",
				      name ? name : "(fd)");
	q = calloc(1, sizeof(*q));
	if (!q)
		return iovm_error_set(err, -ENOMEM, "qmp: out of memory");
	q->name = strdup(name ? name : "(fd)");
	if (!q->name) {
		free(q);
		return iovm_error_set(err, -ENOMEM, "qmp: out of memory");
	}
	q->fd = TAKE_FD(owned);
	q->pending_tail = &q->pending;
	q->next_id = 1;
	*ret = q;
	return 0;
}

int iovm_qmp_connect_async(const char *path, iovm_qmp **ret, iovm_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (!path || !ret)
		return iovm_error_set(err, -EINVAL, "qmp: invalid argument");
	if (strlen(path) >= sizeof(sa.sun_path))
		return iovm_error_set(err, -ENAMETOOLONG, "qemu %s: socket path too long", path);
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return iovm_error_set(err, negative_errno(), "qemu %s: socket: %m", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int r = negative_errno();

		close(fd);
		return iovm_error_set(err, r, "qemu %s: cannot connect to QMP socket: %s", path, strerror(-r));
	}
	return iovm_qmp_new_from_fd(fd, path, ret, err);
}

static bool negotiation_over(const iovm_qmp *q, const void *ud)
{
	return q->state == QMP_READY || q->state == QMP_BROKEN;
}

int iovm_qmp_connect(const char *path, int timeout_ms, iovm_qmp **ret, iovm_error *err)
{
	iovm_qmp *q = NULL;
	int r;

	if (!ret)
		return iovm_error_set(err, -EINVAL, "qmp: invalid argument");
	r = iovm_qmp_connect_async(path, &q, err);
	if (r < 0)
		return r;
	r = run_until(q, negotiation_over, NULL, deadline_from(timeout_ms), "QMP greeting", err);
	if (r >= 0 && q->state != QMP_READY)
		r = iovm_error_set(err, q->broken_code, "%s", q->broken_msg);
	if (r < 0) {
		iovm_qmp_free(q);
		return r;
	}
	*ret = q;
	return 0;
}

iovm_qmp *iovm_qmp_free(iovm_qmp *q)
{
	if (!q || q->free_requested)
		return NULL;
	q->free_requested = true;
	fail_pending(q, -ECANCELED, "connection closed by the caller");
	if (q->dispatching == 0)
		qmp_destroy(q);
	return NULL;
}

int iovm_qmp_get_fd(const iovm_qmp *q)
{
	return q ? q->fd : -EINVAL;
}

short iovm_qmp_get_events(const iovm_qmp *q)
{
	if (!q || q->state == QMP_BROKEN)
		return 0;
	return POLLIN | (q->out_len > 0 ? POLLOUT : 0);
}

bool iovm_qmp_is_ready(const iovm_qmp *q)
{
	return q && q->state == QMP_READY;
}

bool iovm_qmp_is_connected(const iovm_qmp *q)
{
	return q && q->state != QMP_BROKEN;
}

const char *iovm_qmp_qemu_version(const iovm_qmp *q)
{
	return q && q->version[0] ? q->version : NULL;
}

void iovm_qmp_set_event_handler(iovm_qmp *q, iovm_qmp_event_cb cb, void *userdata)
{
	if (q) {
		q->event_cb = cb;
		q->event_userdata = userdata;
	}
}

int iovm_qmp_send(iovm_qmp *q, const char *command, json_object *args,
		  iovm_qmp_reply_cb cb, void *userdata, uint64_t *ret_id, iovm_error *err)
{
	int r;

	if (!q || !command || !*command || (args && !json_object_is_type(args, json_type_object)))
		return iovm_error_set(err, -EINVAL, "qmp: invalid argument");
	if (q->state == QMP_BROKEN)
		return iovm_error_set(err, -ENOTCONN, "%s", q->broken_msg);
	r = enqueue(q, command, args, cb, userdata, q->state == QMP_READY, ret_id);
	if (r < 0)
		return iovm_error_set(err, r, "qemu %s: %s: cannot queue command: %s", q->name, command,
				      strerror(-r));
	return 0;
}

struct call {
	bool done;
	int status;
	json_object *ret;
	iovm_error err;
};

static void call_done(iovm_qmp *q, int status, json_object *ret, const iovm_error *e, void *ud)
{
	struct call *c = ud;

	c->done = true;
	c->status = status;
	c->ret = ret ? json_object_get(ret) : NULL;
	if (e)
		c->err = *e;
}

static bool call_finished(const iovm_qmp *q, const void *ud)
{
	return ((const struct call *)ud)->done;
}

/* Runs the connection until the call's reply comes (or the deadline) and
 * hands the reply over; shared by the plain and the fd-passing call. */
static int wait_call(iovm_qmp *q, struct call *c, uint64_t id, const char *command,
		     json_object **ret_reply, int64_t deadline, iovm_error *err)
{
	int r;

	q->dispatching++;
	r = run_until(q, call_finished, c, deadline, command, err);
	q->dispatching--;
	if (!c->done) {
		/* Keep the id reserved so the late reply is recognised and dropped. */
		for (struct pending *p = q->pending; p; p = p->next)
			if (p->id == id)
				p->cb = NULL;
	}
	if (q->free_requested && q->dispatching == 0) {
		if (c->ret)
			json_object_put(c->ret);
		qmp_destroy(q);
		return iovm_error_set(err, -ECANCELED, "qmp: connection freed by a callback");
	}
	if (r < 0 && !c->done)
		return r;
	if (c->status < 0) {
		if (err)
			*err = c->err;
		return c->status;
	}
	if (ret_reply)
		*ret_reply = c->ret;
	else if (c->ret)
		json_object_put(c->ret);
	return 0;
}

int iovm_qmp_execute(iovm_qmp *q, const char *command, json_object *args,
		     json_object **ret_reply, int timeout_ms, iovm_error *err)
{
	struct call c = {};
	uint64_t id;
	int r;

	r = iovm_qmp_send(q, command, args, call_done, &c, &id, err);
	if (r < 0)
		return r;
	return wait_call(q, &c, id, command, ret_reply, deadline_from(timeout_ms), err);
}

/* The line goes out in one sendmsg() carrying fd as SCM_RIGHTS: QEMU's
 * socket chardev keeps the fds that came with the last read, and getfd (or
 * add-fd) takes them while it handles the command read with them. Output
 * queued before is flushed first so that nothing else carries the fd. */
static bool out_empty(const iovm_qmp *q, const void *ud)
{
	return q->out_len == 0;
}

static int send_with_fd(iovm_qmp *q, const char *line, int fd, int64_t deadline, iovm_error *err)
{
	size_t len = strlen(line), off = 0;

	while (off < len) {
		union {
			char buf[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u = {};
		struct iovec iov = { .iov_base = (char *)line + off, .iov_len = len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct pollfd pfd = { .fd = q->fd, .events = POLLOUT };
		ssize_t n;

		if (off == 0) {
			struct cmsghdr *c;

			mh.msg_control = u.buf;
			mh.msg_controllen = sizeof(u.buf);
			c = CMSG_FIRSTHDR(&mh);
			c->cmsg_level = SOL_SOCKET;
			c->cmsg_type = SCM_RIGHTS;
			c->cmsg_len = CMSG_LEN(sizeof(int));
			memcpy(CMSG_DATA(c), &fd, sizeof(int));
		}
		n = sendmsg(q->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno == EPIPE || errno == ECONNRESET)
			return qmp_break(q, err, -ECONNRESET, "QEMU went away (%s)", strerror(errno));
		if (errno != EAGAIN)
			return qmp_break(q, err, negative_errno(), "write failed: %s", strerror(errno));
		if (deadline >= 0 && now_ms() >= deadline)
			/* Half a line on the wire: the stream is unusable. */
			return off ? qmp_break(q, err, -ETIMEDOUT, "sending a command with an fd timed out")
				   : iovm_error_set(err, -ETIMEDOUT, "qemu %s: sending an fd: timed out", q->name);
		if (poll(&pfd, 1, 100) < 0 && errno != EINTR)
			return iovm_error_set(err, negative_errno(), "qemu %s: poll failed: %m", q->name);
	}
	return 0;
}

int iovm_qmp_execute_with_fd(iovm_qmp *q, const char *command, json_object *args, int fd,
			     json_object **ret_reply, int timeout_ms, iovm_error *err)
{
	int64_t deadline = deadline_from(timeout_ms);
	struct call c = {};
	struct pending *p;
	bool queued = false;
	uint64_t id = 0;
	int r;

	if (!q || !command || !*command || fd < 0 || (args && !json_object_is_type(args, json_type_object)))
		return iovm_error_set(err, -EINVAL, "qmp: invalid argument");
	if (q->state == QMP_BROKEN)
		return iovm_error_set(err, -ENOTCONN, "%s", q->broken_msg);
	if (q->state != QMP_READY)
		return iovm_error_set(err, -EAGAIN, "qemu %s: %s: capabilities not negotiated yet",
				      q->name, command);
	q->dispatching++;
	r = run_until(q, out_empty, NULL, deadline, command, err);
	if (r >= 0) {
		/* Not queued: the line stays in the pending entry until sent here. */
		r = enqueue(q, command, args, call_done, &c, false, &id);
		queued = r >= 0;
		if (r < 0)
			r = iovm_error_set(err, r, "qemu %s: %s: cannot queue command: %s", q->name,
					   command, strerror(-r));
	}
	if (r >= 0) {
		for (p = q->pending; p && p->id != id; p = p->next)
			;
		r = send_with_fd(q, p->line, fd, deadline, err);
		if (r >= 0) {
			free(p->line);
			p->line = NULL;
		}
	}
	q->dispatching--;
	if (q->free_requested && q->dispatching == 0) {
		qmp_destroy(q);
		return iovm_error_set(err, -ECANCELED, "qmp: connection freed by a callback");
	}
	if (r < 0) {
		/* A command that never went out is forgotten (a broken
		 * connection already failed it). */
		for (p = q->pending; queued && p; p = p->next)
			if (p->line && p->id == id) {
				pending_free(pending_take(q, true, id));
				break;
			}
		return r;
	}
	return wait_call(q, &c, id, command, ret_reply, deadline, err);
}

uint64_t iovm_qmp_event_mark(const iovm_qmp *q)
{
	return q ? q->event_seq : 0;
}

static bool waiter_done(const iovm_qmp *q, const void *ud)
{
	return ((const struct waiter *)ud)->done;
}

int iovm_qmp_wait_event(iovm_qmp *q, uint64_t mark, const char *event,
			iovm_qmp_event_match match, void *userdata,
			json_object **ret_data, int timeout_ms, iovm_error *err)
{
	struct waiter w = { .mark = mark, .event = event, .match = match, .userdata = userdata };
	struct waiter *saved;
	uint64_t first;
	int r = 0;

	if (!q || (!event && !match))
		return iovm_error_set(err, -EINVAL, "qmp: invalid argument");
	/* Events that arrived before the wait started are in the backlog. */
	first = q->event_seq > IOVM_QMP_EVENT_BACKLOG ? q->event_seq - IOVM_QMP_EVENT_BACKLOG : 0;
	for (uint64_t seq = mark > first ? mark : first; seq < q->event_seq && !w.done; seq++) {
		struct event_slot *s = &q->backlog[seq % IOVM_QMP_EVENT_BACKLOG];

		if (s->name && (!event || !strcmp(s->name, event)) && (!match || match(s->name, s->data, userdata))) {
			w.done = true;
			w.found = s->data ? json_object_get(s->data) : NULL;
		}
	}
	if (!w.done) {
		if (q->state == QMP_BROKEN)
			return iovm_error_set(err, -ENOTCONN, "%s", q->broken_msg);
		saved = q->waiter;
		q->waiter = &w;
		q->dispatching++;
		r = run_until(q, waiter_done, &w, deadline_from(timeout_ms), event ? event : "event", err);
		q->dispatching--;
		q->waiter = saved;
		if (q->free_requested && q->dispatching == 0) {
			if (w.found)
				json_object_put(w.found);
			qmp_destroy(q);
			return iovm_error_set(err, -ECANCELED, "qmp: connection freed by a callback");
		}
	}
	if (!w.done)
		return r < 0 ? r : iovm_error_set(err, -ETIMEDOUT, "qemu %s: %s: timed out", q->name,
						  event ? event : "event");
	if (ret_data)
		*ret_data = w.found;
	else if (w.found)
		json_object_put(w.found);
	return 0;
}
