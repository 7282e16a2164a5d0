/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* devfwd-frontend: the guest side. Each forwarded device becomes a real
 * character device made with CUSE, named as on the host, whose file
 * operations travel to devfwd-backend. Handlers never wait: they send a
 * request and return; the same thread's loop completes the FUSE request when
 * the reply with the same id arrives, so many operations are in flight at
 * once.
 *
 * ioctls are unrestricted: the layout code says which guest buffers an ioctl
 * uses and CUSE's retry mechanism fetches them (twice for nested pointers).
 * mmap cannot be forwarded through CUSE; the kernel answers ENODEV itself. */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <dirent.h>
#include <cuse_lowlevel.h>
#include <fuse_lowlevel.h>

#include "shared/clock.h"
#include "devfwd/devfwd.h"
#include "shared/log.h"
#include "shared/util.h"

#define MAX_PENDING 1024
#define MAX_FH 64
#define MAX_DEVICES 16

struct pending {
	uint32_t id; /* 0: free */
	uint16_t op;
	fuse_req_t req;
	struct fuse_file_info fi; /* open: echoed back in fuse_reply_open */
	uint32_t cmd;             /* ioctl: for the per-file state update */
	uint32_t fh;
	uint32_t root_len;
	bool root_out;
	pid_t pid;              /* ioctl: the caller, to learn its blocking mode */
	struct devfwd_msg copy; /* ioctl: kept to resend in blocking mode */
};

static struct {
	const char *host_path;
	char dev_path[300]; /* our node, /dev/NAME */
	int sock;
	struct fuse_session *se;
	uint32_t next_id;
	struct pending pending[MAX_PENDING];
	struct devfwd_file_state st[MAX_FH + 1];
	bool opened_nonblock[MAX_FH + 1];
	struct fuse_pollhandle *ph[MAX_FH + 1];
} fe = { .sock = -1 }; /* one thread uses it all: serve_loop */


/* Registers a pending request and sends m. Consumes m. */
static int submit(struct devfwd_msg *m, const struct pending *p)
{
	int r = -EAGAIN;

	for (size_t i = 0; i < MAX_PENDING; i++) {
		if (fe.pending[i].id)
			continue;
		fe.pending[i] = *p;
		fe.pending[i].id = m->hdr.id;
		fe.pending[i].op = m->hdr.op;
		r = devfwd_send(fe.sock, m);
		if (r < 0)
			fe.pending[i].id = 0;
		break;
	}
	devfwd_msg_done(m);
	return r;
}

static uint32_t new_id(void)
{
	uint32_t id;

	if (++fe.next_id == 0)
		fe.next_id = 1;
	id = fe.next_id;
	return id;
}

static void fail(fuse_req_t req, int r)
{
	fuse_reply_err(req, r < 0 ? -r : EIO);
}

/* FUSE interrupt (a signal hit the waiting guest process): ask the backend
 * to give up the parked request; it answers that request with EINTR. */
static void on_interrupt(fuse_req_t req, void *data)
{
	uint32_t victim = (uint32_t)(uintptr_t)data;
	struct devfwd_msg m;

	if (devfwd_encode_cancel(&m, new_id(), 0, victim) < 0)
		return;
	(void)devfwd_send(fe.sock, &m);
	devfwd_msg_done(&m);
}

static void send_or_fail(fuse_req_t req, struct devfwd_msg *m, const struct pending *p, bool interruptible)
{
	uint32_t id = m->hdr.id;
	struct pending q = *p;
	int r;

	/* An ioctl may have to be sent again in blocking mode (see ioctl_eagain). */
	if (m->hdr.op == DEVFWD_OP_IOCTL && !q.copy.payload) {
		q.copy.hdr = m->hdr;
		q.copy.payload = malloc(m->hdr.len ? m->hdr.len : 1);
		if (!q.copy.payload) {
			devfwd_msg_done(m);
			return fail(req, -ENOMEM);
		}
		memcpy(q.copy.payload, m->payload, m->hdr.len);
	}
	/* Before sending: once the reply has been handled, req is gone. */
	if (interruptible)
		fuse_req_interrupt_func(req, on_interrupt, (void *)(uintptr_t)id);
	r = submit(m, &q);
	if (r < 0) {
		devfwd_msg_done(&q.copy);
		fail(req, r);
	}
}

