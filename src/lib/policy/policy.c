/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The VF allocation policy engine (include/iovm/policy.h, docs/allocation.md).
 *
 * Two choosers share one state: the indexed one keeps indexed binary heaps
 * (each member knows its position, so it can be removed or re-keyed in
 * O(log n)); the reference one sorts every VF on every request, as the
 * published algorithm does. Everything but the choice of a VF (inventory,
 * holding, releasing, counting bytes) is common code, so the two can only
 * differ in what they choose. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/policy.h"
#include "shared/util.h"

#define NO_POS SIZE_MAX

/* Pools: every VF is in the global pool, its PF's pool and, if it has one,
 * its NUMA node's pool. Each pool has three heaps (indexed engine only). */
enum { K_GLOBAL, K_NODE, K_PF, _K_MAX };
enum {
	H_FREE,      /* free VFs, by id */
	H_FREE_SH,   /* free shareable VFs, by id */
	H_SHARE,     /* shared VFs with room for a user, by (throughput, users, id); not per node */
	_H_MAX,
};
#define SLOT(k, h) ((k) * _H_MAX + (h))

typedef struct heap {
	void **v;
	size_t n, cap;
	size_t pos_off;   /* offset of the member's size_t position field */
	int (*cmp)(const void *a, const void *b);
} heap;

typedef struct pool {
	heap h[_H_MAX];
	/* counters, kept by both engines (they feed the messages) */
	size_t n_vfs, n_shareable, n_free, n_free_sh, n_exclusive, n_shared, n_room, n_own_cap;
} pool;

struct assign;

typedef struct vf {
	char id[IOVM_POLICY_ID_MAX];
	char pf[IOVM_POLICY_ID_MAX];
	int node;
	bool shareable;
	bool own_cap;
	unsigned max_users;
	iovm_policy_vf_state state;
	unsigned users;
	struct assign *users_head;
	bool have_counter;
	bool dirty;
	uint64_t counter, window_bytes, total_bytes, tput;
	uint64_t mark;               /* reference engine: held by the requesting VM */
	size_t idx;                  /* in iovm_policy.vfs */
	size_t dirty_idx;            /* in iovm_policy.dirty, when dirty */
	pool *pools[_K_MAX];
	size_t pos[_K_MAX * _H_MAX];
} vf;

typedef struct vm {
	char name[IOVM_POLICY_NAME_MAX];
	iovm_priority prio;
	int node;
	struct assign *held;
	size_t n_held;
} vm;

typedef struct assign {
	vm *vm;
	vf *vf;
	iovm_mode mode;
	uint64_t seq;                /* order of sharing, for rebalancing ties */
	size_t pos;                  /* in the sharers heap */
	struct assign *vm_prev, *vm_next, *vf_prev, *vf_next;
} assign;

typedef struct hent {
	const char *key;
	void *val;
	struct hent *next;
} hent;

typedef struct hmap {
	hent **b;
	size_t nb, n;
} hmap;

struct iovm_policy {
	iovm_policy_config cfg;
	bool indexed;
	hmap vfs_by_id, vms_by_name, pools_by_pf;
	pool global;
	pool **nodes;
	size_t n_nodes;
	vf **vfs;                    /* dense, for the reference engine and window resets */
	size_t n_vfs, cap_vfs;
	vf **dirty;                  /* VFs whose throughput may change at the next reset */
	size_t n_dirty, cap_dirty;
	heap sharers;                /* shared assignments by (priority desc, seq) */
	uint64_t seq, mark, last_reset;
	vf **scratch;                /* reference engine: the array it sorts */
	size_t cap_scratch;
};

/* ---- small containers ------------------------------------------------------------ */

static int grow(void **arr, size_t *cap, size_t need, size_t elem)
{
	size_t c;
	void *n;

	if (need <= *cap)
		return 0;
	c = *cap ? *cap * 2 : 16;
	while (c < need)
		c *= 2;
	n = realloc(*arr, c * elem);
	if (!n)
		return -ENOMEM;
	*arr = n;
	*cap = c;
	return 0;
}

