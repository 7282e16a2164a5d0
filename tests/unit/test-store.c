/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The state store on real SQLite files in a temporary directory: creation,
 * reopening, migrations from hand-made old databases, refusals, the
 * double-assignment guard, shared VFs and the exclusive-vs-shared triggers,
 * the intent journal across a simulated crash. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "iovm/store.h"
#include "shared/util.h"

#include "store-fixture.h"

/* Runs SQL on the file directly and returns SQLite's extended result code;
 * msg (if not NULL) gets the error message. */
static int raw_exec_rc(const char *path, const char *sql, char *msg, size_t n)
{
	sqlite3 *db = NULL;
	char *m = NULL;
	int rc;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	sqlite3_extended_result_codes(db, 1);
	rc = sqlite3_exec(db, sql, NULL, NULL, &m);
	if (msg)
		snprintf(msg, n, "%s", m ? m : "");
	sqlite3_free(m);
	sqlite3_close(db);
	return rc;
}

static long long raw_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long long v;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* The first column of the first row as text into buf ("" for NULL). */
static void raw_text(const char *path, const char *sql, char *buf, size_t n)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	snprintf(buf, n, "%s", sqlite3_column_text(st, 0) ? (const char *)sqlite3_column_text(st, 0) : "");
	sqlite3_finalize(st);
	sqlite3_close(db);
}

/* Intent arguments for tests that only need a valid attach or detach. */
static const iovm_store_intent_args vm1_args = { .vm = "vm1", .mode = IOVM_MODE_EXCLUSIVE, .devid = "iovm-vf" };

static iovm_store *open_ok(const char *path)
{
	iovm_store *s = NULL;
	iovm_error e = {};
	int r = iovm_store_open(path, &s, &e);

	if (r < 0)
		fail_msg("open %s: %d %s", path, r, e.msg);
	assert_non_null(s);
	return s;
}

static void add_vm(iovm_store *s, const char *name, iovm_priority prio)
{
	iovm_store_vm vm = { .priority = prio, .numa_node = -1 };
	iovm_error e = {};

	snprintf(vm.name, sizeof(vm.name), "%s", name);
	snprintf(vm.qmp, sizeof(vm.qmp), "/run/iovm/%s.qmp", name);
	if (iovm_store_vm_put(s, &vm, &e) < 0)
		fail_msg("vm put: %s", e.msg);
}

static int do_assign(iovm_store *s, const char *vf, const char *vm, iovm_error *e)
{
	iovm_store_assignment a = { .mode = IOVM_MODE_EXCLUSIVE, .state = IOVM_STORE_RESERVED };

	snprintf(a.vf, sizeof(a.vf), "%s", vf);
	snprintf(a.vm, sizeof(a.vm), "%s", vm);
	return iovm_store_assign(s, &a, e);
}

static int do_share(iovm_store *s, const char *vf, const char *vm, iovm_error *e)
{
	iovm_store_share sh = { .state = IOVM_STORE_RESERVED };

	snprintf(sh.vf, sizeof(sh.vf), "%s", vf);
	snprintf(sh.vm, sizeof(sh.vm), "%s", vm);
	return iovm_store_share_add(s, &sh, e);
}

/* ---- opening ---------------------------------------------------------------- */

/* iovm_store_changes counts this connection's writes, not its reads, and a
 * write that changes nothing counts nothing. */
static void test_changes_counter(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_pf pf = { .pf = "0000:01:00.0", .num_vfs = 2, .driver = "host" }, got;
	uint64_t c0, c1;

	c0 = iovm_store_changes(s);
	assert_int_equal(iovm_store_pf_put(s, &pf, NULL), 0);
	c1 = iovm_store_changes(s);
	assert_true(c1 > c0);
	assert_int_equal(iovm_store_pf_get(s, "0000:01:00.0", &got, NULL), 0);
	assert_int_equal(iovm_store_changes(s), c1);
	assert_int_equal(iovm_store_pf_delete(s, "0000:02:00.0", NULL), -ENOENT);
	assert_int_equal(iovm_store_changes(s), c1);
	assert_int_equal(iovm_store_pf_delete(s, "0000:01:00.0", NULL), 0);
	assert_true(iovm_store_changes(s) > c1);
	assert_int_equal(iovm_store_changes(NULL), 0);
	iovm_store_close(s);
}

static void test_create_and_reopen(void **state)
{
	fixture *f = *state;
	char path[PATH_MAX], parent[PATH_MAX];
	iovm_store_pf pf = { .pf = "0000:01:00.0", .num_vfs = 7, .driver = "vfio-pci" }, gpf;
	iovm_store_vf_config vc = { .pf = "01:00.0", .vf = 3 }, gvc;
	iovm_store_vf_saved sv = { .vf = "0000:01:10.6", .pf = "0000:01:00.0", .vf_index = 3,
				   .driver = "igbvf" }, gsv;
	iovm_store_vm gvm;
	iovm_store_assignment ga;
	iovm_store_intent *open_list = NULL;
	size_t n = 0;
	int64_t id;
	iovm_error e = {};
	struct stat st;
	iovm_store *s;

	/* Two missing directory levels: both are created, private. */
	snprintf(parent, sizeof(parent), "%s/var/iovm", f->dir);
	snprintf(path, sizeof(path), "%s/iovm.db", parent);
	s = open_ok(path);
	assert_int_equal(stat(parent, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0750);
	assert_int_equal(iovm_store_schema_version(s), IOVM_STORE_SCHEMA_VERSION);

	assert_int_equal(iovm_store_pf_put(s, &pf, &e), 0);
	vc.cfg.present = IOVM_VFNET_MAC | IOVM_VFNET_VLAN | IOVM_VFNET_LINK_STATE;
	memcpy(vc.cfg.mac, (uint8_t[]){ 0x02, 0, 0, 0, 0xab, 0x01 }, 6);
	vc.cfg.vlan = 100;
	vc.cfg.qos = 5;
	vc.cfg.link_state = IOVM_VF_LINK_DISABLE;
	assert_int_equal(iovm_store_vf_config_put(s, &vc, &e), 0);
	add_vm(s, "web1", IOVM_PRIO_HIGH);
	assert_int_equal(do_assign(s, "0000:01:10.6", "web1", &e), 0);
	sv.cfg.present = IOVM_VFNET_SPOOFCHK | IOVM_VFNET_TRUST | IOVM_VFNET_RATE;
	sv.cfg.spoofchk = true;
	sv.cfg.max_tx_rate = 250;
	assert_int_equal(iovm_store_vf_saved_put(s, &sv, &e), 0);
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_ATTACH, "vf 0000:01:10.6",
						 &(iovm_store_intent_args){ .vm = "web1", .mode = IOVM_MODE_EXCLUSIVE }, &id, &e), 0);
	iovm_store_close(s);

	s = open_ok(path);
	assert_int_equal(iovm_store_pf_get(s, "01:00.0", &gpf, &e), 0);
	assert_string_equal(gpf.pf, "0000:01:00.0");
	assert_int_equal(gpf.num_vfs, 7);
	assert_string_equal(gpf.driver, "vfio-pci");
	assert_true(gpf.updated > 0);

	assert_int_equal(iovm_store_vf_config_get(s, "0000:01:00.0", 3, &gvc, &e), 0);
	assert_int_equal(gvc.cfg.present, vc.cfg.present);
	assert_memory_equal(gvc.cfg.mac, vc.cfg.mac, 6);
	assert_int_equal(gvc.cfg.vlan, 100);
	assert_int_equal(gvc.cfg.qos, 5);
	assert_int_equal(gvc.cfg.link_state, IOVM_VF_LINK_DISABLE);

	assert_int_equal(iovm_store_vm_get(s, "web1", &gvm, &e), 0);
	assert_string_equal(gvm.qmp, "/run/iovm/web1.qmp");
	assert_int_equal(gvm.priority, IOVM_PRIO_HIGH);
	assert_int_equal(gvm.numa_node, -1);

	assert_int_equal(iovm_store_assignment_get(s, "01:10.6", &ga, &e), 0);
	assert_string_equal(ga.vm, "web1");
	assert_int_equal(ga.state, IOVM_STORE_RESERVED);

	assert_int_equal(iovm_store_vf_saved_get(s, "0000:01:10.6", &gsv, &e), 0);
	assert_string_equal(gsv.driver, "igbvf");
	assert_int_equal(gsv.vf_index, 3);
	assert_int_equal(gsv.cfg.present, sv.cfg.present);
	assert_true(gsv.cfg.spoofchk);
	assert_false(gsv.cfg.trust);
	assert_int_equal(gsv.cfg.max_tx_rate, 250);

	assert_int_equal(iovm_store_intent_list_open(s, &open_list, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(open_list[0].id, id);
	assert_string_equal(open_list[0].args.vm, "web1");
	assert_string_equal(open_list[0].args_error, "");
	free(open_list);
	iovm_store_close(s);

	/* The file is not world-readable. */
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0007, 0);
	assert_null(iovm_store_close(NULL));
}

