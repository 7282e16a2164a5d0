/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* devfwd-backend: the host side of device-file forwarding. It listens on
 * UNIX and vsock sockets and forks one worker per accepted stream, so a
 * malformed request or a crash ends that stream only. Each worker serves its
 * guest under the rules the policy file gives that guest's identity (vsock
 * CID or UNIX peer uid).
 *
 * Workers are confined before they read a byte from their guest: another
 * user, no capabilities, empty namespaces, a seccomp filter
 * (docs/security.md). They cannot open files; the backend opens what their
 * guest's rules allow on their request, over one socketpair per worker, and
 * passes the fd. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "devfwd/confine.h"
#include "devfwd/devfwd.h"
#include "devfwd/subvert.h"
#include "shared/log.h"
#include "shared/util.h"

#define MAX_LISTEN 8
#define DEFAULT_WORKER_USER "iovm-devfwd"
#define NOBODY 65534

/* A live worker and the parent's end of its open-broker channel. */
struct worker_slot {
	pid_t pid;
	int chan; /* -1 once closed */
	const struct devfwd_rules *rules;
	char name[64];
};

static struct worker_slot *workers;
static size_t nworkers, aworkers;
static uid_t worker_uid = NOBODY;
static gid_t worker_gid = NOBODY;
static bool no_seccomp, unconfined, generic_coherence;
#ifdef DEVFWD_TEST_HOOKS
static bool hooks;
#endif

static void peer_name(const struct devfwd_peer *p, char *buf, size_t len)
{
	if (p->kind == DEVFWD_PEER_VSOCK)
		snprintf(buf, len, "vsock cid %u", p->cid);
	else
		snprintf(buf, len, "unix uid %u pid %d", (unsigned)p->uid, (int)p->pid);
}

struct worker_ctx {
	int chan, stream;
	const char *name;
};

/* The worker's open_file: ask the parent. */
static int broker_open(void *userdata, const char *path, uint32_t flags)
{
	const struct worker_ctx *ctx = userdata;

#ifdef DEVFWD_TEST_HOOKS
	if (hooks && !strncmp(path, DEVFWD_SUBVERT_PREFIX, strlen(DEVFWD_SUBVERT_PREFIX)))
		return devfwd_subvert(path, ctx->chan, ctx->stream, ctx->name);
#endif
	return devfwd_broker_open(ctx->chan, path, flags);
}

/* Closes every descriptor but 0-2 and keep[0..n) (ascending, > 2; -1
 * entries ignored): a worker must not hold the listeners or another
 * worker's channel. */
static void close_all_but(const int *keep, size_t n)
{
	unsigned int next = 3;

	for (size_t i = 0; i < n; i++) {
		if (keep[i] < (int)next)
			continue;
		if ((unsigned)keep[i] > next)
			close_range(next, (unsigned)keep[i] - 1, 0);
		next = (unsigned)keep[i] + 1;
	}
	close_range(next, ~0U, 0);
}

static void sort3(int *v)
{
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2 - i; j++)
			if (v[j] > v[j + 1]) {
				int t = v[j];
				v[j] = v[j + 1];
				v[j + 1] = t;
			}
}

/* The guest's shared window, opened by the privileged parent for the
 * worker (which cannot open files): a regular file, never through a
 * symlink. -1 when the guest has none or it cannot be opened (logged: mmap
 * is then refused, everything else works). */
static int open_window(const struct devfwd_rules *rules, const char *name)
{
	const char *path = devfwd_rules_window(rules);
	struct stat st;
	int fd;

	if (!path)
		return -1;
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0) {
		log_error(errno, "%s (%s): shared window %s cannot be opened; mmap will be refused", name,
			  devfwd_rules_name(rules), path);
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		log_error(0, "%s (%s): shared window %s is not a regular file; mmap will be refused", name,
			  devfwd_rules_name(rules), path);
		close(fd);
		return -1;
	}
	return fd;
}

