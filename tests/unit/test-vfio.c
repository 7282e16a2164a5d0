/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VF binding and IOMMU groups on the fixture tree. For the successful binds
 * the host's write hook plays the kernel's drivers_probe synchronously: it
 * checks that the old driver got an unbind, then binds the device the way
 * pci_device_probe() would: to driver_override if set, else to the host
 * driver only when the PF's sriov_drivers_autoprobe is on. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "iovm/deadline.h"
#include "iovm/sriov.h"
#include "iovm/vfio.h"
#include "lib/host/sysfs.h"
#include "fixtures/fixture.h"

typedef struct ctx {
	fixture fx;
	iovm_host *h;
	int probes;
	char unbound[64];     /* what the last unbind file held at probe time */
} ctx;

static int setup(void **state)
{
	ctx *c = calloc(1, sizeof(*c));

	if (!c || fixture_make(&c->fx) < 0 || iovm_host_new(c->fx.sys, &c->h) < 0)
		return -1;
	*state = c;
	return 0;
}

/* The kernel's drivers_probe, synchronous as the real store() is. */
static void fake_probe(ctx *c, const char *addr)
{
	char rel[PATH_MAX], ov[64], ap[8], link[PATH_MAX];

	c->probes++;
	snprintf(rel, sizeof(rel), "bus/pci/devices/%s/driver", addr);
	/* The unbind file of the driver it had records the unbind. */
	if (readlink(fx_path(&c->fx, rel), link, sizeof(link)) > 0) {
		char urel[PATH_MAX];

		snprintf(urel, sizeof(urel), "bus/pci/devices/%s/driver/unbind", addr);
		fx_read(&c->fx, urel, c->unbound, sizeof(c->unbound));
		if (strcmp(c->unbound, addr) != 0)
			return;   /* not unbound: the kernel leaves it where it is */
		unlink(fx_path(&c->fx, rel));
	}
	snprintf(rel, sizeof(rel), "bus/pci/devices/%s/driver_override", addr);
	fx_read(&c->fx, rel, ov, sizeof(ov));
	fx_read(&c->fx, "bus/pci/devices/0000:01:00.0/sriov_drivers_autoprobe", ap, sizeof(ap));
	/* pci_device_can_probe(): a VF probes only with an override or with
	 * its PF's autoprobe on; without an override the ID tables say igbvf. */
	const char *drv = ov[0] ? ov : (strcmp(ap, "1") == 0 ? "igbvf" : NULL);
	if (!drv)
		return;
	snprintf(link, sizeof(link), "../../../../bus/pci/drivers/%s", drv);
	snprintf(rel, sizeof(rel), "bus/pci/devices/%s/driver", addr);
	if (symlink(link, fx_path(&c->fx, rel)) < 0)
		fprintf(stderr, "fake kernel: symlink failed\n");
}

static int fake_kernel_write(void *userdata, const char *path, const char *value)
{
	ctx *c = userdata;
	size_t len = strlen(path), plen = strlen("drivers_probe");
	int r = iovm_sysfs_write_deadline(path, value, 5000000);

	if (r >= 0 && len >= plen && strcmp(path + len - plen, "drivers_probe") == 0)
		fake_probe(c, value);
	return r;
}

static int start_kernel(ctx *c)
{
	c->h->write_hook = fake_kernel_write;
	c->h->write_hook_data = c;
	return 0;
}

static int teardown(void **state)
{
	ctx *c = *state;

	iovm_host_free(c->h);
	fixture_remove(&c->fx);
	free(c);
	return 0;
}

static void test_group_path(void **state)
{
	ctx *c = *state;
	char p[32] = "keep";
	iovm_error e = {};

	assert_int_equal(iovm_vfio_group_path(c->h, "0000:01:10.0", p, sizeof(p), &e), 0);
	assert_string_equal(p, "/dev/vfio/3");
	assert_int_equal(iovm_vfio_group_path(c->h, "01:10.4", p, sizeof(p), &e), 0);
	assert_string_equal(p, "/dev/vfio/7");
	assert_int_equal(iovm_vfio_group_path(c->h, "0000:01:10.0", p, 5, &e), -ENOBUFS);
	assert_string_equal(p, "/dev/vfio/7");
	assert_int_equal(iovm_vfio_group_path(c->h, "0000:00:1f.0", p, sizeof(p), &e), -ENODEV);
	assert_non_null(strstr(e.msg, "vf 0000:00:1f.0: no IOMMU group"));
	assert_int_equal(iovm_vfio_group_path(c->h, "0000:0a:00.0", p, sizeof(p), &e), -ENODEV);
	assert_int_equal(iovm_vfio_group_path(c->h, "junk", p, sizeof(p), &e), -EINVAL);
	assert_int_equal(iovm_vfio_group_path(c->h, "0000:01:10.0", NULL, 0, &e), -EINVAL);
}

