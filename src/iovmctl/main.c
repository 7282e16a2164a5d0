/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iovmctl: the command-line client of iovmd. This file reads the global
 * options and finds the command (commands.c); the connection is client.c,
 * the printing output.c and table.c.
 *
 * Arguments are checked before anything is sent, with the daemon's own
 * checks, so a typo is a usage error (exit 2) rather than a round trip. A
 * daemon error exits with its errno number (16 for EBUSY...), any other
 * failure with 1.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iovm/api-schema.h"
#include "iovmctl/args.h"
#include "iovmctl/client.h"
#include "iovmctl/commands.h"

#define DEFAULT_TIMEOUT_S 120.0

static void usage(FILE *f)
{
	fputs("usage: iovmctl [--socket PATH] [--json] [--timeout SEC] COMMAND [ARGS]\n\n"
	      "Commands:\n", f);
	for (size_t i = 0; i < commands_count; i++)
		fprintf(f, "  %s%s%s\n", commands[i].name, *commands[i].usage ? " " : "", commands[i].usage);
	fputs("\nOptions:\n"
	      "  -s, --socket PATH   daemon socket (default $IOVM_SOCKET or " IOVM_API_DEFAULT_SOCKET ")\n"
	      "  -j, --json          print the daemon's reply as JSON\n"
	      "  -t, --timeout SEC   wait at most SEC seconds for a reply (default 120, 0: no limit)\n"
	      "  -h, --help          show this help\n"
	      "  -V, --version       show the version\n"
	      "\nA VF is a PCI address (0000:01:10.2) or PF/INDEX (eth0/2). See iovmctl(8).\n", f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	ctl c = { .timeout_s = DEFAULT_TIMEOUT_S, .fd = -1 };
	const command *cmd = NULL;
	int o, r, words = 0;

	c.socket = getenv("IOVM_SOCKET");
	if (!c.socket || !*c.socket)
		c.socket = IOVM_API_DEFAULT_SOCKET;
	c.progress_tty = isatty(STDERR_FILENO);
	opterr = 0;   /* bad_option() says what was wrong */

	/* "+": global options come before the command */
	while ((o = getopt_long(argc, argv, "+:s:jt:hV", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			if (!*optarg)
				return usage_error("--socket needs a path");
			c.socket = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 't':
			if ((r = parse_seconds("--timeout", optarg, 0, 86400, &c.timeout_s)))
				return r;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("iovmctl %s\n", IOVM_VERSION);
			return EXIT_SUCCESS;
		default:
			return bad_option(o, argc, argv);
		}
	}
	if (optind >= argc)
		return usage_error("missing command");

	/* one-word commands, then two-word ones ("pf list") */
	for (size_t i = 0; i < commands_count && !cmd; i++) {
		const char *name = commands[i].name, *sp = strchr(name, ' ');

		if (!sp && !strcmp(name, argv[optind])) {
			cmd = &commands[i];
			words = 1;
		} else if (sp && strlen(argv[optind]) == (size_t)(sp - name) &&
			   !strncmp(name, argv[optind], (size_t)(sp - name))) {
			if (optind + 1 >= argc)
				return usage_error("'%s' needs a subcommand, e.g. '%s'", argv[optind], name);
			if (!strcmp(sp + 1, argv[optind + 1])) {
				cmd = &commands[i];
				words = 2;
			}
		}
	}
	if (!cmd) {
		bool group = optind + 1 < argc && (!strcmp(argv[optind], "pf") || !strcmp(argv[optind], "vf") ||
						   !strcmp(argv[optind], "vm"));

		return usage_error("unknown command '%s%s%s'", argv[optind], group ? " " : "",
				   group ? argv[optind + 1] : "");
	}
	args_set_command(cmd->name, cmd->usage);
	/* the command's argv: argv[0] is its last word */
	r = cmd->run(&c, cmd, argc - optind - words + 1, argv + optind + words - 1);
	ctl_done(&c);
	return r;
}
