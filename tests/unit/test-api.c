/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The API request parser and the reply formatters: every command with valid
 * arguments (typed fields checked), every refusal (missing, unknown and
 * ill-typed arguments, ranges, names, framing), and the reply lines parsed
 * back with json-c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <cmocka.h>

#include "iovm/api.h"
#include "iovm/store.h"

/* ---- helpers -------------------------------------------------------------------- */

static int parse(const char *line, iovm_api_request *r, iovm_error *e)
{
	iovm_error_clear(e);
	return iovm_api_parse_request(line, strlen(line), r, e);
}

/* Parses line, which must succeed; the caller checks r and calls done. */
static void parse_ok(const char *line, iovm_api_request *r)
{
	iovm_error e = {};
	int k = parse(line, r, &e);

	if (k != 0)
		fail_msg("refused (%d: %s): %s", k, e.msg, line);
}

/* Parses line, which must fail with code and a message containing every
 * one of the NULL-terminated strings that follow. */
static void expect_fail(const char *line, int code, ...)
{
	iovm_api_request r;
	iovm_error e = {};
	const char *want;
	va_list ap;
	int k;

	k = parse(line, &r, &e);
	iovm_api_request_done(&r);
	if (k != code)
		fail_msg("expected %d, got %d (%s) for: %.200s", code, k, e.msg, line);
	assert_int_equal(e.code, code);
	assert_true(e.msg[0] != '\0');
	va_start(ap, code);
	while ((want = va_arg(ap, const char *)))
		if (!strstr(e.msg, want)) {
			va_end(ap);
			fail_msg("message '%s' lacks '%s' for: %.200s", e.msg, want, line);
		}
	va_end(ap);
}

