/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* PCI addresses as text: parsed, checked, made canonical. No sysfs here, so
 * the API schema (and with it iovmctl) can check a VF's address. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "iovm/pci.h"

static int hexfield(const char *s, size_t len, unsigned long max, unsigned long *ret)
{
	unsigned long v = 0;

	if (len == 0)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		if (!isxdigit((unsigned char)s[i]))
			return -EINVAL;
		v = v * 16 + (unsigned long)(isdigit((unsigned char)s[i]) ? s[i] - '0'
						    : tolower((unsigned char)s[i]) - 'a' + 10);
	}
	if (v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int parse_addr(const char *s, char out[IOVM_PCI_ADDR_MAX])
{
	unsigned long dom = 0, bus, slot, fn;
	const char *c1, *c2, *dot;

	c1 = strchr(s, ':');
	if (!c1)
		return -EINVAL;
	c2 = strchr(c1 + 1, ':');
	if (c2) {
		if (c1 - s != 4 || hexfield(s, 4, 0xffff, &dom) < 0)
			return -EINVAL;
		s = c1 + 1;
		c1 = c2;
	}
	dot = strchr(c1 + 1, '.');
	if (!dot || c1 - s != 2 || dot - c1 - 1 != 2 || strlen(dot + 1) != 1)
		return -EINVAL;
	if (hexfield(s, 2, 0xff, &bus) < 0 || hexfield(c1 + 1, 2, 0x1f, &slot) < 0 ||
	    hexfield(dot + 1, 1, 7, &fn) < 0)
		return -EINVAL;
	snprintf(out, IOVM_PCI_ADDR_MAX, "%04lx:%02lx:%02lx.%lx", dom, bus, slot, fn);
	return 0;
}

bool iovm_pci_addr_valid(const char *s)
{
	char buf[IOVM_PCI_ADDR_MAX];

	return s && parse_addr(s, buf) == 0;
}

int iovm_pci_addr_normalize(const char *s, char *ret, size_t n, iovm_error *err)
{
	char buf[IOVM_PCI_ADDR_MAX];

	if (!s || !ret || n < IOVM_PCI_ADDR_MAX)
		return iovm_error_set(err, -EINVAL, "pci address: invalid argument");
	if (strlen(s) > 32 || parse_addr(s, buf) < 0)
		return iovm_error_set(err, -EINVAL,
				      "pci address '%.32s': malformed (expected DDDD:BB:SS.F)", s);
	memcpy(ret, buf, sizeof(buf));
	return 0;
}
