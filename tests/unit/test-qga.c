/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest-agent client (qga.c) against a scripted fake agent on a UNIX
 * socket: the sync handshake (stale bytes before the 0xFF delimiter are
 * dropped), the counters of the interface with a given MAC, and every error:
 * no such MAC, no statistics, an error reply, garbage, an oversized reply,
 * a silent agent (deadline), an agent another client holds (deadline, not
 * a hang), cancelling from another thread, no agent at all. The fake is
 * tests/unit/fake-qga.h; a real qemu-ga in a guest is covered by
 * tests/lab/33-iovmd-counters-rebalance.sh.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "iovm/qga.h"

#include "fake-qga.h"

static int run(enum mode mode, const char *mac, int timeout_ms, uint64_t *bytes, iovm_error *err)
{
	struct fake f;
	int r;

	fake_start(&f, mode);
	r = iovm_qga_if_bytes(f.path, mac, timeout_ms, bytes, err);
	fake_stop(&f);
	return r;
}

static void test_counters(void **state)
{
	iovm_error err = {};
	uint64_t b = 0;

	assert_int_equal(run(OK, "02:78:0a:bc:00:11", 5000, &b, &err), 0);
	assert_int_equal(b, 1234);
}

/* Several MACs, one question: the fake agent accepts one connection and
 * answers one guest-network-get-interfaces, so a second question would
 * fail. */
static void test_many_one_question(void **state)
{
	const char *macs[] = { "02:78:0a:bc:00:11", "02:78:00:00:00:12", "02:78:00:00:00:99",
			       "00:00:00:00:00:00" };
	uint64_t b[4] = { 9, 9, 9, 9 };
	int st[4] = { 1, 1, 1, 1 };
	iovm_error err = {};
	struct fake f;

	fake_start(&f, OK);
	assert_int_equal(iovm_qga_if_bytes_many(f.path, macs, 4, 5000, b, st, &err), 0);
	fake_stop(&f);
	assert_int_equal(st[0], 0);
	assert_int_equal(b[0], 1234);
	assert_int_equal(st[1], -ENODATA);
	assert_int_equal(st[2], -ENOENT);
	assert_int_equal(b[2], 0);
	assert_int_equal(st[3], 0);
	assert_int_equal(b[3], 10);
}

/* The agent as a whole failing is the call's error, not a status. */
static void test_many_agent_error(void **state)
{
	const char *macs[] = { "02:78:0a:bc:00:11" };
	uint64_t b[1];
	int st[1];
	iovm_error err = {};
	struct fake f;

	fake_start(&f, ERROR_REPLY);
	assert_int_equal(iovm_qga_if_bytes_many(f.path, macs, 1, 5000, b, st, &err), -EREMOTEIO);
	fake_stop(&f);
	assert_non_null(strstr(err.msg, "no network"));
}

static void test_mac_case(void **state)
{
	iovm_error err = {};
	uint64_t b = 0;

	assert_int_equal(run(OK, "02:78:0A:BC:00:11", 5000, &b, &err), 0);
	assert_int_equal(b, 1234);
}

static void test_stale_replies_dropped(void **state)
{
	iovm_error err = {};
	uint64_t b = 0;

	assert_int_equal(run(STALE, "02:78:0a:bc:00:11", 5000, &b, &err), 0);
	assert_int_equal(b, 1234);
}

static void test_no_such_mac(void **state)
{
	iovm_error err = {};
	uint64_t b = 7;

	assert_int_equal(run(OK, "02:78:00:00:00:99", 5000, &b, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "no interface with MAC 02:78:00:00:00:99"));
	assert_int_equal(b, 7);
}

static void test_no_statistics(void **state)
{
	iovm_error err = {};
	uint64_t b = 7;

	assert_int_equal(run(OK, "02:78:00:00:00:12", 5000, &b, &err), -ENODATA);
	assert_non_null(strstr(err.msg, "no statistics"));
}

static void test_error_reply(void **state)
{
	iovm_error err = {};
	uint64_t b;

	assert_int_equal(run(ERROR_REPLY, "02:78:0a:bc:00:11", 5000, &b, &err), -EREMOTEIO);
	assert_non_null(strstr(err.msg, "no network"));
}

static void test_garbage(void **state)
{
	iovm_error err = {};
	uint64_t b;

	assert_int_equal(run(GARBAGE, "02:78:0a:bc:00:11", 5000, &b, &err), -EPROTO);
	assert_non_null(strstr(err.msg, "malformed"));
}

