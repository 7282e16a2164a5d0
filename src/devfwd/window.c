/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The backend worker's side of a guest's shared window (docs/devfwd.md,
 * "mmap"): the window file (the memory behind the guest's ivshmem device)
 * mapped once, and the device mappings of this stream, each mirrored into
 * the window pages the guest's module chose for it.
 *
 * Coherence is by copy at defined points: MMAP copies device -> window;
 * before an ioctl on a file its writable mappings go window -> device, after
 * it every mapping of the file goes device -> window.
 *
 * A device mapping can raise SIGBUS where the device has no memory behind
 * it (a file mapped past its end, a shared /dev/zero mapping at an offset,
 * a driver that refuses the fault): every copy runs under a SIGBUS guard
 * and fails with -EFAULT instead of ending the worker. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "devfwd/devfwd.h"
#include "shared/util.h"

#define ALSA_MAJOR 116
/* SNDRV_PCM_MMAP_OFFSET_STATUS: from here on, an ALSA PCM's status and
 * control pages, which change without an ioctl (the hw pointer) */
#define ALSA_STATUS_OFFSET 0x80000000ULL

/* volatile: the handler reads it; to the compiler memcpy cannot */
static _Thread_local sigjmp_buf *volatile guard_jmp;

static void on_sigbus(int sig)
{
	(void)sig;
	if (guard_jmp)
		siglongjmp(*guard_jmp, 1);
	abort();   /* a SIGBUS outside a guarded copy is a bug */
}

int devfwd_window_guard(void)
{
	struct sigaction sa = { .sa_handler = on_sigbus, .sa_flags = SA_NODEFER };

	sigemptyset(&sa.sa_mask);
	return sigaction(SIGBUS, &sa, NULL) < 0 ? negative_errno() : 0;
}

/* memcpy that answers -EFAULT where a page of either side cannot be
 * faulted in (SIGBUS). */
static int copy(void *dst, const void *src, size_t len)
{
	sigjmp_buf jb;

	if (sigsetjmp(jb, 1)) {
		guard_jmp = NULL;
		return -EFAULT;
	}
	guard_jmp = &jb;
	memcpy(dst, src, len);
	guard_jmp = NULL;
	return 0;
}

int devfwd_window_init(struct devfwd_window *w, int fd)
{
	struct stat st;
	void *p;

	*w = (struct devfwd_window){ .fd = -1 };
	if (fd < 0)
		return 0;
	if (fstat(fd, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode) || st.st_size <= 0 || st.st_size % DEVFWD_MMAP_ALIGN)
		return -EINVAL;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return negative_errno();
	w->fd = fd;
	w->base = p;
	w->size = (uint64_t)st.st_size;
	return 0;
}

static void map_drop(struct devfwd_window *w, size_t i)
{
	munmap(w->map[i].dev, w->map[i].len);
	w->map[i] = w->map[--w->nmap];
}

void devfwd_window_done(struct devfwd_window *w)
{
	while (w->nmap)
		map_drop(w, 0);
	if (w->base)
		munmap(w->base, w->size);
	w->base = NULL;
}

/* Per-class rules on what may be mapped at all (docs/devfwd.md). */
static int class_refuses(int fd, uint64_t offset)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return negative_errno();
	/* An ALSA PCM's status/control pages would be stale copies in the
	 * guest; refused, alsa-lib falls back to SYNC_PTR, whose ioctls are
	 * the coherence points. */
	if (S_ISCHR(st.st_mode) && major(st.st_rdev) == ALSA_MAJOR && offset >= ALSA_STATUS_OFFSET)
		return -ENXIO;
	return 0;
}

int devfwd_window_map(struct devfwd_window *w, uint32_t fh, int fd, const struct devfwd_mmap_req *rq)
{
	int prot = 0, r;
	void *dev;

	if (!w->base)
		return -ENODEV;
	if (rq->win_off >= w->size || rq->len > w->size - rq->win_off)
		return -ERANGE;
	for (size_t i = 0; i < w->nmap; i++)
		if (rq->win_off < w->map[i].win_off + w->map[i].len && w->map[i].win_off < rq->win_off + rq->len)
			return -EBUSY;
	if (w->nmap >= DEVFWD_WINDOW_MAX_MAPS)
		return -ENOMEM;
	r = class_refuses(fd, rq->offset);
	if (r < 0)
		return r;
	if (rq->prot & DEVFWD_PROT_READ)
		prot |= PROT_READ;
	if (rq->prot & DEVFWD_PROT_WRITE)
		prot |= PROT_WRITE;
	/* read access too, to copy the device's contents into the window */
	dev = mmap(NULL, rq->len, prot | PROT_READ, MAP_SHARED, fd, (off_t)rq->offset);
	if (dev == MAP_FAILED)
		return negative_errno();
	r = copy(w->base + rq->win_off, dev, rq->len);
	if (r < 0) {
		munmap(dev, rq->len);
		return r;
	}
	w->map[w->nmap++] = (struct devfwd_wmap){ .fh = fh, .win_off = rq->win_off, .len = rq->len,
						  .prot = rq->prot, .dev = dev };
	return 0;
}

int devfwd_window_unmap(struct devfwd_window *w, uint32_t fh, uint64_t win_off)
{
	for (size_t i = 0; i < w->nmap; i++)
		if (w->map[i].fh == fh && w->map[i].win_off == win_off) {
			map_drop(w, i);
			return 0;
		}
	return -ENOENT;
}

void devfwd_window_release(struct devfwd_window *w, uint32_t fh)
{
	size_t i = 0;

	while (i < w->nmap) {
		if (w->map[i].fh == fh)
			map_drop(w, i);
		else
			i++;
	}
}

int devfwd_window_sync(struct devfwd_window *w, uint32_t fh, bool to_device)
{
	int r = 0;

	for (size_t i = 0; i < w->nmap; i++) {
		struct devfwd_wmap *m = &w->map[i];
		int k = 0;

		if (m->fh != fh)
			continue;
		if (to_device && (m->prot & DEVFWD_PROT_WRITE))
			k = copy(m->dev, w->base + m->win_off, m->len);
		else if (!to_device)
			k = copy(w->base + m->win_off, m->dev, m->len);
		if (k < 0 && r == 0)
			r = k;
	}
	return r;
}
