#!/usr/bin/env bash
# The files of kill_session form layers: no circle of files.
#
#   bash tools/layers.sh [DIR]
#
# From the compiled objects, the graph "file A calls a function or uses a
# variable that file B defines" (nm: what each object defines, T/D/B/R,
# and what it leaves undefined) must have no cycle; tsort finds one.  The
# entry file, kill_session.c, may call every file; a leaf calls none of
# the project's.  A circle is printed with the symbols of each of its
# edges, and the script fails.
#
# DIR holds the objects (*.o) of a build.  Without it, they are built with
# $PG_CONFIG (default pg_config) in a temporary copy of the tree.
set -u
# DIR as the caller named it, before this script goes to the tree's root.
if [ $# -ge 1 ]; then
	objdir=$(cd "$1" 2>/dev/null && pwd) ||
		{ echo "layers: FAILED: no directory $1"; exit 1; }
	set -- "$objdir"
fi
cd "$(dirname "$0")/.."

tmp=$(mktemp -d /tmp/kill_session_layers.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

if [ $# -ge 1 ]; then
	dir=$1
else
	dir=$tmp/src
	mkdir -p "$dir"
	git ls-files -z 2>/dev/null | tar --null -T - -cf - | tar -xf - -C "$dir" 2>/dev/null ||
		cp -a . "$dir"
	if ! (cd "$dir" && make -s PG_CONFIG="${PG_CONFIG:-pg_config}" COPT=-Werror) >"$tmp/build.log" 2>&1; then
		cat "$tmp/build.log"
		echo "layers: FAILED to build the objects"
		exit 1
	fi
fi

objects=("$dir"/*.o)
if [ ! -e "${objects[0]}" ]; then
	echo "layers: FAILED: no objects (*.o) in $dir"
	exit 1
fi

# "symbol file" for every symbol a file defines, then for every one it uses.
for o in "${objects[@]}"; do
	nm -g --defined-only "$o" |
		awk -v f="$(basename "$o" .o)" '$2 ~ /^[TDBR]$/ { print $3, f }'
done >"$tmp/defines"
for o in "${objects[@]}"; do
	nm -u "$o" | awk -v f="$(basename "$o" .o)" '{ print $2, f }'
done >"$tmp/uses"

# "user definer symbol" for every use of another file's symbol.
awk 'NR == FNR { def[$1] = $2; next }
	($1 in def) && def[$1] != $2 { print $2, def[$1], $1 }' \
	"$tmp/defines" "$tmp/uses" | sort -u >"$tmp/uses_of"
awk '{ print $1, $2 }' "$tmp/uses_of" | sort -u >"$tmp/edges"
# Every file is a node, even one that calls none and that none calls.
for o in "${objects[@]}"; do
	b=$(basename "$o" .o)
	echo "$b $b"
done >>"$tmp/edges"

nfiles=${#objects[@]}
nedges=$(awk '$1 != $2' "$tmp/edges" | wc -l)

if tsort "$tmp/edges" >/dev/null 2>"$tmp/tsort"; then
	echo "layers: no circle of files ($nfiles files, $nedges edges)"
	exit 0
fi

# tsort names the files of each loop it finds, one a line, in the order
# of the loop; print each loop's edges with the symbols that make them.
echo "layers: FAILED: a circle of files"
awk '/input contains a loop/ { if (n) print line; line = ""; n = 0; next }
	{ sub(/^tsort: /, ""); line = line (n++ ? " " : "") $0 }
	END { if (n) print line }' "$tmp/tsort" |
	while read -r -a loop; do
		printf '  %s -> %s\n' "$(printf '%s -> ' "${loop[@]}" | sed 's/ -> $//')" "${loop[0]}"
		for ((i = 0; i < ${#loop[@]}; i++)); do
			a=${loop[$i]}
			b=${loop[$(((i + 1) % ${#loop[@]}))]}
			printf '    %s.c -> %s.c: %s\n' "$a" "$b" \
				"$(awk -v a="$a" -v b="$b" '$1 == a && $2 == b { printf "%s%s", s, $3; s = ", " }' "$tmp/uses_of")"
		done
	done
exit 1
