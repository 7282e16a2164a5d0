/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The state store: opening the database, schema migrations, transactions
 * and error mapping. The typed records live in records.c, the intent journal
 * in journal.c. See docs/state.md. */
#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <json-c/json.h>

#include "lib/state/store-internal.h"
#include "shared/util.h"

/* "iovm" in ASCII, in the SQLite header, so a database of another program
 * is recognised and left alone. */
#define STORE_APPLICATION_ID 0x696f766d
/* How long a statement waits for another process's write lock; a daemon and
 * a CLI share the file, and their transactions are short. */
#define STORE_BUSY_TIMEOUT_MS 5000

/*
 * Migrations: migrations[i] takes the schema from version i to i + 1, each
 * in its own transaction together with the new user_version. Never edit a
 * step that has shipped; append a new one.
 */
/* A VF's network settings as nullable columns, in vf_config_desired and
 * vf_saved alike (the text is what shipped; see CFG_COLUMNS). */
#define CFG_COLUMNS_DDL                                                    \
	"  mac TEXT,"                                                      \
	"  vlan INTEGER CHECK (vlan BETWEEN 0 AND 4094),"                  \
	"  qos INTEGER CHECK (qos BETWEEN 0 AND 7),"                       \
	"  rate INTEGER CHECK (rate >= 0),"                                \
	"  spoofchk INTEGER CHECK (spoofchk IN (0, 1)),"                   \
	"  trust INTEGER CHECK (trust IN (0, 1)),"                         \
	"  link TEXT CHECK (link IN ('auto', 'enable', 'disable')),"

