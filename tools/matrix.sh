#!/usr/bin/env bash
# Prepare the PostgreSQL servers kill_session is tested on, in a cache
# directory outside the tree (reused when present):
#
#   15          Debian 12's own packages (installed by tools/common.sh)
#   15-cassert  bookworm's postgresql-15 source package, its upstream
#               source built with --enable-cassert --enable-debug
#               --enable-tap-tests --with-ssl=openssl, postgres_fdw and
#               dblink
#   17          Debian 13's postgresql-17 packages, in a trixie chroot
#   18-cassert  sid's postgresql-18 source package, built like 15-cassert
#               with -DUSE_VALGRIND -Og, in $KS_MATRIX_CACHE/18
#   18-valgrind the same build, every server process under Valgrind
#
# One build of 18 serves both runs, as the buildfarm's Valgrind animal runs
# with assertions: Valgrind's client requests cost nothing outside it, and
# its bin/postgres runs the server under Valgrind only when KS_VALGRIND is
# set (ks_valgrind_wrap).
#
#   bash tools/matrix.sh prepare [NAME...]   build or reuse (as root)
#   bash tools/matrix.sh pg_config NAME      print the server's pg_config
#
# Source packages come from the Debian mirror this machine's apt already
# uses, through a private deb-src list: the machine's own apt sources are
# never changed.  Sourced by tools/test.sh for its helpers.
set -u

KS_MATRIX_CACHE=${KS_MATRIX_CACHE:-/var/tmp/kill_session-matrix}
KS_MATRIX_SERVERS=${KS_MATRIX_SERVERS:-"15 15-cassert 17 18-cassert 18-valgrind"}
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

# The directories a server's pg_config names that a build or install of
# ours writes into, or reads the server from.
KS_PG_DIRS="--bindir --pkglibdir --sharedir --includedir-server --pkgincludedir --libdir"

# Whether every directory PG_CONFIG names lies under DIR: a matrix server
# must never install into, or be read from, the machine's own PostgreSQL.
ks_dirs_inside() {
	local pgc=$1 dir=$2 opt path bad=0
	for opt in $KS_PG_DIRS; do
		path=$("$pgc" "$opt") || return 1
		case $path in
			"$dir"/*) ;;
			*) echo "$pgc $opt is $path, outside $dir" >&2; bad=1 ;;
		esac
	done
	return $bad
}

# Whether every directory a build's pg_config_paths.h names (where make
# install writes) lies under DIR.
ks_paths_inside() {
	local header=$1 dir=$2 bad=0 name path
	while read -r name path; do
		path=${path#\"}
		path=${path%\"}
		case $path in
			"$dir"/*) ;;
			*) echo "$name is $path, outside $dir" >&2; bad=1 ;;
		esac
	done < <(sed -n 's/^#define \(PGBINDIR\|PKGLIBDIR\|SYSCONFDIR\|INCLUDEDIR\|PKGINCLUDEDIR\|INCLUDEDIRSERVER\|LIBDIR\|SHAREDIR\|DOCDIR\|LOCALEDIR\|MANDIR\) /\1 /p' "$header")
	[ -s "$header" ] || { echo "no $header" >&2; return 1; }
	return $bad
}

# Fetch the source package SRCPKG of SUITE and build PostgreSQL from its
# upstream source with assertions (and EXTRA_CFLAGS) into
# $KS_MATRIX_CACHE/NAME, with postgres_fdw and dblink.
#
# Debian's patches are not applied: they put pkglibdir and sharedir at
# /usr/lib/postgresql/MAJOR and /usr/share/postgresql/MAJOR whatever
# --prefix says, so a build from the patched tree would install over the
# machine's own PostgreSQL packages.  The paths are checked from the built
# pg_config before anything is installed, and again after.
ks_build_cassert() {
	local name=$1 suite=$2 srcpkg=$3 cflags=${4:-}
	local prefix=$KS_MATRIX_CACHE/$name
	local srcdir=$KS_MATRIX_CACHE/src/$name
	local dir=$KS_MATRIX_CACHE/apt/$suite
	local recipe="upstream source of $srcpkg from $suite; --enable-cassert --enable-debug --enable-tap-tests --with-ssl=openssl; CFLAGS=$cflags; contrib: postgres_fdw dblink"

	if [ -x "$prefix/bin/pg_config" ] && [ "$(cat "$prefix/.complete" 2>/dev/null)" = "$recipe" ] &&
		ks_dirs_inside "$prefix/bin/pg_config" "$prefix"; then
		echo "$name: reusing $prefix ($("$prefix/bin/pg_config" --version))"
		return 0
	fi
	local tree=$srcdir/tree
	if [ "$(cat "$srcdir/.built" 2>/dev/null)" = "$recipe" ] && [ -d "$tree" ]; then
		echo "$name: installing the tree built before"
		ks_install_cassert "$name" "$tree" "$prefix" "$srcdir" "$recipe"
		return
	fi
	echo "== $name: fetching $srcpkg from $suite"
	mkdir -p "$dir/lists/partial" "$dir/archives/partial"
	echo "deb-src $(ks_mirror) $suite main" >"$dir/sources.list"
	ks_private_apt "$suite" update >/dev/null || return 1
	rm -rf "$srcdir" "$prefix"
	mkdir -p "$srcdir"
	(cd "$srcdir" && ks_private_apt "$suite" source --download-only "$srcpkg" >/dev/null) || return 1
	local dsc
	dsc=$(ls "$srcdir"/*.dsc 2>/dev/null | head -1)
	[ -n "$dsc" ] || { echo "$name: no source package in $srcdir"; return 1; }
	dpkg-source --skip-patches -x "$dsc" "$tree" >/dev/null || return 1

	echo "== $name: building $(basename "$dsc" .dsc) with assertions${cflags:+ and $cflags} (about 7 minutes)"
	local start=$SECONDS
	(
		cd "$tree" &&
		./configure --prefix="$prefix" --enable-cassert --enable-debug \
			--enable-tap-tests --with-ssl=openssl --without-readline --without-icu \
			${cflags:+CFLAGS="$cflags"} \
			>"$srcdir/configure.log" 2>&1 &&
		make -s -j"$(nproc)" >"$srcdir/build.log" 2>&1 &&
		make -s -j"$(nproc)" -C contrib/postgres_fdw >>"$srcdir/build.log" 2>&1 &&
		make -s -j"$(nproc)" -C contrib/dblink >>"$srcdir/build.log" 2>&1
	) || {
		echo "$name: build failed; last lines of the logs:"
		tail -20 "$srcdir"/*.log
		return 1
	}
	echo "$recipe" >"$srcdir/.built"
	echo "$name: built in $((SECONDS - start)) s"
	ks_install_cassert "$name" "$tree" "$prefix" "$srcdir" "$recipe"
}

# Install a built tree into its prefix, once its paths are checked.
ks_install_cassert() {
	local name=$1 tree=$2 prefix=$3 srcdir=$4 recipe=$5
	ks_paths_inside "$tree/src/port/pg_config_paths.h" "$prefix" ||
		{ echo "$name: refusing to install outside $prefix"; return 1; }
	rm -rf "$prefix"
	(
		cd "$tree" &&
		make -s install >"$srcdir/install.log" 2>&1 &&
		make -s -C contrib/postgres_fdw install >>"$srcdir/install.log" 2>&1 &&
		make -s -C contrib/dblink install >>"$srcdir/install.log" 2>&1
	) || { tail -20 "$srcdir/install.log"; return 1; }
	ks_dirs_inside "$prefix/bin/pg_config" "$prefix" || return 1
	echo "$recipe" >"$prefix/.complete"
	# The tree is only needed for the build: keep the cache small.
	rm -rf "$tree" "$srcdir/.built"
	echo "$name: installed $("$prefix/bin/pg_config" --version) into $prefix"
}

# Let every server process of the build in prefix run under Valgrind, as
# PostgreSQL's buildfarm runs its suites (animal skink): bin/postgres
# becomes a script that, when KS_VALGRIND is set, runs the real binary
# under valgrind with PostgreSQL's own suppressions, one log per process
# in $KS_VALGRIND_LOG_DIR.  Without it, and for initdb's bootstrap and
# single-user runs and the version and configuration queries, it runs the
# binary directly.
ks_valgrind_wrap() {
	local prefix=$1 srcdir=$2 tarball
	if [ ! -f "$prefix/valgrind.supp" ]; then
		tarball=$(ls "$srcdir"/*.orig.tar.* 2>/dev/null | head -1)
		[ -n "$tarball" ] || { echo "no source tarball in $srcdir for valgrind.supp"; return 1; }
		tar -xOf "$tarball" --wildcards '*/src/tools/valgrind.supp' >"$prefix/valgrind.supp" ||
			return 1
	fi
	[ -f "$prefix/bin/postgres.real" ] || mv "$prefix/bin/postgres" "$prefix/bin/postgres.real"
	cat >"$prefix/bin/postgres" <<'EOF'
#!/bin/sh
# postgres under Valgrind (tools/matrix.sh, ks_valgrind_wrap).
bin=$(dirname "$0")
case "${1:-}" in
	--boot | --single | --check | -V | --version | -C | --describe-config)
		exec "$bin/postgres.real" "$@" ;;
