/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The typed records of the state store: desired PF and VF state and the VM
 * registry (assignments, shares and saved VF settings are in holders.c).
 * PCI addresses are normalised on the way in, so "01:10.2" and
 * "0000:01:10.2" are one key. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovm/pci.h"
#include "lib/state/store-internal.h"
#include "shared/util.h"

/* ---- enum names ------------------------------------------------------------------ */

static const char *const state_names[] = {
	[IOVM_STORE_RESERVED] = "reserved",
	[IOVM_STORE_ATTACHING] = "attaching",
	[IOVM_STORE_ATTACHED] = "attached",
	[IOVM_STORE_DETACHING] = "detaching",
	[IOVM_STORE_RELEASE_PENDING] = "release-pending",
};

#define NAME_OF(names, v) ((unsigned)(v) < ELEMENTSOF(names) ? (names)[v] : NULL)

const char *iovm_store_assign_state_to_string(iovm_store_assign_state st)
{
	return NAME_OF(state_names, st);
}

int store_assign_state_from_string(const char *s)
{
	for (size_t i = 0; s && i < ELEMENTSOF(state_names); i++)
		if (strcmp(state_names[i], s) == 0)
			return (int)i;
	return -EINVAL;
}

/* The enum value of the column's text; dflt if unknown, which the CHECK
 * constraints make impossible for rows this code wrote. */
int store_column_enum(sqlite3_stmt *st, int col, int (*from_string)(const char *s), int dflt)
{
	int r = from_string((const char *)sqlite3_column_text(st, col));

	return r < 0 ? dflt : r;
}

/* Normalises a PCI address argument or fails naming what it was for. */
int store_norm_addr(const char *what, const char *in, char ret[IOVM_STORE_ADDR_MAX], iovm_error *err)
{
	_Static_assert(IOVM_STORE_ADDR_MAX >= IOVM_PCI_ADDR_MAX, "room for a PCI address");
	if (!in)
		return iovm_error_set(err, -EINVAL, "%s: no PCI address given", what);
	if (iovm_pci_addr_normalize(in, ret, IOVM_STORE_ADDR_MAX, err) < 0)
		return iovm_error_prefix(err, "%s", what);
	return 0;
}

/* -ENOENT naming the object when a statement changed no row. */
int store_changed_or_enoent(int r, iovm_error *err, const char *what, const char *name)
{
	if (r == 0)
		return iovm_error_set(err, -ENOENT, "%s %s: not in the state db", what, name);
	return r < 0 ? r : 0;
}

/* Steps a single-row lookup; -ENOENT naming the object if there is none. */
int store_get_one(iovm_store *s, sqlite3_stmt *st, store_row_fn row, void *ret, size_t size,
		   iovm_error *err, const char *what, const char *name)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE)
		return iovm_error_set(err, -ENOENT, "%s %s: not in the state db", what, name);
	if (rc != SQLITE_ROW)
		return store_fail(s, sqlite3_extended_errcode(s->db), err, "%s %s: reading failed", what, name);
	memset(ret, 0, size);
	row(st, ret);
	return 0;
}

/* ---- VF network settings as nullable columns ------------------------------------- */

/* The seven columns mac, vlan, qos, rate, spoofchk, trust, link; a field
 * absent from cfg->present is NULL. */

int store_cfg_check(const iovm_vfnet_config *c, const char *what, const char *name, iovm_error *err)
{
	if (c->present & ~IOVM_VFNET_ALL)
		return iovm_error_set(err, -EINVAL, "%s %s: unknown settings mask 0x%x", what, name, c->present);
	if ((c->present & IOVM_VFNET_VLAN) && (c->vlan > 4094 || c->qos > 7))
		return iovm_error_set(err, -EINVAL, "%s %s: vlan %u qos %u out of range (0..4094, 0..7)",
				      what, name, c->vlan, c->qos);
	if ((c->present & IOVM_VFNET_LINK_STATE) && !iovm_vf_link_state_to_string(c->link_state))
		return iovm_error_set(err, -EINVAL, "%s %s: unknown link state %d", what, name,
				      (int)c->link_state);
	return 0;
}

