/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host monitor's pure part (uevent -> change) and the fixture stamp.
 * The live sockets are proven in the lab (tests/lab/34-iovmd-follow.sh). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "iovm/monitor.h"
#include "iovm/sriov.h"
#include "fixtures/fixture.h"

typedef fixture_host ctx;

/* A uevent as the kernel sends it: pairs joined by NULs. */
#define UEV(...) ((const char[]){ __VA_ARGS__ })
static int parse(const char *buf, size_t len, iovm_host_change *c)
{
	memset(c, 0x5a, sizeof(*c));
	return iovm_host_uevent_parse(buf, len, c);
}

static void test_uevent_pci(void **state)
{
	static const char vf_add[] =
		"add@/devices/pci0000:00/0000:00:02.0/0000:01:10.2\0ACTION=add\0"
		"DEVPATH=/devices/pci0000:00/0000:00:02.0/0000:01:10.2\0SUBSYSTEM=pci\0"
		"PCI_CLASS=20000\0PCI_ID=8086:10CA\0PCI_SLOT_NAME=0000:01:10.2\0SEQNUM=1200\0";
	static const char bind[] =
		"bind@/devices/pci0000:00/0000:00:02.0/0000:01:10.4\0ACTION=bind\0"
		"DEVPATH=/devices/pci0000:00/0000:00:02.0/0000:01:10.4\0SUBSYSTEM=pci\0"
		"DRIVER=vfio-pci\0SEQNUM=1201\0";
	iovm_host_change c;

	assert_int_equal(parse(vf_add, sizeof(vf_add) - 1, &c), 1);
	assert_int_equal(c.kind, IOVM_HOST_CHANGE_PCI);
	assert_int_equal(c.action, IOVM_HOST_ACTION_ADD);
	assert_string_equal(c.pci, "0000:01:10.2");
	assert_string_equal(c.netdev, "");
	assert_int_equal(c.ifindex, 0);

	/* No PCI_SLOT_NAME (bind events carry none): the DEVPATH says. */
	assert_int_equal(parse(bind, sizeof(bind) - 1, &c), 1);
	assert_int_equal(c.action, IOVM_HOST_ACTION_BIND);
	assert_string_equal(c.pci, "0000:01:10.4");
	assert_string_equal(iovm_host_action_to_string(c.action), "bind");

	static const char *const acts[] = { "remove", "change", "unbind", "move", "online" };
	static const iovm_host_action want[] = { IOVM_HOST_ACTION_REMOVE, IOVM_HOST_ACTION_CHANGE,
						 IOVM_HOST_ACTION_UNBIND, IOVM_HOST_ACTION_MOVE,
						 IOVM_HOST_ACTION_OTHER };
	for (size_t i = 0; i < 5; i++) {
		char buf[256];
		int n = snprintf(buf, sizeof(buf), "%s@/devices/pci0000:00/0000:00:01.0/0000:01:00.0", acts[i]);

		n += 1 + snprintf(buf + n + 1, sizeof(buf) - (size_t)n - 1, "ACTION=%s", acts[i]);
		n += 1 + snprintf(buf + n + 1, sizeof(buf) - (size_t)n - 1,
				  "DEVPATH=/devices/pci0000:00/0000:00:01.0/0000:01:00.0");
		n += 1 + snprintf(buf + n + 1, sizeof(buf) - (size_t)n - 1, "SUBSYSTEM=pci");
		n++;
		assert_int_equal(parse(buf, (size_t)n, &c), 1);
		assert_int_equal(c.action, want[i]);
		assert_string_equal(c.pci, "0000:01:00.0");
	}
}

static void test_uevent_net(void **state)
{
	static const char pf[] =
		"change@/devices/pci0000:00/0000:00:02.0/0000:01:00.0/net/eth0\0ACTION=change\0"
		"DEVPATH=/devices/pci0000:00/0000:00:02.0/0000:01:00.0/net/eth0\0SUBSYSTEM=net\0"
		"INTERFACE=eth0\0IFINDEX=3\0SEQNUM=77\0";
	static const char virt[] =
		"add@/devices/virtual/net/veth0\0ACTION=add\0DEVPATH=/devices/virtual/net/veth0\0"
		"SUBSYSTEM=net\0INTERFACE=veth0\0IFINDEX=12\0";
	static const char rename[] =
		"move@/devices/pci0000:00/0000:00:02.0/0000:01:10.2/net/enp1s16f2\0ACTION=move\0"
		"DEVPATH=/devices/pci0000:00/0000:00:02.0/0000:01:10.2/net/enp1s16f2\0"
		"DEVPATH_OLD=/devices/pci0000:00/0000:00:02.0/0000:01:10.2/net/eth2\0SUBSYSTEM=net\0"
		"INTERFACE=enp1s16f2\0IFINDEX=9\0";
	iovm_host_change c;

	assert_int_equal(parse(pf, sizeof(pf) - 1, &c), 1);
	assert_int_equal(c.kind, IOVM_HOST_CHANGE_NET);
	assert_int_equal(c.action, IOVM_HOST_ACTION_CHANGE);
	assert_string_equal(c.pci, "0000:01:00.0");
	assert_string_equal(c.netdev, "eth0");
	assert_int_equal(c.ifindex, 3);

	assert_int_equal(parse(virt, sizeof(virt) - 1, &c), 1);
	assert_string_equal(c.pci, "");
	assert_string_equal(c.netdev, "veth0");
	assert_int_equal(c.ifindex, 12);

	assert_int_equal(parse(rename, sizeof(rename) - 1, &c), 1);
	assert_int_equal(c.action, IOVM_HOST_ACTION_MOVE);
	assert_string_equal(c.pci, "0000:01:10.2");
	assert_string_equal(c.netdev, "enp1s16f2");
}

