/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * libdevfwd: forward device-file operations (open, release, read, write,
 * ioctl, poll) from a guest frontend to a host backend. The bytes on the
 * wire are described in devfwd/proto.h; this is the C API around them.
 * Like libiovm, functions return a negative errno and never log.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "devfwd/layout.h"
#include "devfwd/proto.h"
#include "iovm/error.h"

/* ---- messages and codec (codec.c) ---- */

/* A decoded message: header plus a malloc'ed payload of hdr.len bytes. */
struct devfwd_msg {
	struct devfwd_hdr hdr;
	uint8_t *payload;
};

void devfwd_msg_done(struct devfwd_msg *m); /* frees the payload, keeps m */

/* Checks magic, version, op, flags and length limits of a received header. */
int devfwd_hdr_check(const struct devfwd_hdr *h);

int devfwd_encode_hello(struct devfwd_msg *ret, uint32_t id, bool reply);
int devfwd_encode_open(struct devfwd_msg *ret, uint32_t id, uint32_t flags, const char *path);
int devfwd_encode_simple(struct devfwd_msg *ret, uint16_t op, uint32_t id, uint32_t fh);
int devfwd_encode_rw(struct devfwd_msg *ret, uint16_t op, uint32_t id, uint32_t fh,
		     uint64_t offset, uint32_t size, bool nonblock, const void *data);
int devfwd_encode_poll(struct devfwd_msg *ret, uint32_t id, uint32_t fh, uint32_t events, bool notify);
int devfwd_encode_cancel(struct devfwd_msg *ret, uint32_t id, uint32_t fh, uint32_t victim);
/* in_data[i] holds seg[i].len bytes for every segment with DEVFWD_SEG_IN. */
int devfwd_encode_ioctl(struct devfwd_msg *ret, uint32_t id, uint32_t fh, uint32_t cmd, uint64_t arg,
			const struct devfwd_ioctl_seg *seg, uint32_t nseg, const void *const *in_data);
/* Sets the DEVFWD_IOCTL_* blocking mode of an encoded IOCTL request. */
int devfwd_ioctl_set_mode(struct devfwd_msg *m, uint16_t mode);
/* A reply to req with result and optional data (copied). */
int devfwd_encode_reply(struct devfwd_msg *ret, const struct devfwd_hdr *req, int32_t result,
			const void *data, size_t len);
int devfwd_encode_notify(struct devfwd_msg *ret, uint32_t fh, int32_t revents);
int devfwd_encode_mmap(struct devfwd_msg *ret, uint32_t id, uint32_t fh, const struct devfwd_mmap_req *rq);
int devfwd_encode_munmap(struct devfwd_msg *ret, uint32_t id, uint32_t fh, uint64_t win_off);

/* Decoders validate every length and count against the payload and the
 * protocol limits; the views point into m->payload. */
int devfwd_decode_hello(const struct devfwd_msg *m, struct devfwd_hello *ret);
int devfwd_decode_open(const struct devfwd_msg *m, uint32_t *ret_flags, char ret_path[DEVFWD_MAX_PATH + 1]);
int devfwd_decode_rw(const struct devfwd_msg *m, struct devfwd_rw_req *ret, const uint8_t **ret_data);
int devfwd_decode_poll(const struct devfwd_msg *m, struct devfwd_poll_req *ret);
int devfwd_decode_cancel(const struct devfwd_msg *m, uint32_t *ret_victim);
/* Also checks alignment, prot and that the range lies inside a window of
 * win_size bytes (-ERANGE when not). */
int devfwd_decode_mmap(const struct devfwd_msg *m, uint64_t win_size, struct devfwd_mmap_req *ret);
int devfwd_decode_munmap(const struct devfwd_msg *m, uint64_t *ret_win_off);

