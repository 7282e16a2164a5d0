/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The VF pool: which VF is free, being attached, in use, waiting for its
 * guest to release it, or waiting to be reclaimed from a dead VM. A VF is
 * handed out again only once it is free.
 */

#include <stdbool.h>
#include <stddef.h>

#include "iovm/error.h"
#include "iovm/qdev.h"

typedef enum iovm_vf_use {
	IOVM_VF_FREE,             /* no entry: may be handed out */
	IOVM_VF_ATTACHING,        /* reserved, device_add in progress */
	IOVM_VF_IN_USE,           /* in a VM */
	IOVM_VF_RELEASE_PENDING,  /* device_del sent, guest has not released it */
	IOVM_VF_RECLAIM,          /* its VM died; waiting to be returned */
} iovm_vf_use;

const char *iovm_vf_use_to_string(iovm_vf_use u);

typedef struct iovm_vf_entry {
	char vf[IOVM_VM_ADDR_MAX];
	iovm_vf_use use;
	char vm[IOVM_VM_ID_MAX];
	char devid[IOVM_VM_ID_MAX];
	char port[IOVM_VM_ID_MAX];
	char orig_driver[64];     /* driver before attach, restored on release; "" = none */
	char saved_net[160];      /* VF settings before attach (iovm_vfnet_config_format), "" = untouched */
} iovm_vf_entry;

typedef struct iovm_vf_pool iovm_vf_pool;

int iovm_vf_pool_new(iovm_vf_pool **ret);
iovm_vf_pool *iovm_vf_pool_free(iovm_vf_pool *p);
/* For _cleanup_(iovm_vf_pool_freep): iovm_vf_pool_free(*p). */
static inline void iovm_vf_pool_freep(iovm_vf_pool **p)
{
	iovm_vf_pool_free(*p);
}

/* FREE -> ATTACHING for vm; -EBUSY naming the holder otherwise. */
int iovm_vf_pool_reserve(iovm_vf_pool *p, const char *vf, const char *vm, iovm_error *err);
/* Moves an existing entry to use (IOVM_VF_FREE removes it). -ENOENT if the
 * VF has no entry. */
int iovm_vf_pool_set(iovm_vf_pool *p, const char *vf, iovm_vf_use use);
/* Returns a pointer into the pool (valid until the next change) or NULL. */
iovm_vf_entry *iovm_vf_pool_get(iovm_vf_pool *p, const char *vf);
iovm_vf_entry *iovm_vf_pool_find_devid(iovm_vf_pool *p, const char *vm, const char *devid);
/* Iteration: entries 0..n-1. */
size_t iovm_vf_pool_size(const iovm_vf_pool *p);
iovm_vf_entry *iovm_vf_pool_at(iovm_vf_pool *p, size_t i);

/* The pool as JSON in a file, so separate CLI runs share it. A missing file
 * is an empty pool. Writes go through a temporary file and rename(). */
int iovm_vf_pool_load(iovm_vf_pool *p, const char *path, iovm_error *err);
int iovm_vf_pool_save(const iovm_vf_pool *p, const char *path, iovm_error *err);
