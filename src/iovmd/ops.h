/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Internal to the ops thread's modules. The thread owns the host (sysfs,
 * netlink), the state store and every VM's QMP connection (a QMP socket
 * serves one client, so iovmd holds it). Mutating commands run here one at
 * a time; each multi-step one writes its intent to the journal before
 * acting, records each step, and finishes it (done or rolled back);
 * recovery at start-up reconciles open intents and holders with what the
 * kernel and the VMs show. docs/iovmd.md.
 *
 *   ops-loop.c   start-up, the poll loop, the refresh tick, shutdown
 *   ops-msg.c    replies, events and progress for the main thread
 *   vms.c        VM records, connecting, a VM that went away
 *   views.c      the VF pool and the policy's holds, derived from the store
 *   mirror.c     the allocation policy's copy of VFs, VMs and holders
 *   records.c    store writes the commands share: journal, holder states, releases
 *   snapshot.c   the inventory snapshot for the main thread's reads
 *   naming.c     VFs and PFs by the names users give
 *   cmd.c        one job: dispatch, reply, snapshot
 *   cmd-pf.c, cmd-vf.c, cmd-vm.c, cmd-attach.c, cmd-detach.c   the commands
 *   cmd-live.c   pf-set-vfs with VMs holding VFs of the PF, and its recovery
 *   rebalance.c  a move the policy proposed
 *   recovery.c   start-up recovery
 *   sample.c     throughput sampling (host counters, guest agents)
 *   kernel.c     the PFs, VFs and VF settings as last read, followed by the
 *                host monitor (uevents, rtnetlink): only what changed is read
 */

#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "iovm/policy.h"
#include "iovm/sriov.h"
#include "iovm/store.h"
#include "iovm/vfio.h"
#include "iovm/vfnet.h"
#include "iovm/vm.h"
#include "iovmd/gsample.h"
#include "iovmd/iovmd.h"

#define CONNECT_TIMEOUT_MS 2000
#define LET_GO_MS 5000

/* A migration into a VM registered as incoming (migrate.c). */
typedef enum mig_state {
	MIG_NONE,       /* not incoming */
	MIG_WAITING,    /* registered, no migration seen yet */
	MIG_ACTIVE,     /* its QEMU receives the migration */
	MIG_RESUMED,    /* RESUME after the migration: VFs to plug */
	MIG_DONE,       /* plugged (or tried) */
	MIG_FAILED,     /* failed or cancelled: the VFs stay with the source */
	_MIG_STATE_MAX,
} mig_state;

/* A VF of the source that follows the guest (its failover standby, its PF
 * and its settings, as the store keeps them), and what iovmd does for it
 * on the destination. */
typedef struct mig_vf {
	iovm_store_incoming_vf f;
	/* The destination's VF, once reserved before the switch-over. */
	char vf[IOVM_STORE_ADDR_MAX];
	char devid[IOVM_VM_ID_MAX];
	int64_t intent;              /* its attach intent, 0 = none */
	bool done;                   /* the destination holds its VF, attached */
} mig_vf;

#define MIG_VFS_MAX IOVM_STORE_INCOMING_VFS_MAX
/* The settings a VF that follows a migration keeps. */
#define MIG_SETTINGS (IOVM_VFNET_MAC | IOVM_VFNET_VLAN | IOVM_VFNET_RATE | IOVM_VFNET_SPOOFCHK | IOVM_VFNET_TRUST)

typedef struct vmrec {
	struct vmrec *next;
	iovm_store_vm info;
	iovm_vm *vm;                 /* NULL while not connected */
	int64_t next_try_ms;
	unsigned failures;           /* connection attempts failed in a row */
	int64_t qga_next_try_ms;     /* guest agent: not asked again before this */
	bool qga_warned;             /* its last failure is logged */
	char incoming_from[IOVM_STORE_NAME_MAX]; /* vm-add "incoming": its source VM, "" = none */
	mig_state mig;
	mig_state mig_saved;         /* the state the store holds */
	mig_vf mig_vfs[MIG_VFS_MAX];
	size_t n_mig_vfs;
	bool out_prepared;           /* its VFs are out for its migration (migrate-out.c) */
	bool out_giveback;           /* its QEMU said the migration failed: give them back */
} vmrec;

typedef struct kview kview;

typedef struct ops {
	iovmd *d;
	iovm_host *host;
	iovm_host *inv_host;         /* the same sysfs, for the snapshot: no per-VF lock probe */
	iovm_store *store;
	iovm_vf_pool *pool;
	iovm_policy *pol;            /* who gets which VF (docs/allocation.md) */
	char (*known)[IOVM_STORE_ADDR_MAX];   /* VFs the policy knows */
	size_t n_known;
	/* Read once per snapshot, not once per VF or VM. */
	iovm_store_assignment *as;
	size_t n_as;
	iovm_store_share *shs;
	size_t n_shs;
	iovm_vf *inv;                /* the VFs as last read (kernel.c), sorted by PF then index */
	size_t n_inv;
	kview *kv;                   /* kernel.c */
	bool stale;                  /* a VM or a counter changed: the snapshot is out of date */
	uint64_t counters_sig;       /* sample.c: the policy's counters at the last snapshot */
	vmrec *vms;
	gsample *gs;                 /* the guest agents' questions (NULL: none asked) */
	/* a rebalancing move proposed by the policy, carried out after the
	 * job or tick that freed the VF (--rebalance) */
	iovm_policy_move move;
	bool move_pending;
	uint64_t views_seen;         /* iovm_store_changes() when the pool and the holds were derived */
	/* the job being run, for progress and the step hook */
	const iovmd_job *job;
	const char *op;
	int64_t intent;
} ops;

