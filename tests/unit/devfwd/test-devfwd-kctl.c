/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The kernel frontend's control lines (devfwd-frontend --kernel): what is
 * written for a device, every refused address, path and name, and the write
 * to the control file. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "devfwd/devfwd.h"

static void test_line(void **state)
{
	iovm_error err = {};
	char buf[512];

	assert_int_equal(devfwd_kernel_line("vsock:2:7077", "/dev/input/event3", "input/event0", buf, sizeof(buf),
					    &err), 0);
	assert_string_equal(buf, "add 2 7077 /dev/input/event3 input/event0\n");
	assert_int_equal(devfwd_kernel_line("vsock:4294967295:1", "/dev/net/tun", "net/tun", buf, sizeof(buf),
					    &err), 0);
	assert_string_equal(buf, "add 4294967295 1 /dev/net/tun net/tun\n");
}

static void test_refused(void **state)
{
	static const char *bad_addr[] = { "unix:/run/devfwd.sock", "vsock:7000", "vsock:2:", "vsock::7000",
					  "vsock:2:70x0", "vsock:4294967296:1", "vsock:-1:7000", "tcp:1:2" };
	static const char *bad_path[] = { "dev/zero", "/dev/../etc/shadow", "/dev//zero", "/dev/ze ro", "/dev/zero/" };
	static const char *bad_name[] = { "", "/input/event0", "input/../x", "input//event0", "input/event0/",
					  "a b", "..", "input/.", "x;y",
					  "a123456789012345678901234567890123456789012345678901234567890123" };
	iovm_error err = {};
	char buf[512];

	for (size_t i = 0; i < sizeof(bad_addr) / sizeof(bad_addr[0]); i++) {
		assert_int_equal(devfwd_kernel_line(bad_addr[i], "/dev/zero", "zero", buf, sizeof(buf), &err),
				 -EINVAL);
		assert_non_null(strstr(err.msg, "/dev/zero"));
	}
	for (size_t i = 0; i < sizeof(bad_path) / sizeof(bad_path[0]); i++)
		assert_int_equal(devfwd_kernel_line("vsock:2:1", bad_path[i], "zero", buf, sizeof(buf), &err),
				 -EINVAL);
	for (size_t i = 0; i < sizeof(bad_name) / sizeof(bad_name[0]); i++) {
		assert_int_equal(devfwd_kernel_line("vsock:2:1", "/dev/zero", bad_name[i], buf, sizeof(buf), &err),
				 -EINVAL);
		assert_non_null(strstr(err.msg, "cannot name a device"));
	}
	assert_int_equal(devfwd_kernel_line("vsock:2:1", "/dev/zero", "zero", buf, 10, &err), -ENOBUFS);
}

static void test_add(void **state)
{
	char path[] = "/tmp/devfwd-kctl.XXXXXX", got[128] = {};
	iovm_error err = {};
	int fd = mkstemp(path);
	ssize_t n;

	assert_true(fd >= 0);
	assert_int_equal(devfwd_kernel_add(path, "add 2 1 /dev/zero zero\n", "/dev/zero", &err), 0);
	n = pread(fd, got, sizeof(got) - 1, 0);
	assert_int_equal(n, (ssize_t)strlen("add 2 1 /dev/zero zero\n"));
	assert_string_equal(got, "add 2 1 /dev/zero zero\n");
	close(fd);
	unlink(path);
	assert_int_equal(devfwd_kernel_add(path, "add 2 1 /dev/zero zero\n", "/dev/zero", &err), -ENOENT);
	assert_non_null(strstr(err.msg, "is devfwd.ko loaded?"));
	assert_non_null(strstr(err.msg, path));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_line),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_add),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