esac
[ -n "${KS_VALGRIND:-}" ] || exec "$bin/postgres.real" "$@"
exec valgrind --quiet --trace-children=yes --leak-check=no --track-origins=yes \
	--read-var-info=yes --read-inline-info=yes --num-callers=40 \
	--error-markers=VALGRINDERROR-BEGIN,VALGRINDERROR-END \
	--suppressions="$bin/../valgrind.supp" \
	--log-file="${KS_VALGRIND_LOG_DIR:-/tmp}/valgrind.%p.log" \
	"$bin/postgres.real" "$@"
EOF
	chmod 755 "$prefix/bin/postgres"
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
	for m in tmp/kill_session_ports dev/shm dev proc; do
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
	libpq-dev libipc-run-perl make gcc perl openssl pgbouncer haproxy python3-psycopg
	python3-psycopg2
	libpostgresql-jdbc-java default-jdk-headless nodejs node-pg"

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
KS_MATRIX_PACKAGES="bison flex zlib1g-dev libssl-dev pkg-config libipc-run-perl
	debootstrap dpkg-dev valgrind"

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
	# The separate 18 builds of earlier versions of this script.
	rm -rf "$KS_MATRIX_CACHE/18-cassert" "$KS_MATRIX_CACHE/18-valgrind" \
		"$KS_MATRIX_CACHE/src/18-cassert" "$KS_MATRIX_CACHE/src/18-valgrind"
	local built18=
	for name in "$@"; do
		case $name in
			15) ;;
			15-cassert) ks_build_cassert 15-cassert bookworm postgresql-15 || status=1 ;;
			18-cassert | 18-valgrind)
				[ -n "$built18" ] && continue
				built18=1
				{ ks_build_cassert 18 sid postgresql-18 "-DUSE_VALGRIND -Og" &&
					ks_valgrind_wrap "$KS_MATRIX_CACHE/18" "$KS_MATRIX_CACHE/src/18"; } ||
					status=1 ;;
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
		18-cassert | 18-valgrind) echo "$KS_MATRIX_CACHE/18/bin/pg_config" ;;
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
