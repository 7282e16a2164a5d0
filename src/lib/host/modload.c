/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Loading a PCI driver's module when a bind needs it, as libvirt does
 * (virKModLoad(): modprobe -b NAME). Binding through driver_override never
 * makes the kernel load the driver, so a host where vfio-pci was never
 * loaded would refuse every bind. modprobe is executed directly (no shell),
 * with a fixed path and environment, stdout on /dev/null and stderr read
 * back for the message, and a deadline. libkmod would do the same in-process
 * but is not one of the project's dependencies; modprobe also applies the
 * administrator's modprobe.d (options, blacklist) exactly as udev would.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "iovm/error.h"
#include "lib/host/modload.h"
#include "lib/host/pci-internal.h"
#include "lib/host/sysfs.h"
#include "shared/clock.h"
#include "shared/util.h"

#define CAP_SYS_MODULE_BIT 16

static const char *const modprobe_paths[] = { "/sbin/modprobe", "/usr/sbin/modprobe" };

static bool driver_registered(const iovm_host *h, const char *driver)
{
	char p[PATH_MAX];

	return sysfs_path(h, p, sizeof(p), "bus/pci/drivers/%s", driver) == 0 && sysfs_exists(p);
}

/* Whether this process may load modules at all: CAP_SYS_MODULE in its
 * effective set. iovmd under its unit has not (ProtectKernelModules=, and
 * the bounding set), and modprobe would then fail with a misleading
 * "module not found" (the unit hides /lib/modules). -errno if unknown. */
static int may_load_modules(const iovm_host *h)
{
	_cleanup_fclose_ FILE *f = NULL;
	char p[PATH_MAX], line[256];

	if (proc_path(h, p, sizeof(p), "self/status") < 0)
		return -ENAMETOOLONG;
	f = fopen(p, "re");
	if (!f)
		return negative_errno();
	while (fgets(line, sizeof(line), f)) {
		unsigned long long eff;

		if (sscanf(line, "CapEff: %llx", &eff) == 1)
			return (eff >> CAP_SYS_MODULE_BIT) & 1;
	}
	return -ENODATA;
}