static const char *const migrations[] = {
	/* 0 -> 1: the schema as first designed. */
	"CREATE TABLE pf_desired ("
	"  pf TEXT PRIMARY KEY NOT NULL,"
	"  num_vfs INTEGER NOT NULL CHECK (num_vfs >= 0),"
	"  driver TEXT NOT NULL,"
	"  updated INTEGER NOT NULL);"
	"CREATE TABLE vf_config_desired ("
	"  pf TEXT NOT NULL REFERENCES pf_desired(pf) ON DELETE CASCADE,"
	"  vf INTEGER NOT NULL CHECK (vf >= 0),"
	CFG_COLUMNS_DDL
	"  updated INTEGER NOT NULL,"
	"  PRIMARY KEY (pf, vf));"
	"CREATE TABLE vm ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  qmp TEXT NOT NULL,"
	"  priority TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),"
	"  created INTEGER NOT NULL);"
	/* vf is the primary key: a VF has at most one holder, whatever the
	 * code above does. */
	"CREATE TABLE assignment ("
	"  vf TEXT PRIMARY KEY NOT NULL,"
	"  vm TEXT NOT NULL REFERENCES vm(name) ON DELETE RESTRICT,"
	"  mode TEXT NOT NULL CHECK (mode IN ('exclusive', 'shared')),"
	"  devid TEXT NOT NULL DEFAULT '',"
	"  state TEXT NOT NULL CHECK (state IN ('reserved', 'attaching', 'attached',"
	"                                       'detaching', 'release-pending')),"
	"  updated INTEGER NOT NULL);"
	"CREATE INDEX assignment_by_vm ON assignment(vm);"
	"CREATE TABLE vf_saved ("
	"  vf TEXT PRIMARY KEY NOT NULL,"
	"  pf TEXT NOT NULL,"
	"  vf_index INTEGER NOT NULL CHECK (vf_index >= 0),"
	"  driver TEXT NOT NULL DEFAULT '',"
	CFG_COLUMNS_DDL
	"  saved INTEGER NOT NULL);"
	/* AUTOINCREMENT: ids are never reused, so a stale id held by a
	 * crashed operation cannot name a newer intent. */
	"CREATE TABLE intent ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind TEXT NOT NULL CHECK (kind IN ('create-vfs', 'attach', 'detach', 'set-vfs')),"
	"  object TEXT NOT NULL,"
	"  args TEXT NOT NULL DEFAULT '{}',"
	"  step TEXT NOT NULL DEFAULT '',"
	"  status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'rolled-back')),"
	"  started INTEGER NOT NULL,"
	"  finished INTEGER);",

	/* 1 -> 2: the VM's NUMA node for placement, and a partial index so
	 * recovery finds open intents without scanning the history. */
	"ALTER TABLE vm ADD COLUMN numa_node INTEGER NOT NULL DEFAULT -1 CHECK (numa_node >= -1);"
	"CREATE INDEX intent_open ON intent(id) WHERE status = 'open';",

	/* 2 -> 3: shared VFs. A VF that stays on its host driver is
	 * used by several VMs, each through its own macvtap + virtio-net
	 * device: one row per (VF, VM). How many users a VF may have is
	 * policy, not schema. The triggers make "held exclusively and shared
	 * at once" impossible whatever the code above does; the UPDATE ones
	 * close the side doors (re-keying a row, turning a shared assignment
	 * exclusive). Their messages are literals; the C API replaces them
	 * with one naming the holders. And the VM's guest-agent socket,
	 * optional, for interface statistics. */
	"CREATE TABLE vf_share ("
	"  vf TEXT NOT NULL,"
	"  vm TEXT NOT NULL REFERENCES vm(name) ON DELETE RESTRICT,"
	"  devid TEXT NOT NULL DEFAULT '',"
	"  ifname TEXT NOT NULL DEFAULT '',"
	"  state TEXT NOT NULL CHECK (state IN ('reserved', 'attaching', 'attached',"
	"                                       'detaching', 'release-pending')),"
	"  updated INTEGER NOT NULL,"
	"  PRIMARY KEY (vf, vm));"
	"CREATE INDEX vf_share_by_vm ON vf_share(vm);"
	"CREATE TRIGGER vf_share_insert_not_exclusive BEFORE INSERT ON vf_share"
	"  WHEN EXISTS (SELECT 1 FROM assignment WHERE vf = NEW.vf AND mode = 'exclusive')"
	"  BEGIN SELECT RAISE(ABORT, 'vf is assigned exclusively; it cannot be shared'); END;"
	"CREATE TRIGGER vf_share_update_not_exclusive BEFORE UPDATE OF vf ON vf_share"
	"  WHEN EXISTS (SELECT 1 FROM assignment WHERE vf = NEW.vf AND mode = 'exclusive')"
	"  BEGIN SELECT RAISE(ABORT, 'vf is assigned exclusively; it cannot be shared'); END;"
	"CREATE TRIGGER assignment_insert_not_shared BEFORE INSERT ON assignment"
	"  WHEN NEW.mode = 'exclusive' AND EXISTS (SELECT 1 FROM vf_share WHERE vf = NEW.vf)"
	"  BEGIN SELECT RAISE(ABORT, 'vf is shared; it cannot be assigned exclusively'); END;"
	"CREATE TRIGGER assignment_update_not_shared BEFORE UPDATE OF vf, mode ON assignment"
	"  WHEN NEW.mode = 'exclusive' AND EXISTS (SELECT 1 FROM vf_share WHERE vf = NEW.vf)"
	"  BEGIN SELECT RAISE(ABORT, 'vf is shared; it cannot be assigned exclusively'); END;"
	"ALTER TABLE vm ADD COLUMN qga TEXT NOT NULL DEFAULT '';",

	/* 3 -> 4: the link of a VM registered as a migration's destination
	 * (docs/migration.md): its source, the migration's state and the VFs
	 * that follow the guest (a JSON array), so that a restarted iovmd
	 * goes on following it. Gone with its VM. */
	"CREATE TABLE vm_incoming ("
	"  vm TEXT PRIMARY KEY NOT NULL REFERENCES vm(name) ON DELETE CASCADE,"
	"  source TEXT NOT NULL,"
	"  state TEXT NOT NULL CHECK (state IN ('waiting', 'active', 'resumed', 'done', 'failed')),"
	"  vfs TEXT NOT NULL DEFAULT '[]',"
	"  updated INTEGER NOT NULL);",

	/* 4 -> 5: the outgoing link of a VM whose VFs iovmd took out before
	 * its migration (the explicit failover variant, docs/migration.md):
	 * what a destination and a give-back need, after the VFs left the
	 * guest and lost their MACs. Gone with its VM. */
	"CREATE TABLE vm_outgoing ("
	"  vm TEXT PRIMARY KEY NOT NULL REFERENCES vm(name) ON DELETE CASCADE,"
	"  state TEXT NOT NULL CHECK (state IN ('unplugging', 'prepared')),"
	"  vfs TEXT NOT NULL DEFAULT '[]',"
	"  updated INTEGER NOT NULL);",
};

