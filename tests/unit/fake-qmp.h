/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A scripted fake QEMU monitor for unit tests, on a socketpair or a UNIX
 * socket. It runs in a thread and follows a script: expect a command (and
 * remember its id), send text (where $N stands for the id of the Nth
 * expected command), close, or wait for the client to hang up.
 */
#pragma once

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <json-c/json.h>

/* Scripts are tables of short positional initializers. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define GREETING "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 0, \"major\": 10}, " \
		 "\"package\": \"\"}, \"capabilities\": [\"oob\"]}}\r\n"
#define CAPS_OK "{\"return\": {}, \"id\": $0}\r\n"

enum step_kind { EXPECT, SEND, SEND_BIG, CLOSE, WAIT_HUP, END };

struct step {
	enum step_kind kind;
	const char *text;       /* EXPECT: command name; SEND: text with $N */
	size_t size;            /* SEND_BIG: bytes of garbage without newline */
};

struct fake {
	int fd;
	int listen_fd;          /* >= 0: accept the client on this UNIX socket */
	const struct step *script;
	pthread_t thread;
	long ids[16];
	int nids;
	char failure[256];      /* set when the client sent something unexpected */
	char last_args[1024];   /* "arguments" of the last expected command */
	char args[16][1024];    /* "arguments" of each expected command */
};

static inline int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

static int read_line(int fd, char *buf, size_t n)
{
	size_t len = 0;

	while (len + 1 < n) {
		ssize_t r = read(fd, buf + len, 1);

		if (r <= 0)
			return -1;
		if (buf[len] == '\n')
			break;
		len++;
	}
	buf[len] = '\0';
	return 0;
}

static void send_all(int fd, const char *p, size_t n)
{
	while (n > 0) {
		ssize_t r = send(fd, p, n, MSG_NOSIGNAL);

		if (r <= 0)
			return;   /* the client hung up: fine, it may have given up */
		p += r;
		n -= (size_t)r;
	}
}

static void send_script_text(struct fake *f, const char *t)
{
	size_t cap = strlen(t) + 256, o = 0;
	char *out = malloc(cap);

	for (; *t && o < cap - 32; t++) {
		if (*t == '$' && t[1] >= '0' && t[1] <= '9') {
			int i = *++t - '0';

			o += (size_t)snprintf(out + o, cap - o, "%ld", i < f->nids ? f->ids[i] : -1L);
		} else {
			out[o++] = *t;
		}
	}
	send_all(f->fd, out, o);
	free(out);
}

static void *fake_main(void *arg)
{
	struct fake *f = arg;
	char line[65536];

	if (f->listen_fd >= 0) {
		f->fd = accept(f->listen_fd, NULL, NULL);
		if (f->fd < 0) {
			snprintf(f->failure, sizeof(f->failure), "accept failed");
			return NULL;
		}
	}
	for (const struct step *s = f->script; s->kind != END; s++) {
		switch (s->kind) {
		case EXPECT: {
			json_object *req, *cmd = NULL, *id = NULL, *args = NULL;

			if (read_line(f->fd, line, sizeof(line)) < 0) {
				snprintf(f->failure, sizeof(f->failure), "eof, expected %s", s->text);
				return NULL;
			}
			req = json_tokener_parse(line);
			if (!req || !json_object_object_get_ex(req, "execute", &cmd) ||
			    strcmp(json_object_get_string(cmd), s->text) ||
			    !json_object_object_get_ex(req, "id", &id)) {
				snprintf(f->failure, sizeof(f->failure), "expected %s, got %s", s->text, line);
				json_object_put(req);
				return NULL;
			}
			if (f->nids == 16) {
				snprintf(f->failure, sizeof(f->failure), "script too long");
				json_object_put(req);
				return NULL;
			}
			f->last_args[0] = '\0';
			if (json_object_object_get_ex(req, "arguments", &args))
				snprintf(f->last_args, sizeof(f->last_args), "%s",
					 json_object_to_json_string_ext(args, JSON_C_TO_STRING_PLAIN));
			memcpy(f->args[f->nids], f->last_args, sizeof(f->last_args));
			f->ids[f->nids++] = json_object_get_int64(id);
			json_object_put(req);
			break;
		}
		case SEND:
			send_script_text(f, s->text);
			break;
		case SEND_BIG: {
			char *big = malloc(s->size);

			memset(big, 'x', s->size);
			send_all(f->fd, big, s->size);
			free(big);
			break;
		}
		case CLOSE:
			close(f->fd);
			f->fd = -1;
			return NULL;
		case WAIT_HUP:
			while (read(f->fd, line, sizeof(line)) > 0)
				;
			break;
		case END:
			break;
		}
	}
	return NULL;
}

