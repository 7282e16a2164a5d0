/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The VF pool: which VF each VM holds or is attaching, saved to a file so a
 * restarted caller can pick up where it stopped. Nothing here talks to QEMU
 * or sysfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iovm/pool.h"
#include "shared/json-util.h"
#include "shared/util.h"

struct iovm_vf_pool {
	iovm_vf_entry *e;
	size_t n, cap;
};

static const char *const use_names[] = {
	[IOVM_VF_FREE] = "free",
	[IOVM_VF_ATTACHING] = "attaching",
	[IOVM_VF_IN_USE] = "in-use",
	[IOVM_VF_RELEASE_PENDING] = "release-pending",
	[IOVM_VF_RECLAIM] = "reclaim",
};

const char *iovm_vf_use_to_string(iovm_vf_use u)
{
	return (unsigned)u < ELEMENTSOF(use_names) ? use_names[u] : "unknown";
}

static int use_from_string(const char *s)
{
	for (size_t i = 0; i < ELEMENTSOF(use_names); i++)
		if (s && !strcmp(s, use_names[i]))
			return (int)i;
	return -EINVAL;
}

int iovm_vf_pool_new(iovm_vf_pool **ret)
{
	if (!ret)
		return -EINVAL;
	*ret = calloc(1, sizeof(**ret));
	return *ret ? 0 : -ENOMEM;
}

iovm_vf_pool *iovm_vf_pool_free(iovm_vf_pool *p)
{
	if (p) {
		free(p->e);
		free(p);
	}
	return NULL;
}

iovm_vf_entry *iovm_vf_pool_get(iovm_vf_pool *p, const char *vf)
{
	for (size_t i = 0; p && vf && i < p->n; i++)
		if (!strcmp(p->e[i].vf, vf))
			return &p->e[i];
	return NULL;
}

iovm_vf_entry *iovm_vf_pool_find_devid(iovm_vf_pool *p, const char *vm, const char *devid)
{
	for (size_t i = 0; p && vm && devid && i < p->n; i++)
		if (!strcmp(p->e[i].vm, vm) && !strcmp(p->e[i].devid, devid))
			return &p->e[i];
	return NULL;
}

size_t iovm_vf_pool_size(const iovm_vf_pool *p)
{
	return p ? p->n : 0;
}

iovm_vf_entry *iovm_vf_pool_at(iovm_vf_pool *p, size_t i)
{
	return p && i < p->n ? &p->e[i] : NULL;
}

static iovm_vf_entry *pool_add(iovm_vf_pool *p)
{
	if (p->n == p->cap) {
		size_t ncap = p->cap ? p->cap * 2 : 16;
		iovm_vf_entry *ne = realloc(p->e, ncap * sizeof(*ne));

		if (!ne)
			return NULL;
		p->e = ne;
		p->cap = ncap;
	}
	memset(&p->e[p->n], 0, sizeof(p->e[0]));
	return &p->e[p->n++];
}

int iovm_vf_pool_reserve(iovm_vf_pool *p, const char *vf, const char *vm, iovm_error *err)
{
	iovm_vf_entry *e;

	if (!p || !vf || !*vf || !vm || !*vm || strlen(vf) >= IOVM_VM_ADDR_MAX ||
	    strlen(vm) >= IOVM_VM_ID_MAX)
		return iovm_error_set(err, -EINVAL, "vf pool: invalid argument");
	e = iovm_vf_pool_get(p, vf);
	if (e)
		return iovm_error_set(err, -EBUSY, "vf %s: not free: %s by vm %s", vf,
				      iovm_vf_use_to_string(e->use), e->vm);
	e = pool_add(p);
	if (!e)
		return iovm_error_set(err, -ENOMEM, "vf %s: out of memory", vf);
	snprintf(e->vf, sizeof(e->vf), "%s", vf);
	snprintf(e->vm, sizeof(e->vm), "%s", vm);
	e->use = IOVM_VF_ATTACHING;
	return 0;
}

int iovm_vf_pool_set(iovm_vf_pool *p, const char *vf, iovm_vf_use use)
{
	iovm_vf_entry *e = iovm_vf_pool_get(p, vf);

	if (!e)
		return -ENOENT;
	if ((unsigned)use >= ELEMENTSOF(use_names))
		return -EINVAL;
	if (use == IOVM_VF_FREE) {
		size_t i = (size_t)(e - p->e);

		memmove(&p->e[i], &p->e[i + 1], (p->n - i - 1) * sizeof(p->e[0]));
		p->n--;
		return 0;
	}
	e->use = use;
	return 0;
}