static void fe_open(fuse_req_t req, struct fuse_file_info *fi)
{
	uint32_t flags = 0;
	struct devfwd_msg m;
	int r;

	switch (fi->flags & O_ACCMODE) {
	case O_RDONLY:
		flags = DEVFWD_OPEN_READ;
		break;
	case O_WRONLY:
		flags = DEVFWD_OPEN_WRITE;
		break;
	default:
		flags = DEVFWD_OPEN_READ | DEVFWD_OPEN_WRITE;
	}
	if (fi->flags & O_NONBLOCK)
		flags |= DEVFWD_OPEN_NONBLOCK;
	r = devfwd_encode_open(&m, new_id(), flags, fe.host_path);
	if (r < 0)
		return fail(req, r);
	send_or_fail(req, &m, &(struct pending){ .req = req, .fi = *fi }, false);
}

static void fe_release(fuse_req_t req, struct fuse_file_info *fi)
{
	struct devfwd_msg m;
	int r = devfwd_encode_simple(&m, DEVFWD_OP_RELEASE, new_id(), (uint32_t)fi->fh);

	if (r < 0)
		return fail(req, r);
	send_or_fail(req, &m, &(struct pending){ .req = req, .fh = (uint32_t)fi->fh }, false);
}

static void fe_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct devfwd_msg m;
	int r;

	if (size > DEVFWD_MAX_IO)
		size = DEVFWD_MAX_IO; /* a short read is always allowed */
	r = devfwd_encode_rw(&m, DEVFWD_OP_READ, new_id(), (uint32_t)fi->fh, (uint64_t)off, (uint32_t)size,
			     fi->flags & O_NONBLOCK, NULL);
	if (r < 0)
		return fail(req, r);
	send_or_fail(req, &m, &(struct pending){ .req = req }, true);
}

static void fe_write(fuse_req_t req, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct devfwd_msg m;
	int r;

	if (size > DEVFWD_MAX_IO)
		size = DEVFWD_MAX_IO;
	r = devfwd_encode_rw(&m, DEVFWD_OP_WRITE, new_id(), (uint32_t)fi->fh, (uint64_t)off, (uint32_t)size,
			     fi->flags & O_NONBLOCK, buf);
	if (r < 0)
		return fail(req, r);
	send_or_fail(req, &m, &(struct pending){ .req = req }, true);
}

static void fe_poll(fuse_req_t req, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	uint32_t fh = (uint32_t)fi->fh;
	struct devfwd_msg m;
	int r;

	if (fh == 0 || fh > MAX_FH) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		return fail(req, -EBADF);
	}
	if (ph) {
		if (fe.ph[fh])
			fuse_pollhandle_destroy(fe.ph[fh]);
		fe.ph[fh] = ph;
	}
	/* The kernel's poll interface does not tell which events the caller
	 * waits for; ask for all, as CUSE drivers report all. */
	r = devfwd_encode_poll(&m, new_id(), fh, POLLIN | POLLOUT | POLLPRI, ph != NULL);
	if (r < 0)
		return fail(req, r);
	send_or_fail(req, &m, &(struct pending){ .req = req }, false);
}

/* Sets up the iovecs of every segment for fuse_reply_ioctl_retry. */
static void seg_iovs(const struct devfwd_ioctl_seg *seg, const uint64_t *ptr, int n, struct iovec *in, size_t *nin,
		     struct iovec *out, size_t *nout)
{
	*nin = *nout = 0;
	for (int i = 0; i < n; i++) {
		struct iovec v = { .iov_base = (void *)(uintptr_t)ptr[i], .iov_len = seg[i].len };

		if (seg[i].dir & DEVFWD_SEG_IN)
			in[(*nin)++] = v;
		if (seg[i].dir & DEVFWD_SEG_OUT)
			out[(*nout)++] = v;
	}
}

