/* SPDX-License-Identifier: MIT */
/*
 * What each control-socket command does, through the public libkvmini API
 * only (the socket is one more client of the library). Replies follow
 * docs/API.md.
 */
#include "vmm/api/commands.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char *state_name(enum kvmini_state s)
{
	switch (s) {
	case KVMINI_STATE_CREATED:
		return "created";
	case KVMINI_STATE_RUNNING:
		return "running";
	case KVMINI_STATE_PAUSED:
		return "paused";
	case KVMINI_STATE_STOPPED:
		return "stopped";
	}
	return "?";
}

static const char *exit_name(enum kvmini_exit x)
{
	switch (x) {
	case KVMINI_EXIT_NONE:
		return "none";
	case KVMINI_EXIT_POWEROFF:
		return "poweroff";
	case KVMINI_EXIT_REBOOT:
		return "reboot";
	case KVMINI_EXIT_STOPPED:
		return "stopped";
	case KVMINI_EXIT_ERROR:
		return "error";
	case KVMINI_EXIT_PANIC:
		return "panic";
	case KVMINI_EXIT_GUEST_STATUS:
		return "guest-exit";
	}
	return "?";
}

const char *api_event_name(enum kvmini_event_kind kind)
{
	switch (kind) {
	case KVMINI_EVENT_PAUSED:
		return "paused";
	case KVMINI_EVENT_RESUMED:
		return "resumed";
	case KVMINI_EVENT_RESET:
		return "reset";
	case KVMINI_EVENT_SHUTDOWN_REQUESTED:
		return "shutdown-requested";
	case KVMINI_EVENT_STOPPED:
		return "stopped";
	}
	return "?";
}

json_t *api_event_data(struct kvmini_vm *vm, const struct kvmini_event *ev)
{
	json_t *d = json_object();
	if (ev->kind == KVMINI_EVENT_RESET)
		json_object_set_new(d, "by", json_string(ev->by_host ? "host" : "guest"));
	if (ev->kind == KVMINI_EVENT_STOPPED) {
		json_object_set_new(d, "reason", json_string(exit_name(ev->exit)));
		if (ev->exit == KVMINI_EXIT_GUEST_STATUS)
			json_object_set_new(d, "status", json_integer(ev->status));
		if (ev->exit == KVMINI_EXIT_ERROR)
			json_object_set_new(d, "error", json_string(kvmini_vm_error(vm)));
	}
	return d;
}

