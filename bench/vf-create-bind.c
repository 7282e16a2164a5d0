/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * vf-create-bind: create N VFs on a PF and bind them all to vfio-pci with
 * libiovm (iovm_pf_set_numvfs(..., IOVM_VF_DRIVER_VFIO)), then remove them.
 * Prints the creation+bind time in nanoseconds. Run by vf-create-bind-run.sh,
 * which compares it with vf-create-bind.sh doing the same sysfs writes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "iovm/host.h"
#include "iovm/sriov.h"
#include "shared/clock.h"
#include "shared/util.h"

int main(int argc, char **argv)
{
	_cleanup_(iovm_host_freep) iovm_host *h = NULL;
	iovm_error e = {};
	long long t0, t1;
	int r;

	if (argc != 3) {
		fprintf(stderr, "usage: vf-create-bind PF N\n");
		return 2;
	}
	r = iovm_host_new(NULL, &h);
	if (r < 0)
		return 1;
	t0 = now_nsec();
	r = iovm_pf_set_numvfs(h, argv[1], (unsigned)atoi(argv[2]), IOVM_VF_DRIVER_VFIO, 0, &e);
	t1 = now_nsec();
	if (r < 0) {
		fprintf(stderr, "vf-create-bind: %s\n", e.msg);
		return 1;
	}
	printf("%lld\n", t1 - t0);
	r = iovm_pf_remove_vfs(h, argv[1], 0, &e);
	if (r < 0)
		fprintf(stderr, "vf-create-bind: %s\n", e.msg);
	return r < 0 ? 1 : 0;
}
