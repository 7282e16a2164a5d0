/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The links of a migration in the state store (src/lib/state/links.c):
 * the incoming link of a destination (schema 4) and the outgoing link of a
 * source whose VFs were taken out (schema 5): round trip, upsert,
 * refusals, deletion with its VM, unreadable rows, and the steps from
 * versions 3 and 4. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "iovm/store.h"

#include "store-fixture.h"

static iovm_store *open_vms(const char *path)
{
	iovm_store *s = NULL;
	iovm_error e = {};
	iovm_store_vm vm = { .name = "g1", .qmp = "/run/g1.qmp" };

	if (iovm_store_open(path, &s, &e) < 0)
		fail_msg("open %s: %s", path, e.msg);
	assert_int_equal(iovm_store_vm_put(s, &vm, &e), 0);
	snprintf(vm.name, sizeof(vm.name), "g1-in");
	snprintf(vm.qmp, sizeof(vm.qmp), "/run/g1-in.qmp");
	assert_int_equal(iovm_store_vm_put(s, &vm, &e), 0);
	return s;
}

/* g1-in, incoming from g1, which holds two failover primaries. */
static iovm_store_incoming link_of_g1(void)
{
	iovm_store_incoming in = { .vm = "g1-in", .source = "g1", .state = "waiting", .n_vfs = 2 };

	in.vfs[0] = (iovm_store_incoming_vf){ .src_vf = "0000:01:10.0", .pf = "eth0", .port = "rp1", .pair = "sb0",
					      .net = { .present = IOVM_VFNET_MAC | IOVM_VFNET_VLAN,
						       .mac = { 0x02, 0x44, 0, 0, 0, 0x01 }, .vlan = 12, .qos = 3 } };
	in.vfs[1] = (iovm_store_incoming_vf){ .src_vf = "0000:01:10.2", .pf = "eth1", .port = "", .pair = "sb1" };
	return in;
}

static void test_round_trip(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_vms(f->db);
	iovm_store_incoming in = link_of_g1(), got;
	iovm_error e = {};

	assert_int_equal(iovm_store_incoming_get(s, "g1-in", &got, &e), -ENOENT);
	assert_int_equal(iovm_store_incoming_put(s, &in, &e), 0);
	assert_int_equal(iovm_store_incoming_get(s, "g1-in", &got, &e), 0);
	assert_string_equal(got.source, "g1");
	assert_string_equal(got.state, "waiting");
	assert_int_equal(got.n_vfs, 2);
	assert_string_equal(got.vfs[0].src_vf, "0000:01:10.0");
	assert_string_equal(got.vfs[0].pf, "eth0");
	assert_string_equal(got.vfs[0].port, "rp1");
	assert_string_equal(got.vfs[0].pair, "sb0");
	assert_int_equal(got.vfs[0].net.present, IOVM_VFNET_MAC | IOVM_VFNET_VLAN);
	assert_memory_equal(got.vfs[0].net.mac, in.vfs[0].net.mac, 6);
	assert_int_equal(got.vfs[0].net.vlan, 12);
	assert_int_equal(got.vfs[0].net.qos, 3);
	assert_string_equal(got.vfs[1].port, "");
	assert_int_equal(got.vfs[1].net.present, 0);
	assert_true(got.updated > 0);

	/* An upsert: the state moves, one row stays. */
	snprintf(in.state, sizeof(in.state), "resumed");
	in.n_vfs = 1;
	assert_int_equal(iovm_store_incoming_put(s, &in, &e), 0);
	assert_int_equal(iovm_store_incoming_get(s, "g1-in", &got, &e), 0);
	assert_string_equal(got.state, "resumed");
	assert_int_equal(got.n_vfs, 1);
	assert_int_equal(iovm_store_incoming_get(s, "g1", &got, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "g1"));
	iovm_store_close(s);
}

