/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Read commands, answered on the main thread from the inventory snapshot the
 * ops thread hands over after every change and every refresh interval: they
 * never touch sysfs, netlink or the database, so no number of clients can
 * slow the operations down or be slowed down by them.
 *
 * Snapshot: {"pfs":[PF + "vfs":[VF]], "vms":[VM], "assignments":N,
 *            "open_intents":N, "state":PATH, "taken_ms":T}
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shared/clock.h"
#include "shared/json-util.h"
#include "shared/util.h"
#include "iovmd/server.h"

static json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	return o && json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *member_str(json_object *o, const char *key)
{
	json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
}

json_object *iovmd_snapshot_find_pf(json_object *snap, const char *pf)
{
	json_object *pfs = member(snap, "pfs");

	for (size_t i = 0; pfs && i < json_object_array_length(pfs); i++) {
		json_object *p = json_object_array_get_idx(pfs, i);

		if (!strcmp(member_str(p, "pf"), pf) || (*member_str(p, "netdev") &&
							 !strcmp(member_str(p, "netdev"), pf)))
			return p;
	}
	return NULL;
}

json_object *iovmd_snapshot_find_vf(json_object *snap, const char *vf)
{
	char pf[IOVM_API_NAME_MAX];
	unsigned index;
	json_object *pfs = member(snap, "pfs");

	if (iovm_api_vf_split(vf, pf, sizeof(pf), &index) == 0) {
		json_object *vfs = member(iovmd_snapshot_find_pf(snap, pf), "vfs");

		for (size_t i = 0; vfs && i < json_object_array_length(vfs); i++) {
			json_object *v = json_object_array_get_idx(vfs, i);

			if ((unsigned)json_object_get_int(member(v, "index")) == index)
				return v;
		}
		return NULL;
	}
	for (size_t i = 0; pfs && i < json_object_array_length(pfs); i++) {
		json_object *vfs = member(json_object_array_get_idx(pfs, i), "vfs");

		for (size_t j = 0; vfs && j < json_object_array_length(vfs); j++) {
			json_object *v = json_object_array_get_idx(vfs, j);

			if (!strcmp(member_str(v, "vf"), vf))
				return v;
		}
	}
	return NULL;
}

/* The PF without its "vfs" member (references to the other members). */
static json_object *pf_summary(json_object *p)
{
	json_object *o = json_object_new_object();

	json_object_object_foreach(p, k, v)
		if (strcmp(k, "vfs"))
			json_object_object_add(o, k, json_object_get(v));
	return o;
}

/* Free and total VFs, counted once per snapshot (status is asked often:
 * a walk over every VF per request was a tenth of the main thread). */
static int count_free_vfs(iovmd *d, json_object *snap, int *ret_vfs)
{
	static uint64_t gen = UINT64_MAX;
	static int n_free, n_total;
	json_object *pfs = member(snap, "pfs");
	int n = 0, total = 0;

	if (gen == d->snapshot_gen) {
		*ret_vfs = n_total;
		return n_free;
	}
	for (size_t i = 0; pfs && i < json_object_array_length(pfs); i++) {
		json_object *vfs = member(json_object_array_get_idx(pfs, i), "vfs");

		for (size_t j = 0; vfs && j < json_object_array_length(vfs); j++) {
			total++;
			if (!strcmp(member_str(json_object_array_get_idx(vfs, j), "state"), "free"))
				n++;
		}
	}
	gen = d->snapshot_gen;
	n_free = n;
	n_total = total;
	*ret_vfs = total;
	return n;
}

static const char *json_text(json_object *v)
{
	return json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
}

/* The status members a snapshot fixes, printed once per snapshot as json-c
 * serialises them, around "clients" (which changes per request, like
 * uptime_s and inventory_age_ms): [0] from "pfs" to "clients", [1] from
 * "open_intents" to "inventory_age_ms". Building the reply as a json-c
 * object per request was 8% of the main thread under load. */
static int status_parts(iovmd *d, const char **ret)
{
	static uint64_t gen = UINT64_MAX;
	static char *parts[2];
	json_object *snap = d->snapshot;
	int vfs, free_vfs;

	if (gen != d->snapshot_gen) {
		_cleanup_json_ json_object *state = json_object_new_string(d->cfg.state_path);

		free(parts[0]);
		free(parts[1]);
		free_vfs = count_free_vfs(d, snap, &vfs);
		if (asprintf(&parts[0], ",\"pfs\":%d,\"vfs\":%d,\"vfs_free\":%d,\"vms\":%d,"
			     "\"assignments\":%s,\"clients\":",
			     (int)json_object_array_length(member(snap, "pfs")), vfs, free_vfs,
			     (int)json_object_array_length(member(snap, "vms")),
			     json_text(member(snap, "assignments"))) < 0)
			parts[0] = NULL;
		if (asprintf(&parts[1], ",\"open_intents\":%s,\"state\":%s,\"inventory_age_ms\":",
			     json_text(member(snap, "open_intents")), json_text(state)) < 0)
			parts[1] = NULL;
		if (!parts[0] || !parts[1]) {
			gen = UINT64_MAX;
			return -ENOMEM;
		}
		gen = d->snapshot_gen;
	}
	ret[0] = parts[0];
	ret[1] = parts[1];
	return 0;
}

