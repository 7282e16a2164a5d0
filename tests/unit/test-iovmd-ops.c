/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's ops code without its thread (libiovmd_core): start-up with
 * recovery on a fixture sysfs tree (fixtures/make-sysfs.sh) and a state db
 * of the test's own, with the VM behind a scripted fake QEMU (fake-qmp.h);
 * then jobs run through ops_run_job(), and the messages they leave for the
 * main thread (queue.h) checked: the reply, its events, the snapshot
 * after it. The daemon end to end is tests/daemon/test-iovmd.py.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "iovmd/ops.h"
#include "shared/util.h"

#include "ops-fixture.h"

/* ---- command jobs ---------------------------------------------------------------- */

/* What the kernel does when sriov_numvfs of PF 0000:02:00.0 becomes n:
 * the VFs' devices and the PF's virtfn links (make-sysfs.sh's layout),
 * each already on igbvf, where the binds of a set-vfs to the host driver
 * leave them. The fixture has no kernel, so the test makes them
 * beforehand. */
static void kernel_makes_vfs(ctx *c, unsigned n)
{
	char cmd[PATH_MAX * 2];

	snprintf(cmd, sizeof(cmd), "cd '%s' && pf=devices/pci0000:00/0000:02:00.0 && "
		 "for i in $(seq 0 %u); do a=0000:02:10.$((2 * i)); d=devices/pci0000:00/$a; "
		 "mkdir -p $d && echo 0x8086 > $d/vendor && echo 0x10ca > $d/device && "
		 "echo -1 > $d/numa_node && ln -sr $d bus/pci/devices/$a && ln -sr $pf $d/physfn && "
		 "ln -sr $d $pf/virtfn$i && ln -sr bus/pci/drivers/igbvf $d/driver || exit 1; done",
		 c->fx.sys, n - 1);
	assert_int_equal(system(cmd), 0);
}

/* pf-set-vfs: the kernel gets the count, the store the desired state, the
 * journal a finished intent; the reply, an event and the snapshot agree. */
