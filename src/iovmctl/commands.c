/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The command table and the commands. Arguments are checked here before
 * anything is sent, with the daemon's own checks (libiovm-api): a value the
 * daemon would refuse is a usage error (exit 2) with the daemon's message,
 * rather than a round trip.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iovmctl/args.h"
#include "iovmctl/commands.h"
#include "iovmctl/js.h"
#include "iovmctl/output.h"
#include "shared/clock.h"
#include "shared/util.h"

#define PARAMS_MAX 12

/* A relative path made absolute: the daemon does not run where we do. */
static int absolute_path(const char *v, char **ret)
{
	char cwd[4096];

	if (!getcwd(cwd, sizeof(cwd)))
		return fail("getcwd: %s", strerror(errno));
	if (asprintf(ret, "%s/%s", strcmp(cwd, "/") ? cwd : "", v) < 0)
		return fail("out of memory");
	return 0;
}

/* Reads one argument's text as its API kind says and adds it to args (the
 * values themselves are checked with the whole request, in run_command). */
static int param_add(json_object *args, const command *cmd, const param *p, const char *v)
{
	const iovm_api_arg_def *d = iovm_api_arg_get(p->arg);
	_cleanup_free_ char *abs = NULL;
	iovm_error e = {};
	char what[64];
	int64_t n;
	bool b;
	int r;

	switch (d->kind) {
	case IOVM_API_KIND_INT:
		if (iovm_api_parse_int(cmd->api, p->arg, v, &n, &e) < 0)
			return usage_error("%s", e.msg);
		json_object_object_add(args, d->name, json_object_new_int64(n));
		return 0;
	case IOVM_API_KIND_BOOL:
		snprintf(what, sizeof(what), "--%s", p->opt);
		if ((r = parse_onoff(what, v, &b)))
			return r;
		json_object_object_add(args, d->name, json_object_new_boolean(b));
		return 0;
	case IOVM_API_KIND_PATH:
		if (*v && v[0] != '/') {
			if ((r = absolute_path(v, &abs)))
				return r;
			v = abs;
		}
		break;
	default:
		break;
	}
	json_object_object_add(args, d->name, json_object_new_string(v));
	return 0;
}

/* The arguments from argv: every positional, the options given. *ret is
 * NULL when there are none. */
static int collect_args(const command *cmd, const char *const *vals, int argc, char **argv,
			json_object **ret)
{
	_cleanup_json_ json_object *args = json_object_new_object();
	iovm_error e = {};
	int r;

	if (!args)
		return fail("out of memory");
	for (size_t i = 0, pos = 0; i < cmd->nparams; i++) {
		const param *p = &cmd->params[i];
		const char *v = p->opt ? vals[i] : argv[optind + pos++];

		if (!v && p->required)
			return usage_error("--%s %s is required", p->opt, p->label);
		if (v && (r = param_add(args, cmd, p, v)))
			return r;
	}
	/* What the daemon would refuse, refused here with its words. */
	if (iovm_api_check_arguments(cmd->api, args, &e) < 0)
		return usage_error("%s", e.msg);
	*ret = json_object_object_length(args) ? TAKE_PTR(args) : NULL;
	return 0;
}

/* A command described by its params: parse the options, check every
 * argument, send, print. */
static int run_command(ctl *c, const command *cmd, int argc, char **argv)
{
	struct option opts[PARAMS_MAX + 2] = {};
	const char *vals[PARAMS_MAX] = {};
	size_t nopts = 0, npos = 0;
	json_object *args = NULL;
	int o, r;

	/* an option's val is 256 + its index in params */
	for (size_t i = 0; i < cmd->nparams; i++) {
		if (cmd->params[i].opt)
			opts[nopts++] = (struct option){ cmd->params[i].opt, required_argument, NULL, 256 + (int)i };
		else
			npos++;
	}
	opts[nopts] = (struct option){ "help", no_argument, NULL, 'h' };

	optind = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (o == 'h')
			return print_command_help();
		if (o < 256)
			return bad_option(o, argc, argv);
		vals[o - 256] = optarg;
	}

	if ((size_t)(argc - optind) < npos)
		return usage_error("missing %s", cmd->params[argc - optind].label);
	if ((size_t)(argc - optind) > npos)
		return usage_error("unexpected argument '%s'", argv[optind + npos]);
	if ((r = collect_args(cmd, vals, argc, argv, &args)))
		return r;
	return ctl_run(c, iovm_api_cmd_to_string(cmd->api), args, cmd->print);
}

