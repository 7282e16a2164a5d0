/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VFs and PFs by the names users give them, and who holds them. */
#include <string.h>

#include "iovmd/ops.h"
#include "shared/util.h"

/* A VF named by PCI address or PF/INDEX -> its inventory record. */
int naming_resolve_vf(ops *o, const char *name, iovm_vf *ret, iovm_error *err)
{
	char pf[IOVM_API_NAME_MAX];
	unsigned index;

	if (iovm_api_vf_split(name, pf, sizeof(pf), &index) == 0)
		return iovm_vf_by_index(o->host, pf, index, ret, err);
	return iovm_vf_get(o->host, name, ret, err);
}

/* Held by a VM exclusively, in any state (being released included). */
bool naming_vf_taken(ops *o, const char *vf)
{
	iovm_store_assignment a;

	return iovm_store_assignment_get(o->store, vf, &a, NULL) == 0;
}

/* A desired driver as stored ("vfio-pci" or "host"). */
iovm_vf_driver_kind naming_driver_kind(const char *driver)
{
	return !strcmp(driver, "vfio-pci") ? IOVM_VF_DRIVER_VFIO : IOVM_VF_DRIVER_HOST;
}

/* A VF of pf that is assigned to a VM: 1 and *ret, else 0. */
int naming_assigned_vf_of_pf(ops *o, const char *pf, iovm_store_assignment *ret)
{
	_cleanup_free_ iovm_store_assignment *as = NULL;
	size_t n = 0;

	if (iovm_store_assignment_list(o->store, NULL, &as, &n, NULL) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		iovm_vf vf;

		if (iovm_vf_get(o->host, as[i].vf, &vf, NULL) == 0 && !strcmp(vf.pf_addr, pf)) {
			*ret = as[i];
			return 1;
		}
	}
	return 0;
}

int naming_shared_vf_of_pf(ops *o, const char *pf, iovm_store_share *ret)
{
	_cleanup_free_ iovm_store_share *shs = NULL;
	size_t n = 0;

	if (iovm_store_share_list(o->store, NULL, NULL, &shs, &n, NULL) < 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		iovm_vf vf;

		if (iovm_vf_get(o->host, shs[i].vf, &vf, NULL) == 0 && !strcmp(vf.pf_addr, pf)) {
			*ret = shs[i];
			return 1;
		}
	}
	return 0;
}
