/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* SR-IOV inventory and VF count changes on the fixture tree (see
 * fixtures/make-sysfs.sh for its shape). The kernel's side of a successful
 * resize is a lab test; here: parsing and every refusal. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "iovm/sriov.h"
#include "lib/host/sysfs.h"
#include "fixtures/fixture.h"

typedef fixture_host ctx;

static void test_pf_list(void **state)
{
	ctx *c = *state;
	iovm_pf *pfs = NULL;
	size_t n = 0;
	iovm_error e = {};

	assert_int_equal(iovm_pf_list(c->h, &pfs, &n, &e), 0);
	/* Only SR-IOV capable devices, sorted by address. */
	assert_int_equal(n, 3);
	assert_string_equal(pfs[0].addr, "0000:01:00.0");
	assert_string_equal(pfs[1].addr, "0000:02:00.0");
	assert_string_equal(pfs[2].addr, "0000:03:00.0");

	assert_string_equal(pfs[0].netdev, "eth0");
	assert_string_equal(pfs[0].driver, "igb");
	assert_int_equal(pfs[0].vendor, 0x8086);
	assert_int_equal(pfs[0].device, 0x10c9);
	assert_int_equal(pfs[0].vf_device, 0x10ca);
	assert_int_equal(pfs[0].total_vfs, 7);
	assert_int_equal(pfs[0].num_vfs, 3);
	assert_false(pfs[0].num_vfs_from_links);
	assert_int_equal(pfs[0].vf_offset, 128);
	assert_int_equal(pfs[0].vf_stride, 2);
	assert_int_equal(pfs[0].numa_node, 0);
	assert_false(pfs[0].drivers_autoprobe);
	assert_string_equal(pfs[0].operstate, "up");
	assert_true(pfs[0].admin_up);

	assert_string_equal(pfs[1].operstate, "down");
	assert_false(pfs[1].admin_up);
	assert_true(pfs[1].drivers_autoprobe);
	assert_int_equal(pfs[1].num_vfs, 0);
	assert_string_equal(pfs[2].driver, "");
	assert_string_equal(pfs[2].netdev, "");
	assert_int_equal(pfs[2].total_vfs, 4);
	free(pfs);
}

static void test_pf_get_by_name(void **state)
{
	ctx *c = *state;
	iovm_pf pf;
	iovm_error e = {};
	char addr[IOVM_PCI_ADDR_MAX];

	assert_int_equal(iovm_pf_get(c->h, "eth1", &pf, &e), 0);
	assert_string_equal(pf.addr, "0000:02:00.0");
	assert_int_equal(iovm_pf_get(c->h, "02:00.0", &pf, &e), 0);
	assert_string_equal(pf.netdev, "eth1");
	assert_int_equal(iovm_pf_resolve(c->h, "eth0", addr, sizeof(addr), &e), 0);
	assert_string_equal(addr, "0000:01:00.0");
}

static void test_pf_errors(void **state)
{
	ctx *c = *state;
	iovm_pf pf;
	iovm_error e = {};

	assert_int_equal(iovm_pf_get(c->h, "eth7", &pf, &e), -ENODEV);
	assert_non_null(strstr(e.msg, "eth7"));
	assert_int_equal(iovm_pf_get(c->h, "0000:09:00.0", &pf, &e), -ENODEV);
	assert_string_equal(e.msg, "pf 0000:09:00.0: no such PCI device");
	assert_int_equal(iovm_pf_get(c->h, "0000:01:0x.0", &pf, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "malformed"));
	assert_int_equal(iovm_pf_get(c->h, "0000:00:1f.0", &pf, &e), -EOPNOTSUPP);
	assert_string_equal(e.msg, "pf 0000:00:1f.0: not SR-IOV capable (no sriov_totalvfs)");
	/* A VF's netdev names a device, but not a PF. */
	assert_int_equal(iovm_pf_get(c->h, "eth2", &pf, &e), -EOPNOTSUPP);
	assert_int_equal(iovm_pf_get(c->h, NULL, &pf, &e), -EINVAL);
}

