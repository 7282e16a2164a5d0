/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* devfwd benchmark: native vs forwarded on the same device, in one run.
 *   - read throughput of a device (/dev/zero) at 4, 16 and 64 KiB,
 *   - small-ioctl round trip (EVIOCGVERSION on an evdev node),
 *   - the raw transport round trip (a HELLO through the backend's worker),
 *   - the same reads through the protocol alone (client library -> backend
 *     worker -> device, no CUSE), which splits a forwarded read's cost into
 *     the transport's part and the CUSE frontend's part,
 *   - with --floor, the same reads and ioctl on cuse-null, a CUSE device
 *     that forwards nothing: the floor of any CUSE frontend.
 * Prints each figure and its ratio to native; it asserts nothing,
 * since only ratios measured in the same run mean anything (the lab is TCG).
 * With --confine-cost, it measures instead what worker confinement costs:
 * a stream's start-up (connect and the first reply, which comes after the
 * worker's fork and confinement) and an ioctl round trip through the
 * protocol, on a backend with confined workers and one without.
 * usage: devfwd-bench --read NATIVE FORWARDED --ioctl NATIVE FORWARDED
 *                     --connect ADDR [--floor CUSE-NULL] [--seconds S]
 *        devfwd-bench --confine-cost CONFINED-ADDR UNCONFINED-ADDR EVDEV [--seconds S] */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
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

/* Runs op in batches of 16 for about `seconds`; returns the elapsed
 * seconds and, in *ret_ops and *ret_bytes, how many ran and what they moved. */
static double run_for(bench_op op, void *ctx, long *ret_ops, size_t *ret_bytes)
{
	double t0 = now(), t;
	size_t bytes = 0;
	long n = 0;

	do {
		for (int i = 0; i < 16; i++, n++)
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
	ssize_t n = devfwd_client_read(r->c, r->fh, r->buf, r->bs);

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

static void open_or_exit(struct rd *r, const char *path)
{
	r->path = path;
	r->fd = open(path, O_RDONLY);
	if (r->fd < 0) {
		fprintf(stderr, "devfwd-bench: open %s: %m\n", path);
		exit(1);
	}
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

/* Bytes per second reading path in chunks of bs for about `seconds`. */
static double read_rate(const char *path, size_t bs)
{
	struct rd r = { .bs = bs, .buf = buf_or_exit(bs) };
	double rate;

	open_or_exit(&r, path);
	rate = bytes_per_second(op_read, &r);
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

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "read", required_argument, NULL, 'r' },
		{ "ioctl", required_argument, NULL, 'i' },
		{ "connect", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{ "floor", required_argument, NULL, 'f' },
		{ "confine-cost", required_argument, NULL, 'C' },
		{}
	};
	const char *rn = NULL, *rf = NULL, *in = NULL, *inf = NULL, *addr = NULL, *floor_dev = NULL;
	const char *cc[3] = {};
	static const size_t sizes[] = { 4096, 16384, 65536 };
	enum { NSIZES = sizeof(sizes) / sizeof(sizes[0]) };
	double fwd[NSIZES], nat[NSIZES];
	int c;

	while ((c = getopt_long(argc, argv, "r:i:c:s:f:C:", opts, NULL)) != -1) {
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
	if (!rn || !rf || !in || !inf || !addr || seconds <= 0) {
		fputs("usage: devfwd-bench --read NATIVE FORWARDED --ioctl NATIVE FORWARDED --connect ADDR "
		      "[--floor CUSE-NULL] [--seconds S]\n"
		      "       devfwd-bench --confine-cost CONFINED-ADDR UNCONFINED-ADDR EVDEV [--seconds S]\n", stderr);
		return 2;
	}
	printf("%-28s %14s %14s %8s\n", "measure", "native", "forwarded", "ratio");
	for (size_t i = 0; i < NSIZES; i++) {
		nat[i] = read_rate(rn, sizes[i]);
		fwd[i] = read_rate(rf, sizes[i]);
		printf("read %-3zu KiB (MiB/s)        %14.1f %14.1f %7.1f%%\n", sizes[i] / 1024, nat[i] / 1048576,
		       fwd[i] / 1048576, 100 * fwd[i] / nat[i]);
	}
	/* The same reads without CUSE: what the transport and worker cost. */
	for (size_t i = 0; i < NSIZES; i++) {
		double p = proto_read_rate(addr, rn, sizes[i]);

		printf("protocol read %-3zu KiB (MiB/s) %13s %14.1f   (us/read: protocol %.0f, forwarded %.0f)\n",
		       sizes[i] / 1024, "", p / 1048576, 1e6 * (double)sizes[i] / p, 1e6 * (double)sizes[i] / fwd[i]);
	}
	/* A CUSE device that forwards nothing: what CUSE alone costs. */
	for (size_t i = 0; floor_dev && i < NSIZES; i++) {
		double z = read_rate(floor_dev, sizes[i]);

		printf("CUSE floor read %-3zu KiB (MiB/s) %10s %14.1f %7.1f%%  (us/read %.0f)\n", sizes[i] / 1024, "",
		       z / 1048576, 100 * z / nat[i], 1e6 * (double)sizes[i] / z);
	}
	printf("memcpy 64  KiB (MiB/s)       %14.1f   (one user-space copy, for scale)\n",
	       memcpy_rate(65536) / 1048576);
	double in_us = ioctl_rtt(in), f_us = ioctl_rtt(inf), t_us = transport_rtt(addr);

	printf("EVIOCGVERSION (us)           %14.1f %14.1f %7.1fx\n", in_us, f_us, f_us / in_us);
	printf("transport round trip (us)    %14s %14.1f\n", "-", t_us);
	printf("forwarded ioctl / transport  %14s %14s %7.2fx  (target <= 3x)\n", "", "", f_us / t_us);
	if (floor_dev) {
		double z_us = ioctl_rtt(floor_dev);

		printf("CUSE floor EVIOCGVERSION (us) %13s %14.1f   (forwarded minus floor %.1f us, %.2fx transport)\n",
		       "", z_us, f_us - z_us, (f_us - z_us) / t_us);
	}
	return 0;
}