static void test_refused(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_vms(f->db);
	iovm_store_incoming in = link_of_g1(), got;
	iovm_error e = {};

	snprintf(in.vm, sizeof(in.vm), "nobody");
	assert_int_equal(iovm_store_incoming_put(s, &in, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "vm nobody"));
	in = link_of_g1();
	snprintf(in.state, sizeof(in.state), "half-done");
	assert_int_equal(iovm_store_incoming_put(s, &in, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "half-done"));
	in = link_of_g1();
	in.source[0] = '\0';
	assert_int_equal(iovm_store_incoming_put(s, &in, &e), -EINVAL);
	in = link_of_g1();
	in.n_vfs = IOVM_STORE_INCOMING_VFS_MAX + 1;
	assert_int_equal(iovm_store_incoming_put(s, &in, &e), -EINVAL);
	in = link_of_g1();
	in.vfs[1].pair[0] = '\0';
	assert_int_equal(iovm_store_incoming_put(s, &in, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "\"pair\""));
	assert_non_null(strstr(e.msg, "vm g1-in"));
	assert_int_equal(iovm_store_incoming_put(NULL, &in, &e), -EINVAL);
	/* Nothing was written. */
	assert_int_equal(iovm_store_incoming_get(s, "g1-in", &got, &e), -ENOENT);
	iovm_store_close(s);
}

static void test_gone_with_its_vm(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_vms(f->db);
	iovm_store_incoming in = link_of_g1(), got;
	iovm_error e = {};

	assert_int_equal(iovm_store_incoming_put(s, &in, &e), 0);
	assert_int_equal(iovm_store_vm_delete(s, "g1-in", &e), 0);
	assert_int_equal(iovm_store_incoming_get(s, "g1-in", &got, &e), -ENOENT);
	/* A VM registered again under the name has no link. */
	assert_int_equal(iovm_store_vm_put(s, &(iovm_store_vm){ .name = "g1-in", .qmp = "/run/x" }, &e), 0);
	assert_int_equal(iovm_store_incoming_get(s, "g1-in", &got, &e), -ENOENT);
	iovm_store_close(s);
}

static void test_unreadable(void **state)
{
	static const char *const bad[] = {
		"UPDATE vm_incoming SET vfs = '{}'",
		"UPDATE vm_incoming SET vfs = '[{\"src_vf\":\"0000:01:10.0\",\"pair\":\"sb0\"}]'",
		"UPDATE vm_incoming SET vfs = '[{\"src_vf\":\"0000:01:10.0\",\"pf\":\"eth0\",\"pair\":\"sb0\","
		"\"net\":\"mac nonsense\"}]'",
		"UPDATE vm_incoming SET vfs = '[] trailing'",
	};
	fixture *f = *state;
	iovm_store *s = open_vms(f->db);
	iovm_store_incoming in = link_of_g1(), got;
	iovm_error e = {};

	assert_int_equal(iovm_store_incoming_put(s, &in, &e), 0);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		raw_exec(f->db, bad[i]);
		assert_int_equal(iovm_store_incoming_get(s, "g1-in", &got, &e), -EBADMSG);
		assert_non_null(strstr(e.msg, "vm g1-in"));
	}
	iovm_store_close(s);
}

/* A version-3 database (the version-4 one without the new table) with
 * VMs in it takes step 4: the VMs stay, links can be saved. */
static void test_from_version_3(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_vms(f->db);
	iovm_store_incoming in = link_of_g1(), got;
	iovm_store_vm vm;
	iovm_error e = {};

	iovm_store_close(s);
	raw_exec(f->db, "DROP TABLE vm_outgoing; DROP TABLE vm_incoming; PRAGMA user_version = 3;");
	assert_int_equal(iovm_store_open(f->db, &s, &e), 0);
	assert_int_equal(iovm_store_schema_version(s), IOVM_STORE_SCHEMA_VERSION);
	assert_int_equal(iovm_store_vm_get(s, "g1-in", &vm, &e), 0);
	assert_string_equal(vm.qmp, "/run/g1-in.qmp");
	assert_int_equal(iovm_store_incoming_get(s, "g1-in", &got, &e), -ENOENT);
	assert_int_equal(iovm_store_incoming_put(s, &in, &e), 0);
	assert_int_equal(iovm_store_incoming_get(s, "g1-in", &got, &e), 0);
	assert_int_equal(got.n_vfs, 2);
	iovm_store_close(s);
}

/* g1 with its two primaries taken out before its migration. */
static iovm_store_outgoing out_of_g1(void)
{
	iovm_store_incoming in = link_of_g1();
	iovm_store_outgoing out = { .vm = "g1", .state = "prepared", .n_vfs = in.n_vfs };

	memcpy(out.vfs, in.vfs, sizeof(out.vfs));
	return out;
}

