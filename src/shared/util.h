/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Internal helpers shared by libiovm modules: cleanup attributes and small
 * ownership idioms in the style of systemd. Not part of the public API. */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))

static inline void freep(void *p)
{
	free(*(void **)p);
}

static inline void closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Hand ownership of a pointer over: returns it and leaves NULL behind. */
#define TAKE_PTR(p)                          \
	({                                   \
		__typeof__(p) _p_ = (p);     \
		(p) = NULL;                  \
		_p_;                         \
	})

#define TAKE_FD(fd)                          \
	({                                   \
		int _fd_ = (fd);             \
		(fd) = -1;                   \
		_fd_;                        \
	})

/* Makes room for need elements of elem bytes in *arr (capacity *cap),
 * doubling; -ENOMEM leaves the array as it was. */
static inline int array_grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t c;
	void *n;

	if (need <= *cap)
		return 0;
	c = *cap ? *cap * 2 : 16;
	while (c < need)
		c *= 2;
	n = realloc(*arr, c * elem);
	if (!n)
		return -ENOMEM;
	*arr = n;
	*cap = c;
	return 0;
}

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

/* errno as a negative return value, never 0 even if errno was clobbered. */
static inline int negative_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}
