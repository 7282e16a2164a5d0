/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The backend worker's side of a guest's shared window (docs/devfwd.md,
 * "mmap"): the window file (the memory behind the guest's ivshmem device)
 * mapped once, and the device mappings of this stream, each mirrored into
 * the window pages the guest's module chose for it.
 *
 * Coherence is by copy at defined points: MMAP copies device -> window;
 * before an ioctl on a file its writable mappings go window -> device, after
 * it every mapping of the file goes device -> window. V4L2 devices have
 * their own rule (a buffer belongs to the driver between QBUF and DQBUF, so
 * a copy into it while queued would overwrite a frame being captured):
 * only the buffer an ioctl hands over is copied, as the shared layout table
 * says (devfwd_layout_v4l2_handover).
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
#define V4L2_MAJOR 81 /* VIDEO_MAJOR: /dev/video*, /dev/v4l-* */
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

/* Per-class rules on what may be mapped at all, and how it is kept
 * coherent (docs/devfwd.md). */
static int class_of(int fd, uint64_t offset, enum devfwd_wclass *ret_cls)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return negative_errno();
	*ret_cls = DEVFWD_WCLASS_GENERIC;
	if (!S_ISCHR(st.st_mode))
		return 0;
	/* An ALSA PCM's status/control pages would be stale copies in the
	 * guest; refused, alsa-lib falls back to SYNC_PTR, whose ioctls are
	 * the coherence points. */
	if (major(st.st_rdev) == ALSA_MAJOR && offset >= ALSA_STATUS_OFFSET)
		return -ENXIO;
	if (major(st.st_rdev) == V4L2_MAJOR)
		*ret_cls = DEVFWD_WCLASS_V4L2;
	return 0;
}

int devfwd_window_map(struct devfwd_window *w, uint32_t fh, int fd, const struct devfwd_mmap_req *rq)
{
	enum devfwd_wclass cls;
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
	r = class_of(fd, rq->offset, &cls);
	if (r < 0)
		return r;
	if (w->generic_only)
		cls = DEVFWD_WCLASS_GENERIC;
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
						  .prot = rq->prot, .offset = rq->offset, .cls = cls, .dev = dev };
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

static int sync_class(struct devfwd_window *w, uint32_t fh, enum devfwd_wclass cls, bool to_device)
{
	int r = 0;

	for (size_t i = 0; i < w->nmap; i++) {
		struct devfwd_wmap *m = &w->map[i];
		int k = 0;

		if (m->fh != fh || m->cls != cls)
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

int devfwd_window_sync(struct devfwd_window *w, uint32_t fh, bool to_device)
{
	return sync_class(w, fh, DEVFWD_WCLASS_GENERIC, to_device);
}

/* The part of fh's V4L2 mappings that holds the buffer at device offset
 * off, len bytes long, copied in the direction given. A buffer the guest
 * has not mapped has nothing to copy. */
static int sync_v4l2_buffer(struct devfwd_window *w, uint32_t fh, uint64_t off, uint32_t len, bool to_device)
{
	for (size_t i = 0; i < w->nmap; i++) {
		struct devfwd_wmap *m = &w->map[i];
		uint64_t at;
		size_t n;

		if (m->fh != fh || m->cls != DEVFWD_WCLASS_V4L2 || off < m->offset || off >= m->offset + m->len)
			continue;
		at = off - m->offset;
		n = len < m->len - at ? len : m->len - at;
		if (to_device)
			return (m->prot & DEVFWD_PROT_WRITE) ? copy(m->dev + at, w->base + m->win_off + at, n) : 0;
		return copy(w->base + m->win_off + at, m->dev + at, n);
	}
	return 0;
}

int devfwd_window_ioctl(struct devfwd_window *w, uint32_t fh, uint32_t cmd, const uint8_t *arg, size_t len,
			bool after, int result)
{
	uint64_t off;
	uint32_t blen;
	int r = sync_class(w, fh, DEVFWD_WCLASS_GENERIC, !after), k = 0;

	if ((!after || result >= 0) && devfwd_layout_v4l2_handover(cmd, arg, len, after, &off, &blen) > 0)
		k = sync_v4l2_buffer(w, fh, off, blen, !after);
	return r < 0 ? r : k;
}