static void test_wal_mode(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	/* Asked of the file by a separate connection: WAL is persistent in
	 * the file, so this fails if the store merely believed it set it. */
	assert_int_equal(sqlite3_open(f->db, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(raw_int(f->db, "PRAGMA application_id"), 0x696f766d);
	iovm_store_close(s);
}

static void test_garbage_file(void **state)
{
	fixture *f = *state;
	iovm_store *s = NULL;
	iovm_error e = {};
	int fd = open(f->db, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	for (int i = 0; i < 64; i++)
		assert_int_equal(write(fd, "this is not a database, it is a text file\n", 42), 42);
	close(fd);
	assert_int_equal(iovm_store_open(f->db, &s, &e), -EBADMSG);
	assert_null(s);
	assert_non_null(strstr(e.msg, f->db));
}

static void test_foreign_database(void **state)
{
	fixture *f = *state;
	iovm_store *s = NULL;
	iovm_error e = {};

	/* Someone else's tables without a version: not ours to migrate. */
	raw_exec(f->db, "CREATE TABLE users (id INTEGER)");
	assert_int_equal(iovm_store_open(f->db, &s, &e), -EBADMSG);
	assert_null(s);
	assert_non_null(strstr(e.msg, "not an iovm database"));

	/* Another program's application id. */
	remove(f->db);
	raw_exec(f->db, "PRAGMA application_id = 42");
	assert_int_equal(iovm_store_open(f->db, &s, &e), -EBADMSG);
	assert_non_null(strstr(e.msg, "another program"));
}

/* Runs iovm_store_open as an unprivileged user when we are root, since root
 * ignores directory permissions. Returns the open's result; msg gets err. */
static int open_unprivileged(const char *dir, const char *path, char *msg, size_t n)
{
	int pipefd[2], status;
	pid_t pid;
	ssize_t got;

	if (geteuid() != 0) {
		iovm_store *s = NULL;
		iovm_error e = {};
		int r = iovm_store_open(path, &s, &e);

		snprintf(msg, n, "%s", e.msg);
		iovm_store_close(s);
		return r;
	}
	assert_int_equal(pipe(pipefd), 0);
	assert_int_equal(chmod(dir, 0755), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		iovm_store *s = NULL;
		iovm_error e = {};
		int r;

		close(pipefd[0]);
		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(100);
		r = iovm_store_open(path, &s, &e);
		if (write(pipefd[1], e.msg, strlen(e.msg)) < 0)
			_exit(101);
		_exit(r < 0 ? -r : 0);
	}
	close(pipefd[1]);
	got = read(pipefd[0], msg, n - 1);
	msg[got > 0 ? got : 0] = '\0';
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_true(WEXITSTATUS(status) < 100);
	return -WEXITSTATUS(status);
}

static void test_readonly_directory(void **state)
{
	fixture *f = *state;
	char ro[PATH_MAX], path[PATH_MAX], msg[IOVM_ERROR_MSG_MAX];
	int r;

	snprintf(ro, sizeof(ro), "%s/ro", f->dir);
	assert_int_equal(mkdir(ro, 0555), 0);
	assert_int_equal(chmod(ro, 0555), 0);   /* whatever the umask */

	/* The file cannot be created. */
	snprintf(path, sizeof(path), "%s/iovm.db", ro);
	r = open_unprivileged(f->dir, path, msg, sizeof(msg));
	assert_int_equal(r, -EACCES);
	assert_non_null(strstr(msg, path));

	/* Nor can a missing parent under it. */
	snprintf(path, sizeof(path), "%s/sub/iovm.db", ro);
	r = open_unprivileged(f->dir, path, msg, sizeof(msg));
	assert_int_equal(r, -EACCES);
	assert_non_null(strstr(msg, "sub"));
}

/* ---- migrations ------------------------------------------------------------------- */

static void test_migrate_from_empty_file(void **state)
{
	fixture *f = *state;
	iovm_store *s;
	int fd;

	/* A zero-length file is a valid, empty SQLite database at version 0. */
	fd = open(f->db, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	close(fd);
	s = open_ok(f->db);
	assert_int_equal(iovm_store_schema_version(s), IOVM_STORE_SCHEMA_VERSION);
	iovm_store_close(s);
	assert_int_equal(raw_int(f->db, "PRAGMA user_version"), IOVM_STORE_SCHEMA_VERSION);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'intent_open'"), 1);
}

/* Version 1 of the schema, as it shipped: the test keeps its own copy so a
 * change to the code's migration cannot silently change the fixture. */
static const char schema_v1[] =
	"CREATE TABLE pf_desired (pf TEXT PRIMARY KEY NOT NULL, num_vfs INTEGER NOT NULL CHECK (num_vfs >= 0),"
	"  driver TEXT NOT NULL, updated INTEGER NOT NULL);"
	"CREATE TABLE vf_config_desired (pf TEXT NOT NULL REFERENCES pf_desired(pf) ON DELETE CASCADE,"
	"  vf INTEGER NOT NULL CHECK (vf >= 0), mac TEXT, vlan INTEGER CHECK (vlan BETWEEN 0 AND 4094),"
	"  qos INTEGER CHECK (qos BETWEEN 0 AND 7), rate INTEGER CHECK (rate >= 0),"
	"  spoofchk INTEGER CHECK (spoofchk IN (0, 1)), trust INTEGER CHECK (trust IN (0, 1)),"
	"  link TEXT CHECK (link IN ('auto', 'enable', 'disable')), updated INTEGER NOT NULL,"
	"  PRIMARY KEY (pf, vf));"
	"CREATE TABLE vm (name TEXT PRIMARY KEY NOT NULL, qmp TEXT NOT NULL,"
	"  priority TEXT NOT NULL DEFAULT 'normal' CHECK (priority IN ('high', 'normal', 'low')),"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE assignment (vf TEXT PRIMARY KEY NOT NULL,"
	"  vm TEXT NOT NULL REFERENCES vm(name) ON DELETE RESTRICT,"
	"  mode TEXT NOT NULL CHECK (mode IN ('exclusive', 'shared')), devid TEXT NOT NULL DEFAULT '',"
	"  state TEXT NOT NULL CHECK (state IN ('reserved', 'attaching', 'attached', 'detaching',"
	"                                       'release-pending')),"
	"  updated INTEGER NOT NULL);"
	"CREATE INDEX assignment_by_vm ON assignment(vm);"
	"CREATE TABLE vf_saved (vf TEXT PRIMARY KEY NOT NULL, pf TEXT NOT NULL,"
	"  vf_index INTEGER NOT NULL CHECK (vf_index >= 0), driver TEXT NOT NULL DEFAULT '', mac TEXT,"
	"  vlan INTEGER CHECK (vlan BETWEEN 0 AND 4094), qos INTEGER CHECK (qos BETWEEN 0 AND 7),"
	"  rate INTEGER CHECK (rate >= 0), spoofchk INTEGER CHECK (spoofchk IN (0, 1)),"
	"  trust INTEGER CHECK (trust IN (0, 1)), link TEXT CHECK (link IN ('auto', 'enable', 'disable')),"
	"  saved INTEGER NOT NULL);"
	"CREATE TABLE intent (id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  kind TEXT NOT NULL CHECK (kind IN ('create-vfs', 'attach', 'detach', 'set-vfs')),"
	"  object TEXT NOT NULL, args TEXT NOT NULL DEFAULT '{}', step TEXT NOT NULL DEFAULT '',"
	"  status TEXT NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'done', 'rolled-back')),"
	"  started INTEGER NOT NULL, finished INTEGER);"
	"PRAGMA application_id = 1768912493;"
	"PRAGMA user_version = 1;";

static void test_migrate_from_v1_with_data(void **state)
{
	fixture *f = *state;
	iovm_store_vm vm;
	iovm_store_assignment a;
	iovm_store_intent *list = NULL;
	size_t n = 0;
	iovm_error e = {};
	iovm_store *s;

	raw_exec(f->db, schema_v1);
	raw_exec(f->db,
		 "INSERT INTO vm (name, qmp, priority, created) VALUES ('db1', '/run/db1.qmp', 'low', 1000);"
		 "INSERT INTO assignment VALUES ('0000:01:10.0', 'db1', 'exclusive', 'iovm-0000-01-10.0',"
		 "  'attached', 1001);"
		 "INSERT INTO intent (kind, object, args, step, started) VALUES"
		 "  ('detach', 'vf 0000:01:10.0', '{}', 'device_del-sent', 1002);");

	s = open_ok(f->db);
	assert_int_equal(iovm_store_schema_version(s), IOVM_STORE_SCHEMA_VERSION);
	assert_int_equal(iovm_store_vm_get(s, "db1", &vm, &e), 0);
	assert_int_equal(vm.priority, IOVM_PRIO_LOW);
	assert_int_equal(vm.numa_node, -1);          /* the new columns' defaults */
	assert_string_equal(vm.qga, "");
	assert_int_equal(vm.created, 1000);
	assert_int_equal(iovm_store_assignment_get(s, "0000:01:10.0", &a, &e), 0);
	assert_string_equal(a.devid, "iovm-0000-01-10.0");
	assert_int_equal(a.state, IOVM_STORE_ATTACHED);
	assert_int_equal(iovm_store_intent_list_open(s, &list, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].kind, IOVM_INTENT_DETACH);
	assert_string_equal(list[0].step, "device_del-sent");
	/* Its "{}" names no VM: listed, with the reason, not dropped. */
	assert_string_equal(list[0].args_error, "member \"vm\" is missing");
	free(list);

	/* The migrated schema takes the new field. */
	vm.numa_node = 1;
	assert_int_equal(iovm_store_vm_put(s, &vm, &e), 0);
	assert_int_equal(iovm_store_vm_get(s, "db1", &vm, &e), 0);
	assert_int_equal(vm.numa_node, 1);
	assert_int_equal(vm.created, 1000);          /* an update keeps it */
	iovm_store_close(s);
}

/* Step 2 as it shipped, applied on top of schema_v1: a version-2 database. */
static const char schema_v2_step[] =
	"ALTER TABLE vm ADD COLUMN numa_node INTEGER NOT NULL DEFAULT -1 CHECK (numa_node >= -1);"
	"CREATE INDEX intent_open ON intent(id) WHERE status = 'open';"
	"PRAGMA user_version = 2;";

static void test_migrate_from_v2_with_data(void **state)
{
	fixture *f = *state;
	iovm_store_vm vm;
	iovm_store_assignment *as = NULL;
	iovm_store_share *shares = NULL;
	size_t n = 0;
	iovm_error e = {};
	iovm_store *s;

	raw_exec(f->db, schema_v1);
	raw_exec(f->db, schema_v2_step);
	assert_int_equal(raw_int(f->db, "PRAGMA user_version"), 2);
	raw_exec(f->db,
		 "INSERT INTO vm (name, qmp, priority, created, numa_node) VALUES"
		 "  ('db1', '/run/db1.qmp', 'high', 1000, 1), ('web2', '/run/web2.qmp', 'normal', 1001, -1);"
		 "INSERT INTO assignment VALUES ('0000:01:10.0', 'db1', 'exclusive', 'iovm-0000-01-10.0',"
		 "  'attached', 1002);"
		 "INSERT INTO assignment VALUES ('0000:01:10.1', 'web2', 'shared', '', 'reserved', 1003);");

	s = open_ok(f->db);
	assert_int_equal(iovm_store_schema_version(s), IOVM_STORE_SCHEMA_VERSION);
	assert_int_equal(iovm_store_vm_get(s, "db1", &vm, &e), 0);
	assert_string_equal(vm.qmp, "/run/db1.qmp");
	assert_int_equal(vm.priority, IOVM_PRIO_HIGH);
	assert_int_equal(vm.numa_node, 1);
	assert_int_equal(vm.created, 1000);
	assert_string_equal(vm.qga, "");             /* the new column's default */
	assert_int_equal(iovm_store_assignment_list(s, NULL, &as, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(as[0].vm, "db1");
	assert_int_equal(as[0].mode, IOVM_MODE_EXCLUSIVE);
	assert_string_equal(as[0].devid, "iovm-0000-01-10.0");
	assert_int_equal(as[0].state, IOVM_STORE_ATTACHED);
	assert_string_equal(as[1].vm, "web2");
	assert_int_equal(as[1].mode, IOVM_MODE_SHARED);
	free(as);
	assert_int_equal(iovm_store_share_list(s, NULL, NULL, &shares, &n, &e), 0);
	assert_int_equal(n, 0);
	free(shares);

	/* The new table, its index and the four triggers are there and act
	 * on the rows that came through the migration. */
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 4);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM sqlite_master WHERE name = 'vf_share_by_vm'"), 1);
	assert_int_equal(do_share(s, "0000:01:10.0", "web2", &e), -EBUSY);
	assert_non_null(strstr(e.msg, "vm db1"));
	assert_int_equal(do_share(s, "0000:01:10.2", "web2", &e), 0);

	/* The migrated schema takes the new field. */
	snprintf(vm.qga, sizeof(vm.qga), "/run/db1.qga");
	assert_int_equal(iovm_store_vm_put(s, &vm, &e), 0);
	assert_int_equal(iovm_store_vm_get(s, "db1", &vm, &e), 0);
	assert_string_equal(vm.qga, "/run/db1.qga");
	assert_int_equal(vm.created, 1000);
	iovm_store_close(s);
	assert_int_equal(raw_int(f->db, "PRAGMA user_version"), IOVM_STORE_SCHEMA_VERSION);
}

static void test_failed_migration_2_to_3(void **state)
{
	fixture *f = *state;
	iovm_store *s = NULL;
	iovm_error e = {};

	/* A version-2 file where step 3 cannot apply (its table name is
	 * taken): nothing of the step may remain, the version stays 2. */
	raw_exec(f->db, schema_v1);
	raw_exec(f->db, schema_v2_step);
	raw_exec(f->db, "CREATE TABLE vf_share (x INTEGER)");
	assert_int_equal(iovm_store_open(f->db, &s, &e), -EBADMSG);
	assert_null(s);
	assert_non_null(strstr(e.msg, "migration 2 -> 3"));
	assert_int_equal(raw_int(f->db, "PRAGMA user_version"), 2);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM pragma_table_info('vm') WHERE name = 'qga'"), 0);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM sqlite_master WHERE type = 'trigger'"), 0);
}

static void test_newer_version_refused(void **state)
{
	fixture *f = *state;
	iovm_store *s = NULL;
	iovm_error e = {};

	raw_exec(f->db, schema_v1);
	raw_exec(f->db, "PRAGMA user_version = 99");
	assert_int_equal(iovm_store_open(f->db, &s, &e), -EPROTONOSUPPORT);
	assert_null(s);
	assert_non_null(strstr(e.msg, f->db));
	assert_non_null(strstr(e.msg, "99"));
	/* Nothing was rewritten. */
	assert_int_equal(raw_int(f->db, "PRAGMA user_version"), 99);
}

static void test_failed_migration_keeps_old_version(void **state)
{
	fixture *f = *state;
	iovm_store *s = NULL;
	iovm_error e = {};

	/* A version-1 database where step 2 cannot apply (its index name is
	 * taken): the step is one transaction, so the column it would have
	 * added must not be there either. */
	raw_exec(f->db, schema_v1);
	raw_exec(f->db, "CREATE INDEX intent_open ON intent(kind)");
	assert_int_equal(iovm_store_open(f->db, &s, &e), -EBADMSG);
	assert_null(s);
	assert_non_null(strstr(e.msg, "migration 1 -> 2"));
	assert_non_null(strstr(e.msg, f->db));
	assert_int_equal(raw_int(f->db, "PRAGMA user_version"), 1);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM pragma_table_info('vm') WHERE name = 'numa_node'"), 0);
}

static void test_concurrent_first_open(void **state)
{
	fixture *f = *state;
	enum { N = 12 };
	pid_t pids[N];
	int status;

	/* Several processes open the same new file at once: each must see a
	 * complete schema, none may apply a step twice. */
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			iovm_store *s = NULL;
			iovm_error e = {};
			int r = iovm_store_open(f->db, &s, &e);

			if (r < 0) {
				fprintf(stderr, "child %d: %s\n", i, e.msg);
				_exit(1);
			}
			r = iovm_store_schema_version(s);
			iovm_store_close(s);
			_exit(r == IOVM_STORE_SCHEMA_VERSION ? 0 : 2);
		}
	}
	for (int i = 0; i < N; i++) {
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(raw_int(f->db, "PRAGMA user_version"), IOVM_STORE_SCHEMA_VERSION);
}

static void test_corrupt_page(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_vm *list = NULL;
	char junk[4096];
	size_t n = 0;
	iovm_error e = {};
	int fd, r;

	for (int i = 0; i < 50; i++) {
		char name[16];

		snprintf(name, sizeof(name), "vm%02d", i);
		add_vm(s, name, IOVM_PRIO_NORMAL);
	}
	iovm_store_close(s);   /* last connection: the WAL is checkpointed */

	/* Overwrite every page but the first (header and schema) with junk. */
	memset(junk, 0xa5, sizeof(junk));
	fd = open(f->db, O_WRONLY);
	assert_true(fd >= 0);
	for (off_t off = 4096; off < 4096 * 8; off += 4096)
		assert_int_equal(pwrite(fd, junk, sizeof(junk), off), (ssize_t)sizeof(junk));
	close(fd);

	r = iovm_store_open(f->db, &s, &e);
	if (r >= 0) {
		r = iovm_store_vm_list(s, &list, &n, &e);
		free(list);
		iovm_store_close(s);
	}
	assert_int_equal(r, -EBADMSG);
	assert_non_null(strstr(e.msg, f->db));
}

/* ---- records ---------------------------------------------------------------------- */

static void test_pf_and_vf_config(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_pf pf = { .pf = "0000:02:00.0", .num_vfs = 4, .driver = "host" }, *pfs = NULL;
	iovm_store_vf_config vc = { .pf = "0000:02:00.0" }, *vcs = NULL;
	size_t n = 0;
	iovm_error e = {};

	/* No VF config without desired PF state. */
	vc.vf = 1;
	assert_int_equal(iovm_store_vf_config_put(s, &vc, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "0000:02:00.0"));

	assert_int_equal(iovm_store_pf_put(s, &pf, &e), 0);
	pf.num_vfs = 6;   /* upsert */
	assert_int_equal(iovm_store_pf_put(s, &pf, &e), 0);
	snprintf(pf.pf, sizeof(pf.pf), "0000:01:00.0");
	assert_int_equal(iovm_store_pf_put(s, &pf, &e), 0);
	assert_int_equal(iovm_store_pf_list(s, &pfs, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(pfs[0].pf, "0000:01:00.0");
	assert_int_equal(pfs[1].num_vfs, 6);
	free(pfs);

	for (unsigned i = 0; i < 3; i++) {
		vc.vf = i;
		vc.cfg.present = IOVM_VFNET_TRUST;
		vc.cfg.trust = i & 1;
		assert_int_equal(iovm_store_vf_config_put(s, &vc, &e), 0);
	}
	vc.cfg.present = IOVM_VFNET_VLAN;
	vc.cfg.vlan = 4095;
	assert_int_equal(iovm_store_vf_config_put(s, &vc, &e), -EINVAL);
	assert_int_equal(iovm_store_vf_config_list(s, "02:00.0", &vcs, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_int_equal(vcs[1].vf, 1);
	assert_int_equal(vcs[1].cfg.present, IOVM_VFNET_TRUST);
	assert_true(vcs[1].cfg.trust);
	free(vcs);
	assert_int_equal(iovm_store_vf_config_delete(s, "0000:02:00.0", 2, &e), 0);
	assert_int_equal(iovm_store_vf_config_delete(s, "0000:02:00.0", 2, &e), -ENOENT);

	/* Deleting the PF's desired state takes its VF configs along. */
	assert_int_equal(iovm_store_pf_delete(s, "0000:02:00.0", &e), 0);
	assert_int_equal(iovm_store_vf_config_list(s, NULL, &vcs, &n, &e), 0);
	assert_int_equal(n, 0);
	free(vcs);
	assert_int_equal(iovm_store_pf_get(s, "0000:02:00.0", &pf, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "pf 0000:02:00.0"));
	assert_int_equal(iovm_store_pf_put(s, &(iovm_store_pf){ .pf = "bogus", .driver = "x" }, &e), -EINVAL);
	iovm_store_close(s);
}

static void test_double_assignment(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_assignment a, *list = NULL;
	size_t n = 0;
	iovm_error e = {};

	add_vm(s, "alpha", IOVM_PRIO_NORMAL);
	add_vm(s, "beta", IOVM_PRIO_LOW);
	assert_int_equal(do_assign(s, "0000:01:10.2", "alpha", &e), 0);

	/* Another VM, spelled differently: same VF, refused, holder named. */
	assert_int_equal(do_assign(s, "01:10.2", "beta", &e), -EBUSY);
	assert_non_null(strstr(e.msg, "0000:01:10.2"));
	assert_non_null(strstr(e.msg, "vm alpha"));
	/* The same VM twice is a bug in the caller too. */
	assert_int_equal(do_assign(s, "0000:01:10.2", "alpha", &e), -EBUSY);
	/* Unknown VM. */
	assert_int_equal(do_assign(s, "0000:01:10.3", "gamma", &e), -ENOENT);
	assert_non_null(strstr(e.msg, "gamma"));

	assert_int_equal(iovm_store_assignment_set_state(s, "0000:01:10.2", IOVM_STORE_ATTACHED,
							 "iovm-0000-01-10.2", &e), 0);
	assert_int_equal(iovm_store_assignment_get(s, "0000:01:10.2", &a, &e), 0);
	assert_int_equal(a.state, IOVM_STORE_ATTACHED);
	assert_string_equal(a.devid, "iovm-0000-01-10.2");
	assert_int_equal(iovm_store_assignment_set_state(s, "0000:01:10.2", IOVM_STORE_DETACHING, NULL, &e), 0);
	assert_int_equal(iovm_store_assignment_get(s, "0000:01:10.2", &a, &e), 0);
	assert_string_equal(a.devid, "iovm-0000-01-10.2");   /* NULL kept it */
	assert_int_equal(iovm_store_assignment_set_state(s, "0000:01:10.7", IOVM_STORE_ATTACHED, NULL, &e),
			 -ENOENT);

	/* A VM holding a VF cannot be deleted. */
	assert_int_equal(iovm_store_vm_delete(s, "alpha", &e), -EBUSY);
	assert_non_null(strstr(e.msg, "0000:01:10.2"));

	assert_int_equal(iovm_store_assignment_list(s, "beta", &list, &n, &e), 0);
	assert_int_equal(n, 0);
	free(list);
	assert_int_equal(iovm_store_unassign(s, "0000:01:10.2", &e), 0);
	assert_int_equal(iovm_store_unassign(s, "0000:01:10.2", &e), -ENOENT);
	assert_int_equal(do_assign(s, "0000:01:10.2", "beta", &e), 0);
	assert_int_equal(iovm_store_assignment_list(s, NULL, &list, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].vm, "beta");
	free(list);
	assert_int_equal(iovm_store_vm_delete(s, "alpha", &e), 0);
	assert_int_equal(iovm_store_vm_delete(s, "alpha", &e), -ENOENT);
	iovm_store_close(s);
}

static void test_saved_settings(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_vf_saved v = { .vf = "0000:01:10.4", .pf = "0000:01:00.0", .vf_index = 2 }, g, *list = NULL;
	size_t n = 0;
	iovm_error e = {};

	v.cfg.present = IOVM_VFNET_MAC;
	memcpy(v.cfg.mac, (uint8_t[]){ 0x52, 0x54, 0, 0x12, 0x34, 0x56 }, 6);
	assert_int_equal(iovm_store_vf_saved_put(s, &v, &e), 0);
	/* A second save would overwrite the original with iovm's own settings. */
	v.cfg.mac[5] = 0x99;
	assert_int_equal(iovm_store_vf_saved_put(s, &v, &e), -EEXIST);
	assert_non_null(strstr(e.msg, "0000:01:10.4"));
	assert_int_equal(iovm_store_vf_saved_get(s, "01:10.4", &g, &e), 0);
	assert_int_equal(g.cfg.present, IOVM_VFNET_MAC);
	assert_int_equal(g.cfg.mac[5], 0x56);
	assert_string_equal(g.driver, "");
	assert_int_equal(iovm_store_vf_saved_list(s, &list, &n, &e), 0);
	assert_int_equal(n, 1);
	free(list);
	assert_int_equal(iovm_store_vf_saved_delete(s, "0000:01:10.4", &e), 0);
	assert_int_equal(iovm_store_vf_saved_get(s, "0000:01:10.4", &g, &e), -ENOENT);
	iovm_store_close(s);
}

static void test_vm_qga(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_vm vm = { .name = "g1", .qmp = "/run/g1.qmp", .priority = IOVM_PRIO_NORMAL,
			     .numa_node = 0, .qga = "/run/g1.qga" }, g, *list = NULL;
	size_t n = 0;
	iovm_error e = {};

	assert_int_equal(iovm_store_vm_put(s, &vm, &e), 0);
	add_vm(s, "g0", IOVM_PRIO_LOW);      /* none: qga left "" */
	assert_int_equal(iovm_store_vm_get(s, "g1", &g, &e), 0);
	assert_string_equal(g.qga, "/run/g1.qga");
	assert_int_equal(iovm_store_vm_list(s, &list, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "g0");
	assert_string_equal(list[0].qga, "");
	assert_string_equal(list[1].qga, "/run/g1.qga");
	free(list);

	/* The upsert replaces it, and can clear it. */
	snprintf(vm.qga, sizeof(vm.qga), "/run/other.qga");
	assert_int_equal(iovm_store_vm_put(s, &vm, &e), 0);
	assert_int_equal(iovm_store_vm_get(s, "g1", &g, &e), 0);
	assert_string_equal(g.qga, "/run/other.qga");
	vm.qga[0] = '\0';
	assert_int_equal(iovm_store_vm_put(s, &vm, &e), 0);
	assert_int_equal(iovm_store_vm_get(s, "g1", &g, &e), 0);
	assert_string_equal(g.qga, "");

	/* Not NUL-terminated within the field: refused, the row unchanged. */
	memset(vm.qga, 'q', sizeof(vm.qga));
	assert_int_equal(iovm_store_vm_put(s, &vm, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "vm g1"));
	assert_int_equal(iovm_store_vm_get(s, "g1", &g, &e), 0);
	assert_string_equal(g.qga, "");
	iovm_store_close(s);
}

static void test_share_records(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_share sh = { .vf = "01:10.3", .vm = "alpha", .devid = "net-a", .ifname = "macvtap3",
				.state = IOVM_STORE_ATTACHING }, g, *list = NULL;
	size_t n = 0;
	iovm_error e = {};

	add_vm(s, "alpha", IOVM_PRIO_NORMAL);
	add_vm(s, "beta", IOVM_PRIO_NORMAL);
	add_vm(s, "gamma", IOVM_PRIO_NORMAL);

	/* One VF, several VMs; and one VM on several VFs. */
	assert_int_equal(iovm_store_share_add(s, &sh, &e), 0);
	assert_int_equal(do_share(s, "0000:01:10.3", "gamma", &e), 0);
	assert_int_equal(do_share(s, "0000:01:10.3", "beta", &e), 0);
	assert_int_equal(do_share(s, "0000:01:10.1", "gamma", &e), 0);

	assert_int_equal(iovm_store_share_get(s, "0000:01:10.3", "alpha", &g, &e), 0);
	assert_string_equal(g.vf, "0000:01:10.3");     /* normalised */
	assert_string_equal(g.vm, "alpha");
	assert_string_equal(g.devid, "net-a");
	assert_string_equal(g.ifname, "macvtap3");
	assert_int_equal(g.state, IOVM_STORE_ATTACHING);
	assert_true(g.updated > 0);

	/* The same VM twice, however the VF is spelled. */
	assert_int_equal(do_share(s, "0000:01:10.3", "alpha", &e), -EEXIST);
	assert_non_null(strstr(e.msg, "0000:01:10.3"));
	assert_non_null(strstr(e.msg, "vm alpha"));
	/* An unknown VM. */
	assert_int_equal(do_share(s, "0000:01:10.3", "delta", &e), -ENOENT);
	assert_non_null(strstr(e.msg, "delta"));
	assert_non_null(strstr(e.msg, "0000:01:10.3"));
	/* Bad arguments. */
	assert_int_equal(do_share(s, "bogus", "alpha", &e), -EINVAL);
	assert_int_equal(do_share(s, "0000:01:10.3", "", &e), -EINVAL);
	sh.state = 9;
	assert_int_equal(iovm_store_share_add(s, &sh, &e), -EINVAL);
	sh.state = IOVM_STORE_RESERVED;
	memset(sh.ifname, 'x', sizeof(sh.ifname));
	assert_int_equal(iovm_store_share_add(s, &sh, &e), -EINVAL);
	assert_int_equal(iovm_store_share_add(s, NULL, &e), -EINVAL);

	/* Lists: everything ordered by VF then VM; filtered by either. */
	assert_int_equal(iovm_store_share_list(s, NULL, NULL, &list, &n, &e), 0);
	assert_int_equal(n, 4);
	assert_string_equal(list[0].vf, "0000:01:10.1");
	assert_string_equal(list[1].vm, "alpha");
	assert_string_equal(list[2].vm, "beta");
	assert_string_equal(list[3].vm, "gamma");
	assert_string_equal(list[3].vf, "0000:01:10.3");
	free(list);
	assert_int_equal(iovm_store_share_list(s, "01:10.3", NULL, &list, &n, &e), 0);
	assert_int_equal(n, 3);
	free(list);
	assert_int_equal(iovm_store_share_list(s, NULL, "gamma", &list, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].vf, "0000:01:10.1");
	assert_string_equal(list[1].vf, "0000:01:10.3");
	free(list);
	assert_int_equal(iovm_store_share_list(s, "0000:01:10.1", "alpha", &list, &n, &e), 0);
	assert_int_equal(n, 0);
	free(list);
	assert_int_equal(iovm_store_share_list(s, "bogus", NULL, &list, &n, &e), -EINVAL);
	assert_int_equal(iovm_store_share_list(s, NULL, NULL, NULL, &n, &e), -EINVAL);

	/* set_state: NULL keeps devid and ifname, a string replaces it. */
	assert_int_equal(iovm_store_share_set_state(s, "0000:01:10.3", "alpha", IOVM_STORE_ATTACHED, NULL,
						    NULL, &e), 0);
	assert_int_equal(iovm_store_share_get(s, "0000:01:10.3", "alpha", &g, &e), 0);
	assert_int_equal(g.state, IOVM_STORE_ATTACHED);
	assert_string_equal(g.devid, "net-a");
	assert_string_equal(g.ifname, "macvtap3");
	assert_int_equal(iovm_store_share_set_state(s, "01:10.3", "alpha", IOVM_STORE_DETACHING, "net-a2",
						    NULL, &e), 0);
	assert_int_equal(iovm_store_share_set_state(s, "01:10.3", "alpha", IOVM_STORE_RELEASE_PENDING, NULL,
						    "macvtap9", &e), 0);
	assert_int_equal(iovm_store_share_get(s, "0000:01:10.3", "alpha", &g, &e), 0);
	assert_int_equal(g.state, IOVM_STORE_RELEASE_PENDING);
	assert_string_equal(g.devid, "net-a2");
	assert_string_equal(g.ifname, "macvtap9");
	/* The other sharers of the VF are untouched. */
	assert_int_equal(iovm_store_share_get(s, "0000:01:10.3", "beta", &g, &e), 0);
	assert_int_equal(g.state, IOVM_STORE_RESERVED);
	assert_string_equal(g.devid, "");
	assert_int_equal(iovm_store_share_set_state(s, "0000:01:10.1", "alpha", IOVM_STORE_ATTACHED, NULL,
						    NULL, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "0000:01:10.1"));
	assert_non_null(strstr(e.msg, "vm alpha"));
	assert_int_equal(iovm_store_share_set_state(s, "0000:01:10.3", "alpha", 9, NULL, NULL, &e), -EINVAL);
	assert_int_equal(iovm_store_share_get(s, "0000:01:10.1", "alpha", &g, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "0000:01:10.1 with vm alpha"));
	assert_int_equal(iovm_store_share_get(s, "0000:01:10.1", NULL, &g, &e), -EINVAL);

	/* A VM that shares a VF cannot be deleted; the message names the VF. */
	assert_int_equal(iovm_store_vm_delete(s, "gamma", &e), -EBUSY);
	assert_non_null(strstr(e.msg, "shares vf 0000:01:10.1"));
	assert_int_equal(iovm_store_share_remove(s, "01:10.1", "gamma", &e), 0);
	assert_int_equal(iovm_store_share_remove(s, "01:10.1", "gamma", &e), -ENOENT);
	assert_non_null(strstr(e.msg, "0000:01:10.1"));
	assert_int_equal(iovm_store_vm_delete(s, "gamma", &e), -EBUSY);
	assert_non_null(strstr(e.msg, "shares vf 0000:01:10.3"));
	assert_int_equal(iovm_store_share_remove(s, "0000:01:10.3", "gamma", &e), 0);
	assert_int_equal(iovm_store_vm_delete(s, "gamma", &e), 0);
	assert_int_equal(iovm_store_share_list(s, "0000:01:10.3", NULL, &list, &n, &e), 0);
	assert_int_equal(n, 2);
	free(list);
	assert_int_equal(iovm_store_share_remove(s, "0000:01:10.3", "", &e), -EINVAL);
	iovm_store_close(s);
}

static void test_share_vs_exclusive(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_assignment a = { .vf = "0000:01:10.5", .vm = "owner", .mode = IOVM_MODE_SHARED,
				    .state = IOVM_STORE_RESERVED };
	iovm_store_share *list = NULL;
	size_t n = 0;
	iovm_error e = {};

	add_vm(s, "owner", IOVM_PRIO_HIGH);
	add_vm(s, "u1", IOVM_PRIO_NORMAL);
	add_vm(s, "u2", IOVM_PRIO_NORMAL);

	/* Held exclusively -> cannot be shared; the holder is named. */
	assert_int_equal(do_assign(s, "0000:01:10.2", "owner", &e), 0);
	assert_int_equal(do_share(s, "01:10.2", "u1", &e), -EBUSY);
	assert_non_null(strstr(e.msg, "0000:01:10.2"));
	assert_non_null(strstr(e.msg, "vm owner"));
	assert_non_null(strstr(e.msg, "vm u1"));
	assert_int_equal(iovm_store_share_list(s, "0000:01:10.2", NULL, &list, &n, &e), 0);
	assert_int_equal(n, 0);
	free(list);

	/* Shared -> cannot be held exclusively; every sharer is named. */
	assert_int_equal(do_share(s, "0000:01:10.4", "u2", &e), 0);
	assert_int_equal(do_share(s, "0000:01:10.4", "u1", &e), 0);
	assert_int_equal(do_assign(s, "01:10.4", "owner", &e), -EBUSY);
	assert_non_null(strstr(e.msg, "0000:01:10.4"));
	assert_non_null(strstr(e.msg, "shared with vm u1, vm u2"));
	assert_non_null(strstr(e.msg, "vm owner"));
	/* The trigger is about exclusive holders only: a shared-mode
	 * assignment of the VF is not refused by it. */
	snprintf(a.vf, sizeof(a.vf), "0000:01:10.4");
	assert_int_equal(iovm_store_assign(s, &a, &e), 0);
	assert_int_equal(iovm_store_unassign(s, "0000:01:10.4", &e), 0);

	/* Once the last sharer is gone the VF can be held exclusively, and
	 * once that ends it can be shared again. */
	assert_int_equal(iovm_store_share_remove(s, "0000:01:10.4", "u1", &e), 0);
	assert_int_equal(do_assign(s, "0000:01:10.4", "owner", &e), -EBUSY);
	assert_non_null(strstr(e.msg, "vm u2"));
	assert_null(strstr(e.msg, "vm u1"));
	assert_int_equal(iovm_store_share_remove(s, "0000:01:10.4", "u2", &e), 0);
	assert_int_equal(do_assign(s, "0000:01:10.4", "owner", &e), 0);
	assert_int_equal(iovm_store_unassign(s, "0000:01:10.2", &e), 0);
	assert_int_equal(do_share(s, "0000:01:10.2", "u1", &e), 0);
	iovm_store_close(s);
}

/* The triggers, without the C API: whatever code writes the file, the
 * database refuses a VF both held exclusively and shared. */
static void test_share_triggers_raw_sql(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	char msg[256];
	iovm_error e = {};

	add_vm(s, "owner", IOVM_PRIO_NORMAL);
	add_vm(s, "u1", IOVM_PRIO_NORMAL);
	iovm_store_close(s);
	raw_exec(f->db, "INSERT INTO assignment VALUES ('0000:01:10.0', 'owner', 'exclusive', '', 'attached', 1);"
			"INSERT INTO vf_share (vf, vm, state, updated) VALUES ('0000:01:10.1', 'u1', 'attached', 1);"
			"INSERT INTO assignment VALUES ('0000:01:10.2', 'owner', 'shared', '', 'attached', 1);");

	/* Shared row for an exclusively held VF. */
	assert_int_equal(raw_exec_rc(f->db, "INSERT INTO vf_share (vf, vm, state, updated) "
					    "VALUES ('0000:01:10.0', 'u1', 'reserved', 2)", msg, sizeof(msg)),
			 SQLITE_CONSTRAINT_TRIGGER);
	assert_non_null(strstr(msg, "exclusively"));
	/* Exclusive row for a shared VF. */
	assert_int_equal(raw_exec_rc(f->db, "INSERT INTO assignment VALUES ('0000:01:10.1', 'owner', "
					    "'exclusive', '', 'reserved', 2)", msg, sizeof(msg)),
			 SQLITE_CONSTRAINT_TRIGGER);
	assert_non_null(strstr(msg, "shared"));
	/* The side doors: re-keying a row, or turning a shared-mode
	 * assignment exclusive. */
	assert_int_equal(raw_exec_rc(f->db, "UPDATE vf_share SET vf = '0000:01:10.0'", NULL, 0),
			 SQLITE_CONSTRAINT_TRIGGER);
	assert_int_equal(raw_exec_rc(f->db, "UPDATE assignment SET vf = '0000:01:10.1' "
					    "WHERE vf = '0000:01:10.0'", NULL, 0),
			 SQLITE_CONSTRAINT_TRIGGER);
	raw_exec(f->db, "INSERT INTO vf_share (vf, vm, state, updated) VALUES ('0000:01:10.2', 'u1', 'attached', 1)");
	assert_int_equal(raw_exec_rc(f->db, "UPDATE assignment SET mode = 'exclusive' "
					    "WHERE vf = '0000:01:10.2'", NULL, 0),
			 SQLITE_CONSTRAINT_TRIGGER);
	/* Nothing of the refused statements was written. */
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM vf_share WHERE vf = '0000:01:10.0'"), 0);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM assignment WHERE mode = 'exclusive'"), 1);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM vf_share WHERE vf = '0000:01:10.1'"), 1);
	/* Updates that do not make a VF both are fine. */
	assert_int_equal(raw_exec_rc(f->db, "UPDATE vf_share SET state = 'detaching'", NULL, 0), SQLITE_OK);
	assert_int_equal(raw_exec_rc(f->db, "UPDATE assignment SET state = 'detaching'", NULL, 0), SQLITE_OK);

	/* The store maps the raw refusal to -EBUSY too. */
	s = open_ok(f->db);
	assert_int_equal(do_share(s, "0000:01:10.0", "owner", &e), -EBUSY);
	assert_int_equal(do_assign(s, "0000:01:10.1", "owner", &e), -EBUSY);
	iovm_store_close(s);
}

/* ---- intents and transactions ------------------------------------------------------------ */

static void test_intent_lifecycle(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_intent it, *list = NULL;
	size_t n = 0;
	int64_t a, b;
	iovm_error e = {};

	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_CREATE_VFS, "pf 0000:01:00.0",
						 &(iovm_store_intent_args){ .count = 7, .driver = "host" }, &a, &e), 0);
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_SET_VFS, "pf 0000:02:00.0",
						 &(iovm_store_intent_args){ .driver = "vfio-pci" }, &b, &e), 0);
	assert_true(b > a);
	assert_int_equal(iovm_store_intent_step(s, a, "autoprobe-off", &e), 0);
	assert_int_equal(iovm_store_intent_step(s, a, "numvfs-written", &e), 0);
	assert_int_equal(iovm_store_intent_get(s, a, &it, &e), 0);
	assert_string_equal(it.step, "numvfs-written");
	assert_int_equal(it.status, IOVM_INTENT_OPEN);
	assert_int_equal(it.finished, 0);

	assert_int_equal(iovm_store_intent_finish(s, a, IOVM_INTENT_DONE, &e), 0);
	assert_int_equal(iovm_store_intent_get(s, a, &it, &e), 0);
	assert_int_equal(it.status, IOVM_INTENT_DONE);
	assert_true(it.finished > 0);
	/* A closed intent takes no more steps, and closes once. */
	assert_int_equal(iovm_store_intent_step(s, a, "late", &e), -EALREADY);
	assert_non_null(strstr(e.msg, "done"));
	assert_int_equal(iovm_store_intent_finish(s, a, IOVM_INTENT_ROLLED_BACK, &e), -EALREADY);
	assert_int_equal(iovm_store_intent_finish(s, b, IOVM_INTENT_OPEN, &e), -EINVAL);
	assert_int_equal(iovm_store_intent_step(s, 9999, "x", &e), -ENOENT);
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_ATTACH, "vf x", NULL, &a, &e), -EINVAL);
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_ATTACH, "", &vm1_args, &a, &e), -EINVAL);

	assert_int_equal(iovm_store_intent_list_open(s, &list, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].id, b);
	assert_string_equal(list[0].args.driver, "vfio-pci");
	assert_int_equal(list[0].args.count, 0);
	free(list);

	/* Pruning drops finished history, never open intents. */
	assert_int_equal(iovm_store_intent_prune(s, INT64_MAX, &e), 1);
	assert_int_equal(iovm_store_intent_get(s, b, &it, &e), 0);
	iovm_store_close(s);
}

