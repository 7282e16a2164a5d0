/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Confinement of a devfwd worker before it reads a byte from its guest
 * (docs/security.md, "devfwd workers" and "The seccomp allow-list"). The
 * worker keeps its stream, its channel to the open broker and stderr; it
 * gives up its identity, its capabilities, the file system, the network and
 * every system call it does not need, and the ioctl commands its guest's
 * policy does not name. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <sched.h>
#include <seccomp.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include <linux/seccomp.h>

#include "devfwd/confine.h"
#include "shared/util.h"

#define LOG_ERR 3
#define LOG_WARNING 4
#define LOG_INFO 6
#define LOG_DEBUG 7

#define clog(c, level, ...)                                                 \
	do {                                                                 \
		if ((c)->log)                                                \
			(c)->log((c)->log_userdata, level, __VA_ARGS__);     \
	} while (0)

const char *const devfwd_seccomp_allowed[] = {
	/* the stream, the broker channel, the device files */
	"read", "write", "readv", "writev", "recvfrom", "sendto",
	"poll", "ppoll", "close", "lseek", "fstat", "newfstatat",
	/* memory (mmap and mprotect below, without PROT_EXEC) */
	"brk", "munmap", "mremap", "madvise",
	/* the C library's own needs: time, futexes, signals, exit */
	"clock_gettime", "gettimeofday", "nanosleep", "clock_nanosleep", "getpid", "gettid",
	"getuid", "geteuid", "getgid", "getegid", "futex", "getrandom", "sched_yield",
	"rt_sigprocmask", "rt_sigreturn", "sigaltstack", "restart_syscall", "exit", "exit_group",
	NULL
};

static void ctx_freep(scmp_filter_ctx *c)
{
	if (*c)
		seccomp_release(*c);
}

/* The rules both filters share: the allow-list and the argument checks of
 * mmap, mprotect, fcntl, tgkill, sendmsg and recvmsg. */
static int add_common(scmp_filter_ctx ctx, int msg_fd)
{
	static const int fcntl_cmds[] = { F_GETFL, F_SETFL, F_GETFD, F_SETFD };
	int r;

	for (size_t i = 0; devfwd_seccomp_allowed[i]; i++) {
		int nr = seccomp_syscall_resolve_name(devfwd_seccomp_allowed[i]);

		if (nr == __NR_SCMP_ERROR)
			continue; /* not a system call of this architecture */
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
		if (r < 0)
			return r;
	}
	/* Memory is never made executable: no code can be brought in. */
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r < 0)
		return r;
	r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1,
			     SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	if (r < 0)
		return r;
	/* File flags only: F_SETOWN would let a worker signal another one. */
	for (size_t i = 0; i < ELEMENTSOF(fcntl_cmds); i++) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(fcntl), 1,
				     SCMP_A1(SCMP_CMP_EQ, (scmp_datum_t)fcntl_cmds[i], 0));
		if (r < 0)
			return r;
	}
	/* Descriptors travel on the broker channel only: over its stream, a
	 * worker could hand a device fd to a UNIX peer, which would then issue
	 * any ioctl on it. The stream uses read and writev. */
	if (msg_fd >= 0) {
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(sendmsg), 1,
				     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)msg_fd, 0));
		if (r < 0)
			return r;
		r = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(recvmsg), 1,
				     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)msg_fd, 0));
		if (r < 0)
			return r;
	}
	/* abort() signals itself; no other process. */
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1,
				SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)getpid(), 0));
}

/* Builds filter 1 (which == 1): default kill, every allowed call, ioctl
 * with any command; or filter 2: default EPERM, the same calls, ioctl only
 * with the rules' commands. Stacked, the kernel applies the stricter answer
 * of the two, so an unlisted call kills the worker and an ioctl outside the
 * rules fails with EPERM. (One libseccomp filter cannot say "EPERM unless
 * one of these compares": an unconditional rule replaces the conditional
 * ones of the same call.) */
static int build(const struct devfwd_rules *r, int msg_fd, int which, scmp_filter_ctx *ret)
{
	_cleanup_(ctx_freep) scmp_filter_ctx ctx = NULL;
	struct devfwd_ioctl_match m[DEVFWD_MAX_IOCTL_RULES];
	int n, k;

	ctx = seccomp_init(which == 1 ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_ERRNO(EPERM));
	if (!ctx)
		return -ENOMEM;
	/* A call through another ABI (int 0x80, x32) kills. */
	k = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (k < 0)
		return k;
	/* The caller sets no_new_privs: libseccomp's own prctl before loading
	 * the second filter would be stopped by the first. */
	k = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (k < 0)
		return k;
	k = add_common(ctx, msg_fd);
	if (k < 0)
		return k;
	n = devfwd_rules_ioctl_matches(r, m, ELEMENTSOF(m));
	if (n < 0)
		return n;
	/* Filter 1 lets the second filter be loaded; filter 2 then refuses
	 * seccomp() with EPERM (a further filter could only restrict more). */
	if (which == 1) {
		k = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(seccomp), 1,
				     SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER, 0));
		if (k < 0)
			return k;
	}
	if (which == 1 || (n == 1 && m[0].mask == 0)) {
		k = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 0);
		if (k < 0)
			return k;
	} else {
		/* With no match at all, ioctl stays out: EPERM. */
		/* The kernel reads the command as an unsigned int: compare the
		 * low 32 bits only, as it will. */
		for (int i = 0; i < n; i++) {
			k = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1,
					     SCMP_A1(SCMP_CMP_MASKED_EQ, m[i].mask, m[i].value));
			if (k < 0)
				return k;
		}
	}
	*ret = TAKE_PTR(ctx);
	return 0;
}

