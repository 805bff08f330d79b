#!/usr/bin/env bash
# run.sh BUILD_DIR - Tollgate's crash test (see README.md here).
#
# Puts a gateway under mixed load (streams and non-streams, injected provider
# failures), kills it with SIGKILL at a random moment, restarts it on the same
# data directory and checks the books, round after round:
#   - the restart is not blocked by the lock file of the killed server;
#   - PRAGMA integrity_check is ok and `tollgate audit` is clean;
#   - every request the client saw answered 200 in full has exactly one usage
#     debit, equal to what the answer said it charged; no request answered
#     with an error status was charged; a request cut by the kill has at most
#     one debit, and retrying it with the same X-Request-Id answers 409 when it
#     was billed, or runs once when it was not;
#   - the usage debits add up to the balance's drop, every debit belongs to a
#     request the client sent and has its row in `requests`.
# One round also takes `tollgate backup` while the load runs, restores it into
# a fresh data directory and checks it there (integrity, audit, a billed call).
#
# Prints a summary, writes it to BUILD_DIR/crash-results.md and exits 1 on any
# violation (the work directory is then kept for inspection).
#
# Environment:
#   CRASH_ROUNDS (20)           kill -9 / restart rounds
#   CRASH_WORKERS (8)           concurrent client workers
#   CRASH_KILL_MIN_MS (300)     the kill comes at a random moment between
#   CRASH_KILL_MAX_MS (1500)    these two delays after the load starts
#   CRASH_SYNC (alternate)      normal, full, or alternate (odd rounds normal)
#   CRASH_BACKUP_ROUND (2)      the round that takes a backup under load; 0: none
#   CRASH_PROBES (4)            billed cut requests retried per round (plus up
#                               to 2 unbilled cut and 2 answered ones)
#   CRASH_KEEP (0)              1 keeps the work directory
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TG=$BUILD/tollgate
FAKE=$BUILD/fake_upstream
LOAD=$ROOT/tests/crash/load.mjs

ROUNDS=${CRASH_ROUNDS:-20}
WORKERS=${CRASH_WORKERS:-8}
KILL_MIN=${CRASH_KILL_MIN_MS:-300}
KILL_MAX=${CRASH_KILL_MAX_MS:-1500}
SYNC=${CRASH_SYNC:-alternate}
BACKUP_ROUND=${CRASH_BACKUP_ROUND:-2}
PROBES=${CRASH_PROBES:-4}
[ "$BACKUP_ROUND" -le "$ROUNDS" ] || BACKUP_ROUND=$ROUNDS
[ "$KILL_MAX" -ge "$KILL_MIN" ] || KILL_MAX=$KILL_MIN
case $SYNC in normal | full | alternate) ;; *)
	echo "run.sh: CRASH_SYNC must be normal, full or alternate" >&2
	exit 2
	;;
esac

for bin in "$TG" "$FAKE"; do
	[ -x "$bin" ] || { echo "run.sh: $bin is missing; build first (make build)" >&2; exit 1; }
done
for tool in node sqlite3 curl; do
	command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing (make deps)" >&2; exit 1; }
done

