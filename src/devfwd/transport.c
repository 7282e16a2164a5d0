/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Stream transports for devfwd: UNIX sockets, vsock, and a socketpair for
 * tests. Address families differ only in how a stream is set up and who the
 * peer is; framing (header, then payload) is shared. */
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

#include "devfwd/devfwd.h"
#include "shared/util.h"

static int parse_u32(const char *s, uint32_t *ret)
{
	char *end;
	unsigned long v;

	if (!s || !*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v > UINT32_MAX)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

static int unix_addr(const char *where, struct sockaddr_un *sa, iovm_error *err)
{
	if (!where || !*where)
		return iovm_error_set(err, -EINVAL, "unix socket: empty path");
	if (strlen(where) >= sizeof(sa->sun_path))
		return iovm_error_set(err, -ENAMETOOLONG, "unix socket %s: path too long", where);
	*sa = (struct sockaddr_un){ .sun_family = AF_UNIX };
	strcpy(sa->sun_path, where);
	return 0;
}

/* A stream socket and the address of where, for connect or bind. */
static int unix_socket(const char *where, struct sockaddr_un *sa, int *ret_fd, iovm_error *err)
{
	int r = unix_addr(where, sa, err);

	if (r < 0)
		return r;
	*ret_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (*ret_fd < 0)
		return iovm_error_set(err, negative_errno(), "unix socket %s: socket: %m", where);
	return 0;
}

static int unix_connect(const char *where, int *ret_fd, iovm_error *err)
{
	struct sockaddr_un sa;
	_cleanup_close_ int fd = -1;
	int r = unix_socket(where, &sa, &fd, err);

	if (r < 0)
		return r;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return iovm_error_set(err, negative_errno(), "unix socket %s: connect: %m", where);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int unix_listen(const char *where, int *ret_fd, iovm_error *err)
{
	struct sockaddr_un sa;
	_cleanup_close_ int fd = -1;
	int r = unix_socket(where, &sa, &fd, err);

	if (r < 0)
		return r;
	/* A stale socket file from a previous run would make bind fail. */
	(void)unlink(where);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return iovm_error_set(err, negative_errno(), "unix socket %s: bind: %m", where);
	if (listen(fd, 64) < 0)
		return iovm_error_set(err, negative_errno(), "unix socket %s: listen: %m", where);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int unix_peer(int fd, const void *addr, struct devfwd_peer *ret)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return negative_errno();
	*ret = (struct devfwd_peer){ .kind = DEVFWD_PEER_UNIX, .uid = cred.uid, .gid = cred.gid, .pid = cred.pid };
	return 0;
}

const struct devfwd_transport_ops devfwd_transport_unix = {
	.scheme = "unix",
	.connect = unix_connect,
	.listen = unix_listen,
	.peer = unix_peer,
};

/* "CID:PORT" to connect, "PORT" to listen on any CID. */
static int vsock_addr(const char *where, bool need_cid, struct sockaddr_vm *sa, iovm_error *err)
{
	uint32_t cid = VMADDR_CID_ANY, port;
	const char *colon = where ? strchr(where, ':') : NULL;
	char buf[32];

	if (!where || strlen(where) >= sizeof(buf))
		return iovm_error_set(err, -EINVAL, "vsock address %s: expected CID:PORT or PORT", where ? where : "");
	if (colon) {
		memcpy(buf, where, (size_t)(colon - where));
		buf[colon - where] = 0;
		if (parse_u32(buf, &cid) < 0 || parse_u32(colon + 1, &port) < 0)
			return iovm_error_set(err, -EINVAL, "vsock address %s: bad CID or port", where);
	} else if (need_cid || parse_u32(where, &port) < 0) {
		return iovm_error_set(err, -EINVAL, "vsock address %s: expected %s", where,
				      need_cid ? "CID:PORT" : "PORT");
	}
	*sa = (struct sockaddr_vm){ .svm_family = AF_VSOCK, .svm_cid = cid, .svm_port = port };
	return 0;
}

/* Parses WHERE and opens a vsock stream socket for it. */
static int vsock_socket(const char *where, bool need_cid, struct sockaddr_vm *sa, int *ret_fd,
			iovm_error *err)
{
	int fd, r = vsock_addr(where, need_cid, sa, err);

	if (r < 0)
		return r;
	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return iovm_error_set(err, negative_errno(), "vsock %s: socket: %m (is the vsock module loaded?)", where);
	*ret_fd = fd;
	return 0;
}

static int vsock_connect(const char *where, int *ret_fd, iovm_error *err)
{
	static const struct timeval connect_timeout = { .tv_sec = 10 };
	struct sockaddr_vm sa;
	_cleanup_close_ int fd = -1;
	int r = vsock_socket(where, true, &sa, &fd, err);

	if (r < 0)
		return r;
	/* The kernel's default is 2 s; a loaded host answers later than that. */
	(void)setsockopt(fd, AF_VSOCK, SO_VM_SOCKETS_CONNECT_TIMEOUT, &connect_timeout, sizeof(connect_timeout));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return iovm_error_set(err, negative_errno(), "vsock %s: connect: %m", where);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int vsock_listen(const char *where, int *ret_fd, iovm_error *err)
{
	struct sockaddr_vm sa;
	_cleanup_close_ int fd = -1;
	int r = vsock_socket(where, false, &sa, &fd, err);

	if (r < 0)
		return r;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return iovm_error_set(err, negative_errno(), "vsock %s: bind: %m", where);
	if (listen(fd, 64) < 0)
		return iovm_error_set(err, negative_errno(), "vsock %s: listen: %m", where);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int vsock_peer(int fd, const void *addr, struct devfwd_peer *ret)
{
	const struct sockaddr_vm *sa = addr;

	if (!sa || sa->svm_family != AF_VSOCK)
		return -EAFNOSUPPORT;
	/* The CID comes from the host kernel (vhost-vsock), the guest cannot forge it. */
	*ret = (struct devfwd_peer){ .kind = DEVFWD_PEER_VSOCK, .cid = sa->svm_cid };
	return 0;
}

const struct devfwd_transport_ops devfwd_transport_vsock = {
	.scheme = "vsock",
	.connect = vsock_connect,
	.listen = vsock_listen,
	.peer = vsock_peer,
};

static const struct devfwd_transport_ops *const transports[] = {
	&devfwd_transport_unix,
	&devfwd_transport_vsock,
};

static const struct devfwd_transport_ops *lookup(const char *addr, const char **ret_where)
{
	for (size_t i = 0; i < ELEMENTSOF(transports); i++) {
		size_t n = strlen(transports[i]->scheme);

		if (strncmp(addr, transports[i]->scheme, n) == 0 && addr[n] == ':') {
			*ret_where = addr + n + 1;
			return transports[i];
		}
	}
	return NULL;
}

int devfwd_listen(const char *addr, int *ret_fd, iovm_error *err)
{
	const struct devfwd_transport_ops *ops;
	const char *where;

	if (!addr || !ret_fd)
		return iovm_error_set(err, -EINVAL, "listen: no address");
	ops = lookup(addr, &where);
	if (!ops)
		return iovm_error_set(err, -EAFNOSUPPORT, "address %s: unknown transport (unix:PATH or vsock:PORT)", addr);
	return ops->listen(where, ret_fd, err);
}

int devfwd_connect(const char *addr, int *ret_fd, iovm_error *err)
{
	const struct devfwd_transport_ops *ops;
	const char *where;

	if (!addr || !ret_fd)
		return iovm_error_set(err, -EINVAL, "connect: no address");
	ops = lookup(addr, &where);
	if (!ops)
		return iovm_error_set(err, -EAFNOSUPPORT, "address %s: unknown transport (unix:PATH or vsock:CID:PORT)", addr);
	return ops->connect(where, ret_fd, err);
}

int devfwd_accept(int lfd, int *ret_fd, struct devfwd_peer *ret_peer)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	_cleanup_close_ int fd = -1;
	struct devfwd_peer peer;
	int r;

	if (lfd < 0 || !ret_fd || !ret_peer)
		return -EINVAL;
	fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	if (ss.ss_family == AF_UNIX)
		r = devfwd_transport_unix.peer(fd, &ss, &peer);
	else if (ss.ss_family == AF_VSOCK)
		r = devfwd_transport_vsock.peer(fd, &ss, &peer);
	else
		r = -EAFNOSUPPORT;
	if (r < 0)
		return r;
	*ret_fd = TAKE_FD(fd);
	*ret_peer = peer;
	return 0;
}

int devfwd_pair(int ret_fds[2])
{
	if (!ret_fds)
		return -EINVAL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ret_fds) < 0)
		return negative_errno();
	return 0;
}

static int write_full(int fd, struct iovec *iov, int n)
{
	while (n > 0) {
		ssize_t w = writev(fd, iov, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = { .fd = fd, .events = POLLOUT };
				(void)poll(&p, 1, -1);
				continue;
			}
			return errno == EPIPE ? -ECONNRESET : negative_errno();
		}
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

int devfwd_send(int fd, const struct devfwd_msg *m)
{
	struct iovec iov[2];

	if (fd < 0 || !m || (m->hdr.len && !m->payload))
		return -EINVAL;
	iov[0] = (struct iovec){ .iov_base = (void *)&m->hdr, .iov_len = sizeof(m->hdr) };
	iov[1] = (struct iovec){ .iov_base = m->payload, .iov_len = m->hdr.len };
	/* MSG_NOSIGNAL is not available to writev; callers ignore SIGPIPE. */
	return write_full(fd, iov, m->hdr.len ? 2 : 1);
}

static int read_full(int fd, void *buf, size_t len, bool at_start)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (uint8_t *)buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				struct pollfd p = { .fd = fd, .events = POLLIN };
				(void)poll(&p, 1, -1);
				continue;
			}
			return negative_errno();
		}
		if (n == 0)
			/* EOF between messages is a clean hang-up; inside one it is not. */
			return at_start && done == 0 ? -ECONNRESET : -EPROTO;
		done += (size_t)n;
	}
	return 0;
}

int devfwd_recv(int fd, struct devfwd_msg *ret)
{
	struct devfwd_hdr h;
	_cleanup_free_ uint8_t *p = NULL;
	int r;

	if (fd < 0 || !ret)
		return -EINVAL;
	r = read_full(fd, &h, sizeof(h), true);
	if (r < 0)
		return r;
	r = devfwd_hdr_check(&h);
	if (r < 0)
		return r == -EPROTONOSUPPORT ? r : -EPROTO;
	if (h.len) {
		p = malloc(h.len);
		if (!p)
			return -ENOMEM;
		r = read_full(fd, p, h.len, false);
		if (r < 0)
			return r;
	}
	ret->hdr = h;
	ret->payload = TAKE_PTR(p);
	return 0;
}
