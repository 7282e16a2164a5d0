/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iovmd's guest-agent workers (src/iovmd/gsample.c) against the fake agent
 * of fake-qga.h: an answer comes back through the fd with every VF's count
 * or status; one question per VM at a time; a silent agent holds up no
 * other VM's question; an agent that is not there is an answer with the
 * error; gsample_free() cancels a question under way instead of waiting
 * out its deadline; bad arguments are refused. The daemon with a real
 * qemu-ga: tests/lab/33-iovmd-counters-rebalance.sh.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "iovmd/gsample.h"

#include "fake-qga.h"

/* The answers that come within 30 s (the fd must say so first). */
static gsample_q *wait_answers(gsample *g)
{
	struct pollfd p = { .fd = gsample_fd(g), .events = POLLIN };

	assert_int_equal(poll(&p, 1, 30000), 1);
	return gsample_take(g);
}

static void test_answer(void **state)
{
	const char *vfs[] = { "0000:01:10.0", "0000:01:10.2" };
	const char *macs[] = { "02:78:0a:bc:00:11", "02:78:00:00:00:99" };
	gsample *g = NULL;
	gsample_q *a;
	struct fake f;

	fake_start(&f, OK);
	assert_int_equal(gsample_new(5000, &g), 0);
	assert_false(gsample_pending(g, "g1"));
	assert_int_equal(gsample_ask(g, "g1", f.path, 2, vfs, macs), 0);
	assert_true(gsample_pending(g, "g1"));
	/* one question per VM at a time */
	assert_int_equal(gsample_ask(g, "g1", f.path, 2, vfs, macs), -EBUSY);
	a = wait_answers(g);
	assert_non_null(a);
	assert_null(a->next);
	assert_string_equal(a->vm, "g1");
	assert_int_equal(a->r, 0);
	assert_int_equal(a->n, 2);
	assert_string_equal(a->vf[0], "0000:01:10.0");
	assert_int_equal(a->status[0], 0);
	assert_int_equal(a->bytes[0], 1234);
	assert_string_equal(a->vf[1], "0000:01:10.2");
	assert_int_equal(a->status[1], -ENOENT);
	/* taken: no longer pending, nothing more to take */
	assert_false(gsample_pending(g, "g1"));
	assert_null(gsample_take(g));
	gsample_q_free(a);
	gsample_free(g);
	fake_stop(&f);
}

/* g1's agent never answers; g2's answer must still come, and the free at
 * the end must cancel g1's question rather than wait out its 10 min
 * deadline (longer than the test's own timeout). */
static void test_silent_agent_holds_up_nobody(void **state)
{
	const char *vfs[] = { "0000:01:10.0" };
	const char *macs[] = { "02:78:0a:bc:00:11" };
	struct fake silent, ok;
	gsample *g = NULL;
	gsample_q *a;

	fake_start(&silent, SILENT);
	fake_start(&ok, OK);
	assert_int_equal(gsample_new(600000, &g), 0);
	assert_int_equal(gsample_ask(g, "g1", silent.path, 1, vfs, macs), 0);
	assert_int_equal(gsample_ask(g, "g2", ok.path, 1, vfs, macs), 0);
	a = wait_answers(g);
	assert_non_null(a);
	assert_null(a->next);
	assert_string_equal(a->vm, "g2");
	assert_int_equal(a->bytes[0], 1234);
	assert_true(gsample_pending(g, "g1"));
	gsample_q_free(a);
	gsample_free(g);
	fake_stop(&silent);
	fake_stop(&ok);
}

static void test_no_agent(void **state)
{
	const char *vfs[] = { "0000:01:10.0" };
	const char *macs[] = { "02:78:0a:bc:00:11" };
	gsample *g = NULL;
	gsample_q *a;

	assert_int_equal(gsample_new(1000, &g), 0);
	assert_int_equal(gsample_ask(g, "g1", "/nonexistent/qga.sock", 1, vfs, macs), 0);
	a = wait_answers(g);
	assert_non_null(a);
	assert_int_equal(a->r, -ENOENT);
	assert_non_null(strstr(a->err, "cannot connect"));
	gsample_q_free(a);
	gsample_free(g);
}

static void test_bad_arguments(void **state)
{
	const char *vfs[] = { "0000:01:10.0" };
	const char *macs[] = { "02:78:0a:bc:00:11" };
	const char *long_mac[] = { "02:78:0a:bc:00:11:22" };
	const char *long_vf[] = { "0000:01:10.0-and-more" };
	char long_path[200];
	gsample *g = NULL;

	assert_int_equal(gsample_new(0, &g), -EINVAL);
	assert_int_equal(gsample_new(1000, NULL), -EINVAL);
	assert_int_equal(gsample_new(1000, &g), 0);
	memset(long_path, 'x', sizeof(long_path) - 1);
	long_path[sizeof(long_path) - 1] = '\0';
	assert_int_equal(gsample_ask(g, "", "/run/qga.sock", 1, vfs, macs), -EINVAL);
	assert_int_equal(gsample_ask(g, "g1", long_path, 1, vfs, macs), -EINVAL);
	assert_int_equal(gsample_ask(g, "g1", "/run/qga.sock", 1, vfs, long_mac), -EINVAL);
	assert_int_equal(gsample_ask(g, "g1", "/run/qga.sock", 1, long_vf, macs), -EINVAL);
	assert_int_equal(gsample_ask(g, "g1", "/run/qga.sock", 1, NULL, macs), -EINVAL);
	/* nothing refused is left pending */
	assert_false(gsample_pending(g, "g1"));
	assert_null(gsample_take(g));
	gsample_free(g);
	gsample_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_answer),
		cmocka_unit_test(test_silent_agent_holds_up_nobody),
		cmocka_unit_test(test_no_agent),
		cmocka_unit_test(test_bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