static void test_oversized(void **state)
{
	iovm_error err = {};
	uint64_t b;

	assert_int_equal(run(OVERSIZED, "02:78:00:00:00:11", 10000, &b, &err), -EPROTO);
}

static void test_silent_agent_times_out(void **state)
{
	iovm_error err = {};
	uint64_t b;

	assert_int_equal(run(SILENT, "02:78:00:00:00:11", 300, &b, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "timed out"));
}

/* Cancelled before the call: the agent is silent, so only the cancel fd
 * can end the call before its minute is up; it must say -ECANCELED. */
static void test_cancel_before(void **state)
{
	const char *macs[] = { "02:78:0a:bc:00:11" };
	int efd = eventfd(0, EFD_CLOEXEC), st[1];
	uint64_t one = 1, b[1];
	iovm_error err = {};
	struct fake f;

	assert_true(efd >= 0);
	assert_int_equal(write(efd, &one, sizeof(one)), sizeof(one));
	fake_start(&f, SILENT);
	assert_int_equal(iovm_qga_if_bytes_many_cancel(f.path, macs, 1, 60000, efd, b, st, &err), -ECANCELED);
	fake_stop(&f);
	assert_non_null(strstr(err.msg, "cancelled"));
	close(efd);
}

static void *cancel_later(void *arg)
{
	uint64_t one = 1;

	usleep(200 * 1000);
	(void)!write(*(int *)arg, &one, sizeof(one));
	return NULL;
}

/* Cancelled by another thread while the call waits for a silent agent. */
static void test_cancel_while_waiting(void **state)
{
	const char *macs[] = { "02:78:0a:bc:00:11" };
	int efd = eventfd(0, EFD_CLOEXEC), st[1];
	iovm_error err = {};
	uint64_t b[1];
	struct fake f;
	pthread_t t;

	assert_true(efd >= 0);
	fake_start(&f, SILENT);
	assert_int_equal(pthread_create(&t, NULL, cancel_later, &efd), 0);
	assert_int_equal(iovm_qga_if_bytes_many_cancel(f.path, macs, 1, 60000, efd, b, st, &err), -ECANCELED);
	pthread_join(t, NULL);
	fake_stop(&f);
	close(efd);
}

/* An agent whose one connection slot and one queue slot are taken (QEMU's
 * chardev socket while lab tooling or another manager talks to it): the
 * kernel refuses a non-blocking connect, and the call must end at its
 * deadline instead of blocking in connect() for as long as the other
 * client stays. A blocking connect() here would hang the test. */
static void test_busy_agent_times_out(void **state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/iovm-qga-XXXXXX", path[108];
	int lfd, other;
	iovm_error err = {};
	uint64_t b;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/qga.sock", dir);
	strcpy(sa.sun_path, path);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(lfd, 0), 0);      /* never accepted: the queue holds one */
	other = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(connect(other, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(iovm_qga_if_bytes(path, "02:78:00:00:00:11", 300, &b, &err), -ETIMEDOUT);
	assert_non_null(strstr(err.msg, "another client holds the agent"));
	close(other);
	close(lfd);
	unlink(path);
	rmdir(dir);
}

static void test_no_agent(void **state)
{
	iovm_error err = {};
	uint64_t b;

	assert_int_equal(iovm_qga_if_bytes("/nonexistent/qga.sock", "02:78:00:00:00:11", 1000, &b, &err), -ENOENT);
	assert_non_null(strstr(err.msg, "cannot connect"));
	assert_int_equal(iovm_qga_if_bytes(NULL, "02:78:00:00:00:11", 1000, &b, &err), -EINVAL);
	assert_int_equal(iovm_qga_if_bytes("/x", "02:78:00:00:00:11", 0, &b, &err), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_counters),
		cmocka_unit_test(test_many_one_question),
		cmocka_unit_test(test_many_agent_error),
		cmocka_unit_test(test_mac_case),
		cmocka_unit_test(test_stale_replies_dropped),
		cmocka_unit_test(test_no_such_mac),
		cmocka_unit_test(test_no_statistics),
		cmocka_unit_test(test_error_reply),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_silent_agent_times_out),
		cmocka_unit_test(test_cancel_before),
		cmocka_unit_test(test_cancel_while_waiting),
		cmocka_unit_test(test_busy_agent_times_out),
		cmocka_unit_test(test_no_agent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
