/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The job and message queues between the main and the ops thread
 * (queue.h): a locked list and an eventfd that counts pushes. */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "iovmd/queue.h"

struct node { struct node *next; };

int iovmd_queue_init(iovmd_queue *q)
{
	assert(q);
	pthread_mutex_init(&q->lock, NULL);
	q->head = q->tail = NULL;
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return q->efd < 0 ? -errno : 0;
}

void iovmd_queue_push(iovmd_queue *q, void *item)
{
	struct node *n = item;
	uint64_t one = 1;

	assert(q && item);
	n->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		((struct node *)q->tail)->next = n;
	else
		q->head = n;
	q->tail = n;
	pthread_mutex_unlock(&q->lock);
	/* Fails only when the counter would overflow (2^64 - 1 pushes
	 * unread): the fd is readable then anyway. */
	(void)!write(q->efd, &one, sizeof(one));
}

void *iovmd_queue_pop_all(iovmd_queue *q)
{
	uint64_t v;
	void *h;

	assert(q);
	/* -EAGAIN when a previous pop took the count: the list decides. */
	(void)!read(q->efd, &v, sizeof(v));
	pthread_mutex_lock(&q->lock);
	h = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->lock);
	return h;
}

void iovmd_queue_done(iovmd_queue *q, void (*free_item)(void *item))
{
	struct node *n = iovmd_queue_pop_all(q);

	while (n) {
		struct node *next = n->next;

		free_item(n);
		n = next;
	}
	if (q->efd >= 0)
		close(q->efd);
	q->efd = -1;
	pthread_mutex_destroy(&q->lock);
}

void iovmd_msg_free(void *p)
{
	iovmd_msg *m = p;

	if (!m)
		return;
	free(m->line);
	if (m->snapshot)
		json_object_put(m->snapshot);
	free(m);
}