static const char *mac_str(const uint8_t m[6], char buf[18])
{
	snprintf(buf, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
	return buf;
}

static json_t *info(struct api_exec *x)
{
	struct kvmini_vm *vm = x->vm;
	const struct kvmini_config *c = kvmini_vm_config(vm);
	json_t *disks = json_array(), *nics = json_array();
	for (unsigned i = 0; i < c->ndisks; i++) {
		struct kvmini_disk_info di;
		kvmini_vm_disk_info(vm, i, &di);
		json_array_append_new(disks, json_pack("{s:s, s:s, s:s, s:I, s:b, s:s, s:s}", "name", di.name,
						       "path", c->disks[i].path, "format", di.format, "size",
						       (json_int_t)di.size, "readonly", c->disks[i].readonly,
						       "cache", c->disks[i].cache_none ? "none" : "writeback",
						       "serial", c->disks[i].serial));
	}
	static const char *const kinds[] = {
	    [KVMINI_NET_TAP] = "tap", [KVMINI_NET_MACVTAP] = "macvtap", [KVMINI_NET_FD] = "fd"};
	for (unsigned i = 0; i < c->nnics; i++) {
		struct kvmini_net_info ni;
		kvmini_vm_net_info(vm, i, &ni);
		struct kvmini_net_stats st;
		kvmini_vm_net_stats(vm, i, &st);
		char mac[18];
		json_t *n = json_pack("{s:s, s:s, s:s, s:s, s:i, s:b}", "name", ni.name, "kind",
				      kinds[c->nics[i].kind], "interface", ni.ifname, "mac",
				      mac_str(ni.mac, mac), "queues", (int)ni.queues, "link_up", st.link_up);
		if (c->nics[i].kind == KVMINI_NET_MACVTAP)
			json_object_set_new(n, "parent", json_string(c->nics[i].ifname));
		if (c->nics[i].bridge[0])
			json_object_set_new(n, "bridge", json_string(c->nics[i].bridge));
		json_array_append_new(nics, n);
	}
	json_t *mem = json_pack("{s:I, s:b, s:b, s:b}", "bytes", (json_int_t)c->mem_bytes, "hugepages",
				c->mem_hugepages, "merge", c->mem_merge, "shared", c->mem_shared);
	return json_pack("{s:s, s:I, s:I, s:I, s:i, s:o, s:s, s:s?, s:s, s:o, s:o, s:s?, s:i, s:b}", "state",
			 state_name(kvmini_vm_state(vm)), "pid", (json_int_t)getpid(), "uptime_ms",
			 (json_int_t)kvmini_vm_uptime_ms(vm), "setup_us", (json_int_t)kvmini_vm_setup_us(vm),
			 "vcpus", (int)c->cpus, "memory", mem, "kernel", c->kernel_path, "initrd",
			 c->initrd_path, "cmdline", kvmini_vm_cmdline(vm), "disks", disks, "nics", nics,
			 "api_socket", x->sock_path, "exit_port", KVMINI_EXIT_PORT, "pvpanic", 1);
}

static json_t *state_error(struct api_exec *x, const struct api_request *req, int r, const char *what)
{
	const char *st = "";
	if (r == -EALREADY)
		st = kvmini_vm_state(x->vm) == KVMINI_STATE_PAUSED ? "the VM is paused already"
								   : "the VM is not paused";
	else
		st = "the VM is not running";
	return api_reply_error(req->id, "InvalidState", "cannot %s: %s", what, st);
}

json_t *api_execute(struct api_exec *x, const struct api_request *req)
{
	struct kvmini_vm *vm = x->vm;
	int r;
	switch (req->cmd) {
	case API_CMD_INFO:
		return api_reply_ok(req->id, info(x));
	case API_CMD_STATS:
		return api_reply_ok(req->id, api_stats(vm));
	case API_CMD_PAUSE:
		if ((r = kvmini_vm_pause(vm)))
			return state_error(x, req, r, "pause");
		return api_reply_ok(req->id, NULL);
	case API_CMD_RESUME:
		if (kvmini_vm_state(vm) == KVMINI_STATE_CREATED)
			return api_reply_error(req->id, "InvalidState",
					       "cannot resume: the VM has not started");
		if ((r = kvmini_vm_resume(vm)))
			return state_error(x, req, r, "resume");
		return api_reply_ok(req->id, NULL);
	case API_CMD_SHUTDOWN: {
		if (kvmini_vm_state(vm) != KVMINI_STATE_RUNNING && kvmini_vm_state(vm) != KVMINI_STATE_PAUSED)
			return api_reply_error(req->id, "InvalidState",
					       "cannot shut down: the VM is not running");
		if (kvmini_vm_shutdown(vm))
			return state_error(x, req, -EPIPE, "shut down");
		unsigned t = req->shutdown_timeout >= 0 ? (unsigned)req->shutdown_timeout
							: kvmini_vm_config(vm)->shutdown_timeout_s;
		x->shutdown_started = true;
		x->shutdown_timeout = t;
		return api_reply_ok(req->id, json_pack("{s:i}", "timeout", (int)t));
	}
	case API_CMD_STOP:
		if (kvmini_vm_state(vm) == KVMINI_STATE_STOPPED)
			return api_reply_error(req->id, "InvalidState",
					       "cannot stop: the VM has stopped already");
		kvmini_vm_stop(vm);
		return api_reply_ok(req->id, NULL);
	case API_CMD_RESET:
		if ((r = kvmini_vm_reset(vm)))
			return state_error(x, req, r, "reset");
		return api_reply_ok(req->id, NULL);
	case API_CMD_SAVE: {
		char err[512];
		if ((r = kvmini_vm_save(vm, req->path, err, sizeof(err))))
			return api_reply_error(req->id, r == -EPIPE ? "InvalidState" : "OperationFailed",
					       "cannot save: %s", err);
		return api_reply_ok(req->id, json_pack("{s:s}", "path", req->path));
	}
	case API_CMD_MIGRATE: {
		char why[256];
		if (kvmini_vm_state(vm) != KVMINI_STATE_RUNNING && kvmini_vm_state(vm) != KVMINI_STATE_PAUSED)
			return api_reply_error(req->id, "InvalidState",
					       "cannot migrate: the VM is not running");
		if ((r = api_server_migrate(x->server, req, why, sizeof(why))))
			return api_reply_error(req->id, "InvalidState", "cannot migrate: %s", why);
		return api_reply_ok(req->id, json_pack("{s:s}", "uri", req->uri));
	}
	case API_CMD_MIGRATE_CANCEL:
		if (api_server_migrate_cancel(x->server))
			return api_reply_error(req->id, "InvalidState", "no migration is running");
		return api_reply_ok(req->id, NULL);
	case API_CMD_COUNT:
		break;
	}
	return api_reply_error(req->id, "InternalError", "unhandled command");
}
