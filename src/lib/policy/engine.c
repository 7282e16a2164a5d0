/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VF allocation policy engine (include/iovm/policy.h,
 * docs/allocation.md): its inventory of VFs and VMs, and holding and
 * releasing VFs.
 *
 * Two choosers share one state: the indexed one keeps indexed binary heaps
 * (each member knows its position, so it can be removed or re-keyed in
 * O(log n)); the reference one sorts every VF on every request, as the
 * published algorithm does. Everything but the choice of a VF (inventory,
 * holding, releasing, counting bytes) is common code, so the two can only
 * differ in what they choose. */
#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/policy/policy-internal.h"
#include "shared/util.h"

/* ---- keys ------------------------------------------------------------------------ */

int policy_cmp_id(const void *a, const void *b)
{
	return strcmp(((const vf *)a)->id, ((const vf *)b)->id);
}

/* The sharing order: lowest throughput, then fewer users, then VF id. */
int policy_cmp_share(const void *a, const void *b)
{
	const vf *x = a, *y = b;

	if (x->tput != y->tput)
		return x->tput < y->tput ? -1 : 1;
	if (x->users != y->users)
		return x->users < y->users ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Rebalancing order: highest priority, then the earliest to share. */
int policy_cmp_sharer(const void *a, const void *b)
{
	const assign *x = a, *y = b;

	if (x->vm->prio != y->vm->prio)
		return x->vm->prio > y->vm->prio ? -1 : 1;
	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	return 0;
}

static void pool_init(pool *pl, int kind)
{
	*pl = (pool){};
	for (int h = 0; h < _H_MAX; h++) {
		pl->h[h].pos_off = offsetof(vf, pos) + sizeof(size_t) * SLOT(kind, h);
		pl->h[h].cmp = h == H_SHARE ? policy_cmp_share : policy_cmp_id;
	}
}

static void pool_free(void *x)
{
	pool *pl = x;

	if (!pl)
		return;
	for (int h = 0; h < _H_MAX; h++)
		heap_done(&pl->h[h]);
	free(pl);
}

/* ---- membership ------------------------------------------------------------------ */

bool policy_in_set(const vf *v, int h)
{
	switch (h) {
	case H_FREE:
		return v->state == IOVM_POLICY_VF_FREE;
	case H_FREE_SH:
		return v->state == IOVM_POLICY_VF_FREE && v->shareable;
	default:
		return v->state == IOVM_POLICY_VF_SHARED && v->users < v->max_users;
	}
}

static void counters(const vf *v, int d)
{
	for (int k = 0; k < _K_MAX; k++) {
		pool *pl = v->pools[k];

		if (!pl)
			continue;
		pl->n_free += d * (size_t)policy_in_set(v, H_FREE);
		pl->n_free_sh += d * (size_t)policy_in_set(v, H_FREE_SH);
		pl->n_room += d * (size_t)policy_in_set(v, H_SHARE);
		pl->n_exclusive += d * (size_t)(v->state == IOVM_POLICY_VF_EXCLUSIVE);
		pl->n_shared += d * (size_t)(v->state == IOVM_POLICY_VF_SHARED);
	}
}

/* Takes v out of every index and counter, before its state changes. */
void policy_vf_out(iovm_policy *p, vf *v)
{
	counters(v, -1);
	if (!p->indexed)
		return;
	for (int k = 0; k < _K_MAX; k++)
		for (int h = 0; h < _H_MAX; h++)
			if (v->pos[SLOT(k, h)] != HEAP_NO_POS)
				heap_remove(&v->pools[k]->h[h], v);
}

/* Puts v back according to its state. Heaps only grow here after policy_vf_out()
 * shrank them, or had room reserved in vf_add, so this cannot fail. */
void policy_vf_in(iovm_policy *p, vf *v)
{
	counters(v, +1);
	if (!p->indexed)
		return;
	for (int k = 0; k < _K_MAX; k++)
		for (int h = 0; h < _H_MAX; h++)
			if (v->pools[k] && !(k == K_NODE && h == H_SHARE) && policy_in_set(v, h))
				(void)heap_push(&v->pools[k]->h[h], v);
}

/* ---- engine ----------------------------------------------------------------------- */

int iovm_policy_new(const iovm_policy_config *cfg, uint64_t now_ns, iovm_policy **ret, iovm_error *err)
{
	iovm_policy *p;

	if (!ret)
		return iovm_error_set(err, -EINVAL, "policy: no result pointer");
	if (cfg && cfg->algo != IOVM_POLICY_ALGO_INDEXED && cfg->algo != IOVM_POLICY_ALGO_REFERENCE)
		return iovm_error_set(err, -EINVAL, "policy: unknown algorithm %d", (int)cfg->algo);
	p = calloc(1, sizeof(*p));
	if (!p)
		return iovm_error_set(err, -ENOMEM, "policy: out of memory");
	if (cfg)
		p->cfg = *cfg;
	if (!p->cfg.max_users)
		p->cfg.max_users = IOVM_POLICY_DEFAULT_MAX_USERS;
	p->indexed = p->cfg.algo == IOVM_POLICY_ALGO_INDEXED;
	pool_init(&p->global, K_GLOBAL);
	p->sharers.pos_off = offsetof(assign, pos);
	p->sharers.cmp = policy_cmp_sharer;
	p->last_reset = now_ns;
	*ret = p;
	return 0;
}

static void vm_free(void *x)
{
	vm *m = x;

	if (!m)
		return;
	while (m->held) {
		assign *a = m->held;

		m->held = a->vm_next;
		free(a);
	}
	free(m);
}

iovm_policy *iovm_policy_free(iovm_policy *p)
{
	if (!p)
		return NULL;
	hashmap_clear(&p->vms_by_name, vm_free);
	hashmap_clear(&p->vfs_by_id, free);
	hashmap_clear(&p->pools_by_pf, pool_free);
	for (size_t i = 0; i < p->n_nodes; i++)
		pool_free(p->nodes[i]);
	for (int h = 0; h < _H_MAX; h++)
		heap_done(&p->global.h[h]);
	free(p->nodes);
	free(p->vfs);
	free(p->dirty);
	heap_done(&p->sharers);
	free(p->scratch);
	free(p);
	return NULL;
}

int policy_check_name(const char *what, const char *s, size_t max, iovm_error *err)
{
	if (!s || !s[0])
		return iovm_error_set(err, -EINVAL, "%s: no name given", what);
	if (strlen(s) >= max)
		return iovm_error_set(err, -EINVAL, "%s %.40s...: name longer than %zu characters", what, s,
				      max - 1);
	return 0;
}

/* Looks a VF or VM up by its key, with "what" naming it in the message. */
static void *find(const hashmap *m, const char *what, const char *key, size_t max, int *r, iovm_error *err)
{
	void *x;

	*r = policy_check_name(what, key, max, err);
	if (*r < 0)
		return NULL;
	x = hashmap_get(m, key);
	if (!x)
		*r = iovm_error_set(err, -ENOENT, "%s %s: unknown to the allocator", what, key);
	return x;
}

int policy_find_vf(const iovm_policy *p, const char *id, vf **ret, iovm_error *err)
{
	int r;

	*ret = find(&p->vfs_by_id, "vf", id, IOVM_POLICY_ID_MAX, &r, err);
	return r;
}

int policy_find_vm(const iovm_policy *p, const char *name, vm **ret, iovm_error *err)
{
	int r;

	*ret = find(&p->vms_by_name, "vm", name, IOVM_POLICY_NAME_MAX, &r, err);
	return r;
}

/* The VM and the VF an assign or a release names. */
int policy_find_both(const iovm_policy *p, const char *op, const char *name, const char *id, vm **m, vf **v,
		     iovm_error *err)
{
	int r;

	if (!p)
		return iovm_error_set(err, -EINVAL, "%s: no engine given", op);
	r = policy_find_vm(p, name, m, err);
	if (r < 0)
		return r;
	return policy_find_vf(p, id, v, err);
}

pool *policy_node_pool(const iovm_policy *p, int node)
{
	return node >= 0 && (size_t)node < p->n_nodes ? p->nodes[node] : NULL;
}

/* Reserves heap room for one more VF in every heap of pl, so policy_vf_in() never
 * has to allocate. */
static int pool_reserve(pool *pl)
{
	for (int h = 0; h < _H_MAX; h++)
		if (array_grow((void **)&pl->h[h].v, &pl->h[h].cap, pl->n_vfs + 1, sizeof(void *)) < 0)
			return -ENOMEM;
	return 0;
}

int iovm_policy_vf_add(iovm_policy *p, const iovm_policy_vf *in, iovm_error *err)
{
	_cleanup_free_ vf *v = NULL;
	pool *pp, *np = NULL;
	int r;

	if (!p || !in)
		return iovm_error_set(err, -EINVAL, "vf: no engine or VF given");
	r = policy_check_name("vf", in->id, IOVM_POLICY_ID_MAX, err);
	if (r < 0)
		return r;
	r = policy_check_name("pf", in->pf, IOVM_POLICY_ID_MAX, err);
	if (r < 0)
		return iovm_error_prefix(err, "vf %s", in->id);
	if (in->numa_node < -1 || in->numa_node > 4095)
		return iovm_error_set(err, -EINVAL, "vf %s: NUMA node %d out of range", in->id, in->numa_node);
	if (hashmap_get(&p->vfs_by_id, in->id))
		return iovm_error_set(err, -EEXIST, "vf %s: already known to the allocator", in->id);

	pp = hashmap_get(&p->pools_by_pf, in->pf);
	if (!pp) {
		pp = calloc(1, sizeof(*pp) + IOVM_POLICY_ID_MAX);
		if (!pp)
			return iovm_error_set(err, -ENOMEM, "vf %s: out of memory", in->id);
		pool_init(pp, K_PF);
		/* the key lives right after the pool */
		snprintf((char *)(pp + 1), IOVM_POLICY_ID_MAX, "%s", in->pf);
		if (hashmap_put(&p->pools_by_pf, (char *)(pp + 1), pp) < 0) {
			free(pp);
			return iovm_error_set(err, -ENOMEM, "vf %s: out of memory", in->id);
		}
	}
	if (in->numa_node >= 0) {
		if ((size_t)in->numa_node >= p->n_nodes) {
			size_t n = (size_t)in->numa_node + 1;
			pool **nodes = realloc(p->nodes, n * sizeof(*nodes));

			if (!nodes)
				return iovm_error_set(err, -ENOMEM, "vf %s: out of memory", in->id);
			memset(nodes + p->n_nodes, 0, (n - p->n_nodes) * sizeof(*nodes));
			p->nodes = nodes;
			p->n_nodes = n;
		}
		np = p->nodes[in->numa_node];
		if (!np) {
			np = calloc(1, sizeof(*np));
			if (!np)
				return iovm_error_set(err, -ENOMEM, "vf %s: out of memory", in->id);
			pool_init(np, K_NODE);
			p->nodes[in->numa_node] = np;
		}
	}
	if (pool_reserve(&p->global) < 0 || pool_reserve(pp) < 0 || (np && pool_reserve(np) < 0) ||
	    array_grow((void **)&p->vfs, &p->cap_vfs, p->n_vfs + 1, sizeof(vf *)) < 0 ||
	    array_grow((void **)&p->dirty, &p->cap_dirty, p->n_vfs + 1, sizeof(vf *)) < 0 ||
	    array_grow((void **)&p->scratch, &p->cap_scratch, p->n_vfs + 1, sizeof(vf *)) < 0)
		return iovm_error_set(err, -ENOMEM, "vf %s: out of memory", in->id);

	v = calloc(1, sizeof(*v));
	if (!v)
		return iovm_error_set(err, -ENOMEM, "vf %s: out of memory", in->id);
	snprintf(v->id, sizeof(v->id), "%s", in->id);
	snprintf(v->pf, sizeof(v->pf), "%s", in->pf);
	v->node = in->numa_node;
	v->shareable = in->shareable;
	v->own_cap = in->max_users != 0;
	v->max_users = in->max_users ? in->max_users : p->cfg.max_users;
	v->state = IOVM_POLICY_VF_FREE;
	for (size_t i = 0; i < ELEMENTSOF(v->pos); i++)
		v->pos[i] = HEAP_NO_POS;
	v->pools[K_GLOBAL] = &p->global;
	v->pools[K_NODE] = np;
	v->pools[K_PF] = pp;
	if (hashmap_put(&p->vfs_by_id, v->id, v) < 0)
		return iovm_error_set(err, -ENOMEM, "vf %s: out of memory", in->id);
	for (int k = 0; k < _K_MAX; k++)
		if (v->pools[k]) {
			v->pools[k]->n_vfs++;
			v->pools[k]->n_shareable += v->shareable;
			v->pools[k]->n_own_cap += v->own_cap;
		}
	v->idx = p->n_vfs;
	p->vfs[p->n_vfs++] = v;
	policy_vf_in(p, v);
	TAKE_PTR(v);
	return 0;
}

static void dirty_drop(iovm_policy *p, vf *v)
{
	if (!v->dirty || !p->indexed)
		return;
	p->dirty[v->dirty_idx] = p->dirty[--p->n_dirty];
	p->dirty[v->dirty_idx]->dirty_idx = v->dirty_idx;
	v->dirty = false;
}

int iovm_policy_vf_remove(iovm_policy *p, const char *id, iovm_error *err)
{
	vf *v;
	int r;

	if (!p)
		return iovm_error_set(err, -EINVAL, "vf: no engine given");
	r = policy_find_vf(p, id, &v, err);
	if (r < 0)
		return r;
	if (v->users_head)
		return iovm_error_set(err, -EBUSY, "vf %s: in use by vm %s (%s)", v->id, v->users_head->vm->name,
				      iovm_policy_vf_state_to_string(v->state));
	policy_vf_out(p, v);
	for (int k = 0; k < _K_MAX; k++)
		if (v->pools[k]) {
			v->pools[k]->n_vfs--;
			v->pools[k]->n_shareable -= v->shareable;
			v->pools[k]->n_own_cap -= v->own_cap;
		}
	dirty_drop(p, v);
	p->vfs[v->idx] = p->vfs[--p->n_vfs];
	p->vfs[v->idx]->idx = v->idx;
	hashmap_del(&p->vfs_by_id, v->id);
	free(v);
	return 0;
}

int iovm_policy_vm_add(iovm_policy *p, const iovm_policy_vm *in, iovm_error *err)
{
	_cleanup_free_ vm *m = NULL;
	int r;

	if (!p || !in)
		return iovm_error_set(err, -EINVAL, "vm: no engine or VM given");
	r = policy_check_name("vm", in->name, IOVM_POLICY_NAME_MAX, err);
	if (r < 0)
		return r;
	if (!iovm_priority_to_string(in->priority))
		return iovm_error_set(err, -EINVAL, "vm %s: unknown priority %d", in->name, (int)in->priority);
	if (in->numa_node < -1)
		return iovm_error_set(err, -EINVAL, "vm %s: NUMA node %d out of range", in->name, in->numa_node);
	if (hashmap_get(&p->vms_by_name, in->name))
		return iovm_error_set(err, -EEXIST, "vm %s: already known to the allocator", in->name);
	m = calloc(1, sizeof(*m));
	if (!m)
		return iovm_error_set(err, -ENOMEM, "vm %s: out of memory", in->name);
	snprintf(m->name, sizeof(m->name), "%s", in->name);
	m->prio = in->priority;
	m->node = in->numa_node;
	if (hashmap_put(&p->vms_by_name, m->name, m) < 0)
		return iovm_error_set(err, -ENOMEM, "vm %s: out of memory", in->name);
	TAKE_PTR(m);
	return 0;
}

int iovm_policy_vm_remove(iovm_policy *p, const char *name, iovm_error *err)
{
	vm *m;
	int r;

	if (!p)
		return iovm_error_set(err, -EINVAL, "vm: no engine given");
	r = policy_find_vm(p, name, &m, err);
	if (r < 0)
		return r;
	if (m->held)
		return iovm_error_set(err, -EBUSY, "vm %s: still holds vf %s (%s)", m->name, m->held->vf->id,
				      iovm_mode_to_string(m->held->mode));
	hashmap_del(&p->vms_by_name, m->name);
	vm_free(m);
	return 0;
}

size_t iovm_policy_vf_count(const iovm_policy *p)
{
	return p ? p->global.n_vfs : 0;
}

size_t iovm_policy_vf_free_count(const iovm_policy *p)
{
	return p ? p->global.n_free : 0;
}

int iovm_policy_vf_get(const iovm_policy *p, const char *id, iovm_policy_vf_info *ret, iovm_error *err)
{
	vf *v;
	int r;

	if (!p || !ret)
		return iovm_error_set(err, -EINVAL, "vf: no engine or result given");
	r = policy_find_vf(p, id, &v, err);
	if (r < 0)
		return r;
	*ret = (iovm_policy_vf_info){
		.numa_node = v->node,
		.shareable = v->shareable,
		.max_users = v->max_users,
		.state = v->state,
		.users = v->users,
		.window_bytes = v->window_bytes,
		.total_bytes = v->total_bytes,
		.throughput_bps = v->tput,
		.last_reset_ns = p->last_reset,
	};
	snprintf(ret->id, sizeof(ret->id), "%s", v->id);
	snprintf(ret->pf, sizeof(ret->pf), "%s", v->pf);
	return 0;
}

/* ---- holding and releasing ----------------------------------------------------------- */

int policy_hold(iovm_policy *p, vm *m, vf *v, iovm_mode mode)
{
	assign *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	if (mode == IOVM_MODE_SHARED && p->indexed &&
	    array_grow((void **)&p->sharers.v, &p->sharers.cap, p->sharers.n + 1, sizeof(void *)) < 0) {
		free(a);
		return -ENOMEM;
	}
	*a = (assign){ .vm = m, .vf = v, .mode = mode, .seq = ++p->seq, .pos = HEAP_NO_POS };
	policy_vf_out(p, v);
	a->vm_next = m->held;
	if (m->held)
		m->held->vm_prev = a;
	m->held = a;
	m->n_held++;
	a->vf_next = v->users_head;
	if (v->users_head)
		v->users_head->vf_prev = a;
	v->users_head = a;
	v->users++;
	v->state = mode == IOVM_MODE_SHARED ? IOVM_POLICY_VF_SHARED : IOVM_POLICY_VF_EXCLUSIVE;
	if (mode == IOVM_MODE_SHARED && p->indexed)
		(void)heap_push(&p->sharers, a);
	policy_vf_in(p, v);
	return 0;
}

void policy_unhold(iovm_policy *p, assign *a)
{
	vm *m = a->vm;
	vf *v = a->vf;

	assert(v->users > 0 && m->n_held > 0);

	policy_vf_out(p, v);
	if (a->pos != HEAP_NO_POS)
		heap_remove(&p->sharers, a);
	if (a->vm_prev)
		a->vm_prev->vm_next = a->vm_next;
	else
		m->held = a->vm_next;
	if (a->vm_next)
		a->vm_next->vm_prev = a->vm_prev;
	m->n_held--;
	if (a->vf_prev)
		a->vf_prev->vf_next = a->vf_next;
	else
		v->users_head = a->vf_next;
	if (a->vf_next)
		a->vf_next->vf_prev = a->vf_prev;
	v->users--;
	if (v->users == 0)
		v->state = IOVM_POLICY_VF_FREE;
	policy_vf_in(p, v);
	free(a);
}

assign *policy_held_by(const vm *m, const vf *v)
{
	for (assign *a = m->held; a; a = a->vm_next)
		if (a->vf == v)
			return a;
	return NULL;
}

int iovm_policy_holds(const iovm_policy *p, iovm_policy_hold **ret, size_t *ret_n, iovm_error *err)
{
	_cleanup_free_ iovm_policy_hold *h = NULL;
	size_t n = 0, cap = 0;

	if (!p || !ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "policy holds: invalid arguments");
	for (size_t i = 0; i < p->n_vfs; i++)
		for (const assign *a = p->vfs[i]->users_head; a; a = a->vf_next) {
			if (array_grow((void **)&h, &cap, n + 1, sizeof(*h)) < 0)
				return iovm_error_set(err, -ENOMEM, "policy holds: out of memory");
			h[n] = (iovm_policy_hold){ .mode = a->mode };
			snprintf(h[n].vm, sizeof(h[n].vm), "%s", a->vm->name);
			snprintf(h[n].vf, sizeof(h[n].vf), "%s", a->vf->id);
			n++;
		}
	*ret = TAKE_PTR(h);
	*ret_n = n;
	return 0;
}
