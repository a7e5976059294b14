#!/bin/bash
# package-test.sh [STEP...] - build and try the packages as a distribution
# would (scripts/test.sh runs each step as a part of its own). Steps:
#   versions  configure.ac, debian/changelog and multifd.spec agree
#   deb       dpkg-buildpackage -us -uc -b in a clean copy of the tree,
#             then lintian on the result and on the source package
#             (dpkg-source -b): no error, no warning
#   install   install those .debs, build examples/loopback.c with
#             pkg-config --cflags --libs libmultifd only and run it, run
#             the installed multifd (--version, a loopback transfer), then
#             remove every package the step installed
#   repro     a second build from a second clean copy (another path) with
#             the same SOURCE_DATE_EPOCH: every .deb byte-identical
#   rpm       rpmbuild -bb from the make dist tarball
# Default: all, in that order. Work goes to $PKG_WORK (/tmp/multifd-pkg).
# Needs root for install (the machine is left with the packages it had).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$PWD
work=${PKG_WORK:-/tmp/multifd-pkg}
# the build tools' temporary files (dh_dwz leaves some behind) go into the
# work folder, which scripts/test.sh removes when the packaging is done
mkdir -p "$work/tmp"
export TMPDIR=$work/tmp
steps=("$@")
[ ${#steps[@]} = 0 ] && steps=(versions deb install repro rpm)
die() { echo "package-test: $*" >&2; exit 1; }
say() { echo "package-test: $*"; }

version=$(sed -n 's/^AC_INIT(\[multifd\], \[\([^]]*\)\].*/\1/p' configure.ac)
# the time of the last commit, so that every build of a commit is the same
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git log -1 --format=%ct 2>/dev/null ||
		date -d "$(dpkg-parsechangelog -S Date)" +%s)
fi
export SOURCE_DATE_EPOCH
# tests run in CI's own parts, not in the package build (debian/rules)
export DEB_BUILD_OPTIONS="nocheck parallel=$(nproc)"
# fail the build when the exports and debian/libmultifd0.symbols differ
export DPKG_GENSYMBOLS_CHECK_LEVEL=4

# copy the tree as git sees it (tracked and untracked, not ignored) to $1
clean_copy() {
	rm -rf "$1"
	mkdir -p "$1"
	git ls-files -co --exclude-standard | tar -cf - -T - | tar -xf - -C "$1"
}

# what a build in $work/a was made from: install and repro rebuild it when
# the tree or the epoch changed since
tree_stamp() {
	echo "$SOURCE_DATE_EPOCH $(git rev-parse HEAD 2>/dev/null)" \
		"$(git status --porcelain 2>/dev/null | sha256sum)"
}
have_debs() {
	[ "$(cat "$work/a/stamp" 2>/dev/null)" = "$(tree_stamp)" ]
}

# build_debs DIR: .debs of a clean copy in DIR/multifd-VERSION, into DIR
build_debs() {
	local dir=$1
	rm -rf "$dir"
	clean_copy "$dir/multifd-$version"
	# the source package too, for lintian (before the build dirties the tree)
	[ "${2:-}" = source ] && (cd "$dir" && dpkg-source -b "multifd-$version" >/dev/null)
	(cd "$dir/multifd-$version" &&
		dpkg-buildpackage -us -uc -b -Pnocheck >"$dir/build.log" 2>&1) ||
		{ tail -40 "$dir/build.log"; die "dpkg-buildpackage failed in $dir (log: $dir/build.log)"; }
	ls "$dir"/*.deb >/dev/null
	tree_stamp >"$dir/stamp"
}

step_versions() {
	local deb rpm
	deb=$(dpkg-parsechangelog -S Version)
	rpm=$(sed -n 's/^Version:[[:space:]]*//p' multifd.spec)
	[ "$deb" = "$version" ] && [ "$rpm" = "$version" ] ||
		die "versions differ: configure.ac $version, debian/changelog $deb, multifd.spec $rpm"
	grep -q "^$version " NEWS || die "NEWS has no entry for $version"
	say "version $version everywhere"
}

step_deb() {
	build_debs "$work/a" source
	say "built: $(cd "$work/a" && echo *.deb)"
	# lintian as root says so on stderr; the tags go to stdout
	lintian --fail-on error,warning --info --display-level '>=warning' \
		"$work/a/multifd_$version.dsc" "$work/a"/multifd_"${version}"_*.changes 2>/dev/null |
		tee "$work/lintian.txt"
	[ "${PIPESTATUS[0]}" = 0 ] || die "lintian: errors or warnings (above)"
	say "lintian: no error, no warning"
}

step_install() {
	local before after added t uri rpid
	[ "$(id -u)" = 0 ] || die "install: needs root"
	have_debs || step_deb
	for p in libmultifd0 libmultifd-dev multifd; do
		[[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) = *"ok installed" ]] &&
			die "$p is installed already: not touching this machine"
	done
	before=$(dpkg-query -W -f='${Package}\n' | sort)
	t=$(mktemp -d)
	# whatever happens below, leave the machine with the packages it had
	remove() {
		after=$(dpkg-query -W -f='${Package}\n' | sort)
		added=$(comm -13 <(echo "$before") <(echo "$after"))
		if [ -n "$added" ]; then
			DEBIAN_FRONTEND=noninteractive apt-get purge -y -qq $added \
				>>"$work/apt.log" 2>&1
			say "removed again: $(echo $added)"
		fi
		rm -rf "$t"
	}
	trap remove EXIT
	(cd "$work/a" && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
		--no-install-recommends ./libmultifd0_*.deb ./libmultifd-dev_*.deb \
		./multifd_*.deb >"$work/apt.log" 2>&1) ||
		{ cat "$work/apt.log"; die "apt-get install of the .debs failed"; }

	# the example, against the installed library only
	cc -Wall -Werror -o "$t/loopback" examples/loopback.c \
		$(pkg-config --cflags --libs libmultifd)
	ldd "$t/loopback" >"$t/ldd"
	grep -Eq "libmultifd.so.0 => /(usr/)?lib/" "$t/ldd" ||
		die "example does not use the installed library: $(cat "$t/ldd")"
	"$t/loopback" || die "examples/loopback.c failed"

	# the installed tool
	[ "$(/usr/bin/multifd --version)" = "multifd $version (libmultifd $version)" ] ||
		die "multifd --version: $(/usr/bin/multifd --version 2>&1)"
	head -c 3M /dev/urandom >"$t/in"
	head -c 1M /dev/zero >>"$t/in"
	/usr/bin/multifd recv tcp:127.0.0.1:0 "$t/out" 2>"$t/recv.err" &
	rpid=$!
	for _ in $(seq 100); do
		uri=$(sed -n 's/^multifd: listening on //p' "$t/recv.err")
		[ -n "$uri" ] && break
		sleep 0.1
	done
	[ -n "$uri" ] || { kill $rpid; die "multifd recv did not listen: $(cat "$t/recv.err")"; }
	timeout 60 /usr/bin/multifd send -c 2 "$uri" "$t/in" 2>"$t/send.err" ||
		{ kill $rpid; cat "$t/send.err" "$t/recv.err"; die "multifd send failed"; }
	wait $rpid || { cat "$t/recv.err"; die "multifd recv failed"; }
	cmp "$t/in" "$t/out" || die "received file differs"
	say "installed: example ran, multifd --version, 4 MiB over $uri"
	remove
	trap - EXIT
}

