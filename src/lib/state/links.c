/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The links of a migration: the incoming link of a VM registered as a
 * migration's destination (table vm_incoming, schema 4: its source, the
 * migration's state and the source's VFs that follow the guest) and the
 * outgoing link of a VM whose VFs iovmd took out before its migration
 * (table vm_outgoing, schema 5). Both keep their VFs as a JSON array. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lib/state/store-internal.h"
#include "shared/json-util.h"
#include "shared/util.h"

#define NET_TEXT_MAX 256

static const char *const states[] = { "waiting", "active", "resumed", "done", "failed" };
static const char *const out_states[] = { "unplugging", "prepared" };

static bool valid_state(const char *state, const char *const *names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(state, names[i]))
			return true;
	return false;
}

static int add_vf(json_object *arr, const iovm_store_incoming_vf *f, iovm_error *err)
{
	_cleanup_json_ json_object *o = json_object_new_object();
	char net[NET_TEXT_MAX];
	int r;

	if (!o)
		return iovm_error_set(err, -ENOMEM, "out of memory");
	if (iovm_vfnet_config_format(&f->net, net, sizeof(net)) < 0)
		return iovm_error_set(err, -EINVAL, "vf %s: its settings do not format", f->src_vf);
	r = store_json_add_str(o, "src_vf", f->src_vf, sizeof(f->src_vf), true, err);
	if (r >= 0)
		r = store_json_add_str(o, "pf", f->pf, sizeof(f->pf), true, err);
	if (r >= 0)
		r = store_json_add_str(o, "port", f->port, sizeof(f->port), false, err);
	if (r >= 0)
		r = store_json_add_str(o, "pair", f->pair, sizeof(f->pair), true, err);
	if (r >= 0)
		r = store_json_add_str(o, "net", net, sizeof(net), false, err);
	if (r < 0)
		return r;
	json_object_array_add(arr, TAKE_PTR(o));
	return 0;
}

static int encode_vfs(const iovm_store_incoming_vf *vfs, size_t n, char **ret, iovm_error *err)
{
	_cleanup_json_ json_object *arr = json_object_new_array();
	const char *text;
	int r = 0;

	if (!arr)
		return iovm_error_set(err, -ENOMEM, "out of memory");
	if (n > IOVM_STORE_INCOMING_VFS_MAX)
		return iovm_error_set(err, -EINVAL, "%zu VFs to follow, at most %d", n, IOVM_STORE_INCOMING_VFS_MAX);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = add_vf(arr, &vfs[i], err);
	if (r < 0)
		return r;
	text = json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	*ret = text ? strdup(text) : NULL;
	return *ret ? 0 : iovm_error_set(err, -ENOMEM, "out of memory");
}

static int get_vf(json_object *o, iovm_store_incoming_vf *f, iovm_error *err)
{
	char net[NET_TEXT_MAX];
	int r;

	if (!json_object_is_type(o, json_type_object))
		return iovm_error_set(err, -EBADMSG, "a VF to follow is not an object");
	r = store_json_get_str(o, "src_vf", true, f->src_vf, sizeof(f->src_vf), err);
	if (r >= 0)
		r = store_json_get_str(o, "pf", true, f->pf, sizeof(f->pf), err);
	if (r >= 0)
		r = store_json_get_str(o, "port", false, f->port, sizeof(f->port), err);
	if (r >= 0)
		r = store_json_get_str(o, "pair", true, f->pair, sizeof(f->pair), err);
	if (r >= 0)
		r = store_json_get_str(o, "net", false, net, sizeof(net), err);
	if (r >= 0 && iovm_vfnet_config_parse(net, &f->net, NULL) < 0)
		r = iovm_error_set(err, -EBADMSG, "vf %s: member \"net\" does not parse", f->src_vf);
	return r;
}