/* {"execute":cmd,"arguments":args} as a line. */
static char *request_line(const char *cmd, json_object *args)
{
	json_object *o = json_object_new_object();
	char *line;

	json_object_object_add(o, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(o, "arguments", json_object_get(args));
	line = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
	json_object_put(o);
	assert_non_null(line);
	return line;
}

/* A reply line: exactly one "\n", at the end; parsed back into an object. */
static json_object *parse_line(char *line)
{
	json_object *o;
	size_t n;

	assert_non_null(line);
	n = strlen(line);
	assert_true(n > 1);
	assert_int_equal(line[n - 1], '\n');
	assert_null(memchr(line, '\n', n - 1));
	o = json_tokener_parse(line);
	assert_non_null(o);
	assert_true(json_object_is_type(o, json_type_object));
	free(line);
	return o;
}

static json_object *member(json_object *o, const char *key, json_type t)
{
	json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no member '%s' in %s", key, json_object_to_json_string(o));
	assert_true(json_object_is_type(v, t));
	return v;
}

/* ---- a valid request for every command ------------------------------------------- */

/* Arguments: the type a value must have (for the wrong-type table). */
enum kind { K_STR, K_INT, K_BOOL };

static const struct {
	const char *arg;
	enum kind kind;
} arg_kinds[] = {
	{ "pf", K_STR }, { "vf", K_STR }, { "vm", K_STR }, { "name", K_STR }, { "qmp", K_STR },
	{ "count", K_INT }, { "driver", K_STR }, { "priority", K_STR }, { "numa_node", K_INT },
	{ "mode", K_STR }, { "mac", K_STR }, { "vlan", K_INT }, { "qos", K_INT }, { "rate", K_INT },
	{ "spoofchk", K_BOOL }, { "trust", K_BOOL }, { "link", K_STR },
	{ "failover_pair_id", K_STR }, { "timeout_ms", K_INT },
};

static enum kind kind_of(const char *arg)
{
	for (size_t i = 0; i < sizeof(arg_kinds) / sizeof(arg_kinds[0]); i++)
		if (!strcmp(arg_kinds[i].arg, arg))
			return arg_kinds[i].kind;
	fail_msg("no kind for %s", arg);
	return K_STR;
}

/* Every command with every argument it takes (attach twice: vf or pf), and
 * the arguments it requires. */
static const struct {
	const char *cmd;
	const char *args;
	const char *required[3];
} valid[] = {
	{ "query-commands", "{}", { NULL } },
	{ "status", "{}", { NULL } },
	{ "pf-list", "{}", { NULL } },
	{ "pf-show", "{\"pf\":\"eth0\"}", { "pf", NULL } },
	{ "pf-set-vfs", "{\"pf\":\"0000:01:00.0\",\"count\":7,\"driver\":\"vfio-pci\"}", { "pf", "count", NULL } },
	{ "vf-list", "{\"pf\":\"eth0\"}", { NULL } },
	{ "vf-show", "{\"vf\":\"eth0/2\"}", { "vf", NULL } },
	{ "vf-set", "{\"vf\":\"0000:01:10.2\",\"mac\":\"02:00:00:00:00:01\",\"vlan\":100,\"qos\":3,"
		    "\"rate\":1000,\"spoofchk\":false,\"trust\":true,\"link\":\"disable\"}", { "vf", NULL } },
	{ "vm-add", "{\"name\":\"g1\",\"qmp\":\"/run/g1/qmp.sock\",\"priority\":\"high\",\"numa_node\":1}",
	  { "name", "qmp", NULL } },
	{ "vm-list", "{}", { NULL } },
	{ "vm-remove", "{\"name\":\"g1\"}", { "name", NULL } },
	{ "attach", "{\"vm\":\"g1\",\"vf\":\"eth0/2\",\"mode\":\"exclusive\",\"mac\":\"02:00:00:00:00:02\","
		    "\"vlan\":10,\"failover_pair_id\":\"net0\",\"timeout_ms\":5000}", { "vm", NULL } },
	{ "attach", "{\"vm\":\"g1\",\"pf\":\"eth0\",\"mode\":\"shared\"}", { "vm", NULL } },
	{ "detach", "{\"vm\":\"g1\",\"vf\":\"0000:01:10.2\",\"timeout_ms\":100}", { "vm", NULL } },
	{ "migrate-prepare", "{\"vm\":\"g1\",\"timeout_ms\":5000}", { "vm", NULL } },
	{ "migrate-abort", "{\"vm\":\"g1\"}", { "vm", NULL } },
};

#define N_VALID (sizeof(valid) / sizeof(valid[0]))

static void test_every_command_valid(void **state)
{
	bool covered[_IOVM_API_CMD_MAX] = {};

	for (size_t i = 0; i < N_VALID; i++) {
		json_object *args = json_tokener_parse(valid[i].args);
		char *line;
		iovm_api_request r;
		int c = iovm_api_cmd_from_string(valid[i].cmd);

		assert_non_null(args);
		assert_true(c >= 0);
		line = request_line(valid[i].cmd, args);
		parse_ok(line, &r);
		assert_int_equal(r.cmd, c);
		assert_null(r.id);
		covered[c] = true;
		iovm_api_request_done(&r);
		free(line);
		/* Without "arguments" at all: only commands with no required one. */
		line = request_line(valid[i].cmd, NULL);
		if (valid[i].required[0]) {
			expect_fail(line, -EINVAL, valid[i].cmd, valid[i].required[0], NULL);
		} else if (c == IOVM_API_VF_SET) {
			fail_msg("vf-set requires vf");
		} else {
			parse_ok(line, &r);
			assert_int_equal(r.cmd, c);
			iovm_api_request_done(&r);
		}
		free(line);
		json_object_put(args);
	}
	for (unsigned c = 0; c < _IOVM_API_CMD_MAX; c++)
		if (!covered[c])
			fail_msg("command %s not covered", iovm_api_cmd_to_string(c));
}

static void test_typed_fields(void **state)
{
	iovm_api_request r;

	parse_ok("{\"execute\":\"pf-set-vfs\",\"arguments\":{\"pf\":\"0000:01:00.0\",\"count\":7,"
		 "\"driver\":\"vfio-pci\"},\"id\":1}", &r);
	assert_int_equal(r.cmd, IOVM_API_PF_SET_VFS);
	assert_string_equal(r.pf, "0000:01:00.0");
	assert_int_equal(r.count, 7);
	assert_int_equal(r.driver, IOVM_API_DRIVER_VFIO);
	assert_true(json_object_is_type(r.id, json_type_int));
	assert_int_equal(json_object_get_int(r.id), 1);
	iovm_api_request_done(&r);
	assert_null(r.id);
	iovm_api_request_done(&r);   /* idempotent */

	parse_ok("{\"execute\":\"pf-set-vfs\",\"arguments\":{\"pf\":\"eth0\",\"count\":0,\"driver\":\"host\"}}", &r);
	assert_int_equal(r.count, 0);
	assert_int_equal(r.driver, IOVM_API_DRIVER_HOST);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"pf-set-vfs\",\"arguments\":{\"pf\":\"eth0\",\"count\":65535}}", &r);
	assert_int_equal(r.count, 65535);
	assert_int_equal(r.driver, IOVM_API_DRIVER_DEFAULT);
	iovm_api_request_done(&r);

	parse_ok("{\"execute\":\"vf-list\"}", &r);
	assert_string_equal(r.pf, "");
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vf-list\",\"arguments\":{\"pf\":\"eth0\"}}", &r);
	assert_string_equal(r.pf, "eth0");
	iovm_api_request_done(&r);

	parse_ok("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"0000:01:10.2\",\"mac\":\"02:aB:00:00:00:01\","
		 "\"vlan\":100,\"qos\":3,\"rate\":1000,\"spoofchk\":false,\"trust\":true,\"link\":\"disable\"},"
		 "\"id\":\"req-7\"}", &r);
	assert_int_equal(r.cmd, IOVM_API_VF_SET);
	assert_string_equal(r.vf, "0000:01:10.2");
	assert_int_equal(r.cfg.present, IOVM_VFNET_ALL);
	assert_memory_equal(r.cfg.mac, ((uint8_t[6]){ 0x02, 0xab, 0, 0, 0, 1 }), 6);
	assert_int_equal(r.cfg.vlan, 100);
	assert_int_equal(r.cfg.qos, 3);
	assert_int_equal(r.cfg.max_tx_rate, 1000);
	assert_false(r.cfg.spoofchk);
	assert_true(r.cfg.trust);
	assert_int_equal(r.cfg.link_state, IOVM_VF_LINK_DISABLE);
	assert_string_equal(json_object_get_string(r.id), "req-7");
	iovm_api_request_done(&r);

	/* Each field alone sets only its own bit. */
	parse_ok("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"rate\":0}}", &r);
	assert_int_equal(r.cfg.present, IOVM_VFNET_RATE);
	assert_int_equal(r.cfg.max_tx_rate, 0);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"spoofchk\":true}}", &r);
	assert_int_equal(r.cfg.present, IOVM_VFNET_SPOOFCHK);
	assert_true(r.cfg.spoofchk);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"trust\":false}}", &r);
	assert_int_equal(r.cfg.present, IOVM_VFNET_TRUST);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"link\":\"enable\"}}", &r);
	assert_int_equal(r.cfg.present, IOVM_VFNET_LINK_STATE);
	assert_int_equal(r.cfg.link_state, IOVM_VF_LINK_ENABLE);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"link\":\"auto\"}}", &r);
	assert_int_equal(r.cfg.link_state, IOVM_VF_LINK_AUTO);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"vlan\":0}}", &r);
	assert_int_equal(r.cfg.present, IOVM_VFNET_VLAN);
	assert_int_equal(r.cfg.vlan, 0);
	assert_int_equal(r.cfg.qos, 0);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"mac\":\"02:00:00:00:00:09\"}}", &r);
	assert_int_equal(r.cfg.present, IOVM_VFNET_MAC);
	assert_int_equal(r.cfg.mac[5], 9);
	iovm_api_request_done(&r);

	parse_ok("{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g1\",\"qmp\":\"/run/g1/qmp.sock\","
		 "\"priority\":\"high\",\"numa_node\":1}}", &r);
	assert_int_equal(r.cmd, IOVM_API_VM_ADD);
	assert_string_equal(r.vm, "g1");
	assert_string_equal(r.qmp, "/run/g1/qmp.sock");
	assert_int_equal(r.priority, IOVM_PRIO_HIGH);
	assert_int_equal(r.numa_node, 1);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g1\",\"qmp\":\"/q\"}}", &r);
	assert_int_equal(r.priority, -1);
	assert_int_equal(r.numa_node, -1);
	assert_string_equal(r.qga, "");
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g1\",\"qmp\":\"/q\",\"qga\":\"/run/g1/qga.sock\"}}",
		 &r);
	assert_string_equal(r.qga, "/run/g1/qga.sock");
	assert_string_equal(r.qmp, "/q");
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g1-in\",\"qmp\":\"/q\",\"incoming\":\"g1\"}}",
		 &r);
	assert_string_equal(r.incoming, "g1");
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g1\",\"qmp\":\"/q\",\"priority\":\"low\","
		 "\"numa_node\":-1}}", &r);
	assert_int_equal(r.priority, IOVM_PRIO_LOW);
	assert_int_equal(r.numa_node, -1);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g1\",\"qmp\":\"/q\",\"priority\":\"normal\","
		 "\"numa_node\":1023}}", &r);
	assert_int_equal(r.priority, IOVM_PRIO_NORMAL);
	assert_int_equal(r.numa_node, 1023);
	iovm_api_request_done(&r);

	parse_ok("{\"execute\":\"vm-remove\",\"arguments\":{\"name\":\"vm.a-b_c:1\"}}", &r);
	assert_string_equal(r.vm, "vm.a-b_c:1");
	iovm_api_request_done(&r);

	parse_ok("{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g1\",\"vf\":\"eth0/2\",\"mode\":\"exclusive\","
		 "\"mac\":\"02:00:00:00:00:02\",\"vlan\":10,\"failover_pair_id\":\"net0\","
		 "\"timeout_ms\":5000}}", &r);
	assert_int_equal(r.cmd, IOVM_API_ATTACH);
	assert_string_equal(r.vm, "g1");
	assert_string_equal(r.vf, "eth0/2");
	assert_string_equal(r.pf, "");
	assert_int_equal(r.mode, IOVM_MODE_EXCLUSIVE);
	assert_int_equal(r.cfg.present, IOVM_VFNET_MAC | IOVM_VFNET_VLAN);
	assert_int_equal(r.cfg.mac[5], 2);
	assert_int_equal(r.cfg.vlan, 10);
	assert_int_equal(r.cfg.qos, 0);
	assert_string_equal(r.failover_pair_id, "net0");
	assert_int_equal(r.timeout_ms, 5000);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g1\",\"pf\":\"eth0\",\"mode\":\"shared\"}}", &r);
	assert_string_equal(r.pf, "eth0");
	assert_string_equal(r.vf, "");
	assert_int_equal(r.mode, IOVM_MODE_SHARED);
	assert_int_equal(r.cfg.present, 0);
	assert_int_equal(r.timeout_ms, 0);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g1\",\"mode\":\"auto\"}}", &r);
	assert_int_equal(r.mode, IOVM_MODE_AUTO);
	iovm_api_request_done(&r);

	parse_ok("{\"execute\":\"detach\",\"arguments\":{\"vm\":\"g1\",\"vf\":\"01:10.2\",\"timeout_ms\":600000}}", &r);
	assert_int_equal(r.cmd, IOVM_API_DETACH);
	assert_string_equal(r.vf, "0000:01:10.2");   /* canonical form */
	assert_int_equal(r.timeout_ms, 600000);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"detach\",\"arguments\":{\"vm\":\"g1\"}}", &r);
	assert_string_equal(r.vf, "");
	iovm_api_request_done(&r);
}

/* ---- refusals per argument --------------------------------------------------------- */

static void test_missing_required(void **state)
{
	unsigned checked = 0;

	for (size_t i = 0; i < N_VALID; i++)
		for (size_t k = 0; valid[i].required[k]; k++) {
			json_object *args = json_tokener_parse(valid[i].args);
			char *line;

			json_object_object_del(args, valid[i].required[k]);
			line = request_line(valid[i].cmd, args);
			expect_fail(line, -EINVAL, valid[i].cmd, "missing argument", valid[i].required[k], NULL);
			free(line);
			json_object_put(args);
			checked++;
		}
	assert_true(checked >= 10);
}

