/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "shared/heap.h"
#include "shared/util.h"

static size_t *heap_pos(const heap *h, void *e)
{
	return (size_t *)((char *)e + h->pos_off);
}

static void heap_set(heap *h, size_t i, void *e)
{
	h->v[i] = e;
	*heap_pos(h, e) = i;
}

static void heap_up(heap *h, size_t i)
{
	void *e = h->v[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (h->cmp(h->v[parent], e) <= 0)
			break;
		heap_set(h, i, h->v[parent]);
		i = parent;
	}
	heap_set(h, i, e);
}

static void heap_down(heap *h, size_t i)
{
	void *e = h->v[i];

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= h->n)
			break;
		if (c + 1 < h->n && h->cmp(h->v[c + 1], h->v[c]) < 0)
			c++;
		if (h->cmp(e, h->v[c]) <= 0)
			break;
		heap_set(h, i, h->v[c]);
		i = c;
	}
	heap_set(h, i, e);
}

int heap_push(heap *h, void *e)
{
	if (array_grow((void **)&h->v, &h->cap, h->n + 1, sizeof(void *)) < 0)
		return -ENOMEM;
	h->v[h->n] = e;
	heap_up(h, h->n++);
	return 0;
}

void heap_remove(heap *h, void *e)
{
	size_t i = *heap_pos(h, e);
	void *last;

	*heap_pos(h, e) = HEAP_NO_POS;
	last = h->v[--h->n];
	if (i == h->n)
		return;
	h->v[i] = last;
	*heap_pos(h, last) = i;
	heap_up(h, i);
	heap_down(h, *heap_pos(h, last));
}

void heap_fix(heap *h, void *e)
{
	size_t i = *heap_pos(h, e);

	heap_up(h, i);
	heap_down(h, *heap_pos(h, e));
}

void *heap_top(const heap *h)
{
	return h->n ? h->v[0] : NULL;
}

void heap_done(heap *h)
{
	free(h->v);
	*h = (heap){ .pos_off = h->pos_off, .cmp = h->cmp };
}
