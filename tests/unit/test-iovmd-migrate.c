/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * migrate-prepare and the outgoing link in the daemon's core
 * (src/iovmd/migrate-out.c), on the fixture tree with VM g1 behind a
 * scripted fake QEMU: a prepare refused before anything changes, and what
 * a restarted iovmd makes of a link it finds. The unplug, the MAC cleared
 * and the give-back need a kernel and a guest: lab 44.
 */
#include "ops-fixture.h"

#define REPLY(n, ret) "{\"return\": " ret ", \"id\": $" #n "}\r\n"

/* g1 holds VF attached as DEVID. */
static const iovm_store_assignment held = {
	.vf = VF, .vm = "g1", .mode = IOVM_MODE_EXCLUSIVE, .devid = DEVID, .state = IOVM_STORE_ATTACHED,
};

/* A VF that is no failover primary: the prepare is refused, naming it, and
 * nothing is written or sent to QEMU beyond the probe. */
static void test_prepare_refused_without_failover(void **state)
{
	ctx *c = *state;
	_cleanup_free_ char *pci = query_pci_reply(DEVID, 2);
	struct step script[] = {
		{ SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK },
		{ EXPECT, "query-commands" }, { SEND, REPLY(1, "[{\"name\": \"device_add\"}]") },
		{ EXPECT, "query-pci" }, { SEND, pci },
		{ EXPECT, "qom-get" }, { SEND, REPLY(3, "\"\"") },
		{ WAIT_HUP }, { END },
	};
	iovm_store_outgoing out;
	iovm_store_assignment a;
	json_object *r, *e;
	iovmd_msg *msgs;

	fake_listen(&c->f, c->qmp, script);
	c->fake_running = true;
	start_holding(c, &held, NULL);
	r = run(c, "{\"execute\":\"migrate-prepare\",\"arguments\":{\"vm\":\"g1\"}}", &msgs);
	assert_string_equal(error_errno(r), "EOPNOTSUPP");
	e = member(r, "error");
	assert_non_null(strstr(member_str(e, "desc"), "vf " VF));
	assert_non_null(strstr(member_str(e, "desc"), "no failover primary"));
	assert_int_equal(iovm_store_outgoing_get(c->o.store, "g1", &out, NULL), -ENOENT);
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF, &a, NULL), 0);
	assert_int_equal(a.state, IOVM_STORE_ATTACHED);
	json_object_put(r);
	msgs_free(msgs);
	/* And a second VM name, unknown: not found. */
	r = run(c, "{\"execute\":\"migrate-prepare\",\"arguments\":{\"vm\":\"g9\"}}", &msgs);
	assert_string_equal(error_errno(r), "ENOENT");
	json_object_put(r);
	msgs_free(msgs);
}

/* What prepare leaves once prepared: g1's VF out ("attaching"), the link
 * "prepared" with the VF's MAC before. */
static void prepared_link(ctx *c, const char *state)
{
	iovm_store *s = store_open(c);
	iovm_store_vm vm = { .name = "g1", .priority = IOVM_PRIO_NORMAL, .numa_node = -1 };
	iovm_store_assignment a = held;
	iovm_store_vf_saved saved = { .vf = VF, .pf = "0000:01:00.0", .vf_index = 2 };
	iovm_store_outgoing out = { .vm = "g1", .n_vfs = 1 };

	snprintf(vm.qmp, sizeof(vm.qmp), "%s", c->qmp);
	snprintf(out.state, sizeof(out.state), "%s", state);
	out.vfs[0] = (iovm_store_incoming_vf){ .src_vf = VF, .pf = "eth0", .port = "hp1", .pair = "sb0",
					       .net = { .present = IOVM_VFNET_MAC,
							.mac = { 0x02, 0x44, 0, 0, 0, 0x01 } } };
	a.state = IOVM_STORE_ATTACHING;
	assert_int_equal(iovm_store_vm_put(s, &vm, NULL), 0);
	assert_int_equal(iovm_store_assign(s, &a, NULL), 0);
	assert_int_equal(iovm_store_vf_saved_put(s, &saved, NULL), 0);
	assert_int_equal(iovm_store_outgoing_put(s, &out, NULL), 0);
	iovm_store_close(s);
}

/* Restarted with a "prepared" link and g1's QEMU answering: the VF stays
 * out (the holder rule does not take it back although it is not in the
 * QEMU), the link stays, and QEMU's migration events are turned on so that
 * a failed migration gives it back. */
static void test_recover_prepared_kept(void **state)
{
	ctx *c = *state;
	struct step script[] = {
		{ SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK },
		{ EXPECT, "migrate-set-capabilities" }, { SEND, REPLY(1, "{}") },
		{ WAIT_HUP }, { END },
	};
	iovm_store_outgoing out;
	iovm_store_assignment a;
	vmrec *v;

	prepared_link(c, "prepared");
	fake_listen(&c->f, c->qmp, script);
	c->fake_running = true;
	start(c);
	assert_int_equal(iovm_store_outgoing_get(c->o.store, "g1", &out, NULL), 0);
	assert_string_equal(out.state, "prepared");
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF, &a, NULL), 0);
	assert_int_equal(a.state, IOVM_STORE_ATTACHING);
	assert_string_equal(a.devid, DEVID);
	v = vms_find(&c->o, "g1");
	assert_non_null(v);
	assert_true(v->out_prepared);
	assert_true(migrate_out_holds(&c->o, "g1", VF));
	assert_false(migrate_out_holds(&c->o, "g1", VF_UP));
	assert_int_equal(iovm_vf_pool_get(c->o.pool, VF)->use, IOVM_VF_ATTACHING);
	/* A migration that failed marks the VFs to be given back. */
	assert_true(migrate_out_ended("MIGRATION", "failed"));
	assert_true(migrate_out_ended("MIGRATION", "cancelled"));
	assert_false(migrate_out_ended("MIGRATION", "completed"));
	assert_false(migrate_out_ended("MIGRATION", NULL));
	assert_false(migrate_out_ended("STOP", "failed"));
}

/* Restarted with a link whose QEMU is gone (the migration completed and
 * the source QEMU quit while iovmd was down): the link is dropped and the
 * holder rule gives the VF back. */
static void test_recover_prepared_vm_gone(void **state)
{
	ctx *c = *state;
	iovm_store_outgoing out;
	iovm_store_assignment a;

	prepared_link(c, "prepared");
	start(c);
	assert_int_equal(iovm_store_outgoing_get(c->o.store, "g1", &out, NULL), -ENOENT);
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF, &a, NULL), -ENOENT);
	assert_null(iovm_vf_pool_get(c->o.pool, VF));
	assert_false(migrate_out_holds(&c->o, "g1", VF));
}

/* The same with a prepare that never finished ("unplugging"), QEMU gone. */
static void test_recover_unplugging_vm_gone(void **state)
{
	ctx *c = *state;
	iovm_store_outgoing out;
	iovm_store_assignment a;

	prepared_link(c, "unplugging");
	start(c);
	assert_int_equal(iovm_store_outgoing_get(c->o.store, "g1", &out, NULL), -ENOENT);
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF, &a, NULL), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_prepare_refused_without_failover, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_prepared_kept, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_prepared_vm_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_unplugging_vm_gone, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
