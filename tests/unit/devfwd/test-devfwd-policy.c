/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Policy file parsing and matching. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <linux/input.h>

#include "devfwd/devfwd.h"

static const char *text =
	"# two guests\n"
	"[guest cid=3]\n"
	"allow-path = /dev/input/event*\n"
	"allow-path = /dev/net/tun\n"
	"allow-ioctl = E:*\n"
	"allow-ioctl = T:202\n"
	"\n"
	"[ guest uid=1000 ]\n"
	"allow-path=/dev/zero\n"
	"allow-ioctl = 0x80044501\n";

static void test_match(void **state)
{
	struct devfwd_policy *p = NULL;
	iovm_error err = {};
	struct devfwd_peer cid3 = { .kind = DEVFWD_PEER_VSOCK, .cid = 3 };
	struct devfwd_peer cid4 = { .kind = DEVFWD_PEER_VSOCK, .cid = 4 };
	struct devfwd_peer uid1000 = { .kind = DEVFWD_PEER_UNIX, .uid = 1000 };
	struct devfwd_peer uid3 = { .kind = DEVFWD_PEER_UNIX, .uid = 3 };
	const struct devfwd_rules *r;

	assert_int_equal(devfwd_policy_parse(text, "t", &p, &err), 0);
	r = devfwd_policy_match(p, &cid3);
	assert_non_null(r);
	assert_string_equal(devfwd_rules_name(r), "cid 3");
	assert_null(devfwd_policy_match(p, &cid4));
	/* uid 3 is not cid 3: the kind must match too. */
	assert_null(devfwd_policy_match(p, &uid3));

	assert_int_equal(devfwd_rules_check_path(r, "/dev/input/event0"), 0);
	assert_int_equal(devfwd_rules_check_path(r, "/dev/input/event12"), 0);
	assert_int_equal(devfwd_rules_check_path(r, "/dev/net/tun"), 0);
	assert_int_equal(devfwd_rules_check_path(r, "/dev/input/mice"), -EACCES);
	assert_int_equal(devfwd_rules_check_path(r, "/dev/input/event0/../../sda"), -EACCES);
	assert_int_equal(devfwd_rules_check_path(r, "/dev/input/../mem"), -EACCES);
	assert_int_equal(devfwd_rules_check_path(r, "/dev/input//event0"), -EACCES);
	assert_int_equal(devfwd_rules_check_path(r, "dev/input/event0"), -EACCES);
	/* '*' does not cross a slash. */
	assert_int_equal(devfwd_rules_check_path(r, "/dev/input/eventX/y"), -EACCES);

	assert_int_equal(devfwd_rules_check_ioctl(r, EVIOCGNAME(64)), 0);
	assert_int_equal(devfwd_rules_check_ioctl(r, EVIOCGRAB), 0);
	assert_int_equal(devfwd_rules_check_ioctl(r, TUNSETIFF), 0);
	assert_int_equal(devfwd_rules_check_ioctl(r, TUNSETPERSIST), -ENOTTY);

	r = devfwd_policy_match(p, &uid1000);
	assert_non_null(r);
	assert_int_equal(devfwd_rules_check_path(r, "/dev/zero"), 0);
	assert_int_equal(devfwd_rules_check_path(r, "/dev/input/event0"), -EACCES);
	assert_int_equal(devfwd_rules_check_ioctl(r, EVIOCGVERSION), 0);
	assert_int_equal(devfwd_rules_check_ioctl(r, EVIOCGID), -ENOTTY);
	/* No rules at all refuse everything. */
	assert_int_equal(devfwd_rules_check_path(NULL, "/dev/zero"), -EACCES);
	assert_int_equal(devfwd_rules_check_ioctl(NULL, EVIOCGVERSION), -ENOTTY);
	devfwd_policy_free(p);
}

static void expect_error(const char *t, int code, const char *needle)
{
	struct devfwd_policy *p = NULL;
	iovm_error err = {};

	assert_int_equal(devfwd_policy_parse(t, "bad.conf", &p, &err), code);
	assert_null(p);
	if (!strstr(err.msg, needle))
		fail_msg("message \"%s\" lacks \"%s\"", err.msg, needle);
}

