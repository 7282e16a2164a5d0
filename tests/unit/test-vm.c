/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * VM attach/detach logic: the pure helpers on query-pci replies captured
 * from QEMU 10.0.2 (tests/unit/fixtures/qmp: "booted" after the firmware
 * numbered the buses, "prestart" under -S), the VF pool, and the attach and
 * detach sequences against a scripted fake QEMU (no host: sysfs is not
 * touched here; the lab tests cover that).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "iovm/vm.h"
#include "fake-qmp.h"

#define VF "0000:01:10.2"
#define DEVID "iovm-0000-01-10.2"

static json_object *fixture(const char *name)
{
	char path[512];
	json_object *o;

	snprintf(path, sizeof(path), "%s/qmp/%s", FIXTURES_DIR, name);
	o = json_object_from_file(path);
	assert_non_null(o);
	return o;
}

/* The booted fixture with a vfio-pci device devid behind port. */
static json_object *with_device(const char *port, const char *devid)
{
	return query_pci_with(port, devid);
}

/* "{"return": JSON, "id": $N}\r\n", owned by a small arena freed per test. */
static char *arena[16];
static int narena;

static const char *reply(json_object *ret, int n)
{
	char *s;

	assert_true(asprintf(&s, "{\"return\": %s, \"id\": $%d}\r\n",
			     json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN), n) > 0);
	json_object_put(ret);
	assert_true(narena < 16);
	return arena[narena++] = s;
}

static int teardown_arena(void **state)
{
	while (narena > 0)
		free(arena[--narena]);
	return 0;
}

static void test_device_id(void **state)
{
	char id[IOVM_VM_ID_MAX], path[128];

	assert_int_equal(iovm_vm_device_id(VF, id, sizeof(id)), 0);
	assert_string_equal(id, DEVID);
	assert_int_equal(iovm_vm_device_id("0000:01:10.2;x", id, sizeof(id)), -EINVAL);
	assert_int_equal(iovm_vm_device_id(VF, id, 8), -ENAMETOOLONG);
	assert_int_equal(iovm_vm_device_id(NULL, id, sizeof(id)), -EINVAL);
	assert_int_equal(iovm_vm_device_path(DEVID, path, sizeof(path)), 0);
	assert_string_equal(path, "/machine/peripheral/" DEVID);
}

static void test_ports_booted(void **state)
{
	json_object *pci = fixture("query-pci-booted.json");
	iovm_vm_port *p = NULL;
	size_t n = 0;
	char port[IOVM_VM_ID_MAX];

	assert_int_equal(iovm_vm_ports_parse(pci, &p, &n, NULL), 0);
	/* hp1..hp4 and rp0; the multi-slot pci-bridge pb0 is not a port. */
	assert_int_equal(n, 5);
	assert_string_equal(p[0].id, "hp1");
	assert_int_equal(p[0].slot, 2);
	assert_int_equal(p[0].secondary, 1);
	assert_int_equal(p[0].n_devices, 0);
	assert_string_equal(p[1].id, "hp2");
	assert_int_equal(p[1].n_devices, 1);
	assert_string_equal(p[1].first_device, "vnet1");
	assert_string_equal(p[4].id, "rp0");
	assert_string_equal(p[4].first_device, "net0");
	free(p);
	assert_int_equal(iovm_vm_pci_find(pci, "vnet1", port, sizeof(port)), 0);
	assert_string_equal(port, "hp2");
	assert_int_equal(iovm_vm_pci_find(pci, "hp3", port, sizeof(port)), 0);
	assert_string_equal(port, "");
	assert_int_equal(iovm_vm_pci_find(pci, DEVID, port, sizeof(port)), -ENOENT);
	json_object_put(pci);
	pci = with_device("hp4", DEVID);
	assert_int_equal(iovm_vm_pci_find(pci, DEVID, port, sizeof(port)), 0);
	assert_string_equal(port, "hp4");
	json_object_put(pci);
}

static void test_ports_prestart(void **state)
{
	json_object *pci = fixture("query-pci-prestart.json");
	iovm_vm_port *p = NULL;
	size_t n = 0;

	assert_int_equal(iovm_vm_ports_parse(pci, &p, &n, NULL), 0);
	assert_int_equal(n, 5);
	/* Before the firmware ran, QEMU cannot show what is behind a port. */
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(p[i].secondary, 0);
		assert_int_equal(p[i].n_devices, 0);
	}
	free(p);
	assert_int_equal(iovm_vm_pci_find(pci, "vnet1", NULL, 0), -ENOENT);
	json_object_put(pci);
}

