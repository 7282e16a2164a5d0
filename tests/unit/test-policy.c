/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The allocation policy engine on scripted scenarios (admission order,
 * exhaustion, lowest-throughput choice, ties, window reset, rebalancing,
 * NUMA, user caps, releases, bad input), each run against the indexed engine
 * and the reference one, and a long pseudo-random sequence on which the two
 * must make identical decisions. */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "iovm/policy.h"

#define SEC 1000000000ULL
#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

static iovm_policy_algo algo_indexed = IOVM_POLICY_ALGO_INDEXED;
static iovm_policy_algo algo_reference = IOVM_POLICY_ALGO_REFERENCE;

static iovm_policy *engine(void **state, unsigned max_users, bool rebalance)
{
	iovm_policy_config cfg = { .algo = *(iovm_policy_algo *)*state, .max_users = max_users,
				   .rebalance = rebalance };
	iovm_policy *p = NULL;
	iovm_error e = {};

	if (iovm_policy_new(&cfg, 0, &p, &e) < 0)
		fail_msg("new: %s", e.msg);
	return p;
}

static void add_vf(iovm_policy *p, const char *id, const char *pf, int node, bool shareable, unsigned cap)
{
	iovm_policy_vf v = { .id = id, .pf = pf, .numa_node = node, .shareable = shareable, .max_users = cap };
	iovm_error e = {};

	if (iovm_policy_vf_add(p, &v, &e) < 0)
		fail_msg("vf add %s: %s", id, e.msg);
}

static void add_vm(iovm_policy *p, const char *name, iovm_priority prio, int node)
{
	iovm_policy_vm m = { .name = name, .priority = prio, .numa_node = node };
	iovm_error e = {};

	if (iovm_policy_vm_add(p, &m, &e) < 0)
		fail_msg("vm add %s: %s", name, e.msg);
}

/* n VFs 0000:01:10.0.. on one PF, no NUMA node, the engine's cap */
static void add_vfs(iovm_policy *p, unsigned n, bool shareable)
{
	for (unsigned i = 0; i < n; i++) {
		char id[16];

		snprintf(id, sizeof(id), "0000:01:10.%u", i);
		add_vf(p, id, "0000:01:00.0", -1, shareable, 0);
	}
}

/* VMs without NUMA preference; names separated by spaces */
static void add_vms(iovm_policy *p, iovm_priority prio, const char *names)
{
	char buf[256], *save = NULL;

	snprintf(buf, sizeof(buf), "%s", names);
	for (char *n = strtok_r(buf, " ", &save); n; n = strtok_r(NULL, " ", &save))
		add_vm(p, n, prio, -1);
}

static int ask(iovm_policy *p, const char *vm, iovm_mode mode, const char *pf, iovm_policy_decision *d,
	       iovm_error *e)
{
	iovm_policy_req r = { .vm = vm, .mode = mode, .pf = pf };

	*d = (iovm_policy_decision){};
	*e = (iovm_error){};
	return iovm_policy_request(p, &r, d, e);
}

/* Asks and expects success with the given VF and mode. */
static void expect(iovm_policy *p, const char *vm, iovm_mode mode, const char *pf, const char *vf,
		   iovm_mode got, iovm_policy_decision *d)
{
	iovm_policy_decision dd;
	iovm_error e;
	int r = ask(p, vm, mode, pf, d ? d : &dd, &e);

	if (!d)
		d = &dd;
	if (r < 0)
		fail_msg("request %s: %d %s", vm, r, e.msg);
	assert_string_equal(d->vf, vf);
	assert_string_equal(d->vm, vm);
	assert_int_equal(d->mode, got);
	assert_true(d->reason[0] != 0);
}

static void release_ok(iovm_policy *p, const char *vm, const char *vf)
{
	iovm_error e = {};

	if (iovm_policy_release(p, vm, vf, NULL, &e) < 0)
		fail_msg("release %s %s: %s", vm, vf, e.msg);
}

static void assign_ok(iovm_policy *p, const char *vm, const char *vf, iovm_mode mode)
{
	iovm_error e = {};

	if (iovm_policy_assign(p, vm, vf, mode, &e) < 0)
		fail_msg("assign %s %s: %s", vm, vf, e.msg);
}

static void sample_ok(iovm_policy *p, const char *vf, uint64_t counter)
{
	iovm_error e = {};

	if (iovm_policy_sample(p, vf, counter, &e) < 0)
		fail_msg("sample %s: %s", vf, e.msg);
}

static void reset_ok(iovm_policy *p, uint64_t now)
{
	iovm_error e = {};

	if (iovm_policy_window_reset(p, now, &e) < 0)
		fail_msg("reset: %s", e.msg);
}

static iovm_policy_vf_info info(iovm_policy *p, const char *vf)
{
	iovm_policy_vf_info i = {};
	iovm_error e = {};

	if (iovm_policy_vf_get(p, vf, &i, &e) < 0)
		fail_msg("vf get %s: %s", vf, e.msg);
	return i;
}

#define assert_contains(s, sub) \
	do { if (!strstr((s), (sub))) fail_msg("\"%s\" does not contain \"%s\"", (s), (sub)); } while (0)

/* ---- scenarios ------------------------------------------------------------------ */

