/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The intent journal: one row per multi-step operation, opened before its
 * first side effect, stepped as it goes, finished (done or rolled back) at
 * the end, so recovery after a crash knows what was under way. See
 * docs/state.md. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lib/state/store-internal.h"
#include "shared/util.h"

/* ---- enum names (as stored in the database) ------------------------------------------ */

static const char *const kind_names[] = {
	[IOVM_INTENT_CREATE_VFS] = "create-vfs",
	[IOVM_INTENT_ATTACH] = "attach",
	[IOVM_INTENT_DETACH] = "detach",
	[IOVM_INTENT_SET_VFS] = "set-vfs",
};
static const char *const status_names[] = {
	[IOVM_INTENT_OPEN] = "open",
	[IOVM_INTENT_DONE] = "done",
	[IOVM_INTENT_ROLLED_BACK] = "rolled-back",
};

const char *iovm_store_intent_kind_to_string(iovm_store_intent_kind k)
{
	return (unsigned)k < ELEMENTSOF(kind_names) ? kind_names[k] : NULL;
}

const char *iovm_store_intent_status_to_string(iovm_store_intent_status st)
{
	return (unsigned)st < ELEMENTSOF(status_names) ? status_names[st] : NULL;
}

static int name_lookup(const char *const *names, size_t n, const char *s)
{
	for (size_t i = 0; s && i < n; i++)
		if (names[i] && strcmp(names[i], s) == 0)
			return (int)i;
	return -1;
}

/* ---- intent journal -------------------------------------------------------------------- */

/* Decodes the args column; a row that does not decode says why in
 * args_error (a list shows every row: get refuses such a row). */
static void intent_row_args(sqlite3_stmt *st, int col, iovm_store_intent *it)
{
	iovm_error e = {};

	if (intent_args_decode(it->kind, (const char *)sqlite3_column_text(st, col), &it->args, &e) < 0)
		snprintf(it->args_error, sizeof(it->args_error), "%s", e.msg);
}

static void intent_row(sqlite3_stmt *st, void *elem)
{
	iovm_store_intent *it = elem;
	int k, status;

	it->id = sqlite3_column_int64(st, 0);
	k = name_lookup(kind_names, ELEMENTSOF(kind_names), (const char *)sqlite3_column_text(st, 1));
	it->kind = k < 0 ? IOVM_INTENT_CREATE_VFS : (iovm_store_intent_kind)k;
	store_column_text(st, 2, it->object, sizeof(it->object));
	intent_row_args(st, 3, it);
	store_column_text(st, 4, it->step, sizeof(it->step));
	status = name_lookup(status_names, ELEMENTSOF(status_names), (const char *)sqlite3_column_text(st, 5));
	it->status = status < 0 ? IOVM_INTENT_OPEN : (iovm_store_intent_status)status;
	it->started = sqlite3_column_int64(st, 6);
	it->finished = sqlite3_column_int64(st, 7);   /* NULL reads as 0 */
}

#define INTENT_COLUMNS "id, kind, object, args, step, status, started, finished"

int iovm_store_intent_begin(iovm_store *s, iovm_store_intent_kind kind, const char *object,
			    const iovm_store_intent_args *args, int64_t *ret_id, iovm_error *err)
{
	_cleanup_free_ char *json = NULL;   /* freed after st is finalized */
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	const char *kname = iovm_store_intent_kind_to_string(kind);
	int r;

	if (!s || !args || !ret_id)
		return iovm_error_set(err, -EINVAL, "intent: invalid arguments");
	if (!kname)
		return iovm_error_set(err, -EINVAL, "intent: unknown kind %d", (int)kind);
	if (!store_valid_str(object, IOVM_STORE_OBJECT_MAX))
		return iovm_error_set(err, -EINVAL, "intent %s: object missing or longer than %d bytes",
				      kname, IOVM_STORE_OBJECT_MAX - 1);
	r = intent_args_encode(kind, args, &json, err);
	if (r < 0)
		return iovm_error_prefix(err, "intent %s %s: arguments", kname, object);

	r = store_prepare(s, "INSERT INTO intent (kind, object, args, started) VALUES (?, ?, ?, ?)", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, kname, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, object, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, store_now());
	r = store_step_done(s, st, err, "recording the intent");
	if (r < 0)
		return iovm_error_prefix(err, "intent %s %s", kname, object);
	*ret_id = sqlite3_last_insert_rowid(s->db);
	return 0;
}