static void test_ports_malformed(void **state)
{
	const char *bad[] = { "{}", "[1]", "[{\"bus\": 0}]", "[{\"devices\": {}}]", "[{\"devices\": [3]}]" };
	iovm_vm_port *p = (iovm_vm_port *)&p;
	iovm_error e = {};
	size_t n = 77;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		json_object *o = json_tokener_parse(bad[i]);

		assert_int_equal(iovm_vm_ports_parse(o, &p, &n, &e), -EBADMSG);
		assert_ptr_equal(p, &p);
		assert_int_equal(n, 77);
		assert_non_null(strstr(e.msg, "query-pci"));
		json_object_put(o);
	}
}

static void test_device_add_args(void **state)
{
	json_object *a = iovm_vm_device_add_args(VF, DEVID, "hp1", NULL);

	assert_string_equal(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN),
			    "{\"driver\":\"vfio-pci\",\"host\":\"" VF "\",\"id\":\"" DEVID "\",\"bus\":\"hp1\"}");
	json_object_put(a);
	a = iovm_vm_device_add_args(VF, DEVID, "hp1", "net1");
	assert_non_null(strstr(json_object_to_json_string_ext(a, JSON_C_TO_STRING_PLAIN),
			       "\"failover_pair_id\":\"net1\""));
	json_object_put(a);
	assert_null(iovm_vm_device_add_args(VF, DEVID, "", NULL));
	assert_null(iovm_vm_device_add_args(VF, DEVID, "hp1", ""));
}

static void test_device_deleted_match(void **state)
{
	struct { const char *event, *data; bool want; } cases[] = {
		{ "DEVICE_DELETED", "{\"device\": \"" DEVID "\", \"path\": \"/machine/peripheral/" DEVID "\"}", true },
		{ "DEVICE_DELETED", "{\"path\": \"/machine/peripheral/" DEVID "\"}", true },
		/* device alone is not enough: QEMU matches on the path */
		{ "DEVICE_DELETED", "{\"device\": \"" DEVID "\"}", false },
		{ "DEVICE_DELETED", "{\"path\": \"/machine/peripheral/" DEVID "x\"}", false },
		{ "DEVICE_DELETED", "{\"path\": \"/machine/peripheral-anon/" DEVID "\"}", false },
		{ "DEVICE_DELETED", "{\"path\": \"/machine/peripheral/" DEVID "/virtio-backend\"}", false },
		{ "DEVICE_UNPLUG_GUEST_ERROR", "{\"path\": \"/machine/peripheral/" DEVID "\"}", false },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		json_object *d = json_tokener_parse(cases[i].data);

		if (iovm_vm_is_device_deleted(cases[i].event, d, DEVID) != cases[i].want)
			fail_msg("case %zu", i);
		json_object_put(d);
	}
	assert_false(iovm_vm_is_device_deleted("DEVICE_DELETED", NULL, DEVID));
}

