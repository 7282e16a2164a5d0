/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Requests, assignments, releases and rebalancing moves, with the reasons
 * the engine gives for each decision. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/policy/policy-internal.h"
#include "shared/util.h"

/* ---- decisions -------------------------------------------------------------------------- */

static double mbit(uint64_t bps)
{
	return (double)bps / 1e6;
}

static void free_reason(char *buf, size_t n, const char *prefix, const choice *c, const vm *m)
{
	switch (c->where) {
	case W_PF:
		snprintf(buf, n, "%sfree VF on pf %s (%zu free there)", prefix, c->vf->pf, c->candidates);
		break;
	case W_NODE:
		snprintf(buf, n, "%sfree VF on NUMA node %d (%zu free there)", prefix, m->node, c->candidates);
		break;
	case W_OTHER_NODE:
		snprintf(buf, n, "%sfree VF on NUMA node %d, none free on the VM's node %d (%zu free elsewhere)",
			 prefix, c->vf->node, m->node, c->candidates);
		break;
	case W_ANY:
		snprintf(buf, n, "%sfree VF (%zu free, the VM has no NUMA preference)", prefix, c->candidates);
		break;
	}
}

/* " (cap 4 users)" or " (cap 4 users; 2 VFs have their own cap)" */
static void cap_text(char *buf, size_t n, const iovm_policy *p, const pool *pl)
{
	if (pl->n_own_cap)
		snprintf(buf, n, "cap %u users; %zu VFs have their own cap", p->cfg.max_users, pl->n_own_cap);
	else
		snprintf(buf, n, "cap %u users", p->cfg.max_users);
}

/* -EBUSY saying why nothing could be given. pl: the pool the request was
 * restricted to (its PF's, or the global one). */
static int busy(iovm_policy *p, const vm *m, const iovm_policy_req *req, const pool *pl, iovm_error *err)
{
	const char *what = req->mode == IOVM_MODE_SHARED ? "free shareable " : "free ";
	char on[IOVM_POLICY_ID_MAX + 16] = "", cap[96];

	if (req->pf)
		snprintf(on, sizeof(on), " on pf %s", req->pf);
	cap_text(cap, sizeof(cap), p, pl);
	if (req->mode == IOVM_MODE_EXCLUSIVE)
		return iovm_error_set(err, -EBUSY, "vm %s: no free VF%s for exclusive use (%zu VFs: %zu exclusive, "
				      "%zu shared)", m->name, on, pl->n_vfs, pl->n_exclusive, pl->n_shared);
	if (pl->n_shareable == 0)
		return iovm_error_set(err, -EBUSY, "vm %s: no %sVF%s and no shareable VF (%zu VFs, %zu exclusive)",
				      m->name, what, on, pl->n_vfs, pl->n_exclusive);
	if (pl->n_room)   /* the choice found none, so the VM already uses them all */
		return iovm_error_set(err, -EBUSY, "vm %s: no %sVF%s; every shared VF with room (%zu) is "
				      "already used by this VM", m->name, what, on, pl->n_room);
	if (pl->n_shared == 0)
		return iovm_error_set(err, -EBUSY, "vm %s: no %sVF%s and nothing shared yet (%zu shareable VFs, "
				      "all held exclusively)", m->name, what, on, pl->n_shareable);
	return iovm_error_set(err, -EBUSY, "vm %s: no %sVF%s and all %zu shared VFs are at their user cap (%s)",
			      m->name, what, on, pl->n_shared, cap);
}

