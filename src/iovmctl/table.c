/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Aligned text tables and the cell formats they share. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovmctl/args.h"
#include "iovmctl/table.h"
#include "shared/util.h"

const char *dash(const char *s)
{
	return s && *s ? s : "-";
}

/* "12.3 Mbit/s" */
void format_bps(char *buf, size_t n, double bps)
{
	static const char *const units[] = { "bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s" };
	unsigned u = 0;

	if (bps < 0)
		bps = 0;
	while (bps >= 1000 && u + 1 < ELEMENTSOF(units)) {
		bps /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%.0f %s", bps, units[u]);
	else
		snprintf(buf, n, "%.1f %s", bps, units[u]);
}

void table_init(table *t, const char *const *hdr)
{
	memset(t, 0, sizeof(*t));
	while (hdr[t->ncols] && t->ncols < TABLE_COLS_MAX) {
		t->hdr[t->ncols] = hdr[t->ncols];
		t->ncols++;
	}
}

void table_done(table *t)
{
	for (size_t i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
}

void table_cell(table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (t->ncells == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **c = realloc(t->cells, cap * sizeof(*c));

		if (!c) {
			fail("out of memory");
			exit(EXIT_FAILURE);
		}
		t->cells = c;
		t->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		fail("out of memory");
		exit(EXIT_FAILURE);
	}
	va_end(ap);
	t->cells[t->ncells++] = s;
	t->nrows = t->ncells / t->ncols;
}

static void table_print_row(const table *t, const size_t *w, const char *const *cells)
{
	for (size_t c = 0; c < t->ncols; c++) {
		if (c + 1 == t->ncols)
			printf("%s\n", cells[c]);
		else
			printf("%-*s  ", (int)w[c], cells[c]);
	}
}

void table_print(const table *t)
{
	size_t w[TABLE_COLS_MAX];

	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = strlen(t->hdr[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t l = strlen(t->cells[r * t->ncols + c]);

			if (l > w[c])
				w[c] = l;
		}
	}
	table_print_row(t, w, t->hdr);
	for (size_t r = 0; r < t->nrows; r++)
		table_print_row(t, w, (const char *const *)&t->cells[r * t->ncols]);
}
