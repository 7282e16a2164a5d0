/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The one clock helper: monotonic time for deadlines, intervals and logs. */

#include <stdint.h>
#include <time.h>

static inline uint64_t now_usec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static inline uint64_t now_nsec(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static inline int64_t now_ms(void)
{
	return (int64_t)(now_usec() / 1000u);
}
