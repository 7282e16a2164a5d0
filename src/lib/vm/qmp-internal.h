/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Inside the QMP client: the connection's state, shared by qmp-wire.c (the
 * protocol: buffers, greeting, negotiation, dispatch of replies and events)
 * and qmp.c (the API: connect, send, execute, wait for events). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "iovm/qmp.h"

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

/* A deadline timeout_ms from now (CLOCK_MONOTONIC ms); -1 for none. */
int64_t qmp_deadline_from(int timeout_ms);
int qmp_pending_free(struct pending *p);
void qmp_destroy(iovm_qmp *q);
/* Ends every pending command with code and why. */
void qmp_fail_pending(iovm_qmp *q, int code, const char *why);
/* Marks the connection unusable; the fd stays open until iovm_qmp_free() so
 * that an event loop watching it is not surprised by a recycled number. */
int qmp_break(iovm_qmp *q, iovm_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
int qmp_flush_out(iovm_qmp *q, iovm_error *err);
struct pending *qmp_pending_take(iovm_qmp *q, bool by_id, uint64_t id);
int qmp_enqueue(iovm_qmp *q, const char *command, json_object *args, iovm_qmp_reply_cb cb,
		void *userdata, bool now, uint64_t *ret_id);
int qmp_dispatch_buffered(iovm_qmp *q, iovm_error *err);
int qmp_read_in(iovm_qmp *q, iovm_error *err);
