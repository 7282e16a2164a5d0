/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iovmctl: command-line client. Thin for now. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	if (argc > 1 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		printf("usage: iovmctl [--socket PATH] [--json] COMMAND\n");
		return EXIT_SUCCESS;
	}
	fprintf(stderr, "iovmctl: no command is implemented yet\n");
	return EXIT_FAILURE;
}