_Static_assert(ELEMENTSOF(migrations) == IOVM_STORE_SCHEMA_VERSION,
	       "one migration step per schema version");

/* ---- helpers shared with store-objects.c ------------------------------------ */

int store_errno(iovm_store *s, int rc)
{
	int sys;

	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_FOREIGNKEY)
			return -ENOENT;
		/* Only the exclusive-vs-shared triggers raise: the VF is taken. */
		if (rc == SQLITE_CONSTRAINT_TRIGGER)
			return -EBUSY;
		if (rc == SQLITE_CONSTRAINT_CHECK || rc == SQLITE_CONSTRAINT_NOTNULL)
			return -EINVAL;
		return -EEXIST;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_IOERR:
		/* The errno of the failed system call says more (EACCES,
		 * EROFS, ENOSPC) than SQLite's class does. */
		sys = s && s->db ? sqlite3_system_errno(s->db) : 0;
		if (sys > 0)
			return -sys;
		return (rc & 0xff) == SQLITE_READONLY ? -EROFS : -EIO;
	default:
		return -EIO;
	}
}

int store_fail(iovm_store *s, int rc, iovm_error *err, const char *fmt, ...)
{
	char ctx[IOVM_ERROR_MSG_MAX];
	int code = store_errno(s, rc);
	va_list ap;

	if (code == 0)
		code = -EIO;
	va_start(ap, fmt);
	vsnprintf(ctx, sizeof(ctx), fmt, ap);
	va_end(ap);
	return iovm_error_set(err, code, "%s: %s (state db %s)", ctx,
			      s && s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc),
			      s && s->path ? s->path : "?");
}

int store_prepare(iovm_store *s, const char *sql, sqlite3_stmt **ret, iovm_error *err)
{
	int rc = sqlite3_prepare_v2(s->db, sql, -1, ret, NULL);

	if (rc != SQLITE_OK)
		return store_fail(s, rc, err, "preparing a statement failed");
	return 0;
}

int store_step_done(iovm_store *s, sqlite3_stmt *st, iovm_error *err, const char *what)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE)
		return store_fail(s, sqlite3_extended_errcode(s->db), err, "%s failed", what);
	return sqlite3_changes(s->db);
}

int store_list(iovm_store *s, sqlite3_stmt *st, size_t elem_size, store_row_fn row,
	       void **ret, size_t *ret_n, iovm_error *err, const char *what)
{
	_cleanup_free_ char *arr = NULL;
	size_t n = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 8;
			char *p = reallocarray(arr, ncap, elem_size);

			if (!p)
				return iovm_error_set(err, -ENOMEM, "%s: out of memory", what);
			arr = p;
			cap = ncap;
		}
		memset(arr + n * elem_size, 0, elem_size);
		row(st, arr + n * elem_size);
		n++;
	}
	if (rc != SQLITE_DONE)
		return store_fail(s, sqlite3_extended_errcode(s->db), err, "%s failed", what);
	*ret = TAKE_PTR(arr);
	*ret_n = n;
	return 0;
}

void store_column_text(sqlite3_stmt *st, int col, char *buf, size_t n)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	snprintf(buf, n, "%s", t ? (const char *)t : "");
}

