#!/usr/bin/env bash
# Build the session string parser with libFuzzer, AddressSanitizer and
# UndefinedBehaviorSanitizer, and fuzz it for a bounded time against the
# reference check in fuzz_session_id.c.
#
#   bash fuzz/run.sh [seconds]      (default: $KS_FUZZ_SECONDS or 60)
set -eu
cd "$(dirname "$0")"
seconds=${1:-${KS_FUZZ_SECONDS:-60}}
CC=${CC:-$(command -v clang || command -v clang-14)}
mkdir -p build build/corpus
"$CC" -g -O1 -I.. -fsanitize=fuzzer,address,undefined \
	-fno-sanitize-recover=all \
	fuzz_session_id.c ../session_id.c -o build/fuzz_session_id
cp corpus/* build/corpus/
echo "fuzzing the session string parser for ${seconds}s"
UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
ASAN_OPTIONS=detect_leaks=1 \
	build/fuzz_session_id -max_total_time="$seconds" -max_len=64 \
	-print_final_stats=1 build/corpus 2>build/fuzz.log || {
	tail -40 build/fuzz.log
	echo "fuzz: FAILED"
	exit 1
}
grep -E "stat::number_of_executed_units|stat::new_units_added" build/fuzz.log
runs=$(sed -n 's/^stat::number_of_executed_units: *//p' build/fuzz.log)
echo "fuzz: ${runs} inputs, no crash, no leak, no disagreement with the reference"
