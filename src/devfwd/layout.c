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
#include <linux/videodev2.h>
#include <sound/asound.h>

#include "devfwd/layout.h"

enum desc_kind {
	DESC_VALUE,   /* argument is a scalar, never dereferenced */
	DESC_BUF,     /* argument points to size bytes moved in direction dir */
	DESC_REFUSED, /* not forwarded at all: -ENOTTY, as from a driver without it */
};

enum count_src {
	COUNT_NONE,
	COUNT_FRAMES, /* count field x per-file frame size (ALSA) */
};

/* Content a described root buffer must have to be forwarded (checked on
 * both sides: the guest's caller gets EINVAL, as V4L2 answers a memory
 * type or buffer type a queue does not support). */
enum check_kind {
	CHECK_NONE,
	CHECK_V4L2_BUF,      /* struct v4l2_buffer: MMAP, single-planar, no request fd */
	CHECK_V4L2_BUF_TYPE, /* struct v4l2_buffer of QUERYBUF: single-planar (memory is OUT) */
	CHECK_V4L2_REQBUFS,  /* struct v4l2_requestbuffers: MMAP, single-planar */
	CHECK_V4L2_CREATE,   /* struct v4l2_create_buffers: MMAP, its format's type */
	CHECK_V4L2_FMT,      /* struct v4l2_format: no overlay (clip list pointers), single-planar */
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
	enum check_kind check;
};

#define IN DEVFWD_SEG_IN
#define OUT DEVFWD_SEG_OUT
/* a root buffer in and out whose content is checked before it is sent */
#define V4L2_ROOT(cmd, type, check) { cmd, #cmd, DESC_BUF, IN | OUT, sizeof(type), COUNT_NONE, 0, 0, 0, check }
#define REFUSED(cmd) { cmd, #cmd, DESC_REFUSED, 0, 0, COUNT_NONE, 0, 0, 0, CHECK_NONE }

