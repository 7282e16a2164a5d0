/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The subverted worker (subvert.h): each attack is one attempt an attacker
 * holding the worker's code would make, logged before it runs (so a worker
 * the filter kills has said what it tried) and after, with its outcome. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devfwd/devfwd.h"
#include "devfwd/subvert.h"
#include "shared/log.h"
#include "shared/scm.h"

static int result(long rc)
{
	return rc < 0 ? -errno : DEVFWD_SUBVERT_SUCCEEDED;
}

static int attack_inet(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(22),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int r;

	if (fd < 0)
		return -errno;
	/* A socket alone reaches nothing: it must get somewhere. */
	r = result(connect(fd, (struct sockaddr *)&a, sizeof(a)));
	close(fd);
	return r;
}

/* "CMD:PATH": opens PATH the legitimate way (through the broker, so it must
 * be allowed) and issues CMD on it, bypassing the worker's own check. */
static int attack_ioctl(const char *arg, int chan)
{
	char buf[256] = {};
	const char *colon = arg ? strchr(arg, ':') : NULL;
	unsigned long cmd;
	int fd, r;

	if (!colon)
		return -EINVAL;
	cmd = strtoul(arg, NULL, 0);
	fd = devfwd_broker_open(chan, colon + 1, DEVFWD_OPEN_READ);
	if (fd < 0)
		return fd;
	r = result(ioctl(fd, cmd, buf));
	close(fd);
	return r;
}

/* Hands a descriptor (stderr) to whoever is on the stream, as it could
 * hand a device fd to a UNIX peer. */
static int attack_passfd(int stream)
{
	char byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	scm_fd_buf b;

	scm_put_fd(&mh, &b, 2);
	return result(sendmsg(stream, &mh, MSG_NOSIGNAL));
}

static int attack(const char *name, const char *arg, int chan, int stream)
{
	if (!strcmp(name, "shadow"))
		return result(open("/etc/shadow", O_RDONLY | O_CLOEXEC));
	if (!strcmp(name, "mem"))
		return result(open("/dev/mem", O_RDWR | O_CLOEXEC));
	if (!strcmp(name, "exec")) {
		char *const argv[] = { "sh", "-c", "id", NULL };

		return result(execve("/bin/sh", argv, NULL));
	}
	if (!strcmp(name, "inet"))
		return attack_inet();
	if (!strcmp(name, "ptrace") && arg)
		return result(ptrace(PTRACE_ATTACH, (pid_t)atoi(arg), NULL, NULL));
	if (!strcmp(name, "setuid"))
		return result(setuid(0));
	if (!strcmp(name, "ioctl"))
		return attack_ioctl(arg, chan);
	if (!strcmp(name, "passfd"))
		return attack_passfd(stream);
	return -EINVAL;
}

int devfwd_subvert(const char *path, int chan, int stream, const char *peer_name)
{
	char what[DEVFWD_MAX_PATH + 1], *arg;
	int r;

	strncpy(what, path + strlen(DEVFWD_SUBVERT_PREFIX), sizeof(what) - 1);
	what[sizeof(what) - 1] = 0;
	arg = strchr(what, ':');
	if (arg)
		*arg++ = 0;
	log_warning(0, "%s: test hook: subverted worker tries %s%s%s", peer_name, what, arg ? " " : "",
		    arg ? arg : "");
	r = attack(what, arg, chan, stream);
	if (r == DEVFWD_SUBVERT_SUCCEEDED)
		log_error(0, "%s: test hook: %s SUCCEEDED", peer_name, what);
	else
		log_warning(0, "%s: test hook: %s refused: %s", peer_name, what, strerror(-r));
	return r;
}
