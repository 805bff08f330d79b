#!/usr/bin/env bash
# run.sh BUILD_DIR - Tollgate's gateway benchmarks (see README.md here).
#
# Builds the load client, starts the fake provider and a gateway on a fresh
# data directory, then measures the gateway's added latency, its throughput
# against calling the provider directly, streaming time to first byte and its
# memory with many open streams. Prints a Markdown table and writes it to
# BUILD_DIR/bench-results.md. A missed target is reported, never fatal.
#
# Sizes can be changed from the environment:
#   BENCH_N1 (3000)  requests per side at concurrency 1
#   BENCH_C (32)     concurrency for the throughput run
#   BENCH_SECS (10)  seconds per side of the throughput run
#   BENCH_NS (500)   streams per side for time to first byte
#   BENCH_K (256)    open streams for the memory sample
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TG=$BUILD/tollgate
FAKE=$BUILD/fake_upstream
BENCH=$BUILD/bench

N1=${BENCH_N1:-3000}
C=${BENCH_C:-32}
SECS=${BENCH_SECS:-10}
NS=${BENCH_NS:-500}
K=${BENCH_K:-256}
GW_THREADS=$((K + 64))

NGINX=$(command -v nginx || echo /usr/sbin/nginx)
for bin in "$TG" "$FAKE" "$NGINX"; do
	[ -x "$bin" ] || { echo "run.sh: $bin is missing; make bench builds and installs it" >&2; exit 1; }
done

# Each open stream costs the gateway several descriptors (client and provider
# sockets, its worker's database handles); lift the soft limit as a service
# manager would.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
NOFILE=$(ulimit -n)

echo "== building the load client and the reference pass-through"
cc -O2 -Wall -Wextra -o "$BENCH" "$ROOT/tests/bench/bench.c" -lcurl -lpthread -lm
PASSTHROUGH=$BUILD/passthrough
cc -O2 -Wall -Wextra -o "$PASSTHROUGH" "$ROOT/tests/bench/passthrough.c" -lcivetweb -lcurl -lpthread

WORK=$(mktemp -d -t tollgate-bench.XXXXXX)
DATA=$WORK/data
. "$ROOT/tests/bench/lib.sh"

# start_server NAME COMMAND...: starts a server that prints "listening on
# HOST:PORT"; its port lands in $PORT_OF and its pid in $PID_OF.
start_server() {
	local name=$1
	shift
	"$@" >"$WORK/$name.log" 2>&1 &
	PID_OF=$!
	PIDS+=("$PID_OF")
	wait_line "$WORK/$name.log" 'listening on' 10
	PORT_OF=$(sed -n 's/.*listening on [0-9.]*:\([0-9][0-9]*\).*/\1/p' "$WORK/$name.log" | head -n1)
}

TICK=$(getconf CLK_TCK 2>/dev/null || echo 100)
# cpu_us PID: user+system CPU time the process has used so far, in µs.
cpu_us() {
	awk -v t="$TICK" '{ sub(/^.*\) /, ""); printf "%.0f", ($12 + $13) * 1000000 / t }' "/proc/$1/stat"
}


