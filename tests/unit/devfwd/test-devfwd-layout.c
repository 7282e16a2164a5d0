/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ioctl argument layout: _IOC default, per-class descriptions, nested ALSA
 * buffers and the per-file frame size learnt from HW_PARAMS, V4L2's MMAP
 * streaming (what is refused, and its coherence points). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/input.h>
#include <linux/videodev2.h>
#include <sound/asound.h>

#include "devfwd/devfwd.h"

static void test_ioc_default(void **state)
{
	struct devfwd_ioctl_seg s;
	bool nested;

	/* EVIOCGNAME(64) is _IOC(READ, 'E', 0x06, 64): 64 bytes out. */
	assert_int_equal(devfwd_layout_root(EVIOCGNAME(64), &s, &nested), 1);
	assert_int_equal(s.len, 64);
	assert_int_equal(s.dir, DEVFWD_SEG_OUT);
	assert_int_equal(s.parent, DEVFWD_SEG_ROOT);
	assert_false(nested);
	/* EVIOCGBIT(EV_KEY, 96): size from the encoding too. */
	assert_int_equal(devfwd_layout_root(EVIOCGBIT(EV_KEY, 96), &s, &nested), 1);
	assert_int_equal(s.len, 96);
	/* _IOW: in only; _IOWR: both. */
	assert_int_equal(devfwd_layout_root(EVIOCSCLOCKID, &s, &nested), 1);
	assert_int_equal(s.dir, DEVFWD_SEG_IN);
	assert_int_equal(s.len, sizeof(int));
	assert_int_equal(devfwd_layout_root(SNDRV_PCM_IOCTL_HW_PARAMS, &s, &nested), 1);
	assert_int_equal(s.dir, DEVFWD_SEG_IN | DEVFWD_SEG_OUT);
	assert_int_equal(s.len, sizeof(struct snd_pcm_hw_params));
	/* _IOC_NONE: scalar. */
	assert_int_equal(devfwd_layout_root(SNDRV_PCM_IOCTL_PREPARE, &s, &nested), 0);
	assert_int_equal(devfwd_layout_root(0x5401 /* TCGETS, legacy */, &s, &nested), 0);
	assert_null(devfwd_layout_name(EVIOCGNAME(64)));
}

static void test_described(void **state)
{
	struct devfwd_ioctl_seg s;
	bool nested;

	/* TUNSETIFF claims an int but moves a struct ifreq both ways. */
	assert_int_equal(_IOC_SIZE(TUNSETIFF), sizeof(int));
	assert_int_equal(devfwd_layout_root(TUNSETIFF, &s, &nested), 1);
	assert_int_equal(s.len, sizeof(struct ifreq));
	assert_int_equal(s.dir, DEVFWD_SEG_IN | DEVFWD_SEG_OUT);
	assert_string_equal(devfwd_layout_name(TUNSETIFF), "TUNSETIFF");
	/* EVIOCGRAB says _IOW(int) but evdev reads the argument as a value. */
	assert_int_equal(devfwd_layout_root(EVIOCGRAB, &s, &nested), 0);
	assert_int_equal(devfwd_layout_root(TUNSETPERSIST, &s, &nested), 0);
	/* WRITEI_FRAMES: xferi in and out (result), with a nested buffer. */
	assert_int_equal(devfwd_layout_root(SNDRV_PCM_IOCTL_WRITEI_FRAMES, &s, &nested), 1);
	assert_true(nested);
	assert_int_equal(s.len, sizeof(struct snd_xferi));
	assert_int_equal(s.dir, DEVFWD_SEG_IN | DEVFWD_SEG_OUT);
	/* CHANNEL_INFO says _IOR, but the kernel reads the channel number. */
	assert_int_equal(_IOC_DIR(SNDRV_PCM_IOCTL_CHANNEL_INFO), _IOC_READ);
	assert_int_equal(devfwd_layout_root(SNDRV_PCM_IOCTL_CHANNEL_INFO, &s, &nested), 1);
	assert_false(nested);
	assert_int_equal(s.len, sizeof(struct snd_pcm_channel_info));
	assert_int_equal(s.dir, DEVFWD_SEG_IN | DEVFWD_SEG_OUT);
}

static void set_frame_bits(struct snd_pcm_hw_params *p, unsigned bits)
{
	struct snd_interval *iv = &p->intervals[SNDRV_PCM_HW_PARAM_FRAME_BITS - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL];

	iv->min = iv->max = bits;
}

