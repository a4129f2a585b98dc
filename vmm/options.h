/* SPDX-License-Identifier: MIT */
/*
 * Command-line options of `kvmini run`, parsed into struct kvmini_config.
 * Pure functions (apart from reading the host's RAM size), so unit tests can
 * feed them argv vectors; nothing here prints or exits.
 */
#ifndef KVMINI_VMM_OPTIONS_H
#define KVMINI_VMM_OPTIONS_H

#include <stdint.h>

#include "common/err.h"
#include "kvmini.h"

/*
 * Parses argv (argv[0] is "run") into cfg, which the caller has filled with
 * defaults; only the fields named by options are changed, and cfg is left
 * untouched on error or help. Returns 0, 1 when --help/-h was asked (nothing
 * else done), or -EINVAL with one line in e naming the bad option or value.
 * Reentrant: no getopt state. String options (kernel_path, cmdline, ...)
 * point into argv, which must outlive cfg; --disk and --net values are copied
 * into cfg->disks and cfg->nics (a value may hold a comma written as ",,", so
 * it is not a substring of argv).
 */
int options_parse_run(int argc, char **argv, struct kvmini_config *cfg, struct err *e);

/*
 * Parses a size: digits, then an optional K, M, G or T (either case),
 * optionally followed by "iB" or "B". A bare number means MiB. Returns 0 with
 * *bytes set, or -EINVAL for garbage, overflow or zero.
 */
int options_parse_size(const char *s, uint64_t *bytes);

/* Help text for `kvmini run --help`. */
const char *options_run_usage(void);
/* Help text for `kvmini --help`. */
const char *options_main_usage(void);

#endif