static void fe_ioctl(fuse_req_t req, int cmd_, void *arg, struct fuse_file_info *fi, unsigned flags,
		     const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	uint32_t cmd = (uint32_t)cmd_, fh = (uint32_t)fi->fh;
	struct devfwd_ioctl_seg seg[DEVFWD_MAX_SEGS] = {};
	uint64_t ptr[DEVFWD_MAX_SEGS] = {};
	const void *in_data[DEVFWD_MAX_SEGS] = {};
	struct iovec in_iov[DEVFWD_MAX_SEGS], out_iov[DEVFWD_MAX_SEGS];
	size_t nin, nout, need_in = 0, need_out = 0, off = 0;
	struct devfwd_msg m;
	bool nested;
	int n, r;

	if (flags & FUSE_IOCTL_COMPAT)
		return fail(req, -ENOSYS); /* 32-bit guest processes: layouts differ */
	if (fh == 0 || fh > MAX_FH)
		return fail(req, -EBADF);
	n = devfwd_layout_root(cmd, &seg[0], &nested);
	if (n < 0)
		return fail(req, n);
	if (n == 0) {
		r = devfwd_encode_ioctl(&m, new_id(), fh, cmd, (uint64_t)(uintptr_t)arg, NULL, 0, NULL);
		if (r < 0)
			return fail(req, r);
		return send_or_fail(req, &m, &(struct pending){ .req = req, .cmd = cmd, .fh = fh,
								  .pid = fuse_req_ctx(req)->pid }, true);
	}
	ptr[0] = (uint64_t)(uintptr_t)arg;
	/* First round: fetch the root buffer, whose content may name more. */
	if ((seg[0].dir & DEVFWD_SEG_IN) ? in_bufsz < seg[0].len : out_bufsz < seg[0].len) {
		seg_iovs(seg, ptr, 1, in_iov, &nin, out_iov, &nout);
		fuse_reply_ioctl_retry(req, in_iov, nin, out_iov, nout);
		return;
	}
	if (nested && (seg[0].dir & DEVFWD_SEG_IN)) {
		struct devfwd_file_state st;

		st = fe.st[fh];
		n = devfwd_layout_nested(cmd, &st, in_buf, seg[0].len, seg, ptr);
		if (n < 0)
			return fail(req, n);
	}
	for (int i = 0; i < n; i++) {
		if (seg[i].dir & DEVFWD_SEG_IN)
			need_in += seg[i].len;
		if (seg[i].dir & DEVFWD_SEG_OUT)
			need_out += seg[i].len;
	}
	log_debug("ioctl 0x%08x: in %zu out %zu, %d buffers, first %u bytes, second %u bytes at 0x%llx", cmd, in_bufsz,
	    out_bufsz, n, seg[0].len, n > 1 ? seg[1].len : 0, n > 1 ? (unsigned long long)ptr[1] : 0ULL);
	/* Second round (nested pointers): fetch every buffer. If the guest
	 * changed the root meanwhile, the sizes differ and we ask again. */
	if (in_bufsz != need_in || out_bufsz != need_out) {
		seg_iovs(seg, ptr, n, in_iov, &nin, out_iov, &nout);
		fuse_reply_ioctl_retry(req, in_iov, nin, out_iov, nout);
		return;
	}
	for (int i = 0; i < n; i++)
		if (seg[i].dir & DEVFWD_SEG_IN) {
			in_data[i] = (const uint8_t *)in_buf + off;
			off += seg[i].len;
		}
	r = devfwd_encode_ioctl(&m, new_id(), fh, cmd, 0, seg, (uint32_t)n, in_data);
	if (r < 0)
		return fail(req, r);
	send_or_fail(req, &m,
		     &(struct pending){ .req = req, .cmd = cmd, .fh = fh, .root_len = seg[0].len,
					.root_out = seg[0].dir & DEVFWD_SEG_OUT, .pid = fuse_req_ctx(req)->pid },
		     true);
}

/* Whether process pid holds our device open in blocking mode now: CUSE is
 * not told about fcntl(F_SETFL), but /proc/PID/fdinfo is. */
