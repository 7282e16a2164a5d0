/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * alloc-bench: the allocation policy engine at scale. Replays one
 * fixed pseudo-random sequence of requests, releases, byte-counter samples
 * and window resets on the indexed engine and on the reference engine (the
 * published algorithm: sort every VF on every request), in the same run, and
 * prints for both the decisions per second and the p99 decision latency
 * (clock_gettime around each iovm_policy_request()), their ratio, and
 * whether the two made identical decisions.
 *
 *   alloc-bench [VFS [VMS [CHURN]]]     defaults: 4096 10000 10000
 *
 * The sequence: every VM asks once, in a shuffled order (free VFs go out
 * exclusively, then VMs share), then CHURN rounds of "a random holder lets a
 * VF go, a random VM asks". Two VF byte counters are sampled per request and
 * the window closes every 500 requests. Modes: 70% auto, 15% exclusive, 15%
 * shared; 5% of requests name a PF. Exit status 1 if the decisions differ.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "shared/clock.h"
#include "iovm/policy.h"

#define VFS_PER_PF 64
#define NODES 2
#define SAMPLES_PER_REQUEST 2
#define REQUESTS_PER_WINDOW 500

typedef struct run {
	const char *name;
	iovm_policy_algo algo;
	iovm_policy_decision *d;   /* every decision, in order */
	uint64_t *lat;             /* ns per decision */
	size_t n;
	uint64_t busy_ns;          /* sum of lat */
	uint64_t wall_ns;          /* the whole replay */
	size_t exclusive, shared, refused, releases;
} run;

typedef struct world {
	unsigned vfs, vms, churn;
	char (*vf_id)[16];
	char (*pf_id)[16];
	char (*vm_name)[16];
} world;

static uint64_t rng;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static unsigned below(unsigned n)
{
	return (unsigned)(rnd() % n);
}

static void die(const char *what, const iovm_error *e)
{
	fprintf(stderr, "alloc-bench: %s: %s\n", what, e->msg);
	exit(2);
}

typedef struct hold {
	unsigned vm;
	char vf[IOVM_POLICY_ID_MAX];
} hold;

/* One request, timed; the decision is recorded whatever its result. */
static void request(const world *w, iovm_policy *p, run *r, unsigned vm, hold *h, size_t *nh)
{
	unsigned m = below(100);
	iovm_policy_req q = {
		.vm = w->vm_name[vm],
		.mode = m < 70 ? IOVM_MODE_AUTO : m < 85 ? IOVM_MODE_EXCLUSIVE : IOVM_MODE_SHARED,
		.pf = below(20) == 0 ? w->pf_id[below(w->vfs / VFS_PER_PF)] : NULL,
	};
	iovm_policy_decision *d = &r->d[r->n];
	iovm_error e = {};
	uint64_t t0, t1;
	int res;

	*d = (iovm_policy_decision){};
	t0 = now_nsec();
	res = iovm_policy_request(p, &q, d, &e);
	t1 = now_nsec();
	r->lat[r->n++] = t1 - t0;
	r->busy_ns += t1 - t0;
	if (res < 0) {
		if (res != -EBUSY)
			die("request", &e);
		d->result = res;
		snprintf(d->reason, sizeof(d->reason), "%s", e.msg);
		r->refused++;
		return;
	}
	if (d->mode == IOVM_MODE_SHARED)
		r->shared++;
	else
		r->exclusive++;
	h[*nh].vm = vm;
	memcpy(h[*nh].vf, d->vf, sizeof(h[*nh].vf));
	(*nh)++;
}