/* A child that writes an intent and dies without closing the store. With
 * in_tx, the intent is written inside an uncommitted transaction. */
static void crash_child(const char *path, bool in_tx)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		iovm_store *s = NULL;
		int64_t id;

		if (iovm_store_open(path, &s, NULL) < 0)
			_exit(10);
		if (in_tx && iovm_store_begin(s, NULL) < 0)
			_exit(11);
		if (iovm_store_intent_begin(s, IOVM_INTENT_ATTACH, in_tx ? "vf uncommitted" : "vf committed",
					    &vm1_args, &id, NULL) < 0 ||
		    iovm_store_intent_step(s, id, "reserved", NULL) < 0)
			_exit(12);
		_exit(0);   /* no close, no commit */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_intent_survives_crash(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_intent *list = NULL;
	size_t n = 0;
	int64_t id;
	iovm_error e = {};

	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_DETACH, "vf 0000:01:10.0", &vm1_args, &id, &e), 0);
	assert_int_equal(iovm_store_intent_step(s, id, "device_del-sent", &e), 0);
	iovm_store_close(s);

	crash_child(f->db, false);
	crash_child(f->db, true);

	s = open_ok(f->db);
	assert_int_equal(iovm_store_intent_list_open(s, &list, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].id, id);
	assert_int_equal(list[0].kind, IOVM_INTENT_DETACH);
	assert_string_equal(list[0].step, "device_del-sent");
	assert_string_equal(list[1].object, "vf committed");
	assert_string_equal(list[1].step, "reserved");
	free(list);
	iovm_store_close(s);
}

