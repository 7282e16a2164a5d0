/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iovmd: the per-host daemon. Options (config.c), the ops thread (ops.c:
 * host, store, VMs, recovery), then the API server (server.c) on the main
 * thread until SIGTERM/SIGINT. READY=1 is sent to systemd once recovery is
 * done and the socket listens. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "shared/clock.h"
#include "iovmd/iovmd.h"

int iovmd_queue_init(iovmd_queue *q)
{
	pthread_mutex_init(&q->lock, NULL);
	q->head = q->tail = NULL;
	q->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	return q->efd < 0 ? -errno : 0;
}

struct node { struct node *next; };

void iovmd_queue_push(iovmd_queue *q, void *item)
{
	struct node *n = item;
	uint64_t one = 1;

	n->next = NULL;
	pthread_mutex_lock(&q->lock);
	if (q->tail)
		((struct node *)q->tail)->next = n;
	else
		q->head = n;
	q->tail = n;
	pthread_mutex_unlock(&q->lock);
	(void)!write(q->efd, &one, sizeof(one));
}

void *iovmd_queue_pop_all(iovmd_queue *q)
{
	uint64_t v;
	void *h;

	(void)!read(q->efd, &v, sizeof(v));
	pthread_mutex_lock(&q->lock);
	h = q->head;
	q->head = q->tail = NULL;
	pthread_mutex_unlock(&q->lock);
	return h;
}

void iovmd_crash_point(const char *op, const char *step)
{
	const char *at = getenv("IOVM_CRASH_AT");
	size_t n;

	if (!at || !*at)
		return;
	n = strlen(op);
	if (!strncmp(at, op, n) && at[n] == ':' && !strcmp(at + n + 1, step)) {
		log_warning(0, "IOVM_CRASH_AT=%s: killing myself (test hook)", at);
		raise(SIGKILL);
	}
}

int main(int argc, char **argv)
{
	static iovmd d;
	pthread_t ops;
	uint64_t v = 0;
	int r;

	iovmd_config_defaults(&d.cfg);
	r = iovmd_config_load(&d.cfg, argc, argv);
	if (r != 0)
		return r > 0 ? EXIT_SUCCESS : EXIT_FAILURE;
	log_open("iovmd", false);
	log_set_max_level(d.cfg.level);
	signal(SIGPIPE, SIG_IGN);
	d.started_ms = now_ms();
	d.ready_efd = eventfd(0, EFD_CLOEXEC);
	if (d.ready_efd < 0 || iovmd_queue_init(&d.jobs) < 0 || iovmd_queue_init(&d.msgs) < 0) {
		log_error(errno, "cannot create eventfds");
		return EXIT_FAILURE;
	}
	/* SIGTERM/SIGINT are taken by sd-event in the main thread: block them
	 * before the ops thread exists so it inherits the mask. */
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);

	log_info("starting (version %s, state %s, socket %s, sysfs %s)", IOVMD_VERSION,
		 d.cfg.state_path, d.cfg.socket_path, d.cfg.sysfs_root);
	r = iovmd_ops_start(&d, &ops);
	if (r < 0) {
		log_error(r, "cannot start the operations thread");
		return EXIT_FAILURE;
	}
	/* Recovery runs first; the API opens only on a consistent state. */
	if (read(d.ready_efd, &v, sizeof(v)) != sizeof(v) || v != 1) {
		log_error(0, "start-up failed (see above); exiting");
		return EXIT_FAILURE;
	}
	r = iovmd_server_run(&d);
	d.stopping = true;
	iovmd_queue_push(&d.jobs, calloc(1, sizeof(iovmd_job)));   /* wakes the ops thread */
	pthread_join(ops, NULL);
	log_info("stopped");
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
