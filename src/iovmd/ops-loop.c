/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ops thread: start-up (host, store, VMs, recovery, the policy), then a
 * poll loop over the job queue, the guest agents' answers and every
 * connected VM's QMP socket, with the refresh tick and the throughput
 * sampling on timers. ops.h lists the modules it drives.
 */
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iovmd/ops-loop.h"
#include "iovmd/ops.h"
#include "shared/clock.h"
#include "shared/util.h"

#define MAX_POLLED_VMS 256

static int open_host(ops *o, const char *root)
{
	int r;

	r = iovm_host_new(root, &o->host);
	if (r >= 0)
		r = iovm_host_new(root, &o->inv_host);
	if (r >= 0)
		r = iovm_host_set_lock_probe(o->inv_host, false);
	if (r < 0)
		log_error(r, "sysfs root %s", root);
	return r;
}

static int open_state(ops *o, const iovmd_config *cfg, iovm_store_vm **ret_vms, size_t *ret_n)
{
	iovm_error err = {};
	int r;

	r = iovm_store_open(cfg->state_path, &o->store, &err);
	if (r >= 0)
		r = iovm_vf_pool_new(&o->pool);
	if (r >= 0)
		r = iovm_policy_new(&(iovm_policy_config){ .algo = IOVM_POLICY_ALGO_INDEXED,
							    .max_users = cfg->max_users,
							    .rebalance = cfg->rebalance }, now_nsec(), &o->pol, &err);
	if (r >= 0)
		r = iovm_store_vm_list(o->store, ret_vms, ret_n, &err);
	if (r < 0)
		log_error(r, "state: %s", err.msg);
	return r;
}

/* The registered VMs, connected where QEMU runs. */
static int load_vms(ops *o, const iovm_store_vm *vms, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		iovm_error cerr = {};
		vmrec *v = vms_add(o, &vms[i]);

		if (!v) {
			log_error(-ENOMEM, "vm %s: out of memory", vms[i].name);
			return -ENOMEM;
		}
		migrate_load(o, v);
		if (vms_connect(o, v, &cerr) < 0)
			log_info("vm %s: not reachable at start: %s", v->info.name, cerr.msg);
	}
	return 0;
}

int ops_init(ops *o, iovmd *d)
{
	_cleanup_free_ iovm_store_vm *vms = NULL;
	iovm_error err = {};
	size_t n = 0;
	int r;

	assert(o && d);
	*o = (ops){ .d = d, .op = "" };
	r = open_host(o, d->cfg.sysfs_root);
	if (r >= 0)
		r = kernel_open(o);
	if (r >= 0)
		r = open_state(o, &d->cfg, &vms, &n);
	if (r >= 0)
		r = load_vms(o, vms, n);
	if (r < 0)
		return r;
	/* The pool as the store left it: recovery works on the VFs from
	 * there. */
	views_sync_pool(o);
	if (d->cfg.recover) {
		r = recover(o, &err);
		if (r < 0) {
			log_error(r, "recovery failed: %s", err.msg);
			return r;
		}
	}
	/* The policy learns the VFs, then who holds what. Recovery may have
	 * changed the host: everything is read now. */
	kernel_invalidate(o);
	snapshot_publish(o, NULL);
	views_sync(o, true);
	/* Migrations into this host's VMs go on from where their QEMU is,
	 * with the VFs and the policy known: a VF may be reserved. */
	migrate_recover(o);
	r = gsample_new(QGA_TIMEOUT_MS, &o->gs);
	if (r < 0)
		log_warning(r, "no threads for the guest agents: exclusive VFs on igb will show no throughput");
	snapshot_publish(o, NULL);
	return 0;
}

void ops_fini(ops *o)
{
	/* Stops the questions under way (each polls the cancel fd). */
	gsample_free(o->gs);
	kernel_close(o);
	vms_free_all(o);
	iovm_vf_pool_free(o->pool);
	iovm_policy_free(o->pol);
	free(o->known);
	free(o->as);
	free(o->shs);
	free(o->inv);
	iovm_store_close(o->store);
	iovm_host_free(o->host);
	iovm_host_free(o->inv_host);
	*o = (ops){};
}

