/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A scripted fake QEMU guest agent for unit tests, on a UNIX socket in a
 * fresh directory under /tmp. It accepts one client in a thread, answers
 * the guest-sync-delimited handshake and one guest-network-get-interfaces
 * as its mode says (IFACES: eth0 02:78:0a:bc:00:11 counts 1234 bytes), or
 * stays silent until the client hangs up.
 */
#pragma once

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define IFACES                                                                                        \
	"[{\"name\":\"lo\",\"hardware-address\":\"00:00:00:00:00:00\","                               \
	"\"statistics\":{\"rx-bytes\":5,\"tx-bytes\":5}},"                                            \
	"{\"name\":\"eth0\",\"hardware-address\":\"02:78:0a:bc:00:11\","                              \
	"\"statistics\":{\"rx-bytes\":1000,\"rx-packets\":3,\"tx-bytes\":234,\"tx-packets\":2}},"      \
	"{\"name\":\"eth1\",\"hardware-address\":\"02:78:00:00:00:12\"}]"

enum mode { OK, STALE, ERROR_REPLY, GARBAGE, OVERSIZED, SILENT };

struct fake {
	char path[108];
	int lfd;
	enum mode mode;
	pthread_t thr;
};

static int read_line(int fd, char *buf, size_t n)
{
	size_t len = 0;

	while (len + 1 < n) {
		ssize_t k = recv(fd, buf + len, 1, 0);

		if (k <= 0)
			return -1;
		if (buf[len] == '\n') {
			buf[len] = '\0';
			return 0;
		}
		len++;
	}
	return -1;
}

static void send_str(int fd, const char *s)
{
	(void)!send(fd, s, strlen(s), MSG_NOSIGNAL);
}

static void *agent(void *arg)
{
	struct fake *f = arg;
	char line[4096], out[4096];
	const char *id;
	int fd = accept(f->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	if (f->mode == SILENT) {
		while (read(fd, line, sizeof(line)) > 0)
			; /* until the client gives up and closes */
		close(fd);
		return NULL;
	}
	if (f->mode == STALE)
		send_str(fd, "{\"return\": [\"a reply for an earlier client\"]}\n{\"retu");
	if (read_line(fd, line, sizeof(line)) < 0 || !strstr(line, "guest-sync-delimited") ||
	    !(id = strstr(line, "\"id\":")))
		goto out;
	snprintf(out, sizeof(out), "\xff{\"return\": %ld}\n", strtol(id + 5, NULL, 10));
	send_str(fd, out);
	if (read_line(fd, line, sizeof(line)) < 0 || !strstr(line, "guest-network-get-interfaces"))
		goto out;
	switch (f->mode) {
	case OK:
	case STALE:
		send_str(fd, "{\"return\": " IFACES "}\n");
		break;
	case ERROR_REPLY:
		send_str(fd, "{\"error\": {\"class\": \"GenericError\", \"desc\": \"no network\"}}\n");
		break;
	case GARBAGE:
		send_str(fd, "this is not json\n");
		break;
	case OVERSIZED: {
		char *big = malloc(64 * 1024);

		memset(big, ' ', 64 * 1024);
		for (int i = 0; i < 40; i++)
			if (send(fd, big, 64 * 1024, MSG_NOSIGNAL) < 0)
				break;
		free(big);
		break;
	}
	default:
		break;
	}
out:
	close(fd);
	return NULL;
}

static void fake_start(struct fake *f, enum mode mode)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char dir[] = "/tmp/iovm-qga-XXXXXX";

	assert_non_null(mkdtemp(dir));
	snprintf(f->path, sizeof(f->path), "%s/qga.sock", dir);
	strcpy(sa.sun_path, f->path);
	f->mode = mode;
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->lfd, 1), 0);
	assert_int_equal(pthread_create(&f->thr, NULL, agent, f), 0);
}

static void fake_stop(struct fake *f)
{
	char *slash;

	pthread_join(f->thr, NULL);
	close(f->lfd);
	unlink(f->path);
	slash = strrchr(f->path, '/');
	*slash = '\0';
	rmdir(f->path);
}