static void test_wrong_types(void **state)
{
	/* Values of the wrong JSON type for each kind. */
	static const char *const not_str[] = { "1", "1.5", "true", "null", "[]", "{}", "[\"eth0\"]" };
	static const char *const not_int[] = { "\"1\"", "1.0", "1e2", "true", "null", "[]", "{}", "\"\"" };
	static const char *const not_bool[] = { "1", "0", "\"true\"", "null", "[]", "{}", "1.0" };
	unsigned checked = 0;

	for (size_t i = 0; i < N_VALID; i++) {
		json_object *base = json_tokener_parse(valid[i].args);

		json_object_object_foreach(base, key, val) {
			enum kind kd = kind_of(key);
			const char *const *bad = kd == K_STR ? not_str : kd == K_INT ? not_int : not_bool;
			size_t nbad = kd == K_STR ? 7 : kd == K_INT ? 8 : 7;

			(void)val;
			for (size_t b = 0; b < nbad; b++) {
				json_object *args = json_tokener_parse(valid[i].args);
				json_object *v = json_tokener_parse(bad[b]);
				char quoted[64], *line;

				/* "null" parses to NULL, which json-c adds as a JSON null. */
				json_object_object_add(args, key, v);
				line = request_line(valid[i].cmd, args);
				snprintf(quoted, sizeof(quoted), "'%s'", key);
				expect_fail(line, -EINVAL, valid[i].cmd, quoted, NULL);
				free(line);
				json_object_put(args);
				checked++;
			}
		}
		json_object_put(base);
	}
	assert_true(checked > 100);
}

static void test_unknown_argument(void **state)
{
	for (size_t i = 0; i < N_VALID; i++) {
		json_object *args = json_tokener_parse(valid[i].args);
		char *line;

		json_object_object_add(args, "bogus", json_object_new_int(1));
		line = request_line(valid[i].cmd, args);
		expect_fail(line, -EINVAL, valid[i].cmd, "unknown argument 'bogus'", NULL);
		free(line);
		json_object_put(args);
	}
	/* An argument another command takes is still unknown here. */
	expect_fail("{\"execute\":\"status\",\"arguments\":{\"pf\":\"eth0\"}}", -EINVAL, "status",
		    "unknown argument 'pf'", NULL);
	expect_fail("{\"execute\":\"detach\",\"arguments\":{\"vm\":\"g1\",\"pf\":\"eth0\"}}", -EINVAL,
		    "detach", "unknown argument 'pf'", NULL);
	expect_fail("{\"execute\":\"vm-add\",\"arguments\":{\"vm\":\"g1\",\"qmp\":\"/q\"}}", -EINVAL,
		    "vm-add", "unknown argument 'vm'", NULL);
	/* Client text in a message is cut short and made printable. */
	expect_fail("{\"execute\":\"status\",\"arguments\":{\"a\\u0001bcdefghijklmnopqrstuvwxyz0123456789\":1}}",
		    -EINVAL, "unknown argument 'a?bcdefghijklmnopqrstuvwxyz01234...'", NULL);
	expect_fail("{\"execute\":\"status\",\"arguments\":[]}", -EINVAL, "status", "'arguments'", NULL);
	expect_fail("{\"execute\":\"status\",\"arguments\":null}", -EINVAL, "status", "'arguments'", NULL);
}

static void test_cross_argument_rules(void **state)
{
	expect_fail("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\"}}", -EINVAL, "vf-set",
		    "at least one", NULL);
	expect_fail("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"qos\":3}}", -EINVAL, "vf-set",
		    "'qos'", "'vlan'", NULL);
	/* attach gives the VLAN without a priority: qos is not one of its arguments. */
	expect_fail("{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g1\",\"vlan\":5,\"qos\":3}}", -EINVAL,
		    "attach", "unknown argument 'qos'", NULL);
	expect_fail("{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g1\",\"vf\":\"eth0/1\",\"pf\":\"eth0\"}}",
		    -EINVAL, "attach", "'vf'", "'pf'", NULL);
}

static void test_ranges(void **state)
{
	static const struct {
		const char *line, *cmd, *arg;
	} bad[] = {
		{ "{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"vlan\":4095}}", "vf-set", "'vlan'" },
		{ "{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"vlan\":-1}}", "vf-set", "'vlan'" },
		{ "{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"vlan\":5,\"qos\":8}}", "vf-set", "'qos'" },
		{ "{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"vlan\":5,\"qos\":-1}}", "vf-set", "'qos'" },
		{ "{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"rate\":-1}}", "vf-set", "'rate'" },
		{ "{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"rate\":4294967296}}", "vf-set", "'rate'" },
		{ "{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"rate\":99999999999999999999}}", "vf-set", "'rate'" },
		{ "{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"link\":\"up\"}}", "vf-set", "'link'" },
		{ "{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g1\",\"vlan\":4095}}", "attach", "'vlan'" },
		{ "{\"execute\":\"pf-set-vfs\",\"arguments\":{\"pf\":\"eth0\",\"count\":70000}}", "pf-set-vfs", "'count'" },
		{ "{\"execute\":\"pf-set-vfs\",\"arguments\":{\"pf\":\"eth0\",\"count\":-1}}", "pf-set-vfs", "'count'" },
		{ "{\"execute\":\"pf-set-vfs\",\"arguments\":{\"pf\":\"eth0\",\"count\":1,\"driver\":\"igbvf\"}}",
		  "pf-set-vfs", "'driver'" },
		{ "{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g1\",\"timeout_ms\":5}}", "attach", "'timeout_ms'" },
		{ "{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g1\",\"timeout_ms\":99}}", "attach", "'timeout_ms'" },
		{ "{\"execute\":\"detach\",\"arguments\":{\"vm\":\"g1\",\"timeout_ms\":600001}}", "detach", "'timeout_ms'" },
		{ "{\"execute\":\"detach\",\"arguments\":{\"vm\":\"g1\",\"timeout_ms\":0}}", "detach", "'timeout_ms'" },
		{ "{\"execute\":\"migrate-prepare\",\"arguments\":{\"vm\":\"g/1\"}}", "migrate-prepare", "'vm'" },
		{ "{\"execute\":\"migrate-abort\",\"arguments\":{\"vm\":\"g1\",\"vf\":\"0000:01:10.2\"}}", "migrate-abort", "'vf'" },
		{ "{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g1\",\"mode\":\"both\"}}", "attach", "'mode'" },
		{ "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g\",\"qmp\":\"/q\",\"numa_node\":5000}}", "vm-add", "'numa_node'" },
		{ "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g\",\"qmp\":\"/q\",\"numa_node\":-2}}", "vm-add", "'numa_node'" },
		{ "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g\",\"qmp\":\"/q\",\"priority\":\"urgent\"}}", "vm-add", "'priority'" },
		{ "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g\",\"qmp\":\"qmp.sock\"}}", "vm-add", "'qmp'" },
		{ "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g\",\"qmp\":\"\"}}", "vm-add", "'qmp'" },
		{ "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g\",\"qmp\":\"/q\",\"qga\":\"qga.sock\"}}", "vm-add", "'qga'" },
		{ "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g\",\"qmp\":\"/q\",\"qga\":5}}", "vm-add", "'qga'" },
		{ "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g\",\"qmp\":\"/q\",\"incoming\":\"a/b\"}}", "vm-add", "'incoming'" },
		{ "{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g\",\"incoming\":\"g1\"}}", "attach", "'incoming'" },
		{ "{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g\",\"qga\":\"/q\"}}", "attach", "'qga'" },
		{ "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g\",\"qmp\":\"/q\\u0000x\"}}", "vm-add", "'qmp'" },
	};
	static const char *const bad_macs[] = {
		"02:00:00:00:00", "02:00:00:00:00:01:02", "02-00-00-00-00-01", "zz:00:00:00:00:01",
		"0200.0000.0001", "", "02:00:00:00:00:1", " 2:00:00:00:00:01",
		"01:00:5e:00:00:01", "ff:ff:ff:ff:ff:ff", "03:00:00:00:00:00", "00:00:00:00:00:00",
	};
	char line[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_fail(bad[i].line, -EINVAL, bad[i].cmd, bad[i].arg, NULL);
	for (size_t i = 0; i < sizeof(bad_macs) / sizeof(bad_macs[0]); i++) {
		snprintf(line, sizeof(line), "{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\","
			 "\"mac\":\"%s\"}}", bad_macs[i]);
		expect_fail(line, -EINVAL, "vf-set", "'mac'", NULL);
		snprintf(line, sizeof(line), "{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g1\","
			 "\"mac\":\"%s\"}}", bad_macs[i]);
		expect_fail(line, -EINVAL, "attach", "'mac'", NULL);
	}
	expect_fail("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"mac\":\"01:00:5e:00:00:01\"}}",
		    -EINVAL, "multicast", NULL);
}

static void test_qmp_path_length(void **state)
{
	char path[IOVM_API_PATH_MAX + 1], line[512];
	iovm_api_request r;

	memset(path, 'p', sizeof(path));
	path[0] = '/';
	path[IOVM_API_PATH_MAX - 1] = '\0';   /* 107 bytes: fits sun_path with its NUL */
	snprintf(line, sizeof(line), "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g\",\"qmp\":\"%s\"}}", path);
	parse_ok(line, &r);
	assert_string_equal(r.qmp, path);
	iovm_api_request_done(&r);
	path[IOVM_API_PATH_MAX - 1] = 'p';
	path[IOVM_API_PATH_MAX] = '\0';       /* 108 bytes */
	snprintf(line, sizeof(line), "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"g\",\"qmp\":\"%s\"}}", path);
	expect_fail(line, -EINVAL, "vm-add", "'qmp'", NULL);
}

static void test_names(void **state)
{
	static const char *const bad[] = {
		"", "g 1", "g/1", "g1\\u0000x", "\\u00e9t\\u00e9", "g;rm", "g\\n", ".", "..", "g*", "g\\\"",
	};
	static const char *const good[] = { "g", "G-1", "a.b", "0000:01:00.0", "x_y:z", "...", ".hidden" };
	static const char *const args[][2] = {
		{ "pf-show", "pf" }, { "vm-remove", "name" }, { "attach", "vm" }, { "vf-list", "pf" },
	};
	char name[IOVM_API_NAME_MAX + 1], line[512];
	iovm_api_request r;

	for (size_t a = 0; a < sizeof(args) / sizeof(args[0]); a++) {
		char quoted[32];

		snprintf(quoted, sizeof(quoted), "'%s'", args[a][1]);
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			snprintf(line, sizeof(line), "{\"execute\":\"%s\",\"arguments\":{\"%s\":\"%s\"}}",
				 args[a][0], args[a][1], bad[i]);
			expect_fail(line, -EINVAL, args[a][0], quoted, NULL);
		}
		for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
			snprintf(line, sizeof(line), "{\"execute\":\"%s\",\"arguments\":{\"%s\":\"%s\"}}",
				 args[a][0], args[a][1], good[i]);
			parse_ok(line, &r);
			assert_string_equal(!strcmp(args[a][1], "pf") ? r.pf : r.vm, good[i]);
			iovm_api_request_done(&r);
		}
		/* 63 characters fit, 64 do not. */
		memset(name, 'n', sizeof(name));
		name[IOVM_API_NAME_MAX - 1] = '\0';
		snprintf(line, sizeof(line), "{\"execute\":\"%s\",\"arguments\":{\"%s\":\"%s\"}}",
			 args[a][0], args[a][1], name);
		parse_ok(line, &r);
		iovm_api_request_done(&r);
		name[IOVM_API_NAME_MAX - 1] = 'n';
		name[IOVM_API_NAME_MAX] = '\0';
		snprintf(line, sizeof(line), "{\"execute\":\"%s\",\"arguments\":{\"%s\":\"%s\"}}",
			 args[a][0], args[a][1], name);
		expect_fail(line, -EINVAL, args[a][0], quoted, NULL);
	}
	/* failover_pair_id is a name too. */
	expect_fail("{\"execute\":\"attach\",\"arguments\":{\"vm\":\"g\",\"failover_pair_id\":\"a b\"}}",
		    -EINVAL, "attach", "'failover_pair_id'", NULL);
}

