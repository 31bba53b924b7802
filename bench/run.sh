#!/usr/bin/env bash
# Run the kill_session benchmarks and print the table.
#
#   sudo bash bench/run.sh            (KS_BENCH_QUICK=1 for a short run,
#                                     KS_BENCH_ONLY=cluster or vsession for one part)
#
# As root it installs what is missing, builds and installs the extension,
# then runs the benchmarks as the unprivileged user "postgres".
set -eu
cd "$(dirname "$0")/.."
. tools/common.sh
ks_install_deps
ks_build_install
work=$(mktemp -d /tmp/kill_session_bench.XXXXXX)
cp -a bench t "$work/"
[ "$(id -u)" = 0 ] && chown -R "$KS_SERVER_USER" "$work"
cd "$work"
ks_as_server_user env KS_BENCH_QUICK="${KS_BENCH_QUICK:-}" KS_BENCH_ONLY="${KS_BENCH_ONLY:-}" TMPDIR="$work" \
	prlimit --nofile=8192 perl bench/bench.pl
cd /
rm -rf "$work"