/* One intent as stored, arguments decoded or args_error set. */
static int intent_read(iovm_store *s, int64_t id, iovm_store_intent *ret, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	r = store_prepare(s, "SELECT " INTENT_COLUMNS " FROM intent WHERE id = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, id);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return iovm_error_set(err, -ENOENT, "intent %lld: no such intent", (long long)id);
	if (rc != SQLITE_ROW)
		return store_fail(s, sqlite3_extended_errcode(s->db), err, "intent %lld: reading failed",
				  (long long)id);
	memset(ret, 0, sizeof(*ret));
	intent_row(st, ret);
	return 0;
}

/* Why an UPDATE of an open intent changed nothing: absent or closed. */
static int intent_not_open(iovm_store *s, int64_t id, iovm_error *err)
{
	iovm_store_intent it;
	int r;

	r = intent_read(s, id, &it, err);
	if (r < 0)
		return r;
	return iovm_error_set(err, -EALREADY, "intent %lld (%s %s): already %s", (long long)id,
			      kind_names[it.kind], it.object, status_names[it.status]);
}

int iovm_store_intent_step(iovm_store *s, int64_t id, const char *step, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s)
		return iovm_error_set(err, -EINVAL, "intent %lld: no store", (long long)id);
	if (!store_valid_str(step, IOVM_STORE_NAME_MAX))
		return iovm_error_set(err, -EINVAL, "intent %lld: step name missing or longer than %d bytes",
				      (long long)id, IOVM_STORE_NAME_MAX - 1);
	r = store_prepare(s, "UPDATE intent SET step = ? WHERE id = ? AND status = 'open'", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, step, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	r = store_step_done(s, st, err, "recording the step");
	if (r < 0)
		return iovm_error_prefix(err, "intent %lld step %s", (long long)id, step);
	return r == 0 ? intent_not_open(s, id, err) : 0;
}

int iovm_store_intent_finish(iovm_store *s, int64_t id, iovm_store_intent_status status, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s)
		return iovm_error_set(err, -EINVAL, "intent %lld: no store", (long long)id);
	if (status != IOVM_INTENT_DONE && status != IOVM_INTENT_ROLLED_BACK)
		return iovm_error_set(err, -EINVAL, "intent %lld: can only finish as done or rolled-back",
				      (long long)id);
	r = store_prepare(s, "UPDATE intent SET status = ?, finished = ? WHERE id = ? AND status = 'open'",
			  &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, status_names[status], -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, store_now());
	sqlite3_bind_int64(st, 3, id);
	r = store_step_done(s, st, err, "finishing");
	if (r < 0)
		return iovm_error_prefix(err, "intent %lld", (long long)id);
	return r == 0 ? intent_not_open(s, id, err) : 0;
}

int iovm_store_intent_get(iovm_store *s, int64_t id, iovm_store_intent *ret, iovm_error *err)
{
	iovm_store_intent it;
	int r;

	if (!s || !ret)
		return iovm_error_set(err, -EINVAL, "intent %lld: invalid arguments", (long long)id);
	r = intent_read(s, id, &it, err);
	if (r < 0)
		return r;
	if (it.args_error[0])
		return iovm_error_set(err, -EBADMSG, "intent %lld (%s %s): stored arguments unreadable: %s",
				      (long long)id, kind_names[it.kind], it.object, it.args_error);
	*ret = it;
	return 0;
}

int iovm_store_intent_list_open(iovm_store *s, iovm_store_intent **ret, size_t *ret_n, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s || !ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "intents: invalid arguments");
	r = store_prepare(s, "SELECT " INTENT_COLUMNS " FROM intent WHERE status = 'open' ORDER BY id",
			  &st, err);
	if (r < 0)
		return r;
	return store_list(s, st, sizeof(**ret), intent_row, (void **)ret, ret_n, err,
			  "listing open intents");
}

int iovm_store_intent_prune(iovm_store *s, int64_t finished_before, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s)
		return iovm_error_set(err, -EINVAL, "intents: no store");
	r = store_prepare(s, "DELETE FROM intent WHERE status != 'open' AND finished < ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, finished_before);
	return store_step_done(s, st, err, "pruning finished intents");
}

int iovm_store_intent_prune_keep(iovm_store *s, unsigned max_finished, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s)
		return iovm_error_set(err, -EINVAL, "intents: no store");
	/* The newest max_finished finished rows by id (the rowid, so both the
	 * subquery and the delete walk the table's own b-tree); when there are
	 * fewer, the subquery is NULL and nothing matches. */
	r = store_prepare(s, "DELETE FROM intent WHERE status != 'open' AND id <= "
			  "(SELECT id FROM intent WHERE status != 'open' ORDER BY id DESC LIMIT 1 OFFSET ?)",
			  &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, max_finished);
	return store_step_done(s, st, err, "pruning finished intents");
}
