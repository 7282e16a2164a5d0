/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The store's records of who holds a VF: assignments (exclusive and
 * shared), shared VFs' users, and the VF settings saved before a VM took a
 * VF, to restore when it gives it back. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovm/pci.h"
#include "lib/state/store-internal.h"
#include "shared/util.h"

/* ---- assignments ------------------------------------------------------------------------- */

static void assignment_row(sqlite3_stmt *st, void *elem)
{
	iovm_store_assignment *a = elem;

	store_column_text(st, 0, a->vf, sizeof(a->vf));
	store_column_text(st, 1, a->vm, sizeof(a->vm));
	a->mode = (iovm_mode)store_column_enum(st, 2, iovm_mode_from_string, IOVM_MODE_EXCLUSIVE);
	store_column_text(st, 3, a->devid, sizeof(a->devid));
	a->state = (iovm_store_assign_state)store_column_enum(st, 4, store_assign_state_from_string, IOVM_STORE_RESERVED);
	a->updated = sqlite3_column_int64(st, 5);
}

#define ASSIGNMENT_SELECT "SELECT vf, vm, mode, devid, state, updated FROM assignment "

/* Whether the statement that just failed was stopped by one of the
 * exclusive-vs-shared triggers (rather than, say, a lock timeout, which is
 * -EBUSY too). Valid right after the failure. */
static bool raised_by_trigger(iovm_store *s)
{
	return sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_TRIGGER;
}

/* The VMs sharing vf, "vm a, vm b", for messages; "" if none or on error. */
static void share_users(iovm_store *s, const char *vf, char *buf, size_t n)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;

	buf[0] = '\0';
	if (store_prepare(s, "SELECT group_concat('vm ' || vm, ', ') FROM "
			     "(SELECT vm FROM vf_share WHERE vf = ? ORDER BY vm)", &st, NULL) < 0)
		return;
	sqlite3_bind_text(st, 1, vf, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		store_column_text(st, 0, buf, n);
}

int iovm_store_assign(iovm_store *s, const iovm_store_assignment *a, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX];
	iovm_store_assignment cur;
	int r;

	if (!s || !a)
		return iovm_error_set(err, -EINVAL, "assign: invalid arguments");
	r = store_norm_addr("vf", a->vf, addr, err);
	if (r < 0)
		return r;
	if (!store_valid_str(a->vm, sizeof(a->vm)))
		return iovm_error_set(err, -EINVAL, "vf %s: assign: VM name missing", addr);
	if ((a->mode != IOVM_MODE_EXCLUSIVE && a->mode != IOVM_MODE_SHARED) || !iovm_store_assign_state_to_string(a->state))
		return iovm_error_set(err, -EINVAL, "vf %s: assign to vm %s: unknown mode or state", addr, a->vm);
	if (strnlen(a->devid, sizeof(a->devid)) >= sizeof(a->devid))
		return iovm_error_set(err, -EINVAL, "vf %s: device id too long", addr);

	/* The primary key is what guarantees one holder; it also serialises
	 * two writers. The lookup after a conflict only names the holder. */
	r = store_prepare(s, "INSERT INTO assignment (vf, vm, mode, devid, state, updated) "
			     "VALUES (?, ?, ?, ?, ?, ?)", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, a->vm, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, iovm_mode_to_string(a->mode), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a->devid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, iovm_store_assign_state_to_string(a->state), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, store_now());
	r = store_step_done(s, st, err, "recording");
	if (r >= 0)
		return 0;
	if (r == -EBUSY && raised_by_trigger(s)) {
		char users[256];

		share_users(s, addr, users, sizeof(users));
		return iovm_error_set(err, -EBUSY, "vf %s: shared with %s; cannot assign it exclusively to vm %s",
				      addr, users[0] ? users : "another VM", a->vm);
	}
	if (r == -EEXIST) {
		if (iovm_store_assignment_get(s, addr, &cur, NULL) >= 0)
			return iovm_error_set(err, -EBUSY, "vf %s: already assigned to vm %s (%s, %s)", addr,
					      cur.vm, iovm_mode_to_string(cur.mode), iovm_store_assign_state_to_string(cur.state));
		return iovm_error_set(err, -EBUSY, "vf %s: already assigned", addr);
	}
	if (r == -ENOENT)
		return iovm_error_set(err, -ENOENT, "vf %s: cannot assign to vm %s: no such VM in the state db",
				      addr, a->vm);
	return iovm_error_prefix(err, "vf %s: assign to vm %s", addr, a->vm);
}

