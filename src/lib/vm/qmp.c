/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QMP client, its API: connect, send, execute, wait for events. Commands
 * carry integer ids and replies are matched by id, not by order, so a reply
 * that arrives after its caller gave up is recognised and dropped instead of
 * being handed to the next command (qmp-wire.c).
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

#include "iovm/qmp.h"
#include "lib/vm/qmp-internal.h"
#include "shared/clock.h"
#include "shared/json-util.h"
#include "shared/scm.h"
#include "shared/util.h"

typedef bool (*done_fn)(const iovm_qmp *q, const void *userdata);

/* Runs the connection until done() says so, the deadline, or a break. */
static int run_until(iovm_qmp *q, done_fn done, const void *ud, int64_t deadline, const char *what,
		     iovm_error *err)
{
	for (;;) {
		struct pollfd pfd = { .fd = q->fd };
		int timeout = -1, r;

		r = qmp_dispatch_buffered(q, err);
		if (r < 0)
			return r;
		if (done(q, ud))
			return 0;
		r = qmp_flush_out(q, err);
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
			r = qmp_read_in(q, err);
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
	r = run_until(q, negotiation_over, NULL, qmp_deadline_from(timeout_ms), "QMP greeting", err);
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
	qmp_fail_pending(q, -ECANCELED, "connection closed by the caller");
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
	r = qmp_enqueue(q, command, args, cb, userdata, q->state == QMP_READY, ret_id);
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
	return wait_call(q, &c, id, command, ret_reply, qmp_deadline_from(timeout_ms), err);
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
		scm_fd_buf b;
		struct iovec iov = { .iov_base = (char *)line + off, .iov_len = len - off };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
		struct pollfd pfd = { .fd = q->fd, .events = POLLOUT };
		ssize_t n;

		if (off == 0)
			scm_put_fd(&mh, &b, fd);
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
	int64_t deadline = qmp_deadline_from(timeout_ms);
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
		r = qmp_enqueue(q, command, args, call_done, &c, false, &id);
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
				qmp_pending_free(qmp_pending_take(q, true, id));
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
		r = run_until(q, waiter_done, &w, qmp_deadline_from(timeout_ms), event ? event : "event", err);
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