static void test_pf_set_vfs(void **state)
{
	ctx *c = *state;
	iovmd_msg *msgs = NULL, *ev;
	json_object *reply, *ret, *pf;
	_cleanup_free_ iovm_store_intent *pending = NULL;
	iovm_store_intent in;
	iovm_store_pf want;
	size_t n_open = 9;
	char buf[64];

	start(c);
	msgs_free(iovmd_queue_pop_all(&c->d.msgs));   /* the start-up snapshots */
	kernel_makes_vfs(c, 2);
	reply = run(c, "{\"execute\":\"pf-set-vfs\",\"arguments\":{\"pf\":\"eth1\",\"count\":2,"
		    "\"driver\":\"host\"},\"id\":1}", &msgs);
	ret = member(reply, "return");
	assert_string_equal(member_str(ret, "pf"), "0000:02:00.0");
	assert_int_equal(json_object_get_int(member(ret, "num_vfs")), 2);
	assert_int_equal(json_object_get_int(member(ret, "desired_vfs")), 2);
	assert_string_equal(member_str(ret, "desired_driver"), "host");
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:02:00.0/sriov_numvfs", buf, sizeof(buf)), "2");
	/* Progress went to the client before the reply; the event to all. */
	assert_non_null(msg_find(msgs, IOVMD_MSG_PROGRESS, 0));
	assert_int_equal(msg_find(msgs, IOVMD_MSG_PROGRESS, 0)->client, CLIENT);
	ev = msg_find(msgs, IOVMD_MSG_EVENT, 0);
	assert_non_null(ev);
	assert_non_null(strstr(ev->line, "\"VFS_CHANGED\""));
	pf = array_find(member(last_snapshot(msgs), "pfs"), "pf", "0000:02:00.0");
	assert_int_equal(json_object_get_int(member(pf, "desired_vfs")), 2);
	assert_int_equal(json_object_get_int(member(last_snapshot(msgs), "open_intents")), 0);
	assert_int_equal(iovm_store_pf_get(c->o.store, "0000:02:00.0", &want, NULL), 0);
	assert_int_equal(want.num_vfs, 2);
	assert_string_equal(want.driver, "host");
	assert_int_equal(iovm_store_intent_list_open(c->o.store, &pending, &n_open, NULL), 0);
	assert_int_equal(n_open, 0);
	json_object_put(reply);
	msgs_free(msgs);

	/* Settings stored for VF 1 do not stop a shrink to one VF, and stay
	 * for when the PF has a VF 1 again. (Applying them needs netlink and
	 * the PF's netdev, which the fixture has not: this fails if tried.) */
	{
		iovm_store_vf_config vc = { .pf = "0000:02:00.0", .vf = 1,
					    .cfg = { .present = IOVM_VFNET_VLAN, .vlan = 7 } };

		char cmd[PATH_MAX + 64];

		assert_int_equal(iovm_store_vf_config_put(c->o.store, &vc, NULL), 0);
		/* What the kernel does: VF 1 goes. */
		snprintf(cmd, sizeof(cmd), "rm '%s/devices/pci0000:00/0000:02:00.0/virtfn1'", c->fx.sys);
		assert_int_equal(system(cmd), 0);
		reply = run(c, "{\"execute\":\"pf-set-vfs\",\"arguments\":{\"pf\":\"eth1\",\"count\":1},"
			    "\"id\":9}", &msgs);
		assert_int_equal(json_object_get_int(member(member(reply, "return"), "desired_vfs")), 1);
		assert_int_equal(iovm_store_vf_config_get(c->o.store, "0000:02:00.0", 1, &vc, NULL), 0);
		assert_int_equal(vc.cfg.vlan, 7);
		json_object_put(reply);
		msgs_free(msgs);
	}

	/* A PF that is not there: an error, nothing desired. */
	reply = run(c, "{\"execute\":\"pf-set-vfs\",\"arguments\":{\"pf\":\"0000:09:00.0\",\"count\":1},"
		    "\"id\":2}", &msgs);
	assert_string_equal(error_errno(reply), "ENODEV");
	assert_int_equal(iovm_store_pf_get(c->o.store, "0000:09:00.0", &want, NULL), -ENOENT);
	json_object_put(reply);
	msgs_free(msgs);

	/* The refresh tick prunes finished intents past --journal-keep. */
	assert_int_equal(iovm_store_intent_get(c->o.store, 1, &in, NULL), 0);
	assert_int_equal(in.status, IOVM_INTENT_DONE);
	c->d.cfg.journal_keep = 0;
	ops_tick(&c->o);
	assert_int_equal(iovm_store_intent_get(c->o.store, 1, &in, NULL), -ENOENT);
}

/* A PF whose VF is in a VM is not resized, and its desired state stays. */
static void test_pf_set_vfs_refused_while_assigned(void **state)
{
	ctx *c = *state;
	iovm_store_assignment a = { .vf = VF_UP, .vm = "g1", .mode = IOVM_MODE_EXCLUSIVE,
				    .state = IOVM_STORE_ATTACHED };
	iovmd_msg *msgs = NULL;
	json_object *reply;
	char buf[64];

	start_holding(c, &a, NULL);
	reply = run(c, "{\"execute\":\"pf-set-vfs\",\"arguments\":{\"pf\":\"eth0\",\"count\":1},\"id\":3}",
		    &msgs);
	assert_string_equal(error_errno(reply), "EBUSY");
	assert_non_null(strstr(member_str(member(reply, "error"), "desc"),
			       "pf eth0: cannot go to 1 VFs: vm g1 holds vf " VF_UP " (index 1); detach first"));
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:01:00.0/sriov_numvfs", buf, sizeof(buf)), "3");
	assert_null(msg_find(msgs, IOVMD_MSG_EVENT, 0));
	json_object_put(reply);
	msgs_free(msgs);

	/* Keeping index 1, but g1's QEMU does not answer: refused up front
	 * naming the VM, the VF and why; nothing journaled, the VF stays
	 * attached. */
	reply = run(c, "{\"execute\":\"pf-set-vfs\",\"arguments\":{\"pf\":\"eth0\",\"count\":4,"
		    "\"live\":\"replug\"},\"id\":4}", &msgs);
	assert_string_equal(error_errno(reply), "EOPNOTSUPP");
	assert_non_null(strstr(member_str(member(reply, "error"), "desc"),
			       "pf eth0: live resize refused, nothing changed: vm g1: vf " VF_UP
			       ": cannot reach the VM's QMP socket"));
	assert_string_equal(fx_read(&c->fx, "bus/pci/devices/0000:01:00.0/sriov_numvfs", buf, sizeof(buf)), "3");
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF_UP, &a, NULL), 0);
	assert_int_equal(a.state, IOVM_STORE_ATTACHED);
	{
		_cleanup_free_ iovm_store_intent *open = NULL;
		size_t n = 9;

		assert_int_equal(iovm_store_intent_list_open(c->o.store, &open, &n, NULL), 0);
		assert_int_equal(n, 0);
	}
	json_object_put(reply);
	msgs_free(msgs);
}

