#!/bin/bash
# test-demo.sh - scripts/demo.sh, the README's first command, against the
# built tree (MULTIFD set: it installs and builds nothing): exit 0 after a
# good transfer, non-zero after a failed one, after Ctrl-C and after
# SIGTERM, and after each nothing of its own left in /dev/shm or /tmp and
# no process of its own still running.
set -u
MULTIFD=${MULTIFD:-./multifd}
case $MULTIFD in /*) ;; *) MULTIFD=$PWD/$MULTIFD ;; esac
export MULTIFD
demo=$(cd "$(dirname "$0")/.." && pwd)/scripts/demo.sh
if [ ! -f "$demo" ] || [ ! -x "$MULTIFD" ]; then
	echo "SKIP: needs $demo and $MULTIFD"
	exit 77
fi
priv=$(mktemp -d)
trap 'rm -rf "$priv"' EXIT
# demo.sh's temporary directories elsewhere go to $priv/tmp
mkdir "$priv/tmp"
. "$(dirname "$0")/lib/report.sh"

# what demo.sh may leave: its multifd-demo.* directories, or any directory
# holding its image and the receiver's log (whatever its name: other tests
# make directories in /tmp at the same time, so not just anything new)
leftovers() {
	local d
	for d in /dev/shm/* /tmp/*; do
		case $d in
		*/multifd-demo.*) echo "$d" ;;
		*) [ -f "$d/image" ] && [ -f "$d/recv.log" ] && echo "$d" ;;
		esac
	done 2>/dev/null | sort
}

# run NAME WANT SIGNAL WHEN [VAR=VALUE...]: demo.sh with the variables;
# SIGNAL (or -) sent to its process group once WHEN holds (dir: its
# directory exists; listening: its receiver listens); WANT: 0 or nonzero
run() {
	local name=$1 want=$2 sig=$3 when=$4 before after new pid st
	shift 4
	before=$(leftovers)
	# in a process group of its own, with SIGINT as a terminal's Ctrl-C
	# delivers it (not ignored, as in a background job without job control)
	set -m
	env TMPDIR="$priv/tmp" "$@" bash "$demo" >"$priv/out" 2>&1 &
	pid=$!
	set +m
	if [ "$sig" != - ]; then
		for _ in $(seq 600); do
			new=$(comm -13 <(echo "$before") <(leftovers) | head -1)
			if [ -n "$new" ]; then
				[ "$when" = dir ] && break
				grep -q "listening on" "$new/recv.log" 2>/dev/null && break
			fi
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.05
		done
		kill -"$sig" -- -"$pid" 2>/dev/null
	fi
	wait "$pid"
	st=$?
	case $want in
	0) [ "$st" = 0 ] && ok "$name: exit 0" ||
		bad "$name: exit $st, wanted 0: $(tail -20 "$priv/out")" ;;
	*) [ "$st" != 0 ] && ok "$name: exit $st" ||
		bad "$name: exit 0, wanted a failure: $(tail -20 "$priv/out")" ;;
	esac
	after=$(leftovers)
	new=$(comm -13 <(echo "$before") <(echo "$after"))
	[ -z "$new" ] && ok "$name: nothing left in /dev/shm or /tmp" ||
		bad "$name: left behind: $new"
	[ -z "$(ls -A "$priv/tmp")" ] && ok "$name: nothing left in TMPDIR" ||
		bad "$name: left in TMPDIR: $(ls -A "$priv/tmp")"
	# an exited child lingers as a zombie until init reaps it: give that a
	# moment, then count only the processes that still run
	for _ in $(seq 40); do
		kill -0 -- -"$pid" 2>/dev/null || break
		sleep 0.05
	done
	live=$(for p in $(pgrep -g "$pid"); do
		ps -o stat= -p "$p" | grep -qv '^Z' && echo "$p"; done)
	if [ -n "$live" ]; then
		bad "$name: processes left: $(pgrep -a -g "$pid")"
		kill -KILL -- -"$pid" 2>/dev/null
	else
		ok "$name: no process left"
	fi
}

run "a good transfer" 0 - - SIZE=32M CHANNELS=2
grep -q "identical to the sent one" "$priv/out" &&
	ok "says the file arrived identical" || bad "no cmp line: $(cat "$priv/out")"
grep -qE "[KMGT]iB/s" "$priv/out" && ok "prints the rate" ||
	bad "no rate: $(cat "$priv/out")"
run "a failing sender" nonzero - - SIZE=4M METHOD=nosuchmethod
run "Ctrl-C once the receiver listens" nonzero INT listening SIZE=32M
run "SIGTERM at the start" nonzero TERM dir SIZE=32M

report test-demo
