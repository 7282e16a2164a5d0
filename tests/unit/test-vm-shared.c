/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Shared VFs (vm-shared.c): the pure parts (names derived from VM and VF,
 * default MACs, the arguments of netdev_add and device_add), the host netdev
 * byte counters on a fixture tree, and QMP's fd passing (getfd's
 * SCM_RIGHTS) against a small fake monitor that receives the fd and writes
 * through it. macvtaps and real QEMU are covered by tests/lab/24-vm-shared.sh.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "iovm/host.h"
#include "iovm/qmp.h"
#include "iovm/netdev.h"
#include "iovm/shared.h"

#define VF "0000:01:10.2"

static void test_ids(void **state)
{
	char b[IOVM_VM_ID_MAX], vf[IOVM_VM_ADDR_MAX];

	assert_int_equal(iovm_shared_device_id(VF, b, sizeof(b)), 0);
	assert_string_equal(b, "iovm-sh-0000-01-10.2");
	assert_int_equal(iovm_shared_vf_from_device_id(b, vf, sizeof(vf)), 0);
	assert_string_equal(vf, VF);
	assert_int_equal(iovm_shared_netdev_id(VF, b, sizeof(b)), 0);
	assert_string_equal(b, "iovm-shn-0000-01-10.2");
	assert_int_equal(iovm_shared_fd_name(VF, b, sizeof(b)), 0);
	assert_string_equal(b, "iovm-shfd-0000-01-10.2");

	assert_int_equal(iovm_shared_device_id("01:10.2", b, sizeof(b)), -EINVAL);
	assert_int_equal(iovm_shared_device_id(NULL, b, sizeof(b)), -EINVAL);
	assert_int_equal(iovm_shared_device_id(VF, b, 10), -ENAMETOOLONG);
	/* Device ids of other kinds are not taken for shared ones. */
	assert_int_equal(iovm_shared_vf_from_device_id("iovm-0000-01-10.2", vf, sizeof(vf)), -EINVAL);
	assert_int_equal(iovm_shared_vf_from_device_id("iovm-sh-0000-01-10", vf, sizeof(vf)), -EINVAL);
	assert_int_equal(iovm_shared_vf_from_device_id("iovm-sh-0000:01:10.2", vf, sizeof(vf)), -EINVAL);
	assert_int_equal(iovm_shared_vf_from_device_id("iovm-sh-zzzz-01-10.2", vf, sizeof(vf)), -EINVAL);
	assert_int_equal(iovm_shared_vf_from_device_id("hp1", vf, sizeof(vf)), -EINVAL);
}

static void test_ifname(void **state)
{
	char a[IF_NAMESIZE], b[IF_NAMESIZE], c[IF_NAMESIZE], d[IF_NAMESIZE];

	assert_int_equal(iovm_shared_ifname("g1", VF, a, sizeof(a)), 0);
	/* Deterministic, prefixed, and within IFNAMSIZ. */
	assert_int_equal(iovm_shared_ifname("g1", VF, b, sizeof(b)), 0);
	assert_string_equal(a, b);
	assert_int_equal(strncmp(a, IOVM_SHARED_IFNAME_PREFIX, strlen(IOVM_SHARED_IFNAME_PREFIX)), 0);
	assert_int_equal(strlen(a), 10);
	assert_true(strlen(a) < IF_NAMESIZE);
	for (const char *p = a + 2; *p; p++)
		assert_non_null(strchr("0123456789abcdef", *p));
	/* Unique per (VM, VF) pair. */
	assert_int_equal(iovm_shared_ifname("g2", VF, c, sizeof(c)), 0);
	assert_string_not_equal(a, c);
	assert_int_equal(iovm_shared_ifname("g1", "0000:01:10.4", d, sizeof(d)), 0);
	assert_string_not_equal(a, d);
	assert_string_not_equal(c, d);
	/* The parts are delimited: ("g1", "0") is not ("g", "10"). */
	assert_int_equal(iovm_shared_ifname("g1", "0", c, sizeof(c)), 0);
	assert_int_equal(iovm_shared_ifname("g", "10", d, sizeof(d)), 0);
	assert_string_not_equal(c, d);
	/* A long VM name still gives a short interface name. */
	assert_int_equal(iovm_shared_ifname("a-very-long-virtual-machine-name-for-testing", VF, c, sizeof(c)), 0);
	assert_int_equal(strlen(c), 10);

	assert_int_equal(iovm_shared_ifname("", VF, a, sizeof(a)), -EINVAL);
	assert_int_equal(iovm_shared_ifname("g1", NULL, a, sizeof(a)), -EINVAL);
	assert_int_equal(iovm_shared_ifname("g1", VF, a, 4), -ENAMETOOLONG);
}

