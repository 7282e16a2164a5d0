/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The backend's worker: serves one stream (one guest opener) in its own
 * process. It gets only the files the guest's rules allow (opened by the
 * backend's privileged parent once the worker is confined, or here when no
 * open_file is given), performs the file operations on the real device
 * files, and answers by request id.
 *
 * Host files are always opened O_NONBLOCK so one waiting read cannot stall
 * the other files of the stream: an operation that would block on a file the
 * guest opened in blocking mode is parked and retried when poll(2) says the
 * file is ready. */
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devfwd/devfwd.h"
#include "shared/util.h"

#define MAX_FILES 64
#define MAX_PARKED 64

#define LOG_ERR 3
#define LOG_WARNING 4
#define LOG_INFO 6
#define LOG_DEBUG 7

struct file {
	int fd; /* -1: slot free */
	bool nonblock;
	bool notify_armed;
	uint32_t notify_events;
	struct devfwd_file_state st;
	char path[DEVFWD_MAX_PATH + 1];
};

struct parked {
	struct devfwd_msg req;
	short events;
};

struct worker {
	int sock;
	const struct devfwd_worker_cfg *cfg;
	struct file files[MAX_FILES + 1]; /* fh 1..MAX_FILES; 0 is "no file" */
	struct parked parked[MAX_PARKED];
	size_t nparked;
	struct devfwd_window win;
};

#define wlog(w, level, ...)                                                     \
	do {                                                                     \
		if ((w)->cfg->log)                                               \
			(w)->cfg->log((w)->cfg->log_userdata, level, __VA_ARGS__); \
	} while (0)

static const char *peer(const struct worker *w)
{
	return w->cfg->peer_name ? w->cfg->peer_name : "peer";
}

static int reply(struct worker *w, const struct devfwd_hdr *req, int32_t result, const void *data, size_t len)
{
	struct devfwd_msg m;
	int r = devfwd_encode_reply(&m, req, result, data, len);

	if (r < 0)
		return r;
	r = devfwd_send(w->sock, &m);
	devfwd_msg_done(&m);
	return r;
}

static struct file *lookup(struct worker *w, uint32_t fh)
{
	if (fh == 0 || fh > MAX_FILES || w->files[fh].fd < 0)
		return NULL;
	return &w->files[fh];
}

/* Opens in this process under the guest's rules (tests, or a worker that
 * is not confined), logging refusals as the broker does. */
static int open_here(struct worker *w, const char *path, uint32_t flags)
{
	const char *why;
	int fd = devfwd_rules_open(w->cfg->rules, path, flags, &why);

	if (fd == -EACCES && why)
		wlog(w, LOG_WARNING, "%s (%s): open %s refused: %s", peer(w), devfwd_rules_name(w->cfg->rules),
		     path, why);
	return fd;
}

static int op_open(struct worker *w, const struct devfwd_msg *m)
{
	char path[DEVFWD_MAX_PATH + 1];
	uint32_t flags, fh;
	int fd, r;

	r = devfwd_decode_open(m, &flags, path);
	if (r < 0)
		return r;
	for (fh = 1; fh <= MAX_FILES && w->files[fh].fd >= 0; fh++)
		;
	if (fh > MAX_FILES)
		return reply(w, &m->hdr, -EMFILE, NULL, 0);
	if (w->cfg->open_file)
		fd = w->cfg->open_file(w->cfg->open_userdata, path, flags);
	else
		fd = open_here(w, path, flags);
	if (fd < 0)
		return reply(w, &m->hdr, fd, NULL, 0);
	w->files[fh] = (struct file){ .fd = fd, .nonblock = flags & DEVFWD_OPEN_NONBLOCK };
	strcpy(w->files[fh].path, path);
	wlog(w, LOG_INFO, "%s: opened %s as fh %u", peer(w), path, fh);
	return reply(w, &m->hdr, (int32_t)fh, NULL, 0);
}

