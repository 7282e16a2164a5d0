/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Aligned text tables: a header, cells added row by row, columns as wide
 * as their widest cell. */
#pragma once

#include <stddef.h>

#define TABLE_COLS_MAX 16

typedef struct table {
	size_t ncols;
	const char *hdr[TABLE_COLS_MAX];
	char **cells;                /* nrows * ncols, row-major */
	size_t nrows, ncells, cap;
} table;

/* hdr is NULL-terminated and borrowed. */
void table_init(table *t, const char *const *hdr);
void table_done(table *t);
/* The next cell; exits on allocation failure. */
void table_cell(table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void table_print(const table *t);

/* s, or "-" when empty. */
const char *dash(const char *s);
/* "12.3 Mbit/s" */
void format_bps(char *buf, size_t n, double bps);
