/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Carries out the rebalancing move the policy proposed when a VF freed up
 * (--rebalance, docs/allocation.md): the sharer leaves its shared VF (its
 * macvtap NIC is unplugged) and gets the free VF exclusively (a VF appears
 * in the guest). If the exclusive attach fails, it shares its old VF
 * again. Each outcome is logged and sent as an event. */
#include <stdio.h>

#include "iovmd/ops.h"

static json_object *move_json(const iovm_policy_move *m)
{
	return obj_s(obj_s(obj_s(json_object_new_object(), "vm", m->vm), "from_vf", m->from_vf), "to_vf", m->to_vf);
}

static void move_failed(ops *o, const iovm_policy_move *m, const iovm_error *err)
{
	ops_emit(o, "REBALANCE_FAILED", obj_s(move_json(m), "reason", err->msg));
}

/* The move still makes sense: the VM shares from_vf, to_vf is free. */
static bool move_applies(ops *o, const iovm_policy_move *m)
{
	iovm_store_share sh;

	return vms_find(o, m->vm) && iovm_store_share_get(o->store, m->from_vf, m->vm, &sh, NULL) == 0 &&
	       sh.state == IOVM_STORE_ATTACHED && !naming_vf_taken(o, m->to_vf);
}

/* Runs one command as if a client without a connection had asked. */
static bool run(ops *o, json_object *(*cmd)(ops *, const iovm_api_request *, iovm_error *),
		const iovm_api_request *q, iovm_error *err)
{
	json_object *ret = cmd(o, q, err);

	vms_record(o, q->vm);
	views_sync(o, true);
	json_object_put(ret);
	return ret != NULL;
}

static void carry_out(ops *o, const iovm_policy_move *m)
{
	iovm_api_request q = { .cmd = IOVM_API_DETACH };
	iovm_error err = {}, err2 = {};

	snprintf(q.vm, sizeof(q.vm), "%s", m->vm);
	snprintf(q.vf, sizeof(q.vf), "%s", m->from_vf);
	if (!run(o, cmd_detach, &q, &err)) {
		log_warning(err.code, "rebalance: vm %s: cannot leave shared vf %s: %s", m->vm, m->from_vf, err.msg);
		move_failed(o, m, &err);
		return;
	}
	q.cmd = IOVM_API_ATTACH;
	q.mode = IOVM_MODE_EXCLUSIVE;
	snprintf(q.vf, sizeof(q.vf), "%s", m->to_vf);
	if (run(o, cmd_attach, &q, &err)) {
		ops_emit(o, "VF_REBALANCED", move_json(m));
		log_info("rebalance: vm %s now holds vf %s exclusively (was sharing vf %s)", m->vm, m->to_vf,
			 m->from_vf);
		return;
	}
	log_warning(err.code, "rebalance: vm %s: cannot take vf %s: %s; sharing vf %s again", m->vm, m->to_vf,
		    err.msg, m->from_vf);
	move_failed(o, m, &err);
	q.mode = IOVM_MODE_SHARED;
	snprintf(q.vf, sizeof(q.vf), "%s", m->from_vf);
	if (!run(o, cmd_attach, &q, &err2))
		log_error(err2.code, "rebalance: vm %s: cannot share vf %s again: %s", m->vm, m->from_vf, err2.msg);
}

void rebalance_run(ops *o)
{
	iovm_policy_move m;

	if (!o->move_pending)
		return;
	m = o->move;
	o->move_pending = false;
	if (!move_applies(o, &m)) {
		log_info("rebalance: vm %s (%s -> %s): no longer applies", m.vm, m.from_vf, m.to_vf);
		return;
	}
	log_info("rebalance: vm %s leaves shared vf %s for vf %s", m.vm, m.from_vf, m.to_vf);
	o->op = "rebalance";
	carry_out(o, &m);
	o->op = "";
	o->intent = 0;
	kernel_invalidate(o);
	snapshot_publish(o, NULL);
}
