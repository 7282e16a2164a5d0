/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* An indexed binary min-heap of pointers: each member keeps its own
 * position (a size_t at pos_off inside it, HEAP_NO_POS when out), so it can
 * be removed or re-keyed in O(log n). */

#include <stddef.h>
#include <stdint.h>

#define HEAP_NO_POS SIZE_MAX

typedef struct heap {
	void **v;
	size_t n, cap;
	size_t pos_off;   /* offset of the member's size_t position field */
	int (*cmp)(const void *a, const void *b);
} heap;

int heap_push(heap *h, void *e);      /* -ENOMEM */
void heap_remove(heap *h, void *e);
void heap_fix(heap *h, void *e);      /* after e's key changed */
void *heap_top(const heap *h);        /* NULL if empty */
void heap_done(heap *h);              /* frees the array, not the members */
