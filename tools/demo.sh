#!/usr/bin/env bash
# Install kill_session, start a throw-away PostgreSQL with it preloaded, and
# play the ALTER SYSTEM KILL SESSION example of the OceanBase reference,
# printing every statement with its real output.
#
#   sudo bash tools/demo.sh
#
# The server is left running; the last lines say how to connect and stop.
set -eu
cd "$(dirname "$0")/.."
. tools/common.sh

ks_install_deps
# The test command plays the demo on the package it has just installed.
[ -n "${KS_DEMO_INSTALLED:-}" ] || ks_build_install

BIN=$("$PG_CONFIG" --bindir)
DEMO=${KS_DEMO_DIR:-/var/tmp/kill_session_demo}
DATA=$DEMO/data

# An earlier demo server makes way for the new one.
if [ -f "$DATA/postmaster.pid" ]; then
	ks_as_server_user "$BIN/pg_ctl" -D "$DATA" -m fast stop >/dev/null || true
fi
rm -rf "$DEMO"
mkdir -p "$DEMO"
[ "$(id -u)" = 0 ] && chown "$KS_SERVER_USER" "$DEMO"

# The first free port from 5433 on.
port=5433
while (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
	port=$((port + 1))
done

echo "== starting PostgreSQL on 127.0.0.1:$port (data in $DATA)"
ks_as_server_user "$BIN/initdb" -D "$DATA" -U postgres -A trust --no-sync >/dev/null
cat >>"$DATA/postgresql.conf" <<CONF
shared_preload_libraries = 'kill_session'	# required by kill_session
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DEMO'
CONF
ks_as_server_user "$BIN/pg_ctl" -D "$DATA" -l "$DEMO/server.log" -w start >/dev/null

psql_as() {
	local user=$1
	shift
	ks_as_server_user "$BIN/psql" -X -e -v ON_ERROR_STOP=0 \
		-h 127.0.0.1 -p "$port" -U "$user" -d postgres "$@"
}

echo
echo "== as SYS (the superuser postgres): the reference example typed as written;"
echo "   each Oracle statement PostgreSQL rejects gives its PostgreSQL form"
psql_as postgres <<'SQL' 2>&1
CREATE EXTENSION kill_session;
CREATE USER kill_user IDENTIFIED BY killuser123;
CREATE USER kill_user PASSWORD 'killuser123';
GRANT CREATE SESSION TO kill_user;
ALTER ROLE kill_user LOGIN;
GRANT ALTER SYSTEM TO kill_user;
-- PostgreSQL shows other roles' statements only to pg_read_all_stats.
GRANT pg_read_all_stats TO kill_user;
CREATE USER app_user;
SQL

# Two idle sessions to look at: the superuser's and an application's.  Each
# psql reads from a pipe that a sleep of ours holds open; ending that sleep
# (by its PID) ends the session.
sleepers=()
idle_session() {
	local pipe="$DEMO/idle_$1"
	rm -f "$pipe"
	mkfifo -m 644 "$pipe"
	ks_as_server_user "$BIN/psql" -X -q -h 127.0.0.1 -p "$port" \
		-U "$1" -d postgres <"$pipe" >/dev/null 2>&1 &
	sleep 600 >"$pipe" &
	sleepers+=($!)
}
idle_session postgres
idle_session app_user
for _ in $(seq 50); do
	n=$(ks_as_server_user "$BIN/psql" -X -Atq -h 127.0.0.1 -p "$port" -U postgres -d postgres \
		-c "SELECT count(*) FROM processlist WHERE command = 'Sleep'")
	[ "$n" -ge 2 ] && break
	sleep 0.1
done

echo
echo "== as KILL_USER: list the sessions, end the application's, then its own"
psql_as kill_user <<'SQL' 2>&1 || true
\pset null NULL
SHOW PROCESSLIST;
SELECT kill_session(id::text) FROM processlist WHERE "user" = 'app_user';
SELECT kill_session(id::text) FROM processlist WHERE "user" = 'postgres';
SELECT id AS my_id FROM processlist WHERE pid = pg_backend_pid() \gset
ALTER SYSTEM KILL SESSION :'my_id';
SELECT kill_session(:'my_id');
SELECT 'still here?';
SQL

echo
echo "== the server log recorded the kills"
grep -E "killed by session" "$DEMO/server.log" | sed 's/^[^]]*] /  /'

cat <<EOF

kill_session is running on 127.0.0.1:$port.
  connect: psql -h 127.0.0.1 -p $port -U postgres postgres
  stop:    runuser -u $KS_SERVER_USER -- $BIN/pg_ctl -D $DATA stop
EOF

# The superuser's idle session is not kill_user's to end; end it here.
kill "${sleepers[@]}" 2>/dev/null || true
