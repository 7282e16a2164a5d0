/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vf-set: a NIC VF's settings, applied through its PF and remembered as
 * desired (merged with what was desired before), so they are applied again
 * when the VFs are re-created (reboot, resize). */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovm/vfnet.h"
#include "iovmd/ops.h"

static int apply(ops *o, const iovm_vf *vf, const iovm_vfnet_config *cfg, iovm_error *err)
{
	iovm_vfnet *nl = NULL;
	int r;

	r = iovm_vfnet_open(o->host, &nl, err);
	if (r >= 0)
		r = iovm_vfnet_set(nl, vf->pf_addr, vf->index, cfg, cfg->present, err);
	iovm_vfnet_close(nl);
	return r;
}

/* What q sets, over what was desired before (c->cfg). */
static void merge(iovm_store_vf_config *c, const iovm_vfnet_config *q)
{
	unsigned keep = c->cfg.present & ~q->present;
	iovm_vfnet_config merged = *q;

	if (keep & IOVM_VFNET_MAC) memcpy(merged.mac, c->cfg.mac, 6);
	if (keep & IOVM_VFNET_VLAN) { merged.vlan = c->cfg.vlan; merged.qos = c->cfg.qos; }
	if (keep & IOVM_VFNET_RATE) merged.max_tx_rate = c->cfg.max_tx_rate;
	if (keep & IOVM_VFNET_SPOOFCHK) merged.spoofchk = c->cfg.spoofchk;
	if (keep & IOVM_VFNET_TRUST) merged.trust = c->cfg.trust;
	if (keep & IOVM_VFNET_LINK_STATE) merged.link_state = c->cfg.link_state;
	merged.present = q->present | c->cfg.present;
	c->cfg = merged;
}

/* A VF config needs its PF's desired state (docs/state.md): the PF as it
 * is, if none is desired yet. */
static int ensure_pf_desired(ops *o, const iovm_vf *vf, iovm_error *err)
{
	iovm_store_pf p = {};
	iovm_pf info;

	if (iovm_store_pf_get(o->store, vf->pf_addr, &p, NULL) == 0)
		return 0;
	memset(&p, 0, sizeof(p));
	snprintf(p.pf, sizeof(p.pf), "%s", vf->pf_addr);
	p.num_vfs = iovm_pf_get(o->host, vf->pf_addr, &info, NULL) == 0 ? info.num_vfs : vf->index + 1;
	snprintf(p.driver, sizeof(p.driver), "%s", !strcmp(vf->driver, "vfio-pci") ? "vfio-pci" : "host");
	return iovm_store_pf_put(o->store, &p, err);
}

static int remember(ops *o, const iovm_vf *vf, const iovm_vfnet_config *cfg, iovm_error *err)
{
	iovm_store_vf_config c = {};
	int r;

	if (iovm_store_vf_config_get(o->store, vf->pf_addr, vf->index, &c, NULL) < 0) {
		memset(&c, 0, sizeof(c));
		snprintf(c.pf, sizeof(c.pf), "%s", vf->pf_addr);
		c.vf = vf->index;
	}
	merge(&c, cfg);
	r = ensure_pf_desired(o, vf, err);
	if (r < 0)
		return r;
	return iovm_store_vf_config_put(o->store, &c, err);
}

/* The VF with its settings as the PF reports them now. */
static json_object *vf_now_json(ops *o, const iovm_vf *vf)
{
	iovm_vfnet_config now;
	iovm_vfnet *nl = NULL;
	bool have = iovm_vfnet_open(o->host, &nl, NULL) == 0 &&
		    iovm_vfnet_get(nl, vf->pf_addr, vf->index, &now, NULL) == 0;

	iovm_vfnet_close(nl);
	return snapshot_vf_json(o, have ? &now : NULL, vf);
}

json_object *cmd_vf_set(ops *o, const iovm_api_request *q, iovm_error *err)
{
	iovm_vf vf;

	if (naming_resolve_vf(o, q->vf, &vf, err) < 0)
		return NULL;
	if (!vf.pf_netdev[0]) {
		iovm_error_set(err, -EOPNOTSUPP, "vf %s: its PF %s has no network device; only NIC VFs "
			       "have settings", q->vf, vf.pf_addr);
		return NULL;
	}
	if (apply(o, &vf, &q->cfg, err) < 0 || remember(o, &vf, &q->cfg, err) < 0)
		return NULL;
	return vf_now_json(o, &vf);
}
