/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Encoding and validating decoding of devfwd protocol messages. The wire is
 * little-endian and the structs in proto.h have no padding, so on the
 * little-endian hosts KVM runs on they are copied as they are. */
#include <endian.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devfwd/devfwd.h"
#include "shared/util.h"

_Static_assert(__BYTE_ORDER == __LITTLE_ENDIAN, "devfwd wire structs are copied as little-endian");
_Static_assert(sizeof(struct devfwd_hdr) == 32, "header is 32 bytes");
_Static_assert(sizeof(struct devfwd_ioctl_seg) == 12, "segment is 12 bytes");
_Static_assert(sizeof(struct devfwd_ioctl_req) == 16, "ioctl request is 16 bytes");
_Static_assert(sizeof(struct devfwd_rw_req) == 16, "rw request is 16 bytes");
_Static_assert(sizeof(struct devfwd_open_req) == 8, "open request is 8 bytes");

void devfwd_msg_done(struct devfwd_msg *m)
{
	if (!m)
		return;
	free(m->payload);
	m->payload = NULL;
	m->hdr.len = 0;
}

int devfwd_hdr_check(const struct devfwd_hdr *h)
{
	if (!h)
		return -EINVAL;
	if (h->magic != DEVFWD_PROTO_MAGIC)
		return -EPROTO;
	if (h->version != DEVFWD_PROTO_VERSION)
		return -EPROTONOSUPPORT; /* a peer of another version: refused as such */
	if (h->op == 0 || h->op >= DEVFWD_OP_MAX_)
		return -EPROTO;
	if ((h->flags & ~DEVFWD_F_REPLY) || h->reserved)
		return -EPROTO;
	if (h->len > DEVFWD_MAX_PAYLOAD)
		return -EMSGSIZE;
	/* Only notifications may use id 0, so replies can never be confused. */
	if (h->id == 0 && h->op != DEVFWD_OP_POLL_NOTIFY)
		return -EPROTO;
	return 0;
}

/* Allocates a message with len payload bytes (zeroed). */
static int msg_new(struct devfwd_msg *ret, uint16_t op, uint32_t id, uint32_t fh, size_t len)
{
	if (len > DEVFWD_MAX_PAYLOAD)
		return -EMSGSIZE;
	uint8_t *p = NULL;
	if (len > 0) {
		p = calloc(1, len);
		if (!p)
			return -ENOMEM;
	}
	*ret = (struct devfwd_msg){
		.hdr = {
			.magic = DEVFWD_PROTO_MAGIC,
			.version = DEVFWD_PROTO_VERSION,
			.op = op,
			.id = id,
			.fh = fh,
			.len = (uint32_t)len,
		},
		.payload = p,
	};
	return 0;
}

int devfwd_encode_hello(struct devfwd_msg *ret, uint32_t id, bool reply)
{
	struct devfwd_hello h = { .version = DEVFWD_PROTO_VERSION, .max_payload = DEVFWD_MAX_PAYLOAD };
	int r;

	if (!ret || id == 0)
		return -EINVAL;
	r = msg_new(ret, DEVFWD_OP_HELLO, id, 0, sizeof(h));
	if (r < 0)
		return r;
	if (reply)
		ret->hdr.flags = DEVFWD_F_REPLY;
	memcpy(ret->payload, &h, sizeof(h));
	return 0;
}

int devfwd_encode_open(struct devfwd_msg *ret, uint32_t id, uint32_t flags, const char *path)
{
	size_t n;
	int r;

	if (!ret || !path || id == 0 || (flags & ~DEVFWD_OPEN_MASK))
		return -EINVAL;
	n = strlen(path);
	if (n == 0 || n > DEVFWD_MAX_PATH)
		return -ENAMETOOLONG;
	struct devfwd_open_req o = { .flags = flags, .path_len = (uint16_t)n };
	r = msg_new(ret, DEVFWD_OP_OPEN, id, 0, sizeof(o) + n);
	if (r < 0)
		return r;
	memcpy(ret->payload, &o, sizeof(o));
	memcpy(ret->payload + sizeof(o), path, n);
	return 0;
}

int devfwd_encode_simple(struct devfwd_msg *ret, uint16_t op, uint32_t id, uint32_t fh)
{
	if (!ret || id == 0 || op != DEVFWD_OP_RELEASE)
		return -EINVAL;
	return msg_new(ret, op, id, fh, 0);
}

