/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The checks every argument passes, on C strings and integers: names, VFs,
 * paths, MACs, enum words, integer ranges. The request parser (parse.c)
 * applies them to JSON values; iovmctl applies them to its command line.
 * Either way the refusal reads "CMD: argument 'ARG' must be ...".
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/api-schema.h"
#include "iovm/pci.h"
#include "iovm/vfconfig.h"
#include "lib/api/api-internal.h"

#define VF_INDEX_MAX 65535u
#define NAME_RULE "1..63 characters of A-Z a-z 0-9 _ . : -"
_Static_assert(IOVM_API_NAME_MAX == 64 && IOVM_API_PATH_MAX == 108, "the messages spell these out");

int api_refuse(iovm_api_cmd c, iovm_api_arg a, iovm_error *err, const char *fmt, ...)
{
	char what[IOVM_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	return iovm_error_set(err, -EINVAL, "%s: argument '%s' must %s", iovm_api_cmd_to_string(c),
			      iovm_api_arg_to_string(a), what);
}

int api_refuse_int(iovm_api_cmd c, iovm_api_arg a, iovm_error *err)
{
	const iovm_api_arg_def *d = iovm_api_arg_get(a);

	return api_refuse(c, a, err, "be an integer %" PRId64 "..%" PRId64, d->min, d->max);
}

/* ---- names and VFs --------------------------------------------------------------- */

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '.' || c == ':' || c == '-';
}

/* [A-Za-z0-9_.:-]{1,63}, and not "." or ".." (names end up in sysfs paths). */
static bool name_valid(const char *s, size_t len)
{
	if (len == 0 || len >= IOVM_API_NAME_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!name_char(s[i]))
			return false;
	return !(len == 1 && s[0] == '.') && !(len == 2 && s[0] == '.' && s[1] == '.');
}

/* "PF/INDEX" split at the last '/'; the PF part as a name, INDEX decimal. */
static int vf_split(const char *vf, size_t len, size_t *ret_pf_len, unsigned *ret_index)
{
	const char *slash = NULL;
	unsigned long idx = 0;
	size_t ndig;

	for (size_t i = 0; i < len; i++)
		if (vf[i] == '/')
			slash = vf + i;
	if (!slash || !name_valid(vf, (size_t)(slash - vf)))
		return -EINVAL;
	ndig = len - (size_t)(slash - vf) - 1;
	if (ndig == 0 || ndig > 5)
		return -EINVAL;
	for (size_t i = 0; i < ndig; i++) {
		char c = slash[1 + i];

		if (c < '0' || c > '9')
			return -EINVAL;
		idx = idx * 10 + (unsigned long)(c - '0');
	}
	if (idx > VF_INDEX_MAX)
		return -EINVAL;
	*ret_pf_len = (size_t)(slash - vf);
	*ret_index = (unsigned)idx;
	return 0;
}

int iovm_api_vf_split(const char *vf, char *ret_pf, size_t n, unsigned *ret_index)
{
	size_t len, pf_len;
	unsigned idx;
	int r;

	if (!vf)
		return -EINVAL;
	len = strnlen(vf, IOVM_API_VF_MAX);
	if (len >= IOVM_API_VF_MAX)
		return -EINVAL;
	r = vf_split(vf, len, &pf_len, &idx);
	if (r < 0)
		return r;
	if (ret_pf) {
		if (pf_len >= n)
			return -ENOBUFS;
		memcpy(ret_pf, vf, pf_len);
		ret_pf[pf_len] = '\0';
	}
	if (ret_index)
		*ret_index = idx;
	return 0;
}

bool iovm_api_vf_is_pci_address(const char *vf)
{
	return vf && strnlen(vf, IOVM_API_VF_MAX) < IOVM_API_VF_MAX && iovm_pci_addr_valid(vf);
}

