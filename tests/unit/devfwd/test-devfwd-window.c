/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The backend worker's side of the shared window: device ranges mirrored
 * into window pages, bounds and overlap refusals, and the copies at the
 * coherence points. A regular file stands in for the device (mmap(2) works
 * the same on both), another for the guest's window. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>
#include <linux/videodev2.h>

#include "devfwd/devfwd.h"

#define PG 4096

static int tmpfile_of(size_t size, int fill)
{
	char path[] = "/tmp/devfwd-window-XXXXXX";
	int fd = mkstemp(path);
	char *buf = malloc(size);

	assert_true(fd >= 0);
	unlink(path);
	memset(buf, fill, size);
	assert_int_equal(write(fd, buf, size), (ssize_t)size);
	free(buf);
	return fd;
}

static void test_map_bounds(void **state)
{
	int win = tmpfile_of(4 * PG, 0), dev = tmpfile_of(2 * PG, 0x5a);
	struct devfwd_window w;
	struct devfwd_mmap_req rq = { .offset = 0, .win_off = PG, .len = 2 * PG,
				      .prot = DEVFWD_PROT_READ | DEVFWD_PROT_WRITE };

	assert_int_equal(devfwd_window_init(&w, win), 0);
	assert_int_equal(w.size, 4 * PG);
	assert_int_equal(devfwd_window_map(&w, 1, dev, &rq), 0);
	/* the device's contents are in the window at once, nowhere else */
	assert_int_equal(w.base[PG], 0x5a);
	assert_int_equal(w.base[3 * PG - 1], 0x5a);
	assert_int_equal(w.base[PG - 1], 0);
	assert_int_equal(w.base[3 * PG], 0);

	/* overlapping another mapping of the stream, or past the window */
	rq.win_off = 2 * PG;
	assert_int_equal(devfwd_window_map(&w, 2, dev, &rq), -EBUSY);
	rq.win_off = 3 * PG;
	assert_int_equal(devfwd_window_map(&w, 2, dev, &rq), -ERANGE);
	rq.win_off = 4 * PG;
	assert_int_equal(devfwd_window_map(&w, 2, dev, &rq), -ERANGE);
	/* the free page before it is fine */
	rq.win_off = 0;
	rq.len = PG;
	assert_int_equal(devfwd_window_map(&w, 2, dev, &rq), 0);
	assert_int_equal(w.nmap, 2);

	assert_int_equal(devfwd_window_unmap(&w, 1, 0), -ENOENT); /* fh 2's map */
	assert_int_equal(devfwd_window_unmap(&w, 2, 0), 0);
	devfwd_window_release(&w, 1);
	assert_int_equal(w.nmap, 0);
	devfwd_window_done(&w);
	close(win);
	close(dev);
}

static void test_sync(void **state)
{
	int win = tmpfile_of(4 * PG, 0), dev = tmpfile_of(2 * PG, 0x11);
	struct devfwd_window w;
	struct devfwd_mmap_req rw = { .offset = 0, .win_off = 0, .len = PG,
				      .prot = DEVFWD_PROT_READ | DEVFWD_PROT_WRITE };
	struct devfwd_mmap_req ro = { .offset = PG, .win_off = 2 * PG, .len = PG, .prot = DEVFWD_PROT_READ };
	unsigned char c;

	assert_int_equal(devfwd_window_init(&w, win), 0);
	assert_int_equal(devfwd_window_map(&w, 1, dev, &rw), 0);
	assert_int_equal(devfwd_window_map(&w, 1, dev, &ro), 0);
	/* the guest writes both; only the writable mapping reaches the device */
	memset(w.base, 0x22, PG);
	memset(w.base + 2 * PG, 0x33, PG);
	assert_int_equal(devfwd_window_sync(&w, 2, true), 0); /* another file: nothing moves */
	assert_int_equal(pread(dev, &c, 1, 0), 1);
	assert_int_equal(c, 0x11);
	assert_int_equal(devfwd_window_sync(&w, 1, true), 0);
	assert_int_equal(pread(dev, &c, 1, 0), 1);
	assert_int_equal(c, 0x22);
	assert_int_equal(pread(dev, &c, 1, PG), 1);
	assert_int_equal(c, 0x11);
	/* the device changes; after the ioctl the window follows */
	c = 0x44;
	assert_int_equal(pwrite(dev, &c, 1, PG + 7), 1);
	assert_int_equal(devfwd_window_sync(&w, 1, false), 0);
	assert_int_equal(w.base[2 * PG + 7], 0x44);
	assert_int_equal(w.base[2 * PG], 0x11); /* the guest's stray write is undone */
	devfwd_window_done(&w);
	close(win);
	close(dev);
}

