/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Lines from the ops thread to the main thread: replies, events to every
 * client, progress of the job being run (queue.h message kinds). */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "iovmd/ops.h"

void ops_post(ops *o, iovmd_msg_kind kind, uint64_t client, char *line)
{
	iovmd_msg *m = calloc(1, sizeof(*m));

	assert(kind == IOVMD_MSG_PROGRESS || kind == IOVMD_MSG_REPLY || kind == IOVMD_MSG_EVENT);
	if (!m || !line) {
		log_error(-ENOMEM, "cannot hand a line to the main thread: out of memory");
		free(m);
		free(line);
		return;
	}
	m->kind = kind;
	m->client = client;
	m->line = line;
	iovmd_queue_push(&o->d->msgs, m);
}

void ops_emit(ops *o, const char *event, json_object *data)
{
	ops_post(o, IOVMD_MSG_EVENT, 0, iovm_api_format_event(event, data));
	json_object_put(data);
}

void ops_progress(ops *o, const char *step, int done, int total)
{
	json_object *data;

	if (!o->job || !o->job->client)
		return;
	data = json_object_new_object();
	json_object_object_add(data, "command",
			       json_object_new_string(iovm_api_cmd_to_string(o->job->req.cmd)));
	json_object_object_add(data, "id", json_object_get(o->job->req.id));
	json_object_object_add(data, "step", json_object_new_string(step));
	json_object_object_add(data, "done", json_object_new_int(done));
	json_object_object_add(data, "total", json_object_new_int(total));
	ops_post(o, IOVMD_MSG_PROGRESS, o->job->client, iovm_api_format_event("PROGRESS", data));
	json_object_put(data);
}

json_object *obj_s(json_object *j, const char *k, const char *v)
{
	json_object_object_add(j, k, json_object_new_string(v));
	return j;
}

json_object *vm_vf_json(const char *vm, const char *vf)
{
	return obj_s(obj_s(json_object_new_object(), "vm", vm), "vf", vf);
}
