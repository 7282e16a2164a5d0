/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's replies for people: "key: value" lines for one object,
 * aligned tables for lists (--json prints them as they came). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "iovmctl/js.h"
#include "iovmctl/output.h"
#include "iovmctl/table.h"

void print_json(json_object *v)
{
	printf("%s\n", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
						      JSON_C_TO_STRING_NOSLASHESCAPE));
}

/* A value for "key: value" lines and table cells. */
static void value_text(json_object *v, char *buf, size_t n)
{
	switch (json_object_get_type(v)) {
	case json_type_null:
		snprintf(buf, n, "-");
		break;
	case json_type_boolean:
		snprintf(buf, n, "%s", json_object_get_boolean(v) ? "yes" : "no");
		break;
	case json_type_string:
		snprintf(buf, n, "%s", dash(json_object_get_string(v)));
		break;
	case json_type_array: {
		size_t len = json_object_array_length(v), off = 0;

		buf[0] = '\0';
		if (!len)
			snprintf(buf, n, "-");
		for (size_t i = 0; i < len && off < n; i++) {
			char item[256];

			value_text(json_object_array_get_idx(v, i), item, sizeof(item));
			off += (size_t)snprintf(buf + off, n - off, "%s%s", i ? ", " : "", item);
		}
		break;
	}
	default:
		snprintf(buf, n, "%s", json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN));
		break;
	}
}

/* "key: value" for every member; nested objects (VF "config") are inlined,
 * throughput_bps is shown human-readably, arrays of objects are skipped
 * (the caller prints them as a table). */
void print_show(json_object *o)
{
	json_object_object_foreach(o, key, v) {
		char buf[1024];

		if (json_object_is_type(v, json_type_object)) {
			print_show(v);
			continue;
		}
		if (json_object_is_type(v, json_type_array) && json_object_array_length(v) &&
		    json_object_is_type(json_object_array_get_idx(v, 0), json_type_object))
			continue;
		if (!strcmp(key, "throughput_bps")) {
			format_bps(buf, sizeof(buf), (double)json_object_get_int64(v));
			printf("throughput: %s\n", buf);
			continue;
		}
		if (!strcmp(key, "uptime_s")) {
			int64_t s = json_object_get_int64(v);

			printf("uptime: %lldd %02lld:%02lld:%02lld\n", (long long)(s / 86400),
			       (long long)(s / 3600 % 24), (long long)(s / 60 % 60), (long long)(s % 60));
			continue;
		}
		value_text(v, buf, sizeof(buf));
		printf("%s: %s\n", key, buf);
	}
}

static void rate_text(json_object *cfg, char *buf, size_t n)
{
	int64_t rate = js_int(cfg, "rate", 0);

	if (rate > 0)
		snprintf(buf, n, "%lld Mbit/s", (long long)rate);
	else
		snprintf(buf, n, "-");
}

/* A VF row's first cells: VF, PF (its netdev when it has one), IDX. */
static void vf_name_cells(table *t, json_object *vf)
{
	const char *pf = *js_str(vf, "pf_netdev") ? js_str(vf, "pf_netdev") : js_str(vf, "pf");

	table_cell(t, "%s", dash(js_str(vf, "vf")));
	table_cell(t, "%s", dash(pf));
	table_cell(t, "%lld", (long long)js_int(vf, "index", -1));
}