static int park(struct worker *w, struct devfwd_msg *m, short events)
{
	if (w->nparked >= MAX_PARKED)
		return reply(w, &m->hdr, -EAGAIN, NULL, 0);
	w->parked[w->nparked++] = (struct parked){ .req = *m, .events = events };
	/* The parked copy owns the payload now. */
	m->payload = NULL;
	return 0;
}

/* Runs one read/write/ioctl. Returns 1 when it would block on a blocking
 * file (the caller parks or keeps it parked), 0 when answered, < 0 on a
 * protocol error. */
static int perform(struct worker *w, const struct devfwd_msg *m, short *ret_events);

static int op_release(struct worker *w, const struct devfwd_msg *m)
{
	struct file *f = lookup(w, m->hdr.fh);
	size_t i = 0;

	if (m->hdr.len)
		return -EBADMSG;
	if (!f)
		return reply(w, &m->hdr, -EBADF, NULL, 0);
	/* Requests still waiting on this file can never complete now. */
	while (i < w->nparked) {
		if (w->parked[i].req.hdr.fh == m->hdr.fh) {
			int r = reply(w, &w->parked[i].req.hdr, -EBADF, NULL, 0);
			devfwd_msg_done(&w->parked[i].req);
			w->parked[i] = w->parked[--w->nparked];
			if (r < 0)
				return r;
		} else {
			i++;
		}
	}
	devfwd_window_release(&w->win, m->hdr.fh);
	close(f->fd);
	*f = (struct file){ .fd = -1 };
	return reply(w, &m->hdr, 0, NULL, 0);
}

static int op_mmap(struct worker *w, const struct devfwd_msg *m)
{
	struct devfwd_mmap_req rq;
	struct devfwd_mmap_reply rep = {};
	struct file *f;
	int r;

	if (!w->win.base) {
		wlog(w, LOG_WARNING, "%s (%s): mmap refused: this guest has no shared window", peer(w),
		     devfwd_rules_name(w->cfg->rules));
		return m->hdr.len == sizeof(rq) ? reply(w, &m->hdr, -ENODEV, NULL, 0) : -EBADMSG;
	}
	r = devfwd_decode_mmap(m, w->win.size, &rq);
	if (r == -ERANGE || r == -EINVAL) {
		wlog(w, LOG_WARNING, "%s: mmap refused: range outside the %" PRIu64 "-byte window or unaligned",
		     peer(w), w->win.size);
		return reply(w, &m->hdr, r == -ERANGE ? -EINVAL : r, NULL, 0);
	}
	if (r < 0)
		return r;
	f = lookup(w, m->hdr.fh);
	if (!f)
		return reply(w, &m->hdr, -EBADF, NULL, 0);
	r = devfwd_window_map(&w->win, m->hdr.fh, f->fd, &rq);
	if (r < 0) {
		wlog(w, LOG_INFO, "%s: mmap of %s (offset 0x%" PRIx64 ", %u bytes) refused: %s", peer(w), f->path,
		     rq.offset, rq.len, strerror(-r));
		return reply(w, &m->hdr, r, NULL, 0);
	}
	wlog(w, LOG_INFO, "%s: mapped %s offset 0x%" PRIx64 ", %u bytes at window offset 0x%" PRIx64, peer(w),
	     f->path, rq.offset, rq.len, rq.win_off);
	rep.win_off = rq.win_off;
	rep.len = rq.len;
	return reply(w, &m->hdr, 0, &rep, sizeof(rep));
}

static int op_munmap(struct worker *w, const struct devfwd_msg *m)
{
	uint64_t off;
	int r = devfwd_decode_munmap(m, &off);

	if (r < 0)
		return r;
	return reply(w, &m->hdr, devfwd_window_unmap(&w->win, m->hdr.fh, off), NULL, 0);
}

