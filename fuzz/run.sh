#!/usr/bin/env bash
# Build the two pure-C parts of kill_session with libFuzzer, AddressSanitizer
# and UndefinedBehaviorSanitizer, and fuzz each for a bounded time:
#
#   session_id  the session string parser, against a reference check
#   sql_scan    the SQL scanner behind the Oracle statement's HINT
#
#   bash fuzz/run.sh [seconds]      (each; default: $KS_FUZZ_SECONDS or 60)
#
# Everything it writes, crash inputs included, goes under fuzz/build/.
set -eu
cd "$(dirname "$0")"
seconds=${1:-${KS_FUZZ_SECONDS:-60}}
CC=${CC:-$(command -v clang || command -v clang-14)}
mkdir -p build

# fuzz_one NAME SOURCES...: build fuzz_NAME and run it on corpus NAME.
fuzz_one() {
	local name=$1
	shift
	local corpus=build/corpus_$name
	mkdir -p "$corpus"
	"$CC" -g -O1 -I.. -fsanitize=fuzzer,address,undefined \
		-fno-sanitize-recover=all \
		"fuzz_$name.c" "$@" -o "build/fuzz_$name"
	cp "$([ "$name" = session_id ] && echo corpus || echo "corpus_$name")"/* "$corpus"/
	echo "fuzzing $name for ${seconds}s"
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ASAN_OPTIONS=detect_leaks=1 \
		"build/fuzz_$name" -max_total_time="$seconds" -max_len=256 \
		-artifact_prefix=build/ -print_final_stats=1 "$corpus" 2>"build/fuzz_$name.log" || {
		tail -40 "build/fuzz_$name.log"
		echo "fuzz: $name FAILED"
		return 1
	}
	sed -n 's/^stat::number_of_executed_units: */'"$name"': /p' "build/fuzz_$name.log"
}

fuzz_one session_id ../session_id.c
fuzz_one sql_scan ../sql_scan.c ../session_id.c
runs=$(cat build/fuzz_*.log | sed -n "s/^stat::number_of_executed_units: *//p" | awk '{ s += $1 } END { print s }')
echo "fuzz: ${runs} inputs to the session string parser and the SQL scanner, no crash, no leak, no broken check"
