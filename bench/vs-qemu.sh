#!/usr/bin/env bash
# bench/vs-qemu.sh - multifd side by side with QEMU 7.2's own multifd
# migration, on the same image, interleaved, and the median ratios.
#
# What it measures (4 channels, method none, TCP loopback, an image of
# random bytes on tmpfs), each pair "ours" then "QEMU", N repetitions,
# the pairs interleaved inside each repetition (1-ours, 1-qemu, 2-ours,
# 2-qemu, ...), so that a noisy period on this shared machine hits both
# sides of a pair alike:
#   1. multifd recv into a new FILE (tmpfs) + multifd send IMG,
#      vs QEMU into a fresh destination (memory-backend-ram prealloc=off)
#   2. multifd recv --inplace into an existing, resident copy on tmpfs,
#      vs QEMU into a preallocated destination (prealloc=on)
#   3. multifd bench (memory to memory, fresh receiver memory),
#      vs QEMU into a fresh destination
#   4. multifd bench --pretouch, vs QEMU into a preallocated destination
# Ours: the size over the wall time from starting the sender until both
# processes exited (the receiver already listens), CPU = user+sys of each
# process (/usr/bin/time); for the bench its own "seconds" and CPU
# seconds per GiB of each side. QEMU: a paused TCG guest without devices
# whose RAM is the image (memory-backend-file share=on prealloc=on), the
# destination started with -incoming defer, both driven over QMP; the
# size over QEMU's "total-time", CPU = user+sys of each QEMU between
# "migrate" and completion (/proc/PID/stat). MB/s are 10^6 bytes/s.
#
# Why the cool-down: this machine is a VM with free page reporting.
# Memory a process frees goes back to the host about 2 s later, and
# touching such "cold" memory again costs 2.5-4 CPU seconds per GiB,
# while memory freed a moment ago is cheap (0.1 s/GiB). Each run frees
# GiBs at its end, so without a pause the run right after it would get
# warm memory and look faster than the others. Every timed run, ours and
# QEMU's, therefore starts after the same sleep (--cool, default 6 s):
# all of them start from cold memory, as a real new destination does.
#
# Results: one TSV row per run (-o), then a summary per pair: median
# MB/s of each side, their ratio (ours / QEMU), CPU seconds per GiB.
# Exit status: 0 when every transfer succeeded and the content matched,
# 1 when one failed or differed, 2 on a usage error.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
usage() {
	cat <<EOF
Usage: bench/vs-qemu.sh [OPTIONS]
Run multifd and QEMU 7.2's multifd migration interleaved on the same
image of random bytes and print the median throughput ratios.

  -s, --size SIZE     image size, K/M/G suffixes, a multiple of 1 MiB
                      (default 2G)
  -r, --reps N        repetitions of every pair (default 3)
  -c, --channels N    channels on both sides (default 4)
  -p, --pairs LIST    pairs to run, comma separated (default 1,2,3,4):
                        1 tool, new FILE     vs QEMU fresh destination
                        2 tool --inplace     vs QEMU preallocated
                        3 bench              vs QEMU fresh destination
                        4 bench --pretouch   vs QEMU preallocated
      --cool SECS     sleep before every timed run, so that memory
                      freed by the run before is cold again (default 6)
      --idle SECS     after the cool-down, wait up to SECS for an idle
                      machine (under 0.3 CPUs busy two seconds in a
                      row; default 0: do not wait)
  -o, --output FILE   the TSV of all runs, overwritten
                      (default bench/results/vs-qemu-DATE.tsv)
  -d, --dir DIR       where the image and the copies live (default
                      /dev/shm/multifd-vs-qemu; it must be tmpfs)
  -k, --keep          keep the image (reused by the next run) and DIR
  -h, --help          this help
Environment: MULTIFD (default: the multifd next to bench/), QEMU
(default qemu-system-x86_64).
Exit status: 0 when every transfer succeeded and its content matched,
1 otherwise, 2 on a usage error.
EOF
}

