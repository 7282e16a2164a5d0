/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The API server on the main thread's sd-event loop: the UNIX socket, access
 * by SO_PEERCRED (root or the configured group), one client record per
 * connection with bounded input and output buffers, requests answered in
 * order per client (a client with a command at the ops thread is not read
 * until its reply is out), events broadcast. Nothing a client sends can
 * block the loop: sockets are non-blocking, lines are bounded, and a client
 * whose unsent output passes OUT_MAX is dropped.
 */
#include <assert.h>
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "iovmd/server.h"
#include "shared/util.h"

#define OUT_MAX (1u << 20)      /* unsent bytes before a client is dropped */
#define READ_CHUNK 16384
#define READY_MAX 256           /* clients handled per wake-up of the loop */

typedef struct client {
	struct client *next;
	iovmd *d;
	uint64_t id;
	int fd;
	uint32_t events;             /* as registered in client_epfd */
	pid_t pid;
	uid_t uid;
	char *in;                    /* up to IOVM_API_LINE_MAX + 1 bytes */
	size_t in_len;
	char *out;                   /* unsent bytes: out[out_start .. out_start + out_len) */
	size_t out_start, out_len, out_cap;
	bool busy;                   /* a job of this client is at the ops thread, or parked */
	bool parked;                 /* a read waits for the snapshot after a job (snapshot_stale) */
	bool closing;                /* close once out is flushed */
	bool eof;                    /* the client shut down its side: answer what came, then close */
} client;

static client *clients;
static uint64_t next_client_id = 1;
static gid_t access_gid = (gid_t)-1;
/* The clients' sockets are in an epoll set of their own, itself one source
 * of the sd-event loop: one wake-up serves every ready client, where a
 * source per client cost an epoll_wait per request (sd-event dispatches one
 * source per iteration), and each of those polled every ready socket. */
static int client_epfd = -1;

static void client_free(client *c)
{
	client **pp;

	for (pp = &clients; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	(void)epoll_ctl(client_epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->d->n_clients--;
	log_debug("client %llu (pid %d uid %u) gone", (unsigned long long)c->id, (int)c->pid,
		  (unsigned)c->uid);
	free(c->in);
	free(c->out);
	free(c);
}

static client *client_find(uint64_t id)
{
	for (client *c = clients; c; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static void client_update_events(client *c)
{
	uint32_t ev = 0;

	if (!c->busy && !c->closing && !c->eof)
		ev |= EPOLLIN;
	if (c->out_len)
		ev |= EPOLLOUT;
	if (ev == c->events)
		return;
	if (epoll_ctl(client_epfd, EPOLL_CTL_MOD, c->fd,
		      &(struct epoll_event){ .events = ev, .data.ptr = c }) < 0)
		log_warning(errno, "client %llu: cannot change its epoll events",
			    (unsigned long long)c->id);
	else
		c->events = ev;
}

/* Writes what it can now; the rest waits for EPOLLOUT. Returns -1 if the
 * client was freed. */
static int client_flush(client *c)
{
	while (c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_start, c->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				break;
			client_free(c);
			return -1;
		}
		/* No memmove per partial send: a big reply would be moved
		 * once per socket buffer's worth. */
		c->out_start += (size_t)n;
		c->out_len -= (size_t)n;
	}
	if (!c->out_len)
		c->out_start = 0;
	if (!c->out_len && c->closing) {
		client_free(c);
		return -1;
	}
	client_update_events(c);
	return 0;
}

/* Appends n bytes to the unsent output. Returns -1 if the client was
 * dropped (over OUT_MAX or out of memory). */
static int out_append(client *c, const char *p, size_t n)
{
	if (c->out_len + n > OUT_MAX) {
		log_warning(0, "client %llu (pid %d): more than %u bytes unread; dropping it",
			    (unsigned long long)c->id, (int)c->pid, OUT_MAX);
		client_free(c);
		return -1;
	}
	if (c->out_start + c->out_len + n > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;
		char *q;

		if (c->out_start) {
			memmove(c->out, c->out + c->out_start, c->out_len);
			c->out_start = 0;
		}
		while (cap < c->out_len + n)
			cap *= 2;
		if (cap > c->out_cap) {
			q = realloc(c->out, cap);
			if (!q) {
				client_free(c);
				return -1;
			}
			c->out = q;
			c->out_cap = cap;
		}
	}
	memcpy(c->out + c->out_start + c->out_len, p, n);
	c->out_len += n;
	return 0;
}

/* Sends the pieces of one line: straight from them with one writev when
 * nothing is queued before them (the big cached replies are not copied),
 * what the socket did not take is queued. Returns -1 if the client was
 * dropped. */
static int client_send_iov(client *c, struct iovec *iov, int k)
{
	size_t sent = 0;

	if (!c->out_len && !c->closing) {
		struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)k };
		ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			client_free(c);
			return -1;
		}
		sent = n > 0 ? (size_t)n : 0;
	}
	for (int i = 0; i < k; i++) {
		size_t skip = sent < iov[i].iov_len ? sent : iov[i].iov_len;

		sent -= skip;
		if (skip < iov[i].iov_len && out_append(c, (const char *)iov[i].iov_base + skip,
							iov[i].iov_len - skip) < 0)
			return -1;
	}
	return client_flush(c);
}

