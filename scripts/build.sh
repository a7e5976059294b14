#!/bin/bash
# build.sh [CONFIGURE ARGS...] - generate, configure and build in place.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x configure ] || ./autogen.sh >/dev/null
if [ ! -f Makefile ] || [ $# -gt 0 ]; then
	./configure -q --enable-werror "$@"
fi
make -s -j"$(nproc)"