static int op_poll(struct worker *w, const struct devfwd_msg *m)
{
	struct devfwd_poll_req p;
	struct file *f;
	struct pollfd pfd;
	int r = devfwd_decode_poll(m, &p);

	if (r < 0)
		return r;
	f = lookup(w, m->hdr.fh);
	if (!f)
		return reply(w, &m->hdr, -EBADF, NULL, 0);
	pfd = (struct pollfd){ .fd = f->fd, .events = (short)p.events };
	if (poll(&pfd, 1, 0) < 0)
		return reply(w, &m->hdr, negative_errno(), NULL, 0);
	if (p.notify && pfd.revents == 0) {
		f->notify_armed = true;
		f->notify_events = p.events;
	}
	return reply(w, &m->hdr, pfd.revents, NULL, 0);
}

static int op_cancel(struct worker *w, const struct devfwd_msg *m)
{
	uint32_t victim;
	int r = devfwd_decode_cancel(m, &victim);

	if (r < 0)
		return r;
	for (size_t i = 0; i < w->nparked; i++) {
		if (w->parked[i].req.hdr.id != victim)
			continue;
		r = reply(w, &w->parked[i].req.hdr, -EINTR, NULL, 0);
		devfwd_msg_done(&w->parked[i].req);
		w->parked[i] = w->parked[--w->nparked];
		if (r < 0)
			return r;
		return reply(w, &m->hdr, 0, NULL, 0);
	}
	/* Already answered: the frontend raced with the reply, which is fine. */
	return reply(w, &m->hdr, -ENOENT, NULL, 0);
}

static int dispatch(struct worker *w, struct devfwd_msg *m)
{
	short events;
	int r;

	if (m->hdr.flags & DEVFWD_F_REPLY)
		return -EBADMSG; /* the backend never asks anything */
	switch (m->hdr.op) {
	case DEVFWD_OP_HELLO: {
		struct devfwd_hello h;
		struct devfwd_msg rep;

		r = devfwd_decode_hello(m, &h);
		if (r < 0)
			return r;
		r = devfwd_encode_hello(&rep, m->hdr.id, true);
		if (r < 0)
			return r;
		r = devfwd_send(w->sock, &rep);
		devfwd_msg_done(&rep);
		return r;
	}
	case DEVFWD_OP_OPEN:
		return op_open(w, m);
	case DEVFWD_OP_RELEASE:
		return op_release(w, m);
	case DEVFWD_OP_POLL:
		return op_poll(w, m);
	case DEVFWD_OP_CANCEL:
		return op_cancel(w, m);
	case DEVFWD_OP_MMAP:
		return op_mmap(w, m);
	case DEVFWD_OP_MUNMAP:
		return op_munmap(w, m);
	case DEVFWD_OP_READ:
	case DEVFWD_OP_WRITE:
	case DEVFWD_OP_IOCTL:
		r = perform(w, m, &events);
		if (r == 1)
			return park(w, m, events);
		return r;
	default:
		return -EBADMSG; /* POLL_NOTIFY only flows to the frontend */
	}
}

static int do_rw(struct worker *w, const struct devfwd_msg *m, struct file *f, short *ret_events)
{
	struct devfwd_rw_req rw;
	const uint8_t *data;
	_cleanup_free_ uint8_t *buf = NULL;
	ssize_t n;
	int r = devfwd_decode_rw(m, &rw, &data);

	if (r < 0)
		return r;
	if (!f)
		return reply(w, &m->hdr, -EBADF, NULL, 0);
	if (m->hdr.op == DEVFWD_OP_READ) {
		buf = malloc(rw.size ? rw.size : 1);
		if (!buf)
			return reply(w, &m->hdr, -ENOMEM, NULL, 0);
		n = read(f->fd, buf, rw.size);
	} else {
		n = write(f->fd, data, rw.size);
	}
	if (n < 0 && errno == EAGAIN && !rw.nonblock) {
		*ret_events = m->hdr.op == DEVFWD_OP_READ ? POLLIN : POLLOUT;
		return 1;
	}
	if (n < 0)
		return reply(w, &m->hdr, negative_errno(), NULL, 0);
	if (m->hdr.op == DEVFWD_OP_READ && n > 0) {
		/* Send the read buffer itself: no second copy of the data. */
		struct devfwd_msg rep;

		r = devfwd_encode_reply(&rep, &m->hdr, (int32_t)n, NULL, 0);
		if (r < 0)
			return r;
		rep.hdr.len = (uint32_t)n;
		rep.payload = buf;
		r = devfwd_send(w->sock, &rep);
		return r;
	}
	return reply(w, &m->hdr, (int32_t)n, NULL, 0);
}

