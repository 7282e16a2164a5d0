/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The crash-injection hook (crash.h): docs/iovmd.md, "The intent journal
 * and crash points". */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "iovmd/crash.h"
#include "shared/log.h"

void iovmd_crash_point(const char *op, const char *step)
{
	const char *at = getenv("IOVM_CRASH_AT");
	size_t n;

	if (!at || !*at || !op)
		return;
	n = strlen(op);
	if (!strncmp(at, op, n) && at[n] == ':' && !strcmp(at + n + 1, step)) {
		log_warning(0, "IOVM_CRASH_AT=%s: killing myself (test hook)", at);
		raise(SIGKILL);
	}
}
