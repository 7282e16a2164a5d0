/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Throughput sampling for the policy's window (docs/allocation.md,
 * "Throughput sampling"). A VF's byte counter comes from its host netdev
 * where it has one (a shared VF: the macvtaps sit on it), else from the
 * PF's per-VF statistics, and where those are zero (igb keeps none) from
 * the guest: the counters of the interface with the VF's MAC, through the
 * VM's guest agent. sample_run() collects such VFs as guest_q entries and
 * hands each VM's agent one question for all of its VFs (guest_counters)
 * to the gsample workers, so a slow or busy agent holds up no operation;
 * the answers come back through gsample_fd() (sample_guest_answers). A
 * failing agent is asked again after QGA_RETRY_MS; its VFs get no sample
 * meanwhile.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/vfnet.h"
#include "iovmd/ops.h"
#include "shared/clock.h"
#include "shared/util.h"

#define QGA_RETRY_MS 10000
#define QGA_MIN_INTERVAL_MS 2000

typedef struct guest_q {
	vmrec *v;
	const char *vf;
	char mac[18];
} guest_q;

static void sample_one(ops *o, const char *vf, uint64_t bytes)
{
	iovm_error err = {};

	if (iovm_policy_sample(o->pol, vf, bytes, &err) < 0)
		log_debug("vf %s: sample not taken: %s", vf, err.msg);
}

/* rx + tx bytes of the VF's host netdev. */
static int vf_counter(ops *o, const iovm_vf *vf, uint64_t *ret)
{
	uint64_t sum = 0;

	if (!vf->netdev[0])
		return -ENODATA;
	for (int k = 0; k < 2; k++) {
		_cleanup_fclose_ FILE *f = NULL;
		unsigned long long v = 0;
		char path[512];

		snprintf(path, sizeof(path), "%s/class/net/%s/statistics/%s", o->d->cfg.sysfs_root, vf->netdev,
			 k ? "tx_bytes" : "rx_bytes");
		f = fopen(path, "re");
		if (!f || fscanf(f, "%llu", &v) != 1)
			return -EIO;
		sum += v;
	}
	*ret = sum;
	return 0;
}

/* The VM that holds VF exclusively and has an agent, and the VF's MAC:
 * then VF is queued in *q (grown as needed) and 0 is returned; -ENODATA:
 * no agent, no MAC or not an exclusive VF in a VM. */
static int guest_counter_queue(ops *o, const iovm_vf *vf, const iovm_vfnet_config *cfg, guest_q **q,
			       size_t *n)
{
	static const uint8_t zero[6];
	vmrec *v = NULL;
	guest_q *nq;

	if (!(cfg->present & IOVM_VFNET_MAC) || !memcmp(cfg->mac, zero, 6))
		return -ENODATA;
	for (size_t i = 0; i < o->n_as && !v; i++)
		if (!strcmp(o->as[i].vf, vf->addr) && o->as[i].state == IOVM_STORE_ATTACHED)
			v = vms_find(o, o->as[i].vm);
	if (!v || !v->info.qga[0])
		return -ENODATA;
	nq = reallocarray(*q, *n + 1, sizeof(**q));
	if (!nq)
		return -ENOMEM;
	*q = nq;
	nq[*n] = (guest_q){ .v = v, .vf = vf->addr };
	iovm_mac_format(cfg->mac, nq[*n].mac);
	(*n)++;
	return 0;
}

/* One VM's question: its queued VFs and their MACs. */
static void guest_ask(ops *o, vmrec *v, const guest_q *q, size_t n, size_t m)
{
	_cleanup_free_ const char **vfs = calloc(m, sizeof(*vfs)), **macs = calloc(m, sizeof(*macs));
	int r;

	if (!vfs || !macs)
		return;
	m = 0;
	for (size_t i = 0; i < n; i++)
		if (q[i].v == v) {
			vfs[m] = q[i].vf;
			macs[m++] = q[i].mac;
		}
	r = gsample_ask(o->gs, v->info.name, v->info.qga, m, vfs, macs);
	if (r < 0)
		log_debug("vm %s: no question for the guest agent: %s", v->info.name, strerror(-r));
}

/* One guest-network-get-interfaces per VM for all of its queued VFs, unless
 * the VM's last question is still pending or failed too recently. */
static void guest_counters(ops *o, const guest_q *q, size_t n)
{
	if (!o->gs)
		return;
	for (vmrec *v = o->vms; v; v = v->next) {
		size_t m = 0;

		for (size_t i = 0; i < n; i++)
			m += q[i].v == v;
		if (!m || now_ms() < v->qga_next_try_ms || gsample_pending(o->gs, v->info.name))
			continue;
		guest_ask(o, v, q, n, m);
		/* At most one question per QGA_MIN_INTERVAL_MS: the counters
		 * are cumulative, so fewer samples lose nothing, and the agent
		 * (one client at a time) stays free for others. */
		v->qga_next_try_ms = now_ms() + QGA_MIN_INTERVAL_MS;
	}
}

/* VF is still attached to VM (an answer can outlive the assignment it was
 * asked for; a count from another guest must not land on the VF). */
static bool vf_in_vm(const ops *o, const char *vf, const char *vm)
{
	for (size_t i = 0; i < o->n_as; i++)
		if (!strcmp(o->as[i].vf, vf) && !strcmp(o->as[i].vm, vm) && o->as[i].state == IOVM_STORE_ATTACHED)
			return true;
	return false;
}