int devfwd_encode_rw(struct devfwd_msg *ret, uint16_t op, uint32_t id, uint32_t fh,
		     uint64_t offset, uint32_t size, bool nonblock, const void *data)
{
	struct devfwd_rw_req rw = { .offset = offset, .size = size, .nonblock = nonblock };
	size_t extra;
	int r;

	if (!ret || id == 0 || (op != DEVFWD_OP_READ && op != DEVFWD_OP_WRITE))
		return -EINVAL;
	if (size > DEVFWD_MAX_IO)
		return -EMSGSIZE;
	if (op == DEVFWD_OP_WRITE && size > 0 && !data)
		return -EINVAL;
	extra = op == DEVFWD_OP_WRITE ? size : 0;
	r = msg_new(ret, op, id, fh, sizeof(rw) + extra);
	if (r < 0)
		return r;
	memcpy(ret->payload, &rw, sizeof(rw));
	if (extra)
		memcpy(ret->payload + sizeof(rw), data, extra);
	return 0;
}

int devfwd_encode_poll(struct devfwd_msg *ret, uint32_t id, uint32_t fh, uint32_t events, bool notify)
{
	struct devfwd_poll_req p = { .events = events, .notify = notify };
	int r;

	if (!ret || id == 0)
		return -EINVAL;
	r = msg_new(ret, DEVFWD_OP_POLL, id, fh, sizeof(p));
	if (r < 0)
		return r;
	memcpy(ret->payload, &p, sizeof(p));
	return 0;
}

int devfwd_encode_cancel(struct devfwd_msg *ret, uint32_t id, uint32_t fh, uint32_t victim)
{
	int r;

	if (!ret || id == 0 || victim == 0)
		return -EINVAL;
	r = msg_new(ret, DEVFWD_OP_CANCEL, id, fh, sizeof(victim));
	if (r < 0)
		return r;
	memcpy(ret->payload, &victim, sizeof(victim));
	return 0;
}

int devfwd_segs_check(const struct devfwd_ioctl_seg *seg, uint32_t nseg, size_t *ret_in, size_t *ret_out)
{
	size_t in = 0, out = 0;

	if (nseg > DEVFWD_MAX_SEGS || (nseg && !seg))
		return -EINVAL;
	for (uint32_t i = 0; i < nseg; i++) {
		const struct devfwd_ioctl_seg *s = &seg[i];

		if (s->reserved || s->dir == 0 || (s->dir & ~(DEVFWD_SEG_IN | DEVFWD_SEG_OUT)))
			return -EINVAL;
		if (s->len == 0 || s->len > DEVFWD_MAX_IO)
			return -EINVAL;
		if (i == 0) {
			if (s->parent != DEVFWD_SEG_ROOT || s->ptr_off != 0)
				return -EINVAL;
		} else {
			/* The parent comes first and must hold the whole 8-byte pointer. */
			if (s->parent >= i || s->ptr_off > seg[s->parent].len - 8 || seg[s->parent].len < 8)
				return -EINVAL;
			for (uint32_t j = 1; j < i; j++)
				if (seg[j].parent == s->parent && seg[j].ptr_off < s->ptr_off + 8 &&
				    s->ptr_off < seg[j].ptr_off + 8)
					return -EINVAL; /* two pointers overlap */
		}
		if (s->dir & DEVFWD_SEG_IN)
			in += s->len;
		if (s->dir & DEVFWD_SEG_OUT)
			out += s->len;
		if (in > DEVFWD_MAX_IO || out > DEVFWD_MAX_IO)
			return -EMSGSIZE;
	}
	if (ret_in)
		*ret_in = in;
	if (ret_out)
		*ret_out = out;
	return 0;
}

int devfwd_encode_ioctl(struct devfwd_msg *ret, uint32_t id, uint32_t fh, uint32_t cmd, uint64_t arg,
			const struct devfwd_ioctl_seg *seg, uint32_t nseg, const void *const *in_data)
{
	struct devfwd_ioctl_req req = { .cmd = cmd, .nseg = (uint16_t)nseg, .arg = arg };
	size_t in, off;
	int r;

	if (!ret || id == 0)
		return -EINVAL;
	r = devfwd_segs_check(seg, nseg, &in, NULL);
	if (r < 0)
		return r;
	if (in && !in_data)
		return -EINVAL;
	r = msg_new(ret, DEVFWD_OP_IOCTL, id, fh, sizeof(req) + nseg * sizeof(*seg) + in);
	if (r < 0)
		return r;
	memcpy(ret->payload, &req, sizeof(req));
	off = sizeof(req);
	if (nseg) {
		memcpy(ret->payload + off, seg, nseg * sizeof(*seg));
		off += nseg * sizeof(*seg);
	}
	for (uint32_t i = 0; i < nseg; i++) {
		if (!(seg[i].dir & DEVFWD_SEG_IN))
			continue;
		if (!in_data[i]) {
			devfwd_msg_done(ret);
			return -EINVAL;
		}
		memcpy(ret->payload + off, in_data[i], seg[i].len);
		off += seg[i].len;
	}
	return 0;
}