/* Queues a line (takes it). Returns -1 if the client was dropped. */
static int client_send(client *c, char *line)
{
	_cleanup_free_ char *l = line;

	if (!l)
		return 0;
	return client_send_iov(c, &(struct iovec){ .iov_base = l, .iov_len = strlen(l) }, 1);
}

static int client_send_error(client *c, json_object *id, int code, const char *desc)
{
	return client_send(c, iovm_api_format_error(id, code, desc));
}

/* The big read replies (the whole VF, PF and VM lists) are serialised once
 * per snapshot, not once per request: with many clients polling, json-c
 * serialisation was most of the main thread's time. They go out as three
 * pieces (head, the cached body, the id and tail), never joined in a copy. */
static char *cache[_IOVM_API_CMD_MAX];
static size_t cache_len[_IOVM_API_CMD_MAX];

static void cache_drop(void)
{
	for (size_t i = 0; i < ELEMENTSOF(cache); i++) {
		free(cache[i]);
		cache[i] = NULL;
	}
}

/* Sends {"return":BODY,"id":ID} as three pieces, BODY not copied. 1 if
 * sent, 0 if the id is too long for this path, -1 if the client was
 * dropped. */
static int send_return_text(client *c, const iovm_api_request *r, const char *body, size_t len)
{
	static const char head[] = "{\"return\":";
	const char *id = r->id ? json_object_to_json_string_ext(r->id, JSON_C_TO_STRING_PLAIN |
								   JSON_C_TO_STRING_NOSLASHESCAPE) : NULL;
	char tail[IOVM_API_NAME_MAX + 16];
	int n = snprintf(tail, sizeof(tail), "%s%s}\n", id ? ",\"id\":" : "", id ? id : "");

	if (n < 0 || (size_t)n >= sizeof(tail))
		return 0;    /* an id too long for the buffer: the general path */
	struct iovec iov[3] = {
		{ .iov_base = (void *)head, .iov_len = sizeof(head) - 1 },
		{ .iov_base = (void *)body, .iov_len = len },
		{ .iov_base = tail, .iov_len = (size_t)n },
	};
	return client_send_iov(c, iov, 3) < 0 ? -1 : 1;
}

/* status is printed straight into a buffer (iovmd_status_text). 1 if sent,
 * 0 to take the general path, -1 if the client was dropped. */
static int send_status(client *c, const iovm_api_request *r)
{
	char buf[1024];
	int n = iovmd_status_text(c->d, buf, sizeof(buf));

	if (n < 0 || (size_t)n >= sizeof(buf))
		return 0;
	return send_return_text(c, r, buf, (size_t)n);
}

/* 1 if the reply went from the cache, 0 if r is not a cached command, -1
 * if the client was dropped. */
