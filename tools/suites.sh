#!/usr/bin/env bash
# Run the regression, isolation and TAP suites of kill_session against the
# server whose pg_config is $PG_CONFIG, each suite on its own throw-away
# server, in this (writable) tree; then read every server log the suites
# left for a failed assertion (TRAP), a PANIC or a process that died of a
# signal other than the tests' own SIGKILL.  The last line is the summary:
#
#   NAME (PostgreSQL x.y): regress ..., isolation ..., tap ..., logs ...
#
#   PG_CONFIG=... bash tools/suites.sh NAME
#
# With --pgxs-loop it runs instead PGXS's loop as the README gives it,
# `make && make installcheck` (the three suites in one make, which stops at
# the first that fails), in a clean environment: `env -i`, with PATH the
# server's bin directory then /usr/bin:/bin, so the POSIX locale, no
# PG_CONFIG (pg_config is found in PATH), no HOME or USER.  Only the test
# harness's own variables go along, where set: KS_NODE_PATH and
# KS_REQUIRE_DRIVERS (the drivers, as doc/testing.md says) and
# PG_TEST_PORT_DIR (the ports reserved by concurrent runs).  Its summary:
#
#   NAME: passed (PostgreSQL x.y; regress ..., isolation ..., tap ...; logs ...)
#
#   PG_CONFIG=... bash tools/suites.sh --pgxs-loop NAME
#
# Run it as the unprivileged user that owns the tree; the library must be
# installed into that server already (tools/test.sh does both).
set -u
cd "$(dirname "$0")/.."
pgxs_loop=
if [ "${1:-}" = --pgxs-loop ]; then
	pgxs_loop=1
	shift
fi
name=${1:-server}
PG_CONFIG=${PG_CONFIG:-pg_config}
version=$("$PG_CONFIG" --version)
status=0
summary=()

# What a runner said at its end: pg_regress's "All N tests passed" line,
# prove's "Files=..., Tests=..." line.
runner_line() {
	grep -E -o "(All [0-9]+ tests passed|[0-9]+ of [0-9]+ tests failed|Files=[0-9]+, Tests=[0-9]+)" "$1" |
		tail -1
}

# What a failed suite left: the diffs, the ends of the TAP files' logs.
show_failures() {
	local f
	for f in regression.diffs output_iso/regression.diffs; do
		[ -f "$f" ] && { echo "---- $f"; head -200 "$f"; }
	done
	for f in tmp_check/log/regress_log_*; do
		[ -f "$f" ] && { echo "---- $f (last lines)"; tail -40 "$f"; }
	done
}

# The last line: this server's summary; then exit with the run's status.
finish() {
	local line
	if [ $bad_logs = 0 ]; then
		summary+=("server logs clean")
	else
		summary+=("$bad_logs server logs with TRAP, PANIC or a crash")
	fi
	echo
	line="$name ($version): $(printf '%s, ' "${summary[@]}")"
	echo "${line%, }"
	exit $status
}

run_suite() {
	local suite=$1
	shift
	local out
	out=$(mktemp)
	echo
	echo "== $name: $suite"
	rm -rf results output_iso regression.diffs regression.out tmp_check tmp_check_iso log
	if make -s PG_CONFIG="$PG_CONFIG" installcheck "$@" 2>&1 | tee "$out"; [ "${PIPESTATUS[0]}" = 0 ]; then
		summary+=("$suite passed ($(runner_line "$out"))")
	else
		summary+=("$suite FAILED ($(runner_line "$out"))")
		status=1
		show_failures
	fi
	check_logs "$suite"
	rm -f "$out"
}

# A failed assertion, a PANIC or a crashed process in any server log fails
# the run.  SIGKILL is the crash-recovery test's own doing.
bad_logs=0
check_logs() {
	local suite=$1 f hits
	while IFS= read -r -d '' f; do
		hits=$(grep -E "TRAP:|PANIC:|terminated by signal ([0-8]|1[0-9]|[2-9][0-9])\b|was terminated by exception" "$f" | head -5)
		if [ -n "$hits" ]; then
			echo "---- $f ($suite): the server log shows a crash or failed assertion"
			echo "$hits"
			bad_logs=$((bad_logs + 1))
			status=1
		fi
	done < <(find tmp_check tmp_check_iso output_iso log -name '*.log' -print0 2>/dev/null)
}

# Under Valgrind (KS_VALGRIND=subset or full, on a server whose postgres
# runs under valgrind: tools/matrix.sh's 18-valgrind), every server process
# writes its own log into KS_VALGRIND_LOG_DIR; any error report in any of
# them fails the run.  "subset" runs the TAP files that exercise the
# extension's C paths at a size Valgrind can run in minutes, "full" all.
# Of the cluster's, 015 and 016 take every path of forwarding and of kept
# connections; 013 and 014 repeat them.  018 runs the cancel by SQL_ID's
# handler, 100 rounds; 019 the lock graph's read on queues of 30; 020 the
# resolver child's end with its backend; 022 the checker's pass over idle
# blockers, the end the session decides (20 race rounds) and
# kill_blockers().
KS_VALGRIND_SUBSET="t/001_registry.pl t/002_kill.pl t/003_killed_detail.pl
	t/006_privilege.pl t/007_self_kill.pl t/008_show_processlist.pl
	t/009_session_statements.pl t/010_reasons.pl t/011_disconnect.pl
	t/015_trust.pl t/016_connections.pl t/018_sql_id_cancel.pl
	t/019_lock_queue.pl t/020_resolver.pl t/021_history.pl t/022_blockers.pl"