/* Starts the fake and returns the client end. */
static inline int fake_start(struct fake *f, const struct step *script)
{
	int sv[2];

	memset(f, 0, sizeof(*f));
	f->listen_fd = -1;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->fd = sv[1];
	f->script = script;
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
	return sv[0];
}

/* Starts the fake listening on a UNIX socket at path. */
static inline void fake_listen(struct fake *f, const char *path, const struct step *script)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	memset(f, 0, sizeof(*f));
	f->fd = -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	unlink(path);
	f->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(f->listen_fd >= 0);
	assert_int_equal(bind(f->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(f->listen_fd, 1), 0);
	f->script = script;
	assert_int_equal(pthread_create(&f->thread, NULL, fake_main, f), 0);
}

static inline void fake_join(struct fake *f)
{
	pthread_join(f->thread, NULL);
	if (f->fd >= 0)
		close(f->fd);
	if (f->listen_fd >= 0)
		close(f->listen_fd);
	if (f->failure[0])
		fail_msg("fake QEMU: %s", f->failure);
}

/* Reading and building replies (cmocka.h comes first, as for the rest). */
static inline json_object *member(json_object *o, const char *key)
{
	json_object *v = NULL;

	assert_non_null(o);
	if (!json_object_object_get_ex(o, key, &v))
		fail_msg("no member %s in %s", key, json_object_to_json_string(o));
	return v;
}

static inline const char *member_str(json_object *o, const char *key)
{
	return json_object_get_string(member(o, key));
}

/* The element of array whose key is value. */
static inline json_object *array_find(json_object *arr, const char *key, const char *value)
{
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *e = json_object_array_get_idx(arr, i);

		if (!strcmp(member_str(e, key), value))
			return e;
	}
	fail_msg("no %s %s in %s", key, value, json_object_to_json_string(arr));
	return NULL;
}

#ifdef FIXTURES_DIR
/* The booted fixture's query-pci, with a vfio-pci device devid behind
 * port when devid is not NULL. */
static inline json_object *query_pci_with(const char *port, const char *devid)
{
	char path[512];
	json_object *pci, *devs, *br, *dev;

	snprintf(path, sizeof(path), "%s/qmp/query-pci-booted.json", FIXTURES_DIR);
	pci = json_object_from_file(path);
	assert_non_null(pci);
	if (devid) {
		devs = member(json_object_array_get_idx(pci, 0), "devices");
		br = member(array_find(devs, "qdev_id", port), "pci_bridge");
		dev = json_object_new_object();
		json_object_object_add(dev, "bus", json_object_new_int(1));
		json_object_object_add(dev, "slot", json_object_new_int(0));
		json_object_object_add(dev, "function", json_object_new_int(0));
		json_object_object_add(dev, "qdev_id", json_object_new_string(devid));
		json_object_array_add(member(br, "devices"), dev);
	}
	return pci;
}

/* That (devid behind port hp1) as a QMP reply to the Nth command. */
static inline char *query_pci_reply(const char *devid, int nth)
{
	json_object *pci = query_pci_with("hp1", devid);
	char *s;

	assert_true(asprintf(&s, "{\"return\": %s, \"id\": $%d}\r\n",
			     json_object_to_json_string_ext(pci, JSON_C_TO_STRING_PLAIN), nth) > 0);
	json_object_put(pci);
	return s;
}
#endif