/* ops-loop.c: the thread's state without the thread (the unit tests use
 * these). ops_init: 0, or a negative errno, logged; ops_fini is safe on a
 * half-initialised o. */
int ops_init(ops *o, iovmd *d);
void ops_fini(ops *o);
void ops_tick(ops *o);

/* ops-msg.c */
void ops_post(ops *o, iovmd_msg_kind kind, uint64_t client, char *line);
void ops_emit(ops *o, const char *event, json_object *data);   /* takes data */
void ops_progress(ops *o, const char *step, int done, int total);
json_object *obj_s(json_object *j, const char *k, const char *v);
json_object *vm_vf_json(const char *vm, const char *vf);        /* {"vm":VM,"vf":VF} */

/* vms.c */
vmrec *vms_find(ops *o, const char *name);
vmrec *vms_add(ops *o, const iovm_store_vm *rec);               /* NULL: out of memory */
int vms_remove(ops *o, const char *name, iovm_error *err);
void vms_free_all(ops *o);
int vms_connect(ops *o, vmrec *v, iovm_error *err);
int vms_sync(ops *o, vmrec *v, json_object *released);
void vms_record(ops *o, const char *name);
void vms_lost(ops *o, vmrec *v, const char *why);

/* mirror.c */
void mirror_sync_vfs(ops *o, const iovm_vf *vfs, size_t n);
void mirror_add_vm(ops *o, const iovm_store_vm *rec);
/* Derives the policy's holds from the store's assignments and shares: the
 * only place they change, but for a decision's own hold (iovm_policy_request
 * or a named VF), which the attach then records or this gives back. Called
 * by views_sync() only. */
void mirror_sync_holders(ops *o);

/* views.c: who holds a VF is recorded in the store; the VF pool of the VM
 * layer and the policy's holds are derived from it by views_sync() (which
 * reads the store only if it changed since its last call, unless force),
 * at start-up, around every command and on each turn of the loop. What
 * the VM layer did to the pool goes back to the store through
 * views_record() alone. */
void views_sync(ops *o, bool force);
/* The pool alone: at start-up, before recovery, when the policy does not
 * know the VFs yet. */
void views_sync_pool(ops *o);
iovm_vf_use views_use_of(iovm_store_assign_state st);
bool views_record(ops *o, const iovm_store_assignment *a, bool ended, json_object *released);

/* records.c */
void records_begin(ops *o, const char *what);
int records_commit(ops *o);
/* The arguments of an attach or detach intent (devid NULL: none). */
iovm_store_intent_args records_vm_args(const char *vm, iovm_mode mode, const char *devid);
void records_step(ops *o, int64_t id, const char *step);
void records_finish(ops *o, int64_t id, iovm_store_intent_status status);
void records_set_assignment(ops *o, const char *vf, iovm_store_assign_state st, const char *devid);
void records_set_share(ops *o, const char *vf, const char *vm, iovm_store_assign_state st,
		       const char *devid, const char *ifname);
void records_release(ops *o, const char *vf);
void records_release_share(ops *o, const char *vf, const char *vm);
int records_restore_vf(ops *o, const char *vf, iovm_error *err);
/* Sets the fields of mask on a VF through its PF (rtnetlink). */
int records_vf_net_set(ops *o, const char *vf, const iovm_vfnet_config *cfg, unsigned mask, iovm_error *err);

/* snapshot.c: m is a message allocated beforehand (or NULL). */
void snapshot_publish(ops *o, iovmd_msg *m);
void snapshot_publish_vms(ops *o, iovmd_msg *m);
json_object *snapshot_vf_json(ops *o, const iovm_vfnet_config *cfg, const iovm_vf *vf);
json_object *snapshot_pf_json(ops *o, const iovm_pf *p, const iovm_vfnet_config *cfgs, int ncfg,
			      bool with_vfs);
json_object *snapshot_vm_json(ops *o, vmrec *v);

/* naming.c */
int naming_resolve_vf(ops *o, const char *name, iovm_vf *ret, iovm_error *err);
bool naming_vf_taken(ops *o, const char *vf);
iovm_vf_driver_kind naming_driver_kind(const char *driver);
int naming_assigned_vf_of_pf(ops *o, const char *pf, iovm_store_assignment *ret);
/* A VF of pf that a VM shares (host driver + macvtap): 1 and *ret, else 0. */
int naming_shared_vf_of_pf(ops *o, const char *pf, iovm_store_share *ret);

/* cmd.c */
void ops_run_job(ops *o, const iovmd_job *j);

