/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The two choosers: indexed (heaps) and reference (sort every VF on
 * every request). They differ only in how they find the VF. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/policy/policy-internal.h"
#include "shared/util.h"

/* ---- choosing: indexed --------------------------------------------------------------- */

static void idx_free(iovm_policy *p, const vm *m, pool *pfp, int h, choice *c)
{
	pool *np = policy_node_pool(p, m->node), *pl = &p->global;

	c->where = m->node >= 0 ? W_OTHER_NODE : W_ANY;
	if (pfp) {
		pl = pfp;
		c->where = W_PF;
	} else if (np && np->h[h].n) {
		pl = np;
		c->where = W_NODE;
	}
	c->vf = heap_top(&pl->h[h]);
	c->candidates = pl->h[h].n;
}

/* The VM's own shared VFs leave the heaps for the time of the choice. */
static void idx_share(iovm_policy *p, const vm *m, pool *pfp, choice *c)
{
	heap *h = &(pfp ? pfp : &p->global)->h[H_SHARE];

	for (assign *a = m->held; a; a = a->vm_next)
		if (a->mode == IOVM_MODE_SHARED)
			policy_vf_out(p, a->vf);
	c->vf = heap_top(h);
	c->where = pfp ? W_PF : W_ANY;
	c->candidates = h->n;
	for (assign *a = m->held; a; a = a->vm_next)
		if (a->mode == IOVM_MODE_SHARED)
			policy_vf_in(p, a->vf);
}

/* ---- choosing: reference (sort every VF on every request) ----------------------------- */

typedef struct ref_ctx {
	const vm *vm;
	const pool *pfp;
	int h;
	uint64_t mark;
} ref_ctx;

static bool ref_eligible(const vf *v, const ref_ctx *x)
{
	if (x->pfp && v->pools[K_PF] != x->pfp)
		return false;
	if (x->h == H_SHARE && v->mark == x->mark)
		return false;
	return policy_in_set(v, x->h);
}

static int ref_cmp(const void *a, const void *b, void *userdata)
{
	const vf *x = *(vf *const *)a, *y = *(vf *const *)b;
	const ref_ctx *c = userdata;
	bool ex = ref_eligible(x, c), ey = ref_eligible(y, c);

	if (ex != ey)
		return ex ? -1 : 1;
	if (c->h == H_SHARE)
		return policy_cmp_share(x, y);
	if (!c->pfp && c->vm->node >= 0 && (x->node == c->vm->node) != (y->node == c->vm->node))
		return x->node == c->vm->node ? -1 : 1;
	return policy_cmp_id(x, y);
}

static void ref_choose(iovm_policy *p, const vm *m, pool *pfp, int h, choice *c)
{
	ref_ctx x = { .vm = m, .pfp = pfp, .h = h, .mark = ++p->mark };
	size_t on_node = 0;

	for (assign *a = m->held; a; a = a->vm_next)
		a->vf->mark = x.mark;
	memcpy(p->scratch, p->vfs, p->n_vfs * sizeof(vf *));
	qsort_r(p->scratch, p->n_vfs, sizeof(vf *), ref_cmp, &x);
	c->vf = NULL;
	c->candidates = 0;
	for (size_t i = 0; i < p->n_vfs && ref_eligible(p->scratch[i], &x); i++) {
		c->candidates++;
		on_node += p->scratch[i]->node == m->node;
	}
	if (c->candidates)
		c->vf = p->scratch[0];
	if (h == H_SHARE || pfp)
		c->where = pfp ? W_PF : W_ANY;
	else if (m->node < 0)
		c->where = W_ANY;
	else if (on_node) {
		c->where = W_NODE;
		c->candidates = on_node;
	} else
		c->where = W_OTHER_NODE;
}

void policy_choose(iovm_policy *p, const vm *m, pool *pfp, int h, choice *c)
{
	if (!p->indexed)
		ref_choose(p, m, pfp, h, c);
	else if (h == H_SHARE)
		idx_share(p, m, pfp, c);
	else
		idx_free(p, m, pfp, h, c);
}
