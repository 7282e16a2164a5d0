/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Errors in libiovm: every fallible entry point returns a negative errno and,
 * when the caller passes a non-NULL iovm_error, fills in a message that names
 * the object and the cause, ready to show a user, e.g.
 *   "vf 0000:01:10.2: bind to vfio-pci failed: device busy (...)".
 * The library never logs; the daemon and the CLI print these messages.
 */

#include <stddef.h>

#define IOVM_ERROR_MSG_MAX 512

typedef struct iovm_error {
	int code;                       /* negative errno, 0 when unset */
	char msg[IOVM_ERROR_MSG_MAX];   /* human-readable, never empty when code != 0 */
} iovm_error;

/* Records code (a negative errno) and a printf-style message into err (which
 * may be NULL) and returns code, so callers can write
 *   return iovm_error_set(err, -ENODEV, "pf %s: no such device", name);  */
int iovm_error_set(iovm_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prefixes the existing message with "prefix: " and returns err->code. */
int iovm_error_prefix(iovm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void iovm_error_clear(iovm_error *err);
