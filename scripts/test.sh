#!/bin/bash
# test.sh - set everything up and run every test: make check, make
# distcheck, make check under ASan+UBSan and under TSan, the fuzzers for a
# bounded time, and the RDMA tests inside a soft-RoCE guest. Each part
# prints its own summary; the script fails when any part fails.
#   QUICK=1     make check only
#   ONLY=packaging  build, then the ABI and packaging parts only
set -uo pipefail
cd "$(dirname "$0")/.."
top=$PWD
scripts/deps.sh test || exit 1
status=0
parts=0
failed=0
part() { parts=$((parts + 1)); echo; echo "=== $* ==="; }
fail() { echo "=== FAILED: $* ==="; status=1; failed=$((failed + 1)); }
# failed_checks PART DIR: the failing checks of each failed test under DIR,
# printed and kept for the recap at the end (CI shows only part of the
# output, and the logs stay on its machine)
recap=$top/failed-checks.log
: >"$recap"
failed_checks() {
	local trs log
	for trs in "$2"/tests/*.trs; do
		grep -q '^:test-result: FAIL' "$trs" 2>/dev/null || continue
		log=${trs%.trs}.log
		{
			echo "--- $1: ${log#"$2"/}"
			grep -E '^(FAIL|not ok)|Assertion|ERROR|Sanitizer|runtime error' \
				"$log" | head -20 | cut -c1-600
		} | tee -a "$recap"
	done
}
# one line for whoever reads only the end: parts, not single tests
finish() {
	if [ -s "$recap" ]; then
		echo
		echo "=== the checks that failed ==="
		cat "$recap"
	fi
	echo
	echo "test.sh: $((parts - failed)) passed, $failed failed"
	exit $status
}

# The ABI and the packages as a distribution builds them (about 2 minutes
# on 2 cores): scripts/abi.sh, scripts/package-test.sh. The install part
# removes the packages again, so the later parts see the in-tree build only.
packaging() {
	part "ABI: exports, symbols file, abidiff against abi/libmultifd.abi"
	make -s abi-check || fail "ABI check (make abi-check)"
	part "Debian packages: dpkg-buildpackage -b from a clean tree, lintian"
	if scripts/package-test.sh versions deb; then
		part "installed .debs: example built with pkg-config, the tool over loopback"
		scripts/package-test.sh install || fail "installed .debs"
		part "reproducible .debs: a second build, byte-identical"
		scripts/package-test.sh repro || fail "reproducible .debs"
	else
		fail "Debian packages"
	fi
	part "RPM packages: rpmbuild -bb from the make dist tarball"
	scripts/package-test.sh rpm || fail "RPM packages"
	# the package builds' work (and their tools' temporary files)
	rm -rf "${PKG_WORK:-/tmp/multifd-pkg}"
}

if [ "${ONLY:-}" = packaging ]; then
	part "build"
	scripts/build.sh || exit 1
	packaging
	finish
fi

part "build and make check"
scripts/build.sh || exit 1
make -s -j"$(nproc)" check || { failed_checks "make check" "$top"; fail "make check"; }
[ "${QUICK:-0}" = 1 ] && finish

part "make distcheck"
# its log in the tree (ignored by git), not in /tmp, where it would stay
make -s -j"$(nproc)" distcheck DISTCHECK_CONFIGURE_FLAGS=--enable-werror \
	>distcheck.log 2>&1 && tail -4 distcheck.log ||
	{ tail -40 distcheck.log; fail "make distcheck"; }

packaging

# Sanitizer builds go in copies of the tree so the in-tree build stays.
sanitized() {
	local kind=$1 dir="$top/build-$1"
	rm -rf "$dir"
	mkdir -p "$dir"
	git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$dir"
	(cd "$dir" && ./autogen.sh >/dev/null 2>&1 &&
		./configure -q --enable-werror --enable-sanitizers="$kind" &&
		make -s -j"$(nproc)" &&
		make -s -j"$(nproc)" check "${@:2}")
}
part "make check under ASan + UBSan"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	sanitized address || { failed_checks ASan "$top/build-address"; fail "ASan + UBSan"; }
part "make check under TSan"
# TSan's shadow memory makes the 256 MiB transfers slow but they fit
TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:history_size=7:suppressions=$top/tests/tsan.supp \
	sanitized thread || { failed_checks TSan "$top/build-thread"; fail "TSan"; }

if grep -q '^fuzz:' Makefile.am; then
	part "fuzzing (bounded)"
	make -s fuzz-run || fail "fuzzing"
fi
grep -q '^check-netem:' Makefile.am && { part "netem tests in a QEMU guest"; make -s check-netem || fail "check-netem"; }
if grep -q '^check-rxe:' Makefile.am; then
	part "RDMA tests in a soft-RoCE guest"
	make -s check-rxe || fail "check-rxe"
fi
finish
