#!/usr/bin/env bash
# Prepare the PostgreSQL servers kill_session is tested on, in a cache
# directory outside the tree (reused when present):
#
#   15          Debian 12's own packages (installed by tools/common.sh)
#   15-cassert  bookworm's postgresql-15 source package, built with
#               --enable-cassert --enable-debug --enable-tap-tests
#   17          Debian 13's postgresql-17 packages, in a trixie chroot
#   18-cassert  sid's postgresql-18 source package, built like 15-cassert
#
#   bash tools/matrix.sh prepare [NAME...]   build or reuse (as root)
#   bash tools/matrix.sh pg_config NAME      print the server's pg_config
#
# Source packages come from the Debian mirror this machine's apt already
# uses, through a private deb-src list: the machine's own apt sources are
# never changed.  Sourced by tools/test.sh for its helpers.
set -u

KS_MATRIX_CACHE=${KS_MATRIX_CACHE:-/var/tmp/kill_session-matrix}
KS_MATRIX_SERVERS=${KS_MATRIX_SERVERS:-"15 15-cassert 17 18-cassert"}
KS_MIRROR=${KS_MIRROR:-}

# The mirror the machine already uses for Debian's packages.
ks_mirror() {
	if [ -n "$KS_MIRROR" ]; then
		echo "$KS_MIRROR"
		return
	fi
	local uri
	uri=$(apt-get indextargets --format '$(REPO_URI)' 'Identifier: Packages' 2>/dev/null |
		grep -v -e security -e updates | grep '/debian/\?$' | head -1)
	echo "${uri:-http://deb.debian.org/debian/}"
}

# apt-get with a private source list and state for one suite.
ks_private_apt() {
	local suite=$1
	shift
	local dir=$KS_MATRIX_CACHE/apt/$suite
	apt-get -q -o Dir::Etc::sourcelist="$dir/sources.list" \
		-o Dir::Etc::sourceparts=/nonexistent \
		-o Dir::State::Lists="$dir/lists" \
		-o Dir::Cache::archives="$dir/archives" \
		-o APT::Get::List-Cleanup=false "$@"
}

