#!/usr/bin/env bash
# Run kill_session's test suites: pg_regress, isolation and TAP (stress,
# faults, the cluster and the load balancer included), each against its own
# throw-away server with the library preloaded, then a bounded fuzzing run.
#
#   sudo bash tools/test.sh          this machine's PostgreSQL 15: minutes
#   sudo bash tools/test.sh --all    the whole matrix, as CI runs it
#
# As root it installs what is missing, builds and installs the Debian
# package for Debian 12's PostgreSQL 15 and runs every suite against it as
# the unprivileged user "postgres" in a copy of the tree, then the demo, a
# one-minute fuzz and a check that the machine's own PostgreSQL is
# untouched.  With --all it first prepares the servers of the test matrix
# (tools/matrix.sh: 15 built with assertions from Debian's source package,
# Debian 13's PostgreSQL 17 in a chroot, and 18 built with assertions and
# for Valgrind, whose suites also run with every server process under
# valgrind: a subset, or all with KS_VALGRIND=full), builds the extension
# for each with -Werror, runs the suites on each (the Valgrind run in the
# background, beside the others), and fuzzes two minutes.
# It ends with one summary line per server and the time each phase took.
# KS_MATRIX_SERVERS="15 18-cassert" picks servers.  As another user it
# tests Debian's 15 only, with the packages and a writable install.
#
# On Debian's 15 the suites run as a developer runs them from the README,
# `make && make installcheck` as the server's user, but with `env -i` (the
# POSIX locale, no PG_CONFIG, no HOME): tools/suites.sh --pgxs-loop.
# Every driver test that finds its driver missing fails here rather than
# skipping (KS_REQUIRE_DRIVERS=1, which that loop is given too, with
# KS_NODE_PATH), so a green run has run them all.  As root, the network
# fault test (t/017) runs on 15 too, as root: 60 faulted calls, or 300
# with --all.
set -u
cd "$(dirname "$0")/.."
. tools/common.sh
. tools/matrix.sh

all=
case "${1:-}" in
	--all) all=1 ;;
	"") ;;
	*) echo "usage: $0 [--all]" >&2; exit 2 ;;
esac
export KS_REQUIRE_DRIVERS=1

# How long each phase took, for the summary.
phases=()
phase_start=$SECONDS
phase_done() {
	phases+=("$1: $((SECONDS - phase_start)) s")
	phase_start=$SECONDS
}

# The fuzzer needs clang with its sanitizer and libFuzzer runtimes; the
# Debian package needs Debian's build tools and pg_buildext.
KS_EXTRA_PACKAGES="clang libclang-rt-14-dev dpkg-dev debhelper fakeroot
	postgresql-server-dev-all"

start=$SECONDS
tree_status_before=$(git status --porcelain 2>/dev/null)
ks_install_deps || exit 1

if [ "$(id -u)" = 0 ] && [ -n "$all" ]; then
	servers=$KS_MATRIX_SERVERS
	ks_matrix_prepare $servers || { echo "matrix: could not prepare every server"; exit 1; }
else
	servers=15
fi
if [ "$(id -u)" = 0 ]; then
	ks_node_pg || exit 1
fi
phase_done "install and prepare"

status=0
lines=()
# The chroot's mounts go when the run ends, however it ends.
[ "$(id -u)" = 0 ] && trap ks_chroot_umount EXIT

# A copy of the tree for the server user to run the suites in.
ks_copy_tree() {
	local dest=$1
	mkdir -p "$dest"
	git ls-files -z 2>/dev/null | tar --null -T - -cf - | tar -xf - -C "$dest" 2>/dev/null ||
		cp -a . "$dest"
}

# The Debian package for Debian 12's 15, installed on this machine, and the
# regression suite through pg_buildext installcheck, as autopkgtest runs it.
ks_package() {
	local pkgdir package
	echo "== 15: building the Debian package"
	pkgdir=$(mktemp -d /tmp/kill_session_deb.XXXXXX)
	ks_copy_tree "$pkgdir"
	if ! (cd "$pkgdir" && dpkg-buildpackage -us -uc -b) >"$pkgdir.log" 2>&1; then
		tail -30 "$pkgdir.log"
		lines+=("15 package: FAILED to build")
		return 1
	fi
	package=$(ls -t "$(dirname "$pkgdir")"/postgresql-15-kill-session_*.deb | head -1)
	echo "built $(basename "$package")"
	dpkg -i "$package" >/dev/null
	dpkg -S "$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)/kill_session.so"
	echo "== 15: package suite (pg_buildext installcheck)"
	if (cd "$pkgdir" && sh debian/tests/installcheck -m "ISOLATION= TAP_TESTS=") >"$pkgdir.check" 2>&1; then
		lines+=("15 package: passed ($(grep -E -o 'All [0-9]+ tests passed' "$pkgdir.check" | tail -1))")
	else
		cat "$pkgdir.check"
		lines+=("15 package: FAILED")
		return 1
	fi
}

