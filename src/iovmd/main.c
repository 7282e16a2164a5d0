/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iovmd: the per-host daemon. Thin for now: it parses its options and exits;
 * the API server, state store and reconciler land with their issues. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

static void usage(FILE *f)
{
	fprintf(f, "usage: iovmd [--config FILE] [--socket PATH] [--state DB] [--sysfs-root DIR]\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "state", required_argument, NULL, 'd' },
		{ "sysfs-root", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	int c;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'c': case 's': case 'd': case 'r':
			break;
		default:
			usage(stderr);
			return EXIT_FAILURE;
		}
	}
	fprintf(stderr, "iovmd: the daemon is not implemented yet\n");
	return EXIT_FAILURE;
}