int iovm_store_assignment_set_state(iovm_store *s, const char *vf, iovm_store_assign_state state,
				    const char *devid, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX];
	int r;

	if (!s)
		return iovm_error_set(err, -EINVAL, "assignment: no store");
	r = store_norm_addr("vf", vf, addr, err);
	if (r < 0)
		return r;
	if (!iovm_store_assign_state_to_string(state))
		return iovm_error_set(err, -EINVAL, "vf %s: unknown assignment state %d", addr, (int)state);
	if (devid && strnlen(devid, IOVM_STORE_NAME_MAX) >= IOVM_STORE_NAME_MAX)
		return iovm_error_set(err, -EINVAL, "vf %s: device id too long", addr);
	r = store_prepare(s, "UPDATE assignment SET state = ?, devid = coalesce(?, devid), updated = ? "
			     "WHERE vf = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, iovm_store_assign_state_to_string(state), -1, SQLITE_STATIC);
	if (devid)
		sqlite3_bind_text(st, 2, devid, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, store_now());
	sqlite3_bind_text(st, 4, addr, -1, SQLITE_STATIC);
	r = store_step_done(s, st, err, "updating the assignment");
	if (r < 0)
		return iovm_error_prefix(err, "vf %s", addr);
	return store_changed_or_enoent(r, err, "assignment of vf", addr);
}

int iovm_store_assignment_get(iovm_store *s, const char *vf, iovm_store_assignment *ret, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX];
	int r;

	if (!s || !ret)
		return iovm_error_set(err, -EINVAL, "assignment: invalid arguments");
	r = store_norm_addr("vf", vf, addr, err);
	if (r >= 0)
		r = store_prepare(s, ASSIGNMENT_SELECT "WHERE vf = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	return store_get_one(s, st, assignment_row, ret, sizeof(*ret), err, "assignment of vf", addr);
}

int iovm_store_assignment_list(iovm_store *s, const char *vm, iovm_store_assignment **ret, size_t *ret_n,
			       iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s || !ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "assignment list: invalid arguments");
	r = store_prepare(s, ASSIGNMENT_SELECT "WHERE ?1 IS NULL OR vm = ?1 ORDER BY vf", &st, err);
	if (r < 0)
		return r;
	if (vm)
		sqlite3_bind_text(st, 1, vm, -1, SQLITE_STATIC);
	return store_list(s, st, sizeof(**ret), assignment_row, (void **)ret, ret_n, err,
			  "listing assignments");
}

int iovm_store_unassign(iovm_store *s, const char *vf, iovm_error *err)
{
	return store_delete_by_addr(s, "assignment", "vf", "vf", vf, "assignment of vf", err);
}

/* ---- shared VFs ------------------------------------------------------------------------------ */

static void share_row(sqlite3_stmt *st, void *elem)
{
	iovm_store_share *sh = elem;

	store_column_text(st, 0, sh->vf, sizeof(sh->vf));
	store_column_text(st, 1, sh->vm, sizeof(sh->vm));
	store_column_text(st, 2, sh->devid, sizeof(sh->devid));
	store_column_text(st, 3, sh->ifname, sizeof(sh->ifname));
	sh->state = (iovm_store_assign_state)store_column_enum(st, 4, store_assign_state_from_string, IOVM_STORE_RESERVED);
	sh->updated = sqlite3_column_int64(st, 5);
}

#define SHARE_SELECT "SELECT vf, vm, devid, ifname, state, updated FROM vf_share "

/* The VF address normalised and the VM name checked, for the calls that
 * name one share. */
static int share_key(const char *vf, const char *vm, char addr[IOVM_STORE_ADDR_MAX], iovm_error *err)
{
	int r = store_norm_addr("vf share", vf, addr, err);

	if (r < 0)
		return r;
	if (!store_valid_str(vm, IOVM_STORE_NAME_MAX))
		return iovm_error_set(err, -EINVAL, "vf %s: share: VM name missing or longer than %d bytes",
				      addr, IOVM_STORE_NAME_MAX - 1);
	return 0;
}

/* devid and ifname: optional (NULL), but must fit their columns. */
static int share_names_fit(const char *devid, const char *ifname, const char *addr, const char *vm,
			   iovm_error *err)
{
	if ((devid && strnlen(devid, IOVM_STORE_NAME_MAX) >= IOVM_STORE_NAME_MAX) ||
	    (ifname && strnlen(ifname, IOVM_STORE_NAME_MAX) >= IOVM_STORE_NAME_MAX))
		return iovm_error_set(err, -EINVAL, "vf %s: share with vm %s: device id or interface name too long",
				      addr, vm);
	return 0;
}

/* The result of a statement on one share: its error named, or -ENOENT if
 * it changed no row. */
