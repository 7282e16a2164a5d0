/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * iovmd: the per-host daemon. Two main threads:
 *  - the main thread runs the sd-event loop: the API socket, clients, read
 *    commands answered from the inventory snapshot, replies and events out;
 *  - the ops thread owns the host, the state store and the VMs' QMP
 *    connections: it runs mutating commands one at a time (journaled), keeps
 *    the snapshot current, watches the VMs, and does start-up recovery.
 * They talk through two queues, each with an eventfd. The ops thread hands
 * questions to the VMs' guest agents to a few workers of its own
 * (gsample.h), so a slow agent holds up no operation. See docs/iovmd.md.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>
#include <json-c/json.h>

#include "shared/clock.h"
#include "iovm/api.h"
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

/* A command for the ops thread. */
typedef struct iovmd_job {
	struct iovmd_job *next;
	uint64_t client;              /* who asked; replies go there */
	iovm_api_request req;         /* owns req.id */
} iovmd_job;

/* A line for the main thread: to one client, or to all (client 0). */
typedef struct iovmd_msg {
	struct iovmd_msg *next;
	uint64_t client;
	char *line;                   /* NULL for a snapshot message */
	bool final;                   /* the reply that ends the client's job */
	bool snapshot_follows;        /* a final reply sent before the job's snapshot:
	                               * reads wait for the next snapshot message */
	json_object *snapshot;        /* a new inventory snapshot, handed over (line and
	                               * snapshot both NULL: none could be made) */
	bool partial;                 /* snapshot holds only the members that changed */
} iovmd_msg;

typedef struct iovmd_queue {
	pthread_mutex_t lock;
	void *head, *tail;            /* iovmd_job or iovmd_msg (both start with next) */
	int efd;                      /* eventfd: readable while not empty */
} iovmd_queue;

int iovmd_queue_init(iovmd_queue *q);
void iovmd_queue_push(iovmd_queue *q, void *item);
void *iovmd_queue_pop_all(iovmd_queue *q);   /* the list, oldest first */

typedef struct iovmd {
	iovmd_config cfg;
	iovmd_queue jobs;             /* main -> ops */
	iovmd_queue msgs;             /* ops -> main */
	json_object *snapshot;        /* main thread only: {"pfs":[PF+vfs],"vms":[VM],...} */
	bool snapshot_stale;          /* main thread only: a job's reply is out, its snapshot not yet */
	int64_t started_ms;
	unsigned n_clients;
	volatile bool stopping;
	int ready_efd;                /* ops thread: recovery done (value 1) or failed (2) */
} iovmd;

/* ops.c */
int iovmd_ops_start(iovmd *d, pthread_t *ret);

/* server.c: runs the sd-event loop until SIGTERM/SIGINT. */
int iovmd_server_run(iovmd *d);
/* read.c: answers a read command from the snapshot (main thread); NULL and
 * err on failure. */
json_object *iovmd_read_command(iovmd *d, const iovm_api_request *r, iovm_error *err);
/* Finds a VF in a snapshot by PCI address or "PF/INDEX" (borrowed). */
json_object *iovmd_snapshot_find_vf(json_object *snap, const char *vf);
json_object *iovmd_snapshot_find_pf(json_object *snap, const char *pf);

/* Crash-injection hook for the recovery tests: with IOVM_CRASH_AT=
 * "OP:STEP" (e.g. "attach:device-added"), the daemon kills itself with
 * SIGKILL right after recording that step. Never set in production. */
void iovmd_crash_point(const char *op, const char *step);

