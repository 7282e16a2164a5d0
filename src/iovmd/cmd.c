/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One job of the ops thread: the command run, its reply, then the
 * snapshot that shows its change (docs/iovmd.md, on why in that order). */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "iovmd/ops.h"
#include "shared/util.h"

typedef json_object *(*command_fn)(ops *o, const iovm_api_request *q, iovm_error *err);

static const struct command {
	command_fn run;
	const char *op;               /* its journal's name for the crash points */
	bool vms_only;                /* changes the VM list and nothing else */
} commands[] = {
	[IOVM_API_PF_SET_VFS] = { .run = cmd_set_vfs, .op = "set-vfs" },
	[IOVM_API_VF_SET]     = { .run = cmd_vf_set },
	[IOVM_API_VM_ADD]     = { .run = cmd_vm_add, .vms_only = true },
	[IOVM_API_VM_REMOVE]  = { .run = cmd_vm_remove, .vms_only = true },
	[IOVM_API_ATTACH]     = { .run = cmd_attach },
	[IOVM_API_DETACH]     = { .run = cmd_detach },
	[IOVM_API_MIGRATE_PREPARE] = { .run = cmd_migrate_prepare, .op = "migrate-out" },
	[IOVM_API_MIGRATE_ABORT]   = { .run = cmd_migrate_abort },
};

static const struct command *command_of(iovm_api_cmd cmd)
{
	if ((size_t)cmd >= ELEMENTSOF(commands) || !commands[cmd].run)
		return NULL;
	return &commands[cmd];
}

/* The reply first, then what is only needed before the next command: the
 * views derived again (a decision the command did not record is given
 * back to the policy), and the snapshot (which reads the whole inventory).
 * The main thread holds back reads until that snapshot is in, so a client
 * reading right after the reply still sees the change. The snapshot's
 * message is allocated before the reply goes, so that the main thread is
 * sure to get one. */
static void reply_then_publish(ops *o, const iovmd_job *j, char *line, bool vms_only)
{
	iovmd_msg *snap = calloc(1, sizeof(*snap));
	iovmd_msg *reply = calloc(1, sizeof(*reply));
	const char *name = iovm_api_cmd_to_string(j->req.cmd);

	if (snap && reply && line) {
		*reply = (iovmd_msg){ .kind = IOVMD_MSG_REPLY, .client = j->client, .line = line,
				      .snapshot_follows = true };
		iovmd_queue_push(&o->d->msgs, reply);
		log_debug("%s: replied; publishing", name);
	} else {
		free(reply);
		ops_post(o, IOVMD_MSG_REPLY, j->client, line);
	}
	vms_record(o, j->req.vm);
	views_sync(o, true);
	if (vms_only) {
		snapshot_publish_vms(o, snap);
	} else {
		/* What the command did to the host is read now, not when its
		 * uevents arrive: the reads held back behind the reply must
		 * see it. */
		kernel_invalidate(o);
		snapshot_publish(o, snap);
	}
	log_debug("%s: published", name);
}

void ops_run_job(ops *o, const iovmd_job *j)
{
	const struct command *c = command_of(j->req.cmd);
	const char *name = iovm_api_cmd_to_string(j->req.cmd);
	iovm_error err = {};
	json_object *ret = NULL;
	char *line;

	assert(o && j && j->client);
	o->job = j;
	o->intent = 0;
	o->op = c && c->op ? c->op : "";
	log_debug("running %s", name);
	if (c) {
		/* The command starts from who holds what now. */
		views_sync(o, false);
		ret = c->run(o, &j->req, &err);
	} else
		iovm_error_set(&err, -EINVAL, "%s: not an operation", name);
	if (!ret && !err.code)
		iovm_error_set(&err, -EIO, "%s failed", name);
	if (!ret)
		log_error(err.code, "%s: %s", name, err.msg);
	line = ret ? iovm_api_format_return(j->req.id, ret) : iovm_api_format_error(j->req.id, err.code, err.msg);
	reply_then_publish(o, j, line, c && c->vms_only);
	json_object_put(ret);
	o->job = NULL;
	o->intent = 0;
}