# nginx_cpu_us: the CPU time nginx's workers have used so far, in µs.
nginx_cpu_us() {
	local t=0 w
	for w in $(pgrep -P "$NGX_PID"); do
		t=$((t + $(cpu_us "$w" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

ERRORS=()
declare -A CPU_GW CPU_FAKE CPU_PASS CPU_NGX
# run_bench NAME ARGS...: runs bench, RESULT line to $WORK/NAME.out; notes the
# CPU time the gateway, the pass-through and the fast fake spent per
# successful request.
run_bench() {
	local name=$1 g0 f0 p0 x0 n
	shift
	g0=$(cpu_us "$GW_PID") f0=$(cpu_us "$FAST_PID") p0=$(cpu_us "$PASS_PID") x0=$(nginx_cpu_us)
	if ! "$BENCH" --label "$name" "$@" >"$WORK/$name.out"; then
		ERRORS+=("$name")
	fi
	n=$(field "$WORK/$name.out" ok)
	[ -n "$n" ] || { echo "run.sh: $name gave no result" >&2; exit 1; }
	n=$((n + $(field "$WORK/$name.out" warm)))
	[ "$n" -gt 0 ] || n=1
	CPU_GW[$name]=$((($(cpu_us "$GW_PID") - g0) / n))
	CPU_FAKE[$name]=$((($(cpu_us "$FAST_PID") - f0) / n))
	CPU_PASS[$name]=$((($(cpu_us "$PASS_PID") - p0) / n))
	CPU_NGX[$name]=$((($(nginx_cpu_us) - x0) / n))
}

echo "== starting the fake provider and the gateway"
start_server fake "$FAKE" --listen 127.0.0.1:0 --latency-ms 0 --threads 512
FAST_PORT=$PORT_OF
FAST_PID=$PID_OF
# A second fake whose streams last ~4 s (16 chunks, 250 ms apart) for the open-streams sample.
start_server fake-slow "$FAKE" --listen 127.0.0.1:0 --threads $((K + 64)) --chunks 16 \
	--chunk-interval-ms 250
SLOW_PORT=$PORT_OF
DIRECT=http://127.0.0.1:$FAST_PORT/v1/chat/completions

# The unmetered pass-through in front of the fast fake (see passthrough.c).
start_server passthrough "$PASSTHROUGH" 127.0.0.1:0 "$DIRECT"
PASS_PID=$PID_OF
PASS=http://127.0.0.1:$PORT_OF/v1/chat/completions
PASSARGS=(--url "$PASS" --model m)

# nginx as the reference event-driven proxy: one worker per core, keep-alive
# to the fast fake, no access log; it only forwards. nginx cannot report a port
# it picked, so try a few random ones.
mkdir -p "$WORK/nginx"
for try in 1 2 3 4 5; do
	NGX_PORT=$((20000 + RANDOM % 20000))
	cat >"$WORK/nginx/nginx.conf" <<EOF
worker_processes auto;
daemon off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx/body;
  proxy_temp_path $WORK/nginx/proxy;
  fastcgi_temp_path $WORK/nginx/fastcgi;
  scgi_temp_path $WORK/nginx/scgi;
  uwsgi_temp_path $WORK/nginx/uwsgi;
  upstream fake { server 127.0.0.1:$FAST_PORT; keepalive 256; }
  server {
    listen 127.0.0.1:$NGX_PORT;
    keepalive_requests 1000000;
    location / { proxy_pass http://fake; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
EOF
	"$NGINX" -p "$WORK/nginx" -e "$WORK/nginx/error.log" -c "$WORK/nginx/nginx.conf" >"$WORK/nginx.log" 2>&1 &
	NGX_PID=$!
	for ((i = 0; i < 100; i++)); do
		kill -0 "$NGX_PID" 2>/dev/null || break
		curl -s -o /dev/null "http://127.0.0.1:$NGX_PORT/" && break
		sleep 0.05
	done
	kill -0 "$NGX_PID" 2>/dev/null && break
done
kill -0 "$NGX_PID" 2>/dev/null || { echo "run.sh: nginx did not start:" >&2; cat "$WORK/nginx/error.log" >&2; exit 1; }
PIDS+=("$NGX_PID")
NGXARGS=(--url "http://127.0.0.1:$NGX_PORT/v1/chat/completions" --model m)

mkdir -p "$DATA"
tg() { "$TG" "$@" --data-dir "$DATA" --log-level warn; }
echo 'a-long-password-1' | tg user add --email bench@example.com --admin >/dev/null
tg org add Bench >/dev/null
tg credits grant --org Bench 1000000 --memo bench >/dev/null
cat >"$WORK/models.json" <<EOF
{"providers":[
  {"name":"fake","kind":"openai","base_url":"http://127.0.0.1:$FAST_PORT/v1","api_key":"sk-x","timeout_s":60},
  {"name":"fake-slow","kind":"openai","base_url":"http://127.0.0.1:$SLOW_PORT/v1","api_key":"sk-x","timeout_s":60},
  {"name":"fake-anthropic","kind":"anthropic","base_url":"http://127.0.0.1:$FAST_PORT/v1","api_key":"sk-x","timeout_s":60}],
 "models":[
  {"name":"bench-chat","provider":"fake","upstream_model":"m","input_per_mtok":"0.15",
   "cached_input_per_mtok":"0.075","output_per_mtok":"0.60","max_output_tokens":4096,"context_window":128000},
  {"name":"bench-slow","provider":"fake-slow","upstream_model":"m","input_per_mtok":"0.15",
   "cached_input_per_mtok":"0.075","output_per_mtok":"0.60","max_output_tokens":4096,"context_window":128000},
  {"name":"bench-claude","provider":"fake-anthropic","upstream_model":"m","input_per_mtok":"0.15",
   "cached_input_per_mtok":"0.075","output_per_mtok":"0.60","max_output_tokens":4096,"context_window":128000}]}
EOF
tg models import "$WORK/models.json" >/dev/null
KEY=$(tg keys create --org Bench --name bench 2>/dev/null)

# Room for the K open streams: the default stream cap is 3/4 of the connections.
(cd "$ROOT" && exec "$TG" serve --listen 127.0.0.1:0 --data-dir "$DATA" --threads "$GW_THREADS" \
	--max-streams "$((K + 8))" --log-level warn) >"$WORK/gateway.log" 2>&1 &
GW_PID=$!
PIDS+=("$GW_PID")
wait_line "$WORK/gateway.log" 'listening on' 15
GW_PORT=$(sed -n 's/.*listening on .* port \([0-9][0-9]*\).*/\1/p' "$WORK/gateway.log" | head -n1)
GATEWAY=http://127.0.0.1:$GW_PORT/v1/chat/completions
GWARGS=(--url "$GATEWAY" --key "$KEY" --model bench-chat)
DIRARGS=(--url "$DIRECT" --model m)

CORES=$(nproc 2>/dev/null || echo '?')
LOAD0=$(cut -d' ' -f1 /proc/loadavg)
echo "   $CORES cores: the load client, the fake provider and the gateway all share them"
echo "   (load average before the runs: $LOAD0; open-file limit $NOFILE)."

echo "== warming up"
run_bench warm-direct "${DIRARGS[@]}" --threads "$C" --duration 1
run_bench warm-pass "${PASSARGS[@]}" --threads "$C" --duration 1
run_bench warm-nginx "${NGXARGS[@]}" --threads "$C" --duration 1
run_bench warm-gateway "${GWARGS[@]}" --threads "$C" --duration 2
run_bench warm-gateway-stream "${GWARGS[@]}" --stream --threads 4 --requests 200
sleep 1
RSS_IDLE=$(rss_kib "$GW_PID")

echo "== 1. concurrency 1, $N1 non-stream requests each"
BAL0=$(tg credits balance --org Bench)
run_bench c1-direct "${DIRARGS[@]}" --requests "$N1" --warmup 100
run_bench c1-gateway "${GWARGS[@]}" --requests "$N1" --warmup 100
run_bench c1-pass "${PASSARGS[@]}" --requests "$N1" --warmup 100
run_bench c1-nginx "${NGXARGS[@]}" --requests "$N1" --warmup 100
BAL1=$(tg credits balance --org Bench)
# The same calls translated to Anthropic's Messages API and back (the fake
# answers /v1/messages on the same port): what translation adds.
run_bench c1-anthropic "${GWARGS[@]}" --model bench-claude --requests "$N1" --warmup 100
run_bench st-anthropic "${GWARGS[@]}" --model bench-claude --stream --requests "$NS" --warmup 20
CHARGED=$(curl -s -o /dev/null -D - -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
	-d '{"model":"bench-chat","messages":[{"role":"user","content":"hello"}],"max_tokens":16}' \
	"$GATEWAY" | tr -d '\r' | sed -n 's/^x-credits-charged: *//Ip')

echo "== 2. concurrency $C, $SECS s each"
run_bench c32-direct "${DIRARGS[@]}" --threads "$C" --duration "$SECS" --warmup 5
run_bench c32-gateway "${GWARGS[@]}" --threads "$C" --duration "$SECS" --warmup 5
run_bench c32-pass "${PASSARGS[@]}" --threads "$C" --duration "$SECS" --warmup 5
run_bench c32-nginx "${NGXARGS[@]}" --threads "$C" --duration "$SECS" --warmup 5

echo "== 3. streams, concurrency 1, $NS each"
run_bench st-direct "${DIRARGS[@]}" --stream --requests "$NS" --warmup 20
run_bench st-gateway "${GWARGS[@]}" --stream --requests "$NS" --warmup 20

echo "== 4. gateway memory with $K open streams (each ~4 s long)"
"$BENCH" --label open "${GWARGS[@]}" --model bench-slow --open-streams "$K" >"$WORK/open.out" &
OPEN_PID=$!
PIDS+=("$OPEN_PID")
RSS_OPEN=
RSS_PEAK=0
while kill -0 "$OPEN_PID" 2>/dev/null; do
	r=$(rss_kib "$GW_PID")
	[ "$r" -gt "$RSS_PEAK" ] && RSS_PEAK=$r
	if [ -z "$RSS_OPEN" ] && grep -q '^OPEN' "$WORK/open.out"; then
		RSS_OPEN=$r
	fi
	sleep 0.05
done
wait "$OPEN_PID" || ERRORS+=(open)
OPEN_OK=$(field "$WORK/open.out" ok)
OPEN_AFTER=$(field "$WORK/open.out" open_after_us)
[ -n "$RSS_OPEN" ] || RSS_OPEN=0

# ------------------------------------------------------------------ report
f() { field "$WORK/$1.out" "$2"; }

D50=$(f c1-direct p50) D99=$(f c1-direct p99) G50=$(f c1-gateway p50) G99=$(f c1-gateway p99)
D90=$(f c1-direct p90) G90=$(f c1-gateway p90) DMAX=$(f c1-direct max) GMAX=$(f c1-gateway max)
ADD50=$((G50 - D50)) ADD90=$((G90 - D90)) ADD99=$((G99 - D99))
RD=$(f c32-direct rps) RG=$(f c32-gateway rps)
RATIO=$(awk -v a="$RG" -v b="$RD" 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }')
S32D50=$(f c32-direct p50) S32G50=$(f c32-gateway p50) S32D99=$(f c32-direct p99) S32G99=$(f c32-gateway p99)
TD50=$(f st-direct ttfb_p50) TD99=$(f st-direct ttfb_p99) TG50=$(f st-gateway ttfb_p50) TG99=$(f st-gateway ttfb_p99)
SD50=$(f st-direct p50) SG50=$(f st-gateway p50)
P50=$(f c1-pass p50) P99=$(f c1-pass p99) RP=$(f c32-pass rps)
PRATIO=$(awk -v a="$RP" -v b="$RD" 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }')
N50=$(f c1-nginx p50) N99=$(f c1-nginx p99) RN=$(f c32-nginx rps)
NRATIO=$(awk -v a="$RN" -v b="$RD" 'BEGIN { printf "%.0f", (b > 0 ? 100 * a / b : 0) }')
PER_STREAM=$(awk -v a="$RSS_OPEN" -v b="$RSS_IDLE" -v k="$K" 'BEGIN { printf "%.0f", (a - b) / k }')

# Ledger spot check for run 1: the balance fell by (requests) x (charge per call).
GW_CALLS=$(($(f c1-gateway ok) + $(f c1-gateway warm)))
LEDGER=$(awk -v b0="$BAL0" -v b1="$BAL1" -v n="$GW_CALLS" -v c="$CHARGED" 'BEGIN {
	spent = b0 - b1; want = n * c
	printf "%s calls x %s = %.6f credits expected, balance fell by %.6f: %s", n, c, want, spent,
		(spent - want < 0.0000015 && want - spent < 0.0000015) ? "matches" : "DOES NOT MATCH" }')

OUT=$BUILD/bench-results.md
{
	echo "### Tollgate gateway benchmark"
	echo
	echo "Metering is ON: every gateway call authenticates the key, checks rate limits, reserves"
	echo "credits, settles the debit in SQLite (WAL, synchronous=normal) and writes a request row."
	echo "The load client, the fake provider (0 ms latency) and the gateway share the same $CORES"
	echo "cores (load average $LOAD0 before the runs), so every figure includes their competition"
	echo "for CPU. Latencies and CPU per call in µs; CPU per call is the process's user+system time"
	echo "over the run divided by its requests (the fake's in the direct column, the gateway's alone"
	echo "in the gateway column)."
	echo
	echo "| Measure | Direct to fake | Through gateway | Added / ratio | Target | Result |"
	echo "| --- | ---: | ---: | ---: | --- | --- |"
	echo "| c=1 non-stream p50 ($N1 req) | $D50 | $G50 | +$ADD50 | added ≤ 100 | $(pass $((ADD50 <= 100))) |"
	echo "| c=1 non-stream p90 | $D90 | $G90 | +$ADD90 | | |"
	echo "| c=1 non-stream p99 | $D99 | $G99 | +$ADD99 | added ≤ 400 | $(pass $((ADD99 <= 400))) |"
	echo "| c=1 non-stream max | $DMAX | $GMAX | | | |"
	echo "| c=$C throughput, req/s ($SECS s) | $RD | $RG | $RATIO % | ≥ 50 % | $(pass $((RATIO >= 50))) |"
	echo "| c=$C latency p50 / p99 | $S32D50 / $S32D99 | $S32G50 / $S32G99 | | | |"
	echo "| stream TTFB p50, c=1 ($NS streams) | $TD50 | $TG50 | +$((TG50 - TD50)) | | |"
	echo "| stream TTFB p99 | $TD99 | $TG99 | +$((TG99 - TD99)) | | |"
	echo "| stream total p50 (16 chunks) | $SD50 | $SG50 | +$((SG50 - SD50)) | | |"
	echo "| CPU per call, c=1 non-stream (fake / gateway) | ${CPU_FAKE[c1-direct]} | ${CPU_GW[c1-gateway]} | | | |"
	echo "| CPU per call, c=$C non-stream (fake / gateway) | ${CPU_FAKE[c32-direct]} | ${CPU_GW[c32-gateway]} | | | |"
	echo "| CPU per call, c=1 stream (fake / gateway) | ${CPU_FAKE[st-direct]} | ${CPU_GW[st-gateway]} | | | |"
	echo "| Anthropic translation: gateway CPU per call, c=1 non-stream (pass-through / anthropic) | ${CPU_GW[c1-gateway]} | ${CPU_GW[c1-anthropic]} | +$((CPU_GW[c1-anthropic] - CPU_GW[c1-gateway])) | added ≤ 30 | $(pass $((CPU_GW[c1-anthropic] - CPU_GW[c1-gateway] <= 30))) |"
	echo "| Anthropic translation: gateway CPU per call, c=1 stream | ${CPU_GW[st-gateway]} | ${CPU_GW[st-anthropic]} | +$((CPU_GW[st-anthropic] - CPU_GW[st-gateway])) | | |"
	echo "| Anthropic translation: c=1 p50 (pass-through / anthropic) | $G50 | $(f c1-anthropic p50) | +$(($(f c1-anthropic p50) - G50)) | | |"
	echo "| gateway RSS idle, after warm-up (MiB) | | $(mib "$RSS_IDLE") | | | |"
	echo "| gateway RSS, $K streams open (MiB) | | $(mib "$RSS_OPEN") | ≈ $PER_STREAM KiB per stream | | |"
	echo "| gateway RSS peak while streaming (MiB) | | $(mib "$RSS_PEAK") | | | |"
	echo
	echo "Reference: two proxies without metering, measured in the same run against the same fake."
	echo "passthrough.c is the same parts as the gateway (CivetWeb, a reused libcurl handle per"
	echo "thread; no key, no JSON, no ledger); nginx is an event-driven proxy (one worker per core,"
	echo "keep-alive to the fake, no access log) that only forwards:"
	echo
	echo "| Measure | Direct to fake | Pass-through | nginx | Tollgate |"
	echo "| --- | ---: | ---: | ---: | ---: |"
	echo "| c=1 non-stream p50 (added) | $D50 | $P50 (+$((P50 - D50))) | $N50 (+$((N50 - D50))) | $G50 (+$ADD50) |"
	echo "| c=1 non-stream p99 (added) | $D99 | $P99 (+$((P99 - D99))) | $N99 (+$((N99 - D99))) | $G99 (+$ADD99) |"
	echo "| c=$C throughput, req/s (of direct) | $RD | $RP ($PRATIO %) | $RN ($NRATIO %) | $RG ($RATIO %) |"
	echo "| proxy CPU per call, c=1 / c=$C | | ${CPU_PASS[c1-pass]} / ${CPU_PASS[c32-pass]} | ${CPU_NGX[c1-nginx]} / ${CPU_NGX[c32-nginx]} | ${CPU_GW[c1-gateway]} / ${CPU_GW[c32-gateway]} |"
	echo
	echo "Open streams: $OPEN_OK of $K finished cleanly; all were open after $((OPEN_AFTER / 1000)) ms."
	echo "Ledger check (run 1): $LEDGER."
	echo "Database after the runs: $(du -k "$DATA/tollgate.db" | cut -f1) KiB, its write-ahead log" \
		"$(du -k "$DATA/tollgate.db-wal" 2>/dev/null | cut -f1) KiB."
	if [ ${#ERRORS[@]} -gt 0 ]; then
		echo "Runs with failed requests: ${ERRORS[*]} (their figures count successful requests only)."
	fi
} >"$OUT"
echo
cat "$OUT"
echo
echo "(written to $OUT)"
