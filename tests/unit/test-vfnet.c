/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vfnet: config text round trip, input validation and PF resolution. The
 * netlink side (set, read back, stats) is a lab test on the real igb. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "iovm/vfnet.h"
#include "fixtures/fixture.h"

typedef struct ctx {
	fixture fx;
	iovm_host *h;
	iovm_vfnet *nl;
} ctx;

static int setup(void **state)
{
	ctx *c = calloc(1, sizeof(*c));

	if (!c || fixture_make(&c->fx) < 0 || iovm_host_new(c->fx.sys, &c->h) < 0 ||
	    iovm_vfnet_open(c->h, &c->nl, NULL) < 0)
		return -1;
	*state = c;
	return 0;
}

static int teardown(void **state)
{
	ctx *c = *state;

	iovm_vfnet_close(c->nl);
	iovm_host_free(c->h);
	fixture_remove(&c->fx);
	free(c);
	return 0;
}

static void test_mac_parse(void **state)
{
	uint8_t m[6] = { 9, 9, 9, 9, 9, 9 };

	assert_int_equal(iovm_mac_parse("02:aB:00:10:ff:01", m), 0);
	assert_memory_equal(m, ((uint8_t[]){ 0x02, 0xab, 0x00, 0x10, 0xff, 0x01 }), 6);
	assert_int_equal(iovm_mac_parse("02:ab:00:10:ff", m), -EINVAL);
	assert_int_equal(iovm_mac_parse("02-ab-00-10-ff-01", m), -EINVAL);
	assert_int_equal(iovm_mac_parse("02:ab:00:10:ff:0g", m), -EINVAL);
	assert_int_equal(iovm_mac_parse("02:ab:00:10:ff:011", m), -EINVAL);
	assert_int_equal(iovm_mac_parse(NULL, m), -EINVAL);
	/* Failed parses leave the output alone. */
	assert_int_equal(m[0], 0x02);
	assert_int_equal(m[5], 0x01);
}

static void test_format_parse_roundtrip(void **state)
{
	iovm_vfnet_config c = {
		.present = IOVM_VFNET_ALL, .mac = { 0x02, 0, 0, 0, 0, 0x11 }, .vlan = 100,
		.qos = 3, .max_tx_rate = 250, .spoofchk = true, .trust = false,
		.link_state = IOVM_VF_LINK_DISABLE,
	}, back;
	char s[256];
	iovm_error e = {};

	assert_true(iovm_vfnet_config_format(&c, s, sizeof(s)) > 0);
	assert_string_equal(s, "mac=02:00:00:00:00:11 vlan=100 qos=3 rate=250 spoofchk=1 "
			    "trust=0 link=disable");
	assert_int_equal(iovm_vfnet_config_parse(s, &back, &e), 0);
	assert_int_equal(back.present, IOVM_VFNET_ALL);
	assert_memory_equal(&back.mac, &c.mac, 6);
	assert_int_equal(back.vlan, 100);
	assert_int_equal(back.qos, 3);
	assert_int_equal(back.max_tx_rate, 250);
	assert_true(back.spoofchk);
	assert_false(back.trust);
	assert_int_equal(back.link_state, IOVM_VF_LINK_DISABLE);

	/* Only present fields are written. */
	c.present = IOVM_VFNET_TRUST | IOVM_VFNET_RATE;
	assert_int_equal(iovm_vfnet_config_format(&c, s, sizeof(s)), 16);
	assert_string_equal(s, "rate=250 trust=0");
	assert_int_equal(iovm_vfnet_config_format(&c, s, 10), -ENOBUFS);
	c.present = 0;
	assert_int_equal(iovm_vfnet_config_format(&c, s, sizeof(s)), 0);
	assert_string_equal(s, "");
}