# The layers check on the objects of a build (tools/layers.sh): a circle
# of files fails the run.  Once, on the 15 build.
ks_layers() {
	local out rc
	out=$(bash tools/layers.sh "$1")
	rc=$?
	echo "$out"
	lines+=("$(echo "$out" | head -1)")
	return "$rc"
}

# Build with -Werror and install for one server, then run the suites as the
# server user.  17 runs inside its Debian 13 chroot.  The 15 build's objects
# also go through the layers check.
ks_test_server() {
	local name=$1 install=${2:-install} pgc work log rc
	pgc=$(ks_matrix_pg_config "$name")
	log=$(mktemp /tmp/kill_session_suites.XXXXXX)
	if [ "$name" = 17 ]; then
		work=$KS_TRIXIE/tmp/kill_session_test
		rm -rf "$work"
		ks_copy_tree "$work/src"
		# Debian 13 has node-pg, but no postgres.js: npm's, beside the tree.
		mkdir -p "$work/node_modules"
		cp -a "$KS_NODE_PATH/postgres" "$work/node_modules/"
		ks_chroot sh -c "cd /tmp/kill_session_test/src &&
			make -s PG_CONFIG=$pgc COPT=-Werror && make -s PG_CONFIG=$pgc install >/dev/null &&
			chown -R postgres /tmp/kill_session_test" 2>&1 || { lines+=("$name: FAILED to build"); return 1; }
		ks_chroot runuser -u postgres -- env PG_CONFIG="$pgc" PG_TEST_PORT_DIR="$PG_TEST_PORT_DIR" \
			KS_NODE_PATH=/tmp/kill_session_test/node_modules KS_REQUIRE_DRIVERS=1 \
			bash /tmp/kill_session_test/src/tools/suites.sh "$name" 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
	else
		work=$(mktemp -d /tmp/kill_session_test.XXXXXX)
		ks_copy_tree "$work/src"
		if [ "$name" = 15 ] && [ "$(id -u)" = 0 ] && [ -z "${KS_NO_PACKAGE:-}" ]; then
			# Debian 12's 15 is tested as the package installs it; the
			# tree is still built here with -Werror.
			(cd "$work/src" && make -s PG_CONFIG="$pgc" COPT=-Werror) ||
				{ lines+=("$name: FAILED to build"); return 1; }
			ks_layers "$work/src" || status=1
			(cd "$work/src" && make -s clean)
		elif [ "$install" = noinstall ]; then
			# Another run of this same tree installed it into this server.
			(cd "$work/src" && make -s PG_CONFIG="$pgc" COPT=-Werror) ||
				{ lines+=("$name: FAILED to build"); return 1; }
		else
			(cd "$work/src" && make -s PG_CONFIG="$pgc" COPT=-Werror &&
				make -s PG_CONFIG="$pgc" install >/dev/null) ||
				{ lines+=("$name: FAILED to build"); return 1; }
			[ "$name" = 15 ] && { ks_layers "$work/src" || status=1; }
		fi
		[ "$(id -u)" = 0 ] && chown -R "$KS_SERVER_USER" "$work"
		# The Valgrind server runs the named subset unless told otherwise.
		local valgrind=
		[ "$name" = 18-valgrind ] && valgrind=${KS_VALGRIND:-subset}
		# Debian's 15 runs the suites through PGXS's loop exactly as the
		# README gives it, in a clean environment (env -i: the POSIX
		# locale, no PG_CONFIG), so that the loop a developer runs is the
		# one tested; the other servers through tools/suites.sh's three
		# separate runs.
		local mode=("$name")
		[ "$name" = 15 ] && mode=(--pgxs-loop "15 PGXS loop (env -i, POSIX locale)")
		PG_CONFIG=$pgc KS_VALGRIND=$valgrind ks_as_server_user \
			bash "$work/src/tools/suites.sh" "${mode[@]}" 2>&1 | tee "$log"
		rc=${PIPESTATUS[0]}
	fi
	lines+=("$(tail -1 "$log")")
	if [ "$rc" = 0 ]; then
		rm -rf "$work" "$log"
	else
		echo "$name: test tree kept in $work"
	fi
	return "$rc"
}