/* ---- VF names -------------------------------------------------------------------- */

static void test_vf_names(void **state)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{ "eth0/2", "eth0/2" },
		{ "eth0/0", "eth0/0" },
		{ "ETH0/65535", "ETH0/65535" },
		{ "0000:01:00.0/2", "0000:01:00.0/2" },
		{ "0000:01:10.2", "0000:01:10.2" },
		{ "0000:AF:1F.7", "0000:af:1f.7" },
		{ "01:10.2", "0000:01:10.2" },
	};
	static const char *const bad[] = {
		"", "eth0", "eth0/", "/2", "eth0/x", "eth0/-1", "eth0/+1", "eth0/65536", "eth0/123456",
		"eth 0/1", "../1", "./1", "a/b/1", "0000:01:10.8", "0000:01:20.0", "0000:01:10", "1:10.2",
		"00000:01:10.2", "0000:01:10.2/", "eth0/1 ", "eth0/1\\n",
	};
	char line[512], pf[IOVM_API_NAME_MAX];
	iovm_api_request r;
	unsigned idx = 99;

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		snprintf(line, sizeof(line), "{\"execute\":\"vf-show\",\"arguments\":{\"vf\":\"%s\"}}", good[i].in);
		parse_ok(line, &r);
		assert_string_equal(r.vf, good[i].out);
		iovm_api_request_done(&r);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(line, sizeof(line), "{\"execute\":\"vf-show\",\"arguments\":{\"vf\":\"%s\"}}", bad[i]);
		expect_fail(line, -EINVAL, "vf-show", "'vf'", NULL);
	}

	assert_int_equal(iovm_api_vf_split("eth0/2", pf, sizeof(pf), &idx), 0);
	assert_string_equal(pf, "eth0");
	assert_int_equal(idx, 2);
	assert_int_equal(iovm_api_vf_split("0000:01:00.0/65535", pf, sizeof(pf), &idx), 0);
	assert_string_equal(pf, "0000:01:00.0");
	assert_int_equal(idx, 65535);
	assert_int_equal(iovm_api_vf_split("eth0/3", NULL, 0, &idx), 0);
	assert_int_equal(idx, 3);
	assert_int_equal(iovm_api_vf_split("eth0/3", pf, 4, &idx), -ENOBUFS);
	assert_int_equal(iovm_api_vf_split("eth0/3", pf, 5, NULL), 0);
	assert_string_equal(pf, "eth0");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (!strchr(bad[i], '\\'))
			assert_int_equal(iovm_api_vf_split(bad[i], pf, sizeof(pf), &idx), -EINVAL);
	assert_int_equal(iovm_api_vf_split("0000:01:10.2", pf, sizeof(pf), &idx), -EINVAL);
	assert_int_equal(iovm_api_vf_split(NULL, pf, sizeof(pf), &idx), -EINVAL);

	assert_true(iovm_api_vf_is_pci_address("0000:01:10.2"));
	assert_true(iovm_api_vf_is_pci_address("01:10.2"));
	assert_false(iovm_api_vf_is_pci_address("eth0/2"));
	assert_false(iovm_api_vf_is_pci_address("0000:01:00.0/2"));
	assert_false(iovm_api_vf_is_pci_address("0000:01:10.9"));
	assert_false(iovm_api_vf_is_pci_address(""));
	assert_false(iovm_api_vf_is_pci_address(NULL));
}

/* ---- framing and the top level ------------------------------------------------------- */

static void test_unknown_command(void **state)
{
	iovm_api_request r;
	iovm_error e = {};

	expect_fail("{\"execute\":\"reboot\"}", -ENOSYS, "unknown command 'reboot'", NULL);
	expect_fail("{\"execute\":\"\"}", -ENOSYS, "unknown command", NULL);
	expect_fail("{\"execute\":\"Status\"}", -ENOSYS, "'Status'", NULL);
	expect_fail("{\"execute\":\"status\\u0000x\"}", -ENOSYS, "'status?x'", NULL);
	/* The class the daemon will answer with, and the id survives. */
	assert_int_equal(parse("{\"execute\":\"reboot\",\"arguments\":{\"x\":1},\"id\":42}", &r, &e), -ENOSYS);
	assert_string_equal(iovm_api_error_class(e.code), "CommandNotFound");
	assert_non_null(r.id);
	assert_int_equal(json_object_get_int(r.id), 42);
	iovm_api_request_done(&r);
	assert_int_equal(iovm_api_cmd_from_string("reboot"), -ENOSYS);
	assert_int_equal(iovm_api_cmd_from_string(NULL), -ENOSYS);
}

