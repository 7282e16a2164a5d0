/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A VF out of its VM and back around a live resize (iovm/live.h): the
 * choice of mode, and probe/release/restore against a scripted fake QEMU
 * (fake-qmp.h) that speaks the agreed VFIO-pause interface (x-vfio-pause,
 * x-vfio-resume, the x-paused property) or stock QEMU's hot-plug. No host:
 * the VF's binding and its VFIO group are the lab's (tests/lab/37-*).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "iovm/live.h"
#include "fake-qmp.h"

#define VF "0000:01:10.2"
#define DEVID "iovm-0000-01-10.2"
#define START { SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK }
#define OK(n) "{\"return\": {}, \"id\": $" #n "}\r\n"

static char *arena[16];
static int narena;

static const char *keep(char *s)
{
	assert_true(narena < 16);
	return arena[narena++] = s;
}

static int teardown_arena(void **state)
{
	while (narena > 0)
		free(arena[--narena]);
	return 0;
}

/* query-pci of the booted fixture, with devid behind port hp1 if set. */
static const char *query_pci(const char *devid, int n)
{
	return keep(query_pci_reply(devid, n));
}

static const char *commands(bool pause, int n)
{
	char *s;

	assert_true(asprintf(&s, "{\"return\": [{\"name\": \"device_add\"}, {\"name\": \"qom-get\"}%s], "
			     "\"id\": $%d}\r\n", pause ? ", {\"name\": \"x-vfio-pause\"}, "
			     "{\"name\": \"x-vfio-resume\"}" : "", n) > 0);
	return keep(s);
}

struct rig {
	struct fake f;
	char sock[64];
	iovm_vf_pool *pool;
	iovm_vm *vm;
};

static void rig_start(struct rig *r, const struct step *script)
{
	iovm_error e = {};

	snprintf(r->sock, sizeof(r->sock), "/tmp/test-live-%d.sock", (int)getpid());
	fake_listen(&r->f, r->sock, script);
	assert_int_equal(iovm_vf_pool_new(&r->pool), 0);
	if (iovm_vm_open("g1", r->sock, NULL, r->pool, 5000, &r->vm, &e) < 0)
		fail_msg("open: %s", e.msg);
	/* The VF is g1's, in use, as an attach leaves it. */
	assert_int_equal(iovm_vf_pool_reserve(r->pool, VF, "g1", &e), 0);
	snprintf(iovm_vf_pool_get(r->pool, VF)->devid, IOVM_VM_ID_MAX, "%s", DEVID);
	iovm_vf_pool_get(r->pool, VF)->use = IOVM_VF_IN_USE;
}

static void rig_stop(struct rig *r)
{
	iovm_vm_free(r->vm);
	fake_join(&r->f);
	unlink(r->sock);
	iovm_vf_pool_free(r->pool);
	assert_string_equal(r->f.failure, "");
}

/* Which mode each VM gets, and why one is refused. */
static void test_choose(void **state)
{
	iovm_live_place p = { .devid = DEVID, .port = "hp1", .present = true };
	iovm_live_mode m = IOVM_LIVE_AUTO;
	char why[256];

	assert_int_equal(iovm_live_choose(IOVM_LIVE_AUTO, &p, &m, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "no VFIO pause (x-vfio-pause)"));
	assert_non_null(strstr(why, "no failover primary"));
	assert_non_null(strstr(why, "--live replug"));
	assert_int_equal(iovm_live_choose(IOVM_LIVE_PAUSE, &p, &m, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "x-vfio-pause not in query-commands"));
	assert_int_equal(iovm_live_choose(IOVM_LIVE_FAILOVER, &p, &m, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "no failover_pair_id"));
	assert_int_equal(iovm_live_choose(IOVM_LIVE_REPLUG, &p, &m, why, sizeof(why)), 0);
	assert_int_equal(m, IOVM_LIVE_REPLUG);

	snprintf(p.failover_pair_id, sizeof(p.failover_pair_id), "net1");
	assert_int_equal(iovm_live_choose(IOVM_LIVE_AUTO, &p, &m, why, sizeof(why)), 0);
	assert_int_equal(m, IOVM_LIVE_FAILOVER);
	p.can_pause = true;
	assert_int_equal(iovm_live_choose(IOVM_LIVE_AUTO, &p, &m, why, sizeof(why)), 0);
	assert_int_equal(m, IOVM_LIVE_PAUSE);

	/* A device left paused is resumed, never unplugged. */
	p.paused = true;
	assert_int_equal(iovm_live_choose(IOVM_LIVE_REPLUG, &p, &m, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "paused"));
	/* No port: nothing to plug it back into. */
	p = (iovm_live_place){ .devid = DEVID, .present = true };
	assert_int_equal(iovm_live_choose(IOVM_LIVE_REPLUG, &p, &m, why, sizeof(why)), -EOPNOTSUPP);
	assert_non_null(strstr(why, "no hot-plug port"));
}

