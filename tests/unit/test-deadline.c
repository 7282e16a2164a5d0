/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The deadline workers, on regular files and on FIFOs, whose open(2) blocks
 * until the other end appears: a stand-in for a sysfs write the kernel does
 * not return from. (A real uninterruptible sleep is tested in the lab.) */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "iovm/deadline.h"

static char dir[] = "/tmp/iovm-deadline-XXXXXX";

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 ? 0 : -1;
}

static const char *path(const char *name)
{
	static char buf[256];

	snprintf(buf, sizeof(buf), "%s/%s", dir, name);
	return buf;
}

static void test_write_read_regular(void **state)
{
	char buf[64], p[256];

	snprintf(p, sizeof(p), "%s", path("attr"));
	close(open(p, O_CREAT | O_WRONLY | O_TRUNC, 0644));
	assert_int_equal(iovm_sysfs_write_deadline(p, "vfio-pci", 2000000), 8);
	assert_int_equal(iovm_sysfs_read_deadline(p, buf, sizeof(buf), 2000000), 8);
	assert_string_equal(buf, "vfio-pci");
	/* A short buffer truncates but still NUL-terminates. */
	assert_int_equal(iovm_sysfs_read_deadline(p, buf, 4, 2000000), 8);
	assert_string_equal(buf, "vfi");
}

static void test_errors_come_back(void **state)
{
	char buf[8];

	assert_int_equal(iovm_sysfs_write_deadline(path("missing/x"), "1", 2000000), -ENOENT);
	assert_int_equal(iovm_sysfs_read_deadline(path("missing"), buf, sizeof(buf), 2000000), -ENOENT);
	assert_int_equal(iovm_sysfs_write_deadline(dir, "1", 2000000), -EISDIR);
	/* The write error itself (sysfs store() errors arrive here). */
	assert_int_equal(iovm_sysfs_write_deadline("/dev/full", "1", 2000000), -ENOSPC);
	assert_int_equal(iovm_sysfs_write_deadline(NULL, "1", 1), -EINVAL);
	assert_int_equal(iovm_sysfs_write_deadline("/dev/null", NULL, 1), -EINVAL);
	assert_int_equal(iovm_sysfs_read_deadline("/dev/null", NULL, 0, 1), -EINVAL);
}

static void test_timeout_then_abandon(void **state)
{
	char p[256];
	iovm_sysop *op = NULL;
	pid_t pid;
	int r;

	snprintf(p, sizeof(p), "%s", path("fifo-timeout"));
	assert_int_equal(mkfifo(p, 0600), 0);
	/* Nobody opens the read end: the worker's open() never returns. */
	assert_int_equal(iovm_sysfs_write_deadline(p, "1", 50000), -ETIMEDOUT);

	assert_int_equal(iovm_sysop_write(p, "1", &op), 0);
	pid = iovm_sysop_pid(op);
	assert_true(pid > 0);
	assert_int_equal(iovm_sysop_wait(op, 20000, NULL, 0), -ETIMEDOUT);
	/* Still valid after a timeout, still not finished. */
	assert_int_equal(iovm_sysop_finish(op, NULL, 0), -EAGAIN);
	iovm_sysop_free(op);
	/* The child was killed (FIFO open is interruptible) and gets reaped;
	 * poll the condition instead of sleeping a fixed time. */
	for (int i = 0; i < 1000 && (r = iovm_sysop_reap()) > 0; i++)
		poll(NULL, 0, 5);
	assert_int_equal(iovm_sysop_reap(), 0);
	assert_int_equal(kill(pid, 0), -1);
	assert_int_equal(errno, ESRCH);
}

static void test_async_fd_readable_on_completion(void **state)
{
	char p[256], got[16] = "";
	iovm_sysop *op = NULL;
	struct pollfd pfd;
	int fd;
	ssize_t k;

	snprintf(p, sizeof(p), "%s", path("fifo-async"));
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(iovm_sysop_write(p, "3\n", &op), 0);
	pfd = (struct pollfd){ .fd = iovm_sysop_fd(op), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 0), 0);
	assert_int_equal(iovm_sysop_finish(op, NULL, 0), -EAGAIN);

	/* Play the kernel: take the write. */
	fd = open(p, O_RDONLY);
	assert_true(fd >= 0);
	k = read(fd, got, sizeof(got) - 1);
	assert_int_equal(k, 2);
	assert_string_equal(got, "3\n");
	close(fd);

	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(iovm_sysop_finish(op, NULL, 0), 2);
	/* Finishing twice gives the same answer. */
	assert_int_equal(iovm_sysop_finish(op, NULL, 0), 2);
	iovm_sysop_free(op);
}