void store_cfg_bind(sqlite3_stmt *st, int i, const iovm_vfnet_config *c)
{
	char mac[18];

	if (c->present & IOVM_VFNET_MAC) {
		snprintf(mac, sizeof(mac), "%02x:%02x:%02x:%02x:%02x:%02x", c->mac[0], c->mac[1],
			 c->mac[2], c->mac[3], c->mac[4], c->mac[5]);
		sqlite3_bind_text(st, i, mac, -1, SQLITE_TRANSIENT);
	}
	if (c->present & IOVM_VFNET_VLAN) {
		sqlite3_bind_int(st, i + 1, c->vlan);
		sqlite3_bind_int(st, i + 2, c->qos);
	}
	if (c->present & IOVM_VFNET_RATE)
		sqlite3_bind_int64(st, i + 3, c->max_tx_rate);
	if (c->present & IOVM_VFNET_SPOOFCHK)
		sqlite3_bind_int(st, i + 4, c->spoofchk);
	if (c->present & IOVM_VFNET_TRUST)
		sqlite3_bind_int(st, i + 5, c->trust);
	if (c->present & IOVM_VFNET_LINK_STATE)
		sqlite3_bind_text(st, i + 6, iovm_vf_link_state_to_string(c->link_state), -1, SQLITE_STATIC);
	/* Unbound parameters are NULL. */
}

static bool col_set(sqlite3_stmt *st, int col)
{
	return sqlite3_column_type(st, col) != SQLITE_NULL;
}

void store_cfg_row(sqlite3_stmt *st, int i, iovm_vfnet_config *c)
{
	memset(c, 0, sizeof(*c));
	if (col_set(st, i) && iovm_mac_parse((const char *)sqlite3_column_text(st, i), c->mac) >= 0)
		c->present |= IOVM_VFNET_MAC;
	if (col_set(st, i + 1)) {
		c->present |= IOVM_VFNET_VLAN;
		c->vlan = (uint16_t)sqlite3_column_int(st, i + 1);
		c->qos = (uint8_t)sqlite3_column_int(st, i + 2);
	}
	if (col_set(st, i + 3)) {
		c->present |= IOVM_VFNET_RATE;
		c->max_tx_rate = (uint32_t)sqlite3_column_int64(st, i + 3);
	}
	if (col_set(st, i + 4)) {
		c->present |= IOVM_VFNET_SPOOFCHK;
		c->spoofchk = sqlite3_column_int(st, i + 4) != 0;
	}
	if (col_set(st, i + 5)) {
		c->present |= IOVM_VFNET_TRUST;
		c->trust = sqlite3_column_int(st, i + 5) != 0;
	}
	if (col_set(st, i + 6)) {
		c->present |= IOVM_VFNET_LINK_STATE;
		c->link_state = (iovm_vf_link_state)store_column_enum(st, i + 6, iovm_vf_link_state_from_string, IOVM_VF_LINK_AUTO);
	}
}

/* Deletes the row of table whose column key is the PCI address in (key_name
 * names it in errors: "pf", "vf"); -ENOENT naming what if there is none. */
int store_delete_by_addr(iovm_store *s, const char *table, const char *column, const char *key_name,
			 const char *in, const char *what, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX], sql[128];
	int r;

	if (!s)
		return iovm_error_set(err, -EINVAL, "%s: no store", what);
	snprintf(sql, sizeof(sql), "DELETE FROM %s WHERE %s = ?", table, column);
	r = store_norm_addr(key_name, in, addr, err);
	if (r >= 0)
		r = store_prepare(s, sql, &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	return store_changed_or_enoent(store_step_done(s, st, err, "deleting"), err, what, addr);
}

/* ---- desired PF state ------------------------------------------------------------------ */