/* The segments must be exactly what the shared layout table derives from the
 * command and the root buffer, so host buffers are sized by the backend's
 * rules and never by the guest's say-so. */
static int layout_matches(const struct devfwd_ioctl_view *v, const struct devfwd_file_state *st)
{
	struct devfwd_ioctl_seg want[DEVFWD_MAX_SEGS] = {};
	uint64_t ptr[DEVFWD_MAX_SEGS];
	bool nested;
	int n = devfwd_layout_root(v->cmd, &want[0], &nested);

	if (n < 0)
		return n;
	if (n == 1 && nested) {
		if (!v->in[0] || v->nseg < 1)
			return -EINVAL;
		n = devfwd_layout_nested(v->cmd, st, v->in[0], v->seg[0].len, want, ptr);
		if (n < 0)
			return n;
	}
	if ((uint32_t)n != v->nseg)
		return -EINVAL;
	for (int i = 0; i < n; i++)
		if (want[i].len != v->seg[i].len || want[i].dir != v->seg[i].dir ||
		    want[i].parent != v->seg[i].parent || want[i].ptr_off != v->seg[i].ptr_off)
			return -EINVAL;
	return 0;
}

static void free_bufs(uint8_t **buf, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		free(buf[i]);
}

/* Sets or clears O_NONBLOCK for the duration of an ioctl: drivers that look at
 * the file flags (ALSA drain) then block exactly as the guest asked. */
static void set_blocking(int fd, bool block)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, block ? (fl & ~O_NONBLOCK) : (fl | O_NONBLOCK));
}