/* A failed question: asked again after QGA_RETRY_MS, logged once. */
static void guest_failed(vmrec *v, const gsample_q *a)
{
	v->qga_next_try_ms = now_ms() + QGA_RETRY_MS;
	if (!v->qga_warned)
		log_warning(a->r, "vm %s: no counters from the guest agent (asking again every %d s): %s",
			    v->info.name, QGA_RETRY_MS / 1000, a->err);
	v->qga_warned = true;
}

static void guest_answer(ops *o, vmrec *v, const gsample_q *a)
{
	if (v->qga_warned)
		log_info("vm %s: counters from the guest agent again", v->info.name);
	v->qga_warned = false;
	for (size_t k = 0; k < a->n; k++) {
		if (a->status[k] < 0) {
			/* The guest has no such interface (yet), or no
			 * statistics: no sample rather than a zero that would
			 * look like a counter reset. */
			log_debug("vm %s: vf %s: the guest agent has no counters for MAC %s: %s", v->info.name,
				  a->vf[k], a->mac[k], strerror(-a->status[k]));
			continue;
		}
		if (!vf_in_vm(o, a->vf[k], v->info.name))
			continue;
		log_debug("vm %s: vf %s: %llu bytes from the guest agent (interface %s)", v->info.name, a->vf[k],
			  (unsigned long long)a->bytes[k], a->mac[k]);
		sample_one(o, a->vf[k], a->bytes[k]);
	}
}

/* The agents' answers so far, into the policy's counters. */
void sample_guest_answers(ops *o)
{
	gsample_q *all = gsample_take(o->gs);

	for (gsample_q *a = all; a; a = a->next) {
		vmrec *v = vms_find(o, a->vm);

		if (!v)
			continue;       /* removed meanwhile */
		if (a->r < 0)
			guest_failed(v, a);
		else
			guest_answer(o, v, a);
	}
	gsample_q_free(all);
}

/* The VFs of one PF, inv[i] to inv[end - 1], without a host netdev: the
 * PF's per-VF counters, one request; where those are zero, the guest's
 * (queued in *gq). */
static void sample_pf_counters(ops *o, iovm_vfnet *nl, size_t i, size_t end, unsigned nvf, guest_q **gq,
			       size_t *ngq)
{
	_cleanup_free_ iovm_vfnet_stats *st = calloc(nvf, sizeof(*st));
	_cleanup_free_ iovm_vfnet_config *cf = calloc(nvf, sizeof(*cf));
	int m;

	if (!st || !cf)
		return;
	/* By the PF's netdev: a lookup by address would read sriov_numvfs
	 * through a deadline worker, a fork per PF per sample. */
	m = iovm_vfnet_get_all_netdev(nl, o->inv[i].pf_netdev, cf, st, nvf, NULL);
	for (size_t k = i; m > 0 && k < end; k++) {
		const iovm_vf *vf = &o->inv[k];
		uint64_t c;

		if (vf->netdev[0] || (int)vf->index >= m)
			continue;
		c = st[vf->index].rx_bytes + st[vf->index].tx_bytes;
		/* Zero here and the guest counts: its sample comes from
		 * guest_counters. */
		if (c == 0 && guest_counter_queue(o, vf, &cf[vf->index], gq, ngq) == 0)
			continue;
		sample_one(o, vf->addr, c);
	}
}

/* One PF's VFs, from inv[i]; returns where the next PF's begin. */
static size_t sample_pf(ops *o, iovm_vfnet *nl, size_t i, guest_q **gq, size_t *ngq)
{
	unsigned nvf = 0;
	bool need_pf = false;
	size_t end;

	for (end = i; end < o->n_inv && !strcmp(o->inv[end].pf_addr, o->inv[i].pf_addr); end++) {
		uint64_t c;

		if (vf_counter(o, &o->inv[end], &c) == 0)
			sample_one(o, o->inv[end].addr, c);
		else
			need_pf = true;
		nvf = o->inv[end].index + 1 > nvf ? o->inv[end].index + 1 : nvf;
	}
	if (need_pf && nl && o->inv[i].pf_netdev[0])
		sample_pf_counters(o, nl, i, end, nvf, gq, ngq);
	return end;
}

void sample_run(ops *o, bool close_window)
{
	_cleanup_free_ guest_q *gq = NULL;
	iovm_vfnet *nl = NULL;
	iovm_error err = {};
	size_t ngq = 0;

	if (iovm_vfnet_open(o->inv_host, &nl, NULL) < 0)
		nl = NULL;
	/* The inventory is sorted by PF: one group of VFs per PF. */
	for (size_t i = 0; i < o->n_inv;)
		i = sample_pf(o, nl, i, &gq, &ngq);
	iovm_vfnet_close(nl);
	sample_guest_answers(o);
	guest_counters(o, gq, ngq);
	if (close_window && iovm_policy_window_reset(o->pol, now_nsec(), &err) < 0)
		log_warning(err.code, "policy: closing the throughput window: %s", err.msg);
}

uint64_t sample_signature(ops *o)
{
	uint64_t sig = 0xcbf29ce484222325ull;

	for (size_t i = 0; i < o->n_inv; i++) {
		iovm_policy_vf_info pi;

		if (iovm_policy_vf_get(o->pol, o->inv[i].addr, &pi, NULL) < 0)
			continue;
		sig = (sig ^ pi.throughput_bps) * 0x100000001b3ull;
		sig = (sig ^ pi.window_bytes) * 0x100000001b3ull;
		sig = (sig ^ pi.total_bytes) * 0x100000001b3ull;
		sig = (sig ^ pi.users) * 0x100000001b3ull;
	}
	return sig;
}