bool store_valid_str(const char *str, size_t max)
{
	return str && str[0] && strnlen(str, max) < max;
}

int64_t store_now(void)
{
	return (int64_t)time(NULL);
}

/* ---- opening and migrations ---------------------------------------------------- */

static int store_exec(iovm_store *s, const char *sql, iovm_error *err, const char *what)
{
	int rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return store_fail(s, sqlite3_extended_errcode(s->db), err, "%s", what);
	return 0;
}

/* The single value of a pragma or query, as an integer. */
static int store_query_int(iovm_store *s, const char *sql, int64_t *ret, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	r = store_prepare(s, sql, &st, err);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_fail(s, sqlite3_extended_errcode(s->db), err, "reading %s failed", sql);
	*ret = sqlite3_column_int64(st, 0);
	return 0;
}

/* mkdir -p of path's parent; new directories get mode 0750 because the
 * state names VMs and their sockets, which other users have no need to see. */
static int make_parent(const char *path, iovm_error *err)
{
	_cleanup_free_ char *dir = strdup(path);
	char *slash, *p;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return 0;
	*slash = '\0';
	for (p = dir + 1;; p++) {
		bool last = *p == '\0';

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(dir, 0750) < 0 && errno != EEXIST)
			return iovm_error_set(err, negative_errno(), "state db %s: creating directory %s failed: %m",
					      path, dir);
		if (last)
			break;
		*p = '/';
	}
	return 0;
}

/* Reads the schema version and refuses databases that are not ours or are
 * newer than this code. */
static int store_check_version(iovm_store *s, int64_t *ret_version, iovm_error *err)
{
	int64_t version, app_id, n_objects;
	int r;

	r = store_query_int(s, "PRAGMA user_version", &version, err);
	if (r >= 0)
		r = store_query_int(s, "PRAGMA application_id", &app_id, err);
	if (r >= 0)
		r = store_query_int(s, "SELECT count(*) FROM sqlite_master", &n_objects, err);
	if (r < 0)
		return r;
	if (app_id != 0 && app_id != STORE_APPLICATION_ID)
		return iovm_error_set(err, -EBADMSG, "state db %s: belongs to another program (application id 0x%llx)",
				      s->path, (unsigned long long)app_id);
	if (version == 0 && n_objects > 0)
		return iovm_error_set(err, -EBADMSG,
				      "state db %s: has tables but no iovm schema version; not an iovm database",
				      s->path);
	if (version > IOVM_STORE_SCHEMA_VERSION || version < 0)
		return iovm_error_set(err, -EPROTONOSUPPORT,
				      "state db %s: schema version %lld is newer than this iovm knows (%d); "
				      "refusing to use it rather than downgrade", s->path,
				      (long long)version, IOVM_STORE_SCHEMA_VERSION);
	*ret_version = version;
	return 0;
}

/* Applies migrations one transaction each. A current database is checked
 * without the write lock, so opening never waits for another process's
 * transaction; the version is re-read inside the write transaction, so two
 * processes opening a fresh file at once do not both apply a step. */