static int do_ioctl(struct worker *w, const struct devfwd_msg *m, struct file *f, short *ret_events)
{
	struct devfwd_ioctl_view v;
	uint8_t *buf[DEVFWD_MAX_SEGS] = {};
	uint8_t saved[DEVFWD_MAX_SEGS][8];
	_cleanup_free_ uint8_t *out = NULL;
	size_t off = 0;
	bool block, fault;
	long rc;
	int r = devfwd_decode_ioctl(m, &v);

	if (r < 0)
		return r;
	if (!f)
		return reply(w, &m->hdr, -EBADF, NULL, 0);
	if (devfwd_rules_check_ioctl(w->cfg->rules, v.cmd) < 0) {
		wlog(w, LOG_WARNING, "%s (%s): ioctl 0x%08x on %s refused: not in policy", peer(w),
		     devfwd_rules_name(w->cfg->rules), v.cmd, f->path);
		return reply(w, &m->hdr, -ENOTTY, NULL, 0);
	}
	if (layout_matches(&v, &f->st) < 0) {
		const char *why = v.nseg ? devfwd_layout_refusal(v.cmd, v.in[0], v.seg[0].len) : NULL;

		wlog(w, LOG_WARNING, "%s: ioctl 0x%08x on %s refused: %s", peer(w), v.cmd, f->path,
		     why ? why : "argument layout does not match the command");
		return reply(w, &m->hdr, -EINVAL, NULL, 0);
	}
	for (uint32_t i = 0; i < v.nseg; i++) {
		buf[i] = calloc(1, v.seg[i].len);
		if (!buf[i]) {
			free_bufs(buf, v.nseg);
			return reply(w, &m->hdr, -ENOMEM, NULL, 0);
		}
		if (v.in[i])
			memcpy(buf[i], v.in[i], v.seg[i].len);
	}
	if (v.nseg)
		devfwd_layout_scrub(v.cmd, buf[0], v.seg[0].len);
	/* Point parents at our copies, remembering the guest's pointer bytes so
	 * the reply carries them back instead of host addresses. */
	for (uint32_t i = 1; i < v.nseg; i++) {
		uint8_t *slot = buf[v.seg[i].parent] + v.seg[i].ptr_off;

		memcpy(saved[i], v.in[v.seg[i].parent] ? v.in[v.seg[i].parent] + v.seg[i].ptr_off : slot, 8);
		memcpy(slot, &buf[i], sizeof(buf[i]));
	}
	block = v.mode == DEVFWD_IOCTL_BLOCK || (v.mode == DEVFWD_IOCTL_AS_OPENED && !f->nonblock);
	if (block)
		set_blocking(f->fd, true);
	/* A mapping whose device memory faults (SIGBUS) fails the ioctl
	 * before it runs, or after it: the guest would see stale pages. */
	fault = devfwd_window_ioctl(&w->win, m->hdr.fh, v.cmd, v.nseg ? buf[0] : NULL, v.nseg ? v.seg[0].len : 0,
				    false, 0) < 0;
	if (!fault) {
		rc = ioctl(f->fd, (unsigned long)v.cmd, v.nseg ? (unsigned long)buf[0] : (unsigned long)v.arg);
		r = rc < 0 ? negative_errno() : (int)rc;
	}
	if (block)
		set_blocking(f->fd, false);
	if (devfwd_window_ioctl(&w->win, m->hdr.fh, v.cmd, v.nseg ? buf[0] : NULL, v.nseg ? v.seg[0].len : 0, true,
				fault ? -EFAULT : r) < 0)
		fault = true;
	if (fault) {
		r = -EFAULT;
		wlog(w, LOG_WARNING, "%s: ioctl 0x%08x on %s: a mapping of the file could not be copied (its "
		     "device memory faults); answered EFAULT", peer(w), v.cmd, f->path);
	}
	for (uint32_t i = 1; i < v.nseg; i++)
		memcpy(buf[v.seg[i].parent] + v.seg[i].ptr_off, saved[i], 8);
	if (r == -EAGAIN && block) {
		free_bufs(buf, v.nseg);
		*ret_events = POLLIN | POLLOUT;
		return 1;
	}
	if (r < 0) {
		wlog(w, LOG_DEBUG, "%s: ioctl 0x%08x on %s: %u buffers, failed: %s", peer(w), v.cmd, f->path,
		     v.nseg, strerror(-r));
		free_bufs(buf, v.nseg);
		return reply(w, &m->hdr, r, NULL, 0);
	}
	if (v.nseg)
		devfwd_layout_update(v.cmd, &f->st, buf[0], v.seg[0].len);
	wlog(w, LOG_DEBUG, "%s: ioctl 0x%08x%s%s on %s: %u buffers (%u bytes first), result %d, frame size %u",
	     peer(w), v.cmd, devfwd_layout_name(v.cmd) ? " " : "",
	     devfwd_layout_name(v.cmd) ? devfwd_layout_name(v.cmd) : "", f->path, v.nseg,
	     v.nseg ? v.seg[0].len : 0, r, f->st.frame_bytes);
	out = malloc(v.out_total ? v.out_total : 1);
	if (!out) {
		free_bufs(buf, v.nseg);
		return reply(w, &m->hdr, -ENOMEM, NULL, 0);
	}
	for (uint32_t i = 0; i < v.nseg; i++)
		if (v.seg[i].dir & DEVFWD_SEG_OUT) {
			memcpy(out + off, buf[i], v.seg[i].len);
			off += v.seg[i].len;
		}
	free_bufs(buf, v.nseg);
	return reply(w, &m->hdr, r, out, off);
}

static int perform(struct worker *w, const struct devfwd_msg *m, short *ret_events)
{
	struct file *f = lookup(w, m->hdr.fh);

	if (m->hdr.op == DEVFWD_OP_IOCTL)
		return do_ioctl(w, m, f, ret_events);
	return do_rw(w, m, f, ret_events);
}

