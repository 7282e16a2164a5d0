/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Per-guest data isolation policy: which device paths a guest may open and
 * which ioctls it may issue. The format is INI-like and documented in
 * docs/devfwd.md:
 *
 *   [guest cid=3]              # vsock peer CID, or [guest uid=1000] for UNIX
 *   allow-path = /dev/input/event*
 *   allow-ioctl = E:*          # every ioctl of _IOC_TYPE 'E'
 *   allow-ioctl = T:202        # type 'T', number 202, any direction/size
 *   allow-ioctl = 0x80044501   # one exact command
 *   window = /dev/shm/iovm-window-g1  # the guest's shared window (mmap)
 */
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/capability.h>
#include <linux/ioctl.h>

#include "devfwd/devfwd.h"
#include "shared/util.h"

#define MAX_GUESTS 64
#define MAX_PATHS 64
#define MAX_IOCTLS DEVFWD_MAX_IOCTL_RULES
#define MAX_LINE 512

enum ioctl_rule_kind { RULE_ALL, RULE_TYPE, RULE_TYPE_NR, RULE_CMD };

struct ioctl_rule {
	enum ioctl_rule_kind kind;
	uint32_t type, nr, cmd;
};

struct devfwd_rules {
	char name[48];
	enum devfwd_peer_kind kind;
	uint32_t id; /* cid or uid */
	char *path[MAX_PATHS];
	size_t npath;
	struct ioctl_rule ioctl[MAX_IOCTLS];
	size_t nioctl;
	uint64_t worker_caps; /* bit per capability the worker keeps */
	char *window;         /* the file behind the guest's shared window */
};

/* Capabilities a policy may let a guest's worker keep: those some device
 * classes check at ioctl time (TUNSETIFF wants CAP_NET_ADMIN). */
static const struct {
	const char *name;
	int cap;
} worker_caps[] = {
	{ "net_admin", CAP_NET_ADMIN },
};

struct devfwd_policy {
	struct devfwd_rules *guest[MAX_GUESTS];
	size_t nguest;
};

void devfwd_policy_free(struct devfwd_policy *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < p->nguest; i++) {
		for (size_t j = 0; j < p->guest[i]->npath; j++)
			free(p->guest[i]->path[j]);
		free(p->guest[i]->window);
		free(p->guest[i]);
	}
	free(p);
}

static void policy_freep(struct devfwd_policy **p)
{
	devfwd_policy_free(*p);
}

int devfwd_path_check(const char *path)
{
	size_t n;

	if (!path || path[0] != '/')
		return -EINVAL;
	n = strlen(path);
	if (n > DEVFWD_MAX_PATH || path[n - 1] == '/')
		return -EINVAL;
	/* Walk the components: none may be empty, "." or "..". */
	for (const char *c = path + 1;;) {
		const char *slash = strchr(c, '/');
		size_t len = slash ? (size_t)(slash - c) : strlen(c);

		if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
			return -EINVAL;
		if (!slash)
			return 0;
		c = slash + 1;
	}
}

static char *strip(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

static int parse_num(const char *s, uint32_t max, uint32_t *ret)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 0);
	if (errno || *end || v > max)
		return -EINVAL;
	*ret = (uint32_t)v;
	return 0;
}

/* "E:*", "T:202", "0x54:*", "0x400454ca", "*" */
static int parse_ioctl_rule(const char *v, struct ioctl_rule *ret)
{
	const char *colon = strchr(v, ':');
	char type[16];

	if (strcmp(v, "*") == 0) {
		*ret = (struct ioctl_rule){ .kind = RULE_ALL };
		return 0;
	}
	if (!colon) {
		*ret = (struct ioctl_rule){ .kind = RULE_CMD };
		return parse_num(v, UINT32_MAX, &ret->cmd);
	}
	if ((size_t)(colon - v) >= sizeof(type) || colon == v)
		return -EINVAL;
	memcpy(type, v, (size_t)(colon - v));
	type[colon - v] = 0;
	*ret = (struct ioctl_rule){ .kind = RULE_TYPE };
	if (strlen(type) == 1 && isgraph((unsigned char)type[0]))
		ret->type = (unsigned char)type[0];
	else if (parse_num(type, 0xff, &ret->type) < 0)
		return -EINVAL;
	if (strcmp(colon + 1, "*") == 0)
		return 0;
	ret->kind = RULE_TYPE_NR;
	return parse_num(colon + 1, 0xff, &ret->nr);
}

static int parse_section(const char *s, struct devfwd_rules *r)
{
	uint32_t id;

	if (strncmp(s, "guest cid=", 10) == 0 && parse_num(s + 10, UINT32_MAX, &id) == 0) {
		r->kind = DEVFWD_PEER_VSOCK;
	} else if (strncmp(s, "guest uid=", 10) == 0 && parse_num(s + 10, UINT32_MAX - 1, &id) == 0) {
		r->kind = DEVFWD_PEER_UNIX;
	} else {
		return -EINVAL;
	}
	r->id = id;
	snprintf(r->name, sizeof(r->name), "%s %u", r->kind == DEVFWD_PEER_VSOCK ? "cid" : "uid", id);
	return 0;
}

