#!/usr/bin/env bash
# Run the kill_session benchmarks and print the table.
#
#   sudo bash bench/run.sh            (KS_BENCH_QUICK=1 for a short run,
#                                     KS_BENCH_ONLY=cluster, vsession or record for one part)
#   sudo bash bench/run.sh --write-doc
#                                     and write the table into doc/performance.md,
#                                     between its bench markers
#
# As root it installs what is missing, builds and installs the extension,
# then runs the benchmarks as the unprivileged user "postgres".
# KS_BENCH_FAKE=1 installs, builds and starts nothing and reports two
# made-up lines: it tests --write-doc, not the extension.
set -eu
cd "$(dirname "$0")/.."
write_doc=
for arg in "$@"; do
	case $arg in
	--write-doc) write_doc=1 ;;
	*) echo "usage: bash bench/run.sh [--write-doc]" >&2; exit 2 ;;
	esac
done
if [ -n "$write_doc" ] && [ -n "${KS_BENCH_ONLY:-}" ]; then
	echo "bench/run.sh: --write-doc writes the whole table; not with KS_BENCH_ONLY" >&2
	exit 2
fi
src=$(pwd)
. tools/common.sh
if [ -z "${KS_BENCH_FAKE:-}" ]; then
	ks_install_deps
	ks_build_install
fi
work=$(mktemp -d /tmp/kill_session_bench.XXXXXX)
cp -a bench t "$work/"
[ "$(id -u)" = 0 ] && chown -R "$KS_SERVER_USER" "$work"
cd "$work"
ks_as_server_user env KS_BENCH_QUICK="${KS_BENCH_QUICK:-}" KS_BENCH_ONLY="${KS_BENCH_ONLY:-}" \
	KS_BENCH_FAKE="${KS_BENCH_FAKE:-}" KS_BENCH_REPORT="$work/report" TMPDIR="$work" \
	prlimit --nofile=8192 perl bench/bench.pl
if [ -n "$write_doc" ]; then
	# The command as it was given, with what changes the table.
	command="bash bench/run.sh --write-doc"
	[ -n "${KS_BENCH_QUICK:-}" ] && command="KS_BENCH_QUICK=1 $command"
	[ -n "${KS_BENCH_FAKE:-}" ] && command="KS_BENCH_FAKE=1 $command"
	perl "$src/bench/write_doc.pl" "$src/doc/performance.md" "$work/report" "$command"
fi
cd /
rm -rf "$work"