valgrind_errors=0
check_valgrind() {
	local suite=$1 n f
	[ -n "${KS_VALGRIND:-}" ] || return 0
	n=$(cat "$KS_VALGRIND_LOG_DIR"/valgrind.*.log 2>/dev/null | grep -c VALGRINDERROR-BEGIN)
	if [ "$n" -gt 0 ]; then
		echo "---- $suite: $n Valgrind error reports; the first ones:"
		for f in $(grep -l VALGRINDERROR-BEGIN "$KS_VALGRIND_LOG_DIR"/valgrind.*.log | head -3); do
			echo "---- $f"
			sed -n '/VALGRINDERROR-BEGIN/,/VALGRINDERROR-END/p' "$f" | head -60
		done
		valgrind_errors=$((valgrind_errors + n))
		status=1
	fi
}

# PGXS's loop, as a developer runs it from the README: one make, in a clean
# environment.  Each suite's runner line is read from its part of the
# output (PGXS prints "+++ regress install-check" and so on before each).
if [ -n "$pgxs_loop" ]; then
	out=$(mktemp)
	echo
	echo "== $name: make && make installcheck (env -i)"
	rm -rf results output_iso regression.diffs regression.out tmp_check tmp_check_iso log
	env -i PATH="$("$PG_CONFIG" --bindir):/usr/bin:/bin" \
		${KS_NODE_PATH:+KS_NODE_PATH="$KS_NODE_PATH"} \
		${KS_REQUIRE_DRIVERS:+KS_REQUIRE_DRIVERS="$KS_REQUIRE_DRIVERS"} \
		${PG_TEST_PORT_DIR:+PG_TEST_PORT_DIR="$PG_TEST_PORT_DIR"} \
		sh -c 'locale | grep -E "^(LANG|LC_CTYPE|LC_ALL)="; make && make installcheck' 2>&1 | tee "$out"
	[ "${PIPESTATUS[0]}" = 0 ] || status=1
	for suite in regress isolation tap; do
		part=$(mktemp)
		awk -v s="+++ $suite install-check" 'index($0, s) == 1 { on = 1; next } /^\+\+\+ / { on = 0 } on' "$out" >"$part"
		line=$(runner_line "$part")
		summary+=("$suite ${line:-not run}")
		rm -f "$part"
	done
	summary=("make installcheck $([ $status = 0 ] && echo passed || echo FAILED)" "${summary[@]}")
	[ $status != 0 ] && show_failures
	check_logs "make installcheck"
	rm -f "$out"
	finish
fi

if [ -n "${KS_VALGRIND:-}" ]; then
	KS_VALGRIND_LOG_DIR=$(mktemp -d /tmp/kill_session_valgrind.XXXXXX)
	export KS_VALGRIND_LOG_DIR
	# Connections and statements take tens of times longer.
	export PGCTLTIMEOUT=600 PG_TEST_TIMEOUT_DEFAULT=600
	if [ "$KS_VALGRIND" = subset ]; then
		export KS_RACE_ROUNDS=${KS_RACE_ROUNDS:-20} KS_CONNECT_CYCLES=${KS_CONNECT_CYCLES:-20}
		export KS_POOL_RUNS=${KS_POOL_RUNS:-5} KS_LB_ROUNDS=${KS_LB_ROUNDS:-20}
		export KS_SQL_ID_ROUNDS=${KS_SQL_ID_ROUNDS:-100} KS_QUEUE_WAITERS=${KS_QUEUE_WAITERS:-30}
		tap_tests=$(echo $KS_VALGRIND_SUBSET)
	fi
fi

run_suite regress ISOLATION= TAP_TESTS=
check_valgrind regress
run_suite isolation REGRESS= TAP_TESTS=
check_valgrind isolation
run_suite tap REGRESS= ISOLATION= PROVE_FLAGS="${PROVE_FLAGS:---timer}" \
	${tap_tests:+PROVE_TESTS="$tap_tests"}
check_valgrind tap

if [ -n "${KS_VALGRIND:-}" ]; then
	summary+=("valgrind ($KS_VALGRIND): $(ls "$KS_VALGRIND_LOG_DIR"/valgrind.*.log 2>/dev/null | wc -l) server processes, $valgrind_errors errors")
	[ "$valgrind_errors" = 0 ] && rm -rf "$KS_VALGRIND_LOG_DIR"
fi
finish