static void test_parse_errors(void **state)
{
	iovm_vfnet_config c = { .vlan = 7 };
	iovm_error e = {};

	assert_int_equal(iovm_vfnet_config_parse("vlan=4095", &c, &e), -EINVAL);
	assert_string_equal(e.msg, "vf config: bad field 'vlan=4095'");
	assert_int_equal(iovm_vfnet_config_parse("qos=8", &c, &e), -EINVAL);
	assert_int_equal(iovm_vfnet_config_parse("rate=-1", &c, &e), -EINVAL);
	assert_int_equal(iovm_vfnet_config_parse("trust=2", &c, &e), -EINVAL);
	assert_int_equal(iovm_vfnet_config_parse("link=up", &c, &e), -EINVAL);
	assert_int_equal(iovm_vfnet_config_parse("mac=zz", &c, &e), -EINVAL);
	assert_int_equal(iovm_vfnet_config_parse("colour=blue", &c, &e), -EINVAL);
	assert_int_equal(iovm_vfnet_config_parse("vlan", &c, &e), -EINVAL);
	assert_int_equal(c.vlan, 7);
	assert_int_equal(iovm_vfnet_config_parse("", &c, &e), 0);
	assert_int_equal(c.present, 0);
}

static void test_set_validation(void **state)
{
	ctx *c = *state;
	iovm_vfnet_config cfg = { .mac = { 0x01, 0, 0, 0, 0, 1 } };
	iovm_error e = {};

	assert_int_equal(iovm_vfnet_set(c->nl, "eth0", 0, &cfg, IOVM_VFNET_MAC, &e), -EINVAL);
	assert_string_equal(e.msg, "vfnet: mac 01:00:00:00:00:01 is multicast");
	cfg = (iovm_vfnet_config){ .vlan = 4095 };
	assert_int_equal(iovm_vfnet_set(c->nl, "eth0", 0, &cfg, IOVM_VFNET_VLAN, &e), -EINVAL);
	cfg = (iovm_vfnet_config){ .qos = 2 };
	assert_int_equal(iovm_vfnet_set(c->nl, "eth0", 0, &cfg, IOVM_VFNET_VLAN, &e), -EINVAL);
	assert_non_null(strstr(e.msg, "qos 0-7 with a vlan"));
	cfg = (iovm_vfnet_config){ .link_state = 3 };
	assert_int_equal(iovm_vfnet_set(c->nl, "eth0", 0, &cfg, IOVM_VFNET_LINK_STATE, &e), -EINVAL);
	assert_int_equal(iovm_vfnet_set(c->nl, "eth0", 0, &cfg, 0x100, &e), -EINVAL);
	assert_int_equal(iovm_vfnet_set(NULL, "eth0", 0, &cfg, 0, &e), -EINVAL);
	assert_int_equal(iovm_vfnet_set(c->nl, "eth0", 0, NULL, 0, &e), -EINVAL);
}

static void test_pf_resolution(void **state)
{
	ctx *c = *state;
	iovm_vfnet_config cfg = {};
	iovm_vfnet_stats st;
	iovm_error e = {};

	/* Resolution happens before any netlink traffic. */
	assert_int_equal(iovm_vfnet_get(c->nl, "eth0", 3, &cfg, &e), -ENODEV);
	assert_string_equal(e.msg, "pf eth0 vf 3: no such VF (3 VFs)");
	assert_int_equal(iovm_vfnet_get_stats(c->nl, "0000:01:00.0", 9, &st, &e), -ENODEV);
	assert_int_equal(iovm_vfnet_get(c->nl, "0000:03:00.0", 0, &cfg, &e), -ENODEV);
	assert_string_equal(e.msg, "pf 0000:03:00.0: no network device (driver none); VF "
			    "settings go through the PF's netdev");
	assert_int_equal(iovm_vfnet_get(c->nl, "0000:00:1f.0", 0, &cfg, &e), -EOPNOTSUPP);
	assert_int_equal(iovm_vfnet_restore(c->nl, "eth0", 0, NULL, &e), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_mac_parse),
		cmocka_unit_test(test_format_parse_roundtrip),
		cmocka_unit_test(test_parse_errors),
		cmocka_unit_test_setup_teardown(test_set_validation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pf_resolution, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
