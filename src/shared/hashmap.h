/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A string-keyed hash map of pointers (chained, power-of-two buckets,
 * FNV-1a). Keys are borrowed: each must live as long as its entry (it
 * usually points into the value). */

#include <stddef.h>

typedef struct hashmap_entry {
	const char *key;
	void *val;
	struct hashmap_entry *next;
} hashmap_entry;

typedef struct hashmap {
	hashmap_entry **b;
	size_t nb, n;
} hashmap;

void *hashmap_get(const hashmap *m, const char *key);     /* NULL if absent */
int hashmap_put(hashmap *m, const char *key, void *val);  /* -ENOMEM; key must be new */
void hashmap_del(hashmap *m, const char *key);
/* Calls fn (if not NULL) on every value, then frees the map's memory. */
void hashmap_clear(hashmap *m, void (*fn)(void *));