static int copy_field(char *dst, size_t n, json_object *o, const char *key, bool required)
{
	const char *s = json_get_str(o, key);

	if (!s)
		return required ? -EBADMSG : 0;
	if (strlen(s) >= n)
		return -EBADMSG;
	memcpy(dst, s, strlen(s) + 1);
	return 0;
}

int iovm_vf_pool_load(iovm_vf_pool *p, const char *path, iovm_error *err)
{
	json_object *root, *vfs;
	int r = 0;

	if (!p || !path)
		return iovm_error_set(err, -EINVAL, "vf pool: invalid argument");
	if (access(path, F_OK) < 0 && errno == ENOENT)
		return 0;
	root = json_object_from_file(path);
	if (!root)
		return iovm_error_set(err, -EBADMSG, "vf pool %s: cannot read: %s", path,
				      json_util_get_last_err() ? json_util_get_last_err() : "bad JSON");
	if (!json_object_object_get_ex(root, "vfs", &vfs) || !json_object_is_type(vfs, json_type_array)) {
		json_object_put(root);
		return iovm_error_set(err, -EBADMSG, "vf pool %s: no \"vfs\" array", path);
	}
	p->n = 0;
	for (size_t i = 0; r == 0 && i < json_object_array_length(vfs); i++) {
		json_object *o = json_object_array_get_idx(vfs, i);
		iovm_vf_entry *e = pool_add(p);
		int use;

		if (!e) {
			r = -ENOMEM;
			break;
		}
		use = use_from_string(json_get_str(o, "use"));
		r = use <= IOVM_VF_FREE ? -EBADMSG : 0;
		if (!r)
			r = copy_field(e->vf, sizeof(e->vf), o, "vf", true);
		if (!r)
			r = copy_field(e->vm, sizeof(e->vm), o, "vm", true);
		if (!r)
			r = copy_field(e->devid, sizeof(e->devid), o, "devid", false);
		if (!r)
			r = copy_field(e->port, sizeof(e->port), o, "port", false);
		if (!r)
			r = copy_field(e->orig_driver, sizeof(e->orig_driver), o, "orig_driver", false);
		if (!r)
			r = copy_field(e->saved_net, sizeof(e->saved_net), o, "saved_net", false);
		e->use = use > 0 ? (iovm_vf_use)use : IOVM_VF_IN_USE;
	}
	json_object_put(root);
	if (r < 0) {
		p->n = 0;
		return iovm_error_set(err, r, "vf pool %s: bad entry", path);
	}
	return 0;
}

int iovm_vf_pool_save(const iovm_vf_pool *p, const char *path, iovm_error *err)
{
	json_object *root, *vfs;
	char tmp[4096];
	int r = 0;

	if (!p || !path)
		return iovm_error_set(err, -EINVAL, "vf pool: invalid argument");
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
		return iovm_error_set(err, -ENAMETOOLONG, "vf pool %s: path too long", path);
	root = json_object_new_object();
	vfs = json_object_new_array();
	json_object_object_add(root, "vfs", vfs);
	for (size_t i = 0; i < p->n; i++) {
		const iovm_vf_entry *e = &p->e[i];
		json_object *o = json_object_new_object();

		json_object_object_add(o, "vf", json_object_new_string(e->vf));
		json_object_object_add(o, "use", json_object_new_string(iovm_vf_use_to_string(e->use)));
		json_object_object_add(o, "vm", json_object_new_string(e->vm));
		json_object_object_add(o, "devid", json_object_new_string(e->devid));
		json_object_object_add(o, "port", json_object_new_string(e->port));
		json_object_object_add(o, "orig_driver", json_object_new_string(e->orig_driver));
		json_object_object_add(o, "saved_net", json_object_new_string(e->saved_net));
		json_object_array_add(vfs, o);
	}
	if (json_object_to_file_ext(tmp, root, JSON_C_TO_STRING_PRETTY) < 0)
		r = iovm_error_set(err, -EIO, "vf pool %s: cannot write: %s", tmp, json_util_get_last_err());
	else if (rename(tmp, path) < 0)
		r = iovm_error_set(err, negative_errno(), "vf pool %s: rename failed: %m", path);
	json_object_put(root);
	return r;
}
