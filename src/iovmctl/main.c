/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * iovmctl: the command-line client of iovmd.
 *
 * One connection per run: read the greeting, send one request (top sends one
 * per refresh), wait for the reply with our id. PROGRESS events for our
 * request are shown on stderr once the operation has run for more than a
 * second; other events are ignored. Arguments are checked here before
 * anything is sent, so a typo is a usage error (exit 2) rather than a
 * round trip. A daemon error exits with its errno number (16 for EBUSY...),
 * any other failure with 1.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "shared/clock.h"
#include "shared/util.h"

#define DEFAULT_SOCKET "/run/iovm/iovm.sock"
#define DEFAULT_TIMEOUT_S 120.0
#define LINE_MAX_BYTES (64u << 20)   /* a reply longer than this is refused */
#define PROGRESS_AFTER_MS 1000
#define EXIT_USAGE 2

typedef struct ctl {
	const char *socket;
	bool json;
	double timeout_s;            /* 0: wait forever */
	int fd;
	char *buf;                   /* bytes read, not yet returned as lines */
	size_t len, cap;
	int64_t next_id;
	bool progress_tty;           /* stderr is a terminal: update in place */
	bool progress_open;          /* a progress line without '\n' is on stderr */
} ctl;

/* ---- small helpers ---------------------------------------------------- */

static void json_putp(json_object **o)
{
	if (*o)
		json_object_put(*o);
}
#define _cleanup_json_ _cleanup_(json_putp)

/* "iovmctl: message\n" on stderr */
static __attribute__((format(printf, 1, 0))) void vsay(const char *fmt, va_list ap)
{
	fputs("iovmctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

static __attribute__((format(printf, 1, 2))) int fail(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	return EXIT_FAILURE;
}

static const char *js_str(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
		return "";
	return json_object_get_string(v);
}

static bool js_has(json_object *o, const char *key)
{
	json_object *v;

	return o && json_object_object_get_ex(o, key, &v) && v;
}

static int64_t js_int(json_object *o, const char *key, int64_t def)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v) ||
	    !(json_object_is_type(v, json_type_int) || json_object_is_type(v, json_type_double)))
		return def;
	return json_object_get_int64(v);
}

static json_object *js_get(json_object *o, const char *key)
{
	json_object *v;

	if (!o || !json_object_object_get_ex(o, key, &v))
		return NULL;
	return v;
}

static const char *dash(const char *s)
{
	return s && *s ? s : "-";
}

/* "12.3 Mbit/s" */
static void format_bps(char *buf, size_t n, double bps)
{
	static const char *const units[] = { "bit/s", "kbit/s", "Mbit/s", "Gbit/s", "Tbit/s" };
	unsigned u = 0;

	if (bps < 0)
		bps = 0;
	while (bps >= 1000 && u + 1 < ELEMENTSOF(units)) {
		bps /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%.0f %s", bps, units[u]);
	else
		snprintf(buf, n, "%.1f %s", bps, units[u]);
}

/* ---- aligned tables ----------------------------------------------------- */

#define TABLE_COLS_MAX 16

typedef struct table {
	size_t ncols;
	const char *hdr[TABLE_COLS_MAX];
	char **cells;                /* nrows * ncols, row-major */
	size_t nrows, ncells, cap;
} table;

static void table_init(table *t, const char *const *hdr)
{
	memset(t, 0, sizeof(*t));
	while (hdr[t->ncols] && t->ncols < TABLE_COLS_MAX) {
		t->hdr[t->ncols] = hdr[t->ncols];
		t->ncols++;
	}
}

static void table_done(table *t)
{
	for (size_t i = 0; i < t->ncells; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
}

static __attribute__((format(printf, 2, 3))) void table_cell(table *t, const char *fmt, ...)
{
	va_list ap;
	char *s;

	if (t->ncells == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 64;
		char **c = realloc(t->cells, cap * sizeof(*c));

		if (!c) {
			fail("out of memory");
			exit(EXIT_FAILURE);
		}
		t->cells = c;
		t->cap = cap;
	}
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0) {
		fail("out of memory");
		exit(EXIT_FAILURE);
	}
	va_end(ap);
	t->cells[t->ncells++] = s;
	t->nrows = t->ncells / t->ncols;
}

static void table_print_row(const table *t, const size_t *w, const char *const *cells)
{
	for (size_t c = 0; c < t->ncols; c++) {
		if (c + 1 == t->ncols)
			printf("%s\n", cells[c]);
		else
			printf("%-*s  ", (int)w[c], cells[c]);
	}
}

static void table_print(const table *t)
{
	size_t w[TABLE_COLS_MAX];

	for (size_t c = 0; c < t->ncols; c++) {
		w[c] = strlen(t->hdr[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t l = strlen(t->cells[r * t->ncols + c]);

			if (l > w[c])
				w[c] = l;
		}
	}
	table_print_row(t, w, t->hdr);
	for (size_t r = 0; r < t->nrows; r++)
		table_print_row(t, w, (const char *const *)&t->cells[r * t->ncols]);
}

/* ---- connection --------------------------------------------------------- */

/* One line from the daemon (NUL-terminated, without '\n') into *ret, owned by
 * the caller. Returns 1 with a line, 0 at end of file, -ETIMEDOUT after
 * deadline (ms on the monotonic clock; < 0: none), else a negative errno. */
static int read_line(ctl *c, int64_t deadline, char **ret)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;

		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			char *line = malloc(n + 1);

			if (!line)
				return -ENOMEM;
			memcpy(line, c->buf, n);
			line[n] = '\0';
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			*ret = line;
			return 1;
		}
		if (c->len >= LINE_MAX_BYTES)
			return -EMSGSIZE;
		if (c->cap - c->len < 4096) {
			size_t cap = c->cap ? c->cap * 2 : 65536;
			char *b = realloc(c->buf, cap);

			if (!b)
				return -ENOMEM;
			c->buf = b;
			c->cap = cap;
		}

		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		int wait = -1;

		if (deadline >= 0) {
			int64_t left = deadline - now_ms();

			if (left <= 0)
				return -ETIMEDOUT;
			wait = left > INT32_MAX ? INT32_MAX : (int)left;
		}
		int r = poll(&p, 1, wait);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return negative_errno();
		}
		if (r == 0)
			continue;   /* the deadline check above decides */

		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			return negative_errno();
		}
		if (n == 0)
			return 0;
		c->len += (size_t)n;
	}
}

