/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel's view (PFs, their VFs, the VFs' settings) as last read, kept
 * current by following the kernel rather than polling it: the host monitor
 * (uevents, rtnetlink) says which PCI device or netdev changed, and only
 * the PF it belongs to is read again. Reading a PF costs one deadline
 * worker (sriov_numvfs takes the device lock, docs/sriov.md); its VFs and
 * their settings cost none (plain sysfs reads, one rtnetlink request). So
 * an idle daemon reads nothing and starts no process.
 *
 * On a fixture tree there are no uevents: each tick compares the PFs'
 * iovm_pf_stamp() fingerprints (lstat only) instead.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/monitor.h"
#include "iovmd/ops.h"
#include "shared/clock.h"
#include "shared/util.h"

/* Events come in bursts (creating 7 VFs is ~30 uevents): read after the
 * burst, not once per event. */
#define SETTLE_MS 50

typedef struct kpf {
	iovm_pf pf;
	iovm_vf *vfs;
	size_t n_vfs;
	iovm_vfnet_config *cfgs;     /* by VF index */
	int n_cfgs;                  /* -1: unknown */
	uint64_t stamp;              /* fixture mode */
	bool dirty;                  /* read the PF and its VFs again */
	bool net_dirty;              /* read the VFs' settings and the link again */
} kpf;

struct kview {
	iovm_host_monitor *mon;      /* NULL on a fixture tree */
	kpf *pfs;
	size_t n;
	bool relist;                 /* the set of PFs may have changed */
	uint64_t dev_stamp;          /* fixture mode: the PCI device list */
	int64_t due_ms;              /* 0: nothing to read; else when to */
};

static void kpf_clear(kpf *p)
{
	free(p->vfs);
	free(p->cfgs);
	*p = (kpf){ .n_cfgs = -1 };
}

static void mark(kview *k, int64_t now)
{
	if (!k->due_ms)
		k->due_ms = now + SETTLE_MS;
}

int kernel_open(ops *o)
{
	iovm_error err = {};
	int r;

	o->kv = calloc(1, sizeof(*o->kv));
	if (!o->kv)
		return -ENOMEM;
	o->kv->relist = true;
	o->kv->due_ms = 1;
	r = iovm_host_monitor_new(o->inv_host, &o->kv->mon, &err);
	if (r == -EOPNOTSUPP)
		log_info("%s: no uevents on a fixture tree; its changes are seen by the refresh tick",
			 iovm_host_sysfs_root(o->inv_host));
	else if (r < 0)
		log_warning(r, "%s; the refresh tick re-reads the PFs instead", err.msg);
	else
		log_debug("following the kernel: uevents and rtnetlink link notifications");
	return 0;
}

void kernel_close(ops *o)
{
	if (!o->kv)
		return;
	iovm_host_monitor_free(o->kv->mon);
	for (size_t i = 0; i < o->kv->n; i++)
		kpf_clear(&o->kv->pfs[i]);
	free(o->kv->pfs);
	free(o->kv);
	o->kv = NULL;
}

int kernel_fd(ops *o)
{
	return o->kv && o->kv->mon ? iovm_host_monitor_fd(o->kv->mon) : -1;
}

int64_t kernel_due_ms(ops *o)
{
	return o->kv ? o->kv->due_ms : 0;
}

static kpf *by_pf(kview *k, const char *addr)
{
	for (size_t i = 0; i < k->n; i++)
		if (!strcmp(k->pfs[i].pf.addr, addr))
			return &k->pfs[i];
	return NULL;
}

static kpf *by_vf(kview *k, const char *addr)
{
	for (size_t i = 0; i < k->n; i++)
		for (size_t j = 0; j < k->pfs[i].n_vfs; j++)
			if (!strcmp(k->pfs[i].vfs[j].addr, addr))
				return &k->pfs[i];
	return NULL;
}

static kpf *by_netdev(kview *k, const char *name, bool *ret_is_pf)
{
	for (size_t i = 0; i < k->n; i++) {
		if (!strcmp(k->pfs[i].pf.netdev, name)) {
			*ret_is_pf = true;
			return &k->pfs[i];
		}
		for (size_t j = 0; j < k->pfs[i].n_vfs; j++)
			if (!strcmp(k->pfs[i].vfs[j].netdev, name)) {
				*ret_is_pf = false;
				return &k->pfs[i];
			}
	}
	return NULL;
}

/* A PCI device we do not know: a new VF (its PF is read again), a new PF
 * (the list is), or neither (nothing to do). */
