/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iovmd: the per-host daemon. Options (config.c), the ops thread
 * (ops-loop.h: host, store, VMs, recovery), then the API server (server.h)
 * on the main thread until SIGTERM/SIGINT. READY=1 is sent to systemd once
 * recovery is done and the socket listens. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "iovmd/iovmd.h"
#include "iovmd/ops-loop.h"
#include "iovmd/server.h"
#include "shared/clock.h"

/* SIGTERM/SIGINT are taken by sd-event in the main thread: blocked before
 * the ops thread exists so it inherits the mask. */
static void block_stop_signals(void)
{
	sigset_t ss;

	sigemptyset(&ss);
	sigaddset(&ss, SIGTERM);
	sigaddset(&ss, SIGINT);
	pthread_sigmask(SIG_BLOCK, &ss, NULL);
}

int main(int argc, char **argv)
{
	static iovmd d;
	iovmd_job *wake;
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
	block_stop_signals();
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
	wake = calloc(1, sizeof(*wake));
	if (!wake) {
		log_error(-ENOMEM, "cannot wake the operations thread; exiting without it");
		return EXIT_FAILURE;
	}
	iovmd_queue_push(&d.jobs, wake);   /* a job of no client: wakes the ops thread */
	pthread_join(ops, NULL);
	log_info("stopped");
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
