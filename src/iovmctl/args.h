/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iovmctl's messages and its own command-line checks (the API arguments are
 * checked by libiovm-api, see commands.c). */
#pragma once

#include <stdbool.h>

#define EXIT_USAGE 2

/* "iovmctl: message" on stderr; returns EXIT_FAILURE. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The command being run, for usage errors and --help. */
void args_set_command(const char *name, const char *usage);
/* "iovmctl: message", the command's usage line, a hint; returns EXIT_USAGE. */
int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "usage: iovmctl NAME USAGE" on stdout (--help); returns EXIT_SUCCESS. */
int print_command_help(void);

/* Option values of iovmctl's own (not API arguments): usage errors. */
int parse_int(const char *opt, const char *s, long long min, long long max, long long *ret);
int parse_seconds(const char *opt, const char *s, double min, double max, double *ret);
int parse_onoff(const char *opt, const char *s, bool *ret);

/* Positional arguments left after getopt: exactly n, else "missing what". */
int want_args(int argc, char **argv, int n, const char *what);
/* getopt_long returned '?' or ':' (opterr off, optstrings start with ':'). */
int bad_option(int o, int argc, char **argv);
/* For commands without options: still accept --help (then *helped). */
int no_options(int argc, char **argv, bool *helped);
