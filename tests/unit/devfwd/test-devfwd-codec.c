/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Protocol codec: round trips, and rejection of every malformed length. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "devfwd/devfwd.h"

static void test_open_roundtrip(void **state)
{
	struct devfwd_msg m;
	char path[DEVFWD_MAX_PATH + 1];
	uint32_t flags;

	assert_int_equal(devfwd_encode_open(&m, 7, DEVFWD_OPEN_READ | DEVFWD_OPEN_NONBLOCK, "/dev/input/event0"), 0);
	assert_int_equal(devfwd_hdr_check(&m.hdr), 0);
	assert_int_equal(m.hdr.op, DEVFWD_OP_OPEN);
	assert_int_equal(m.hdr.id, 7);
	assert_int_equal(devfwd_decode_open(&m, &flags, path), 0);
	assert_string_equal(path, "/dev/input/event0");
	assert_int_equal(flags, DEVFWD_OPEN_READ | DEVFWD_OPEN_NONBLOCK);

	/* Claimed path longer than the payload. */
	m.payload[4] = 200;
	assert_int_equal(devfwd_decode_open(&m, &flags, path), -EBADMSG);
	m.payload[4] = 17;
	/* Embedded NUL. */
	m.payload[8 + 4] = 0;
	assert_int_equal(devfwd_decode_open(&m, &flags, path), -EBADMSG);
	devfwd_msg_done(&m);

	assert_int_equal(devfwd_encode_open(&m, 1, 0x80, "/dev/null"), -EINVAL);
	assert_int_equal(devfwd_encode_open(&m, 1, 0, ""), -ENAMETOOLONG);
	assert_int_equal(devfwd_encode_open(&m, 0, 0, "/dev/null"), -EINVAL);
}

static void test_hdr_check(void **state)
{
	struct devfwd_hdr h = { .magic = DEVFWD_PROTO_MAGIC, .version = DEVFWD_PROTO_VERSION,
				.op = DEVFWD_OP_READ, .id = 3, .len = 16 };

	assert_int_equal(devfwd_hdr_check(&h), 0);
	h.len = DEVFWD_MAX_PAYLOAD + 1;
	assert_int_equal(devfwd_hdr_check(&h), -EMSGSIZE);
	h.len = 16;
	h.magic ^= 1;
	assert_int_equal(devfwd_hdr_check(&h), -EPROTO);
	h.magic ^= 1;
	h.version = 1; /* an older peer: refused by version */
	assert_int_equal(devfwd_hdr_check(&h), -EPROTONOSUPPORT);
	h.version = DEVFWD_PROTO_VERSION;
	h.op = DEVFWD_OP_MAX_;
	assert_int_equal(devfwd_hdr_check(&h), -EPROTO);
	h.op = DEVFWD_OP_READ;
	h.flags = 0x10;
	assert_int_equal(devfwd_hdr_check(&h), -EPROTO);
	h.flags = 0;
	h.id = 0; /* only notifications may use id 0 */
	assert_int_equal(devfwd_hdr_check(&h), -EPROTO);
	h.op = DEVFWD_OP_POLL_NOTIFY;
	assert_int_equal(devfwd_hdr_check(&h), 0);
}

static void test_rw(void **state)
{
	struct devfwd_msg m;
	struct devfwd_rw_req rw;
	const uint8_t *data;

	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_WRITE, 9, 2, 0, 5, false, "hello"), 0);
	assert_int_equal(m.hdr.len, sizeof(rw) + 5);
	assert_int_equal(devfwd_decode_rw(&m, &rw, &data), 0);
	assert_int_equal(rw.size, 5);
	assert_memory_equal(data, "hello", 5);
	/* size says 6 but only 5 bytes follow */
	m.payload[8] = 6;
	assert_int_equal(devfwd_decode_rw(&m, &rw, &data), -EBADMSG);
	devfwd_msg_done(&m);

	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_READ, 9, 2, 0, 65536, true, NULL), 0);
	assert_int_equal(m.hdr.len, sizeof(rw));
	assert_int_equal(devfwd_decode_rw(&m, &rw, &data), 0);
	assert_int_equal(rw.size, 65536);
	assert_int_equal(rw.nonblock, 1);
	assert_null(data);
	/* a read bigger than any reply may carry */
	rw.size = DEVFWD_MAX_IO + 1;
	memcpy(m.payload, &rw, sizeof(rw));
	assert_int_equal(devfwd_decode_rw(&m, &rw, &data), -EBADMSG);
	devfwd_msg_done(&m);
	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_READ, 9, 2, 0, DEVFWD_MAX_IO + 1, false, NULL), -EMSGSIZE);
}

