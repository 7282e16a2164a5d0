/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A V4L2 capture client with MMAP streaming buffers, for
 * tests/lab/79-devfwd-camera.py: the same program captures from vivid on
 * the emulated host directly and from the guest through devfwd.ko, so both
 * captures set the device up identically. Results are "key=value" lines.
 *
 *   devfwd-v4l2-capture nomap DEV          REQBUFS 2 MMAP, QUERYBUF 0, mmap it (no window: ENODEV)
 *   devfwd-v4l2-capture refuse DEV         what devfwd refuses: USERPTR, DMABUF, multi-planar,
 *                                          overlay, EXPBUF; prints each errno
 *   devfwd-v4l2-capture stream [--keep] DEV N OUT [REF]
 *       input 0, vivid's OSD text off, YUYV 320x180, 1/60 s per frame,
 *       4 MMAP buffers, N frames dequeued, written one after another to OUT
 *       and, with REF (one frame), compared with it byte for byte. Unless
 *       --keep, each frame's mapping is overwritten after it was read and
 *       before it is queued again, as a consumer reusing its buffer may:
 *       the next frame in that buffer must be the driver's, not those bytes.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/videodev2.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define NBUF 4
#define WIDTH 320
#define HEIGHT 180
/* vivid's "OSD Text Mode" (VIVID_CID_VIVID_BASE + 1), menu item 2 "None":
 * no time or frame counter drawn into the frames */
#define VIVID_CID_OSD_TEXT_MODE (0x00f00000 | 0xf000 | 1)
#define OSD_NONE 2

static int xioctl(int fd, unsigned long cmd, void *arg)
{
	int r;

	do
		r = ioctl(fd, cmd, arg);
	while (r < 0 && errno == EINTR);
	return r;
}

static void die(const char *what)
{
	printf("error=%s: %s\n", what, strerror(errno));
	exit(1);
}

static int open_dev(const char *dev)
{
	int fd = open(dev, O_RDWR);

	if (fd < 0)
		die("open");
	return fd;
}