static void test_admission_order(void **state)
{
	iovm_policy *p = engine(state, 0, false);
	iovm_policy_req reqs[] = {
		{ .vm = "low1", .mode = IOVM_MODE_EXCLUSIVE },
		{ .vm = "norm1", .mode = IOVM_MODE_EXCLUSIVE },
		{ .vm = "high1", .mode = IOVM_MODE_EXCLUSIVE },
		{ .vm = "norm2", .mode = IOVM_MODE_EXCLUSIVE },
		{ .vm = "ghost", .mode = IOVM_MODE_EXCLUSIVE },
		{ .vm = "high2", .mode = IOVM_MODE_EXCLUSIVE },
	};
	iovm_policy_decision d[ELEMENTSOF(reqs)];

	add_vfs(p, 3, false);
	add_vm(p, "low1", IOVM_PRIO_LOW, -1);
	add_vms(p, IOVM_PRIO_NORMAL, "norm1 norm2");
	add_vms(p, IOVM_PRIO_HIGH, "high1 high2");

	assert_int_equal(iovm_policy_request_batch(p, reqs, ELEMENTSOF(reqs), d), 3);
	/* high first in the order given, then normal: VFs go out by id */
	assert_int_equal(d[2].result, 0);
	assert_string_equal(d[2].vf, "0000:01:10.0");
	assert_int_equal(d[5].result, 0);
	assert_string_equal(d[5].vf, "0000:01:10.1");
	assert_int_equal(d[1].result, 0);
	assert_string_equal(d[1].vf, "0000:01:10.2");
	assert_int_equal(d[1].mode, IOVM_MODE_EXCLUSIVE);
	assert_int_equal(d[3].result, -EBUSY);
	assert_string_equal(d[3].vm, "norm2");
	assert_contains(d[3].reason, "no free VF for exclusive use");
	assert_int_equal(d[0].result, -EBUSY);
	assert_int_equal(d[4].result, -ENOENT);
	assert_contains(d[4].reason, "vm ghost: unknown");
	assert_int_equal(iovm_policy_vf_free_count(p), 0);

	assert_int_equal(iovm_policy_request_batch(p, NULL, 1, d), -EINVAL);
	assert_int_equal(iovm_policy_request_batch(p, reqs, 0, NULL), 0);
	iovm_policy_free(p);
}

static void test_exhaustion(void **state)
{
	iovm_policy *p = engine(state, 0, false);
	iovm_policy_decision d;
	iovm_error e;

	add_vf(p, "0000:01:10.0", "0000:01:00.0", -1, true, 0);
	add_vf(p, "0000:01:10.1", "0000:01:00.0", -1, false, 0);
	add_vms(p, IOVM_PRIO_NORMAL, "a b c");

	expect(p, "a", IOVM_MODE_AUTO, NULL, "0000:01:10.0", IOVM_MODE_EXCLUSIVE, &d);
	assert_contains(d.reason, "exclusive: free VF");
	expect(p, "b", IOVM_MODE_AUTO, NULL, "0000:01:10.1", IOVM_MODE_EXCLUSIVE, NULL);
	/* everything is held exclusively: nothing to share either */
	assert_int_equal(ask(p, "c", IOVM_MODE_EXCLUSIVE, NULL, &d, &e), -EBUSY);
	assert_contains(e.msg, "vm c: no free VF for exclusive use (2 VFs: 2 exclusive, 0 shared)");
	assert_int_equal(ask(p, "c", IOVM_MODE_AUTO, NULL, &d, &e), -EBUSY);
	assert_contains(e.msg, "nothing shared yet (1 shareable VFs, all held exclusively)");
	assert_int_equal(ask(p, "c", IOVM_MODE_SHARED, NULL, &d, &e), -EBUSY);
	assert_string_equal(d.vf, "");
	/* an exclusively held VF is never shared, not even by name */
	assert_int_equal(iovm_policy_assign(p, "c", "0000:01:10.0", IOVM_MODE_SHARED, &e), -EBUSY);
	assert_contains(e.msg, "held exclusively by vm a");
	assert_int_equal(info(p, "0000:01:10.0").users, 1);
	iovm_policy_free(p);
}

/* Three shared VFs with different throughput: a newcomer shares the slowest. */
static void test_lowest_throughput(void **state)
{
	iovm_policy *p = engine(state, 0, false);
	iovm_policy_decision d;

	add_vfs(p, 3, true);
	add_vms(p, IOVM_PRIO_NORMAL, "a b c new");
	assign_ok(p, "a", "0000:01:10.0", IOVM_MODE_SHARED);
	assign_ok(p, "b", "0000:01:10.1", IOVM_MODE_SHARED);
	assign_ok(p, "c", "0000:01:10.2", IOVM_MODE_SHARED);

	sample_ok(p, "0000:01:10.0", 1000);   /* baselines */
	sample_ok(p, "0000:01:10.1", 5000);
	sample_ok(p, "0000:01:10.2", 0);
	sample_ok(p, "0000:01:10.0", 1000 + 3000000);      /* 24.0 Mbit/s over 1 s */
	sample_ok(p, "0000:01:10.1", 5000 + 1537500);      /* 12.3 Mbit/s */
	sample_ok(p, "0000:01:10.2", 2000000);             /* 16.0 Mbit/s */
	reset_ok(p, 1 * SEC);
	assert_int_equal(info(p, "0000:01:10.0").throughput_bps, 24000000);
	assert_int_equal(info(p, "0000:01:10.1").throughput_bps, 12300000);
	assert_int_equal(info(p, "0000:01:10.2").throughput_bps, 16000000);

	expect(p, "new", IOVM_MODE_AUTO, NULL, "0000:01:10.1", IOVM_MODE_SHARED, &d);
	assert_int_equal(d.users, 2);
	assert_string_equal(d.reason, "shared: no free VF; lowest throughput 12.3 Mbit/s of 3 shareable VFs "
			    "with room (user 2 of cap 4)");
	iovm_policy_free(p);
}