static int share_changed(int r, const char *addr, const char *vm, iovm_error *err)
{
	if (r < 0)
		return iovm_error_prefix(err, "vf %s: share with vm %s", addr, vm);
	if (r == 0)
		return iovm_error_set(err, -ENOENT, "vf %s: not shared with vm %s in the state db", addr, vm);
	return 0;
}

int iovm_store_share_add(iovm_store *s, const iovm_store_share *sh, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX];
	iovm_store_assignment cur;
	int r;

	if (!s || !sh)
		return iovm_error_set(err, -EINVAL, "vf share: invalid arguments");
	r = share_key(sh->vf, sh->vm, addr, err);
	if (r < 0)
		return r;
	if (!iovm_store_assign_state_to_string(sh->state))
		return iovm_error_set(err, -EINVAL, "vf %s: share with vm %s: unknown state %d", addr, sh->vm,
				      (int)sh->state);
	r = share_names_fit(sh->devid, sh->ifname, addr, sh->vm, err);
	if (r < 0)
		return r;

	/* As for assignments: the database decides (primary key, foreign key,
	 * trigger); the lookups afterwards only name the parties. */
	r = store_prepare(s, "INSERT INTO vf_share (vf, vm, devid, ifname, state, updated) "
			     "VALUES (?, ?, ?, ?, ?, ?)", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, sh->vm, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, sh->devid, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, sh->ifname, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, iovm_store_assign_state_to_string(sh->state), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, store_now());
	r = store_step_done(s, st, err, "recording");
	if (r >= 0)
		return 0;
	if (r == -EBUSY && raised_by_trigger(s)) {
		if (iovm_store_assignment_get(s, addr, &cur, NULL) >= 0)
			return iovm_error_set(err, -EBUSY, "vf %s: assigned exclusively to vm %s (%s); "
					      "cannot share it with vm %s", addr, cur.vm, iovm_store_assign_state_to_string(cur.state),
					      sh->vm);
		return iovm_error_set(err, -EBUSY, "vf %s: assigned exclusively; cannot share it with vm %s",
				      addr, sh->vm);
	}
	if (r == -EEXIST)
		return iovm_error_set(err, -EEXIST, "vf %s: already shared with vm %s", addr, sh->vm);
	if (r == -ENOENT)
		return iovm_error_set(err, -ENOENT, "vf %s: cannot share with vm %s: no such VM in the state db",
				      addr, sh->vm);
	return iovm_error_prefix(err, "vf %s: share with vm %s", addr, sh->vm);
}

int iovm_store_share_set_state(iovm_store *s, const char *vf, const char *vm, iovm_store_assign_state state,
			       const char *devid, const char *ifname, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX];
	int r;

	if (!s)
		return iovm_error_set(err, -EINVAL, "vf share: no store");
	r = share_key(vf, vm, addr, err);
	if (r < 0)
		return r;
	if (!iovm_store_assign_state_to_string(state))
		return iovm_error_set(err, -EINVAL, "vf %s: share with vm %s: unknown state %d", addr, vm,
				      (int)state);
	r = share_names_fit(devid, ifname, addr, vm, err);
	if (r < 0)
		return r;
	r = store_prepare(s, "UPDATE vf_share SET state = ?, devid = coalesce(?, devid), "
			     "ifname = coalesce(?, ifname), updated = ? WHERE vf = ? AND vm = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, iovm_store_assign_state_to_string(state), -1, SQLITE_STATIC);
	if (devid)
		sqlite3_bind_text(st, 2, devid, -1, SQLITE_STATIC);
	if (ifname)
		sqlite3_bind_text(st, 3, ifname, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, store_now());
	sqlite3_bind_text(st, 5, addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, vm, -1, SQLITE_STATIC);
	return share_changed(store_step_done(s, st, err, "updating the share"), addr, vm, err);
}

int iovm_store_share_get(iovm_store *s, const char *vf, const char *vm, iovm_store_share *ret,
			 iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX], name[IOVM_STORE_ADDR_MAX + IOVM_STORE_NAME_MAX + 16];
	int r;

	if (!s || !ret)
		return iovm_error_set(err, -EINVAL, "vf share: invalid arguments");
	r = share_key(vf, vm, addr, err);
	if (r >= 0)
		r = store_prepare(s, SHARE_SELECT "WHERE vf = ? AND vm = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, vm, -1, SQLITE_STATIC);
	snprintf(name, sizeof(name), "%s with vm %s", addr, vm);
	return store_get_one(s, st, share_row, ret, sizeof(*ret), err, "share of vf", name);
}