static void print_vf_table(json_object *arr)
{
	static const char *const hdr[] = { "VF", "PF", "IDX", "DRIVER", "STATE", "VM", "MODE", "USERS",
					   "MAC", "VLAN", "RATE", "THROUGHPUT", NULL };
	table t;

	table_init(&t, hdr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *vf = json_object_array_get_idx(arr, i), *cfg = js_get(vf, "config");
		char bps[32], rate[32];

		format_bps(bps, sizeof(bps), (double)js_int(vf, "throughput_bps", 0));
		rate_text(cfg, rate, sizeof(rate));
		vf_name_cells(&t, vf);
		table_cell(&t, "%s", dash(js_str(vf, "driver")));
		table_cell(&t, "%s", dash(js_str(vf, "state")));
		table_cell(&t, "%s", dash(js_str(vf, "vm")));
		table_cell(&t, "%s", dash(js_str(vf, "mode")));
		table_cell(&t, "%lld", (long long)js_int(vf, "users", 0));
		table_cell(&t, "%s", dash(js_str(cfg, "mac")));
		if (js_has(cfg, "vlan") && js_int(cfg, "vlan", 0) > 0)
			table_cell(&t, "%lld", (long long)js_int(cfg, "vlan", 0));
		else
			table_cell(&t, "-");
		table_cell(&t, "%s", rate);
		table_cell(&t, "%s", bps);
	}
	table_print(&t);
	table_done(&t);
}

static void print_pf_table(json_object *arr)
{
	static const char *const hdr[] = { "PF", "NETDEV", "DRIVER", "ID", "VFS", "TOTAL", "NUMA", "LINK",
					   "DESIRED", NULL };
	table t;

	table_init(&t, hdr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *pf = json_object_array_get_idx(arr, i);

		table_cell(&t, "%s", dash(js_str(pf, "pf")));
		table_cell(&t, "%s", dash(js_str(pf, "netdev")));
		table_cell(&t, "%s", dash(js_str(pf, "driver")));
		table_cell(&t, "%s:%s", dash(js_str(pf, "vendor")), dash(js_str(pf, "device")));
		table_cell(&t, "%lld", (long long)js_int(pf, "num_vfs", 0));
		table_cell(&t, "%lld", (long long)js_int(pf, "total_vfs", 0));
		table_cell(&t, "%lld", (long long)js_int(pf, "numa_node", -1));
		table_cell(&t, "%s", dash(js_str(pf, "link")));
		if (js_has(pf, "desired_vfs"))
			table_cell(&t, "%lld%s%s", (long long)js_int(pf, "desired_vfs", 0),
				   *js_str(pf, "desired_driver") ? " " : "", js_str(pf, "desired_driver"));
		else
			table_cell(&t, "-");
	}
	table_print(&t);
	table_done(&t);
}

static void print_vm_table(json_object *arr)
{
	static const char *const hdr[] = { "NAME", "PRIORITY", "NUMA", "CONNECTED", "VFS", "QMP", NULL };
	table t;

	table_init(&t, hdr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *vm = json_object_array_get_idx(arr, i), *vfs = js_get(vm, "vfs");
		char list[1024] = "-";

		if (vfs && json_object_is_type(vfs, json_type_array))
			value_text(vfs, list, sizeof(list));
		table_cell(&t, "%s", dash(js_str(vm, "name")));
		table_cell(&t, "%s", dash(js_str(vm, "priority")));
		table_cell(&t, "%lld", (long long)js_int(vm, "numa_node", -1));
		table_cell(&t, "%s", json_object_get_boolean(js_get(vm, "connected")) ? "yes" : "no");
		table_cell(&t, "%s", list);
		table_cell(&t, "%s", dash(js_str(vm, "qmp")));
	}
	table_print(&t);
	table_done(&t);
}


void print_pf_list(json_object *ret)
{
	if (is_array(ret))
		print_pf_table(ret);
}

void print_pf_show(json_object *ret)
{
	json_object *vfs = js_get(ret, "vfs");

	print_show(ret);
	if (is_array(vfs) && json_object_array_length(vfs)) {
		printf("\n");
		print_vf_table(vfs);
	}
}

void print_nothing(json_object *ret)
{
}

void print_set_vfs(json_object *ret)
{
	json_object *held;

	printf("%s: %lld VFs%s%s\n", js_str(ret, "pf"), (long long)js_int(ret, "num_vfs", 0),
	       *js_str(ret, "desired_driver") ? ", driver " : "", js_str(ret, "desired_driver"));
	/* A live resize: each VM that kept its VF through it, and how. */
	if (!json_object_object_get_ex(ret, "live", &held) || !is_array(held))
		return;
	for (size_t i = 0; i < json_object_array_length(held); i++) {
		json_object *h = json_object_array_get_idx(held, i);

		printf("  vm %s kept vf %lld (%s, %s) by %s\n", js_str(h, "vm"), (long long)js_int(h, "index", -1),
		       js_str(h, "vf"), js_str(h, "devid"), js_str(h, "mode"));
	}
}

