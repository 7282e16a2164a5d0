/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iovmctl's messages, usage errors and the checks of its own options. */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovmctl/args.h"

static const char *current_name, *current_usage;   /* for usage errors */

static __attribute__((format(printf, 1, 0))) void vsay(const char *fmt, va_list ap)
{
	fputs("iovmctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	return EXIT_FAILURE;
}

void args_set_command(const char *name, const char *usage)
{
	current_name = name;
	current_usage = usage;
}

int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	if (current_name)
		fprintf(stderr, "usage: iovmctl %s%s%s\n", current_name, *current_usage ? " " : "", current_usage);
	fputs("Try 'iovmctl --help' for more information.\n", stderr);
	return EXIT_USAGE;
}

int print_command_help(void)
{
	printf("usage: iovmctl %s %s\n", current_name, current_usage);
	return EXIT_SUCCESS;
}

int parse_int(const char *opt, const char *s, long long min, long long max, long long *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return usage_error("%s must be an integer %lld..%lld, not '%s'", opt, min, max, s);
	*ret = v;
	return 0;
}

int parse_seconds(const char *opt, const char *s, double min, double max, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !(v >= min && v <= max))
		return usage_error("%s must be a number of seconds %g..%g, not '%s'", opt, min, max, s);
	*ret = v;
	return 0;
}

int parse_onoff(const char *opt, const char *s, bool *ret)
{
	if (strcmp(s, "on") && strcmp(s, "off"))
		return usage_error("%s must be on|off, not '%s'", opt, s);
	*ret = !strcmp(s, "on");
	return 0;
}

int want_args(int argc, char **argv, int n, const char *what)
{
	if (argc - optind < n)
		return usage_error("missing %s", what);
	if (argc - optind > n)
		return usage_error("unexpected argument '%s'", argv[optind + n]);
	return 0;
}

int bad_option(int o, int argc, char **argv)
{
	const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "?";

	if (o == ':')
		return usage_error("option '%s' needs an argument", word);
	if (optopt && optopt != '?' && !(word[0] == '-' && word[1] == '-'))
		return usage_error("unknown option '-%c'", optopt);
	return usage_error("unknown option '%s'", word);
}

int no_options(int argc, char **argv, bool *helped)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, {} };
	int o;

	*helped = false;
	optind = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (o == 'h') {
			*helped = true;
			return print_command_help();
		}
		return bad_option(o, argc, argv);
	}
	return 0;
}