static void replay(const world *w, run *r)
{
	iovm_policy_config cfg = { .algo = r->algo, .max_users = 4 };
	size_t total = (size_t)w->vms + w->churn, nh = 0;
	uint64_t *counter = calloc(w->vfs, sizeof(*counter)), clock = 0, t0;
	unsigned *order = malloc(w->vms * sizeof(*order));
	hold *h = malloc(total * sizeof(*h));
	iovm_policy *p = NULL;
	iovm_error e = {};

	r->d = calloc(total, sizeof(*r->d));
	r->lat = calloc(total, sizeof(*r->lat));
	if (!counter || !order || !h || !r->d || !r->lat) {
		fprintf(stderr, "alloc-bench: out of memory\n");
		exit(2);
	}
	rng = 0x2545f4914f6cdd1dULL;   /* the same sequence for every engine */
	if (iovm_policy_new(&cfg, 0, &p, &e) < 0)
		die("new", &e);
	for (unsigned i = 0; i < w->vfs; i++) {
		unsigned pf = i / VFS_PER_PF;
		iovm_policy_vf v = { .id = w->vf_id[i], .pf = w->pf_id[pf], .numa_node = (int)(pf % NODES),
				     .shareable = i % 8 != 7 };

		if (iovm_policy_vf_add(p, &v, &e) < 0)
			die("vf add", &e);
	}
	for (unsigned i = 0; i < w->vms; i++) {
		iovm_policy_vm m = { .name = w->vm_name[i], .priority = (iovm_priority)below(3),
				     .numa_node = (int)below(NODES + 1) - 1 };

		if (iovm_policy_vm_add(p, &m, &e) < 0)
			die("vm add", &e);
		order[i] = i;
	}
	for (unsigned i = w->vms - 1; i > 0; i--) {
		unsigned j = below(i + 1), t = order[i];

		order[i] = order[j];
		order[j] = t;
	}

	t0 = now_nsec();
	for (size_t step = 0; step < total; step++) {
		unsigned vm;

		if (step < w->vms)
			vm = order[step];
		else {
			if (nh) {   /* a random holder lets go */
				size_t i = below((unsigned)nh);

				if (iovm_policy_release(p, w->vm_name[h[i].vm], h[i].vf, NULL, &e) < 0)
					die("release", &e);
				h[i] = h[--nh];
				r->releases++;
			}
			vm = below(w->vms);
		}
		request(w, p, r, vm, h, &nh);
		for (int s = 0; s < SAMPLES_PER_REQUEST; s++) {
			unsigned vf = below(w->vfs);

			counter[vf] += rnd() % 10000000;
			if (iovm_policy_sample(p, w->vf_id[vf], counter[vf], &e) < 0)
				die("sample", &e);
		}
		if ((step + 1) % REQUESTS_PER_WINDOW == 0) {
			clock += 1000000000ULL;
			if (iovm_policy_window_reset(p, clock, &e) < 0)
				die("window", &e);
		}
	}
	r->wall_ns = now_nsec() - t0;
	iovm_policy_free(p);
	free(counter);
	free(order);
	free(h);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t percentile(uint64_t *v, size_t n, double q)
{
	size_t i;

	qsort(v, n, sizeof(*v), cmp_u64);
	i = (size_t)(q * (double)(n - 1) + 0.5);
	return v[i];
}

static bool same(const iovm_policy_decision *a, const iovm_policy_decision *b)
{
	return a->result == b->result && a->mode == b->mode && a->users == b->users && !strcmp(a->vf, b->vf) &&
	       !strcmp(a->vm, b->vm) && !strcmp(a->reason, b->reason);
}

static unsigned arg(int argc, char **argv, int i, unsigned def)
{
	return argc > i ? (unsigned)strtoul(argv[i], NULL, 10) : def;
}

int main(int argc, char **argv)
{
	world w = { .vfs = arg(argc, argv, 1, 4096), .vms = arg(argc, argv, 2, 10000), .churn = arg(argc, argv, 3, 10000) };
	run runs[2] = {
		{ .name = "indexed", .algo = IOVM_POLICY_ALGO_INDEXED },
		{ .name = "reference", .algo = IOVM_POLICY_ALGO_REFERENCE },
	};
	double dps[2], p99[2];
	size_t first_diff = SIZE_MAX;

	if (argc > 4 || w.vfs < VFS_PER_PF || w.vfs % VFS_PER_PF || w.vms < 2) {
		fprintf(stderr, "usage: alloc-bench [VFS (a multiple of %d) [VMS [CHURN]]]\n", VFS_PER_PF);
		return 2;
	}
	w.vf_id = calloc(w.vfs, sizeof(*w.vf_id));
	w.pf_id = calloc(w.vfs / VFS_PER_PF, sizeof(*w.pf_id));
	w.vm_name = calloc(w.vms, sizeof(*w.vm_name));
	if (!w.vf_id || !w.pf_id || !w.vm_name)
		return 2;
	for (unsigned i = 0; i < w.vfs / VFS_PER_PF; i++)
		snprintf(w.pf_id[i], sizeof(w.pf_id[i]), "0000:%02x:00.0", i + 1);
	for (unsigned i = 0; i < w.vfs; i++)
		snprintf(w.vf_id[i], sizeof(w.vf_id[i]), "0000:%02x:%02x.%u", i / VFS_PER_PF + 1,
			 (i % VFS_PER_PF) / 8 + 0x10, i % 8);
	for (unsigned i = 0; i < w.vms; i++)
		snprintf(w.vm_name[i], sizeof(w.vm_name[i]), "vm%u", i);

	printf("alloc-bench: %u VFs on %u PFs (%d NUMA nodes, 7 of 8 shareable, cap 4 users), %u VMs, "
	       "%u decisions (%u first requests + %u churn rounds)\n", w.vfs, w.vfs / VFS_PER_PF, NODES, w.vms,
	       w.vms + w.churn, w.vms, w.churn);
	for (int k = 0; k < 2; k++) {
		run *r = &runs[k];

		replay(&w, r);
		dps[k] = (double)r->n / ((double)r->busy_ns / 1e9);
		p99[k] = (double)percentile(r->lat, r->n, 0.99) / 1e3;
		printf("%-9s  %12.0f decisions/s   p50 %9.2f us   p99 %9.2f us   (replay %.2f s; %zu exclusive, "
		       "%zu shared, %zu refused, %zu releases)\n", r->name, dps[k],
		       (double)percentile(r->lat, r->n, 0.50) / 1e3, p99[k], (double)r->wall_ns / 1e9, r->exclusive,
		       r->shared, r->refused, r->releases);
	}
	for (size_t i = 0; i < runs[0].n && first_diff == SIZE_MAX; i++)
		if (!same(&runs[0].d[i], &runs[1].d[i]))
			first_diff = i;
	if (runs[0].n != runs[1].n && first_diff == SIZE_MAX)
		first_diff = runs[0].n;
	printf("ratio: %.1fx decisions/s, %.1fx p99 latency (indexed vs reference)\n", dps[0] / dps[1],
	       p99[1] / p99[0]);
	printf("identical: %s\n", first_diff == SIZE_MAX ? "yes" : "no");
	if (first_diff != SIZE_MAX && first_diff < runs[0].n)
		printf("first difference at decision %zu: indexed %s \"%s\", reference %s \"%s\"\n", first_diff,
		       runs[0].d[first_diff].vf, runs[0].d[first_diff].reason, runs[1].d[first_diff].vf,
		       runs[1].d[first_diff].reason);
	for (int k = 0; k < 2; k++) {
		free(runs[k].d);
		free(runs[k].lat);
	}
	free(w.vf_id);
	free(w.pf_id);
	free(w.vm_name);
	return first_diff == SIZE_MAX ? 0 : 1;
}
