/* SPDX-License-Identifier: MIT */
/*
 * Control-socket requests: one JSON object per line, checked here before
 * anything acts on it, and the replies and events written back (docs/API.md
 * has the schema). Pure functions over jansson values: unit tests and the
 * fuzzer drive them without a VM.
 */
#ifndef KVMINI_VMM_API_REQUEST_H
#define KVMINI_VMM_API_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

/* Longest request line, newline excluded; a longer one is refused and its client dropped. */
#define API_MAX_LINE (64 * 1024)

enum api_cmd {
	API_CMD_INFO,
	API_CMD_STATS,
	API_CMD_PAUSE,
	API_CMD_RESUME,
	API_CMD_SHUTDOWN,
	API_CMD_STOP,
	API_CMD_RESET,
	API_CMD_SAVE,
	API_CMD_MIGRATE,
	API_CMD_MIGRATE_CANCEL,
	API_CMD_COUNT,
};

struct api_request {
	enum api_cmd cmd;
	json_t *id; /* echoed in the reply; NULL when the request had none (a new reference) */
	/* Arguments, validated: */
	long long shutdown_timeout; /* SHUTDOWN: seconds, -1 when not given */
	char path[4096];	    /* SAVE: the file ("" until given; required) */
	char uri[256];		    /* MIGRATE: tcp:HOST:PORT (required) */
	long long max_downtime_ms;  /* MIGRATE: -1 when not given */
	long long bandwidth;	    /* MIGRATE: bytes/s, -1 when not given */
	long long mig_timeout;	    /* MIGRATE: seconds, -1 when not given */
	bool auto_converge;	    /* MIGRATE: throttle the vCPUs when pre-copy does not converge */
};

/*
 * Parses one line (without its newline). Returns 0 with req filled (release
 * with api_request_free), or -1 with *reply set to the error reply to send.
 */
int api_request_parse(const char *line, size_t len, struct api_request *req, json_t **reply);
void api_request_free(struct api_request *req);
const char *api_cmd_name(enum api_cmd cmd);

/* {"id": id, "return": result}; steals result (NULL: {}), borrows id (may be NULL). */
json_t *api_reply_ok(json_t *id, json_t *result);
/* {"id": id, "error": {"class": cls, "desc": desc}}; borrows id. */
json_t *api_reply_error(json_t *id, const char *cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* {"event": name, "timestamp": {"seconds", "microseconds"}, "data": data}; steals data (NULL: {}). */
json_t *api_event(const char *name, json_t *data);
/* One line: compact JSON and "\n", malloc'd; NULL when out of memory. */
char *api_line(const json_t *v, size_t *len);

#endif
