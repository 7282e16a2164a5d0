// SPDX-License-Identifier: GPL-2.0
/* The file operations of a forwarded device: each becomes one request on
 * the file's own stream. Guest memory is touched only here, with
 * copy_from_user/copy_to_user on the addresses and sizes the caller gave
 * (read/write) or the layout table derived from the command and the caller's
 * own buffer (ioctl); never at an address or size a reply names. */
#include <linux/fs.h>
#include <linux/mm.h>
#include <linux/poll.h>
#include <linux/slab.h>
#include <linux/uaccess.h>
#include <sound/asound.h>

#include "devfwd-kmod.h"

static int dfk_open(struct inode *inode, struct file *file)
{
	struct dfk_target t;
	struct dfk_stream *s;
	unsigned int flags = 0;
	int r;

	r = dfk_lookup(inode->i_rdev, &t);
	if (r)
		return r;
	if (file->f_mode & FMODE_READ)
		flags |= DEVFWD_OPEN_READ;
	if (file->f_mode & FMODE_WRITE)
		flags |= DEVFWD_OPEN_WRITE;
	if (file->f_flags & O_NONBLOCK)
		flags |= DEVFWD_OPEN_NONBLOCK;
	r = dfk_stream_open(&t, flags, &s);
	if (r)
		return r;
	file->private_data = s;
	return stream_open(inode, file);
}

static int dfk_release(struct inode *inode, struct file *file)
{
	dfk_stream_close(file->private_data);
	return 0;
}

static ssize_t dfk_read(struct file *file, char __user *ubuf, size_t count, loff_t *ppos)
{
	struct dfk_stream *s = file->private_data;
	struct {
		struct devfwd_hdr h;
		struct devfwd_rw_req rq;
	} m = {};
	u32 size = min_t(size_t, count, DFK_MAX_RW);
	void *buf = NULL;
	int r;

	if (!size)
		return 0;
	m.rq.size = size;
	m.rq.nonblock = !!(file->f_flags & O_NONBLOCK);
	r = dfk_call(s, DEVFWD_OP_READ, &m, sizeof(m), size, size, false, true, &buf, NULL);
	if (r > 0 && copy_to_user(ubuf, buf, r))
		r = -EFAULT;
	kvfree(buf);
	return r;
}

static ssize_t dfk_write(struct file *file, const char __user *ubuf, size_t count, loff_t *ppos)
{
	struct dfk_stream *s = file->private_data;
	u32 size = min_t(size_t, count, DFK_MAX_RW);
	size_t hlen = sizeof(struct devfwd_hdr) + sizeof(struct devfwd_rw_req);
	struct devfwd_rw_req *rq;
	void *m;
	int r;

	if (!size)
		return 0;
	m = kvzalloc(hlen + size, GFP_KERNEL);
	if (!m)
		return -ENOMEM;
	rq = m + sizeof(struct devfwd_hdr);
	rq->size = size;
	rq->nonblock = !!(file->f_flags & O_NONBLOCK);
	if (copy_from_user(m + hlen, ubuf, size))
		r = -EFAULT;
	else
		r = dfk_call(s, DEVFWD_OP_WRITE, m, hlen + size, 0, size, false, true, NULL, NULL);
	kvfree(m);
	return r;
}

/* An ioctl in one round trip: the argument's buffers, as the shared layout
 * table describes them, go with the request; the OUT ones come back in the
 * reply and are copied to where the caller's own argument said. */