/* One fixed setup, so the host's capture and the guest's see the same frames. */
static void setup(int fd, struct v4l2_format *ret_fmt)
{
	struct v4l2_capability cap = {};
	struct v4l2_control osd = { .id = VIVID_CID_OSD_TEXT_MODE, .value = OSD_NONE };
	struct v4l2_streamparm parm = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	struct v4l2_fmtdesc fd0 = { .index = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	struct v4l2_input in = { .index = 0 };
	int input = 0;

	if (xioctl(fd, VIDIOC_QUERYCAP, &cap) < 0)
		die("VIDIOC_QUERYCAP");
	printf("driver=%s card=%s caps=0x%08x\n", (char *)cap.driver, (char *)cap.card, cap.device_caps);
	if (!(cap.device_caps & V4L2_CAP_VIDEO_CAPTURE) || !(cap.device_caps & V4L2_CAP_STREAMING)) {
		errno = ENODEV;
		die("not a streaming capture device");
	}
	if (xioctl(fd, VIDIOC_ENUMINPUT, &in) < 0)
		die("VIDIOC_ENUMINPUT");
	if (xioctl(fd, VIDIOC_S_INPUT, &input) < 0)
		die("VIDIOC_S_INPUT");
	input = -1;
	if (xioctl(fd, VIDIOC_G_INPUT, &input) < 0)
		die("VIDIOC_G_INPUT");
	printf("input=%d %s\n", input, (char *)in.name);
	if (xioctl(fd, VIDIOC_ENUM_FMT, &fd0) < 0)
		die("VIDIOC_ENUM_FMT");
	printf("fmt0=%.4s %s\n", (char *)&fd0.pixelformat, (char *)fd0.description);
	if (xioctl(fd, VIDIOC_S_CTRL, &osd) < 0)
		die("VIDIOC_S_CTRL OSD Text Mode");
	*ret_fmt = (struct v4l2_format){ .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	ret_fmt->fmt.pix.width = WIDTH;
	ret_fmt->fmt.pix.height = HEIGHT;
	ret_fmt->fmt.pix.pixelformat = V4L2_PIX_FMT_YUYV;
	ret_fmt->fmt.pix.field = V4L2_FIELD_NONE;
	if (xioctl(fd, VIDIOC_S_FMT, ret_fmt) < 0)
		die("VIDIOC_S_FMT");
	if (xioctl(fd, VIDIOC_G_FMT, ret_fmt) < 0)
		die("VIDIOC_G_FMT");
	printf("format=%.4s %ux%u bytesperline=%u sizeimage=%u\n", (char *)&ret_fmt->fmt.pix.pixelformat,
	       ret_fmt->fmt.pix.width, ret_fmt->fmt.pix.height, ret_fmt->fmt.pix.bytesperline,
	       ret_fmt->fmt.pix.sizeimage);
	parm.parm.capture.timeperframe = (struct v4l2_fract){ 1, 60 };
	if (xioctl(fd, VIDIOC_S_PARM, &parm) < 0)
		die("VIDIOC_S_PARM");
	printf("timeperframe=%u/%u\n", parm.parm.capture.timeperframe.numerator,
	       parm.parm.capture.timeperframe.denominator);
}

static int reqbufs(int fd, unsigned count)
{
	struct v4l2_requestbuffers rb = { .count = count, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE,
					  .memory = V4L2_MEMORY_MMAP };

	if (xioctl(fd, VIDIOC_REQBUFS, &rb) < 0)
		return -1;
	return (int)rb.count;
}

static int nomap(const char *dev)
{
	int fd = open_dev(dev), n = reqbufs(fd, 2);
	struct v4l2_buffer b = { .index = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP };
	void *p;

	printf("reqbufs=%d%s%s\n", n, n < 0 ? " errno=" : "", n < 0 ? strerror(errno) : "");
	if (n <= 0)
		return 1;
	if (xioctl(fd, VIDIOC_QUERYBUF, &b) < 0)
		die("VIDIOC_QUERYBUF");
	printf("querybuf=0 offset=0x%x length=%u\n", b.m.offset, b.length);
	p = mmap(NULL, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, b.m.offset);
	if (p == MAP_FAILED)
		printf("mmap=-1 errno=%s\n", strerror(errno));
	else {
		printf("mmap=ok\n");
		munmap(p, b.length);
	}
	printf("reqbufs0=%d\n", reqbufs(fd, 0));
	close(fd);
	return 0;
}

static void report(const char *what, int r)
{
	printf("%s=%d%s%s\n", what, r, r < 0 ? " errno=" : "", r < 0 ? strerror(errno) : "");
}

/* Each would hand the host kernel a guest address or a descriptor. */
static int refuse(const char *dev)
{
	int fd = open_dev(dev);
	struct v4l2_requestbuffers rb = { .count = 2, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	struct v4l2_buffer b = { .index = 0, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	struct v4l2_format f = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE };
	struct v4l2_exportbuffer e = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	static char user[WIDTH * HEIGHT * 2];

	rb.memory = V4L2_MEMORY_USERPTR;
	report("reqbufs_userptr", xioctl(fd, VIDIOC_REQBUFS, &rb));
	rb.memory = V4L2_MEMORY_DMABUF;
	report("reqbufs_dmabuf", xioctl(fd, VIDIOC_REQBUFS, &rb));
	b.memory = V4L2_MEMORY_USERPTR;
	b.m.userptr = (unsigned long)user;
	b.length = sizeof(user);
	report("qbuf_userptr", xioctl(fd, VIDIOC_QBUF, &b));
	rb.memory = V4L2_MEMORY_MMAP;
	rb.type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
	report("reqbufs_mplane", xioctl(fd, VIDIOC_REQBUFS, &rb));
	report("g_fmt_mplane", xioctl(fd, VIDIOC_G_FMT, &f));
	f.type = V4L2_BUF_TYPE_VIDEO_OVERLAY;
	report("s_fmt_overlay", xioctl(fd, VIDIOC_S_FMT, &f));
	report("expbuf", xioctl(fd, VIDIOC_EXPBUF, &e));
	f.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
	report("g_fmt", xioctl(fd, VIDIOC_G_FMT, &f));
	close(fd);
	return 0;
}

static uint64_t fnv1a(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (n--)
		h = (h ^ *p++) * 0x100000001b3ULL;
	return h;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint8_t *read_ref(const char *path, size_t size)
{
	uint8_t *ref = malloc(size);
	FILE *f = fopen(path, "rb");

	if (!ref || !f)
		die("reference frame");
	if (fread(ref, 1, size, f) != size) {
		errno = EINVAL;
		die("reference frame shorter than one frame");
	}
	fclose(f);
	return ref;
}

static int stream(const char *dev, int nframes, const char *out, const char *refpath, int keep)
{
	int fd = open_dev(dev), n, same = 0, type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
	struct v4l2_format fmt;
	struct { void *p; size_t len; } buf[NBUF];
	uint8_t *ref = NULL;
	double t0 = 0, t1 = 0;
	FILE *o;

	setup(fd, &fmt);
	if (refpath)
		ref = read_ref(refpath, fmt.fmt.pix.sizeimage);
	n = reqbufs(fd, NBUF);
	if (n < 2)
		die("VIDIOC_REQBUFS");
	for (int i = 0; i < n; i++) {
		struct v4l2_buffer b = { .index = i, .type = type, .memory = V4L2_MEMORY_MMAP };

		if (xioctl(fd, VIDIOC_QUERYBUF, &b) < 0)
			die("VIDIOC_QUERYBUF");
		buf[i].len = b.length;
		buf[i].p = mmap(NULL, b.length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, b.m.offset);
		if (buf[i].p == MAP_FAILED)
			die("mmap");
		if (xioctl(fd, VIDIOC_QBUF, &b) < 0)
			die("VIDIOC_QBUF");
	}
	printf("buffers=%d length=%zu\n", n, buf[0].len);
	o = fopen(out, "wb");
	if (!o)
		die("output file");
	if (xioctl(fd, VIDIOC_STREAMON, &type) < 0)
		die("VIDIOC_STREAMON");
	for (int k = 0; k < nframes; k++) {
		struct v4l2_buffer b = { .type = type, .memory = V4L2_MEMORY_MMAP };
		const uint8_t *p;

		if (xioctl(fd, VIDIOC_DQBUF, &b) < 0)
			die("VIDIOC_DQBUF");
		if (k == 0)
			t0 = now();
		t1 = now();
		p = buf[b.index].p;
		if (b.bytesused != fmt.fmt.pix.sizeimage || (b.flags & V4L2_BUF_FLAG_ERROR)) {
			printf("frame=%d index=%u bytesused=%u flags=0x%x: not a whole frame\n", k, b.index, b.bytesused,
			       b.flags);
			return 1;
		}
		if (fwrite(p, 1, b.bytesused, o) != b.bytesused)
			die("write");
		printf("frame=%d index=%u seq=%u fnv=%016llx", k, b.index, b.sequence,
		       (unsigned long long)fnv1a(p, b.bytesused));
		if (ref) {
			size_t d = 0, first = 0;

			for (size_t i = 0; i < b.bytesused; i++)
				if (p[i] != ref[i] && d++ == 0)
					first = i;
			if (d)
				printf(" differs=%zu first_at=%zu got=0x%02x want=0x%02x", d, first, p[first], ref[first]);
			else
				same++;
		}
		printf("\n");
		/* what a consumer may leave in a buffer it hands back */
		if (!keep)
			memset(buf[b.index].p, 0xa5, buf[b.index].len);
		if (xioctl(fd, VIDIOC_QBUF, &b) < 0)
			die("VIDIOC_QBUF");
	}
	if (xioctl(fd, VIDIOC_STREAMOFF, &type) < 0)
		die("VIDIOC_STREAMOFF");
	fclose(o);
	for (int i = 0; i < n; i++)
		munmap(buf[i].p, buf[i].len);
	printf("reqbufs0=%d\n", reqbufs(fd, 0));
	if (ref)
		printf("identical=%d/%d\n", same, nframes);
	if (nframes > 1 && t1 > t0)
		printf("fps=%.1f\n", (nframes - 1) / (t1 - t0));
	close(fd);
	free(ref);
	return 0;
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 3 && !strcmp(argv[1], "nomap"))
		return nomap(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "refuse"))
		return refuse(argv[2]);
	if (argc > 2 && !strcmp(argv[1], "stream")) {
		int keep = !strcmp(argv[2], "--keep");

		argc -= keep;
		argv += keep;
		if ((argc == 5 || argc == 6) && atoi(argv[3]) > 0)
			return stream(argv[2], atoi(argv[3]), argv[4], argc == 6 ? argv[5] : NULL, keep);
	}
	fprintf(stderr, "usage: %s nomap DEV | refuse DEV | stream [--keep] DEV N OUT [REF]\n", argv[0]);
	return 2;
}
