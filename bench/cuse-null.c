/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cuse-null: the floor of any CUSE frontend, for the devfwd benchmark.
 *
 * A CUSE character device set up exactly as devfwd-frontend sets up its own
 * (libfuse3 low level, single-threaded loop, unrestricted ioctls) that
 * forwards nothing: read returns zeros from memory and EVIOCGVERSION answers
 * EV_VERSION through the same retry round that fetches the caller's buffer.
 * A read or ioctl through it costs what CUSE itself costs (the application's
 * system call, the kernel queueing the request, waking this daemon, its
 * reply, waking the application) and nothing devfwd adds. devfwd-bench
 * compares it with the native device and the forwarded one in the same run:
 * if this device is already far from native, no CUSE frontend can be close.
 *
 * usage: cuse-null NAME        creates /dev/NAME; runs until SIGTERM */
#define FUSE_USE_VERSION 31
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/uio.h>
#include <linux/input.h>

#include <cuse_lowlevel.h>

/* The largest read the kernel passes to a CUSE daemon is far below this. */
static const char zeros[1 << 20];

static void null_open(fuse_req_t req, struct fuse_file_info *fi)
{
	fuse_reply_open(req, fi); /* as devfwd-frontend replies, once its backend has */
}

static void null_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)off;
	(void)fi;
	if (size > sizeof(zeros))
		size = sizeof(zeros); /* a short read is always allowed */
	fuse_reply_buf(req, zeros, size);
}

static void null_ioctl(fuse_req_t req, int cmd, void *arg, struct fuse_file_info *fi, unsigned flags,
		       const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	static const int version = EV_VERSION;

	(void)fi;
	(void)in_buf;
	(void)in_bufsz;
	if (flags & FUSE_IOCTL_COMPAT) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if ((unsigned)cmd != EVIOCGVERSION) {
		fuse_reply_err(req, ENOTTY);
		return;
	}
	/* Unrestricted ioctls arrive without buffers; the first round asks the
	 * kernel to fetch the caller's int, as devfwd-frontend does for any
	 * _IOR command. */
	if (out_bufsz < sizeof(version)) {
		struct iovec out = { .iov_base = arg, .iov_len = sizeof(version) };

		fuse_reply_ioctl_retry(req, NULL, 0, &out, 1);
		return;
	}
	fuse_reply_ioctl(req, 0, &version, sizeof(version));
}

static const struct cuse_lowlevel_ops ops = {
	.open = null_open,
	.read = null_read,
	.ioctl = null_ioctl,
};

int main(int argc, char **argv)
{
	char devname[300];
	const char *dev_info[] = { devname };
	struct cuse_info ci = { .dev_info_argc = 1, .dev_info_argv = dev_info, .flags = CUSE_UNRESTRICTED_IOCTL };
	char *fargv[] = { (char *)"cuse-null", (char *)"-f", (char *)"-s", NULL };
	struct fuse_session *se;
	int mt, r;

	if (argc != 2 || !argv[1][0] || strlen(argv[1]) > 200) {
		fputs("usage: cuse-null NAME   (creates /dev/NAME)\n", stderr);
		return 2;
	}
	snprintf(devname, sizeof(devname), "DEVNAME=%s", argv[1]);
	se = cuse_lowlevel_setup(3, fargv, &ci, &ops, &mt, NULL);
	if (!se) {
		fprintf(stderr, "cuse-null: CUSE setup for /dev/%s failed (is the cuse module loaded?)\n", argv[1]);
		return 1;
	}
	r = fuse_session_loop(se);
	cuse_lowlevel_teardown(se);
	return r < 0 ? 1 : 0;
}