int iovmd_status_text(iovmd *d, char *buf, size_t n)
{
	const char *part[2];
	int64_t now = now_ms();
	int r;

	if (!d->snapshot)
		return -EAGAIN;
	r = status_parts(d, part);
	if (r < 0)
		return r;
	r = snprintf(buf, n, "{\"version\":\"%s\",\"api\":%d,\"uptime_s\":%" PRId64 "%s%d%s%" PRId64 "}",
		     IOVMD_VERSION, IOVM_API_VERSION, (int64_t)((now - d->started_ms) / 1000), part[0],
		     (int)d->n_clients, part[1],
		     (int64_t)(now - json_object_get_int64(member(d->snapshot, "taken_ms"))));
	return r < 0 ? -EIO : r;
}

/* What a show command found (a new reference), or -ENODEV naming it:
 * "KIND NAME: no such WHAT". */
static json_object *shown(json_object *found, iovm_error *err, const char *kind, const char *name,
			  const char *what)
{
	if (!found) {
		iovm_error_set(err, -ENODEV, "%s %s: no such %s", kind, name, what);
		return NULL;
	}
	return json_object_get(found);
}

json_object *iovmd_read_command(iovmd *d, const iovm_api_request *r, iovm_error *err)
{
	json_object *snap = d->snapshot, *o;

	if (!snap) {
		iovm_error_set(err, -EAGAIN, "the inventory is not ready yet");
		return NULL;
	}
	switch (r->cmd) {
	case IOVM_API_QUERY_COMMANDS:
		o = json_object_new_array();
		for (int c = 0; c < _IOVM_API_CMD_MAX; c++) {
			json_object *e = json_object_new_object();

			json_object_object_add(e, "name", json_object_new_string(iovm_api_cmd_to_string(c)));
			json_object_array_add(o, e);
		}
		return o;
	case IOVM_API_STATUS: {
		int n = iovmd_status_text(d, NULL, 0);
		_cleanup_free_ char *buf = n < 0 ? NULL : malloc((size_t)n + 1);

		if (buf)
			n = iovmd_status_text(d, buf, (size_t)n + 1);
		o = n < 0 || !buf ? NULL : json_tokener_parse(buf);
		if (!o)
			iovm_error_set(err, n < 0 ? n : -EIO, "status: cannot build the reply");
		return o;
	}
	case IOVM_API_PF_LIST: {
		json_object *pfs = member(snap, "pfs");

		o = json_object_new_array();
		for (size_t i = 0; pfs && i < json_object_array_length(pfs); i++)
			json_object_array_add(o, pf_summary(json_object_array_get_idx(pfs, i)));
		return o;
	}
	case IOVM_API_PF_SHOW:
		return shown(iovmd_snapshot_find_pf(snap, r->pf), err, "pf", r->pf, "SR-IOV PF");
	case IOVM_API_VF_LIST: {
		json_object *pfs = member(snap, "pfs");

		if (r->pf[0] && !iovmd_snapshot_find_pf(snap, r->pf)) {
			iovm_error_set(err, -ENODEV, "pf %s: no such SR-IOV PF", r->pf);
			return NULL;
		}
		o = json_object_new_array();
		for (size_t i = 0; pfs && i < json_object_array_length(pfs); i++) {
			json_object *p = json_object_array_get_idx(pfs, i), *vfs = member(p, "vfs");

			if (r->pf[0] && p != iovmd_snapshot_find_pf(snap, r->pf))
				continue;
			for (size_t j = 0; vfs && j < json_object_array_length(vfs); j++)
				json_object_array_add(o, json_object_get(json_object_array_get_idx(vfs, j)));
		}
		return o;
	}
	case IOVM_API_VF_SHOW:
		return shown(iovmd_snapshot_find_vf(snap, r->vf), err, "vf", r->vf, "VF");
	case IOVM_API_VM_LIST:
		return json_object_get(member(snap, "vms"));
	default:
		iovm_error_set(err, -EINVAL, "%s: not a read command", iovm_api_cmd_to_string(r->cmd));
		return NULL;
	}
}