static void test_pool(void **state)
{
	iovm_vf_pool *p = NULL, *p2 = NULL;
	iovm_error e = {};
	char path[] = "/tmp/test-vm-pool-XXXXXX";
	int fd = mkstemp(path);
	iovm_vf_entry *ent;

	close(fd);
	unlink(path);
	assert_int_equal(iovm_vf_pool_new(&p), 0);
	assert_int_equal(iovm_vf_pool_reserve(p, VF, "g1", &e), 0);
	assert_int_equal(iovm_vf_pool_reserve(p, VF, "g2", &e), -EBUSY);
	assert_string_equal(e.msg, "vf " VF ": not free: attaching by vm g1");
	assert_int_equal(iovm_vf_pool_reserve(p, "0000:01:10.4", "g2", &e), 0);
	assert_int_equal(iovm_vf_pool_set(p, VF, IOVM_VF_RELEASE_PENDING), 0);
	ent = iovm_vf_pool_get(p, VF);
	snprintf(ent->devid, sizeof(ent->devid), "%s", DEVID);
	snprintf(ent->orig_driver, sizeof(ent->orig_driver), "igbvf");
	assert_ptr_equal(iovm_vf_pool_find_devid(p, "g1", DEVID), ent);
	assert_null(iovm_vf_pool_find_devid(p, "g2", DEVID));
	/* The pool survives a round trip through its file: a VF whose guest
	 * never released it stays reserved for the next process too. */
	assert_int_equal(iovm_vf_pool_load(p, path, &e), 0);   /* missing file: no-op */
	assert_int_equal(iovm_vf_pool_size(p), 2);
	assert_int_equal(iovm_vf_pool_save(p, path, &e), 0);
	assert_int_equal(iovm_vf_pool_new(&p2), 0);
	assert_int_equal(iovm_vf_pool_load(p2, path, &e), 0);
	assert_int_equal(iovm_vf_pool_size(p2), 2);
	ent = iovm_vf_pool_get(p2, VF);
	assert_non_null(ent);
	assert_int_equal(ent->use, IOVM_VF_RELEASE_PENDING);
	assert_string_equal(ent->orig_driver, "igbvf");
	assert_int_equal(iovm_vf_pool_reserve(p2, VF, "g3", &e), -EBUSY);
	assert_string_equal(e.msg, "vf " VF ": not free: release-pending by vm g1");
	assert_int_equal(iovm_vf_pool_set(p2, VF, IOVM_VF_FREE), 0);
	assert_null(iovm_vf_pool_get(p2, VF));
	assert_non_null(iovm_vf_pool_get(p2, "0000:01:10.4"));
	assert_int_equal(iovm_vf_pool_set(p2, VF, IOVM_VF_FREE), -ENOENT);
	assert_int_equal(iovm_vf_pool_reserve(p2, VF, "g3", &e), 0);
	iovm_vf_pool_free(p2);
	/* A damaged file is refused, not half-read. */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_int_equal(write(fd, "{\"vfs\": [{\"vf\": 3}]}", 20), 20);
	close(fd);
	assert_int_equal(iovm_vf_pool_new(&p2), 0);
	assert_int_equal(iovm_vf_pool_load(p2, path, &e), -EBADMSG);
	assert_int_equal(iovm_vf_pool_size(p2), 0);
	iovm_vf_pool_free(p2);
	iovm_vf_pool_free(p);
	unlink(path);
}

/* ---- attach/detach against the fake ---- */

struct rig {
	struct fake f;
	char sock[64];
	iovm_vf_pool *pool;
	iovm_vm *vm;
	int fds;
};

static void rig_start(struct rig *r, const struct step *script)
{
	iovm_error e = {};

	r->fds = count_fds();
	snprintf(r->sock, sizeof(r->sock), "/tmp/test-vm-%d.sock", (int)getpid());
	fake_listen(&r->f, r->sock, script);
	assert_int_equal(iovm_vf_pool_new(&r->pool), 0);
	if (iovm_vm_open("g1", r->sock, NULL, r->pool, 5000, &r->vm, &e) < 0)
		fail_msg("open: %s", e.msg);
}

static void rig_stop(struct rig *r)
{
	iovm_vm_free(r->vm);
	fake_join(&r->f);
	unlink(r->sock);
	iovm_vf_pool_free(r->pool);
	assert_int_equal(count_fds(), r->fds);
}

static void attach_ok(struct rig *r, const char *want_port)
{
	iovm_attach_opts o = { .vf = "01:10.2", .no_prepare = true, .timeout_ms = 5000 };
	iovm_attach_result res = {};
	iovm_error e = {};

	if (iovm_vm_attach(r->vm, &o, &res, &e) < 0)
		fail_msg("attach: %s", e.msg);
	assert_string_equal(res.devid, DEVID);
	assert_string_equal(res.port, want_port);
	assert_int_equal(iovm_vf_pool_get(r->pool, VF)->use, IOVM_VF_IN_USE);
}

#define START { SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK }
#define DELETED_EVENT "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"" DEVID "\", " \
		      "\"path\": \"/machine/peripheral/" DEVID "\"}, \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\r\n"