/* A patched QEMU: the pause is seen, the device's port and x-paused read;
 * pause, then a resume onto a VF whose layout differs is refused (the
 * device stays paused, the error names VM, VF, device and QEMU's cause),
 * and the next resume succeeds. */
static void test_pause_resume(void **state)
{
	const struct step script[] = {
		START,
		{ EXPECT, "query-commands" }, { SEND, commands(true, 1) },
		{ EXPECT, "query-pci" }, { SEND, query_pci(DEVID, 2) },
		{ EXPECT, "qom-get" }, { SEND, "{\"return\": \"\", \"id\": $3}\r\n" },
		{ EXPECT, "qom-get" }, { SEND, "{\"return\": false, \"id\": $4}\r\n" },
		{ EXPECT, "x-vfio-pause" }, { SEND, OK(5) },
		{ EXPECT, "x-vfio-resume" },
		{ SEND, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"vfio " VF ": BAR 3 size differs "
			"(0x4000, was 0x8000)\"}, \"id\": $6}\r\n" },
		{ EXPECT, "x-vfio-resume" }, { SEND, OK(7) },
		{ WAIT_HUP }, { END },
	};
	iovm_live_place p;
	iovm_live_mode m;
	iovm_error e = {};
	struct rig r;

	rig_start(&r, script);
	assert_int_equal(iovm_vm_live_probe(r.vm, DEVID, 5000, &p, &e), 0);
	assert_true(p.present);
	assert_true(p.can_pause);
	assert_false(p.paused);
	assert_string_equal(p.port, "hp1");
	assert_string_equal(p.failover_pair_id, "");
	assert_int_equal(iovm_live_choose(IOVM_LIVE_AUTO, &p, &m, NULL, 0), 0);
	assert_int_equal(m, IOVM_LIVE_PAUSE);
	assert_int_equal(iovm_vm_live_release(r.vm, VF, &p, m, 5000, &e), 0);
	/* Out of QEMU, still g1's: nothing hands it out. */
	assert_int_equal(iovm_vf_pool_get(r.pool, VF)->use, IOVM_VF_ATTACHING);
	assert_int_equal(iovm_vf_pool_reserve(r.pool, VF, "g2", NULL), -EBUSY);
	assert_int_equal(iovm_vm_live_restore(r.vm, VF, &p, m, 5000, &e), -EREMOTEIO);
	assert_non_null(strstr(e.msg, "vm g1: vf " VF ": resuming device " DEVID " (it stays paused)"));
	assert_non_null(strstr(e.msg, "BAR 3 size differs"));
	assert_int_equal(iovm_vf_pool_get(r.pool, VF)->use, IOVM_VF_ATTACHING);
	assert_int_equal(iovm_vm_live_restore(r.vm, VF, &p, m, 5000, &e), 0);
	assert_int_equal(iovm_vf_pool_get(r.pool, VF)->use, IOVM_VF_IN_USE);
	rig_stop(&r);
	assert_non_null(strstr(r.f.args[3], DEVID "\",\"property\":\"failover_pair_id\"}"));
	assert_non_null(strstr(r.f.args[4], DEVID "\",\"property\":\"x-paused\"}"));
	assert_string_equal(r.f.args[5], "{\"id\":\"" DEVID "\"}");
	assert_string_equal(r.f.args[7], "{\"id\":\"" DEVID "\",\"host\":\"" VF "\"}");
}

/* The nudge after the PF's carrier is back: sent where QEMU has it,
 * QEMU's refusal passed on, and -EOPNOTSUPP from a QEMU without it. */
static void test_nudge(void **state)
{
	const struct step script[] = {
		START,
		{ EXPECT, "query-commands" },
		{ SEND, "{\"return\": [{\"name\": \"x-vfio-resume\"}, {\"name\": \"x-vfio-nudge\"}], \"id\": $1}\r\n" },
		{ EXPECT, "x-vfio-nudge" }, { SEND, OK(2) },
		{ EXPECT, "query-commands" },
		{ SEND, "{\"return\": [{\"name\": \"x-vfio-nudge\"}], \"id\": $3}\r\n" },
		{ EXPECT, "x-vfio-nudge" },
		{ SEND, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"vfio-pci device '" DEVID "': MSI-X "
			"is not enabled: no vector to nudge the guest with\"}, \"id\": $4}\r\n" },
		{ EXPECT, "query-commands" }, { SEND, commands(true, 5) },
		{ WAIT_HUP }, { END },
	};
	iovm_error e = {};
	struct rig r;

	rig_start(&r, script);
	assert_int_equal(iovm_vm_live_nudge(r.vm, DEVID, 5000, &e), 0);
	assert_int_equal(iovm_vm_live_nudge(r.vm, DEVID, 5000, &e), -EREMOTEIO);
	assert_non_null(strstr(e.msg, "vm g1: device " DEVID ": nudge"));
	assert_non_null(strstr(e.msg, "MSI-X is not enabled"));
	assert_int_equal(iovm_vm_live_nudge(r.vm, DEVID, 5000, &e), -EOPNOTSUPP);
	assert_string_equal(e.msg, "vm g1: device " DEVID ": this QEMU has no x-vfio-nudge");
	assert_int_equal(iovm_vm_live_nudge(NULL, DEVID, 5000, &e), -EINVAL);
	rig_stop(&r);
	assert_string_equal(r.f.args[2], "{\"id\":\"" DEVID "\",\"kind\":\"msix\"}");
}