static _Noreturn void serve(int fd, int chan, int win, const struct devfwd_rules *rules, const char *name)
{
	struct worker_ctx ctx = { .chan = chan, .stream = fd, .name = name };
	struct devfwd_worker_cfg cfg = { .log = log_callback, .peer_name = name, .rules = rules,
					 .open_file = broker_open, .open_userdata = &ctx,
					 .have_window = win >= 0, .window_fd = win,
					 .generic_coherence = generic_coherence };
	int keep[3] = { fd, chan, win };
	struct devfwd_confine_cfg conf = { .uid = worker_uid, .gid = worker_gid, .rules = rules, .broker_fd = chan,
					   .no_seccomp = no_seccomp, .log = log_callback, .peer_name = name };
	int r;

	sort3(keep);
	close_all_but(keep, 3);
	if (!rules)
		log_warning(0, "%s: no [guest] section in the policy, every open will be refused", name);
	/* Confined, the worker cannot install signal handlers any more. */
	if (win >= 0) {
		r = devfwd_window_guard();
		if (r < 0) {
			log_error(r, "%s: the window's SIGBUS guard could not be installed; stream refused", name);
			_exit(1);
		}
	}
	if (unconfined) {
		/* Test builds only: the worker as it was before confinement, for
		 * the benchmark's before/after figures. */
		cfg.open_file = NULL;
		r = devfwd_worker_run(fd, &cfg);
		_exit(r < 0 ? 1 : 0);
	}
	r = devfwd_confine(&conf);
	if (r < 0) {
		log_error(r, "%s: worker could not be confined; stream refused", name);
		_exit(1);
	}
	r = devfwd_worker_run(fd, &cfg);
	_exit(r < 0 ? 1 : 0);
}

static struct worker_slot *slot_of(pid_t pid)
{
	for (size_t i = 0; i < nworkers; i++)
		if (workers[i].pid == pid)
			return &workers[i];
	return NULL;
}

static void reap(void)
{
	for (;;) {
		struct worker_slot *w;
		int status;
		pid_t pid = waitpid(-1, &status, WNOHANG);

		if (pid <= 0)
			return;
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS)
			log_error(0, "worker %d killed by signal %d (SIGSYS: a system call outside its seccomp "
				  "allow-list); other streams unaffected", (int)pid, SIGSYS);
		else if (WIFSIGNALED(status))
			log_error(0, "worker %d killed by signal %d; other streams unaffected", (int)pid,
			      WTERMSIG(status));
		else if (WEXITSTATUS(status))
			log_warning(0, "worker %d ended its stream with an error", (int)pid);
		else
			log_info("worker %d finished", (int)pid);
		w = slot_of(pid);
		if (w) {
			if (w->chan >= 0)
				close(w->chan);
			*w = workers[--nworkers];
		}
	}
}

/* One open request from worker w, answered under its guest's rules. */
static void broker(struct worker_slot *w)
{
	struct devfwd_broker_req req;
	const char *why;
	int res, r = devfwd_broker_serve(w->chan, w->rules, &req, &res, &why);

	if (r == -EAGAIN)
		return;
	if (r == 0 || (r == -ECONNRESET && why)) {
		if (why)
			log_warning(0, "%s (%s): open %s refused: %s", w->name, devfwd_rules_name(w->rules),
				    req.path, why);
		else if (res >= 0)
			log_debug("%s: worker %d granted %s", w->name, (int)w->pid, req.path);
		if (r == 0)
			return;
	}
	if (r == -EBADMSG)
		log_warning(0, "%s: worker %d sent a malformed open request; it can open nothing more", w->name,
			    (int)w->pid);
	close(w->chan);
	w->chan = -1;
}

/* --worker-user NAME must exist. Without it, the dedicated user if it
 * exists, else uid/gid 65534 with a warning (docs/security.md). */
