/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Inside the policy engine: its state and the functions its modules share
 * (engine.c: inventory, holding; choose.c: the two choosers; decide.c:
 * requests and moves; window.c: throughput). Not part of the public API. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iovm/policy.h"
#include "shared/hashmap.h"
#include "shared/heap.h"

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

struct iovm_policy {
	iovm_policy_config cfg;
	bool indexed;
	hashmap vfs_by_id, vms_by_name, pools_by_pf;
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

int policy_cmp_id(const void *a, const void *b);
int policy_cmp_share(const void *a, const void *b);
int policy_cmp_sharer(const void *a, const void *b);
bool policy_in_set(const vf *v, int h);
void policy_vf_out(iovm_policy *p, vf *v);
void policy_vf_in(iovm_policy *p, vf *v);
int policy_check_name(const char *what, const char *s, size_t max, iovm_error *err);
int policy_find_vf(const iovm_policy *p, const char *id, vf **ret, iovm_error *err);
int policy_find_vm(const iovm_policy *p, const char *name, vm **ret, iovm_error *err);
int policy_find_both(const iovm_policy *p, const char *op, const char *name, const char *id, vm **m, vf **v,
		     iovm_error *err);
pool *policy_node_pool(const iovm_policy *p, int node);
int policy_hold(iovm_policy *p, vm *m, vf *v, iovm_mode mode);
void policy_unhold(iovm_policy *p, assign *a);
assign *policy_held_by(const vm *m, const vf *v);
void policy_choose(iovm_policy *p, const vm *m, pool *pfp, int h, choice *c);