/* Child side: async-signal-safe calls only (the caller may be threaded). */
static _Noreturn void exec_modprobe(const char *path, const char *module, int errfd)
{
	char *const argv[] = { (char *)"modprobe", (char *)"-b", (char *)"--", (char *)module, NULL };
	char *const envp[] = { (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin", (char *)"LC_ALL=C", NULL };
	int null = open("/dev/null", O_RDWR | O_NOCTTY);

	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(errfd, 2) < 0)
		_exit(126);
	close_range(3, ~0u, 0);
	execve(path, argv, envp);
	_exit(127);
}

/* Trims trailing whitespace and turns newlines into "; " for one-line messages. */
static void one_line(char *s)
{
	size_t len = strlen(s);

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ' || s[len - 1] == '\r'))
		s[--len] = '\0';
	for (char *c = s; *c; c++)
		if (*c == '\n')
			*c = ';';
}

/* Runs modprobe for module with a deadline; its stderr into out. Returns 0
 * on exit status 0, -EIO on another status, -ETIMEDOUT, or -errno. */
static int run_modprobe(const char *path, const char *module, uint64_t timeout_usec,
			char *out, size_t n)
{
	_cleanup_close_ int rd = -EBADF;
	uint64_t end = now_usec() + timeout_usec;
	size_t len = 0;
	int p[2], status;
	pid_t pid;

	out[0] = '\0';
	if (pipe2(p, O_CLOEXEC) < 0)
		return negative_errno();
	pid = fork();
	if (pid < 0) {
		int r = negative_errno();

		close(p[0]);
		close(p[1]);
		return r;
	}
	if (pid == 0)
		exec_modprobe(path, module, p[1]);
	close(p[1]);
	rd = p[0];
	for (;;) {
		uint64_t now = now_usec(), ms;
		struct pollfd pfd = { .fd = rd, .events = POLLIN };
		char buf[256];
		ssize_t k;

		if (now >= end) {
			/* Effective once the kernel call returns; reaped later. */
			kill(pid, SIGKILL);
			if (waitpid(pid, NULL, WNOHANG) != pid)
				host_abandon_child(pid);
			return -ETIMEDOUT;
		}
		ms = (end - now + 999) / 1000;
		if (poll(&pfd, 1, ms > INT32_MAX ? INT32_MAX : (int)ms) < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		if (pfd.revents == 0)
			continue;
		k = read(rd, buf, sizeof(buf));
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;   /* EOF: modprobe closed stderr, i.e. exited */
		for (ssize_t i = 0; i < k && len + 1 < n; i++)
			out[len++] = buf[i];
		out[len] = '\0';
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return negative_errno();
	one_line(out);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	if (!out[0])
		snprintf(out, n, "modprobe %s %s %d", module,
			 WIFEXITED(status) ? "exited with status" : "killed by signal",
			 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return WIFEXITED(status) && WEXITSTATUS(status) == 127 ? -ENOENT : -EIO;
}

int host_driver_ensure(const iovm_host *h, const char *driver, char *ret_why, size_t n)
{
	char why[IOVM_ERROR_MSG_MAX / 2] = "";
	const char *path = NULL;
	int r;

	if (driver_registered(h, driver))
		return 0;
	if (h->modprobe_hook) {
		r = h->modprobe_hook(h->modprobe_hook_data, driver, why, sizeof(why));
	} else if (strcmp(h->sysfs_root, "/sys") != 0) {
		/* A fixture tree: nothing to load into. */
		snprintf(why, sizeof(why), "driver missing (modprobe %s)", driver);
		r = -ENOENT;
		goto out;
	} else if (may_load_modules(h) == 0) {
		snprintf(why, sizeof(why), "driver missing, and this process may not load modules "
			 "(no CAP_SYS_MODULE; iovmd.service loads it before iovmd starts: "
			 "modprobe %s)", driver);
		r = -ENOENT;
		goto out;
	} else {
		for (size_t i = 0; !path && i < ELEMENTSOF(modprobe_paths); i++)
			if (access(modprobe_paths[i], X_OK) == 0)
				path = modprobe_paths[i];
		if (!path) {
			snprintf(why, sizeof(why), "driver missing and no modprobe found "
				 "(modprobe %s)", driver);
			r = -ENOENT;
			goto out;
		}
		r = run_modprobe(path, driver, h->modprobe_timeout_usec, why, sizeof(why));
	}
	if (r == -ETIMEDOUT) {
		snprintf(why, sizeof(why), "%s could not be loaded: modprobe did not return "
			 "within %llus", driver,
			 (unsigned long long)(h->modprobe_timeout_usec / 1000000u));
		goto out;
	}
	if (r < 0) {
		char cause[sizeof(why)];

		snprintf(cause, sizeof(cause), "%s", why[0] ? why : strerror(-r));
		snprintf(why, sizeof(why), "%s could not be loaded: %s", driver, cause);
		goto out;
	}
	/* Module init registers the driver before modprobe returns; -b skips
	 * a blacklisted module and still exits 0. */
	if (!driver_registered(h, driver)) {
		snprintf(why, sizeof(why), "%s could not be loaded: modprobe succeeded but no PCI "
			 "driver %s is registered (blacklisted, or the module's name differs?)",
			 driver, driver);
		r = -ENOENT;
	}
out:
	if (r < 0 && ret_why && n)
		snprintf(ret_why, n, "%s", why);
	return r;
}

void host_modalias_load(const iovm_host *h, const char *addr)
{
	char p[PATH_MAX], alias[256], why[256];

	/* Only on the real sysfs, and only where modprobe may work. */
	if (h->modprobe_hook || strcmp(h->sysfs_root, "/sys") != 0 || may_load_modules(h) != 1)
		return;
	if (pci_dev_attr(h, addr, "modalias", p, sizeof(p)) < 0 || sysfs_read_str(p, alias, sizeof(alias)) < 0 ||
	    !alias[0])
		return;
	for (size_t i = 0; i < ELEMENTSOF(modprobe_paths); i++)
		if (access(modprobe_paths[i], X_OK) == 0) {
			(void)run_modprobe(modprobe_paths[i], alias, h->modprobe_timeout_usec, why, sizeof(why));
			return;
		}
}