static void unknown_pci(ops *o, const char *addr)
{
	kview *k = o->kv;
	iovm_vf vf;
	char pf[IOVM_PCI_ADDR_MAX];
	kpf *p;

	if (iovm_vf_get(o->inv_host, addr, &vf, NULL) == 0 && (p = by_pf(k, vf.pf_addr)))
		p->dirty = true;
	else if (iovm_pf_resolve(o->inv_host, addr, pf, sizeof(pf), NULL) == 0)
		k->relist = true;
}

static void on_change(const iovm_host_change *c, void *userdata)
{
	ops *o = userdata;
	kview *k = o->kv;
	bool is_pf = false;
	kpf *p;

	log_debug("kernel: %s %s %s%s%s", c->kind == IOVM_HOST_CHANGE_PCI ? "pci" :
		  c->kind == IOVM_HOST_CHANGE_NET ? "net" : "resync", iovm_host_action_to_string(c->action),
		  c->pci, c->pci[0] && c->netdev[0] ? " " : "", c->netdev);
	switch (c->kind) {
	case IOVM_HOST_CHANGE_RESYNC:
		k->relist = true;
		break;
	case IOVM_HOST_CHANGE_PCI:
		if ((p = by_pf(k, c->pci)) || (p = by_vf(k, c->pci)))
			p->dirty = true;
		else if (c->action != IOVM_HOST_ACTION_REMOVE)
			unknown_pci(o, c->pci);
		break;
	case IOVM_HOST_CHANGE_NET:
		if (c->pci[0] && ((p = by_pf(k, c->pci)) || (p = by_vf(k, c->pci))))
			p->dirty = true;        /* a netdev came, went or was renamed */
		else if ((p = by_netdev(k, c->netdev, &is_pf)))
			/* RTM_NEWLINK on a PF: a VF setting or its link; on a
			 * VF netdev: its name is all we show, and renames come
			 * as uevents */
			p->net_dirty |= is_pf || c->action != IOVM_HOST_ACTION_CHANGE;
		else
			return;
		break;
	}
	mark(k, now_ms());
}

void kernel_events(ops *o)
{
	int r;

	if (!o->kv || !o->kv->mon)
		return;
	r = iovm_host_monitor_process(o->kv->mon, on_change, o);
	if (r < 0) {
		log_warning(r, "host monitor failed; reading every PF again");
		o->kv->relist = true;
		mark(o->kv, now_ms());
	}
}

/* Fixture mode, each tick: which PFs' fingerprints moved. */
void kernel_poll(ops *o)
{
	kview *k = o->kv;
	uint64_t s;

	if (!k || k->mon)
		return;
	if (iovm_pf_stamp(o->inv_host, NULL, &s) == 0 && s != k->dev_stamp) {
		k->dev_stamp = s;
		k->relist = true;
	}
	for (size_t i = 0; i < k->n; i++)
		if (iovm_pf_stamp(o->inv_host, k->pfs[i].pf.addr, &s) < 0 || s != k->pfs[i].stamp)
			k->pfs[i].dirty = true;
	if (k->relist)
		mark(k, 0);
	for (size_t i = 0; i < k->n && !k->due_ms; i++)
		if (k->pfs[i].dirty)
			mark(k, 0);
}

void kernel_invalidate(ops *o)
{
	if (!o->kv)
		return;
	for (size_t i = 0; i < o->kv->n; i++)
		o->kv->pfs[i].dirty = true;
	mark(o->kv, 0);
}

static void read_settings(kpf *p, iovm_vfnet *nl)
{
	unsigned n = p->pf.num_vfs;

	free(p->cfgs);
	p->cfgs = NULL;
	p->n_cfgs = -1;
	if (!nl || !p->pf.netdev[0] || !n || !(p->cfgs = calloc(n, sizeof(*p->cfgs))))
		return;
	p->n_cfgs = iovm_vfnet_get_all_netdev(nl, p->pf.netdev, p->cfgs, NULL, n, NULL);
}

/* The PF's link state, by a plain read (no deadline worker). */
static void read_link(ops *o, kpf *p)
{
	_cleanup_fclose_ FILE *f = NULL;
	char path[PATH_MAX], state[sizeof(p->pf.operstate)] = "";

	if (!p->pf.netdev[0])
		return;
	snprintf(path, sizeof(path), "%s/class/net/%s/operstate", iovm_host_sysfs_root(o->inv_host),
		 p->pf.netdev);
	f = fopen(path, "re");
	if (!f || !fgets(state, sizeof(state), f))
		return;
	state[strcspn(state, "\n")] = '\0';
	memcpy(p->pf.operstate, state, sizeof(state));
}