static void test_uevent_ignored_and_malformed(void **state)
{
	static const char usb[] = "add@/devices/usb1\0ACTION=add\0DEVPATH=/devices/usb1\0SUBSYSTEM=usb\0";
	static const char udev[] = "libudev\0\xfe\xed\xca\xfe";
	static const char no_sub[] = "add@/devices/x\0ACTION=add\0DEVPATH=/devices/x\0";
	static const char no_at[] = "add /devices/x\0ACTION=add\0DEVPATH=/x\0SUBSYSTEM=pci\0";
	static const char unterminated[] = "add@/devices/x\0ACTION=add\0SUBSYSTEM=pci";
	static const char bad_pci[] = "add@/devices/x\0ACTION=add\0DEVPATH=/devices/x\0SUBSYSTEM=pci\0";
	static const char net_noname[] = "add@/devices/virtual/net/x\0ACTION=add\0"
					 "DEVPATH=/devices/virtual/net/x\0SUBSYSTEM=net\0";
	static const char long_name[] = "add@/d\0ACTION=add\0DEVPATH=/d\0SUBSYSTEM=net\0"
					"INTERFACE=abcdefghijklmnopqrstuvwxyz\0";
	iovm_host_change c;

	assert_int_equal(parse(usb, sizeof(usb) - 1, &c), 0);
	assert_int_equal(parse(udev, sizeof(udev) - 1, &c), 0);
	assert_int_equal(parse(no_sub, sizeof(no_sub) - 1, &c), -EBADMSG);
	assert_int_equal(parse(no_at, sizeof(no_at) - 1, &c), -EBADMSG);
	/* sizeof - 1 drops the array's own NUL: the last pair runs off the end. */
	assert_int_equal(parse(unterminated, sizeof(unterminated) - 1, &c), -EBADMSG);
	assert_int_equal(parse(bad_pci, sizeof(bad_pci) - 1, &c), -EBADMSG);
	assert_int_equal(parse(net_noname, sizeof(net_noname) - 1, &c), -EBADMSG);
	assert_int_equal(parse(long_name, sizeof(long_name) - 1, &c), -EBADMSG);
	assert_int_equal(parse("add@x", 5, &c), -EBADMSG);   /* no NUL at all */
	assert_int_equal(iovm_host_uevent_parse(NULL, 0, &c), -EINVAL);
	assert_null(iovm_host_action_to_string((iovm_host_action)99));
}

static void test_monitor_needs_kernel_sysfs(void **state)
{
	ctx *c = *state;
	iovm_host_monitor *m = (iovm_host_monitor *)0x1;
	iovm_error e = {};

	assert_int_equal(iovm_host_monitor_new(c->h, &m, &e), -EOPNOTSUPP);
	assert_ptr_equal(m, (iovm_host_monitor *)0x1);
	assert_non_null(strstr(e.msg, "no uevents"));
	assert_int_equal(iovm_host_monitor_new(NULL, &m, NULL), -EINVAL);
	assert_int_equal(iovm_host_monitor_fd(NULL), -EBADF);
	assert_int_equal(iovm_host_monitor_process(NULL, NULL, NULL), -EINVAL);
	assert_null(iovm_host_monitor_free(NULL));
}

/* A fixture PF's stamp moves with each kind of write a test makes, and
 * only then. */
static void test_pf_stamp(void **state)
{
	ctx *c = *state;
	uint64_t a, b, d0, d1;
	char drv[PATH_MAX * 2];

	assert_int_equal(iovm_pf_stamp(c->h, "0000:01:00.0", &a), 0);
	assert_int_equal(iovm_pf_stamp(c->h, "0000:01:00.0", &b), 0);
	assert_true(a == b);
	assert_int_equal(iovm_pf_stamp(c->h, NULL, &d0), 0);

	/* sriov_numvfs rewritten (same size, so the time or inode says). */
	usleep(20000);
	assert_int_equal(fx_write(&c->fx, "bus/pci/devices/0000:01:00.0/sriov_numvfs", "2\n"), 0);
	assert_int_equal(iovm_pf_stamp(c->h, "0000:01:00.0", &b), 0);
	assert_true(a != b);

	/* An unbound VF gets a driver link (a bind). */
	a = b;
	usleep(20000);
	snprintf(drv, sizeof(drv), "%s", fx_path(&c->fx, "bus/pci/drivers/vfio-pci"));
	assert_int_equal(symlink(drv, fx_path(&c->fx, "bus/pci/devices/0000:01:10.4/driver")), 0);
	assert_int_equal(iovm_pf_stamp(c->h, "01:00.0", &b), 0);
	assert_true(a != b);

	/* The other PF and the device list did not move. */
	assert_int_equal(iovm_pf_stamp(c->h, NULL, &d1), 0);
	assert_true(d0 == d1);
	assert_int_equal(iovm_pf_stamp(c->h, "0000:99:00.0", &a), -ENOENT);
	assert_int_equal(iovm_pf_stamp(c->h, "eth0", &a), -EINVAL);
	assert_int_equal(iovm_pf_stamp(NULL, NULL, &a), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_uevent_pci),
		cmocka_unit_test(test_uevent_net),
		cmocka_unit_test(test_uevent_ignored_and_malformed),
		cmocka_unit_test_setup_teardown(test_monitor_needs_kernel_sysfs, fixture_host_setup,
						fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_pf_stamp, fixture_host_setup, fixture_host_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
