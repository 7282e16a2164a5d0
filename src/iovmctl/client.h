/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One connection to iovmd per run (top sends one request per refresh).
 * Every function returns 0 or the exit status after printing the error. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <json-c/json.h>

typedef struct ctl {
	const char *socket;
	bool json;
	double timeout_s;            /* 0: wait forever */
	int fd;
	char *buf;                   /* bytes read, not yet returned as lines */
	size_t len, cap;
	int64_t next_id;
	bool progress_tty;           /* stderr is a terminal: update in place */
	bool progress_open;          /* a progress line without '\n' is on stderr */
} ctl;

/* Connects and reads the greeting. */
int ctl_connect(ctl *c);
/* Sends one request and waits for its reply: the return value in *ret (a
 * new reference). */
int ctl_call(ctl *c, const char *cmd, json_object *args, json_object **ret);
/* Reads and drops events until deadline (top's pause between refreshes). */
int ctl_drain_until(ctl *c, int64_t deadline);
/* Connects, calls, and on success hands the return value to print (or
 * prints it as JSON with --json). args is consumed. */
int ctl_run(ctl *c, const char *cmd, json_object *args, void (*print)(json_object *ret));
/* Closes the connection; idempotent. */
void ctl_done(ctl *c);
