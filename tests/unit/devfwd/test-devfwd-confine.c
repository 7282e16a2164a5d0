/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The pure parts of worker confinement: a policy's ioctl rules as masked
 * compares (checked against the policy's own matcher over many commands),
 * the seccomp filters built from them (loaded into a child process, where a
 * listed command passes, an unlisted one gets EPERM, an unlisted system
 * call kills, and descriptors travel on the broker channel only), and the
 * open broker over a socketpair. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <linux/ioctl.h>

#include "devfwd/confine.h"
#include "devfwd/devfwd.h"
#include "shared/scm.h"

static const struct devfwd_rules *rules_of(struct devfwd_policy **p, const char *text)
{
	struct devfwd_peer peer = { .kind = DEVFWD_PEER_UNIX, .uid = 7 };
	iovm_error err = {};

	assert_int_equal(devfwd_policy_parse(text, "t", p, &err), 0);
	return devfwd_policy_match(*p, &peer);
}

static bool matches(const struct devfwd_ioctl_match *m, int n, uint32_t cmd)
{
	for (int i = 0; i < n; i++)
		if ((cmd & m[i].mask) == m[i].value)
			return true;
	return false;
}

static void test_matches(void **state)
{
	struct devfwd_policy *p = NULL;
	struct devfwd_ioctl_match m[DEVFWD_MAX_IOCTL_RULES];
	const struct devfwd_rules *r;

	r = rules_of(&p, "[guest uid=7]\nallow-ioctl = E:*\nallow-ioctl = T:202\nallow-ioctl = 0x80045430\n");
	assert_int_equal(devfwd_rules_ioctl_matches(r, m, DEVFWD_MAX_IOCTL_RULES), 3);
	assert_int_equal(m[0].mask, 0xff00);
	assert_int_equal(m[0].value, 'E' << 8);
	assert_int_equal(m[1].mask, 0xffff);
	assert_int_equal(m[1].value, ('T' << 8) | 202);
	assert_int_equal(m[2].mask, 0xffffffff);
	assert_int_equal(m[2].value, 0x80045430);
	assert_int_equal(devfwd_rules_ioctl_matches(r, m, 2), -E2BIG);
	devfwd_policy_free(p);

	/* "*" anywhere is one match that takes everything. */
	r = rules_of(&p, "[guest uid=7]\nallow-ioctl = E:*\nallow-ioctl = *\n");
	assert_int_equal(devfwd_rules_ioctl_matches(r, m, DEVFWD_MAX_IOCTL_RULES), 1);
	assert_int_equal(m[0].mask, 0);
	devfwd_policy_free(p);

	r = rules_of(&p, "[guest uid=7]\nallow-path = /dev/zero\n");
	assert_int_equal(devfwd_rules_ioctl_matches(r, m, DEVFWD_MAX_IOCTL_RULES), 0);
	devfwd_policy_free(p);
	assert_int_equal(devfwd_rules_ioctl_matches(NULL, m, DEVFWD_MAX_IOCTL_RULES), 0);
	assert_int_equal(devfwd_rules_ioctl_matches(NULL, NULL, 0), -EINVAL);
}

/* The compares the filter is built from say yes exactly where the worker's
 * own check does, over every type and direction and many numbers and sizes. */
static void test_matches_agree(void **state)
{
	static const char *const policies[] = {
		"[guest uid=7]\nallow-ioctl = E:*\nallow-ioctl = T:202\nallow-ioctl = 0x80045430\n",
		"[guest uid=7]\nallow-ioctl = 0x54:*\nallow-ioctl = 0x400454ca\nallow-ioctl = A:0x41\n",
		"[guest uid=7]\nallow-ioctl = *\n",
		"[guest uid=7]\nallow-path = /dev/zero\n",
	};
	struct devfwd_ioctl_match m[DEVFWD_MAX_IOCTL_RULES];
	unsigned seed = 1;

	for (size_t k = 0; k < sizeof(policies) / sizeof(policies[0]); k++) {
		struct devfwd_policy *p = NULL;
		const struct devfwd_rules *r = rules_of(&p, policies[k]);
		int n = devfwd_rules_ioctl_matches(r, m, DEVFWD_MAX_IOCTL_RULES);
		unsigned yes = 0;

		assert_true(n >= 0);
		for (uint32_t dir = 0; dir < 4; dir++)
			for (uint32_t type = 0; type < 256; type++)
				for (uint32_t nr = 0; nr < 256; nr += 5) {
					uint32_t size = (nr * 7) & 0x3fff;
					uint32_t cmd = (uint32_t)_IOC(dir, type, nr, size);
					bool want = devfwd_rules_check_ioctl(r, cmd) == 0;

					assert_int_equal(matches(m, n, cmd), want);
					yes += want;
				}
		for (int i = 0; i < 100000; i++) {
			uint32_t cmd = (uint32_t)rand_r(&seed) ^ ((uint32_t)rand_r(&seed) << 16);

			assert_int_equal(matches(m, n, cmd), devfwd_rules_check_ioctl(r, cmd) == 0);
		}
		/* The exact commands of the first two policies are in the sweep's
		 * complement; check them directly. */
		if (k == 0) {
			assert_true(matches(m, n, 0x80045430));
			assert_false(matches(m, n, 0x80045431));
			assert_true(matches(m, n, _IOW('T', 202, int)));
			assert_false(matches(m, n, _IOW('T', 203, int)));
		}
		if (k == 1)
			assert_true(matches(m, n, 0x400454ca));
		if (k == 3)
			assert_int_equal(yes, 0);
		devfwd_policy_free(p);
	}
}

static int msg_fds[2] = { -1, -1 }; /* a socketpair; [0] is the filter's msg_fd */

/* Runs fn in a child that has loaded the filters for text; returns its
 * wait status. */
static int in_filtered_child(const char *text, int (*fn)(void))
{
	struct devfwd_policy *p = NULL;
	const struct devfwd_rules *r = rules_of(&p, text);
	int status;
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || devfwd_seccomp_load(r, msg_fds[0]) < 0)
			_exit(100);
		_exit(fn());
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	devfwd_policy_free(p);
	return status;
}