/* vm-add, the same again, vm-remove: the store, the reply and the partial
 * snapshot (the VM list alone) agree at every step. */
static void test_vm_add_remove(void **state)
{
	ctx *c = *state;
	iovmd_msg *msgs = NULL, *last;
	json_object *reply, *ret, *vms, *g1;
	iovm_store_vm rec;
	char line[PATH_MAX + 256];

	start(c);
	msgs_free(iovmd_queue_pop_all(&c->d.msgs));
	snprintf(line, sizeof(line), "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g1\",\"qmp\":\"%s\","
		 "\"priority\":\"high\"},\"id\":4}", c->qmp);
	reply = run(c, line, &msgs);
	ret = member(reply, "return");
	assert_string_equal(member_str(ret, "name"), "g1");
	assert_string_equal(member_str(ret, "priority"), "high");
	assert_false(json_object_get_boolean(member(ret, "connected")));   /* no QEMU there */
	assert_int_equal(iovm_store_vm_get(c->o.store, "g1", &rec, NULL), 0);
	assert_string_equal(rec.qmp, c->qmp);
	for (last = msgs; last->next; last = last->next)
		;
	assert_int_equal(last->kind, IOVMD_MSG_SNAPSHOT_PART);
	vms = member(last->snapshot, "vms");
	g1 = array_find(vms, "name", "g1");
	assert_string_equal(member_str(g1, "priority"), "high");
	assert_false(json_object_object_get_ex(last->snapshot, "pfs", NULL));
	json_object_put(reply);
	msgs_free(msgs);

	reply = run(c, line, &msgs);
	assert_string_equal(error_errno(reply), "EEXIST");
	json_object_put(reply);
	msgs_free(msgs);

	reply = run(c, "{\"execute\":\"vm-remove\",\"arguments\":{\"name\":\"g1\"},\"id\":5}", &msgs);
	assert_non_null(member(reply, "return"));
	assert_int_equal(iovm_store_vm_get(c->o.store, "g1", &rec, NULL), -ENOENT);
	assert_int_equal(json_object_array_length(member(last_snapshot(msgs), "vms")), 0);
	assert_null(vms_find(&c->o, "g1"));
	json_object_put(reply);
	msgs_free(msgs);

	reply = run(c, "{\"execute\":\"vm-remove\",\"arguments\":{\"name\":\"g1\"},\"id\":6}", &msgs);
	assert_string_equal(error_errno(reply), "ENOENT");
	json_object_put(reply);
	msgs_free(msgs);
}

