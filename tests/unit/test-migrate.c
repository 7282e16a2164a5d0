/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The state of a migration into an incoming VM as the destination QEMU's
 * events move it (src/iovmd/migrate.c, docs/migration.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include "iovmd/ops.h"

static mig_state run_events(mig_state s, const char *const (*ev)[2], size_t n)
{
	for (size_t i = 0; i < n; i++)
		s = mig_next(s, ev[i][0], ev[i][1]);
	return s;
}

static void test_completed(void **state)
{
	static const char *const ev[][2] = {
		{ "MIGRATION", "setup" }, { "MIGRATION", "active" }, { "STOP", NULL },
		{ "MIGRATION", "completed" }, { "RESUME", NULL },
	};

	(void)state;
	assert_int_equal(run_events(MIG_WAITING, ev, 2), MIG_ACTIVE);
	assert_int_equal(run_events(MIG_WAITING, ev, 4), MIG_ACTIVE);
	assert_int_equal(run_events(MIG_WAITING, ev, 5), MIG_RESUMED);
	/* Once resumed (or done), later events change nothing. */
	assert_int_equal(mig_next(MIG_RESUMED, "MIGRATION", "failed"), MIG_RESUMED);
	assert_int_equal(mig_next(MIG_DONE, "RESUME", NULL), MIG_DONE);
	assert_int_equal(mig_next(MIG_DONE, "SHUTDOWN", NULL), MIG_DONE);
}

static void test_failed_or_cancelled(void **state)
{
	static const char *const cancelled[][2] = {
		{ "MIGRATION", "setup" }, { "MIGRATION", "active" }, { "MIGRATION", "cancelled" }, { "RESUME", NULL },
	};
	static const char *const failed[][2] = { { "MIGRATION", "active" }, { "MIGRATION", "failed" } };
	static const char *const gone[][2] = { { "MIGRATION", "active" }, { "SHUTDOWN", NULL } };

	(void)state;
	assert_int_equal(run_events(MIG_WAITING, cancelled, 4), MIG_FAILED);
	assert_int_equal(run_events(MIG_WAITING, failed, 2), MIG_FAILED);
	assert_int_equal(run_events(MIG_WAITING, gone, 2), MIG_FAILED);
}

static void test_not_incoming(void **state)
{
	(void)state;
	/* A RESUME with no migration seen (a VM that was only paused). */
	assert_int_equal(mig_next(MIG_WAITING, "RESUME", NULL), MIG_WAITING);
	assert_int_equal(mig_next(MIG_NONE, "MIGRATION", "completed"), MIG_NONE);
	assert_int_equal(mig_next(MIG_NONE, "RESUME", NULL), MIG_NONE);
	assert_int_equal(mig_next(MIG_WAITING, "MIGRATION", NULL), MIG_WAITING);
	assert_int_equal(mig_next(MIG_WAITING, "UNPLUG_PRIMARY", NULL), MIG_WAITING);
	assert_string_equal(mig_state_to_string(MIG_RESUMED), "resumed");
	assert_null(mig_state_to_string(_MIG_STATE_MAX));
}

/* What a restarted iovmd makes of the destination QEMU's report
 * (query-status, query-migrate) for the state it had saved. */
static void test_settle(void **state)
{
	(void)state;
	/* Registered; the QEMU waits, no migration yet. */
	assert_int_equal(mig_settle(MIG_WAITING, "inmigrate", "none"), MIG_WAITING);
	/* The migration started while iovmd was down. */
	assert_int_equal(mig_settle(MIG_WAITING, "inmigrate", "active"), MIG_ACTIVE);
	assert_int_equal(mig_settle(MIG_WAITING, "inmigrate", "setup"), MIG_ACTIVE);
	assert_int_equal(mig_settle(MIG_ACTIVE, "inmigrate", "active"), MIG_ACTIVE);
	/* It completed and the guest runs there: the VFs are to plug. */
	assert_int_equal(mig_settle(MIG_WAITING, "running", "completed"), MIG_RESUMED);
	assert_int_equal(mig_settle(MIG_ACTIVE, "running", "completed"), MIG_RESUMED);
	assert_int_equal(mig_settle(MIG_ACTIVE, "running", "none"), MIG_RESUMED);
	assert_int_equal(mig_settle(MIG_RESUMED, "running", "completed"), MIG_RESUMED);
	/* Loaded but not resumed yet (a QEMU started with -S): still active. */
	assert_int_equal(mig_settle(MIG_ACTIVE, "paused", "completed"), MIG_ACTIVE);
	/* It failed or was cancelled: the source keeps its VFs. */
	assert_int_equal(mig_settle(MIG_ACTIVE, "inmigrate", "failed"), MIG_FAILED);
	assert_int_equal(mig_settle(MIG_WAITING, "inmigrate", "cancelled"), MIG_FAILED);
	/* A QEMU running that never received a migration: nothing changes. */
	assert_int_equal(mig_settle(MIG_WAITING, "running", "none"), MIG_WAITING);
	/* Ended states stay. */
	assert_int_equal(mig_settle(MIG_DONE, "inmigrate", "failed"), MIG_DONE);
	assert_int_equal(mig_settle(MIG_FAILED, "running", "completed"), MIG_FAILED);
	assert_int_equal(mig_settle(MIG_NONE, "running", "completed"), MIG_NONE);
}

/* The names the store keeps, both ways. */
static void test_state_names(void **state)
{
	(void)state;
	for (int i = MIG_WAITING; i < _MIG_STATE_MAX; i++)
		assert_int_equal(mig_state_from_string(mig_state_to_string((mig_state)i)), i);
	assert_int_equal(mig_state_from_string("none"), MIG_NONE);
	assert_int_equal(mig_state_from_string("half-done"), MIG_NONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_completed),
		cmocka_unit_test(test_failed_or_cancelled),
		cmocka_unit_test(test_not_incoming),
		cmocka_unit_test(test_settle),
		cmocka_unit_test(test_state_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
