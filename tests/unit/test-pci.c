/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PCI addresses and device facts on the fixture tree. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "iovm/pci.h"
#include "fixtures/fixture.h"

typedef fixture_host ctx;

static void test_addr_normalize(void **state)
{
	char out[IOVM_PCI_ADDR_MAX];
	iovm_error e = {};

	assert_int_equal(iovm_pci_addr_normalize("0000:01:10.2", out, sizeof(out), &e), 0);
	assert_string_equal(out, "0000:01:10.2");
	assert_int_equal(iovm_pci_addr_normalize("01:1F.7", out, sizeof(out), &e), 0);
	assert_string_equal(out, "0000:01:1f.7");
	assert_int_equal(iovm_pci_addr_normalize("ABCD:ff:00.0", out, sizeof(out), &e), 0);
	assert_string_equal(out, "abcd:ff:00.0");
	assert_true(iovm_pci_addr_valid("0000:00:1f.0"));

	static const char *const bad[] = {
		"", "0000:01:10", "0000:01:10.8", "0000:01:20.0", "000:01:10.2", "0000:1:10.2",
		"0000:01:10.2x", "g000:01:10.2", "0000:01:10.-1", "eth0", "0000:01:10.2/../x",
		"0000:01:10:2", " 0000:01:10.2",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		iovm_error_clear(&e);
		strcpy(out, "untouched");
		assert_int_equal(iovm_pci_addr_normalize(bad[i], out, sizeof(out), &e), -EINVAL);
		assert_string_equal(out, "untouched");
		assert_non_null(strstr(e.msg, "malformed"));
		assert_false(iovm_pci_addr_valid(bad[i]));
	}
	assert_int_equal(iovm_pci_addr_normalize(NULL, out, sizeof(out), &e), -EINVAL);
	assert_int_equal(iovm_pci_addr_normalize("0000:01:10.2", out, 5, &e), -EINVAL);
}

static void test_dev_get_pf(void **state)
{
	ctx *c = *state;
	iovm_pci_dev d;
	iovm_error e = {};

	assert_int_equal(iovm_pci_dev_get(c->h, "01:00.0", &d, &e), 0);
	assert_string_equal(d.addr, "0000:01:00.0");
	assert_int_equal(d.vendor, 0x8086);
	assert_int_equal(d.device, 0x10c9);
	assert_string_equal(d.driver, "igb");
	assert_string_equal(d.driver_override, "");
	assert_string_equal(d.netdev, "eth0");
	assert_int_equal(d.numa_node, 0);
	assert_int_equal(d.iommu_group, 2);
}

static void test_dev_get_vf_and_bare(void **state)
{
	ctx *c = *state;
	iovm_pci_dev d;
	iovm_error e = {};

	assert_int_equal(iovm_pci_dev_get(c->h, "0000:01:10.0", &d, &e), 0);
	assert_string_equal(d.driver, "vfio-pci");
	assert_string_equal(d.driver_override, "vfio-pci");
	assert_string_equal(d.netdev, "");
	assert_int_equal(d.numa_node, -1);
	assert_int_equal(d.iommu_group, 3);

	assert_int_equal(iovm_pci_dev_get(c->h, "0000:00:1f.0", &d, &e), 0);
	assert_string_equal(d.driver, "");
	assert_int_equal(d.iommu_group, -1);
}

static void test_dev_get_errors(void **state)
{
	ctx *c = *state;
	iovm_pci_dev d = { .addr = "keep" };
	iovm_error e = {};

	assert_int_equal(iovm_pci_dev_get(c->h, "0000:09:00.0", &d, &e), -ENODEV);
	assert_string_equal(e.msg, "pci device 0000:09:00.0: no such device");
	assert_string_equal(d.addr, "keep");
	assert_int_equal(iovm_pci_dev_get(c->h, "nonsense", &d, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "'nonsense': malformed"));
	/* A device whose vendor id is garbage is reported, not guessed. */
	assert_int_equal(fx_write(&c->fx, "bus/pci/devices/0000:00:1f.0/vendor", "zz\n"), 0);
	assert_int_equal(iovm_pci_dev_get(c->h, "0000:00:1f.0", &d, &e), -EIO);
	assert_string_equal(e.msg, "pci device 0000:00:1f.0: unreadable vendor id");
	assert_int_equal(iovm_pci_dev_get(NULL, "0000:00:1f.0", &d, &e), -EINVAL);
}

static void test_addr_from_netdev(void **state)
{
	ctx *c = *state;
	char out[IOVM_PCI_ADDR_MAX] = "";
	iovm_error e = {};

	assert_int_equal(iovm_pci_addr_from_netdev(c->h, "eth1", out, sizeof(out), &e), 0);
	assert_string_equal(out, "0000:02:00.0");
	assert_int_equal(iovm_pci_addr_from_netdev(c->h, "eth2", out, sizeof(out), &e), 0);
	assert_string_equal(out, "0000:01:10.2");
	assert_int_equal(iovm_pci_addr_from_netdev(c->h, "eth9", out, sizeof(out), &e), -ENODEV);
	assert_non_null(strstr(e.msg, "netdev eth9: no such network device"));
	assert_int_equal(iovm_pci_addr_from_netdev(c->h, "../x", out, sizeof(out), &e), -EINVAL);
	assert_int_equal(iovm_pci_addr_from_netdev(c->h, "..", out, sizeof(out), &e), -EINVAL);
	assert_int_equal(iovm_pci_addr_from_netdev(c->h, "averyveryverylongname", out,
						   sizeof(out), &e), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_addr_normalize),
		cmocka_unit_test_setup_teardown(test_dev_get_pf, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_dev_get_vf_and_bare, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_dev_get_errors, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_addr_from_netdev, fixture_host_setup, fixture_host_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