void print_vf_list(json_object *ret)
{
	if (is_array(ret))
		print_vf_table(ret);
}

void print_vm_list(json_object *ret)
{
	if (is_array(ret))
		print_vm_table(ret);
}

void print_attach(json_object *ret)
{
	printf("attached %s to %s as %s (%s%s%s%s%s)\n", js_str(ret, "vf"), js_str(ret, "vm"),
	       dash(js_str(ret, "devid")), dash(js_str(ret, "mode")), *js_str(ret, "port") ? ", port " : "",
	       js_str(ret, "port"), *js_str(ret, "macvtap") ? ", through " : "", js_str(ret, "macvtap"));
	if (*js_str(ret, "reason"))
		printf("reason: %s\n", js_str(ret, "reason"));
}

void print_detach(json_object *ret)
{
	printf("detached %s from %s\n", js_str(ret, "vf"), js_str(ret, "vm"));
}

/* migrate-prepare, migrate-abort: the VM's state, then a line per VF. */
void print_migrate(json_object *ret)
{
	json_object *vfs = NULL;
	size_t n;

	json_object_object_get_ex(ret, "vfs", &vfs);
	n = is_array(vfs) ? json_object_array_length(vfs) : 0;
	printf("vm %s: %s, %zu VF%s\n", js_str(ret, "vm"), js_str(ret, "state"), n, n == 1 ? "" : "s");
	for (size_t i = 0; i < n; i++) {
		json_object *v = json_object_array_get_idx(vfs, i);

		printf("  vf %s of %s, device %s, standby %s%s%s: %s\n", js_str(v, "vf"), js_str(v, "pf"),
		       js_str(v, "devid"), js_str(v, "failover_pair_id"), *js_str(v, "port") ? " on " : "",
		       js_str(v, "port"), js_str(v, "net"));
	}
}


static int by_throughput(const void *x, const void *y)
{
	json_object *a = *(json_object *const *)x, *b = *(json_object *const *)y;
	int64_t ta = js_int(a, "throughput_bps", 0), tb = js_int(b, "throughput_bps", 0);

	if (ta != tb)
		return ta > tb ? -1 : 1;
	return strcmp(js_str(a, "vf"), js_str(b, "vf"));
}

void sort_by_throughput(json_object *arr)
{
	json_object_array_sort(arr, by_throughput);
}

void print_top(json_object *arr, double interval, bool tty)
{
	static const char *const hdr[] = { "VF", "PF", "IDX", "STATE", "VM", "MODE", "THROUGHPUT", NULL };
	char total[32], clock_buf[32];
	double sum = 0;
	time_t t = time(NULL);
	table tb;

	table_init(&tb, hdr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *vf = json_object_array_get_idx(arr, i);
		char bps[32];

		sum += (double)js_int(vf, "throughput_bps", 0);
		format_bps(bps, sizeof(bps), (double)js_int(vf, "throughput_bps", 0));
		vf_name_cells(&tb, vf);
		table_cell(&tb, "%s", dash(js_str(vf, "state")));
		table_cell(&tb, "%s", dash(js_str(vf, "vm")));
		table_cell(&tb, "%s", dash(js_str(vf, "mode")));
		table_cell(&tb, "%s", bps);
	}
	format_bps(total, sizeof(total), sum);
	strftime(clock_buf, sizeof(clock_buf), "%H:%M:%S", localtime(&t));
	if (tty)
		printf("\033[H\033[2J");
	printf("iovmctl top - %s - %zu VFs, total %s - every %g s\n\n", clock_buf,
	       json_object_array_length(arr), total, interval);
	table_print(&tb);
	table_done(&tb);
}