/* A VF waiting to be given back whose VM is not connected (it went away
 * while we were not watching): given back once nobody holds it. True if
 * one was. */
static bool reclaim_orphans(ops *o)
{
	for (size_t i = 0; i < iovm_vf_pool_size(o->pool); i++) {
		iovm_vf_entry *e = iovm_vf_pool_at(o->pool, i);
		vmrec *v = vms_find(o, e->vm);
		char vf[IOVM_STORE_ADDR_MAX];
		iovm_error err = {};

		if (e->use != IOVM_VF_RECLAIM || (v && v->vm))
			continue;
		snprintf(vf, sizeof(vf), "%s", e->vf);
		/* Still held: tried again on the next tick. */
		if (records_restore_vf(o, vf, &err) == 0) {
			views_sync(o, false);
			kernel_invalidate(o);
			return true;   /* the pool changed under the loop */
		}
	}
	return false;
}

/* Finished intents beyond --journal-keep: one bounded DELETE per tick,
 * nothing per request (docs/state.md). */
static void prune_journal(ops *o)
{
	iovm_error err = {};
	int r;

	r = iovm_store_intent_prune_keep(o->store, o->d->cfg.journal_keep, &err);
	if (r < 0)
		log_warning(r, "journal: %s", err.msg);
	else if (r > 0)
		log_debug("journal: pruned %d finished intents (keeping %u)", r, o->d->cfg.journal_keep);
}

/* Every refresh interval: the journal pruned, VMs reconnected, late
 * releases taken in, and the snapshot published again if any of that, a
 * fixture's change or a counter changed it. The kernel's own changes come
 * as they happen (kernel.c); an idle tick reads nothing from the kernel
 * and starts no process. */
void ops_tick(ops *o)
{
	int64_t now = now_ms();

	prune_journal(o);
	for (vmrec *v = o->vms; v; v = v->next) {
		if (v->vm) {
			/* VFs of a VM whose guest released them late, or that
			 * are waiting for QEMU to let go. */
			if (iovm_vm_reclaim(v->vm, 0, NULL) > 0) {
				vms_sync(o, v, NULL);
				o->stale = true;
			}
			/* A failed migration's event read while a command
			 * waited on this QEMU. */
			migrate_out_follow(o, v);
			continue;
		}
		if (now >= v->next_try_ms && vms_connect(o, v, NULL) == 0) {
			iovm_vm_reclaim(v->vm, 0, NULL);
			vms_sync(o, v, NULL);
			o->stale = true;
		}
	}
	if (reclaim_orphans(o))
		o->stale = true;
	kernel_poll(o);
	if (o->stale || kernel_due_ms(o))
		snapshot_publish(o, NULL);
}

/* The poll set: 0 the job queue, 1 the agents' answers, 2 the host
 * monitor, then the VMs' QMP sockets (who[k] is the VM of pfd[k]). */
#define POLL_FIXED 3
typedef struct pollset {
	struct pollfd pfd[POLL_FIXED + MAX_POLLED_VMS];
	vmrec *who[POLL_FIXED + MAX_POLLED_VMS];
	nfds_t n;
} pollset;

static void pollset_fill(ops *o, pollset *ps)
{
	ps->pfd[0] = (struct pollfd){ .fd = o->d->jobs.efd, .events = POLLIN };
	/* -1: no workers, ignored by poll */
	ps->pfd[1] = (struct pollfd){ .fd = o->gs ? gsample_fd(o->gs) : -1, .events = POLLIN };
	ps->pfd[2] = (struct pollfd){ .fd = kernel_fd(o), .events = POLLIN };
	ps->n = POLL_FIXED;
	for (vmrec *v = o->vms; v && ps->n < ELEMENTSOF(ps->pfd); v = v->next)
		if (v->vm) {
			ps->who[ps->n] = v;
			ps->pfd[ps->n++] = (struct pollfd){ .fd = iovm_qmp_get_fd(iovm_vm_get_qmp(v->vm)),
							    .events = POLLIN };
		}
}