static int cmd_top(ctl *c, const command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{ "pf", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	double interval = 1.0;
	long long count = 0;
	const char *pf = NULL;
	bool tty = isatty(STDOUT_FILENO);
	iovm_error e = {};
	int o, r;

	optind = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 'h':
			return print_command_help();
		case 'i':
			if ((r = parse_seconds("--interval", optarg, 0.1, 3600, &interval)))
				return r;
			break;
		case 'n':
			if ((r = parse_int("--count", optarg, 1, INT32_MAX, &count)))
				return r;
			break;
		case 'p':
			if (iovm_api_check_name(IOVM_API_VF_LIST, IOVM_API_ARG_PF, optarg, &e) < 0)
				return usage_error("%s", e.msg);
			pf = optarg;
			break;
		default:
			return bad_option(o, argc, argv);
		}
	}
	if ((r = want_args(argc, argv, 0, "")))
		return r;
	if ((r = ctl_connect(c)))
		return r;

	_cleanup_json_ json_object *a = NULL;
	if (pf) {
		a = json_object_new_object();
		json_object_object_add(a, iovm_api_arg_to_string(IOVM_API_ARG_PF), json_object_new_string(pf));
	}
	for (long long n = 0; !count || n < count; n++) {
		_cleanup_json_ json_object *ret = NULL;
		int64_t next = now_ms() + (int64_t)(interval * 1000);

		if ((r = ctl_call(c, iovm_api_cmd_to_string(IOVM_API_VF_LIST), a, &ret)))
			return r;
		if (!is_array(ret))
			return fail("malformed reply to vf-list: not an array");

		sort_by_throughput(ret);
		if (c->json)
			printf("%s\n", json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
		else {
			if (n && !tty)
				printf("\n");
			print_top(ret, interval, tty);
		}
		fflush(stdout);
		if (count && n + 1 >= count)
			break;
		if ((r = ctl_drain_until(c, next)))
			return r;
	}
	return 0;
}

static int cmd_raw(ctl *c, const command *cmd, int argc, char **argv)
{
	bool helped;
	json_object *a = NULL;
	int r = no_options(argc, argv, &helped);

	if (r || helped)
		return r;
	if (argc - optind < 1)
		return usage_error("missing COMMAND");
	if (argc - optind > 2)
		return usage_error("unexpected argument '%s'", argv[optind + 2]);
	if (argc - optind == 2) {
		a = json_tokener_parse(argv[optind + 1]);
		if (!a || !json_object_is_type(a, json_type_object)) {
			json_object_put(a);
			return usage_error("ARGS must be a JSON object, not '%s'", argv[optind + 1]);
		}
	}
	c->json = true;
	return ctl_run(c, argv[optind], a, NULL);
}
/* ---- the table ----------------------------------------------------------- */

#define POS(a, l) { .arg = IOVM_API_ARG_##a, .label = l }
#define OPT(o, a) { .opt = o, .arg = IOVM_API_ARG_##a }

static const param pf_params[] = { POS(PF, "PF") };
static const param vf_params[] = { POS(VF, "VF") };
static const param vm_params[] = { POS(NAME, "VM name") };
static const param set_vfs_params[] = {
	POS(PF, "PF"),
	POS(COUNT, "COUNT"),
	OPT("driver", DRIVER),
	OPT("live", LIVE),
	OPT("timeout-ms", TIMEOUT_MS),
};
static const param vf_list_params[] = { OPT("pf", PF) };

