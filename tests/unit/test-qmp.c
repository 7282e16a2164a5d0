/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* QMP client against a scripted fake QEMU (fake-qmp.h) on a socketpair. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "iovm/qmp.h"
#include "fake-qmp.h"

/* Connects through the fd: greeting and negotiation, with a deadline. */
static iovm_qmp *client(int fd)
{
	iovm_qmp *q = NULL;
	iovm_error e = {};

	assert_int_equal(iovm_qmp_new_from_fd(fd, "fake", &q, &e), 0);
	while (!iovm_qmp_is_ready(q)) {
		struct pollfd p = { .fd = iovm_qmp_get_fd(q), .events = iovm_qmp_get_events(q) };

		assert_int_equal(poll(&p, 1, 10000), 1);
		if (iovm_qmp_process(q, &e) < 0)
			fail_msg("negotiation failed: %s", e.msg);
	}
	return q;
}

static void test_execute_ok(void **state)
{
	static const struct step script[] = {
		{ SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK },
		{ EXPECT, "query-status" },
		{ SEND, "{\"return\": {\"status\": \"running\", \"running\": true}, \"id\": $1}\r\n" },
		{ EXPECT, "device_del" }, { SEND, "{\"return\": {}, \"id\": $2}\n" },
		{ WAIT_HUP }, { END },
	};
	int fds = count_fds();
	json_object *ret = NULL, *st, *args = json_object_new_object();
	struct fake f;
	iovm_error e = {};
	iovm_qmp *q = client(fake_start(&f, script));

	assert_string_equal(iovm_qmp_qemu_version(q), "10.0.2");
	assert_int_equal(iovm_qmp_execute(q, "query-status", NULL, &ret, 5000, &e), 0);
	assert_true(json_object_object_get_ex(ret, "status", &st));
	assert_string_equal(json_object_get_string(st), "running");
	json_object_put(ret);
	json_object_object_add(args, "id", json_object_new_string("vf0"));
	assert_int_equal(iovm_qmp_execute(q, "device_del", args, NULL, 5000, &e), 0);
	json_object_put(args);
	assert_true(iovm_qmp_is_connected(q));
	iovm_qmp_free(q);
	fake_join(&f);
	assert_string_equal(f.last_args, "{\"id\":\"vf0\"}");
	assert_int_equal(count_fds(), fds);
}

static void test_error_replies(void **state)
{
	static const struct step script[] = {
		{ SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK },
		{ EXPECT, "device_del" },
		{ SEND, "{\"id\": $1, \"error\": {\"class\": \"DeviceNotFound\", \"desc\": \"Device 'vf9' not found\"}}\r\n" },
		{ EXPECT, "device_add" },
		{ SEND, "{\"id\": $2, \"error\": {\"class\": \"GenericError\", \"desc\": \"vfio 0000:01:10.0: no such host device\"}}\r\n" },
		{ EXPECT, "frobnicate" },
		{ SEND, "{\"id\": $3, \"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command frobnicate has not been found\"}}\r\n" },
		{ EXPECT, "query-status" }, { SEND, "{\"return\": {}, \"id\": $4}\r\n" },
		{ WAIT_HUP }, { END },
	};
	json_object *ret = (json_object *)&ret;   /* must stay untouched on failure */
	struct fake f;
	iovm_error e = {};
	iovm_qmp *q = client(fake_start(&f, script));

	assert_int_equal(iovm_qmp_execute(q, "device_del", NULL, &ret, 5000, &e), -ENODEV);
	assert_ptr_equal(ret, &ret);
	assert_string_equal(e.msg, "qemu fake: device_del failed: DeviceNotFound: Device 'vf9' not found");
	assert_int_equal(iovm_qmp_execute(q, "device_add", NULL, NULL, 5000, &e), -EREMOTEIO);
	assert_non_null(strstr(e.msg, "no such host device"));
	assert_int_equal(iovm_qmp_execute(q, "frobnicate", NULL, NULL, 5000, &e), -EOPNOTSUPP);
	/* An error reply does not break the connection. */
	assert_int_equal(iovm_qmp_execute(q, "query-status", NULL, NULL, 5000, &e), 0);
	iovm_qmp_free(q);
	fake_join(&f);
}

