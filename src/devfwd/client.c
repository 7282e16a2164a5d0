/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A synchronous devfwd client: one request at a time. Tests, benchmarks and
 * tools use it; the CUSE frontend keeps many requests in flight instead. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "devfwd/devfwd.h"
#include "shared/util.h"

#define CLIENT_MAX_FH 64

struct devfwd_client {
	int fd;
	uint32_t next_id;
	struct devfwd_file_state st[CLIENT_MAX_FH + 1];
};

static uint32_t next_id(struct devfwd_client *c)
{
	if (++c->next_id == 0)
		c->next_id = 1;
	return c->next_id;
}

/* Sends req and waits for its reply; notifications in between are dropped
 * (a synchronous client has no poll handle to wake). */
static int roundtrip(struct devfwd_client *c, struct devfwd_msg *req, struct devfwd_msg *ret)
{
	int r = devfwd_send(c->fd, req);

	devfwd_msg_done(req);
	if (r < 0)
		return r;
	for (;;) {
		struct devfwd_msg m;

		r = devfwd_recv(c->fd, &m);
		if (r < 0)
			return r;
		if (m.hdr.op == DEVFWD_OP_POLL_NOTIFY) {
			devfwd_msg_done(&m);
			continue;
		}
		if (!(m.hdr.flags & DEVFWD_F_REPLY) || m.hdr.id != req->hdr.id || m.hdr.op != req->hdr.op) {
			devfwd_msg_done(&m);
			return -EPROTO;
		}
		*ret = m;
		return 0;
	}
}

int devfwd_client_new(int fd, struct devfwd_client **ret)
{
	_cleanup_free_ struct devfwd_client *c = NULL;
	struct devfwd_msg req, rep;
	struct devfwd_hello h;
	int r;

	if (fd < 0 || !ret)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = fd;
	r = devfwd_encode_hello(&req, next_id(c), false);
	if (r < 0)
		return r;
	r = roundtrip(c, &req, &rep);
	if (r < 0)
		return r;
	r = devfwd_decode_hello(&rep, &h);
	devfwd_msg_done(&rep);
	if (r < 0)
		return -EPROTO;
	if (h.version < DEVFWD_PROTO_VERSION)
		return -EPROTONOSUPPORT;
	*ret = TAKE_PTR(c);
	return 0;
}

