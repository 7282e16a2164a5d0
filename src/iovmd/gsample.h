/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The guest agents' questions, off the ops thread. An igb VF inside a guest
 * has no counters on the host side, so iovmd asks the VM's qemu-ga for the
 * guest's (docs/allocation.md). An agent can be slow (a guest under load,
 * nested emulation) or busy (it serves one client at a time), so the
 * questions run on a few threads of their own with a generous deadline;
 * the ops thread hands one over per VM and picks the answers up when
 * gsample_fd() is readable. One question per VM at a time; a question
 * under way is cancelled by gsample_free().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iovm/store.h"

#define GSAMPLE_WORKERS 4

typedef struct gsample gsample;

/* One VM's question, and then its answer. */
typedef struct gsample_q {
	struct gsample_q *next;
	char vm[IOVM_STORE_NAME_MAX];
	char qga[IOVM_STORE_PATH_MAX];
	size_t n;
	char (*vf)[IOVM_STORE_ADDR_MAX];  /* n VFs ... */
	char (*mac)[18];                  /* ... and the MAC each has in the guest */
	/* the answer: r as iovm_qga_if_bytes_many_cancel; bytes and status per VF */
	int r;
	char err[256];
	uint64_t *bytes;
	int *status;
} gsample_q;

/* TIMEOUT_MS: the deadline of each question. */
int gsample_new(int timeout_ms, gsample **ret);
/* Cancels the questions under way, drops the queued ones, joins the
 * workers. NULL is fine. */
void gsample_free(gsample *g);
/* Readable while answers are waiting for gsample_take(). */
int gsample_fd(const gsample *g);
/* A question for VM is queued or under way. */
bool gsample_pending(gsample *g, const char *vm);
/* Queues a question to the agent at QGA for the counters of N VFs by their
 * MACs. -EBUSY: VM has one pending; -EINVAL: a name, path, address or MAC
 * that does not fit; -ENOMEM. */
int gsample_ask(gsample *g, const char *vm, const char *qga, size_t n, const char *const *vfs,
		const char *const *macs);
/* The answers so far, oldest first (NULL: none); each ends the VM's
 * pending question. Free with gsample_q_free(). */
gsample_q *gsample_take(gsample *g);
/* Frees a list of questions or answers. */
void gsample_q_free(gsample_q *q);