int devfwd_seccomp_load(const struct devfwd_rules *r, int msg_fd)
{
	for (int which = 1; which <= 2; which++) {
		_cleanup_(ctx_freep) scmp_filter_ctx ctx = NULL;
		int k = build(r, msg_fd, which, &ctx);

		if (k < 0)
			return k;
		k = seccomp_load(ctx);
		if (k < 0)
			return k;
	}
	return 0;
}

int devfwd_seccomp_export(const struct devfwd_rules *r, int msg_fd, int fd)
{
	for (int which = 1; which <= 2; which++) {
		_cleanup_(ctx_freep) scmp_filter_ctx ctx = NULL;
		int k = build(r, msg_fd, which, &ctx);

		if (k < 0)
			return k;
		k = seccomp_export_pfc(ctx, fd);
		if (k < 0)
			return k;
	}
	return 0;
}

/* A new mount namespace whose root is an empty, read-only tmpfs: nothing of
 * the host's file system is reachable by path. The tmpfs goes over /tmp of
 * the (private) copy of the mount table, which the worker then makes its
 * root; without capabilities it can neither mount nor chroot again. */
static int empty_root(void)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		return negative_errno();
	if (mount("devfwd-empty", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
		  "size=4k,nr_inodes=2,mode=0555") < 0)
		return negative_errno();
	if (chdir("/tmp") < 0 || chroot(".") < 0 || chdir("/") < 0)
		return negative_errno();
	return 0;
}

static void namespaces(const struct devfwd_confine_cfg *c)
{
	static const struct {
		int flag;
		const char *name;
	} ns[] = { { CLONE_NEWNS, "mount" }, { CLONE_NEWNET, "network" }, { CLONE_NEWIPC, "IPC" } };

	for (size_t i = 0; i < ELEMENTSOF(ns); i++) {
		if (unshare(ns[i].flag) < 0) {
			clog(c, LOG_WARNING, "%s: worker stays in the host's %s namespace: unshare: %s",
			     c->peer_name, ns[i].name, strerror(errno));
			continue;
		}
		if (ns[i].flag == CLONE_NEWNS) {
			int r = empty_root();

			if (r < 0)
				clog(c, LOG_WARNING, "%s: worker keeps the host's file system: empty root: %s",
				     c->peer_name, strerror(-r));
		}
	}
}

static int drop_bounding(uint64_t keep)
{
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (!(cap < 64 && (keep & (UINT64_C(1) << cap))) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 &&
		    errno != EINVAL)
			return negative_errno();
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return negative_errno();
	return 0;
}

static int switch_user(uid_t uid, gid_t gid)
{
	uid_t ru, eu, su;

	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
		return negative_errno();
	if (getresuid(&ru, &eu, &su) < 0 || ru != uid || eu != uid || su != uid)
		return -EPERM;
	return 0;
}

/* Leaves exactly keep in the permitted and effective sets, nothing
 * inheritable, and checks the kernel agrees. */
static int set_caps(uint64_t keep)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2] = {
		{ .effective = (uint32_t)keep, .permitted = (uint32_t)keep },
		{ .effective = (uint32_t)(keep >> 32), .permitted = (uint32_t)(keep >> 32) },
	};

	if (syscall(SYS_capset, &h, d) < 0)
		return negative_errno();
	memset(d, 0, sizeof(d));
	if (syscall(SYS_capget, &h, d) < 0)
		return negative_errno();
	if (d[0].inheritable || d[1].inheritable || d[0].permitted != (uint32_t)keep ||
	    d[1].permitted != (uint32_t)(keep >> 32) || d[0].effective != (uint32_t)keep ||
	    d[1].effective != (uint32_t)(keep >> 32))
		return -EPERM;
	return 0;
}

int devfwd_confine(const struct devfwd_confine_cfg *c)
{
	bool root = geteuid() == 0;
	uint64_t keep = devfwd_rules_worker_caps(c ? c->rules : NULL);
	int r;

	if (!c)
		return -EINVAL;
	/* Namespaces and the empty root need CAP_SYS_ADMIN, dropping the
	 * bounding set CAP_SETPCAP: both come before the identity switch. */
	if (root)
		namespaces(c);
	if (root) {
		r = drop_bounding(keep);
		if (r < 0)
			return r;
		/* Keep the permitted set across the uid switch only when the
		 * policy names a capability to keep; set_caps trims it. */
		if (keep && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
			return negative_errno();
		r = switch_user(c->uid, c->gid);
		if (r < 0)
			return r;
		if (keep && prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
			return negative_errno();
	} else {
		keep = 0;
	}
	r = set_caps(keep);
	if (r < 0)
		return r;
	if (keep)
		clog(c, LOG_INFO, "%s: worker keeps capabilities 0x%llx (worker-capability in the policy)",
		     c->peer_name, (unsigned long long)keep);
	/* Not dumpable: another worker of the same uid cannot ptrace it or read
	 * its memory through /proc. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0 || prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return negative_errno();
	if (c->no_seccomp) {
		clog(c, LOG_WARNING, "%s: worker runs without its seccomp filter (test hook)", c->peer_name);
		return 0;
	}
	r = devfwd_seccomp_load(c->rules, c->broker_fd);
	if (r < 0)
		return r;
	clog(c, LOG_DEBUG, "%s: worker confined: uid %u, no capabilities, seccomp filter loaded", c->peer_name,
	     (unsigned)getuid());
	return 0;
}
