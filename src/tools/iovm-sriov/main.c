/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iovm-sriov: drive libiovm's SR-IOV inventory, lifecycle and VF settings
 * from the shell (lab tests, benchmarks). Output is "key=value" lines; on
 * failure the library's message goes to stderr and the exit status is the
 * errno (e.g. 16 EBUSY, 110 ETIMEDOUT), so scripts can tell causes apart.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/deadline.h"
#include "iovm/host.h"
#include "iovm/pci.h"
#include "iovm/sriov.h"
#include "iovm/vfio.h"
#include "iovm/vfnet.h"

/* Prints the usage to f; returns code, the exit status. */
static int usage(FILE *f, int code)
{
	fputs("usage: iovm-sriov [--sysfs DIR] [--timeout-ms MS] COMMAND ARGS\n"
	      "  pf-list | pf-show PF | vf-list [PF] | vf-show VF\n"
	      "  set-vfs PF N [vfio|host|none] [--force]\n"
	      "  bind VF vfio-pci|host|DRIVER | users VF | group-check VF | group-path VF\n"
	      "  vf-get PF IDX | vf-set PF IDX FIELD=V... | vf-stats PF IDX\n"
	      "  vf-save PF IDX | vf-restore PF IDX 'SAVED LINE'\n"
	      "PF = PCI address or netdev; VF = PCI address. FIELD: mac vlan qos rate\n"
	      "spoofchk trust link (auto|enable|disable).\n", f);
	return code;
}

static int fail(int r, const iovm_error *e)
{
	fprintf(stderr, "iovm-sriov: %s\n", e->code ? e->msg : strerror(-r));
	return -r > 0 && -r < 256 ? -r : 1;
}

static void print_pf(const iovm_pf *p)
{
	printf("pf=%s netdev=%s driver=%s id=%04x:%04x vf_device=%04x numa=%d total_vfs=%u "
	       "num_vfs=%u%s offset=%u stride=%u autoprobe=%d operstate=%s admin_up=%d\n",
	       p->addr, p->netdev[0] ? p->netdev : "-", p->driver[0] ? p->driver : "-",
	       p->vendor, p->device, p->vf_device, p->numa_node, p->total_vfs, p->num_vfs,
	       p->num_vfs_from_links ? "(links)" : "", p->vf_offset, p->vf_stride,
	       p->drivers_autoprobe, p->operstate[0] ? p->operstate : "-", p->admin_up);
}

static void print_vf(const iovm_vf *v)
{
	printf("vf=%s pf=%s index=%u driver=%s%s netdev=%s group=%d peers=%u",
	       v->addr, v->pf_addr, v->index, v->driver[0] ? v->driver : "-", v->locked ? "(locked)" : "",
	       v->netdev[0] ? v->netdev : "-", v->iommu_group, v->n_group_peers);
	for (unsigned i = 0; i < v->n_group_peers && i < IOVM_GROUP_PEERS_MAX; i++)
		printf("%c%s", i ? ',' : ' ', v->group_peers[i]);
	printf("\n");
}

static int parse_index(const char *s, unsigned *ret)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || end == s || *end || v > 255)
		return -EINVAL;
	*ret = (unsigned)v;
	return 0;
}

static int cmd_vfnet(iovm_host *h, const char *cmd, int argc, char **argv, iovm_error *e)
{
	iovm_vfnet *nl = NULL;
	iovm_vfnet_config c = {};
	unsigned idx;
	char line[256];
	int r;

	if (argc < 2 || parse_index(argv[1], &idx) < 0)
		return iovm_error_set(e, -EINVAL, "%s: expected PF and VF index", cmd);
	r = iovm_vfnet_open(h, &nl, e);
	if (r < 0)
		return r;
	if (strcmp(cmd, "vf-get") == 0 || strcmp(cmd, "vf-save") == 0) {
		r = iovm_vfnet_get(nl, argv[0], idx, &c, e);
		if (r >= 0 && iovm_vfnet_config_format(&c, line, sizeof(line)) >= 0)
			printf("%s\n", line);
	} else if (strcmp(cmd, "vf-set") == 0 || strcmp(cmd, "vf-restore") == 0) {
		line[0] = '\0';
		for (int i = 2; i < argc; i++) {
			strncat(line, argv[i], sizeof(line) - strlen(line) - 2);
			strcat(line, " ");
		}
		r = iovm_vfnet_config_parse(line, &c, e);
		if (r >= 0 && strcmp(cmd, "vf-set") == 0)
			r = iovm_vfnet_set(nl, argv[0], idx, &c, c.present, e);
		else if (r >= 0)
			r = iovm_vfnet_restore(nl, argv[0], idx, &c, e);
	} else {
		iovm_vfnet_stats s;

		r = iovm_vfnet_get_stats(nl, argv[0], idx, &s, e);
		if (r >= 0)
			printf("rx_packets=%llu tx_packets=%llu rx_bytes=%llu tx_bytes=%llu "
			       "broadcast=%llu multicast=%llu\n",
			       (unsigned long long)s.rx_packets, (unsigned long long)s.tx_packets,
			       (unsigned long long)s.rx_bytes, (unsigned long long)s.tx_bytes,
			       (unsigned long long)s.broadcast, (unsigned long long)s.multicast);
	}
	iovm_vfnet_close(nl);
	return r;
}