/* Every kind's arguments go in typed and come back equal, through the
 * file; names with JSON's special characters survive. */
static void test_intent_args_round_trip(void **state)
{
	static const struct {
		iovm_store_intent_kind kind;
		iovm_store_intent_args args;
		const char *stored;
	} cases[] = {
		{ IOVM_INTENT_ATTACH, { .vm = "web1", .mode = IOVM_MODE_EXCLUSIVE, .devid = "iovm-0000-01-10.2" },
		  "{\"vm\":\"web1\",\"mode\":\"exclusive\",\"devid\":\"iovm-0000-01-10.2\"}" },
		{ IOVM_INTENT_ATTACH, { .vm = "u1", .mode = IOVM_MODE_SHARED },
		  "{\"vm\":\"u1\",\"mode\":\"shared\"}" },
		{ IOVM_INTENT_DETACH, { .vm = "we\"b\\1/x", .mode = IOVM_MODE_EXCLUSIVE, .devid = "" },
		  "{\"vm\":\"we\\\"b\\\\1/x\",\"mode\":\"exclusive\",\"devid\":\"\"}" },
		{ IOVM_INTENT_DETACH, { .vm = "u2", .mode = IOVM_MODE_SHARED },
		  "{\"vm\":\"u2\",\"mode\":\"shared\"}" },
		{ IOVM_INTENT_SET_VFS, { .count = 7, .driver = "host" }, "{\"count\":7,\"driver\":\"host\"}" },
		{ IOVM_INTENT_CREATE_VFS, { .count = 0, .driver = "vfio-pci" },
		  "{\"count\":0,\"driver\":\"vfio-pci\"}" },
	};
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_intent it, *list = NULL;
	char sql[128], text[IOVM_STORE_ARGS_MAX];
	size_t n = 0;
	iovm_error e = {};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		int64_t id;

		assert_int_equal(iovm_store_intent_begin(s, cases[i].kind, "vf 0000:01:10.2", &cases[i].args, &id,
							 &e), 0);
		assert_int_equal(iovm_store_intent_get(s, id, &it, &e), 0);
		assert_int_equal(it.kind, cases[i].kind);
		assert_string_equal(it.args_error, "");
		assert_memory_equal(&it.args, &cases[i].args, sizeof(it.args));
		/* Plain JSON: what an older iovmd's strstr for "mode":"shared"
		 * and the sqlite3 shell read. */
		snprintf(sql, sizeof(sql), "SELECT args FROM intent WHERE id = %lld", (long long)id);
		raw_text(f->db, sql, text, sizeof(text));
		assert_string_equal(text, cases[i].stored);
	}
	assert_int_equal(iovm_store_intent_list_open(s, &list, &n, &e), 0);
	assert_int_equal(n, ELEMENTSOF(cases));
	for (size_t i = 0; i < n; i++)
		assert_memory_equal(&list[i].args, &cases[i].args, sizeof(list[i].args));
	free(list);
	iovm_store_close(s);

	/* Rows as the snprintf-built format wrote them still decode: an
	 * exclusive attach had no "mode". */
	raw_exec(f->db, "DELETE FROM intent;"
		 "INSERT INTO intent (kind, object, args, started) VALUES"
		 "  ('attach', 'vf 0000:01:10.3', '{\"vm\":\"db1\",\"devid\":\"iovm-0000-01-10.3\"}', 1),"
		 "  ('detach', 'vf 0000:01:10.4', '{\"vm\":\"u1\",\"mode\":\"shared\"}', 2),"
		 "  ('set-vfs', 'pf 0000:01:00.0', '{\"count\":4,\"driver\":\"vfio-pci\"}', 3);");
	s = open_ok(f->db);
	assert_int_equal(iovm_store_intent_list_open(s, &list, &n, &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(list[0].args.vm, "db1");
	assert_int_equal(list[0].args.mode, IOVM_MODE_EXCLUSIVE);
	assert_string_equal(list[0].args.devid, "iovm-0000-01-10.3");
	assert_string_equal(list[1].args.vm, "u1");
	assert_int_equal(list[1].args.mode, IOVM_MODE_SHARED);
	assert_int_equal(list[2].args.count, 4);
	assert_string_equal(list[2].args.driver, "vfio-pci");
	for (size_t i = 0; i < n; i++)
		assert_string_equal(list[i].args_error, "");
	free(list);
	iovm_store_close(s);
}

/* A live set-vfs carries each holder: what a restarted iovmd needs to give
 * every VM its VF back (docs/resize.md). Bad holders are refused both ways. */
static void test_intent_args_live(void **state)
{
	static iovm_store_intent_args a, back;
	iovm_store_intent *list = NULL;
	size_t n = 0;
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_intent it;
	iovm_error e = {};
	char text[IOVM_STORE_ARGS_MAX];
	int64_t id;

	a = (iovm_store_intent_args){ .count = 4, .driver = "host", .live = IOVM_LIVE_REPLUG, .from = 2, .n_live = 2 };
	a.holders[0] = (iovm_store_live_holder){ .vm = "g1", .vf = "0000:01:10.0", .index = 0, .mode = IOVM_LIVE_REPLUG,
						  .devid = "iovm-0000-01-10.0", .port = "hp1" };
	a.holders[0].net.present = IOVM_VFNET_MAC | IOVM_VFNET_VLAN | IOVM_VFNET_SPOOFCHK;
	memcpy(a.holders[0].net.mac, (uint8_t[6]){ 2, 0x37, 0, 0, 0, 1 }, 6);
	a.holders[0].net.vlan = 100;
	a.holders[0].net.spoofchk = true;
	a.holders[1] = (iovm_store_live_holder){ .vm = "g2", .vf = "0000:01:10.2", .index = 1, .mode = IOVM_LIVE_FAILOVER,
						  .devid = "iovm-0000-01-10.2", .port = "hp2", .failover_pair_id = "net1" };
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_SET_VFS, "pf 0000:01:00.0", &a, &id, &e), 0);
	raw_text(f->db, "SELECT args FROM intent", text, sizeof(text));
	assert_non_null(strstr(text, "\"live\":{\"holders\":[{\"vm\":\"g1\",\"vf\":\"0000:01:10.0\",\"mode\":\"replug\""));
	assert_non_null(strstr(text, "\"failover_pair_id\":\"net1\""));
	assert_int_equal(iovm_store_intent_get(s, id, &it, &e), 0);
	back = it.args;
	assert_int_equal(back.n_live, 2);
	assert_int_equal(back.live, IOVM_LIVE_REPLUG);
	assert_int_equal(back.from, 2);
	assert_int_equal(back.count, 4);
	for (size_t i = 0; i < 2; i++) {
		assert_string_equal(back.holders[i].vm, a.holders[i].vm);
		assert_string_equal(back.holders[i].vf, a.holders[i].vf);
		assert_int_equal(back.holders[i].index, a.holders[i].index);
		assert_int_equal(back.holders[i].mode, a.holders[i].mode);
		assert_string_equal(back.holders[i].devid, a.holders[i].devid);
		assert_string_equal(back.holders[i].port, a.holders[i].port);
		assert_string_equal(back.holders[i].failover_pair_id, a.holders[i].failover_pair_id);
		assert_int_equal(back.holders[i].net.present, a.holders[i].net.present);
	}
	assert_memory_equal(back.holders[0].net.mac, a.holders[0].net.mac, 6);
	assert_int_equal(back.holders[0].net.vlan, 100);
	assert_true(back.holders[0].net.spoofchk);

	/* In: a holder without a mode of its own. */
	a.holders[1].mode = IOVM_LIVE_AUTO;
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_SET_VFS, "pf 0000:01:00.0", &a, &id, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "vm g2 has no live mode"));
	iovm_store_close(s);

	/* Out: hand-written rows. */
	raw_exec(f->db, "DELETE FROM intent;"
		 "INSERT INTO intent (kind, object, args, started) VALUES"
		 "  ('set-vfs', 'pf a', '{\"count\":4,\"driver\":\"host\",\"live\":{\"mode\":\"auto\",\"from\":2,"
		 "\"holders\":[{\"vm\":\"g1\",\"vf\":\"0000:01:10.0\",\"index\":0,\"mode\":\"sideways\","
		 "\"devid\":\"d\"}]}}', 1),"
		 "  ('set-vfs', 'pf b', '{\"count\":4,\"driver\":\"host\",\"live\":{\"mode\":\"auto\",\"from\":2,"
		 "\"holders\":[]}}', 2);");
	s = open_ok(f->db);
	assert_int_equal(iovm_store_intent_list_open(s, &list, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_non_null(strstr(list[0].args_error, "\"sideways\" is no live mode"));
	assert_non_null(strstr(list[1].args_error, "0 holders"));
	assert_int_equal(list[0].args.n_live, 0);
	free(list);
	iovm_store_close(s);
}

/* Arguments a kind cannot use are refused on the way in (-EINVAL) and on
 * the way out (-EBADMSG from get; list_open keeps the row with the reason),
 * naming the member. */
static void test_intent_args_malformed(void **state)
{
	static const struct {
		const char *kind, *args, *why;
	} bad[] = {
		{ "attach", "not json", "not a JSON object" },
		{ "attach", "[1,2]", "not a JSON object" },
		{ "attach", "{\"vm\":\"a\"} junk", "not a JSON object" },
		{ "attach", "", "not a JSON object" },
		{ "attach", "{}", "member \"vm\" is missing" },
		{ "detach", "{\"vm\":5}", "member \"vm\" is not a string" },
		{ "detach", "{\"vm\":\"\"}", "member \"vm\" is empty" },
		{ "detach", "{\"vm\":\"a\",\"mode\":\"both\"}", "member \"mode\" is neither exclusive nor shared" },
		{ "attach", "{\"vm\":\"a\",\"devid\":[]}", "member \"devid\" is not a string" },
		{ "attach", "{\"vm\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
		  "member \"vm\" is too long" },
		{ "set-vfs", "{\"driver\":\"host\"}", "member \"count\" is missing" },
		{ "set-vfs", "{\"count\":\"4\",\"driver\":\"host\"}", "member \"count\" is not an integer" },
		{ "set-vfs", "{\"count\":-1,\"driver\":\"host\"}", "member \"count\" is out of range" },
		{ "set-vfs", "{\"count\":4294967296,\"driver\":\"host\"}", "member \"count\" is out of range" },
		{ "create-vfs", "{\"count\":4}", "member \"driver\" is missing" },
	};
	fixture *f = *state;
	iovm_store_intent_args unterminated = {};
	iovm_store_intent it, *list = NULL;
	size_t n = 0;
	int64_t id;
	iovm_error e = {};
	iovm_store *s = open_ok(f->db);

	/* In: what the kind needs, named. */
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_ATTACH, "vf x", &(iovm_store_intent_args){}, &id,
						 &e), -EINVAL);
	assert_string_equal(e.msg, "intent attach vf x: arguments: member \"vm\" is missing");
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_SET_VFS, "pf y", &(iovm_store_intent_args){}, &id,
						 &e), -EINVAL);
	assert_non_null(strstr(e.msg, "member \"driver\" is missing"));
	memset(unterminated.vm, 'a', sizeof(unterminated.vm));
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_DETACH, "vf x", &unterminated, &id, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "member \"vm\" is unterminated or too long"));
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_DETACH, "vf x",
						 &(iovm_store_intent_args){ .vm = "a", .mode = 9 }, &id, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "member \"mode\""));
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM intent"), 0);
	iovm_store_close(s);

	/* Out: rows written by hand, one good one among them. */
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		char *sql = sqlite3_mprintf("INSERT INTO intent (kind, object, args, started) VALUES (%Q, 'vf z', %Q, 1)",
					    bad[i].kind, bad[i].args);

		raw_exec(f->db, sql);
		sqlite3_free(sql);
	}
	raw_exec(f->db, "INSERT INTO intent (kind, object, args, started) VALUES ('detach', 'vf ok', "
		 "'{\"vm\":\"ok\",\"mode\":\"shared\",\"later\":[1]}', 1)");   /* unknown members ignored */
	s = open_ok(f->db);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		char want[IOVM_ERROR_MSG_MAX];

		assert_int_equal(iovm_store_intent_get(s, (int64_t)i + 1, &it, &e), -EBADMSG);
		snprintf(want, sizeof(want), "intent %zu (%s vf z): stored arguments unreadable: %s", i + 1,
			 bad[i].kind, bad[i].why);
		assert_string_equal(e.msg, want);
	}
	assert_int_equal(iovm_store_intent_list_open(s, &list, &n, &e), 0);
	assert_int_equal(n, ELEMENTSOF(bad) + 1);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		assert_string_equal(list[i].args_error, bad[i].why);
		assert_string_equal(list[i].args.vm, "");
	}
	assert_string_equal(list[n - 1].args_error, "");
	assert_string_equal(list[n - 1].args.vm, "ok");
	free(list);
	/* A bad row still finishes, and then says so when stepped. */
	assert_int_equal(iovm_store_intent_finish(s, 1, IOVM_INTENT_ROLLED_BACK, &e), 0);
	assert_int_equal(iovm_store_intent_step(s, 1, "late", &e), -EALREADY);
	iovm_store_close(s);
}