struct devfwd_ioctl_view {
	uint32_t cmd;
	uint64_t arg;
	uint32_t nseg;
	uint16_t mode;                      /* DEVFWD_IOCTL_* */
	struct devfwd_ioctl_seg seg[DEVFWD_MAX_SEGS];
	const uint8_t *in[DEVFWD_MAX_SEGS]; /* NULL for segments without SEG_IN */
	size_t out_total;                   /* bytes of OUT data in the reply */
};
int devfwd_decode_ioctl(const struct devfwd_msg *m, struct devfwd_ioctl_view *ret);
/* Checks a segment table on its own (also used by the frontend). */
int devfwd_segs_check(const struct devfwd_ioctl_seg *seg, uint32_t nseg, size_t *ret_in, size_t *ret_out);

/* ---- transports (transport.c) ---- */

enum devfwd_peer_kind { DEVFWD_PEER_UNIX = 1, DEVFWD_PEER_VSOCK = 2 };

/* Who is on the other end of an accepted stream: the policy key. */
struct devfwd_peer {
	enum devfwd_peer_kind kind;
	uint32_t cid;   /* vsock */
	uid_t uid;      /* UNIX (SO_PEERCRED) */
	gid_t gid;
	pid_t pid;
};

/* One address family. Message framing is common to all stream transports. */
struct devfwd_transport_ops {
	const char *scheme;
	int (*connect)(const char *where, int *ret_fd, iovm_error *err);
	int (*listen)(const char *where, int *ret_fd, iovm_error *err);
	int (*peer)(int fd, const void *addr, struct devfwd_peer *ret);
};

extern const struct devfwd_transport_ops devfwd_transport_unix;
extern const struct devfwd_transport_ops devfwd_transport_vsock;

/* Addresses: "unix:/path/to/socket", "vsock:PORT" (listen on any CID),
 * "vsock:CID:PORT" (connect). */
int devfwd_listen(const char *addr, int *ret_fd, iovm_error *err);
int devfwd_connect(const char *addr, int *ret_fd, iovm_error *err);
int devfwd_accept(int lfd, int *ret_fd, struct devfwd_peer *ret_peer);
/* A connected socketpair with a fake UNIX peer, for tests. */
int devfwd_pair(int ret_fds[2]);

/* Sends/receives one whole message. recv returns -EPROTO on a malformed
 * header (the stream cannot be resynchronised) and -ECONNRESET on EOF. */
int devfwd_send(int fd, const struct devfwd_msg *m);
int devfwd_recv(int fd, struct devfwd_msg *ret);

/* ---- policy (policy.c) ---- */

struct devfwd_policy;
struct devfwd_rules;

int devfwd_policy_parse(const char *text, const char *origin, struct devfwd_policy **ret, iovm_error *err);
int devfwd_policy_load(const char *path, struct devfwd_policy **ret, iovm_error *err);
void devfwd_policy_free(struct devfwd_policy *p);
/* The rules for a peer, or NULL when the policy has no section for it. */
const struct devfwd_rules *devfwd_policy_match(const struct devfwd_policy *p, const struct devfwd_peer *peer);
const char *devfwd_rules_name(const struct devfwd_rules *r);
/* The file behind the guest's shared window (policy key window), or NULL. */
const char *devfwd_rules_window(const struct devfwd_rules *r);
/* 0 when allowed, -EACCES otherwise. Only clean absolute paths can match. */
int devfwd_rules_check_path(const struct devfwd_rules *r, const char *path);
/* 0 when allowed, -ENOTTY otherwise. */
int devfwd_rules_check_ioctl(const struct devfwd_rules *r, uint32_t cmd);
/* 0 for a clean absolute path (no "..", ".", "//", trailing "/"), else -EINVAL. */
int devfwd_path_check(const char *path);

/* The ioctl rules of a guest as masked compares, the form a seccomp filter
 * can check: cmd is allowed iff (cmd & mask) == value for one of them. A
 * single match with mask 0 means every command. */
#define DEVFWD_MAX_IOCTL_RULES 128
struct devfwd_ioctl_match {
	uint32_t mask, value;
};
/* Fills ret (room for max) and returns the count (0: no ioctl allowed), or
 * -E2BIG. NULL rules allow nothing. */
int devfwd_rules_ioctl_matches(const struct devfwd_rules *r, struct devfwd_ioctl_match *ret, size_t max);