/* What a VM's QEMU said: events, or its connection closed. */
static void vm_events(ops *o, vmrec *v)
{
	iovm_error err = {};

	if (iovm_vm_process(v->vm, &err) == -ECONNRESET) {
		if (v->incoming_from[0])
			v->mig = mig_next(v->mig, "SHUTDOWN", NULL);
		vms_lost(o, v, err.msg[0] ? err.msg : "QMP connection closed");
	} else
		vms_sync(o, v, NULL);
	migrate_follow(o, v);
	snapshot_publish(o, NULL);
}

static void run_jobs(ops *o)
{
	iovmd_job *j = iovmd_queue_pop_all(&o->d->jobs);

	while (j) {
		iovmd_job *next = j->next;

		if (!o->d->stopping && j->client)
			ops_run_job(o, j);
		iovm_api_request_done(&j->req);
		free(j);
		j = next;
	}
}

typedef struct timers {
	int64_t tick, sample, window;
} timers;

static void timers_run(ops *o, timers *t)
{
	const iovmd_config *cfg = &o->d->cfg;

	if (now_ms() >= t->sample) {
		bool close_window = now_ms() >= t->window;
		uint64_t sig;

		sample_run(o, close_window);
		if (close_window)
			t->window = now_ms() + cfg->window_ms;
		t->sample = now_ms() + cfg->sample_interval_ms;
		/* The snapshot shows the counters: published again when they
		 * moved (at the tick), not when nothing flows. */
		sig = sample_signature(o);
		if (sig != o->counters_sig)
			o->stale = true;
		o->counters_sig = sig;
	}
	if (now_ms() >= t->tick) {
		ops_tick(o);
		t->tick = now_ms() + cfg->refresh_interval_ms;
	} else if (kernel_due_ms(o) && now_ms() >= kernel_due_ms(o)) {
		/* The kernel changed (a monitor event, settled): published now,
		 * not at the next tick. */
		snapshot_publish(o, NULL);
	}
}

/* One turn: wait for something until the next timer, handle it. */
static int loop_once(ops *o, timers *t)
{
	int64_t due = kernel_due_ms(o), next = t->tick < t->sample ? t->tick : t->sample;
	int64_t wait = (due && due < next ? due : next) - now_ms();
	pollset ps;
	int r;

	pollset_fill(o, &ps);
	r = poll(ps.pfd, ps.n, wait < 0 ? 0 : (int)wait);
	if (r < 0 && errno != EINTR) {
		r = -errno;
		log_error(r, "poll");
		return r;
	}
	if (r > 0 && ps.pfd[1].revents)
		sample_guest_answers(o);
	if (r > 0 && ps.pfd[2].revents)
		kernel_events(o);
	for (nfds_t i = POLL_FIXED; r > 0 && i < ps.n; i++)
		if (ps.pfd[i].revents)
			vm_events(o, ps.who[i]);
	if (r > 0 && ps.pfd[0].revents)
		run_jobs(o);
	/* At most one move per turn of the loop: jobs and VM events come in
	 * between. */
	views_sync(o, false);
	if (!o->d->stopping)
		rebalance_run(o);
	timers_run(o, t);
	return 0;
}

static void loop(ops *o)
{
	const iovmd_config *cfg = &o->d->cfg;
	timers t = {
		.tick = now_ms() + cfg->refresh_interval_ms,
		.sample = now_ms() + cfg->sample_interval_ms,
		.window = now_ms() + cfg->window_ms,
	};

	while (!o->d->stopping)
		if (loop_once(o, &t) < 0)
			break;
}

static void ready(iovmd *d, uint64_t result)
{
	if (write(d->ready_efd, &result, sizeof(result)) != sizeof(result))
		log_error(errno, "cannot tell the main thread that start-up %s", result == 1 ? "is done" : "failed");
}

static void *thread_main(void *userdata)
{
	iovmd *d = userdata;
	ops o;

	if (ops_init(&o, d) < 0) {
		ready(d, 2);
	} else {
		ready(d, 1);
		loop(&o);
	}
	ops_fini(&o);
	return NULL;
}

int iovmd_ops_start(iovmd *d, pthread_t *ret)
{
	if (!d || !ret)
		return -EINVAL;
	return -pthread_create(ret, NULL, thread_main, d);
}
