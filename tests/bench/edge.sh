#!/usr/bin/env bash
# edge.sh BUILD_DIR - the production edge with default settings (README.md
# here): slow and idle clients, a flood from one address, and many long
# streams held open at once. Prints a Markdown table and writes it to
# BUILD_DIR/bench-edge.md. A missed target is reported, never fatal.
#
#   EDGE_CONNS (2000)    hostile connections, from EDGE_ADDRS addresses
#   EDGE_ADDRS (40)      loopback addresses 127.0.0.2 ... (under the per-address cap)
#   EDGE_SECS (10)       seconds of probing through them
#   EDGE_FLOOD (400)     connections at once from one more address
#   EDGE_STREAMS (2000)  streams held open at once
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TG=$BUILD/tollgate
FAKE=$BUILD/fake_upstream
BENCH=$BUILD/bench
HOSTILE=$BUILD/hostile
CONNS=${EDGE_CONNS:-2000}
ADDRS=${EDGE_ADDRS:-40}
SECS=${EDGE_SECS:-10}
FLOOD=${EDGE_FLOOD:-400}
STREAMS=${EDGE_STREAMS:-2000}

for bin in "$TG" "$FAKE"; do
	[ -x "$bin" ] || { echo "edge.sh: $bin is missing; make bench builds it" >&2; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

echo "== building the load clients"
cc -O2 -Wall -Wextra -o "$BENCH" "$ROOT/tests/bench/bench.c" -lcurl -lpthread -lm
cc -O2 -Wall -Wextra -o "$HOSTILE" "$ROOT/tests/bench/hostile.c" -lpthread

WORK=$(mktemp -d -t tollgate-edge.XXXXXX)
DATA=$WORK/data
. "$ROOT/tests/bench/lib.sh"

ms() { awk -v u="$1" 'BEGIN { printf "%.1f", u / 1000 }'; }
metric() { curl -s "http://127.0.0.1:$GW_PORT/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }

echo "== starting a fake provider (streams of 60 chunks, 250 ms apart) and the gateway"
"$FAKE" --listen 127.0.0.1:0 --threads $((STREAMS + 200)) --chunks 60 --chunk-interval-ms 250 \
	>"$WORK/fake.log" 2>&1 &
PIDS+=($!)
wait_line "$WORK/fake.log" 'listening on' 10
FAKE_PORT=$(sed -n 's/.*listening on [0-9.]*:\([0-9][0-9]*\).*/\1/p' "$WORK/fake.log" | head -n1)

mkdir -p "$DATA"
tg() { "$TG" "$@" --data-dir "$DATA" --log-level warn; }
echo 'a-long-password-1' | tg user add --email bench@example.com --admin >/dev/null
tg org add Edge >/dev/null
tg credits grant --org Edge 1000000 --memo bench >/dev/null
cat >"$WORK/models.json" <<JSON
{"providers":[{"name":"fake","kind":"openai","base_url":"http://127.0.0.1:$FAKE_PORT/v1",
  "api_key":"sk-x","timeout_s":120}],
 "models":[{"name":"edge-chat","provider":"fake","upstream_model":"m","input_per_mtok":"0.15",
  "output_per_mtok":"0.60","max_output_tokens":4096,"context_window":128000}]}
JSON
tg models import "$WORK/models.json" >/dev/null
KEY=$(tg keys create --org Edge --name edge 2>/dev/null)

# Default settings: only the address, the data and the log level are given.
"$TG" serve --listen 127.0.0.1:0 --data-dir "$DATA" --log-level warn >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_line "$WORK/gateway.log" 'listening on' 15
GW_PORT=$(sed -n 's/.*listening on .* port \([0-9][0-9]*\).*/\1/p' "$WORK/gateway.log" | head -n1)
GATEWAY=http://127.0.0.1:$GW_PORT/v1/chat/completions
# Warm up: a few calls of each kind, then the idle footprint.
"$BENCH" --label warm --url "$GATEWAY" --key "$KEY" --model edge-chat --threads 4 --requests 40 \
	>/dev/null || true
sleep 1
RSS_IDLE=$(rss_kib "$GW_PID")

echo "== 1. $CONNS slow and idle connections from $ADDRS addresses; probes for ${SECS} s"
"$HOSTILE" --port "$GW_PORT" --conns "$CONNS" --addrs "$ADDRS" --secs "$SECS" --key "$KEY" \
	--model edge-chat --flood "$FLOOD" >"$WORK/hostile.out" 2>"$WORK/hostile.err" || true
H99=$(field "$WORK/hostile.out" health_p99) V99=$(field "$WORK/hostile.out" v1_p99)
H50=$(field "$WORK/hostile.out" health_p50) V50=$(field "$WORK/hostile.out" v1_p50)
HOK=$(field "$WORK/hostile.out" ok) HN=$(field "$WORK/hostile.out" probes)
HELD=$(field "$WORK/hostile.out" held) FREF=$(field "$WORK/hostile.out" flood_refused)
REFUSED_TOTAL=$(metric tollgate_tcp_connections_refused_total)
sleep 1
OPEN_AFTER_HOSTILE=$(metric tollgate_tcp_connections_open)

echo "== 2. $STREAMS streams held open at once (each ~15 s)"
"$BENCH" --label open --url "$GATEWAY" --key "$KEY" --model edge-chat --open-streams "$STREAMS" \
	>"$WORK/open.out" 2>"$WORK/open.err" &
OPEN_PID=$!
PIDS+=("$OPEN_PID")
RSS_OPEN= RSS_PEAK=0
while kill -0 "$OPEN_PID" 2>/dev/null; do
	r=$(rss_kib "$GW_PID")
	[ "$r" -gt "$RSS_PEAK" ] && RSS_PEAK=$r
	if [ -z "$RSS_OPEN" ] && grep -q '^OPEN' "$WORK/open.out"; then
		RSS_OPEN=$r
	fi
	sleep 0.1
done
wait "$OPEN_PID" || true
OPEN_OK=$(field "$WORK/open.out" ok)
OPEN_ERRORS=$(field "$WORK/open.out" errors)
OPEN_T=$(field "$WORK/open.out" open_after_us)
[ -n "$RSS_OPEN" ] || RSS_OPEN=0
PER_STREAM=$(awk -v a="$RSS_OPEN" -v b="$RSS_IDLE" -v k="$STREAMS" 'BEGIN { printf "%.0f", (a - b) / k }')
REFUSED_STREAMS=$(metric tollgate_gateway_streams_refused_total)
AUDIT=$(tg audit >/dev/null 2>&1 && echo clean || echo FAILED)

CAP=128
{
	echo "| edge, default settings | value | target | |"
	echo "|---|---|---|---|"
	echo "| hostile connections held (of $CONNS, $ADDRS addresses) | ${HELD:-?} | $CONNS | |"
	echo "| probes answered 200 through them | ${HOK:-0} of ${HN:-0} | all | $(pass $([ -n "$HN" ] && [ "${HOK:-0}" = "$HN" ] && echo 1)) |"
	echo "| GET /health p50 / p99 (ms) | $(ms "${H50:-0}") / $(ms "${H99:-0}") | p99 < 100 | $(pass $([ -n "$H99" ] && [ "$H99" -lt 100000 ] && echo 1)) |"
	echo "| POST /v1/chat/completions p50 / p99 (ms) | $(ms "${V50:-0}") / $(ms "${V99:-0}") | p99 < 100 | $(pass $([ -n "$V99" ] && [ "$V99" -lt 100000 ] && echo 1)) |"
	echo "| one address holding $FLOOD idle connections for 2.5 s: of $FLOOD more, refused within 1 s | ${FREF:-0} | $FLOOD (cap $CAP) | $(pass $([ "${FREF:-0}" -ge "$FLOOD" ] && echo 1)) |"
	echo "| connections counted open after the attack ended | ${OPEN_AFTER_HOSTILE:-?} | small | |"
	echo "| streams open at once, finished cleanly | ${OPEN_OK:-0} of $STREAMS (all open after $(( ${OPEN_T:-0} / 1000 )) ms) | all | $(pass $([ "${OPEN_OK:-0}" = "$STREAMS" ] && echo 1)) |"
	echo "| streams refused with 503 | ${REFUSED_STREAMS:-?} | 0 | $(pass $([ "${REFUSED_STREAMS:-1}" = 0 ] && echo 1)) |"
	echo "| gateway RSS idle / with $STREAMS streams / peak (MiB) | $(mib "$RSS_IDLE") / $(mib "$RSS_OPEN") / $(mib "$RSS_PEAK") | | |"
	echo "| memory per open stream (KiB) | $PER_STREAM | ≤ 128 | $(pass $([ "$PER_STREAM" -le 128 ] && echo 1)) |"
	echo "| tollgate audit after | $AUDIT | clean | $(pass $([ "$AUDIT" = clean ] && echo 1)) |"
} | tee "$BUILD/bench-edge.md"
[ -s "$WORK/hostile.err" ] && { echo "hostile client said:"; head -5 "$WORK/hostile.err"; }
[ -s "$WORK/open.err" ] && { echo "stream client said:"; head -5 "$WORK/open.err"; }
exit 0