static void test_vf_list(void **state)
{
	ctx *c = *state;
	iovm_vf *vfs = NULL;
	size_t n = 0;
	iovm_error e = {};

	assert_int_equal(iovm_vf_list(c->h, "eth0", &vfs, &n, &e), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(vfs[i].index, i);
		assert_string_equal(vfs[i].pf_addr, "0000:01:00.0");
		assert_string_equal(vfs[i].pf_netdev, "eth0");
		assert_int_equal(vfs[i].device, 0x10ca);
	}
	assert_string_equal(vfs[0].addr, "0000:01:10.0");
	assert_string_equal(vfs[0].driver, "vfio-pci");
	assert_string_equal(vfs[0].driver_override, "vfio-pci");
	assert_int_equal(vfs[0].iommu_group, 3);
	assert_int_equal(vfs[0].n_group_peers, 0);
	assert_string_equal(vfs[1].addr, "0000:01:10.2");
	assert_string_equal(vfs[1].driver, "igbvf");
	assert_string_equal(vfs[1].netdev, "eth2");
	assert_string_equal(vfs[2].addr, "0000:01:10.4");
	assert_string_equal(vfs[2].driver, "");
	assert_int_equal(vfs[2].iommu_group, 7);
	assert_int_equal(vfs[2].n_group_peers, 1);
	assert_string_equal(vfs[2].group_peers[0], "0000:00:1f.2");
	free(vfs);

	/* All PFs: the other PFs have none. */
	assert_int_equal(iovm_vf_list(c->h, NULL, &vfs, &n, &e), 0);
	assert_int_equal(n, 3);
	free(vfs);
	assert_int_equal(iovm_vf_list(c->h, "eth1", &vfs, &n, &e), 0);
	assert_int_equal(n, 0);
	free(vfs);
	assert_int_equal(iovm_vf_list(c->h, "0000:00:1f.0", &vfs, &n, &e), -EOPNOTSUPP);
}

static void test_vf_get(void **state)
{
	ctx *c = *state;
	iovm_vf vf;
	iovm_error e = {};

	assert_int_equal(iovm_vf_get(c->h, "01:10.2", &vf, &e), 0);
	assert_int_equal(vf.index, 1);
	assert_string_equal(vf.pf_addr, "0000:01:00.0");
	assert_int_equal(iovm_vf_by_index(c->h, "eth0", 2, &vf, &e), 0);
	assert_string_equal(vf.addr, "0000:01:10.4");
	assert_int_equal(iovm_vf_by_index(c->h, "eth0", 3, &vf, &e), -ENODEV);
	assert_string_equal(e.msg, "pf 0000:01:00.0: no VF 3");
	assert_int_equal(iovm_vf_get(c->h, "0000:01:00.0", &vf, &e), -ENODEV);
	assert_string_equal(e.msg, "vf 0000:01:00.0: not a virtual function (no physfn)");
	assert_int_equal(iovm_vf_get(c->h, "0000:01:10.6", &vf, &e), -ENODEV);
	assert_string_equal(e.msg, "vf 0000:01:10.6: no such device");
}