static int send_cached(client *c, const iovm_api_request *r)
{
	if (r->cmd == IOVM_API_STATUS)
		return send_status(c, r);
	if (!(r->cmd == IOVM_API_VF_LIST && !r->pf[0]) && r->cmd != IOVM_API_PF_LIST &&
	    r->cmd != IOVM_API_VM_LIST)
		return 0;
	if (!cache[r->cmd]) {
		json_object *ret = iovmd_read_command(c->d, r, NULL);
		size_t len;
		const char *text;

		if (!ret)
			return 0;
		text = json_object_to_json_string_length(ret, JSON_C_TO_STRING_PLAIN |
							 JSON_C_TO_STRING_NOSLASHESCAPE, &len);
		cache[r->cmd] = text ? strndup(text, len) : NULL;
		cache_len[r->cmd] = len;
		json_object_put(ret);
		if (!cache[r->cmd])
			return 0;
	}
	return send_return_text(c, r, cache[r->cmd], cache_len[r->cmd]);
}

/* One complete request line. Returns -1 if the client was freed, 1 if the
 * line was left unhandled until the next snapshot (parked). */
static int handle_line(client *c, const char *line, size_t len)
{
	iovm_api_request req;
	iovm_error err = {};
	int r;

	r = iovm_api_parse_request(line, len, &req, &err);
	if (r < 0) {
		r = client_send_error(c, req.id, r, err.msg);
		iovm_api_request_done(&req);
		return r;
	}
	if (iovm_api_cmd_is_mutating(req.cmd)) {
		iovmd_job *j = calloc(1, sizeof(*j));

		if (!j) {
			r = client_send_error(c, req.id, -ENOMEM, "out of memory");
			iovm_api_request_done(&req);
			return r;
		}
		j->client = c->id;
		j->req = req;             /* takes req.id */
		c->busy = true;
		client_update_events(c);
		log_debug("client %llu: %s queued", (unsigned long long)c->id,
			  iovm_api_cmd_to_string(req.cmd));
		iovmd_queue_push(&c->d->jobs, j);
		return 0;
	}
	if (c->d->snapshot_stale) {
		/* A job's reply is out and its snapshot not yet: this read
		 * waits for it (take_messages), so it sees the change. */
		iovm_api_request_done(&req);
		c->parked = true;
		c->busy = true;
		client_update_events(c);
		return 1;
	}
	r = send_cached(c, &req);
	if (r != 0) {
		iovm_api_request_done(&req);
		return r < 0 ? -1 : 0;
	}
	json_object *ret = iovmd_read_command(c->d, &req, &err);

	if (ret)
		r = client_send(c, iovm_api_format_return(req.id, ret));
	else
		r = client_send_error(c, req.id, err.code, err.msg);
	json_object_put(ret);
	iovm_api_request_done(&req);
	return r;
}

/* Handles the complete lines in the input buffer, stopping when the client
 * becomes busy. Returns -1 if the client was freed. */
static int process_input(client *c)
{
	size_t start = 0;

	while (!c->busy && !c->closing && start < c->in_len) {
		char *nl = memchr(c->in + start, '\n', c->in_len - start);
		size_t len;

		if (!nl)
			break;
		len = (size_t)(nl - (c->in + start));
		if (len > IOVM_API_LINE_MAX)
			break;    /* over-long: refused below, connection closed */
		if (len > 0 && !(len == 1 && c->in[start] == '\r')) {
			int r = handle_line(c, c->in + start, len + 1);

			if (r < 0)
				return -1;
			if (r > 0)
				break;    /* parked: the line stays in the buffer */
		}
		start += len + 1;
	}
	memmove(c->in, c->in + start, c->in_len - start);
	c->in_len -= start;
	if (c->eof && !c->busy && !c->closing) {
		/* Everything it sent is answered (a last line without "\n"
		 * is incomplete and dropped): close once the replies are out. */
		c->closing = true;
		return client_flush(c);
	}
	if (c->in_len > IOVM_API_LINE_MAX && !c->busy && !c->closing &&
	    (!memchr(c->in, '\n', c->in_len) || (size_t)((char *)memchr(c->in, '\n', c->in_len) - c->in) > IOVM_API_LINE_MAX)) {
		char msg[128];

		snprintf(msg, sizeof(msg), "request longer than %d bytes; closing the connection",
			 IOVM_API_LINE_MAX);
		c->closing = true;
		c->in_len = 0;
		return client_send_error(c, NULL, -EMSGSIZE, msg);
	}
	return 0;
}