static void pf_row(sqlite3_stmt *st, void *elem)
{
	iovm_store_pf *p = elem;

	store_column_text(st, 0, p->pf, sizeof(p->pf));
	p->num_vfs = (unsigned)sqlite3_column_int64(st, 1);
	store_column_text(st, 2, p->driver, sizeof(p->driver));
	p->updated = sqlite3_column_int64(st, 3);
}

int iovm_store_pf_put(iovm_store *s, const iovm_store_pf *pf, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX];
	int r;

	if (!s || !pf)
		return iovm_error_set(err, -EINVAL, "pf: invalid arguments");
	r = store_norm_addr("pf", pf->pf, addr, err);
	if (r < 0)
		return r;
	if (!store_valid_str(pf->driver, sizeof(pf->driver)))
		return iovm_error_set(err, -EINVAL, "pf %s: driver name missing", addr);
	r = store_prepare(s, "INSERT INTO pf_desired (pf, num_vfs, driver, updated) VALUES (?, ?, ?, ?) "
			     "ON CONFLICT (pf) DO UPDATE SET num_vfs = excluded.num_vfs, "
			     "driver = excluded.driver, updated = excluded.updated", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, pf->num_vfs);
	sqlite3_bind_text(st, 3, pf->driver, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, store_now());
	r = store_step_done(s, st, err, "saving desired state");
	return r < 0 ? iovm_error_prefix(err, "pf %s", addr) : 0;
}

int iovm_store_pf_get(iovm_store *s, const char *pf, iovm_store_pf *ret, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX];
	int r;

	if (!s || !ret)
		return iovm_error_set(err, -EINVAL, "pf: invalid arguments");
	r = store_norm_addr("pf", pf, addr, err);
	if (r >= 0)
		r = store_prepare(s, "SELECT pf, num_vfs, driver, updated FROM pf_desired WHERE pf = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	return store_get_one(s, st, pf_row, ret, sizeof(*ret), err, "pf", addr);
}

int iovm_store_pf_list(iovm_store *s, iovm_store_pf **ret, size_t *ret_n, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s || !ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "pf list: invalid arguments");
	r = store_prepare(s, "SELECT pf, num_vfs, driver, updated FROM pf_desired ORDER BY pf", &st, err);
	if (r < 0)
		return r;
	return store_list(s, st, sizeof(**ret), pf_row, (void **)ret, ret_n, err, "listing PFs");
}

int iovm_store_pf_delete(iovm_store *s, const char *pf, iovm_error *err)
{
	return store_delete_by_addr(s, "pf_desired", "pf", "pf", pf, "pf", err);
}

/* ---- desired VF configuration ------------------------------------------------------------ */

static void vf_config_row(sqlite3_stmt *st, void *elem)
{
	iovm_store_vf_config *c = elem;

	store_column_text(st, 0, c->pf, sizeof(c->pf));
	c->vf = (unsigned)sqlite3_column_int64(st, 1);
	store_cfg_row(st, 2, &c->cfg);
	c->updated = sqlite3_column_int64(st, 9);
}

#define VF_CONFIG_SELECT "SELECT pf, vf, " CFG_COLUMNS ", updated FROM vf_config_desired "

int iovm_store_vf_config_put(iovm_store *s, const iovm_store_vf_config *c, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX], name[64];
	int r;

	if (!s || !c)
		return iovm_error_set(err, -EINVAL, "vf config: invalid arguments");
	r = store_norm_addr("vf config", c->pf, addr, err);
	if (r < 0)
		return r;
	snprintf(name, sizeof(name), "%s vf %u", addr, c->vf);
	r = store_cfg_check(&c->cfg, "pf", name, err);
	if (r >= 0)
		r = store_prepare(s, "INSERT OR REPLACE INTO vf_config_desired (pf, vf, " CFG_COLUMNS ", updated) "
				     "VALUES (?, ?, " CFG_PARAMS ", ?)", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, c->vf);
	store_cfg_bind(st, 3, &c->cfg);
	sqlite3_bind_int64(st, 10, store_now());
	r = store_step_done(s, st, err, "saving desired VF settings");
	if (r == -ENOENT)
		return iovm_error_set(err, -ENOENT, "pf %s: no desired state; set its VF count first", name);
	return r < 0 ? iovm_error_prefix(err, "pf %s", name) : 0;
}

