/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iovm_host: argument checks, roots and timeouts. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "iovm/host.h"
#include "lib/host/sysfs.h"

static void test_new_defaults(void **state)
{
	iovm_host *h = NULL;

	assert_int_equal(iovm_host_new(NULL, &h), 0);
	assert_string_equal(iovm_host_sysfs_root(h), "/sys");
	assert_string_equal(h->proc_root, "/proc");
	assert_int_equal(iovm_host_get_timeout(h, IOVM_TIMEOUT_SYSFS), 10000000);
	assert_true(iovm_host_get_timeout(h, IOVM_TIMEOUT_NUMVFS) >
		    iovm_host_get_timeout(h, IOVM_TIMEOUT_SYSFS));
	assert_true(iovm_host_get_timeout(h, IOVM_TIMEOUT_READ) > 0);
	assert_null(iovm_host_free(h));
	assert_null(iovm_host_free(NULL));
}

static void test_fixture_root(void **state)
{
	iovm_host *h = NULL;
	char buf[256];

	assert_int_equal(iovm_host_new("/tmp/fx/sys//", &h), 0);
	assert_string_equal(iovm_host_sysfs_root(h), "/tmp/fx/sys");
	assert_string_equal(h->proc_root, "/tmp/fx/sys/../proc");
	assert_int_equal(sysfs_path(h, buf, sizeof(buf), "bus/pci/devices/%s", "0000:01:00.0"), 0);
	assert_string_equal(buf, "/tmp/fx/sys/bus/pci/devices/0000:01:00.0");
	assert_int_equal(sysfs_path(h, buf, 16, "bus/pci/devices/%s", "0000:01:00.0"), -ENAMETOOLONG);
	assert_int_equal(iovm_host_set_proc_root(h, "/tmp/p"), 0);
	assert_int_equal(proc_path(h, buf, sizeof(buf), "%d/fd", 12), 0);
	assert_string_equal(buf, "/tmp/p/12/fd");
	iovm_host_free(h);
}

static void test_invalid(void **state)
{
	iovm_host *h = NULL;

	assert_int_equal(iovm_host_new(NULL, NULL), -EINVAL);
	assert_int_equal(iovm_host_new("", &h), -EINVAL);
	assert_int_equal(iovm_host_new("relative/sys", &h), -EINVAL);
	assert_null(h);
	assert_int_equal(iovm_host_new(NULL, &h), 0);
	assert_int_equal(iovm_host_set_timeout(h, _IOVM_TIMEOUT_MAX, 1), -EINVAL);
	assert_int_equal(iovm_host_set_timeout(h, IOVM_TIMEOUT_SYSFS, 0), -EINVAL);
	assert_int_equal(iovm_host_set_timeout(NULL, IOVM_TIMEOUT_SYSFS, 1), -EINVAL);
	assert_int_equal(iovm_host_set_timeout(h, IOVM_TIMEOUT_SYSFS, 5), 0);
	assert_int_equal(iovm_host_get_timeout(h, IOVM_TIMEOUT_SYSFS), 5);
	assert_int_equal(iovm_host_set_proc_root(h, "proc"), -EINVAL);
	assert_int_equal(iovm_host_set_proc_root(h, NULL), -EINVAL);
	iovm_host_free(h);
}

static void test_read_helpers(void **state)
{
	char buf[64];
	unsigned long v;

	/* /proc/self/... is a stable real file: "stat" starts with the pid. */
	assert_true(sysfs_read_str("/proc/self/comm", buf, sizeof(buf)) > 0);
	assert_null(strchr(buf, '\n'));
	assert_int_equal(sysfs_read_str("/nonexistent/x", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(sysfs_read_ulong("/proc/self/comm", 10, &v), -EINVAL);
	assert_int_equal(sysfs_read_link_base("/proc/self/exe", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "test-sysfs");
	assert_int_equal(sysfs_read_link_base("/proc/self/exe", buf, 4), -ENAMETOOLONG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_defaults),
		cmocka_unit_test(test_fixture_root),
		cmocka_unit_test(test_invalid),
		cmocka_unit_test(test_read_helpers),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
