/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iovm-vm: attach VFs to running QEMU VMs and detach them, from the shell
 * (lab tests, benchmarks), until iovmd serves this. The VF pool lives in a
 * JSON file (--pool) shared by successive runs under an flock, so a VF that
 * a guest did not release stays reserved for the next run too. Output is
 * "key=value" lines; on failure the library's message goes to stderr and the
 * exit status is the errno (16 EBUSY, 110 ETIMEDOUT, ...).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "shared/clock.h"
#include "iovm/host.h"
#include "iovm/qmp.h"
#include "iovm/shared.h"
#include "iovm/vm.h"

/* Prints the usage to f; returns code, the exit status. */
static int usage(FILE *f, int code)
{
	fputs("usage: iovm-vm [--pool FILE] [--sysfs DIR | --no-host] COMMAND --qmp SOCK [--vm NAME] ...\n"
	      "  attach --vf VF [--port ID | --port-prefix P] [--failover-pair ID]\n"
	      "         [--mac MAC] [--vlan N] [--no-prepare] [--timeout-ms MS]\n"
	      "  detach --vf VF [--timeout-ms MS]\n"
	      "  attach-shared --vf VF [--port ID | --port-prefix P] [--mac MAC] [--timeout-ms MS]\n"
	      "                            a macvtap on the VF's host netdev, as virtio-net\n"
	      "  detach-shared --vf VF [--timeout-ms MS]\n"
	      "  shared-list               the VFs this VM shares\n"
	      "  shared-reclaim [--vf VF]  delete the VM's macvtaps (no --qmp needed)\n"
	      "  watch [--timeout-ms MS]   print events until the VM goes away, then\n"
	      "                            reclaim its VFs (waiting up to MS for each)\n"
	      "  pool                      print the pool (no --qmp needed)\n"
	      "  qmp COMMAND [JSON-ARGS]   one QMP command, print the reply\n", f);
	return code;
}

/* Time spent in libiovm for this command (connect + negotiation + the
 * attach/detach call), without process start-up and pool-file handling:
 * printed as lib_ms= so the benchmark can compare it with a raw client. */
static double lib_ms;

static double now_ms_f(void)
{
	return (double)now_usec() / 1e3;
}

/* IOVM_VM_TRACE=1: each step of an attach or detach on stderr, with the
 * milliseconds since the process started its libiovm work (for profiling
 * against a raw QMP client; see bench/attach-detach.py). */
static double trace_t0;

static void trace_step(iovm_vm *vm, const char *vf, const char *step, void *userdata)
{
	(void)vm;
	(void)userdata;
	fprintf(stderr, "trace: %.1f ms %s %s\n", now_ms_f() - trace_t0, step, vf);
}

struct opts {
	const char *pool, *sysfs, *qmp, *vm, *vf, *port, *port_prefix, *failover, *mac;
	int vlan, timeout_ms;
	bool no_host, no_prepare;
};

static int fail(int r, const iovm_error *e)
{
	fprintf(stderr, "iovm-vm: %s\n", e && e->code ? e->msg : strerror(-r));
	return -r > 0 && -r < 256 ? -r : 1;
}

/* The pool file is read, changed and written under an exclusive lock on
 * FILE.lock, so that concurrent runs (watch and attach) do not lose updates. */
static int pool_lock(const char *pool)
{
	char path[4096];
	int fd;

	if (!pool)
		return -1;
	snprintf(path, sizeof(path), "%s.lock", pool);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		flock(fd, LOCK_EX);
	return fd;
}

static void pool_unlock(int fd)
{
	if (fd >= 0)
		close(fd);
}

static int pool_reload(iovm_vf_pool *p, const char *pool, iovm_error *err)
{
	return pool ? iovm_vf_pool_load(p, pool, err) : 0;
}

static int pool_store(iovm_vf_pool *p, const char *pool, iovm_error *err)
{
	return pool ? iovm_vf_pool_save(p, pool, err) : 0;
}

static void print_pool(iovm_vf_pool *p)
{
	for (size_t i = 0; i < iovm_vf_pool_size(p); i++) {
		iovm_vf_entry *e = iovm_vf_pool_at(p, i);

		printf("vf=%s use=%s vm=%s devid=%s port=%s orig_driver=%s\n", e->vf,
		       iovm_vf_use_to_string(e->use), e->vm, e->devid[0] ? e->devid : "-",
		       e->port[0] ? e->port : "-", e->orig_driver[0] ? e->orig_driver : "-");
	}
}