/* detach of a VF the VM does not hold: refused, the journal untouched. */
static void test_detach_not_held(void **state)
{
	ctx *c = *state;
	iovm_store *s = store_open(c);
	iovm_store_vm vm = { .name = "g1", .priority = IOVM_PRIO_NORMAL, .numa_node = -1 };
	_cleanup_free_ iovm_store_intent *pending = NULL;
	iovmd_msg *msgs = NULL;
	json_object *reply;
	size_t n_open = 9;

	snprintf(vm.qmp, sizeof(vm.qmp), "%s", c->qmp);
	assert_int_equal(iovm_store_vm_put(s, &vm, NULL), 0);
	iovm_store_close(s);
	start(c);
	msgs_free(iovmd_queue_pop_all(&c->d.msgs));
	reply = run(c, "{\"execute\":\"detach\",\"arguments\":{\"vm\":\"g1\",\"vf\":\"eth0/1\"},\"id\":8}", &msgs);
	assert_string_equal(error_errno(reply), "ENOENT");
	assert_non_null(strstr(json_object_to_json_string(reply), "not attached to it"));
	assert_int_equal(iovm_store_intent_list_open(c->o.store, &pending, &n_open, NULL), 0);
	assert_int_equal(n_open, 0);
	json_object_put(reply);
	msgs_free(msgs);
}

/* Who holds a VF is recorded once, in the store: the policy's holds follow
 * it (views_sync), at start-up, around every job and whenever the
 * store changed. */
static void test_policy_follows_store(void **state)
{
	ctx *c = *state;
	iovm_store_assignment a = { .vf = VF_UP, .vm = "g1", .mode = IOVM_MODE_EXCLUSIVE,
				    .state = IOVM_STORE_ATTACHED };
	_cleanup_free_ iovm_policy_hold *h = NULL;
	iovm_policy_vf_info pi;
	iovmd_msg *msgs = NULL;
	json_object *reply;
	size_t n = 9;

	start_holding(c, &a, NULL);
	assert_int_equal(iovm_policy_holds(c->o.pol, &h, &n, NULL), 0);
	assert_int_equal(n, 1);
	assert_string_equal(h[0].vm, "g1");
	assert_string_equal(h[0].vf, VF_UP);
	assert_int_equal(h[0].mode, IOVM_MODE_EXCLUSIVE);

	/* A decision that no command recorded (an attach that failed before
	 * its record) is given back by the next job. */
	assert_int_equal(iovm_policy_assign(c->o.pol, "g1", VF, IOVM_MODE_EXCLUSIVE, NULL), 0);
	reply = run(c, "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g2\",\"qmp\":\"/nonexistent.qmp\"},"
		    "\"id\":4}", &msgs);
	assert_non_null(member(reply, "return"));
	json_object_put(reply);
	msgs_free(msgs);
	assert_int_equal(iovm_policy_vf_get(c->o.pol, VF, &pi, NULL), 0);
	assert_int_equal(pi.state, IOVM_POLICY_VF_FREE);
	assert_int_equal(iovm_policy_vf_get(c->o.pol, VF_UP, &pi, NULL), 0);
	assert_int_equal(pi.state, IOVM_POLICY_VF_EXCLUSIVE);

	/* The record goes: so does the hold, at the next look. */
	assert_int_equal(iovm_store_unassign(c->o.store, VF_UP, NULL), 0);
	views_sync(&c->o, false);
	free(h);
	h = NULL;
	assert_int_equal(iovm_policy_holds(c->o.pol, &h, &n, NULL), 0);
	assert_int_equal(n, 0);
}

/* The VM layer's VF pool follows the store too: an entry per assignment,
 * its use the assignment's state, the saved driver with it; and what the
 * VM layer does to an entry goes back to the store (views_record). */