void devfwd_client_free(struct devfwd_client *c)
{
	if (!c)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

int devfwd_client_fd(const struct devfwd_client *c)
{
	return c ? c->fd : -EINVAL;
}

int devfwd_client_ping(struct devfwd_client *c)
{
	struct devfwd_msg req, rep;
	int r;

	if (!c)
		return -EINVAL;
	r = devfwd_encode_hello(&req, next_id(c), false);
	if (r < 0)
		return r;
	r = roundtrip(c, &req, &rep);
	devfwd_msg_done(&rep);
	return r;
}

/* Round trip for requests whose reply has no payload. */
static int simple(struct devfwd_client *c, struct devfwd_msg *req)
{
	struct devfwd_msg rep;
	int r = roundtrip(c, req, &rep);

	if (r < 0)
		return r;
	r = rep.hdr.len ? -EPROTO : rep.hdr.result;
	devfwd_msg_done(&rep);
	return r;
}

int devfwd_client_open(struct devfwd_client *c, const char *path, uint32_t flags, uint32_t *ret_fh)
{
	struct devfwd_msg req;
	int r;

	if (!c || !path || !ret_fh)
		return -EINVAL;
	r = devfwd_encode_open(&req, next_id(c), flags, path);
	if (r < 0)
		return r;
	r = simple(c, &req);
	if (r < 0)
		return r;
	if (r == 0 || r > CLIENT_MAX_FH)
		return -EPROTO;
	c->st[r] = (struct devfwd_file_state){};
	*ret_fh = (uint32_t)r;
	return 0;
}

int devfwd_client_release(struct devfwd_client *c, uint32_t fh)
{
	struct devfwd_msg req;
	int r;

	if (!c)
		return -EINVAL;
	r = devfwd_encode_simple(&req, DEVFWD_OP_RELEASE, next_id(c), fh);
	if (r < 0)
		return r;
	return simple(c, &req);
}

/* Checks a read's or write's arguments and encodes it into req; data is
 * what a write sends (NULL for a read). */
static int rw_request(struct devfwd_client *c, struct devfwd_msg *req, uint16_t op, uint32_t fh, size_t len,
		      const void *buf, const void *data)
{
	if (!c || (!buf && len) || len > DEVFWD_MAX_IO)
		return -EINVAL;
	return devfwd_encode_rw(req, op, next_id(c), fh, 0, (uint32_t)len, false, data);
}

ssize_t devfwd_client_read(struct devfwd_client *c, uint32_t fh, void *buf, size_t len)
{
	struct devfwd_msg req, rep;
	int r;

	r = rw_request(c, &req, DEVFWD_OP_READ, fh, len, buf, NULL);
	if (r < 0)
		return r;
	r = roundtrip(c, &req, &rep);
	if (r < 0)
		return r;
	r = rep.hdr.result;
	if (r >= 0 && ((size_t)r != rep.hdr.len || (size_t)r > len))
		r = -EPROTO;
	else if (r > 0)
		memcpy(buf, rep.payload, (size_t)r);
	devfwd_msg_done(&rep);
	return r;
}

ssize_t devfwd_client_write(struct devfwd_client *c, uint32_t fh, const void *buf, size_t len)
{
	struct devfwd_msg req;
	int r;

	r = rw_request(c, &req, DEVFWD_OP_WRITE, fh, len, buf, buf);
	if (r < 0)
		return r;
	return simple(c, &req);
}

int devfwd_client_poll(struct devfwd_client *c, uint32_t fh, uint32_t events, bool notify)
{
	struct devfwd_msg req;
	int r;

	if (!c)
		return -EINVAL;
	r = devfwd_encode_poll(&req, next_id(c), fh, events, notify);
	if (r < 0)
		return r;
	return simple(c, &req);
}

int devfwd_client_ioctl(struct devfwd_client *c, uint32_t fh, uint32_t cmd, void *arg)
{
	struct devfwd_ioctl_seg seg[DEVFWD_MAX_SEGS] = {};
	uint64_t ptr[DEVFWD_MAX_SEGS] = {};
	const void *in[DEVFWD_MAX_SEGS] = {};
	struct devfwd_file_state *st;
	struct devfwd_msg req, rep;
	bool nested;
	size_t off = 0;
	int n, r;

	if (!c || fh == 0 || fh > CLIENT_MAX_FH)
		return -EINVAL;
	st = &c->st[fh];
	n = devfwd_layout_root(cmd, &seg[0], &nested);
	if (n < 0)
		return n;
	if (n == 1) {
		if (!arg)
			return -EFAULT;
		ptr[0] = (uintptr_t)arg;
		if (nested) {
			n = devfwd_layout_nested(cmd, st, arg, seg[0].len, seg, ptr);
			if (n < 0)
				return n;
		}
	}
	for (int i = 0; i < n; i++)
		in[i] = seg[i].dir & DEVFWD_SEG_IN ? (const void *)(uintptr_t)ptr[i] : NULL;
	r = devfwd_encode_ioctl(&req, next_id(c), fh, cmd, n ? 0 : (uint64_t)(uintptr_t)arg, seg, (uint32_t)n, in);
	if (r < 0)
		return r;
	r = roundtrip(c, &req, &rep);
	if (r < 0)
		return r;
	r = rep.hdr.result;
	if (r >= 0) {
		size_t want = 0;

		for (int i = 0; i < n; i++)
			if (seg[i].dir & DEVFWD_SEG_OUT)
				want += seg[i].len;
		if (rep.hdr.len != want) {
			devfwd_msg_done(&rep);
			return -EPROTO;
		}
		for (int i = 0; i < n; i++)
			if (seg[i].dir & DEVFWD_SEG_OUT) {
				memcpy((void *)(uintptr_t)ptr[i], rep.payload + off, seg[i].len);
				off += seg[i].len;
			}
		if (n)
			devfwd_layout_update(cmd, st, arg, seg[0].len);
	}
	devfwd_msg_done(&rep);
	return r;
}