# Fetch the source package SRCPKG of SUITE and build it with assertions
# into $KS_MATRIX_CACHE/NAME.
ks_build_cassert() {
	local name=$1 suite=$2 srcpkg=$3
	local prefix=$KS_MATRIX_CACHE/$name
	local srcdir=$KS_MATRIX_CACHE/src/$name
	local dir=$KS_MATRIX_CACHE/apt/$suite

	if [ -x "$prefix/bin/pg_config" ] && [ -f "$prefix/.complete" ]; then
		echo "$name: reusing $prefix ($("$prefix/bin/pg_config" --version))"
		return 0
	fi
	echo "== $name: fetching $srcpkg from $suite"
	mkdir -p "$dir/lists/partial" "$dir/archives/partial"
	echo "deb-src $(ks_mirror) $suite main" >"$dir/sources.list"
	ks_private_apt "$suite" update >/dev/null || return 1
	rm -rf "$srcdir"
	mkdir -p "$srcdir"
	(cd "$srcdir" && ks_private_apt "$suite" source "$srcpkg" >/dev/null) || return 1
	local tree
	tree=$(find "$srcdir" -mindepth 1 -maxdepth 1 -type d -name 'postgresql-*' | head -1)
	[ -n "$tree" ] || { echo "$name: no source tree in $srcdir"; return 1; }

	echo "== $name: building $(basename "$tree") with assertions (about 8 minutes)"
	local start=$SECONDS
	(
		cd "$tree" &&
		./configure --prefix="$prefix" --enable-cassert --enable-debug \
			--enable-tap-tests --without-readline --without-icu \
			>"$srcdir/configure.log" 2>&1 &&
		make -s -j"$(nproc)" >"$srcdir/build.log" 2>&1 &&
		make -s install >"$srcdir/install.log" 2>&1
	) || {
		echo "$name: build failed; last lines of the logs:"
		tail -20 "$srcdir"/*.log
		return 1
	}
	touch "$prefix/.complete"
	# The tree is only needed for the build: keep the cache small.
	rm -rf "$tree"
	echo "$name: built $("$prefix/bin/pg_config" --version) in $((SECONDS - start)) s"
}

# Debian 13 in a chroot, with its own postgresql-17 packages.
KS_TRIXIE=$KS_MATRIX_CACHE/trixie

ks_chroot_mount() {
	local root=$KS_TRIXIE
	mountpoint -q "$root/proc" || mount -t proc proc "$root/proc"
	mountpoint -q "$root/dev" || mount --bind /dev "$root/dev"
	mountpoint -q "$root/dev/shm" || mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
}

ks_chroot_umount() {
	local root=$KS_TRIXIE
	local m
	for m in dev/shm dev proc; do
		mountpoint -q "$root/$m" && umount -l "$root/$m"
	done
	return 0
}

ks_chroot() {
	chroot "$KS_TRIXIE" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
		LANG=C.UTF-8 HOME=/root "$@"
}

# Debian 13's packages the suites need inside the chroot.
KS_CHROOT_PACKAGES="postgresql-17 postgresql-server-dev-17 libkrb5-dev
	libipc-run-perl make gcc perl pgbouncer python3-psycopg"

ks_chroot_install() {
	local missing="" pkg
	for pkg in $KS_CHROOT_PACKAGES; do
		ks_chroot dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $pkg"
	done
	[ -z "$missing" ] && return 0
	# No service starts inside the chroot (it shares the host's network).
	printf '#!/bin/sh\nexit 101\n' >"$KS_TRIXIE/usr/sbin/policy-rc.d"
	chmod 755 "$KS_TRIXIE/usr/sbin/policy-rc.d"
	ks_chroot env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
		--no-install-recommends $missing >"$KS_MATRIX_CACHE/chroot-install.log" 2>&1 ||
		{ tail -20 "$KS_MATRIX_CACHE/chroot-install.log"; return 1; }
	return 0
}

ks_prepare_chroot() {
	if [ -f "$KS_TRIXIE/.complete" ]; then
		ks_chroot_mount
		ks_chroot_install || return 1
		echo "17: reusing $KS_TRIXIE ($(ks_chroot /usr/lib/postgresql/17/bin/pg_config --version))"
		return 0
	fi
	echo "== 17: Debian 13 (trixie) chroot with its postgresql-17 packages"
	local start=$SECONDS
	command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null || return 1
	ks_chroot_umount
	rm -rf --one-file-system "$KS_TRIXIE"
	debootstrap --variant=minbase trixie "$KS_TRIXIE" "$(ks_mirror)" \
		>"$KS_MATRIX_CACHE/debootstrap.log" 2>&1 ||
		{ tail -20 "$KS_MATRIX_CACHE/debootstrap.log"; return 1; }
	ks_chroot_mount
	mkdir -p "$KS_TRIXIE/etc/postgresql-common/createcluster.d"
	echo "create_main_cluster = false" \
		>"$KS_TRIXIE/etc/postgresql-common/createcluster.d/kill_session.conf"
	ks_chroot_install || return 1
	touch "$KS_TRIXIE/.complete"
	echo "17: $(ks_chroot /usr/lib/postgresql/17/bin/pg_config --version) ready in $((SECONDS - start)) s"
}

# The host-side packages a source build needs.
KS_MATRIX_PACKAGES="bison flex zlib1g-dev pkg-config libipc-run-perl
	debootstrap dpkg-dev"

ks_matrix_prepare() {
	local name status=0
	local missing="" pkg
	for pkg in $KS_MATRIX_PACKAGES; do
		dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" ||
			missing="$missing $pkg"
	done
	if [ -n "$missing" ]; then
		apt-get update -q >/dev/null
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			$missing >/dev/null || return 1
	fi
	mkdir -p "$KS_MATRIX_CACHE"
	for name in "$@"; do
		case $name in
			15) ;;
			15-cassert) ks_build_cassert 15-cassert bookworm postgresql-15 || status=1 ;;
			18-cassert) ks_build_cassert 18-cassert sid postgresql-18 || status=1 ;;
			17) ks_prepare_chroot || status=1 ;;
			*) echo "unknown server $name"; status=1 ;;
		esac
	done
	return $status
}

# pg_config of a server, as seen from where its suites run.
ks_matrix_pg_config() {
	case $1 in
		15) echo /usr/lib/postgresql/15/bin/pg_config ;;
		17) echo /usr/lib/postgresql/17/bin/pg_config ;;
		*) echo "$KS_MATRIX_CACHE/$1/bin/pg_config" ;;
	esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	cmd=${1:-prepare}
	shift || true
	case $cmd in
		prepare) ks_matrix_prepare ${@:-$KS_MATRIX_SERVERS} ;;
		pg_config) ks_matrix_pg_config "$1" ;;
		*) echo "usage: $0 prepare [NAME...] | pg_config NAME" >&2; exit 2 ;;
	esac
fi