static int64_t deadline_from(const ctl *c, int64_t start)
{
	return c->timeout_s > 0 ? start + (int64_t)(c->timeout_s * 1000) : -1;
}

/* errno names the daemon may send, to exit with their numbers. */
static int errno_from_name(const char *name)
{
	static const struct {
		const char *name;
		int value;
	} tab[] = {
		{ "EPERM", EPERM },           { "ENOENT", ENOENT },
		{ "EIO", EIO },               { "ENXIO", ENXIO },
		{ "EAGAIN", EAGAIN },         { "ENOMEM", ENOMEM },
		{ "EACCES", EACCES },         { "EBUSY", EBUSY },
		{ "EEXIST", EEXIST },         { "ENODEV", ENODEV },
		{ "EINVAL", EINVAL },         { "ENOSPC", ENOSPC },
		{ "EPIPE", EPIPE },           { "ERANGE", ERANGE },
		{ "ENOSYS", ENOSYS },         { "EBADMSG", EBADMSG },
		{ "EMSGSIZE", EMSGSIZE },     { "EOPNOTSUPP", EOPNOTSUPP },
		{ "ECONNRESET", ECONNRESET }, { "ETIMEDOUT", ETIMEDOUT },
		{ "ECONNREFUSED", ECONNREFUSED }, { "EALREADY", EALREADY },
		{ "EUSERS", EUSERS },
	};

	for (size_t i = 0; i < ELEMENTSOF(tab); i++)
		if (!strcmp(tab[i].name, name))
			return tab[i].value;
	return 0;
}

static int ctl_connect(ctl *c)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_free_ char *line = NULL;
	_cleanup_json_ json_object *g = NULL;
	int r;

	if (strlen(c->socket) >= sizeof(sa.sun_path)) {
		fail("socket path too long: %s", c->socket);
		return EXIT_USAGE;
	}
	strcpy(sa.sun_path, c->socket);

	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0)
		return fail("socket: %s", strerror(errno));
	if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		const char *hint = "";

		if (e == ENOENT || e == ECONNREFUSED)
			hint = " (is iovmd running?)";
		else if (e == EACCES || e == EPERM)
			hint = " (root or a member of the daemon's group may connect)";
		return fail("cannot connect to %s: %s%s", c->socket, strerror(e), hint);
	}

	r = read_line(c, deadline_from(c, now_ms()), &line);
	if (r == 0)
		return fail("%s: the server closed the connection before its greeting "
			    "(too many clients, or not allowed?)", c->socket);
	if (r == -ETIMEDOUT)
		return fail("%s: no greeting from the server within %g s", c->socket, c->timeout_s);
	if (r < 0)
		return fail("%s: reading the greeting: %s", c->socket, strerror(-r));
	g = json_tokener_parse(line);
	if (g && json_object_is_type(g, json_type_object) && js_has(g, "error")) {
		/* refused instead of greeted: access denied, too many clients */
		json_object *e = js_get(g, "error");
		int n = errno_from_name(js_str(e, "errno"));

		fail("%s: %s", c->socket, *js_str(e, "desc") ? js_str(e, "desc") : "connection refused");
		return n > 0 && n < 256 ? n : EXIT_FAILURE;
	}
	if (!g || !json_object_is_type(g, json_type_object) || !js_has(g, "iovm"))
		return fail("%s: unexpected greeting, is this an iovmd socket?", c->socket);
	return 0;
}

static void progress_clear(ctl *c)
{
	if (c->progress_open) {
		fputs("\r\033[K", stderr);
		c->progress_open = false;
	}
}

static void progress_show(ctl *c, json_object *data)
{
	const char *step = js_str(data, "step");
	int64_t done = js_int(data, "done", -1), total = js_int(data, "total", -1);
	char count[64] = "";

	if (total > 0 && done >= 0)
		snprintf(count, sizeof(count), " (%lld/%lld)", (long long)done, (long long)total);
	if (c->progress_tty) {
		fprintf(stderr, "\r\033[Kiovmctl: %s%s", step, count);
		c->progress_open = true;
	} else {
		fprintf(stderr, "iovmctl: %s%s\n", step, count);
	}
	fflush(stderr);
}