static int64_t begin_attach(iovm_store *s)
{
	iovm_error e = {};
	int64_t id;

	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_ATTACH, "vf 0000:01:10.2", &vm1_args, &id, &e), 0);
	return id;
}

static void test_intent_prune_keep(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	iovm_store_intent it;
	int64_t id[7];
	iovm_error e = {};

	for (size_t i = 0; i < ELEMENTSOF(id); i++)
		id[i] = begin_attach(s);
	/* 0, 2, 3, 5, 6 finished; 1 and 4 open. */
	for (size_t i = 0; i < ELEMENTSOF(id); i++)
		if (i != 1 && i != 4)
			assert_int_equal(iovm_store_intent_finish(s, id[i], i % 2 ? IOVM_INTENT_DONE
									   : IOVM_INTENT_ROLLED_BACK, &e), 0);
	assert_int_equal(iovm_store_intent_prune_keep(s, 5, &e), 0);    /* fewer than the bound */
	assert_int_equal(iovm_store_intent_prune_keep(s, 3, &e), 2);    /* the oldest two finished */
	assert_int_equal(iovm_store_intent_get(s, id[0], &it, &e), -ENOENT);
	assert_int_equal(iovm_store_intent_get(s, id[2], &it, &e), -ENOENT);
	assert_int_equal(iovm_store_intent_get(s, id[1], &it, &e), 0);  /* open: never pruned */
	assert_int_equal(iovm_store_intent_get(s, id[3], &it, &e), 0);
	assert_int_equal(iovm_store_intent_prune_keep(s, 3, &e), 0);
	assert_int_equal(iovm_store_intent_prune_keep(s, 0, &e), 3);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM intent"), 2);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM intent WHERE status = 'open'"), 2);
	assert_int_equal(iovm_store_intent_prune_keep(NULL, 1, &e), -EINVAL);
	iovm_store_close(s);
}