static void test_users(void **state)
{
	ctx *c = *state;
	char u[256];
	iovm_error e = {};

	assert_int_equal(iovm_vf_users(c->h, "0000:01:10.0", u, sizeof(u), &e), 1);
	assert_string_equal(u, "vfio group 3 open by pid 4242 (qemu-system-x86)");
	assert_int_equal(iovm_vf_users(c->h, "0000:01:10.2", u, sizeof(u), &e), 1);
	assert_string_equal(u, "netdev eth2 is up");
	/* An upper device (macvtap for a shared VF) counts too. */
	assert_int_equal(mkdir(fx_path(&c->fx, "class/net/eth2/upper_macvtap0"), 0755), 0);
	assert_int_equal(iovm_vf_users(c->h, "0000:01:10.2", u, sizeof(u), &e), 2);
	assert_string_equal(u, "netdev eth2 is up; netdev eth2 has upper device macvtap0");
	assert_int_equal(iovm_vf_users(c->h, "0000:01:10.4", u, sizeof(u), &e), 0);
	assert_string_equal(u, "");
	/* Truncation keeps a marker. */
	assert_int_equal(iovm_vf_users(c->h, "0000:01:10.0", u, 12, &e), 1);
	assert_string_equal(u, "vfio gro...");
	assert_int_equal(iovm_vf_users(c->h, "0000:01:10.0", NULL, 0, &e), 1);
	assert_int_equal(iovm_vf_users(c->h, "0000:05:00.0", u, sizeof(u), &e), -ENODEV);
	/* A removal waiting for the VMM has already dropped the driver link:
	 * the open group still makes it a user. */
	assert_int_equal(unlink(fx_path(&c->fx, "bus/pci/devices/0000:01:10.0/driver")), 0);
	assert_int_equal(iovm_vf_users(c->h, "0000:01:10.0", u, sizeof(u), &e), 1);
	assert_string_equal(u, "vfio group 3 open by pid 4242 (qemu-system-x86)");
	/* The holder goes away: free. */
	assert_int_equal(unlink(fx_path(&c->fx, "../proc/4242/fd/7")), 0);
	assert_int_equal(iovm_vf_users(c->h, "0000:01:10.0", u, sizeof(u), &e), 0);
}

static void test_set_numvfs_refusals(void **state)
{
	ctx *c = *state;
	char buf[32];
	iovm_error e = {};

	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth0", 8, IOVM_VF_DRIVER_VFIO, 0, &e), -ERANGE);
	assert_string_equal(e.msg, "pf 0000:01:00.0: VF count 8 above sriov_totalvfs 7");
	assert_int_equal(iovm_pf_set_numvfs(c->h, "0000:03:00.0", 2, IOVM_VF_DRIVER_HOST, 0, &e),
			 -ENOENT);
	assert_non_null(strstr(e.msg, "pf 0000:03:00.0: driver missing"));
	assert_int_equal(iovm_pf_set_numvfs(c->h, "0000:00:1f.0", 1, IOVM_VF_DRIVER_HOST, 0, &e),
			 -EOPNOTSUPP);
	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth0", 1, 7, 0, &e), -EINVAL);
	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth0", 1, IOVM_VF_DRIVER_HOST, 0x10, &e), -EINVAL);

	/* 3 -> 5 goes through 0: refused, naming each user, nothing written. */
	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth0", 5, IOVM_VF_DRIVER_VFIO, 0, &e), -EBUSY);
	assert_string_equal(e.msg, "pf 0000:01:00.0: refusing to change VF count 3 -> 5: device "
			    "busy: VFs in use (vf 0 0000:01:10.0: vfio group 3 open by pid 4242 "
			    "(qemu-system-x86); vf 1 0000:01:10.2: netdev eth2 is up)");
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:01:00.0/sriov_numvfs", buf,
				    sizeof(buf)), "3");
	assert_int_equal(iovm_pf_remove_vfs(c->h, "eth0", 0, &e), -EBUSY);
	/* Same count: nothing to do, even with users. */
	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth0", 3, IOVM_VF_DRIVER_VFIO, 0, &e), 0);
}

static void test_set_numvfs_sequence(void **state)
{
	ctx *c = *state;
	char buf[32];
	iovm_error e = {};

	/* Forced: writes 0, sets autoprobe off for vfio, writes 2. The fixture
	 * is no kernel, so the virtfn links stay at 3 and that is reported. */
	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth0", 2, IOVM_VF_DRIVER_VFIO,
					    IOVM_SRIOV_FORCE, &e), -EIO);
	assert_string_equal(e.msg, "pf 0000:01:00.0: asked for 2 VFs, the kernel shows 3");
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:01:00.0/sriov_numvfs", buf,
				    sizeof(buf)), "2");
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:01:00.0/sriov_drivers_autoprobe",
				    buf, sizeof(buf)), "0");
	/* The host driver kind creates with autoprobe off too (eth1 starts
	 * with it on), and binds after the store; the fixture shows no VFs,
	 * so it stops there. */
	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth1", 1, IOVM_VF_DRIVER_HOST, 0, &e), -EIO);
	assert_string_equal(e.msg, "pf 0000:02:00.0: asked for 1 VFs, the kernel shows 0");
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:02:00.0/sriov_drivers_autoprobe",
				    buf, sizeof(buf)), "0");
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:02:00.0/sriov_numvfs", buf,
				    sizeof(buf)), "1");
}