/* V4L2 mappings: a buffer belongs to the driver between QBUF and DQBUF, so
 * only the buffer an ioctl hands over is copied (a captured frame after
 * DQBUF, an output frame before QBUF), and nothing at the other points
 * whatever the guest wrote into its pages. Two 2-page buffers at device
 * offsets 0 and 2 pages, mapped separately, both writable. */
static void test_v4l2_handover(void **state)
{
	int win = tmpfile_of(8 * PG, 0), dev = tmpfile_of(4 * PG, 0x11);
	struct devfwd_window w;
	struct devfwd_mmap_req b0 = { .offset = 0, .win_off = 0, .len = 2 * PG,
				      .prot = DEVFWD_PROT_READ | DEVFWD_PROT_WRITE };
	struct devfwd_mmap_req b1 = { .offset = 2 * PG, .win_off = 4 * PG, .len = 2 * PG,
				      .prot = DEVFWD_PROT_READ | DEVFWD_PROT_WRITE };
	struct v4l2_buffer vb = { .index = 1, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP,
				  .m.offset = 2 * PG, .length = 2 * PG };
	unsigned char c;

	assert_int_equal(devfwd_window_init(&w, win), 0);
	assert_int_equal(devfwd_window_map(&w, 1, dev, &b0), 0);
	assert_int_equal(devfwd_window_map(&w, 1, dev, &b1), 0);
	/* a regular file stands in for the device: give the maps its class */
	w.map[0].cls = w.map[1].cls = DEVFWD_WCLASS_V4L2;
	/* the guest scribbles over both of its copies, then queues buffer 1:
	 * nothing reaches the device (the driver may be filling it) */
	memset(w.base, 0x22, 2 * PG);
	memset(w.base + 4 * PG, 0x22, 2 * PG);
	assert_int_equal(devfwd_window_ioctl(&w, 1, VIDIOC_QBUF, (uint8_t *)&vb, sizeof(vb), false, 0), 0);
	assert_int_equal(devfwd_window_ioctl(&w, 1, VIDIOC_QBUF, (uint8_t *)&vb, sizeof(vb), true, 0), 0);
	assert_int_equal(pread(dev, &c, 1, 2 * PG), 1);
	assert_int_equal(c, 0x11);
	/* the driver fills buffer 1 (and 0); DQBUF hands 1 over: only 1 is copied */
	assert_int_equal(pwrite(dev, "\x55\x55", 2, 2 * PG + PG - 1), 2);
	assert_int_equal(pwrite(dev, "\x66", 1, 0), 1);
	assert_int_equal(devfwd_window_ioctl(&w, 1, VIDIOC_DQBUF, (uint8_t *)&vb, sizeof(vb), false, 0), 0);
	assert_int_equal(w.base[4 * PG], 0x22);
	/* a failed DQBUF (EAGAIN) hands nothing over */
	assert_int_equal(devfwd_window_ioctl(&w, 1, VIDIOC_DQBUF, (uint8_t *)&vb, sizeof(vb), true, -EAGAIN), 0);
	assert_int_equal(w.base[4 * PG], 0x22);
	assert_int_equal(devfwd_window_ioctl(&w, 1, VIDIOC_DQBUF, (uint8_t *)&vb, sizeof(vb), true, 0), 0);
	assert_int_equal(w.base[4 * PG], 0x11);
	assert_int_equal(w.base[4 * PG + PG - 1], 0x55);
	assert_int_equal(w.base[4 * PG + PG], 0x55);
	assert_int_equal(w.base[0], 0x22); /* buffer 0 is still the driver's */
	/* another ioctl (STREAMOFF, a scalar here) copies nothing either way */
	assert_int_equal(devfwd_window_ioctl(&w, 1, VIDIOC_STREAMOFF, NULL, 0, false, 0), 0);
	assert_int_equal(devfwd_window_ioctl(&w, 1, VIDIOC_STREAMOFF, NULL, 0, true, 0), 0);
	assert_int_equal(w.base[0], 0x22);
	assert_int_equal(pread(dev, &c, 1, 0), 1);
	assert_int_equal(c, 0x66);
	/* an output buffer goes window -> device before its QBUF, and not after DQBUF */
	vb.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
	vb.m.offset = 0;
	assert_int_equal(devfwd_window_ioctl(&w, 1, VIDIOC_QBUF, (uint8_t *)&vb, sizeof(vb), false, 0), 0);
	assert_int_equal(pread(dev, &c, 1, 0), 1);
	assert_int_equal(c, 0x22);
	assert_int_equal(pwrite(dev, "\x77", 1, 0), 1);
	assert_int_equal(devfwd_window_ioctl(&w, 1, VIDIOC_DQBUF, (uint8_t *)&vb, sizeof(vb), true, 0), 0);
	assert_int_equal(w.base[0], 0x22);
	/* a buffer nobody mapped, and another file's ioctl: nothing */
	vb.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
	vb.m.offset = 16 * PG;
	assert_int_equal(devfwd_window_ioctl(&w, 1, VIDIOC_DQBUF, (uint8_t *)&vb, sizeof(vb), true, 0), 0);
	vb.m.offset = 0;
	assert_int_equal(devfwd_window_ioctl(&w, 2, VIDIOC_DQBUF, (uint8_t *)&vb, sizeof(vb), true, 0), 0);
	assert_int_equal(w.base[0], 0x22);
	devfwd_window_done(&w);
	close(win);
	close(dev);
}