static void on_client_io(client *c, uint32_t revents)
{
	int fd = c->fd;

	if (revents & EPOLLOUT)
		if (client_flush(c) < 0)
			return;
	if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (c->busy || c->closing) {
			if (revents & (EPOLLHUP | EPOLLERR))
				goto gone;
			return;
		}
		if (!c->in && !(c->in = malloc(IOVM_API_LINE_MAX + READ_CHUNK + 1))) {
			log_error(ENOMEM, "client %llu: no input buffer", (unsigned long long)c->id);
			goto gone;
		}
		ssize_t n = recv(fd, c->in + c->in_len, IOVM_API_LINE_MAX + READ_CHUNK - c->in_len,
				 MSG_DONTWAIT);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			goto gone;
		}
		if (n == 0) {
			c->eof = true;
			client_update_events(c);
			process_input(c);
			return;
		}
		c->in_len += (size_t)n;
		if (process_input(c) < 0)
			return;
	}
	return;
gone:
	/* A client that leaves while its job runs: the job still completes
	 * (and is journaled); its reply finds no client and is dropped. */
	client_free(c);
}

/* Every ready client, one event each: a client's handling frees no other
 * client, so the later entries stay valid. */
static int on_clients_ready(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct epoll_event ev[READY_MAX];
	int n = epoll_wait(client_epfd, ev, READY_MAX, 0);

	for (int i = 0; i < n; i++)
		on_client_io(ev[i].data.ptr, ev[i].events);
	return 0;
}

static bool peer_allowed(const struct ucred *cr)
{
	struct passwd *pw;
	gid_t groups[256];
	int n = ELEMENTSOF(groups);

	if (cr->uid == 0)
		return true;
	if (access_gid == (gid_t)-1)
		return false;
	if (cr->gid == access_gid)
		return true;
	pw = getpwuid(cr->uid);
	if (!pw || getgrouplist(pw->pw_name, pw->pw_gid, groups, &n) < 0)
		return false;
	for (int i = 0; i < n; i++)
		if (groups[i] == access_gid)
			return true;
	return false;
}

static int on_accept(sd_event_source *s, int lfd, uint32_t revents, void *userdata)
{
	iovmd *d = userdata;
	struct ucred cr = {};
	socklen_t len = sizeof(cr);
	client *c;
	int fd;

	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR)
			log_warning(errno, "accept on %s failed", d->cfg.socket_path);
		return 0;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0) {
		log_warning(errno, "SO_PEERCRED failed; refusing the client");
		close(fd);
		return 0;
	}
	if (!peer_allowed(&cr) || d->n_clients >= d->cfg.max_clients) {
		bool denied = !peer_allowed(&cr);
		char msg[160];
		_cleanup_free_ char *line = NULL;

		if (denied)
			snprintf(msg, sizeof(msg), "access denied: uid %u is neither root nor in group %s",
				 (unsigned)cr.uid, d->cfg.group);
		else
			snprintf(msg, sizeof(msg), "too many clients (%u); try again later",
				 d->cfg.max_clients);
		log_warning(0, "refusing pid %d uid %u: %s", (int)cr.pid, (unsigned)cr.uid, msg);
		line = iovm_api_format_error(NULL, denied ? -EACCES : -EUSERS, msg);
		if (line)
			(void)!send(fd, line, strlen(line), MSG_NOSIGNAL | MSG_DONTWAIT);
		close(fd);
		return 0;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		close(fd);
		return 0;
	}
	c->d = d;
	c->fd = fd;
	c->id = next_client_id++;
	c->pid = cr.pid;
	c->uid = cr.uid;
	c->events = EPOLLIN;
	if (epoll_ctl(client_epfd, EPOLL_CTL_ADD, fd, &(struct epoll_event){ .events = EPOLLIN, .data.ptr = c }) < 0) {
		log_error(errno, "cannot watch client fd");
		close(fd);
		free(c);
		return 0;
	}
	c->next = clients;
	clients = c;
	d->n_clients++;
	log_debug("client %llu: pid %d uid %u", (unsigned long long)c->id, (int)c->pid, (unsigned)c->uid);
	client_send(c, iovm_api_format_greeting(IOVMD_VERSION));
	return 0;
}

