/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "iovmd/iovmd.h"

log_level iovmd_log_level = LOG_LVL_INFO;

static const char *const names[] = { "error", "warning", "info", "debug" };

/* One line per message, written at once so the two threads' lines do not
 * interleave. err is a negative (or positive) errno, 0 for none. */
void iovmd_log(log_level l, int err, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	if (l > iovmd_log_level)
		return;
	if (iovmd_log_level >= LOG_LVL_DEBUG) {
		/* At debug level every line carries the monotonic time, so that
		 * the steps of one request can be timed from the log. */
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		n = snprintf(line, sizeof(line), "iovmd: %lld.%03ld %s: ", (long long)ts.tv_sec,
			     ts.tv_nsec / 1000000, names[l]);
	} else
		n = snprintf(line, sizeof(line), "iovmd: %s: ", names[l]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line) - 64)
		n = (int)sizeof(line) - 64;
	if (err)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " (%s)", strerror(err < 0 ? -err : err));
	line[n++] = '\n';
	fwrite(line, 1, (size_t)n, stderr);
	fflush(stderr);
}