static void test_mac(void **state)
{
	char a[IOVM_MAC_STR_MAX], b[IOVM_MAC_STR_MAX], c[IOVM_MAC_STR_MAX];
	unsigned o[6];

	assert_int_equal(iovm_shared_mac("g1", VF, a, sizeof(a)), 0);
	assert_int_equal(iovm_shared_mac("g1", VF, b, sizeof(b)), 0);
	assert_string_equal(a, b);
	assert_int_equal(strlen(a), 17);
	assert_int_equal(sscanf(a, "%2x:%2x:%2x:%2x:%2x:%2x", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5]), 6);
	/* Locally administered unicast. */
	assert_int_equal(o[0], 0x02);
	assert_int_equal(iovm_shared_mac("g2", VF, c, sizeof(c)), 0);
	assert_string_not_equal(a, c);
	assert_int_equal(iovm_shared_mac("g1", "0000:01:10.4", c, sizeof(c)), 0);
	assert_string_not_equal(a, c);
	/* Not the same hash as the interface name's. */
	assert_int_equal(iovm_shared_ifname("g1", VF, c, sizeof(c)), 0);
	assert_null(strstr(a, c + 2));

	assert_int_equal(iovm_shared_mac(NULL, VF, a, sizeof(a)), -EINVAL);
	assert_int_equal(iovm_shared_mac("g1", VF, a, 10), -ENAMETOOLONG);
}

static void assert_json(json_object *o, const char *want)
{
	json_object *w = json_tokener_parse(want);

	assert_non_null(o);
	assert_non_null(w);
	if (!json_object_equal(o, w))
		fail_msg("got %s, want %s", json_object_to_json_string(o), want);
	json_object_put(w);
	json_object_put(o);
}

static void test_args(void **state)
{
	assert_json(iovm_shared_netdev_add_args("iovm-shn-0000-01-10.2", "iovm-shfd-0000-01-10.2"),
		    "{\"type\":\"tap\",\"id\":\"iovm-shn-0000-01-10.2\",\"fd\":\"iovm-shfd-0000-01-10.2\","
		    "\"vhost\":false}");
	assert_null(iovm_shared_netdev_add_args("", "fd"));
	assert_null(iovm_shared_netdev_add_args("n", NULL));

	/* The MAC is normalized to lower case. */
	assert_json(iovm_shared_device_add_args("iovm-sh-0000-01-10.2", "iovm-shn-0000-01-10.2", "hp2",
						"02:5A:00:00:00:11"),
		    "{\"driver\":\"virtio-net-pci\",\"netdev\":\"iovm-shn-0000-01-10.2\","
		    "\"id\":\"iovm-sh-0000-01-10.2\",\"bus\":\"hp2\",\"mac\":\"02:5a:00:00:00:11\"}");
	assert_null(iovm_shared_device_add_args("d", "n", "hp1", "02:5a:00:00:00"));
	assert_null(iovm_shared_device_add_args("d", "n", "hp1", "zz:5a:00:00:00:11"));
	/* Multicast MACs cannot be a NIC's. */
	assert_null(iovm_shared_device_add_args("d", "n", "hp1", "01:00:5e:00:00:01"));
	assert_null(iovm_shared_device_add_args("d", "n", "", "02:5a:00:00:00:11"));
	assert_null(iovm_shared_device_add_args(NULL, "n", "hp1", "02:5a:00:00:00:11"));
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void test_netdev_bytes(void **state)
{
	char root[] = "/tmp/iovm-test-shared-XXXXXX", p[512];
	uint64_t rx = 0, tx = 0;
	iovm_host *h = NULL;
	iovm_error e = {};

	assert_non_null(mkdtemp(root));
	snprintf(p, sizeof(p), "%s/class/net/eth2/statistics", root);
	for (char *s = p + strlen(root) + 1; (s = strchr(s, '/')); s++) {
		*s = '\0';
		assert_int_equal(mkdir(p, 0755), 0);
		*s = '/';
	}
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/class/net/eth2/statistics/rx_bytes", root);
	write_file(p, "123456789012\n");
	snprintf(p, sizeof(p), "%s/class/net/eth2/statistics/tx_bytes", root);
	write_file(p, "18446744073709551615\n");
	assert_int_equal(iovm_host_new(root, &h), 0);

	assert_int_equal(iovm_netdev_bytes(h, "eth2", &rx, &tx, &e), 0);
	assert_true(rx == 123456789012ULL);
	assert_true(tx == UINT64_MAX);
	/* Missing netdev, bad names, garbage in the file. */
	assert_int_equal(iovm_netdev_bytes(h, "eth9", &rx, &tx, &e), -ENOENT);
	assert_non_null(strstr(e.msg, "eth9"));
	assert_int_equal(iovm_netdev_bytes(h, "../x", &rx, &tx, &e), -EINVAL);
	assert_int_equal(iovm_netdev_bytes(h, "", &rx, &tx, &e), -EINVAL);
	write_file(p, "12x\n");
	assert_int_equal(iovm_netdev_bytes(h, "eth2", &rx, &tx, &e), -EBADMSG);

	iovm_host_free(h);
	snprintf(p, sizeof(p), "rm -rf '%s'", root);
	assert_int_equal(system(p), 0);
}

/* ---- fd passing ---------------------------------------------------------- */

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, " \
		 "\"package\": \"\"}, \"capabilities\": []}}\r\n"

struct fdfake {
	int fd;
	pthread_t thread;
	int fds_seen[2];         /* fds that came with each command line (-1: none) */
	char lines[2][512];
};

/* Reads one line; an fd that comes with it is kept. */
static int recv_line(int s, char *buf, size_t n, int *ret_fd)
{
	size_t len = 0;

	*ret_fd = -1;
	while (len < n - 1) {
		union {
			char b[CMSG_SPACE(sizeof(int))];
			struct cmsghdr align;
		} u;
		struct iovec iov = { .iov_base = buf + len, .iov_len = 1 };
		struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.b,
				     .msg_controllen = sizeof(u.b) };
		ssize_t r = recvmsg(s, &mh, MSG_CMSG_CLOEXEC);

		if (r <= 0)
			return -1;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
			if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
				memcpy(ret_fd, CMSG_DATA(c), sizeof(int));
		if (buf[len++] == '\n')
			break;
	}
	buf[len] = '\0';
	return 0;
}