WORK=$(mktemp -d -t tollgate-crash.XXXXXX)
DATA=$WORK/data
DB=$DATA/tollgate.db
RES=$WORK/results.db
VIOL=()
KEEP=${CRASH_KEEP:-0}
# Only this shell's background jobs still running: never a pid that may have
# been reused.
cleanup() {
	local p
	for p in $(jobs -p); do
		kill -9 "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	if [ "$KEEP" = 1 ]; then
		echo "(work directory kept: $WORK)"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

violation() {
	VIOL+=("$1")
	echo "   VIOLATION: $1"
}

# wait_line FILE PATTERN SECONDS [PID]: wait until FILE has a line matching
# PATTERN; fails early when PID exits.
wait_line() {
	local i
	for ((i = 0; i < $3 * 50; i++)); do
		grep -q "$2" "$1" 2>/dev/null && return 0
		if [ -n "${4:-}" ] && ! kill -0 "$4" 2>/dev/null; then
			grep -q "$2" "$1" 2>/dev/null && return 0
			return 1
		fi
		sleep 0.02
	done
	return 1
}

# micro AMOUNT: "12.5" -> 12500000 (micro-credits).
micro() {
	local whole=${1%%.*} frac=
	[ "$whole" != "$1" ] && frac=${1#*.}
	frac=${frac}000000
	echo $((10#$whole * 1000000 + 10#${frac:0:6}))
}

now_ms() { date +%s%3N; }

tg() { "$TG" "$@" --data-dir "$DATA" --password-hashing min --log-level warn; }

# q SQL...: query the results database with the gateway's database attached as tg.
q() {
	sqlite3 -batch -noheader -cmd '.timeout 10000' -cmd "ATTACH '$DB' AS tg" "$RES" "$@"
}

# check_rows LABEL SQL: every row SQL returns is a violation.
check_rows() {
	local rows n
	rows=$(q "$2")
	[ -z "$rows" ] && return 0
	n=$(printf '%s\n' "$rows" | wc -l)
	violation "$1: $n case(s): $(printf '%s\n' "$rows" | head -n 5 | paste -sd ';' -)"
}

# start_gateway SYNC DATA LOG: starts `tollgate serve`; sets GW_PID and GW_PORT.
# Returns 1 when it does not come up.
start_gateway() {
	(cd "$ROOT" && exec "$TG" serve --listen 127.0.0.1:0 --data-dir "$2" --synchronous "$1" \
		--log-level warn) >"$3" 2>&1 &
	GW_PID=$!
	if ! wait_line "$3" 'listening on' 15 "$GW_PID"; then
		echo "run.sh: the gateway did not start:" >&2
		cat "$3" >&2
		return 1
	fi
	GW_PORT=$(sed -n 's/.*listening on .* port \([0-9][0-9]*\).*/\1/p' "$3" | head -n1)
}

echo "== setting up: fake provider, data directory, gateway"
"$FAKE" --listen 127.0.0.1:0 --latency-ms 2 --chunks 8 --chunk-interval-ms 3 --threads 128 \
	>"$WORK/fake.log" 2>&1 &
wait_line "$WORK/fake.log" 'listening on' 10 $! || { cat "$WORK/fake.log" >&2; exit 1; }
FAKE_PORT=$(sed -n 's/.*listening on [0-9.]*:\([0-9][0-9]*\).*/\1/p' "$WORK/fake.log" | head -n1)

mkdir -p "$DATA"
GRANT=1000
echo 'a-long-password-1' | tg user add --email crash@example.com --admin >/dev/null
tg org add Crash >/dev/null
tg credits grant --org Crash "$GRANT" --memo 'crash test' >/dev/null
cat >"$WORK/models.json" <<EOF
{"providers":[{"name":"fake","kind":"openai","base_url":"http://127.0.0.1:$FAKE_PORT/v1","api_key":"sk-x","timeout_s":30}],
 "models":[{"name":"crash-chat","provider":"fake","upstream_model":"m","input_per_mtok":"2.50",
   "cached_input_per_mtok":"1.25","output_per_mtok":"10.00","max_output_tokens":4096,"context_window":128000}]}
EOF
tg models import "$WORK/models.json" >/dev/null
KEY=$(tg keys create --org Crash --name crash 2>"$WORK/keys.err") || { cat "$WORK/keys.err" >&2; exit 1; }
GRANT_MICRO=$(micro "$GRANT")

sqlite3 "$RES" "CREATE TABLE staging(rid TEXT, kind TEXT, stream INT, status INT, outcome TEXT,
	done INT, charged INT, expected INT);
CREATE TABLE outcomes(round INT, rid TEXT PRIMARY KEY, kind TEXT, stream INT, status INT,
	outcome TEXT, done INT, charged INT, expected INT, billed INT);
CREATE TABLE probes(round INT, rid TEXT, expected INT, status INT, code TEXT);
CREATE TABLE probe_staging(rid TEXT, expected INT, status INT, code TEXT);"

sync_for() {
	case $SYNC in
	alternate) if (($1 % 2)); then echo normal; else echo full; fi ;;
	*) echo "$SYNC" ;;
	esac
}

start_gateway "$(sync_for 1)" "$DATA" "$WORK/gateway-0.log" || exit 1
RESTART_MS=()
BACKUP_NOTE="not taken"
LOCK_NOTE=""

# restore_check FILE: the backup restored into a fresh data directory must pass
# integrity_check and audit, serve, bill a call and stay audit-clean.
restore_check() {
	local dir=$WORK/restored out code usage rpid rport main_pid=$GW_PID main_port=$GW_PORT
	mkdir -m 700 "$dir"
	cp "$1" "$dir/tollgate.db"
	cp -p "$DATA/secret.key" "$dir/secret.key"
	out=$(sqlite3 "$dir/tollgate.db" 'PRAGMA integrity_check' 2>&1) || true
	[ "$out" = ok ] || violation "backup: integrity_check says: $out"
	if ! out=$("$TG" audit --data-dir "$dir" --log-level warn 2>&1); then
		violation "backup: tollgate audit failed: $out"
	fi
	usage=$(sqlite3 "$dir/tollgate.db" "SELECT COUNT(*) FROM ledger_entries WHERE kind='usage'")
	if ! start_gateway normal "$dir" "$WORK/restored.log"; then
		violation "backup: a server does not start on the restored data"
		GW_PID=$main_pid GW_PORT=$main_port
		return
	fi
	rpid=$GW_PID rport=$GW_PORT
	GW_PID=$main_pid GW_PORT=$main_port
	code=$(curl -s -o "$WORK/restored-call.json" -w '%{http_code}' \
		-H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
		-H 'X-Request-Id: restored-1' \
		-d '{"model":"crash-chat","messages":[{"role":"user","content":"after restore"}],"max_tokens":16}' \
		"http://127.0.0.1:$rport/v1/chat/completions") || code=000
	[ "$code" = 200 ] || violation "backup: a call on the restored data answered $code"
	if ! out=$("$TG" audit --data-dir "$dir" --log-level warn 2>&1); then
		violation "backup: tollgate audit failed after a call on the restored data: $out"
	fi
	kill -TERM "$rpid"
	wait "$rpid" || violation "backup: the restored server did not stop cleanly"
	BACKUP_NOTE="$(stat -c %s "$1") bytes with $usage usage debits; integrity ok, audit clean, a server on the restored copy answered $code and billed it"
}

for ((round = 1; round <= ROUNDS; round++)); do
	sync=$(sync_for "$round")
	delay=$((KILL_MIN + RANDOM % (KILL_MAX - KILL_MIN + 1)))
	: >"$WORK/round.csv"
	node "$LOAD" run --url "http://127.0.0.1:$GW_PORT" --key "$KEY" --model crash-chat \
		--out "$WORK/round.csv" --prefix "c$round-" --workers "$WORKERS" --max-s 60 \
		>"$WORK/load.out" 2>&1 &
	LOAD_PID=$!
	BK_PID=
	if [ "$round" = "$BACKUP_ROUND" ]; then
		sleep "$(awk -v d="$KILL_MIN" 'BEGIN { printf "%.3f", d / 2000 }')"
		"$TG" backup "$WORK/backup.db" --data-dir "$DATA" --log-level warn >"$WORK/backup.out" 2>&1 &
		BK_PID=$!
		sleep "$(awk -v d="$((delay - KILL_MIN / 2))" 'BEGIN { printf "%.3f", (d > 0 ? d : 0) / 1000 }')"
	else
		sleep "$(awk -v d="$delay" 'BEGIN { printf "%.3f", d / 1000 }')"
	fi
	kill -9 "$GW_PID"
	wait "$GW_PID" 2>/dev/null || true
	if ! wait "$LOAD_PID"; then
		cat "$WORK/load.out" >&2
		violation "round $round: the load client failed"
	fi
	load=$(sed -n 's/^LOAD //p' "$WORK/load.out")

	# Restart on the same data directory: the dead server's lock must not block it.
	t0=$(now_ms)
	if ! start_gateway "$sync" "$DATA" "$WORK/gateway-$round.log"; then
		violation "round $round: the gateway did not restart after kill -9"
		break
	fi
	RESTART_MS+=($(($(now_ms) - t0)))
	if [ "$round" = 1 ]; then
		# The lock is taken again: a second server on the directory is refused.
		if out=$(timeout 10 "$TG" serve --listen 127.0.0.1:0 --data-dir "$DATA" --log-level warn 2>&1); then
			violation "a second server started on the data directory"
		elif ! grep -q 'another tollgate server' <<<"$out"; then
			violation "a second server failed with an unexpected message: $out"
		fi
		[ "$(head -n1 "$DATA/tollgate.lock")" = "$GW_PID" ] ||
			violation "the lock file does not name the restarted server (pid $GW_PID)"
		LOCK_NOTE="after kill -9 the lock file does not block a restart; the restarted server holds it (a second serve is refused)"
	fi
	echo "== round $round/$ROUNDS (synchronous=$sync): killed after $delay ms; $load; restarted in ${RESTART_MS[-1]} ms"

	if [ -n "$BK_PID" ]; then
		if wait "$BK_PID"; then
			restore_check "$WORK/backup.db"
			echo "   backup under load: $BACKUP_NOTE"
		else
			violation "round $round: tollgate backup under load failed: $(cat "$WORK/backup.out")"
		fi
	fi

	out=$(sqlite3 "$DB" 'PRAGMA integrity_check' 2>&1) || true
	[ "$out" = ok ] || violation "round $round: integrity_check says: $out"
	if ! out=$(tg audit 2>&1); then
		violation "round $round: tollgate audit failed: $out"
	fi

	# The round's outcomes, with whether each request was billed before any retry.
	q ".import --csv $WORK/round.csv staging" \
		"INSERT INTO outcomes SELECT $round, s.*, EXISTS (SELECT 1 FROM tg.ledger_entries l
			WHERE l.request_id = s.rid) FROM staging s; DELETE FROM staging;"

	# Retries with the same X-Request-Id: billed ones (cut or answered) must get
	# 409, a cut one that was not billed must run once.
	: >"$WORK/probes.csv"
	ids=$(q "SELECT rid FROM outcomes WHERE round = $round AND outcome = 'cut' AND billed
		ORDER BY random() LIMIT $PROBES")
	ids="$ids $(q "SELECT rid FROM outcomes WHERE round = $round AND outcome = 'ok'
		ORDER BY random() LIMIT 2")"
	# shellcheck disable=SC2086
	[ -z "${ids// /}" ] || node "$LOAD" probe --url "http://127.0.0.1:$GW_PORT" --key "$KEY" \
		--model crash-chat --out "$WORK/probes.csv" --expect 409 $ids
	ids=$(q "SELECT rid FROM outcomes WHERE round = $round AND outcome = 'cut' AND NOT billed
		ORDER BY random() LIMIT 2")
	# shellcheck disable=SC2086
	[ -z "$ids" ] || node "$LOAD" probe --url "http://127.0.0.1:$GW_PORT" --key "$KEY" \
		--model crash-chat --out "$WORK/probes.csv" --expect 200 $ids
	q ".import --csv $WORK/probes.csv probe_staging" \
		"INSERT INTO probes SELECT $round, * FROM probe_staging; DELETE FROM probe_staging;"

	# The books, over every request so far.
	check_rows "round $round: answered 200 in full without exactly one debit" \
		"SELECT o.rid || ' (' || o.kind || ') has ' || COUNT(l.id) || ' debits' FROM outcomes o
		 LEFT JOIN tg.ledger_entries l ON l.request_id = o.rid AND l.kind = 'usage'
		 WHERE o.outcome = 'ok' GROUP BY o.rid HAVING COUNT(l.id) != 1"
	check_rows "round $round: charged although answered with an error or never sent" \
		"SELECT o.rid || ' (' || o.outcome || ' ' || o.status || ') debited ' || -l.amount
		 FROM outcomes o JOIN tg.ledger_entries l ON l.request_id = o.rid
		 WHERE o.outcome IN ('error', 'refused', 'hung')"
	check_rows "round $round: more than one debit for a request id" \
		"SELECT request_id || ': ' || COUNT(*) FROM tg.ledger_entries WHERE request_id IS NOT NULL
		 GROUP BY request_id HAVING COUNT(*) > 1"
	check_rows "round $round: the debit differs from what the answer said it charged" \
		"SELECT o.rid || ' said ' || o.charged || ', debited ' || -l.amount FROM outcomes o
		 JOIN tg.ledger_entries l ON l.request_id = o.rid
		 WHERE o.outcome IN ('ok', 'cut') AND o.charged >= 0 AND -l.amount != o.charged"
	check_rows "round $round: a 200 without its charge (x-credits-charged or usage.cost)" \
		"SELECT rid || ' (' || kind || ')' FROM outcomes
		 WHERE outcome = 'ok' AND kind IN ('ns', 'st') AND charged < 0"
	check_rows "round $round: an unexpected answer" \
		"SELECT rid || ' (' || kind || ') expected ' || expected || ', got ' || status FROM outcomes
		 WHERE outcome IN ('ok', 'error') AND status != expected
		 UNION ALL SELECT rid || ' (' || kind || ') ended ' ||
			CASE done WHEN 1 THEN 'with' ELSE 'without' END || ' [DONE]' FROM outcomes
		 WHERE outcome = 'ok' AND ((kind IN ('st', 'st-nu') AND done = 0) OR (kind = 'brk' AND done = 1))
		 UNION ALL SELECT rid || ' got no answer in 30 s' FROM outcomes WHERE outcome = 'hung'"
	check_rows "round $round: a stream cut after [DONE] was not billed" \
		"SELECT rid || ' (' || kind || ', told ' || charged || ')' FROM outcomes
		 WHERE round = $round AND outcome = 'cut' AND done AND NOT billed"
	check_rows "round $round: a usage debit for a request id the client never sent" \
		"SELECT request_id || ' debited ' || -amount FROM tg.ledger_entries
		 WHERE kind = 'usage' AND request_id NOT IN (SELECT rid FROM outcomes)"
	check_rows "round $round: a usage debit without its requests row" \
		"SELECT l.request_id || ' debited ' || -l.amount FROM tg.ledger_entries l
		 WHERE l.kind = 'usage' AND NOT EXISTS (SELECT 1 FROM tg.requests r
			WHERE r.request_id = l.request_id AND r.status = 200 AND r.cost = -l.amount)"
	check_rows "round $round: a retry with the same X-Request-Id" \
		"SELECT rid || ' expected ' || expected || ', got ' || status || ' ' || code FROM probes
		 WHERE status != expected OR (expected = 409 AND code != 'duplicate_request_id')
		 UNION ALL SELECT p.rid || ' has ' || COUNT(l.id) || ' debits after the retry' FROM probes p
		 LEFT JOIN tg.ledger_entries l ON l.request_id = p.rid AND l.kind = 'usage'
		 GROUP BY p.rid HAVING COUNT(l.id) != 1"
	spent=$(q "SELECT COALESCE(-SUM(amount), 0) FROM tg.ledger_entries WHERE kind = 'usage'")
	bal=$(micro "$(tg credits balance --org Crash)")
	[ $((GRANT_MICRO - bal)) = "$spent" ] ||
		violation "round $round: usage debits total $spent micro-credits but the balance fell by $((GRANT_MICRO - bal))"
done

if kill -TERM "$GW_PID" 2>/dev/null; then
	wait "$GW_PID" || violation "the last gateway did not stop cleanly on SIGTERM"
fi
out=$(tg audit 2>&1) || violation "final tollgate audit failed: $out"

# ------------------------------------------------------------------ report
n() { q "SELECT COUNT(*) FROM outcomes WHERE $1"; }
TOTAL=$(n 1)
OK=$(n "outcome = 'ok'")
OK_NS=$(n "outcome = 'ok' AND kind = 'ns'")
OK_ST=$(n "outcome = 'ok' AND kind IN ('st', 'st-nu')")
OK_BRK=$(n "outcome = 'ok' AND kind = 'brk'")
ERR=$(n "outcome = 'error'")
ERR502=$(n "outcome = 'error' AND status = 502")
ERR4=$(n "outcome = 'error' AND status BETWEEN 400 AND 499")
CUT=$(n "outcome = 'cut'")
CUT_B=$(n "outcome = 'cut' AND billed")
CUT_NS=$(n "outcome = 'cut' AND NOT stream")
CUT_NS_B=$(n "outcome = 'cut' AND NOT stream AND billed")
CUT_DONE=$(n "outcome = 'cut' AND done")
CUT_DONE_B=$(n "outcome = 'cut' AND done AND billed")
CUT_DONE_NB_COST=$(n "outcome = 'cut' AND done AND NOT billed AND charged >= 0")
CUT_DONE_NB_IDS=$(q "SELECT group_concat(rid, ', ') FROM (SELECT rid FROM outcomes
	WHERE outcome = 'cut' AND done AND NOT billed ORDER BY round, rid LIMIT 5)")
REFUSED=$(n "outcome = 'refused'")
HUNG=$(n "outcome = 'hung'")
P409=$(q "SELECT COUNT(*) FROM probes WHERE expected = 409")
P409_CUT=$(q "SELECT COUNT(*) FROM probes p JOIN outcomes o USING (rid) WHERE p.expected = 409 AND o.outcome = 'cut'")
P200=$(q "SELECT COUNT(*) FROM probes WHERE expected = 200")
DEBITS=$(q "SELECT COUNT(*) || ' debits, ' || COALESCE(-SUM(amount), 0) FROM tg.ledger_entries WHERE kind = 'usage'")
RS=$(printf '%s\n' "${RESTART_MS[@]}" | sort -n)
R_MED=$(awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }' <<<"$RS")
R_MAX=$(tail -n1 <<<"$RS")
case $SYNC in alternate) SYNC_NOTE="normal in odd rounds, full in even ones" ;; *) SYNC_NOTE=$SYNC ;; esac

