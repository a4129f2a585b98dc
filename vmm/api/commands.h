/* SPDX-License-Identifier: MIT */
/* Carrying out one checked control-socket request on a VM. */
#ifndef KVMINI_VMM_API_COMMANDS_H
#define KVMINI_VMM_API_COMMANDS_H

#include <jansson.h>

#include "kvmini.h"
#include "vmm/api/request.h"
#include "vmm/api/server.h"

struct api_exec {
	struct kvmini_vm *vm;
	const char *sock_path;
	/* Set by a successful shutdown: seconds until a hard stop, 0 for none. */
	bool shutdown_started;
	unsigned shutdown_timeout;
	/* migrate / migrate-cancel: the server runs migrations on a thread of its own. */
	struct api_server *server;
};

/* The reply to req (never NULL unless out of memory). */
json_t *api_execute(struct api_exec *x, const struct api_request *req);
/* The data of an event, for the event's JSON. */
json_t *api_event_data(struct kvmini_vm *vm, const struct kvmini_event *ev);
const char *api_event_name(enum kvmini_event_kind kind);
/* The return value of the stats command (vmm/api/stats.c). */
json_t *api_stats(struct kvmini_vm *vm);

#endif
