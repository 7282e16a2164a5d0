/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Kernel calls with a deadline: a forked worker per call (see deadline.h for
 * why a process and not a thread). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>

#include "shared/clock.h"
#include "iovm/deadline.h"
#include "shared/util.h"
#include "lib/host/sysfs.h"

struct iovm_sysop {
	pid_t pid;          /* > 0 until reaped */
	int fd;             /* read end of the result pipe */
	bool done;
	int result;
	uint32_t step;      /* step a batch stopped at */
	size_t len;
	char data[IOVM_SYSOP_READ_MAX + 1];
};

/* What the worker sends back in a single write (<= PIPE_BUF: atomic). */
struct reply {
	int32_t result;
	uint32_t step;
	uint32_t len;
	char data[IOVM_SYSOP_READ_MAX];
};

/* Children abandoned while stuck in the kernel, reaped when they get out. */
#define ABANDONED_MAX 256
static pthread_mutex_t abandoned_lock = PTHREAD_MUTEX_INITIALIZER;
static pid_t abandoned[ABANDONED_MAX];
static unsigned n_abandoned;

unsigned iovm_sysop_reap(void)
{
	unsigned i = 0, left;

	pthread_mutex_lock(&abandoned_lock);
	while (i < n_abandoned) {
		pid_t r = waitpid(abandoned[i], NULL, WNOHANG);

		if (r == abandoned[i] || (r < 0 && errno == ECHILD))
			abandoned[i] = abandoned[--n_abandoned];
		else
			i++;
	}
	left = n_abandoned;
	pthread_mutex_unlock(&abandoned_lock);
	return left;
}

static void abandon(pid_t pid)
{
	pthread_mutex_lock(&abandoned_lock);
	if (n_abandoned < ABANDONED_MAX)
		abandoned[n_abandoned++] = pid;
	/* else: the list is full of children stuck for good; this one stays a
	 * zombie once it gets out, which is the lesser evil than blocking. */
	pthread_mutex_unlock(&abandoned_lock);
}

void host_abandon_child(int pid)
{
	abandon(pid);
}

/* A worker may outlive its caller by minutes (stuck in the kernel): it must
 * hold none of the caller's descriptors, or a pipe or socket of the caller
 * would stay open that long (a shell's $(...) would wait for it). Keep only
 * the reply pipe, as fd 3, and /dev/null on 0-2. */
static int worker_fds(int out)
{
	int null;

	if (out != 3 && dup2(out, 3) < 0)
		return -1;
	null = open("/dev/null", O_RDWR | O_NOCTTY);
	if (null >= 0) {
		for (int i = 0; i < 3; i++)
			if (null != i)
				dup2(null, i);
		if (null > 3)
			close(null);
	}
	close_range(4, ~0u, 0);
	return 3;
}

static int32_t do_write(const char *path, const char *value)
{
	ssize_t k;
	int fd;

	/* O_TRUNC as a shell redirection does: a no-op on sysfs, and it lets
	 * fixture trees of plain files behave like attributes. */
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	k = write(fd, value, strlen(value));
	/* sysfs reports store() errors at write(); close cannot fail late. */
	close(fd);
	return k < 0 ? -errno : (int32_t)k;
}

/* Runs in the child: async-signal-safe calls only (strlen is). A read when
 * read_path is set, else the writes in order, stopping at the first error. */