# The network fault test needs root for its namespaces: it runs as root,
# its servers as the server user (t/017_network_faults.pl).
ks_faults() {
	local name=$1 work log
	work=$(mktemp -d /tmp/kill_session_faults.XXXXXX)
	ks_copy_tree "$work"
	log=$work.log
	echo
	echo "== $name: network faults (as root, each node in its own namespace)"
	# 300 faulted calls with --all, 60 otherwise.
	if (cd "$work" && PG_CONFIG=$(ks_matrix_pg_config "$name") KS_FAULT_USER=$KS_SERVER_USER \
		KS_FAULT_CALLS=${KS_FAULT_CALLS:-$([ -n "$all" ] && echo 300 || echo 60)} \
		prove -v t/017_network_faults.pl) >"$log" 2>&1; then
		grep -E "^# (outcomes|slowest)|^(ok|not ok)|^Files=" "$log"
		lines+=("$name network faults: passed ($(grep -E -o 'Files=[0-9]+, Tests=[0-9]+' "$log" | tail -1); $(grep -E -o '[0-9]+ faulted calls' "$log" | head -1))")
		rm -rf "$work" "$log"
	else
		grep -v "^# call" "$log" | tail -40
		lines+=("$name network faults: FAILED (log in $log)")
		return 1
	fi
}

# Concurrent runs share one directory of reserved TCP ports, the chroot's
# too, so that no two test servers pick the same port.
export PG_TEST_PORT_DIR=/tmp/kill_session_ports
mkdir -p "$PG_TEST_PORT_DIR"
chmod 1777 "$PG_TEST_PORT_DIR"
if [ "$(id -u)" = 0 ] && [[ " $servers " == *" 17 "* ]]; then
	mkdir -p "$KS_TRIXIE$PG_TEST_PORT_DIR"
	mountpoint -q "$KS_TRIXIE$PG_TEST_PORT_DIR" ||
		mount --bind "$PG_TEST_PORT_DIR" "$KS_TRIXIE$PG_TEST_PORT_DIR"
fi

# The Valgrind server's suites are bound by the CPU, the others mostly wait
# for sessions to end: with --all the Valgrind run goes in the background,
# beside the other servers one after another, and its output is printed
# when it ends.  It installs into the 18 build that 18-cassert then uses
# as it is.
valgrind_pid=
if [[ " $servers " == *" 18-valgrind "* ]]; then
	servers=$(echo " $servers " | sed 's/ 18-valgrind / /')
	valgrind_log=$(mktemp /tmp/kill_session_valgrind.XXXXXX)
	valgrind_lines=$valgrind_log.lines
	(
		lines=()
		vstart=$SECONDS
		ks_test_server 18-valgrind
		vrc=$?
		printf '%s\n' "${lines[@]}" >"$valgrind_lines"
		echo "18-valgrind suites (in the background): $((SECONDS - vstart)) s" >>"$valgrind_lines"
		exit $vrc
	) >"$valgrind_log" 2>&1 &
	valgrind_pid=$!
	echo "== 18-valgrind: suites started in the background (log: $valgrind_log)"
	# Let it build and install before anything else uses that server.
	while kill -0 "$valgrind_pid" 2>/dev/null && ! grep -q "^== 18-valgrind" "$valgrind_log"; do
		sleep 1
	done
fi

for name in $servers; do
	if [ "$name" = 15 ] && [ "$(id -u)" = 0 ] && [ -z "${KS_NO_PACKAGE:-}" ]; then
		ks_package || status=1
		phase_done "15 package"
	elif [ "$name" = 15 ] && [ "$(id -u)" != 0 ]; then
		ks_build_install || exit 1
	fi
	install=install
	[ "$name" = 18-cassert ] && [ -n "$valgrind_pid" ] && install=noinstall
	ks_test_server "$name" "$install" || status=1
	phase_done "$name suites"
	if [ "$name" = 15 ] && [ "$(id -u)" = 0 ]; then
		ks_faults "$name" || status=1
		phase_done "$name network faults"
	fi
done