static void test_group_check(void **state)
{
	ctx *c = *state;
	iovm_error e = {};

	assert_int_equal(iovm_vfio_group_check(c->h, "0000:01:10.0", &e), 0);
	/* The VF itself on igbvf makes its group not viable for VFIO. */
	assert_int_equal(iovm_vfio_group_check(c->h, "0000:01:10.2", &e), -EBUSY);
	assert_string_equal(e.msg, "vf 0000:01:10.2: IOMMU group 4 not viable "
			    "(0000:01:10.2 bound to igbvf)");
	assert_int_equal(iovm_vfio_group_check(c->h, "0000:01:10.4", &e), -EBUSY);
	assert_string_equal(e.msg, "vf 0000:01:10.4: IOMMU group 7 not viable "
			    "(0000:00:1f.2 bound to ahci)");
	/* pcieport shares groups with VFIO users (driver_managed_dma). */
	assert_int_equal(iovm_vfio_group_check(c->h, "0000:00:01.0", &e), 0);
	assert_int_equal(iovm_vfio_group_check(c->h, "0000:00:1f.0", &e), -ENODEV);
}

static void test_bind_refusals(void **state)
{
	ctx *c = *state;
	char buf[64];
	iovm_error e = {};

	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.0", NULL, &e), -EBUSY);
	assert_string_equal(e.msg, "vf 0000:01:10.0: bind to host driver refused: device busy "
			    "(vfio group 3 open by pid 4242 (qemu-system-x86))");
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.2", "vfio-pci", &e), -EBUSY);
	assert_string_equal(e.msg, "vf 0000:01:10.2: bind to vfio-pci refused: device busy "
			    "(netdev eth2 is up)");
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.4", "vfio-pci", &e), -EBUSY);
	assert_string_equal(e.msg, "bind to vfio-pci refused: vf 0000:01:10.4: IOMMU group 7 not "
			    "viable (0000:00:1f.2 bound to ahci)");
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.4", "mlx5_core", &e), -ENOENT);
	assert_string_equal(e.msg, "vf 0000:01:10.4: bind to mlx5_core failed: driver missing "
			    "(modprobe mlx5_core)");
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.4", "../igb", &e), -EINVAL);
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.4", "", &e), -EINVAL);
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:1f.4", "vfio-pci", &e), -ENODEV);
	assert_int_equal(iovm_vf_bind(c->h, "01:10", "vfio-pci", &e), -EINVAL);
	assert_int_equal(iovm_vf_bind(NULL, "0000:01:10.4", "vfio-pci", &e), -EINVAL);
	/* None of these touched the device. */
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:01:10.2/driver_override", buf,
				    sizeof(buf)), "(null)");
	/* Already where asked: a verified no-op. */
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.0", "vfio-pci", &e), 0);
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.2", NULL, &e), 0);
}

static void test_bind_not_verified(void **state)
{
	ctx *c = *state;
	iovm_error e = {};

	/* drivers_probe is a plain file here: nothing binds, and that is caught. */
	assert_int_equal(fx_write(&c->fx, "class/net/eth2/flags", "0x1002"), 0);
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.2", "vfio-pci", &e), -EIO);
	assert_string_equal(e.msg, "vf 0000:01:10.2: bind to vfio-pci failed: device is bound "
			    "to igbvf after probe (see the kernel log)");
}

static void test_bind_roundtrip(void **state)
{
	ctx *c = *state;
	char buf[64];
	iovm_error e = {};

	assert_int_equal(start_kernel(c), 0);
	assert_int_equal(fx_write(&c->fx, "class/net/eth2/flags", "0x1002"), 0);
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.2", "vfio-pci", &e), 0);
	assert_string_equal(c->unbound, "0000:01:10.2");
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:01:10.2/driver_override", buf,
				    sizeof(buf)), "vfio-pci");
	assert_int_equal(iovm_vfio_group_check(c->h, "0000:01:10.2", &e), 0);

	/* Back to the host driver with autoprobe off: the override is cleared
	 * and autoprobe is on only around the probe. */
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.2", NULL, &e), 0);
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:01:10.2/driver_override", buf,
				    sizeof(buf)), "");
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:01:00.0/sriov_drivers_autoprobe", buf, sizeof(buf)), "0");
	assert_int_equal(c->probes, 2);

	/* An unbound VF binds without an unbind step. */
	assert_int_equal(unlink(fx_path(&c->fx, "bus/pci/devices/0000:00:1f.2/driver")), 0);
	int r = iovm_vf_bind(c->h, "0000:01:10.4", "vfio-pci", &e);
	if (r < 0)
		print_message("bind 0000:01:10.4: %s\n", e.msg);
	assert_int_equal(r, 0);
	assert_int_equal(c->probes, 3);
}

/* After a live resize's re-create: only the VFs without a driver that no
 * VM holds are bound, and the host kind turns autoprobe back on. */