static void test_ioctl_roundtrip(void **state)
{
	struct devfwd_ioctl_seg seg[2] = {
		{ .len = 24, .dir = DEVFWD_SEG_IN | DEVFWD_SEG_OUT, .parent = DEVFWD_SEG_ROOT },
		{ .len = 100, .ptr_off = 8, .dir = DEVFWD_SEG_IN, .parent = 0 },
	};
	uint8_t root[24] = { 1, 2, 3 }, data[100];
	const void *in[2] = { root, data };
	struct devfwd_ioctl_view v;
	struct devfwd_msg m;

	memset(data, 0xab, sizeof(data));
	assert_int_equal(devfwd_encode_ioctl(&m, 4, 1, 0x40184150, 0, seg, 2, in), 0);
	assert_int_equal(devfwd_decode_ioctl(&m, &v), 0);
	assert_int_equal(v.cmd, 0x40184150);
	assert_int_equal(v.nseg, 2);
	assert_int_equal(v.out_total, 24);
	assert_memory_equal(v.in[0], root, 24);
	assert_memory_equal(v.in[1], data, 100);

	/* Truncated: one byte of IN data missing. */
	m.hdr.len--;
	assert_int_equal(devfwd_decode_ioctl(&m, &v), -EBADMSG);
	m.hdr.len++;
	/* Nested pointer beyond its parent. */
	((struct devfwd_ioctl_seg *)(m.payload + 16))[1].ptr_off = 20;
	assert_int_equal(devfwd_decode_ioctl(&m, &v), -EBADMSG);
	((struct devfwd_ioctl_seg *)(m.payload + 16))[1].ptr_off = 8;
	/* A child that names itself (or a later segment) as parent. */
	((struct devfwd_ioctl_seg *)(m.payload + 16))[1].parent = 1;
	assert_int_equal(devfwd_decode_ioctl(&m, &v), -EBADMSG);
	((struct devfwd_ioctl_seg *)(m.payload + 16))[1].parent = 0;
	/* Too many segments claimed. */
	((struct devfwd_ioctl_req *)m.payload)->nseg = DEVFWD_MAX_SEGS + 1;
	assert_int_equal(devfwd_decode_ioctl(&m, &v), -EBADMSG);
	devfwd_msg_done(&m);
}

static void test_segs_check(void **state)
{
	struct devfwd_ioctl_seg s[3] = {
		{ .len = 32, .dir = DEVFWD_SEG_IN, .parent = DEVFWD_SEG_ROOT },
		{ .len = 8, .ptr_off = 0, .dir = DEVFWD_SEG_OUT, .parent = 0 },
		{ .len = 8, .ptr_off = 4, .dir = DEVFWD_SEG_OUT, .parent = 0 },
	};
	size_t in, out;

	assert_int_equal(devfwd_segs_check(s, 2, &in, &out), 0);
	assert_int_equal(in, 32);
	assert_int_equal(out, 8);
	/* Overlapping pointer slots in the same parent. */
	assert_int_equal(devfwd_segs_check(s, 3, NULL, NULL), -EINVAL);
	s[2].ptr_off = 8;
	assert_int_equal(devfwd_segs_check(s, 3, NULL, NULL), 0);
	s[2].len = 0;
	assert_int_equal(devfwd_segs_check(s, 3, NULL, NULL), -EINVAL);
	s[2].len = DEVFWD_MAX_IO;
	s[2].dir = DEVFWD_SEG_IN;
	assert_int_equal(devfwd_segs_check(s, 3, NULL, NULL), -EMSGSIZE);
	/* A parent too short to hold a pointer. */
	s[0].len = 4;
	assert_int_equal(devfwd_segs_check(s, 2, NULL, NULL), -EINVAL);
}

static void test_transport_framing(void **state)
{
	int fds[2];
	struct devfwd_msg m, got;

	assert_int_equal(devfwd_pair(fds), 0);
	assert_int_equal(devfwd_encode_rw(&m, DEVFWD_OP_WRITE, 5, 1, 0, 3, false, "abc"), 0);
	assert_int_equal(devfwd_send(fds[0], &m), 0);
	assert_int_equal(devfwd_recv(fds[1], &got), 0);
	assert_memory_equal(&got.hdr, &m.hdr, sizeof(m.hdr));
	assert_memory_equal(got.payload + sizeof(struct devfwd_rw_req), "abc", 3);
	devfwd_msg_done(&got);

	/* Garbage header: the stream cannot be trusted any more. */
	assert_int_equal(write(fds[0], "garbage garbage garbage garbage!", 32), 32);
	assert_int_equal(devfwd_recv(fds[1], &got), -EPROTO);

	/* Header announcing more than the limit: refused before allocating. */
	m.hdr.len = DEVFWD_MAX_PAYLOAD + 1;
	assert_int_equal(write(fds[0], &m.hdr, sizeof(m.hdr)), sizeof(m.hdr));
	assert_int_equal(devfwd_recv(fds[1], &got), -EPROTO);

	/* EOF in the middle of a payload is a protocol error, between messages a hang-up. */
	m.hdr.len = 3;
	assert_int_equal(write(fds[0], &m.hdr, sizeof(m.hdr)), sizeof(m.hdr));
	assert_int_equal(write(fds[0], "a", 1), 1);
	close(fds[0]);
	assert_int_equal(devfwd_recv(fds[1], &got), -EPROTO);
	assert_int_equal(devfwd_recv(fds[1], &got), -ECONNRESET);
	close(fds[1]);
	devfwd_msg_done(&m);
}

