#!/usr/bin/env bash
# A three-node streaming cluster on this machine, and the load balancer
# example of doc/clusters.md ("The load balancer, on one machine"):
#
#   node 1  the primary        127.0.0.1:$KS_CLUSTER_PORT      (default 55431)
#   node 2  a hot standby      127.0.0.1:$KS_CLUSTER_PORT + 1
#   node 3  a hot standby      127.0.0.1:$KS_CLUSTER_PORT + 2
#   HAProxy round robin        127.0.0.1:$KS_CLUSTER_PORT + 3
#
# Each node preloads kill_session with its kill_session.node_id and speaks
# TLS with a certificate made for the run; the primary holds the foreign
# servers (sslmode verify-full against the run's CA, channel_binding
# require, and require_auth scram-sha-256 from 16 on), the role dba's user
# mappings and the directory kill_session_nodes, which the standbys receive
# by replication.  Then, through HAProxy, as dba: a new connection lists
# the cluster, and another new connection, on whatever node it lands,
# kills a session of node 1.
#
#   bash tools/cluster.sh             (KEEP=1 leaves the cluster running)
#   bash tools/cluster.sh --faults    (as root: the network fault loop)
#
# --faults runs t/017_network_faults.pl for a user to watch: each node in a
# network namespace of its own, links cut at random while calls go between
# the nodes, every call's outcome printed as it comes (KS_FAULT_CALLS
# calls, 30 by default), then the checks.  It needs root for the
# namespaces and removes them when it ends.
#
# Needs kill_session installed for the server pg_config names (default:
# Debian's 15), postgres_fdw (in Debian's server package), haproxy and
# openssl.
# Everything it writes is under a new directory in /tmp.  Run as root, it
# runs the servers as the user postgres.
set -eu

if [ "${1:-}" = --faults ]; then
	[ "$(id -u)" = 0 ] || { echo "--faults needs root, for the network namespaces" >&2; exit 1; }
	cd "$(dirname "$0")/.."
	exec env PG_CONFIG="${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}" \
		KS_FAULT_CALLS="${KS_FAULT_CALLS:-30}" prove -v t/017_network_faults.pl
fi

if [ "$(id -u)" = 0 ]; then
	exec runuser -u postgres -- env PATH="$PATH" PG_CONFIG="${PG_CONFIG:-}" \
		KS_CLUSTER_PORT="${KS_CLUSTER_PORT:-}" KEEP="${KEEP:-}" bash -s <"$0"
fi

PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/15/bin/pg_config}
BIN=$("$PG_CONFIG" --bindir)
PORT=${KS_CLUSTER_PORT:-55431}
LB_PORT=$((PORT + 3))
DIR=$(mktemp -d /tmp/ks-cluster.XXXXXX)

stop_all() {
	[ -f "$DIR/haproxy.pid" ] && kill "$(cat "$DIR/haproxy.pid")" 2>/dev/null || true
	for n in 3 2 1; do
		[ -f "$DIR/node$n/postmaster.pid" ] &&
			"$BIN/pg_ctl" -D "$DIR/node$n" -m fast -w stop >/dev/null 2>&1 || true
	done
}
[ -n "${KEEP:-}" ] || trap stop_all EXIT

sql() {							# sql NODE_PORT [psql options] SQL
	local port=$1
	shift
	"$BIN/psql" -X -h 127.0.0.1 -p "$port" -d postgres -v ON_ERROR_STOP=1 "$@"
}

echo "== a CA, and a certificate of 127.0.0.1 for the nodes"
mkdir "$DIR/tls"
(
	cd "$DIR/tls"
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=kill_session-cluster-ca \
		-keyout ca.key -out ca.crt
	openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout node.key -out node.csr
	printf 'subjectAltName=IP:127.0.0.1\n' >san.ext
	openssl x509 -req -in node.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
		-extfile san.ext -out node.crt
	chmod 600 node.key
) >"$DIR/openssl.log" 2>&1

echo "== node 1, the primary, on port $PORT"
"$BIN/initdb" -D "$DIR/node1" -A trust -U postgres >"$DIR/initdb.log"
cat >>"$DIR/node1/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$DIR'
port = $PORT
shared_preload_libraries = 'kill_session'
kill_session.node_id = 1
ssl = on
ssl_cert_file = '$DIR/tls/node.crt'
ssl_key_file = '$DIR/tls/node.key'
EOF
# dba comes over TCP with TLS and SCRAM; the rest as initdb set it up.
{
	echo "hostssl all dba 127.0.0.1/32 scram-sha-256"
	echo "host all dba 127.0.0.1/32 reject"
	cat "$DIR/node1/pg_hba.conf"
} >"$DIR/hba" && mv "$DIR/hba" "$DIR/node1/pg_hba.conf"
"$BIN/pg_ctl" -D "$DIR/node1" -l "$DIR/node1.log" -w start >/dev/null
sql $PORT -q -c "CREATE EXTENSION kill_session" -c "CREATE EXTENSION postgres_fdw" \
	-c "CREATE ROLE app LOGIN" -c "CREATE ROLE dba LOGIN PASSWORD 'dba-secret'" \
	-c "GRANT ALTER SYSTEM TO dba" -c "GRANT pg_read_all_stats TO dba"

