/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* ioctl argument layout: _IOC default, per-class descriptions, nested ALSA
 * buffers and the per-file frame size learnt from HW_PARAMS. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/input.h>
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

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ioc_default),
		cmocka_unit_test(test_described),
		cmocka_unit_test(test_alsa_nested),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