SIZE=2G REPS=3 CHANNELS=4 PAIRS=1,2,3,4 COOL=6 IDLE=0 OUT="" KEEP=0
DIR=/dev/shm/multifd-vs-qemu
while [ $# -gt 0 ]; do
	case $1 in
	-s | --size) SIZE=${2:?}; shift ;;
	-r | --reps) REPS=${2:?}; shift ;;
	-c | --channels) CHANNELS=${2:?}; shift ;;
	-p | --pairs) PAIRS=${2:?}; shift ;;
	--cool) COOL=${2:?}; shift ;;
	--idle) IDLE=${2:?}; shift ;;
	-o | --output) OUT=${2:?}; shift ;;
	-d | --dir) DIR=${2:?}; shift ;;
	-k | --keep) KEEP=1 ;;
	-h | --help) usage; exit 0 ;;
	*) echo "vs-qemu.sh: unknown option $1 (--help lists them)" >&2; exit 2 ;;
	esac
	shift
done

die() { echo "vs-qemu.sh: $*" >&2; exit 2; }
to_bytes() {
	case $1 in
	*[kK]) echo $((${1%?} * 1024)) ;;
	*[mM]) echo $((${1%?} * 1024 * 1024)) ;;
	*[gG]) echo $((${1%?} * 1024 * 1024 * 1024)) ;;
	*) echo $(($1)) ;;
	esac
}
[[ $SIZE =~ ^[0-9]+[kKmMgG]?$ ]] || die "bad size: $SIZE"
BYTES=$(to_bytes "$SIZE")
((BYTES > 0 && BYTES % 1048576 == 0)) || die "the size must be a multiple of 1 MiB"
[[ $REPS =~ ^[1-9][0-9]*$ ]] || die "bad repetition count: $REPS"
[[ $CHANNELS =~ ^[1-9][0-9]*$ ]] || die "bad channel count: $CHANNELS"
[[ $COOL =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "bad --cool: $COOL"
[[ $IDLE =~ ^[0-9]+$ ]] || die "bad --idle: $IDLE"
[[ $PAIRS =~ ^[1-4](,[1-4])*$ ]] || die "bad pair list: $PAIRS"

MULTIFD=${MULTIFD:-$HERE/../multifd}
QEMU=${QEMU:-qemu-system-x86_64}
[ -x "$MULTIFD" ] || die "no multifd at $MULTIFD (build it, or set MULTIFD)"
command -v "$QEMU" >/dev/null || die "$QEMU not found (apt-get install qemu-system-x86)"
command -v python3 >/dev/null || die "python3 not found"
[ -x /usr/bin/time ] || die "/usr/bin/time not found (apt-get install time)"
if [ -z "$OUT" ]; then
	mkdir -p "$HERE/results"
	OUT=$HERE/results/vs-qemu-$(date +%Y%m%d-%H%M%S).tsv
fi
mkdir -p "$(dirname "$OUT")" "$DIR"

IMG=$DIR/random-$SIZE.img            # the image: kept with -k, reused
NEWDST=$DIR/new-$$.out               # pair 1: a new file every run
INPLACE=$DIR/inplace-$$.out          # pair 2: an existing, resident copy
WORK=$(mktemp -d /tmp/vs-qemu.XXXXXX)
BG=""                                # background pids: ours to end

# --- clean-up: our processes by their pid, our files ----------------------
KILLED=()
kill_tree() {            # a pid and its children (/usr/bin/time's child)
	local p=$1 c kids=()
	read -ra kids 2>/dev/null <"/proc/$p/task/$p/children" || true
	for c in "${kids[@]}"; do kill_tree "$c"; done
	kill "$p" 2>/dev/null && KILLED+=("$p")
	return 0
}
cleanup() {
	local p qemus=()
	for p in $BG; do kill_tree "$p"; done
	read -ra qemus 2>/dev/null <"$WORK/qemu.pids" || true
	for p in "${qemus[@]}"; do kill_tree "$p"; done
	for p in "${KILLED[@]}"; do             # gone before we go on, or -9
		for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$p" 2>/dev/null && sleep 0.5; done
		kill -9 "$p" 2>/dev/null || true
	done
	rm -rf "$WORK"
	# with the receiver's temporary file, if one was killed mid-way
	rm -f "$NEWDST" "$INPLACE" "$DIR/.${NEWDST##*/}".multifd-* 2>/dev/null || true
	if [ "$KEEP" = 0 ]; then
		rm -f "$IMG"
		rmdir "$DIR" 2>/dev/null || true
	fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# --- the QEMU side: one migration per call (python3, stdlib only) ---------
# Starts both QEMUs, sets multifd up, then touches WORK/ready and waits
# for WORK/go (the shell sleeps the cool-down meanwhile), migrates and
# prints one JSON object.
cat >"$WORK/qemu-run.py" <<'PY'
import json, os, socket, subprocess, sys, time

qemu, img, size, channels, dprealloc, work, verify = sys.argv[1:8]
size, channels, verify = int(size), int(channels), int(verify)
TICK = os.sysconf("SC_CLK_TCK")

class QMP:
    def __init__(self, path, proc, timeout=300):
        t0 = time.time()
        while True:
            if proc.poll() is not None:
                raise RuntimeError("QEMU exited (%d) before QMP came up" % proc.returncode)
            try:
                self.s = socket.socket(socket.AF_UNIX)
                self.s.connect(path)
                break
            except OSError:
                self.s.close()
                if time.time() - t0 > timeout:
                    raise RuntimeError("QMP socket %s did not come up" % path)
                time.sleep(0.05)
        self.f = self.s.makefile("rw")
        self.f.readline()                        # the greeting
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        msg = {"execute": name}
        if args:
            msg["arguments"] = args
        self.f.write(json.dumps(msg) + "\n")
        self.f.flush()
        while True:
            line = self.f.readline()
            if not line:
                raise RuntimeError("QMP closed during %s" % name)
            r = json.loads(line)
            if "event" in r:
                continue
            if "error" in r:
                raise RuntimeError("%s: %s" % (name, r["error"]))
            return r["return"]

def cpu_s(pid):                                  # user+sys, all threads
    with open("/proc/%d/stat" % pid) as f:
        v = f.read().rsplit(")", 1)[1].split()
    return (int(v[11]) + int(v[12])) / TICK

def machine_busy():                              # busy CPU seconds, all CPUs
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (sum(v) - v[3] - v[4]) / TICK

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p

mib = size >> 20
common = [qemu, "-accel", "tcg", "-machine", "q35,memory-backend=m",
          "-m", "%dM" % mib, "-smp", "1", "-nodefaults", "-nographic",
          "-nic", "none"]
src_cmd = common + [
    "-object", "memory-backend-file,id=m,size=%d,mem-path=%s,share=on,prealloc=on" % (size, img),
    "-S", "-qmp", "unix:%s/src.qmp,server=on,wait=off" % work]
dst_cmd = common + [
    "-object", "memory-backend-ram,id=m,size=%d,prealloc=%s" % (size, dprealloc),
    "-incoming", "defer", "-qmp", "unix:%s/dst.qmp,server=on,wait=off" % work]

procs = []
def start(cmd, name):
    log = open("%s/qemu-%s.log" % (work, name), "w")
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log,
                         stderr=subprocess.STDOUT)
    procs.append(p)
    with open(work + "/qemu.pids", "w") as f:
        f.write(" ".join(str(q.pid) for q in procs) + "\n")
    return p

res = {"status": "error"}
try:
    src_p = start(src_cmd, "src")
    dst_p = start(dst_cmd, "dst")
    src = QMP(work + "/src.qmp", src_p)
    dst = QMP(work + "/dst.qmp", dst_p)
    for q in (src, dst):
        q.cmd("migrate-set-capabilities",
              capabilities=[{"capability": "multifd", "state": True}])
        q.cmd("migrate-set-parameters", **{"multifd-channels": channels,
                                           "multifd-compression": "none"})
    # nothing may throttle: 100 GB/s, 60 s of allowed downtime
    src.cmd("migrate-set-parameters", **{"max-bandwidth": 100 * 10**9,
                                         "downtime-limit": 60000})
    uri = "tcp:127.0.0.1:%d" % free_port()
    dst.cmd("migrate-incoming", uri=uri)
    open(work + "/ready", "w").close()
    while not os.path.exists(work + "/go"):      # the cool-down
        time.sleep(0.01)
    os.unlink(work + "/go")
    c0 = (cpu_s(src_p.pid), cpu_s(dst_p.pid))
    m0 = machine_busy()
    t0 = time.monotonic()
    src.cmd("migrate", uri=uri)
    deadline = t0 + 1800
    while True:
        info = src.cmd("query-migrate")
        st = info.get("status")
        if st in ("completed", "failed", "cancelled") or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    dst_st = "?"
    while st == "completed" and time.monotonic() < deadline:
        dst_st = dst.cmd("query-migrate").get("status", "?")
        if dst_st in ("completed", "failed"):
            break
        time.sleep(0.01)
    wall = time.monotonic() - t0
    c1 = (cpu_s(src_p.pid), cpu_s(dst_p.pid))
    m1 = machine_busy()
    total_ms = info.get("total-time", 0)
    res = {"status": st if dst_st == "completed" else "%s/dst:%s" % (st, dst_st),
           "total_s": total_ms / 1000, "wall_s": wall,
           "send_cpu_s": c1[0] - c0[0], "recv_cpu_s": c1[1] - c0[1],
           "other_cpus": max(0.0, (m1 - m0) - (c1[0] - c0[0]) - (c1[1] - c0[1])) / wall,
           "verify": "-"}
    if res["status"] == "completed" and verify:
        # guest-physical == RAM offset below q35's low-memory boundary
        # (2 GiB, or all of RAM under 2.75 GiB); skip the first MiB (VGA, BIOS)
        low, win = min(size, 2 << 30), min(8 << 20, size >> 3)
        ok = True
        with open(img, "rb") as f:
            for o in sorted({1 << 20, (low // 2) & ~0xfff, low - win}):
                path = "%s/pmem-%d" % (work, o)
                dst.cmd("pmemsave", val=o, size=win, filename=path)
                f.seek(o)
                with open(path, "rb") as g:
                    ok = ok and g.read() == f.read(win)
                os.unlink(path)
        res["verify"] = "ok" if ok else "DIFFERS"
    for q in (src, dst):
        try:
            q.cmd("quit")
        except Exception:
            pass
except Exception as e:
    res["error"] = str(e).replace("\t", " ").replace("\n", " ")
finally:
    for p in procs:
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
print(json.dumps(res))
PY

# --- the summary: medians per pair and side --------------------------------
cat >"$WORK/summary.py" <<'PY'
import csv, statistics, sys

rows = [r for r in csv.DictReader(open(sys.argv[1]), delimiter="\t")]
names = {"1": "tool new FILE    / QEMU fresh",
         "2": "tool --inplace   / QEMU prealloc",
         "3": "bench            / QEMU fresh",
         "4": "bench --pretouch / QEMU prealloc"}
def med(side, pair, col):
    v = [float(r[col]) for r in rows
         if r["pair"] == pair and r["side"] == side and r["status"] == "ok"]
    return statistics.median(v) if v else None
def f(x, fmt):
    return "-" if x is None else fmt % x
FMT = "%-42s %6s %6s %5s %-9s  %-15s %s"
print(FMT % ("pair (runs ok)", "ours", "QEMU", "ratio", "per rep",
             "ours CPU s/GiB", "QEMU CPU s/GiB"))
print(FMT % ("", "MB/s", "MB/s", "", "min-max", "send recv sum", "src  dst  sum"))
for p in sorted({r["pair"] for r in rows}):
    o, q = med("ours", p, "MBps"), med("qemu", p, "MBps")
    ratio = o / q if o is not None and q else None
    cpu = []
    for side in ("ours", "qemu"):
        s, d = med(side, p, "send_cpu_s_per_gib"), med(side, p, "recv_cpu_s_per_gib")
        t = s + d if s is not None and d is not None else None
        cpu.append("%s %s %s" % (f(s, "%4.2f"), f(d, "%4.2f"), f(t, "%4.2f")))
    ok = {(r["side"], r["rep"]): float(r["MBps"]) for r in rows
          if r["pair"] == p and r["status"] == "ok"}
    per = [ok[("ours", k)] / ok[("qemu", k)] for s, k in ok
           if s == "ours" and ("qemu", k) in ok]
    rng = "%.2f-%.2f" % (min(per), max(per)) if per else "-"
    n = sum(1 for s, k in ok if s == "ours")
    print(FMT % ("%s. %s (%d)" % (p, names[p], n), f(o, "%.0f"), f(q, "%.0f"),
                 f(ratio, "%.2f"), rng, cpu[0], cpu[1]))
PY

# --- helpers ---------------------------------------------------------------
now() { echo "$EPOCHREALTIME"; }
busy_s() { awk '/^cpu /{printf "%.2f", ($2+$3+$4+$7+$8+$9)/100}' /proc/stat; }
calc() { awk "BEGIN{printf \"$1\", $2}"; }
# the cool-down before every timed run, then optionally an idle machine
settle() {
	sleep "$COOL"
	[ "$IDLE" = 0 ] && return 0
	local start=$SECONDS ok=0 b0 b1
	while ((SECONDS - start < IDLE)); do
		b0=$(busy_s); sleep 1; b1=$(busy_s)
		if awk -v d="$(calc %.2f "$b1 - $b0")" 'BEGIN{exit !(d < 0.3)}'; then
			ok=$((ok + 1)); ((ok >= 2)) && return 0
		else
			ok=0
		fi
	done
	echo "# the machine was not idle within $IDLE s; measuring anyway" >&2
}
FAILED=0
COLS="date pair rep side what status verify MBps wall_s send_cpu_s recv_cpu_s send_cpu_s_per_gib recv_cpu_s_per_gib other_cpus"
echo "$COLS" | tr ' ' '\t' >"$OUT"
# row PAIR REP SIDE WHAT STATUS VERIFY SECONDS SEND_CPU RECV_CPU OTHER
row() {
	local gib mbps sg rg
	gib=$(calc %.6f "$BYTES / 1073741824")
	if [ "$5" = ok ]; then
		mbps=$(calc %.1f "$BYTES / $7 / 1e6")
		sg=$(calc %.3f "$8 / $gib"); rg=$(calc %.3f "$9 / $gib")
	else
		mbps=- sg=- rg=-
		FAILED=1
	fi
	printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
		"$(date +%Y-%m-%dT%H:%M:%S)" "$1" "$2" "$3" "$4" "$5" "$6" "$mbps" \
		"$(calc %.3f "$7")" "$8" "$9" "$sg" "$rg" "${10}" | tee -a "$OUT"
}
cpu_of() { tail -n 1 "$1" | awk '{printf "%.2f", $1 + $2}'; }   # user+sys

# pair 1 and 2: multifd recv [--inplace] DST + multifd send IMG
run_tool() {        # PAIR REP new|inplace
	local pair=$1 rep=$2 mode=$3 dst opt=() rpid spid src=0 rrc=0 uri="" i
	local t0 t1 b0 b1 scpu rcpu verify=- status=ok
	if [ "$mode" = new ]; then dst=$NEWDST; rm -f "$dst"; else dst=$INPLACE opt=(--inplace); fi
	rm -f "$WORK"/recv.* "$WORK"/send.*
	settle
	/usr/bin/time -f '%U %S' -o "$WORK/recv.time" \
		"$MULTIFD" recv "${opt[@]}" tcp:127.0.0.1:0 "$dst" >"$WORK/recv.out" 2>"$WORK/recv.err" &
	rpid=$!; BG="$BG $rpid"
	for ((i = 0; i < 3000; i++)); do          # up to 30 s for "listening on"
		uri=$(sed -n 's/^multifd: listening on //p' "$WORK/recv.err" 2>/dev/null || true)
		[ -n "$uri" ] && break
		kill -0 "$rpid" 2>/dev/null || break
		sleep 0.01
	done
	if [ -z "$uri" ]; then
		echo "# pair $pair: the receiver did not listen:" >&2; cat "$WORK/recv.err" >&2
		wait "$rpid" || true
		row "$pair" "$rep" ours "tool-$mode" failed - 0 0 0 -
		return
	fi
	b0=$(busy_s); t0=$(now)
	/usr/bin/time -f '%U %S' -o "$WORK/send.time" \
		"$MULTIFD" send -c "$CHANNELS" "$uri" "$IMG" >"$WORK/send.out" 2>"$WORK/send.err" &
	spid=$!; BG="$BG $spid"
	wait "$spid" || src=$?
	wait "$rpid" || rrc=$?
	t1=$(now); b1=$(busy_s)
	BG=""
	if [ "$src" != 0 ] || [ "$rrc" != 0 ]; then
		echo "# pair $pair: send exited $src, recv exited $rrc:" >&2
		cat "$WORK/send.err" "$WORK/recv.err" >&2
		status=failed
	elif [ "$rep" = 1 ]; then                  # the content, once, off the clock
		if cmp -s "$IMG" "$dst"; then verify=ok; else verify=DIFFERS status=failed; fi
	fi
	scpu=$(cpu_of "$WORK/send.time"); rcpu=$(cpu_of "$WORK/recv.time")
	row "$pair" "$rep" ours "tool-$mode" "$status" "$verify" "$(calc %.6f "$t1 - $t0")" \
		"$scpu" "$rcpu" "$(calc %.2f "($b1 - $b0 - $scpu - $rcpu) / ($t1 - $t0)" | sed 's/^-.*/0.00/')"
	[ "$mode" = new ] && rm -f "$dst"       # freed now: cold by the next run
	return 0
}

# pair 3 and 4: multifd bench [--pretouch]
run_bench() {       # PAIR REP fresh|pretouch
	local pair=$1 rep=$2 mode=$3 opt=() rc=0 pid
	[ "$mode" = pretouch ] && opt=(--pretouch)
	settle
	"$MULTIFD" bench -s "$BYTES" -c "$CHANNELS" --json --no-ceiling "${opt[@]}" \
		>"$WORK/bench.json" 2>"$WORK/bench.err" &
	pid=$!; BG="$pid"
	wait "$pid" || rc=$?
	BG=""
	# seconds, send and recv CPU seconds, status
	read -r secs scpu rcpu st < <(python3 -c '
import json, sys
try:
    j = json.loads(open(sys.argv[1]).read())
    gib = j["payload_bytes"] / 2**30
    print(j["seconds"], round(j["send_cpu_s_per_gib"] * gib, 3),
          round(j["recv_cpu_s_per_gib"] * gib, 3), "ok" if j.get("ok") else "failed")
except Exception:
    print(0, 0, 0, "failed")' "$WORK/bench.json")
	if [ "$rc" != 0 ] || [ "$st" != ok ]; then
		echo "# pair $pair: multifd bench exited $rc:" >&2; cat "$WORK/bench.err" >&2
		st=failed
	fi
	row "$pair" "$rep" ours "bench-$mode" "$st" "$([ "$st" = ok ] && echo ok || echo -)" \
		"$secs" "$scpu" "$rcpu" -
}

# QEMU: fresh (prealloc=off) or preallocated (prealloc=on) destination
run_qemu() {        # PAIR REP off|on
	local pair=$1 rep=$2 pre=$3 pid rc=0 i verify=0 what
	what=qemu-$([ "$pre" = on ] && echo prealloc || echo fresh)
	rm -f "$WORK/ready" "$WORK/go" "$WORK/qemu.pids"
	[ "$rep" = 1 ] && verify=1
	python3 "$WORK/qemu-run.py" "$QEMU" "$IMG" "$BYTES" "$CHANNELS" "$pre" "$WORK" \
		"$verify" >"$WORK/qemu.json" 2>"$WORK/qemu.err" &
	pid=$!; BG="$pid"
	while [ ! -e "$WORK/ready" ] && kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
	[ -e "$WORK/ready" ] && settle && touch "$WORK/go"
	wait "$pid" || rc=$?
	BG=""
	read -r st v secs scpu rcpu other < <(python3 -c '
import json, sys
try:
    j = json.loads(open(sys.argv[1]).read())
except Exception:
    j = {"error": "no result"}
if j.get("status") != "completed" or j.get("verify") == "DIFFERS":
    sys.stderr.write("# QEMU run failed: %s\n" % j)
    print("failed", j.get("verify", "-"), 0, 0, 0, "-")
else:
    print("ok", j["verify"], j["total_s"], round(j["send_cpu_s"], 2),
          round(j["recv_cpu_s"], 2), "%.2f" % j["other_cpus"])' "$WORK/qemu.json")
	if [ "$rc" != 0 ] || [ "$st" != ok ]; then
		cat "$WORK/qemu.err" "$WORK"/qemu-*.log >&2 2>/dev/null || true
		st=failed
	fi
	row "$pair" "$rep" qemu "$what" "$st" "$v" "$secs" "$scpu" "$rcpu" "$other"
}

# --- the image and the resident copy ---------------------------------------
[ "$(stat -f -c %T "$DIR")" = tmpfs ] ||
	echo "# warning: $DIR is not tmpfs: disk I/O will be measured too" >&2
if [ "$(stat -c %s "$IMG" 2>/dev/null || echo 0)" != "$BYTES" ]; then
	echo "# generating $IMG ($SIZE of random bytes) ..." >&2
	head -c "$BYTES" /dev/urandom >"$IMG.tmp.$$" && mv "$IMG.tmp.$$" "$IMG"
fi
if [[ $PAIRS == *2* ]]; then
	# the existing file for --inplace: zeros, resident in tmpfs; the first
	# run's cmp proves every page was written
	head -c "$BYTES" /dev/zero >"$INPLACE"
fi

cat <<EOF
# multifd vs QEMU multifd: $(date '+%Y-%m-%d %H:%M:%S'), $(uname -n), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)
# $("$MULTIFD" --version 2>&1 | head -n 1); $("$QEMU" --version | head -n 1)
# image $IMG: $SIZE ($BYTES bytes) of random bytes; $CHANNELS channels, method none, tcp:127.0.0.1
# pairs $PAIRS, $REPS repetition(s), interleaved; cool-down $COOL s before every timed run
#   (freed memory goes back to the host after ~2 s; touching it again costs 2.5-4 CPU-s/GiB,
#    so every run starts from equally cold memory)$([ "$IDLE" != 0 ] && echo ", then up to $IDLE s waiting for an idle machine")
# THP: $(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null || echo -), shmem $(cat /sys/kernel/mm/transparent_hugepage/shmem_enabled 2>/dev/null || echo -)
# results: $OUT
EOF
echo "$COLS" | tr ' ' '\t'

for ((rep = 1; rep <= REPS; rep++)); do
	for pair in ${PAIRS//,/ }; do
		case $pair in
		1) run_tool 1 "$rep" new; run_qemu 1 "$rep" off ;;
		2) run_tool 2 "$rep" inplace; run_qemu 2 "$rep" on ;;
		3) run_bench 3 "$rep" fresh; run_qemu 3 "$rep" off ;;
		4) run_bench 4 "$rep" pretouch; run_qemu 4 "$rep" on ;;
		esac
	done
done

echo
echo "# summary: medians over $REPS repetition(s), MB/s = 10^6 B/s, ratio = ours / QEMU"
python3 "$WORK/summary.py" "$OUT"
if [ "$FAILED" != 0 ]; then
	echo "# some transfers FAILED or their content differed (see the status column)" >&2
	exit 1
fi