static void test_not_a_request(void **state)
{
	static const char *const bad[] = {
		"", "\n", "hello", "{", "}", "{\"execute\":}", "{\"execute\":\"status\",}", "[]",
		"[{\"execute\":\"status\"}]", "\"status\"", "42", "null", "true",
		"{\"execute\":\"status\"} x", "{\"execute\":\"status\"}{}", "{\"execute\":\"status\"}\n{}",
		"{\"execute\":\"status\"}\n\nx", "{\"execute\":\"status\",\"extra\":1}",
		"{\"execute\":\"status\",\"Arguments\":{}}", "{\"arguments\":{}}", "{}",
		"{\"execute\":1}", "{\"execute\":null}", "{\"execute\":[\"status\"]}",
		"{\"execute\":\"status\",\"id\":1.5}", "{\"execute\":\"status\",\"id\":true}",
		"{\"execute\":\"status\",\"id\":null}", "{\"execute\":\"status\",\"id\":{}}",
		"{\"execute\":\"status\",\"id\":[1]}", "{\"execute\":\"status\",\"name\":\"\xff\"}",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		expect_fail(bad[i], -EBADMSG, NULL);
	expect_fail("{\"execute\":\"status\",\"extra\":1}", -EBADMSG, "'extra'", NULL);
	expect_fail("{\"execute\":\"status\"} x", -EBADMSG, "request", NULL);
}

static void test_framing(void **state)
{
	static const char nul[] = "{\"execute\":\"status\"}\0";
	static const char cut[] = "{\"execute\":\"status\"}GARBAGE";
	iovm_api_request r;
	iovm_error e = {};

	parse_ok("{\"execute\":\"status\"}\n", &r);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"status\"}\r\n", &r);
	iovm_api_request_done(&r);
	parse_ok("  {\"execute\" : \"status\" , \"arguments\" : { } }  \t\r\n", &r);
	assert_int_equal(r.cmd, IOVM_API_STATUS);
	iovm_api_request_done(&r);
	/* The buffer need not be NUL-terminated: only len bytes count. */
	assert_int_equal(iovm_api_parse_request(cut, strlen("{\"execute\":\"status\"}"), &r, &e), 0);
	iovm_api_request_done(&r);
	/* A NUL byte inside the given length is refused. */
	assert_int_equal(iovm_api_parse_request(nul, sizeof(nul) - 1, &r, &e), -EBADMSG);
	iovm_api_request_done(&r);
	assert_int_equal(iovm_api_parse_request(NULL, 0, &r, &e), -EBADMSG);
	iovm_api_request_done(&r);
	assert_int_equal(iovm_api_parse_request(NULL, 5, &r, &e), -EINVAL);
	iovm_api_request_done(&r);
	assert_int_equal(iovm_api_parse_request("{}", 2, NULL, &e), -EINVAL);
	/* err may be NULL. */
	assert_int_equal(iovm_api_parse_request("x", 1, &r, NULL), -EBADMSG);
	iovm_api_request_done(&r);
}

static void test_line_length(void **state)
{
	const char *head = "{\"execute\":\"status\",\"id\":9}";
	size_t n = IOVM_API_LINE_MAX;
	char *buf = malloc(n + 3);
	iovm_api_request r;
	iovm_error e = {};

	assert_non_null(buf);
	/* Exactly IOVM_API_LINE_MAX bytes (whitespace padding) plus "\r\n": accepted. */
	memset(buf, ' ', n);
	memcpy(buf, head, strlen(head));
	memcpy(buf + n, "\r\n", 2);
	assert_int_equal(iovm_api_parse_request(buf, n + 2, &r, &e), 0);
	iovm_api_request_done(&r);
	/* One byte more: refused, whatever it is. */
	buf[n] = ' ';
	buf[n + 1] = '\n';
	assert_int_equal(iovm_api_parse_request(buf, n + 2, &r, &e), -EMSGSIZE);
	assert_string_equal(iovm_api_error_class(e.code), "InvalidParameter");
	assert_non_null(strstr(e.msg, "65536"));
	iovm_api_request_done(&r);
	free(buf);
}

/* Builds {"execute":"status","arguments":{"x":[[...]]}} with levels arrays. */
static char *nested(unsigned levels)
{
	char *s = malloc(64 + 2 * levels), *p;

	assert_non_null(s);
	p = s + sprintf(s, "{\"execute\":\"status\",\"arguments\":{\"x\":");
	for (unsigned i = 0; i < levels; i++)
		*p++ = '[';
	for (unsigned i = 0; i < levels; i++)
		*p++ = ']';
	strcpy(p, "}}");
	return s;
}

static void test_nesting(void **state)
{
	char *s;

	/* 2 object levels + 14 arrays = 16: read, then refused as an argument. */
	s = nested(14);
	expect_fail(s, -EINVAL, "unknown argument 'x'", NULL);
	free(s);
	s = nested(15);
	expect_fail(s, -EBADMSG, "16", NULL);
	free(s);
	s = nested(5000);
	expect_fail(s, -EBADMSG, NULL);
	free(s);
}

static void test_ids(void **state)
{
	iovm_api_request r;
	iovm_error e = {};
	char line[256];

	parse_ok("{\"id\":-5,\"execute\":\"status\"}", &r);
	assert_true(json_object_is_type(r.id, json_type_int));
	assert_int_equal(json_object_get_int(r.id), -5);
	iovm_api_request_done(&r);
	parse_ok("{\"execute\":\"status\",\"id\":\"\"}", &r);
	assert_true(json_object_is_type(r.id, json_type_string));
	iovm_api_request_done(&r);

	/* Kept on every kind of refusal once the id itself was good. */
	static const char *const failing[] = {
		"{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"vlan\":4095},\"id\":\"abc\"}",
		"{\"execute\":\"nope\",\"id\":\"abc\"}",
		"{\"id\":\"abc\",\"execute\":\"status\",\"bogus\":1}",
		"{\"id\":\"abc\"}",
		"{\"id\":\"abc\",\"execute\":\"vm-add\",\"arguments\":{}}",
	};
	for (size_t i = 0; i < sizeof(failing) / sizeof(failing[0]); i++) {
		assert_true(parse(failing[i], &r, &e) < 0);
		assert_non_null(r.id);
		assert_string_equal(json_object_get_string(r.id), "abc");
		/* Nothing but the id survives a refusal. */
		assert_string_equal(r.vf, "");
		assert_int_equal(r.cfg.present, 0);
		iovm_api_request_done(&r);
	}
	/* A bad id is refused and not kept. */
	assert_int_equal(parse("{\"execute\":\"status\",\"id\":1.5}", &r, &e), -EBADMSG);
	assert_null(r.id);
	assert_non_null(strstr(e.msg, "'id'"));
	iovm_api_request_done(&r);
	memset(line, 0, sizeof(line));
	snprintf(line, sizeof(line), "{\"execute\":\"status\",\"id\":\"%0*d\"}", IOVM_API_NAME_MAX, 0);
	assert_int_equal(parse(line, &r, &e), -EBADMSG);
	assert_null(r.id);
	iovm_api_request_done(&r);
	snprintf(line, sizeof(line), "{\"execute\":\"status\",\"id\":\"%0*d\"}", IOVM_API_NAME_MAX - 1, 0);
	parse_ok(line, &r);
	assert_non_null(r.id);
	iovm_api_request_done(&r);
	/* Unparseable input has no id to keep. */
	assert_int_equal(parse("{\"id\":7,", &r, &e), -EBADMSG);
	assert_null(r.id);
	iovm_api_request_done(&r);
}

/* ---- names of commands --------------------------------------------------------------- */

static void test_command_names(void **state)
{
	unsigned mutating = 0;

	for (unsigned c = 0; c < _IOVM_API_CMD_MAX; c++) {
		const char *s = iovm_api_cmd_to_string(c);

		assert_non_null(s);
		assert_int_equal(iovm_api_cmd_from_string(s), (int)c);
		mutating += iovm_api_cmd_is_mutating(c);
	}
	assert_null(iovm_api_cmd_to_string(_IOVM_API_CMD_MAX));
	assert_null(iovm_api_cmd_to_string((iovm_api_cmd)-1));
	assert_string_equal(iovm_api_cmd_to_string(IOVM_API_VF_SET), "vf-set");
	assert_true(iovm_api_cmd_is_mutating(IOVM_API_PF_SET_VFS));
	assert_true(iovm_api_cmd_is_mutating(IOVM_API_VF_SET));
	assert_true(iovm_api_cmd_is_mutating(IOVM_API_VM_ADD));
	assert_true(iovm_api_cmd_is_mutating(IOVM_API_VM_REMOVE));
	assert_true(iovm_api_cmd_is_mutating(IOVM_API_ATTACH));
	assert_true(iovm_api_cmd_is_mutating(IOVM_API_DETACH));
	assert_true(iovm_api_cmd_is_mutating(IOVM_API_MIGRATE_PREPARE));
	assert_true(iovm_api_cmd_is_mutating(IOVM_API_MIGRATE_ABORT));
	assert_false(iovm_api_cmd_is_mutating(IOVM_API_STATUS));
	assert_false(iovm_api_cmd_is_mutating(IOVM_API_VF_LIST));
	assert_false(iovm_api_cmd_is_mutating(IOVM_API_QUERY_COMMANDS));
	assert_int_equal(mutating, 8);
}