int iovm_store_vf_config_get(iovm_store *s, const char *pf, unsigned vf, iovm_store_vf_config *ret,
			     iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX], name[64];
	int r;

	if (!s || !ret)
		return iovm_error_set(err, -EINVAL, "vf config: invalid arguments");
	r = store_norm_addr("vf config", pf, addr, err);
	if (r >= 0)
		r = store_prepare(s, VF_CONFIG_SELECT "WHERE pf = ? AND vf = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, vf);
	snprintf(name, sizeof(name), "%s vf %u", addr, vf);
	return store_get_one(s, st, vf_config_row, ret, sizeof(*ret), err, "pf", name);
}

int iovm_store_vf_config_list(iovm_store *s, const char *pf, iovm_store_vf_config **ret, size_t *ret_n,
			      iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX];
	int r;

	if (!s || !ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "vf config list: invalid arguments");
	if (pf) {
		r = store_norm_addr("vf config", pf, addr, err);
		if (r < 0)
			return r;
	}
	r = store_prepare(s, VF_CONFIG_SELECT "WHERE ?1 IS NULL OR pf = ?1 ORDER BY pf, vf", &st, err);
	if (r < 0)
		return r;
	if (pf)
		sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	return store_list(s, st, sizeof(**ret), vf_config_row, (void **)ret, ret_n, err,
			  "listing desired VF settings");
}

int iovm_store_vf_config_delete(iovm_store *s, const char *pf, unsigned vf, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char addr[IOVM_STORE_ADDR_MAX], name[64];
	int r;

	if (!s)
		return iovm_error_set(err, -EINVAL, "vf config: no store");
	r = store_norm_addr("vf config", pf, addr, err);
	if (r >= 0)
		r = store_prepare(s, "DELETE FROM vf_config_desired WHERE pf = ? AND vf = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, addr, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, vf);
	snprintf(name, sizeof(name), "%s vf %u", addr, vf);
	return store_changed_or_enoent(store_step_done(s, st, err, "deleting"), err, "pf", name);
}

/* ---- VM registry -------------------------------------------------------------------------- */

static void vm_row(sqlite3_stmt *st, void *elem)
{
	iovm_store_vm *v = elem;

	store_column_text(st, 0, v->name, sizeof(v->name));
	store_column_text(st, 1, v->qmp, sizeof(v->qmp));
	v->priority = (iovm_priority)store_column_enum(st, 2, iovm_priority_from_string, IOVM_PRIO_LOW);
	v->numa_node = sqlite3_column_int(st, 3);
	v->created = sqlite3_column_int64(st, 4);
	store_column_text(st, 5, v->qga, sizeof(v->qga));
}

#define VM_SELECT "SELECT name, qmp, priority, numa_node, created, qga FROM vm "

int iovm_store_vm_put(iovm_store *s, const iovm_store_vm *vm, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s || !vm)
		return iovm_error_set(err, -EINVAL, "vm: invalid arguments");
	if (!store_valid_str(vm->name, sizeof(vm->name)))
		return iovm_error_set(err, -EINVAL, "vm: name missing or longer than %zu bytes",
				      sizeof(vm->name) - 1);
	if (!store_valid_str(vm->qmp, sizeof(vm->qmp)))
		return iovm_error_set(err, -EINVAL, "vm %s: QMP socket path missing or longer than %zu bytes",
				      vm->name, sizeof(vm->qmp) - 1);
	if (!iovm_priority_to_string(vm->priority))
		return iovm_error_set(err, -EINVAL, "vm %s: unknown priority %d", vm->name, (int)vm->priority);
	if (vm->numa_node < -1)
		return iovm_error_set(err, -EINVAL, "vm %s: NUMA node %d invalid (-1 for none)", vm->name,
				      vm->numa_node);
	if (strnlen(vm->qga, sizeof(vm->qga)) >= sizeof(vm->qga))
		return iovm_error_set(err, -EINVAL, "vm %s: guest-agent socket path longer than %zu bytes",
				      vm->name, sizeof(vm->qga) - 1);
	/* Upsert, not REPLACE: REPLACE deletes the row first, which the
	 * assignments' foreign key would refuse, and it would reset created. */
	r = store_prepare(s, "INSERT INTO vm (name, qmp, priority, numa_node, created, qga) "
			     "VALUES (?, ?, ?, ?, ?, ?) "
			     "ON CONFLICT (name) DO UPDATE SET qmp = excluded.qmp, "
			     "priority = excluded.priority, numa_node = excluded.numa_node, "
			     "qga = excluded.qga", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, vm->name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, vm->qmp, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, iovm_priority_to_string(vm->priority), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 4, vm->numa_node);
	sqlite3_bind_int64(st, 5, store_now());
	sqlite3_bind_text(st, 6, vm->qga, -1, SQLITE_STATIC);
	r = store_step_done(s, st, err, "saving");
	return r < 0 ? iovm_error_prefix(err, "vm %s", vm->name) : 0;
}

