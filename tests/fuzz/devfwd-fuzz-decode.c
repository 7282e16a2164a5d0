/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for what the backend does with untrusted bytes: the
 * header check and every payload decoder, then the whole worker fed the
 * input as a stream (policy: /dev/null and /dev/zero, every ioctl, so
 * requests reach the ioctl and read/write paths). The worker must neither
 * crash nor leak, whatever arrives. Build: see docs/devfwd.md. */
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devfwd/devfwd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_all(const uint8_t *data, size_t size)
{
	struct devfwd_msg m = {};
	char path[DEVFWD_MAX_PATH + 1];
	struct devfwd_ioctl_view v;
	struct devfwd_rw_req rw;
	struct devfwd_poll_req p;
	struct devfwd_hello h;
	const uint8_t *d;
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct devfwd_worker_cfg cfg = { .rules = rules(), .peer_name = "fuzz" };
	int sv[2], buf = 4 << 20;

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
	/* Buffered bytes stay readable after close; then the worker sees EOF
	 * and its replies fail with EPIPE, which ends it cleanly. */
	close(sv[0]);
	(void)devfwd_worker_run(sv[1], &cfg);
	close(sv[1]);
	return 0;
}
