#!/bin/bash
# abi.sh check|update LIB SRCDIR - guard libmultifd's ABI.
#
# check: fail when
#  - the library exports anything but the MFD_EXTERN functions of
#    include/multifd.h, or src/libmultifd.map does not list exactly those;
#  - debian/libmultifd0.symbols does not list exactly the exports (when
#    there is a debian/: a make dist tarball has none);
#  - abidiff finds any change against the baseline abi/libmultifd.abi.
# update: write a new baseline and symbols file from LIB, after showing
#  what changed; refuses an incompatible change (a function gone, say)
#  while the soname stays, unless ABI_BREAK=1 (README.md "Versions").
# make abi-check / make abi-update run this on the in-tree build.
set -euo pipefail
mode=${1:?usage: abi.sh check|update LIB SRCDIR}
lib=${2:?library, e.g. .libs/libmultifd.so}
src=${3:-.}
base=$src/abi/libmultifd.abi
symfile=$src/debian/libmultifd0.symbols
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
die() { echo "abi.sh: $*" >&2; exit 1; }
command -v abidw >/dev/null || die "abidw not found: apt-get install abigail-tools"

# what is public: every MFD_EXTERN function of the header
# (a declaration runs from MFD_EXTERN to its ';', on the same line or not)
sed -n '/^MFD_EXTERN/{:a;/;/!{N;ba};p}' "$src/include/multifd.h" | tr '\n' ' ' |
	grep -o 'mfd_[a-z0-9_]* *(' | tr -d ' (' | sort -u >"$tmp/header"
# what the library exports (name@version, defined only)
nm -D --defined-only "$lib" | awk '$2 == "T" || $2 == "D" || $2 == "B" {print $3}' |
	sed "s/@@*/@/" | sort >"$tmp/exports"
sed 's/@.*//' "$tmp/exports" | sort -u >"$tmp/export-names"
# what the version script lists: mfd_... names between global: and local:
# (one name a line, as in the file: comments are not parsed)
sed -n 's/^[[:space:]]*\(mfd_[a-z0-9_*]*\);.*/\1/p' "$src/src/libmultifd.map" |
	sort -u >"$tmp/map"
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" {print $2}')

# the ABI as abidw sees it: only types of the public header, no paths
abidw --no-corpus-path --short-locs --headers-dir "$src/include" \
	--drop-private-types --drop-undefined-syms \
	--out-file "$tmp/new.abi" "$lib"

check_lists() {
	local ok=0
	if ! cmp -s "$tmp/header" "$tmp/export-names"; then
		echo "abi.sh: exports differ from include/multifd.h's MFD_EXTERN functions (< header, > exported):"
		diff "$tmp/header" "$tmp/export-names" | grep '^[<>]' || true
		ok=1
	fi
	if ! cmp -s "$tmp/header" "$tmp/map"; then
		echo "abi.sh: src/libmultifd.map must list every public function by name (< header, > map):"
		diff "$tmp/header" "$tmp/map" | grep '^[<>]' || true
		ok=1
	fi
	return $ok
}

# debian/libmultifd0.symbols from the exports: a symbol keeps the minimal
# version it has there, a new one gets this release's version
gen_symbols() {
	local ver
	ver=$(sed -n 's/^AC_INIT(\[multifd\], \[\([^]]*\)\].*/\1/p' "$src/configure.ac")
	echo "$soname libmultifd0 #MINVER#"
	echo "* Build-Depends-Package: libmultifd-dev"
	while read -r sym; do
		old=$(awk -v s="$sym" '$1 == s {print $2}' "$symfile" 2>/dev/null)
		echo " $sym ${old:-$ver}"
	done < <({ nm -D --defined-only "$lib" | awk '$2 == "A" {print $3 "@" $3}'
		   cat "$tmp/exports"; } | sort -u)
}

# abidiff's status is a bit mask: 4 = ABI change, 8 = incompatible change
diff_status=0
if [ -f "$base" ]; then
	abidiff --no-default-suppression "$base" "$tmp/new.abi" >"$tmp/report" ||
		diff_status=$?
	[ $((diff_status & 3)) = 0 ] || { cat "$tmp/report"; die "abidiff failed ($diff_status)"; }
fi
base_soname=$(sed -n "s/.*soname='\([^']*\)'.*/\1/p;q" "$base" 2>/dev/null || true)

case $mode in
check)
	status=0
	check_lists || status=1
	[ -f "$base" ] || die "no baseline $base: make abi-update writes one"
	if [ $diff_status != 0 ]; then
		cat "$tmp/report"
		if [ $((diff_status & 8)) != 0 ]; then
			echo "abi.sh: INCOMPATIBLE ABI change against $base"
		else
			echo "abi.sh: ABI changed against $base"
		fi
		echo "abi.sh: if this is on purpose, follow README.md \"Versions\" and run make abi-update"
		status=1
	fi
	gen_symbols >"$tmp/symbols"
	# (a make dist tarball has no debian/)
	if [ -d "$src/debian" ] && ! diff -u "$symfile" "$tmp/symbols" >"$tmp/symdiff"; then
		cat "$tmp/symdiff"
		echo "abi.sh: $symfile is not the library's exports: make abi-update"
		status=1
	fi
	[ $status = 0 ] && echo "abi.sh: $soname: $(wc -l <"$tmp/exports") exports, ABI as in $base"
	exit $status
	;;
update)
	check_lists || die "fix the export list first"
	if [ $diff_status != 0 ]; then
		cat "$tmp/report"
		if [ $((diff_status & 8)) != 0 ] && [ "$soname" = "$base_soname" ] &&
			[ "${ABI_BREAK:-0}" != 1 ]; then
			die "incompatible change while the soname stays $soname: bump the libtool version in configure.ac (README.md \"Versions\"), or ABI_BREAK=1 make abi-update"
		fi
	fi
	mkdir -p "$src/abi"
	cp "$tmp/new.abi" "$base"
	if [ -d "$src/debian" ]; then
		gen_symbols >"$tmp/symbols"
		cp "$tmp/symbols" "$symfile"
	fi
	echo "abi.sh: wrote $base and $symfile for $soname"
	[ "$soname" = "${base_soname:-$soname}" ] ||
		echo "abi.sh: the soname is now $soname: rename the libmultifd0 package in debian/ (control, *.install, symbols)"
	;;
*) die "unknown mode $mode" ;;
esac