static void print_event(iovm_qmp *q, const char *event, json_object *data, json_object *ts, void *ud)
{
	printf("event=%s data=%s\n", event,
	       data ? json_object_to_json_string_ext(data, JSON_C_TO_STRING_PLAIN) : "{}");
	fflush(stdout);
}

static int cmd_attach(iovm_vm *vm, iovm_vf_pool *p, const struct opts *o, iovm_error *err)
{
	iovm_attach_opts a = {
		.vf = o->vf, .port = o->port, .port_prefix = o->port_prefix,
		.failover_pair_id = o->failover, .mac = o->mac, .vlan = o->vlan,
		.no_prepare = o->no_prepare, .timeout_ms = o->timeout_ms,
	};
	iovm_attach_result res;
	int lock = pool_lock(o->pool), r;

	double t0;

	r = pool_reload(p, o->pool, err);
	t0 = now_ms_f();
	if (r >= 0)
		r = iovm_vm_attach(vm, &a, &res, err);
	lib_ms += now_ms_f() - t0;
	if (r >= 0) {
		printf("vf=%s vm=%s devid=%s port=%s lib_ms=%.1f\n", o->vf, o->vm, res.devid, res.port, lib_ms);
		r = pool_store(p, o->pool, err);
	}
	pool_unlock(lock);
	return r;
}

static int cmd_detach(iovm_vm *vm, iovm_vf_pool *p, const struct opts *o, iovm_error *err)
{
	int lock = pool_lock(o->pool), r, r2;
	iovm_error e2 = {};
	double t0;

	r = pool_reload(p, o->pool, err);
	if (r < 0)
		goto out;
	t0 = now_ms_f();
	r = iovm_vm_detach(vm, o->vf, o->timeout_ms, err);
	lib_ms += now_ms_f() - t0;
	/* Saved also on failure: a timeout leaves the VF release-pending. */
	r2 = pool_store(p, o->pool, &e2);
	if (r >= 0 && r2 < 0) {
		r = r2;
		*err = e2;
	}
	if (r >= 0)
		printf("vf=%s vm=%s detached lib_ms=%.1f\n", o->vf, o->vm, lib_ms);
out:
	pool_unlock(lock);
	return r;
}

static size_t vfs_of(iovm_vf_pool *p, const char *vm)
{
	size_t n = 0;

	for (size_t i = 0; i < iovm_vf_pool_size(p); i++)
		n += !strcmp(iovm_vf_pool_at(p, i)->vm, vm);
	return n;
}

static bool reclaim_pending(iovm_vf_pool *p, const char *vm)
{
	for (size_t i = 0; i < iovm_vf_pool_size(p); i++) {
		iovm_vf_entry *e = iovm_vf_pool_at(p, i);

		if (e->use == IOVM_VF_RECLAIM && !strcmp(e->vm, vm))
			return true;
	}
	return false;
}

static int cmd_watch(iovm_vm *vm, iovm_vf_pool *p, const struct opts *o, iovm_error *err)
{
	iovm_qmp *q = iovm_vm_get_qmp(vm);
	size_t held;
	int lock, r;

	iovm_vm_set_event_handler(vm, print_event, NULL);
	printf("watching vm=%s\n", o->vm);
	fflush(stdout);
	for (;;) {
		struct pollfd pfd = { .fd = iovm_qmp_get_fd(q), .events = iovm_qmp_get_events(q) };

		/* A VF whose DEVICE_DELETED came but that QEMU still held is
		 * looked at again shortly (iovm_vm_process retries it). */
		if (poll(&pfd, 1, reclaim_pending(p, o->vm) ? 100 : -1) < 0 && errno != EINTR)
			return iovm_error_set(err, -errno, "poll: %m");
		/* Under the lock: process() may free VFs whose late
		 * DEVICE_DELETED arrived, and those go to the shared pool. */
		lock = pool_lock(o->pool);
		r = pool_reload(p, o->pool, err);
		if (r < 0) {
			pool_unlock(lock);
			return r;
		}
		held = vfs_of(p, o->vm);
		r = iovm_vm_process(vm, err);
		if (r < 0) {
			/* process() already returned what QEMU let go of; wait for
			 * the rest (QEMU may still be exiting). */
			iovm_error e2 = {};
			int n = iovm_vm_reclaim(vm, o->timeout_ms > 0 ? o->timeout_ms : 10000, &e2);

			printf("vm=%s gone: %s\n", o->vm, err->msg);
			pool_store(p, o->pool, NULL);
			pool_unlock(lock);
			if (n < 0) {
				*err = e2;
				return n;
			}
			printf("reclaimed=%zu\n", held - vfs_of(p, o->vm));
			return 0;
		}
		pool_store(p, o->pool, NULL);
		pool_unlock(lock);
	}
}

