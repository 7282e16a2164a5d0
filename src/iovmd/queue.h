/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The two queues between the main thread and the ops thread, each with an
 * eventfd that is readable while the queue is not empty: jobs (main -> ops:
 * mutating commands) and messages (ops -> main: lines for clients, and
 * inventory snapshots). Both item types start with their next pointer. The
 * only thing main.c, server.c and the ops modules share.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <json-c/json.h>

#include "iovm/api.h"

/* A command for the ops thread. A job with client 0 asks for nothing; it
 * only wakes the thread (to see that it is stopping). */
typedef struct iovmd_job {
	struct iovmd_job *next;
	uint64_t client;              /* who asked; replies go there */
	iovm_api_request req;         /* owns req.id */
} iovmd_job;

typedef enum iovmd_msg_kind {
	IOVMD_MSG_PROGRESS,           /* line to client; its job goes on */
	IOVMD_MSG_REPLY,              /* line to client: the reply that ends its job */
	IOVMD_MSG_EVENT,              /* line to every client */
	IOVMD_MSG_SNAPSHOT,           /* snapshot: a whole new inventory snapshot */
	IOVMD_MSG_SNAPSHOT_PART,      /* snapshot: only the members that changed */
	IOVMD_MSG_NO_SNAPSHOT,        /* a job's snapshot could not be made */
} iovmd_msg_kind;

/* Something for the main thread; kind says which members are set. */
typedef struct iovmd_msg {
	struct iovmd_msg *next;
	iovmd_msg_kind kind;
	uint64_t client;              /* PROGRESS, REPLY */
	char *line;                   /* PROGRESS, REPLY, EVENT (owned) */
	bool snapshot_follows;        /* REPLY sent before its job's snapshot: reads
	                               * wait for the next snapshot message */
	json_object *snapshot;        /* SNAPSHOT, SNAPSHOT_PART (handed over) */
} iovmd_msg;

typedef struct iovmd_queue {
	pthread_mutex_t lock;
	void *head, *tail;            /* iovmd_job or iovmd_msg (both start with next) */
	int efd;                      /* eventfd: readable while not empty */
} iovmd_queue;

int iovmd_queue_init(iovmd_queue *q);
void iovmd_queue_push(iovmd_queue *q, void *item);
void *iovmd_queue_pop_all(iovmd_queue *q);   /* the list, oldest first */
/* Frees what is still queued (free_item frees one item) and the eventfd. */
void iovmd_queue_done(iovmd_queue *q, void (*free_item)(void *item));

/* Frees a message and what it owns; NULL is fine. */
void iovmd_msg_free(void *m);