/* 10,000 operations, each begin + step + finish, pruned as iovmd does: on
 * its refresh tick, keeping IOVM_STORE_INTENT_KEEP_DEFAULT finished intents.
 * OPS_PER_TICK stands for the operations one tick interval can see. The
 * rows stay within the bound and the file stops growing: SQLite reuses
 * the pages the deletes free. An open intent from the start survives.
 * Each tick's operations share one transaction: the rows and pages are
 * the same, and the test does not wait for 30,000 fsyncs. */
#define JOURNAL_OPS 10000
#define OPS_PER_TICK 100
static void test_intent_journal_bounded(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);
	int64_t open_id = begin_attach(s);
	long long pages_settled = 0, rows;
	iovm_error e = {};

	for (int i = 1; i <= JOURNAL_OPS; i++) {
		int64_t id;

		if (i % OPS_PER_TICK == 1)
			assert_int_equal(iovm_store_begin(s, &e), 0);
		id = begin_attach(s);

		assert_int_equal(iovm_store_intent_step(s, id, "reserved", &e), 0);
		assert_int_equal(iovm_store_intent_finish(s, id, i % 10 ? IOVM_INTENT_DONE : IOVM_INTENT_ROLLED_BACK,
							  &e), 0);
		if (i % OPS_PER_TICK)
			continue;
		assert_int_equal(iovm_store_commit(s, &e), 0);
		rows = raw_int(f->db, "SELECT count(*) FROM intent");
		assert_true(rows <= IOVM_STORE_INTENT_KEEP_DEFAULT + OPS_PER_TICK + 1);
		assert_true(iovm_store_intent_prune_keep(s, IOVM_STORE_INTENT_KEEP_DEFAULT, &e) >= 0);
		rows = raw_int(f->db, "SELECT count(*) FROM intent");
		assert_int_equal(rows, (i < IOVM_STORE_INTENT_KEEP_DEFAULT ? i : IOVM_STORE_INTENT_KEEP_DEFAULT) + 1);
		if (i == 2 * IOVM_STORE_INTENT_KEEP_DEFAULT)
			pages_settled = raw_int(f->db, "PRAGMA page_count");
	}
	/* A few pages of slack for where the b-tree splits fall. */
	assert_true(raw_int(f->db, "PRAGMA page_count") <= pages_settled + 4);
	assert_int_equal(raw_int(f->db, "SELECT count(*) FROM intent WHERE status = 'open'"), 1);
	assert_int_equal(raw_int(f->db, "SELECT min(id) FROM intent"), open_id);
	iovm_store_close(s);
}

