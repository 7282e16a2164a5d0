/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* iovmd's options: defaults, /etc/iovm/iovm.conf ("key = value" lines, '#'
 * comments), then flags, which win. Every option is both. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/store.h"
#include "iovmd/iovmd.h"
#include "shared/util.h"

#define DEFAULT_CONFIG "/etc/iovm/iovm.conf"

void iovmd_config_defaults(iovmd_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->config_path, sizeof(c->config_path), "%s", DEFAULT_CONFIG);
	snprintf(c->socket_path, sizeof(c->socket_path), "%s", IOVM_API_DEFAULT_SOCKET);
	snprintf(c->state_path, sizeof(c->state_path), "%s", "/var/lib/iovm/iovm.db");
	snprintf(c->sysfs_root, sizeof(c->sysfs_root), "%s", "/sys");
	snprintf(c->group, sizeof(c->group), "%s", "iovm");
	c->socket_mode = 0660;
	c->max_clients = 128;
	c->attach_timeout_ms = 10000;
	c->detach_timeout_ms = 15000;
	c->refresh_interval_ms = 2000;
	c->sample_interval_ms = 1000;
	c->window_ms = 10000;
	c->level = LOG_INFO;
	c->recover = true;
	c->max_users = 4;
	c->shared_reserve = 0;
	c->rebalance = false;
	c->journal_keep = IOVM_STORE_INTENT_KEEP_DEFAULT;
}

enum {
	OPT_CONFIG = 0x100, OPT_SOCKET, OPT_STATE, OPT_SYSFS_ROOT, OPT_GROUP, OPT_SOCKET_MODE,
	OPT_MAX_CLIENTS, OPT_ATTACH_TIMEOUT, OPT_DETACH_TIMEOUT, OPT_REFRESH, OPT_SAMPLE,
	OPT_WINDOW, OPT_LOG_LEVEL, OPT_NO_RECOVER, OPT_MAX_USERS, OPT_SHARED_RESERVE, OPT_REBALANCE,
	OPT_JOURNAL_KEEP, OPT_HELP, OPT_VERSION,
};

static const struct option options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "state", required_argument, NULL, OPT_STATE },
	{ "sysfs-root", required_argument, NULL, OPT_SYSFS_ROOT },
	{ "group", required_argument, NULL, OPT_GROUP },
	{ "socket-mode", required_argument, NULL, OPT_SOCKET_MODE },
	{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
	{ "attach-timeout", required_argument, NULL, OPT_ATTACH_TIMEOUT },
	{ "detach-timeout", required_argument, NULL, OPT_DETACH_TIMEOUT },
	{ "refresh-interval", required_argument, NULL, OPT_REFRESH },
	{ "sample-interval", required_argument, NULL, OPT_SAMPLE },
	{ "window", required_argument, NULL, OPT_WINDOW },
	{ "log-level", required_argument, NULL, OPT_LOG_LEVEL },
	{ "no-recover", no_argument, NULL, OPT_NO_RECOVER },
	{ "max-users", required_argument, NULL, OPT_MAX_USERS },
	{ "shared-reserve", required_argument, NULL, OPT_SHARED_RESERVE },
	{ "rebalance", no_argument, NULL, OPT_REBALANCE },
	{ "journal-keep", required_argument, NULL, OPT_JOURNAL_KEEP },
	{ "help", no_argument, NULL, OPT_HELP },
	{ "version", no_argument, NULL, OPT_VERSION },
	{}
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: iovmd [--config FILE] [--socket PATH] [--state DB] [--sysfs-root DIR]\n"
		"             [--group NAME] [--socket-mode OCTAL] [--max-clients N]\n"
		"             [--attach-timeout MS] [--detach-timeout MS] [--refresh-interval MS]\n"
		"             [--sample-interval MS] [--window MS] [--log-level error|warning|info|debug]\n"
		"             [--no-recover] [--max-users N] [--shared-reserve N] [--rebalance]\n"
		"             [--journal-keep N]\n"
		"Every option can also be set as \"key = value\" in the config file\n"
		"(default " DEFAULT_CONFIG "); a flag wins over the file. See iovmd(8).\n");
}

static int parse_long(const char *name, const char *v, long min, long max, int base, long *ret)
{
	char *end;
	long x;

	errno = 0;
	x = strtol(v, &end, base);
	if (errno || end == v || *end || x < min || x > max) {
		fprintf(stderr, "iovmd: option %s: '%s' is not a number in %ld..%ld\n", name, v, min, max);
		return -EINVAL;
	}
	*ret = x;
	return 0;
}