static void test_pool_follows_store(void **state)
{
	static const struct {
		iovm_store_assign_state st;
		iovm_vf_use use;
	} map[] = {
		{ IOVM_STORE_RESERVED, IOVM_VF_ATTACHING },
		{ IOVM_STORE_ATTACHING, IOVM_VF_ATTACHING },
		{ IOVM_STORE_ATTACHED, IOVM_VF_IN_USE },
		{ IOVM_STORE_DETACHING, IOVM_VF_RELEASE_PENDING },
		{ IOVM_STORE_RELEASE_PENDING, IOVM_VF_RECLAIM },
	};
	ctx *c = *state;
	iovm_store_assignment a = { .vf = VF_UP, .vm = "g1", .mode = IOVM_MODE_EXCLUSIVE,
				    .devid = "iovm-0000-01-10.2", .state = IOVM_STORE_ATTACHED };
	iovm_store_vf_saved saved = { .vf = VF_UP, .pf = "0000:01:00.0", .vf_index = 1, .driver = "igbvf" };
	iovm_vf_entry *e;

	start_holding(c, &a, &saved);
	assert_int_equal(iovm_vf_pool_size(c->o.pool), 1);
	e = iovm_vf_pool_get(c->o.pool, VF_UP);
	assert_non_null(e);
	assert_string_equal(e->vm, "g1");
	assert_string_equal(e->devid, "iovm-0000-01-10.2");
	assert_string_equal(e->orig_driver, "igbvf");

	for (size_t i = 0; i < ELEMENTSOF(map); i++) {
		assert_int_equal(iovm_store_assignment_set_state(c->o.store, VF_UP, map[i].st, NULL, NULL), 0);
		views_sync(&c->o, false);
		e = iovm_vf_pool_get(c->o.pool, VF_UP);
		assert_non_null(e);
		assert_int_equal(e->use, map[i].use);
		assert_int_equal(views_use_of(map[i].st), map[i].use);
	}

	/* Back: QEMU let go of the device (the VM layer's RECLAIM) ... */
	assert_int_equal(iovm_store_assignment_set_state(c->o.store, VF_UP, IOVM_STORE_ATTACHED, NULL, NULL), 0);
	views_sync(&c->o, false);
	iovm_vf_pool_get(c->o.pool, VF_UP)->use = IOVM_VF_RECLAIM;
	assert_true(views_record(&c->o, &a, false, NULL));
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF_UP, &a, NULL), 0);
	assert_int_equal(a.state, IOVM_STORE_RELEASE_PENDING);
	/* ... then gave the VF back: the assignment and its saved settings go. */
	assert_int_equal(iovm_vf_pool_set(c->o.pool, VF_UP, IOVM_VF_FREE), 0);
	assert_false(views_record(&c->o, &a, false, NULL));
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF_UP, &a, NULL), -ENOENT);
	assert_int_equal(iovm_store_vf_saved_get(c->o.store, VF_UP, &saved, NULL), -ENOENT);
	views_sync(&c->o, false);
	assert_int_equal(iovm_vf_pool_size(c->o.pool), 0);

	/* A row being attached is its command's, unless that command ended. */
	a.state = IOVM_STORE_ATTACHING;
	assert_int_equal(iovm_store_assign(c->o.store, &a, NULL), 0);
	assert_int_equal(iovm_vf_pool_set(c->o.pool, VF_UP, IOVM_VF_FREE), -ENOENT);
	assert_true(views_record(&c->o, &a, false, NULL));
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF_UP, &a, NULL), 0);
	assert_false(views_record(&c->o, &a, true, NULL));
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF_UP, &a, NULL), -ENOENT);
}

/* ---- recovery ------------------------------------------------------------------- */

/* What a crash at attach:STEP leaves: VM g1, vf (eth0/index, on driver)
 * reserved for it in state st with its original settings saved, the attach
 * intent open at step. */
