/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for what the backend does with untrusted bytes: the
 * header check and every payload decoder, then the whole worker fed the
 * input as a stream (policy: /dev/null and /dev/zero, every ioctl, and a
 * shared window, so requests reach the ioctl, read/write and mmap paths). The worker must neither
 * crash nor leak, whatever arrives. Build: see docs/devfwd.md. */
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devfwd/devfwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The guest's shared window the worker is given: MMAP and MUNMAP requests
 * reach the window's map, copy and unmap paths (over /dev/zero). */
#define WINDOW_SIZE (64u << 10)

static int window_fd(void)
{
	static int fd = -1;

	if (fd < 0) {
		fd = memfd_create("devfwd-fuzz-window", MFD_CLOEXEC);
		if (fd < 0 || ftruncate(fd, WINDOW_SIZE) < 0 || devfwd_window_guard() < 0)
			abort();
	}
	return fd;
}

static void decode_all(const uint8_t *data, size_t size)
{
	struct devfwd_msg m = {};
	char path[DEVFWD_MAX_PATH + 1];
	struct devfwd_ioctl_view v;
	struct devfwd_rw_req rw;
	struct devfwd_poll_req p;
	struct devfwd_mmap_req mm;
	struct devfwd_hello h;
	const uint8_t *d;
	uint64_t off;
	uint32_t u;

	if (size < sizeof(m.hdr))
		return;
	memcpy(&m.hdr, data, sizeof(m.hdr));
	if (devfwd_hdr_check(&m.hdr) < 0)
		return;
	/* Let the payload length be what arrived, as recv would insist on. */
	m.hdr.len = (uint32_t)(size - sizeof(m.hdr));
	m.payload = (uint8_t *)data + sizeof(m.hdr);
	(void)devfwd_decode_hello(&m, &h);
	(void)devfwd_decode_open(&m, &u, path);
	(void)devfwd_decode_rw(&m, &rw, &d);
	(void)devfwd_decode_poll(&m, &p);
	(void)devfwd_decode_cancel(&m, &u);
	(void)devfwd_decode_mmap(&m, WINDOW_SIZE, &mm);
	(void)devfwd_decode_munmap(&m, &off);
	if (devfwd_decode_ioctl(&m, &v) == 0) {
		struct devfwd_ioctl_seg seg[DEVFWD_MAX_SEGS] = {};
		uint64_t ptr[DEVFWD_MAX_SEGS];
		struct devfwd_file_state st = { .frame_bytes = 4 };
		bool nested;

		if (devfwd_layout_root(v.cmd, &seg[0], &nested) == 1 && nested && v.nseg && v.in[0])
			(void)devfwd_layout_nested(v.cmd, &st, v.in[0], v.seg[0].len, seg, ptr);
	}
}

static const struct devfwd_rules *rules(void)
{
	static struct devfwd_policy *pol;
	static const struct devfwd_rules *r;

	if (!pol) {
		struct devfwd_peer me = { .kind = DEVFWD_PEER_UNIX, .uid = 0 };

		if (devfwd_policy_parse("[guest uid=0]\nallow-path = /dev/null\nallow-path = /dev/zero\n"
					"allow-ioctl = *\n", "fuzz", &pol, NULL) < 0)
			abort();
		r = devfwd_policy_match(pol, &me);
	}
	return r;
}

/* Reads the worker's replies until it is done, so that every request of
 * the input is served: with nobody reading, the first reply would end the
 * worker (EPIPE), or a large one block it. */
static void *drain(void *arg)
{
	char buf[64 << 10];

	while (read(*(int *)arg, buf, sizeof(buf)) > 0)
		;
	return NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct devfwd_worker_cfg cfg = { .rules = rules(), .peer_name = "fuzz", .have_window = true,
					 .window_fd = window_fd() };
	int sv[2], buf = 4 << 20;
	pthread_t t;

	decode_all(data, size);
	if (size > (1u << 20))
		return 0;
	signal(SIGPIPE, SIG_IGN);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	setsockopt(sv[0], SOL_SOCKET, SO_SNDBUF, &buf, sizeof(buf));
	setsockopt(sv[1], SOL_SOCKET, SO_RCVBUF, &buf, sizeof(buf));
	if (write(sv[0], data, size) != (ssize_t)size)
		abort();
	/* The worker sees EOF after the input; its replies are read and
	 * dropped until it closes its end. */
	shutdown(sv[0], SHUT_WR);
	if (pthread_create(&t, NULL, drain, &sv[0]) != 0)
		abort();
	(void)devfwd_worker_run(sv[1], &cfg);
	close(sv[1]);
	pthread_join(t, NULL);
	close(sv[0]);
	return 0;
}