static int resolve_worker_user(const char *name)
{
	struct passwd *pw = getpwnam(name ? name : DEFAULT_WORKER_USER);

	if (!pw && name) {
		log_error(0, "--worker-user %s: no such user", name);
		return -ENOENT;
	}
	if (!pw) {
		log_warning(0, "user %s does not exist; workers run as uid %d (nobody)", DEFAULT_WORKER_USER, NOBODY);
		return 0;
	}
	if (pw->pw_uid == 0) {
		log_error(0, "--worker-user %s: is root; workers must run unprivileged", pw->pw_name);
		return -EPERM;
	}
	worker_uid = pw->pw_uid;
	worker_gid = pw->pw_gid;
	return 0;
}

static int add_worker(pid_t pid, int chan, const struct devfwd_rules *rules, const char *name)
{
	if (nworkers == aworkers) {
		size_t n = aworkers ? aworkers * 2 : 16;
		struct worker_slot *p = realloc(workers, n * sizeof(*p));

		if (!p)
			return -ENOMEM;
		workers = p;
		aworkers = n;
	}
	workers[nworkers] = (struct worker_slot){ .pid = pid, .chan = chan, .rules = rules };
	snprintf(workers[nworkers].name, sizeof(workers[nworkers].name), "%s", name);
	nworkers++;
	return 0;
}

/* Forks the worker of an accepted stream fd. */
static void spawn(int fd, const struct devfwd_policy *policy, const struct devfwd_peer *p)
{
	const struct devfwd_rules *rules = devfwd_policy_match(policy, p);
	char name[64];
	int sp[2], win;
	pid_t pid;

	peer_name(p, name, sizeof(name));
	win = open_window(rules, name);
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0) {
		log_error(errno, "%s: socketpair failed; stream refused", name);
		close(fd);
		closep(&win);
		return;
	}
	pid = fork();
	if (pid < 0) {
		log_error(errno, "%s: fork failed; stream refused", name);
		close(sp[0]);
		close(sp[1]);
		close(fd);
		closep(&win);
		return;
	}
	if (pid == 0) {
		sigset_t all;

		sigemptyset(&all);
		sigprocmask(SIG_SETMASK, &all, NULL);
		serve(fd, sp[1], win, rules, name);
	}
	close(sp[1]);
	close(fd);
	closep(&win);
	if (add_worker(pid, sp[0], rules, name) < 0) {
		log_error(ENOMEM, "%s: worker %d cannot be tracked; stream ended", name, (int)pid);
		kill(pid, SIGKILL);
		close(sp[0]);
		return;
	}
	log_info("%s: stream served by worker %d", name, (int)pid);
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
	fputs("usage: devfwd-backend --policy FILE --listen ADDR [--listen ADDR...] [--worker-user NAME]\n"
	      "                      [--group NAME] [--socket-mode OCTAL] [--ready-fd FD] [-v|-q]\n"
	      "  ADDR is unix:/path/to/socket or vsock:PORT; UNIX sockets get --socket-mode\n"
	      "  (default 0660) and --group (default: root's)\n"
	      "  workers run as NAME (default " DEFAULT_WORKER_USER ", or uid 65534 if it does not exist)\n", f);
	return code;
}

/* Test builds only: IOVM_DEVFWD_TEST_HOOKS=1 arms the subverted-worker hook;
 * with it, IOVM_DEVFWD_TEST_NO_SECCOMP=1 leaves the filter out (to show what
 * the other steps hold on their own), IOVM_DEVFWD_TEST_UNCONFINED=1 leaves
 * workers unconfined, opening files themselves (the benchmark's "before"),
 * and IOVM_DEVFWD_TEST_GENERIC_COHERENCE=1 keeps V4L2 mappings under the
 * generic coherence rule (lab 79 shows what that does to captured frames). */
static bool env_is_1(const char *name)
{
	const char *v = getenv(name);

	return v && !strcmp(v, "1");
}

