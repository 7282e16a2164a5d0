/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The VF allocation policy engine (docs/allocation.md): which VF a VM gets,
 * and whether exclusively (passed through) or shared (the VF stays on the
 * host, several VMs use it). Pure logic: no I/O, no clock; the daemon feeds
 * it inventory, byte counters and the time, and carries its decisions out.
 *
 * The model:
 *   - VMs are admitted in priority order (high > normal > low, stable within
 *     a priority) when several wait (iovm_policy_request_batch()).
 *   - While a free VF exists a VM gets one exclusively, on its NUMA node's
 *     PFs if any is free there, else anywhere.
 *   - When none is free, the VM shares the shareable VF with the lowest
 *     throughput over the last window (ties: fewer users, then VF id), never
 *     past that VF's cap on users.
 *   - An exclusively held VF is never shared; a shared VF is never given
 *     exclusively while it has users.
 *   - Optionally (rebalancing), when a VF frees up the engine proposes moving
 *     the highest-priority sharing VM onto it.
 *
 * Every decision is O(log n) in the number of VFs: the engine keeps heaps of
 * free VFs (all, per NUMA node, per PF) and of shareable VFs with room keyed
 * by (throughput, users, id). IOVM_POLICY_ALGO_REFERENCE selects the original
 * algorithm instead (sort every VF on every request), which makes the same
 * decisions; the unit tests and bench/alloc-bench compare the two.
 *
 * Requests commit: a successful decision holds the VF for the VM until
 * iovm_policy_release(). If carrying the decision out fails, release it.
 *
 * Errors are negative errnos with a message naming the object:
 *   -EINVAL  bad argument (empty or over-long name, unknown mode/priority)
 *   -ENOENT  unknown VM, VF or PF; a release of a VF the VM does not hold
 *   -EEXIST  a VM or VF added twice; a VM asking for a VF it already holds
 *   -EBUSY   no VF can be given (the message says why, naming the cap);
 *            removing a VF or VM still in use
 *
 * Not thread-safe: one engine is used by one thread at a time.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iovm/error.h"
#include "iovm/types.h"

#define IOVM_POLICY_ID_MAX IOVM_ADDR_MAX            /* VF and PF ids: PCI addresses */
#define IOVM_POLICY_NAME_MAX IOVM_NAME_MAX          /* VM names */
#define IOVM_POLICY_REASON_MAX 256

#define IOVM_POLICY_DEFAULT_MAX_USERS 4
#define IOVM_POLICY_DEFAULT_WINDOW_NS 10000000000ULL   /* 10 s, iovmd --window */

typedef struct iovm_policy iovm_policy;

typedef enum iovm_policy_algo {
	IOVM_POLICY_ALGO_INDEXED,     /* heaps, O(log n) per decision */
	IOVM_POLICY_ALGO_REFERENCE,   /* the original: sort every VF on every request */
} iovm_policy_algo;


typedef enum iovm_policy_vf_state {
	IOVM_POLICY_VF_FREE,
	IOVM_POLICY_VF_EXCLUSIVE,     /* held by one VM */
	IOVM_POLICY_VF_SHARED,        /* one or more users */
} iovm_policy_vf_state;

typedef struct iovm_policy_config {
	iovm_policy_algo algo;
	unsigned max_users;           /* cap on users of a shared VF; 0: the default (4) */
	bool rebalance;               /* propose moves when a VF frees up */
} iovm_policy_config;

typedef struct iovm_policy_vf {
	const char *id;               /* PCI address of the VF, e.g. "0000:01:10.2" */
	const char *pf;               /* PCI address of its PF */
	int numa_node;                /* -1: unknown */
	bool shareable;               /* may stay on the host and be shared */
	unsigned max_users;           /* 0: the engine's cap */
} iovm_policy_vf;

typedef struct iovm_policy_vm {
	const char *name;
	iovm_priority priority;
	int numa_node;                /* -1: no preference */
} iovm_policy_vm;

typedef struct iovm_policy_req {
	const char *vm;
	iovm_mode mode;
	const char *pf;               /* NULL: any PF; else only VFs of this PF */
} iovm_policy_req;

typedef struct iovm_policy_decision {
	int result;                   /* 0, or the negative errno (batch admission) */
	char vm[IOVM_POLICY_NAME_MAX];
	char vf[IOVM_POLICY_ID_MAX];  /* "" when result < 0 */
	iovm_mode mode;        /* EXCLUSIVE or SHARED */
	unsigned users;               /* users of the VF after the decision */
	char reason[IOVM_POLICY_REASON_MAX];   /* why; the error message when result < 0 */
} iovm_policy_decision;

/* A proposed move of a sharing VM onto a free VF, exclusively. The engine
 * changes nothing: the daemon carries it out with iovm_policy_release(vm,
 * from_vf) and iovm_policy_assign(vm, to_vf, EXCLUSIVE), or ignores it. */
typedef struct iovm_policy_move {
	char vm[IOVM_POLICY_NAME_MAX];
	char from_vf[IOVM_POLICY_ID_MAX];
	char to_vf[IOVM_POLICY_ID_MAX];
	char reason[IOVM_POLICY_REASON_MAX];
} iovm_policy_move;