/* The snapshot a job's reply promised is in: the reads held back since
 * then are answered from it. */
static void resume_parked(iovmd *d)
{
	if (!d->snapshot_stale)
		return;
	d->snapshot_stale = false;
	for (client *c = clients, *cn; c; c = cn) {
		cn = c->next;
		if (!c->parked)
			continue;
		c->parked = false;
		c->busy = false;
		client_update_events(c);
		process_input(c);    /* may free c */
	}
}

/* A new snapshot, whole or the members that changed. */
static void take_snapshot(iovmd *d, iovmd_msg *m)
{
	if (m->kind == IOVMD_MSG_SNAPSHOT_PART && d->snapshot) {
		json_object_object_foreach(m->snapshot, k, v)
			json_object_object_add(d->snapshot, k, json_object_get(v));
		json_object_put(m->snapshot);
	} else {
		json_object_put(d->snapshot);
		d->snapshot = m->snapshot;
	}
	m->snapshot = NULL;
	d->snapshot_gen++;
	cache_drop();
	resume_parked(d);
}

static void broadcast(char *line)
{
	for (client *c = clients, *cn; c; c = cn) {
		cn = c->next;
		client_send(c, strdup(line));
	}
}

/* A line to one client; a reply ends its job, and its input is read again. */
static void to_client(iovmd *d, iovmd_msg *m)
{
	client *c = client_find(m->client);
	char *line = TAKE_PTR(m->line);

	if (m->kind == IOVMD_MSG_REPLY && m->snapshot_follows)
		d->snapshot_stale = true;
	if (!c) {
		free(line);
		return;
	}
	if (client_send(c, line) == 0 && m->kind == IOVMD_MSG_REPLY) {
		log_debug("client %llu: reply sent", (unsigned long long)c->id);
		c->busy = false;
		client_update_events(c);
		process_input(c);
	}
}

static void take_message(iovmd *d, iovmd_msg *m)
{
	switch (m->kind) {
	case IOVMD_MSG_SNAPSHOT:
	case IOVMD_MSG_SNAPSHOT_PART:
		assert(m->snapshot);
		take_snapshot(d, m);
		break;
	case IOVMD_MSG_NO_SNAPSHOT:
		/* A job's snapshot that could not be made. */
		resume_parked(d);
		break;
	case IOVMD_MSG_EVENT:
		broadcast(m->line);
		break;
	case IOVMD_MSG_PROGRESS:
	case IOVMD_MSG_REPLY:
		to_client(d, m);
		break;
	}
}

static void take_messages(iovmd *d)
{
	iovmd_msg *m = iovmd_queue_pop_all(&d->msgs);

	while (m) {
		iovmd_msg *next = m->next;

		take_message(d, m);
		iovmd_msg_free(m);
		m = next;
	}
}

static int on_messages(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	take_messages(userdata);
	return 0;
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata)
{
	log_info("signal %d: stopping", (int)si->ssi_signo);
	sd_notify(0, "STOPPING=1");
	return sd_event_exit(sd_event_source_get_event(s), 0);
}

/* Creates the socket; a stale socket file (nobody listening) is replaced,
 * a live one means another iovmd runs: -EADDRINUSE. */
