/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared by store.c (database, migrations, transactions), journal.c (intents),
 * records.c (desired state, VMs) and holders.c (assignments, shares, saved VF
 * settings). Not part of the public API. */
#pragma once

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>

#include "iovm/store.h"

struct iovm_store {
	sqlite3 *db;
	char *path;
	bool in_tx;     /* a caller's BEGIN IMMEDIATE is open */
};

static inline void sqlite3_finalizep(sqlite3_stmt **st)
{
	if (*st)
		sqlite3_finalize(*st);
}
#define _cleanup_stmt_ __attribute__((cleanup(sqlite3_finalizep)))

/* An SQLite result code as a negative errno (see store.h for the mapping). */
int store_errno(iovm_store *s, int rc);

/* Sets err to "<context>: <sqlite message> (state db <path>)" and returns
 * the mapped errno. */
int store_fail(iovm_store *s, int rc, iovm_error *err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

int store_prepare(iovm_store *s, const char *sql, sqlite3_stmt **ret, iovm_error *err);

/* Runs a statement that returns no rows to completion; returns the number
 * of rows it changed. */
int store_step_done(iovm_store *s, sqlite3_stmt *st, iovm_error *err, const char *what);

/* Fills a row of st into elem; used by store_list. */
typedef void (*store_row_fn)(sqlite3_stmt *st, void *elem);

/* Steps st to the end, building a calloc'ed array of elem_size records. */
int store_list(iovm_store *s, sqlite3_stmt *st, size_t elem_size, store_row_fn row,
	       void **ret, size_t *ret_n, iovm_error *err, const char *what);

/* Copies column col as text into buf (truncating; NULL becomes ""). */
void store_column_text(sqlite3_stmt *st, int col, char *buf, size_t n);

/* A string argument that must be non-empty and shorter than max. */
bool store_valid_str(const char *str, size_t max);

int64_t store_now(void);

/* ---- records.c: helpers for the typed records ---- */

/* A VF's network settings as nullable columns (store_cfg_bind/cfg_row). */
#define CFG_COLUMNS "mac, vlan, qos, rate, spoofchk, trust, link"
#define CFG_PARAMS "?, ?, ?, ?, ?, ?, ?"

/* The enum value of the column's text (from_string); dflt if unknown. */
int store_column_enum(sqlite3_stmt *st, int col, int (*from_string)(const char *s), int dflt);
int store_norm_addr(const char *what, const char *in, char ret[IOVM_STORE_ADDR_MAX], iovm_error *err);
int store_changed_or_enoent(int r, iovm_error *err, const char *what, const char *name);
int store_get_one(iovm_store *s, sqlite3_stmt *st, store_row_fn row, void *ret, size_t size,
		   iovm_error *err, const char *what, const char *name);
int store_cfg_check(const iovm_vfnet_config *c, const char *what, const char *name, iovm_error *err);
void store_cfg_bind(sqlite3_stmt *st, int i, const iovm_vfnet_config *c);
void store_cfg_row(sqlite3_stmt *st, int i, iovm_vfnet_config *c);
int store_assign_state_from_string(const char *s);   /* iovm_store_assign_state, or -EINVAL */
/* -EINVAL "<what>: invalid arguments" without s or obj; else in normalised
 * into addr (key_name names it in errors). */
int store_check_addr(iovm_store *s, const void *obj, const char *what, const char *key_name, const char *in,
		     char addr[IOVM_STORE_ADDR_MAX], iovm_error *err);
/* SELECT one row by the normalised PCI address in (sql has one "?"); -ENOENT
 * "<what> <address>: ..." if no row. */
int store_get_by_addr(iovm_store *s, const char *sql, store_row_fn row, void *ret, size_t size,
		      const char *key_name, const char *in, const char *what, iovm_error *err);
/* DELETE FROM table WHERE column = the normalised PCI address in; -ENOENT
 * "<what> <address>: ..." if no row. */
int store_delete_by_addr(iovm_store *s, const char *table, const char *column, const char *key_name,
			 const char *in, const char *what, iovm_error *err);

/* intent-args.c: an intent's arguments to and from the JSON object stored
 * in intent.args. encode: -EINVAL naming the member, *ret malloc'ed.
 * decode: -EBADMSG naming the member; ret untouched on failure. */
int intent_args_encode(iovm_store_intent_kind kind, const iovm_store_intent_args *a, char **ret,
		       iovm_error *err);
int intent_args_decode(iovm_store_intent_kind kind, const char *text, iovm_store_intent_args *ret,
		       iovm_error *err);

/* intent-args.c, also used by links.c: JSON members with the store's
 * rules. add: -EINVAL "member ... is missing/too long". get: -EBADMSG if
 * not a string or too long, or absent/empty and required (absent and
 * optional: ""). parse: the whole text as one value of the type. */
int store_json_add_str(json_object *o, const char *key, const char *v, size_t max, bool required,
		       iovm_error *err);
int store_json_get_str(json_object *o, const char *key, bool required, char *buf, size_t n, iovm_error *err);
int store_json_parse(const char *text, json_type type, json_object **ret, iovm_error *err);
