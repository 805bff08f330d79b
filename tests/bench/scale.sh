#!/usr/bin/env bash
# scale.sh BUILD_DIR - Tollgate on one shared PostgreSQL: what the shared
# database adds to a call at concurrency 1 (against the embedded SQLite), and
# the throughput of 1 and of 3 gateway instances against the same database.
#
# Starts a throwaway PostgreSQL (scripts/pg-throwaway.sh, on a Unix socket),
# the fast fake provider, one SQLite gateway and three PostgreSQL gateways
# sharing one secret file. Prints a Markdown table and writes it to
# BUILD_DIR/bench-scale.md. A missed target is reported, never fatal.
#
#   BENCH_N1 (3000)  requests per side at concurrency 1
#   BENCH_C (32)     total concurrency of the throughput runs
#   BENCH_SECS (10)  seconds per throughput run
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TG=$BUILD/tollgate
FAKE=$BUILD/fake_upstream
BENCH=$BUILD/bench
PGT=$ROOT/scripts/pg-throwaway.sh
N1=${BENCH_N1:-3000}
C=${BENCH_C:-32}
SECS=${BENCH_SECS:-10}

for bin in "$TG" "$FAKE"; do
	[ -x "$bin" ] || { echo "scale.sh: $bin is missing; make bench builds it" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
cc -O2 -Wall -Wextra -o "$BENCH" "$ROOT/tests/bench/bench.c" -lcurl -lpthread -lm

# Short: the PostgreSQL socket lives in it.
WORK=$(mktemp -d /tmp/tgsc.XXXXXX)
chmod 755 "$WORK" # PostgreSQL runs as its own user when we are root
. "$ROOT/tests/bench/lib.sh"
trap '"$PGT" destroy "$WORK/pg" >/dev/null 2>&1 || true; cleanup' EXIT

echo "== starting PostgreSQL, the fake provider and the gateways"
URL=$("$PGT" start "$WORK/pg")
"$FAKE" --listen 127.0.0.1:0 --latency-ms 0 --threads 512 >"$WORK/fake.log" 2>&1 &
PIDS+=($!)
wait_line "$WORK/fake.log" 'listening on' 10
FAST_PORT=$(sed -n 's/.*listening on [0-9.]*:\([0-9][0-9]*\).*/\1/p' "$WORK/fake.log" | head -n1)

cat >"$WORK/models.json" <<EOF
{"providers":[{"name":"fake","kind":"openai","base_url":"http://127.0.0.1:$FAST_PORT/v1","api_key":"sk-x","timeout_s":60}],
 "models":[{"name":"bench-chat","provider":"fake","upstream_model":"m","input_per_mtok":"0.15",
   "cached_input_per_mtok":"0.075","output_per_mtok":"0.60","max_output_tokens":4096,"context_window":128000}]}
EOF
# setup DATA_DIR [URL]: an org with credits, the model and a key (printed).
setup() {
	local dir=$1
	TOLLGATE_DATABASE=${2:-} "$TG" org add Bench --data-dir "$dir" --log-level warn >/dev/null
	TOLLGATE_DATABASE=${2:-} "$TG" credits grant --org Bench 1000000 --memo bench \
		--data-dir "$dir" --log-level warn >/dev/null
	TOLLGATE_DATABASE=${2:-} "$TG" models import "$WORK/models.json" --data-dir "$dir" \
		--log-level warn >/dev/null
	TOLLGATE_DATABASE=${2:-} "$TG" keys create --org Bench --name bench --data-dir "$dir" \
		--log-level warn 2>/dev/null
}
# gateway NAME DATA_DIR [URL]: start one; its port lands in $PORT_OF.
gateway() {
	TOLLGATE_DATABASE=${3:-} "$TG" serve --listen 127.0.0.1:0 --data-dir "$2" \
		--instance "$1" --log-level warn >"$WORK/$1.log" 2>&1 &
	PIDS+=($!)
	wait_line "$WORK/$1.log" 'listening on' 15
	PORT_OF=$(sed -n 's/.*listening on .* port \([0-9][0-9]*\).*/\1/p' "$WORK/$1.log" | head -n1)
}

mkdir -p "$WORK/lite" "$WORK/a" "$WORK/b" "$WORK/c"
LKEY=$(setup "$WORK/lite")
gateway lite "$WORK/lite"
LITE=http://127.0.0.1:$PORT_OF/v1/chat/completions
PKEY=$(setup "$WORK/a" "$URL")
cp "$WORK/a/secret.key" "$WORK/b/"
cp "$WORK/a/secret.key" "$WORK/c/"
declare -A GW
for n in a b c; do
	gateway "$n" "$WORK/$n" "$URL"
	GW[$n]=http://127.0.0.1:$PORT_OF/v1/chat/completions
done
DIRECT=http://127.0.0.1:$FAST_PORT/v1/chat/completions

ERRORS=()
run() {
	local name=$1
	shift
	"$BENCH" --label "$name" "$@" >"$WORK/$name.out" || ERRORS+=("$name")
}
f() { field "$WORK/$1.out" "$2"; }

CORES=$(nproc 2>/dev/null || echo '?')
echo "   $CORES cores shared by the load client, PostgreSQL, the provider and the gateways"
echo "   (load average before: $(cut -d' ' -f1 /proc/loadavg))."
echo "== warming up"
run warm-lite --url "$LITE" --key "$LKEY" --model bench-chat --threads 4 --duration 1
for n in a b c; do
	run "warm-$n" --url "${GW[$n]}" --key "$PKEY" --model bench-chat --threads 4 --duration 1
done

echo "== 1. concurrency 1, $N1 requests each: direct, SQLite, PostgreSQL"
run c1-direct --url "$DIRECT" --model m --requests "$N1" --warmup 100
run c1-lite --url "$LITE" --key "$LKEY" --model bench-chat --requests "$N1" --warmup 100
run c1-pg --url "${GW[a]}" --key "$PKEY" --model bench-chat --requests "$N1" --warmup 100

echo "== 2. concurrency $C for $SECS s: SQLite, 1 PostgreSQL instance, 3 instances"
run t-lite --url "$LITE" --key "$LKEY" --model bench-chat --threads "$C" --duration "$SECS"
run t-pg1 --url "${GW[a]}" --key "$PKEY" --model bench-chat --threads "$C" --duration "$SECS"
PER=$(((C + 2) / 3))
for n in a b c; do
	"$BENCH" --label "t-pg3-$n" --url "${GW[$n]}" --key "$PKEY" --model bench-chat \
		--threads "$PER" --duration "$SECS" >"$WORK/t-pg3-$n.out" &
	PIDS+=($!)
	eval "P_$n=\$!"
done
for n in a b c; do
	eval "wait \$P_$n" || ERRORS+=("t-pg3-$n")
done

# The books after all of it: audit over the shared database.
AUDIT=$(TOLLGATE_DATABASE=$URL "$TG" audit --data-dir "$WORK/a" --log-level warn 2>&1 | tail -n1)

D50=$(f c1-direct p50) D99=$(f c1-direct p99)
L50=$(f c1-lite p50) L99=$(f c1-lite p99) P50=$(f c1-pg p50) P99=$(f c1-pg p99)
RL=$(f t-lite rps) R1=$(f t-pg1 rps)
R3=$(awk -v a="$(f t-pg3-a rps)" -v b="$(f t-pg3-b rps)" -v c="$(f t-pg3-c rps)" \
	'BEGIN { printf "%.1f", a + b + c }')
P3=$(awk -v a="$(f t-pg3-a p99)" -v b="$(f t-pg3-b p99)" -v c="$(f t-pg3-c p99)" \
	'BEGIN { m = a; if (b > m) m = b; if (c > m) m = c; print m }')
GAIN=$(awk -v a="$R3" -v b="$R1" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
ADDPG50=$((P50 - L50)) ADDPG99=$((P99 - L99))

OUT=$BUILD/bench-scale.md
{
	echo "| Shared PostgreSQL ($CORES cores, all processes on them) | Result |"
	echo "|---|---|"
	echo "| c=1 latency p50 / p99: provider direct | ${D50} / ${D99} µs |"
	echo "| c=1 latency p50 / p99: gateway on SQLite | ${L50} / ${L99} µs |"
	echo "| c=1 latency p50 / p99: gateway on PostgreSQL | ${P50} / ${P99} µs |"
	echo "| added by PostgreSQL over SQLite at c=1, p50 / p99 | ${ADDPG50} / ${ADDPG99} µs |"
	echo "| throughput at c=$C: 1 instance on SQLite | ${RL} req/s |"
	echo "| throughput at c=$C: 1 instance on PostgreSQL | ${R1} req/s (p99 $(f t-pg1 p99) µs) |"
	echo "| throughput at c=$C: 3 instances on PostgreSQL | ${R3} req/s (x${GAIN}; p99 ${P3} µs) |"
	echo "| tollgate audit afterwards | ${AUDIT} |"
	[ ${#ERRORS[@]} -eq 0 ] || echo "| runs with failed requests | ${ERRORS[*]} |"
} | tee "$OUT"
echo "(written to $OUT)"
