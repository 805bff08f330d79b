#!/usr/bin/env bash
# pages.sh BUILD_DIR - how fast the dashboard's usage pages answer at scale.
#
# Seeds a fresh data directory with one org, 100 API keys and 1,000,000
# `requests` rows spread over the last 30 days (4 models, 1 % failures), then
# starts the server and times GET /, /usage (and variants) and /requests with
# curl as an org owner and as a member: the median of 5 runs after one warm-up.
# Prints a Markdown table; a page over the target (200 ms) is reported as MISS,
# never fatal. Not part of `make test`.
#
# The pages read `requests` and its hourly rollup (migration 0006), never the
# ledger, so the seed writes request rows only: the rollup trigger fills
# usage_hourly as they go in, exactly as it does for gateway calls.
#
# Sizes from the environment: BENCH_ROWS (1000000), BENCH_KEYS (100),
# BENCH_RUNS (5).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${1:-build}
case $BUILD in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TG=$BUILD/tollgate
ROWS=${BENCH_ROWS:-1000000}
KEYS=${BENCH_KEYS:-100}
RUNS=${BENCH_RUNS:-5}
TARGET_MS=200

[ -x "$TG" ] || { echo "pages.sh: $TG is missing; build first (make build)" >&2; exit 1; }
command -v sqlite3 >/dev/null || { echo "pages.sh: needs the sqlite3 shell" >&2; exit 1; }
command -v curl >/dev/null || { echo "pages.sh: needs curl" >&2; exit 1; }

DATA=$(mktemp -d "${TMPDIR:-/tmp}/tollgate-pages-XXXXXX")
SERVER_PID=
cleanup() {
	if [ -n "$SERVER_PID" ]; then
		kill "$SERVER_PID" 2>/dev/null || true
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	rm -rf "$DATA"
}
trap cleanup EXIT

tg() { "$TG" "$@" --data-dir "$DATA" --password-hashing min 2>/dev/null; }
DB=$DATA/tollgate.db

echo "== seeding $ROWS requests over $KEYS keys and 30 days"
printf 'bench-owner-password\n' | tg user add --email owner@example.com --name Owner >/dev/null
printf 'bench-member-password\n' | tg user add --email member@example.com --name Member >/dev/null
tg org add Bench >/dev/null
tg org member --org Bench --email owner@example.com --role owner >/dev/null
tg org member --org Bench --email member@example.com --role member >/dev/null

t0=$(date +%s.%N)
sqlite3 "$DB" >/dev/null <<SQL
PRAGMA journal_mode = WAL;
PRAGMA synchronous = NORMAL;
BEGIN;
-- Keys: the member owns the first one, the owner the rest. Hashes are random
-- bytes: nobody calls the gateway with these keys.
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < $KEYS)
INSERT INTO api_keys(org_id, created_by, name, prefix, key_hash, created_at)
SELECT (SELECT id FROM orgs WHERE name = 'Bench'),
       (SELECT id FROM users WHERE email = CASE i WHEN 1 THEN 'member@example.com' ELSE 'owner@example.com' END),
       'bench key ' || i, 'tg_' || substr(hex(randomblob(4)), 1, 8), randomblob(32),
       strftime('%s', 'now') - 31 * 86400
FROM n;
CREATE TEMP TABLE k(n INTEGER PRIMARY KEY, id INTEGER NOT NULL);
INSERT INTO k SELECT row_number() OVER (ORDER BY id) - 1, id FROM api_keys
	WHERE org_id = (SELECT id FROM orgs WHERE name = 'Bench');
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < $ROWS - 1)
INSERT INTO requests(request_id, created_at, org_id, key_id, endpoint, model, provider_id,
		     stream, status, prompt_tokens, cached_tokens, completion_tokens, cost,
		     usage_source, upstream_ms, total_ms, error)
SELECT printf('req_bench%012d', i),
       strftime('%s', 'now') - 30 * 86400 + i * (30 * 86400) / $ROWS,
       (SELECT id FROM orgs WHERE name = 'Bench'),
       (SELECT id FROM k WHERE k.n = i % $KEYS),
       'chat.completions',
       CASE (i / 7) % 4 WHEN 0 THEN 'gpt-small' WHEN 1 THEN 'gpt-large' WHEN 2 THEN 'claude-mid' ELSE 'llama-70b' END,
       NULL, i % 3 = 0,
       CASE WHEN i % 100 = 99 THEN 502 ELSE 200 END,
       CASE WHEN i % 100 = 99 THEN 0 ELSE 50 + i % 400 END, 0,
       CASE WHEN i % 100 = 99 THEN 0 ELSE 20 + i % 300 END,
       CASE WHEN i % 100 = 99 THEN 0 ELSE 30 + (i % 400) * 3 + (i % 300) * 12 END,
       CASE WHEN i % 100 = 99 THEN 'none' ELSE 'reported' END,
       100 + i % 900, 102 + i % 900,
       CASE WHEN i % 100 = 99 THEN 'upstream answered 500' ELSE '' END