static int retry_parked(struct worker *w, const struct pollfd *pfd, size_t base)
{
	/* Walk backwards: answered entries are replaced by the last one. */
	for (size_t k = w->nparked; k-- > 0;) {
		short events;
		int r;

		if (!pfd[base + k].revents)
			continue;
		r = perform(w, &w->parked[k].req, &events);
		if (r == 1)
			continue;
		devfwd_msg_done(&w->parked[k].req);
		w->parked[k] = w->parked[--w->nparked];
		if (r < 0)
			return r;
	}
	return 0;
}

static int send_notifies(struct worker *w, const struct pollfd *pfd, const uint32_t *fhs, size_t n, size_t base)
{
	for (size_t k = 0; k < n; k++) {
		struct devfwd_msg m;
		int r;

		if (!pfd[base + k].revents)
			continue;
		w->files[fhs[k]].notify_armed = false;
		r = devfwd_encode_notify(&m, fhs[k], pfd[base + k].revents);
		if (r < 0)
			return r;
		r = devfwd_send(w->sock, &m);
		devfwd_msg_done(&m);
		if (r < 0)
			return r;
	}
	return 0;
}

static int loop(struct worker *w)
{
	for (;;) {
		struct pollfd pfd[1 + MAX_PARKED + MAX_FILES];
		uint32_t notify_fh[MAX_FILES];
		size_t n = 1, nnotify = 0, notify_base;
		int r;

		pfd[0] = (struct pollfd){ .fd = w->sock, .events = POLLIN };
		for (size_t k = 0; k < w->nparked; k++)
			pfd[n++] = (struct pollfd){ .fd = w->files[w->parked[k].req.hdr.fh].fd,
						    .events = w->parked[k].events };
		notify_base = n;
		for (uint32_t fh = 1; fh <= MAX_FILES; fh++)
			if (w->files[fh].fd >= 0 && w->files[fh].notify_armed) {
				notify_fh[nnotify++] = fh;
				pfd[n++] = (struct pollfd){ .fd = w->files[fh].fd,
							    .events = (short)w->files[fh].notify_events };
			}
		if (poll(pfd, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		r = retry_parked(w, pfd, 1);
		if (r < 0)
			return r;
		r = send_notifies(w, pfd, notify_fh, nnotify, notify_base);
		if (r < 0)
			return r;
		if (pfd[0].revents) {
			struct devfwd_msg m = {};

			r = devfwd_recv(w->sock, &m);
			if (r == -ECONNRESET)
				return 0;
			if (r < 0)
				return r;
			r = dispatch(w, &m);
			devfwd_msg_done(&m);
			if (r == -ECONNRESET || r == -EPIPE)
				return 0;
			if (r < 0)
				return r;
		}
	}
}

int devfwd_worker_run(int fd, const struct devfwd_worker_cfg *cfg)
{
	struct worker *w;
	int r;

	if (fd < 0 || !cfg)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->sock = fd;
	w->cfg = cfg;
	for (size_t i = 0; i <= MAX_FILES; i++)
		w->files[i].fd = -1;
	r = devfwd_window_init(&w->win, cfg->have_window ? cfg->window_fd : -1);
	if (r < 0) {
		wlog(w, LOG_ERR, "%s: the guest's shared window cannot be mapped: %s", peer(w), strerror(-r));
		free(w);
		return r;
	}
	w->win.generic_only = cfg->generic_coherence;
	r = loop(w);
	if (r == -EPROTONOSUPPORT)
		wlog(w, LOG_ERR, "%s: stream refused: the peer speaks another devfwd protocol version "
		     "(this backend speaks version %d only)", peer(w), DEVFWD_PROTO_VERSION);
	else if (r < 0 && r != -ENOMEM)
		wlog(w, LOG_ERR, "%s: stream closed: %s", peer(w),
		     r == -EPROTO || r == -EBADMSG ? "malformed message" : strerror(-r));
	for (size_t i = 0; i < w->nparked; i++)
		devfwd_msg_done(&w->parked[i].req);
	for (size_t i = 1; i <= MAX_FILES; i++)
		if (w->files[i].fd >= 0)
			close(w->files[i].fd);
	devfwd_window_done(&w->win);
	free(w);
	return r == -EBADMSG ? -EPROTO : r;
}
