/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* devfwd-backend: the host side of device-file forwarding. It listens on
 * UNIX and vsock sockets and forks one worker per accepted stream, so a
 * malformed request or a crash ends that stream only. Each worker serves its
 * guest under the rules the policy file gives that guest's identity (vsock
 * CID or UNIX peer uid). */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "devfwd/devfwd.h"
#include "shared/log.h"
#include "shared/util.h"

#define MAX_LISTEN 8



static void peer_name(const struct devfwd_peer *p, char *buf, size_t len)
{
	if (p->kind == DEVFWD_PEER_VSOCK)
		snprintf(buf, len, "vsock cid %u", p->cid);
	else
		snprintf(buf, len, "unix uid %u pid %d", (unsigned)p->uid, (int)p->pid);
}

static _Noreturn void serve(int fd, const struct devfwd_policy *policy, const struct devfwd_peer *p)
{
	char name[64];
	struct devfwd_worker_cfg cfg = { .log = log_callback };
	int r;

	peer_name(p, name, sizeof(name));
	cfg.peer_name = name;
	cfg.rules = devfwd_policy_match(policy, p);
	if (!cfg.rules)
		log_warning(0, "%s: no [guest] section in the policy, every open will be refused", name);
	r = devfwd_worker_run(fd, &cfg);
	_exit(r < 0 ? 1 : 0);
}

static void reap(void)
{
	for (;;) {
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0)
			return;
		if (WIFSIGNALED(status))
			log_error(0, "worker %d killed by signal %d; other streams unaffected", (int)pid,
			      WTERMSIG(status));
		else if (WEXITSTATUS(status))
			log_warning(0, "worker %d ended its stream with an error", (int)pid);
		else
			log_info("worker %d finished", (int)pid);
	}
}

/* Listens on addr. A UNIX socket is born 0600 (whatever the umask), then
 * given to group (if any) and mode, so it is never open wider than asked,
 * not even between bind and chmod. Returns the fd or -1, logged. */
static int listen_on(const char *addr, const char *group, mode_t mode)
{
	const char *path = strncmp(addr, "unix:", 5) == 0 ? addr + 5 : NULL;
	iovm_error err = {};
	mode_t old = umask(0177);
	int fd = -1, r;

	r = devfwd_listen(addr, &fd, &err);
	umask(old);
	if (r < 0) {
		log_error(0, "%s", err.msg);
		return -1;
	}
	if (!path)
		return fd;
	if (group) {
		struct group *gr = getgrnam(group);

		if (!gr) {
			log_error(0, "%s: group %s does not exist", path, group);
			close(fd);
			return -1;
		}
		if (chown(path, (uid_t)-1, gr->gr_gid) < 0) {
			log_error(errno, "%s: cannot give it to group %s", path, group);
			close(fd);
			return -1;
		}
	}
	if (chmod(path, mode) < 0) {
		log_error(errno, "%s: cannot set mode %04o", path, (unsigned)mode);
		close(fd);
		return -1;
	}
	return fd;
}

/* Prints the usage to f; returns code, the exit status. */
static int usage(FILE *f, int code)
{
	fputs("usage: devfwd-backend --policy FILE --listen ADDR [--listen ADDR...] [--ready-fd FD]\n"
	      "                      [--group NAME] [--socket-mode OCTAL] [-v|-q]\n"
	      "  ADDR is unix:/path/to/socket or vsock:PORT; UNIX sockets get --socket-mode\n"
	      "  (default 0660) and --group (default: root's)\n", f);
	return code;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "listen", required_argument, NULL, 'l' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "group", required_argument, NULL, 'g' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct devfwd_policy *policy = NULL;
	const char *policy_path = NULL, *group = NULL, *addrs[MAX_LISTEN];
	mode_t socket_mode = 0660;
	struct pollfd pfd[MAX_LISTEN + 1];
	size_t naddr = 0;
	int ready_fd = -1, c, sfd;
	iovm_error err = {};
	sigset_t mask;

	/* Quiet by default: errors, warnings and notices; --verbose adds each
	 * stream's start and end. */
	log_open("devfwd-backend", true);
	log_set_max_level(LOG_NOTICE);
	while ((c = getopt_long(argc, argv, "p:l:r:g:m:vqh", opts, NULL)) != -1) {
		char *end;
		unsigned long m;

		switch (c) {
		case 'p':
			policy_path = optarg;
			break;
		case 'l':
			if (naddr >= MAX_LISTEN) {
				log_error(0, "at most %d --listen", MAX_LISTEN);
				return 2;
			}
			addrs[naddr++] = optarg;
			break;
		case 'r':
			ready_fd = atoi(optarg);
			break;
		case 'g':
			group = optarg;
			break;
		case 'm':
			errno = 0;
			m = strtoul(optarg, &end, 8);
			if (errno || end == optarg || *end || m > 0777) {
				log_error(0, "--socket-mode %s: not an octal mode up to 0777", optarg);
				return 2;
			}
			socket_mode = (mode_t)m;
			break;
		case 'v':
			log_set_max_level(LOG_DEBUG);
			break;
		case 'q':
			log_set_max_level(LOG_ERR);
			break;
		case 'h':
			return usage(stdout, 0);
		default:
			return usage(stderr, 2);
		}
	}
	if (!policy_path || naddr == 0 || optind != argc)
		return usage(stderr, 2);
	if (devfwd_policy_load(policy_path, &policy, &err) < 0) {
		log_error(0, "%s", err.msg);
		return 1;
	}
	/* A guest that hangs up mid-reply must cost a worker EPIPE, not its life. */
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error(errno, "signalfd");
		return 1;
	}
	pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
	for (size_t i = 0; i < naddr; i++) {
		int fd = listen_on(addrs[i], group, socket_mode);

		if (fd < 0)
			return 1;
		pfd[i + 1] = (struct pollfd){ .fd = fd, .events = POLLIN };
		log_info("listening on %s", addrs[i]);
	}
	if (ready_fd >= 0) {
		(void)!write(ready_fd, "READY\n", 6);
		close(ready_fd);
	}
	for (;;) {
		if (poll(pfd, naddr + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error(errno, "poll");
			return 1;
		}
		if (pfd[0].revents) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			reap();
		}
		for (size_t i = 1; i <= naddr; i++) {
			struct devfwd_peer p;
			char name[64];
			pid_t pid;
			int fd;

			if (!pfd[i].revents)
				continue;
			if (devfwd_accept(pfd[i].fd, &fd, &p) < 0)
				continue;
			peer_name(&p, name, sizeof(name));
			pid = fork();
			if (pid < 0) {
				log_error(errno, "%s: fork failed; stream refused", name);
				close(fd);
				continue;
			}
			if (pid == 0) {
				for (size_t j = 0; j <= naddr; j++)
					close(pfd[j].fd);
				sigprocmask(SIG_UNBLOCK, &mask, NULL);
				serve(fd, policy, &p);
			}
			log_info("%s: stream served by worker %d", name, (int)pid);
			close(fd);
		}
	}
}