static int cmd_attach_shared(iovm_vm *vm, const struct opts *o, iovm_error *err)
{
	iovm_shared_opts a = {
		.vf = o->vf, .mac = o->mac, .port = o->port, .port_prefix = o->port_prefix,
		.timeout_ms = o->timeout_ms,
	};
	iovm_shared_result res;
	double t0 = now_ms_f();
	int r = iovm_vm_attach_shared(vm, &a, &res, err);

	lib_ms += now_ms_f() - t0;
	if (r >= 0) {
		printf("vf=%s vm=%s devid=%s netdev=%s port=%s mac=%s macvtap=%s ifindex=%d vf_netdev=%s "
		       "carrier=%s lib_ms=%.1f\n", o->vf, o->vm, res.devid, res.netdev_id, res.port, res.mac,
		       res.ifname, res.ifindex, res.vf_netdev, res.vf_carrier ? "yes" : "no", lib_ms);
		if (!res.vf_carrier)
			fprintf(stderr, "iovm-vm: warning: vf %s: its netdev %s has no carrier; the VM's NIC "
				"has no link until it does\n", o->vf, res.vf_netdev);
	}
	return r;
}

static int cmd_detach_shared(iovm_vm *vm, const struct opts *o, iovm_error *err)
{
	double t0 = now_ms_f();
	int r = iovm_vm_detach_shared(vm, o->vf, o->timeout_ms, err);

	lib_ms += now_ms_f() - t0;
	if (r >= 0)
		printf("vf=%s vm=%s detached lib_ms=%.1f\n", o->vf, o->vm, lib_ms);
	return r;
}

static int cmd_shared_list(iovm_vm *vm, iovm_error *err)
{
	iovm_shared_entry *v = NULL;
	size_t n = 0;
	int r = iovm_vm_shared_list(vm, &v, &n, err);

	for (size_t i = 0; r >= 0 && i < n; i++)
		printf("vf=%s vm=%s devid=%s macvtap=%s\n", v[i].vf, iovm_vm_name(vm), v[i].devid, v[i].ifname);
	free(v);
	return r;
}