step_repro() {
	local a b
	have_debs || step_deb
	# another path, another length: paths must not reach the .debs
	build_debs "$work/second-build"
	a=$(cd "$work/a" && sha256sum *.deb)
	b=$(cd "$work/second-build" && sha256sum *.deb)
	if [ "$a" != "$b" ]; then
		diff <(echo "$a") <(echo "$b") || true
		if command -v diffoscope >/dev/null; then
			for f in $(cd "$work/a" && ls *.deb); do
				diffoscope "$work/a/$f" "$work/second-build/$f" | head -60 || true
			done
		fi
		die "two builds of the same tree gave different .debs"
	fi
	say "reproducible: $(echo "$a" | wc -l) .debs identical (SOURCE_DATE_EPOCH=$SOURCE_DATE_EPOCH)"
}

step_rpm() {
	local d=$work/rpm
	command -v rpmbuild >/dev/null || die "rpmbuild not found: apt-get install rpm"
	rm -rf "$d"
	clean_copy "$d/tree"
	(cd "$d/tree" && ./autogen.sh >/dev/null 2>&1 && ./configure -q &&
		make -s dist >/dev/null) >"$d/dist.log" 2>&1 ||
		{ tail -20 "$d/dist.log"; die "make dist failed"; }
	mkdir -p "$d/SOURCES"
	mv "$d/tree/multifd-$version.tar.gz" "$d/SOURCES/"
	# Debian's rpm has no rpm database of the build dependencies, hence
	# --nodeps: the Debian -dev packages provide them. The spec is the one
	# in the tarball, as rpmbuild -tb would use.
	tar -xzf "$d/SOURCES/multifd-$version.tar.gz" -C "$d" "multifd-$version/multifd.spec"
	rpmbuild -bb --nodeps --define "_topdir $d" \
		"$d/multifd-$version/multifd.spec" >"$d/rpmbuild.log" 2>&1 ||
		{ tail -40 "$d/rpmbuild.log"; die "rpmbuild failed (log: $d/rpmbuild.log)"; }
	for r in "$d"/RPMS/*/*.rpm; do
		say "rpm: $(basename "$r"): $(rpm -qlp "$r" 2>/dev/null | grep -c .) files"
	done
	[[ $(rpm -qlp "$d"/RPMS/*/libmultifd-devel-*.rpm 2>/dev/null) = */libmultifd.pc* ]] ||
		die "libmultifd-devel has no libmultifd.pc"
}

for s in "${steps[@]}"; do
	case $s in
	versions | deb | install | repro | rpm) "step_$s" ;;
	*) die "unknown step $s" ;;
	esac
done