#define DELETED "{\"event\": \"DEVICE_DELETED\", \"data\": {\"device\": \"" DEVID "\", \"path\": " \
		"\"/machine/peripheral/" DEVID "\"}, \"timestamp\": {\"seconds\": 1, \"microseconds\": 0}}\r\n"

/* Stock QEMU, a failover primary: unplugged (DEVICE_DELETED does not free
 * the VF), plugged back with the same id, port and pair. */
static void test_failover_replug(void **state)
{
	const struct step script[] = {
		START,
		{ EXPECT, "query-commands" }, { SEND, commands(false, 1) },
		{ EXPECT, "query-pci" }, { SEND, query_pci(DEVID, 2) },
		{ EXPECT, "qom-get" }, { SEND, "{\"return\": \"net1\", \"id\": $3}\r\n" },
		{ EXPECT, "device_del" }, { SEND, OK(4) DELETED },
		{ EXPECT, "device_add" }, { SEND, OK(5) },
		{ WAIT_HUP }, { END },
	};
	iovm_live_place p;
	iovm_live_mode m;
	iovm_error e = {};
	struct rig r;

	rig_start(&r, script);
	assert_int_equal(iovm_vm_live_probe(r.vm, DEVID, 5000, &p, &e), 0);
	assert_false(p.can_pause);
	assert_string_equal(p.failover_pair_id, "net1");
	assert_int_equal(iovm_live_choose(IOVM_LIVE_AUTO, &p, &m, NULL, 0), 0);
	assert_int_equal(m, IOVM_LIVE_FAILOVER);
	assert_int_equal(iovm_vm_live_release(r.vm, VF, &p, m, 5000, &e), 0);
	assert_int_equal(iovm_vm_process(r.vm, &e), 0);
	assert_non_null(iovm_vf_pool_get(r.pool, VF));
	assert_int_equal(iovm_vf_pool_get(r.pool, VF)->use, IOVM_VF_ATTACHING);
	assert_int_equal(iovm_vm_live_restore(r.vm, VF, &p, m, 5000, &e), 0);
	assert_int_equal(iovm_vf_pool_get(r.pool, VF)->use, IOVM_VF_IN_USE);
	rig_stop(&r);
	assert_string_equal(r.f.args[4], "{\"id\":\"" DEVID "\"}");
	assert_string_equal(r.f.args[5], "{\"driver\":\"vfio-pci\",\"host\":\"" VF "\",\"id\":\"" DEVID
			    "\",\"bus\":\"hp1\",\"failover_pair_id\":\"net1\"}");
}

/* A guest that does not release in time: -ETIMEDOUT naming VM, VF and the
 * device; the VF is still g1's and in use as far as anyone knows. A QEMU
 * that is gone: the restore says so. */
static void test_replug_timeout_and_gone(void **state)
{
	const struct step script[] = {
		START,
		{ EXPECT, "device_del" }, { SEND, OK(1) },
		/* the guest never answers; then QEMU goes */
		{ EXPECT, "stop" }, { SEND, OK(2) },
		{ CLOSE }, { END },
	};
	iovm_live_place p = { .devid = DEVID, .port = "hp1", .present = true };
	iovm_error e = {};
	struct rig r;

	rig_start(&r, script);
	assert_int_equal(iovm_vm_live_release(r.vm, VF, &p, IOVM_LIVE_REPLUG, 300, &e), -ETIMEDOUT);
	assert_non_null(strstr(e.msg, "vm g1: vf " VF ": unplugging device"));
	assert_non_null(strstr(e.msg, "did not release device " DEVID));
	assert_string_equal(iovm_vf_pool_get(r.pool, VF)->vm, "g1");
	assert_int_equal(iovm_vf_pool_get(r.pool, VF)->use, IOVM_VF_IN_USE);
	/* QEMU goes away. */
	assert_int_equal(iovm_qmp_execute(iovm_vm_get_qmp(r.vm), "stop", NULL, NULL, 5000, &e), 0);
	while (iovm_vm_process(r.vm, &e) == 0)
		;
	e = (iovm_error){};
	assert_int_equal(iovm_vm_live_restore(r.vm, VF, &p, IOVM_LIVE_REPLUG, 300, &e), -ENOTCONN);
	assert_non_null(strstr(e.msg, "vm g1: vf " VF ": not running"));
	rig_stop(&r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_choose),
		cmocka_unit_test_teardown(test_pause_resume, teardown_arena),
		cmocka_unit_test_teardown(test_nudge, teardown_arena),
		cmocka_unit_test_teardown(test_failover_replug, teardown_arena),
		cmocka_unit_test_teardown(test_replug_timeout_and_gone, teardown_arena),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
