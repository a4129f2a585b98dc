#!/bin/sh
# Sourced by guest scripts (. /tests/tick_lib.sh) whose guests the host checks for continuity
# (pause, migration, restore): start_ticker prints a clock-driven KVMINI-TICK N every 0.5 s on the
# console in the background and leaves its pid in $ticker. Run alone it does nothing.
start_ticker() {
	(
		i=0
		while :; do
			i=$((i + 1))
			echo "KVMINI-TICK $i"
			sleep 0.5
		done
	) &
	# shellcheck disable=SC2034 # for the caller
	ticker=$!
}
