# Shared by tools/demo.sh, tools/test.sh and bench/run.sh: install what is
# missing, then build and install kill_session.  Sourced, not run.

PG_MAJOR=${PG_MAJOR:-15}
PG_CONFIG=${PG_CONFIG:-/usr/lib/postgresql/$PG_MAJOR/bin/pg_config}
export PG_CONFIG

# The Debian packages the build, the tests and the benchmarks need.
KS_PACKAGES="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR
	postgresql-contrib libkrb5-dev libpq-dev libipc-run-perl make gcc openssl iproute2
	pgbouncer haproxy python3-psycopg python3-psycopg2 libpostgresql-jdbc-java
	default-jdk-headless"

ks_install_deps() {
	local missing=""
	local pkg
	for pkg in $KS_PACKAGES ${KS_EXTRA_PACKAGES:-}; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $pkg"
	done
	[ -z "$missing" ] && return 0
	if [ "$(id -u)" != 0 ]; then
		echo "missing packages:$missing (run as root to install them)" >&2
		return 1
	fi
	echo "== installing:$missing"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	# Keep Debian from creating and starting its own cluster.
	mkdir -p /etc/postgresql-common/createcluster.d
	echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/kill_session.conf
	apt-get install -y -q --no-install-recommends $missing
}

# node-postgres and postgres.js for the driver tests: Debian's node-pg does
# not install beside this machine's Node.js, and Debian has no postgres.js,
# so the npm packages, into the matrix cache.
ks_node_pg() {
	local dir=${KS_MATRIX_CACHE:-/var/tmp/kill_session-matrix}/npm
	if [ ! -f "$dir/node_modules/pg/package.json" ] || [ ! -f "$dir/node_modules/postgres/package.json" ]; then
		command -v npm >/dev/null || { echo "npm is missing: the Node.js driver tests cannot run" >&2; return 1; }
		mkdir -p "$dir"
		(cd "$dir" && npm install --no-audit --no-fund --cache "$dir/.npm" pg@8 postgres@3 >"$dir/install.log" 2>&1) ||
			{ tail -5 "$dir/install.log"; return 1; }
	fi
	export KS_NODE_PATH=$dir/node_modules
}

ks_build_install() {
	echo "== building kill_session"
	make -s PG_CONFIG="$PG_CONFIG" clean >/dev/null
	make -s PG_CONFIG="$PG_CONFIG"
	if [ "$(id -u)" = 0 ]; then
		make -s PG_CONFIG="$PG_CONFIG" install >/dev/null
	else
		make -s PG_CONFIG="$PG_CONFIG" install >/dev/null ||
			{ echo "could not install into $($PG_CONFIG --pkglibdir); run as root" >&2; return 1; }
	fi
}

# Run a command as the unprivileged user that owns the servers: PostgreSQL
# refuses to run as root.
KS_SERVER_USER=${KS_SERVER_USER:-postgres}
ks_as_server_user() {
	if [ "$(id -u)" = 0 ]; then
		runuser -u "$KS_SERVER_USER" -- env PATH="$PATH" PG_CONFIG="$PG_CONFIG" \
			KS_NODE_PATH="${KS_NODE_PATH:-}" KS_VALGRIND="${KS_VALGRIND:-}" \
			KS_REQUIRE_DRIVERS="${KS_REQUIRE_DRIVERS:-}" \
			PG_TEST_PORT_DIR="${PG_TEST_PORT_DIR:-}" "$@"
	else
		"$@"
	fi
}