static void test_outgoing(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_vms(f->db);
	iovm_store_outgoing out = out_of_g1(), got, *all = NULL;
	iovm_error e = {};
	size_t n = 99;

	assert_int_equal(iovm_store_outgoing_get(s, "g1", &got, &e), -ENOENT);
	assert_int_equal(iovm_store_outgoing_list(s, &all, &n, &e), 0);
	assert_int_equal(n, 0);
	free(all);
	snprintf(out.state, sizeof(out.state), "unplugging");
	assert_int_equal(iovm_store_outgoing_put(s, &out, &e), 0);
	snprintf(out.state, sizeof(out.state), "prepared");
	assert_int_equal(iovm_store_outgoing_put(s, &out, &e), 0);
	assert_int_equal(iovm_store_outgoing_get(s, "g1", &got, &e), 0);
	assert_string_equal(got.state, "prepared");
	assert_int_equal(got.n_vfs, 2);
	assert_string_equal(got.vfs[0].src_vf, "0000:01:10.0");
	assert_string_equal(got.vfs[0].port, "rp1");
	assert_string_equal(got.vfs[1].pair, "sb1");
	assert_int_equal(got.vfs[0].net.vlan, 12);
	assert_memory_equal(got.vfs[0].net.mac, out.vfs[0].net.mac, 6);
	assert_int_equal(iovm_store_outgoing_list(s, &all, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(all[0].vm, "g1");
	assert_int_equal(all[0].n_vfs, 2);
	free(all);
	/* Refused: an unknown state, an unknown VM, too many VFs. */
	snprintf(out.state, sizeof(out.state), "gone");
	assert_int_equal(iovm_store_outgoing_put(s, &out, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "unknown state"));
	out = out_of_g1();
	snprintf(out.vm, sizeof(out.vm), "nobody");
	assert_int_equal(iovm_store_outgoing_put(s, &out, &e), -ENOENT);
	out = out_of_g1();
	out.n_vfs = IOVM_STORE_INCOMING_VFS_MAX + 1;
	assert_int_equal(iovm_store_outgoing_put(s, &out, &e), -EINVAL);
	/* Deleted on its own (twice: no link is no error), and with its VM. */
	assert_int_equal(iovm_store_outgoing_delete(s, "g1", &e), 0);
	assert_int_equal(iovm_store_outgoing_delete(s, "g1", &e), 0);
	assert_int_equal(iovm_store_outgoing_get(s, "g1", &got, &e), -ENOENT);
	out = out_of_g1();
	assert_int_equal(iovm_store_outgoing_put(s, &out, &e), 0);
	assert_int_equal(iovm_store_vm_delete(s, "g1", &e), 0);
	assert_int_equal(iovm_store_outgoing_get(s, "g1", &got, &e), -ENOENT);
	/* An unreadable row is named. */
	snprintf(out.vm, sizeof(out.vm), "g1-in");
	assert_int_equal(iovm_store_outgoing_put(s, &out, &e), 0);
	raw_exec(f->db, "UPDATE vm_outgoing SET vfs = '[{\"src_vf\":\"0000:01:10.0\"}]'");
	assert_int_equal(iovm_store_outgoing_get(s, "g1-in", &got, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "vm g1-in"));
	assert_int_equal(iovm_store_outgoing_list(s, &all, &n, &e), -EBADMSG);
	iovm_store_close(s);
}

/* A version-4 database takes step 5: its incoming links stay. */
static void test_from_version_4(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_vms(f->db);
	iovm_store_incoming in = link_of_g1(), got;
	iovm_store_outgoing out = out_of_g1();
	iovm_error e = {};

	assert_int_equal(iovm_store_incoming_put(s, &in, &e), 0);
	iovm_store_close(s);
	raw_exec(f->db, "DROP TABLE vm_outgoing; PRAGMA user_version = 4;");
	assert_int_equal(iovm_store_open(f->db, &s, &e), 0);
	assert_int_equal(iovm_store_schema_version(s), 5);
	assert_int_equal(iovm_store_incoming_get(s, "g1-in", &got, &e), 0);
	assert_int_equal(got.n_vfs, 2);
	assert_int_equal(iovm_store_outgoing_put(s, &out, &e), 0);
	iovm_store_close(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_gone_with_its_vm, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreadable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_from_version_3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_outgoing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_from_version_4, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
