# lib.sh - helpers the benchmark scripts share; source it once WORK (the
# script's temporary directory) is set. Every process added to PIDS is
# stopped, and WORK removed, when the script exits.
PIDS=()
cleanup() {
	local p
	for p in "${PIDS[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${PIDS[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_line FILE PATTERN SECONDS: wait until FILE has a line matching PATTERN.
wait_line() {
	local i
	for ((i = 0; i < $3 * 20; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "$(basename "$0"): timed out waiting for '$2' in $1:" >&2
	cat "$1" >&2 || true
	return 1
}

# field FILE KEY: a value from the RESULT line a load client wrote to FILE.
field() {
	sed -n "s/^RESULT.* $2=\([^ ]*\).*/\1/p" "$1" | head -n1
}

rss_kib() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
pass() { if [ "${1:-}" = 1 ]; then echo PASS; else echo MISS; fi; }
