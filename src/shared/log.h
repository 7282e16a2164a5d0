/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The one log of the programs (iovmd, devfwd-backend, devfwd-frontend; the
 * libraries never log). One line per message on stderr, written at once so
 * that threads' and processes' lines do not interleave:
 *   "IDENT[PID]: LEVEL: message (errno text)"
 * with [PID] only where log_open asked for it, and the monotonic time after
 * the ident when the maximum level is debug, so the steps of one request can
 * be timed from the log. Levels are syslog's (LOG_ERR ... LOG_DEBUG).
 */

#include <stdarg.h>
#include <stdbool.h>
#include <syslog.h>

void log_open(const char *ident, bool with_pid);
void log_set_max_level(int level);
int log_get_max_level(void);

/* err is a negative (or positive) errno, 0 for none. */
void log_internal(int level, int err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void log_internalv(int level, int err, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));
/* The same as a library's log callback (userdata unused). */
void log_callback(void *userdata, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define log_error(e, ...) log_internal(LOG_ERR, (e), __VA_ARGS__)
#define log_warning(e, ...) log_internal(LOG_WARNING, (e), __VA_ARGS__)
#define log_info(...) log_internal(LOG_INFO, 0, __VA_ARGS__)
#define log_debug(...) log_internal(LOG_DEBUG, 0, __VA_ARGS__)