int iovm_store_vm_get(iovm_store *s, const char *name, iovm_store_vm *ret, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s || !ret || !store_valid_str(name, IOVM_STORE_NAME_MAX))
		return iovm_error_set(err, -EINVAL, "vm: invalid arguments");
	r = store_prepare(s, VM_SELECT "WHERE name = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	return store_get_one(s, st, vm_row, ret, sizeof(*ret), err, "vm", name);
}

int iovm_store_vm_list(iovm_store *s, iovm_store_vm **ret, size_t *ret_n, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r;

	if (!s || !ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "vm list: invalid arguments");
	r = store_prepare(s, VM_SELECT "ORDER BY name", &st, err);
	if (r < 0)
		return r;
	return store_list(s, st, sizeof(**ret), vm_row, (void **)ret, ret_n, err, "listing VMs");
}

/* The lowest VF the VM holds (assignment) or shares (vf_share), with how:
 * 1 and held/how filled, 0 if none. */
static int vm_first_vf(iovm_store *s, const char *name, char held[IOVM_STORE_ADDR_MAX], const char **how,
		       iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	int r, rc;

	r = store_prepare(s, "SELECT vf, 0 FROM assignment WHERE vm = ?1 "
			     "UNION ALL SELECT vf, 1 FROM vf_share WHERE vm = ?1 ORDER BY 1, 2 LIMIT 1", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return store_fail(s, sqlite3_extended_errcode(s->db), err, "vm %s: reading its VFs failed", name);
	store_column_text(st, 0, held, IOVM_STORE_ADDR_MAX);
	*how = sqlite3_column_int(st, 1) ? "shares" : "holds";
	return 1;
}

int iovm_store_vm_delete(iovm_store *s, const char *name, iovm_error *err)
{
	_cleanup_stmt_ sqlite3_stmt *st = NULL;
	char held[IOVM_STORE_ADDR_MAX];
	const char *how = NULL;
	int r;

	if (!s || !store_valid_str(name, IOVM_STORE_NAME_MAX))
		return iovm_error_set(err, -EINVAL, "vm: invalid arguments");
	/* Name a VF it holds or shares rather than report a bare constraint
	 * failure. */
	r = vm_first_vf(s, name, held, &how, err);
	if (r < 0)
		return r;
	if (r > 0)
		return iovm_error_set(err, -EBUSY, "vm %s: still %s vf %s; release its VFs first", name, how, held);

	r = store_prepare(s, "DELETE FROM vm WHERE name = ?", &st, err);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	r = store_step_done(s, st, err, "deleting");
	if (r == -ENOENT)   /* an assignment or share raced in: the foreign key held */
		return iovm_error_set(err, -EBUSY, "vm %s: still holds or shares VFs; release them first", name);
	return store_changed_or_enoent(r, err, "vm", name);
}