static int cmd_qmp(const struct opts *o, int argc, char **argv, iovm_error *err)
{
	json_object *args = NULL, *ret = NULL;
	iovm_qmp *q = NULL;
	int r;

	if (argc < 1)
		return iovm_error_set(err, -EINVAL, "qmp: missing COMMAND");
	if (argc > 1 && !(args = json_tokener_parse(argv[1])))
		return iovm_error_set(err, -EINVAL, "qmp: bad JSON arguments: %s", argv[1]);
	r = iovm_qmp_connect(o->qmp, o->timeout_ms > 0 ? o->timeout_ms : 10000, &q, err);
	if (r >= 0)
		r = iovm_qmp_execute(q, argv[0], args, &ret, o->timeout_ms > 0 ? o->timeout_ms : 10000, err);
	if (r >= 0)
		printf("%s\n", ret ? json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN) : "{}");
	json_object_put(ret);
	json_object_put(args);
	iovm_qmp_free(q);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "pool", required_argument, NULL, 'P' },
		{ "sysfs", required_argument, NULL, 'S' },
		{ "no-host", no_argument, NULL, 'N' },
		{ "qmp", required_argument, NULL, 'q' },
		{ "vm", required_argument, NULL, 'm' },
		{ "vf", required_argument, NULL, 'f' },
		{ "port", required_argument, NULL, 'p' },
		{ "port-prefix", required_argument, NULL, 'x' },
		{ "failover-pair", required_argument, NULL, 'F' },
		{ "mac", required_argument, NULL, 'M' },
		{ "vlan", required_argument, NULL, 'V' },
		{ "no-prepare", no_argument, NULL, 'n' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	struct opts o = { .vm = "vm" };
	iovm_vf_pool *pool = NULL;
	iovm_host *host = NULL;
	iovm_vm *vm = NULL;
	iovm_error err = {};
	const char *cmd;
	int c, r;

	/* "+": options stop at the command, whose own options follow it. */
	while ((c = getopt_long(argc, argv, "+h", longopts, NULL)) != -1) {
		switch (c) {
		case 'P': o.pool = optarg; break;
		case 'S': o.sysfs = optarg; break;
		case 'N': o.no_host = true; break;
		case 'h': return usage(stdout, 0);
		default: return usage(stderr, 2);
		}
	}
	if (optind >= argc)
		return usage(stderr, 2);
	cmd = argv[optind];
	optind++;
	while ((c = getopt_long(argc, argv, "+", longopts, NULL)) != -1) {
		switch (c) {
		case 'P': o.pool = optarg; break;
		case 'S': o.sysfs = optarg; break;
		case 'N': o.no_host = true; break;
		case 'q': o.qmp = optarg; break;
		case 'm': o.vm = optarg; break;
		case 'f': o.vf = optarg; break;
		case 'p': o.port = optarg; break;
		case 'x': o.port_prefix = optarg; break;
		case 'F': o.failover = optarg; break;
		case 'M': o.mac = optarg; break;
		case 'V': o.vlan = atoi(optarg); break;
		case 'n': o.no_prepare = true; break;
		case 't': o.timeout_ms = atoi(optarg); break;
		default: return usage(stderr, 2);
		}
	}
	if (iovm_vf_pool_new(&pool) < 0)
		return fail(-ENOMEM, NULL);
	if (!strcmp(cmd, "pool")) {
		int lock = pool_lock(o.pool);

		r = pool_reload(pool, o.pool, &err);
		pool_unlock(lock);
		if (r >= 0)
			print_pool(pool);
		goto out;
	}
	if (!strcmp(cmd, "shared-reclaim")) {
		r = iovm_shared_reclaim(o.vm, o.vf, &err);
		if (r >= 0)
			printf("vm=%s deleted=%d\n", o.vm, r);
		goto out;
	}
	if (!o.qmp) {
		fprintf(stderr, "iovm-vm: %s needs --qmp SOCK\n", cmd);
		r = -EINVAL;
		goto out_usage;
	}
	if (!strcmp(cmd, "qmp")) {
		r = cmd_qmp(&o, argc - optind, argv + optind, &err);
		goto out;
	}
	if ((!strcmp(cmd, "attach") || !strcmp(cmd, "detach") || !strcmp(cmd, "attach-shared") ||
	     !strcmp(cmd, "detach-shared")) && !o.vf) {
		fprintf(stderr, "iovm-vm: %s needs --vf VF\n", cmd);
		r = -EINVAL;
		goto out_usage;
	}
	if (!o.no_host) {
		r = iovm_host_new(o.sysfs, &host);
		if (r < 0) {
			iovm_error_set(&err, r, "host %s: %s", o.sysfs ? o.sysfs : "/sys", strerror(-r));
			goto out;
		}
	}
	lib_ms = trace_t0 = now_ms_f();
	r = iovm_vm_open(o.vm, o.qmp, host, pool, o.timeout_ms > 0 ? o.timeout_ms : 10000, &vm, &err);
	lib_ms = now_ms_f() - lib_ms;
	if (r < 0)
		goto out;
	if (getenv("IOVM_VM_TRACE")) {
		fprintf(stderr, "trace: %.1f ms connected\n", now_ms_f() - trace_t0);
		iovm_vm_set_step_hook(vm, trace_step, NULL);
	}
	if (!strcmp(cmd, "attach"))
		r = cmd_attach(vm, pool, &o, &err);
	else if (!strcmp(cmd, "detach"))
		r = cmd_detach(vm, pool, &o, &err);
	else if (!strcmp(cmd, "attach-shared"))
		r = cmd_attach_shared(vm, &o, &err);
	else if (!strcmp(cmd, "detach-shared"))
		r = cmd_detach_shared(vm, &o, &err);
	else if (!strcmp(cmd, "shared-list"))
		r = cmd_shared_list(vm, &err);
	else if (!strcmp(cmd, "watch"))
		r = cmd_watch(vm, pool, &o, &err);
	else {
		fprintf(stderr, "iovm-vm: unknown command %s\n", cmd);
		r = -EINVAL;
		goto out_usage;
	}
out:
	iovm_vm_free(vm);
	iovm_host_free(host);
	iovm_vf_pool_free(pool);
	return r < 0 ? fail(r, &err) : 0;
out_usage:
	usage(stderr, 2);
	iovm_vf_pool_free(pool);
	iovm_host_free(host);
	return 2;
}
