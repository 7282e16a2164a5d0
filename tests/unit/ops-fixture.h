/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's ops without its thread, for the tests of libiovmd_core:
 * a fixture sysfs tree (fixtures/make-sysfs.sh), a state db of the test's
 * own, the VM behind a scripted fake QEMU (fake-qmp.h), jobs run through
 * ops_run_job() and the messages they leave checked. Shared by
 * test-iovmd-ops.c and test-iovmd-migrate.c.
 */
#pragma once

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "iovmd/ops.h"
#include "shared/util.h"
#include "fake-qmp.h"
#include "fixtures/fixture.h"

#define VF "0000:01:10.4"           /* eth0/2: unbound, nobody holds it */
#define DEVID "iovm-0000-01-10.4"
#define VF_UP "0000:01:10.2"        /* eth0/1: on igbvf, its netdev eth2 up: held by the host */
#define CLIENT 7

typedef struct ctx {
	fixture fx;
	iovmd d;
	ops o;
	bool started;
	char qmp[PATH_MAX];
	struct fake f;
	bool fake_running;
} ctx;

static inline int setup(void **state)
{
	ctx *c = calloc(1, sizeof(*c));

	if (!c || fixture_make(&c->fx) < 0)
		return -1;
	iovmd_config_defaults(&c->d.cfg);
	snprintf(c->d.cfg.sysfs_root, sizeof(c->d.cfg.sysfs_root), "%s", c->fx.sys);
	snprintf(c->d.cfg.state_path, sizeof(c->d.cfg.state_path), "%s/iovm.db", c->fx.dir);
	snprintf(c->qmp, sizeof(c->qmp), "%s/g1.qmp", c->fx.dir);
	c->d.cfg.level = LOG_WARNING;
	if (iovmd_queue_init(&c->d.jobs) < 0 || iovmd_queue_init(&c->d.msgs) < 0)
		return -1;
	*state = c;
	return 0;
}

static inline void iovmd_job_free(void *p)
{
	iovmd_job *j = p;

	iovm_api_request_done(&j->req);
	free(j);
}

static inline int teardown(void **state)
{
	ctx *c = *state;

	if (c->started)
		ops_fini(&c->o);
	if (c->fake_running)
		fake_join(&c->f);
	iovmd_queue_done(&c->d.jobs, iovmd_job_free);
	iovmd_queue_done(&c->d.msgs, iovmd_msg_free);
	fixture_remove(&c->fx);
	free(c);
	return 0;
}

/* ---- helpers ------------------------------------------------------------------ */

static inline void start(ctx *c)
{
	assert_int_equal(ops_init(&c->o, &c->d), 0);
	c->started = true;
}

static inline void msgs_free(iovmd_msg *m)
{
	while (m) {
		iovmd_msg *next = m->next;

		iovmd_msg_free(m);
		m = next;
	}
}

/* The nth message of kind in the list (0: the first), or NULL. */
static inline iovmd_msg *msg_find(iovmd_msg *m, iovmd_msg_kind kind, int nth)
{
	for (; m; m = m->next)
		if (m->kind == kind && nth-- == 0)
			return m;
	return NULL;
}

/* The last whole or partial snapshot in the list. */
static inline json_object *last_snapshot(iovmd_msg *m)
{
	json_object *snap = NULL;

	for (; m; m = m->next)
		if (m->kind == IOVMD_MSG_SNAPSHOT || m->kind == IOVMD_MSG_SNAPSHOT_PART)
			snap = m->snapshot;
	return snap;
}

/*
 * Runs one request line as a job of CLIENT and returns the reply, parsed.
 * Checks the order every job keeps: one reply, to CLIENT, marked as
 * followed by a snapshot, and then that snapshot (whole or partial) as the
 * last message. *ret_msgs: every message the job left (free with
 * msgs_free).
 */
static inline json_object *run(ctx *c, const char *line, iovmd_msg **ret_msgs)
{
	iovmd_job j = { .client = CLIENT };
	iovm_error err = {};
	iovmd_msg *msgs, *reply, *last;
	json_object *ret;

	assert_int_equal(iovm_api_parse_request(line, strlen(line), &j.req, &err), 0);
	ops_run_job(&c->o, &j);
	iovm_api_request_done(&j.req);
	msgs = iovmd_queue_pop_all(&c->d.msgs);
	reply = msg_find(msgs, IOVMD_MSG_REPLY, 0);
	assert_non_null(reply);
	assert_null(msg_find(msgs, IOVMD_MSG_REPLY, 1));
	assert_int_equal(reply->client, CLIENT);
	assert_true(reply->snapshot_follows);
	for (last = reply; last->next; last = last->next)
		;
	assert_true(last->kind == IOVMD_MSG_SNAPSHOT || last->kind == IOVMD_MSG_SNAPSHOT_PART);
	assert_non_null(last->snapshot);
	ret = json_tokener_parse(reply->line);
	assert_non_null(ret);
	*ret_msgs = msgs;
	return ret;
}

/* The errno name of an error reply ("EEXIST"), failing on a success. */
static inline const char *error_errno(json_object *reply)
{
	json_object *e = NULL;

	if (!json_object_object_get_ex(reply, "error", &e))
		fail_msg("expected an error, got %s", json_object_to_json_string(reply));
	return member_str(e, "errno");
}

static inline iovm_store *store_open(ctx *c)
{
	iovm_store *s = NULL;
	iovm_error err = {};

	assert_int_equal(iovm_store_open(c->d.cfg.state_path, &s, &err), 0);
	return s;
}

/* Starts the daemon's ops with VM g1 registered (no QEMU behind it) and
 * holding a (saved: its settings saved too, if not NULL). Recovery is
 * off: it would take the VF back from a VM that is not running. */
static inline void start_holding(ctx *c, const iovm_store_assignment *a, const iovm_store_vf_saved *saved)
{
	iovm_store *s = store_open(c);
	iovm_store_vm vm = { .name = "g1", .priority = IOVM_PRIO_NORMAL, .numa_node = -1 };

	snprintf(vm.qmp, sizeof(vm.qmp), "%s", c->qmp);
	assert_int_equal(iovm_store_vm_put(s, &vm, NULL), 0);
	assert_int_equal(iovm_store_assign(s, a, NULL), 0);
	if (saved)
		assert_int_equal(iovm_store_vf_saved_put(s, saved, NULL), 0);
	iovm_store_close(s);
	c->d.cfg.recover = false;
	start(c);
	msgs_free(iovmd_queue_pop_all(&c->d.msgs));
}