struct evlog {
	int n;
	char names[8][32];
};

static void on_event(iovm_qmp *q, const char *event, json_object *data, json_object *ts, void *ud)
{
	struct evlog *l = ud;

	if (l->n < 8)
		snprintf(l->names[l->n++], 32, "%s", event);
}

static bool path_is(const char *event, json_object *data, void *ud)
{
	json_object *p;

	return json_object_object_get_ex(data, "path", &p) && !strcmp(json_object_get_string(p), ud);
}

static void test_events_interleaved(void **state)
{
	static const struct step script[] = {
		{ SEND, GREETING }, { EXPECT, "qmp_capabilities" },
		{ SEND, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, \"event\": \"RESUME\"}\r\n" CAPS_OK },
		{ EXPECT, "device_del" },
		/* The event for another device, then ours, both before the reply. */
		{ SEND, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"x\", \"path\": \"/machine/peripheral/x\"}}\r\n"
			"{\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": \"/machine/peripheral/vf0\"}}\r\n"
			"{\"return\": {}, \"id\": $1}\r\n" },
		{ EXPECT, "device_del" }, { SEND, "{\"return\": {}, \"id\": $2}\r\n" },
		{ SEND, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"vf1\", \"path\": \"/machine/peripheral/vf1\"}}\r\n" },
		{ WAIT_HUP }, { END },
	};
	struct evlog log = {};
	json_object *data = NULL, *dev;
	struct fake f;
	iovm_error e = {};
	iovm_qmp *q = NULL;
	uint64_t mark;

	assert_int_equal(iovm_qmp_new_from_fd(fake_start(&f, script), "fake", &q, &e), 0);
	iovm_qmp_set_event_handler(q, on_event, &log);
	/* A command sent before negotiation waits for it. */
	mark = iovm_qmp_event_mark(q);
	assert_int_equal(iovm_qmp_execute(q, "device_del", NULL, NULL, 5000, &e), 0);
	assert_int_equal(iovm_qmp_wait_event(q, mark, "DEVICE_DELETED", path_is,
					     "/machine/peripheral/vf0", &data, 5000, &e), 0);
	assert_false(json_object_object_get_ex(data, "device", &dev));
	json_object_put(data);
	/* The old event must not satisfy a wait that starts after it. */
	mark = iovm_qmp_event_mark(q);
	assert_int_equal(iovm_qmp_execute(q, "device_del", NULL, NULL, 5000, &e), 0);
	assert_int_equal(iovm_qmp_wait_event(q, mark, "DEVICE_DELETED", path_is,
					     "/machine/peripheral/vf1", &data, 5000, &e), 0);
	assert_true(json_object_object_get_ex(data, "device", &dev));
	assert_string_equal(json_object_get_string(dev), "vf1");
	json_object_put(data);
	assert_int_equal(log.n, 4);
	assert_string_equal(log.names[0], "RESUME");
	assert_string_equal(log.names[3], "DEVICE_DELETED");
	iovm_qmp_free(q);
	fake_join(&f);
}

static void test_wait_event_timeout(void **state)
{
	static const struct step script[] = {
		{ SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK },
		{ EXPECT, "device_del" }, { SEND, "{\"return\": {}, \"id\": $1}\r\n" },
		{ SEND, "{\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": \"/machine/peripheral/other\"}}\r\n" },
		{ WAIT_HUP }, { END },
	};
	struct fake f;
	iovm_error e = {};
	iovm_qmp *q = client(fake_start(&f, script));
	uint64_t mark = iovm_qmp_event_mark(q);
	json_object *data = (json_object *)&data;

	assert_int_equal(iovm_qmp_execute(q, "device_del", NULL, NULL, 5000, &e), 0);
	assert_int_equal(iovm_qmp_wait_event(q, mark, "DEVICE_DELETED", path_is,
					     "/machine/peripheral/vf0", &data, 200, &e), -ETIMEDOUT);
	assert_ptr_equal(data, &data);
	assert_non_null(strstr(e.msg, "timed out"));
	assert_true(iovm_qmp_is_connected(q));
	iovm_qmp_free(q);
	fake_join(&f);
}