static const param vf_set_params[] = {
	POS(VF, "VF"),
	OPT("mac", MAC),
	OPT("vlan", VLAN),
	OPT("qos", QOS),
	OPT("rate", RATE),
	OPT("trust", TRUST),
	OPT("spoofchk", SPOOFCHK),
	OPT("link", LINK),
};

static const param vm_add_params[] = {
	POS(NAME, "VM name"),
	{ .opt = "qmp", .arg = IOVM_API_ARG_QMP, .label = "SOCKET", .required = true },
	{ .opt = "qga", .arg = IOVM_API_ARG_QGA, .label = "SOCKET" },
	OPT("priority", PRIORITY),
	OPT("numa-node", NUMA_NODE),
	{ .opt = "incoming", .arg = IOVM_API_ARG_INCOMING, .label = "SRC-VM" },
};

static const param attach_params[] = {
	POS(VM, "VM name"),
	OPT("vf", VF),
	OPT("pf", PF),
	OPT("mode", MODE),
	OPT("mac", MAC),
	OPT("vlan", VLAN),
	OPT("failover-pair-id", FAILOVER_PAIR_ID),
	OPT("timeout-ms", TIMEOUT_MS),
};

static const param detach_params[] = { POS(VM, "VM name"), OPT("vf", VF), OPT("timeout-ms", TIMEOUT_MS) };
static const param migrate_params[] = { POS(VM, "VM name"), OPT("timeout-ms", TIMEOUT_MS) };

#define COMMAND(n, u, a, pr) \
	{ .name = n, .usage = u, .api = IOVM_API_##a, .print = pr, .run = run_command }
#define COMMAND_P(n, u, a, par, pr) \
	{ .name = n, .usage = u, .api = IOVM_API_##a, .params = par, .nparams = ELEMENTSOF(par), .print = pr, \
	  .run = run_command }

const command commands[] = {
	COMMAND("status", "", STATUS, print_show),
	COMMAND("pf list", "", PF_LIST, print_pf_list),
	COMMAND_P("pf show", "PF", PF_SHOW, pf_params, print_pf_show),
	COMMAND_P("pf set-vfs", "PF COUNT [--driver vfio-pci|host] [--live auto|pause|failover|replug] "
		  "[--timeout-ms MS]", PF_SET_VFS, set_vfs_params, print_set_vfs),
	COMMAND_P("vf list", "[--pf PF]", VF_LIST, vf_list_params, print_vf_list),
	COMMAND_P("vf show", "VF", VF_SHOW, vf_params, print_show),
	COMMAND_P("vf set", "VF [--mac MAC] [--vlan ID] [--qos N] [--rate MBPS] [--trust on|off] "
		  "[--spoofchk on|off] [--link auto|enable|disable]", VF_SET, vf_set_params, print_show),
	COMMAND_P("vm add", "NAME --qmp SOCKET [--qga SOCKET] [--priority high|normal|low] [--numa-node N] "
		  "[--incoming SRC-VM]",
		  VM_ADD, vm_add_params, print_show),
	COMMAND("vm list", "", VM_LIST, print_vm_list),
	COMMAND_P("vm remove", "NAME", VM_REMOVE, vm_params, print_nothing),
	COMMAND_P("vm migrate-prepare", "VM [--timeout-ms MS]", MIGRATE_PREPARE, migrate_params, print_migrate),
	COMMAND_P("vm migrate-abort", "VM [--timeout-ms MS]", MIGRATE_ABORT, migrate_params, print_migrate),
	COMMAND_P("attach", "VM [--vf VF | --pf PF] [--mode auto|exclusive|shared] [--mac MAC] [--vlan ID] "
		  "[--failover-pair-id ID] [--timeout-ms MS]", ATTACH, attach_params, print_attach),
	COMMAND_P("detach", "VM [--vf VF] [--timeout-ms MS]", DETACH, detach_params, print_detach),
	{ .name = "top", .usage = "[--interval SEC] [--count N] [--pf PF]", .run = cmd_top },
	{ .name = "raw", .usage = "COMMAND [JSON-ARGS]", .run = cmd_raw },
};
const size_t commands_count = ELEMENTSOF(commands);