/* The intents another program sees: it opens the file, reads, closes.
 * This binary again, exec'ed: a forked child would share SQLite's record
 * of the parent's connection and never take itself for the last one. */
static int count_in_child(const char *path)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		execl("/proc/self/exe", "test-store", "--count-intents", path, (char *)NULL);
		_exit(255);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* Another process closing its connection must not take itself for the
 * last one: if the store held no lock on the file (a descriptor of it
 * closed after SQLite opened it drops them all), that process would
 * checkpoint and remove the WAL, and what the store writes next would go
 * to a file nobody else sees and that a crash loses. */
static void test_other_process_sees_later_writes(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db);

	begin_attach(s);
	assert_int_equal(count_in_child(f->db), 1);
	begin_attach(s);
	assert_int_equal(count_in_child(f->db), 2);
	iovm_store_close(s);
	assert_int_equal(count_in_child(f->db), 2);
}

struct attach_step {
	int64_t intent;
	bool fail;
};

static int record_attach(iovm_store *s, void *userdata, iovm_error *err)
{
	struct attach_step *a = userdata;
	int r;

	r = do_assign(s, "0000:01:10.1", "vm1", err);
	if (r >= 0)
		r = iovm_store_intent_step(s, a->intent, "reserved", err);
	if (r >= 0 && a->fail)
		r = iovm_error_set(err, -EIO, "simulated failure");
	return r;
}

