/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * QMP client, the protocol. One newline-terminated JSON object per message (QEMU ends them
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

#include "iovm/qmp.h"
#include "lib/vm/qmp-internal.h"
#include "shared/clock.h"
#include "shared/json-util.h"
#include "shared/util.h"

int64_t qmp_deadline_from(int timeout_ms)
{
	return timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
}

int qmp_pending_free(struct pending *p)
{
	if (p) {
		free(p->command);
		free(p->line);
		free(p);
	}
	return 0;
}

void qmp_destroy(iovm_qmp *q)
{
	struct pending *p;

	while ((p = q->pending)) {
		q->pending = p->next;
		qmp_pending_free(p);
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
void qmp_fail_pending(iovm_qmp *q, int code, const char *why)
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
		qmp_pending_free(p);
	}
	q->dispatching--;
}

int qmp_break(iovm_qmp *q, iovm_error *err, int code, const char *fmt, ...)
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
	qmp_fail_pending(q, code, why);
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

int qmp_flush_out(iovm_qmp *q, iovm_error *err)
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

struct pending *qmp_pending_take(iovm_qmp *q, bool by_id, uint64_t id)
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
	p = qmp_pending_take(q, has_id, has_id ? (uint64_t)json_object_get_int64(jid) : 0);
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
	qmp_pending_free(p);
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

int qmp_enqueue(iovm_qmp *q, const char *command, json_object *args, iovm_qmp_reply_cb cb,
		   void *userdata, bool now, uint64_t *ret_id)
{
	_cleanup_json_ json_object *req = json_object_new_object();
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
		return qmp_pending_free(p), -ENOMEM;
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
	r = qmp_enqueue(q, "qmp_capabilities", NULL, negotiated, NULL, true, NULL);
	if (r < 0)
		return qmp_break(q, err, r, "out of memory");
	return 0;
}

static int dispatch_line(iovm_qmp *q, const char *line, size_t len, iovm_error *err)
{
	_cleanup_json_ json_object *msg = NULL;
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
int qmp_dispatch_buffered(iovm_qmp *q, iovm_error *err)
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

int qmp_read_in(iovm_qmp *q, iovm_error *err)
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
			int r = qmp_dispatch_buffered(q, err);

			if (r < 0)
				return r;
			return qmp_break(q, err, -ECONNRESET, q->in_len ?
					 "QEMU went away (connection closed inside a message)" :
					 "QEMU went away (connection closed)");
		}
		q->in_len += (size_t)n;
		/* Dispatch as we go so the buffer never holds more than one
		 * oversized message before it is refused. */
		n = qmp_dispatch_buffered(q, err);
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
	r = qmp_dispatch_buffered(q, err);
	if (r >= 0)
		r = qmp_read_in(q, err);
	if (r >= 0)
		r = qmp_flush_out(q, err);
	q->dispatching--;
	if (q->free_requested && q->dispatching == 0) {
		qmp_destroy(q);
		return iovm_error_set(err, -ECANCELED, "qmp: connection freed by a callback");
	}
	return r < 0 ? r : 0;
}
