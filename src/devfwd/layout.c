/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where an ioctl's argument data lives. By default the _IOC encoding says
 * it: direction and size of one buffer the argument points to. Some ioctls
 * lie in their encoding (TUNSETIFF says int, takes struct ifreq), take the
 * argument as a plain value (EVIOCGRAB), or carry a nested pointer
 * (SNDRV_PCM_IOCTL_WRITEI_FRAMES). Those are described here, as data. Both
 * the frontend (to fetch guest memory) and the backend (to check what it was
 * sent) use the same table, so a lying frontend cannot size host buffers. */
/* This file is also compiled into the guest kernel module (kmod/devfwd):
 * it uses nothing but the string functions both worlds have. */
#ifdef __KERNEL__
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/stddef.h>
#include <linux/string.h>
#define ELEMENTSOF(a) ARRAY_SIZE(a)
#else
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include "shared/util.h"
#endif
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/input.h>
#include <linux/ioctl.h>
#include <sound/asound.h>

#include "devfwd/layout.h"

enum desc_kind {
	DESC_VALUE, /* argument is a scalar, never dereferenced */
	DESC_BUF,   /* argument points to size bytes moved in direction dir */
};

enum count_src {
	COUNT_NONE,
	COUNT_FRAMES, /* count field x per-file frame size (ALSA) */
};

struct ioctl_desc {
	uint32_t cmd;
	const char *name;
	enum desc_kind kind;
	uint8_t dir;
	uint32_t size;
	/* An optional nested buffer: pointer at ptr_off in the root buffer,
	 * count (a 64-bit field) at count_off, multiplied as count_src says. */
	enum count_src count_src;
	uint8_t ndir;
	uint32_t ptr_off;
	uint32_t count_off;
};

#define IN DEVFWD_SEG_IN
#define OUT DEVFWD_SEG_OUT

static const struct ioctl_desc descs[] = {
	/* input: evdev takes these as values even though they say _IOW(int). */
	{ EVIOCGRAB, "EVIOCGRAB", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0 },
	{ EVIOCREVOKE, "EVIOCREVOKE", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0 },

	/* tun: the interface ioctls move a struct ifreq; the others are values. */
	{ TUNSETIFF, "TUNSETIFF", DESC_BUF, IN | OUT, sizeof(struct ifreq), COUNT_NONE, 0, 0, 0 },
	{ TUNGETIFF, "TUNGETIFF", DESC_BUF, OUT, sizeof(struct ifreq), COUNT_NONE, 0, 0, 0 },
	{ TUNSETQUEUE, "TUNSETQUEUE", DESC_BUF, IN, sizeof(struct ifreq), COUNT_NONE, 0, 0, 0 },
	{ TUNSETPERSIST, "TUNSETPERSIST", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0 },
	{ TUNSETOWNER, "TUNSETOWNER", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0 },
	{ TUNSETGROUP, "TUNSETGROUP", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0 },
	{ TUNSETLINK, "TUNSETLINK", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0 },
	{ TUNSETOFFLOAD, "TUNSETOFFLOAD", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0 },
	{ TUNSETDEBUG, "TUNSETDEBUG", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0 },
	{ TUNSETNOCSUM, "TUNSETNOCSUM", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0 },

	/* ALSA PCM read/write mode: struct snd_xferi points at the samples; the
	 * kernel writes back xferi.result, so the root is in and out. */
	{ SNDRV_PCM_IOCTL_WRITEI_FRAMES, "SNDRV_PCM_IOCTL_WRITEI_FRAMES", DESC_BUF, IN | OUT,
	  sizeof(struct snd_xferi), COUNT_FRAMES, IN, offsetof(struct snd_xferi, buf),
	  offsetof(struct snd_xferi, frames) },
	{ SNDRV_PCM_IOCTL_READI_FRAMES, "SNDRV_PCM_IOCTL_READI_FRAMES", DESC_BUF, IN | OUT,
	  sizeof(struct snd_xferi), COUNT_FRAMES, OUT, offsetof(struct snd_xferi, buf),
	  offsetof(struct snd_xferi, frames) },
	/* ALSA mmap mode: CHANNEL_INFO says _IOR, but the kernel first reads
	 * the channel number from the argument (without it every channel
	 * would get channel 0's place in the buffer). */
	{ SNDRV_PCM_IOCTL_CHANNEL_INFO, "SNDRV_PCM_IOCTL_CHANNEL_INFO", DESC_BUF, IN | OUT,
	  sizeof(struct snd_pcm_channel_info), COUNT_NONE, 0, 0, 0 },
};