static bool caller_blocks(pid_t pid)
{
	char dir[64];
	DIR *d;
	struct dirent *e;
	bool blocks = false;

	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	d = opendir(dir);
	if (!d)
		return false;
	while (!blocks && (e = readdir(d))) {
		char link[320], target[320], info[96], line[128];
		ssize_t n;
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		n = readlink(link, target, sizeof(target) - 1);
		if (n <= 0)
			continue;
		target[n] = 0;
		if (strcmp(target, fe.dev_path) != 0)
			continue;
		snprintf(info, sizeof(info), "/proc/%d/fdinfo/%s", (int)pid, e->d_name);
		f = fopen(info, "re");
		if (!f)
			continue;
		while (fgets(line, sizeof(line), f)) {
			unsigned flags;

			if (sscanf(line, "flags: %o", &flags) == 1 && !(flags & O_NONBLOCK))
				blocks = true;
		}
		fclose(f);
	}
	closedir(d);
	return blocks;
}

/* An ioctl of a file opened O_NONBLOCK said EAGAIN. If the guest has since
 * switched the file to blocking mode, send it again to wait on the host. */
static bool ioctl_eagain(struct pending *p)
{
	bool nb;

	nb = p->fh && p->fh <= MAX_FH && fe.opened_nonblock[p->fh];
	if (!nb || !p->copy.payload || !caller_blocks(p->pid))
		return false;
	if (devfwd_ioctl_set_mode(&p->copy, DEVFWD_IOCTL_BLOCK) < 0)
		return false;
	p->copy.hdr.id = new_id();
	log_debug("ioctl 0x%08x: EAGAIN, but the caller blocks: waiting on the host", p->cmd);
	struct pending q = *p;
	uint32_t id = p->copy.hdr.id;
	q.copy = (struct devfwd_msg){};
	fuse_req_interrupt_func(p->req, on_interrupt, (void *)(uintptr_t)id);
	return submit(&p->copy, &q) == 0;
}

static void ioctl_complete(const struct pending *p, const struct devfwd_msg *m)
{
	if (p->root_out && m->hdr.len >= p->root_len && p->fh && p->fh <= MAX_FH) {
		devfwd_layout_update(p->cmd, &fe.st[p->fh], m->payload, p->root_len);
	}
	fuse_reply_ioctl(p->req, m->hdr.result, m->hdr.len ? m->payload : NULL, m->hdr.len);
}

static void complete(struct pending *p, const struct devfwd_msg *m)
{
	int32_t res = m->hdr.result;

	if (p->op == DEVFWD_OP_IOCTL) {
		if (res == -EAGAIN && ioctl_eagain(p))
			return;
		devfwd_msg_done(&p->copy);
	}

	if (res < 0 && !(p->op == DEVFWD_OP_POLL)) {
		fuse_reply_err(p->req, -res);
		return;
	}
	switch (p->op) {
	case DEVFWD_OP_OPEN: {
		struct fuse_file_info fi = p->fi;

		if (res == 0 || res > MAX_FH) {
			fuse_reply_err(p->req, EPROTO);
			return;
		}
		fe.st[res] = (struct devfwd_file_state){};
		fe.opened_nonblock[res] = p->fi.flags & O_NONBLOCK;
		fi.fh = (uint64_t)res;
		fi.nonseekable = 1;
		if (fuse_reply_open(p->req, &fi) == -ENOENT) {
			/* The opener was interrupted: nobody will ever release it. */
			struct devfwd_msg rel;
			if (devfwd_encode_simple(&rel, DEVFWD_OP_RELEASE, new_id(), (uint32_t)res) == 0)
				(void)submit(&rel, &(struct pending){ .req = NULL });
		}
		return;
	}
	case DEVFWD_OP_RELEASE:
		if (p->fh && p->fh <= MAX_FH && fe.ph[p->fh]) {
			fuse_pollhandle_destroy(fe.ph[p->fh]);
			fe.ph[p->fh] = NULL;
		}
		if (p->req)
			fuse_reply_err(p->req, 0);
		return;
	case DEVFWD_OP_READ:
		if ((uint32_t)res != m->hdr.len)
			fuse_reply_err(p->req, EPROTO);
		else
			fuse_reply_buf(p->req, (const char *)m->payload, m->hdr.len);
		return;
	case DEVFWD_OP_WRITE:
		fuse_reply_write(p->req, (size_t)res);
		return;
	case DEVFWD_OP_POLL:
		if (res < 0)
			fuse_reply_err(p->req, -res);
		else
			fuse_reply_poll(p->req, (unsigned)res);
		return;
	case DEVFWD_OP_IOCTL:
		ioctl_complete(p, m);
		return;
	default:
		return;
	}
}

