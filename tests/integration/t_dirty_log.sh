#!/bin/bash
# Dirty-page tracking (vmm/migration/dirty.c) on real KVM: a long-mode guest writes known pages on both
# sides of the MMIO hole and each fetch must give exactly those, merged with device-marked ones; a fetch
# without running gives none; stop and restart (itests/dirty_log_check, built by make).
# timeout: 120
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bin=$KVMINI_BUILD/itests/dirty_log_check
[ -x "$bin" ] || { kv_fail "$bin is missing (make builds it from tests/integration/dirty_log_check.c)"; kv_finish; }
kv_cmd dirtylog 90 "$bin"
sed 's/^/  | /' "$T/dirtylog.out" "$T/dirtylog.err"
check_rc dirtylog 0
check_out dirtylog DIRTY-LOG-OK
check_no_out dirtylog "FAIL:"
kv_finish
