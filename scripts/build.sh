#!/bin/bash
# build.sh [CONFIGURE ARGS...] - generate, configure and build in place.
# Configures when there is no Makefile or when arguments are given, and
# configures again (same arguments) when what configure looks for is not
# what is installed now: a library (CUnit, zstd, ...) or program (clang)
# installed or removed since the last configure, say by deps.sh test after
# deps.sh build, so that the build never lacks what the machine has.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x configure ] || ./autogen.sh >/dev/null

# what configure.ac looks for, and whether each is there now: one line per
# PKG_CHECK_MODULES and AC_PATH_PROG(S)
found_now() {
	local line progs prog p
	sed -n 's/.*PKG_CHECK_MODULES(\[[A-Za-z0-9_]*\], *\[\([^]]*\)\].*/\1/p' \
		configure.ac | while read -r line; do
		if pkg-config --exists "$line" 2>/dev/null; then
			echo "pkg $line: yes"
		else
			echo "pkg $line: no"
		fi
	done
	sed -n 's/.*AC_PATH_PROGS\{0,1\}(\[[A-Za-z0-9_]*\], *\[\([^]]*\)\].*/\1/p' \
		configure.ac | while read -r progs; do
		p=
		for prog in $progs; do
			p=$(command -v "$prog" 2>/dev/null) && break
		done
		echo "prog $progs: ${p:-no}"
	done
}
stamp=config.deps # what was found at the last configure (ignored by git)

if [ ! -f Makefile ] || [ ! -f config.status ] || [ $# -gt 0 ]; then
	./configure -q --enable-werror "$@"
	found_now >"$stamp"
elif ! found_now | cmp -s - "$stamp"; then
	echo "build.sh: installed libraries or programs changed since the last configure; configuring again"
	if [ -f "$stamp" ]; then
		{ found_now | diff "$stamp" - || true; } | sed -n 's/^> /  now: /p'
	fi
	# configure with the same arguments; show its summary only
	./config.status --recheck | sed -n '/will be built with/,$p'
	./config.status >/dev/null
	found_now >"$stamp"
fi
make -s -j"$(nproc)"