static void notify(uint32_t fh)
{
	struct fuse_pollhandle *ph = NULL;

	if (fh && fh <= MAX_FH) {
		ph = fe.ph[fh];
		fe.ph[fh] = NULL;
	}
	if (ph) {
		fuse_lowlevel_notify_poll(ph);
		fuse_pollhandle_destroy(ph);
	}
}

/* Reads one message from the backend and completes what it answers.
 * Returns 0, or a negative errno when the stream has ended. */
static int receive_one(void)
{
	struct devfwd_msg m;
	struct pending p = {};
	int r = devfwd_recv(fe.sock, &m);

	if (r < 0)
		return r;
	if (m.hdr.op == DEVFWD_OP_POLL_NOTIFY) {
		notify(m.hdr.fh);
		devfwd_msg_done(&m);
		return 0;
	}
	for (size_t i = 0; i < MAX_PENDING; i++)
		if (fe.pending[i].id == m.hdr.id && (m.hdr.flags & DEVFWD_F_REPLY)) {
			p = fe.pending[i];
			fe.pending[i].id = 0;
			break;
		}
	if (p.id)
		complete(&p, &m);
	else if (m.hdr.op != DEVFWD_OP_CANCEL && m.hdr.op != DEVFWD_OP_HELLO)
		log_debug("reply %u matches no request", m.hdr.id);
	devfwd_msg_done(&m);
	return 0;
}

/* Without a backend the device is useless: fail what waits. */
static void fail_pending(void)
{
	for (size_t i = 0; i < MAX_PENDING; i++)
		if (fe.pending[i].id) {
			if (fe.pending[i].req)
				fuse_reply_err(fe.pending[i].req, EIO);
			devfwd_msg_done(&fe.pending[i].copy);
			fe.pending[i].id = 0;
		}
}

/* One thread serves both sides: requests from CUSE and replies from the
 * backend. Handlers never wait, so nothing is lost by not having a thread
 * per side, and each hop wakes one thread instead of handing over between
 * two (which under an emulator often means between two vCPUs).
 * Returns 0 when told to stop, 1 when the backend's stream ended or CUSE
 * failed. */
static int serve_loop(void)
{
	struct fuse_buf fbuf = {};
	int r = 0;

	while (!fuse_session_exited(fe.se)) {
		struct pollfd pfd[2] = {
			{ .fd = fuse_session_fd(fe.se), .events = POLLIN },
			{ .fd = fe.sock, .events = POLLIN },
		};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue; /* a stop signal sets the FUSE loop's exit flag */
			log_error(errno, "poll");
			r = 1;
			break;
		}
		/* Replies first: they free the slots new requests need. */
		if (pfd[1].revents) {
			int e = receive_one();

			if (e < 0) {
				log_error(0, "%s: backend stream ended: %s", fe.host_path,
					e == -ECONNRESET ? "backend hung up" : strerror(-e));
				r = 1;
				break;
			}
		}
		if (pfd[0].revents) {
			int e = fuse_session_receive_buf(fe.se, &fbuf);

			if (e == -EINTR || e == -EAGAIN)
				continue;
			if (e <= 0) {
				if (e < 0)
					log_error(0, "%s: CUSE: %s", fe.dev_path, strerror(-e));
				r = e < 0;
				break;
			}
			fuse_session_process_buf(fe.se, &fbuf);
		}
	}
	free(fbuf.mem);
	fail_pending();
	return r;
}

static const struct cuse_lowlevel_ops ops = {
	.open = fe_open,
	.release = fe_release,
	.read = fe_read,
	.write = fe_write,
	.ioctl = fe_ioctl,
	.poll = fe_poll,
};

/* Errors a backend that is not up yet, or a guest transport that is still
 * settling (a restored VM's vsock gets a transport reset), give on connect. */