static void test_ties(void **state)
{
	iovm_policy *p = engine(state, 0, false);
	iovm_policy_decision d;

	/* added out of id order on purpose */
	add_vf(p, "0000:01:10.2", "0000:01:00.0", -1, true, 0);
	add_vfs(p, 2, true);
	add_vms(p, IOVM_PRIO_NORMAL, "a a2 b c x y");
	assign_ok(p, "a", "0000:01:10.0", IOVM_MODE_SHARED);
	assign_ok(p, "a2", "0000:01:10.0", IOVM_MODE_SHARED);
	assign_ok(p, "c", "0000:01:10.2", IOVM_MODE_SHARED);
	assign_ok(p, "b", "0000:01:10.1", IOVM_MODE_SHARED);
	/* all at 0 bit/s: .0 has two users; .1 and .2 one each: the lower id wins */
	expect(p, "x", IOVM_MODE_AUTO, NULL, "0000:01:10.1", IOVM_MODE_SHARED, &d);
	assert_int_equal(d.users, 2);
	/* now .2 is the only one with a single user */
	expect(p, "y", IOVM_MODE_SHARED, NULL, "0000:01:10.2", IOVM_MODE_SHARED, NULL);
	iovm_policy_free(p);
}

static void test_window_reset(void **state)
{
	iovm_policy *p = engine(state, 0, false);
	iovm_error e = {};
	iovm_policy_vf_info i;

	add_vfs(p, 2, true);
	assert_int_equal(iovm_policy_last_reset(p), 0);

	sample_ok(p, "0000:01:10.0", 100);       /* baseline only */
	sample_ok(p, "0000:01:10.0", 100 + 2500000);
	sample_ok(p, "0000:01:10.1", 7);
	i = info(p, "0000:01:10.0");
	assert_int_equal(i.window_bytes, 2500000);
	assert_int_equal(i.throughput_bps, 0);   /* no window closed yet */
	reset_ok(p, 2 * SEC);                    /* 20 Mbit over 2 s */
	i = info(p, "0000:01:10.0");
	assert_int_equal(i.throughput_bps, 10000000);
	assert_int_equal(i.window_bytes, 0);
	assert_int_equal(i.last_reset_ns, 2 * SEC);
	assert_int_equal(iovm_policy_last_reset(p), 2 * SEC);

	/* the next window counts only its own bytes */
	sample_ok(p, "0000:01:10.1", 7 + 125000);
	reset_ok(p, 3 * SEC);
	assert_int_equal(info(p, "0000:01:10.0").throughput_bps, 0);
	assert_int_equal(info(p, "0000:01:10.1").throughput_bps, 1000000);
	i = info(p, "0000:01:10.0");
	assert_int_equal(i.total_bytes, 2500000);

	/* a counter that goes backwards is a new baseline, not a huge delta */
	sample_ok(p, "0000:01:10.1", 10);
	sample_ok(p, "0000:01:10.1", 10 + 500);
	reset_ok(p, 3 * SEC + SEC / 2);
	assert_int_equal(info(p, "0000:01:10.1").throughput_bps, 8000);

	assert_int_equal(iovm_policy_window_reset(p, 3 * SEC, &e), -EINVAL);
	assert_contains(e.msg, "not after the last one");
	assert_int_equal(iovm_policy_last_reset(p), 3 * SEC + SEC / 2);
	iovm_policy_free(p);
}

/* Throughput changes re-order the sharing choice. */
static void test_throughput_reorders(void **state)
{
	iovm_policy *p = engine(state, 8, false);
	uint64_t c0 = 0, c1 = 0;

	add_vfs(p, 2, true);
	add_vms(p, IOVM_PRIO_NORMAL, "a b n1 n2");
	assign_ok(p, "a", "0000:01:10.0", IOVM_MODE_SHARED);
	assign_ok(p, "b", "0000:01:10.1", IOVM_MODE_SHARED);
	sample_ok(p, "0000:01:10.0", c0);
	sample_ok(p, "0000:01:10.1", c1);
	sample_ok(p, "0000:01:10.0", c0 += 1000000);
	reset_ok(p, 1 * SEC);
	expect(p, "n1", IOVM_MODE_AUTO, NULL, "0000:01:10.1", IOVM_MODE_SHARED, NULL);
	sample_ok(p, "0000:01:10.1", c1 += 2000000);
	reset_ok(p, 2 * SEC);
	expect(p, "n2", IOVM_MODE_AUTO, NULL, "0000:01:10.0", IOVM_MODE_SHARED, NULL);
	iovm_policy_free(p);
}

static void test_rebalance(void **state)
{
	iovm_policy *p = engine(state, 0, true);
	iovm_policy_move mv = {};
	iovm_error e = {};

	add_vfs(p, 2, true);
	add_vms(p, IOVM_PRIO_LOW, "excl lo");
	add_vms(p, IOVM_PRIO_HIGH, "hi hi2");
	expect(p, "excl", IOVM_MODE_EXCLUSIVE, NULL, "0000:01:10.0", IOVM_MODE_EXCLUSIVE, NULL);
	expect(p, "lo", IOVM_MODE_SHARED, NULL, "0000:01:10.1", IOVM_MODE_SHARED, NULL);
	expect(p, "hi", IOVM_MODE_SHARED, NULL, "0000:01:10.1", IOVM_MODE_SHARED, NULL);
	expect(p, "hi2", IOVM_MODE_SHARED, NULL, "0000:01:10.1", IOVM_MODE_SHARED, NULL);
	assert_int_equal(iovm_policy_rebalance(p, &mv), 0);   /* nothing free */

	/* the exclusive VF frees up: the first high-priority sharer should move */
	assert_int_equal(iovm_policy_release(p, "excl", "0000:01:10.0", &mv, &e), 1);
	assert_string_equal(mv.vm, "hi");
	assert_string_equal(mv.from_vf, "0000:01:10.1");
	assert_string_equal(mv.to_vf, "0000:01:10.0");
	assert_contains(mv.reason, "priority high");
	/* the engine changed nothing: the daemon carries the move out */
	assert_int_equal(info(p, "0000:01:10.0").state, IOVM_POLICY_VF_FREE);
	assert_int_equal(iovm_policy_rebalance(p, &mv), 1);
	assert_string_equal(mv.vm, "hi");
	release_ok(p, "hi", "0000:01:10.1");
	assign_ok(p, "hi", "0000:01:10.0", IOVM_MODE_EXCLUSIVE);
	assert_int_equal(info(p, "0000:01:10.1").users, 2);
	assert_int_equal(iovm_policy_rebalance(p, &mv), 0);

	/* a VF that stays shared after a release frees nothing */
	assert_int_equal(iovm_policy_release(p, "lo", "0000:01:10.1", &mv, &e), 0);
	/* the next one up is hi2 */
	assert_int_equal(iovm_policy_release(p, "hi", "0000:01:10.0", &mv, &e), 1);
	assert_string_equal(mv.vm, "hi2");
	iovm_policy_free(p);
}