static int64_t crashed_attach(ctx *c, const char *vf, unsigned index, const char *driver,
			      iovm_store_assign_state st, const char *step)
{
	iovm_store *s = store_open(c);
	iovm_store_vm vm = { .name = "g1", .priority = IOVM_PRIO_NORMAL, .numa_node = -1 };
	iovm_store_assignment a = { .vm = "g1", .mode = IOVM_MODE_EXCLUSIVE, .state = st };
	iovm_store_vf_saved saved = { .pf = "0000:01:00.0", .vf_index = index };
	iovm_store_intent_args args = { .vm = "g1", .mode = IOVM_MODE_EXCLUSIVE };
	char object[64];
	int64_t id = 0;

	snprintf(a.vf, sizeof(a.vf), "%s", vf);
	assert_int_equal(iovm_vm_device_id(vf, a.devid, sizeof(a.devid)), 0);
	snprintf(saved.vf, sizeof(saved.vf), "%s", vf);
	snprintf(saved.driver, sizeof(saved.driver), "%s", driver);
	snprintf(object, sizeof(object), "vf %s", vf);
	snprintf(args.devid, sizeof(args.devid), "%s", a.devid);
	snprintf(vm.qmp, sizeof(vm.qmp), "%s", c->qmp);
	assert_int_equal(iovm_store_vm_put(s, &vm, NULL), 0);
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_ATTACH, object, &args, &id, NULL), 0);
	assert_int_equal(iovm_store_assign(s, &a, NULL), 0);
	assert_int_equal(iovm_store_vf_saved_put(s, &saved, NULL), 0);
	assert_int_equal(iovm_store_intent_step(s, id, step, NULL), 0);
	iovm_store_close(s);
	return id;
}

/* The fake QEMU of g1: connects, answers one query-pci, then waits for
 * iovmd to hang up. */
static void fake_vm(ctx *c, const char *query_pci)
{
	const struct step script[] = {
		{ SEND, GREETING }, { EXPECT, "qmp_capabilities" }, { SEND, CAPS_OK },
		{ EXPECT, "query-pci" }, { SEND, query_pci },
		{ WAIT_HUP }, { END },
	};
	static struct step copy[8];

	memcpy(copy, script, sizeof(script));
	fake_listen(&c->f, c->qmp, copy);
	c->fake_running = true;
}

/* Crash after device-added, the device is in the guest: recovery completes
 * the attach (docs/iovmd.md, recovery rule 1 and 4). */
static void test_recover_attach_completed(void **state)
{
	ctx *c = *state;
	_cleanup_free_ char *pci = query_pci_reply(DEVID, 1);
	int64_t id = crashed_attach(c, VF, 2, "", IOVM_STORE_ATTACHING, "device-added");
	iovm_store_assignment a;
	iovm_store_intent in;
	iovm_store_vf_saved saved;
	iovm_vf_entry *e;
	json_object *vf;
	iovmd_msg *msgs;

	fake_vm(c, pci);
	start(c);
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF, &a, NULL), 0);
	assert_int_equal(a.state, IOVM_STORE_ATTACHED);
	assert_string_equal(a.vm, "g1");
	assert_int_equal(iovm_store_intent_get(c->o.store, id, &in, NULL), 0);
	assert_int_equal(in.status, IOVM_INTENT_DONE);
	assert_string_equal(in.step, "device-added");
	/* The original settings stay for the detach to restore. */
	assert_int_equal(iovm_store_vf_saved_get(c->o.store, VF, &saved, NULL), 0);
	/* The pool, derived from the store, holds it for the VM, in use. */
	e = iovm_vf_pool_get(c->o.pool, VF);
	assert_non_null(e);
	assert_string_equal(e->vm, "g1");
	assert_string_equal(e->devid, DEVID);
	assert_int_equal(e->use, IOVM_VF_IN_USE);
	/* And the snapshot after start-up says so. */
	msgs = iovmd_queue_pop_all(&c->d.msgs);
	vf = array_find(member(array_find(member(last_snapshot(msgs), "pfs"), "pf", "0000:01:00.0"), "vfs"),
			"vf", VF);
	assert_string_equal(member_str(vf, "state"), "attached");
	assert_string_equal(member_str(vf, "vm"), "g1");
	assert_int_equal(json_object_get_int(member(last_snapshot(msgs), "open_intents")), 0);
	msgs_free(msgs);
}

/* Crash after prepared, the device never reached the guest: recovery gives
 * the VF back and rolls the intent back. */