static void test_errors(void **state)
{
	expect_error("allow-path = /dev/zero\n", -EINVAL, "bad.conf:1: allow-path outside");
	expect_error("[guest cid=x]\n", -EINVAL, "bad.conf:1: expected [guest");
	expect_error("[guest cid=3\n", -EINVAL, "unterminated");
	expect_error("[guest cid=3]\nallow-path = /dev/../etc/passwd\n", -EINVAL, "bad.conf:2: allow-path /dev/../etc/passwd");
	expect_error("[guest cid=3]\nallow-path = relative\n", -EINVAL, "not a clean absolute path");
	expect_error("[guest cid=3]\nallow-ioctl = E:300\n", -EINVAL, "allow-ioctl E:300");
	expect_error("[guest cid=3]\nallow-ioctl = EE:1\n", -EINVAL, "allow-ioctl EE:1");
	expect_error("[guest cid=3]\ncolour = blue\n", -EINVAL, "unknown key colour");
	expect_error("[guest cid=3]\n[guest cid=3]\n", -EEXIST, "defined twice");
	expect_error("[guest cid=3]\nnonsense\n", -EINVAL, "expected key = value");
	expect_error("[guest cid=3]\nworker-capability = sys_admin\n", -EINVAL, "worker-capability sys_admin");
	expect_error("[guest cid=3]\nwindow = /dev/shm/../w\n", -EINVAL, "window /dev/shm/../w");
	expect_error("[guest cid=3]\nwindow = /dev/shm/a\nwindow = /dev/shm/b\n", -EINVAL, "a second window");
}

/* A worker keeps only the capabilities its guest's section names. */
static void test_worker_caps(void **state)
{
	struct devfwd_policy *p = NULL;
	iovm_error err = {};
	struct devfwd_peer cid3 = { .kind = DEVFWD_PEER_VSOCK, .cid = 3 };
	struct devfwd_peer cid4 = { .kind = DEVFWD_PEER_VSOCK, .cid = 4 };

	assert_int_equal(devfwd_policy_parse("[guest cid=3]\nworker-capability = net_admin\n[guest cid=4]\n", "t", &p,
					     &err), 0);
	assert_true(devfwd_rules_worker_caps(devfwd_policy_match(p, &cid3)) == UINT64_C(1) << CAP_NET_ADMIN);
	assert_true(devfwd_rules_worker_caps(devfwd_policy_match(p, &cid4)) == 0);
	assert_true(devfwd_rules_worker_caps(NULL) == 0);
	devfwd_policy_free(p);
}

/* Each guest names its own window; a guest without one has none. */
static void test_window(void **state)
{
	struct devfwd_policy *p = NULL;
	iovm_error err = {};
	struct devfwd_peer cid3 = { .kind = DEVFWD_PEER_VSOCK, .cid = 3 };
	struct devfwd_peer cid4 = { .kind = DEVFWD_PEER_VSOCK, .cid = 4 };

	assert_int_equal(devfwd_policy_parse("[guest cid=3]\nwindow = /dev/shm/w3\n[guest cid=4]\n", "t", &p, &err), 0);
	assert_string_equal(devfwd_rules_window(devfwd_policy_match(p, &cid3)), "/dev/shm/w3");
	assert_null(devfwd_rules_window(devfwd_policy_match(p, &cid4)));
	assert_null(devfwd_rules_window(NULL));
	devfwd_policy_free(p);
}

static void test_path_check(void **state)
{
	assert_int_equal(devfwd_path_check("/dev/zero"), 0);
	assert_int_equal(devfwd_path_check("/"), -EINVAL);
	assert_int_equal(devfwd_path_check("/dev/"), -EINVAL);
	assert_int_equal(devfwd_path_check("/dev/./zero"), -EINVAL);
	assert_int_equal(devfwd_path_check("/dev/..."), 0); /* a name, not a traversal */
	assert_int_equal(devfwd_path_check("/.."), -EINVAL);
	assert_int_equal(devfwd_path_check(NULL), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_match),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_worker_caps),
		cmocka_unit_test(test_window),
		cmocka_unit_test(test_path_check),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