static long dfk_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	struct dfk_stream *s = file->private_data;
	struct devfwd_ioctl_seg seg[DEVFWD_MAX_SEGS] = {};
	u64 ptr[DEVFWD_MAX_SEGS] = {};
	void *data[DEVFWD_MAX_SEGS] = {};
	struct devfwd_file_state st;
	struct devfwd_ioctl_req *rq;
	size_t in_len = 0, out_len = 0, hlen, off;
	void *m = NULL, *out = NULL;
	bool nested = false;
	int n, i, r;

	n = devfwd_layout_root(cmd, &seg[0], &nested);
	if (n < 0)
		return n;
	ptr[0] = arg;
	if (n == 1) {
		data[0] = kvzalloc(seg[0].len, GFP_KERNEL);
		if (!data[0])
			return -ENOMEM;
		if (((seg[0].dir & DEVFWD_SEG_IN) || nested) &&
		    copy_from_user(data[0], u64_to_user_ptr(ptr[0]), seg[0].len)) {
			r = -EFAULT;
			goto out;
		}
		if (nested) {
			spin_lock(&s->lock);
			st = s->st;
			spin_unlock(&s->lock);
			n = devfwd_layout_nested(cmd, &st, data[0], seg[0].len, seg, ptr);
			if (n < 0) {
				r = n;
				goto out;
			}
		}
	}
	for (i = 0; i < n; i++) {
		if (i > 0) {
			data[i] = kvzalloc(seg[i].len, GFP_KERNEL);
			if (!data[i]) {
				r = -ENOMEM;
				goto out;
			}
			if ((seg[i].dir & DEVFWD_SEG_IN) &&
			    copy_from_user(data[i], u64_to_user_ptr(ptr[i]), seg[i].len)) {
				r = -EFAULT;
				goto out;
			}
		}
		if (seg[i].dir & DEVFWD_SEG_IN)
			in_len += seg[i].len;
		if (seg[i].dir & DEVFWD_SEG_OUT)
			out_len += seg[i].len;
	}
	if (in_len > DEVFWD_MAX_IO || out_len > DEVFWD_MAX_IO) {
		r = -E2BIG;
		goto out;
	}
	hlen = sizeof(struct devfwd_hdr) + sizeof(*rq) + n * sizeof(seg[0]);
	m = kvzalloc(hlen + in_len, GFP_KERNEL);
	if (!m) {
		r = -ENOMEM;
		goto out;
	}
	rq = m + sizeof(struct devfwd_hdr);
	rq->cmd = cmd;
	rq->nseg = n;
	/* The module knows the caller's real flags (fcntl included). */
	rq->mode = (file->f_flags & O_NONBLOCK) ? DEVFWD_IOCTL_NONBLOCK : DEVFWD_IOCTL_BLOCK;
	rq->arg = n ? 0 : arg;
	memcpy(rq + 1, seg, n * sizeof(seg[0]));
	off = hlen;
	for (i = 0; i < n; i++) {
		if (seg[i].dir & DEVFWD_SEG_IN) {
			memcpy(m + off, data[i], seg[i].len);
			off += seg[i].len;
		}
	}
	r = dfk_call(s, DEVFWD_OP_IOCTL, m, hlen + in_len, out_len, INT_MAX, true, true, &out, NULL);
	if (r < 0)
		goto out;
	off = 0;
	for (i = 0; i < n; i++) {
		if (!(seg[i].dir & DEVFWD_SEG_OUT))
			continue;
		if (copy_to_user(u64_to_user_ptr(ptr[i]), out + off, seg[i].len)) {
			r = -EFAULT;
			goto out;
		}
		if (i == 0) {
			spin_lock(&s->lock);
			devfwd_layout_update(cmd, &s->st, out, seg[0].len);
			spin_unlock(&s->lock);
		}
		off += seg[i].len;
	}
	if (n == 0 && cmd == SNDRV_PCM_IOCTL_HW_FREE) {
		spin_lock(&s->lock);
		devfwd_layout_update(cmd, &s->st, NULL, 0);
		spin_unlock(&s->lock);
	}
out:
	for (i = 0; i < DEVFWD_MAX_SEGS; i++)
		kvfree(data[i]);
	kvfree(m);
	kvfree(out);
	return r;
}

static __poll_t dfk_poll(struct file *file, poll_table *wait)
{
	struct dfk_stream *s = file->private_data;
	struct {
		struct devfwd_hdr h;
		struct devfwd_poll_req pr;
	} m = {};
	__poll_t events = poll_requested_events(wait) &
			  (EPOLLIN | EPOLLPRI | EPOLLOUT | EPOLLRDNORM | EPOLLRDBAND | EPOLLWRNORM | EPOLLWRBAND);
	int r;

	poll_wait(file, &s->pollq, wait);
	if (READ_ONCE(s->dead))
		return EPOLLERR | EPOLLHUP;
	/* A waiting poller asks for one POLL_NOTIFY, which wakes pollq. */
	m.pr.events = (__force u32)events;
	m.pr.notify = !poll_does_not_wait(wait);
	r = dfk_call(s, DEVFWD_OP_POLL, &m, sizeof(m), 0, 0xffff, false, false, NULL, NULL);
	if (r < 0)
		return EPOLLERR;
	return (__force __poll_t)r & (events | EPOLLERR | EPOLLHUP);
}

static int dfk_fasync(int fd, struct file *file, int on)
{
	struct dfk_stream *s = file->private_data;

	return fasync_helper(fd, file, on, &s->fasync);
}

const struct file_operations dfk_fops = {
	.owner = THIS_MODULE,
	.open = dfk_open,
	.release = dfk_release,
	.read = dfk_read,
	.write = dfk_write,
	.unlocked_ioctl = dfk_ioctl,
	/* 32-bit callers: layouts differ and are not described (ENOTTY) */
	.poll = dfk_poll,
	.fasync = dfk_fasync,
	.mmap = dfk_mmap,
	.llseek = no_llseek,
};