static int store_migrate(iovm_store *s, iovm_error *err)
{
	int64_t version;
	char sql[64];
	int r;

	/* One read transaction, so the three reads of the check see one
	 * snapshot even while another process commits a migration. */
	r = store_exec(s, "BEGIN DEFERRED", err, "starting the schema check failed");
	if (r < 0)
		return r;
	r = store_check_version(s, &version, err);
	sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (r < 0 || version == IOVM_STORE_SCHEMA_VERSION)
		return r;
	for (;;) {
		r = store_exec(s, "BEGIN IMMEDIATE", err, "starting the migration failed");
		if (r < 0)
			return r;
		r = store_check_version(s, &version, err);
		if (r < 0)
			goto fail;
		if (version == IOVM_STORE_SCHEMA_VERSION)
			return store_exec(s, "COMMIT", err, "ending the migration failed");

		if (sqlite3_exec(s->db, migrations[version], NULL, NULL, NULL) != SQLITE_OK) {
			int rc = sqlite3_extended_errcode(s->db);

			/* A plain SQL error here means the file's schema is
			 * not the one its version number promises. */
			r = store_fail(s, rc == SQLITE_ERROR ? SQLITE_CORRUPT : rc, err,
				       "migration %lld -> %lld failed", (long long)version,
				       (long long)version + 1);
			goto fail;
		}
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %lld", (long long)version + 1);
		r = store_exec(s, sql, err, "recording the schema version failed");
		if (r >= 0 && version == 0) {
			snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", STORE_APPLICATION_ID);
			r = store_exec(s, sql, err, "recording the application id failed");
		}
		if (r >= 0)
			r = store_exec(s, "COMMIT", err, "committing the migration failed");
		if (r < 0)
			goto fail;
	}
fail:
	sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

static int store_configure(iovm_store *s, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int64_t fk;
	char mode[16];
	int r, rc;

	/* The first statement that reads the file: a garbage file fails here
	 * with SQLITE_NOTADB. */
	r = store_prepare(s, "PRAGMA journal_mode = WAL", &st, err);
	if (r < 0)
		return r;
	/* Switching a new file to WAL needs an exclusive lock, and SQLite may
	 * report SQLITE_BUSY for it without calling the busy handler when
	 * several processes open the new file at once: retry up to the busy
	 * timeout. */
	for (int waited = 0;; waited += 20) {
		rc = sqlite3_step(st);
		if ((rc != SQLITE_BUSY && rc != SQLITE_LOCKED) || waited >= STORE_BUSY_TIMEOUT_MS)
			break;
		sqlite3_reset(st);
		poll(NULL, 0, 20);
	}
	if (rc != SQLITE_ROW)
		return store_fail(s, sqlite3_extended_errcode(s->db), err, "switching to WAL failed");
	store_column_text(st, 0, mode, sizeof(mode));
	if (strcmp(mode, "wal") != 0)
		return iovm_error_set(err, -EOPNOTSUPP,
				      "state db %s: journal mode is '%s', not 'wal' (filesystem without shared memory?)",
				      s->path, mode);

	/* In WAL, synchronous=FULL syncs every commit: an intent that was
	 * reported written must survive a power cut. */
	r = store_exec(s, "PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON", err,
		       "setting pragmas failed");
	if (r < 0)
		return r;
	r = store_query_int(s, "PRAGMA foreign_keys", &fk, err);
	if (r < 0)
		return r;
	if (fk != 1)
		return iovm_error_set(err, -EOPNOTSUPP, "state db %s: SQLite refuses foreign keys", s->path);
	return 0;
}

int iovm_store_open(const char *path, iovm_store **ret, iovm_error *err)
{
	_cleanup_(iovm_store_closep) iovm_store *s = NULL;
	struct stat st = {};
	int fd, r, rc;

	if (!ret)
		return iovm_error_set(err, -EINVAL, "state db: no place for the result");
	if (!path || !path[0] || strlen(path) >= PATH_MAX)
		return iovm_error_set(err, -EINVAL, "state db: invalid path");

	s = calloc(1, sizeof(*s));
	if (!s || !(s->path = strdup(path)))
		return iovm_error_set(err, -ENOMEM, "state db %s: out of memory", path);

	r = make_parent(path, err);
	if (r < 0)
		return r;
	/* Creating the file ourselves gives it mode 0640 (SQLite would use
	 * 0644) and a plain errno for an unwritable directory. Closed before
	 * SQLite opens the file: closing any descriptor of it drops every
	 * POSIX lock the process holds on it, SQLite's included, and another
	 * process closing its connection would then take itself for the last
	 * one, checkpoint and remove the WAL this connection still writes to. */
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
	if (fd < 0)
		return iovm_error_set(err, negative_errno(), "state db %s: cannot open: %m", path);
	/* A file that came with wider modes (copied in, made by hand) is
	 * narrowed to at most 0640: SQLite gives the -wal and -shm files the
	 * database's mode, and the state names VMs and their sockets. */
	r = fstat(fd, &st) < 0 ? negative_errno() : 0;
	if (r == 0 && (st.st_mode & 07137) && fchmod(fd, st.st_mode & 0640) < 0)
		r = negative_errno();
	close(fd);
	if (r < 0)
		return iovm_error_set(err, r, "state db %s: cannot narrow its mode %04o to 0640: %s", path,
				      (unsigned)(st.st_mode & 07777), strerror(-r));

	rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK)
		return store_fail(s, rc, err, "opening failed");
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);

	r = store_configure(s, err);
	if (r >= 0)
		r = store_migrate(s, err);
	if (r < 0)
		return r;
	*ret = TAKE_PTR(s);
	return 0;
}