static size_t *heap_pos(const heap *h, void *e)
{
	return (size_t *)((char *)e + h->pos_off);
}

static void heap_set(heap *h, size_t i, void *e)
{
	h->v[i] = e;
	*heap_pos(h, e) = i;
}

static void heap_up(heap *h, size_t i)
{
	void *e = h->v[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (h->cmp(h->v[parent], e) <= 0)
			break;
		heap_set(h, i, h->v[parent]);
		i = parent;
	}
	heap_set(h, i, e);
}

static void heap_down(heap *h, size_t i)
{
	void *e = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->cmp(h->v[c + 1], h->v[c]) < 0)
			c++;
		if (h->cmp(e, h->v[c]) <= 0)
			break;
		heap_set(h, i, h->v[c]);
		i = c;
	}
	heap_set(h, i, e);
}

static int heap_push(heap *h, void *e)
{
	if (grow((void **)&h->v, &h->cap, h->n + 1, sizeof(void *)) < 0)
		return -ENOMEM;
	h->v[h->n] = e;
	heap_up(h, h->n++);
	return 0;
}

static void heap_remove(heap *h, void *e)
{
	size_t i = *heap_pos(h, e);
	void *last;

	*heap_pos(h, e) = NO_POS;
	last = h->v[--h->n];
	if (i == h->n)
		return;
	h->v[i] = last;
	*heap_pos(h, last) = i;
	heap_up(h, i);
	heap_down(h, *heap_pos(h, last));
}

static void heap_fix(heap *h, void *e)
{
	size_t i = *heap_pos(h, e);

	heap_up(h, i);
	heap_down(h, *heap_pos(h, e));
}

static void *heap_top(const heap *h)
{
	return h->n ? h->v[0] : NULL;
}

/* FNV-1a */
static size_t hash_str(const char *s)
{
	uint64_t x = 1469598103934665603ULL;

	for (; *s; s++)
		x = (x ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)x;
}

static void *hmap_get(const hmap *m, const char *key)
{
	if (!m->nb)
		return NULL;
	for (hent *e = m->b[hash_str(key) & (m->nb - 1)]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e->val;
	return NULL;
}

/* key must live as long as the entry (it points into val). */
static int hmap_put(hmap *m, const char *key, void *val)
{
	hent *e;
	size_t i;

	if (m->n + 1 > m->nb) {
		size_t nb = m->nb ? m->nb * 2 : 64;
		hent **b = calloc(nb, sizeof(*b));

		if (!b)
			return -ENOMEM;
		for (size_t j = 0; j < m->nb; j++)
			while (m->b[j]) {
				hent *x = m->b[j];

				m->b[j] = x->next;
				i = hash_str(x->key) & (nb - 1);
				x->next = b[i];
				b[i] = x;
			}
		free(m->b);
		m->b = b;
		m->nb = nb;
	}
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	i = hash_str(key) & (m->nb - 1);
	*e = (hent){ .key = key, .val = val, .next = m->b[i] };
	m->b[i] = e;
	m->n++;
	return 0;
}

static void hmap_del(hmap *m, const char *key)
{
	if (!m->nb)
		return;
	for (hent **pe = &m->b[hash_str(key) & (m->nb - 1)]; *pe; pe = &(*pe)->next)
		if (strcmp((*pe)->key, key) == 0) {
			hent *e = *pe;

			*pe = e->next;
			free(e);
			m->n--;
			return;
		}
}

/* Calls fn on every value, then frees the map. */
static void hmap_clear(hmap *m, void (*fn)(void *))
{
	for (size_t j = 0; j < m->nb; j++)
		while (m->b[j]) {
			hent *e = m->b[j];

			m->b[j] = e->next;
			if (fn)
				fn(e->val);
			free(e);
		}
	free(m->b);
	*m = (hmap){};
}

/* ---- keys ------------------------------------------------------------------------ */

static int cmp_id(const void *a, const void *b)
{
	return strcmp(((const vf *)a)->id, ((const vf *)b)->id);
}

/* The sharing order: lowest throughput, then fewer users, then VF id. */
static int cmp_share(const void *a, const void *b)
{
	const vf *x = a, *y = b;

	if (x->tput != y->tput)
		return x->tput < y->tput ? -1 : 1;
	if (x->users != y->users)
		return x->users < y->users ? -1 : 1;
	return strcmp(x->id, y->id);
}

/* Rebalancing order: highest priority, then the earliest to share. */
static int cmp_sharer(const void *a, const void *b)
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
		pl->h[h].cmp = h == H_SHARE ? cmp_share : cmp_id;
	}
}