static void test_async_read(void **state)
{
	char p[256], buf[32];
	iovm_sysop *op = NULL;
	int fd;

	snprintf(p, sizeof(p), "%s", path("fifo-read"));
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(iovm_sysop_read(p, &op), 0);
	fd = open(p, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "7\n", 2), 2);
	close(fd);
	assert_int_equal(iovm_sysop_wait(op, 10000000, buf, sizeof(buf)), 2);
	assert_string_equal(buf, "7\n");
	iovm_sysop_free(op);
	assert_null(iovm_sysop_free(NULL));
	assert_int_equal(iovm_sysop_fd(NULL), -EINVAL);
}

static void test_killed_worker_reports_echild(void **state)
{
	char p[256];
	iovm_sysop *op = NULL;
	struct pollfd pfd;

	snprintf(p, sizeof(p), "%s", path("fifo-kill"));
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(iovm_sysop_write(p, "1", &op), 0);
	/* Someone else kills the worker: the op ends, with no result. */
	assert_int_equal(kill(iovm_sysop_pid(op), SIGKILL), 0);
	pfd = (struct pollfd){ .fd = iovm_sysop_fd(op), .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(iovm_sysop_finish(op, NULL, 0), -ECHILD);
	iovm_sysop_free(op);
}

static void test_worker_holds_no_caller_fds(void **state)
{
	char p[256], b;
	iovm_sysop *op = NULL;
	struct pollfd pfd;
	int pp[2];

	snprintf(p, sizeof(p), "%s", path("fifo-fds"));
	assert_int_equal(mkfifo(p, 0600), 0);
	/* Not O_CLOEXEC on purpose: fork() alone would copy it to the worker. */
	assert_int_equal(pipe(pp), 0);
	assert_int_equal(iovm_sysop_write(p, "1", &op), 0);
	close(pp[1]);
	/* The worker is stuck; the pipe must still be at EOF, i.e. no other
	 * process holds its write end. */
	pfd = (struct pollfd){ .fd = pp[0], .events = POLLIN };
	assert_int_equal(poll(&pfd, 1, 10000), 1);
	assert_int_equal(read(pp[0], &b, 1), 0);
	assert_int_equal(iovm_sysop_finish(op, NULL, 0), -EAGAIN);
	close(pp[0]);
	iovm_sysop_free(op);
}

static void test_write_many(void **state)
{
	char a[256], b[256], buf[32];
	iovm_sysop *op = NULL;

	snprintf(a, sizeof(a), "%s", path("many-a"));
	snprintf(b, sizeof(b), "%s", path("many-b"));
	close(open(a, O_CREAT | O_WRONLY | O_TRUNC, 0644));
	close(open(b, O_CREAT | O_WRONLY | O_TRUNC, 0644));
	iovm_sysop_step ok[] = { { a, "first" }, { b, "second" }, { a, "third" } };
	assert_int_equal(iovm_sysop_write_many(ok, 3, &op), 0);
	assert_int_equal(iovm_sysop_wait(op, 5000000, NULL, 0), 3);
	iovm_sysop_free(op);
	assert_int_equal(iovm_sysfs_read_deadline(a, buf, sizeof(buf), 2000000), 5);
	assert_string_equal(buf, "third");
	assert_int_equal(iovm_sysfs_read_deadline(b, buf, sizeof(buf), 2000000), 6);

	/* Stops at the first failure and says which step it was. */
	iovm_sysop_step bad[] = { { a, "one" }, { "/dev/full", "x" }, { b, "never" } };
	assert_int_equal(iovm_sysop_write_many(bad, 3, &op), 0);
	assert_int_equal(iovm_sysop_wait(op, 5000000, NULL, 0), -ENOSPC);
	assert_int_equal(iovm_sysop_failed_step(op), 1);
	iovm_sysop_free(op);
	assert_int_equal(iovm_sysfs_read_deadline(b, buf, sizeof(buf), 2000000), 6);
	assert_string_equal(buf, "second");

	iovm_sysop_step nul[] = { { a, NULL } };
	assert_int_equal(iovm_sysop_write_many(nul, 1, &op), -EINVAL);
	assert_int_equal(iovm_sysop_write_many(ok, 0, &op), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_read_regular),
		cmocka_unit_test(test_errors_come_back),
		cmocka_unit_test(test_timeout_then_abandon),
		cmocka_unit_test(test_async_fd_readable_on_completion),
		cmocka_unit_test(test_async_read),
		cmocka_unit_test(test_killed_worker_reports_echild),
		cmocka_unit_test(test_worker_holds_no_caller_fds),
		cmocka_unit_test(test_write_many),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