static int parse_line(struct devfwd_policy *p, char *line, const char *origin, unsigned lineno, iovm_error *err)
{
	struct devfwd_rules *cur = p->nguest ? p->guest[p->nguest - 1] : NULL;
	char *eq, *key, *val;

	line = strip(line);
	if (!*line || *line == '#' || *line == ';')
		return 0;
	if (*line == '[') {
		size_t n = strlen(line);
		_cleanup_free_ struct devfwd_rules *r = calloc(1, sizeof(*r));

		if (!r)
			return -ENOMEM;
		if (line[n - 1] != ']')
			return iovm_error_set(err, -EINVAL, "policy %s:%u: unterminated section", origin, lineno);
		line[n - 1] = 0;
		if (parse_section(strip(line + 1), r) < 0)
			return iovm_error_set(err, -EINVAL, "policy %s:%u: expected [guest cid=N] or [guest uid=N]",
					      origin, lineno);
		for (size_t i = 0; i < p->nguest; i++)
			if (p->guest[i]->kind == r->kind && p->guest[i]->id == r->id)
				return iovm_error_set(err, -EEXIST, "policy %s:%u: guest %s defined twice",
						      origin, lineno, r->name);
		if (p->nguest >= MAX_GUESTS)
			return iovm_error_set(err, -E2BIG, "policy %s:%u: more than %d guests", origin, lineno, MAX_GUESTS);
		p->guest[p->nguest++] = TAKE_PTR(r);
		return 0;
	}
	eq = strchr(line, '=');
	if (!eq)
		return iovm_error_set(err, -EINVAL, "policy %s:%u: expected key = value", origin, lineno);
	*eq = 0;
	key = strip(line);
	val = strip(eq + 1);
	if (!cur)
		return iovm_error_set(err, -EINVAL, "policy %s:%u: %s outside a [guest ...] section", origin, lineno, key);
	if (strcmp(key, "allow-path") == 0) {
		/* Patterns obey the same rules as requested paths, so a pattern can
		 * never admit a path with ".." in it. */
		if (devfwd_path_check(val) < 0)
			return iovm_error_set(err, -EINVAL, "policy %s:%u: allow-path %s: not a clean absolute path",
					      origin, lineno, val);
		if (cur->npath >= MAX_PATHS)
			return iovm_error_set(err, -E2BIG, "policy %s:%u: more than %d paths", origin, lineno, MAX_PATHS);
		cur->path[cur->npath] = strdup(val);
		if (!cur->path[cur->npath])
			return -ENOMEM;
		cur->npath++;
		return 0;
	}
	if (strcmp(key, "allow-ioctl") == 0) {
		if (cur->nioctl >= MAX_IOCTLS)
			return iovm_error_set(err, -E2BIG, "policy %s:%u: more than %d ioctls", origin, lineno, MAX_IOCTLS);
		if (parse_ioctl_rule(val, &cur->ioctl[cur->nioctl]) < 0)
			return iovm_error_set(err, -EINVAL,
					      "policy %s:%u: allow-ioctl %s: expected TYPE:NR, TYPE:*, a number or *",
					      origin, lineno, val);
		cur->nioctl++;
		return 0;
	}
	if (strcmp(key, "window") == 0) {
		if (devfwd_path_check(val) < 0)
			return iovm_error_set(err, -EINVAL, "policy %s:%u: window %s: not a clean absolute path",
					      origin, lineno, val);
		if (cur->window)
			return iovm_error_set(err, -EINVAL, "policy %s:%u: a second window for %s", origin, lineno,
					      cur->name);
		cur->window = strdup(val);
		if (!cur->window)
			return iovm_error_set(err, -ENOMEM, "policy %s:%u: out of memory", origin, lineno);
		return 0;
	}
	if (strcmp(key, "worker-capability") == 0) {
		for (size_t i = 0; i < ELEMENTSOF(worker_caps); i++)
			if (strcmp(val, worker_caps[i].name) == 0) {
				cur->worker_caps |= UINT64_C(1) << worker_caps[i].cap;
				return 0;
			}
		return iovm_error_set(err, -EINVAL, "policy %s:%u: worker-capability %s: expected net_admin",
				      origin, lineno, val);
	}
	return iovm_error_set(err, -EINVAL, "policy %s:%u: unknown key %s", origin, lineno, key);
}

int devfwd_policy_parse(const char *text, const char *origin, struct devfwd_policy **ret, iovm_error *err)
{
	_cleanup_(policy_freep) struct devfwd_policy *p = NULL;
	unsigned lineno = 0;
	const char *s = text;

	if (!text || !ret)
		return iovm_error_set(err, -EINVAL, "policy: no text");
	if (!origin)
		origin = "<string>";
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t n = nl ? (size_t)(nl - s) : strlen(s);
		char line[MAX_LINE];
		int r;

		lineno++;
		if (n >= sizeof(line))
			return iovm_error_set(err, -EINVAL, "policy %s:%u: line longer than %d bytes", origin, lineno,
					      MAX_LINE - 1);
		memcpy(line, s, n);
		line[n] = 0;
		r = parse_line(p, line, origin, lineno, err);
		if (r < 0)
			return r;
		s += n + (nl ? 1 : 0);
	}
	*ret = TAKE_PTR(p);
	return 0;
}