typedef struct iovm_policy_vf_info {
	char id[IOVM_POLICY_ID_MAX];
	char pf[IOVM_POLICY_ID_MAX];
	int numa_node;
	bool shareable;
	unsigned max_users;           /* effective cap */
	iovm_policy_vf_state state;
	unsigned users;
	uint64_t window_bytes;        /* bytes counted in the current window so far */
	uint64_t total_bytes;         /* bytes counted since the VF was added */
	uint64_t throughput_bps;      /* bits/s over the last completed window */
	uint64_t last_reset_ns;       /* when the last window was closed */
} iovm_policy_vf_info;

/* now_ns opens the first throughput window (any monotonic clock). */
int iovm_policy_new(const iovm_policy_config *cfg, uint64_t now_ns, iovm_policy **ret, iovm_error *err);
iovm_policy *iovm_policy_free(iovm_policy *p);   /* NULL-safe, returns NULL */
/* For _cleanup_(iovm_policy_freep): iovm_policy_free(*p). */
static inline void iovm_policy_freep(iovm_policy **p)
{
	iovm_policy_free(*p);
}

/* ---- inventory ------------------------------------------------------------ */

int iovm_policy_vf_add(iovm_policy *p, const iovm_policy_vf *vf, iovm_error *err);
/* -EBUSY naming a user while the VF is held. */
int iovm_policy_vf_remove(iovm_policy *p, const char *vf, iovm_error *err);
int iovm_policy_vm_add(iovm_policy *p, const iovm_policy_vm *vm, iovm_error *err);
/* -EBUSY naming a VF while the VM holds any. */
int iovm_policy_vm_remove(iovm_policy *p, const char *vm, iovm_error *err);
size_t iovm_policy_vf_count(const iovm_policy *p);
size_t iovm_policy_vf_free_count(const iovm_policy *p);
int iovm_policy_vf_get(const iovm_policy *p, const char *vf, iovm_policy_vf_info *ret, iovm_error *err);

/* ---- decisions -------------------------------------------------------------- */

/* Chooses a VF for req->vm and holds it for the VM:
 *   AUTO       a free VF exclusively (VM's NUMA node first), else shares;
 *   EXCLUSIVE  a free VF exclusively, else -EBUSY;
 *   SHARED     the lowest-throughput VF already shared with room, else a free
 *              shareable VF turned shared, else -EBUSY.
 * A VM never gets a VF it already holds. ret is filled on success. */
int iovm_policy_request(iovm_policy *p, const iovm_policy_req *req, iovm_policy_decision *ret,
			iovm_error *err);

/* Admits n waiting requests in priority order of their VMs (high first,
 * in the given order within a priority). ret[i] answers reqs[i] (with its
 * own result). Returns the number admitted, or -EINVAL for bad arguments. */
int iovm_policy_request_batch(iovm_policy *p, const iovm_policy_req *reqs, size_t n,
			      iovm_policy_decision *ret);

/* Holds a named VF for the VM in the given mode (attach with an explicit
 * VF, and start-up recovery of recorded assignments). Same rules as
 * decisions: -EBUSY if the VF is not available in that mode. */
int iovm_policy_assign(iovm_policy *p, const char *vm, const char *vf, iovm_mode mode,
		       iovm_error *err);

/* Gives the VM's use of the VF back. If the VF becomes free, rebalancing is
 * on and some VM shares a VF, *move (if non-NULL) is filled and 1 returned;
 * otherwise 0. -ENOENT if the VM does not hold the VF. */
int iovm_policy_release(iovm_policy *p, const char *vm, const char *vf, iovm_policy_move *move,
			iovm_error *err);

/* Who holds what, as the engine sees it: one entry per (VM, VF), in VF
 * order. *ret is malloc()ed (NULL when there is none). */
typedef struct iovm_policy_hold {
	char vm[IOVM_POLICY_NAME_MAX];
	char vf[IOVM_POLICY_ID_MAX];
	iovm_mode mode;               /* EXCLUSIVE or SHARED */
} iovm_policy_hold;
int iovm_policy_holds(const iovm_policy *p, iovm_policy_hold **ret, size_t *ret_n, iovm_error *err);

/* The move rebalancing would propose now: the highest-priority sharing VM
 * (the earliest to share within a priority) onto the free VF it would get.
 * 1 and *move filled, or 0 (rebalancing off, nobody shares, nothing free). */
int iovm_policy_rebalance(iovm_policy *p, iovm_policy_move *move);

/* ---- throughput --------------------------------------------------------------- */

/* Records a VF's cumulative byte counter (rx + tx, as sampled). The first
 * sample sets the baseline; a counter that went backwards (driver reset) is
 * a new baseline and counts nothing. */
int iovm_policy_sample(iovm_policy *p, const char *vf, uint64_t counter, iovm_error *err);

/* Closes the window: each VF's throughput becomes the bytes counted in it
 * divided by its length (now_ns - the last reset), and a new window opens.
 * -EINVAL if now_ns is not after the last reset. */
int iovm_policy_window_reset(iovm_policy *p, uint64_t now_ns, iovm_error *err);
uint64_t iovm_policy_last_reset(const iovm_policy *p);

const char *iovm_policy_vf_state_to_string(iovm_policy_vf_state s);
