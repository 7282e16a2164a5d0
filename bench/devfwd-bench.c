/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* devfwd benchmark: native vs forwarded on the same device, in one run.
 *   - read throughput of a device (/dev/zero) at 4, 16, 64 KiB and 1 MiB,
 *   - small-ioctl round trip (EVIOCGVERSION on an evdev node),
 *   - the raw transport round trip (a HELLO through the backend's worker),
 *   - the same reads through the protocol alone (client library -> backend
 *     worker -> device, no CUSE), which splits a forwarded read's cost into
 *     the transport's part and the CUSE frontend's part,
 *   - with --floor, the same reads and ioctl on cuse-null, a CUSE device
 *     that forwards nothing: the floor of any CUSE frontend.
 *   - with --kernel, the same reads and ioctl on the devices forwarded by
 *     devfwd.ko, the kernel frontend (one stream per open file, no CUSE),
 *     and the ratios the kernel frontend's goals are stated in: its 64 KiB
 *     read against the CUSE frontend's and native, its ioctl against the
 *     transport round trip.
 * Prints each figure and its ratio to native; it asserts nothing,
 * since only ratios measured in the same run mean anything (the lab is TCG).
 * With --confine-cost, it measures instead what worker confinement costs:
 * a stream's start-up (connect and the first reply, which comes after the
 * worker's fork and confinement) and an ioctl round trip through the
 * protocol, on a backend with confined workers and one without.
 * usage: devfwd-bench --read NATIVE FORWARDED --ioctl NATIVE FORWARDED
 *                     --connect ADDR [--floor CUSE-NULL] [--kernel READ IOCTL]
 *                     [--backend-evdev PATH] [--mmap NATIVE FORWARDED] [--seconds S]
 *        devfwd-bench --confine-cost CONFINED-ADDR UNCONFINED-ADDR EVDEV [--seconds S]
 * --mmap: mmap, copy out and munmap 64 and 512 KiB of NATIVE and of
 * FORWARDED (a device of the kernel frontend in a guest with a shared
 * window of at least 1 MiB: the data moves through the window).
 * NATIVE of --ioctl may be "-" (no evdev where the benchmark runs, e.g. in a
 * guest); --backend-evdev then names the evdev node on the backend's side
 * for the protocol-only ioctl (default: NATIVE of --ioctl). The protocol
 * reads read NATIVE of --read on the backend's side. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <linux/input.h>

#include "shared/clock.h"
#include "devfwd/devfwd.h"

static double seconds = 1.0;

static double now(void)
{
	return (double)now_usec() / 1e6;
}

/* One measured operation: does it once on ctx, returns the bytes it moved
 * (0 for a round trip), or exits with a message if it failed. */
typedef size_t (*bench_op)(void *ctx);

/* Runs op in batches of 16 for about `seconds` (one at a time when the
 * first took over 10 ms: 16 of a nested guest's slow reads would overrun
 * the time many times; a fast operation keeps its batch, so the clock is
 * not read once per operation); returns the elapsed seconds and, in
 * *ret_ops and *ret_bytes, how many ran and what they moved. */
static double run_for(bench_op op, void *ctx, long *ret_ops, size_t *ret_bytes)
{
	double t0 = now(), t;
	size_t bytes = op(ctx);
	long n = 1;
	int batch = now() - t0 > 10e-3 ? 1 : 16;

	do {
		for (int i = 0; i < batch; i++, n++)
			bytes += op(ctx);
		t = now() - t0;
	} while (t < seconds);
	*ret_ops = n;
	*ret_bytes = bytes;
	return t;
}

static double bytes_per_second(bench_op op, void *ctx)
{
	size_t bytes;
	long n;
	double t = run_for(op, ctx, &n, &bytes);

	return (double)bytes / t;
}

static double us_per_op(bench_op op, void *ctx)
{
	size_t bytes;
	long n;
	double t = run_for(op, ctx, &n, &bytes);

	return t / (double)n * 1e6;
}

struct rd {
	const char *path;
	int fd;
	struct devfwd_client *c;
	uint32_t fh;
	char *buf, *src;
	size_t bs;
};

static size_t op_read(void *ctx)
{
	struct rd *r = ctx;
	ssize_t n = read(r->fd, r->buf, r->bs);

	if (n <= 0) {
		fprintf(stderr, "devfwd-bench: read %s: %s\n", r->path, n < 0 ? strerror(errno) : "EOF");
		exit(1);
	}
	return (size_t)n;
}

static size_t op_proto_read(void *ctx)
{
	struct rd *r = ctx;
	/* one request carries at most DEVFWD_MAX_IO (1 MiB less a header's room) */
	ssize_t n = devfwd_client_read(r->c, r->fh, r->buf, r->bs < DEVFWD_MAX_IO ? r->bs : DEVFWD_MAX_IO);

	if (n <= 0) {
		fprintf(stderr, "devfwd-bench: protocol read of %s: %s\n", r->path, n < 0 ? strerror((int)-n) : "EOF");
		exit(1);
	}
	return (size_t)n;
}

static volatile char copied; /* makes the copy's result observable */

static size_t op_memcpy(void *ctx)
{
	struct rd *r = ctx;

	r->src[r->bs - 1]++; /* a different copy each time */
	memcpy(r->buf, r->src, r->bs);
	copied = r->buf[r->bs - 1];
	return r->bs;
}

/* mmap bs bytes of the file at offset 0, copy them out (the application
 * consumes the data, as a read(2) would put it in its buffer), munmap. */
static size_t op_mmap(void *ctx)
{
	struct rd *r = ctx;
	void *p = mmap(NULL, r->bs, PROT_READ, MAP_SHARED, r->fd, 0);

	if (p == MAP_FAILED) {
		fprintf(stderr, "devfwd-bench: mmap of %zu bytes of %s: %m\n", r->bs, r->path);
		exit(1);
	}
	memcpy(r->buf, p, r->bs);
	copied = r->buf[r->bs - 1];
	if (munmap(p, r->bs) < 0) {
		fprintf(stderr, "devfwd-bench: munmap of %s: %m\n", r->path);
		exit(1);
	}
	return r->bs;
}

static size_t op_eviocgversion(void *ctx)
{
	struct rd *r = ctx;
	int v;

	if (ioctl(r->fd, EVIOCGVERSION, &v) < 0 || v != EV_VERSION) {
		fprintf(stderr, "devfwd-bench: EVIOCGVERSION on %s failed\n", r->path);
		exit(1);
	}
	return 0;
}

static size_t op_ping(void *ctx)
{
	struct rd *r = ctx;

	if (devfwd_client_ping(r->c) < 0) {
		fprintf(stderr, "devfwd-bench: ping failed\n");
		exit(1);
	}
	return 0;
}

static void open_flags_or_exit(struct rd *r, const char *path, int flags)
{
	r->path = path;
	r->fd = open(path, flags);
	if (r->fd < 0) {
		fprintf(stderr, "devfwd-bench: open %s: %m\n", path);
		exit(1);
	}
}

static void open_or_exit(struct rd *r, const char *path)
{
	open_flags_or_exit(r, path, O_RDONLY);
}

static char *buf_or_exit(size_t bs)
{
	char *b = calloc(1, bs);

	if (!b) {
		fputs("devfwd-bench: out of memory\n", stderr);
		exit(1);
	}
	return b;
}

/* Bytes per second reading path in chunks of bs for about `seconds`; in
 * *ret_per_call (if not NULL) the bytes one read(2) returned on average (a
 * frontend may return less than asked: devfwd.ko at most 128 KiB). */
static double read_rate_calls(const char *path, size_t bs, double *ret_per_call)
{
	struct rd r = { .bs = bs, .buf = buf_or_exit(bs) };
	size_t bytes;
	long n;
	double t;

	open_or_exit(&r, path);
	t = run_for(op_read, &r, &n, &bytes);
	close(r.fd);
	free(r.buf);
	if (ret_per_call)
		*ret_per_call = (double)bytes / (double)n;
	return (double)bytes / t;
}

static double read_rate(const char *path, size_t bs)
{
	return read_rate_calls(path, bs, NULL);
}

/* Bytes per second moved by mmap, copy and munmap of bs bytes of path.
 * Opened read-write although mapped read-only, as when its figures in
 * docs/devfwd.md were taken (devfwd.ko then refused a shared mapping of a
 * file opened read-only). */
static double mmap_rate(const char *path, size_t bs)
{
	struct rd r = { .bs = bs, .buf = buf_or_exit(bs) };
	double rate;

	open_flags_or_exit(&r, path, O_RDWR);
	rate = bytes_per_second(op_mmap, &r);
	close(r.fd);
	free(r.buf);
	return rate;
}

/* Bytes per second of memcpy in chunks of bs: what one user-space copy of
 * the data costs on this (possibly emulated) CPU, for reading the rest. */
static double memcpy_rate(size_t bs)
{
	struct rd r = { .bs = bs, .buf = buf_or_exit(bs), .src = buf_or_exit(bs) };
	double rate = bytes_per_second(op_memcpy, &r);

	free(r.buf);
	free(r.src);
	return rate;
}

/* Microseconds per EVIOCGVERSION on path. */
static double ioctl_rtt(const char *path)
{
	struct rd r = {};
	double us;

	open_or_exit(&r, path);
	us = us_per_op(op_eviocgversion, &r);
	close(r.fd);
	return us;
}

static struct devfwd_client *client(const char *addr)
{
	struct devfwd_client *c = NULL;
	iovm_error err = {};
	int fd, r;

	if (devfwd_connect(addr, &fd, &err) < 0) {
		fprintf(stderr, "devfwd-bench: %s\n", err.msg);
		exit(1);
	}
	r = devfwd_client_new(fd, &c);
	if (r < 0) {
		fprintf(stderr, "devfwd-bench: handshake with %s: %s\n", addr, strerror(-r));
		exit(1);
	}
	return c;
}

/* Bytes per second reading the backend's path through the protocol alone. */
static double proto_read_rate(const char *addr, const char *path, size_t bs)
{
	struct rd r = { .path = path, .bs = bs, .buf = buf_or_exit(bs), .c = client(addr) };
	int e = devfwd_client_open(r.c, path, DEVFWD_OPEN_READ, &r.fh);
	double rate;

	if (e < 0) {
		fprintf(stderr, "devfwd-bench: open %s through %s: %s\n", path, addr, strerror(-e));
		exit(1);
	}
	rate = bytes_per_second(op_proto_read, &r);
	(void)devfwd_client_release(r.c, r.fh);
	devfwd_client_free(r.c);
	free(r.buf);
	return rate;
}

/* Microseconds per protocol round trip with no device operation. */
static double transport_rtt(const char *addr)
{
	struct rd r = { .c = client(addr) };
	double us = us_per_op(op_ping, &r);

	devfwd_client_free(r.c);
	return us;
}

/* Microseconds per stream start-up: connect, HELLO and its reply, close. */
static size_t op_stream(void *ctx)
{
	struct rd *r = ctx;

	devfwd_client_free(client(r->path));
	return 0;
}

static size_t op_proto_ioctl(void *ctx)
{
	struct rd *r = ctx;
	int v = 0, e = devfwd_client_ioctl(r->c, r->fh, EVIOCGVERSION, &v);

	if (e < 0 || v != EV_VERSION) {
		fprintf(stderr, "devfwd-bench: EVIOCGVERSION through the protocol failed: %s\n", strerror(-e));
		exit(1);
	}
	return 0;
}

/* Microseconds per EVIOCGVERSION on the backend's dev through the protocol. */
static double proto_ioctl_rtt(const char *addr, const char *dev)
{
	struct rd r = { .c = client(addr) };
	int e = devfwd_client_open(r.c, dev, DEVFWD_OPEN_READ, &r.fh);
	double us;

	if (e < 0) {
		fprintf(stderr, "devfwd-bench: open %s through %s: %s\n", dev, addr, strerror(-e));
		exit(1);
	}
	us = us_per_op(op_proto_ioctl, &r);
	devfwd_client_free(r.c);
	return us;
}

/* Confined against unconfined workers, each measured twice, alternating, so
 * a drift of the (emulated) machine hits both alike. */
static int confine_cost(const char *confined, const char *unconfined, const char *dev)
{
	const char *addr[2] = { confined, unconfined };
	double start[2] = {}, io[2] = {};

	for (int round = 0; round < 2; round++)
		for (int k = 0; k < 2; k++) {
			struct rd r = { .path = addr[k] };

			start[k] += us_per_op(op_stream, &r) / 2;
			io[k] += proto_ioctl_rtt(addr[k], dev) / 2;
		}
	printf("%-34s %12s %12s %8s\n", "measure", "unconfined", "confined", "ratio");
	printf("%-34s %12.1f %12.1f %7.2fx\n", "worker start-up (us per stream)", start[1], start[0],
	       start[0] / start[1]);
	printf("%-34s %12.1f %12.1f %7.2fx\n", "EVIOCGVERSION via protocol (us)", io[1], io[0], io[0] / io[1]);
	return 0;
}

/* What one run measured, per read size and for the ioctl; 0 where a
 * column was not asked for. */
enum { NSIZES = 4 };
static const size_t sizes[NSIZES] = { 4096, 16384, 65536, 1048576 };

struct figures {
	double nat[NSIZES], fwd[NSIZES], floor[NSIZES], kern[NSIZES], proto[NSIZES];
	double kern_per_call[NSIZES];
	double io_nat, io_fwd, io_floor, io_kern, io_proto, rtt, copy;
	double mm_nat[2], mm_fwd[2]; /* --mmap, 64 and 512 KiB */
};
static const size_t mmap_sizes[2] = { 65536, 524288 };

static double mib(double bytes_per_s)
{
	return bytes_per_s / 1048576;
}

static double us_per_read(size_t bs, double rate)
{
	return rate > 0 ? 1e6 * (double)bs / rate : 0;
}

static void print_figures(const struct figures *f, bool floor_dev, bool kern)
{
	printf("%-22s %10s %10s %10s %10s %10s\n", "read, MiB/s (us/read)", "native", "CUSE floor", "CUSE fwd",
	       "kernel fwd", "protocol");
	for (size_t i = 0; i < NSIZES; i++) {
		char label[32];

		snprintf(label, sizeof(label), "%zu KiB", sizes[i] / 1024);
		printf("%-22s %10.1f %10.1f %10.1f %10.1f %10.1f\n", label, mib(f->nat[i]), mib(f->floor[i]),
		       mib(f->fwd[i]), mib(f->kern[i]), mib(f->proto[i]));
		printf("%-22s %10.1f %10.1f %10.1f %10.1f %10.1f\n", "  us per read(2)", us_per_read(sizes[i], f->nat[i]),
		       us_per_read(sizes[i], f->floor[i]), us_per_read(sizes[i], f->fwd[i]),
		       kern ? 1e6 * f->kern_per_call[i] / f->kern[i] : 0, us_per_read(sizes[i], f->proto[i]));
	}
	printf("%-22s %10.1f %10.1f %10.1f %10.1f %10.1f\n", "EVIOCGVERSION, us", f->io_nat, f->io_floor, f->io_fwd,
	       f->io_kern, f->io_proto);
	printf("transport round trip (HELLO through the worker): %.1f us\n", f->rtt);
	printf("memcpy 64 KiB: %.1f MiB/s (one user-space copy, for scale)\n", mib(f->copy));
	if (kern)
		printf("kernel fwd 1024 KiB: %.0f bytes per read(2) on average (the module forwards at most "
		       "128 KiB per call)\n", f->kern_per_call[NSIZES - 1]);
	puts("ratios:");
	printf("  CUSE fwd / native, 64 KiB read           %8.1f%%\n", 100 * f->fwd[2] / f->nat[2]);
	if (floor_dev)
		printf("  CUSE floor / native, 64 KiB read         %8.1f%%\n", 100 * f->floor[2] / f->nat[2]);
	printf("  CUSE fwd ioctl / transport               %8.2fx  (target <= 3x)\n", f->io_fwd / f->rtt);
	if (floor_dev)
		printf("  (CUSE fwd - floor) ioctl / transport     %8.2fx\n", (f->io_fwd - f->io_floor) / f->rtt);
	if (!kern)
		return;
	printf("  kernel / CUSE fwd, 64 KiB read           %8.2fx  (goal >= 5x)\n", f->kern[2] / f->fwd[2]);
	printf("  kernel / CUSE fwd, 1 MiB read            %8.2fx\n", f->kern[3] / f->fwd[3]);
	printf("  kernel / native, 64 KiB read             %8.1f%%  (goal >= 50%% for data moved through the "
	       "window; read(2) moves it through the socket)\n", 100 * f->kern[2] / f->nat[2]);
	printf("  kernel / native, 1 MiB read              %8.1f%%\n", 100 * f->kern[3] / f->nat[3]);
	printf("  kernel / protocol, 64 KiB read           %8.1f%%\n", 100 * f->kern[2] / f->proto[2]);
	printf("  kernel ioctl / transport                 %8.2fx  (goal <= 1.5x)\n", f->io_kern / f->rtt);
	printf("  kernel ioctl / protocol ioctl            %8.2fx\n", f->io_kern / f->io_proto);
	printf("  kernel ioctl / CUSE fwd ioctl            %8.2fx\n", f->io_kern / f->io_fwd);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "read", required_argument, NULL, 'r' },
		{ "ioctl", required_argument, NULL, 'i' },
		{ "connect", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "floor", required_argument, NULL, 'f' },
		{ "kernel", required_argument, NULL, 'k' },
		{ "backend-evdev", required_argument, NULL, 'e' },
		{ "mmap", required_argument, NULL, 'm' },
		{ "confine-cost", required_argument, NULL, 'C' },
		{}
	};
	const char *rn = NULL, *rf = NULL, *in = NULL, *inf = NULL, *addr = NULL, *floor_dev = NULL;
	const char *kr = NULL, *ki = NULL, *proto_ioctl_dev = NULL, *mn = NULL, *mf = NULL;
	const char *cc[3] = {};
	struct figures f = {};
	int c;

	while ((c = getopt_long(argc, argv, "r:i:c:s:f:k:e:m:C:", opts, NULL)) != -1) {
		switch (c) {
		case 'C':
			cc[0] = optarg;
			cc[1] = optind < argc ? argv[optind++] : NULL;
			cc[2] = optind < argc ? argv[optind++] : NULL;
			break;
		case 'r':
			rn = optarg;
			rf = optind < argc ? argv[optind++] : NULL;
			break;
		case 'i':
			in = optarg;
			inf = optind < argc ? argv[optind++] : NULL;
			break;
		case 'k':
			kr = optarg;
			ki = optind < argc ? argv[optind++] : NULL;
			break;
		case 'e':
			proto_ioctl_dev = optarg;
			break;
		case 'm':
			mn = optarg;
			mf = optind < argc ? argv[optind++] : NULL;
			break;
		case 'c':
			addr = optarg;
			break;
		case 's':
			seconds = atof(optarg);
			break;
		case 'f':
			floor_dev = optarg;
			break;
		default:
			return 2;
		}
	}
	if (cc[0] && cc[1] && cc[2] && seconds > 0)
		return confine_cost(cc[0], cc[1], cc[2]);
	if (!rn || !rf || !in || !inf || !addr || (kr && !ki) || (mn && !mf) || (strcmp(in, "-") == 0 && !proto_ioctl_dev) ||
	    seconds <= 0) {
		fputs("usage: devfwd-bench --read NATIVE FORWARDED --ioctl NATIVE FORWARDED --connect ADDR "
		      "[--floor CUSE-NULL] [--kernel READ IOCTL] [--backend-evdev PATH]\n"
		      "                    [--mmap NATIVE FORWARDED] [--seconds S]\n"
		      "       devfwd-bench --confine-cost CONFINED-ADDR UNCONFINED-ADDR EVDEV [--seconds S]\n", stderr);
		return 2;
	}
	/* Every column of a row one after the other, so a drift of the
	 * (emulated) machine's load spreads over all of them alike. */
	for (size_t i = 0; i < NSIZES; i++) {
		f.nat[i] = read_rate(rn, sizes[i]);
		if (floor_dev)
			f.floor[i] = read_rate(floor_dev, sizes[i]);
		f.fwd[i] = read_rate(rf, sizes[i]);
		if (kr)
			f.kern[i] = read_rate_calls(kr, sizes[i], &f.kern_per_call[i]);
		/* The same reads without CUSE or module: transport and worker. */
		f.proto[i] = proto_read_rate(addr, rn, sizes[i]);
	}
	f.copy = memcpy_rate(65536);
	/* "-": no native device here (a guest without evdev): the host's
	 * figure is the native one. */
	if (strcmp(in, "-") != 0)
		f.io_nat = ioctl_rtt(in);
	if (floor_dev)
		f.io_floor = ioctl_rtt(floor_dev);
	f.io_fwd = ioctl_rtt(inf);
	if (ki)
		f.io_kern = ioctl_rtt(ki);
	f.io_proto = proto_ioctl_rtt(addr, proto_ioctl_dev ? proto_ioctl_dev : in);
	f.rtt = transport_rtt(addr);
	print_figures(&f, floor_dev, kr);
	fflush(stdout);
	for (size_t i = 0; mn && i < 2; i++) {
		f.mm_nat[i] = mmap_rate(mn, mmap_sizes[i]);
		f.mm_fwd[i] = mmap_rate(mf, mmap_sizes[i]);
		printf("mmap+copy+munmap %3zu KiB: native %.1f MiB/s, through the window %.1f MiB/s, %.1f%%\n",
		       mmap_sizes[i] / 1024, mib(f.mm_nat[i]), mib(f.mm_fwd[i]), 100 * f.mm_fwd[i] / f.mm_nat[i]);
	}
	return 0;
}
