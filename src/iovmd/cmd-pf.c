/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* pf-set-vfs: a PF's VF count and driver, as desired state (re-applied at
 * start-up, docs/iovmd.md recovery rule 3) and in the kernel. Journaled:
 * intent -> numvfs -> done. With VMs holding VFs of the PF: cmd-live.c. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovm/vfnet.h"
#include "iovmd/crash.h"
#include "iovmd/ops.h"
#include "shared/util.h"

/* Applies the desired VF configs of a PF (after its VFs were created). */
int cmd_apply_vf_configs(ops *o, const char *pf, unsigned num_vfs, iovm_error *err)
{
	_cleanup_free_ iovm_store_vf_config *cs = NULL;
	iovm_vfnet *nl = NULL;
	size_t n = 0;
	int r;

	r = iovm_store_vf_config_list(o->store, pf, &cs, &n, err);
	if (r < 0 || n == 0)
		return r < 0 ? r : 0;
	r = iovm_vfnet_open(o->host, &nl, err);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		/* Kept for when the PF has that VF again. */
		if (cs[i].vf >= num_vfs)
			continue;
		r = iovm_vfnet_set(nl, pf, cs[i].vf, &cs[i].cfg, cs[i].cfg.present, err);
	}
	iovm_vfnet_close(nl);
	return r;
}

struct set_vfs_record {
	const iovm_store_pf *want;
	iovm_store_intent_args args;
	char object[IOVM_STORE_OBJECT_MAX];
	int64_t *ret_id;
};

static int write_set_vfs(iovm_store *s, void *userdata, iovm_error *err)
{
	const struct set_vfs_record *w = userdata;
	int r = iovm_store_pf_put(s, w->want, err);

	return r < 0 ? r : iovm_store_intent_begin(s, IOVM_INTENT_SET_VFS, w->object, &w->args, w->ret_id, err);
}

/* The desired state and the intent, in one transaction. */
static int journal_set_vfs(ops *o, const iovm_store_pf *want, int64_t *ret_id, iovm_error *err)
{
	struct set_vfs_record w = { .want = want, .args = { .count = want->num_vfs }, .ret_id = ret_id };

	snprintf(w.args.driver, sizeof(w.args.driver), "%s", want->driver);
	snprintf(w.object, sizeof(w.object), "pf %s", want->pf);
	return iovm_store_transaction(o->store, write_set_vfs, &w, err);
}

/* Nothing changed in the kernel (in-use and range checks come first) or
 * it timed out: the old desired state stands. */
static void undo_set_vfs(ops *o, const char *pf, const iovm_store_pf *before, int64_t id)
{
	iovm_error err = {};
	int r;

	r = before ? iovm_store_pf_put(o->store, before, &err) : iovm_store_pf_delete(o->store, pf, &err);
	if (r < 0)
		log_error(err.code, "pf %s: putting back the desired state: %s", pf, err.msg);
	records_finish(o, id, IOVM_INTENT_ROLLED_BACK);
}

static const char *driver_name(iovm_api_driver d, const iovm_store_pf *before)
{
	return d == IOVM_API_DRIVER_HOST ? "host" : d == IOVM_API_DRIVER_VFIO ? "vfio-pci" :
	       before ? before->driver : "vfio-pci";
}

json_object *cmd_set_vfs(ops *o, const iovm_api_request *q, iovm_error *err)
{
	char pf[IOVM_PCI_ADDR_MAX], text[96];
	iovm_store_pf want = {}, before = {};
	iovm_store_assignment a;
	iovm_store_share sh;
	bool had_before;
	json_object *ev;
	iovm_pf info;
	int64_t id = 0;

	if (iovm_pf_resolve(o->host, q->pf, pf, sizeof(pf), err) < 0)
		return NULL;
	had_before = iovm_store_pf_get(o->store, pf, &before, NULL) == 0;
	snprintf(want.pf, sizeof(want.pf), "%s", pf);
	want.num_vfs = q->count;
	snprintf(want.driver, sizeof(want.driver), "%s", driver_name(q->driver, had_before ? &before : NULL));
	/* VMs hold VFs of the PF: they keep them through the re-create. */
	if (naming_assigned_vf_of_pf(o, pf, &a) || naming_shared_vf_of_pf(o, pf, &sh))
		return cmd_set_vfs_live(o, q, &want, had_before ? &before : NULL, err);
	if (journal_set_vfs(o, &want, &id, err) < 0)
		return NULL;
	o->intent = id;
	iovmd_crash_point("set-vfs", "intent");
	snprintf(text, sizeof(text), "setting %s to %u VFs (%s)", q->pf, q->count, want.driver);
	ops_progress(o, text, 0, 2);
	if (iovm_pf_set_numvfs(o->host, pf, q->count, naming_driver_kind(want.driver), 0, err) < 0) {
		undo_set_vfs(o, pf, had_before ? &before : NULL, id);
		return NULL;
	}
	records_step(o, id, "numvfs");
	iovmd_crash_point("set-vfs", "numvfs");
	ops_progress(o, "applying VF settings", 1, 2);
	if (cmd_apply_vf_configs(o, pf, q->count, err) < 0) {
		records_finish(o, id, IOVM_INTENT_DONE);
		iovm_error_prefix(err, "pf %s: %u VFs created, but applying their saved settings failed",
				  q->pf, q->count);
		return NULL;
	}
	records_finish(o, id, IOVM_INTENT_DONE);
	iovmd_crash_point("set-vfs", "done");
	ev = obj_s(obj_s(json_object_new_object(), "pf", pf), "driver", want.driver);
	json_object_object_add(ev, "num_vfs", json_object_new_int((int)q->count));
	ops_emit(o, "VFS_CHANGED", ev);
	if (iovm_pf_get(o->host, pf, &info, err) < 0)
		return NULL;
	return snapshot_pf_json(o, &info, NULL, -1, false);
}