static long line_id(const char *line)
{
	json_object *o = json_tokener_parse(line), *id;
	long v = -1;

	if (o && json_object_object_get_ex(o, "id", &id))
		v = (long)json_object_get_int64(id);
	json_object_put(o);
	return v;
}

static void *fdfake_main(void *ud)
{
	struct fdfake *f = ud;
	char reply[128];
	int got;

	if (write(f->fd, GREETING, strlen(GREETING)) < 0)
		return NULL;
	for (int i = 0; i < 2; i++) {
		char line[512];

		if (recv_line(f->fd, line, sizeof(line), &got) < 0)
			return NULL;
		if (i > 0) {
			snprintf(f->lines[i - 1], sizeof(f->lines[0]), "%s", line);
			f->fds_seen[i - 1] = got;
			/* Prove it is the caller's object: write through it. */
			if (got >= 0 && write(got, "tap", 3) != 3)
				return NULL;
		} else if (got >= 0) {
			close(got);
		}
		snprintf(reply, sizeof(reply), "{\"return\": {}, \"id\": %ld}\r\n", line_id(line));
		if (write(f->fd, reply, strlen(reply)) < 0)
			return NULL;
	}
	return NULL;
}

static void test_execute_with_fd(void **state)
{
	struct fdfake f = { .fds_seen = { -1, -1 } };
	json_object *args = json_object_new_object();
	iovm_qmp *q = NULL;
	iovm_error e = {};
	int sv[2], pipefd[2];
	char buf[8] = "";

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	f.fd = sv[1];
	assert_int_equal(pthread_create(&f.thread, NULL, fdfake_main, &f), 0);
	assert_int_equal(iovm_qmp_new_from_fd(sv[0], "fake", &q, &e), 0);
	/* Before negotiation there is no line to carry the fd safely. */
	assert_int_equal(iovm_qmp_execute_with_fd(q, "getfd", args, pipefd[1], NULL, 5000, &e), -EAGAIN);
	while (!iovm_qmp_is_ready(q)) {
		struct pollfd p = { .fd = iovm_qmp_get_fd(q), .events = iovm_qmp_get_events(q) };

		assert_int_equal(poll(&p, 1, 10000), 1);
		if (iovm_qmp_process(q, &e) < 0)
			fail_msg("negotiation failed: %s", e.msg);
	}
	assert_int_equal(iovm_qmp_execute_with_fd(q, "getfd", args, -1, NULL, 5000, &e), -EINVAL);
	json_object_object_add(args, "fdname", json_object_new_string("iovm-shfd-0000-01-10.2"));
	assert_int_equal(iovm_qmp_execute_with_fd(q, "getfd", args, pipefd[1], NULL, 5000, &e), 0);
	pthread_join(f.thread, NULL);

	assert_true(f.fds_seen[0] >= 0);
	assert_non_null(strstr(f.lines[0], "\"execute\":\"getfd\""));
	assert_non_null(strstr(f.lines[0], "\"fdname\":\"iovm-shfd-0000-01-10.2\""));
	/* The caller keeps its own copy open; the fake wrote through its one. */
	assert_int_equal(read(pipefd[0], buf, sizeof(buf) - 1), 3);
	assert_string_equal(buf, "tap");
	close(f.fds_seen[0]);
	close(pipefd[0]);
	close(pipefd[1]);
	close(sv[1]);
	json_object_put(args);
	iovm_qmp_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids),
		cmocka_unit_test(test_ifname),
		cmocka_unit_test(test_mac),
		cmocka_unit_test(test_args),
		cmocka_unit_test(test_netdev_bytes),
		cmocka_unit_test(test_execute_with_fd),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