static void test_attach_detach(void **state)
{
	const struct step script[] = {
		START,
		{ EXPECT, "query-pci" }, { SEND, reply(fixture("query-pci-booted.json"), 1) },
		{ EXPECT, "device_add" }, { SEND, "{\"return\": {}, \"id\": $2}\r\n" },
		{ EXPECT, "query-pci" }, { SEND, reply(with_device("hp1", DEVID), 3) },
		{ EXPECT, "device_del" },
		{ SEND, "{\"return\": {}, \"id\": $4}\r\n{\"event\": \"DEVICE_DELETED\", \"data\": {\"path\": "
			"\"/machine/peripheral/other\"}}\r\n" DELETED_EVENT },
		{ WAIT_HUP }, { END },
	};
	struct rig r;
	iovm_error e = {};

	rig_start(&r, script);
	attach_ok(&r, "hp1");    /* hp2 and rp0 are occupied */
	assert_int_equal(iovm_vm_detach(r.vm, VF, 5000, &e), 0);
	assert_int_equal(iovm_vf_pool_size(r.pool), 0);
	rig_stop(&r);
	assert_string_equal(r.f.args[2], "{\"driver\":\"vfio-pci\",\"host\":\"" VF "\",\"id\":\"" DEVID
			    "\",\"bus\":\"hp1\"}");
	assert_string_equal(r.f.args[4], "{\"id\":\"" DEVID "\"}");
}

static void test_detach_timeout_keeps_vf(void **state)
{
	const struct step script[] = {
		START,
		{ EXPECT, "query-pci" }, { SEND, reply(fixture("query-pci-booted.json"), 1) },
		{ EXPECT, "device_add" }, { SEND, "{\"return\": {}, \"id\": $2}\r\n" },
		{ EXPECT, "query-pci" }, { SEND, reply(with_device("hp1", DEVID), 3) },
		{ EXPECT, "device_del" }, { SEND, "{\"return\": {}, \"id\": $4}\r\n" },
		/* the guest is paused: nothing until it resumes, much later */
		{ EXPECT, "cont" }, { SEND, "{\"return\": {}, \"id\": $5}\r\n" DELETED_EVENT },
		{ WAIT_HUP }, { END },
	};
	iovm_attach_opts o = { .vf = VF, .no_prepare = true };
	struct rig r;
	iovm_error e = {};

	rig_start(&r, script);
	attach_ok(&r, "hp1");
	assert_int_equal(iovm_vm_detach(r.vm, VF, 300, &e), -ETIMEDOUT);
	assert_non_null(strstr(e.msg, "guest did not release device " DEVID));
	assert_non_null(strstr(e.msg, "vf " VF));
	assert_int_equal(iovm_vf_pool_get(r.pool, VF)->use, IOVM_VF_RELEASE_PENDING);
	/* Never handed out again while the guest may still use it. */
	assert_int_equal(iovm_vm_attach(r.vm, &o, NULL, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "release-pending by vm g1"));
	assert_int_equal(iovm_vf_pool_get(r.pool, VF)->use, IOVM_VF_RELEASE_PENDING);
	/* The late event frees it. */
	assert_int_equal(iovm_qmp_execute(iovm_vm_get_qmp(r.vm), "cont", NULL, NULL, 5000, &e), 0);
	assert_int_equal(iovm_vm_process(r.vm, &e), 0);
	assert_null(iovm_vf_pool_get(r.pool, VF));
	rig_stop(&r);
}

static void run_until_gone(struct rig *r)
{
	iovm_error e = {};
	int ret = 0;

	while (ret == 0) {
		iovm_qmp *q = iovm_vm_get_qmp(r->vm);
		struct pollfd p = { .fd = iovm_qmp_get_fd(q), .events = iovm_qmp_get_events(q) };

		assert_int_equal(poll(&p, 1, 10000), 1);
		ret = iovm_vm_process(r->vm, &e);
	}
	assert_int_equal(ret, -ECONNRESET);
	assert_non_null(strstr(e.msg, "vm g1"));
	assert_false(iovm_vm_is_alive(r->vm));
}

