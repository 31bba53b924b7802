#!/usr/bin/env bash
# Indent the C files the PostgreSQL way: pgindent with PostgreSQL's
# typedefs plus this project's (typedefs.list).
#
#   bash tools/pgindent.sh [--diff] [file.c ...]
#
# pgindent and its typedefs come from a PostgreSQL source tree: $PGSRC, or
# the postgresql-18 source package tools/matrix.sh keeps in its cache.
# pg_bsd_indent is built from that tree (PostgreSQL 16 and later carry it).
# --diff shows what would change instead of changing it.
set -eu
cd "$(dirname "$0")/.."
. tools/matrix.sh

diff_only=
if [ "${1:-}" = --diff ]; then
	diff_only=--diff
	shift
fi

work=$KS_MATRIX_CACHE/pgindent
if [ -z "${PGSRC:-}" ]; then
	PGSRC=$work/src
	if [ ! -x "$PGSRC/src/tools/pgindent/pgindent" ]; then
		tarball=$(ls "$KS_MATRIX_CACHE"/src/18/postgresql-18_*.orig.tar.* 2>/dev/null | head -1)
		[ -n "$tarball" ] || { echo "no PostgreSQL source: run tools/matrix.sh prepare 18-cassert, or set PGSRC" >&2; exit 1; }
		rm -rf "$PGSRC"
		mkdir -p "$PGSRC"
		tar -xf "$tarball" -C "$PGSRC" --strip-components=1 \
			--wildcards '*/src/tools/pgindent/*' '*/src/tools/pg_bsd_indent/*'
	fi
fi

indent=$work/pg_bsd_indent
if [ ! -x "$indent" ]; then
	mkdir -p "$work"
	pgc=$(ks_matrix_pg_config 18-cassert)
	(cd "$PGSRC/src/tools/pg_bsd_indent" &&
		cc -O2 -o "$indent" -I. -I"$("$pgc" --includedir-server)" \
			args.c err.c indent.c io.c lexi.c parse.c pr_comment.c \
			"$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)"/libpgport.a \
			"$(/usr/lib/postgresql/15/bin/pg_config --pkglibdir)"/libpgcommon.a)
fi

cat "$PGSRC/src/tools/pgindent/typedefs.list" typedefs.list >"$work/typedefs.list"

files=("$@")
[ ${#files[@]} -gt 0 ] || files=(*.c *.h fuzz/*.c)
# pgindent writes its temporary files into the current directory: run it
# from a directory of its own, on the files' full paths.
paths=()
for f in "${files[@]}"; do paths+=("$(realpath "$f")"); done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && "$PGSRC/src/tools/pgindent/pgindent" --indent="$indent" \
	--typedefs="$work/typedefs.list" $diff_only "${paths[@]}")