static const struct ioctl_desc descs[] = {
	/* input: evdev takes these as values even though they say _IOW(int). */
	{ EVIOCGRAB, "EVIOCGRAB", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0, CHECK_NONE },
	{ EVIOCREVOKE, "EVIOCREVOKE", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0, CHECK_NONE },

	/* tun: the interface ioctls move a struct ifreq; the others are values. */
	{ TUNSETIFF, "TUNSETIFF", DESC_BUF, IN | OUT, sizeof(struct ifreq), COUNT_NONE, 0, 0, 0, CHECK_NONE },
	{ TUNGETIFF, "TUNGETIFF", DESC_BUF, OUT, sizeof(struct ifreq), COUNT_NONE, 0, 0, 0, CHECK_NONE },
	{ TUNSETQUEUE, "TUNSETQUEUE", DESC_BUF, IN, sizeof(struct ifreq), COUNT_NONE, 0, 0, 0, CHECK_NONE },
	{ TUNSETPERSIST, "TUNSETPERSIST", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0, CHECK_NONE },
	{ TUNSETOWNER, "TUNSETOWNER", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0, CHECK_NONE },
	{ TUNSETGROUP, "TUNSETGROUP", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0, CHECK_NONE },
	{ TUNSETLINK, "TUNSETLINK", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0, CHECK_NONE },
	{ TUNSETOFFLOAD, "TUNSETOFFLOAD", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0, CHECK_NONE },
	{ TUNSETDEBUG, "TUNSETDEBUG", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0, CHECK_NONE },
	{ TUNSETNOCSUM, "TUNSETNOCSUM", DESC_VALUE, 0, 0, COUNT_NONE, 0, 0, 0, CHECK_NONE },

	/* ALSA PCM read/write mode: struct snd_xferi points at the samples; the
	 * kernel writes back xferi.result, so the root is in and out. */
	{ SNDRV_PCM_IOCTL_WRITEI_FRAMES, "SNDRV_PCM_IOCTL_WRITEI_FRAMES", DESC_BUF, IN | OUT,
	  sizeof(struct snd_xferi), COUNT_FRAMES, IN, offsetof(struct snd_xferi, buf),
	  offsetof(struct snd_xferi, frames), CHECK_NONE },
	{ SNDRV_PCM_IOCTL_READI_FRAMES, "SNDRV_PCM_IOCTL_READI_FRAMES", DESC_BUF, IN | OUT,
	  sizeof(struct snd_xferi), COUNT_FRAMES, OUT, offsetof(struct snd_xferi, buf),
	  offsetof(struct snd_xferi, frames), CHECK_NONE },
	/* ALSA mmap mode: CHANNEL_INFO says _IOR, but the kernel first reads
	 * the channel number from the argument (without it every channel
	 * would get channel 0's place in the buffer). */
	{ SNDRV_PCM_IOCTL_CHANNEL_INFO, "SNDRV_PCM_IOCTL_CHANNEL_INFO", DESC_BUF, IN | OUT,
	  sizeof(struct snd_pcm_channel_info), COUNT_NONE, 0, 0, 0, CHECK_NONE },

	/* V4L2 streaming with MMAP buffers (docs/devfwd.md, "mmap"). The _IOC
	 * encoding is right for every ioctl a capture client makes (QUERYCAP,
	 * ENUM_FMT, G/S_PARM, ENUMINPUT, G/S_INPUT, QUERYCTRL, G/S_CTRL,
	 * STREAMON/OFF); these are described for what their content may be.
	 * A single-planar MMAP buffer's m.offset is an offset, nothing to
	 * follow; USERPTR (a guest address), DMABUF and a request (file
	 * descriptors), multi-planar buffers (m.planes, a pointer) and overlay
	 * formats (clip list and bitmap pointers) are refused with EINVAL.
	 * Coherence: DQBUF of a capture buffer copies that buffer device ->
	 * window, QBUF of an output buffer window -> device, nothing else
	 * (devfwd_layout_v4l2_handover). */
	V4L2_ROOT(VIDIOC_REQBUFS, struct v4l2_requestbuffers, CHECK_V4L2_REQBUFS),
	V4L2_ROOT(VIDIOC_CREATE_BUFS, struct v4l2_create_buffers, CHECK_V4L2_CREATE),
	V4L2_ROOT(VIDIOC_QUERYBUF, struct v4l2_buffer, CHECK_V4L2_BUF_TYPE),
	V4L2_ROOT(VIDIOC_QBUF, struct v4l2_buffer, CHECK_V4L2_BUF),
	V4L2_ROOT(VIDIOC_DQBUF, struct v4l2_buffer, CHECK_V4L2_BUF),
	V4L2_ROOT(VIDIOC_PREPARE_BUF, struct v4l2_buffer, CHECK_V4L2_BUF),
	V4L2_ROOT(VIDIOC_G_FMT, struct v4l2_format, CHECK_V4L2_FMT),
	V4L2_ROOT(VIDIOC_S_FMT, struct v4l2_format, CHECK_V4L2_FMT),
	V4L2_ROOT(VIDIOC_TRY_FMT, struct v4l2_format, CHECK_V4L2_FMT),
	/* A DMABUF file descriptor of the worker's; arrays of controls whose
	 * elements may point further (use VIDIOC_G_CTRL/S_CTRL). */
	REFUSED(VIDIOC_EXPBUF),
	REFUSED(VIDIOC_G_EXT_CTRLS),
	REFUSED(VIDIOC_S_EXT_CTRLS),
	REFUSED(VIDIOC_TRY_EXT_CTRLS),
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
		if (d->kind == DESC_REFUSED)
			return -ENOTTY;
		/* a checked root is read before it is sent, like a nested one */
		*ret_nested = d->count_src != COUNT_NONE || d->check != CHECK_NONE;
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

static uint32_t u32_at(const uint8_t *p, size_t off)
{
	uint32_t v;

	memcpy(&v, p + off, sizeof(v));
	return v;
}

/* Buffer types whose format or buffer carries pointers devfwd does not
 * follow: multi-planar (m.planes, pix_mp is harmless but its buffers are
 * not) and overlay (struct v4l2_window's clips and bitmap). */
static bool v4l2_type_refused(uint32_t type)
{
	return type == V4L2_BUF_TYPE_VIDEO_CAPTURE_MPLANE || type == V4L2_BUF_TYPE_VIDEO_OUTPUT_MPLANE ||
	       type == V4L2_BUF_TYPE_VIDEO_OVERLAY || type == V4L2_BUF_TYPE_VIDEO_OUTPUT_OVERLAY;
}

const char *devfwd_layout_refusal(uint32_t cmd, const uint8_t *root, size_t root_len)
{
	const struct ioctl_desc *d = find(cmd);
	const char *planar = "V4L2 multi-planar and overlay buffer types are not forwarded (single-planar only)";
	const char *memory = "V4L2 USERPTR and DMABUF buffers are not forwarded (MMAP only)";

	if (!d || d->check == CHECK_NONE)
		return NULL;
	if (!root || root_len != d->size)
		return "the argument's size does not match the command";
	switch (d->check) {
	case CHECK_V4L2_BUF:
		if (u32_at(root, offsetof(struct v4l2_buffer, flags)) & V4L2_BUF_FLAG_REQUEST_FD)
			return "V4L2 requests (a file descriptor) are not forwarded";
		if (u32_at(root, offsetof(struct v4l2_buffer, memory)) != V4L2_MEMORY_MMAP)
			return memory;
		return v4l2_type_refused(u32_at(root, offsetof(struct v4l2_buffer, type))) ? planar : NULL;
	case CHECK_V4L2_BUF_TYPE:
		return v4l2_type_refused(u32_at(root, offsetof(struct v4l2_buffer, type))) ? planar : NULL;
	case CHECK_V4L2_REQBUFS:
		if (u32_at(root, offsetof(struct v4l2_requestbuffers, memory)) != V4L2_MEMORY_MMAP)
			return memory;
		return v4l2_type_refused(u32_at(root, offsetof(struct v4l2_requestbuffers, type))) ? planar : NULL;
	case CHECK_V4L2_CREATE:
		if (u32_at(root, offsetof(struct v4l2_create_buffers, memory)) != V4L2_MEMORY_MMAP)
			return memory;
		return v4l2_type_refused(u32_at(root, offsetof(struct v4l2_create_buffers, format.type))) ? planar : NULL;
	case CHECK_V4L2_FMT:
		return v4l2_type_refused(u32_at(root, offsetof(struct v4l2_format, type))) ? planar : NULL;
	case CHECK_NONE:
		break;
	}
	return NULL;
}

int devfwd_layout_v4l2_handover(uint32_t cmd, const uint8_t *arg, size_t len, bool after, uint64_t *ret_offset,
				uint32_t *ret_len)
{
	uint32_t type;

	if ((cmd != VIDIOC_QBUF && cmd != VIDIOC_DQBUF) || !arg || len != sizeof(struct v4l2_buffer))
		return 0;
	if (u32_at(arg, offsetof(struct v4l2_buffer, memory)) != V4L2_MEMORY_MMAP)
		return 0;
	type = u32_at(arg, offsetof(struct v4l2_buffer, type));
	if (v4l2_type_refused(type))
		return 0;
	/* a captured frame is the device's after DQBUF; an output frame the
	 * application's before QBUF; the other two points move nothing */
	if (V4L2_TYPE_IS_OUTPUT(type) ? (cmd != VIDIOC_QBUF || after) : (cmd != VIDIOC_DQBUF || !after))
		return 0;
	*ret_offset = u32_at(arg, offsetof(struct v4l2_buffer, m.offset));
	*ret_len = u32_at(arg, offsetof(struct v4l2_buffer, length));
	return 1;
}

int devfwd_layout_nested(uint32_t cmd, const struct devfwd_file_state *st, const uint8_t *root, size_t root_len,
			 struct devfwd_ioctl_seg *seg, uint64_t *ret_ptr)
{
	const struct ioctl_desc *d = find(cmd);
	uint64_t count, ptr, len;

	if (!st || !root || !seg || !ret_ptr)
		return -EINVAL;
	if (devfwd_layout_refusal(cmd, root, root_len))
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