static bool id_is(json_object *v, int64_t id)
{
	return v && json_object_is_type(v, json_type_int) && json_object_get_int64(v) == id;
}

/* Sends one request and waits for its reply. Returns 0 with the return value
 * in *ret (a new reference), or the exit status after printing the error. */
static int call(ctl *c, const char *cmd, json_object *args, json_object **ret)
{
	_cleanup_json_ json_object *req = json_object_new_object();
	int64_t id = ++c->next_id, start = now_ms(), deadline = deadline_from(c, start);
	const char *s;
	size_t n, off = 0;

	json_object_object_add(req, "execute", json_object_new_string(cmd));
	if (args)
		json_object_object_add(req, "arguments", json_object_get(args));
	json_object_object_add(req, "id", json_object_new_int64(id));
	s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	_cleanup_free_ char *out = NULL;
	if (asprintf(&out, "%s\n", s) < 0)
		return fail("out of memory");
	n = strlen(out);
	while (off < n) {
		ssize_t w = send(c->fd, out + off, n - off, MSG_NOSIGNAL);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return fail("sending '%s' to %s: %s", cmd, c->socket, strerror(errno));
		}
		off += (size_t)w;
	}

	for (;;) {
		_cleanup_free_ char *line = NULL;
		_cleanup_json_ json_object *m = NULL;
		json_object *v;
		int r = read_line(c, deadline, &line);

		if (r <= 0)
			progress_clear(c);
		if (r == 0)
			return fail("the daemon closed the connection before replying to '%s'", cmd);
		if (r == -ETIMEDOUT)
			return fail("no reply from the daemon to '%s' within %g s", cmd, c->timeout_s);
		if (r < 0)
			return fail("reading the reply to '%s': %s", cmd, strerror(-r));

		m = json_tokener_parse(line);
		if (!m || !json_object_is_type(m, json_type_object)) {
			progress_clear(c);
			return fail("malformed reply from the daemon: %.80s", line);
		}
		if (js_has(m, "event")) {
			json_object *data = js_get(m, "data");

			if (!strcmp(js_str(m, "event"), "PROGRESS") && id_is(js_get(data, "id"), id) &&
			    now_ms() - start > PROGRESS_AFTER_MS)
				progress_show(c, data);
			continue;
		}
		v = js_get(m, "id");
		if (v && !id_is(v, id))
			continue;   /* not ours */
		progress_clear(c);
		if (json_object_object_get_ex(m, "error", &v)) {
			const char *desc = js_str(v, "desc");
			int e = errno_from_name(js_str(v, "errno"));

			fail("%s", *desc ? desc : *js_str(v, "class") ? js_str(v, "class") : "unknown error");
			return e > 0 && e < 256 ? e : EXIT_FAILURE;
		}
		if (json_object_object_get_ex(m, "return", &v)) {
			*ret = v ? json_object_get(v) : json_object_new_object();
			return 0;
		}
		return fail("malformed reply from the daemon: %.80s", line);
	}
}

/* Reads and drops events until deadline (top's pause between refreshes). */
static int drain_until(ctl *c, int64_t deadline)
{
	for (;;) {
		_cleanup_free_ char *line = NULL;
		int r = read_line(c, deadline, &line);

		if (r == -ETIMEDOUT)
			return 0;
		if (r == 0)
			return fail("the daemon closed the connection");
		if (r < 0)
			return fail("reading from %s: %s", c->socket, strerror(-r));
	}
}

/* ---- argument checks ---------------------------------------------------- */

typedef enum param_kind {
	P_PF,        /* PF name -> string */
	P_VF,        /* VF name -> string */
	P_NAME,      /* VM name, failover pair id -> string */
	P_MAC,       /* unicast MAC -> string */
	P_INT,       /* min..max -> integer */
	P_ONOFF,     /* on|off -> boolean */
	P_CHOICE,    /* one of choices -> string */
	P_PATH,      /* socket path, made absolute -> string */
} param_kind;

/* One argument of a command: a positional one (opt NULL, required) or an
 * option, and the API argument it becomes. */
typedef struct param {
	const char *opt;                 /* "vlan" for --vlan; NULL: positional */
	const char *key;                 /* "vlan" in the request */
	param_kind kind;
	const char *label;               /* positional: "PF"; names in messages */
	long long min, max;              /* P_INT */
	const char *const *choices;      /* P_CHOICE, NULL-terminated */
	bool required;                   /* an option that must be given */
} param;

#define PARAMS_MAX 12

typedef struct command command;
struct command {
	const char *name;          /* "pf list" */
	const char *usage;         /* arguments after the name */
	/* table-driven commands (run_command): */
	const char *api;           /* "pf-show" */
	const param *params;       /* positionals first; ends with { 0 } */
	int (*check)(json_object *args);   /* checks across arguments, or NULL */
	void (*print)(json_object *ret);
	/* or a command of its own: */
	int (*run)(ctl *c, const command *cmd, int argc, char **argv);
};

