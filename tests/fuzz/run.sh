#!/bin/sh
# run.sh - build the fuzz targets and run each for a while.
#
#   tests/fuzz/run.sh [BUILD_DIR [SECONDS [TARGET...]]]
#
# BUILD_DIR defaults to build-fuzz, SECONDS to 10; with no TARGET every
# target runs. FUZZ_JOBS=N runs N targets at a time (default 1). SECONDS=0
# only builds. Exits 1 when a target fails to build or any run ends with a
# crash, a leak, a sanitizer report or a failed check. Crash inputs go to
# BUILD_DIR/artifacts/; new corpus entries to BUILD_DIR/corpus/<target>/
# (the committed seeds under tests/fuzz/corpus/ are only read).
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
build=${1:-build-fuzz}
secs=${2:-10}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] && shift
targets="$*"
[ -n "$targets" ] || targets="fuzz_sse fuzz_keys fuzz_csrf fuzz_form fuzz_money fuzz_tmpl fuzz_ledger fuzz_gateway_json"
jobs=${FUZZ_JOBS:-1}
cc=${CC:-clang}

case $build in /*) ;; *) build=$(pwd)/$build ;; esac
mkdir -p "$build/obj" "$build/generated" "$build/artifacts" "$build/logs" || exit 1

san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
cflags="-std=gnu17 -g -O1 -D_GNU_SOURCE -DTG_VERSION=\"fuzz\" -DTG_ASSET_DIR=\".\" -I$root/src $(pkg-config --cflags libpq)"
libs="-lsqlite3 -lcjson -lsodium -lcurl -lssl -lcrypto -lpq -lcivetweb -lpthread -lm"

# --- the embedded migrations, as CMake generates them
migfiles=$(ls "$root"/migrations/*.sql | tr '\n' '|' | sed 's/|$//')
mig="$build/generated/migrations_gen.c"
cmake -DOUT="$mig" -DSYMBOL=tg_migrations "-DFILES=$migfiles" -P "$root/cmake/embed.cmake" ||
	{ echo "run.sh: cannot generate the migrations file" >&2; exit 1; }
pgmigfiles=$(ls "$root"/migrations/pg/*.sql | tr '\n' '|' | sed 's/|$//')
pgmig="$build/generated/pg_migrations_gen.c"
cmake -DOUT="$pgmig" -DSYMBOL=tg_pg_migrations "-DFILES=$pgmigfiles" -P "$root/cmake/embed.cmake" ||
	{ echo "run.sh: cannot generate the PostgreSQL migrations file" >&2; exit 1; }

# --- the library: every src/**/*.c except main.c, built once
objs=""
for src in $(find "$root/src" -name '*.c' ! -path "$root/src/main.c" | sort) "$mig" "$pgmig"; do
	rel=${src#"$root"/}
	obj="$build/obj/$(echo "$rel" | tr '/' '_').o"
	if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] ||
		[ -n "$(find "$root/src" -name '*.h' -newer "$obj" | head -1)" ]; then
		# shellcheck disable=SC2086
		$cc $cflags $san -fsanitize=fuzzer-no-link -c "$src" -o "$obj" ||
			{ echo "run.sh: cannot compile $rel" >&2; exit 1; }
	fi
	objs="$objs $obj"
done

status=0
for t in $targets; do
	link=$objs
	# shellcheck disable=SC2086
	$cc $cflags $san -fsanitize=fuzzer -Wall -Wextra -Wno-unused-function \
		"$here/$t.c" $link $libs -o "$build/$t" ||
		{ echo "$t: build failed"; status=1; }
done
[ "$secs" -gt 0 ] 2>/dev/null || exit $status

# Per-target options: short inputs where one run is expensive.
opts_for() {
	case $1 in
	fuzz_ledger) echo "-max_len=192 -timeout=30" ;;
	fuzz_tmpl) echo "-max_len=2048 -timeout=30" ;;
	fuzz_gateway_json) echo "-max_len=8192 -timeout=30" ;;
	*) echo "-max_len=16384 -timeout=30" ;;
	esac
}

run_one() {
	t=$1
	log="$build/logs/$t.log"
	[ -x "$build/$t" ] || { echo "$t: not built, FAILED"; return 1; }
	mkdir -p "$build/corpus/$t" "$here/corpus/$t"
	# A fresh database per input allocates a lot: a small ASan quarantine
	# keeps fuzz_ledger from spending its time in page faults.
	asan=${ASAN_OPTIONS:-}
	[ "$t" = fuzz_ledger ] && asan="quarantine_size_mb=16:max_malloc_fill_size=0${asan:+:$asan}"
	# shellcheck disable=SC2046
	ASAN_OPTIONS=$asan "$build/$t" -max_total_time="$secs" -print_final_stats=1 \
		-artifact_prefix="$build/artifacts/$t-" $(opts_for "$t") \
		"$build/corpus/$t" "$here/corpus/$t" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	took=$(sed -n 's/.*Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
	if [ $rc -eq 0 ]; then
		echo "$t: ${runs:-?} runs in ${took:-$secs} s, ok"
		return 0
	fi
	what=$(grep -m1 -E 'ERROR: (AddressSanitizer|LeakSanitizer|libFuzzer)|runtime error|check failed' "$log")
	echo "$t: ${runs:-?} runs, FAILED (exit $rc): ${what:-see $log}"
	echo "  log: $log; input: $(ls -t "$build"/artifacts/"$t"-* 2>/dev/null | head -1)"
	return 1
}

set -- $targets
while [ $# -gt 0 ]; do
	pids=""
	i=0
	while [ $# -gt 0 ] && [ $i -lt "$jobs" ]; do
		run_one "$1" >"$build/logs/$1.summary" &
		pids="$pids $!:$1"
		shift
		i=$((i + 1))
	done
	for pt in $pids; do
		wait "${pt%%:*}" || status=1
		cat "$build/logs/${pt#*:}.summary"
	done
done
exit $status