static _Noreturn void worker(int out, const char *read_path, const iovm_sysop_step *steps,
			     size_t n)
{
	struct reply r = {};
	ssize_t k;
	int fd;

	out = worker_fds(out);
	if (out < 0)
		_exit(1);
	if (read_path) {
		fd = open(read_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		if (fd < 0) {
			r.result = -errno;
		} else {
			k = read(fd, r.data, sizeof(r.data));
			r.result = k < 0 ? -errno : (int32_t)k;
			r.len = k > 0 ? (uint32_t)k : 0;
			close(fd);
		}
	} else {
		for (r.step = 0; r.step < n; r.step++) {
			r.result = do_write(steps[r.step].path, steps[r.step].value);
			if (r.result < 0)
				break;
		}
		if (r.result >= 0 && n > 1)
			r.result = (int32_t)n;
	}
	k = write(out, &r, offsetof(struct reply, data) + r.len);
	_exit(k < 0 ? 1 : 0);
}

static int start(const char *read_path, const iovm_sysop_step *steps, size_t n,
		 iovm_sysop **ret)
{
	_cleanup_free_ iovm_sysop *op = NULL;
	int p[2];
	pid_t pid;

	if (!ret || (!read_path && (!steps || n == 0 || n > INT32_MAX)))
		return -EINVAL;
	if (read_path && !*read_path)
		return -EINVAL;
	for (size_t i = 0; !read_path && i < n; i++)
		if (!steps[i].path || !*steps[i].path || !steps[i].value)
			return -EINVAL;
	iovm_sysop_reap();
	op = calloc(1, sizeof(*op));
	if (!op)
		return -ENOMEM;
	if (pipe2(p, O_CLOEXEC) < 0)
		return negative_errno();
	pid = fork();
	if (pid < 0) {
		int r = negative_errno();

		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0) {
		close(p[0]);
		worker(p[1], read_path, steps, n);
	}
	close(p[1]);
	op->pid = pid;
	op->fd = p[0];
	*ret = TAKE_PTR(op);
	return 0;
}

int iovm_sysop_write(const char *path, const char *value, iovm_sysop **ret)
{
	iovm_sysop_step step = { .path = path, .value = value };

	if (!path || !value)
		return -EINVAL;
	return start(NULL, &step, 1, ret);
}

int iovm_sysop_write_many(const iovm_sysop_step *steps, size_t n, iovm_sysop **ret)
{
	return start(NULL, steps, n, ret);
}

size_t iovm_sysop_failed_step(const iovm_sysop *op)
{
	return op ? op->step : 0;
}

int iovm_sysop_read(const char *path, iovm_sysop **ret)
{
	if (!path)
		return -EINVAL;
	return start(path, NULL, 0, ret);
}

int iovm_sysop_fd(const iovm_sysop *op)
{
	return op ? op->fd : -EINVAL;
}

pid_t iovm_sysop_pid(const iovm_sysop *op)
{
	return op ? op->pid : -EINVAL;
}

static void reap_or_abandon(iovm_sysop *op)
{
	if (op->pid <= 0)
		return;
	/* The worker writes its reply then exits at once; if it has not quite
	 * exited yet, let the next reap pass collect it rather than wait. */
	if (waitpid(op->pid, NULL, WNOHANG) != op->pid)
		abandon(op->pid);
	op->pid = 0;
}

static int copy_out(const iovm_sysop *op, char *buf, size_t n)
{
	if (buf && n > 0) {
		size_t k = op->len < n - 1 ? op->len : n - 1;

		memcpy(buf, op->data, k);
		buf[k] = '\0';
	}
	return op->result;
}

int iovm_sysop_finish(iovm_sysop *op, char *ret_buf, size_t n)
{
	struct reply r;
	ssize_t k;

	if (!op)
		return -EINVAL;
	if (op->done)
		return copy_out(op, ret_buf, n);
	struct pollfd pfd = { .fd = op->fd, .events = POLLIN };
	if (poll(&pfd, 1, 0) == 0)
		return -EAGAIN;
	k = read(op->fd, &r, sizeof(r));
	if (k < 0 && (errno == EAGAIN || errno == EINTR))
		return -EAGAIN;
	if (k < (ssize_t)offsetof(struct reply, data) ||
	    r.len > sizeof(r.data) || (size_t)k != offsetof(struct reply, data) + r.len) {
		/* EOF without a reply: the worker was killed or could not write. */
		op->result = -ECHILD;
		op->len = 0;
	} else {
		op->result = r.result;
		op->step = r.step;
		op->len = r.len;
		memcpy(op->data, r.data, r.len);
	}
	op->data[op->len] = '\0';
	op->done = true;
	reap_or_abandon(op);
	return copy_out(op, ret_buf, n);
}

int iovm_sysop_wait(iovm_sysop *op, uint64_t timeout_usec, char *ret_buf, size_t n)
{
	uint64_t end;

	if (!op)
		return -EINVAL;
	end = now_usec() + timeout_usec;
	for (;;) {
		int r = iovm_sysop_finish(op, ret_buf, n);
		uint64_t now;

		if (r != -EAGAIN || op->done)
			return r;
		now = now_usec();
		if (now >= end)
			return -ETIMEDOUT;
		struct pollfd pfd = { .fd = op->fd, .events = POLLIN };
		uint64_t ms = (end - now + 999) / 1000;
		if (poll(&pfd, 1, ms > INT32_MAX ? INT32_MAX : (int)ms) < 0 && errno != EINTR)
			return negative_errno();
	}
}

iovm_sysop *iovm_sysop_free(iovm_sysop *op)
{
	if (!op)
		return NULL;
	if (op->pid > 0 && !op->done) {
		/* Takes effect when the kernel call returns; until then the
		 * child sits in the abandoned list, not in our way. */
		kill(op->pid, SIGKILL);
		reap_or_abandon(op);
	}
	closep(&op->fd);
	free(op);
	return NULL;
}

int iovm_sysfs_write_deadline(const char *path, const char *value, uint64_t timeout_usec)
{
	iovm_sysop *op = NULL;
	int r;

	r = iovm_sysop_write(path, value, &op);
	if (r < 0)
		return r;
	r = iovm_sysop_wait(op, timeout_usec, NULL, 0);
	iovm_sysop_free(op);
	return r;
}

int iovm_sysfs_read_deadline(const char *path, char *ret_buf, size_t n, uint64_t timeout_usec)
{
	iovm_sysop *op = NULL;
	int r;

	if (!ret_buf || n == 0)
		return -EINVAL;
	r = iovm_sysop_read(path, &op);
	if (r < 0)
		return r;
	r = iovm_sysop_wait(op, timeout_usec, ret_buf, n);
	iovm_sysop_free(op);
	return r;
}
