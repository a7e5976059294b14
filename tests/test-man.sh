#!/bin/bash
# test-man.sh - the man pages render without a warning from groff or
# mandoc, and multifd(1) names every long option that `multifd send`,
# `recv`, `bench` and `daemon` (when built) print in their --help.
set -u
MULTIFD=${MULTIFD:-./multifd}
srcdir=$(cd "$(dirname "$0")/.." && pwd)
pages="man/multifd.1 man/libmultifd.3 man/multifd.7"
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

have_groff=no
have_mandoc=no
command -v groff >/dev/null 2>&1 && have_groff=yes
command -v mandoc >/dev/null 2>&1 && have_mandoc=yes
if [ $have_groff = no ] && [ $have_mandoc = no ]; then
	echo "neither groff nor mandoc: skip"
	exit 77
fi

for p in $pages; do
	f="$srcdir/$p"
	if [ ! -s "$f" ]; then
		bad "$p: missing"
		continue
	fi
	if [ $have_groff = yes ]; then
		out=$(groff -man -ww -z "$f" 2>&1)
		if [ -z "$out" ]; then ok "groff $p"; else bad "groff $p: $out"; fi
	fi
	if [ $have_mandoc = yes ]; then
		out=$(mandoc -T lint -W warning "$f" 2>&1)
		if [ -z "$out" ]; then ok "mandoc $p"; else bad "mandoc $p: $out"; fi
	fi
done

# every long option of the help in multifd.1 (the source, \- made -)
text=$(sed 's/\\-/-/g' "$srcdir/man/multifd.1")
for c in send recv bench daemon; do
	if [ $c = daemon ] && ! "$MULTIFD" daemon --help >/dev/null 2>&1; then
		echo "skip: this multifd has no daemon (built without json-c)"
		continue
	fi
	help=$("$MULTIFD" "$c" --help 2>&1)
	if [ $? != 0 ] || [ -z "$help" ]; then
		bad "$MULTIFD $c --help failed: $help"
		continue
	fi
	missing=
	for o in $(grep -oE -- '--[a-z][a-z0-9-]*' <<<"$help" | sort -u); do
		grep -qE -- "${o}([^a-z0-9-]|\$)" <<<"$text" || missing+=" $o"
	done
	if [ -z "$missing" ]; then
		ok "multifd.1 names every option of '$c --help'"
	else
		bad "multifd.1 lacks options of '$c --help':$missing"
	fi
done

echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
