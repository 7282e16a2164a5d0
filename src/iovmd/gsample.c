/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The guest agents' questions on worker threads: see gsample.h. One lock
 * guards the queue, the answers and the set of VMs with a question pending
 * (a VM is pending from gsample_ask until its answer is taken). Stopping
 * writes the cancel eventfd, which every question under way polls.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "iovm/qga.h"
#include "iovmd/gsample.h"
#include "shared/util.h"

struct gsample {
	pthread_mutex_t lock;
	pthread_cond_t more;          /* the queue is not empty, or stopping */
	gsample_q *queue, **queue_tail;
	gsample_q *done, **done_tail;
	gsample_q *busy[GSAMPLE_WORKERS];   /* under way, per worker */
	pthread_t thr[GSAMPLE_WORKERS];
	size_t n_thr;
	int timeout_ms;
	int done_efd;                 /* readable while done is not empty */
	int cancel_efd;               /* written once, when stopping */
	bool stopping;
};

void gsample_q_free(gsample_q *q)
{
	while (q) {
		gsample_q *next = q->next;

		free(q->vf);
		free(q->mac);
		free(q->bytes);
		free(q->status);
		free(q);
		q = next;
	}
}

static void *worker(void *arg)
{
	gsample *g = arg;
	size_t me;

	pthread_mutex_lock(&g->lock);
	for (me = 0; me < g->n_thr && !pthread_equal(g->thr[me], pthread_self()); me++)
		;
	for (;;) {
		_cleanup_free_ const char **macs = NULL;
		iovm_error err = {};
		gsample_q *q;
		uint64_t one = 1;

		while (!g->stopping && !g->queue)
			pthread_cond_wait(&g->more, &g->lock);
		if (g->stopping)
			break;
		q = g->queue;
		g->queue = q->next;
		if (!g->queue)
			g->queue_tail = &g->queue;
		q->next = NULL;
		if (me < GSAMPLE_WORKERS)
			g->busy[me] = q;
		pthread_mutex_unlock(&g->lock);

		macs = calloc(q->n ? q->n : 1, sizeof(*macs));
		if (!macs)
			q->r = -ENOMEM;
		else {
			for (size_t k = 0; k < q->n; k++)
				macs[k] = q->mac[k];
			q->r = iovm_qga_if_bytes_many_cancel(q->qga, macs, q->n, g->timeout_ms, g->cancel_efd,
							     q->bytes, q->status, &err);
		}
		if (q->r < 0)
			snprintf(q->err, sizeof(q->err), "%s", err.msg[0] ? err.msg : strerror(-q->r));

		pthread_mutex_lock(&g->lock);
		if (me < GSAMPLE_WORKERS)
			g->busy[me] = NULL;
		*g->done_tail = q;
		g->done_tail = &q->next;
		(void)!write(g->done_efd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&g->lock);
	return NULL;
}

int gsample_new(int timeout_ms, gsample **ret)
{
	gsample *g;
	int r = 0;

	if (!ret || timeout_ms <= 0)
		return -EINVAL;
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	pthread_mutex_init(&g->lock, NULL);
	pthread_cond_init(&g->more, NULL);
	g->queue_tail = &g->queue;
	g->done_tail = &g->done;
	g->timeout_ms = timeout_ms;
	g->done_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	g->cancel_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (g->done_efd < 0 || g->cancel_efd < 0) {
		r = negative_errno();
		goto fail;
	}
	/* Under the lock, so each worker finds its own slot in thr[]. */
	pthread_mutex_lock(&g->lock);
	for (; g->n_thr < GSAMPLE_WORKERS; g->n_thr++) {
		r = -pthread_create(&g->thr[g->n_thr], NULL, worker, g);
		if (r < 0)
			break;
	}
	pthread_mutex_unlock(&g->lock);
	if (g->n_thr == 0)
		goto fail;
	*ret = g;
	return 0;
fail:
	gsample_free(g);
	return r < 0 ? r : -ENOMEM;
}

void gsample_free(gsample *g)
{
	uint64_t one = 1;

	if (!g)
		return;
	pthread_mutex_lock(&g->lock);
	g->stopping = true;
	pthread_cond_broadcast(&g->more);
	pthread_mutex_unlock(&g->lock);
	if (g->cancel_efd >= 0)
		(void)!write(g->cancel_efd, &one, sizeof(one));
	for (size_t i = 0; i < g->n_thr; i++)
		pthread_join(g->thr[i], NULL);
	gsample_q_free(g->queue);
	gsample_q_free(g->done);
	if (g->done_efd >= 0)
		close(g->done_efd);
	if (g->cancel_efd >= 0)
		close(g->cancel_efd);
	pthread_cond_destroy(&g->more);
	pthread_mutex_destroy(&g->lock);
	free(g);
}

int gsample_fd(const gsample *g)
{
	return g ? g->done_efd : -EINVAL;
}

static bool in_list(const gsample_q *q, const char *vm)
{
	for (; q; q = q->next)
		if (!strcmp(q->vm, vm))
			return true;
	return false;
}

static bool pending_locked(gsample *g, const char *vm)
{
	for (size_t i = 0; i < GSAMPLE_WORKERS; i++)
		if (g->busy[i] && !strcmp(g->busy[i]->vm, vm))
			return true;
	return in_list(g->queue, vm) || in_list(g->done, vm);
}

bool gsample_pending(gsample *g, const char *vm)
{
	bool r;

	if (!g || !vm)
		return false;
	pthread_mutex_lock(&g->lock);
	r = pending_locked(g, vm);
	pthread_mutex_unlock(&g->lock);
	return r;
}

static int copy(char *dst, size_t size, const char *src)
{
	if (!src || !src[0] || strlen(src) >= size)
		return -EINVAL;
	memcpy(dst, src, strlen(src) + 1);
	return 0;
}

int gsample_ask(gsample *g, const char *vm, const char *qga, size_t n, const char *const *vfs,
		const char *const *macs)
{
	gsample_q *q;
	int r = 0;

	if (!g || (n && (!vfs || !macs)))
		return -EINVAL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->n = n;
	q->vf = calloc(n ? n : 1, sizeof(*q->vf));
	q->mac = calloc(n ? n : 1, sizeof(*q->mac));
	q->bytes = calloc(n ? n : 1, sizeof(*q->bytes));
	q->status = calloc(n ? n : 1, sizeof(*q->status));
	if (!q->vf || !q->mac || !q->bytes || !q->status)
		r = -ENOMEM;
	if (r == 0)
		r = copy(q->vm, sizeof(q->vm), vm);
	if (r == 0)
		r = copy(q->qga, sizeof(q->qga), qga);
	for (size_t k = 0; r == 0 && k < n; k++) {
		r = copy(q->vf[k], sizeof(q->vf[k]), vfs[k]);
		if (r == 0)
			r = copy(q->mac[k], sizeof(q->mac[k]), macs[k]);
	}
	if (r < 0) {
		gsample_q_free(q);
		return r;
	}
	pthread_mutex_lock(&g->lock);
	if (g->stopping)
		r = -ESHUTDOWN;
	else if (pending_locked(g, vm))
		r = -EBUSY;
	else {
		*g->queue_tail = q;
		g->queue_tail = &q->next;
		pthread_cond_signal(&g->more);
	}
	pthread_mutex_unlock(&g->lock);
	if (r < 0)
		gsample_q_free(q);
	return r;
}

gsample_q *gsample_take(gsample *g)
{
	gsample_q *q;
	uint64_t v;

	if (!g)
		return NULL;
	pthread_mutex_lock(&g->lock);
	(void)!read(g->done_efd, &v, sizeof(v));
	q = g->done;
	g->done = NULL;
	g->done_tail = &g->done;
	pthread_mutex_unlock(&g->lock);
	return q;
}