/* ---- the schema and its checks (what iovmctl links) -------------------------------- */

#define NAME_REFUSED "must be 1..63 characters of A-Z a-z 0-9 _ . : -"

/* err holds exactly "CMD: argument 'ARG' " + rest, and code -EINVAL. */
static void assert_refusal(int k, const iovm_error *e, const char *want)
{
	assert_int_equal(k, -EINVAL);
	assert_int_equal(e->code, -EINVAL);
	assert_string_equal(e->msg, want);
}

static void test_schema_args(void **state)
{
	for (unsigned a = 0; a < _IOVM_API_ARG_MAX; a++) {
		const iovm_api_arg_def *d = iovm_api_arg_get(a);

		assert_non_null(d);
		assert_string_equal(iovm_api_arg_to_string(a), d->name);
		assert_int_equal(iovm_api_arg_from_string(d->name), (int)a);
	}
	assert_null(iovm_api_arg_get(_IOVM_API_ARG_MAX));
	assert_null(iovm_api_arg_to_string(_IOVM_API_ARG_MAX));
	assert_int_equal(iovm_api_arg_from_string("vlna"), -EINVAL);
	assert_int_equal(iovm_api_arg_from_string(NULL), -EINVAL);
	assert_string_equal(iovm_api_arg_to_string(IOVM_API_ARG_NUMA_NODE), "numa_node");
	assert_int_equal(iovm_api_arg_get(IOVM_API_ARG_NUMA_NODE)->min, -1);
	assert_int_equal(iovm_api_arg_get(IOVM_API_ARG_RATE)->max, UINT32_MAX);
	/* The enums are named by iovm/types.h and the driver table. */
	assert_ptr_equal(iovm_api_arg_get(IOVM_API_ARG_PRIORITY)->choices, iovm_priority_names);
	assert_ptr_equal(iovm_api_arg_get(IOVM_API_ARG_MODE)->choices, iovm_mode_names);
	assert_ptr_equal(iovm_api_arg_get(IOVM_API_ARG_LINK)->choices, iovm_vf_link_state_names);
	assert_string_equal(iovm_api_driver_names[IOVM_API_DRIVER_VFIO], "vfio-pci");
	assert_string_equal(iovm_api_driver_names[IOVM_API_DRIVER_HOST], "host");
	assert_null(iovm_api_driver_names[IOVM_API_DRIVER_DEFAULT]);

	assert_true(iovm_api_cmd_takes(IOVM_API_VM_ADD, IOVM_API_ARG_QGA));
	assert_false(iovm_api_cmd_requires(IOVM_API_VM_ADD, IOVM_API_ARG_QGA));
	assert_true(iovm_api_cmd_requires(IOVM_API_VM_ADD, IOVM_API_ARG_QMP));
	assert_false(iovm_api_cmd_takes(IOVM_API_ATTACH, IOVM_API_ARG_QOS));
	assert_false(iovm_api_cmd_takes(IOVM_API_STATUS, IOVM_API_ARG_PF));
	assert_false(iovm_api_cmd_takes(_IOVM_API_CMD_MAX, IOVM_API_ARG_PF));
	assert_false(iovm_api_cmd_takes(IOVM_API_VF_LIST, _IOVM_API_ARG_MAX));
}

static void test_check_name(void **state)
{
	static const char *const bad[] = { ".", "..", "", "g 1", "g/1", "g;rm", "\xc3\xa9", "g*" };
	static const char *const good[] = { "g", "G-1", "a.b", "0000:01:00.0", "x_y:z", "...", ".hidden", "..a" };
	char name[IOVM_API_NAME_MAX + 1];
	iovm_error e = {};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		iovm_error_clear(&e);
		assert_refusal(iovm_api_check_name(IOVM_API_VM_ADD, IOVM_API_ARG_NAME, bad[i], &e), &e,
			       "vm-add: argument 'name' " NAME_REFUSED);
	}
	assert_refusal(iovm_api_check_name(IOVM_API_ATTACH, IOVM_API_ARG_VM, "..", &e), &e,
		       "attach: argument 'vm' " NAME_REFUSED);
	assert_refusal(iovm_api_check_name(IOVM_API_PF_SHOW, IOVM_API_ARG_PF, NULL, &e), &e,
		       "pf-show: argument 'pf' " NAME_REFUSED);
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_int_equal(iovm_api_check_name(IOVM_API_VM_ADD, IOVM_API_ARG_NAME, good[i], NULL), 0);
	memset(name, 'n', sizeof(name));
	name[IOVM_API_NAME_MAX - 1] = '\0';
	assert_int_equal(iovm_api_check_name(IOVM_API_VM_REMOVE, IOVM_API_ARG_NAME, name, NULL), 0);
	name[IOVM_API_NAME_MAX - 1] = 'n';
	name[IOVM_API_NAME_MAX] = '\0';
	assert_int_equal(iovm_api_check_name(IOVM_API_VM_REMOVE, IOVM_API_ARG_NAME, name, NULL), -EINVAL);
}

/* The parser refuses "." and ".." with the very message the check gives,
 * which is what iovmctl prints. */
static void test_check_name_is_the_parsers(void **state)
{
	static const struct {
		const char *line;
		iovm_api_cmd cmd;
		iovm_api_arg arg;
		const char *name;
	} cases[] = {
		{ "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\".\",\"qmp\":\"/x\"}}", IOVM_API_VM_ADD, IOVM_API_ARG_NAME, "." },
		{ "{\"execute\":\"vm-add\",\"arguments\":{\"name\":\"..\",\"qmp\":\"/x\"}}", IOVM_API_VM_ADD, IOVM_API_ARG_NAME, ".." },
		{ "{\"execute\":\"vm-remove\",\"arguments\":{\"name\":\"..\"}}", IOVM_API_VM_REMOVE, IOVM_API_ARG_NAME, ".." },
		{ "{\"execute\":\"attach\",\"arguments\":{\"vm\":\"..\"}}", IOVM_API_ATTACH, IOVM_API_ARG_VM, ".." },
		{ "{\"execute\":\"vf-list\",\"arguments\":{\"pf\":\".\"}}", IOVM_API_VF_LIST, IOVM_API_ARG_PF, "." },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		iovm_error parsed = {}, checked = {};
		iovm_api_request r;

		assert_int_equal(parse(cases[i].line, &r, &parsed), -EINVAL);
		iovm_api_request_done(&r);
		assert_int_equal(iovm_api_check_name(cases[i].cmd, cases[i].arg, cases[i].name, &checked), -EINVAL);
		assert_string_equal(parsed.msg, checked.msg);
	}
}

static void test_check_vf_path_mac(void **state)
{
	static const char *const bad_vf[] = { "../1", "./1", "eth0", "eth0/x", "eth0/65536", "0000:01:10", "", "/1" };
	static const char *const good_vf[] = { "eth0/2", ".../3", "0000:01:00.0/2", "0000:01:10.2", "01:10.2" };
	uint8_t mac[6];
	iovm_error e = {};

	for (size_t i = 0; i < sizeof(bad_vf) / sizeof(bad_vf[0]); i++)
		assert_refusal(iovm_api_check_vf(IOVM_API_VF_SHOW, IOVM_API_ARG_VF, bad_vf[i], &e), &e,
			       "vf-show: argument 'vf' must be a VF's PCI address (0000:01:10.2) or PF/INDEX (eth0/2)");
	for (size_t i = 0; i < sizeof(good_vf) / sizeof(good_vf[0]); i++)
		assert_int_equal(iovm_api_check_vf(IOVM_API_VF_SHOW, IOVM_API_ARG_VF, good_vf[i], NULL), 0);

	assert_refusal(iovm_api_check_path(IOVM_API_VM_ADD, IOVM_API_ARG_QMP, "q.sock", &e), &e,
		       "vm-add: argument 'qmp' must be an absolute path shorter than 108 bytes");
	assert_int_equal(iovm_api_check_path(IOVM_API_VM_ADD, IOVM_API_ARG_QGA, "", NULL), -EINVAL);
	assert_int_equal(iovm_api_check_path(IOVM_API_VM_ADD, IOVM_API_ARG_QMP, "/q.sock", NULL), 0);

	assert_refusal(iovm_api_check_mac(IOVM_API_VF_SET, IOVM_API_ARG_MAC, "02:00:00:00:00", NULL, &e), &e,
		       "vf-set: argument 'mac' must be a MAC address xx:xx:xx:xx:xx:xx");
	assert_refusal(iovm_api_check_mac(IOVM_API_ATTACH, IOVM_API_ARG_MAC, "01:00:5e:00:00:01", NULL, &e), &e,
		       "attach: argument 'mac' must be a unicast MAC address (01:00:5e:00:00:01 is multicast)");
	assert_refusal(iovm_api_check_mac(IOVM_API_VF_SET, IOVM_API_ARG_MAC, "00:00:00:00:00:00", NULL, &e), &e,
		       "vf-set: argument 'mac' must be a unicast MAC address, not all zeroes");
	assert_int_equal(iovm_api_check_mac(IOVM_API_VF_SET, IOVM_API_ARG_MAC, "02:AB:00:00:00:01", mac, NULL), 0);
	assert_int_equal(mac[0], 0x02);
	assert_int_equal(mac[1], 0xab);
	assert_int_equal(mac[5], 0x01);
}