static void test_late_reply_dropped(void **state)
{
	static const struct step script[] = {
		{ SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK },
		{ EXPECT, "slow" },
		{ EXPECT, "fast" },
		/* The reply to the abandoned command comes first. */
		{ SEND, "{\"return\": {\"who\": \"slow\"}, \"id\": $1}\r\n{\"return\": {\"who\": \"fast\"}, \"id\": $2}\r\n" },
		{ WAIT_HUP }, { END },
	};
	json_object *ret = NULL, *who;
	struct fake f;
	iovm_error e = {};
	iovm_qmp *q = client(fake_start(&f, script));

	assert_int_equal(iovm_qmp_execute(q, "slow", NULL, &ret, 100, &e), -ETIMEDOUT);
	assert_null(ret);
	assert_int_equal(iovm_qmp_execute(q, "fast", NULL, &ret, 5000, &e), 0);
	assert_true(json_object_object_get_ex(ret, "who", &who));
	assert_string_equal(json_object_get_string(who), "fast");
	json_object_put(ret);
	iovm_qmp_free(q);
	fake_join(&f);
}

/* Runs one command against a fake whose answer is bad; expects code and a
 * broken connection that refuses further commands, and no leaked fd. */
static void expect_broken(const struct step *script, int code, const char *msg_part)
{
	int fds = count_fds();
	struct fake f;
	iovm_error e = {};
	iovm_qmp *q = client(fake_start(&f, script));

	assert_int_equal(iovm_qmp_execute(q, "query-pci", NULL, NULL, 5000, &e), code);
	if (!strstr(e.msg, msg_part))
		fail_msg("message \"%s\" lacks \"%s\"", e.msg, msg_part);
	assert_false(iovm_qmp_is_connected(q));
	assert_int_equal(iovm_qmp_execute(q, "query-status", NULL, NULL, 5000, &e), -ENOTCONN);
	assert_int_equal(iovm_qmp_process(q, &e), -ENOTCONN);
	iovm_qmp_free(q);
	fake_join(&f);
	assert_int_equal(count_fds(), fds);
}

#define PREFIX { SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK }, { EXPECT, "query-pci" }

static void test_peer_closes_mid_command(void **state)
{
	static const struct step script[] = { PREFIX, { CLOSE }, { END } };

	expect_broken(script, -ECONNRESET, "QEMU went away (connection closed)");
}

static void test_truncated_then_close(void **state)
{
	static const struct step script[] = {
		PREFIX, { SEND, "{\"return\": [{\"bus\": 0, \"devi" }, { CLOSE }, { END },
	};

	expect_broken(script, -ECONNRESET, "inside a message");
}

static void test_truncated_line(void **state)
{
	static const struct step script[] = {
		PREFIX, { SEND, "{\"return\": [{\"bus\": 0, \"devi\r\n" }, { WAIT_HUP }, { END },
	};

	expect_broken(script, -EPROTO, "malformed message");
}

static void test_garbage(void **state)
{
	static const struct step script[] = {
		PREFIX, { SEND, "\x01\x02 hello qemu\r\n" }, { WAIT_HUP }, { END },
	};

	expect_broken(script, -EPROTO, "malformed message");
}

static void test_trailing_garbage(void **state)
{
	static const struct step script[] = {
		PREFIX, { SEND, "{\"return\": {}, \"id\": $1} xyz\r\n" }, { WAIT_HUP }, { END },
	};

	expect_broken(script, -EPROTO, "trailing data");
}

static void test_not_an_object(void **state)
{
	static const struct step script[] = {
		PREFIX, { SEND, "[1, 2, 3]\r\n" }, { WAIT_HUP }, { END },
	};

	expect_broken(script, -EPROTO, "not a JSON object");
}

static void test_unknown_id(void **state)
{
	static const struct step script[] = {
		PREFIX, { SEND, "{\"return\": {}, \"id\": 4242}\r\n" }, { WAIT_HUP }, { END },
	};

	expect_broken(script, -EPROTO, "matches no command");
}