static int set_string(const char *name, char *dst, size_t n, const char *v)
{
	if (!*v || strlen(v) >= n) {
		fprintf(stderr, "iovmd: option %s: value empty or longer than %zu bytes\n", name, n - 1);
		return -EINVAL;
	}
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

/* The numeric options: their range and base, and the member they set (an
 * int, or an unsigned). */
static const struct number_option {
	int id;
	long min, max;
	int base;
	size_t offset;
	bool is_int;
} numbers[] = {
	{ OPT_SOCKET_MODE,    0,   0777,     8,  offsetof(iovmd_config, socket_mode),         false },
	{ OPT_MAX_CLIENTS,    1,   65536,    10, offsetof(iovmd_config, max_clients),         false },
	{ OPT_ATTACH_TIMEOUT, 100, 600000,   10, offsetof(iovmd_config, attach_timeout_ms),   true },
	{ OPT_DETACH_TIMEOUT, 100, 600000,   10, offsetof(iovmd_config, detach_timeout_ms),   true },
	{ OPT_REFRESH,        100, 3600000,  10, offsetof(iovmd_config, refresh_interval_ms), true },
	{ OPT_SAMPLE,         100, 3600000,  10, offsetof(iovmd_config, sample_interval_ms),  true },
	{ OPT_WINDOW,         100, 86400000, 10, offsetof(iovmd_config, window_ms),           true },
	{ OPT_MAX_USERS,      1,   1024,     10, offsetof(iovmd_config, max_users),           false },
	{ OPT_SHARED_RESERVE, 0,   4096,     10, offsetof(iovmd_config, shared_reserve),      false },
	{ OPT_JOURNAL_KEEP,   0,   1000000,  10, offsetof(iovmd_config, journal_keep),        false },
};

static int apply_number(iovmd_config *c, const struct number_option *n, const char *name, const char *v)
{
	char *member = (char *)c + n->offset;
	long x;
	int r;

	r = parse_long(name, v, n->min, n->max, n->base, &x);
	if (r < 0)
		return r;
	if (n->is_int)
		*(int *)member = (int)x;
	else
		*(unsigned *)member = (unsigned)x;
	return 0;
}

/* Applies one option by its id; name is for messages. */
static int apply(iovmd_config *c, int id, const char *name, const char *v)
{
	for (size_t i = 0; i < ELEMENTSOF(numbers); i++)
		if (numbers[i].id == id)
			return apply_number(c, &numbers[i], name, v);
	switch (id) {
	case OPT_CONFIG:
		return set_string(name, c->config_path, sizeof(c->config_path), v);
	case OPT_SOCKET:
		if (v[0] != '/') {
			fprintf(stderr, "iovmd: option %s: '%s' is not an absolute path\n", name, v);
			return -EINVAL;
		}
		return set_string(name, c->socket_path, sizeof(c->socket_path), v);
	case OPT_STATE:
		return set_string(name, c->state_path, sizeof(c->state_path), v);
	case OPT_SYSFS_ROOT:
		return set_string(name, c->sysfs_root, sizeof(c->sysfs_root), v);
	case OPT_GROUP:
		return set_string(name, c->group, sizeof(c->group), v);
	case OPT_LOG_LEVEL:
		if (!strcmp(v, "error")) c->level = LOG_ERR;
		else if (!strcmp(v, "warning")) c->level = LOG_WARNING;
		else if (!strcmp(v, "info")) c->level = LOG_INFO;
		else if (!strcmp(v, "debug")) c->level = LOG_DEBUG;
		else {
			fprintf(stderr, "iovmd: option %s: '%s' is not error, warning, info or debug\n", name, v);
			return -EINVAL;
		}
		return 0;
	case OPT_NO_RECOVER:
	case OPT_REBALANCE: {
		bool yes;

		if (!v || !strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1"))
			yes = true;
		else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0"))
			yes = false;
		else {
			fprintf(stderr, "iovmd: option %s: '%s' is not yes or no\n", name, v);
			return -EINVAL;
		}
		if (id == OPT_NO_RECOVER)
			c->recover = !yes;
		else
			c->rebalance = yes;
		return 0;
	}
	}
	return -EINVAL;
}

static char *strip(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* A missing file is fine unless it was named explicitly. */
static int load_file(iovmd_config *c, const char *path, bool explicit)
{
	_cleanup_fclose_ FILE *f = fopen(path, "re");
	char line[4352];
	unsigned lineno = 0;

	if (!f) {
		if (errno == ENOENT && !explicit)
			return 0;
		fprintf(stderr, "iovmd: config %s: %s\n", path, strerror(errno));
		return -errno;
	}
	while (fgets(line, sizeof(line), f)) {
		char *k, *v, *eq, *hash;
		const struct option *o;
		int r;

		lineno++;
		hash = strchr(line, '#');
		if (hash)
			*hash = '\0';
		k = strip(line);
		if (!*k)
			continue;
		eq = strchr(k, '=');
		if (!eq) {
			fprintf(stderr, "iovmd: config %s:%u: expected \"key = value\"\n", path, lineno);
			return -EINVAL;
		}
		*eq = '\0';
		k = strip(k);
		v = strip(eq + 1);
		for (o = options; o->name; o++)
			if (!strcmp(o->name, k))
				break;
		if (!o->name || o->val == OPT_CONFIG || o->val == OPT_HELP || o->val == OPT_VERSION) {
			fprintf(stderr, "iovmd: config %s:%u: unknown key '%s'\n", path, lineno, k);
			return -EINVAL;
		}
		r = apply(c, o->val, k, v);
		if (r < 0) {
			fprintf(stderr, "iovmd: (in config %s:%u)\n", path, lineno);
			return r;
		}
	}
	return 0;
}

int iovmd_config_load(iovmd_config *c, int argc, char **argv)
{
	bool explicit = false;
	int o, r;

	/* Pass 1: find --config, --help, --version and reject bad flags. */
	opterr = 1;
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		if (o == OPT_HELP || o == 'h') {
			usage(stdout);
			return 1;
		}
		if (o == OPT_VERSION) {
			printf("iovmd %s (API %d)\n", IOVMD_VERSION, IOVM_API_VERSION);
			return 1;
		}
		if (o == '?') {
			usage(stderr);
			return -EINVAL;
		}
		if (o == OPT_CONFIG) {
			r = apply(c, o, "--config", optarg);
			if (r < 0)
				return r;
			explicit = true;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "iovmd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return -EINVAL;
	}
	r = load_file(c, c->config_path, explicit);
	if (r < 0)
		return r;
	/* Pass 2: flags win. */
	optind = 1;
	while ((o = getopt_long(argc, argv, "h", options, NULL)) != -1) {
		const char *name = NULL;

		for (const struct option *p = options; p->name; p++)
			if (p->val == o)
				name = p->name;
		if (o == OPT_CONFIG)
			continue;
		r = apply(c, o, name ? name : "?", optarg);
		if (r < 0)
			return r;
	}
	return 0;
}