static void test_recover_attach_rolled_back(void **state)
{
	ctx *c = *state;
	_cleanup_free_ char *pci = query_pci_reply(NULL, 1);
	int64_t id = crashed_attach(c, VF, 2, "", IOVM_STORE_ATTACHING, "prepared");
	iovm_store_assignment a;
	iovm_store_intent in;
	iovm_store_vf_saved saved;
	json_object *vf;
	iovmd_msg *msgs;

	fake_vm(c, pci);
	start(c);
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF, &a, NULL), -ENOENT);
	assert_int_equal(iovm_store_vf_saved_get(c->o.store, VF, &saved, NULL), -ENOENT);
	assert_int_equal(iovm_store_intent_get(c->o.store, id, &in, NULL), 0);
	assert_int_equal(in.status, IOVM_INTENT_ROLLED_BACK);
	assert_null(iovm_vf_pool_get(c->o.pool, VF));
	msgs = iovmd_queue_pop_all(&c->d.msgs);
	vf = array_find(member(array_find(member(last_snapshot(msgs), "pfs"), "pf", "0000:01:00.0"), "vfs"),
			"vf", VF);
	assert_string_equal(member_str(vf, "state"), "free");
	msgs_free(msgs);
}

/* The VM is gone (no QEMU on its socket): its VF is given back all the
 * same; the intent is rolled back. */
static void test_recover_vm_gone(void **state)
{
	ctx *c = *state;
	int64_t id = crashed_attach(c, VF, 2, "", IOVM_STORE_ATTACHED, "verified");
	iovm_store_assignment a;
	iovm_store_intent in;

	start(c);
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF, &a, NULL), -ENOENT);
	assert_null(iovm_vf_pool_get(c->o.pool, VF));
	assert_int_equal(iovm_store_intent_get(c->o.store, id, &in, NULL), 0);
	assert_int_equal(in.status, IOVM_INTENT_ROLLED_BACK);
}

/* The VM is gone but the VF is still held (its netdev is up on the host):
 * it stays reserved, release-pending, for the refresh tick to retry. */
static void test_recover_vf_still_held(void **state)
{
	ctx *c = *state;
	int64_t id = crashed_attach(c, VF_UP, 1, "igbvf", IOVM_STORE_ATTACHED, "verified");
	iovm_store_assignment a;
	iovm_store_intent in;
	iovm_vf_entry *e;

	start(c);
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF_UP, &a, NULL), 0);
	assert_int_equal(a.state, IOVM_STORE_RELEASE_PENDING);
	e = iovm_vf_pool_get(c->o.pool, VF_UP);
	assert_non_null(e);
	assert_int_equal(e->use, IOVM_VF_RECLAIM);
	assert_int_equal(iovm_store_intent_get(c->o.store, id, &in, NULL), 0);
	assert_int_equal(in.status, IOVM_INTENT_ROLLED_BACK);
	/* Still held on the tick: still reserved. */
	ops_tick(&c->o);
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF_UP, &a, NULL), 0);
	assert_non_null(iovm_vf_pool_get(c->o.pool, VF_UP));
	/* The host lets go of it: the next tick gives it back. */
	assert_int_equal(fx_write(&c->fx, "class/net/eth2/flags", "0x1002"), 0);
	assert_int_equal(fx_write(&c->fx, "class/net/eth2/operstate", "down"), 0);
	ops_tick(&c->o);
	assert_int_equal(iovm_store_assignment_get(c->o.store, VF_UP, &a, NULL), -ENOENT);
	assert_null(iovm_vf_pool_get(c->o.pool, VF_UP));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_pf_set_vfs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pf_set_vfs_refused_while_assigned, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vm_add_remove, setup, teardown),
		cmocka_unit_test_setup_teardown(test_detach_not_held, setup, teardown),
		cmocka_unit_test_setup_teardown(test_policy_follows_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pool_follows_store, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_attach_completed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_attach_rolled_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_vm_gone, setup, teardown),
		cmocka_unit_test_setup_teardown(test_recover_vf_still_held, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
