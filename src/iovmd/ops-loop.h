/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <pthread.h>

#include "iovmd/iovmd.h"

/* Starts the ops thread (ops-loop.c). It writes 1 to d->ready_efd once
 * start-up and recovery are done, 2 if they failed; it stops when
 * d->stopping is set and a job wakes it. */
int iovmd_ops_start(iovmd *d, pthread_t *ret);