/* RTM_SETLINK IFF_UP played on the fixture: the netdev's flags file. */
typedef struct link_play {
	ctx *c;
	int calls;
	int fail;
	int noop;   /* accepts, changes nothing */
	char ifname[16];
} link_play;

static int fake_link_up(void *userdata, const char *ifname)
{
	link_play *l = userdata;
	char rel[64];

	l->calls++;
	snprintf(l->ifname, sizeof(l->ifname), "%s", ifname);
	if (l->fail)
		return -EPERM;
	if (l->noop)
		return 0;
	snprintf(rel, sizeof(rel), "class/net/%s/flags", ifname);
	return fx_write(&l->c->fx, rel, "0x1003");
}

static void test_set_numvfs_pf_up(void **state)
{
	ctx *c = *state;
	link_play l = { .c = c, .fail = 1 };
	char buf[32];
	iovm_error e = {};

	c->h->link_up_hook = fake_link_up;
	c->h->link_up_hook_data = &l;
	/* eth1 is down: it cannot be brought up, so no VF is created. */
	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth1", 1, IOVM_VF_DRIVER_VFIO, 0, &e), -EPERM);
	assert_string_equal(e.msg, "pf 0000:02:00.0: cannot bring its netdev eth1 up before creating "
			    "VFs (their driver's reset handshake needs the PF driver open): "
			    "Operation not permitted");
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:02:00.0/sriov_numvfs", buf,
				    sizeof(buf)), "0");
	/* Brought up first, then the VFs are created (the fixture shows none). */
	l.fail = 0;
	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth1", 1, IOVM_VF_DRIVER_VFIO, 0, &e), -EIO);
	assert_string_equal(e.msg, "pf 0000:02:00.0: asked for 1 VFs, the kernel shows 0");
	assert_string_equal(l.ifname, "eth1");
	assert_int_equal(l.calls, 2);
	assert_string_equal(fx_read(&c->fx, "class/net/eth1/flags", buf, sizeof(buf)), "0x1003");
	/* Accepted, but the netdev is down after the store: the VFs are not
	 * ready. */
	assert_int_equal(fx_write(&c->fx, "bus/pci/devices/0000:02:00.0/sriov_numvfs", "0"), 0);
	assert_int_equal(fx_write(&c->fx, "class/net/eth1/flags", "0x1002"), 0);
	l.noop = 1;
	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth1", 1, IOVM_VF_DRIVER_VFIO, 0, &e), -EIO);
	assert_non_null(strstr(e.msg, "pf 0000:02:00.0: created 1 VFs, but its netdev eth1 is down"));
	/* eth0 is up: never touched. */
	l.calls = 0;
	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth0", 2, IOVM_VF_DRIVER_VFIO, IOVM_SRIOV_FORCE, &e),
			 -EIO);
	assert_int_equal(l.calls, 0);
}

/* The PF's carrier, as a live resize waits for it before nudging guests. */
static void test_pf_wait_carrier(void **state)
{
	ctx *c = *state;
	iovm_error e = {};

	assert_int_equal(fx_write(&c->fx, "class/net/eth0/carrier", "1\n"), 0);
	assert_int_equal(iovm_pf_wait_carrier(c->h, "eth0", 0, &e), 1);
	assert_int_equal(iovm_pf_wait_carrier(c->h, "0000:01:00.0", 1000, &e), 1);
	/* No carrier: 0 at the deadline, also when it cannot be read yet. */
	assert_int_equal(fx_write(&c->fx, "class/net/eth0/carrier", "0\n"), 0);
	assert_int_equal(iovm_pf_wait_carrier(c->h, "eth0", 30, &e), 0);
	assert_int_equal(fx_write(&c->fx, "class/net/eth0/carrier", ""), 0);
	assert_int_equal(iovm_pf_wait_carrier(c->h, "eth0", 0, &e), 0);
	/* Nothing to wait for: a netdev down, or none. */
	assert_int_equal(iovm_pf_wait_carrier(c->h, "eth1", 1000, &e), -ENETDOWN);
	assert_string_equal(e.msg, "pf 0000:02:00.0: its netdev eth1 is down: no carrier to wait for");
	assert_int_equal(iovm_pf_wait_carrier(c->h, "0000:03:00.0", 1000, &e), -ENODEV);
	assert_string_equal(e.msg, "pf 0000:03:00.0: no netdev: no carrier to wait for");
	assert_int_equal(iovm_pf_wait_carrier(c->h, "0000:09:00.0", 0, &e), -ENODEV);
	assert_int_equal(iovm_pf_wait_carrier(c->h, "eth0", -1, &e), -EINVAL);
}