int devfwd_ioctl_set_mode(struct devfwd_msg *m, uint16_t mode)
{
	struct devfwd_ioctl_req req;

	if (!m || m->hdr.op != DEVFWD_OP_IOCTL || m->hdr.len < sizeof(req) || mode > DEVFWD_IOCTL_NONBLOCK)
		return -EINVAL;
	memcpy(&req, m->payload, sizeof(req));
	req.mode = mode;
	memcpy(m->payload, &req, sizeof(req));
	return 0;
}

int devfwd_encode_reply(struct devfwd_msg *ret, const struct devfwd_hdr *req, int32_t result,
			const void *data, size_t len)
{
	int r;

	if (!ret || !req || (len && !data))
		return -EINVAL;
	r = msg_new(ret, req->op, req->id, req->fh, len);
	if (r < 0)
		return r;
	ret->hdr.flags = DEVFWD_F_REPLY;
	ret->hdr.result = result;
	if (len)
		memcpy(ret->payload, data, len);
	return 0;
}

int devfwd_encode_notify(struct devfwd_msg *ret, uint32_t fh, int32_t revents)
{
	int r;

	if (!ret)
		return -EINVAL;
	r = msg_new(ret, DEVFWD_OP_POLL_NOTIFY, 0, fh, 0);
	if (r < 0)
		return r;
	ret->hdr.result = revents;
	return 0;
}

static bool mmap_req_ok(const struct devfwd_mmap_req *rq)
{
	return rq->len > 0 && !(rq->len % DEVFWD_MMAP_ALIGN) && !(rq->offset % DEVFWD_MMAP_ALIGN) &&
	       !(rq->win_off % DEVFWD_MMAP_ALIGN) && rq->prot && !(rq->prot & ~DEVFWD_PROT_MASK);
}

int devfwd_encode_mmap(struct devfwd_msg *ret, uint32_t id, uint32_t fh, const struct devfwd_mmap_req *rq)
{
	int r;

	if (!ret || !rq || id == 0 || fh == 0 || !mmap_req_ok(rq))
		return -EINVAL;
	r = msg_new(ret, DEVFWD_OP_MMAP, id, fh, sizeof(*rq));
	if (r < 0)
		return r;
	memcpy(ret->payload, rq, sizeof(*rq));
	return 0;
}

int devfwd_encode_munmap(struct devfwd_msg *ret, uint32_t id, uint32_t fh, uint64_t win_off)
{
	struct devfwd_munmap_req u = { .win_off = win_off };
	int r;

	if (!ret || id == 0 || fh == 0 || win_off % DEVFWD_MMAP_ALIGN)
		return -EINVAL;
	r = msg_new(ret, DEVFWD_OP_MUNMAP, id, fh, sizeof(u));
	if (r < 0)
		return r;
	memcpy(ret->payload, &u, sizeof(u));
	return 0;
}

/* Every decoder starts here: right op, a request, and at least min bytes. */
static int expect(const struct devfwd_msg *m, uint16_t op, size_t min)
{
	if (!m || m->hdr.op != op)
		return -EINVAL;
	if (m->hdr.len < min || (m->hdr.len && !m->payload))
		return -EBADMSG;
	return 0;
}

int devfwd_decode_hello(const struct devfwd_msg *m, struct devfwd_hello *ret)
{
	int r = expect(m, DEVFWD_OP_HELLO, sizeof(*ret));

	if (r < 0)
		return r;
	if (m->hdr.len != sizeof(*ret))
		return -EBADMSG;
	memcpy(ret, m->payload, sizeof(*ret));
	return 0;
}

int devfwd_decode_open(const struct devfwd_msg *m, uint32_t *ret_flags, char ret_path[DEVFWD_MAX_PATH + 1])
{
	struct devfwd_open_req o;
	int r = expect(m, DEVFWD_OP_OPEN, sizeof(o));

	if (r < 0)
		return r;
	memcpy(&o, m->payload, sizeof(o));
	if (o.reserved || (o.flags & ~DEVFWD_OPEN_MASK))
		return -EBADMSG;
	if (o.path_len == 0 || o.path_len > DEVFWD_MAX_PATH || m->hdr.len != sizeof(o) + o.path_len)
		return -EBADMSG;
	/* An embedded NUL would make the checked path differ from the opened one. */
	if (memchr(m->payload + sizeof(o), 0, o.path_len))
		return -EBADMSG;
	memcpy(ret_path, m->payload + sizeof(o), o.path_len);
	ret_path[o.path_len] = 0;
	*ret_flags = o.flags;
	return 0;
}

