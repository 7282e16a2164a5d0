// SPDX-License-Identifier: GPL-2.0
/* One stream to devfwd-backend per opened file: a kernel vsock socket, a
 * receiver thread, and the requests in flight on it.
 *
 * Isolation rules. A reply is checked against the request it answers before
 * a byte of its payload is read: its id must be one in flight on this
 * stream, its op the request's, its result 0..max or a plain -errno (1..4095,
 * never a kernel-internal restart code), its payload no longer than the
 * buffer the request allocated for it (exactly as long for ioctl data, as
 * long as the result for a read). Anything else ends the stream: every
 * waiting and later call on that file gets -EIO, and the module logs why.
 * Payload only ever lands in the module's own buffer of the request; the
 * callers copy to the guest process at most what they asked for, to the
 * addresses the process itself gave. */
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/socket.h>
#include <linux/vm_sockets.h>
#include <net/sock.h>

#include "devfwd-kmod.h"

#define dfk_warn(s, fmt, ...) \
	pr_warn_ratelimited("devfwd: /dev/%s (host %s, vsock %u:%u): " fmt "\n", (s)->t.name, \
			    (s)->t.path, (s)->t.cid, (s)->t.port, ##__VA_ARGS__)

/* Sends all of buf; a partial send leaves the stream unusable. */
static int send_all(struct socket *sock, void *buf, size_t len)
{
	struct kvec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
	int r;

	while (iov.iov_len) {
		r = kernel_sendmsg(sock, &msg, &iov, 1, iov.iov_len);
		if (r <= 0)
			return r < 0 ? r : -EPIPE;
		iov.iov_base += r;
		iov.iov_len -= r;
	}
	return 0;
}

/* Receives exactly len bytes; -ENODATA at end of stream. */
static int recv_all(struct socket *sock, void *buf, size_t len)
{
	struct kvec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr msg = {};
	int r;

	while (iov.iov_len) {
		r = kernel_recvmsg(sock, &msg, &iov, 1, iov.iov_len, MSG_WAITALL);
		if (r < 0)
			return r;
		if (r == 0)
			return -ENODATA;
		iov.iov_base += r;
		iov.iov_len -= r;
	}
	return 0;
}

static void req_free(struct dfk_req *req)
{
	kvfree(req->buf);
	kfree(req);
}

/* Ends the stream with err (first caller wins); frees abandoned requests,
 * wakes every waiter and poller. May sleep. */
void dfk_stream_fail(struct dfk_stream *s, int err, const char *why)
{
	struct dfk_req *req, *tmp;
	bool first = false;

	spin_lock(&s->lock);
	if (!s->dead) {
		s->dead = err;
		first = true;
	}
	list_for_each_entry_safe(req, tmp, &s->pending, node) {
		if (req->abandoned) {
			list_del(&req->node);
			req_free(req);
		}
	}
	spin_unlock(&s->lock);
	if (first && !s->closing)
		dfk_warn(s, "%s; the stream ends, calls on this file fail with %pe", why, ERR_PTR(err));
	wake_up_all(&s->replyq);
	wake_up_interruptible_all(&s->pollq);
	if (first && !s->closing)
		kill_fasync(&s->fasync, SIGIO, POLL_HUP);
	if (first)
		kernel_sock_shutdown(s->sock, SHUT_RDWR);
}

static bool result_ok(const struct dfk_req *req, s32 result, u32 len)
{
	if (result < 0)
		/* a plain errno; kernel-internal codes (ERESTARTSYS, 512..) must
		 * never reach a guest process */
		return result >= -511 && len == 0;
	if ((u32)result > req->max_result || len > req->want)
		return false;
	if (req->exact && len != req->want)
		return false;
	if (req->op == DEVFWD_OP_READ && len != (u32)result)
		return false;
	return true;
}

/* Checks one received header; returns the request it answers (off the
 * pending list), NULL for a notification handled here, or an ERR_PTR with
 * *why set for garbage. */
static struct dfk_req *take_reply(struct dfk_stream *s, const struct devfwd_hdr *h, const char **why)
{
	struct dfk_req *req;

	if (h->magic == DEVFWD_PROTO_MAGIC && h->version != DEVFWD_PROTO_VERSION) {
		dfk_warn(s, "the backend speaks devfwd protocol version %u, this module version %u", h->version,
			 DEVFWD_PROTO_VERSION);
		*why = "a backend of another protocol version";
		return ERR_PTR(-EPROTONOSUPPORT);
	}
	if (h->magic != DEVFWD_PROTO_MAGIC || h->reserved) {
		*why = "bad magic, version or reserved field in a message";
		return ERR_PTR(-EPROTO);
	}
	if (h->len > DEVFWD_MAX_PAYLOAD) {
		*why = "a message longer than the protocol allows";
		return ERR_PTR(-EPROTO);
	}
	if (h->op == DEVFWD_OP_POLL_NOTIFY) {
		if (h->flags || h->id || h->len || h->fh != s->fh || h->result < 0 || h->result > 0xffff) {
			*why = "a malformed POLL_NOTIFY";
			return ERR_PTR(-EPROTO);
		}
		spin_lock(&s->lock);
		s->notified |= h->result;
		spin_unlock(&s->lock);
		wake_up_interruptible_all(&s->pollq);
		kill_fasync(&s->fasync, SIGIO, POLL_IN);
		return NULL;
	}
	if (h->flags != DEVFWD_F_REPLY) {
		*why = "a message that is not a reply";
		return ERR_PTR(-EPROTO);
	}
	spin_lock(&s->lock);
	list_for_each_entry(req, &s->pending, node) {
		if (req->id != h->id)
			continue;
		if (req->op != h->op) {
			*why = "a reply whose op is not its request's";
			break;
		}
		if (!result_ok(req, h->result, h->len)) {
			*why = "a reply whose result or length does not fit its request";
			break;
		}
		list_del_init(&req->node);
		spin_unlock(&s->lock);
		return req;
	}
	if (list_entry_is_head(req, &s->pending, node))
		*why = "a reply to no request in flight (unknown id)";
	spin_unlock(&s->lock);
	return ERR_PTR(-EPROTO);
}

static void complete_req(struct dfk_stream *s, struct dfk_req *req, int result, u32 len)
{
	spin_lock(&s->lock);
	if (req->abandoned) {
		spin_unlock(&s->lock);
		req_free(req);
		return;
	}
	req->result = result;
	req->len = len;
	WRITE_ONCE(req->done, true);
	spin_unlock(&s->lock);
	wake_up_all(&s->replyq);
}

static int rx_main(void *data)
{
	struct dfk_stream *s = data;
	const char *why = "the backend closed the stream";
	struct devfwd_hdr h;
	struct dfk_req *req;
	int r;

	for (;;) {
		r = recv_all(s->sock, &h, sizeof(h));
		if (r) {
			if (r != -ENODATA)
				why = "receiving from the backend failed";
			break;
		}
		req = take_reply(s, &h, &why);
		if (IS_ERR(req))
			break;
		if (!req)
			continue;
		r = h.len ? recv_all(s->sock, req->buf, h.len) : 0;
		if (r) {
			complete_req(s, req, -EIO, 0);
			why = "the backend's reply ended in the middle";
			break;
		}
		complete_req(s, req, h.result, h.len);
	}
	dfk_stream_fail(s, -EIO, why);
	/* kthread_stop() needs the thread alive until it is called. */
	while (!kthread_should_stop()) {
		set_current_state(TASK_INTERRUPTIBLE);
		if (kthread_should_stop())
			break;
		schedule();
	}
	__set_current_state(TASK_RUNNING);
	return 0;
}

static bool finished(struct dfk_stream *s, struct dfk_req *req)
{
	return READ_ONCE(req->done) || READ_ONCE(s->dead);
}

static void send_cancel(struct dfk_stream *s, u32 victim)
{
	struct {
		struct devfwd_hdr h;
		u32 victim;
	} m = {};
	struct dfk_req *req = kzalloc(sizeof(*req), GFP_KERNEL);
	int r;

	if (!req)
		return;
	/* Nobody waits for the CANCEL's own reply: the receiver frees it. */
	req->op = DEVFWD_OP_CANCEL;
	req->abandoned = true;
	spin_lock(&s->lock);
	if (s->dead) {
		spin_unlock(&s->lock);
		kfree(req);
		return;
	}
	req->id = s->next_id++;
	list_add_tail(&req->node, &s->pending);
	spin_unlock(&s->lock);
	m.h = (struct devfwd_hdr){ .magic = DEVFWD_PROTO_MAGIC, .version = DEVFWD_PROTO_VERSION,
				   .op = DEVFWD_OP_CANCEL, .id = req->id, .fh = s->fh, .len = sizeof(u32) };
	m.victim = victim;
	mutex_lock(&s->send_lock);
	r = send_all(s->sock, &m, sizeof(m));
	mutex_unlock(&s->send_lock);
	if (r)
		dfk_stream_fail(s, -EIO, "sending a CANCEL failed");
}

int dfk_call(struct dfk_stream *s, u16 op, void *p, u32 plen, u32 want, u32 max_result, bool exact,
	     bool interruptible, void **ret_buf, u32 *ret_len)
{
	struct devfwd_hdr *h = p;
	struct dfk_req *req;
	int r;

	req = kzalloc(sizeof(*req), GFP_KERNEL);
	if (!req)
		return -ENOMEM;
	if (want) {
		req->buf = kvmalloc(want, GFP_KERNEL);
		if (!req->buf) {
			kfree(req);
			return -ENOMEM;
		}
	}
	req->op = op;
	req->want = want;
	req->max_result = max_result;
	req->exact = exact;
	spin_lock(&s->lock);
	if (s->dead) {
		r = s->dead;
		spin_unlock(&s->lock);
		req_free(req);
		return r;
	}
	req->id = s->next_id++;
	if (!s->next_id)
		s->next_id = 1;
	list_add_tail(&req->node, &s->pending);
	spin_unlock(&s->lock);

	*h = (struct devfwd_hdr){ .magic = DEVFWD_PROTO_MAGIC, .version = DEVFWD_PROTO_VERSION, .op = op,
				  .id = req->id, .fh = s->fh, .len = plen - sizeof(*h) };
	mutex_lock(&s->send_lock);
	r = send_all(s->sock, p, plen);
	mutex_unlock(&s->send_lock);
	if (r)
		dfk_stream_fail(s, -EIO, "sending a request failed");

	if (!r && interruptible && wait_event_interruptible(s->replyq, finished(s, req)))
		/* A signal: ask the backend to answer the parked request now
		 * (-EINTR); its reply, or a result that raced the CANCEL,
		 * still comes and is waited for. */
		send_cancel(s, req->id);
	if (wait_event_killable(s->replyq, finished(s, req))) {
		spin_lock(&s->lock);
		if (!req->done && !s->dead) {
			req->abandoned = true;
			spin_unlock(&s->lock);
			return -EINTR;
		}
		spin_unlock(&s->lock);
	}
	spin_lock(&s->lock);
	if (!req->done) {
		list_del(&req->node);
		r = s->dead;
	} else {
		r = req->result;
	}
	spin_unlock(&s->lock);
	if (r >= 0 && ret_buf) {
		*ret_buf = req->buf;
		req->buf = NULL;
	}
	if (r >= 0 && ret_len)
		*ret_len = req->len;
	req_free(req);
	return r;
}

int dfk_stream_open(const struct dfk_target *t, unsigned int open_flags, struct dfk_stream **ret)
{
	struct sockaddr_vm addr = { .svm_family = AF_VSOCK, .svm_cid = t->cid, .svm_port = t->port };
	size_t plen = strlen(t->path);
	struct {
		struct devfwd_hdr h;
		struct devfwd_hello hello;
	} hm = { .hello = { .version = DEVFWD_PROTO_VERSION, .max_payload = DEVFWD_MAX_PAYLOAD } };
	struct devfwd_hello *reply = NULL;
	struct devfwd_open_req *o;
	struct dfk_stream *s;
	void *om;
	int r;

	s = kzalloc(sizeof(*s), GFP_KERNEL);
	if (!s)
		return -ENOMEM;
	s->t = *t;
	s->next_id = 1;
	mutex_init(&s->send_lock);
	spin_lock_init(&s->lock);
	INIT_LIST_HEAD(&s->pending);
	init_waitqueue_head(&s->replyq);
	init_waitqueue_head(&s->pollq);
	r = sock_create_kern(&init_net, AF_VSOCK, SOCK_STREAM, 0, &s->sock);
	if (r) {
		dfk_warn(s, "no vsock socket (%pe; is a vsock transport loaded?)", ERR_PTR(r));
		kfree(s);
		return r;
	}
	r = kernel_connect(s->sock, (struct sockaddr *)&addr, sizeof(addr), 0);
	if (r) {
		dfk_warn(s, "connecting to the backend failed: %pe", ERR_PTR(r));
		sock_release(s->sock);
		kfree(s);
		return r == -ERESTARTSYS ? -EINTR : r;
	}
	s->rx = kthread_run(rx_main, s, "devfwd-rx");
	if (IS_ERR(s->rx)) {
		r = PTR_ERR(s->rx);
		sock_release(s->sock);
		kfree(s);
		return r;
	}
	r = dfk_call(s, DEVFWD_OP_HELLO, &hm, sizeof(hm), sizeof(*reply), 0, true, true, (void **)&reply, NULL);
	if (r >= 0 && reply->version < DEVFWD_PROTO_VERSION) {
		dfk_warn(s, "the backend speaks protocol version %u, this module %u", reply->version,
			 DEVFWD_PROTO_VERSION);
		r = -EPROTONOSUPPORT;
	}
	kvfree(reply);
	if (r < 0)
		goto fail;

	om = kzalloc(sizeof(struct devfwd_hdr) + sizeof(*o) + plen, GFP_KERNEL);
	if (!om) {
		r = -ENOMEM;
		goto fail;
	}
	o = om + sizeof(struct devfwd_hdr);
	o->flags = open_flags;
	o->path_len = plen;
	memcpy(o + 1, t->path, plen);
	r = dfk_call(s, DEVFWD_OP_OPEN, om, sizeof(struct devfwd_hdr) + sizeof(*o) + plen, 0, U32_MAX, false, true,
		     NULL, NULL);
	kfree(om);
	if (r < 0)
		goto fail;
	s->fh = r;
	*ret = s;
	return 0;
fail:
	s->closing = true;
	dfk_stream_close(s);
	return r;
}

void dfk_stream_close(struct dfk_stream *s)
{
	struct {
		struct devfwd_hdr h;
	} m = {};
	struct dfk_req *req, *tmp;

	if (s->fh)
		/* parked requests of the file get -EBADF on the host; nothing
		 * waits here for long: RELEASE is answered at once */
		dfk_call(s, DEVFWD_OP_RELEASE, &m, sizeof(m), 0, 0, false, false, NULL, NULL);
	s->closing = true;
	kernel_sock_shutdown(s->sock, SHUT_RDWR);
	kthread_stop(s->rx);
	/* the receiver has gone: nothing else touches the list */
	list_for_each_entry_safe(req, tmp, &s->pending, node) {
		list_del(&req->node);
		req_free(req);
	}
	sock_release(s->sock);
	kfree(s);
}