static bool connect_error_is_transient(int r)
{
	switch (-r) {
	case ETIMEDOUT:
	case ECONNREFUSED:
	case ECONNRESET:
	case ENODEV:
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EAGAIN:
	case EINTR:
	case ENOENT:
		return true;
	default:
		return false;
	}
}

/* Connects to ADDR, retrying transient failures with a growing pause until
 * TIMEOUT_S seconds have passed (0: one attempt). The last error is kept. */
static int connect_with_retry(const char *addr, unsigned timeout_s, const char *host_path, int *ret_fd,
			      iovm_error *err)
{
	int64_t deadline = now_ms() + (int64_t)timeout_s * 1000;
	unsigned pause_ms = 100, tries = 0;
	int r;

	for (;;) {
		r = devfwd_connect(addr, ret_fd, err);
		tries++;
		if (r >= 0 || !connect_error_is_transient(r) || now_ms() + pause_ms > deadline)
			break;
		if (tries == 1)
			log_warning(0, "%s: %s; retrying for up to %us", host_path, err->msg,
				timeout_s);
		usleep(pause_ms * 1000);
		pause_ms = pause_ms * 2 > 2000 ? 2000 : pause_ms * 2;
	}
	if (r < 0 && tries > 1) {
		char last[sizeof(err->msg)];

		snprintf(last, sizeof(last), "%s", err->msg);
		iovm_error_set(err, r, "%s (gave up after %u attempts in %us)", last, tries, timeout_s);
	}
	return r;
}

/* Serves one device in this process. */
static int run_device(const char *addr, const char *host_path, const char *name, bool debug,
		      unsigned connect_timeout_s)
{
	char devname[300];
	const char *dev_info[] = { devname };
	struct cuse_info ci = { .dev_info_argc = 1, .dev_info_argv = dev_info, .flags = CUSE_UNRESTRICTED_IOCTL };
	char *argv[] = { (char *)"devfwd-frontend", (char *)"-f", (char *)"-s", debug ? (char *)"-d" : NULL, NULL };
	struct devfwd_client *hello = NULL;
	iovm_error err = {};
	int mt, r, fd;

	snprintf(devname, sizeof(devname), "DEVNAME=%s", name);
	snprintf(fe.dev_path, sizeof(fe.dev_path), "/dev/%s", name);
	r = connect_with_retry(addr, connect_timeout_s, host_path, &fd, &err);
	if (r < 0) {
		log_error(0, "%s: %s", host_path, err.msg);
		return 1;
	}
	/* The handshake checks the version before the device appears. */
	r = devfwd_client_new(fd, &hello);
	if (r < 0) {
		log_error(0, "%s: handshake with %s failed: %s", host_path, addr, strerror(-r));
		return 1;
	}
	fe.sock = dup(devfwd_client_fd(hello));
	devfwd_client_free(hello);
	fe.host_path = host_path;
	if (debug)
		log_set_max_level(LOG_DEBUG);
	fe.next_id = 1000;
	fe.se = cuse_lowlevel_setup(debug ? 4 : 3, argv, &ci, &ops, &mt, NULL);
	if (!fe.se) {
		log_error(0, "%s: CUSE setup for /dev/%s failed (is the cuse module loaded?)",
			host_path, name);
		return 1;
	}
	r = serve_loop();
	cuse_lowlevel_teardown(fe.se);
	return r;
}

/* --kernel: checks that the backend answers (with the same connect retry
 * and handshake as a CUSE device), then hands the device to devfwd.ko. */
static int add_kernel_device(const char *addr, const char *host_path, const char *name, unsigned connect_timeout_s)
{
	struct devfwd_client *hello = NULL;
	iovm_error err = {};
	char line[512];
	int r, fd;

	r = devfwd_kernel_line(addr, host_path, name, line, sizeof(line), &err);
	if (r >= 0)
		r = connect_with_retry(addr, connect_timeout_s, host_path, &fd, &err);
	if (r >= 0 && (r = devfwd_client_new(fd, &hello)) < 0)
		iovm_error_set(&err, r, "%s: handshake with %s failed: %s", host_path, addr, strerror(-r));
	devfwd_client_free(hello);
	if (r >= 0)
		r = devfwd_kernel_add(DEVFWD_KERNEL_CTL, line, host_path, &err);
	if (r < 0)
		log_error(0, "%s", err.msg);
	return r < 0;
}