static void test_hooks(void)
{
	bool want = env_is_1("IOVM_DEVFWD_TEST_HOOKS");

#ifdef DEVFWD_TEST_HOOKS
	hooks = want;
	no_seccomp = hooks && env_is_1("IOVM_DEVFWD_TEST_NO_SECCOMP");
	unconfined = hooks && env_is_1("IOVM_DEVFWD_TEST_UNCONFINED");
	generic_coherence = hooks && env_is_1("IOVM_DEVFWD_TEST_GENERIC_COHERENCE");
	if (hooks)
		log_warning(0, "test hooks enabled%s%s%s", no_seccomp ? "; workers run WITHOUT a seccomp filter" : "",
			    unconfined ? "; workers run UNCONFINED, as root" : "",
			    generic_coherence ? "; V4L2 mappings under the GENERIC coherence rule" : "");
#else
	if (want)
		log_warning(0, "IOVM_DEVFWD_TEST_HOOKS: test hooks are not compiled in (meson -Dtest-hooks=true)");
#endif
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "policy", required_argument, NULL, 'p' },
		{ "listen", required_argument, NULL, 'l' },
		{ "worker-user", required_argument, NULL, 'u' },
		{ "ready-fd", required_argument, NULL, 'r' },
		{ "group", required_argument, NULL, 'g' },
		{ "socket-mode", required_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct devfwd_policy *policy = NULL;
	const char *policy_path = NULL, *user = NULL, *group = NULL, *addrs[MAX_LISTEN];
	_cleanup_free_ struct pollfd *pfd = NULL;
	mode_t socket_mode = 0660;
	size_t naddr = 0, apfd = 0;
	int ready_fd = -1, c, sfd;
	int lfd[MAX_LISTEN];
	iovm_error err = {};
	sigset_t mask;

	/* Quiet by default: errors, warnings and notices; --verbose adds each
	 * stream's start and end. */
	log_open("devfwd-backend", true);
	log_set_max_level(LOG_NOTICE);
	while ((c = getopt_long(argc, argv, "p:l:u:r:g:m:vqh", opts, NULL)) != -1) {
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
		case 'u':
			user = optarg;
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
	test_hooks();
	if (geteuid() != 0)
		log_warning(0, "not running as root: workers keep uid %u and the host's namespaces, and can open "
			    "only what this user can", (unsigned)geteuid());
	else if (resolve_worker_user(user) < 0)
		return 1;
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
	for (size_t i = 0; i < naddr; i++) {
		lfd[i] = listen_on(addrs[i], group, socket_mode);
		if (lfd[i] < 0)
			return 1;
		log_info("listening on %s", addrs[i]);
	}
	if (ready_fd >= 0) {
		(void)!write(ready_fd, "READY\n", 6);
		close(ready_fd);
	}
	for (;;) {
		/* signalfd, listeners, then one channel per worker that has one. */
		size_t n = 1 + naddr, nchan = 0;
		if (apfd < 1 + naddr + nworkers) {
			size_t want = 1 + naddr + nworkers + 16;
			struct pollfd *np = realloc(pfd, want * sizeof(*np));

			if (!np) {
				log_error(ENOMEM, "poll set");
				return 1;
			}
			pfd = np;
			apfd = want;
		}
		pfd[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		for (size_t i = 0; i < naddr; i++)
			pfd[1 + i] = (struct pollfd){ .fd = lfd[i], .events = POLLIN };
		for (size_t i = 0; i < nworkers; i++)
			pfd[n + i] = (struct pollfd){ .fd = workers[i].chan, .events = POLLIN };
		nchan = nworkers;
		if (poll(pfd, n + nchan, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error(errno, "poll");
			return 1;
		}
		/* Open requests first: reaping below reorders the worker table. */
		for (size_t i = 0; i < nchan; i++)
			if (pfd[n + i].revents && workers[i].chan >= 0)
				broker(&workers[i]);
		if (pfd[0].revents) {
			struct signalfd_siginfo si;

			while (read(sfd, &si, sizeof(si)) == sizeof(si))
				;
			reap();
		}
		for (size_t i = 0; i < naddr; i++) {
			struct devfwd_peer p;
			int fd;

			if (!pfd[1 + i].revents)
				continue;
			if (devfwd_accept(lfd[i], &fd, &p) < 0)
				continue;
			spawn(fd, policy, &p);
		}
	}
}
