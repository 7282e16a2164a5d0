/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * QMP client: talks to one QEMU monitor socket.
 *
 * Two ways to use it:
 *  - blocking: iovm_qmp_connect() then iovm_qmp_execute(), each with a
 *    deadline, implemented with poll() on the socket;
 *  - from an event loop: iovm_qmp_connect_async(), watch iovm_qmp_get_fd()
 *    for iovm_qmp_get_events(), call iovm_qmp_process() when it is ready,
 *    send commands with iovm_qmp_send() and get replies and events through
 *    callbacks. The library does not depend on any event loop.
 *
 * Messages larger than IOVM_QMP_MAX_MESSAGE, malformed JSON and replies that
 * match no command break the connection: every pending command fails with
 * -EPROTO or -EMSGSIZE. When QEMU closes the socket (it exited, or crashed)
 * every pending command fails with -ECONNRESET. After that the connection
 * only reports -ENOTCONN. See docs/qmp.md.
 */

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "iovm/error.h"

#define IOVM_QMP_MAX_MESSAGE (1024 * 1024)

typedef struct iovm_qmp iovm_qmp;

/* A reply to one command: status is 0 and ret is the "return" member
 * (borrowed, valid during the call), or status is a negative errno and err
 * says why (QMP error class and description, or the connection failure). */
typedef void (*iovm_qmp_reply_cb)(iovm_qmp *q, int status, json_object *ret,
				  const iovm_error *err, void *userdata);

/* An asynchronous event; data and timestamp are borrowed (may be NULL). */
typedef void (*iovm_qmp_event_cb)(iovm_qmp *q, const char *event, json_object *data,
				  json_object *timestamp, void *userdata);

/* Blocking: connects to the UNIX socket at path, reads the greeting and
 * negotiates capabilities, all within timeout_ms (< 0: no deadline). */
int iovm_qmp_connect(const char *path, int timeout_ms, iovm_qmp **ret, iovm_error *err);

/* Non-blocking: starts connecting; the greeting and qmp_capabilities happen in
 * iovm_qmp_process(). Commands sent before that are queued. */
int iovm_qmp_connect_async(const char *path, iovm_qmp **ret, iovm_error *err);

/* Wraps an already connected stream socket (takes ownership of fd, also on
 * failure). name is used in error messages (e.g. the socket path). */
int iovm_qmp_new_from_fd(int fd, const char *name, iovm_qmp **ret, iovm_error *err);

/* Closes the socket; pending commands' callbacks get -ECANCELED. Safe to call
 * from a callback (the free is deferred until the dispatch returns). */
iovm_qmp *iovm_qmp_free(iovm_qmp *q);
/* For _cleanup_(iovm_qmp_freep): iovm_qmp_free(*p). */
static inline void iovm_qmp_freep(iovm_qmp **p)
{
	iovm_qmp_free(*p);
}

int iovm_qmp_get_fd(const iovm_qmp *q);
/* poll() events to wait for: POLLIN, plus POLLOUT while output is queued. */
short iovm_qmp_get_events(const iovm_qmp *q);
/* Reads and writes whatever is possible without blocking and dispatches
 * complete messages. Returns 0, or a negative errno once the connection is
 * broken (-ECONNRESET: QEMU went away; -EPROTO/-EMSGSIZE: bad message). */
int iovm_qmp_process(iovm_qmp *q, iovm_error *err);

bool iovm_qmp_is_ready(const iovm_qmp *q);      /* capabilities negotiated */
bool iovm_qmp_is_connected(const iovm_qmp *q);  /* not broken or closed */
/* "10.0.2" once the greeting was read, else NULL. */
const char *iovm_qmp_qemu_version(const iovm_qmp *q);

void iovm_qmp_set_event_handler(iovm_qmp *q, iovm_qmp_event_cb cb, void *userdata);

/* Queues command with args (not consumed, may be NULL); cb (may be NULL) gets
 * the reply. ret_id receives the command's id. */
int iovm_qmp_send(iovm_qmp *q, const char *command, json_object *args,
		  iovm_qmp_reply_cb cb, void *userdata, uint64_t *ret_id, iovm_error *err);

/* Blocking call with a deadline. On success *ret_reply (if not NULL) holds a
 * new reference to the "return" member. QMP errors map to -ENODEV
 * (DeviceNotFound), -EOPNOTSUPP (CommandNotFound) or -EREMOTEIO. On timeout
 * (-ETIMEDOUT) the late reply is discarded when it arrives. Events arriving
 * meanwhile go to the event handler and to the event backlog. */
int iovm_qmp_execute(iovm_qmp *q, const char *command, json_object *args,
		     json_object **ret_reply, int timeout_ms, iovm_error *err);

/* Every event gets a sequence number; the last IOVM_QMP_EVENT_BACKLOG are kept
 * so that a caller can take a mark, send a command, and then wait for an event
 * that may have arrived before the command's reply. */
#define IOVM_QMP_EVENT_BACKLOG 128
uint64_t iovm_qmp_event_mark(const iovm_qmp *q);

/* Returns true if the event is the one waited for. */
typedef bool (*iovm_qmp_event_match)(const char *event, json_object *data, void *userdata);

/* Waits until an event with sequence >= mark named event (any name if NULL)
 * and, if match is not NULL, accepted by it, is received. *ret_data (if not NULL) gets a new
 * reference to its data. -ETIMEDOUT when the deadline passes. */
int iovm_qmp_wait_event(iovm_qmp *q, uint64_t mark, const char *event,
			iovm_qmp_event_match match, void *userdata,
			json_object **ret_data, int timeout_ms, iovm_error *err);

/* Like iovm_qmp_execute(), and the command's line goes out in one sendmsg()
 * carrying fd (not consumed; the caller closes its copy) as SCM_RIGHTS, the
 * way QEMU's getfd and add-fd expect it: {"execute":"getfd","arguments":
 * {"fdname":NAME}} then makes fd known to QEMU as NAME. Output queued
 * before is flushed first so that the fd travels with this command only.
 * Needs a negotiated connection (-EAGAIN before). */
int iovm_qmp_execute_with_fd(iovm_qmp *q, const char *command, json_object *args, int fd,
			     json_object **ret_reply, int timeout_ms, iovm_error *err);
