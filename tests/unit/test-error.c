/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "iovm/error.h"

static void test_set_and_prefix(void **state)
{
	iovm_error e = {};

	assert_int_equal(iovm_error_set(&e, -ENODEV, "pf %s: no such device", "eth9"), -ENODEV);
	assert_int_equal(e.code, -ENODEV);
	assert_string_equal(e.msg, "pf eth9: no such device");
	assert_int_equal(iovm_error_prefix(&e, "set-vfs %d", 3), -ENODEV);
	assert_string_equal(e.msg, "set-vfs 3: pf eth9: no such device");
}

static void test_null_and_positive_code(void **state)
{
	iovm_error e = {};

	assert_int_equal(iovm_error_set(NULL, -EBUSY, "x"), -EBUSY);
	/* A non-negative code is a caller bug: it must still report failure. */
	assert_int_equal(iovm_error_set(&e, 0, "%s", ""), -EIO);
	assert_string_equal(e.msg, strerror(EIO));
	iovm_error_clear(&e);
	assert_int_equal(e.code, 0);
	assert_string_equal(e.msg, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_set_and_prefix),
		cmocka_unit_test(test_null_and_positive_code),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
