/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The backend worker end to end over a socketpair, on files this machine
 * has: /dev/zero, /dev/null, /dev/ptmx (a real ioctl with output), FIFOs
 * (blocking reads, poll), and a fixture tree for traversal and symlinks. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <linux/videodev2.h>

#include "devfwd/devfwd.h"

struct fixture {
	char dir[64];
	int sock;      /* our end */
	int logpipe;   /* what the worker logged */
	pid_t pid;
	uint32_t next;
};

static void log_to_fd(void *userdata, int level, const char *fmt, ...)
{
	char buf[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (n > (int)sizeof(buf) - 2)
		n = (int)sizeof(buf) - 2;
	buf[n++] = '\n';
	(void)!write(*(int *)userdata, buf, (size_t)n);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char policy[1024], path[128];
	struct devfwd_policy *p = NULL;
	iovm_error err = {};
	int sv[2], lp[2];

	strcpy(f->dir, "/tmp/devfwd-worker-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(path, sizeof(path), "%s/allowed", f->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/allowed/fifo", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(path, sizeof(path), "%s/allowed/link", f->dir);
	assert_int_equal(symlink("/dev/full", path), 0);
	snprintf(path, sizeof(path), "%s/allowed/plain", f->dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	snprintf(path, sizeof(path), "%s/secret", f->dir);
	assert_int_equal(mkfifo(path, 0600), 0);
	snprintf(policy, sizeof(policy),
		 "[guest uid=%u]\nallow-path = /dev/zero\nallow-path = /dev/null\nallow-path = /dev/ptmx\n"
		 "allow-path = %s/allowed/*\nallow-ioctl = T:0x30\nallow-ioctl = V:8\n",
		 (unsigned)getuid(), f->dir);
	assert_int_equal(devfwd_policy_parse(policy, "fixture", &p, &err), 0);

	assert_int_equal(devfwd_pair(sv), 0);
	assert_int_equal(pipe2(lp, O_CLOEXEC | O_NONBLOCK), 0);
	f->pid = fork();
	assert_true(f->pid >= 0);
	if (f->pid == 0) {
		struct devfwd_peer me = { .kind = DEVFWD_PEER_UNIX, .uid = getuid() };
		struct devfwd_worker_cfg cfg = {
			.rules = devfwd_policy_match(p, &me),
			.log = log_to_fd,
			.log_userdata = &lp[1],
			.peer_name = "test",
		};
		close(sv[0]);
		close(lp[0]);
		_exit(devfwd_worker_run(sv[1], &cfg) < 0 ? 1 : 0);
	}
	close(sv[1]);
	close(lp[1]);
	devfwd_policy_free(p);
	f->sock = sv[0];
	f->logpipe = lp[0];
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[128];

	if (f->sock >= 0)
		close(f->sock);
	if (f->pid > 0)
		waitpid(f->pid, NULL, 0);
	close(f->logpipe);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
	(void)!system(cmd);
	free(f);
	return 0;
}

static int worker_status(struct fixture *f)
{
	int status;

	close(f->sock);
	f->sock = -1;
	assert_int_equal(waitpid(f->pid, &status, 0), f->pid);
	f->pid = 0;
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void logged(struct fixture *f, const char *needle)
{
	char buf[4096];
	ssize_t n = read(f->logpipe, buf, sizeof(buf) - 1);

	assert_true(n > 0);
	buf[n] = 0;
	if (!strstr(buf, needle))
		fail_msg("log \"%s\" lacks \"%s\"", buf, needle);
}

/* Sends m and returns the next message received (reply or notification). */
static void xfer(struct fixture *f, struct devfwd_msg *m, struct devfwd_msg *ret)
{
	assert_int_equal(devfwd_send(f->sock, m), 0);
	devfwd_msg_done(m);
	if (ret)
		assert_int_equal(devfwd_recv(f->sock, ret), 0);
}

static int32_t do_open(struct fixture *f, const char *path, uint32_t flags)
{
	struct devfwd_msg m, r;
	int32_t res;

	assert_int_equal(devfwd_encode_open(&m, ++f->next, flags, path), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.id, f->next);
	assert_true(r.hdr.flags & DEVFWD_F_REPLY);
	res = r.hdr.result;
	devfwd_msg_done(&r);
	return res;
}

static void test_read_write(void **state)
{
	struct fixture *f = *state;
	struct devfwd_msg m, r;
	uint8_t zeros[4096] = {};
	int32_t zero = do_open(f, "/dev/zero", DEVFWD_OPEN_READ);
	int32_t null = do_open(f, "/dev/null", DEVFWD_OPEN_WRITE);

	assert_true(zero > 0);
	assert_true(null > 0 && null != zero);
	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_READ, ++f->next, (uint32_t)zero, 0, 4096, false, NULL), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.result, 4096);
	assert_int_equal(r.hdr.len, 4096);
	assert_memory_equal(r.payload, zeros, 4096);
	devfwd_msg_done(&r);
	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_WRITE, ++f->next, (uint32_t)null, 0, 5, false, "hello"), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.result, 5);
	devfwd_msg_done(&r);
	/* Unknown handle is an error reply, not a dead stream. */
	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_READ, ++f->next, 63, 0, 1, false, NULL), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.result, -EBADF);
	devfwd_msg_done(&r);
	/* Write to a read-only file: the real errno comes back. */
	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_WRITE, ++f->next, (uint32_t)zero, 0, 1, false, "x"), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.result, -EBADF);
	devfwd_msg_done(&r);
	assert_int_equal(worker_status(f), 0);
}

