/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libFuzzer target for what the QMP client does with bytes from QEMU: the
 * input is written to one end of a socketpair whose other end the client
 * owns, then the writer closes, and iovm_qmp_process() runs until the
 * connection reports itself broken (it must: EOF breaks it). Callbacks,
 * the event backlog and the final free must neither crash nor leak.
 *
 * The first input byte is not sent; its bits shape the exchange so that the
 * fuzzer gets past the greeting without having to invent it:
 *   bit 0  prefix a valid QMP greeting
 *   bit 1  then the reply to qmp_capabilities (the connection becomes ready)
 *   bit 2  queue a command (id 1) before anything is read; qmp_capabilities
 *          then has id 2
 *   bit 3  send one more command as soon as the connection is ready
 * Build and run: scripts/run-fuzz. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "iovm/qmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(x) do { if (!(x)) abort(); } while (0)

static const char greeting[] =
	"{\"QMP\":{\"version\":{\"qemu\":{\"micro\":0,\"minor\":2,\"major\":8},\"package\":\"\"},"
	"\"capabilities\":[\"oob\"]}}\r\n";

struct counts {
	unsigned replies, events;
};

static void on_reply(iovm_qmp *q, int status, json_object *ret, const iovm_error *e, void *ud)
{
	struct counts *s = ud;

	CHECK(status <= 0);
	if (status < 0)
		CHECK(e && e->code == status && e->msg[0]);
	s->replies++;
}

static void on_event(iovm_qmp *q, const char *event, json_object *data, json_object *ts, void *ud)
{
	struct counts *s = ud;

	CHECK(event);
	s->events++;
}

static bool any_event(const char *event, json_object *data, void *ud)
{
	return data != NULL;
}

static void drain(int fd)
{
	char buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct counts s = {};
	iovm_qmp *q = NULL;
	json_object *found = NULL;
	unsigned flags = size ? data[0] : 0;
	char *in, caps[64];
	size_t n = 0, off = 0;
	bool sent_more = false;
	int sv[2], r = 0;

	signal(SIGPIPE, SIG_IGN);
	if (size)
		data++, size--;
	in = malloc(sizeof(greeting) + sizeof(caps) + size);
	CHECK(in);
	if (flags & 1) {
		memcpy(in, greeting, sizeof(greeting) - 1);
		n += sizeof(greeting) - 1;
		if (flags & 2) {
			int k = snprintf(caps, sizeof(caps), "{\"return\":{},\"id\":%d}\r\n", flags & 4 ? 2 : 1);

			memcpy(in + n, caps, (size_t)k);
			n += (size_t)k;
		}
	}
	memcpy(in + n, data, size);
	n += size;

	CHECK(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
	CHECK(fcntl(sv[0], F_SETFL, O_NONBLOCK) == 0);
	CHECK(iovm_qmp_new_from_fd(sv[1], "fuzz", &q, NULL) == 0);
	iovm_qmp_set_event_handler(q, on_event, &s);
	if (flags & 4)
		CHECK(iovm_qmp_send(q, "query-status", NULL, on_reply, &s, NULL, NULL) == 0);

	/* Write what the socket takes, let the client read it, repeat. */
	while (off < n) {
		ssize_t w = send(sv[0], in + off, n - off, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0)
			off += (size_t)w;
		else
			CHECK(w < 0 && errno == EAGAIN);
		drain(sv[0]);
		r = iovm_qmp_process(q, NULL);
		if (r < 0)
			break;
		if ((flags & 8) && !sent_more && iovm_qmp_is_ready(q)) {
			json_object *args = json_object_new_object();

			json_object_object_add(args, "id", json_object_new_string("hostdev0"));
			CHECK(iovm_qmp_send(q, "device_del", args, on_reply, &s, NULL, NULL) == 0);
			json_object_put(args);
			sent_more = true;
		}
	}
	drain(sv[0]);
	close(sv[0]);
	/* EOF must break the connection, on the first call that sees it:
	 * once poll() says the socket is readable (at once, normally; within
	 * 5 s, or the check fails), one call must report the break. One local
	 * CI run saw the call right after close() return 0, as if EOF were not
	 * yet visible (after ~355,000 inputs; not reproduced in 2.2 million
	 * fuzzer runs nor in 400 s of repeating that input). A call that sees
	 * no EOF is not the one that sees it. */
	if (r == 0) {
		struct pollfd p = { .fd = iovm_qmp_get_fd(q), .events = POLLIN };

		CHECK(poll(&p, 1, 5000) == 1);
		r = iovm_qmp_process(q, NULL);
	}
	CHECK(r < 0);
	CHECK(!iovm_qmp_is_connected(q));
	CHECK(iovm_qmp_get_events(q) == 0);
	CHECK(iovm_qmp_process(q, NULL) == -ENOTCONN);
	CHECK(iovm_qmp_send(q, "x", NULL, NULL, NULL, NULL, NULL) == -ENOTCONN);

	/* Every event that arrived is in the backlog for a late waiter. */
	r = iovm_qmp_wait_event(q, 0, NULL, any_event, NULL, &found, 0, NULL);
	CHECK(r == 0 || r == -ENOTCONN);
	if (found)
		json_object_put(found);
	iovm_qmp_free(q);
	free(in);
	return 0;
}
