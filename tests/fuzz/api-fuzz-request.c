/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for the iovmd request parser: arbitrary bytes as one
 * request line. Whatever arrives, the parser must neither crash nor leak,
 * a success must leave a typed request within its documented bounds, a
 * refusal must carry a message, and the reply the daemon would send (a
 * return or an error with the request's id) must be one line of valid JSON.
 * Build and run: scripts/run-fuzz. */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/api.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static void check_string(const char *s, size_t n)
{
	CHECK(strnlen(s, n) < n);
}

static void check_request(const iovm_api_request *r)
{
	char pf[IOVM_API_NAME_MAX];
	unsigned idx;

	CHECK((unsigned)r->cmd < _IOVM_API_CMD_MAX);
	CHECK(iovm_api_cmd_to_string(r->cmd) != NULL);
	check_string(r->pf, sizeof(r->pf));
	check_string(r->vf, sizeof(r->vf));
	check_string(r->vm, sizeof(r->vm));
	check_string(r->qmp, sizeof(r->qmp));
	check_string(r->failover_pair_id, sizeof(r->failover_pair_id));
	CHECK(!r->qmp[0] || r->qmp[0] == '/');
	CHECK(r->count <= 65535);
	CHECK(r->numa_node >= -1 && r->numa_node <= 1023);
	CHECK(r->timeout_ms == 0 || (r->timeout_ms >= 100 && r->timeout_ms <= 600000));
	CHECK(r->priority >= -1 && r->priority <= 2);
	CHECK(!(r->cfg.present & ~(unsigned)IOVM_VFNET_ALL));
	CHECK(r->cfg.vlan <= 4094 && r->cfg.qos <= 7);
	CHECK(!(r->cfg.present & IOVM_VFNET_MAC) || !(r->cfg.mac[0] & 1));
	CHECK(!r->id || json_object_is_type(r->id, json_type_int) ||
	      json_object_is_type(r->id, json_type_string));
	/* A VF name is either form, never neither. */
	if (r->vf[0])
		CHECK(iovm_api_vf_is_pci_address(r->vf) ||
		      iovm_api_vf_split(r->vf, pf, sizeof(pf), &idx) == 0);
	if (r->cmd == IOVM_API_VF_SET)
		CHECK(r->cfg.present != 0);
}

static void check_line(char *line)
{
	json_object *o;
	size_t n;

	CHECK(line);
	n = strlen(line);
	CHECK(n > 1 && line[n - 1] == '\n' && !memchr(line, '\n', n - 1));
	o = json_tokener_parse(line);
	CHECK(o && json_object_is_type(o, json_type_object));
	json_object_put(o);
	free(line);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	iovm_api_request r;
	iovm_error err = {};
	int k;

	k = iovm_api_parse_request((const char *)data, size, &r, &err);
	if (k == 0) {
		json_object *ret = json_object_new_object();

		CHECK(err.code == 0);
		check_request(&r);
		json_object_object_add(ret, "vf", json_object_new_string(r.vf));
		check_line(iovm_api_format_return(r.id, ret));
		json_object_put(ret);
	} else {
		CHECK(k == -EMSGSIZE || k == -EBADMSG || k == -ENOSYS || k == -EINVAL);
		CHECK(err.code == k && err.msg[0]);
		CHECK(!r.id || json_object_is_type(r.id, json_type_int) ||
		      json_object_is_type(r.id, json_type_string));
		check_line(iovm_api_format_error(r.id, k, err.msg));
	}
	iovm_api_request_done(&r);
	CHECK(r.id == NULL);
	return 0;
}