OUT=$BUILD/crash-results.md
{
	echo "### Tollgate crash test"
	echo
	echo "- Rounds: $ROUNDS kill -9 / restart cycles ($WORKERS workers; the kill $KILL_MIN-$KILL_MAX ms into each round; synchronous $SYNC_NOTE)."
	echo "- Restart after kill -9: median $R_MED ms, at most $R_MAX ms; $LOCK_NOTE."
	echo "- Requests: $TOTAL sent."
	echo "  - answered 200 in full: $OK ($OK_NS non-stream, $OK_ST streams, $OK_BRK streams broken by the provider and billed an estimate), each with exactly one debit equal to its stated charge;"
	echo "  - answered with an error: $ERR ($ERR502 x 502 for the provider's 500, $ERR4 x 4xx passed through), none charged;"
	echo "  - cut by the kill: $CUT, of which $CUT_B had been billed ($CUT_NS non-stream cut, $CUT_NS_B of them billed; $CUT_DONE streams cut after [DONE], $CUT_DONE_B of them billed);"
	if [ "$CUT_DONE" != "$CUT_DONE_B" ]; then
		echo "    Of the streams cut after [DONE], $((CUT_DONE - CUT_DONE_B)) were never billed ($CUT_DONE_NB_COST of them had been sent usage.cost), e.g. $CUT_DONE_NB_IDS:"
		echo "    the gateway relays [DONE] before its settle commits, so a kill in between loses the debit."
	fi
	echo "  - refused while the gateway was down: $REFUSED (never sent, never charged); no answer in 30 s: $HUNG."
	echo "- Retries with the same X-Request-Id: $P409 of billed requests ($P409_CUT of them cut) got 409 duplicate_request_id and no second debit; $P200 cut and unbilled ones ran once."
	echo "- Ledger: $DEBITS micro-credits in usage debits = the balance's drop; every debit has its requests row; integrity_check ok and audit clean after every restart."
	echo "- Backup under load (round $BACKUP_ROUND): $BACKUP_NOTE."
	echo "- Violations: ${#VIOL[@]}."
	for v in "${VIOL[@]}"; do
		echo "  - $v"
	done
} >"$OUT"
echo
cat "$OUT"
echo "(written to $OUT)"
if [ ${#VIOL[@]} -gt 0 ]; then
	KEEP=1
	exit 1
fi
