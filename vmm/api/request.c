/* SPDX-License-Identifier: MIT */
#include "vmm/api/request.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const names[API_CMD_COUNT] = {
    [API_CMD_INFO] = "info",	     [API_CMD_STATS] = "stats",
    [API_CMD_PAUSE] = "pause",	     [API_CMD_RESUME] = "resume",
    [API_CMD_SHUTDOWN] = "shutdown", [API_CMD_STOP] = "stop",
    [API_CMD_RESET] = "reset",	     [API_CMD_SAVE] = "save",
    [API_CMD_MIGRATE] = "migrate",   [API_CMD_MIGRATE_CANCEL] = "migrate-cancel",
};

const char *api_cmd_name(enum api_cmd cmd)
{
	return cmd < API_CMD_COUNT ? names[cmd] : "?";
}

json_t *api_reply_ok(json_t *id, json_t *result)
{
	json_t *r = json_object();
	if (id)
		json_object_set(r, "id", id);
	json_object_set_new(r, "return", result ? result : json_object());
	return r;
}

json_t *api_reply_error(json_t *id, const char *cls, const char *fmt, ...)
{
	char desc[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	/*
	 * The message may quote the request (jansson's error text, a command
	 * name cut at 64 bytes): keep it printable ASCII, or it would not be
	 * valid UTF-8 and the reply could not be encoded.
	 */
	for (char *p = desc; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7e)
			*p = '?';
	json_t *r = json_object();
	if (id)
		json_object_set(r, "id", id);
	json_object_set_new(r, "error", json_pack("{s:s, s:s}", "class", cls, "desc", desc));
	return r;
}

json_t *api_event(const char *name, json_t *data)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return json_pack("{s:s, s:{s:I, s:I}, s:o}", "event", name, "timestamp", "seconds",
			 (json_int_t)ts.tv_sec, "microseconds", (json_int_t)(ts.tv_nsec / 1000), "data",
			 data ? data : json_object());
}

char *api_line(const json_t *v, size_t *len)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *line = realloc(s, n + 2);
	if (!line) {
		free(s);
		return NULL;
	}
	line[n] = '\n';
	line[n + 1] = '\0';
	*len = n + 1;
	return line;
}

void api_request_free(struct api_request *req)
{
	json_decref(req->id);
	req->id = NULL;
}

/* Checks the arguments object of cmd; 0, or -1 with *reply set. */
static int parse_args(struct api_request *req, json_t *args, json_t **reply)
{
	const char *key;
	json_t *v;
	json_object_foreach(args, key, v)
	{
		if (req->cmd == API_CMD_SHUTDOWN && !strcmp(key, "timeout")) {
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) > 3600) {
				*reply = api_reply_error(req->id, "InvalidArgument",
							 "shutdown: 'timeout' must be an integer number of "
							 "seconds from 0 to 3600");
				return -1;
			}
			req->shutdown_timeout = json_integer_value(v);
			continue;
		}
		if (req->cmd == API_CMD_SAVE && !strcmp(key, "path")) {
			const char *p = json_string_value(v);
			if (!p || !*p || strlen(p) >= sizeof(req->path)) {
				*reply = api_reply_error(
				    req->id, "InvalidArgument",
				    "save: 'path' must be a non-empty string shorter than %zu bytes",
				    sizeof(req->path));
				return -1;
			}
			memcpy(req->path, p, strlen(p) + 1);
			continue;
		}
		if (req->cmd == API_CMD_MIGRATE && !strcmp(key, "uri")) {
			const char *u = json_string_value(v);
			if (!u || strncmp(u, "tcp:", 4) || strlen(u) >= sizeof(req->uri)) {
				*reply = api_reply_error(req->id, "InvalidArgument",
							 "migrate: 'uri' must be a string tcp:HOST:PORT");
				return -1;
			}
			memcpy(req->uri, u, strlen(u) + 1);
			continue;
		}
		if (req->cmd == API_CMD_MIGRATE && !strcmp(key, "auto_converge")) {
			if (!json_is_boolean(v)) {
				*reply = api_reply_error(req->id, "InvalidArgument",
							 "migrate: 'auto_converge' must be true or false");
				return -1;
			}
			req->auto_converge = json_is_true(v);
			continue;
		}
		long long *num = NULL, lo = 0, hi = 0;
		if (req->cmd == API_CMD_MIGRATE && !strcmp(key, "max_downtime_ms"))
			num = &req->max_downtime_ms, lo = 1, hi = 3600000;
		else if (req->cmd == API_CMD_MIGRATE && !strcmp(key, "bandwidth"))
			num = &req->bandwidth, lo = 0, hi = 1LL << 50;
		else if (req->cmd == API_CMD_MIGRATE && !strcmp(key, "timeout"))
			num = &req->mig_timeout, lo = 1, hi = 86400;
		if (num) {
			if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi) {
				*reply = api_reply_error(req->id, "InvalidArgument",
							 "migrate: '%s' must be an integer from %lld to %lld",
							 key, lo, hi);
				return -1;
			}
			*num = json_integer_value(v);
			continue;
		}
		*reply = api_reply_error(req->id, "InvalidArgument", "%s: unknown argument '%.64s'",
					 names[req->cmd], key);
		return -1;
	}
	return 0;
}