static int read_pf(ops *o, kpf *p, iovm_vfnet *nl)
{
	iovm_error err = {};
	iovm_vf *vfs = NULL;
	size_t n = 0;
	int r;

	r = iovm_pf_get(o->inv_host, p->pf.addr, &p->pf, &err);
	if (r < 0) {
		log_warning(r, "inventory: %s", err.msg);
		return r;
	}
	if (iovm_vf_list(o->inv_host, p->pf.addr, &vfs, &n, &err) < 0)
		log_warning(err.code, "inventory: %s", err.msg);
	free(p->vfs);
	p->vfs = vfs;
	p->n_vfs = n;
	if (!o->kv->mon)
		(void)iovm_pf_stamp(o->inv_host, p->pf.addr, &p->stamp);
	read_settings(p, nl);
	return 0;
}

/* The PF list again: PFs kept are read again, new ones read, gone ones
 * dropped. */
static void relist(ops *o, iovm_vfnet *nl)
{
	kview *k = o->kv;
	_cleanup_free_ iovm_pf *pfs = NULL;
	iovm_error err = {};
	kpf *np;
	size_t n = 0;

	if (iovm_pf_list(o->inv_host, &pfs, &n, &err) < 0) {
		log_warning(err.code, "inventory: %s", err.msg);
		return;
	}
	np = calloc(n ? n : 1, sizeof(*np));
	if (!np)
		return;
	for (size_t i = 0; i < n; i++) {
		np[i] = (kpf){ .pf = pfs[i], .n_cfgs = -1 };
		if (iovm_vf_list(o->inv_host, pfs[i].addr, &np[i].vfs, &np[i].n_vfs, &err) < 0)
			log_warning(err.code, "inventory: %s", err.msg);
		if (!k->mon)
			(void)iovm_pf_stamp(o->inv_host, pfs[i].addr, &np[i].stamp);
		read_settings(&np[i], nl);
	}
	for (size_t i = 0; i < k->n; i++)
		kpf_clear(&k->pfs[i]);
	free(k->pfs);
	k->pfs = np;
	k->n = n;
	if (!k->mon)
		(void)iovm_pf_stamp(o->inv_host, NULL, &k->dev_stamp);
	k->relist = false;
}

/* o->inv: every PF's VFs, sorted by PF then index (the PFs are sorted). */
static void flatten(ops *o)
{
	kview *k = o->kv;
	size_t total = 0, at = 0;
	iovm_vf *all;

	for (size_t i = 0; i < k->n; i++)
		total += k->pfs[i].n_vfs;
	all = calloc(total ? total : 1, sizeof(*all));
	if (!all)
		return;
	for (size_t i = 0; i < k->n; i++) {
		if (k->pfs[i].n_vfs)
			memcpy(all + at, k->pfs[i].vfs, k->pfs[i].n_vfs * sizeof(*all));
		at += k->pfs[i].n_vfs;
	}
	free(o->inv);
	o->inv = all;
	o->n_inv = total;
	mirror_sync_vfs(o, all, total);
}

bool kernel_refresh(ops *o)
{
	kview *k = o->kv;
	iovm_vfnet *nl = NULL;
	bool changed = false;

	if (!k || !k->due_ms)
		return false;
	k->due_ms = 0;
	if (iovm_vfnet_open(o->inv_host, &nl, NULL) < 0)
		nl = NULL;
	if (k->relist) {
		relist(o, nl);
		changed = true;
	}
	for (size_t i = 0; i < k->n; i++) {
		kpf *p = &k->pfs[i];

		if (p->dirty) {
			if (read_pf(o, p, nl) == -ENODEV)
				k->relist = true;   /* gone: the next refresh drops it */
			changed = true;
		} else if (p->net_dirty) {
			read_link(o, p);
			read_settings(p, nl);
			changed = true;
		}
		p->dirty = p->net_dirty = false;
	}
	iovm_vfnet_close(nl);
	if (k->relist)
		mark(k, now_ms());
	if (changed)
		flatten(o);
	return changed;
}

size_t kernel_n_pfs(ops *o)
{
	return o->kv ? o->kv->n : 0;
}

const iovm_pf *kernel_pf(ops *o, size_t i, const iovm_vfnet_config **ret_cfgs, int *ret_n_cfgs)
{
	kpf *p = &o->kv->pfs[i];

	*ret_cfgs = p->cfgs;
	*ret_n_cfgs = p->n_cfgs;
	return &p->pf;
}
