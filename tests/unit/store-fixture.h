/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store tests' fixture: a fresh temporary directory with the path of a
 * database in it (not created), removed with all in it afterwards; and raw
 * SQL on the file, as another program (or an older iovm) would run it.
 * Include after cmocka.h. */
#pragma once

#include <ftw.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

typedef struct fixture {
	char dir[PATH_MAX];
	char db[PATH_MAX];
} fixture;

static int setup(void **state)
{
	const char *tmp = getenv("TMPDIR");
	fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "%s/test-store-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->db, sizeof(f->db), "%s/iovm.db", f->dir);
	*state = f;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	if (type == FTW_DP)
		chmod(path, 0700);
	return remove(path);
}

static int teardown(void **state)
{
	fixture *f = *state;

	chmod(f->dir, 0700);
	nftw(f->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

/* Runs SQL on the file directly, as another program (or an older iovm) would. */
static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *msg = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		fail_msg("raw sql failed: %s: %s", msg, sql);
	sqlite3_close(db);
}

