/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Passing one file descriptor with sendmsg(2) (SCM_RIGHTS): QMP's getfd and
 * devfwd's open broker. */

#include <string.h>
#include <sys/socket.h>

/* Room for one descriptor's control message, aligned as a cmsghdr. */
typedef union scm_fd_buf {
	struct cmsghdr align;
	char buf[CMSG_SPACE(sizeof(int))];
} scm_fd_buf;

/* Attaches fd to mh as its only control message, kept in *b (which must
 * live until the sendmsg). */
static inline void scm_put_fd(struct msghdr *mh, scm_fd_buf *b, int fd)
{
	struct cmsghdr *c;

	memset(b, 0, sizeof(*b));
	mh->msg_control = b->buf;
	mh->msg_controllen = sizeof(b->buf);
	c = CMSG_FIRSTHDR(mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &fd, sizeof(int));
}