# The reference example as tools/demo.sh plays it, next to a process of
# another user that looks like the demo's helpers: the demo must end only
# what it started.
ks_demo() {
	local dir out bystander
	echo
	echo "== demo"
	dir=$(mktemp -d /tmp/kill_session_demo.XXXXXX)
	chown "$KS_SERVER_USER" "$dir"
	runuser -u nobody -- sleep 600 &
	bystander=$!
	out=$(KS_DEMO_DIR=$dir/demo KS_DEMO_INSTALLED=1 bash tools/demo.sh 2>&1)
	echo "$out" | tail -25
	runuser -u "$KS_SERVER_USER" -- "$(dirname "$PG_CONFIG")/pg_ctl" -D "$dir/demo/data" -m fast stop >/dev/null 2>&1
	local missing=""
	for want in "HINT:  On PostgreSQL run: SELECT kill_session(" \
		"HINT:  On PostgreSQL run: CREATE USER kill_user PASSWORD '<password>';" \
		"HINT:  On PostgreSQL run: ALTER ROLE kill_user LOGIN;" \
		"DETAIL:  Only superusers can kill sessions of superusers." \
		"was killed by itself." "killed by session"; do
		grep -qF "$want" <<<"$out" || missing="$missing [$want]"
	done
	if ! kill -0 "$bystander" 2>/dev/null; then
		lines+=("demo: FAILED (it ended another user's process)")
		return 1
	fi
	kill "$bystander"
	rm -rf "$dir"
	if [ -n "$missing" ]; then
		lines+=("demo: FAILED (missing:$missing)")
		return 1
	fi
	lines+=("demo: passed (the reference example plays; nothing but its own processes ended)")
}
if [ "$(id -u)" = 0 ] && [[ " $servers " == *" 15 "* ]]; then
	ks_demo || status=1
	phase_done demo
fi

echo
echo "== fuzz"
fuzzdir=$(mktemp -d /tmp/kill_session_fuzz.XXXXXX)
ks_copy_tree "$fuzzdir"
[ "$(id -u)" = 0 ] && chown -R "$KS_SERVER_USER" "$fuzzdir"
# Each of the two fuzzers: 30 s, or a minute with --all.
fuzz_seconds=${KS_FUZZ_SECONDS:-$([ -n "$all" ] && echo 60 || echo 30)}
if (cd "$fuzzdir" && ks_as_server_user bash fuzz/run.sh "$fuzz_seconds") 2>&1 | tee "$fuzzdir.log"; [ "${PIPESTATUS[0]}" = 0 ]; then
	lines+=("$(grep '^fuzz:' "$fuzzdir.log" | tail -1)")
	rm -rf "$fuzzdir"
else
	lines+=("fuzz: FAILED (tree kept in $fuzzdir)")
	status=1
fi
phase_done fuzz

if [ -n "$valgrind_pid" ]; then
	echo
	echo "== 18-valgrind: waiting for the background run"
	wait "$valgrind_pid" || status=1
	cat "$valgrind_log"
	if [ -s "$valgrind_lines" ]; then
		mapfile -t vlines <"$valgrind_lines"
		lines+=("${vlines[@]:0:${#vlines[@]}-1}")
		phases+=("${vlines[-1]}")
	else
		lines+=("18-valgrind: FAILED (the background run left no summary)")
		status=1
	fi
	phase_done "waiting for 18-valgrind"
	rm -f "$valgrind_log" "$valgrind_lines"
fi

# The machine's own PostgreSQL is untouched: every installed postgresql-*
# package but this extension's verifies, and no file under PostgreSQL's
# directories is owned by no package.  The run left the tree as it found
# it (on CI, with CI=true: clean).
ks_check_untouched() {
	local changed stray pkgs dirty
	echo
	echo "== the machine's PostgreSQL and the tree"
	pkgs=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' 'postgresql-*' 2>/dev/null |
		awk '$2 ~ /^ii/ && $1 !~ /-kill-session$/ { print $1 }')
	changed=$(echo "$pkgs" | xargs -r dpkg --verify 2>&1)
	stray=$(comm -23 \
		<(find /usr/lib/postgresql /usr/share/postgresql \( -type f -o -type l \) 2>/dev/null | sort) \
		<(cat /var/lib/dpkg/info/*.list | sort -u))
	# What the run itself changed in the tree; on CI's fresh clone, anything.
	dirty=$(diff <(echo "$tree_status_before") <(git status --porcelain 2>/dev/null) | sed -n 's/^> //p')
	[ "${CI:-}" = true ] && dirty=$(git status --porcelain 2>/dev/null)
	[ -n "$changed" ] && { echo "files of installed packages changed:"; echo "$changed" | head -20; }
	[ -n "$stray" ] && { echo "files no package owns:"; echo "$stray" | head -20; }
	[ -n "$dirty" ] && { echo "the tree changed:"; echo "$dirty" | head -20; }
	if [ -n "$changed$stray$dirty" ]; then
		lines+=("machine: FAILED (see above)")
		return 1
	fi
	lines+=("machine: untouched ($(echo "$pkgs" | wc -w) postgresql packages verify, no stray file under /usr/lib/postgresql or /usr/share/postgresql, clean tree)")
}
if [ "$(id -u)" = 0 ]; then
	ks_check_untouched || status=1
fi

phase_done "machine check"

echo
echo "== summary ($((SECONDS - start)) s)"
printf '%s\n' "${lines[@]}"
echo "time: $(printf '%s, ' "${phases[@]}" | sed 's/, $//')"
exit $status