static void test_detach_retry_and_guest_error(void **state)
{
	const struct step script[] = {
		START,
		{ EXPECT, "query-pci" }, { SEND, reply(fixture("query-pci-booted.json"), 1) },
		{ EXPECT, "device_add" }, { SEND, "{\"return\": {}, \"id\": $2}\r\n" },
		{ EXPECT, "query-pci" }, { SEND, reply(with_device("hp1", DEVID), 3) },
		{ EXPECT, "device_del" },
		{ SEND, "{\"return\": {}, \"id\": $4}\r\n{\"event\": \"DEVICE_UNPLUG_GUEST_ERROR\", \"data\": "
			"{\"device\": \"" DEVID "\", \"path\": \"/machine/peripheral/" DEVID "\"}}\r\n" },
		/* the retry meets the first request still pending in QEMU */
		{ EXPECT, "device_del" },
		{ SEND, "{\"id\": $5, \"error\": {\"class\": \"GenericError\", \"desc\": \"Device " DEVID
			" is already in the process of unplug\"}}\r\n" DELETED_EVENT },
		{ WAIT_HUP }, { END },
	};
	struct rig r;
	iovm_error e = {};

	rig_start(&r, script);
	attach_ok(&r, "hp1");
	assert_int_equal(iovm_vm_detach(r.vm, VF, 5000, &e), -EIO);
	assert_non_null(strstr(e.msg, "DEVICE_UNPLUG_GUEST_ERROR"));
	assert_int_equal(iovm_vf_pool_get(r.pool, VF)->use, IOVM_VF_RELEASE_PENDING);
	assert_int_equal(iovm_vm_detach(r.vm, VF, 5000, &e), 0);
	assert_null(iovm_vf_pool_get(r.pool, VF));
	rig_stop(&r);
}

static void test_qemu_dies(void **state)
{
	const struct step script[] = {
		START,
		{ EXPECT, "query-pci" }, { SEND, reply(fixture("query-pci-booted.json"), 1) },
		{ EXPECT, "device_add" }, { SEND, "{\"return\": {}, \"id\": $2}\r\n" },
		{ EXPECT, "query-pci" }, { SEND, reply(with_device("hp1", DEVID), 3) },
		{ CLOSE }, { END },
	};
	struct rig r;

	rig_start(&r, script);
	attach_ok(&r, "hp1");
	run_until_gone(&r);
	assert_null(iovm_vf_pool_get(r.pool, VF));
	rig_stop(&r);
}

static void test_shutdown_event(void **state)
{
	const struct step script[] = {
		START,
		{ EXPECT, "query-pci" }, { SEND, reply(fixture("query-pci-booted.json"), 1) },
		{ EXPECT, "device_add" }, { SEND, "{\"return\": {}, \"id\": $2}\r\n" },
		{ EXPECT, "query-pci" }, { SEND, reply(with_device("hp1", DEVID), 3) },
		{ EXPECT, "query-status" },
		{ SEND, "{\"return\": {}, \"id\": $4}\r\n{\"event\": \"SHUTDOWN\", \"data\": "
			"{\"guest\": true, \"reason\": \"guest-shutdown\"}}\r\n" },
		{ EXPECT, "quit" }, { CLOSE }, { END },
	};
	iovm_attach_opts o = { .vf = "0000:01:10.4", .no_prepare = true };
	struct rig r;
	iovm_error e = {};

	rig_start(&r, script);
	attach_ok(&r, "hp1");
	assert_int_equal(iovm_qmp_execute(iovm_vm_get_qmp(r.vm), "query-status", NULL, NULL, 5000, &e), 0);
	assert_int_equal(iovm_vm_process(r.vm, &e), 0);
	assert_false(iovm_vm_is_alive(r.vm));
	/* QEMU still runs after SHUTDOWN: the VF is not free yet. */
	assert_int_equal(iovm_vf_pool_get(r.pool, VF)->use, IOVM_VF_IN_USE);
	assert_int_equal(iovm_vm_attach(r.vm, &o, NULL, &e), -ENOTCONN);
	assert_int_equal(iovm_qmp_send(iovm_vm_get_qmp(r.vm), "quit", NULL, NULL, NULL, NULL, &e), 0);
	run_until_gone(&r);
	assert_null(iovm_vf_pool_get(r.pool, VF));
	rig_stop(&r);
}

