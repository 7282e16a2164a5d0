/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * iovmd: the per-host daemon. Two main threads:
 *  - the main thread runs the sd-event loop: the API socket, clients, read
 *    commands answered from the inventory snapshot, replies and events out;
 *  - the ops thread owns the host, the state store and the VMs' QMP
 *    connections: it runs mutating commands one at a time (journaled), keeps
 *    the snapshot current, watches the VMs, and does start-up recovery.
 * They talk through two queues, each with an eventfd (queue.h). The ops
 * thread hands questions to the VMs' guest agents to a few workers of its
 * own (gsample.h), so a slow agent holds up no operation. See docs/iovmd.md.
 *
 * main.c starts the ops thread (ops-loop.h) and runs the server (server.h);
 * the two meet only through the queues in this struct.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <json-c/json.h>

#include "iovm/api.h"
#include "iovmd/queue.h"
#include "shared/log.h"

#define IOVMD_VERSION "0.1.0"

typedef struct iovmd_config {
	char config_path[4096];
	char socket_path[IOVM_API_PATH_MAX];
	char state_path[4096];
	char sysfs_root[4096];
	char group[64];
	unsigned socket_mode;
	unsigned max_clients;
	int attach_timeout_ms, detach_timeout_ms;
	int refresh_interval_ms, sample_interval_ms, window_ms;
	int level;                    /* syslog LOG_ERR .. LOG_DEBUG */
	bool recover;
	unsigned max_users;           /* users per shared VF */
	unsigned shared_reserve;      /* free VFs auto mode leaves for sharing */
	bool rebalance;               /* move a sharer to a VF that frees up */
	unsigned journal_keep;        /* finished intents kept in the state db */
} iovmd_config;

/* config.c */
void iovmd_config_defaults(iovmd_config *c);
/* Parses argv (flags win over the file). Returns 0, 1 for --help/--version
 * (printed), or a negative errno with the message printed. */
int iovmd_config_load(iovmd_config *c, int argc, char **argv);

typedef struct iovmd {
	iovmd_config cfg;
	iovmd_queue jobs;             /* main -> ops */
	iovmd_queue msgs;             /* ops -> main */
	json_object *snapshot;        /* main thread only: {"pfs":[PF+vfs],"vms":[VM],...} */
	bool snapshot_stale;          /* main thread only: a job's reply is out, its snapshot not yet */
	uint64_t snapshot_gen;        /* main thread only: bumped with each snapshot taken in */
	int64_t started_ms;
	unsigned n_clients;
	volatile bool stopping;
	int ready_efd;                /* ops thread: recovery done (value 1) or failed (2) */
} iovmd;
