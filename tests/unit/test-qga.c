/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest-agent client (qga.c) against a scripted fake agent on a UNIX
 * socket: the sync handshake (stale bytes before the 0xFF delimiter are
 * dropped), the counters of the interface with a given MAC, and every error:
 * no such MAC, no statistics, an error reply, garbage, an oversized reply,
 * a silent agent (deadline), no agent at all. A real qemu-ga in a guest is
 * covered by tests/lab/31-iovmd-alloc.sh.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "iovm/qga.h"

#define IFACES                                                                                        \
	"[{\"name\":\"lo\",\"hardware-address\":\"00:00:00:00:00:00\","                               \
	"\"statistics\":{\"rx-bytes\":5,\"tx-bytes\":5}},"                                            \
	"{\"name\":\"eth0\",\"hardware-address\":\"02:78:0a:bc:00:11\","                              \
	"\"statistics\":{\"rx-bytes\":1000,\"rx-packets\":3,\"tx-bytes\":234,\"tx-packets\":2}},"      \
	"{\"name\":\"eth1\",\"hardware-address\":\"02:78:00:00:00:12\"}]"

enum mode { OK, STALE, ERROR_REPLY, GARBAGE, OVERSIZED, SILENT };

struct fake {
	char path[108];
	int lfd;
	enum mode mode;
	pthread_t thr;
};

static int read_line(int fd, char *buf, size_t n)
{
	size_t len = 0;

	while (len + 1 < n) {
		ssize_t k = recv(fd, buf + len, 1, 0);

		if (k <= 0)
			return -1;
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return 0;
		}
		len++;
	}
	return -1;
}

static void send_str(int fd, const char *s)
{
	(void)!send(fd, s, strlen(s), MSG_NOSIGNAL);
}

static void *agent(void *arg)
{
	struct fake *f = arg;
	char line[4096], out[4096];
	const char *id;
	int fd = accept(f->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	if (f->mode == SILENT) {
		while (read(fd, line, sizeof(line)) > 0)
			; /* until the client gives up and closes */
		close(fd);
		return NULL;
	}
	if (f->mode == STALE)
		send_str(fd, "{\"return\": [\"a reply for an earlier client\"]}\n{\"retu");
	if (read_line(fd, line, sizeof(line)) < 0 || !strstr(line, "guest-sync-delimited") ||
	    !(id = strstr(line, "\"id\":")))
		goto out;
	snprintf(out, sizeof(out), "\xff{\"return\": %ld}\n", strtol(id + 5, NULL, 10));
	send_str(fd, out);
	if (read_line(fd, line, sizeof(line)) < 0 || !strstr(line, "guest-network-get-interfaces"))
		goto out;
	switch (f->mode) {
	case OK:
	case STALE:
		send_str(fd, "{\"return\": " IFACES "}\n");
		break;
	case ERROR_REPLY:
		send_str(fd, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no network\"}}\n");
		break;
	case GARBAGE:
		send_str(fd, "this is not json\n");
		break;
	case OVERSIZED: {
		char *big = malloc(64 * 1024);

		memset(big, ' ', 64 * 1024);
		for (int i = 0; i < 40; i++)
			if (send(fd, big, 64 * 1024, MSG_NOSIGNAL) < 0)
				break;
		free(big);
		break;
	}
	default:
		break;
	}
out:
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, enum mode mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/iovm-qga-XXXXXX";

	assert_non_null(mkdtemp(dir));
	snprintf(f->path, sizeof(f->path), "%s/qga.sock", dir);
	strcpy(sa.sun_path, f->path);
	f->mode = mode;
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 1), 0);
	assert_int_equal(pthread_create(&f->thr, NULL, agent, f), 0);
}

static void fake_stop(struct fake *f)
{
	char *slash;

	pthread_join(f->thr, NULL);
	close(f->lfd);
	unlink(f->path);
	slash = strrchr(f->path, '/');
	*slash = '\0';
	rmdir(f->path);
}

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
		cmocka_unit_test(test_no_agent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