iovm_store *iovm_store_close(iovm_store *s)
{
	if (!s)
		return NULL;
	if (s->in_tx)
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	/* sqlite3_close_v2 is NULL-safe and checkpoints the WAL when it is the
	 * last connection. */
	sqlite3_close_v2(s->db);
	free(s->path);
	free(s);
	return NULL;
}

int iovm_store_schema_version(iovm_store *s)
{
	int64_t v;
	int r;

	if (!s)
		return -EINVAL;
	r = store_query_int(s, "PRAGMA user_version", &v, NULL);
	return r < 0 ? r : (int)v;
}

uint64_t iovm_store_changes(const iovm_store *s)
{
	return s ? (uint64_t)sqlite3_total_changes64(s->db) : 0;
}

/* ---- transactions ----------------------------------------------------------------- */

int iovm_store_begin(iovm_store *s, iovm_error *err)
{
	int r;

	if (!s)
		return iovm_error_set(err, -EINVAL, "state db: no store");
	if (s->in_tx)
		return iovm_error_set(err, -EALREADY, "state db %s: a transaction is already open", s->path);
	r = store_exec(s, "BEGIN IMMEDIATE", err, "beginning a transaction failed");
	if (r < 0)
		return r;
	s->in_tx = true;
	return 0;
}

int iovm_store_commit(iovm_store *s, iovm_error *err)
{
	int r;

	if (!s)
		return iovm_error_set(err, -EINVAL, "state db: no store");
	if (!s->in_tx)
		return iovm_error_set(err, -EINVAL, "state db %s: commit without a transaction", s->path);
	if (sqlite3_get_autocommit(s->db)) {
		/* SQLite rolls a transaction back by itself after some errors
		 * (SQLITE_FULL, SQLITE_IOERR, SQLITE_NOMEM): committing now
		 * would claim writes that are gone. */
		s->in_tx = false;
		return iovm_error_set(err, -EIO, "state db %s: transaction was rolled back after an earlier error",
				      s->path);
	}
	r = store_exec(s, "COMMIT", err, "committing failed");
	if (r < 0) {
		/* A failed COMMIT (e.g. SQLITE_BUSY) leaves the transaction
		 * open; roll it back so the store is usable and the caller's
		 * view (nothing written) is the truth. */
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	s->in_tx = false;
	return r;
}

int iovm_store_rollback(iovm_store *s)
{
	if (!s)
		return -EINVAL;
	if (!s->in_tx)
		return 0;
	s->in_tx = false;
	return sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

bool iovm_store_in_transaction(const iovm_store *s)
{
	return s && s->in_tx;
}

int iovm_store_transaction(iovm_store *s, iovm_store_tx_fn fn, void *userdata, iovm_error *err)
{
	int r, q;

	if (!fn)
		return iovm_error_set(err, -EINVAL, "state db: no transaction function");
	r = iovm_store_begin(s, err);
	if (r < 0)
		return r;
	r = fn(s, userdata, err);
	if (r < 0) {
		iovm_store_rollback(s);
		return r;
	}
	q = iovm_store_commit(s, err);
	return q < 0 ? q : r;
}