static void test_alsa_nested(void **state)
{
	struct devfwd_file_state st = {};
	struct snd_pcm_hw_params hw = {};
	struct devfwd_ioctl_seg seg[DEVFWD_MAX_SEGS] = {};
	uint64_t ptr[DEVFWD_MAX_SEGS] = {};
	int16_t samples[2 * 100];
	struct snd_xferi x = { .buf = samples, .frames = 100 };
	bool nested;

	assert_int_equal(devfwd_layout_root(SNDRV_PCM_IOCTL_WRITEI_FRAMES, &seg[0], &nested), 1);
	ptr[0] = 0xfeed;
	/* Before HW_PARAMS the frame size is unknown: no nested segment. */
	assert_int_equal(devfwd_layout_nested(SNDRV_PCM_IOCTL_WRITEI_FRAMES, &st, (uint8_t *)&x, sizeof(x), seg, ptr), 1);

	/* S16_LE stereo: 32 frame bits. An unfixed interval teaches nothing. */
	set_frame_bits(&hw, 32);
	hw.intervals[SNDRV_PCM_HW_PARAM_FRAME_BITS - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL].max = 64;
	devfwd_layout_update(SNDRV_PCM_IOCTL_HW_PARAMS, &st, (uint8_t *)&hw, sizeof(hw));
	assert_int_equal(st.frame_bytes, 0);
	set_frame_bits(&hw, 32);
	devfwd_layout_update(SNDRV_PCM_IOCTL_HW_PARAMS, &st, (uint8_t *)&hw, sizeof(hw));
	assert_int_equal(st.frame_bytes, 4);

	assert_int_equal(devfwd_layout_nested(SNDRV_PCM_IOCTL_WRITEI_FRAMES, &st, (uint8_t *)&x, sizeof(x), seg, ptr), 2);
	assert_int_equal(seg[1].len, 400);
	assert_int_equal(seg[1].parent, 0);
	assert_int_equal(seg[1].ptr_off, offsetof(struct snd_xferi, buf));
	assert_int_equal(seg[1].dir, DEVFWD_SEG_IN);
	assert_int_equal(ptr[1], (uint64_t)(uintptr_t)samples);
	assert_int_equal(ptr[0], 0xfeed); /* the caller's root pointer is left alone */
	assert_int_equal(devfwd_segs_check(seg, 2, NULL, NULL), 0);

	/* READI moves samples out. */
	assert_int_equal(devfwd_layout_nested(SNDRV_PCM_IOCTL_READI_FRAMES, &st, (uint8_t *)&x, sizeof(x), seg, ptr), 2);
	assert_int_equal(seg[1].dir, DEVFWD_SEG_OUT);

	/* A frame count that would overflow the message limit is refused. */
	x.frames = (DEVFWD_MAX_IO / 4) + 1;
	assert_int_equal(devfwd_layout_nested(SNDRV_PCM_IOCTL_WRITEI_FRAMES, &st, (uint8_t *)&x, sizeof(x), seg, ptr),
			 -E2BIG);
	/* Zero frames: nothing to move. */
	x.frames = 0;
	assert_int_equal(devfwd_layout_nested(SNDRV_PCM_IOCTL_WRITEI_FRAMES, &st, (uint8_t *)&x, sizeof(x), seg, ptr), 1);
	/* Wrong root size. */
	assert_int_equal(devfwd_layout_nested(SNDRV_PCM_IOCTL_WRITEI_FRAMES, &st, (uint8_t *)&x, 8, seg, ptr), -EINVAL);

	/* scrub clears the guest pointer; HW_FREE forgets the frame size. */
	x.frames = 100;
	devfwd_layout_scrub(SNDRV_PCM_IOCTL_WRITEI_FRAMES, (uint8_t *)&x, sizeof(x));
	assert_null(x.buf);
	assert_int_equal(x.frames, 100);
	devfwd_layout_update(SNDRV_PCM_IOCTL_HW_FREE, &st, NULL, 0);
	assert_int_equal(st.frame_bytes, 0);
}

/* V4L2: what a capture client needs follows the _IOC encoding; buffers and
 * formats are read before they are sent, and refused unless they are
 * single-planar MMAP buffers (m.offset is an offset, no pointer). */
