/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * ioctl argument layouts (src/devfwd/layout.c). One source serves user space
 * (libdevfwd: CUSE frontend, backend, client) and the guest kernel module
 * (kmod/devfwd), so both sides size buffers by the same table.
 */

#ifdef __KERNEL__
#include <linux/types.h>
#else
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#endif

#include "devfwd/proto.h"

/* Per open file state some layouts depend on (ALSA frame size). */
struct devfwd_file_state {
	uint32_t frame_bytes; /* 0 until SNDRV_PCM_IOCTL_HW_PARAMS succeeded */
};

/* Segment 0 of cmd from the per-class table or the _IOC encoding. Returns
 * the number of segments known so far (0: scalar argument, 1: a buffer) and
 * sets *ret_nested when more segments follow from the buffer's content. */
int devfwd_layout_root(uint32_t cmd, struct devfwd_ioctl_seg *ret_seg, bool *ret_nested);
/* Given segment 0's content, appends the nested segments to seg (which holds
 * segment 0) and stores the pointer value found for each in ret_ptr[i]
 * (i >= 1; ret_ptr[0] is left alone).
 * Returns the new number of segments. */
int devfwd_layout_nested(uint32_t cmd, const struct devfwd_file_state *st, const uint8_t *root, size_t root_len,
			 struct devfwd_ioctl_seg *seg, uint64_t *ret_ptr);
/* Zeroes the nested pointer fields of a described root buffer, so a guest
 * pointer value never reaches the host kernel (backend side). */
void devfwd_layout_scrub(uint32_t cmd, uint8_t *root, size_t root_len);
/* Updates st after a successful ioctl whose segment 0 now holds out. */
void devfwd_layout_update(uint32_t cmd, struct devfwd_file_state *st, const uint8_t *out, size_t len);
/* Why a described ioctl's root buffer is not forwarded (V4L2: USERPTR,
 * DMABUF, multi-planar, overlay, requests), or NULL when it may be. Both
 * sides refuse such a request with -EINVAL (devfwd_layout_nested does). */
const char *devfwd_layout_refusal(uint32_t cmd, const uint8_t *root, size_t root_len);
/* V4L2's coherence points for MMAP streaming buffers: returns 1 with the
 * buffer's mmap offset and length when the struct v4l2_buffer arg of cmd
 * hands a buffer over at this point (after: after a successful ioctl,
 * else before it): after VIDIOC_DQBUF of a capture buffer (copy device ->
 * window), before VIDIOC_QBUF of an output buffer (window -> device).
 * 0 when nothing is to be copied. */
int devfwd_layout_v4l2_handover(uint32_t cmd, const uint8_t *arg, size_t len, bool after, uint64_t *ret_offset,
				uint32_t *ret_len);
/* Name of a described ioctl, NULL for the _IOC default. */
const char *devfwd_layout_name(uint32_t cmd);
