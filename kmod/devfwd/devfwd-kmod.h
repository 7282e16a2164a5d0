/* SPDX-License-Identifier: GPL-2.0 */
/* devfwd.ko internals: one stream (a kernel vsock socket to devfwd-backend)
 * per opened file, a receiver thread per stream that matches replies to the
 * requests waiting for them, and the registry of forwarded devices. */
#ifndef DEVFWD_KMOD_H
#define DEVFWD_KMOD_H

#include <linux/fs.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/net.h>
#include <linux/sched.h>
#include <linux/spinlock.h>
#include <linux/wait.h>

#include "devfwd/layout.h"
#include "devfwd/proto.h"

#define DFK_NAME_MAX 64
/* Largest read or write one call forwards (a short count beyond it, as
 * read(2)/write(2) allow); ioctls are bounded by the layout table. */
#define DFK_MAX_RW (128u * 1024)

/* What the control file registers: the guest's /dev name and where its
 * backend is. Copied into each opened file, so a device can be removed while
 * files of it are open. */
struct dfk_target {
	char name[DFK_NAME_MAX];      /* guest /dev name, e.g. input/event0 */
	char path[DEVFWD_MAX_PATH + 1]; /* host path, e.g. /dev/input/event3 */
	u32 cid, port;
};

/* A request waiting for its reply. Owned by its caller; a caller that gives
 * up for good (fatal signal) marks it abandoned and the receiver frees it. */
struct dfk_req {
	struct list_head node;
	u32 id;
	u16 op;
	bool done, abandoned, exact;
	int result;
	void *buf;   /* reply payload lands here: at most want bytes */
	u32 want;    /* largest reply payload accepted */
	u32 max_result; /* largest result accepted (a write: bytes sent) */
	u32 len;     /* reply payload received */
};

struct dfk_stream {
	struct dfk_target t;
	struct socket *sock;
	struct mutex send_lock;
	spinlock_t lock;            /* pending, next_id, dead, revents */
	struct list_head pending;
	wait_queue_head_t replyq;
	wait_queue_head_t pollq;
	struct fasync_struct *fasync;
	struct task_struct *rx;
	u32 next_id;
	u32 fh;
	int dead;                   /* 0, or the error every later call gets */
	bool closing;               /* released: the stream's end is no news */
	u32 notified;               /* revents of the last POLL_NOTIFY */
	struct devfwd_file_state st; /* ALSA frame size, for the layout table (lock) */
};

/* stream.c */
int dfk_stream_open(const struct dfk_target *t, unsigned int open_flags, struct dfk_stream **ret);
void dfk_stream_close(struct dfk_stream *s);
/* One round trip. p is the whole message (plen bytes) starting with room
 * for its header, which is filled in here. The reply may carry at most want
 * payload bytes (exactly want when exact and its result is >= 0) and a
 * result of at most max_result. interruptible: a signal sends CANCEL for the
 * request, whose answer is then waited for. Returns the reply's result
 * (>= 0 or -errno); on success *ret_buf (kvfree it) holds the payload and
 * *ret_len its length. */
int dfk_call(struct dfk_stream *s, u16 op, void *p, u32 plen, u32 want, u32 max_result, bool exact,
	     bool interruptible, void **ret_buf, u32 *ret_len);
void dfk_stream_fail(struct dfk_stream *s, int err, const char *why);

/* window.c: the guest's shared window (ivshmem BAR2) and its pages */
struct dfk_window;
int dfk_window_init(void);
void dfk_window_exit(void);
/* len bytes (page multiple) of free window pages: a reference on the
 * window, the range's offset in it and its physical address. -ENODEV when
 * the guest has no window. */
int dfk_window_alloc(u64 len, struct dfk_window **ret_w, u64 *ret_off, phys_addr_t *ret_phys);
/* Drops the reference; reuse: the range is free again (the backend said it
 * no longer touches it), else it stays taken. */
void dfk_window_put(struct dfk_window *w, u64 off, u64 len, bool reuse);
u64 dfk_window_size(const struct dfk_window *w);

/* mmap.c */
int dfk_mmap(struct file *file, struct vm_area_struct *vma);

/* fops.c */
extern const struct file_operations dfk_fops;
/* ctl.c: the target behind a device number, copied under the registry lock */
int dfk_lookup(dev_t devt, struct dfk_target *ret);

#endif