int devfwd_policy_load(const char *path, struct devfwd_policy **ret, iovm_error *err)
{
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *buf = NULL;
	size_t n;

	if (!path || !ret)
		return iovm_error_set(err, -EINVAL, "policy: no path");
	f = fopen(path, "re");
	if (!f)
		return iovm_error_set(err, negative_errno(), "policy %s: open: %m", path);
	/* Policies are small; refuse anything that is clearly not one. */
	buf = malloc(1 << 20);
	if (!buf)
		return -ENOMEM;
	n = fread(buf, 1, (1 << 20) - 1, f);
	if (ferror(f))
		return iovm_error_set(err, -EIO, "policy %s: read failed", path);
	if (!feof(f))
		return iovm_error_set(err, -EFBIG, "policy %s: larger than 1 MiB", path);
	buf[n] = 0;
	if (memchr(buf, 0, n))
		return iovm_error_set(err, -EINVAL, "policy %s: contains a NUL byte", path);
	return devfwd_policy_parse(buf, path, ret, err);
}

const struct devfwd_rules *devfwd_policy_match(const struct devfwd_policy *p, const struct devfwd_peer *peer)
{
	if (!p || !peer)
		return NULL;
	for (size_t i = 0; i < p->nguest; i++) {
		const struct devfwd_rules *r = p->guest[i];

		if (r->kind != peer->kind)
			continue;
		if (r->kind == DEVFWD_PEER_VSOCK && r->id == peer->cid)
			return r;
		if (r->kind == DEVFWD_PEER_UNIX && r->id == (uint32_t)peer->uid)
			return r;
	}
	return NULL;
}

const char *devfwd_rules_window(const struct devfwd_rules *r)
{
	return r ? r->window : NULL;
}

const char *devfwd_rules_name(const struct devfwd_rules *r)
{
	return r ? r->name : "(no policy)";
}

int devfwd_rules_check_path(const struct devfwd_rules *r, const char *path)
{
	if (!r || devfwd_path_check(path) < 0)
		return -EACCES;
	for (size_t i = 0; i < r->npath; i++)
		/* FNM_PATHNAME: '*' never crosses a '/', so a pattern in /dev/input stays there. */
		if (fnmatch(r->path[i], path, FNM_PATHNAME | FNM_PERIOD) == 0)
			return 0;
	return -EACCES;
}

int devfwd_rules_check_ioctl(const struct devfwd_rules *r, uint32_t cmd)
{
	if (!r)
		return -ENOTTY;
	for (size_t i = 0; i < r->nioctl; i++) {
		const struct ioctl_rule *x = &r->ioctl[i];

		switch (x->kind) {
		case RULE_ALL:
			return 0;
		case RULE_TYPE:
			if (_IOC_TYPE(cmd) == x->type)
				return 0;
			break;
		case RULE_TYPE_NR:
			if (_IOC_TYPE(cmd) == x->type && _IOC_NR(cmd) == x->nr)
				return 0;
			break;
		case RULE_CMD:
			if (cmd == x->cmd)
				return 0;
			break;
		}
	}
	return -ENOTTY;
}

int devfwd_rules_ioctl_matches(const struct devfwd_rules *r, struct devfwd_ioctl_match *ret, size_t max)
{
	size_t n = 0;

	if (!ret)
		return -EINVAL;
	if (!r)
		return 0;
	for (size_t i = 0; i < r->nioctl; i++) {
		const struct ioctl_rule *x = &r->ioctl[i];
		struct devfwd_ioctl_match m;

		switch (x->kind) {
		case RULE_ALL:
			m = (struct devfwd_ioctl_match){ .mask = 0, .value = 0 };
			break;
		case RULE_TYPE:
			m = (struct devfwd_ioctl_match){ .mask = _IOC_TYPEMASK << _IOC_TYPESHIFT,
							 .value = x->type << _IOC_TYPESHIFT };
			break;
		case RULE_TYPE_NR:
			m = (struct devfwd_ioctl_match){
				.mask = (_IOC_TYPEMASK << _IOC_TYPESHIFT) | (_IOC_NRMASK << _IOC_NRSHIFT),
				.value = (x->type << _IOC_TYPESHIFT) | (x->nr << _IOC_NRSHIFT) };
			break;
		case RULE_CMD:
		default:
			m = (struct devfwd_ioctl_match){ .mask = UINT32_MAX, .value = x->cmd };
			break;
		}
		if (m.mask == 0) {
			/* Everything is allowed: one match says it all. */
			if (max < 1)
				return -E2BIG;
			ret[0] = m;
			return 1;
		}
		if (n >= max)
			return -E2BIG;
		ret[n++] = m;
	}
	return (int)n;
}

uint64_t devfwd_rules_worker_caps(const struct devfwd_rules *r)
{
	return r ? r->worker_caps : 0;
}