static int run(iovm_host *h, int argc, char **argv, iovm_error *e)
{
	const char *cmd = argv[0];
	int r;

	argc--;
	argv++;
	if (strcmp(cmd, "pf-list") == 0) {
		iovm_pf *pfs = NULL;
		size_t n = 0;

		r = iovm_pf_list(h, &pfs, &n, e);
		for (size_t i = 0; r >= 0 && i < n; i++)
			print_pf(&pfs[i]);
		free(pfs);
		return r;
	}
	if (strcmp(cmd, "pf-show") == 0 && argc == 1) {
		iovm_pf p;

		r = iovm_pf_get(h, argv[0], &p, e);
		if (r >= 0)
			print_pf(&p);
		return r;
	}
	if (strcmp(cmd, "vf-list") == 0 && argc <= 1) {
		iovm_vf *vfs = NULL;
		size_t n = 0;

		r = iovm_vf_list(h, argc ? argv[0] : NULL, &vfs, &n, e);
		for (size_t i = 0; r >= 0 && i < n; i++)
			print_vf(&vfs[i]);
		free(vfs);
		return r;
	}
	if (strcmp(cmd, "vf-show") == 0 && argc == 1) {
		iovm_vf v;

		r = iovm_vf_get(h, argv[0], &v, e);
		if (r >= 0)
			print_vf(&v);
		return r;
	}
	if (strcmp(cmd, "set-vfs") == 0 && argc >= 2) {
		iovm_vf_driver_kind kind = IOVM_VF_DRIVER_NONE;
		unsigned n, flags = 0;

		if (parse_index(argv[1], &n) < 0)
			return iovm_error_set(e, -EINVAL, "set-vfs: bad count '%s'", argv[1]);
		for (int i = 2; i < argc; i++) {
			if (strcmp(argv[i], "vfio") == 0)
				kind = IOVM_VF_DRIVER_VFIO;
			else if (strcmp(argv[i], "host") == 0)
				kind = IOVM_VF_DRIVER_HOST;
			else if (strcmp(argv[i], "none") == 0)
				kind = IOVM_VF_DRIVER_NONE;
			else if (strcmp(argv[i], "--force") == 0)
				flags |= IOVM_SRIOV_FORCE;
			else
				return iovm_error_set(e, -EINVAL, "set-vfs: unknown '%s'", argv[i]);
		}
		return iovm_pf_set_numvfs(h, argv[0], n, kind, flags, e);
	}
	if (strcmp(cmd, "bind") == 0 && argc == 2)
		return iovm_vf_bind(h, argv[0], strcmp(argv[1], "host") == 0 ? NULL : argv[1], e);
	if (strcmp(cmd, "users") == 0 && argc == 1) {
		char u[1024];

		r = iovm_vf_users(h, argv[0], u, sizeof(u), e);
		if (r >= 0)
			printf("users=%d %s\n", r, u);
		return r;
	}
	if (strcmp(cmd, "group-check") == 0 && argc == 1)
		return iovm_vfio_group_check(h, argv[0], e);
	if (strcmp(cmd, "group-path") == 0 && argc == 1) {
		char p[64];

		r = iovm_vfio_group_path(h, argv[0], p, sizeof(p), e);
		if (r >= 0)
			printf("%s\n", p);
		return r;
	}
	if (!strcmp(cmd, "vf-get") || !strcmp(cmd, "vf-set") || !strcmp(cmd, "vf-stats") ||
	    !strcmp(cmd, "vf-save") || !strcmp(cmd, "vf-restore"))
		return cmd_vfnet(h, cmd, argc, argv, e);
	usage(stderr, 2);
	return iovm_error_set(e, -EINVAL, "unknown command or arguments: %s", cmd);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "sysfs", required_argument, NULL, 's' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	const char *sysfs = NULL;
	unsigned long tmo_ms = 0;
	iovm_host *h = NULL;
	iovm_error e = {};
	int c, r;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			sysfs = optarg;
			break;
		case 't':
			tmo_ms = strtoul(optarg, NULL, 10);
			break;
		case 'h':
			return usage(stdout, 0);
		default:
			return usage(stderr, 2);
		}
	}
	if (optind >= argc)
		return usage(stderr, 2);
	r = iovm_host_new(sysfs, &h);
	if (r < 0)
		return fail(r, &e);
	if (tmo_ms)
		for (int k = 0; k < _IOVM_TIMEOUT_MAX; k++)
			iovm_host_set_timeout(h, (iovm_timeout_kind)k, tmo_ms * 1000);
	r = run(h, argc - optind, argv + optind, &e);
	iovm_host_free(h);
	/* Give workers abandoned on a timeout a last chance to be reaped. */
	iovm_sysop_reap();
	return r < 0 ? fail(r, &e) : 0;
}