static void test_data_isolation(void **state)
{
	struct fixture *f = *state;
	char path[160];

	assert_int_equal(do_open(f, "/dev/full", DEVFWD_OPEN_WRITE), -EACCES);
	logged(f, "open /dev/full refused: not in policy");
	snprintf(path, sizeof(path), "%s/allowed/../secret", f->dir);
	assert_int_equal(do_open(f, path, DEVFWD_OPEN_READ), -EACCES);
	snprintf(path, sizeof(path), "%s/allowed/link", f->dir);
	assert_int_equal(do_open(f, path, DEVFWD_OPEN_WRITE), -EACCES);
	logged(f, "path goes through a symlink");
	snprintf(path, sizeof(path), "%s/allowed/plain", f->dir);
	assert_int_equal(do_open(f, path, DEVFWD_OPEN_READ), -EACCES);
	logged(f, "not a character device or FIFO");
	snprintf(path, sizeof(path), "%s/allowed/fifo", f->dir);
	assert_true(do_open(f, path, DEVFWD_OPEN_READ) > 0);
	assert_int_equal(worker_status(f), 0);
}

static void test_ioctl(void **state)
{
	struct fixture *f = *state;
	struct devfwd_msg m, r;
	struct devfwd_ioctl_seg seg = { .len = 4, .dir = DEVFWD_SEG_OUT, .parent = DEVFWD_SEG_ROOT };
	uint32_t ptn;
	char pts[32];
	int32_t fh = do_open(f, "/dev/ptmx", DEVFWD_OPEN_READ | DEVFWD_OPEN_WRITE);

	assert_true(fh > 0);
	/* TIOCGPTN is _IOR('T', 0x30, unsigned int): the pty number comes back. */
	assert_int_equal(devfwd_encode_ioctl(&m, ++f->next, (uint32_t)fh, TIOCGPTN, 0, &seg, 1, NULL), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.result, 0);
	assert_int_equal(r.hdr.len, 4);
	memcpy(&ptn, r.payload, 4);
	devfwd_msg_done(&r);
	snprintf(pts, sizeof(pts), "/dev/pts/%u", ptn);
	assert_int_equal(access(pts, F_OK), 0);

	/* A layout that disagrees with the command is refused, not executed. */
	seg.len = 64;
	assert_int_equal(devfwd_encode_ioctl(&m, ++f->next, (uint32_t)fh, TIOCGPTN, 0, &seg, 1, NULL), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.result, -EINVAL);
	devfwd_msg_done(&r);
	logged(f, "argument layout does not match");

	/* A V4L2 USERPTR buffer (a guest address) is refused whatever the
	 * device, before the host kernel could read it, and the log says why. */
	{
		struct v4l2_requestbuffers rb = { .count = 2, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
						  .memory = V4L2_MEMORY_USERPTR };
		struct devfwd_ioctl_seg rs = { .len = sizeof(rb), .dir = DEVFWD_SEG_IN | DEVFWD_SEG_OUT,
					       .parent = DEVFWD_SEG_ROOT };
		const void *in[1] = { &rb };

		assert_int_equal(devfwd_encode_ioctl(&m, ++f->next, (uint32_t)fh, VIDIOC_REQBUFS, 0, &rs, 1, in), 0);
		xfer(f, &m, &r);
		assert_int_equal(r.hdr.result, -EINVAL);
		devfwd_msg_done(&r);
		logged(f, "refused: V4L2 USERPTR and DMABUF buffers are not forwarded (MMAP only)");
	}

	/* TIOCSPTLCK is not in the policy. */
	assert_int_equal(devfwd_encode_ioctl(&m, ++f->next, (uint32_t)fh, TIOCSPTLCK, 0, NULL, 0, NULL), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.result, -ENOTTY);
	devfwd_msg_done(&r);
	logged(f, "refused: not in policy");
	assert_int_equal(worker_status(f), 0);
}

