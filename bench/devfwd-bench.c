/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* devfwd benchmark: native vs forwarded on the same device, in one run.
 *   - read throughput of a device (/dev/zero) at 4 KiB and 64 KiB,
 *   - small-ioctl round trip (EVIOCGVERSION on an evdev node),
 *   - the raw transport round trip (a HELLO through the backend's worker),
 *   - the same reads through the protocol alone (client library -> backend
 *     worker -> device, no CUSE), which splits a forwarded read's cost into
 *     the transport's part and the CUSE frontend's part.
 * Prints each figure and the ratios the issue asks for; it asserts nothing,
 * since only ratios measured in the same run mean anything (the lab is TCG).
 * usage: devfwd-bench --read NATIVE FORWARDED --ioctl NATIVE FORWARDED
 *                     --connect ADDR [--seconds S] */
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

#include "devfwd/devfwd.h"

static double seconds = 1.0;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Bytes per second reading path in chunks of bs for about `seconds`. */
static double read_rate(const char *path, size_t bs)
{
	char *buf = malloc(bs);
	double t0, t;
	size_t total = 0;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || !buf) {
		fprintf(stderr, "devfwd-bench: open %s: %m\n", path);
		exit(1);
	}
	t0 = now();
	do {
		for (int i = 0; i < 16; i++) {
			ssize_t n = read(fd, buf, bs);

			if (n <= 0) {
				fprintf(stderr, "devfwd-bench: read %s: %s\n", path, n < 0 ? strerror(errno) : "EOF");
				exit(1);
			}
			total += (size_t)n;
		}
		t = now() - t0;
	} while (t < seconds);
	close(fd);
	free(buf);
	return (double)total / t;
}

/* Bytes per second of memcpy in chunks of bs: what one user-space copy of
 * the data costs on this (possibly emulated) CPU, for reading the rest. */
static double memcpy_rate(size_t bs)
{
	char *a = calloc(1, bs), *b = calloc(1, bs);
	volatile char sink = 0;
	double t0, t;
	size_t total = 0;

	if (!a || !b)
		exit(1);
	t0 = now();
	do {
		for (int i = 0; i < 16; i++) {
			a[i] = (char)i;
			memcpy(b, a, bs);
			sink = (char)(sink + b[bs - 1 - (size_t)i]);
			total += bs;
		}
		t = now() - t0;
	} while (t < seconds);
	free(a);
	free(b);
	return (double)total / t;
}

/* Microseconds per EVIOCGVERSION on path. */
static double ioctl_rtt(const char *path)
{
	double t0, t;
	long n = 0;
	int fd = open(path, O_RDONLY), v;

	if (fd < 0) {
		fprintf(stderr, "devfwd-bench: open %s: %m\n", path);
		exit(1);
	}
	t0 = now();
	do {
		for (int i = 0; i < 16; i++, n++)
			if (ioctl(fd, EVIOCGVERSION, &v) < 0 || v != EV_VERSION) {
				fprintf(stderr, "devfwd-bench: EVIOCGVERSION on %s failed\n", path);
				exit(1);
			}
		t = now() - t0;
	} while (t < seconds);
	close(fd);
	return t / (double)n * 1e6;
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
	struct devfwd_client *c = client(addr);
	char *buf = malloc(bs);
	double t0, t;
	size_t total = 0;
	uint32_t fh;
	int r = devfwd_client_open(c, path, DEVFWD_OPEN_READ, &fh);

	if (r < 0 || !buf) {
		fprintf(stderr, "devfwd-bench: open %s through %s: %s\n", path, addr, strerror(r < 0 ? -r : ENOMEM));
		exit(1);
	}
	t0 = now();
	do {
		for (int i = 0; i < 16; i++) {
			ssize_t n = devfwd_client_read(c, fh, buf, bs);

			if (n <= 0) {
				fprintf(stderr, "devfwd-bench: protocol read of %s: %s\n", path,
					n < 0 ? strerror((int)-n) : "EOF");
				exit(1);
			}
			total += (size_t)n;
		}
		t = now() - t0;
	} while (t < seconds);
	(void)devfwd_client_release(c, fh);
	devfwd_client_free(c);
	free(buf);
	return (double)total / t;
}

/* Microseconds per protocol round trip with no device operation. */
static double transport_rtt(const char *addr)
{
	struct devfwd_client *c = client(addr);
	double t0, t;
	long n = 0;

	t0 = now();
	do {
		for (int i = 0; i < 16; i++, n++)
			if (devfwd_client_ping(c) < 0) {
				fprintf(stderr, "devfwd-bench: ping failed\n");
				exit(1);
			}
		t = now() - t0;
	} while (t < seconds);
	devfwd_client_free(c);
	return t / (double)n * 1e6;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "read", required_argument, NULL, 'r' },
		{ "ioctl", required_argument, NULL, 'i' },
		{ "connect", required_argument, NULL, 'c' },
		{ "seconds", required_argument, NULL, 's' },
		{}
	};
	const char *rn = NULL, *rf = NULL, *in = NULL, *inf = NULL, *addr = NULL;
	double rate[3];
	int c;

	while ((c = getopt_long(argc, argv, "r:i:c:s:", opts, NULL)) != -1) {
		switch (c) {
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
		default:
			return 2;
		}
	}
	if (!rn || !rf || !in || !inf || !addr || seconds <= 0) {
		fputs("usage: devfwd-bench --read NATIVE FORWARDED --ioctl NATIVE FORWARDED --connect ADDR "
		      "[--seconds S]\n", stderr);
		return 2;
	}
	printf("%-28s %14s %14s %8s\n", "measure", "native", "forwarded", "ratio");
	for (size_t bs = 4096; bs <= 65536; bs *= 4) {
		double n = read_rate(rn, bs), f = read_rate(rf, bs);

		printf("read %-3zu KiB (MiB/s)        %14.1f %14.1f %7.1f%%\n", bs / 1024, n / 1048576, f / 1048576,
		       100 * f / n);
		rate[bs == 4096 ? 0 : bs == 16384 ? 1 : 2] = f;
	}
	/* The same reads without CUSE: what the transport and worker cost. */
	for (size_t bs = 4096; bs <= 65536; bs *= 4) {
		double p = proto_read_rate(addr, rn, bs), f = rate[bs == 4096 ? 0 : bs == 16384 ? 1 : 2];

		printf("protocol read %-3zu KiB (MiB/s) %13s %14.1f   (us/read: protocol %.0f, forwarded %.0f)\n",
		       bs / 1024, "", p / 1048576, 1e6 * (double)bs / p, 1e6 * (double)bs / f);
	}
	printf("memcpy 64  KiB (MiB/s)       %14.1f   (one user-space copy, for scale)\n",
	       memcpy_rate(65536) / 1048576);
	double in_us = ioctl_rtt(in), f_us = ioctl_rtt(inf), t_us = transport_rtt(addr);

	printf("EVIOCGVERSION (us)           %14.1f %14.1f %7.1fx\n", in_us, f_us, f_us / in_us);
	printf("transport round trip (us)    %14s %14.1f\n", "-", t_us);
	printf("forwarded ioctl / transport  %14s %14s %7.2fx  (target <= 3x)\n", "", "", f_us / t_us);
	return 0;
}
