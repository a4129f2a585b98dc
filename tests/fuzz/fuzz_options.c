/* SPDX-License-Identifier: MIT */
/* libFuzzer target: `kvmini run` option parsing, argv made from NUL-separated input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kvmini.h"
#include "vmm/options.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > 4096)
		return 0;
	char *buf = malloc(size + 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	char *argv[66];
	int argc = 0;
	argv[argc++] = "run";
	for (char *p = buf; p < buf + size + 1 && argc < 65; p += strlen(p) + 1)
		argv[argc++] = p;
	argv[argc] = NULL;
	struct kvmini_config cfg;
	kvmini_config_init(&cfg);
	struct err e = {{0}};
	options_parse_run(argc, argv, &cfg, &e);
	free(buf);
	return 0;
}