static void test_attach_failures_roll_back(void **state)
{
	const struct step script[] = {
		START,
		/* no port with that prefix */
		{ EXPECT, "query-pci" }, { SEND, reply(fixture("query-pci-booted.json"), 1) },
		/* the named port is occupied */
		{ EXPECT, "query-pci" }, { SEND, reply(fixture("query-pci-booted.json"), 2) },
		/* QEMU refuses the device */
		{ EXPECT, "query-pci" }, { SEND, reply(fixture("query-pci-booted.json"), 3) },
		{ EXPECT, "device_add" },
		{ SEND, "{\"id\": $4, \"error\": {\"class\": \"GenericError\", \"desc\": \"vfio " VF
			": no such host device\"}}\r\n" },
		{ WAIT_HUP }, { END },
	};
	iovm_attach_opts o = { .vf = VF, .no_prepare = true, .port_prefix = "zz" };
	struct rig r;
	iovm_error e = {};

	rig_start(&r, script);
	assert_int_equal(iovm_vm_attach(r.vm, &o, NULL, &e), -ENOSPC);
	assert_non_null(strstr(e.msg, "vm g1: no free hot-plug port named zz"));
	assert_int_equal(iovm_vf_pool_size(r.pool), 0);
	o.port_prefix = NULL;
	o.port = "hp2";
	assert_int_equal(iovm_vm_attach(r.vm, &o, NULL, &e), -EBUSY);
	assert_non_null(strstr(e.msg, "port hp2 is occupied by vnet1"));
	assert_int_equal(iovm_vf_pool_size(r.pool), 0);
	o.port = "hp3";
	assert_int_equal(iovm_vm_attach(r.vm, &o, NULL, &e), -EREMOTEIO);
	assert_non_null(strstr(e.msg, "vm g1: attach vf " VF " to port hp3"));
	assert_non_null(strstr(e.msg, "no such host device"));
	assert_int_equal(iovm_vf_pool_size(r.pool), 0);
	o.vf = "not-a-pci-address";
	assert_int_equal(iovm_vm_attach(r.vm, &o, NULL, &e), -EINVAL);
	rig_stop(&r);
}

static void test_attach_prestart_uses_qom(void **state)
{
	const struct step script[] = {
		START,
		{ EXPECT, "query-pci" }, { SEND, reply(fixture("query-pci-prestart.json"), 1) },
		{ EXPECT, "qom-list" },
		{ SEND, "{\"return\": [{\"name\": \"type\", \"type\": \"string\"}, "
			"{\"name\": \"vnet1\", \"type\": \"child<virtio-net-pci>\"}, "
			"{\"name\": \"hp1\", \"type\": \"child<pcie-root-port>\"}], \"id\": $2}\r\n" },
		{ EXPECT, "qom-get" }, { SEND, "{\"return\": \"/machine/peripheral/hp1/hp1\", \"id\": $3}\r\n" },
		/* hp1 is taken (by vnet1, says QOM): next port */
		{ EXPECT, "qom-list" },
		{ SEND, "{\"return\": [{\"name\": \"vnet1\", \"type\": \"child<virtio-net-pci>\"}], \"id\": $4}\r\n" },
		{ EXPECT, "qom-get" }, { SEND, "{\"return\": \"/machine/peripheral/hp1/hp1\", \"id\": $5}\r\n" },
		{ EXPECT, "device_add" }, { SEND, "{\"return\": {}, \"id\": $6}\r\n" },
		{ EXPECT, "query-pci" }, { SEND, reply(fixture("query-pci-prestart.json"), 7) },
		{ EXPECT, "qom-get" }, { SEND, "{\"return\": \"vfio-pci\", \"id\": $8}\r\n" },
		{ WAIT_HUP }, { END },
	};
	struct rig r;

	rig_start(&r, script);
	attach_ok(&r, "hp2");
	rig_stop(&r);
	assert_string_equal(r.f.args[3], "{\"path\":\"\\/machine\\/peripheral\\/vnet1\",\"property\":\"parent_bus\"}");
	assert_string_equal(r.f.args[8], "{\"path\":\"\\/machine\\/peripheral\\/" DEVID "\",\"property\":\"type\"}");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_device_id),
		cmocka_unit_test(test_ports_booted),
		cmocka_unit_test(test_ports_prestart),
		cmocka_unit_test(test_ports_malformed),
		cmocka_unit_test(test_device_add_args),
		cmocka_unit_test(test_device_deleted_match),
		cmocka_unit_test(test_pool),
		cmocka_unit_test_teardown(test_attach_detach, teardown_arena),
		cmocka_unit_test_teardown(test_detach_timeout_keeps_vf, teardown_arena),
		cmocka_unit_test_teardown(test_detach_retry_and_guest_error, teardown_arena),
		cmocka_unit_test_teardown(test_qemu_dies, teardown_arena),
		cmocka_unit_test_teardown(test_shutdown_event, teardown_arena),
		cmocka_unit_test_teardown(test_attach_failures_roll_back, teardown_arena),
		cmocka_unit_test_teardown(test_attach_prestart_uses_qom, teardown_arena),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