static void test_poll_cancel(void **state)
{
	struct devfwd_msg m;
	struct devfwd_poll_req p;
	uint32_t victim;

	assert_int_equal(devfwd_encode_poll(&m, 2, 1, 1, true), 0);
	assert_int_equal(devfwd_decode_poll(&m, &p), 0);
	assert_int_equal(p.events, 1);
	assert_int_equal(p.notify, 1);
	m.payload[4] = 7;
	assert_int_equal(devfwd_decode_poll(&m, &p), -EBADMSG);
	devfwd_msg_done(&m);
	assert_int_equal(devfwd_encode_cancel(&m, 3, 1, 2), 0);
	assert_int_equal(devfwd_decode_cancel(&m, &victim), 0);
	assert_int_equal(victim, 2);
	devfwd_msg_done(&m);
	assert_int_equal(devfwd_encode_cancel(&m, 3, 1, 0), -EINVAL);
}

static void test_mmap(void **state)
{
	struct devfwd_mmap_req rq = { .offset = 0, .win_off = 3 * 4096, .len = 4096,
				      .prot = DEVFWD_PROT_READ | DEVFWD_PROT_WRITE }, got;
	struct devfwd_msg m;
	uint64_t off;

	assert_int_equal(devfwd_encode_mmap(&m, 5, 1, &rq), 0);
	assert_int_equal(devfwd_hdr_check(&m.hdr), 0);
	assert_int_equal(m.hdr.op, DEVFWD_OP_MMAP);
	/* a window of four pages holds the last page, not one more */
	assert_int_equal(devfwd_decode_mmap(&m, 4 * 4096, &got), 0);
	assert_memory_equal(&got, &rq, sizeof(rq));
	assert_int_equal(devfwd_decode_mmap(&m, 3 * 4096, &got), -ERANGE);
	assert_int_equal(devfwd_decode_mmap(&m, 0, &got), -ERANGE);
	/* a length that would wrap past the end of the window */
	rq.len = 0xfffff000u;
	memcpy(m.payload, &rq, sizeof(rq));
	assert_int_equal(devfwd_decode_mmap(&m, 4 * 4096, &got), -ERANGE);
	/* unaligned, no prot, unknown prot bits */
	rq.len = 4096;
	rq.win_off = 100;
	memcpy(m.payload, &rq, sizeof(rq));
	assert_int_equal(devfwd_decode_mmap(&m, 4 * 4096, &got), -EINVAL);
	rq.win_off = 0;
	rq.prot = 0x4;
	memcpy(m.payload, &rq, sizeof(rq));
	assert_int_equal(devfwd_decode_mmap(&m, 4 * 4096, &got), -EINVAL);
	m.hdr.len--;
	assert_int_equal(devfwd_decode_mmap(&m, 4 * 4096, &got), -EBADMSG);
	devfwd_msg_done(&m);
	rq.prot = DEVFWD_PROT_READ;
	rq.len = 0;
	assert_int_equal(devfwd_encode_mmap(&m, 5, 1, &rq), -EINVAL);

	assert_int_equal(devfwd_encode_munmap(&m, 6, 1, 8192), 0);
	assert_int_equal(devfwd_decode_munmap(&m, &off), 0);
	assert_int_equal(off, 8192);
	devfwd_msg_done(&m);
	assert_int_equal(devfwd_encode_munmap(&m, 6, 1, 100), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_roundtrip),
		cmocka_unit_test(test_hdr_check),
		cmocka_unit_test(test_rw),
		cmocka_unit_test(test_ioctl_roundtrip),
		cmocka_unit_test(test_segs_check),
		cmocka_unit_test(test_transport_framing),
		cmocka_unit_test(test_poll_cancel),
		cmocka_unit_test(test_mmap),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