static void test_neither_reply_nor_event(void **state)
{
	static const struct step script[] = {
		PREFIX, { SEND, "{\"hello\": 1}\r\n" }, { WAIT_HUP }, { END },
	};

	expect_broken(script, -EPROTO, "neither reply nor event");
}

static void test_oversized(void **state)
{
	static const struct step script[] = {
		PREFIX, { SEND_BIG, NULL, 2 * IOVM_QMP_MAX_MESSAGE }, { WAIT_HUP }, { END },
	};

	expect_broken(script, -EMSGSIZE, "larger than");
}

static void test_deep_nesting(void **state)
{
	static char deep[2048];
	static struct step script[] = {
		PREFIX, { SEND, deep }, { WAIT_HUP }, { END },
	};
	size_t o = 0;

	o += (size_t)snprintf(deep, sizeof(deep), "{\"return\": ");
	for (int i = 0; i < 200; i++)
		deep[o++] = '[';
	for (int i = 0; i < 200; i++)
		deep[o++] = ']';
	snprintf(deep + o, sizeof(deep) - o, ", \"id\": $1}\r\n");
	expect_broken(script, -EPROTO, "malformed message");
}

static void test_no_greeting(void **state)
{
	static const struct step script[] = {
		{ SEND, "{\"return\": {}, \"id\": 1}\r\n" }, { WAIT_HUP }, { END },
	};
	int fds = count_fds();
	struct fake f;
	iovm_error e = {};
	iovm_qmp *q = NULL;

	assert_int_equal(iovm_qmp_new_from_fd(fake_start(&f, script), "fake", &q, &e), 0);
	assert_int_equal(iovm_qmp_execute(q, "query-status", NULL, NULL, 5000, &e), -EPROTO);
	assert_non_null(strstr(e.msg, "greeting"));
	iovm_qmp_free(q);
	fake_join(&f);
	assert_int_equal(count_fds(), fds);
}

static void test_connect_path(void **state)
{
	iovm_qmp *q = (iovm_qmp *)&q;
	iovm_error e = {};
	int fds = count_fds();

	assert_int_equal(iovm_qmp_connect("/nonexistent/qmp.sock", 1000, &q, &e), -ENOENT);
	assert_ptr_equal(q, &q);
	assert_non_null(strstr(e.msg, "/nonexistent/qmp.sock"));
	assert_int_equal(iovm_qmp_connect(NULL, 1000, &q, &e), -EINVAL);
	assert_int_equal(count_fds(), fds);
}

struct async_state {
	int replies;
	int status[3];
	char who[3][16];
	iovm_qmp **qp;
	bool free_in_cb;
};

static void on_reply(iovm_qmp *q, int status, json_object *ret, const iovm_error *e, void *ud)
{
	struct async_state *s = ud;
	json_object *who;

	s->status[s->replies] = status;
	if (ret && json_object_object_get_ex(ret, "who", &who))
		snprintf(s->who[s->replies], 16, "%s", json_object_get_string(who));
	s->replies++;
	if (s->free_in_cb && status == 0)
		*s->qp = iovm_qmp_free(q);
}

static void test_async_event_loop(void **state)
{
	static const struct step script[] = {
		{ SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK },
		{ EXPECT, "a" }, { EXPECT, "b" }, { EXPECT, "c" },
		/* Replies out of order: matching is by id. */
		{ SEND, "{\"return\": {\"who\": \"b\"}, \"id\": $2}\r\n{\"event\": \"STOP\"}\r\n"
			"{\"return\": {\"who\": \"a\"}, \"id\": $1}\r\n" },
		{ CLOSE }, { END },
	};
	int fds = count_fds();
	struct async_state s = {};
	struct evlog log = {};
	struct fake f;
	iovm_error e = {};
	iovm_qmp *q = NULL;
	int r = 0;

	assert_int_equal(iovm_qmp_new_from_fd(fake_start(&f, script), "fake", &q, &e), 0);
	iovm_qmp_set_event_handler(q, on_event, &log);
	for (const char *c = "abc"; *c; c++) {
		char cmd[2] = { *c, 0 };

		assert_int_equal(iovm_qmp_send(q, cmd, NULL, on_reply, &s, NULL, &e), 0);
	}
	while (r >= 0) {
		struct pollfd p = { .fd = iovm_qmp_get_fd(q), .events = iovm_qmp_get_events(q) };

		assert_int_equal(poll(&p, 1, 10000), 1);
		r = iovm_qmp_process(q, &e);
	}
	assert_int_equal(r, -ECONNRESET);
	assert_int_equal(s.replies, 3);
	assert_string_equal(s.who[0], "b");
	assert_string_equal(s.who[1], "a");
	assert_int_equal(s.status[2], -ECONNRESET);   /* c never got a reply */
	assert_int_equal(log.n, 1);
	assert_string_equal(log.names[0], "STOP");
	assert_int_equal(iovm_qmp_get_events(q), 0);
	iovm_qmp_free(q);
	fake_join(&f);
	assert_int_equal(count_fds(), fds);
}