static void test_rebalance_off(void **state)
{
	iovm_policy *p = engine(state, 0, false);
	iovm_policy_move mv = {};
	iovm_error e = {};

	add_vfs(p, 2, true);
	add_vm(p, "a", IOVM_PRIO_LOW, -1);
	add_vm(p, "b", IOVM_PRIO_HIGH, -1);
	assign_ok(p, "a", "0000:01:10.0", IOVM_MODE_EXCLUSIVE);
	assign_ok(p, "b", "0000:01:10.1", IOVM_MODE_SHARED);
	assert_int_equal(iovm_policy_release(p, "a", "0000:01:10.0", &mv, &e), 0);
	assert_string_equal(mv.vm, "");
	assert_int_equal(iovm_policy_rebalance(p, &mv), 0);
	iovm_policy_free(p);
}

static void test_numa(void **state)
{
	iovm_policy *p = engine(state, 0, false);
	iovm_policy_decision d;

	add_vf(p, "0000:01:10.0", "0000:01:00.0", 0, false, 0);
	add_vf(p, "0000:01:10.1", "0000:01:00.0", 0, false, 0);
	add_vf(p, "0000:81:10.0", "0000:81:00.0", 1, false, 0);
	add_vf(p, "0000:81:10.1", "0000:81:00.0", 1, false, 0);
	add_vm(p, "n1a", IOVM_PRIO_NORMAL, 1);
	add_vm(p, "n1b", IOVM_PRIO_NORMAL, 1);
	add_vm(p, "n1c", IOVM_PRIO_NORMAL, 1);
	add_vm(p, "any", IOVM_PRIO_NORMAL, -1);
	add_vm(p, "n5", IOVM_PRIO_NORMAL, 5);   /* a node without VFs */

	expect(p, "n1a", IOVM_MODE_AUTO, NULL, "0000:81:10.0", IOVM_MODE_EXCLUSIVE, &d);
	assert_string_equal(d.reason, "exclusive: free VF on NUMA node 1 (2 free there)");
	expect(p, "n1b", IOVM_MODE_AUTO, NULL, "0000:81:10.1", IOVM_MODE_EXCLUSIVE, NULL);
	/* node 1 is full: fall back to node 0 */
	expect(p, "n1c", IOVM_MODE_AUTO, NULL, "0000:01:10.0", IOVM_MODE_EXCLUSIVE, &d);
	assert_string_equal(d.reason, "exclusive: free VF on NUMA node 0, none free on the VM's node 1 "
			    "(2 free elsewhere)");
	expect(p, "n5", IOVM_MODE_AUTO, NULL, "0000:01:10.1", IOVM_MODE_EXCLUSIVE, &d);
	assert_contains(d.reason, "none free on the VM's node 5");
	release_ok(p, "n1b", "0000:81:10.1");
	expect(p, "any", IOVM_MODE_AUTO, NULL, "0000:81:10.1", IOVM_MODE_EXCLUSIVE, &d);
	assert_string_equal(d.reason, "exclusive: free VF (1 free, the VM has no NUMA preference)");
	iovm_policy_free(p);
}

static void test_pf_restriction(void **state)
{
	iovm_policy *p = engine(state, 0, false);
	iovm_policy_decision d;
	iovm_error e;

	add_vf(p, "0000:01:10.0", "0000:01:00.0", 0, true, 0);
	add_vf(p, "0000:81:10.0", "0000:81:00.0", 1, true, 0);
	add_vm(p, "a", IOVM_PRIO_NORMAL, 0);
	add_vm(p, "b", IOVM_PRIO_NORMAL, 0);
	add_vm(p, "c", IOVM_PRIO_NORMAL, 0);
	/* the PF wins over the NUMA preference */
	expect(p, "a", IOVM_MODE_AUTO, "0000:81:00.0", "0000:81:10.0", IOVM_MODE_EXCLUSIVE, &d);
	assert_string_equal(d.reason, "exclusive: free VF on pf 0000:81:00.0 (1 free there)");
	assert_int_equal(ask(p, "b", IOVM_MODE_EXCLUSIVE, "0000:81:00.0", &d, &e), -EBUSY);
	assert_contains(e.msg, "no free VF on pf 0000:81:00.0 for exclusive use");
	expect(p, "b", IOVM_MODE_SHARED, "0000:01:00.0", "0000:01:10.0", IOVM_MODE_SHARED, &d);
	assert_contains(d.reason, "turned shared");
	expect(p, "c", IOVM_MODE_AUTO, "0000:01:00.0", "0000:01:10.0", IOVM_MODE_SHARED, &d);
	assert_contains(d.reason, "on pf 0000:01:00.0");
	assert_int_equal(ask(p, "c", IOVM_MODE_AUTO, "0000:99:00.0", &d, &e), -ENOENT);
	assert_contains(e.msg, "pf 0000:99:00.0 has no VFs");
	iovm_policy_free(p);
}

