#!/bin/bash
# The smallest guest: a few bytes of real-mode code (itests/realmode_smoke, built by make) that
# print through port 0x3f8 and halt.
# timeout: 60
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$(dirname "$0")/lib.sh"

bin=$KVMINI_BUILD/itests/realmode_smoke
[ -x "$bin" ] || { kv_fail "$bin is missing (make builds it from tests/integration/realmode_smoke.c)"; kv_finish; }
kv_cmd realmode 30 "$bin"
check_rc realmode 0
check_out realmode "Hello from real mode"
kv_finish
