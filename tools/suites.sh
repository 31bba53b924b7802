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
# Run it as the unprivileged user that owns the tree; the library must be
# installed into that server already (tools/test.sh does both).
set -u
cd "$(dirname "$0")/.."
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
		for f in regression.diffs output_iso/regression.diffs; do
			[ -f "$f" ] && { echo "---- $f"; head -200 "$f"; }
		done
		for f in tmp_check/log/regress_log_*; do
			[ -f "$f" ] && { echo "---- $f (last lines)"; tail -40 "$f"; }
		done
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

run_suite regress ISOLATION= TAP_TESTS=
run_suite isolation REGRESS= TAP_TESTS=
run_suite tap REGRESS= ISOLATION= PROVE_FLAGS="${PROVE_FLAGS:---timer}"

if [ $bad_logs = 0 ]; then
	summary+=("server logs clean")
else
	summary+=("$bad_logs server logs with TRAP, PANIC or a crash")
fi
echo
line="$name ($version): $(printf '%s, ' "${summary[@]}")"
echo "${line%, }"
exit $status