/* cmd-*.c: each returns the reply's "return" object, or NULL and err. */
json_object *cmd_set_vfs(ops *o, const iovm_api_request *q, iovm_error *err);
/* The settings stored with vf-set, applied to the PF's VFs 0..num_vfs-1
 * (those of VFs beyond are kept for when it has them again). */
int cmd_apply_vf_configs(ops *o, const char *pf, unsigned num_vfs, iovm_error *err);
/* cmd-live.c: pf-set-vfs with VMs holding VFs of the PF (docs/resize.md);
 * want is the new desired state, before the old one (NULL: none). */
json_object *cmd_set_vfs_live(ops *o, const iovm_api_request *q, const iovm_store_pf *want,
			      const iovm_store_pf *before, iovm_error *err);
/* Recovery: finishes an open live set-vfs intent forward. */
void live_recover(ops *o, const iovm_store_intent *in);
json_object *cmd_vf_set(ops *o, const iovm_api_request *q, iovm_error *err);
json_object *cmd_vm_add(ops *o, const iovm_api_request *q, iovm_error *err);

/* migrate.c: following a migration into a VM registered as incoming. */
const char *mig_state_to_string(mig_state s);
mig_state mig_next(mig_state s, const char *event, const char *status);  /* pure */
int migrate_plan(ops *o, vmrec *dst, const char *src_name, iovm_error *err);
/* One VF of src that would follow it: a failover primary, its port, pair,
 * PF and settings as QEMU and the PF show them. */
int migrate_plan_vf(ops *o, vmrec *src, const iovm_store_assignment *a, mig_vf *ret, iovm_error *err);
void migrate_events_on(ops *o, vmrec *v);  /* QEMU's MIGRATION events */
void migrate_watch(ops *o, vmrec *v);   /* on each (re)connect */
void migrate_follow(ops *o, vmrec *v);  /* after its events were read */
/* migrate-out.c: the source's VFs out before its migration (the explicit
 * failover variant), and back if it does not complete. */
json_object *cmd_migrate_prepare(ops *o, const iovm_api_request *q, iovm_error *err);
json_object *cmd_migrate_abort(ops *o, const iovm_api_request *q, iovm_error *err);
bool migrate_out_ended(const char *event, const char *status);   /* pure */
void migrate_out_follow(ops *o, vmrec *v);     /* after its events were read */
void migrate_out_recover(ops *o);              /* start-up, before the holders */
bool migrate_out_holds(ops *o, const char *vm, const char *vf);
void migrate_out_lost(ops *o, vmrec *v);       /* its QEMU is gone: the VFs are reclaimed */
/* migrate-link.c: the incoming link in the store, and what a restarted
 * iovmd makes of it. */
mig_state mig_state_from_string(const char *s);   /* MIG_NONE if unknown */
/* VF plugged into v as a failover primary: the settings of f->net in mask
 * first, then device_add as devid on f's port, paired with f's standby;
 * with keep_present, a device devid still in the guest is left as it is. */
int migrate_plug_primary(ops *o, vmrec *v, const char *vf, const char *devid, const iovm_store_incoming_vf *f,
			 unsigned mask, bool keep_present, int timeout_ms, iovm_error *err);
int migrate_save(ops *o, vmrec *v, iovm_error *err);
void migrate_load(ops *o, vmrec *v);              /* before its first connect */
void migrate_settle(ops *o, vmrec *v);            /* on each connect: what its QEMU reports */
void migrate_recover(ops *o);                     /* after recovery */
mig_state mig_settle(mig_state s, const char *run, const char *status);   /* pure */
json_object *cmd_vm_remove(ops *o, const iovm_api_request *q, iovm_error *err);
json_object *cmd_attach(ops *o, const iovm_api_request *q, iovm_error *err);
int attach_reserve(ops *o, vmrec *v, const iovm_api_request *q, const iovm_vfnet_config *cfg, unsigned mask,
		   iovm_vf *ret_vf, char *ret_devid, size_t n, int64_t *ret_id, iovm_error *err);
json_object *cmd_detach(ops *o, const iovm_api_request *q, iovm_error *err);

/* rebalance.c */
void rebalance_run(ops *o);

/* recovery.c */
int recover(ops *o, iovm_error *err);

/* kernel.c. kernel_refresh reads what changed since the last call (every
 * PF the first time) into o->inv and kernel_pf(); true if it read anything.
 * kernel_due_ms: when a refresh is due (0: none is). */
int kernel_open(ops *o);
void kernel_close(ops *o);
int kernel_fd(ops *o);
void kernel_events(ops *o);
void kernel_poll(ops *o);
void kernel_invalidate(ops *o);
int64_t kernel_due_ms(ops *o);
bool kernel_refresh(ops *o);
size_t kernel_n_pfs(ops *o);
const iovm_pf *kernel_pf(ops *o, size_t i, const iovm_vfnet_config **ret_cfgs, int *ret_n_cfgs);

/* sample.c */
#define QGA_TIMEOUT_MS 20000
void sample_run(ops *o, bool close_window);
/* A fingerprint of the policy's per-VF counters (what the snapshot shows). */
uint64_t sample_signature(ops *o);
void sample_guest_answers(ops *o);