static int decode_vfs(const char *text, iovm_store_incoming_vf *vfs, size_t *ret_n, iovm_error *err)
{
	_cleanup_json_ json_object *arr = NULL;
	size_t n;
	int r;

	r = store_json_parse(text, json_type_array, &arr, err);
	if (r < 0)
		return r;
	n = json_object_array_length(arr);
	if (n > IOVM_STORE_INCOMING_VFS_MAX)
		return iovm_error_set(err, -EBADMSG, "%zu VFs to follow, at most %d", n, IOVM_STORE_INCOMING_VFS_MAX);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = get_vf(json_object_array_get_idx(arr, i), &vfs[i], err);
	if (r >= 0)
		*ret_n = n;
	return r;
}

int iovm_store_incoming_put(iovm_store *s, const iovm_store_incoming *in, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *vfs = NULL;
	int r;

	if (!s || !in || !store_valid_str(in->vm, sizeof(in->vm)))
		return iovm_error_set(err, -EINVAL, "incoming link: invalid arguments");
	if (!store_valid_str(in->source, sizeof(in->source)))
		return iovm_error_set(err, -EINVAL, "vm %s: incoming link: source VM missing or too long", in->vm);
	if (!valid_state(in->state, states, ELEMENTSOF(states)))
		return iovm_error_set(err, -EINVAL, "vm %s: incoming link: unknown state \"%.*s\"", in->vm,
				      (int)sizeof(in->state), in->state);
	r = encode_vfs(in->vfs, in->n_vfs, &vfs, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: incoming link", in->vm);
	r = store_prepare(s, "INSERT INTO vm_incoming (vm, source, state, vfs, updated) VALUES (?, ?, ?, ?, ?) "
			     "ON CONFLICT (vm) DO UPDATE SET source = excluded.source, state = excluded.state, "
			     "vfs = excluded.vfs, updated = excluded.updated", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, in->vm, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, in->source, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, in->state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, vfs, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, store_now());
	r = store_step_done(s, st, err, "saving its incoming link");
	if (r == -ENOENT)
		return iovm_error_set(err, -ENOENT, "vm %s: not registered; cannot save its incoming link", in->vm);
	return r < 0 ? iovm_error_prefix(err, "vm %s", in->vm) : 0;
}

/* A row with its VFs as stored, decoded after the statement. */
typedef struct incoming_row {
	iovm_store_incoming in;
	char vfs[IOVM_STORE_ARGS_MAX];
} incoming_row;

static void incoming_row_fill(sqlite3_stmt *st, void *elem)
{
	incoming_row *row = elem;

	store_column_text(st, 0, row->in.vm, sizeof(row->in.vm));
	store_column_text(st, 1, row->in.source, sizeof(row->in.source));
	store_column_text(st, 2, row->in.state, sizeof(row->in.state));
	store_column_text(st, 3, row->vfs, sizeof(row->vfs));
	row->in.updated = sqlite3_column_int64(st, 4);
}

int iovm_store_incoming_get(iovm_store *s, const char *vm, iovm_store_incoming *ret, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ incoming_row *row = NULL;
	int r;

	if (!s || !ret || !store_valid_str(vm, IOVM_STORE_NAME_MAX))
		return iovm_error_set(err, -EINVAL, "incoming link: invalid arguments");
	row = calloc(1, sizeof(*row));
	if (!row)
		return iovm_error_set(err, -ENOMEM, "out of memory");
	r = store_prepare(s, "SELECT vm, source, state, vfs, updated FROM vm_incoming WHERE vm = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, vm, -1, SQLITE_STATIC);
	r = store_get_one(s, st, incoming_row_fill, row, sizeof(*row), err, "incoming link of vm", vm);
	if (r < 0)
		return r;
	r = decode_vfs(row->vfs, row->in.vfs, &row->in.n_vfs, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: stored incoming link unreadable", vm);
	*ret = row->in;
	return 0;
}

int iovm_store_outgoing_put(iovm_store *s, const iovm_store_outgoing *out, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ char *vfs = NULL;
	int r;

	if (!s || !out || !store_valid_str(out->vm, sizeof(out->vm)))
		return iovm_error_set(err, -EINVAL, "outgoing link: invalid arguments");
	if (!valid_state(out->state, out_states, ELEMENTSOF(out_states)))
		return iovm_error_set(err, -EINVAL, "vm %s: outgoing link: unknown state \"%.*s\"", out->vm,
				      (int)sizeof(out->state), out->state);
	r = encode_vfs(out->vfs, out->n_vfs, &vfs, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: outgoing link", out->vm);
	r = store_prepare(s, "INSERT INTO vm_outgoing (vm, state, vfs, updated) VALUES (?, ?, ?, ?) "
			     "ON CONFLICT (vm) DO UPDATE SET state = excluded.state, vfs = excluded.vfs, "
			     "updated = excluded.updated", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, out->vm, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, out->state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, vfs, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, store_now());
	r = store_step_done(s, st, err, "saving its outgoing link");
	if (r == -ENOENT)
		return iovm_error_set(err, -ENOENT, "vm %s: not registered; cannot save its outgoing link", out->vm);
	return r < 0 ? iovm_error_prefix(err, "vm %s", out->vm) : 0;
}

typedef struct outgoing_row {
	iovm_store_outgoing out;
	char vfs[IOVM_STORE_ARGS_MAX];
} outgoing_row;

static void outgoing_row_fill(sqlite3_stmt *st, void *elem)
{
	outgoing_row *row = elem;

	store_column_text(st, 0, row->out.vm, sizeof(row->out.vm));
	store_column_text(st, 1, row->out.state, sizeof(row->out.state));
	store_column_text(st, 2, row->vfs, sizeof(row->vfs));
	row->out.updated = sqlite3_column_int64(st, 3);
}

#define OUTGOING_SELECT "SELECT vm, state, vfs, updated FROM vm_outgoing"

int iovm_store_outgoing_get(iovm_store *s, const char *vm, iovm_store_outgoing *ret, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ outgoing_row *row = NULL;
	int r;

	if (!s || !ret || !store_valid_str(vm, IOVM_STORE_NAME_MAX))
		return iovm_error_set(err, -EINVAL, "outgoing link: invalid arguments");
	row = calloc(1, sizeof(*row));
	if (!row)
		return iovm_error_set(err, -ENOMEM, "out of memory");
	r = store_prepare(s, OUTGOING_SELECT " WHERE vm = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, vm, -1, SQLITE_STATIC);
	r = store_get_one(s, st, outgoing_row_fill, row, sizeof(*row), err, "outgoing link of vm", vm);
	if (r < 0)
		return r;
	r = decode_vfs(row->vfs, row->out.vfs, &row->out.n_vfs, err);
	if (r < 0)
		return iovm_error_prefix(err, "vm %s: stored outgoing link unreadable", vm);
	*ret = row->out;
	return 0;
}

int iovm_store_outgoing_list(iovm_store *s, iovm_store_outgoing **ret, size_t *ret_n, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	_cleanup_free_ outgoing_row *rows = NULL;
	_cleanup_free_ iovm_store_outgoing *outs = NULL;
	size_t n = 0;
	int r;

	if (!s || !ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "outgoing links: invalid arguments");
	r = store_prepare(s, OUTGOING_SELECT " ORDER BY vm", &st, err);
	if (r < 0)
		return r;
	r = store_list(s, st, sizeof(*rows), outgoing_row_fill, (void **)&rows, &n, err, "outgoing links");
	if (r < 0)
		return r;
	outs = calloc(n ? n : 1, sizeof(*outs));
	if (!outs)
		return iovm_error_set(err, -ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		outs[i] = rows[i].out;
		r = decode_vfs(rows[i].vfs, outs[i].vfs, &outs[i].n_vfs, err);
		if (r < 0)
			return iovm_error_prefix(err, "vm %s: stored outgoing link unreadable", outs[i].vm);
	}
	*ret = TAKE_PTR(outs);
	*ret_n = n;
	return 0;
}

int iovm_store_outgoing_delete(iovm_store *s, const char *vm, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s || !store_valid_str(vm, IOVM_STORE_NAME_MAX))
		return iovm_error_set(err, -EINVAL, "outgoing link: invalid arguments");
	r = store_prepare(s, "DELETE FROM vm_outgoing WHERE vm = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, vm, -1, SQLITE_STATIC);
	r = store_step_done(s, st, err, "deleting its outgoing link");
	return r < 0 ? iovm_error_prefix(err, "vm %s", vm) : 0;
}