static const struct ioctl_desc *find(uint32_t cmd)
{
	for (size_t i = 0; i < ELEMENTSOF(descs); i++)
		if (descs[i].cmd == cmd)
			return &descs[i];
	return NULL;
}

const char *devfwd_layout_name(uint32_t cmd)
{
	const struct ioctl_desc *d = find(cmd);

	return d ? d->name : NULL;
}

int devfwd_layout_root(uint32_t cmd, struct devfwd_ioctl_seg *ret_seg, bool *ret_nested)
{
	const struct ioctl_desc *d = find(cmd);
	uint8_t dir = 0;
	uint32_t size;

	if (!ret_seg || !ret_nested)
		return -EINVAL;
	if (d) {
		*ret_nested = d->count_src != COUNT_NONE;
		if (d->kind == DESC_VALUE)
			return 0;
		*ret_seg = (struct devfwd_ioctl_seg){ .len = d->size, .dir = d->dir, .parent = DEVFWD_SEG_ROOT };
		return 1;
	}
	*ret_nested = false;
	if (_IOC_DIR(cmd) & _IOC_WRITE)
		dir |= DEVFWD_SEG_IN;
	if (_IOC_DIR(cmd) & _IOC_READ)
		dir |= DEVFWD_SEG_OUT;
	size = _IOC_SIZE(cmd);
	/* _IOC_NONE, or a direction with no size: nothing to move, pass the value. */
	if (!dir || size == 0)
		return 0;
	*ret_seg = (struct devfwd_ioctl_seg){ .len = size, .dir = dir, .parent = DEVFWD_SEG_ROOT };
	return 1;
}

int devfwd_layout_nested(uint32_t cmd, const struct devfwd_file_state *st, const uint8_t *root, size_t root_len,
			 struct devfwd_ioctl_seg *seg, uint64_t *ret_ptr)
{
	const struct ioctl_desc *d = find(cmd);
	uint64_t count, ptr, len;

	if (!st || !root || !seg || !ret_ptr)
		return -EINVAL;
	if (!d || d->count_src == COUNT_NONE)
		return 1;
	if (root_len != d->size)
		return -EINVAL;
	memcpy(&ptr, root + d->ptr_off, sizeof(ptr));
	memcpy(&count, root + d->count_off, sizeof(count));
	if (d->count_src == COUNT_FRAMES) {
		/* Without hw_params the kernel refuses the transfer (EBADFD) before
		 * touching the buffer; send none and let it say so. */
		if (st->frame_bytes == 0)
			return 1;
		if (count > DEVFWD_MAX_IO / st->frame_bytes)
			return -E2BIG;
		len = count * st->frame_bytes;
	} else {
		return -EINVAL;
	}
	/* Nothing to move: the kernel does not touch the pointer either. */
	if (len == 0 || ptr == 0)
		return 1;
	seg[1] = (struct devfwd_ioctl_seg){ .len = (uint32_t)len, .ptr_off = d->ptr_off, .dir = d->ndir, .parent = 0 };
	ret_ptr[1] = ptr;
	return 2;
}

void devfwd_layout_scrub(uint32_t cmd, uint8_t *root, size_t root_len)
{
	const struct ioctl_desc *d = find(cmd);

	if (!root || !d || d->count_src == COUNT_NONE || root_len != d->size)
		return;
	memset(root + d->ptr_off, 0, sizeof(uint64_t));
}

void devfwd_layout_update(uint32_t cmd, struct devfwd_file_state *st, const uint8_t *out, size_t len)
{
	const size_t fb = offsetof(struct snd_pcm_hw_params,
				   intervals[SNDRV_PCM_HW_PARAM_FRAME_BITS - SNDRV_PCM_HW_PARAM_FIRST_INTERVAL]);
	struct snd_interval iv;

	if (!st)
		return;
	if (cmd == SNDRV_PCM_IOCTL_HW_FREE) {
		st->frame_bytes = 0;
		return;
	}
	if (cmd != SNDRV_PCM_IOCTL_HW_PARAMS || !out || len != sizeof(struct snd_pcm_hw_params))
		return;
	memcpy(&iv, out + fb, sizeof(iv));
	/* After a successful HW_PARAMS every interval is a single value. */
	if (iv.min == iv.max && iv.min % 8 == 0 && iv.min > 0 && iv.min <= 8 * 1024)
		st->frame_bytes = iv.min / 8;
	else
		st->frame_bytes = 0;
}
