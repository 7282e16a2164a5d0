/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VF settings as values: MAC addresses and the one-line form the state
 * store keeps. No netlink here (that is vfnet.c). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iovm/vfconfig.h"
#include "shared/util.h"

char *iovm_mac_format(const uint8_t mac[6], char ret[18])
{
	snprintf(ret, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	return ret;
}

int iovm_mac_parse(const char *s, uint8_t ret[6])
{
	uint8_t m[6];

	if (!s || !ret || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		const char *p = s + i * 3;
		unsigned v = 0;

		for (int k = 0; k < 2; k++) {
			char ch = p[k];

			v <<= 4;
			if (ch >= '0' && ch <= '9')
				v |= (unsigned)(ch - '0');
			else if (ch >= 'a' && ch <= 'f')
				v |= (unsigned)(ch - 'a' + 10);
			else if (ch >= 'A' && ch <= 'F')
				v |= (unsigned)(ch - 'A' + 10);
			else
				return -EINVAL;
		}
		if (i < 5 && p[2] != ':')
			return -EINVAL;
		m[i] = (uint8_t)v;
	}
	memcpy(ret, m, 6);
	return 0;
}

int iovm_vfnet_config_format(const iovm_vfnet_config *c, char *ret, size_t n)
{
	char buf[256];
	size_t len = 0;

	if (!c || !ret || n == 0)
		return -EINVAL;
	buf[0] = '\0';
#define ADD(...) len += (size_t)snprintf(buf + len, sizeof(buf) - len, __VA_ARGS__)
	if (c->present & IOVM_VFNET_MAC)
		ADD("mac=%02x:%02x:%02x:%02x:%02x:%02x ", c->mac[0], c->mac[1], c->mac[2],
		    c->mac[3], c->mac[4], c->mac[5]);
	if (c->present & IOVM_VFNET_VLAN)
		ADD("vlan=%u qos=%u ", c->vlan, c->qos);
	if (c->present & IOVM_VFNET_RATE)
		ADD("rate=%u ", c->max_tx_rate);
	if (c->present & IOVM_VFNET_SPOOFCHK)
		ADD("spoofchk=%d ", c->spoofchk);
	if (c->present & IOVM_VFNET_TRUST)
		ADD("trust=%d ", c->trust);
	if (c->present & IOVM_VFNET_LINK_STATE)
		ADD("link=%s ", iovm_vf_link_state_to_string(c->link_state <= IOVM_VF_LINK_DISABLE ? c->link_state : IOVM_VF_LINK_AUTO));
#undef ADD
	if (len > 0)
		buf[--len] = '\0';   /* trailing space */
	if (len >= n)
		return -ENOBUFS;
	memcpy(ret, buf, len + 1);
	return (int)len;
}

static int parse_num(const char *v, unsigned long max, unsigned long *ret)
{
	char *end;
	unsigned long x;

	if (!*v || *v == '-')
		return -EINVAL;
	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || *end || x > max)
		return -EINVAL;
	*ret = x;
	return 0;
}

static int parse_token(char *tok, iovm_vfnet_config *c)
{
	char *v = strchr(tok, '=');
	unsigned long x;

	if (!v)
		return -EINVAL;
	*v++ = '\0';
	if (strcmp(tok, "mac") == 0) {
		c->present |= IOVM_VFNET_MAC;
		return iovm_mac_parse(v, c->mac);
	}
	if (strcmp(tok, "link") == 0) {
		int l = iovm_vf_link_state_from_string(v);

		if (l < 0)
			return l;
		c->link_state = (iovm_vf_link_state)l;
		c->present |= IOVM_VFNET_LINK_STATE;
		return 0;
	}
	if (strcmp(tok, "vlan") == 0 && parse_num(v, 4094, &x) == 0) {
		c->vlan = (uint16_t)x;
		c->present |= IOVM_VFNET_VLAN;
	} else if (strcmp(tok, "qos") == 0 && parse_num(v, 7, &x) == 0) {
		c->qos = (uint8_t)x;
		c->present |= IOVM_VFNET_VLAN;
	} else if (strcmp(tok, "rate") == 0 && parse_num(v, UINT32_MAX, &x) == 0) {
		c->max_tx_rate = (uint32_t)x;
		c->present |= IOVM_VFNET_RATE;
	} else if (strcmp(tok, "spoofchk") == 0 && parse_num(v, 1, &x) == 0) {
		c->spoofchk = x;
		c->present |= IOVM_VFNET_SPOOFCHK;
	} else if (strcmp(tok, "trust") == 0 && parse_num(v, 1, &x) == 0) {
		c->trust = x;
		c->present |= IOVM_VFNET_TRUST;
	} else {
		return -EINVAL;
	}
	return 0;
}

int iovm_vfnet_config_parse(const char *s, iovm_vfnet_config *ret, iovm_error *err)
{
	iovm_vfnet_config c = {};
	char buf[256], *save = NULL, *tok;

	if (!s || !ret)
		return iovm_error_set(err, -EINVAL, "vf config: invalid argument");
	if (strlen(s) >= sizeof(buf))
		return iovm_error_set(err, -EINVAL, "vf config: too long");
	strcpy(buf, s);
	for (tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		char copy[128];

		snprintf(copy, sizeof(copy), "%s", tok);
		if (parse_token(tok, &c) < 0)
			return iovm_error_set(err, -EINVAL, "vf config: bad field '%s'", copy);
	}
	*ret = c;
	return 0;
}
