/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Opening device files for a guest, and the broker that does it on behalf
 * of a confined worker (docs/security.md, "devfwd workers"). The rules are
 * the same wherever the open happens: the privileged backend applies them
 * to what its worker asks, so a subverted worker can ask for anything and
 * still only gets what the guest's policy allows. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/openat2.h>

#include "devfwd/devfwd.h"
#include "shared/scm.h"
#include "shared/util.h"

/* Opens path without following any symlink, in any component: a symlink
 * inside an allowed directory can point anywhere. */
static int open_nofollow(const char *path, int flags)
{
	struct open_how how = {
		.flags = (uint64_t)flags,
		.resolve = RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
	};
	long fd = syscall(SYS_openat2, AT_FDCWD, path, &how, sizeof(how));

	return fd < 0 ? negative_errno() : (int)fd;
}

int devfwd_rules_open(const struct devfwd_rules *r, const char *path, uint32_t flags, const char **ret_why)
{
	const char *why_dummy;
	struct stat st;
	int oflags, fd;

	if (!ret_why)
		ret_why = &why_dummy;
	*ret_why = NULL;
	if (!path)
		return -EINVAL;
	if (devfwd_rules_check_path(r, path) < 0) {
		*ret_why = "not in policy";
		return -EACCES;
	}
	if (flags & ~(uint32_t)(DEVFWD_OPEN_READ | DEVFWD_OPEN_WRITE | DEVFWD_OPEN_NONBLOCK))
		return -EINVAL;
	switch (flags & (DEVFWD_OPEN_READ | DEVFWD_OPEN_WRITE)) {
	case DEVFWD_OPEN_READ:
		oflags = O_RDONLY;
		break;
	case DEVFWD_OPEN_WRITE:
		oflags = O_WRONLY;
		break;
	case DEVFWD_OPEN_READ | DEVFWD_OPEN_WRITE:
		oflags = O_RDWR;
		break;
	default:
		return -EINVAL;
	}
	fd = open_nofollow(path, oflags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	if (fd == -ELOOP || fd == -EXDEV) {
		*ret_why = "path goes through a symlink";
		return -EACCES;
	}
	if (fd < 0)
		return fd;
	/* Only device files and FIFOs: never a regular file or a directory,
	 * even when a pattern is loose enough to match one. */
	if (fstat(fd, &st) < 0 || !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode))) {
		close(fd);
		*ret_why = "not a character device or FIFO";
		return -EACCES;
	}
	return fd;
}

/* The answer: an int32 result, with the fd as SCM_RIGHTS when it is >= 0. */
static int send_answer(int chan, int32_t result, int fd)
{
	struct iovec iov = { .iov_base = &result, .iov_len = sizeof(result) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	scm_fd_buf b;

	if (fd >= 0)
		scm_put_fd(&mh, &b, fd);
	/* Never wait on a worker that does not read its answers. */
	if (sendmsg(chan, &mh, MSG_DONTWAIT | MSG_NOSIGNAL) != (ssize_t)sizeof(result))
		return errno == EPIPE || errno == ECONNRESET ? -ECONNRESET : -EBADMSG;
	return 0;
}

int devfwd_broker_serve(int chan, const struct devfwd_rules *r, struct devfwd_broker_req *ret_req,
			int *ret_result, const char **ret_why)
{
	struct devfwd_broker_req req;
	ssize_t n;
	int fd, s;

	if (chan < 0 || !ret_req || !ret_result || !ret_why)
		return -EINVAL;
	*ret_why = NULL;
	n = recv(chan, &req, sizeof(req), MSG_DONTWAIT | MSG_TRUNC);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN ? -EAGAIN : -ECONNRESET;
	/* Exactly one request of the exact size, its path terminated inside. */
	if (n != (ssize_t)sizeof(req) || !memchr(req.path, 0, sizeof(req.path)))
		return -EBADMSG;
	*ret_req = req;
	fd = devfwd_rules_open(r, req.path, req.flags, ret_why);
	*ret_result = fd;
	s = send_answer(chan, fd >= 0 ? 0 : fd, fd);
	if (fd >= 0)
		close(fd); /* the worker holds its own copy now */
	return s;
}

int devfwd_broker_open(int chan, const char *path, uint32_t flags)
{
	struct devfwd_broker_req req = { .flags = flags };
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} u;
	int32_t result;
	struct iovec iov = { .iov_base = &result, .iov_len = sizeof(result) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			     .msg_controllen = sizeof(u.buf) };
	struct cmsghdr *c;
	int fd = -1;
	ssize_t n;

	if (chan < 0 || !path || strlen(path) > DEVFWD_MAX_PATH)
		return -EINVAL;
	strcpy(req.path, path);
	if (send(chan, &req, sizeof(req), MSG_NOSIGNAL) != (ssize_t)sizeof(req))
		return -EIO;
	do
		n = recvmsg(chan, &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)sizeof(result))
		return -EIO;
	for (c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (result < 0) {
		if (fd >= 0)
			close(fd);
		return result;
	}
	return fd >= 0 ? fd : -EIO;
}