/* The capabilities (bit 1 << CAP_*) the policy lets this guest's worker
 * keep after it drops the others ("worker-capability = net_admin"). */
uint64_t devfwd_rules_worker_caps(const struct devfwd_rules *r);

/* ---- opening device files (open.c) ---- */

/* Opens path for the guest whose rules are r, under every path rule of
 * docs/devfwd.md: clean absolute path, an allow-path glob, no symlink in any
 * component, a character device or FIFO. flags are DEVFWD_OPEN_*; the file is
 * opened O_NONBLOCK | O_CLOEXEC | O_NOCTTY. Returns the fd, or a negative
 * errno; a refusal is -EACCES with *ret_why saying which rule refused. */
int devfwd_rules_open(const struct devfwd_rules *r, const char *path, uint32_t flags, const char **ret_why);

/* The open broker: a confined worker cannot open files, so it asks the
 * privileged process that forked it over a SOCK_SEQPACKET socketpair, which
 * checks the worker's guest's rules, opens, and passes the fd back
 * (SCM_RIGHTS). */
struct devfwd_broker_req {
	uint32_t flags; /* DEVFWD_OPEN_* */
	char path[DEVFWD_MAX_PATH + 1];
};
/* Worker side: one request, one answer. Returns the fd or a negative errno. */
int devfwd_broker_open(int chan, const char *path, uint32_t flags);
/* Privileged side: answers one request waiting on chan under rules r. The
 * request is copied to *ret_req and the answer (fd or errno, kept open by
 * nobody) to *ret_result, *ret_why as devfwd_rules_open, for the caller to
 * log (a result >= 0 is an fd already passed and closed). Returns 0 when
 * answered, -EAGAIN when nothing was waiting, -ECONNRESET when the worker
 * has gone, -EBADMSG for a malformed request (the caller drops the channel). */
int devfwd_broker_serve(int chan, const struct devfwd_rules *r, struct devfwd_broker_req *ret_req,
			int *ret_result, const char **ret_why);

/* ---- the kernel frontend's control file (kctl.c) ---- */

#define DEVFWD_KERNEL_CTL "/dev/devfwd-ctl"

/* Formats the control line that makes devfwd.ko forward the backend's
 * host_path at addr ("vsock:CID:PORT") as /dev/NAME. */
int devfwd_kernel_line(const char *addr, const char *host_path, const char *name, char *buf, size_t size,
		       iovm_error *err);
/* Writes one control line to ctl (DEVFWD_KERNEL_CTL) in a single write. */
int devfwd_kernel_add(const char *ctl, const char *line, const char *host_path, iovm_error *err);

/* ---- ioctl argument layout (layout.c): devfwd/layout.h ---- */

/* ---- the guest's shared window, backend worker side (window.c) ---- */

#define DEVFWD_WINDOW_MAX_MAPS 32

/* Coherence rule of a mapping, from the device's class (docs/devfwd.md, "mmap") */
enum devfwd_wclass {
	DEVFWD_WCLASS_GENERIC, /* whole mappings copied around every ioctl */
	DEVFWD_WCLASS_V4L2,    /* one buffer at DQBUF (capture) or QBUF (output) */
};

struct devfwd_wmap {
	uint32_t fh;
	uint32_t len;
	uint32_t prot;  /* DEVFWD_PROT_* */
	uint64_t win_off;
	uint64_t offset; /* in the device file */
	enum devfwd_wclass cls;
	uint8_t *dev;   /* the real device's mapping */
};

struct devfwd_window {
	int fd;          /* -1: this guest has no window */
	uint8_t *base;
	uint64_t size;
	struct devfwd_wmap map[DEVFWD_WINDOW_MAX_MAPS];
	size_t nmap;
	bool generic_only; /* every mapping under the generic rule (test builds: lab 79's comparison) */
};

/* Maps the window file fd (a regular file, a whole number of pages); fd < 0
 * gives a window-less w, whose every map is -ENODEV. Does not take fd. */