static void test_free_from_callback(void **state)
{
	static const struct step script[] = {
		{ SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK },
		{ EXPECT, "a" }, { EXPECT, "b" },
		{ SEND, "{\"return\": {}, \"id\": $1}\r\n{\"return\": {}, \"id\": $2}\r\n" },
		{ WAIT_HUP }, { END },
	};
	int fds = count_fds();
	iovm_qmp *q = NULL;
	struct async_state s = { .qp = &q, .free_in_cb = true };
	struct fake f;
	iovm_error e = {};
	int r = 0;

	q = client(fake_start(&f, script));
	assert_int_equal(iovm_qmp_send(q, "a", NULL, on_reply, &s, NULL, &e), 0);
	assert_int_equal(iovm_qmp_send(q, "b", NULL, on_reply, &s, NULL, &e), 0);
	while (q && r >= 0) {
		struct pollfd p = { .fd = iovm_qmp_get_fd(q), .events = iovm_qmp_get_events(q) };

		assert_int_equal(poll(&p, 1, 10000), 1);
		r = iovm_qmp_process(q, &e);
	}
	assert_int_equal(r, -ECANCELED);
	/* a succeeded and freed the client; b was cancelled, not leaked. */
	assert_int_equal(s.replies, 2);
	assert_int_equal(s.status[0], 0);
	assert_int_equal(s.status[1], -ECANCELED);
	fake_join(&f);
	assert_int_equal(count_fds(), fds);
}

static void test_invalid_args(void **state)
{
	iovm_error e = {};
	json_object *arr = json_object_new_array();

	assert_int_equal(iovm_qmp_execute(NULL, "x", NULL, NULL, 10, &e), -EINVAL);
	assert_int_equal(iovm_qmp_process(NULL, &e), -EINVAL);
	assert_int_equal(iovm_qmp_new_from_fd(-1, "x", NULL, &e), -EINVAL);
	assert_null(iovm_qmp_free(NULL));
	{
		int sv[2];
		iovm_qmp *q = NULL;

		assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		assert_int_equal(iovm_qmp_new_from_fd(sv[0], "x", &q, &e), 0);
		assert_int_equal(iovm_qmp_send(q, "", NULL, NULL, NULL, NULL, &e), -EINVAL);
		assert_int_equal(iovm_qmp_send(q, "x", arr, NULL, NULL, NULL, &e), -EINVAL);
		iovm_qmp_free(q);
		close(sv[1]);
	}
	json_object_put(arr);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_execute_ok),
		cmocka_unit_test(test_error_replies),
		cmocka_unit_test(test_events_interleaved),
		cmocka_unit_test(test_wait_event_timeout),
		cmocka_unit_test(test_late_reply_dropped),
		cmocka_unit_test(test_peer_closes_mid_command),
		cmocka_unit_test(test_truncated_then_close),
		cmocka_unit_test(test_truncated_line),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_trailing_garbage),
		cmocka_unit_test(test_not_an_object),
		cmocka_unit_test(test_unknown_id),
		cmocka_unit_test(test_neither_reply_nor_event),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_no_greeting),
		cmocka_unit_test(test_connect_path),
		cmocka_unit_test(test_async_event_loop),
		cmocka_unit_test(test_free_from_callback),
		cmocka_unit_test(test_invalid_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