static const command *current;   /* for usage errors */

static __attribute__((format(printf, 1, 2))) int usage_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(fmt, ap);
	va_end(ap);
	if (current)
		fprintf(stderr, "usage: iovmctl %s%s%s\n", current->name,
			*current->usage ? " " : "", current->usage);
	fputs("Try 'iovmctl --help' for more information.\n", stderr);
	return EXIT_USAGE;
}

static bool name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n < 1 || n > 63)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:-") == n;
}

/* s has pat's shape: 'x' a hex digit, anything else itself. */
static bool hex_pattern_ok(const char *s, const char *pat)
{
	if (strlen(s) != strlen(pat))
		return false;
	for (size_t i = 0; pat[i]; i++) {
		if (pat[i] == 'x' ? !isxdigit((unsigned char)s[i]) : s[i] != pat[i])
			return false;
	}
	return true;
}

/* A PCI address or "PF/INDEX". */
static bool vf_ok(const char *s)
{
	const char *slash = strrchr(s, '/');
	char pf[64];

	if (!slash)
		return hex_pattern_ok(s, "xxxx:xx:xx.x");
	if ((size_t)(slash - s) >= sizeof(pf) || !slash[1] || strlen(slash + 1) > 5 ||
	    strspn(slash + 1, "0123456789") != strlen(slash + 1))
		return false;
	memcpy(pf, s, (size_t)(slash - s));
	pf[slash - s] = '\0';
	return name_ok(pf);
}

static bool mac_is_unicast(const char *s)
{
	unsigned first = (unsigned)strtoul(s, NULL, 16);

	return !(first & 1) && strcmp(s, "00:00:00:00:00:00") != 0;
}

static int parse_int(const char *opt, const char *s, long long min, long long max, long long *ret)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (!*s || *end || errno || v < min || v > max)
		return usage_error("%s must be an integer %lld..%lld, not '%s'", opt, min, max, s);
	*ret = v;
	return 0;
}

static int parse_seconds(const char *opt, const char *s, double min, double max, double *ret)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (!*s || *end || errno || !(v >= min && v <= max))
		return usage_error("%s must be a number of seconds %g..%g, not '%s'", opt, min, max, s);
	*ret = v;
	return 0;
}

static int parse_choice(const char *opt, const char *s, const char *const *choices)
{
	char list[128] = "";

	for (size_t i = 0; choices[i]; i++) {
		if (!strcmp(s, choices[i]))
			return 0;
		snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? "|" : "", choices[i]);
	}
	return usage_error("%s must be %s, not '%s'", opt, list, s);
}

static int check_pf(const char *s)
{
	return name_ok(s) ? 0 : usage_error("invalid PF name '%s' (a PCI address or netdev name)", s);
}

static int check_vf(const char *s)
{
	return vf_ok(s) ? 0 : usage_error("invalid VF '%s' (a PCI address like 0000:01:10.2, or PF/INDEX like eth0/2)", s);
}

static int check_mac(const char *s)
{
	if (!hex_pattern_ok(s, "xx:xx:xx:xx:xx:xx"))
		return usage_error("invalid MAC address '%s' (xx:xx:xx:xx:xx:xx)", s);
	if (!mac_is_unicast(s))
		return usage_error("MAC address %s is not a unicast address", s);
	return 0;
}

/* Positional arguments left after getopt: exactly n. */
static int want_args(int argc, char **argv, int n, const char *what)
{
	if (argc - optind < n)
		return usage_error("missing %s", what);
	if (argc - optind > n)
		return usage_error("unexpected argument '%s'", argv[optind + n]);
	return 0;
}

/* getopt_long returned '?' or ':' (opterr is off, optstrings start with ':') */
static int bad_option(int o, int argc, char **argv)
{
	const char *word = optind > 0 && optind <= argc ? argv[optind - 1] : "?";

	if (o == ':')
		return usage_error("option '%s' needs an argument", word);
	if (optopt && optopt != '?' && !(word[0] == '-' && word[1] == '-'))
		return usage_error("unknown option '-%c'", optopt);
	return usage_error("unknown option '%s'", word);
}

/* For commands without options: still accept --help. */
static int no_options(const command *cmd, int argc, char **argv, bool *helped)
{
	static const struct option opts[] = { { "help", no_argument, NULL, 'h' }, {} };
	int o;

	*helped = false;
	optind = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (o == 'h') {
			printf("usage: iovmctl %s %s\n", cmd->name, cmd->usage);
			*helped = true;
			return EXIT_SUCCESS;
		}
		return bad_option(o, argc, argv);
	}
	return 0;
}

/* ---- output ------------------------------------------------------------- */

static void print_json(json_object *v)
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
static void print_show(json_object *o)
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