int devfwd_decode_rw(const struct devfwd_msg *m, struct devfwd_rw_req *ret, const uint8_t **ret_data)
{
	struct devfwd_rw_req rw;
	int r;

	if (!m || (m->hdr.op != DEVFWD_OP_READ && m->hdr.op != DEVFWD_OP_WRITE))
		return -EINVAL;
	r = expect(m, m->hdr.op, sizeof(rw));
	if (r < 0)
		return r;
	memcpy(&rw, m->payload, sizeof(rw));
	if (rw.size > DEVFWD_MAX_IO || rw.nonblock > 1 || rw.offset > INT64_MAX)
		return -EBADMSG;
	if (m->hdr.len != sizeof(rw) + (m->hdr.op == DEVFWD_OP_WRITE ? rw.size : 0))
		return -EBADMSG;
	*ret = rw;
	if (ret_data)
		*ret_data = m->hdr.op == DEVFWD_OP_WRITE ? m->payload + sizeof(rw) : NULL;
	return 0;
}

int devfwd_decode_poll(const struct devfwd_msg *m, struct devfwd_poll_req *ret)
{
	struct devfwd_poll_req p;
	int r = expect(m, DEVFWD_OP_POLL, sizeof(p));

	if (r < 0)
		return r;
	memcpy(&p, m->payload, sizeof(p));
	if (m->hdr.len != sizeof(p) || p.notify > 1 || p.events > 0xffff)
		return -EBADMSG;
	*ret = p;
	return 0;
}

int devfwd_decode_cancel(const struct devfwd_msg *m, uint32_t *ret_victim)
{
	uint32_t v;
	int r = expect(m, DEVFWD_OP_CANCEL, sizeof(v));

	if (r < 0)
		return r;
	memcpy(&v, m->payload, sizeof(v));
	if (m->hdr.len != sizeof(v) || v == 0)
		return -EBADMSG;
	*ret_victim = v;
	return 0;
}

int devfwd_decode_ioctl(const struct devfwd_msg *m, struct devfwd_ioctl_view *ret)
{
	struct devfwd_ioctl_req req;
	struct devfwd_ioctl_view v = {};
	size_t in, out, off;
	int r = expect(m, DEVFWD_OP_IOCTL, sizeof(req));

	if (r < 0)
		return r;
	memcpy(&req, m->payload, sizeof(req));
	if (req.nseg > DEVFWD_MAX_SEGS || req.mode > DEVFWD_IOCTL_NONBLOCK)
		return -EBADMSG;
	off = sizeof(req);
	if (m->hdr.len < off + req.nseg * sizeof(struct devfwd_ioctl_seg))
		return -EBADMSG;
	memcpy(v.seg, m->payload + off, req.nseg * sizeof(struct devfwd_ioctl_seg));
	off += req.nseg * sizeof(struct devfwd_ioctl_seg);
	if (devfwd_segs_check(v.seg, req.nseg, &in, &out) < 0)
		return -EBADMSG;
	if (m->hdr.len != off + in)
		return -EBADMSG;
	if (req.nseg && req.arg)
		return -EBADMSG; /* a buffer argument has no scalar value */
	for (uint32_t i = 0; i < req.nseg; i++) {
		if (!(v.seg[i].dir & DEVFWD_SEG_IN))
			continue;
		v.in[i] = m->payload + off;
		off += v.seg[i].len;
	}
	v.cmd = req.cmd;
	v.arg = req.arg;
	v.nseg = req.nseg;
	v.mode = req.mode;
	v.out_total = out;
	*ret = v;
	return 0;
}

int devfwd_decode_mmap(const struct devfwd_msg *m, uint64_t win_size, struct devfwd_mmap_req *ret)
{
	struct devfwd_mmap_req rq;
	int r = expect(m, DEVFWD_OP_MMAP, sizeof(rq));

	if (r < 0)
		return r;
	if (m->hdr.len != sizeof(rq))
		return -EBADMSG;
	memcpy(&rq, m->payload, sizeof(rq));
	if (!mmap_req_ok(&rq) || rq.offset > (uint64_t)INT64_MAX - rq.len)
		return -EINVAL;
	/* no overflow: win_off <= win_size is checked before the sum */
	if (rq.win_off >= win_size || rq.len > win_size - rq.win_off)
		return -ERANGE;
	*ret = rq;
	return 0;
}

int devfwd_decode_munmap(const struct devfwd_msg *m, uint64_t *ret_win_off)
{
	struct devfwd_munmap_req u;
	int r = expect(m, DEVFWD_OP_MUNMAP, sizeof(u));

	if (r < 0)
		return r;
	if (m->hdr.len != sizeof(u))
		return -EBADMSG;
	memcpy(&u, m->payload, sizeof(u));
	if (u.win_off % DEVFWD_MMAP_ALIGN)
		return -EINVAL;
	*ret_win_off = u.win_off;
	return 0;
}