static int dev_null;

/* An ioctl that passes the filter reaches /dev/null, which says ENOTTY. */
static int try_ioctl(unsigned long cmd)
{
	long r = syscall(SYS_ioctl, dev_null, cmd, 0);

	return r < 0 ? errno : 0;
}

static int ioctls_typed(void)
{
	if (try_ioctl(_IOR('E', 0x01, int)) != ENOTTY)
		return 1; /* type wildcard E:* */
	if (try_ioctl(_IOW('T', 202, int)) != ENOTTY || try_ioctl(_IOR('T', 202, long)) != ENOTTY)
		return 2; /* type and number, any size or direction */
	if (try_ioctl(0x80045430) != ENOTTY)
		return 3; /* exact */
	if (try_ioctl(_IOW('T', 203, int)) != EPERM || try_ioctl(0x80045431) != EPERM)
		return 4; /* not in the rules: the filter answers */
	if (try_ioctl(_IOR('U', 1, int)) != EPERM)
		return 5;
	/* The kernel takes the command as an unsigned int; so does the filter. */
	if (try_ioctl(0x80045430UL | (1UL << 32)) != ENOTTY)
		return 6;
	if (try_ioctl(0x80045431UL | (1UL << 32)) != EPERM)
		return 7;
	return 0;
}

static int ioctls_none(void)
{
	return try_ioctl(_IOR('E', 0x01, int)) == EPERM ? 0 : 1;
}

static int ioctls_all(void)
{
	return try_ioctl(_IOR('Q', 0x77, int)) == ENOTTY && try_ioctl(0x12345678) == ENOTTY ? 0 : 1;
}

static int does_socket(void)
{
	return socket(AF_INET, SOCK_STREAM, 0) >= 0 ? 10 : 11;
}

static int does_exec(void)
{
	char *const argv[] = { "true", NULL };

	execve("/bin/true", argv, NULL);
	return 12;
}

static int does_exec_memory(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? 13 : 14;
}

static int does_open(void)
{
	return open("/etc/passwd", O_RDONLY) >= 0 ? 15 : 16;
}

static int does_allowed(void)
{
	/* What a worker does all day goes through. */
	void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	int fl = fcntl(dev_null, F_GETFL);

	if (p == MAP_FAILED || fl < 0 || fcntl(dev_null, F_SETFL, fl | O_NONBLOCK) < 0)
		return 20;
	if (write(dev_null, "x", 1) != 1 || munmap(p, 1 << 20) < 0)
		return 21;
	/* F_SETOWN could aim SIGIO at another process: refused by killing. */
	return 0;
}

/* A descriptor over the socket the filter names passes; over any other it
 * kills (a worker must not hand a device fd to its stream's peer). */
static int send_fd(int sock)
{
	char byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	scm_fd_buf b;

	scm_put_fd(&mh, &b, dev_null);
	return sendmsg(sock, &mh, 0) == 1 ? 0 : 30;
}

static int passes_fd_on_broker(void)
{
	return send_fd(msg_fds[0]);
}

static int passes_fd_elsewhere(void)
{
	return send_fd(msg_fds[1]) == 0 ? 31 : 32;
}

