/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Who holds a VF is recorded once, in the store (docs/iovmd.md, "Who holds
 * a VF"). The two in-memory views follow it from here:
 *
 *   store --views_sync()--> the VF pool of libiovm's VM layer
 *                       \-> the allocation policy's holds (mirror.c)
 *
 * and what the VM layer does to its pool as QEMU answers (a device gone,
 * a VF given back) is written to the store in one place, views_record().
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/vfnet.h"
#include "iovmd/ops.h"
#include "shared/util.h"

/* One use per state. RESERVED has nothing in QEMU yet, but the VF is
 * taken all the same. A VF waiting to be given back (RELEASE_PENDING) is
 * only given back once every process, QEMU included, has let go of it. */
iovm_vf_use views_use_of(iovm_store_assign_state st)
{
	switch (st) {
	case IOVM_STORE_RESERVED:
	case IOVM_STORE_ATTACHING:
		return IOVM_VF_ATTACHING;
	case IOVM_STORE_ATTACHED:
		return IOVM_VF_IN_USE;
	case IOVM_STORE_DETACHING:
		return IOVM_VF_RELEASE_PENDING;
	case IOVM_STORE_RELEASE_PENDING:
		return IOVM_VF_RECLAIM;
	}
	assert(!"unknown assignment state");
	return IOVM_VF_RECLAIM;
}

/* The original driver and VF settings, as saved when it was taken. */
static void fill_saved(ops *o, iovm_vf_entry *e)
{
	iovm_store_vf_saved saved;

	e->orig_driver[0] = e->saved_net[0] = '\0';
	if (iovm_store_vf_saved_get(o->store, e->vf, &saved, NULL) < 0)
		return;
	snprintf(e->orig_driver, sizeof(e->orig_driver), "%s", saved.driver);
	if (saved.cfg.present)
		iovm_vfnet_config_format(&saved.cfg, e->saved_net, sizeof(e->saved_net));
}

static bool listed(const iovm_store_assignment *as, size_t n, const char *vf)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(as[i].vf, vf))
			return true;
	return false;
}

/* The pool as the store says: one entry per assignment, none for a VF
 * without one. An entry keeps what only QEMU knows (the port it put the
 * device in) while its holder and device stay the same. Only between
 * commands: a command's own VM-layer calls change the pool as they go. */
static int derive_pool(ops *o, iovm_error *err)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	size_t n = 0;
	int r;

	r = iovm_store_assignment_list(o->store, NULL, &as, &n, err);
	if (r < 0)
		return r;
	for (size_t i = 0; i < iovm_vf_pool_size(o->pool);) {
		if (listed(as, n, iovm_vf_pool_at(o->pool, i)->vf)) {
			i++;
			continue;
		}
		/* Removing it moves the next entry to i. */
		r = iovm_vf_pool_set(o->pool, iovm_vf_pool_at(o->pool, i)->vf, IOVM_VF_FREE);
		assert(r >= 0);
	}
	for (size_t i = 0; i < n; i++) {
		iovm_vf_entry *e = iovm_vf_pool_get(o->pool, as[i].vf);
		bool same = e && !strcmp(e->vm, as[i].vm) && !strcmp(e->devid, as[i].devid);

		if (e && !same)
			iovm_vf_pool_set(o->pool, as[i].vf, IOVM_VF_FREE);
		if (!same) {
			r = iovm_vf_pool_reserve(o->pool, as[i].vf, as[i].vm, err);
			if (r < 0)
				return r;
			e = iovm_vf_pool_get(o->pool, as[i].vf);
			snprintf(e->devid, sizeof(e->devid), "%s", as[i].devid);
			fill_saved(o, e);
		}
		e->use = views_use_of(as[i].state);
	}
	return 0;
}

void views_sync_pool(ops *o)
{
	iovm_error err = {};

	if (derive_pool(o, &err) < 0)
		log_warning(err.code, "pool: following the store: %s", err.msg);
}

void views_sync(ops *o, bool force)
{
	if (!force && iovm_store_changes(o->store) == o->views_seen)
		return;
	views_sync_pool(o);
	mirror_sync_holders(o);
	o->views_seen = iovm_store_changes(o->store);
}

/* What the VM layer did to vf's pool entry, recorded on its assignment a:
 * an entry gone means QEMU let go and the VF was given back; one waiting
 * for QEMU or its guest is release-pending (a detach under way stays
 * detaching). Attaching and attached are for the command that does it to
 * record, so a row being attached is left alone unless `ended` (that
 * command is over). Returns true if the VF is still held. */
bool views_record(ops *o, const iovm_store_assignment *a, bool ended, json_object *released)
{
	iovm_vf_entry *e = iovm_vf_pool_get(o->pool, a->vf);

	if (!e || strcmp(e->vm, a->vm)) {
		if (!ended && (a->state == IOVM_STORE_RESERVED || a->state == IOVM_STORE_ATTACHING))
			return true;
		records_release(o, a->vf);
		log_info("vm %s: vf %s released", a->vm, a->vf);
		if (released)
			json_object_array_add(released, json_object_new_string(a->vf));
		return false;
	}
	if ((e->use == IOVM_VF_RECLAIM && a->state != IOVM_STORE_RELEASE_PENDING) ||
	    (e->use == IOVM_VF_RELEASE_PENDING && a->state != IOVM_STORE_DETACHING &&
	     a->state != IOVM_STORE_RELEASE_PENDING))
		records_set_assignment(o, a->vf, IOVM_STORE_RELEASE_PENDING, NULL);
	return true;
}