/* Prints the usage to f; returns code, the exit status. */
static int usage(FILE *f, int code)
{
	fputs("usage: devfwd-frontend --connect ADDR [--connect-timeout SEC] --device HOSTPATH[=NAME] [--device ...]\n"
	      "                       [--kernel] [--debug]\n"
	      "  ADDR is vsock:CID:PORT or unix:/path; NAME (default: HOSTPATH without /dev/)\n"
	      "  is the guest's /dev name, e.g. --device /dev/input/event3=input/event0\n"
	      "  --connect-timeout SEC  keep retrying a refused or timed-out connect this long\n"
	      "                         (default 60; 0 tries once)\n"
	      "  --kernel  hand the devices to devfwd.ko (/dev/devfwd-ctl) instead of serving\n"
	      "            them through CUSE; exits once they exist (vsock addresses only)\n", f);
	return code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "connect", required_argument, NULL, 'c' },
		{ "connect-timeout", required_argument, NULL, 'T' },
		{ "device", required_argument, NULL, 'D' },
		{ "debug", no_argument, NULL, 'd' },
		{ "kernel", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	char *host[MAX_DEVICES], *name[MAX_DEVICES];
	const char *addr = NULL;
	size_t n = 0;
	bool debug = false, kernel = false;
	unsigned connect_timeout_s = 60;
	pid_t pids[MAX_DEVICES];
	int c, status = 0;

	log_open("devfwd-frontend", false);
	while ((c = getopt_long(argc, argv, "c:T:D:dkh", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			addr = optarg;
			break;
		case 'T': {
			char *end;
			unsigned long v;

			errno = 0;
			v = strtoul(optarg, &end, 10);
			if (errno || end == optarg || *end || v > 86400 || optarg[0] == '-') {
				log_error(0, "--connect-timeout takes seconds 0..86400, not '%s'",
					optarg);
				return 2;
			}
			connect_timeout_s = (unsigned)v;
			break;
		}
		case 'D': {
			char *eq;

			if (n >= MAX_DEVICES) {
				log_error(0, "at most %d devices", MAX_DEVICES);
				return 2;
			}
			host[n] = optarg;
			eq = strchr(optarg, '=');
			if (eq) {
				*eq = 0;
				name[n] = eq + 1;
			} else {
				name[n] = strncmp(optarg, "/dev/", 5) == 0 ? optarg + 5 : optarg;
			}
			if (devfwd_path_check(host[n]) < 0 || !*name[n] || name[n][0] == '/' || strstr(name[n], "..")) {
				log_error(0, "--device %s: need a clean absolute host path and a "
					"relative /dev name", optarg);
				return 2;
			}
			n++;
			break;
		}
		case 'd':
			debug = true;
			break;
		case 'k':
			kernel = true;
			break;
		case 'h':
			return usage(stdout, 0);
		default:
			return usage(stderr, 2);
		}
	}
	if (!addr || n == 0 || optind != argc)
		return usage(stderr, 2);
	signal(SIGPIPE, SIG_IGN);
	if (kernel) {
		for (size_t i = 0; i < n; i++)
			if (add_kernel_device(addr, host[i], name[i], connect_timeout_s))
				status = 1;
		return status;
	}
	if (n == 1)
		return run_device(addr, host[0], name[0], debug, connect_timeout_s);
	/* One process per device: each has its own stream, CUSE channel and
	 * worker on the host, so devices fail independently. */
	for (size_t i = 0; i < n; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			perror("devfwd-frontend: fork");
			return 1;
		}
		if (pids[i] == 0)
			_exit(run_device(addr, host[i], name[i], debug, connect_timeout_s));
	}
	for (size_t i = 0; i < n; i++) {
		int st;

		if (waitpid(pids[i], &st, 0) > 0 && (!WIFEXITED(st) || WEXITSTATUS(st)))
			status = 1;
	}
	return status;
}