static void test_v4l2(void **state)
{
	struct devfwd_ioctl_seg seg[DEVFWD_MAX_SEGS] = {};
	uint64_t ptr[DEVFWD_MAX_SEGS] = {};
	struct devfwd_file_state st = {};
	struct v4l2_buffer b = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP };
	struct v4l2_requestbuffers rb = { .count = 4, .type = V4L2_BUF_TYPE_VIDEO_CAPTURE, .memory = V4L2_MEMORY_MMAP };
	struct v4l2_create_buffers cb = { .count = 1, .memory = V4L2_MEMORY_MMAP,
					  .format.type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	struct v4l2_format f = { .type = V4L2_BUF_TYPE_VIDEO_CAPTURE };
	const uint32_t plain[][3] = { /* cmd, dir, len: the _IOC default */
		{ VIDIOC_QUERYCAP, DEVFWD_SEG_OUT, sizeof(struct v4l2_capability) },
		{ VIDIOC_ENUM_FMT, DEVFWD_SEG_IN | DEVFWD_SEG_OUT, sizeof(struct v4l2_fmtdesc) },
		{ VIDIOC_G_PARM, DEVFWD_SEG_IN | DEVFWD_SEG_OUT, sizeof(struct v4l2_streamparm) },
		{ VIDIOC_S_PARM, DEVFWD_SEG_IN | DEVFWD_SEG_OUT, sizeof(struct v4l2_streamparm) },
		{ VIDIOC_ENUMINPUT, DEVFWD_SEG_IN | DEVFWD_SEG_OUT, sizeof(struct v4l2_input) },
		{ VIDIOC_G_INPUT, DEVFWD_SEG_OUT, sizeof(int) },
		{ VIDIOC_S_INPUT, DEVFWD_SEG_IN | DEVFWD_SEG_OUT, sizeof(int) },
		{ VIDIOC_QUERYCTRL, DEVFWD_SEG_IN | DEVFWD_SEG_OUT, sizeof(struct v4l2_queryctrl) },
		{ VIDIOC_S_CTRL, DEVFWD_SEG_IN | DEVFWD_SEG_OUT, sizeof(struct v4l2_control) },
		{ VIDIOC_STREAMON, DEVFWD_SEG_IN, sizeof(int) },
		{ VIDIOC_STREAMOFF, DEVFWD_SEG_IN, sizeof(int) },
	};
	const uint32_t checked[] = { VIDIOC_REQBUFS, VIDIOC_CREATE_BUFS, VIDIOC_QUERYBUF, VIDIOC_QBUF, VIDIOC_DQBUF,
				     VIDIOC_PREPARE_BUF, VIDIOC_G_FMT, VIDIOC_S_FMT, VIDIOC_TRY_FMT };
	uint64_t off;
	uint32_t len;
	bool nested;

	for (size_t i = 0; i < sizeof(plain) / sizeof(plain[0]); i++) {
		assert_int_equal(devfwd_layout_root(plain[i][0], &seg[0], &nested), 1);
		assert_int_equal(seg[0].dir, plain[i][1]);
		assert_int_equal(seg[0].len, plain[i][2]);
		assert_false(nested);
	}
	for (size_t i = 0; i < sizeof(checked) / sizeof(checked[0]); i++) {
		assert_int_equal(devfwd_layout_root(checked[i], &seg[0], &nested), 1);
		assert_int_equal(seg[0].dir, DEVFWD_SEG_IN | DEVFWD_SEG_OUT);
		assert_int_equal(seg[0].len, _IOC_SIZE(checked[i]));
		assert_true(nested); /* read before it is sent, to be checked */
		assert_non_null(devfwd_layout_name(checked[i]));
	}
	/* fds of the worker's, and control arrays whose elements point further */
	assert_int_equal(devfwd_layout_root(VIDIOC_EXPBUF, &seg[0], &nested), -ENOTTY);
	assert_int_equal(devfwd_layout_root(VIDIOC_S_EXT_CTRLS, &seg[0], &nested), -ENOTTY);
	assert_int_equal(devfwd_layout_root(VIDIOC_G_EXT_CTRLS, &seg[0], &nested), -ENOTTY);

	/* single-planar MMAP: one segment, nothing nested */
	assert_int_equal(devfwd_layout_root(VIDIOC_QBUF, &seg[0], &nested), 1);
	assert_int_equal(devfwd_layout_nested(VIDIOC_QBUF, &st, (uint8_t *)&b, sizeof(b), seg, ptr), 1);
	assert_null(devfwd_layout_refusal(VIDIOC_QBUF, (uint8_t *)&b, sizeof(b)));
	assert_int_equal(devfwd_layout_nested(VIDIOC_REQBUFS, &st, (uint8_t *)&rb, sizeof(rb), seg, ptr), 1);
	assert_int_equal(devfwd_layout_nested(VIDIOC_CREATE_BUFS, &st, (uint8_t *)&cb, sizeof(cb), seg, ptr), 1);
	assert_int_equal(devfwd_layout_nested(VIDIOC_S_FMT, &st, (uint8_t *)&f, sizeof(f), seg, ptr), 1);
	/* USERPTR (a guest address) and DMABUF (an fd): EINVAL, on QBUF, DQBUF, REQBUFS, CREATE_BUFS */
	b.memory = V4L2_MEMORY_USERPTR;
	assert_int_equal(devfwd_layout_nested(VIDIOC_QBUF, &st, (uint8_t *)&b, sizeof(b), seg, ptr), -EINVAL);
	assert_string_equal(devfwd_layout_refusal(VIDIOC_QBUF, (uint8_t *)&b, sizeof(b)),
			    "V4L2 USERPTR and DMABUF buffers are not forwarded (MMAP only)");
	b.memory = V4L2_MEMORY_DMABUF;
	assert_int_equal(devfwd_layout_nested(VIDIOC_DQBUF, &st, (uint8_t *)&b, sizeof(b), seg, ptr), -EINVAL);
	/* QUERYBUF's memory is filled in by the kernel: only the type counts */
	assert_int_equal(devfwd_layout_nested(VIDIOC_QUERYBUF, &st, (uint8_t *)&b, sizeof(b), seg, ptr), 1);
	rb.memory = V4L2_MEMORY_USERPTR;
	assert_int_equal(devfwd_layout_nested(VIDIOC_REQBUFS, &st, (uint8_t *)&rb, sizeof(rb), seg, ptr), -EINVAL);
	cb.memory = V4L2_MEMORY_DMABUF;
	assert_int_equal(devfwd_layout_nested(VIDIOC_CREATE_BUFS, &st, (uint8_t *)&cb, sizeof(cb), seg, ptr), -EINVAL);
	/* multi-planar (m.planes is a pointer) and overlay formats (clip pointers) */
	b.memory = V4L2_MEMORY_MMAP;
	b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
	assert_int_equal(devfwd_layout_nested(VIDIOC_QBUF, &st, (uint8_t *)&b, sizeof(b), seg, ptr), -EINVAL);
	assert_int_equal(devfwd_layout_nested(VIDIOC_QUERYBUF, &st, (uint8_t *)&b, sizeof(b), seg, ptr), -EINVAL);
	rb.memory = V4L2_MEMORY_MMAP;
	rb.type = V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE;
	assert_int_equal(devfwd_layout_nested(VIDIOC_REQBUFS, &st, (uint8_t *)&rb, sizeof(rb), seg, ptr), -EINVAL);
	f.type = V4L2_BUF_TYPE_VIDEO_OVERLAY;
	assert_int_equal(devfwd_layout_nested(VIDIOC_S_FMT, &st, (uint8_t *)&f, sizeof(f), seg, ptr), -EINVAL);
	f.type = V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE;
	assert_int_equal(devfwd_layout_nested(VIDIOC_TRY_FMT, &st, (uint8_t *)&f, sizeof(f), seg, ptr), -EINVAL);
	/* a request's file descriptor */
	b.type = V4L2_BUF_TYPE_VIDEO_CAPTURE;
	b.flags = V4L2_BUF_FLAG_REQUEST_FD;
	assert_int_equal(devfwd_layout_nested(VIDIOC_QBUF, &st, (uint8_t *)&b, sizeof(b), seg, ptr), -EINVAL);
	b.flags = 0;
	/* a root of the wrong size */
	assert_int_equal(devfwd_layout_nested(VIDIOC_QBUF, &st, (uint8_t *)&b, 16, seg, ptr), -EINVAL);

	/* coherence points: a capture buffer after DQBUF, an output buffer before QBUF */
	b.m.offset = 0x3000;
	b.length = 115200;
	assert_int_equal(devfwd_layout_v4l2_handover(VIDIOC_DQBUF, (uint8_t *)&b, sizeof(b), true, &off, &len), 1);
	assert_int_equal(off, 0x3000);
	assert_int_equal(len, 115200);
	assert_int_equal(devfwd_layout_v4l2_handover(VIDIOC_DQBUF, (uint8_t *)&b, sizeof(b), false, &off, &len), 0);
	assert_int_equal(devfwd_layout_v4l2_handover(VIDIOC_QBUF, (uint8_t *)&b, sizeof(b), false, &off, &len), 0);
	assert_int_equal(devfwd_layout_v4l2_handover(VIDIOC_QBUF, (uint8_t *)&b, sizeof(b), true, &off, &len), 0);
	assert_int_equal(devfwd_layout_v4l2_handover(VIDIOC_QUERYBUF, (uint8_t *)&b, sizeof(b), true, &off, &len), 0);
	b.type = V4L2_BUF_TYPE_VIDEO_OUTPUT;
	assert_int_equal(devfwd_layout_v4l2_handover(VIDIOC_QBUF, (uint8_t *)&b, sizeof(b), false, &off, &len), 1);
	assert_int_equal(devfwd_layout_v4l2_handover(VIDIOC_DQBUF, (uint8_t *)&b, sizeof(b), true, &off, &len), 0);
	b.memory = V4L2_MEMORY_USERPTR;
	assert_int_equal(devfwd_layout_v4l2_handover(VIDIOC_QBUF, (uint8_t *)&b, sizeof(b), false, &off, &len), 0);
	assert_int_equal(devfwd_layout_v4l2_handover(VIDIOC_QBUF, (uint8_t *)&b, 8, false, &off, &len), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ioc_default),
		cmocka_unit_test(test_described),
		cmocka_unit_test(test_alsa_nested),
		cmocka_unit_test(test_v4l2),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