/* A blocking read parks; a write on another handle is answered first; the
 * read completes when data arrives. Replies come out of request order. */
static void test_concurrent_and_poll(void **state)
{
	struct fixture *f = *state;
	struct devfwd_msg m, r;
	char path[160];
	int32_t rd, wr;
	uint32_t read_id, poll_id;

	snprintf(path, sizeof(path), "%s/allowed/fifo", f->dir);
	rd = do_open(f, path, DEVFWD_OPEN_READ);
	wr = do_open(f, path, DEVFWD_OPEN_WRITE);
	assert_true(rd > 0 && wr > 0);

	/* poll with notify on an empty FIFO: not ready, notification armed. */
	assert_int_equal(devfwd_encode_poll(&m, poll_id = ++f->next, (uint32_t)rd, POLLIN, true), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.id, poll_id);
	assert_int_equal(r.hdr.result, 0);
	devfwd_msg_done(&r);

	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_READ, read_id = ++f->next, (uint32_t)rd, 0, 100, false, NULL), 0);
	xfer(f, &m, NULL);
	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_WRITE, ++f->next, (uint32_t)wr, 0, 3, false, "abc"), 0);
	xfer(f, &m, NULL);

	/* Expect: the write's reply, the parked read's reply, and a POLL_NOTIFY,
	 * the last two in either order. */
	bool got_write = false, got_read = false, got_notify = false;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(devfwd_recv(f->sock, &r), 0);
		if (r.hdr.op == DEVFWD_OP_POLL_NOTIFY) {
			assert_int_equal(r.hdr.fh, (uint32_t)rd);
			assert_true(r.hdr.result & POLLIN);
			got_notify = true;
		} else if (r.hdr.id == read_id) {
			assert_true(got_write); /* the read could only finish after the write */
			assert_int_equal(r.hdr.result, 3);
			assert_memory_equal(r.payload, "abc", 3);
			got_read = true;
		} else {
			assert_int_equal(r.hdr.op, DEVFWD_OP_WRITE);
			assert_int_equal(r.hdr.result, 3);
			got_write = true;
		}
		devfwd_msg_done(&r);
	}
	assert_true(got_write && got_read && got_notify);

	/* A non-blocking read on an empty FIFO says EAGAIN at once. */
	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_READ, ++f->next, (uint32_t)rd, 0, 10, true, NULL), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.result, -EAGAIN);
	devfwd_msg_done(&r);

	/* Cancel a parked read; then park one and release its file. */
	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_READ, read_id = ++f->next, (uint32_t)rd, 0, 10, false, NULL), 0);
	xfer(f, &m, NULL);
	assert_int_equal(devfwd_encode_cancel(&m, ++f->next, (uint32_t)rd, read_id), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.id, read_id);
	assert_int_equal(r.hdr.result, -EINTR);
	devfwd_msg_done(&r);
	assert_int_equal(devfwd_recv(f->sock, &r), 0);
	assert_int_equal(r.hdr.op, DEVFWD_OP_CANCEL);
	assert_int_equal(r.hdr.result, 0);
	devfwd_msg_done(&r);

	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_READ, read_id = ++f->next, (uint32_t)rd, 0, 10, false, NULL), 0);
	xfer(f, &m, NULL);
	assert_int_equal(devfwd_encode_simple(&m, DEVFWD_OP_RELEASE, ++f->next, (uint32_t)rd), 0);
	xfer(f, &m, &r);
	assert_int_equal(r.hdr.id, read_id);
	assert_int_equal(r.hdr.result, -EBADF);
	devfwd_msg_done(&r);
	assert_int_equal(devfwd_recv(f->sock, &r), 0);
	assert_int_equal(r.hdr.op, DEVFWD_OP_RELEASE);
	assert_int_equal(r.hdr.result, 0);
	devfwd_msg_done(&r);
	assert_int_equal(worker_status(f), 0);
}