static void print_vf_table(json_object *arr)
{
	static const char *const hdr[] = { "VF", "PF", "IDX", "DRIVER", "STATE", "VM", "MODE", "USERS",
					   "MAC", "VLAN", "RATE", "THROUGHPUT", NULL };
	table t;

	table_init(&t, hdr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *vf = json_object_array_get_idx(arr, i), *cfg = js_get(vf, "config");
		char bps[32], rate[32];
		const char *pf = *js_str(vf, "pf_netdev") ? js_str(vf, "pf_netdev") : js_str(vf, "pf");

		format_bps(bps, sizeof(bps), (double)js_int(vf, "throughput_bps", 0));
		rate_text(cfg, rate, sizeof(rate));
		table_cell(&t, "%s", dash(js_str(vf, "vf")));
		table_cell(&t, "%s", dash(pf));
		table_cell(&t, "%lld", (long long)js_int(vf, "index", -1));
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

static bool is_array(json_object *v)
{
	return v && json_object_is_type(v, json_type_array);
}

/* ---- commands ----------------------------------------------------------- */

/* Connects, calls, and on success hands the return value to print (or prints
 * it as JSON with --json). args is consumed. */
static int run(ctl *c, const char *name, json_object *args, void (*print)(json_object *))
{
	_cleanup_json_ json_object *a = args, *ret = NULL;
	int r = ctl_connect(c);

	if (r)
		return r;
	r = call(c, name, a, &ret);
	if (r)
		return r;
	if (c->json)
		print_json(ret);
	else if (print)
		print(ret);
	return 0;
}

static void print_pf_list(json_object *ret)
{
	if (is_array(ret))
		print_pf_table(ret);
}

static void print_pf_show(json_object *ret)
{
	json_object *vfs = js_get(ret, "vfs");

	print_show(ret);
	if (is_array(vfs) && json_object_array_length(vfs)) {
		printf("\n");
		print_vf_table(vfs);
	}
}

/* Commands without options and with at most one argument (PF, VF or VM
 * name): the command table says which. */
static void print_nothing(json_object *ret)
{
}

static void print_set_vfs(json_object *ret)
{
	printf("%s: %lld VFs%s%s\n", js_str(ret, "pf"), (long long)js_int(ret, "num_vfs", 0),
	       *js_str(ret, "desired_driver") ? ", driver " : "", js_str(ret, "desired_driver"));
}

static void print_vf_list(json_object *ret)
{
	if (is_array(ret))
		print_vf_table(ret);
}

static void print_vm_list(json_object *ret)
{
	if (is_array(ret))
		print_vm_table(ret);
}

static void print_attach(json_object *ret)
{
	printf("attached %s to %s as %s (%s%s%s%s%s)\n", js_str(ret, "vf"), js_str(ret, "vm"),
	       dash(js_str(ret, "devid")), dash(js_str(ret, "mode")), *js_str(ret, "port") ? ", port " : "",
	       js_str(ret, "port"), *js_str(ret, "macvtap") ? ", through " : "", js_str(ret, "macvtap"));
	if (*js_str(ret, "reason"))
		printf("reason: %s\n", js_str(ret, "reason"));
}

static void print_detach(json_object *ret)
{
	printf("detached %s from %s\n", js_str(ret, "vf"), js_str(ret, "vm"));
}

/* Checks one argument and adds it to args under its key. */
static int param_add(json_object *args, const param *p, const char *v)
{
	char what[64];
	_cleanup_free_ char *abs = NULL;
	long long n;
	int r;

	if (p->opt)
		snprintf(what, sizeof(what), "--%s", p->opt);
	else
		snprintf(what, sizeof(what), "%s", p->label);
	switch (p->kind) {
	case P_PF:
		if ((r = check_pf(v)))
			return r;
		break;
	case P_VF:
		if ((r = check_vf(v)))
			return r;
		break;
	case P_NAME:
		if (!name_ok(v))
			return usage_error("invalid %s '%s' (1-63 of A-Z a-z 0-9 _ . : -)", what, v);
		break;
	case P_MAC:
		if ((r = check_mac(v)))
			return r;
		break;
	case P_INT:
		if ((r = parse_int(what, v, p->min, p->max, &n)))
			return r;
		json_object_object_add(args, p->key, json_object_new_int64(n));
		return 0;
	case P_ONOFF: {
		static const char *const onoff[] = { "on", "off", NULL };

		if ((r = parse_choice(what, v, onoff)))
			return r;
		json_object_object_add(args, p->key, json_object_new_boolean(!strcmp(v, "on")));
		return 0;
	}
	case P_CHOICE:
		if ((r = parse_choice(what, v, p->choices)))
			return r;
		break;
	case P_PATH:
		if (!*v)
			return usage_error("%s needs a path", what);
		if (v[0] != '/') {
			char cwd[4096];

			if (!getcwd(cwd, sizeof(cwd)))
				return fail("getcwd: %s", strerror(errno));
			if (asprintf(&abs, "%s/%s", strcmp(cwd, "/") ? cwd : "", v) < 0)
				return fail("out of memory");
			v = abs;
		}
		if (strlen(v) >= sizeof(((struct sockaddr_un *)NULL)->sun_path))
			return usage_error("%s: socket path too long: %s", what, v);
		break;
	}
	json_object_object_add(args, p->key, json_object_new_string(v));
	return 0;
}

/* A command described by its params: parse the options, check every
 * argument, send, print. */
static int run_command(ctl *c, const command *cmd, int argc, char **argv)
{
	struct option opts[PARAMS_MAX + 2] = {};
	const char *vals[PARAMS_MAX] = {};
	size_t n = 0, nopts = 0, npos = 0;
	json_object *args;
	int o, r;

	/* an option's val is 256 + its index in params */
	for (const param *p = cmd->params; p->key; p++, n++) {
		if (p->opt)
			opts[nopts++] = (struct option){ p->opt, required_argument, NULL, 256 + (int)n };
		else
			npos++;
	}
	opts[nopts] = (struct option){ "help", no_argument, NULL, 'h' };

	optind = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		if (o == 'h') {
			printf("usage: iovmctl %s %s\n", cmd->name, cmd->usage);
			return EXIT_SUCCESS;
		}
		if (o < 256)
			return bad_option(o, argc, argv);
		vals[o - 256] = optarg;
	}

	if ((size_t)(argc - optind) < npos)
		return usage_error("missing %s", cmd->params[argc - optind].label);
	if ((size_t)(argc - optind) > npos)
		return usage_error("unexpected argument '%s'", argv[optind + npos]);

	args = json_object_new_object();
	for (size_t i = 0, pos = 0; i < n; i++) {
		const param *p = &cmd->params[i];
		const char *v = p->opt ? vals[i] : argv[optind + pos++];

		if (!v && p->required)
			r = usage_error("--%s %s is required", p->opt, p->label);
		else
			r = v ? param_add(args, p, v) : 0;
		if (r) {
			json_object_put(args);
			return r;
		}
	}
	if (cmd->check && (r = cmd->check(args))) {
		json_object_put(args);
		return r;
	}
	if (json_object_object_length(args) == 0) {
		json_object_put(args);
		args = NULL;
	}
	return run(c, cmd->api, args, cmd->print);
}

static const char *const drivers[] = { "vfio-pci", "host", NULL };
static const char *const links[] = { "auto", "enable", "disable", NULL };
static const char *const priorities[] = { "high", "normal", "low", NULL };
static const char *const modes[] = { "auto", "exclusive", "shared", NULL };

static const param no_params[] = { {} };
static const param pf_params[] = { { .key = "pf", .kind = P_PF, .label = "PF" }, {} };
static const param vf_params[] = { { .key = "vf", .kind = P_VF, .label = "VF" }, {} };
static const param vm_params[] = { { .key = "name", .kind = P_NAME, .label = "VM name" }, {} };

static const param set_vfs_params[] = {
	{ .key = "pf", .kind = P_PF, .label = "PF" },
	{ .key = "count", .kind = P_INT, .label = "COUNT", .min = 0, .max = 65535 },
	{ .opt = "driver", .key = "driver", .kind = P_CHOICE, .choices = drivers },
	{}
};

static const param vf_list_params[] = { { .opt = "pf", .key = "pf", .kind = P_PF }, {} };

static const param vf_set_params[] = {
	{ .key = "vf", .kind = P_VF, .label = "VF" },
	{ .opt = "mac", .key = "mac", .kind = P_MAC },
	{ .opt = "vlan", .key = "vlan", .kind = P_INT, .min = 0, .max = 4094 },
	{ .opt = "qos", .key = "qos", .kind = P_INT, .min = 0, .max = 7 },
	{ .opt = "rate", .key = "rate", .kind = P_INT, .min = 0, .max = INT32_MAX },
	{ .opt = "trust", .key = "trust", .kind = P_ONOFF },
	{ .opt = "spoofchk", .key = "spoofchk", .kind = P_ONOFF },
	{ .opt = "link", .key = "link", .kind = P_CHOICE, .choices = links },
	{}
};

static int check_vf_set(json_object *args)
{
	if (json_object_object_length(args) < 2)
		return usage_error("nothing to set: give at least one of --mac --vlan --qos --rate "
				   "--trust --spoofchk --link");
	if (js_has(args, "qos") && !js_has(args, "vlan"))
		return usage_error("--qos needs --vlan");
	return 0;
}

static const param vm_add_params[] = {
	{ .key = "name", .kind = P_NAME, .label = "VM name" },
	{ .opt = "qmp", .key = "qmp", .kind = P_PATH, .label = "SOCKET", .required = true },
	{ .opt = "qga", .key = "qga", .kind = P_PATH, .label = "SOCKET" },
	{ .opt = "priority", .key = "priority", .kind = P_CHOICE, .choices = priorities },
	{ .opt = "numa-node", .key = "numa_node", .kind = P_INT, .min = 0, .max = 1023 },
	{}
};

static const param attach_params[] = {
	{ .key = "vm", .kind = P_NAME, .label = "VM name" },
	{ .opt = "vf", .key = "vf", .kind = P_VF },
	{ .opt = "pf", .key = "pf", .kind = P_PF },
	{ .opt = "mode", .key = "mode", .kind = P_CHOICE, .choices = modes },
	{ .opt = "mac", .key = "mac", .kind = P_MAC },
	{ .opt = "vlan", .key = "vlan", .kind = P_INT, .min = 0, .max = 4094 },
	{ .opt = "failover-pair-id", .key = "failover_pair_id", .kind = P_NAME },
	{ .opt = "timeout-ms", .key = "timeout_ms", .kind = P_INT, .min = 100, .max = 600000 },
	{}
};

static int check_attach(json_object *args)
{
	if (js_has(args, "vf") && js_has(args, "pf"))
		return usage_error("--vf and --pf exclude each other");
	return 0;
}

static const param detach_params[] = {
	{ .key = "vm", .kind = P_NAME, .label = "VM name" },
	{ .opt = "vf", .key = "vf", .kind = P_VF },
	{ .opt = "timeout-ms", .key = "timeout_ms", .kind = P_INT, .min = 100, .max = 600000 },
	{}
};

static int by_throughput(const void *x, const void *y)
{
	json_object *a = *(json_object *const *)x, *b = *(json_object *const *)y;
	int64_t ta = js_int(a, "throughput_bps", 0), tb = js_int(b, "throughput_bps", 0);

	if (ta != tb)
		return ta > tb ? -1 : 1;
	return strcmp(js_str(a, "vf"), js_str(b, "vf"));
}

static void print_top(json_object *arr, double interval, bool tty)
{
	static const char *const hdr[] = { "VF", "PF", "IDX", "STATE", "VM", "MODE", "THROUGHPUT", NULL };
	char total[32], clock_buf[32];
	double sum = 0;
	time_t t = time(NULL);
	table tb;

	table_init(&tb, hdr);
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		json_object *vf = json_object_array_get_idx(arr, i);
		const char *pf = *js_str(vf, "pf_netdev") ? js_str(vf, "pf_netdev") : js_str(vf, "pf");
		char bps[32];

		sum += (double)js_int(vf, "throughput_bps", 0);
		format_bps(bps, sizeof(bps), (double)js_int(vf, "throughput_bps", 0));
		table_cell(&tb, "%s", dash(js_str(vf, "vf")));
		table_cell(&tb, "%s", dash(pf));
		table_cell(&tb, "%lld", (long long)js_int(vf, "index", -1));
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

static int cmd_top(ctl *c, const command *cmd, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "interval", required_argument, NULL, 'i' },
		{ "count", required_argument, NULL, 'n' },
		{ "pf", required_argument, NULL, 'p' },
		{ "help", no_argument, NULL, 'h' },
		{}
	};
	double interval = 1.0;
	long long count = 0;
	const char *pf = NULL;
	bool tty = isatty(STDOUT_FILENO);
	int o, r;

	optind = 0;
	while ((o = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (o) {
		case 'h':
			printf("usage: iovmctl %s %s\n", cmd->name, cmd->usage);
			return EXIT_SUCCESS;
		case 'i':
			if ((r = parse_seconds("--interval", optarg, 0.1, 3600, &interval)))
				return r;
			break;
		case 'n':
			if ((r = parse_int("--count", optarg, 1, INT32_MAX, &count)))
				return r;
			break;
		case 'p':
			if ((r = check_pf(optarg)))
				return r;
			pf = optarg;
			break;
		default:
			return bad_option(o, argc, argv);
		}
	}
	if ((r = want_args(argc, argv, 0, "")))
		return r;
	if ((r = ctl_connect(c)))
		return r;

	_cleanup_json_ json_object *a = NULL;
	if (pf) {
		a = json_object_new_object();
		json_object_object_add(a, "pf", json_object_new_string(pf));
	}
	for (long long n = 0; !count || n < count; n++) {
		_cleanup_json_ json_object *ret = NULL;
		int64_t next = now_ms() + (int64_t)(interval * 1000);

		if ((r = call(c, "vf-list", a, &ret)))
			return r;
		if (!is_array(ret))
			return fail("malformed reply to vf-list: not an array");

		json_object_array_sort(ret, by_throughput);
		if (c->json)
			printf("%s\n", json_object_to_json_string_ext(ret, JSON_C_TO_STRING_PLAIN |
								      JSON_C_TO_STRING_NOSLASHESCAPE));
		else {
			if (n && !tty)
				printf("\n");
			print_top(ret, interval, tty);
		}
		fflush(stdout);
		if (count && n + 1 >= count)
			break;
		if ((r = drain_until(c, next)))
			return r;
	}
	return 0;
}

static int cmd_raw(ctl *c, const command *cmd, int argc, char **argv)
{
	bool helped;
	json_object *a = NULL;
	int r = no_options(cmd, argc, argv, &helped);

	if (r || helped)
		return r;
	if (argc - optind < 1)
		return usage_error("missing COMMAND");
	if (argc - optind > 2)
		return usage_error("unexpected argument '%s'", argv[optind + 2]);
	if (argc - optind == 2) {
		a = json_tokener_parse(argv[optind + 1]);
		if (!a || !json_object_is_type(a, json_type_object)) {
			json_object_put(a);
			return usage_error("ARGS must be a JSON object, not '%s'", argv[optind + 1]);
		}
	}
	c->json = true;
	return run(c, argv[optind], a, NULL);
}

#define COMMAND(n, u, a, par, chk, pr) \
	{ .name = n, .usage = u, .api = a, .params = par, .check = chk, .print = pr, .run = run_command }

static const command commands[] = {
	COMMAND("status", "", "status", no_params, NULL, print_show),
	COMMAND("pf list", "", "pf-list", no_params, NULL, print_pf_list),
	COMMAND("pf show", "PF", "pf-show", pf_params, NULL, print_pf_show),
	COMMAND("pf set-vfs", "PF COUNT [--driver vfio-pci|host]", "pf-set-vfs", set_vfs_params, NULL,
		print_set_vfs),
	COMMAND("vf list", "[--pf PF]", "vf-list", vf_list_params, NULL, print_vf_list),
	COMMAND("vf show", "VF", "vf-show", vf_params, NULL, print_show),
	COMMAND("vf set", "VF [--mac MAC] [--vlan ID] [--qos N] [--rate MBPS] [--trust on|off] "
		"[--spoofchk on|off] [--link auto|enable|disable]", "vf-set", vf_set_params, check_vf_set,
		print_show),
	COMMAND("vm add", "NAME --qmp SOCKET [--qga SOCKET] [--priority high|normal|low] [--numa-node N]", "vm-add",
		vm_add_params, NULL, print_show),
	COMMAND("vm list", "", "vm-list", no_params, NULL, print_vm_list),
	COMMAND("vm remove", "NAME", "vm-remove", vm_params, NULL, print_nothing),
	COMMAND("attach", "VM [--vf VF | --pf PF] [--mode auto|exclusive|shared] [--mac MAC] [--vlan ID] "
		"[--failover-pair-id ID] [--timeout-ms MS]", "attach", attach_params, check_attach, print_attach),
	COMMAND("detach", "VM [--vf VF] [--timeout-ms MS]", "detach", detach_params, NULL, print_detach),
	{ .name = "top", .usage = "[--interval SEC] [--count N] [--pf PF]", .run = cmd_top },
	{ .name = "raw", .usage = "COMMAND [JSON-ARGS]", .run = cmd_raw },
};

static void usage(FILE *f)
{
	fputs("usage: iovmctl [--socket PATH] [--json] [--timeout SEC] COMMAND [ARGS]\n\n"
	      "Commands:\n", f);
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		fprintf(f, "  %s%s%s\n", commands[i].name, *commands[i].usage ? " " : "", commands[i].usage);
	fputs("\nOptions:\n"
	      "  -s, --socket PATH   daemon socket (default $IOVM_SOCKET or " DEFAULT_SOCKET ")\n"
	      "  -j, --json          print the daemon's reply as JSON\n"
	      "  -t, --timeout SEC   wait at most SEC seconds for a reply (default 120, 0: no limit)\n"
	      "  -h, --help          show this help\n"
	      "  -V, --version       show the version\n"
	      "\nA VF is a PCI address (0000:01:10.2) or PF/INDEX (eth0/2). See iovmctl(8).\n", f);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{}
	};
	ctl c = { .timeout_s = DEFAULT_TIMEOUT_S, .fd = -1 };
	const command *cmd = NULL;
	int o, r, words = 0;

	c.socket = getenv("IOVM_SOCKET");
	if (!c.socket || !*c.socket)
		c.socket = DEFAULT_SOCKET;
	c.progress_tty = isatty(STDERR_FILENO);
	opterr = 0;   /* bad_option() says what was wrong */

	/* "+": global options come before the command */
	while ((o = getopt_long(argc, argv, "+:s:jt:hV", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			if (!*optarg)
				return usage_error("--socket needs a path");
			c.socket = optarg;
			break;
		case 'j':
			c.json = true;
			break;
		case 't':
			if ((r = parse_seconds("--timeout", optarg, 0, 86400, &c.timeout_s)))
				return r;
			break;
		case 'h':
			usage(stdout);
			return EXIT_SUCCESS;
		case 'V':
			printf("iovmctl %s\n", IOVM_VERSION);
			return EXIT_SUCCESS;
		default:
			return bad_option(o, argc, argv);
		}
	}
	if (optind >= argc)
		return usage_error("missing command");

	/* one-word commands, then two-word ones ("pf list") */
	for (size_t i = 0; i < ELEMENTSOF(commands) && !cmd; i++) {
		const char *name = commands[i].name, *sp = strchr(name, ' ');

		if (!sp && !strcmp(name, argv[optind])) {
			cmd = &commands[i];
			words = 1;
		} else if (sp && strlen(argv[optind]) == (size_t)(sp - name) &&
			   !strncmp(name, argv[optind], (size_t)(sp - name))) {
			if (optind + 1 >= argc)
				return usage_error("'%s' needs a subcommand, e.g. '%s'", argv[optind], name);
			if (!strcmp(sp + 1, argv[optind + 1])) {
				cmd = &commands[i];
				words = 2;
			}
		}
	}
	if (!cmd) {
		bool group = optind + 1 < argc && (!strcmp(argv[optind], "pf") || !strcmp(argv[optind], "vf") ||
						   !strcmp(argv[optind], "vm"));

		return usage_error("unknown command '%s%s%s'", argv[optind], group ? " " : "",
				   group ? argv[optind + 1] : "");
	}
	current = cmd;
	/* the command's argv: argv[0] is its last word */
	r = cmd->run(&c, cmd, argc - optind - words + 1, argv + optind + words - 1);
	if (c.fd >= 0)
		close(c.fd);
	free(c.buf);
	return r;
}