/* Device memory that faults (SIGBUS: a file mapped past its end) fails the
 * copy with -EFAULT instead of ending the worker: at MMAP, nothing is
 * mapped; at a coherence point, the mapping whose device shrank. */
static void test_device_faults(void **state)
{
	int win = tmpfile_of(4 * PG, 0), dev = tmpfile_of(2 * PG, 0x11);
	struct devfwd_window w;
	struct devfwd_mmap_req past = { .offset = 4 * PG, .win_off = 0, .len = PG, .prot = DEVFWD_PROT_READ };
	struct devfwd_mmap_req ok = { .offset = PG, .win_off = PG, .len = PG,
				      .prot = DEVFWD_PROT_READ | DEVFWD_PROT_WRITE };

	assert_int_equal(devfwd_window_guard(), 0);
	assert_int_equal(devfwd_window_init(&w, win), 0);
	assert_int_equal(devfwd_window_map(&w, 1, dev, &past), -EFAULT);
	assert_int_equal(w.nmap, 0);
	assert_int_equal(devfwd_window_map(&w, 1, dev, &ok), 0);
	assert_int_equal(w.base[PG], 0x11);
	/* the device loses the page behind the mapping */
	assert_int_equal(ftruncate(dev, PG), 0);
	assert_int_equal(devfwd_window_sync(&w, 1, true), -EFAULT);
	assert_int_equal(devfwd_window_sync(&w, 1, false), -EFAULT);
	/* the worker goes on: a map of what the device still has works */
	past.offset = 0;
	past.win_off = 2 * PG;
	assert_int_equal(devfwd_window_map(&w, 2, dev, &past), 0);
	assert_int_equal(w.base[2 * PG], 0x11);
	devfwd_window_done(&w);
	close(win);
	close(dev);
}

static void test_no_window(void **state)
{
	int dev = tmpfile_of(PG, 0), odd = tmpfile_of(PG + 1, 0);
	struct devfwd_window w;
	struct devfwd_mmap_req rq = { .len = PG, .prot = DEVFWD_PROT_READ };

	assert_int_equal(devfwd_window_init(&w, -1), 0);
	assert_int_equal(devfwd_window_map(&w, 1, dev, &rq), -ENODEV);
	devfwd_window_done(&w);
	/* a window file that is not a whole number of pages is refused */
	assert_int_equal(devfwd_window_init(&w, odd), -EINVAL);
	close(dev);
	close(odd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_bounds),
		cmocka_unit_test(test_sync),
		cmocka_unit_test(test_v4l2_handover),
		cmocka_unit_test(test_device_faults),
		cmocka_unit_test(test_no_window),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
