/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iovmctl's commands: most are an API command with its arguments given as
 * positionals and options (run by the table), top and raw run their own. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <json-c/json.h>

#include "iovm/api-schema.h"
#include "iovmctl/client.h"

/* One argument of a command: a positional one (opt NULL, required) or an
 * option, and the API argument it becomes (whose kind says how the text is
 * read: an integer, on|off for a boolean, a path made absolute, else as is). */
typedef struct param {
	const char *opt;                 /* "vlan" for --vlan; NULL: positional */
	iovm_api_arg arg;
	const char *label;               /* positional: "PF"; names in messages */
	bool required;                   /* an option that must be given */
} param;

typedef struct command command;
struct command {
	const char *name;          /* "pf list" */
	const char *usage;         /* arguments after the name */
	/* table-driven commands: */
	iovm_api_cmd api;
	const param *params;       /* positionals first */
	size_t nparams;
	void (*print)(json_object *ret);
	/* every command: */
	int (*run)(ctl *c, const command *cmd, int argc, char **argv);
};

extern const command commands[];
extern const size_t commands_count;
