/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The persistent state of iovmd in SQLite (WAL): desired PF and VF state, the
 * VM registry, VF assignments, the original settings of VFs handed out, and
 * an intent journal for multi-step operations. See docs/state.md for the
 * schema and the recovery contract.
 *
 * No SQL leaves store.c / store-objects.c: callers see typed records. Every
 * call is its own transaction unless the caller opened one with
 * iovm_store_begin() (or iovm_store_transaction()), in which case it joins
 * it, so "record the assignment + advance the intent" commits as one.
 *
 * A handle is used by one thread at a time and is not carried across
 * fork(); a child process opens its own (SQLite's rules).
 *
 * Errors are negative errnos with a message naming the object:
 *   -ENOENT   no such record
 *   -EBUSY    the database is locked by another process past the busy
 *             timeout, or the VF is already assigned (message names holder),
 *             or it is shared and cannot be held exclusively, or the other
 *             way round (message names the holders), or a VM still holds or
 *             shares VFs and cannot be deleted
 *   -EEXIST   a record that must be unique already exists
 *   -EBADMSG  the file is not an SQLite database, or is corrupt
 *   -EPROTONOSUPPORT  the database schema is newer than this code
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iovm/error.h"
#include "iovm/types.h"
#include "iovm/vfconfig.h"

#define IOVM_STORE_DEFAULT_PATH "/var/lib/iovm/iovm.db"
#define IOVM_STORE_SCHEMA_VERSION 5   /* newest schema this code writes */

#define IOVM_STORE_ADDR_MAX IOVM_ADDR_MAX
#define IOVM_STORE_NAME_MAX IOVM_NAME_MAX
#define IOVM_STORE_PATH_MAX IOVM_SOCKET_PATH_MAX
#define IOVM_STORE_OBJECT_MAX 128     /* intent object, e.g. "vf 0000:01:10.2" */
#define IOVM_STORE_ARGS_MAX 16384     /* intent arguments, a JSON object */

typedef struct iovm_store iovm_store;

/* Opens (creating if missing, with its parent directory at mode 0750) the
 * database at path, switches it to WAL, turns on foreign keys, and migrates
 * it to IOVM_STORE_SCHEMA_VERSION, one transaction per step. A database
 * written by a newer iovm is refused, never downgraded. */
int iovm_store_open(const char *path, iovm_store **ret, iovm_error *err);
iovm_store *iovm_store_close(iovm_store *s);   /* NULL-safe, returns NULL */
/* For _cleanup_(iovm_store_closep): iovm_store_close(*p). */
static inline void iovm_store_closep(iovm_store **p)
{
	iovm_store_close(*p);
}
int iovm_store_schema_version(iovm_store *s);
/* How many rows this connection has inserted, updated or deleted since it
 * was opened: a caller that keeps a view derived from the store compares it
 * with the count it last saw to know whether to derive it again. */
uint64_t iovm_store_changes(const iovm_store *s);  /* >= 0, or negative errno */

/* ---- transactions -------------------------------------------------------- */

/* BEGIN IMMEDIATE: takes the write lock now, so a transaction never fails
 * half-way because another writer got there first. Not nestable (-EALREADY). */
int iovm_store_begin(iovm_store *s, iovm_error *err);
/* -EIO if SQLite already rolled the transaction back after an error
 * (disk full, I/O error): nothing of it was written. */
int iovm_store_commit(iovm_store *s, iovm_error *err);
int iovm_store_rollback(iovm_store *s);        /* no-op when none is open */
bool iovm_store_in_transaction(const iovm_store *s);

/* Runs fn inside one transaction: commits if fn returns >= 0, rolls back
 * and returns fn's error otherwise. */
typedef int (*iovm_store_tx_fn)(iovm_store *s, void *userdata, iovm_error *err);
int iovm_store_transaction(iovm_store *s, iovm_store_tx_fn fn, void *userdata, iovm_error *err);

/* ---- desired PF state ------------------------------------------------------ */

typedef struct iovm_store_pf {
	char pf[IOVM_STORE_ADDR_MAX];      /* PCI address of the PF */
	unsigned num_vfs;
	char driver[IOVM_STORE_NAME_MAX];  /* "vfio-pci", or "host" for the PF's VF driver */
	int64_t updated;                   /* unix seconds; set by the store */
} iovm_store_pf;

int iovm_store_pf_put(iovm_store *s, const iovm_store_pf *pf, iovm_error *err);  /* upsert */
int iovm_store_pf_get(iovm_store *s, const char *pf, iovm_store_pf *ret, iovm_error *err);
int iovm_store_pf_list(iovm_store *s, iovm_store_pf **ret, size_t *ret_n, iovm_error *err);
/* Also deletes the PF's desired VF configs. -ENOENT if absent. */
int iovm_store_pf_delete(iovm_store *s, const char *pf, iovm_error *err);

/* ---- desired VF configuration ---------------------------------------------- */

typedef struct iovm_store_vf_config {
	char pf[IOVM_STORE_ADDR_MAX];
	unsigned vf;                       /* VF index on the PF */
	iovm_vfnet_config cfg;             /* only fields in cfg.present are desired */
	int64_t updated;
} iovm_store_vf_config;

/* Upsert. The PF must have desired state (-ENOENT otherwise). */
int iovm_store_vf_config_put(iovm_store *s, const iovm_store_vf_config *c, iovm_error *err);
int iovm_store_vf_config_get(iovm_store *s, const char *pf, unsigned vf,
			     iovm_store_vf_config *ret, iovm_error *err);
/* pf NULL: every PF. Ordered by PF then VF index. */
int iovm_store_vf_config_list(iovm_store *s, const char *pf, iovm_store_vf_config **ret,
			      size_t *ret_n, iovm_error *err);
int iovm_store_vf_config_delete(iovm_store *s, const char *pf, unsigned vf, iovm_error *err);

/* ---- VM registry -------------------------------------------------------------- */


typedef struct iovm_store_vm {
	char name[IOVM_STORE_NAME_MAX];
	char qmp[IOVM_STORE_PATH_MAX];     /* QMP socket path */
	iovm_priority priority;
	int numa_node;                     /* -1: no preference */
	int64_t created;                   /* set by the store on first put, kept after */
	char qga[IOVM_STORE_PATH_MAX];     /* guest-agent socket path, "" = none (schema 3) */
} iovm_store_vm;

int iovm_store_vm_put(iovm_store *s, const iovm_store_vm *vm, iovm_error *err);   /* upsert */
int iovm_store_vm_get(iovm_store *s, const char *name, iovm_store_vm *ret, iovm_error *err);
int iovm_store_vm_list(iovm_store *s, iovm_store_vm **ret, size_t *ret_n, iovm_error *err);
/* -EBUSY naming a VF while the VM still has assignments or shares a VF. */
int iovm_store_vm_delete(iovm_store *s, const char *name, iovm_error *err);

/* ---- incoming links (schema 4) -------------------------------------------------- */

/* A VM registered as the destination of a migration on this host
 * (docs/migration.md): its source VM, the migration's state as iovmd last
 * saw it and the source's VFs that follow the guest. One row per VM,
 * deleted with it. */
#define IOVM_STORE_INCOMING_VFS_MAX 8

typedef struct iovm_store_incoming_vf {
	char src_vf[IOVM_STORE_ADDR_MAX];   /* the source's VF */
	char pf[IOVM_STORE_NAME_MAX];       /* its PF's netdev: the destination's VF comes from it */
	char port[IOVM_STORE_NAME_MAX];     /* the source device's port */
	char pair[IOVM_STORE_NAME_MAX];     /* its failover_pair_id */
	iovm_vfnet_config net;              /* its MAC, VLAN, rate, spoofchk, trust */
} iovm_store_incoming_vf;

typedef struct iovm_store_incoming {
	char vm[IOVM_STORE_NAME_MAX];
	char source[IOVM_STORE_NAME_MAX];
	char state[IOVM_STORE_NAME_MAX];    /* waiting, active, resumed, done or failed */
	size_t n_vfs;
	iovm_store_incoming_vf vfs[IOVM_STORE_INCOMING_VFS_MAX];
	int64_t updated;                    /* set by the store */
} iovm_store_incoming;

/* Upsert. -ENOENT the VM is not registered; -EINVAL naming the member. */
int iovm_store_incoming_put(iovm_store *s, const iovm_store_incoming *in, iovm_error *err);
/* -ENOENT no link for the VM; -EBADMSG its stored VFs do not read. */
int iovm_store_incoming_get(iovm_store *s, const char *vm, iovm_store_incoming *ret, iovm_error *err);

/* ---- outgoing links (schema 5) -------------------------------------------------- */

/* A VM whose VFs iovmd took out before its migration (vm-migrate-prepare,
 * the explicit failover variant, docs/migration.md): the state
 * ("unplugging" while it takes them out, "prepared" once they are out and
 * their MACs cleared) and, per VF, what a destination needs and what
 * giving it back needs (src_vf, PF, port, failover pair, settings before;
 * the device id stays in the VF's assignment). One row per VM, deleted
 * with it. */
typedef struct iovm_store_outgoing {
	char vm[IOVM_STORE_NAME_MAX];
	char state[IOVM_STORE_NAME_MAX];    /* unplugging or prepared */
	size_t n_vfs;
	iovm_store_incoming_vf vfs[IOVM_STORE_INCOMING_VFS_MAX];
	int64_t updated;                    /* set by the store */
} iovm_store_outgoing;

/* Upsert. -ENOENT the VM is not registered; -EINVAL naming the member. */
int iovm_store_outgoing_put(iovm_store *s, const iovm_store_outgoing *out, iovm_error *err);
/* -ENOENT no link for the VM; -EBADMSG its stored VFs do not read. */
int iovm_store_outgoing_get(iovm_store *s, const char *vm, iovm_store_outgoing *ret, iovm_error *err);
/* The VMs with an outgoing link, in name order (*ret freed by the caller). */
int iovm_store_outgoing_list(iovm_store *s, iovm_store_outgoing **ret, size_t *ret_n, iovm_error *err);
/* No link is no error. */
int iovm_store_outgoing_delete(iovm_store *s, const char *vm, iovm_error *err);

/* ---- assignments ------------------------------------------------------------- */


typedef enum iovm_store_assign_state {
	IOVM_STORE_RESERVED,         /* taken for the VM, nothing done yet */
	IOVM_STORE_ATTACHING,        /* device_add in progress */
	IOVM_STORE_ATTACHED,
	IOVM_STORE_DETACHING,        /* device_del sent */
	IOVM_STORE_RELEASE_PENDING,  /* out of the VM (or VM gone); VF to be given back */
} iovm_store_assign_state;

typedef struct iovm_store_assignment {
	char vf[IOVM_STORE_ADDR_MAX];
	char vm[IOVM_STORE_NAME_MAX];
	iovm_mode mode;
	char devid[IOVM_STORE_NAME_MAX];   /* QEMU device id, "" before device_add */
	iovm_store_assign_state state;
	int64_t updated;
} iovm_store_assignment;

/* Records a new assignment. -EBUSY naming the holder if the VF is already
 * assigned (to any VM, the same one included), or, for an exclusive one,
 * naming the sharers if the VF is shared; -ENOENT if the VM is unknown. */
int iovm_store_assign(iovm_store *s, const iovm_store_assignment *a, iovm_error *err);
int iovm_store_assignment_set_state(iovm_store *s, const char *vf, iovm_store_assign_state state,
				    const char *devid, iovm_error *err);   /* devid NULL: keep */
int iovm_store_assignment_get(iovm_store *s, const char *vf, iovm_store_assignment *ret,
			      iovm_error *err);
/* vm NULL: every VM. Ordered by VF address. */
int iovm_store_assignment_list(iovm_store *s, const char *vm, iovm_store_assignment **ret,
			       size_t *ret_n, iovm_error *err);
int iovm_store_unassign(iovm_store *s, const char *vf, iovm_error *err);

/* ---- shared VFs ---------------------------------------------------------------------- */

/* A VF that stays on its host driver, used by several VMs, each through its
 * own macvtap + virtio-net device: one record per (VF, VM). A VF is either
 * held exclusively (an exclusive assignment) or shared, never both; the
 * database refuses it (triggers), so this holds across processes too. How
 * many VMs may share one VF is policy; the store sets no cap. */
typedef struct iovm_store_share {
	char vf[IOVM_STORE_ADDR_MAX];
	char vm[IOVM_STORE_NAME_MAX];
	char devid[IOVM_STORE_NAME_MAX];   /* QEMU device id, "" before device_add */
	char ifname[IOVM_STORE_NAME_MAX];  /* the macvtap on the VF, "" before it exists */
	iovm_store_assign_state state;
	int64_t updated;                   /* unix seconds; set by the store */
} iovm_store_share;

/* -EEXIST if this VM already shares this VF; -EBUSY naming the VM if the VF
 * is held exclusively; -ENOENT if the VM is unknown. */
int iovm_store_share_add(iovm_store *s, const iovm_store_share *sh, iovm_error *err);
/* devid, ifname NULL: keep. -ENOENT if the VM does not share the VF. */
int iovm_store_share_set_state(iovm_store *s, const char *vf, const char *vm,
			       iovm_store_assign_state state, const char *devid, const char *ifname,
			       iovm_error *err);
int iovm_store_share_get(iovm_store *s, const char *vf, const char *vm, iovm_store_share *ret,
			 iovm_error *err);
/* vf, vm: filters, NULL = any. Ordered by VF address, then VM name. */
int iovm_store_share_list(iovm_store *s, const char *vf, const char *vm, iovm_store_share **ret,
			  size_t *ret_n, iovm_error *err);
/* -ENOENT if the VM does not share the VF. */
int iovm_store_share_remove(iovm_store *s, const char *vf, const char *vm, iovm_error *err);

/* ---- original VF settings -------------------------------------------------------- */

typedef struct iovm_store_vf_saved {
	char vf[IOVM_STORE_ADDR_MAX];
	char pf[IOVM_STORE_ADDR_MAX];
	unsigned vf_index;
	char driver[IOVM_STORE_NAME_MAX];  /* driver before iovm touched it, "" = none */
	iovm_vfnet_config cfg;             /* only fields in cfg.present were saved */
	int64_t saved;
} iovm_store_vf_saved;

/* -EEXIST if settings are already saved for the VF: the first save is the
 * original, and a retried attach must not overwrite it with iovm's own. */
int iovm_store_vf_saved_put(iovm_store *s, const iovm_store_vf_saved *v, iovm_error *err);
int iovm_store_vf_saved_get(iovm_store *s, const char *vf, iovm_store_vf_saved *ret,
			    iovm_error *err);
int iovm_store_vf_saved_list(iovm_store *s, iovm_store_vf_saved **ret, size_t *ret_n,
			     iovm_error *err);
int iovm_store_vf_saved_delete(iovm_store *s, const char *vf, iovm_error *err);

/* ---- intent journal ---------------------------------------------------------------- */

typedef enum iovm_store_intent_kind {
	IOVM_INTENT_CREATE_VFS,
	IOVM_INTENT_ATTACH,
	IOVM_INTENT_DETACH,
	IOVM_INTENT_SET_VFS,
} iovm_store_intent_kind;

typedef enum iovm_store_intent_status {
	IOVM_INTENT_OPEN,
	IOVM_INTENT_DONE,
	IOVM_INTENT_ROLLED_BACK,
} iovm_store_intent_status;

/* An intent's arguments, typed; stored as a JSON object whose members
 * depend on the kind (docs/state.md):
 *   attach, detach:        "vm", "mode" ("exclusive" | "shared"; absent in
 *                          older rows: exclusive), "devid" (exclusive only)
 *   set-vfs, create-vfs:   "count", "driver"; a live set-vfs also "live":
 *                          {"mode", "from", "holders": [{"vm", "vf", "index",
 *                          "mode", "devid", "port", "failover_pair_id",
 *                          "net"}]} ("net" as iovm_vfnet_config_format)
 * Members a kind does not use are neither written nor read. */
#define IOVM_STORE_LIVE_MAX 32        /* VMs a live set-vfs carries through */

/* One VM holding a VF of the PF a live set-vfs re-creates: what it takes
 * to give the VM the same VF back (docs/resize.md). */
typedef struct iovm_store_live_holder {
	char vm[IOVM_STORE_NAME_MAX];
	char vf[IOVM_STORE_ADDR_MAX];      /* the VF's address, the same after the re-create */
	unsigned index;                    /* its index on the PF */
	iovm_live_mode mode;               /* PAUSE, FAILOVER or REPLUG */
	char devid[IOVM_STORE_NAME_MAX];   /* QEMU device id */
	char port[IOVM_STORE_NAME_MAX];    /* hot-plug port it sits behind ("" on a root bus) */
	char failover_pair_id[IOVM_STORE_NAME_MAX];   /* "" if none */
	iovm_vfnet_config net;             /* its MAC, VLAN, rate, trust, spoofchk before */
} iovm_store_live_holder;

typedef struct iovm_store_intent_args {
	char vm[IOVM_STORE_NAME_MAX];      /* attach, detach: the VM */
	iovm_mode mode;              /* attach, detach */
	char devid[IOVM_STORE_NAME_MAX];   /* attach, detach, exclusive: QEMU device id (may be "") */
	unsigned count;                    /* set-vfs, create-vfs: VF count */
	char driver[IOVM_STORE_NAME_MAX];  /* set-vfs, create-vfs: "vfio-pci" or "host" */
	/* set-vfs with VMs holding VFs of the PF (n_live > 0): the mode asked,
	 * the count before, and every holder */
	iovm_live_mode live;
	unsigned from;
	size_t n_live;
	iovm_store_live_holder holders[IOVM_STORE_LIVE_MAX];
} iovm_store_intent_args;

#define IOVM_STORE_ARGS_ERROR_MAX 160

typedef struct iovm_store_intent {
	int64_t id;
	iovm_store_intent_kind kind;
	char object[IOVM_STORE_OBJECT_MAX];
	iovm_store_intent_args args;       /* decoded; all zero when args_error is set */
	/* "" when the stored arguments decoded; else why they did not, e.g.
	 * "member \"vm\" is missing" (list_open only: get refuses the row) */
	char args_error[IOVM_STORE_ARGS_ERROR_MAX];
	char step[IOVM_STORE_NAME_MAX];    /* last step reached, "" = none yet */
	iovm_store_intent_status status;
	int64_t started, finished;         /* unix seconds; finished 0 while open */
} iovm_store_intent;

const char *iovm_store_intent_kind_to_string(iovm_store_intent_kind k);
const char *iovm_store_intent_status_to_string(iovm_store_intent_status st);
const char *iovm_store_assign_state_to_string(iovm_store_assign_state st);

/* Writes the intent before acting, its arguments encoded as JSON. -EINVAL
 * naming the member if args lack what the kind needs (attach, detach: vm;
 * set-vfs, create-vfs: driver) or a string is unterminated. */
int iovm_store_intent_begin(iovm_store *s, iovm_store_intent_kind kind, const char *object,
			    const iovm_store_intent_args *args, int64_t *ret_id, iovm_error *err);
/* Records the step reached. -ENOENT if no such intent, -EALREADY if it is
 * no longer open. */
int iovm_store_intent_step(iovm_store *s, int64_t id, const char *step, iovm_error *err);
/* status: IOVM_INTENT_DONE or IOVM_INTENT_ROLLED_BACK. */
int iovm_store_intent_finish(iovm_store *s, int64_t id, iovm_store_intent_status status,
			     iovm_error *err);
/* -EBADMSG naming the member if the stored arguments do not decode. */
int iovm_store_intent_get(iovm_store *s, int64_t id, iovm_store_intent *ret, iovm_error *err);
/* Open intents, oldest first: what recovery must finish or roll back.
 * Every open row is listed; one whose arguments do not decode has
 * args_error set, so a single bad row does not hide the others. */
int iovm_store_intent_list_open(iovm_store *s, iovm_store_intent **ret, size_t *ret_n,
				iovm_error *err);
/* Deletes finished intents whose finish time is before the given time;
 * returns how many. Open intents are never pruned. */
int iovm_store_intent_prune(iovm_store *s, int64_t finished_before, iovm_error *err);
/* Deletes finished intents but the newest max_finished (by id); returns
 * how many. Open intents are never pruned, nor counted. iovmd calls this
 * on its refresh tick with --journal-keep (default below). */
#define IOVM_STORE_INTENT_KEEP_DEFAULT 1000
int iovm_store_intent_prune_keep(iovm_store *s, unsigned max_finished, iovm_error *err);
