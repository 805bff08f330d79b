#!/bin/sh
# pg-throwaway.sh - a throwaway PostgreSQL cluster for tests and benchmarks, reachable only
# through a Unix socket in its own directory (no TCP port, so clusters never collide).
#   scripts/pg-throwaway.sh start DIR     make DIR (0755) if missing, initdb into DIR/data if
#                                         missing, start, create database tollgate, print
#                                         the URL: postgres://tollgate@/tollgate?host=DIR
#   scripts/pg-throwaway.sh restart DIR   the same for an existing cluster (no initdb); a
#                                         running server is stopped (-m fast) first
#   scripts/pg-throwaway.sh stop DIR      pg_ctl stop -m fast (nothing to do if not running)
#   scripts/pg-throwaway.sh kill DIR      pg_ctl stop -m immediate (a crash: recovery on start)
#   scripts/pg-throwaway.sh destroy DIR   stop, then rm -rf DIR
# The superuser is tollgate, auth is trust (any OS user on this host may connect), the
# server log is DIR/log. fsync and full_page_writes are off (the data do not survive an OS
# crash, only a server crash); synchronous_commit stays on.
# DIR must be short: the socket DIR/.s.PGSQL.5432 must fit a Unix socket path (107 bytes),
# so DIR is at most 93 bytes once made absolute; and only [A-Za-z0-9._/-] may appear in it.
# The URL names no port: it relies on the default 5432, so do not set PGPORT for clients.
# As root, the server binaries run as the postgres system user (runuser), which then owns
# DIR; otherwise they run as the calling user. The binaries are the newest
# /usr/lib/postgresql/*/bin, or $PG_BIN.
set -eu

PORT=5432
WAIT_SECS=30

die() {
	echo "pg-throwaway: $*" >&2
	exit 1
}

usage() {
	echo "usage: pg-throwaway.sh start|restart|stop|kill|destroy DIR" >&2
	exit 2
}

[ $# -eq 2 ] || usage
cmd=$1
DIR=$2
case $cmd in start | restart | stop | kill | destroy) ;; *) usage ;; esac
[ -n "$DIR" ] || usage

# The server binaries: $PG_BIN, or the newest /usr/lib/postgresql/N/bin.
if [ -z "${PG_BIN:-}" ]; then
	PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
fi
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ] || [ ! -x "$PG_BIN/pg_ctl" ]; then
	die "PostgreSQL server not installed (no initdb/pg_ctl in" \
		"${PG_BIN:-/usr/lib/postgresql/*/bin}; install postgresql or set PG_BIN)"
fi
PSQL=$PG_BIN/psql
[ -x "$PSQL" ] || PSQL=$(command -v psql) || die "psql not found (in $PG_BIN or on PATH)"
ISREADY=$PG_BIN/pg_isready
[ -x "$ISREADY" ] || ISREADY=

# Our own clients must not be steered elsewhere by the caller's libpq environment.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGDATABASE PGSERVICE PGSERVICEFILE PGOPTIONS \
	PGPASSWORD PGPASSFILE PGSSLMODE 2>/dev/null || true

if [ "$(id -u)" -eq 0 ]; then
	AS_ROOT=1
	id postgres >/dev/null 2>&1 ||
		die "running as root, but there is no postgres user to run the server as"
	command -v runuser >/dev/null 2>&1 || die "running as root, but runuser (util-linux) is missing"
else
	AS_ROOT=
fi

# Run a server binary as the cluster's owner, from a directory it can read.
pg() {
	if [ -n "$AS_ROOT" ]; then
		(cd "$DIR" && runuser -u postgres -- "$@")
	else
		(cd "$DIR" && "$@")
	fi
}

