/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The daemon's return values printed for people, one printer per command
 * (the command table in commands.c names them). */
#pragma once

#include <stdbool.h>
#include <json-c/json.h>

/* Pretty-printed JSON (--json). */
void print_json(json_object *v);
/* "key: value" for every member, nested objects inlined. */
void print_show(json_object *o);

void print_pf_list(json_object *ret);
void print_pf_show(json_object *ret);
void print_set_vfs(json_object *ret);
void print_vf_list(json_object *ret);
void print_vm_list(json_object *ret);
void print_attach(json_object *ret);
void print_detach(json_object *ret);
void print_migrate(json_object *ret);
void print_nothing(json_object *ret);

/* "top": a vf-list return, busiest VF first; one refresh of the screen
 * (tty: cleared first). */
void sort_by_throughput(json_object *arr);
void print_top(json_object *arr, double interval, bool tty);