static int listen_socket(iovmd *d)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_free_ char *dir = strdup(d->cfg.socket_path);
	struct group *gr;
	mode_t old_umask;
	char *slash;
	int fd, r;

	if (!dir)
		return -ENOMEM;
	slash = strrchr(dir, '/');
	if (slash && slash != dir) {
		*slash = '\0';
		/* 0755 whatever the umask (the unit's is 0077): the group's
		 * members must reach the socket; the socket's mode decides. */
		if (mkdir(dir, 0755) == 0)
			(void)chmod(dir, 0755);
		else if (errno != EEXIST) {
			r = -errno;
			log_error(r, "cannot create %s", dir);
			return r;
		}
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", d->cfg.socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		close(fd);
		log_error(EADDRINUSE, "%s: another iovmd is listening there", d->cfg.socket_path);
		return -EADDRINUSE;
	}
	close(fd);
	{
		struct stat st;

		/* Only a stale socket is replaced, never another kind of file. */
		if (lstat(d->cfg.socket_path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
			log_error(EEXIST, "%s exists and is not a socket; not replacing it", d->cfg.socket_path);
			return -EEXIST;
		}
	}
	(void)unlink(d->cfg.socket_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* Born 0600 whatever the umask, so the socket is never open wider than
	 * the chmod below makes it. The ops thread creates no files meanwhile
	 * (SQLite gives its -wal and -shm the database's mode itself). */
	old_umask = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? -errno : 0;
	umask(old_umask);
	if (r < 0 || listen(fd, 128) < 0) {
		r = r < 0 ? r : -errno;
		log_error(r, "cannot listen on %s", d->cfg.socket_path);
		close(fd);
		return r;
	}
	gr = getgrnam(d->cfg.group);
	if (gr) {
		access_gid = gr->gr_gid;
		if (chown(d->cfg.socket_path, 0, gr->gr_gid) < 0 && geteuid() == 0)
			log_warning(errno, "cannot give %s to group %s", d->cfg.socket_path, d->cfg.group);
	} else {
		log_warning(0, "group %s does not exist: only root can use %s", d->cfg.group,
			    d->cfg.socket_path);
	}
	if (chmod(d->cfg.socket_path, d->cfg.socket_mode) < 0)
		log_warning(errno, "cannot chmod %s", d->cfg.socket_path);
	return fd;
}

int iovmd_server_run(iovmd *d)
{
	sd_event *e = NULL;
	int lfd, r;

	take_messages(d);     /* the first snapshot, before any client */
	lfd = listen_socket(d);
	if (lfd < 0)
		return lfd;
	r = sd_event_default(&e);
	client_epfd = epoll_create1(EPOLL_CLOEXEC);
	if (client_epfd < 0)
		r = -errno;
	if (r >= 0)
		r = sd_event_add_io(e, NULL, client_epfd, EPOLLIN, on_clients_ready, d);
	if (r >= 0)
		r = sd_event_add_io(e, NULL, lfd, EPOLLIN, on_accept, d);
	if (r >= 0)
		r = sd_event_add_io(e, NULL, d->msgs.efd, EPOLLIN, on_messages, d);
	if (r >= 0)
		r = sd_event_add_signal(e, NULL, SIGTERM, on_signal, d);
	if (r >= 0)
		r = sd_event_add_signal(e, NULL, SIGINT, on_signal, d);
	if (r < 0) {
		log_error(r, "cannot set up the event loop");
		sd_event_unref(e);
		if (client_epfd >= 0)
			close(client_epfd);
		client_epfd = -1;
		close(lfd);
		return r;
	}
	log_info("listening on %s", d->cfg.socket_path);
	sd_notifyf(0, "READY=1\nSTATUS=listening on %s", d->cfg.socket_path);
	r = sd_event_loop(e);
	if (r < 0)
		log_error(r, "event loop failed");
	while (clients)
		client_free(clients);
	cache_drop();
	(void)unlink(d->cfg.socket_path);
	close(lfd);
	sd_event_unref(e);
	close(client_epfd);
	client_epfd = -1;
	return r;
}
