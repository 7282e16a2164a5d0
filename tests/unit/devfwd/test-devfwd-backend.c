/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The devfwd-backend binary over a real UNIX socket: one worker per stream,
 * confined (seccomp, no capabilities, another user when run as root), and a
 * stream that sends garbage, hangs up mid-request or whose worker is killed
 * never disturbs another guest's stream. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "devfwd/devfwd.h"

static char dir[64], addr[128], logpath[128];
static pid_t backend;

static int start(void **state)
{
	char policy[128], text[256], ready[8] = {};
	int pp[2], fd;

	strcpy(dir, "/tmp/devfwd-backend-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(policy, sizeof(policy), "%s/policy.conf", dir);
	snprintf(addr, sizeof(addr), "unix:%s/sock", dir);
	snprintf(logpath, sizeof(logpath), "%s/backend.log", dir);
	snprintf(text, sizeof(text), "[guest uid=%u]\nallow-path = /dev/zero\n", (unsigned)getuid());
	fd = open(policy, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(pipe(pp), 0);
	backend = fork();
	assert_true(backend >= 0);
	if (backend == 0) {
		char rfd[16];
		int log = open(logpath, O_CREAT | O_WRONLY | O_TRUNC, 0600);

		dup2(log, 2);
		close(pp[0]);
		snprintf(rfd, sizeof(rfd), "%d", pp[1]);
		execl(DEVFWD_BACKEND, "devfwd-backend", "--policy", policy, "--listen", addr, "--ready-fd", rfd, "-v",
		      (char *)NULL);
		_exit(127);
	}
	close(pp[1]);
	/* Wait for the backend to say it listens (or to die). */
	assert_int_equal(read(pp[0], ready, sizeof(ready) - 1), 6);
	assert_string_equal(ready, "READY\n");
	close(pp[0]);
	return 0;
}

static int stop(void **state)
{
	char cmd[128];

	kill(backend, SIGTERM);
	waitpid(backend, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
	return 0;
}

static struct devfwd_client *connect_client(void)
{
	struct devfwd_client *c = NULL;
	int fd;

	assert_int_equal(devfwd_connect(addr, &fd, NULL), 0);
	assert_int_equal(devfwd_client_new(fd, &c), 0);
	return c;
}

static void read_zero(struct devfwd_client *c, uint32_t fh)
{
	uint8_t buf[4096];

	memset(buf, 1, sizeof(buf));
	assert_int_equal(devfwd_client_read(c, fh, buf, sizeof(buf)), (ssize_t)sizeof(buf));
	assert_int_equal(buf[0] | buf[4095], 0);
}

/* The backend's children: its workers. */
static int workers(pid_t *out, int max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	int n = 0;

	assert_non_null(d);
	while ((e = readdir(d)) && n < max) {
		char path[288], buf[512], *p;
		FILE *f;
		int ppid;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && sscanf(p + 2, "%*c %d", &ppid) == 1 &&
		    ppid == backend)
			out[n++] = atoi(e->d_name);
		fclose(f);
	}
	closedir(d);
	return n;
}

static bool log_has(const char *needle)
{
	char buf[16384];
	int fd = open(logpath, O_RDONLY);
	ssize_t n = read(fd, buf, sizeof(buf) - 1);

	close(fd);
	buf[n > 0 ? n : 0] = 0;
	return strstr(buf, needle) != NULL;
}

/* The backend logs a worker's death when it reaps it, which may be just after
 * the client saw the stream end: poll the log with a deadline. */
static bool log_has_soon(const char *needle)
{
	for (int i = 0; i < 500; i++) {
		struct timespec ts = { 0, 10 * 1000 * 1000 };

		if (log_has(needle))
			return true;
		nanosleep(&ts, NULL);
	}
	return false;
}

/* A worker as the kernel reports it: confined before it served a byte. */
static void check_confined(pid_t pid)
{
	char path[64], buf[4096];
	int fd;
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	assert_true(n > 0);
	buf[n] = 0;
	assert_non_null(strstr(buf, "\nSeccomp:\t2\n"));
	assert_non_null(strstr(buf, "\nSeccomp_filters:\t2\n"));
	assert_non_null(strstr(buf, "\nNoNewPrivs:\t1\n"));
	assert_non_null(strstr(buf, "\nCapEff:\t0000000000000000\n"));
	assert_non_null(strstr(buf, "\nCapPrm:\t0000000000000000\n"));
	if (geteuid() == 0) {
		/* Run as root, the backend switches its workers to another user
		 * and empties their bounding set. */
		assert_null(strstr(buf, "\nUid:\t0\t"));
		assert_non_null(strstr(buf, "\nCapBnd:\t0000000000000000\n"));
	}
}

static void test_isolation(void **state)
{
	struct devfwd_client *a = connect_client(), *c;
	uint32_t fa, fc;
	pid_t before[64], after[64], victim = 0;
	int nb, na, fd;
	struct devfwd_msg m;

	assert_int_equal(devfwd_client_open(a, "/dev/zero", DEVFWD_OPEN_READ, &fa), 0);
	read_zero(a, fa);
	assert_int_equal(devfwd_client_open(a, "/dev/full", DEVFWD_OPEN_READ, &fc), -EACCES);

	/* Guest B sends garbage: its stream ends, A goes on. */
	assert_int_equal(devfwd_connect(addr, &fd, NULL), 0);
	assert_int_equal(write(fd, "this is not a devfwd header....", 32), 32);
	assert_int_equal(devfwd_recv(fd, &m), -ECONNRESET);
	close(fd);
	read_zero(a, fa);

	/* Guest D hangs up in the middle of a request. */
	assert_int_equal(devfwd_connect(addr, &fd, NULL), 0);
	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_WRITE, 1, 1, 0, 1000, false, (uint8_t[1000]){}), 0);
	assert_int_equal(write(fd, &m.hdr, sizeof(m.hdr)), sizeof(m.hdr));
	assert_int_equal(write(fd, m.payload, 100), 100);
	devfwd_msg_done(&m);
	close(fd);
	read_zero(a, fa);

	/* Guest C's worker crashes (SIGKILL): C sees EOF, A goes on. */
	nb = workers(before, 64);
	c = connect_client();
	assert_int_equal(devfwd_client_open(c, "/dev/zero", DEVFWD_OPEN_READ, &fc), 0);
	na = workers(after, 64);
	for (int i = 0; i < na; i++) {
		bool old = false;
		for (int j = 0; j < nb; j++)
			old |= after[i] == before[j];
		if (!old)
			victim = after[i];
	}
	assert_true(victim > 0);
	check_confined(victim);
	assert_int_equal(kill(victim, SIGKILL), 0);
	assert_int_equal(devfwd_client_read(c, fc, (uint8_t[8]){}, 8), -ECONNRESET);
	devfwd_client_free(c);
	read_zero(a, fa);

	/* A fresh guest is still served, and everything was logged. */
	c = connect_client();
	assert_int_equal(devfwd_client_open(c, "/dev/zero", DEVFWD_OPEN_READ, &fc), 0);
	read_zero(c, fc);
	devfwd_client_free(c);
	read_zero(a, fa);
	devfwd_client_free(a);
	assert_true(log_has("open /dev/full refused: not in policy"));
	assert_true(log_has("stream closed: malformed message"));
	assert_true(log_has_soon("killed by signal 9"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_isolation, start, stop),
	};
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