static void test_transaction(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db), *other;
	struct attach_step step = { .fail = true };
	iovm_store_assignment a;
	iovm_store_intent it;
	iovm_error e = {};

	add_vm(s, "vm1", IOVM_PRIO_NORMAL);
	assert_int_equal(iovm_store_intent_begin(s, IOVM_INTENT_ATTACH, "vf 0000:01:10.1", &vm1_args,
						 &step.intent, &e), 0);

	/* A failure half-way leaves neither the assignment nor the step. */
	assert_int_equal(iovm_store_transaction(s, record_attach, &step, &e), -EIO);
	assert_false(iovm_store_in_transaction(s));
	assert_int_equal(iovm_store_assignment_get(s, "0000:01:10.1", &a, &e), -ENOENT);
	assert_int_equal(iovm_store_intent_get(s, step.intent, &it, &e), 0);
	assert_string_equal(it.step, "");

	step.fail = false;
	assert_int_equal(iovm_store_transaction(s, record_attach, &step, &e), 0);
	assert_int_equal(iovm_store_assignment_get(s, "0000:01:10.1", &a, &e), 0);
	assert_int_equal(iovm_store_intent_get(s, step.intent, &it, &e), 0);
	assert_string_equal(it.step, "reserved");

	/* Explicit form; not nestable. */
	assert_int_equal(iovm_store_begin(s, &e), 0);
	assert_int_equal(iovm_store_begin(s, &e), -EALREADY);
	assert_int_equal(iovm_store_unassign(s, "0000:01:10.1", &e), 0);

	/* Another connection sees the write lock: its write waits out the
	 * busy timeout and fails with -EBUSY, not a generic error. */
	other = open_ok(f->db);
	assert_int_equal(do_assign(other, "0000:01:10.5", "vm1", &e), -EBUSY);
	assert_non_null(strstr(e.msg, "0000:01:10.5"));
	/* ...and does not see the uncommitted delete. */
	assert_int_equal(iovm_store_assignment_get(other, "0000:01:10.1", &a, &e), 0);

	assert_int_equal(iovm_store_rollback(s), 0);
	assert_int_equal(iovm_store_assignment_get(s, "0000:01:10.1", &a, &e), 0);
	assert_int_equal(iovm_store_commit(s, &e), -EINVAL);
	iovm_store_close(other);
	iovm_store_close(s);
}

/* In a child whose file size limit stops the WAL from growing: a
 * transaction whose commit cannot be written reports the error, leaves no
 * transaction open and none of its writes visible. */
static int share_then_fail(iovm_store *s, void *userdata, iovm_error *err)
{
	bool *fail = userdata;
	int r;

	r = do_share(s, "0000:01:10.6", "vm1", err);
	if (r >= 0)
		r = iovm_store_share_set_state(s, "0000:01:10.6", "vm1", IOVM_STORE_ATTACHING, "net0", "macvtap0",
					       err);
	if (r >= 0 && *fail)
		r = iovm_error_set(err, -EIO, "simulated failure");
	return r;
}

static void test_share_transaction(void **state)
{
	fixture *f = *state;
	iovm_store *s = open_ok(f->db), *other;
	bool fail = true;
	iovm_store_share g;
	iovm_error e = {};

	add_vm(s, "vm1", IOVM_PRIO_NORMAL);
	add_vm(s, "vm2", IOVM_PRIO_NORMAL);

	/* The callback form: a failure after add + set_state leaves nothing. */
	assert_int_equal(iovm_store_transaction(s, share_then_fail, &fail, &e), -EIO);
	assert_int_equal(iovm_store_share_get(s, "0000:01:10.6", "vm1", &g, &e), -ENOENT);
	fail = false;
	assert_int_equal(iovm_store_transaction(s, share_then_fail, &fail, &e), 0);
	assert_int_equal(iovm_store_share_get(s, "0000:01:10.6", "vm1", &g, &e), 0);
	assert_int_equal(g.state, IOVM_STORE_ATTACHING);
	assert_string_equal(g.ifname, "macvtap0");

	/* Explicit form: the calls join; another connection does not see
	 * them until commit, and a rollback drops them. */
	other = open_ok(f->db);
	assert_int_equal(iovm_store_begin(s, &e), 0);
	assert_int_equal(do_share(s, "0000:01:10.6", "vm2", &e), 0);
	assert_int_equal(iovm_store_share_remove(s, "0000:01:10.6", "vm1", &e), 0);
	assert_true(iovm_store_in_transaction(s));
	assert_int_equal(iovm_store_share_get(other, "0000:01:10.6", "vm2", &g, &e), -ENOENT);
	assert_int_equal(iovm_store_share_get(other, "0000:01:10.6", "vm1", &g, &e), 0);
	assert_int_equal(iovm_store_rollback(s), 0);
	assert_int_equal(iovm_store_share_get(s, "0000:01:10.6", "vm2", &g, &e), -ENOENT);
	assert_int_equal(iovm_store_share_get(s, "0000:01:10.6", "vm1", &g, &e), 0);

	assert_int_equal(iovm_store_begin(s, &e), 0);
	assert_int_equal(do_share(s, "0000:01:10.6", "vm2", &e), 0);
	/* A refusal inside the transaction leaves the transaction usable. */
	assert_int_equal(do_assign(s, "0000:01:10.6", "vm1", &e), -EBUSY);
	assert_true(iovm_store_in_transaction(s));
	assert_int_equal(iovm_store_commit(s, &e), 0);
	assert_int_equal(iovm_store_share_get(other, "0000:01:10.6", "vm2", &g, &e), 0);
	iovm_store_close(other);
	iovm_store_close(s);
}

static void test_commit_fails_cleanly(void **state)
{
	fixture *f = *state;
	char wal[PATH_MAX + 8];
	iovm_store *s = open_ok(f->db);
	iovm_store_vm *list = NULL;
	size_t n = 0;
	iovm_error e = {};
	pid_t pid;
	int status;

	add_vm(s, "kept", IOVM_PRIO_NORMAL);
	s = iovm_store_close(s);   /* the child must not inherit a handle */
	snprintf(wal, sizeof(wal), "%s-wal", f->db);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		iovm_store *c = NULL;
		struct stat st;
		struct rlimit lim;
		iovm_store_vm vm = { .qmp = "/run/x.qmp", .priority = IOVM_PRIO_LOW, .numa_node = -1 };
		int r;

		/* The child's own connection: SQLite handles do not cross fork(). */
		if (iovm_store_open(f->db, &c, &e) < 0)
			_exit(19);
		signal(SIGXFSZ, SIG_IGN);
		if (stat(wal, &st) < 0)
			_exit(20);
		lim.rlim_cur = lim.rlim_max = (rlim_t)st.st_size;
		if (setrlimit(RLIMIT_FSIZE, &lim) < 0)
			_exit(21);
		if (iovm_store_begin(c, &e) < 0)
			_exit(22);
		for (int i = 0; i < 200; i++) {
			snprintf(vm.name, sizeof(vm.name), "lost%03d", i);
			if (iovm_store_vm_put(c, &vm, &e) < 0)
				break;    /* a failure before commit is fine too */
		}
		r = iovm_store_commit(c, &e);
		if (getenv("TEST_STORE_VERBOSE"))
			fprintf(stderr, "commit: %d %s\n", r, e.msg);
		if (r >= 0)
			r = 23;
		else if (!strstr(e.msg, f->db))
			r = 24;
		else if (iovm_store_in_transaction(c))
			r = 25;
		else if (iovm_store_vm_list(c, &list, &n, &e) < 0 || n != 1)
			r = 26;
		else
			r = 0;
		free(list);
		iovm_store_close(c);
		_exit(r);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	s = open_ok(f->db);
	assert_int_equal(iovm_store_vm_list(s, &list, &n, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(list[0].name, "kept");
	free(list);
	iovm_store_close(s);
}

static void test_invalid_arguments(void **state)
{
	fixture *f = *state;
	iovm_store *s = NULL;
	iovm_error e = {};

	assert_int_equal(iovm_store_open(NULL, &s, &e), -EINVAL);
	assert_int_equal(iovm_store_open("", &s, &e), -EINVAL);
	assert_int_equal(iovm_store_open(f->db, NULL, &e), -EINVAL);
	assert_null(s);
	s = open_ok(f->db);
	assert_int_equal(iovm_store_vm_put(s, &(iovm_store_vm){ .name = "x" }, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "vm x"));
	assert_int_equal(iovm_store_vm_put(s, &(iovm_store_vm){ .name = "x", .qmp = "/q", .priority = 7 }, &e),
			 -EINVAL);
	assert_int_equal(iovm_store_intent_list_open(s, NULL, NULL, &e), -EINVAL);
	assert_string_equal(iovm_store_intent_kind_to_string(IOVM_INTENT_SET_VFS), "set-vfs");
	assert_string_equal(iovm_store_assign_state_to_string(IOVM_STORE_RELEASE_PENDING), "release-pending");
	assert_null(iovm_mode_to_string(5));
	iovm_store_close(s);
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "--count-intents"))   /* count_in_child */
		return (int)raw_int(argv[2], "SELECT count(*) FROM intent");

	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_create_and_reopen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_changes_counter, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wal_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_database, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readonly_directory, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_empty_file, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_v1_with_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_from_v2_with_data, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_migration_2_to_3, setup, teardown),
		cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failed_migration_keeps_old_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
		cmocka_unit_test_setup_teardown(test_corrupt_page, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pf_and_vf_config, setup, teardown),
		cmocka_unit_test_setup_teardown(test_double_assignment, setup, teardown),
		cmocka_unit_test_setup_teardown(test_saved_settings, setup, teardown),
		cmocka_unit_test_setup_teardown(test_vm_qga, setup, teardown),
		cmocka_unit_test_setup_teardown(test_share_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_share_vs_exclusive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_share_triggers_raw_sql, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intent_lifecycle, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intent_survives_crash, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intent_args_round_trip, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intent_args_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intent_args_live, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intent_prune_keep, setup, teardown),
		cmocka_unit_test_setup_teardown(test_intent_journal_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_other_process_sees_later_writes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_share_transaction, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_fails_cleanly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_arguments, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
