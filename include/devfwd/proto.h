/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * devfwd wire protocol, version 2 (documented in docs/devfwd.md). Version 2
 * added MMAP and MUNMAP; a peer of another version is refused at its first
 * message (the header's version must match).
 *
 * A stream (UNIX socket, vsock, socketpair) carries messages in both
 * directions. Every message is a fixed 32-byte header followed by hdr.len
 * payload bytes. All integers are little-endian. Requests carry an id chosen
 * by the frontend; the reply repeats it, so several operations on several
 * files may be in flight at once and replies may come out of order. The
 * backend also sends unsolicited POLL_NOTIFY messages (id 0).
 *
 * This header only describes bytes on the wire; the C API is devfwd.h.
 */

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdint.h>
#endif

#define DEVFWD_PROTO_MAGIC   0x44574644u /* "DFWD" */
#define DEVFWD_PROTO_VERSION 2

/* Hard limits, checked by the receiver before it allocates anything. */
#define DEVFWD_MAX_PAYLOAD   (1u << 20)  /* 1 MiB, bigger than any read/ioctl */
#define DEVFWD_MAX_IO        (DEVFWD_MAX_PAYLOAD - 64)
#define DEVFWD_MAX_PATH      255
#define DEVFWD_MAX_SEGS      8           /* ioctl buffers per request */

enum devfwd_op {
	DEVFWD_OP_HELLO       = 1,  /* payload: devfwd_hello both ways */
	DEVFWD_OP_OPEN        = 2,  /* devfwd_open_req + path; reply result = fh */
	DEVFWD_OP_RELEASE     = 3,  /* no payload */
	DEVFWD_OP_READ        = 4,  /* devfwd_rw_req; reply payload = data */
	DEVFWD_OP_WRITE       = 5,  /* devfwd_rw_req + data; reply result = count */
	DEVFWD_OP_IOCTL       = 6,  /* devfwd_ioctl_req + segs + in data; reply = out data */
	DEVFWD_OP_POLL        = 7,  /* devfwd_poll_req; reply result = revents */
	DEVFWD_OP_POLL_NOTIFY = 8,  /* backend -> frontend, id 0: fh became ready */
	DEVFWD_OP_CANCEL      = 9,  /* cancel a parked request: hdr.fh, payload u32 id */
	DEVFWD_OP_MMAP        = 10, /* devfwd_mmap_req; reply payload devfwd_mmap_reply */
	DEVFWD_OP_MUNMAP      = 11, /* devfwd_munmap_req; reply result 0 */
	DEVFWD_OP_MAX_,
};

#define DEVFWD_F_REPLY 0x1u /* hdr.flags: this message answers request hdr.id */

struct devfwd_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t op;
	uint32_t id;     /* request id, echoed in the reply; 0 only for notifications */
	uint32_t fh;     /* backend file handle (from OPEN), 0 when none */
	int32_t  result; /* replies: >= 0 or negative errno; requests: 0 */
	uint32_t flags;  /* DEVFWD_F_* */
	uint32_t len;    /* payload bytes that follow */
	uint32_t reserved; /* 0 */
};

struct devfwd_hello {
	uint32_t version;    /* highest protocol version the sender speaks */
	uint32_t max_payload;
};

/* Open flags on the wire, independent of the host's O_* values. */
#define DEVFWD_OPEN_READ     0x1u
#define DEVFWD_OPEN_WRITE    0x2u
#define DEVFWD_OPEN_NONBLOCK 0x4u
#define DEVFWD_OPEN_MASK     0x7u

struct devfwd_open_req {
	uint32_t flags;     /* DEVFWD_OPEN_* */
	uint16_t path_len;  /* bytes of path that follow, no NUL, 1..DEVFWD_MAX_PATH */
	uint16_t reserved;
};

struct devfwd_rw_req {
	uint64_t offset;
	uint32_t size;      /* READ: bytes wanted; WRITE: bytes of data that follow */
	uint32_t nonblock;  /* 1: this operation must not wait (file opened O_NONBLOCK) */
};

/* Segment directions (bit mask). */
#define DEVFWD_SEG_IN  0x1u /* frontend -> backend before the ioctl */
#define DEVFWD_SEG_OUT 0x2u /* backend -> frontend after the ioctl */

#define DEVFWD_SEG_ROOT 0xffu /* parent of segment 0: the ioctl argument itself */

/*
 * An ioctl argument is a tree of at most DEVFWD_MAX_SEGS buffers. Segment 0
 * (parent DEVFWD_SEG_ROOT) is what the argument points to. A later segment i
 * is pointed to by the 8-byte pointer at byte ptr_off of segment parent
 * (parent < i). The backend rebuilds the tree in its own memory and patches
 * the pointers. With nseg == 0 the argument is the scalar devfwd_ioctl_req.arg.
 */
struct devfwd_ioctl_seg {
	uint32_t len;
	uint32_t ptr_off;
	uint8_t  dir;      /* DEVFWD_SEG_* */
	uint8_t  parent;
	uint16_t reserved;
};

/*
 * Blocking mode of one ioctl. CUSE does not tell the frontend when the guest
 * flips O_NONBLOCK with fcntl(2) (ALSA opens non-blocking and then switches),
 * so by default the backend uses the mode of the open; a frontend that learns
 * better (after an EAGAIN) resends with an explicit mode.
 */
#define DEVFWD_IOCTL_AS_OPENED 0
#define DEVFWD_IOCTL_BLOCK     1
#define DEVFWD_IOCTL_NONBLOCK  2

struct devfwd_ioctl_req {
	uint32_t cmd;
	uint16_t nseg;     /* 0..DEVFWD_MAX_SEGS */
	uint16_t mode;     /* DEVFWD_IOCTL_* */
	uint64_t arg;      /* scalar argument when nseg == 0 */
	/* then nseg struct devfwd_ioctl_seg, then the data of every IN segment,
	 * in segment order. The reply payload is the data of every OUT segment,
	 * in segment order, present only when result >= 0. */
};

struct devfwd_poll_req {
	uint32_t events;   /* POLLIN/POLLOUT/... as in poll(2) */
	uint32_t notify;   /* 1: send POLL_NOTIFY once the file is ready */
};

/* POLL_NOTIFY: hdr.fh names the file, hdr.result = revents. No payload. */

/*
 * MMAP: map len bytes of the real device file hdr.fh at offset into the
 * guest's shared window at win_off (both page aligned; the window is the
 * guest's own, never shared with another guest). The frontend chose win_off
 * from its free window pages; the backend maps the device, copies its
 * contents into the window and keeps the two coherent at the points its
 * class defines (docs/devfwd.md, "mmap"). The reply repeats the range the
 * backend serves, which the frontend checks against what it asked.
 */
#define DEVFWD_MMAP_ALIGN 4096u /* offsets and lengths of MMAP */
#define DEVFWD_PROT_READ  0x1u
#define DEVFWD_PROT_WRITE 0x2u
#define DEVFWD_PROT_MASK  0x3u

struct devfwd_mmap_req {
	uint64_t offset;   /* in the device file, page aligned */
	uint64_t win_off;  /* in the window, page aligned */
	uint32_t len;      /* bytes, page aligned, > 0 */
	uint32_t prot;     /* DEVFWD_PROT_* */
};

struct devfwd_mmap_reply {
	uint64_t win_off;
	uint32_t len;
	uint32_t reserved; /* 0 */
};

/* MUNMAP: the mapping that starts at win_off ends; once answered the
 * backend no longer touches those window pages. */
struct devfwd_munmap_req {
	uint64_t win_off;
};