static int decide(iovm_policy *p, const iovm_policy_req *req, iovm_policy_decision *ret, iovm_error *err)
{
	iovm_policy_decision d = {};
	iovm_mode mode = IOVM_MODE_EXCLUSIVE;
	pool *pfp = NULL;
	choice c = {};
	vm *m;
	int r;

	if (!p || !req)
		return iovm_error_set(err, -EINVAL, "request: no engine or request given");
	r = policy_find_vm(p, req->vm, &m, err);
	if (r < 0)
		return r;
	if ((unsigned)req->mode >= _IOVM_MODE_MAX)
		return iovm_error_set(err, -EINVAL, "vm %s: unknown mode %d", m->name, (int)req->mode);
	if (req->pf) {
		r = policy_check_name("pf", req->pf, IOVM_POLICY_ID_MAX, err);
		if (r < 0)
			return iovm_error_prefix(err, "vm %s", m->name);
		pfp = hashmap_get(&p->pools_by_pf, req->pf);
		if (!pfp || !pfp->n_vfs)
			return iovm_error_set(err, -ENOENT, "vm %s: pf %s has no VFs known to the allocator", m->name,
					      req->pf);
	}

	if (req->mode != IOVM_MODE_SHARED) {
		policy_choose(p, m, pfp, H_FREE, &c);
		if (c.vf)
			free_reason(d.reason, sizeof(d.reason), "exclusive: ", &c, m);
	}
	if (!c.vf && req->mode != IOVM_MODE_EXCLUSIVE) {
		policy_choose(p, m, pfp, H_SHARE, &c);
		mode = IOVM_MODE_SHARED;
		if (c.vf) {
			snprintf(d.reason, sizeof(d.reason),
				 "shared: %slowest throughput %.1f Mbit/s of %zu shareable VFs with room%s%s "
				 "(user %u of cap %u)", req->mode == IOVM_MODE_AUTO ? "no free VF; " : "",
				 mbit(c.vf->tput), c.candidates, pfp ? " on pf " : "", pfp ? c.vf->pf : "",
				 c.vf->users + 1, c.vf->max_users);
		} else if (req->mode == IOVM_MODE_SHARED) {
			policy_choose(p, m, pfp, H_FREE_SH, &c);
			if (c.vf) {
				char head[128];

				snprintf(head, sizeof(head), "shared: no shared VF with room%s; ",
					 (pfp ? pfp : &p->global)->n_room ? " for this VM" : "");
				free_reason(d.reason, sizeof(d.reason), head, &c, m);
				snprintf(d.reason + strlen(d.reason), sizeof(d.reason) - strlen(d.reason),
					 ", turned shared (cap %u users)", c.vf->max_users);
			}
		}
	}
	if (!c.vf)
		return busy(p, m, req, pfp ? pfp : &p->global, err);

	r = policy_hold(p, m, c.vf, mode);
	if (r < 0)
		return iovm_error_set(err, r, "vm %s: out of memory", m->name);
	d.mode = mode;
	d.users = c.vf->users;
	snprintf(d.vm, sizeof(d.vm), "%s", m->name);
	snprintf(d.vf, sizeof(d.vf), "%s", c.vf->id);
	if (ret)
		*ret = d;
	return 0;
}

int iovm_policy_request(iovm_policy *p, const iovm_policy_req *req, iovm_policy_decision *ret,
			iovm_error *err)
{
	return decide(p, req, ret, err);
}

int iovm_policy_request_batch(iovm_policy *p, const iovm_policy_req *reqs, size_t n,
			      iovm_policy_decision *ret)
{
	static const int order[] = { IOVM_PRIO_HIGH, IOVM_PRIO_NORMAL, IOVM_PRIO_LOW, -1 };
	int admitted = 0;

	if (!p || (n && (!reqs || !ret)) || n > INT_MAX)
		return -EINVAL;
	/* one pass per priority: stable, O(n) */
	for (size_t o = 0; o < ELEMENTSOF(order); o++)
		for (size_t i = 0; i < n; i++) {
			const vm *m = reqs[i].vm ? hashmap_get(&p->vms_by_name, reqs[i].vm) : NULL;
			iovm_error e = {};

			if ((m ? (int)m->prio : -1) != order[o])
				continue;
			ret[i] = (iovm_policy_decision){};
			ret[i].result = decide(p, &reqs[i], &ret[i], &e);
			if (ret[i].result < 0) {
				snprintf(ret[i].vm, sizeof(ret[i].vm), "%s", reqs[i].vm ? reqs[i].vm : "");
				snprintf(ret[i].reason, sizeof(ret[i].reason), "%s", e.msg);
			} else
				admitted++;
		}
	return admitted;
}