int devfwd_window_init(struct devfwd_window *w, int fd);
void devfwd_window_done(struct devfwd_window *w);
/* Maps rq->len bytes of device fd at rq->offset and mirrors them at
 * rq->win_off: -ERANGE outside the window, -EBUSY over another mapping,
 * -ENXIO for what the file's class never maps, -EFAULT when the device's
 * memory cannot be read (SIGBUS), or mmap(2)'s error. */
int devfwd_window_map(struct devfwd_window *w, uint32_t fh, int fd, const struct devfwd_mmap_req *rq);
int devfwd_window_unmap(struct devfwd_window *w, uint32_t fh, uint64_t win_off); /* -ENOENT */
void devfwd_window_release(struct devfwd_window *w, uint32_t fh);             /* every map of fh */
/* to_device: window -> device for fh's writable maps; else device -> window.
 * -EFAULT if a mapping's memory could not be reached (SIGBUS); the others
 * are copied all the same. */
int devfwd_window_sync(struct devfwd_window *w, uint32_t fh, bool to_device);
/* The copies at an ioctl of fh, by each mapping's class: before it (after
 * false) or after it (after true, result its return value); arg/len its
 * root buffer (NULL/0 for a scalar). Generic mappings: devfwd_window_sync;
 * V4L2 mappings: only the buffer devfwd_layout_v4l2_handover names.
 * -EFAULT as devfwd_window_sync. */
int devfwd_window_ioctl(struct devfwd_window *w, uint32_t fh, uint32_t cmd, const uint8_t *arg, size_t len,
			bool after, int result);
/* Installs the SIGBUS handler the window's copies need; without it a
 * faulting device mapping ends the process. A confined worker cannot (no
 * rt_sigaction): the backend installs it before confining. */
int devfwd_window_guard(void);

/* ---- backend worker (worker.c) ---- */

typedef void (*devfwd_log_fn)(void *userdata, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

struct devfwd_worker_cfg {
	const struct devfwd_rules *rules; /* NULL: refuse every open */
	devfwd_log_fn log;                /* may be NULL */
	void *log_userdata;
	const char *peer_name;            /* for log messages, e.g. "cid 3" */
	/* Opens a file for the guest: returns an fd or a negative errno (and
	 * logs refusals itself). NULL: devfwd_rules_open with rules, in this
	 * process. The backend's confined workers ask their parent instead. */
	int (*open_file)(void *userdata, const char *path, uint32_t flags);
	void *open_userdata;
	/* The guest's window file (not taken). Without it MMAP answers -ENODEV. */
	bool have_window;
	int window_fd;
	/* Test builds: V4L2 mappings too under the generic coherence rule. */
	bool generic_coherence;
};

/* Serves one stream until the peer disconnects (returns 0) or sends a
 * malformed message (returns -EPROTO). Closes every file it opened. */
int devfwd_worker_run(int fd, const struct devfwd_worker_cfg *cfg);

/* ---- synchronous client (client.c), for tests, tools and benchmarks ---- */

struct devfwd_client;

int devfwd_client_new(int fd, struct devfwd_client **ret); /* takes fd; does HELLO */
void devfwd_client_free(struct devfwd_client *c);
int devfwd_client_open(struct devfwd_client *c, const char *path, uint32_t flags, uint32_t *ret_fh);
int devfwd_client_release(struct devfwd_client *c, uint32_t fh);
ssize_t devfwd_client_read(struct devfwd_client *c, uint32_t fh, void *buf, size_t len);
ssize_t devfwd_client_write(struct devfwd_client *c, uint32_t fh, const void *buf, size_t len);
/* Forwards ioctl(cmd, arg) laid out by devfwd_layout_*, as the frontend does. */
int devfwd_client_ioctl(struct devfwd_client *c, uint32_t fh, uint32_t cmd, void *arg);
int devfwd_client_poll(struct devfwd_client *c, uint32_t fh, uint32_t events, bool notify);
/* Raw round trip: one HELLO request and its reply (transport latency). */
int devfwd_client_ping(struct devfwd_client *c);
int devfwd_client_fd(const struct devfwd_client *c);