static void test_filter(void **state)
{
	static const char *const typed =
		"[guest uid=7]\nallow-ioctl = E:*\nallow-ioctl = T:202\nallow-ioctl = 0x80045430\n";
	int st;

	dev_null = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(dev_null >= 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, msg_fds), 0);
	st = in_filtered_child(typed, ioctls_typed);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	st = in_filtered_child("[guest uid=7]\n", ioctls_none);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	st = in_filtered_child("[guest uid=7]\nallow-ioctl = *\n", ioctls_all);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	st = in_filtered_child(typed, does_allowed);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	/* Outside the list: the process is killed, it never sees an error. */
	st = in_filtered_child(typed, does_socket);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
	st = in_filtered_child(typed, does_exec);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
	st = in_filtered_child(typed, does_exec_memory);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
	st = in_filtered_child(typed, does_open);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
	st = in_filtered_child(typed, passes_fd_on_broker);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	st = in_filtered_child(typed, passes_fd_elsewhere);
	assert_true(WIFSIGNALED(st));
	assert_int_equal(WTERMSIG(st), SIGSYS);
	close(msg_fds[0]);
	close(msg_fds[1]);
	close(dev_null);
}

static void test_export(void **state)
{
	struct devfwd_policy *p = NULL;
	const struct devfwd_rules *r = rules_of(&p, "[guest uid=7]\nallow-ioctl = E:*\n");
	char path[] = "/tmp/devfwd-confine-XXXXXX", buf[65536];
	int fd = mkstemp(path);
	ssize_t n;

	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(devfwd_seccomp_export(r, 5, fd), 0);
	n = pread(fd, buf, sizeof(buf) - 1, 0);
	assert_true(n > 0);
	buf[n] = 0;
	assert_non_null(strstr(buf, "KILL_PROCESS"));
	assert_non_null(strstr(buf, "ERRNO(1)"));
	assert_non_null(strstr(buf, "\"ioctl\""));
	assert_null(strstr(buf, "\"execve\""));
	close(fd);
	devfwd_policy_free(p);
}

/* The broker over a socketpair: the child asks, the parent answers under
 * the rules and passes the fd. */
static void test_broker(void **state)
{
	struct devfwd_policy *p = NULL;
	const struct devfwd_rules *r = rules_of(&p, "[guest uid=7]\nallow-path = /dev/null\nallow-path = /etc/*\n");
	struct devfwd_broker_req req;
	const char *why;
	int sp[2], res, st;
	pid_t pid;

	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct stat s;
		int fd = devfwd_broker_open(sp[1], "/dev/null", DEVFWD_OPEN_READ | DEVFWD_OPEN_WRITE);

		if (fd < 0 || fstat(fd, &s) < 0 || !S_ISCHR(s.st_mode) || write(fd, "x", 1) != 1)
			_exit(1);
		if (devfwd_broker_open(sp[1], "/dev/zero", DEVFWD_OPEN_READ) != -EACCES)
			_exit(2);
		if (devfwd_broker_open(sp[1], "/etc/passwd", DEVFWD_OPEN_READ) != -EACCES)
			_exit(3);
		_exit(0);
	}
	close(sp[1]);
	for (int i = 0; i < 3; i++) {
		fd_set set;

		FD_ZERO(&set);
		FD_SET(sp[0], &set);
		assert_int_equal(select(sp[0] + 1, &set, NULL, NULL, NULL), 1);
		assert_int_equal(devfwd_broker_serve(sp[0], r, &req, &res, &why), 0);
		if (i == 0) {
			assert_string_equal(req.path, "/dev/null");
			assert_true(res >= 0);
			assert_null(why);
		} else if (i == 1) {
			assert_int_equal(res, -EACCES);
			assert_string_equal(why, "not in policy");
		} else {
			assert_string_equal(req.path, "/etc/passwd");
			assert_int_equal(res, -EACCES);
			assert_string_equal(why, "not a character device or FIFO");
		}
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(devfwd_broker_serve(sp[0], r, &req, &res, &why), -ECONNRESET);
	close(sp[0]);

	/* A malformed request: short, or a path without its terminator. */
	assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
	assert_int_equal(send(sp[1], "short", 5, 0), 5);
	assert_int_equal(devfwd_broker_serve(sp[0], r, &req, &res, &why), -EBADMSG);
	memset(&req, 'a', sizeof(req));
	assert_int_equal(send(sp[1], &req, sizeof(req), 0), (ssize_t)sizeof(req));
	assert_int_equal(devfwd_broker_serve(sp[0], r, &req, &res, &why), -EBADMSG);
	assert_int_equal(devfwd_broker_serve(sp[0], r, &req, &res, &why), -EAGAIN);
	close(sp[0]);
	close(sp[1]);
	devfwd_policy_free(p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_matches),
		cmocka_unit_test(test_matches_agree),
		cmocka_unit_test(test_filter),
		cmocka_unit_test(test_export),
		cmocka_unit_test(test_broker),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