# Check what the socket path needs of DIR (made absolute), before making anything.
check_dir() {
	case $DIR in /*) ;; *) DIR=$(pwd -P)/$DIR ;; esac
	case $DIR in *[!A-Za-z0-9._/-]*) die "DIR may only hold [A-Za-z0-9._/-]: $DIR" ;; esac
	n=$(printf %s "$DIR" | wc -c)
	[ "$n" -le 93 ] || die "DIR is $n bytes, at most 93 fit a Unix socket path: $DIR"
	DATA=$DIR/data
}

# DIR without symlinks or ./.. (once it exists), checked again; sets DATA and URL.
resolve_dir() {
	DIR=$(cd "$DIR" && pwd -P) || die "cannot enter $DIR"
	check_dir
	URL="postgres://tollgate@/tollgate?host=$DIR"
}

# pg_ctl status: 0 running, 3 not running, 4 no data directory.
running() {
	[ -f "$DATA/PG_VERSION" ] || return 1
	pg "$PG_BIN/pg_ctl" status -D "$DATA" >/dev/null 2>&1
}

stop_server() { # MODE; fails (with the message) only if the server is still running
	running || return 0
	out=$(pg "$PG_BIN/pg_ctl" stop -D "$DATA" -m "$1" -w -t "$WAIT_SECS" 2>&1) && return 0
	running || return 0
	echo "pg-throwaway: pg_ctl stop -m $1: $out" >&2
	return 1
}

sql() { # DB SQL: run as the calling user, through the socket, like a client would
	"$PSQL" -X -q -At -v ON_ERROR_STOP=1 -h "$DIR" -p "$PORT" -U tollgate -d "$1" -c "$2"
}

start() { # INIT: 1 to initdb when there is no cluster yet
	check_dir
	if [ "$1" != 1 ] && [ ! -f "$DATA/PG_VERSION" ]; then
		die "no cluster in $DATA (use start)"
	fi
	if [ ! -d "$DIR" ]; then
		{ mkdir -p "$DIR" && chmod 0755 "$DIR"; } || die "cannot make $DIR"
	fi
	resolve_dir
	if [ -n "$AS_ROOT" ]; then
		[ "$(stat -c %U "$DIR")" = postgres ] || chown -R postgres:postgres "$DIR"
		runuser -u postgres -- test -w "$DIR" ||
			die "user postgres cannot write $DIR (check the modes of its parent directories)"
	fi

	if [ ! -f "$DATA/PG_VERSION" ]; then
		pg "$PG_BIN/initdb" -D "$DATA" -U tollgate --auth=trust -E UTF8 --locale=C \
			--no-sync >"$DIR/initdb.log" 2>&1 ||
			{ cat "$DIR/initdb.log" >&2; die "initdb into $DATA failed"; }
		echo "include 'tollgate.conf'" >>"$DATA/postgresql.conf"
	fi
	# Rewritten on each start, so the socket follows DIR.
	cat >"$DATA/tollgate.conf" <<EOF
# Written by scripts/pg-throwaway.sh on each start.
listen_addresses = ''
unix_socket_directories = '$DIR'
port = $PORT
fsync = off
full_page_writes = off
max_connections = 300
shared_buffers = 64MB
EOF
	[ -z "$AS_ROOT" ] || chown postgres:postgres "$DATA/tollgate.conf"

	[ "$1" = 1 ] || stop_server fast || die "cannot stop the server in $DATA to restart it"
	if ! running; then
		out=$(pg "$PG_BIN/pg_ctl" start -D "$DATA" -l "$DIR/log" -w -t "$WAIT_SECS" 2>&1) || {
			echo "$out" >&2
			tail -n 20 "$DIR/log" >&2 2>/dev/null || true
			die "server in $DATA did not start (log: $DIR/log)"
		}
	fi

	# pg_ctl -w waits already; this covers a server that was still starting.
	i=0
	while :; do
		if [ -n "$ISREADY" ]; then
			"$ISREADY" -q -h "$DIR" -p "$PORT" -U tollgate -d postgres && break
		else
			sql postgres 'select 1' >/dev/null 2>&1 && break
		fi
		i=$((i + 1))
		[ "$i" -lt $((WAIT_SECS * 10)) ] ||
			die "server in $DATA not accepting connections after $WAIT_SECS s (log: $DIR/log)"
		sleep 0.1
	done

	if [ -z "$(sql postgres "select 1 from pg_database where datname = 'tollgate'")" ]; then
		sql postgres 'create database tollgate' || die "cannot create database tollgate"
	fi
	"$PSQL" -X -q -At "$URL" -c 'select 1' >/dev/null || die "cannot connect to $URL"
	echo "$URL"
}

case $cmd in
start) start 1 ;;
restart) start 0 ;;
stop | kill | destroy)
	[ -d "$DIR" ] || exit 0
	resolve_dir
	if [ "$cmd" = kill ]; then
		stop_server immediate || die "cannot stop the server in $DATA"
	else
		stop_server fast || stop_server immediate || die "cannot stop the server in $DATA"
	fi
	[ "$cmd" != destroy ] || rm -rf "$DIR"
	;;
esac
