/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "iovmd/iovmd.h"

/* server.c: runs the sd-event loop until SIGTERM/SIGINT. */
int iovmd_server_run(iovmd *d);

/* read.c: answers a read command from the snapshot (main thread); NULL and
 * err on failure. */
json_object *iovmd_read_command(iovmd *d, const iovm_api_request *r, iovm_error *err);
/* The status reply's "return" value as text, json-c's bytes without building
 * the object: like snprintf, the length it needs (a negative errno if there
 * is no snapshot or no memory). */
int iovmd_status_text(iovmd *d, char *buf, size_t n);
/* Finds a VF in a snapshot by PCI address or "PF/INDEX" (borrowed). */
json_object *iovmd_snapshot_find_vf(json_object *snap, const char *vf);
json_object *iovmd_snapshot_find_pf(json_object *snap, const char *pf);