static void test_check_enum_and_ranges(void **state)
{
	iovm_error e = {};
	int64_t x = 0;
	int v = -1;

	assert_refusal(iovm_api_check_enum(IOVM_API_VM_ADD, IOVM_API_ARG_PRIORITY, "urgent", NULL, &e), &e,
		       "vm-add: argument 'priority' must be one of \"low\", \"normal\", \"high\"");
	assert_refusal(iovm_api_check_enum(IOVM_API_PF_SET_VFS, IOVM_API_ARG_DRIVER, "igbvf", NULL, &e), &e,
		       "pf-set-vfs: argument 'driver' must be one of \"vfio-pci\", \"host\"");
	assert_int_equal(iovm_api_check_enum(IOVM_API_VM_ADD, IOVM_API_ARG_PRIORITY, "high", &v, NULL), 0);
	assert_int_equal(v, IOVM_PRIO_HIGH);
	assert_int_equal(iovm_api_check_enum(IOVM_API_ATTACH, IOVM_API_ARG_MODE, "shared", &v, NULL), 0);
	assert_int_equal(v, IOVM_MODE_SHARED);
	assert_int_equal(iovm_api_check_enum(IOVM_API_VF_SET, IOVM_API_ARG_LINK, "disable", &v, NULL), 0);
	assert_int_equal(v, IOVM_VF_LINK_DISABLE);
	/* Not an enum argument: a caller's mistake. */
	assert_int_equal(iovm_api_check_enum(IOVM_API_VF_SET, IOVM_API_ARG_VLAN, "1", NULL, NULL), -EINVAL);

	assert_refusal(iovm_api_check_int(IOVM_API_VF_SET, IOVM_API_ARG_VLAN, 4095, &e), &e,
		       "vf-set: argument 'vlan' must be an integer 0..4094");
	assert_int_equal(iovm_api_check_int(IOVM_API_VF_SET, IOVM_API_ARG_VLAN, 4094, NULL), 0);
	assert_int_equal(iovm_api_check_int(IOVM_API_VM_ADD, IOVM_API_ARG_NUMA_NODE, -1, NULL), 0);
	assert_int_equal(iovm_api_check_int(IOVM_API_VM_ADD, IOVM_API_ARG_NUMA_NODE, -2, NULL), -EINVAL);
	assert_int_equal(iovm_api_check_int(IOVM_API_VF_SET, IOVM_API_ARG_RATE, UINT32_MAX, NULL), 0);
	assert_int_equal(iovm_api_check_int(IOVM_API_VF_SET, IOVM_API_ARG_RATE, (int64_t)UINT32_MAX + 1, NULL), -EINVAL);

	/* Text, as a command line gives it: anything but an integer in range
	 * gets the range's message. */
	assert_int_equal(iovm_api_parse_int(IOVM_API_VM_ADD, IOVM_API_ARG_NUMA_NODE, "-1", &x, NULL), 0);
	assert_int_equal(x, -1);
	assert_int_equal(iovm_api_parse_int(IOVM_API_ATTACH, IOVM_API_ARG_TIMEOUT_MS, "600000", &x, NULL), 0);
	assert_int_equal(x, 600000);
	static const char *const bad[] = { "ten", "", "1x", " 1", "+1", "1.0", "4095", "-0x1", "99999999999999999999" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_refusal(iovm_api_parse_int(IOVM_API_VF_SET, IOVM_API_ARG_VLAN, bad[i], &x, &e), &e,
			       "vf-set: argument 'vlan' must be an integer 0..4094");
}

static void test_check_arguments(void **state)
{
	json_object *a = json_object_new_object();
	iovm_error e = {};

	assert_int_equal(iovm_api_check_arguments(IOVM_API_STATUS, NULL, NULL), 0);
	assert_int_equal(iovm_api_check_arguments(IOVM_API_VF_SET, a, &e), -EINVAL);
	assert_string_equal(e.msg, "vf-set: missing argument 'vf'");
	json_object_object_add(a, "vf", json_object_new_string("eth0/2"));
	assert_int_equal(iovm_api_check_arguments(IOVM_API_VF_SET, a, &e), -EINVAL);
	assert_string_equal(e.msg, "vf-set: needs at least one of the arguments mac, vlan, qos, rate, spoofchk, "
				   "trust, link");
	json_object_object_add(a, "qos", json_object_new_int(3));
	assert_int_equal(iovm_api_check_arguments(IOVM_API_VF_SET, a, &e), -EINVAL);
	assert_string_equal(e.msg, "vf-set: argument 'qos' needs argument 'vlan'");
	json_object_object_add(a, "vlan", json_object_new_int(10));
	assert_int_equal(iovm_api_check_arguments(IOVM_API_VF_SET, a, &e), 0);
	json_object_object_add(a, "vlan", json_object_new_string("10"));
	assert_int_equal(iovm_api_check_arguments(IOVM_API_VF_SET, a, &e), -EINVAL);
	assert_string_equal(e.msg, "vf-set: argument 'vlan' must be an integer 0..4094");
	assert_int_equal(iovm_api_check_arguments(IOVM_API_VF_SHOW, a, &e), -EINVAL);
	assert_string_equal(e.msg, "vf-show: unknown argument 'qos'");
	json_object_put(a);

	a = json_object_new_array();
	assert_int_equal(iovm_api_check_arguments(IOVM_API_STATUS, a, &e), -EINVAL);
	assert_string_equal(e.msg, "status: 'arguments' must be an object");
	json_object_put(a);
	assert_int_equal(iovm_api_check_arguments(_IOVM_API_CMD_MAX, NULL, NULL), -ENOSYS);
}

/* ---- formatters ------------------------------------------------------------------- */

static void test_error_classes(void **state)
{
	static const struct {
		int code;
		const char *cls;
	} map[] = {
		{ -ENOSYS, "CommandNotFound" },
		{ -EINVAL, "InvalidParameter" }, { -ERANGE, "InvalidParameter" },
		{ -EBADMSG, "InvalidParameter" }, { -EMSGSIZE, "InvalidParameter" },
		{ -ENOENT, "NotFound" }, { -ENODEV, "NotFound" }, { -ENXIO, "NotFound" },
		{ -EBUSY, "Busy" }, { -EEXIST, "Busy" }, { -EALREADY, "Busy" },
		{ -ETIMEDOUT, "Timeout" },
		{ -EOPNOTSUPP, "NotSupported" },
		{ -EACCES, "PermissionDenied" }, { -EPERM, "PermissionDenied" },
		{ -ECONNRESET, "VMUnreachable" }, { -ECONNREFUSED, "VMUnreachable" }, { -EPIPE, "VMUnreachable" },
		{ -EIO, "GenericError" }, { -ENOMEM, "GenericError" }, { 0, "GenericError" },
		{ EINVAL, "GenericError" }, { -99999, "GenericError" },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++) {
		json_object *o, *err;

		assert_string_equal(iovm_api_error_class(map[i].code), map[i].cls);
		if (map[i].code >= 0 || map[i].code == -99999)
			continue;
		/* The formatted error carries the same class and the errno's name. */
		o = parse_line(iovm_api_format_error(NULL, map[i].code, "d"));
		err = member(o, "error", json_type_object);
		assert_string_equal(json_object_get_string(member(err, "class", json_type_string)), map[i].cls);
		assert_string_equal(json_object_get_string(member(err, "desc", json_type_string)), "d");
		assert_string_equal(json_object_get_string(member(err, "errno", json_type_string)),
				    strerrorname_np(-map[i].code));
		json_object_put(o);
	}
}

static void test_format_return(void **state)
{
	json_object *id = json_object_new_int(7), *ret = json_object_new_object(), *o, *v;

	json_object_object_add(ret, "qmp", json_object_new_string("/run/g1/qmp.sock"));
	json_object_object_add(ret, "n", json_object_new_int(3));
	{
		char *line = iovm_api_format_return(id, ret);

		/* PLAIN, and '/' is not escaped. */
		assert_non_null(strstr(line, "\"/run/g1/qmp.sock\""));
		assert_null(strstr(line, ": "));
		o = parse_line(line);
	}
	v = member(o, "return", json_type_object);
	assert_string_equal(json_object_get_string(member(v, "qmp", json_type_string)), "/run/g1/qmp.sock");
	assert_int_equal(json_object_get_int(member(v, "n", json_type_int)), 3);
	assert_int_equal(json_object_get_int(member(o, "id", json_type_int)), 7);
	assert_int_equal(json_object_object_length(o), 2);
	json_object_put(o);
	/* Borrowed: still ours, unchanged. */
	assert_int_equal(json_object_object_length(ret), 2);
	json_object_put(ret);
	json_object_put(id);

	/* NULL return is {}; no id, no member. */
	o = parse_line(iovm_api_format_return(NULL, NULL));
	assert_int_equal(json_object_object_length(member(o, "return", json_type_object)), 0);
	assert_false(json_object_object_get_ex(o, "id", NULL));
	json_object_put(o);

	/* An array return and a string id. */
	id = json_object_new_string("x");
	ret = json_object_new_array();
	json_object_array_add(ret, json_object_new_string("a"));
	o = parse_line(iovm_api_format_return(id, ret));
	assert_int_equal(json_object_array_length(member(o, "return", json_type_array)), 1);
	assert_string_equal(json_object_get_string(member(o, "id", json_type_string)), "x");
	json_object_put(o);
	json_object_put(ret);
	json_object_put(id);
}

static void test_format_error(void **state)
{
	json_object *id = json_object_new_string("r1"), *o, *e;
	iovm_api_request r;
	iovm_error pe = {};

	o = parse_line(iovm_api_format_error(id, -EBUSY, "vf 0000:01:10.2: in use by g2"));
	e = member(o, "error", json_type_object);
	assert_string_equal(json_object_get_string(member(e, "class", json_type_string)), "Busy");
	assert_string_equal(json_object_get_string(member(e, "desc", json_type_string)),
			    "vf 0000:01:10.2: in use by g2");
	assert_string_equal(json_object_get_string(member(e, "errno", json_type_string)), "EBUSY");
	assert_int_equal(json_object_object_length(e), 3);
	assert_string_equal(json_object_get_string(member(o, "id", json_type_string)), "r1");
	json_object_put(o);
	json_object_put(id);

	/* No description: strerror's text. Unknown errno: its number. */
	o = parse_line(iovm_api_format_error(NULL, -ETIMEDOUT, NULL));
	e = member(o, "error", json_type_object);
	assert_string_equal(json_object_get_string(member(e, "desc", json_type_string)), strerror(ETIMEDOUT));
	assert_string_equal(json_object_get_string(member(e, "class", json_type_string)), "Timeout");
	assert_false(json_object_object_get_ex(o, "id", NULL));
	json_object_put(o);
	o = parse_line(iovm_api_format_error(NULL, -4000, "x"));
	e = member(o, "error", json_type_object);
	assert_string_equal(json_object_get_string(member(e, "errno", json_type_string)), "4000");
	assert_string_equal(json_object_get_string(member(e, "class", json_type_string)), "GenericError");
	json_object_put(o);
	/* A non-negative code still makes an error. */
	o = parse_line(iovm_api_format_error(NULL, 0, "x"));
	e = member(o, "error", json_type_object);
	assert_string_equal(json_object_get_string(member(e, "errno", json_type_string)), "EIO");
	json_object_put(o);
	/* A description that is not UTF-8 still gives a parseable line. */
	o = parse_line(iovm_api_format_error(NULL, -EINVAL, "bad \xff\xfe byte, cut \xc3"));
	e = member(o, "error", json_type_object);
	assert_string_equal(json_object_get_string(member(e, "desc", json_type_string)), "bad ?? byte, cut ?");
	json_object_put(o);
	o = parse_line(iovm_api_format_error(NULL, -EINVAL, "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"));
	e = member(o, "error", json_type_object);
	assert_string_equal(json_object_get_string(member(e, "desc", json_type_string)),
			    "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	json_object_put(o);

	/* The round trip the daemon does: a refusal with the request's id. */
	assert_int_equal(parse("{\"execute\":\"vf-set\",\"arguments\":{\"vf\":\"eth0/1\",\"vlan\":4095},\"id\":3}",
			       &r, &pe), -EINVAL);
	o = parse_line(iovm_api_format_error(r.id, pe.code, pe.msg));
	e = member(o, "error", json_type_object);
	assert_string_equal(json_object_get_string(member(e, "class", json_type_string)), "InvalidParameter");
	assert_string_equal(json_object_get_string(member(e, "errno", json_type_string)), "EINVAL");
	assert_string_equal(json_object_get_string(member(e, "desc", json_type_string)), pe.msg);
	assert_int_equal(json_object_get_int(member(o, "id", json_type_int)), 3);
	json_object_put(o);
	iovm_api_request_done(&r);
}

static void test_format_event(void **state)
{
	json_object *data = json_object_new_object(), *o, *ts;
	struct timespec before, after;
	int64_t s, us;

	json_object_object_add(data, "vm", json_object_new_string("g1"));
	json_object_object_add(data, "vf", json_object_new_string("0000:01:10.0"));
	clock_gettime(CLOCK_REALTIME, &before);
	o = parse_line(iovm_api_format_event("VF_DETACHED", data));
	clock_gettime(CLOCK_REALTIME, &after);
	assert_string_equal(json_object_get_string(member(o, "event", json_type_string)), "VF_DETACHED");
	assert_string_equal(json_object_get_string(member(member(o, "data", json_type_object), "vm",
							  json_type_string)), "g1");
	ts = member(o, "timestamp", json_type_object);
	s = json_object_get_int64(member(ts, "seconds", json_type_int));
	us = json_object_get_int64(member(ts, "microseconds", json_type_int));
	/* The realtime clock, read between our two readings. */
	assert_true(s >= before.tv_sec && s <= after.tv_sec);
	assert_true(us >= 0 && us < 1000000);
	assert_false(json_object_object_get_ex(o, "id", NULL));
	assert_int_equal(json_object_object_length(o), 3);
	json_object_put(o);
	assert_int_equal(json_object_object_length(data), 2);
	json_object_put(data);

	o = parse_line(iovm_api_format_event("VM_GONE", NULL));
	assert_int_equal(json_object_object_length(member(o, "data", json_type_object)), 0);
	json_object_put(o);
}

static void test_format_greeting(void **state)
{
	json_object *o = parse_line(iovm_api_format_greeting("0.1.0")), *g;

	g = member(o, "iovm", json_type_object);
	assert_string_equal(json_object_get_string(member(g, "version", json_type_string)), "0.1.0");
	assert_int_equal(json_object_get_int(member(g, "api", json_type_int)), IOVM_API_VERSION);
	assert_int_equal(json_object_object_length(o), 1);
	json_object_put(o);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_command_valid),
		cmocka_unit_test(test_typed_fields),
		cmocka_unit_test(test_missing_required),
		cmocka_unit_test(test_wrong_types),
		cmocka_unit_test(test_unknown_argument),
		cmocka_unit_test(test_cross_argument_rules),
		cmocka_unit_test(test_ranges),
		cmocka_unit_test(test_qmp_path_length),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_vf_names),
		cmocka_unit_test(test_unknown_command),
		cmocka_unit_test(test_not_a_request),
		cmocka_unit_test(test_framing),
		cmocka_unit_test(test_line_length),
		cmocka_unit_test(test_nesting),
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_command_names),
		cmocka_unit_test(test_schema_args),
		cmocka_unit_test(test_check_name),
		cmocka_unit_test(test_check_name_is_the_parsers),
		cmocka_unit_test(test_check_vf_path_mac),
		cmocka_unit_test(test_check_enum_and_ranges),
		cmocka_unit_test(test_check_arguments),
		cmocka_unit_test(test_error_classes),
		cmocka_unit_test(test_format_return),
		cmocka_unit_test(test_format_error),
		cmocka_unit_test(test_format_event),
		cmocka_unit_test(test_format_greeting),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