FROM n;
COMMIT;
PRAGMA wal_checkpoint(TRUNCATE);
SQL
t1=$(date +%s.%N)
printf '   seeded in %.1f s: %s request rows, rollups of %s daily and %s hourly rows, database %s MiB\n' \
	"$(awk -v a="$t0" -v b="$t1" 'BEGIN { print b - a }')" \
	"$(sqlite3 "$DB" 'SELECT count(*) FROM requests')" \
	"$(sqlite3 "$DB" 'SELECT count(*) FROM usage_daily')" \
	"$(sqlite3 "$DB" 'SELECT count(*) FROM usage_hourly')" \
	"$(( $(stat -c %s "$DB") / 1048576 ))"

echo "== starting the server"
LOG=$DATA/server.log
"$TG" serve --listen 127.0.0.1:0 --data-dir "$DATA" --password-hashing min >"$LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 1 150); do
	PORT=$(sed -n 's/.*listening on .* port \([0-9][0-9]*\).*/\1/p' "$LOG" | head -n1)
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "${PORT:-}" ] || { echo "pages.sh: the server did not start:" >&2; cat "$LOG" >&2; exit 1; }
BASE=http://127.0.0.1:$PORT

# Sign in through the real form; the cookie jar keeps the session.
login() {
	local jar=$1 email=$2 password=$3 csrf
	csrf=$(curl -s -c "$jar" -b "$jar" "$BASE/login" | sed -n 's/.*name="csrf" value="\([^"]*\)".*/\1/p' | head -n1)
	curl -s -o /dev/null -c "$jar" -b "$jar" --data-urlencode "csrf=$csrf" \
		--data-urlencode "email=$email" --data-urlencode "password=$password" "$BASE/login"
}
OWNER_JAR=$DATA/owner.jar
MEMBER_JAR=$DATA/member.jar
login "$OWNER_JAR" owner@example.com bench-owner-password
login "$MEMBER_JAR" member@example.com bench-member-password

# median_ms JAR PATH: one warm-up, then the median of RUNS timings.
median_ms() {
	local jar=$1 path=$2 code times=()
	code=$(curl -s -o /dev/null -w '%{http_code}' -b "$jar" "$BASE$path")
	[ "$code" = 200 ] || { echo "pages.sh: GET $path answered $code" >&2; exit 1; }
	for _ in $(seq 1 "$RUNS"); do
		times+=("$(curl -s -o /dev/null -w '%{time_total}' -b "$jar" "$BASE$path")")
	done
	printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END { printf "%.1f", a[int((NR + 1) / 2)] * 1000 }'
}

FIRST_KEY=$(sqlite3 "$DB" "SELECT min(id) FROM api_keys")
OLD_ID=$(sqlite3 "$DB" "SELECT max(id) - 500000 FROM requests")
printf '\n| page | who | median of %d (ms) | target |\n| --- | --- | ---: | --- |\n' "$RUNS"
for spec in \
	"owner|/" \
	"owner|/usage" \
	"owner|/usage?split=model" \
	"owner|/usage?split=key" \
	"owner|/usage?bucket=hour" \
	"owner|/usage?model=gpt-large&key=$FIRST_KEY" \
	"owner|/usage.csv?split=key" \
	"owner|/requests" \
	"owner|/requests?status=error" \
	"owner|/requests?before=$OLD_ID" \
	"member|/" \
	"member|/usage" \
	"member|/requests"; do
	who=${spec%%|*}
	path=${spec#*|}
	jar=$OWNER_JAR
	[ "$who" = member ] && jar=$MEMBER_JAR
	ms=$(median_ms "$jar" "$path")
	verdict=PASS
	awk -v m="$ms" -v t="$TARGET_MS" 'BEGIN { exit !(m >= t) }' && verdict=MISS
	printf '| `GET %s` | %s | %s | < %d ms %s |\n' "$path" "$who" "$ms" "$TARGET_MS" "$verdict"
done