static void test_numvfs_locked(void **state)
{
	ctx *c = *state;
	const char *p = fx_path(&c->fx, "bus/pci/devices/0000:01:00.0/sriov_numvfs");
	iovm_pf pf;
	iovm_error e = {};

	/* A FIFO nobody writes: reading it blocks like sriov_numvfs_show()
	 * waiting for the device lock of a PF in the middle of a resize. */
	assert_int_equal(unlink(p), 0);
	assert_int_equal(mkfifo(p, 0600), 0);
	assert_int_equal(iovm_host_set_timeout(c->h, IOVM_TIMEOUT_READ, 100000), 0);
	assert_int_equal(iovm_pf_get(c->h, "eth0", &pf, &e), 0);
	assert_true(pf.num_vfs_from_links);
	assert_int_equal(pf.num_vfs, 3);
	assert_int_equal(iovm_pf_set_numvfs(c->h, "eth0", 0, IOVM_VF_DRIVER_NONE, 0, &e), -ETIMEDOUT);
	assert_non_null(strstr(e.msg, "pf 0000:01:00.0: reading sriov_numvfs timed out"));
}

static void test_driver_override_locked(void **state)
{
	ctx *c = *state;
	iovm_vf vf;
	iovm_pf pf;
	iovm_error e = {};

	/* driver_override_show() takes the device lock: a FIFO nobody writes
	 * stands in for a VF (and PF) whose lock a pending removal holds. */
	static const char *const files[] = {
		"bus/pci/devices/0000:01:10.0/driver_override",
		"bus/pci/devices/0000:01:00.0/driver_override",
	};
	for (size_t i = 0; i < 2; i++) {
		assert_int_equal(unlink(fx_path(&c->fx, files[i])), 0);
		assert_int_equal(mkfifo(fx_path(&c->fx, files[i]), 0600), 0);
	}
	assert_int_equal(iovm_host_set_timeout(c->h, IOVM_TIMEOUT_READ, 100000), 0);
	assert_int_equal(iovm_vf_get(c->h, "0000:01:10.0", &vf, &e), 0);
	assert_true(vf.locked);
	assert_string_equal(vf.driver_override, "");
	assert_string_equal(vf.driver, "vfio-pci");
	/* A generous deadline for reads that do answer: a forked reader on a
	 * loaded machine can take longer than the 100 ms that stood for a
	 * held lock above. */
	assert_int_equal(iovm_host_set_timeout(c->h, IOVM_TIMEOUT_READ, 10000000), 0);
	assert_int_equal(iovm_vf_get(c->h, "0000:01:10.2", &vf, &e), 0);
	assert_false(vf.locked);
	/* The PF's own override is never read, so its inventory is complete. */
	assert_int_equal(iovm_pf_get(c->h, "eth0", &pf, &e), 0);
	assert_int_equal(pf.num_vfs, 3);
	assert_false(pf.num_vfs_from_links);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pf_list, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_set_numvfs_pf_up, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_pf_get_by_name, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_pf_errors, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_vf_list, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_vf_get, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_users, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_set_numvfs_refusals, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_set_numvfs_sequence, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_pf_wait_carrier, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_numvfs_locked, fixture_host_setup, fixture_host_teardown),
		cmocka_unit_test_setup_teardown(test_driver_override_locked, fixture_host_setup, fixture_host_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