static void test_garbage_kills_stream(void **state)
{
	struct fixture *f = *state;
	struct devfwd_msg m;

	assert_true(do_open(f, "/dev/zero", DEVFWD_OPEN_READ) > 0);
	/* A well-framed READ whose payload lies about its size. */
	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_READ, ++f->next, 1, 0, 10, false, NULL), 0);
	((struct devfwd_rw_req *)m.payload)->nonblock = 7;
	xfer(f, &m, NULL);
	assert_int_equal(worker_status(f), 1);
	logged(f, "malformed message");
}

static void test_client_api(void **state)
{
	struct fixture *f = *state;
	struct devfwd_client *c = NULL;
	uint8_t buf[65536];
	uint32_t fh, ptn = 12345;

	assert_int_equal(devfwd_client_new(f->sock, &c), 0);
	f->sock = -1; /* the client owns it */
	assert_int_equal(devfwd_client_ping(c), 0);
	assert_int_equal(devfwd_client_open(c, "/dev/zero", DEVFWD_OPEN_READ, &fh), 0);
	memset(buf, 0xff, sizeof(buf));
	assert_int_equal(devfwd_client_read(c, fh, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	assert_int_equal(buf[0], 0);
	assert_int_equal(buf[sizeof(buf) - 1], 0);
	assert_int_equal(devfwd_client_release(c, fh), 0);
	assert_int_equal(devfwd_client_read(c, fh, buf, 1), -EBADF);
	assert_int_equal(devfwd_client_open(c, "/dev/ptmx", DEVFWD_OPEN_READ | DEVFWD_OPEN_WRITE, &fh), 0);
	assert_int_equal(devfwd_client_ioctl(c, fh, TIOCGPTN, &ptn), 0);
	assert_true(ptn != 12345);
	assert_int_equal(devfwd_client_poll(c, fh, POLLOUT, false), POLLOUT);
	assert_int_equal(devfwd_client_open(c, "/etc/passwd", DEVFWD_OPEN_READ, &fh), -EACCES);
	devfwd_client_free(c);
	assert_int_equal(waitpid(f->pid, NULL, 0), f->pid);
	f->pid = 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_read_write, setup, teardown),
		cmocka_unit_test_setup_teardown(test_data_isolation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ioctl, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_and_poll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_kills_stream, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_api, setup, teardown),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