int api_request_parse(const char *line, size_t len, struct api_request *req, json_t **reply)
{
	memset(req, 0, sizeof(*req));
	req->shutdown_timeout = -1;
	req->max_downtime_ms = req->bandwidth = req->mig_timeout = -1;
	*reply = NULL;
	json_error_t jerr;
	/* Without JSON_DISABLE_EOF_CHECK: anything after the object is an error too. */
	json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!root) {
		*reply = api_reply_error(NULL, "ParseError", "malformed JSON at column %d: %s", jerr.column,
					 jerr.text);
		return -1;
	}
	int r = -1;
	if (!json_is_object(root)) {
		*reply = api_reply_error(NULL, "InvalidRequest", "a request is a JSON object");
		goto out;
	}
	json_t *id = json_object_get(root, "id");
	if (id)
		req->id = json_incref(id);
	const char *key;
	json_t *v;
	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "cmd") && strcmp(key, "args") && strcmp(key, "id")) {
			*reply = api_reply_error(req->id, "InvalidRequest",
						 "unknown key '%.64s' (a request has cmd, args and id)", key);
			goto out;
		}
	}
	json_t *cmd = json_object_get(root, "cmd");
	if (!json_is_string(cmd)) {
		*reply = api_reply_error(req->id, "InvalidRequest",
					 cmd ? "'cmd' must be a string" : "no 'cmd' in the request");
		goto out;
	}
	const char *name = json_string_value(cmd);
	req->cmd = API_CMD_COUNT;
	for (unsigned i = 0; i < API_CMD_COUNT; i++)
		if (!strcmp(name, names[i]))
			req->cmd = (enum api_cmd)i;
	if (req->cmd == API_CMD_COUNT) {
		*reply = api_reply_error(req->id, "CommandNotFound", "unknown command '%.64s'", name);
		goto out;
	}
	json_t *args = json_object_get(root, "args");
	if (args && !json_is_object(args)) {
		*reply = api_reply_error(req->id, "InvalidArgument", "'args' must be an object");
		goto out;
	}
	if (args && parse_args(req, args, reply))
		goto out;
	if (req->cmd == API_CMD_MIGRATE && !req->uri[0]) {
		*reply =
		    api_reply_error(req->id, "InvalidArgument", "migrate: the 'uri' argument is required");
		goto out;
	}
	if (req->cmd == API_CMD_SAVE && !req->path[0]) {
		*reply = api_reply_error(req->id, "InvalidArgument", "save: the 'path' argument is required");
		goto out;
	}
	r = 0;
out:
	json_decref(root);
	if (r)
		api_request_free(req);
	return r;
}