static void test_users_cap(void **state)
{
	iovm_policy *p = engine(state, 2, false);
	iovm_policy_decision d;
	iovm_error e;

	add_vf(p, "0000:01:10.0", "0000:01:00.0", -1, true, 0);
	add_vms(p, IOVM_PRIO_NORMAL, "a b");
	add_vm(p, "c", IOVM_PRIO_HIGH, -1);
	expect(p, "a", IOVM_MODE_SHARED, NULL, "0000:01:10.0", IOVM_MODE_SHARED, &d);
	assert_int_equal(d.users, 1);
	assert_contains(d.reason, "no shared VF with room; free VF");
	assert_contains(d.reason, "turned shared (cap 2 users)");
	expect(p, "b", IOVM_MODE_AUTO, NULL, "0000:01:10.0", IOVM_MODE_SHARED, &d);
	assert_int_equal(d.users, 2);
	assert_contains(d.reason, "(user 2 of cap 2)");
	/* full: priority does not break the cap */
	assert_int_equal(ask(p, "c", IOVM_MODE_AUTO, NULL, &d, &e), -EBUSY);
	assert_string_equal(e.msg, "vm c: no free VF and all 1 shared VFs are at their user cap (cap 2 users)");
	assert_int_equal(iovm_policy_assign(p, "c", "0000:01:10.0", IOVM_MODE_SHARED, &e), -EBUSY);
	assert_contains(e.msg, "cap 2 users");
	/* a shared VF is never given exclusively while it has users */
	assert_int_equal(iovm_policy_assign(p, "c", "0000:01:10.0", IOVM_MODE_EXCLUSIVE, &e), -EBUSY);
	assert_contains(e.msg, "shared by 2 users");

	/* a VF's own cap wins over the engine's */
	add_vf(p, "0000:01:10.1", "0000:01:00.0", -1, true, 1);
	expect(p, "c", IOVM_MODE_SHARED, NULL, "0000:01:10.1", IOVM_MODE_SHARED, NULL);
	assert_int_equal(info(p, "0000:01:10.1").max_users, 1);
	release_ok(p, "a", "0000:01:10.0");
	assert_int_equal(ask(p, "a", IOVM_MODE_SHARED, NULL, &d, &e), 0);
	assert_string_equal(d.vf, "0000:01:10.0");
	assert_int_equal(ask(p, "c", IOVM_MODE_SHARED, NULL, &d, &e), -EBUSY);
	assert_contains(e.msg, "cap 2 users; 1 VFs have their own cap");
	iovm_policy_free(p);
}

static void test_release_frees(void **state)
{
	iovm_policy *p = engine(state, 0, false);
	iovm_policy_decision d;
	iovm_error e;

	add_vf(p, "0000:01:10.0", "0000:01:00.0", -1, true, 0);
	add_vms(p, IOVM_PRIO_NORMAL, "a b c");
	expect(p, "a", IOVM_MODE_AUTO, NULL, "0000:01:10.0", IOVM_MODE_EXCLUSIVE, NULL);
	assert_int_equal(info(p, "0000:01:10.0").state, IOVM_POLICY_VF_EXCLUSIVE);
	assert_int_equal(ask(p, "b", IOVM_MODE_EXCLUSIVE, NULL, &d, &e), -EBUSY);
	release_ok(p, "a", "0000:01:10.0");
	assert_int_equal(info(p, "0000:01:10.0").state, IOVM_POLICY_VF_FREE);
	assert_int_equal(iovm_policy_vf_free_count(p), 1);
	expect(p, "b", IOVM_MODE_EXCLUSIVE, NULL, "0000:01:10.0", IOVM_MODE_EXCLUSIVE, NULL);
	release_ok(p, "b", "0000:01:10.0");

	/* a shared VF is free again only when its last user leaves */
	assign_ok(p, "a", "0000:01:10.0", IOVM_MODE_SHARED);
	assign_ok(p, "b", "0000:01:10.0", IOVM_MODE_SHARED);
	release_ok(p, "a", "0000:01:10.0");
	assert_int_equal(info(p, "0000:01:10.0").state, IOVM_POLICY_VF_SHARED);
	assert_int_equal(ask(p, "c", IOVM_MODE_EXCLUSIVE, NULL, &d, &e), -EBUSY);
	release_ok(p, "b", "0000:01:10.0");
	expect(p, "c", IOVM_MODE_EXCLUSIVE, NULL, "0000:01:10.0", IOVM_MODE_EXCLUSIVE, NULL);
	iovm_policy_free(p);
}

/* The holds list: every (VM, VF) the engine holds, in VF order, and
 * nothing after release. */
