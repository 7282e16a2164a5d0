/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The pure half of VM attach/detach: reading query-pci replies, device ids
 * and event matching. Nothing here talks to QEMU or sysfs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "iovm/qdev.h"
#include "shared/json-util.h"
#include "shared/util.h"

#define PERIPHERAL "/machine/peripheral/"

int iovm_vm_device_id(const char *vf_addr, char *ret, size_t n)
{
	char id[IOVM_VM_ID_MAX];
	size_t len;

	if (!vf_addr || !*vf_addr || !ret)
		return -EINVAL;
	len = (size_t)snprintf(id, sizeof(id), "iovm-%s", vf_addr);
	if (len >= sizeof(id) || len >= n)
		return -ENAMETOOLONG;
	for (char *c = id; *c; c++) {
		if (*c == ':')
			*c = '-';
		else if (!(*c >= 'a' && *c <= 'z') && !(*c >= 'A' && *c <= 'Z') &&
			 !(*c >= '0' && *c <= '9') && *c != '-' && *c != '.' && *c != '_')
			return -EINVAL;
	}
	memcpy(ret, id, len + 1);
	return 0;
}

int iovm_vm_device_path(const char *devid, char *ret, size_t n)
{
	if (!devid || !*devid || !ret)
		return -EINVAL;
	if ((size_t)snprintf(ret, n, PERIPHERAL "%s", devid) >= n)
		return -ENAMETOOLONG;
	return 0;
}

/* PCI-to-PCI bridges with several slots hot-plug through SHPC or not at all:
 * only single-slot PCIe ports take a VF. */
static bool is_multi_slot_bridge(json_object *dev)
{
	json_object *id;
	int vendor, device;

	if (!json_object_object_get_ex(dev, "id", &id))
		return false;
	vendor = json_get_int(id, "vendor", 0);
	device = json_get_int(id, "device", 0);
	return vendor == 0x1b36 && (device == 0x0001 || device == 0x000e);
}

struct walk {
	iovm_vm_port *ports;
	size_t n, cap;
	const char *find;          /* iovm_vm_pci_find: the qdev id looked for */
	char *found_port;
	size_t found_n;
	bool found;
};

static int walk_devices(struct walk *w, json_object *devices, const char *parent_port)
{
	size_t len;

	if (!json_object_is_type(devices, json_type_array))
		return -EBADMSG;
	len = json_object_array_length(devices);
	for (size_t i = 0; i < len; i++) {
		json_object *dev = json_object_array_get_idx(devices, i), *br, *bus, *children = NULL;
		const char *qdev_id;
		int r;

		if (!json_object_is_type(dev, json_type_object))
			return -EBADMSG;
		qdev_id = json_get_str(dev, "qdev_id");
		if (w->find && qdev_id && !strcmp(qdev_id, w->find) && !w->found) {
			w->found = true;
			snprintf(w->found_port, w->found_n, "%s", parent_port ? parent_port : "");
		}
		if (!json_object_object_get_ex(dev, "pci_bridge", &br))
			continue;
		json_object_object_get_ex(br, "devices", &children);
		if (qdev_id && *qdev_id && !w->find && !is_multi_slot_bridge(dev)) {
			iovm_vm_port *p;

			if (w->n == w->cap) {
				size_t ncap = w->cap ? w->cap * 2 : 8;
				iovm_vm_port *np = realloc(w->ports, ncap * sizeof(*np));

				if (!np)
					return -ENOMEM;
				w->ports = np;
				w->cap = ncap;
			}
			p = &w->ports[w->n++];
			memset(p, 0, sizeof(*p));
			snprintf(p->id, sizeof(p->id), "%s", qdev_id);
			p->bus = json_get_int(dev, "bus", -1);
			p->slot = json_get_int(dev, "slot", -1);
			p->function = json_get_int(dev, "function", -1);
			p->secondary = json_object_object_get_ex(br, "bus", &bus) ? json_get_int(bus, "secondary", 0) : 0;
			if (children && json_object_is_type(children, json_type_array)) {
				p->n_devices = (unsigned)json_object_array_length(children);
				if (p->n_devices > 0) {
					const char *cid = json_get_str(json_object_array_get_idx(children, 0), "qdev_id");

					snprintf(p->first_device, sizeof(p->first_device), "%s", cid ? cid : "");
				}
			}
		}
		if (children) {
			r = walk_devices(w, children, qdev_id && *qdev_id ? qdev_id : parent_port);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

static int walk_reply(struct walk *w, json_object *query_pci)
{
	size_t len;

	if (!json_object_is_type(query_pci, json_type_array))
		return -EBADMSG;
	len = json_object_array_length(query_pci);
	for (size_t i = 0; i < len; i++) {
		json_object *bus = json_object_array_get_idx(query_pci, i), *devices;
		int r;

		if (!json_object_object_get_ex(bus, "devices", &devices))
			return -EBADMSG;
		r = walk_devices(w, devices, NULL);
		if (r < 0)
			return r;
	}
	return 0;
}

int iovm_vm_ports_parse(json_object *query_pci, iovm_vm_port **ret, size_t *ret_n, iovm_error *err)
{
	struct walk w = {};
	int r;

	if (!ret || !ret_n)
		return iovm_error_set(err, -EINVAL, "query-pci: invalid argument");
	r = walk_reply(&w, query_pci);
	if (r < 0) {
		free(w.ports);
		return iovm_error_set(err, r, "query-pci: %s", r == -ENOMEM ? "out of memory" :
				      "reply does not have the shape of query-pci");
	}
	*ret = w.ports;
	*ret_n = w.n;
	return 0;
}

int iovm_vm_pci_find(json_object *query_pci, const char *devid, char *ret_port, size_t n)
{
	char port[IOVM_VM_ID_MAX];
	struct walk w = { .find = devid, .found_port = port, .found_n = sizeof(port) };
	int r;

	if (!devid || !*devid)
		return -EINVAL;
	r = walk_reply(&w, query_pci);
	if (r < 0)
		return r;
	if (!w.found)
		return -ENOENT;
	if (ret_port)
		snprintf(ret_port, n, "%s", port);
	return 0;
}

json_object *iovm_vm_device_add_args(const char *vf_addr, const char *devid, const char *port,
				     const char *failover_pair_id)
{
	json_object *a;

	if (!vf_addr || !*vf_addr || !devid || !*devid || !port || !*port ||
	    (failover_pair_id && !*failover_pair_id))
		return NULL;
	a = json_object_new_object();
	if (!a)
		return NULL;
	json_object_object_add(a, "driver", json_object_new_string("vfio-pci"));
	json_object_object_add(a, "host", json_object_new_string(vf_addr));
	json_object_object_add(a, "id", json_object_new_string(devid));
	json_object_object_add(a, "bus", json_object_new_string(port));
	if (failover_pair_id)
		json_object_object_add(a, "failover_pair_id", json_object_new_string(failover_pair_id));
	return a;
}

bool iovm_vm_is_device_deleted(const char *event, json_object *data, const char *devid)
{
	const char *path;

	if (!event || strcmp(event, "DEVICE_DELETED") || !devid)
		return false;
	/* The path is always there; device is absent for devices without id. */
	path = json_get_str(data, "path");
	return path && !strncmp(path, PERIPHERAL, strlen(PERIPHERAL)) &&
	       !strcmp(path + strlen(PERIPHERAL), devid);
}