int iovm_store_share_list(iovm_store *s, const char *vf, const char *vm, iovm_store_share **ret,
			  size_t *ret_n, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX];
	int r;

	if (!s || !ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "vf share list: invalid arguments");
	if (vf) {
		r = store_norm_addr("vf share list", vf, addr, err);
		if (r < 0)
			return r;
	}
	r = store_prepare(s, SHARE_SELECT "WHERE (?1 IS NULL OR vf = ?1) AND (?2 IS NULL OR vm = ?2) "
			     "ORDER BY vf, vm", &st, err);
	if (r < 0)
		return r;
	if (vf)
		sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	if (vm)
		sqlite3_bind_text(st, 2, vm, -1, SQLITE_STATIC);
	return store_list(s, st, sizeof(**ret), share_row, (void **)ret, ret_n, err, "listing shared VFs");
}

int iovm_store_share_remove(iovm_store *s, const char *vf, const char *vm, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX];
	int r;

	if (!s)
		return iovm_error_set(err, -EINVAL, "vf share: no store");
	r = share_key(vf, vm, addr, err);
	if (r >= 0)
		r = store_prepare(s, "DELETE FROM vf_share WHERE vf = ? AND vm = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, vm, -1, SQLITE_STATIC);
	return share_changed(store_step_done(s, st, err, "deleting the share"), addr, vm, err);
}

/* ---- original VF settings ------------------------------------------------------------------ */

static void saved_row(sqlite3_stmt *st, void *elem)
{
	iovm_store_vf_saved *v = elem;

	store_column_text(st, 0, v->vf, sizeof(v->vf));
	store_column_text(st, 1, v->pf, sizeof(v->pf));
	v->vf_index = (unsigned)sqlite3_column_int64(st, 2);
	store_column_text(st, 3, v->driver, sizeof(v->driver));
	store_cfg_row(st, 4, &v->cfg);
	v->saved = sqlite3_column_int64(st, 11);
}

#define SAVED_SELECT "SELECT vf, pf, vf_index, driver, " CFG_COLUMNS ", saved FROM vf_saved "

int iovm_store_vf_saved_put(iovm_store *s, const iovm_store_vf_saved *v, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX], pf[IOVM_STORE_ADDR_MAX];
	int r;

	if (!s || !v)
		return iovm_error_set(err, -EINVAL, "vf saved: invalid arguments");
	r = store_norm_addr("vf", v->vf, addr, err);
	if (r >= 0)
		r = store_norm_addr("vf saved: pf", v->pf, pf, err);
	if (r >= 0 && strnlen(v->driver, sizeof(v->driver)) >= sizeof(v->driver))
		r = iovm_error_set(err, -EINVAL, "vf %s: driver name too long", addr);
	if (r >= 0)
		r = store_cfg_check(&v->cfg, "vf", addr, err);
	if (r >= 0)
		r = store_prepare(s, "INSERT INTO vf_saved (vf, pf, vf_index, driver, " CFG_COLUMNS ", saved) "
				     "VALUES (?, ?, ?, ?, " CFG_PARAMS ", ?)", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, pf, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, v->vf_index);
	sqlite3_bind_text(st, 4, v->driver, -1, SQLITE_STATIC);
	store_cfg_bind(st, 5, &v->cfg);
	sqlite3_bind_int64(st, 12, store_now());
	r = store_step_done(s, st, err, "saving original settings");
	if (r == -EEXIST)
		return iovm_error_set(err, -EEXIST, "vf %s: original settings already saved; "
				      "restore or delete them before saving again", addr);
	return r < 0 ? iovm_error_prefix(err, "vf %s", addr) : 0;
}

int iovm_store_vf_saved_get(iovm_store *s, const char *vf, iovm_store_vf_saved *ret, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX];
	int r;

	if (!s || !ret)
		return iovm_error_set(err, -EINVAL, "vf saved: invalid arguments");
	r = store_norm_addr("vf", vf, addr, err);
	if (r >= 0)
		r = store_prepare(s, SAVED_SELECT "WHERE vf = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	return store_get_one(s, st, saved_row, ret, sizeof(*ret), err, "saved settings of vf", addr);
}

int iovm_store_vf_saved_list(iovm_store *s, iovm_store_vf_saved **ret, size_t *ret_n, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s || !ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "vf saved list: invalid arguments");
	r = store_prepare(s, SAVED_SELECT "ORDER BY vf", &st, err);
	if (r < 0)
		return r;
	return store_list(s, st, sizeof(**ret), saved_row, (void **)ret, ret_n, err,
			  "listing saved VF settings");
}

int iovm_store_vf_saved_delete(iovm_store *s, const char *vf, iovm_error *err)
{
	return store_delete_by_addr(s, "vf_saved", "vf", "vf", vf, "saved settings of vf", err);
}