static void test_holds(void **state)
{
	iovm_policy *p = engine(state, 0, false);
	iovm_policy_hold *h = NULL;
	size_t n = 99;
	iovm_error e = {};

	add_vfs(p, 3, true);
	add_vms(p, IOVM_PRIO_NORMAL, "a b c");
	assert_int_equal(iovm_policy_holds(p, &h, &n, &e), 0);
	assert_int_equal(n, 0);
	free(h);
	assign_ok(p, "c", "0000:01:10.2", IOVM_MODE_EXCLUSIVE);
	assign_ok(p, "a", "0000:01:10.0", IOVM_MODE_SHARED);
	assign_ok(p, "b", "0000:01:10.0", IOVM_MODE_SHARED);
	assert_int_equal(iovm_policy_holds(p, &h, &n, &e), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(h[i].vf, "0000:01:10.0");
		assert_int_equal(h[i].mode, IOVM_MODE_SHARED);
	}
	assert_true((!strcmp(h[0].vm, "a") && !strcmp(h[1].vm, "b")) ||
		    (!strcmp(h[0].vm, "b") && !strcmp(h[1].vm, "a")));
	assert_string_equal(h[2].vm, "c");
	assert_string_equal(h[2].vf, "0000:01:10.2");
	assert_int_equal(h[2].mode, IOVM_MODE_EXCLUSIVE);
	free(h);
	release_ok(p, "a", "0000:01:10.0");
	release_ok(p, "c", "0000:01:10.2");
	assert_int_equal(iovm_policy_holds(p, &h, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(h[0].vm, "b");
	free(h);
	assert_int_equal(iovm_policy_holds(NULL, &h, &n, &e), -EINVAL);
	iovm_policy_free(p);
}

static void test_bad_input(void **state)
{
	iovm_policy *p = engine(state, 0, false);
	iovm_policy_decision d;
	iovm_policy_vf_info i;
	iovm_error e = {};
	char longname[200];

	memset(longname, 'x', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	add_vf(p, "0000:01:10.0", "0000:01:00.0", -1, true, 0);
	add_vf(p, "0000:01:10.1", "0000:01:00.0", -1, false, 0);
	add_vms(p, IOVM_PRIO_NORMAL, "a b");

	assert_int_equal(ask(p, "nobody", IOVM_MODE_AUTO, NULL, &d, &e), -ENOENT);
	assert_string_equal(e.msg, "vm nobody: unknown to the allocator");
	assert_int_equal(ask(p, "a", (iovm_mode)9, NULL, &d, &e), -EINVAL);
	assert_int_equal(ask(p, NULL, IOVM_MODE_AUTO, NULL, &d, &e), -EINVAL);
	assert_int_equal(ask(p, longname, IOVM_MODE_AUTO, NULL, &d, &e), -EINVAL);
	assert_int_equal(iovm_policy_request(NULL, &(iovm_policy_req){ .vm = "a" }, &d, &e), -EINVAL);

	assert_int_equal(iovm_policy_vf_add(p, &(iovm_policy_vf){ .id = "0000:01:10.0", .pf = "0000:01:00.0" }, &e),
			 -EEXIST);
	assert_int_equal(iovm_policy_vf_add(p, &(iovm_policy_vf){ .id = "0000:01:10.7" }, &e), -EINVAL);
	assert_contains(e.msg, "vf 0000:01:10.7");
	assert_int_equal(iovm_policy_vf_add(p, &(iovm_policy_vf){ .id = longname, .pf = "x" }, &e), -EINVAL);
	assert_int_equal(iovm_policy_vm_add(p, &(iovm_policy_vm){ .name = "a" }, &e), -EEXIST);
	assert_int_equal(iovm_policy_vm_add(p, &(iovm_policy_vm){ .name = "z", .priority = 7 }, &e), -EINVAL);
	assert_int_equal(iovm_policy_vm_add(p, &(iovm_policy_vm){ .name = "z", .numa_node = -2 }, &e), -EINVAL);

	assert_int_equal(iovm_policy_release(p, "a", "0000:01:10.9", NULL, &e), -ENOENT);
	assert_string_equal(e.msg, "vf 0000:01:10.9: unknown to the allocator");
	assert_int_equal(iovm_policy_release(p, "ghost", "0000:01:10.0", NULL, &e), -ENOENT);
	assert_int_equal(iovm_policy_sample(p, "0000:01:10.9", 1, &e), -ENOENT);
	assert_int_equal(iovm_policy_vf_get(p, "0000:01:10.9", &i, &e), -ENOENT);

	expect(p, "a", IOVM_MODE_SHARED, NULL, "0000:01:10.0", IOVM_MODE_SHARED, NULL);
	release_ok(p, "a", "0000:01:10.0");
	assert_int_equal(iovm_policy_release(p, "a", "0000:01:10.0", NULL, &e), -ENOENT);
	assert_contains(e.msg, "vm a: does not hold vf 0000:01:10.0");
	assert_int_equal(iovm_policy_release(p, "b", "0000:01:10.0", NULL, &e), -ENOENT);

	/* a VM never gets a VF twice */
	assign_ok(p, "a", "0000:01:10.0", IOVM_MODE_SHARED);
	assert_int_equal(iovm_policy_assign(p, "a", "0000:01:10.0", IOVM_MODE_SHARED, &e), -EEXIST);
	assert_int_equal(ask(p, "a", IOVM_MODE_SHARED, NULL, &d, &e), -EBUSY);
	assert_contains(e.msg, "every shared VF with room (1) is already used by this VM");
	assert_int_equal(iovm_policy_assign(p, "b", "0000:01:10.1", IOVM_MODE_SHARED, &e), -EBUSY);
	assert_contains(e.msg, "not shareable");
	assert_int_equal(iovm_policy_assign(p, "b", "0000:01:10.1", IOVM_MODE_AUTO, &e), -EINVAL);

	/* removal while in use */
	assert_int_equal(iovm_policy_vf_remove(p, "0000:01:10.0", &e), -EBUSY);
	assert_contains(e.msg, "in use by vm a");
	assert_int_equal(iovm_policy_vm_remove(p, "a", &e), -EBUSY);
	assert_contains(e.msg, "still holds vf 0000:01:10.0");
	release_ok(p, "a", "0000:01:10.0");
	assert_int_equal(iovm_policy_vm_remove(p, "a", &e), 0);
	assert_int_equal(iovm_policy_vm_remove(p, "a", &e), -ENOENT);
	assert_int_equal(iovm_policy_vf_remove(p, "0000:01:10.0", &e), 0);
	assert_int_equal(iovm_policy_vf_count(p), 1);
	assert_int_equal(ask(p, "b", IOVM_MODE_SHARED, NULL, &d, &e), -EBUSY);
	assert_contains(e.msg, "no shareable VF");

	assert_int_equal(iovm_mode_from_string("shared"), IOVM_MODE_SHARED);
	assert_int_equal(iovm_mode_from_string("both"), -EINVAL);
	assert_string_equal(iovm_mode_to_string(IOVM_MODE_AUTO), "auto");
	assert_null(iovm_mode_to_string(7));
	assert_string_equal(iovm_policy_vf_state_to_string(IOVM_POLICY_VF_SHARED), "shared");
	assert_null(iovm_policy_free(p));
	assert_int_equal(iovm_policy_new(&(iovm_policy_config){ .algo = 5 }, 0, &p, &e), -EINVAL);
	assert_int_equal(iovm_policy_new(NULL, 0, NULL, &e), -EINVAL);
}

/* ---- indexed vs reference on a long pseudo-random sequence ------------------------ */

#define EQ_VFS 240
#define EQ_PFS 12
#define EQ_VMS 700
#define EQ_OPS 40000

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = rng_state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static unsigned below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

typedef struct held {
	unsigned vm;
	unsigned vf;
} held;

typedef struct eq_stats {
	unsigned exclusive, shared, busy, moves, ops;
} eq_stats;

static void compare_decision(const iovm_policy_decision *a, const iovm_policy_decision *b, int ra, int rb,
			     unsigned op)
{
	if (ra != rb)
		fail_msg("op %u: results differ: %d vs %d", op, ra, rb);
	if (strcmp(a->vf, b->vf) || a->mode != b->mode || a->users != b->users || strcmp(a->reason, b->reason) ||
	    a->result != b->result)
		fail_msg("op %u: decisions differ: %s %d %u \"%s\" vs %s %d %u \"%s\"", op, a->vf, a->mode, a->users,
			 a->reason, b->vf, b->mode, b->users, b->reason);
}

static void test_equivalence(void **state)
{
	iovm_policy *p[2] = {};
	char vf_id[EQ_VFS][16], pf_id[EQ_PFS][16], vm_name[EQ_VMS][16];
	bool vf_present[EQ_VFS];
	uint64_t counter[EQ_VFS] = {}, now = 0;
	held *h = calloc(EQ_VMS * 4, sizeof(*h));
	size_t nh = 0;
	eq_stats st = {};

	assert_non_null(h);
	rng_state = 0x9e3779b97f4a7c15ULL;
	for (int k = 0; k < 2; k++) {
		iovm_policy_config cfg = { .algo = k ? IOVM_POLICY_ALGO_REFERENCE : IOVM_POLICY_ALGO_INDEXED,
					   .max_users = 3, .rebalance = true };
		assert_int_equal(iovm_policy_new(&cfg, 0, &p[k], NULL), 0);
	}
	for (unsigned i = 0; i < EQ_PFS; i++)
		snprintf(pf_id[i], sizeof(pf_id[i]), "0000:%02x:00.0", i + 1);
	for (unsigned i = 0; i < EQ_VFS; i++) {
		unsigned pf = below(EQ_PFS);
		iovm_policy_vf v = {
			.id = vf_id[i], .pf = pf_id[pf],
			.numa_node = pf % 4 == 3 ? -1 : (int)(pf % 3),
			.shareable = below(10) < 7,
			.max_users = below(8) == 0 ? 1 + below(5) : 0,
		};

		snprintf(vf_id[i], sizeof(vf_id[i]), "0000:%02x:%02x.%u", pf + 1, 16 + i / 8, i % 8);
		for (int k = 0; k < 2; k++)
			assert_int_equal(iovm_policy_vf_add(p[k], &v, NULL), 0);
		vf_present[i] = true;
	}
	for (unsigned i = 0; i < EQ_VMS; i++) {
		iovm_policy_vm m = { .name = vm_name[i], .priority = (iovm_priority)below(3),
				     .numa_node = (int)below(4) - 1 };

		snprintf(vm_name[i], sizeof(vm_name[i]), "vm%u", i);
		for (int k = 0; k < 2; k++)
			assert_int_equal(iovm_policy_vm_add(p[k], &m, NULL), 0);
	}

	for (unsigned op = 0; op < EQ_OPS; op++) {
		unsigned dice = below(100);
		iovm_error e[2] = {};
		int r[2];

		if (dice < 40 || nh == 0) {   /* one request */
			unsigned vm = below(EQ_VMS), m = below(10);
			iovm_policy_req q = { .vm = vm_name[vm],
					      .mode = m < 6 ? IOVM_MODE_AUTO :
						      m < 8 ? IOVM_MODE_EXCLUSIVE : IOVM_MODE_SHARED,
					      .pf = below(10) == 0 ? pf_id[below(EQ_PFS)] : NULL };
			iovm_policy_decision d[2] = {};

			for (int k = 0; k < 2; k++)
				r[k] = iovm_policy_request(p[k], &q, &d[k], &e[k]);
			compare_decision(&d[0], &d[1], r[0], r[1], op);
			if (r[0] < 0) {
				assert_string_equal(e[0].msg, e[1].msg);
				st.busy += r[0] == -EBUSY;
			} else {
				assert_true(nh < EQ_VMS * 4);
				h[nh++] = (held){ vm, (unsigned)(strtoul(d[0].vf + 8, NULL, 16) - 16) * 8 +
							  (unsigned)(d[0].vf[11] - '0') };
				assert_string_equal(vf_id[h[nh - 1].vf], d[0].vf);
				if (d[0].mode == IOVM_MODE_SHARED)
					st.shared++;
				else
					st.exclusive++;
			}
		} else if (dice < 45) {       /* a batch */
			iovm_policy_req q[6];
			iovm_policy_decision d[2][6];
			unsigned n = 1 + below(6), vms[6];

			for (unsigned j = 0; j < n; j++) {
				vms[j] = below(EQ_VMS);
				q[j] = (iovm_policy_req){ .vm = vm_name[vms[j]], .mode = (iovm_mode)below(3) };
			}
			for (int k = 0; k < 2; k++)
				r[k] = iovm_policy_request_batch(p[k], q, n, d[k]);
			assert_int_equal(r[0], r[1]);
			for (unsigned j = 0; j < n; j++) {
				compare_decision(&d[0][j], &d[1][j], d[0][j].result, d[1][j].result, op);
				if (d[0][j].result == 0) {
					unsigned vf = 0;

					while (strcmp(vf_id[vf], d[0][j].vf))
						vf++;
					h[nh++] = (held){ vms[j], vf };
				}
			}
		} else if (dice < 70) {       /* release, maybe carrying out the proposed move */
			size_t i = below((unsigned)nh);
			iovm_policy_move mv[2] = {};
			bool bogus = below(20) == 0;
			unsigned vm = bogus ? below(EQ_VMS) : h[i].vm, vf = bogus ? below(EQ_VFS) : h[i].vf;

			for (int k = 0; k < 2; k++)
				r[k] = iovm_policy_release(p[k], vm_name[vm], vf_id[vf], &mv[k], &e[k]);
			assert_int_equal(r[0], r[1]);
			assert_memory_equal(&mv[0], &mv[1], sizeof(mv[0]));
			if (r[0] < 0) {
				assert_string_equal(e[0].msg, e[1].msg);
				continue;
			}
			for (size_t j = 0; j < nh; j++)
				if (h[j].vm == vm && h[j].vf == vf) {
					h[j] = h[--nh];
					break;
				}
			if (r[0] == 1 && below(2)) {
				unsigned mvm = (unsigned)atoi(mv[0].vm + 2), from = 0, to = 0;

				st.moves++;
				while (strcmp(vf_id[from], mv[0].from_vf))
					from++;
				while (strcmp(vf_id[to], mv[0].to_vf))
					to++;
				for (int k = 0; k < 2; k++) {
					assert_int_equal(iovm_policy_release(p[k], mv[0].vm, mv[0].from_vf, NULL, NULL) >= 0,
							 true);
					assert_int_equal(iovm_policy_assign(p[k], mv[0].vm, mv[0].to_vf,
									    IOVM_MODE_EXCLUSIVE, NULL), 0);
				}
				for (size_t j = 0; j < nh; j++)
					if (h[j].vm == mvm && h[j].vf == from) {
						h[j].vf = to;
						break;
					}
			}
		} else if (dice < 90) {       /* a sample */
			unsigned vf = below(EQ_VFS);

			if (below(50) == 0)
				counter[vf] /= 2;   /* a counter reset */
			else
				counter[vf] += rnd() % 5000000;
			for (int k = 0; k < 2; k++)
				r[k] = iovm_policy_sample(p[k], vf_id[vf], counter[vf], &e[k]);
			assert_int_equal(r[0], r[1]);
		} else if (dice < 93) {       /* window reset */
			now += SEC / 2 + rnd() % (2 * SEC);
			for (int k = 0; k < 2; k++)
				assert_int_equal(iovm_policy_window_reset(p[k], now, NULL), 0);
		} else if (dice < 96) {       /* an explicit VF */
			unsigned vm = below(EQ_VMS), vf = below(EQ_VFS);
			iovm_mode m = below(2) ? IOVM_MODE_EXCLUSIVE : IOVM_MODE_SHARED;

			for (int k = 0; k < 2; k++)
				r[k] = iovm_policy_assign(p[k], vm_name[vm], vf_id[vf], m, &e[k]);
			assert_int_equal(r[0], r[1]);
			assert_string_equal(e[0].msg, e[1].msg);
			if (r[0] == 0)
				h[nh++] = (held){ vm, vf };
		} else if (dice < 98) {       /* what would rebalancing do now */
			iovm_policy_move mv[2] = {};

			for (int k = 0; k < 2; k++)
				r[k] = iovm_policy_rebalance(p[k], &mv[k]);
			assert_int_equal(r[0], r[1]);
			assert_memory_equal(&mv[0], &mv[1], sizeof(mv[0]));
		} else {                      /* a VF goes away or comes back */
			unsigned vf = below(EQ_VFS);

			if (vf_present[vf]) {
				for (int k = 0; k < 2; k++)
					r[k] = iovm_policy_vf_remove(p[k], vf_id[vf], &e[k]);
				assert_int_equal(r[0], r[1]);
				vf_present[vf] = r[0] < 0;
			} else {
				iovm_policy_vf v = { .id = vf_id[vf], .pf = pf_id[vf % EQ_PFS], .numa_node = 0,
						     .shareable = true };

				for (int k = 0; k < 2; k++)
					assert_int_equal(iovm_policy_vf_add(p[k], &v, NULL), 0);
				vf_present[vf] = true;
			}
		}
		st.ops++;
	}

	for (unsigned i = 0; i < EQ_VFS; i++) {
		iovm_policy_vf_info a = {}, b = {};
		int ra = iovm_policy_vf_get(p[0], vf_id[i], &a, NULL), rb = iovm_policy_vf_get(p[1], vf_id[i], &b, NULL);

		assert_int_equal(ra, rb);
		assert_string_equal(a.id, b.id);
		assert_int_equal(a.state, b.state);
		assert_int_equal(a.users, b.users);
		assert_int_equal(a.throughput_bps, b.throughput_bps);
		assert_int_equal(a.window_bytes, b.window_bytes);
		assert_int_equal(a.total_bytes, b.total_bytes);
	}
	print_message("equivalence: %u ops, %u exclusive, %u shared, %u busy, %u moves\n", st.ops, st.exclusive,
		      st.shared, st.busy, st.moves);
	/* the sequence must have exercised every kind of decision */
	assert_true(st.exclusive > 100 && st.shared > 100 && st.busy > 100 && st.moves > 10);
	for (int k = 0; k < 2; k++)
		iovm_policy_free(p[k]);
	free(h);
}

#define BOTH(t) \
	cmocka_unit_test_prestate(t, &algo_indexed), cmocka_unit_test_prestate(t, &algo_reference)

int main(void)
{
	const struct CMUnitTest tests[] = {
		BOTH(test_admission_order),
		BOTH(test_exhaustion),
		BOTH(test_lowest_throughput),
		BOTH(test_ties),
		BOTH(test_window_reset),
		BOTH(test_throughput_reorders),
		BOTH(test_rebalance),
		BOTH(test_rebalance_off),
		BOTH(test_numa),
		BOTH(test_pf_restriction),
		BOTH(test_users_cap),
		BOTH(test_release_frees),
		BOTH(test_holds),
		BOTH(test_bad_input),
		cmocka_unit_test(test_equivalence),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
