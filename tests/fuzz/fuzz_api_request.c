/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: control-socket request lines (vmm/api/request.c). Every
 * input either parses into a known command or yields exactly one error reply
 * that serialises to one line; nothing leaks (ASan checks).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/api/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > API_MAX_LINE)
		return 0;
	struct api_request req;
	json_t *reply;
	if (api_request_parse((const char *)data, size, &req, &reply) == 0) {
		if (req.cmd >= API_CMD_COUNT || reply)
			abort();
		reply = api_reply_ok(req.id, NULL);
		api_request_free(&req);
	} else if (!reply || !json_object_get(reply, "error")) {
		abort();
	}
	size_t len;
	char *line = api_line(reply, &len);
	if (!line || line[len - 1] != '\n' || memchr(line, '\n', len - 1))
		abort();
	free(line);
	json_decref(reply);
	return 0;
}