static void test_pf_bind_vfs(void **state)
{
	ctx *c = *state;
	const char *held[] = { "0000:01:10.2" };
	char buf[64];
	iovm_error e = {};

	assert_int_equal(start_kernel(c), 0);
	assert_int_equal(unlink(fx_path(&c->fx, "bus/pci/devices/0000:01:10.2/driver")), 0);
	assert_int_equal(iovm_pf_bind_vfs(c->h, "eth0", IOVM_VF_DRIVER_NONE, held, 1, &e), 0);
	assert_int_equal(c->probes, 0);
	assert_int_equal(iovm_pf_bind_vfs(c->h, "eth0", IOVM_VF_DRIVER_HOST, NULL, 1, &e), -EINVAL);
	assert_int_equal(iovm_pf_bind_vfs(c->h, "eth0", IOVM_VF_DRIVER_HOST, held, 1, &e), 0);
	assert_int_equal(c->probes, 1);
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:01:10.4/driver_override", buf, sizeof(buf)), "");
	assert_int_equal(readlink(fx_path(&c->fx, "bus/pci/devices/0000:01:10.2/driver"), buf, sizeof(buf)), -1);
	assert_int_equal(readlink(fx_path(&c->fx, "bus/pci/devices/0000:01:10.0/driver"), buf, sizeof(buf)) > 0, 1);
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:01:00.0/sriov_drivers_autoprobe", buf, sizeof(buf)),
			    "1");
	/* Nothing left without a driver but the held one: no probe. */
	assert_int_equal(iovm_pf_bind_vfs(c->h, "eth0", IOVM_VF_DRIVER_HOST, held, 1, &e), 0);
	assert_int_equal(c->probes, 1);
	/* Without the skip list the held one is bound too. */
	assert_int_equal(iovm_pf_bind_vfs(c->h, "eth0", IOVM_VF_DRIVER_HOST, NULL, 0, &e), 0);
	assert_int_equal(c->probes, 2);
}

static void test_host_driver_missing(void **state)
{
	ctx *c = *state;
	iovm_error e = {};

	/* The fake kernel binds a host driver only with autoprobe on. With the
	 * PF attribute unreadable (a directory) no toggle happens, nothing
	 * binds, and that is reported as a missing driver, not as success. */
	assert_int_equal(start_kernel(c), 0);
	const char *ap = fx_path(&c->fx, "bus/pci/devices/0000:01:00.0/sriov_drivers_autoprobe");
	assert_int_equal(unlink(ap), 0);
	assert_int_equal(mkdir(ap, 0755), 0);
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.4", NULL, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "vf 0000:01:10.4: bind to host driver failed: driver missing"));
}

/* modprobe played by the host's hook: fails, loads nothing, or registers
 * the driver as module init would. */
typedef struct modprobe_play {
	ctx *c;
	int calls;
	int mode;   /* 0 fails, 1 loads nothing, 2 registers the driver */
	char module[64];
} modprobe_play;

static int fake_modprobe(void *userdata, const char *module, char *why, size_t n)
{
	modprobe_play *m = userdata;
	char rel[PATH_MAX];

	m->calls++;
	snprintf(m->module, sizeof(m->module), "%s", module);
	if (m->mode == 0) {
		snprintf(why, n, "modprobe: FATAL: Module %s not found in directory /lib/modules/6.1.0", module);
		return -EIO;
	}
	if (m->mode == 2) {
		snprintf(rel, sizeof(rel), "bus/pci/drivers/%s", module);
		if (mkdir(fx_path(&m->c->fx, rel), 0755) < 0)
			return -errno;
	}
	return 0;
}

static void test_bind_loads_driver(void **state)
{
	ctx *c = *state;
	modprobe_play m = { .c = c };
	iovm_error e = {};

	assert_int_equal(start_kernel(c), 0);
	assert_int_equal(fx_write(&c->fx, "class/net/eth2/flags", "0x1002"), 0);
	c->h->modprobe_hook = fake_modprobe;
	c->h->modprobe_hook_data = &m;
	/* vfio-pci not loaded. */
	assert_int_equal(unlink(fx_path(&c->fx, "bus/pci/drivers/vfio-pci/bind")), 0);
	assert_int_equal(unlink(fx_path(&c->fx, "bus/pci/drivers/vfio-pci/unbind")), 0);
	assert_int_equal(rmdir(fx_path(&c->fx, "bus/pci/drivers/vfio-pci")), 0);

	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.2", "vfio-pci", &e), -EIO);
	assert_string_equal(e.msg, "vf 0000:01:10.2: bind to vfio-pci failed: vfio-pci could not "
			    "be loaded: modprobe: FATAL: Module vfio-pci not found in directory "
			    "/lib/modules/6.1.0");
	assert_int_equal(c->probes, 0);

	m.mode = 1;
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.2", "vfio-pci", &e), -ENOENT);
	assert_non_null(strstr(e.msg, "vfio-pci could not be loaded: modprobe succeeded but no PCI "
			       "driver vfio-pci is registered"));
	assert_int_equal(c->probes, 0);

	m.mode = 2;
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.2", "vfio-pci", &e), 0);
	assert_string_equal(m.module, "vfio-pci");
	assert_int_equal(m.calls, 3);
	assert_int_equal(c->probes, 1);
	/* Loaded now: no second modprobe. */
	assert_int_equal(iovm_vf_bind(c->h, "0000:01:10.2", "vfio-pci", &e), 0);
	assert_int_equal(m.calls, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_group_path, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_check, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pf_bind_vfs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_not_verified, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_roundtrip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_host_driver_missing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bind_loads_driver, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