/* A PCI address, or PF/INDEX. */
static bool vf_valid(const char *s, size_t len)
{
	size_t pf_len;
	unsigned idx;

	if (len == 0 || len >= IOVM_API_VF_MAX)
		return false;
	return vf_split(s, len, &pf_len, &idx) == 0 || (!memchr(s, '/', len) && iovm_pci_addr_valid(s));
}

/* ---- the checks ------------------------------------------------------------------ */

int iovm_api_check_name(iovm_api_cmd c, iovm_api_arg a, const char *s, iovm_error *err)
{
	if (!s || !name_valid(s, strlen(s)))
		return api_refuse(c, a, err, "be " NAME_RULE);
	return 0;
}

int iovm_api_check_vf(iovm_api_cmd c, iovm_api_arg a, const char *s, iovm_error *err)
{
	if (!s || !vf_valid(s, strlen(s)))
		return api_refuse(c, a, err, "be a VF's PCI address (0000:01:10.2) or PF/INDEX (eth0/2)");
	return 0;
}

int iovm_api_check_path(iovm_api_cmd c, iovm_api_arg a, const char *s, iovm_error *err)
{
	if (!s || s[0] != '/' || strlen(s) >= IOVM_API_PATH_MAX)
		return api_refuse(c, a, err, "be an absolute path shorter than 108 bytes");
	return 0;
}

int iovm_api_check_mac(iovm_api_cmd c, iovm_api_arg a, const char *s, uint8_t ret_mac[6],
		       iovm_error *err)
{
	static const uint8_t zero[6];
	uint8_t mac[6];

	if (!s || iovm_mac_parse(s, mac) < 0)
		return api_refuse(c, a, err, "be a MAC address xx:xx:xx:xx:xx:xx");
	if (mac[0] & 1)
		return api_refuse(c, a, err, "be a unicast MAC address (%s is multicast)", s);
	if (memcmp(mac, zero, sizeof(zero)) == 0)
		return api_refuse(c, a, err, "be a unicast MAC address, not all zeroes");
	if (ret_mac)
		memcpy(ret_mac, mac, sizeof(mac));
	return 0;
}

int iovm_api_check_enum(iovm_api_cmd c, iovm_api_arg a, const char *s, int *ret, iovm_error *err)
{
	const iovm_api_arg_def *d = iovm_api_arg_get(a);
	char list[128] = "";

	if (!d || d->kind != IOVM_API_KIND_ENUM)
		return iovm_error_set(err, -EINVAL, "check enum: invalid argument");
	for (size_t i = 0; s && i < d->nchoices; i++)
		if (d->choices[i] && strcmp(d->choices[i], s) == 0) {
			if (ret)
				*ret = (int)i;
			return 0;
		}
	for (size_t i = 0; i < d->nchoices; i++)
		if (d->choices[i]) {
			size_t l = strlen(list);

			snprintf(list + l, sizeof(list) - l, "%s\"%s\"", l ? ", " : "", d->choices[i]);
		}
	return api_refuse(c, a, err, "be one of %s", list);
}

int iovm_api_check_int(iovm_api_cmd c, iovm_api_arg a, int64_t v, iovm_error *err)
{
	const iovm_api_arg_def *d = iovm_api_arg_get(a);

	if (!d || d->kind != IOVM_API_KIND_INT)
		return iovm_error_set(err, -EINVAL, "check integer: invalid argument");
	if (v < d->min || v > d->max)
		return api_refuse_int(c, a, err);
	return 0;
}

int iovm_api_parse_int(iovm_api_cmd c, iovm_api_arg a, const char *s, int64_t *ret, iovm_error *err)
{
	const iovm_api_arg_def *d = iovm_api_arg_get(a);
	long long v;
	char *end;

	if (!d || d->kind != IOVM_API_KIND_INT)
		return iovm_error_set(err, -EINVAL, "parse integer: invalid argument");
	if (!s || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
		return api_refuse_int(c, a, err);
	errno = 0;
	v = strtoll(s, &end, 10);
	if (*end || errno || end == s || v < d->min || v > d->max)
		return api_refuse_int(c, a, err);
	if (ret)
		*ret = v;
	return 0;
}
