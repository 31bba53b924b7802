#!/usr/bin/env bash
# Run every kill_session test suite: pg_regress, isolation and TAP, each
# against its own throw-away server with the library preloaded.
#
#   sudo bash tools/test.sh
#
# As root it installs what is missing, builds and installs the extension,
# then runs the suites as the unprivileged user "postgres" in a copy of the
# tree.  As another user it expects the packages and a writable install.
set -u
cd "$(dirname "$0")/.."
. tools/common.sh

# The fuzzer needs clang with its sanitizer and libFuzzer runtimes; the
# Debian package needs Debian's build tools and pg_buildext.
KS_EXTRA_PACKAGES="clang libclang-rt-14-dev dpkg-dev debhelper fakeroot
	postgresql-server-dev-all"

ks_install_deps || exit 1

# As root the suites run against the Debian package, built here and
# installed on this machine; otherwise against a plain "make install".
package=
if [ "$(id -u)" = 0 ] && [ -z "${KS_NO_PACKAGE:-}" ]; then
	echo "== building the Debian package"
	pkgdir=$(mktemp -d /tmp/kill_session_deb.XXXXXX)
	git ls-files -z 2>/dev/null | tar --null -T - -cf - | tar -xf - -C "$pkgdir" 2>/dev/null ||
		cp -a . "$pkgdir"
	if (cd "$pkgdir" && make -s clean >/dev/null 2>&1; dpkg-buildpackage -us -uc -b) >"$pkgdir.log" 2>&1; then
		package=$(ls -t "$(dirname "$pkgdir")"/postgresql-*-kill-session_*.deb | head -1)
		echo "built $(basename "$package")"
		dpkg -i "$package" >/dev/null
		dpkg -S "$("$PG_CONFIG" --pkglibdir)/kill_session.so"
	else
		tail -30 "$pkgdir.log"
		echo "package: FAILED to build"
		exit 1
	fi
else
	ks_build_install || exit 1
fi

work=$(mktemp -d /tmp/kill_session_test.XXXXXX)
cp -a . "$work/src"
[ "$(id -u)" = 0 ] && chown -R "$KS_SERVER_USER" "$work"
cd "$work/src"

status=0
declare -A result

if [ -n "$package" ]; then
	echo
	echo "== package (pg_buildext installcheck against the installed package)"
	if sh debian/tests/installcheck -m "ISOLATION= TAP_TESTS="; then
		result[package]=passed
	else
		result[package]=FAILED
		status=1
	fi
fi

run_suite() {
	local name=$1
	shift
	echo
	echo "== $name"
	rm -rf results output_iso regression.diffs regression.out tmp_check/log
	if ks_as_server_user make -s PG_CONFIG="$PG_CONFIG" installcheck "$@"; then
		result[$name]=passed
	else
		result[$name]=FAILED
		status=1
		for f in regression.diffs output_iso/regression.diffs; do
			[ -f "$f" ] && { echo "---- $f"; head -200 "$f"; }
		done
		for f in tmp_check/log/regress_log_*; do
			[ -f "$f" ] && { echo "---- $f (last lines)"; tail -40 "$f"; }
		done
	fi
}

run_suite regress ISOLATION= TAP_TESTS=
run_suite isolation REGRESS= TAP_TESTS=
run_suite tap REGRESS= ISOLATION= PROVE_FLAGS="${PROVE_FLAGS:---timer}"

echo
echo "== fuzz"
if ks_as_server_user bash fuzz/run.sh; then
	result[fuzz]=passed
else
	result[fuzz]=FAILED
	status=1
fi

echo
echo "== summary"
for name in package regress isolation tap fuzz; do
	[ -n "${result[$name]:-}" ] || continue
	echo "$name: ${result[$name]}"
done

cd /
if [ $status = 0 ]; then
	rm -rf "$work"
else
	echo "test tree kept in $work"
fi
exit $status