for n in 2 3; do
	port=$((PORT + n - 1))
	echo "== node $n, a hot standby, on port $port"
	"$BIN/pg_basebackup" -h 127.0.0.1 -p $PORT -U postgres -D "$DIR/node$n" -R -X stream
	cat >>"$DIR/node$n/postgresql.conf" <<EOF
port = $port
kill_session.node_id = $n
EOF
	"$BIN/pg_ctl" -D "$DIR/node$n" -l "$DIR/node$n.log" -w start >/dev/null
done

echo "== on the primary: a foreign server over TLS and dba's user mapping per node, and the directory"
require_auth=
[ "$("$PG_CONFIG" --version | sed 's/^PostgreSQL \([0-9]*\).*/\1/')" -ge 16 ] &&
	require_auth=", require_auth 'scram-sha-256'"
for n in 1 2 3; do
	port=$((PORT + n - 1))
	sql $PORT -q <<EOF
CREATE SERVER node$n FOREIGN DATA WRAPPER postgres_fdw
    OPTIONS (host '127.0.0.1', port '$port', dbname 'postgres',
             sslmode 'verify-full', sslrootcert '$DIR/tls/ca.crt',
             channel_binding 'require'$require_auth);
CREATE USER MAPPING FOR dba SERVER node$n OPTIONS (user 'dba', password 'dba-secret');
GRANT USAGE ON FOREIGN SERVER node$n TO dba;
INSERT INTO kill_session_nodes VALUES ($n, 'node$n');
EOF
done
sql $PORT -c "TABLE kill_session_nodes"
until [ "$(sql $((PORT + 2)) -Atc 'SELECT count(*) FROM kill_session_nodes')" = 3 ]; do
	sleep 0.1
done

echo "== HAProxy, round robin over the three nodes, on port $LB_PORT"
cat >"$DIR/haproxy.cfg" <<EOF
global
	maxconn 100
defaults
	mode tcp
	timeout connect 5s
	timeout client 10m
	timeout server 10m
frontend postgres
	bind 127.0.0.1:$LB_PORT
	default_backend nodes
backend nodes
	balance roundrobin
	server node1 127.0.0.1:$PORT
	server node2 127.0.0.1:$((PORT + 1))
	server node3 127.0.0.1:$((PORT + 2))
EOF
/usr/sbin/haproxy -D -p "$DIR/haproxy.pid" -f "$DIR/haproxy.cfg"

# Two sessions of app on every node, each running a long statement.
for n in 1 2 3; do
	for i in 1 2; do
		"$BIN/psql" -X -h 127.0.0.1 -p $((PORT + n - 1)) -U app -d postgres \
			-c "SELECT pg_sleep(3600) /* app on node $n */" >/dev/null 2>&1 &
	done
done
export PGPASSWORD=dba-secret PGSSLMODE=verify-full PGSSLROOTCERT=$DIR/tls/ca.crt
until [ "$(sql $((PORT + 2)) -U dba -Atc "SELECT count(*) FROM cluster_processlist WHERE \"user\" = 'app' AND state = 'ACTIVE'")" = 6 ]; do
	sleep 0.1
done

echo "== a new connection of dba through HAProxy lists the cluster"
sql $LB_PORT -U dba <<'EOF'
SELECT current_setting('kill_session.node_id') AS "this connection is on node";
SELECT node, id, "user", command, state, info
FROM cluster_processlist WHERE "user" = 'app' ORDER BY node, id;
EOF
victim=$(sql $LB_PORT -U dba -Atc "SELECT min(id) FROM cluster_processlist WHERE node = 1 AND \"user\" = 'app'")

echo "== another new connection of dba through HAProxy kills session $victim of node 1"
sql $LB_PORT -U dba <<EOF
SELECT current_setting('kill_session.node_id') AS "this connection is on node",
       kill_session('$victim');
EOF

echo "== what the two nodes logged"
sleep 0.2
grep -h -e "forwards to node" -e "killed by .* on behalf of" "$DIR"/node[123].log |
	sed 's/^[^]]*] //'

echo "== and a third one lists the cluster again: $victim is gone, nothing else is"
sql $LB_PORT -U dba <<'EOF'
SELECT current_setting('kill_session.node_id') AS "this connection is on node";
SELECT node, id, "user", command, state
FROM cluster_processlist WHERE "user" = 'app' ORDER BY node, id;
EOF

if [ -n "${KEEP:-}" ]; then
	echo "The cluster keeps running under $DIR: HAProxy on port $LB_PORT, nodes on $PORT to $((PORT + 2))."
else
	echo "Stopping the cluster ($DIR)."
fi
