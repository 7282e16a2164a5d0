/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shared/hashmap.h"

/* FNV-1a */
static size_t hash_str(const char *s)
{
	uint64_t x = 1469598103934665603ULL;

	for (; *s; s++)
		x = (x ^ (unsigned char)*s) * 1099511628211ULL;
	return (size_t)x;
}

void *hashmap_get(const hashmap *m, const char *key)
{
	if (!m->nb)
		return NULL;
	for (hashmap_entry *e = m->b[hash_str(key) & (m->nb - 1)]; e; e = e->next)
		if (strcmp(e->key, key) == 0)
			return e->val;
	return NULL;
}

int hashmap_put(hashmap *m, const char *key, void *val)
{
	hashmap_entry *e;
	size_t i;

	if (m->n + 1 > m->nb) {
		size_t nb = m->nb ? m->nb * 2 : 64;
		hashmap_entry **b = calloc(nb, sizeof(*b));

		if (!b)
			return -ENOMEM;
		for (size_t j = 0; j < m->nb; j++)
			while (m->b[j]) {
				hashmap_entry *x = m->b[j];

				m->b[j] = x->next;
				i = hash_str(x->key) & (nb - 1);
				x->next = b[i];
				b[i] = x;
			}
		free(m->b);
		m->b = b;
		m->nb = nb;
	}
	e = malloc(sizeof(*e));
	if (!e)
		return -ENOMEM;
	i = hash_str(key) & (m->nb - 1);
	*e = (hashmap_entry){ .key = key, .val = val, .next = m->b[i] };
	m->b[i] = e;
	m->n++;
	return 0;
}

void hashmap_del(hashmap *m, const char *key)
{
	if (!m->nb)
		return;
	for (hashmap_entry **pe = &m->b[hash_str(key) & (m->nb - 1)]; *pe; pe = &(*pe)->next)
		if (strcmp((*pe)->key, key) == 0) {
			hashmap_entry *e = *pe;

			*pe = e->next;
			free(e);
			m->n--;
			return;
		}
}

void hashmap_clear(hashmap *m, void (*fn)(void *))
{
	for (size_t j = 0; j < m->nb; j++)
		while (m->b[j]) {
			hashmap_entry *e = m->b[j];

			m->b[j] = e->next;
			if (fn)
				fn(e->val);
			free(e);
		}
	free(m->b);
	*m = (hashmap){};
}