static void pool_free(void *x)
{
	pool *pl = x;

	if (!pl)
		return;
	for (int h = 0; h < _H_MAX; h++)
		free(pl->h[h].v);
	free(pl);
}

/* ---- membership ------------------------------------------------------------------ */

static bool in_set(const vf *v, int h)
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
		pl->n_free += d * (size_t)in_set(v, H_FREE);
		pl->n_free_sh += d * (size_t)in_set(v, H_FREE_SH);
		pl->n_room += d * (size_t)in_set(v, H_SHARE);
		pl->n_exclusive += d * (size_t)(v->state == IOVM_POLICY_VF_EXCLUSIVE);
		pl->n_shared += d * (size_t)(v->state == IOVM_POLICY_VF_SHARED);
	}
}

/* Takes v out of every index and counter, before its state changes. */
static void vf_out(iovm_policy *p, vf *v)
{
	counters(v, -1);
	if (!p->indexed)
		return;
	for (int k = 0; k < _K_MAX; k++)
		for (int h = 0; h < _H_MAX; h++)
			if (v->pos[SLOT(k, h)] != NO_POS)
				heap_remove(&v->pools[k]->h[h], v);
}

/* Puts v back according to its state. Heaps only grow here after vf_out()
 * shrank them, or had room reserved in vf_add, so this cannot fail. */
static void vf_in(iovm_policy *p, vf *v)
{
	counters(v, +1);
	if (!p->indexed)
		return;
	for (int k = 0; k < _K_MAX; k++)
		for (int h = 0; h < _H_MAX; h++)
			if (v->pools[k] && !(k == K_NODE && h == H_SHARE) && in_set(v, h))
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
	p->sharers.cmp = cmp_sharer;
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
	hmap_clear(&p->vms_by_name, vm_free);
	hmap_clear(&p->vfs_by_id, free);
	hmap_clear(&p->pools_by_pf, pool_free);
	for (size_t i = 0; i < p->n_nodes; i++)
		pool_free(p->nodes[i]);
	for (int h = 0; h < _H_MAX; h++)
		free(p->global.h[h].v);
	free(p->nodes);
	free(p->vfs);
	free(p->dirty);
	free(p->sharers.v);
	free(p->scratch);
	free(p);
	return NULL;
}

static int check_name(const char *what, const char *s, size_t max, iovm_error *err)
{
	if (!s || !s[0])
		return iovm_error_set(err, -EINVAL, "%s: no name given", what);
	if (strlen(s) >= max)
		return iovm_error_set(err, -EINVAL, "%s %.40s...: name longer than %zu characters", what, s,
				      max - 1);
	return 0;
}

/* Looks a VF or VM up by its key, with "what" naming it in the message. */
static void *find(const hmap *m, const char *what, const char *key, size_t max, int *r, iovm_error *err)
{
	void *x;

	*r = check_name(what, key, max, err);
	if (*r < 0)
		return NULL;
	x = hmap_get(m, key);
	if (!x)
		*r = iovm_error_set(err, -ENOENT, "%s %s: unknown to the allocator", what, key);
	return x;
}

