/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "shared/clock.h"
#include "shared/log.h"

static const char *log_ident = "iovm";
static bool log_pid;
static int log_max_level = LOG_INFO;

void log_open(const char *ident, bool with_pid)
{
	log_ident = ident;
	log_pid = with_pid;
}

void log_set_max_level(int level)
{
	log_max_level = level;
}

int log_get_max_level(void)
{
	return log_max_level;
}

static const char *level_name(int level)
{
	switch (level) {
	case LOG_EMERG:
	case LOG_ALERT:
	case LOG_CRIT:
	case LOG_ERR: return "error";
	case LOG_WARNING: return "warning";
	case LOG_NOTICE: return "notice";
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

void log_internalv(int level, int err, const char *fmt, va_list ap)
{
	char line[2048];
	int n = 0;

	if (level > log_max_level)
		return;
	n += snprintf(line + n, sizeof(line) - (size_t)n, "%s", log_ident);
	if (log_pid)
		n += snprintf(line + n, sizeof(line) - (size_t)n, "[%d]", (int)getpid());
	n += snprintf(line + n, sizeof(line) - (size_t)n, ": ");
	if (log_max_level >= LOG_DEBUG) {
		int64_t ms = now_ms();

		n += snprintf(line + n, sizeof(line) - (size_t)n, "%lld.%03d ", (long long)(ms / 1000),
			      (int)(ms % 1000));
	}
	n += snprintf(line + n, sizeof(line) - (size_t)n, "%s: ", level_name(level));
	n += vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	if (n >= (int)sizeof(line) - 64)
		n = (int)sizeof(line) - 64;
	if (err)
		n += snprintf(line + n, sizeof(line) - (size_t)n, " (%s)", strerror(err < 0 ? -err : err));
	line[n++] = '\n';
	fwrite(line, 1, (size_t)n, stderr);
	fflush(stderr);
}

void log_internal(int level, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_internalv(level, err, fmt, ap);
	va_end(ap);
}

void log_callback(void *userdata, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	log_internalv(level, 0, fmt, ap);
	va_end(ap);
}