int iovm_policy_assign(iovm_policy *p, const char *name, const char *id, iovm_mode mode,
		       iovm_error *err)
{
	vm *m;
	vf *v;
	int r;

	r = policy_find_both(p, "assign", name, id, &m, &v, err);
	if (r < 0)
		return r;
	if (mode != IOVM_MODE_EXCLUSIVE && mode != IOVM_MODE_SHARED)
		return iovm_error_set(err, -EINVAL, "vm %s: vf %s: mode must be exclusive or shared", m->name, v->id);
	if (policy_held_by(m, v))
		return iovm_error_set(err, -EEXIST, "vm %s: already holds vf %s", m->name, v->id);
	if (v->state == IOVM_POLICY_VF_EXCLUSIVE)
		return iovm_error_set(err, -EBUSY, "vf %s: held exclusively by vm %s", v->id, v->users_head->vm->name);
	if (mode == IOVM_MODE_EXCLUSIVE && v->state == IOVM_POLICY_VF_SHARED)
		return iovm_error_set(err, -EBUSY, "vf %s: shared by %u users, cannot be given exclusively", v->id,
				      v->users);
	if (mode == IOVM_MODE_SHARED && !v->shareable)
		return iovm_error_set(err, -EBUSY, "vf %s: not shareable", v->id);
	if (mode == IOVM_MODE_SHARED && v->users >= v->max_users)
		return iovm_error_set(err, -EBUSY, "vf %s: at its user cap (cap %u users)", v->id, v->max_users);
	r = policy_hold(p, m, v, mode);
	if (r < 0)
		return iovm_error_set(err, r, "vm %s: out of memory", m->name);
	return 0;
}

/* The sharing assignment rebalancing would move first. */
static assign *top_sharer(const iovm_policy *p)
{
	assign *best = NULL;

	if (p->indexed)
		return heap_top(&p->sharers);
	for (size_t i = 0; i < p->n_vfs; i++)
		if (p->vfs[i]->state == IOVM_POLICY_VF_SHARED)
			for (assign *a = p->vfs[i]->users_head; a; a = a->vf_next)
				if (!best || policy_cmp_sharer(a, best) < 0)
					best = a;
	return best;
}

static void fill_move(const iovm_policy *p, const assign *a, const vf *to, iovm_policy_move *move)
{
	if (!move)
		return;
	*move = (iovm_policy_move){};
	snprintf(move->vm, sizeof(move->vm), "%s", a->vm->name);
	snprintf(move->from_vf, sizeof(move->from_vf), "%s", a->vf->id);
	snprintf(move->to_vf, sizeof(move->to_vf), "%s", to->id);
	snprintf(move->reason, sizeof(move->reason),
		 "rebalance: vm %s (priority %s) shares vf %s with %u users at %.1f Mbit/s; vf %s is free for "
		 "exclusive use", a->vm->name, iovm_priority_to_string(a->vm->prio), a->vf->id, a->vf->users,
		 mbit(a->vf->tput), to->id);
}

int iovm_policy_release(iovm_policy *p, const char *name, const char *id, iovm_policy_move *move,
			iovm_error *err)
{
	assign *a, *s;
	vm *m;
	vf *v;
	int r;

	r = policy_find_both(p, "release", name, id, &m, &v, err);
	if (r < 0)
		return r;
	a = policy_held_by(m, v);
	if (!a)
		return iovm_error_set(err, -ENOENT, "vm %s: does not hold vf %s (already released?)", m->name, v->id);
	policy_unhold(p, a);
	if (!p->cfg.rebalance || v->state != IOVM_POLICY_VF_FREE)
		return 0;
	s = top_sharer(p);
	if (!s)
		return 0;
	fill_move(p, s, v, move);
	return 1;
}

int iovm_policy_rebalance(iovm_policy *p, iovm_policy_move *move)
{
	assign *s;
	choice c = {};

	if (!p || !p->cfg.rebalance)
		return 0;
	s = top_sharer(p);
	if (!s)
		return 0;
	policy_choose(p, s->vm, NULL, H_FREE, &c);
	if (!c.vf)
		return 0;
	fill_move(p, s, c.vf, move);
	return 1;
}