static int find_vf(const iovm_policy *p, const char *id, vf **ret, iovm_error *err)
{
	int r;

	*ret = find(&p->vfs_by_id, "vf", id, IOVM_POLICY_ID_MAX, &r, err);
	return r;
}

static int find_vm(const iovm_policy *p, const char *name, vm **ret, iovm_error *err)
{
	int r;

	*ret = find(&p->vms_by_name, "vm", name, IOVM_POLICY_NAME_MAX, &r, err);
	return r;
}

/* The VM and the VF an assign or a release names. */
static int find_both(const iovm_policy *p, const char *op, const char *name, const char *id, vm **m, vf **v,
		     iovm_error *err)
{
	int r;

	if (!p)
		return iovm_error_set(err, -EINVAL, "%s: no engine given", op);
	r = find_vm(p, name, m, err);
	if (r < 0)
		return r;
	return find_vf(p, id, v, err);
}

static pool *node_pool(const iovm_policy *p, int node)
{
	return node >= 0 && (size_t)node < p->n_nodes ? p->nodes[node] : NULL;
}

/* Reserves heap room for one more VF in every heap of pl, so vf_in() never
 * has to allocate. */
static int pool_reserve(pool *pl)
{
	for (int h = 0; h < _H_MAX; h++)
		if (grow((void **)&pl->h[h].v, &pl->h[h].cap, pl->n_vfs + 1, sizeof(void *)) < 0)
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
	r = check_name("vf", in->id, IOVM_POLICY_ID_MAX, err);
	if (r < 0)
		return r;
	r = check_name("pf", in->pf, IOVM_POLICY_ID_MAX, err);
	if (r < 0)
		return iovm_error_prefix(err, "vf %s", in->id);
	if (in->numa_node < -1 || in->numa_node > 4095)
		return iovm_error_set(err, -EINVAL, "vf %s: NUMA node %d out of range", in->id, in->numa_node);
	if (hmap_get(&p->vfs_by_id, in->id))
		return iovm_error_set(err, -EEXIST, "vf %s: already known to the allocator", in->id);

	pp = hmap_get(&p->pools_by_pf, in->pf);
	if (!pp) {
		pp = calloc(1, sizeof(*pp) + IOVM_POLICY_ID_MAX);
		if (!pp)
			return iovm_error_set(err, -ENOMEM, "vf %s: out of memory", in->id);
		pool_init(pp, K_PF);
		/* the key lives right after the pool */
		snprintf((char *)(pp + 1), IOVM_POLICY_ID_MAX, "%s", in->pf);
		if (hmap_put(&p->pools_by_pf, (char *)(pp + 1), pp) < 0) {
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
	    grow((void **)&p->vfs, &p->cap_vfs, p->n_vfs + 1, sizeof(vf *)) < 0 ||
	    grow((void **)&p->dirty, &p->cap_dirty, p->n_vfs + 1, sizeof(vf *)) < 0 ||
	    grow((void **)&p->scratch, &p->cap_scratch, p->n_vfs + 1, sizeof(vf *)) < 0)
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
		v->pos[i] = NO_POS;
	v->pools[K_GLOBAL] = &p->global;
	v->pools[K_NODE] = np;
	v->pools[K_PF] = pp;
	if (hmap_put(&p->vfs_by_id, v->id, v) < 0)
		return iovm_error_set(err, -ENOMEM, "vf %s: out of memory", in->id);
	for (int k = 0; k < _K_MAX; k++)
		if (v->pools[k]) {
			v->pools[k]->n_vfs++;
			v->pools[k]->n_shareable += v->shareable;
			v->pools[k]->n_own_cap += v->own_cap;
		}
	v->idx = p->n_vfs;
	p->vfs[p->n_vfs++] = v;
	vf_in(p, v);
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
	r = find_vf(p, id, &v, err);
	if (r < 0)
		return r;
	if (v->users_head)
		return iovm_error_set(err, -EBUSY, "vf %s: in use by vm %s (%s)", v->id, v->users_head->vm->name,
				      iovm_policy_vf_state_to_string(v->state));
	vf_out(p, v);
	for (int k = 0; k < _K_MAX; k++)
		if (v->pools[k]) {
			v->pools[k]->n_vfs--;
			v->pools[k]->n_shareable -= v->shareable;
			v->pools[k]->n_own_cap -= v->own_cap;
		}
	dirty_drop(p, v);
	p->vfs[v->idx] = p->vfs[--p->n_vfs];
	p->vfs[v->idx]->idx = v->idx;
	hmap_del(&p->vfs_by_id, v->id);
	free(v);
	return 0;
}

int iovm_policy_vm_add(iovm_policy *p, const iovm_policy_vm *in, iovm_error *err)
{
	_cleanup_free_ vm *m = NULL;
	int r;

	if (!p || !in)
		return iovm_error_set(err, -EINVAL, "vm: no engine or VM given");
	r = check_name("vm", in->name, IOVM_POLICY_NAME_MAX, err);
	if (r < 0)
		return r;
	if (!iovm_priority_to_string(in->priority))
		return iovm_error_set(err, -EINVAL, "vm %s: unknown priority %d", in->name, (int)in->priority);
	if (in->numa_node < -1)
		return iovm_error_set(err, -EINVAL, "vm %s: NUMA node %d out of range", in->name, in->numa_node);
	if (hmap_get(&p->vms_by_name, in->name))
		return iovm_error_set(err, -EEXIST, "vm %s: already known to the allocator", in->name);
	m = calloc(1, sizeof(*m));
	if (!m)
		return iovm_error_set(err, -ENOMEM, "vm %s: out of memory", in->name);
	snprintf(m->name, sizeof(m->name), "%s", in->name);
	m->prio = in->priority;
	m->node = in->numa_node;
	if (hmap_put(&p->vms_by_name, m->name, m) < 0)
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
	r = find_vm(p, name, &m, err);
	if (r < 0)
		return r;
	if (m->held)
		return iovm_error_set(err, -EBUSY, "vm %s: still holds vf %s (%s)", m->name, m->held->vf->id,
				      iovm_mode_to_string(m->held->mode));
	hmap_del(&p->vms_by_name, m->name);
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
	r = find_vf(p, id, &v, err);
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

static int hold(iovm_policy *p, vm *m, vf *v, iovm_mode mode)
{
	assign *a = calloc(1, sizeof(*a));

	if (!a)
		return -ENOMEM;
	if (mode == IOVM_MODE_SHARED && p->indexed &&
	    grow((void **)&p->sharers.v, &p->sharers.cap, p->sharers.n + 1, sizeof(void *)) < 0) {
		free(a);
		return -ENOMEM;
	}
	*a = (assign){ .vm = m, .vf = v, .mode = mode, .seq = ++p->seq, .pos = NO_POS };
	vf_out(p, v);
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
	vf_in(p, v);
	return 0;
}

static void unhold(iovm_policy *p, assign *a)
{
	vm *m = a->vm;
	vf *v = a->vf;

	vf_out(p, v);
	if (a->pos != NO_POS)
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
	vf_in(p, v);
	free(a);
}

static assign *held_by(const vm *m, const vf *v)
{
	for (assign *a = m->held; a; a = a->vm_next)
		if (a->vf == v)
			return a;
	return NULL;
}

/* ---- choosing: indexed --------------------------------------------------------------- */

typedef enum where {
	W_PF,          /* restricted to one PF */
	W_NODE,        /* on the VM's NUMA node */
	W_OTHER_NODE,  /* none free on the VM's node */
	W_ANY,         /* the VM has no NUMA preference */
} where;

typedef struct choice {
	vf *vf;
	where where;
	size_t candidates;   /* how many VFs qualified */
} choice;

static void idx_free(iovm_policy *p, const vm *m, pool *pfp, int h, choice *c)
{
	pool *np = node_pool(p, m->node), *pl = &p->global;

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
			vf_out(p, a->vf);
	c->vf = heap_top(h);
	c->where = pfp ? W_PF : W_ANY;
	c->candidates = h->n;
	for (assign *a = m->held; a; a = a->vm_next)
		if (a->mode == IOVM_MODE_SHARED)
			vf_in(p, a->vf);
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
	return in_set(v, x->h);
}

static int ref_cmp(const void *a, const void *b, void *userdata)
{
	const vf *x = *(vf *const *)a, *y = *(vf *const *)b;
	const ref_ctx *c = userdata;
	bool ex = ref_eligible(x, c), ey = ref_eligible(y, c);

	if (ex != ey)
		return ex ? -1 : 1;
	if (c->h == H_SHARE)
		return cmp_share(x, y);
	if (!c->pfp && c->vm->node >= 0 && (x->node == c->vm->node) != (y->node == c->vm->node))
		return x->node == c->vm->node ? -1 : 1;
	return cmp_id(x, y);
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

static void choose(iovm_policy *p, const vm *m, pool *pfp, int h, choice *c)
{
	if (!p->indexed)
		ref_choose(p, m, pfp, h, c);
	else if (h == H_SHARE)
		idx_share(p, m, pfp, c);
	else
		idx_free(p, m, pfp, h, c);
}

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
	r = find_vm(p, req->vm, &m, err);
	if (r < 0)
		return r;
	if ((unsigned)req->mode >= _IOVM_MODE_MAX)
		return iovm_error_set(err, -EINVAL, "vm %s: unknown mode %d", m->name, (int)req->mode);
	if (req->pf) {
		r = check_name("pf", req->pf, IOVM_POLICY_ID_MAX, err);
		if (r < 0)
			return iovm_error_prefix(err, "vm %s", m->name);
		pfp = hmap_get(&p->pools_by_pf, req->pf);
		if (!pfp || !pfp->n_vfs)
			return iovm_error_set(err, -ENOENT, "vm %s: pf %s has no VFs known to the allocator", m->name,
					      req->pf);
	}

	if (req->mode != IOVM_MODE_SHARED) {
		choose(p, m, pfp, H_FREE, &c);
		if (c.vf)
			free_reason(d.reason, sizeof(d.reason), "exclusive: ", &c, m);
	}
	if (!c.vf && req->mode != IOVM_MODE_EXCLUSIVE) {
		choose(p, m, pfp, H_SHARE, &c);
		mode = IOVM_MODE_SHARED;
		if (c.vf) {
			snprintf(d.reason, sizeof(d.reason),
				 "shared: %slowest throughput %.1f Mbit/s of %zu shareable VFs with room%s%s "
				 "(user %u of cap %u)", req->mode == IOVM_MODE_AUTO ? "no free VF; " : "",
				 mbit(c.vf->tput), c.candidates, pfp ? " on pf " : "", pfp ? c.vf->pf : "",
				 c.vf->users + 1, c.vf->max_users);
		} else if (req->mode == IOVM_MODE_SHARED) {
			choose(p, m, pfp, H_FREE_SH, &c);
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

	r = hold(p, m, c.vf, mode);
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
			const vm *m = reqs[i].vm ? hmap_get(&p->vms_by_name, reqs[i].vm) : NULL;
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

	r = find_both(p, "assign", name, id, &m, &v, err);
	if (r < 0)
		return r;
	if (mode != IOVM_MODE_EXCLUSIVE && mode != IOVM_MODE_SHARED)
		return iovm_error_set(err, -EINVAL, "vm %s: vf %s: mode must be exclusive or shared", m->name, v->id);
	if (held_by(m, v))
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
	r = hold(p, m, v, mode);
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
				if (!best || cmp_sharer(a, best) < 0)
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

	r = find_both(p, "release", name, id, &m, &v, err);
	if (r < 0)
		return r;
	a = held_by(m, v);
	if (!a)
		return iovm_error_set(err, -ENOENT, "vm %s: does not hold vf %s (already released?)", m->name, v->id);
	unhold(p, a);
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
	choose(p, s->vm, NULL, H_FREE, &c);
	if (!c.vf)
		return 0;
	fill_move(p, s, c.vf, move);
	return 1;
}

/* ---- throughput ------------------------------------------------------------------------ */

int iovm_policy_sample(iovm_policy *p, const char *id, uint64_t counter, iovm_error *err)
{
	uint64_t delta = 0;
	vf *v;
	int r;

	if (!p)
		return iovm_error_set(err, -EINVAL, "sample: no engine given");
	r = find_vf(p, id, &v, err);
	if (r < 0)
		return r;
	if (v->have_counter && counter >= v->counter)
		delta = counter - v->counter;
	v->counter = counter;
	v->have_counter = true;
	if (!delta)
		return 0;
	v->window_bytes += delta;
	v->total_bytes += delta;
	if (!v->dirty && p->indexed) {
		v->dirty = true;
		v->dirty_idx = p->n_dirty;
		p->dirty[p->n_dirty++] = v;   /* room reserved in vf_add */
	}
	return 0;
}

static uint64_t bits_per_second(uint64_t bytes, uint64_t ns)
{
#ifdef __SIZEOF_INT128__
	unsigned __int128 x = (unsigned __int128)bytes * 8u * 1000000000u / ns;

	return x > UINT64_MAX ? UINT64_MAX : (uint64_t)x;
#else
	long double x = (long double)bytes * 8e9L / (long double)ns;

	return x >= 18446744073709551615.0L ? UINT64_MAX : (uint64_t)x;
#endif
}

static void set_tput(iovm_policy *p, vf *v, uint64_t tput)
{
	if (v->tput == tput)
		return;
	v->tput = tput;
	if (!p->indexed)
		return;
	for (int k = 0; k < _K_MAX; k++)
		if (v->pos[SLOT(k, H_SHARE)] != NO_POS)
			heap_fix(&v->pools[k]->h[H_SHARE], v);
}

int iovm_policy_window_reset(iovm_policy *p, uint64_t now_ns, iovm_error *err)
{
	uint64_t len;
	size_t kept = 0;

	if (!p)
		return iovm_error_set(err, -EINVAL, "window: no engine given");
	if (now_ns <= p->last_reset)
		return iovm_error_set(err, -EINVAL, "window: reset at %llu ns is not after the last one at %llu ns",
				      (unsigned long long)now_ns, (unsigned long long)p->last_reset);
	len = now_ns - p->last_reset;
	if (p->indexed) {
		/* only VFs that moved bytes in this window or the last one can change */
		for (size_t i = 0; i < p->n_dirty; i++) {
			vf *v = p->dirty[i];

			set_tput(p, v, bits_per_second(v->window_bytes, len));
			v->window_bytes = 0;
			v->dirty = v->tput != 0;
			if (v->dirty) {
				v->dirty_idx = kept;
				p->dirty[kept++] = v;
			}
		}
		p->n_dirty = kept;
	} else
		for (size_t i = 0; i < p->n_vfs; i++) {
			vf *v = p->vfs[i];

			set_tput(p, v, bits_per_second(v->window_bytes, len));
			v->window_bytes = 0;
		}
	p->last_reset = now_ns;
	return 0;
}

uint64_t iovm_policy_last_reset(const iovm_policy *p)
{
	return p ? p->last_reset : 0;
}

/* ---- names --------------------------------------------------------------------------- */

static const char *const vf_state_names[] = {
	[IOVM_POLICY_VF_FREE] = "free",
	[IOVM_POLICY_VF_EXCLUSIVE] = "exclusive",
	[IOVM_POLICY_VF_SHARED] = "shared",
};

const char *iovm_policy_vf_state_to_string(iovm_policy_vf_state s)
{
	return (unsigned)s < ELEMENTSOF(vf_state_names) ? vf_state_names[s] : NULL;
}
