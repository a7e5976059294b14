#!/bin/bash
# test-tls.sh - TLS 1.3 on every channel (the tls layer), loopback only,
# with certificates this test makes in a temporary folder it removes: a
# CA, receiver and sender certificates, a second CA with a certificate of
# its own, an expired certificate.
#  (a) every method, 1 and 4 channels, 3 rounds: identical, and every
#      channel runs inside TLS (the statistics say so); the same with a
#      pre-shared key.
#  (b) a recording proxy between the ends finds none of a known plaintext
#      pattern on the wire; the same run without TLS finds it.
#  (c) refused on both ends with a sentence naming the reason: a
#      certificate from another CA, an expired one, a wrong host name, a
#      plaintext sender to a TLS receiver and the reverse, a wrong PSK.
#  (d) a proxy that flips one byte mid-stream: both ends fail with an
#      integrity error, the receiver's file is not replaced, nothing hangs.
#  (e) what TLS cannot be combined with is refused at once: rdma:,
#      --tls without --secret-file, unix: without a name.
# And --zero-copy over TLS (after (a)): identical, its fallbacks counted.
set -u
MULTIFD=${MULTIFD:-./multifd}
. "$(dirname "$0")/lib/listening.sh"
PROXY="$(dirname "$0")/tls-proxy.py"
for t in openssl python3; do
	if ! command -v $t >/dev/null; then
		echo "SKIP: no $t"
		exit 77
	fi
done
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
. "$(dirname "$0")/lib/report.sh"

if "$MULTIFD" send --tls-cert x --tls-key x --tls-ca x tcp:127.0.0.1:1 \
	/dev/null 2>&1 | grep -q "this build has no TLS"; then
	echo "SKIP: multifd was built without libssl"
	exit 77
fi

# ---- certificates ----
c=$dir/certs
mkdir -p "$c/db"
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
mkca() {
	openssl req -x509 $ec -keyout "$c/$1.key" -out "$c/$1.crt" \
		-subj "/CN=$1" -days 2 2>/dev/null
}
# leaf NAME CA SUBJECTALTNAME
leaf() {
	openssl req -new $ec -keyout "$c/$1.key" -out "$c/$1.csr" \
		-subj "/CN=$1" 2>/dev/null &&
		printf 'subjectAltName=%s\n' "$3" >"$c/$1.ext" &&
		openssl x509 -req -in "$c/$1.csr" -CA "$c/$2.crt" \
			-CAkey "$c/$2.key" -set_serial "$((RANDOM + 2))" -days 2 \
			-extfile "$c/$1.ext" -out "$c/$1.crt" 2>/dev/null
}
: >"$c/db/index"
echo 01 >"$c/db/serial"
cat >"$c/ca.cnf" <<EOF
[ca]
default_ca = d
[d]
database = $c/db/index
serial = $c/db/serial
new_certs_dir = $c/db
default_md = sha256
policy = p
copy_extensions = copy
unique_subject = no
[p]
commonName = supplied
EOF
if mkca ca && mkca otherca &&
	leaf receiver ca "DNS:receiver.test,IP:127.0.0.1" &&
	leaf sender ca "DNS:sender.test" &&
	leaf stranger otherca "DNS:sender.test" &&
	leaf both ca "DNS:receiver.test,IP:127.0.0.1" &&
	openssl req -new $ec -keyout "$c/expired.key" -out "$c/expired.csr" \
		-subj "/CN=sender.test" 2>/dev/null &&
	openssl ca -batch -config "$c/ca.cnf" -cert "$c/ca.crt" \
		-keyfile "$c/ca.key" -in "$c/expired.csr" -out "$c/expired.crt" \
		-startdate 20200101000000Z -enddate 20200102000000Z \
		>/dev/null 2>&1; then
	ok "certificates made"
else
	bad "cannot make the certificates"
	report test-tls.sh
fi
RECV_TLS="--tls-cert $c/receiver.crt --tls-key $c/receiver.key --tls-ca $c/ca.crt"
SEND_TLS="--tls-cert $c/sender.crt --tls-key $c/sender.key --tls-ca $c/ca.crt"
BOTH_TLS="--tls-cert $c/both.crt --tls-key $c/both.key --tls-ca $c/ca.crt"
printf 'a secret of the test, 32 bytes.\n' >"$dir/secret"
printf 'another secret of the test, 32.\n' >"$dir/secret2"
chmod 600 "$dir/secret" "$dir/secret2"

# json_has FILE KEY VALUE: the --json object has "KEY":VALUE
json_has() {
	grep -q "\"$2\":$3[,}]" "$1"
}

# ---- (a) every method, 1 and 4 channels, 3 rounds ----
for m in none zlib zstd; do
	if ! "$MULTIFD" bench -s 64K -m $m --no-ceiling -q 2>/dev/null; then
		echo "($m is not built in)"
		continue
	fi
	for ch in 1 4; do
		out=$dir/bench.json
		if timeout 120 "$MULTIFD" bench -s 8M -r 3 -c $ch -m $m \
			--content mixed --no-ceiling --json $BOTH_TLS >"$out" \
			2>"$dir/bench.err" && grep -q '"ok":true' "$out"; then
			if json_has "$out" tls_channels $ch; then
				ok "x509, $m, $ch channels, 3 rounds: identical, $ch TLS channels"
			else
				bad "x509, $m, $ch channels: not every channel in TLS: $(cat "$out")"
			fi
		else
			bad "x509, $m, $ch channels: $(cat "$dir/bench.err" "$out")"
		fi
	done
done
if timeout 120 "$MULTIFD" bench -s 8M -r 3 -c 4 --no-ceiling --json --tls \
	--secret-file "$dir/secret" >"$dir/bench.json" 2>"$dir/bench.err" &&
	grep -q '"ok":true' "$dir/bench.json" &&
	json_has "$dir/bench.json" tls_channels 4; then
	ok "PSK, 4 channels, 3 rounds: identical, 4 TLS channels"
else
	bad "PSK bench: $(cat "$dir/bench.err" "$dir/bench.json")"
fi

# --zero-copy over TLS: the kernel's tls layer encrypts straight from the
# pages (kTLS: no send falls back); OpenSSL in userspace copies, and every
# such send is counted as a fallback
json_num() {
	sed -n "s/.*\"$2\":\([0-9]*\).*/\1/p" "$1" | head -n1
}
if timeout 120 "$MULTIFD" bench -s 8M -r 2 -c 2 --zero-copy --no-ceiling \
	--json --tls --secret-file "$dir/secret" >"$dir/bench.json" \
	2>"$dir/bench.err" && grep -q '"ok":true' "$dir/bench.json"; then
	fb=$(json_num "$dir/bench.json" zerocopy_fallbacks)
	kt=$(json_num "$dir/bench.json" ktls_send_channels)
	if [ "$kt" = 2 ] && [ "$fb" = 0 ]; then
		ok "--zero-copy over kTLS, 2 channels: identical, no send copied"
	elif [ "$kt" = 0 ] && [ -n "$fb" ] && [ "$fb" -gt 0 ]; then
		ok "--zero-copy over userspace TLS: identical, $fb sends counted as copied"
	else
		bad "--zero-copy over TLS: kTLS send on $kt channels, $fb fallbacks"
	fi
else
	bad "--zero-copy over TLS: $(cat "$dir/bench.err" "$dir/bench.json")"
fi

# A file whose pages all carry a known text, so that plaintext shows.
pattern="MULTIFD-PLAINTEXT-CANARY-0123456789"
python3 -c '
import sys
p = sys.argv[1].encode()
page = (p * (4096 // len(p) + 1))[:4096]
sys.stdout.buffer.write(page * 512)' "$pattern" >"$dir/src"

# start_recv NAME URI [ARGS...]: a receiver into $dir/dst in the
# background, --json results in $dir/NAME.out, stderr in $dir/NAME.err;
# its pid in $rpid and its URI in $ruri
start_recv() {
	local name=$1 uri=$2
	shift 2
	# a NAME's last receiver's log would give wait_listening its port
	rm -f "$dir/dst" "$dir/$name.err"
	"$MULTIFD" recv --json "$@" "$uri" "$dir/dst" >"$dir/$name.out" \
		2>"$dir/$name.err" &
	rpid=$!
	ruri=$(wait_listening "$dir/$name.err") || {
		bad "$name: the receiver did not start: $(cat "$dir/$name.err")"
		return 1
	}
}

# start_proxy PORT [ARGS...]: the proxy to PORT; its port in $pport
start_proxy() {
	local port=$1
	shift
	python3 "$PROXY" "$port" --lifetime 60 "$@" >"$dir/proxy.out" 2>&1 &
	ppid_=$!
	for _ in $(seq 50); do
		pport=$(sed -n 's/^listening on //p' "$dir/proxy.out")
		[ -n "$pport" ] && return 0
		sleep 0.1
	done
	bad "the proxy did not start: $(cat "$dir/proxy.out")"
	return 1
}

# ---- (b) nothing of the pages on the wire ----
# wire NAME "RECV ARGS" "SEND ARGS": one transfer through a recording
# proxy; $dir/NAME.wire holds what passed
wire() {
	local name=$1
	rm -f "$dir/$name.wire"
	start_recv "$name" tcp:127.0.0.1:0 --timeout 20 $2 || return 1
	start_proxy "${ruri##*:}" --record "$dir/$name.wire" || return 1
	timeout 60 "$MULTIFD" send -q -c 4 --timeout 20 $3 \
		"tcp:127.0.0.1:$pport" "$dir/src" 2>"$dir/$name.send.err"
	sst=$?
	wait "$rpid"
	rst=$?
	kill "$ppid_" 2>/dev/null
	wait "$ppid_" 2>/dev/null
	if [ "$sst" = 0 ] && [ "$rst" = 0 ] && cmp -s "$dir/src" "$dir/dst"; then
		return 0
	fi
	bad "$name: send $sst, recv $rst: $(cat "$dir/$name.send.err" "$dir/$name.err")"
	return 1
}
if wire plain "" ""; then
	if grep -qa "$pattern" "$dir/plain.wire"; then
		ok "without TLS the recording proxy sees the pattern (the check can fail)"
	else
		bad "without TLS the pattern is not on the wire: the check cannot work"
	fi
fi
# the receiver's name is checked against the URI's host: 127.0.0.1 is in
# its certificate, and the proxy does not change it
if wire x509 "$RECV_TLS" "$SEND_TLS"; then
	n=$(grep -ca "$pattern" "$dir/x509.wire")
	size=$(stat -c %s "$dir/x509.wire")
	if [ "$n" = 0 ] && [ "$size" -gt 2000000 ]; then
		ok "x509: $size bytes on the wire, none of the pattern"
	else
		bad "x509: the pattern is on the wire ($n lines, $size bytes)"
	fi
	if json_has "$dir/x509.out" tls_channels 4; then
		ok "x509: the receiver's --json says 4 TLS channels"
	else
		bad "x509: the receiver's --json: $(cat "$dir/x509.out")"
	fi
fi
if wire psk "--tls --secret-file $dir/secret" \
	"--tls --secret-file $dir/secret"; then
	if ! grep -qa "$pattern" "$dir/psk.wire"; then
		ok "PSK: none of the pattern on the wire"
	else
		bad "PSK: the pattern is on the wire"
	fi
fi

# ---- (c) refusals ----
# refused WHAT "RECV ARGS" "SEND ARGS" SEND_TEXT RECV_TEXT [URI]: the
# sender fails naming SEND_TEXT, the receiver logs RECV_TEXT, and both
# end within a few seconds
refused() {
	local what=$1 uri=${6:-tcp:127.0.0.1:0} t0 ms
	start_recv refused "$uri" --timeout 3 $2 || return
	t0=$(date +%s%N)
	timeout 30 "$MULTIFD" send -q --timeout 5 $3 "$ruri" "$dir/src" \
		2>"$dir/refused.send.err"
	sst=$?
	wait "$rpid"
	rst=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	if [ "$sst" = 1 ] && grep -q -- "$4" "$dir/refused.send.err"; then
		ok "$what: the sender fails: $(head -1 "$dir/refused.send.err")"
	else
		bad "$what: the sender (exit $sst): $(cat "$dir/refused.send.err")"
	fi
	if [ "$rst" = 1 ] &&
		grep -q -- "refused a connection: .*$5" "$dir/refused.err"; then
		ok "$what: the receiver logs: $(grep -m1 'refused a connection' "$dir/refused.err")"
	else
		bad "$what: the receiver (exit $rst): $(cat "$dir/refused.err")"
	fi
	if [ "$ms" -lt 15000 ]; then
		ok "$what: over in $ms ms"
	else
		bad "$what: took $ms ms"
	fi
}
refused "a certificate from another CA" "$RECV_TLS" \
	"--tls-cert $c/stranger.crt --tls-key $c/stranger.key --tls-ca $c/ca.crt" \
	"refused our certificate" \
	"sender's certificate does not verify: unable to get local issuer"
refused "an expired certificate" "$RECV_TLS" \
	"--tls-cert $c/expired.crt --tls-key $c/expired.key --tls-ca $c/ca.crt" \
	"certificate expired" \
	"sender's certificate does not verify: certificate has expired"
refused "a receiver of another CA" \
	"--tls-cert $c/stranger.crt --tls-key $c/stranger.key --tls-ca $c/ca.crt" \
	"$SEND_TLS" "receiver's certificate does not verify" \
	"the sender refused it"
refused "a wrong host name" "$RECV_TLS" "$SEND_TLS --tls-hostname wrong.test" \
	"receiver's certificate does not verify: hostname mismatch" \
	"the sender refused it"
refused "a plaintext sender to a TLS receiver" "$RECV_TLS" "" \
	"receiver refused: .*the sender does not use TLS" \
	"the sender does not use TLS"
refused "a TLS sender to a plaintext receiver" "" "$SEND_TLS" \
	"the receiver does not use TLS" "the sender uses TLS"
refused "a wrong PSK" "--tls --secret-file $dir/secret" \
	"--tls --secret-file $dir/secret2" "secrets differ" \
	"another pre-shared key"
refused "x509 sender, PSK receiver" "--tls --secret-file $dir/secret" \
	"$SEND_TLS" "TLS handshake failed" "TLS handshake failed"
refused "PSK sender, x509 receiver" "$RECV_TLS" \
	"--tls --secret-file $dir/secret" \
	"it wants a certificate, this end has a pre-shared key: one mode on both" \
	"TLS handshake failed"
# unix: names the receiver with --tls-hostname
start_recv unix "unix:$dir/sock" --timeout 10 $RECV_TLS &&
	if timeout 30 "$MULTIFD" send -q $SEND_TLS --tls-hostname receiver.test \
		"$ruri" "$dir/src" 2>"$dir/unix.send.err" && wait "$rpid" &&
		cmp -s "$dir/src" "$dir/dst"; then
		ok "unix: with --tls-hostname: identical"
	else
		bad "unix: $(cat "$dir/unix.send.err" "$dir/unix.err")"
	fi

# ---- (d) one flipped byte ----
echo "the old content" >"$dir/old"
start_recv flip tcp:127.0.0.1:0 --timeout 10 $RECV_TLS &&
	start_proxy "${ruri##*:}" --flip 1000000 && {
	cp "$dir/old" "$dir/dst"
	t0=$(date +%s%N)
	timeout 60 "$MULTIFD" send -q -c 1 --timeout 10 $SEND_TLS \
		"tcp:127.0.0.1:$pport" "$dir/src" 2>"$dir/flip.send.err"
	sst=$?
	wait "$rpid"
	rst=$?
	ms=$((($(date +%s%N) - t0) / 1000000))
	kill "$ppid_" 2>/dev/null
	if [ "$rst" = 1 ] && grep -q "integrity check" "$dir/flip.err"; then
		ok "a flipped byte: the receiver fails: $(grep -v listening "$dir/flip.err" | head -1)"
	else
		bad "a flipped byte: the receiver (exit $rst): $(cat "$dir/flip.err")"
	fi
	if [ "$sst" = 1 ] && grep -qi "integrity\|bad record mac" "$dir/flip.send.err"; then
		ok "a flipped byte: the sender fails: $(head -1 "$dir/flip.send.err")"
	else
		bad "a flipped byte: the sender (exit $sst): $(cat "$dir/flip.send.err")"
	fi
	if cmp -s "$dir/old" "$dir/dst"; then
		ok "a flipped byte: the receiver's file is left as it was"
	else
		bad "a flipped byte: the receiver's file changed"
	fi
	if [ "$ms" -lt 20000 ]; then
		ok "a flipped byte: over in $ms ms"
	else
		bad "a flipped byte: took $ms ms"
	fi
}

# ---- stalls: a peer that says nothing cannot hold the TLS handshake ----
# a listener that accepts and never answers: the sender's TLS handshake
# ends at its --timeout
python3 -c '
import socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(8)
print(s.getsockname()[1], flush=True)
conns = []
end = time.time() + 30
while time.time() < end:
    s.settimeout(0.5)
    try: conns.append(s.accept()[0])
    except OSError: pass' >"$dir/silent.port" &
spid=$!
for _ in $(seq 50); do [ -s "$dir/silent.port" ] && break; sleep 0.1; done
t0=$(date +%s%N)
timeout 30 "$MULTIFD" send -q --timeout 2 $SEND_TLS \
	"tcp:127.0.0.1:$(cat "$dir/silent.port")" "$dir/src" 2>"$dir/silent.err"
st=$?
ms=$((($(date +%s%N) - t0) / 1000000))
kill "$spid" 2>/dev/null
if [ "$st" = 1 ] && [ "$ms" -lt 5000 ] &&
	grep -q "TLS handshake did not complete within 2000 ms" "$dir/silent.err"; then
	ok "a silent receiver: the sender gives up after $ms ms: $(cat "$dir/silent.err")"
else
	bad "a silent receiver: exit $st after $ms ms: $(cat "$dir/silent.err")"
fi
# a connection that sends nothing to a TLS receiver holds only its own
# handshake: the real sender that comes next succeeds at once (not after
# the handshake's 5 s), and the silent one is dropped, the log says why
if start_recv silent tcp:127.0.0.1:0 --timeout 20 $RECV_TLS; then
	port=${ruri##*:}
	python3 -c '
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
print("connected", flush=True)
time.sleep(8)' "$port" >"$dir/silent.client" &
	cpid=$!
	for _ in $(seq 50); do
		[ -s "$dir/silent.client" ] && break
		sleep 0.1
	done
	t0=$(date +%s%N)
	if timeout 40 "$MULTIFD" send -q --timeout 20 $SEND_TLS "$ruri" \
		"$dir/src" 2>"$dir/silent.send.err" &&
		ms=$((($(date +%s%N) - t0) / 1000000)) && [ "$ms" -lt 4000 ] &&
		wait "$rpid" &&
		grep -q "refused a connection: dropped: its handshake was still running when the session began" \
			"$dir/silent.err" && cmp -s "$dir/src" "$dir/dst"; then
		ok "a silent client: the sender after it succeeds in $ms ms; $(grep -m1 refused "$dir/silent.err")"
	else
		bad "a silent client: $(cat "$dir/silent.send.err" "$dir/silent.err")"
	fi
	kill "$cpid" 2>/dev/null
fi

# ---- (e) what TLS does not go with ----
# rejected WHAT TEXT ARGS...: the sender refuses at once naming TEXT
rejected() {
	local what=$1 text=$2
	shift 2
	out=$(timeout 10 "$MULTIFD" send -q "$@" "$dir/src" 2>&1)
	st=$?
	if [ "$st" != 0 ] && [ "$st" != 124 ] && grep -q -- "$text" <<<"$out"; then
		ok "$what: $out"
	else
		bad "$what (exit $st): $out"
	fi
}
rejected "rdma:" "one-sided RDMA WRITEs that no TLS record covers" \
	$SEND_TLS rdma:127.0.0.1:1
rejected "--tls without a secret" "needs --secret-file" --tls tcp:127.0.0.1:1
# no name would check nothing: an empty or impossible one is refused
rejected "an empty --tls-hostname" "the receiver's name '' " \
	$SEND_TLS --tls-hostname "" tcp:127.0.0.1:1
rejected "a --tls-hostname that is no name" "is no DNS name or IP address" \
	$SEND_TLS --tls-hostname "bad name!*" tcp:127.0.0.1:1
rejected "--tls-hostname with a pre-shared key" "not with a pre-shared key" \
	--tls --secret-file "$dir/secret" --tls-hostname a.test tcp:127.0.0.1:1
rejected "unix: without --tls-hostname" "needs tls_hostname" \
	$SEND_TLS "unix:$dir/nosock"
rejected "a missing certificate file" "cannot read the certificate" \
	--tls-cert "$dir/none.crt" --tls-key "$c/sender.key" \
	--tls-ca "$c/ca.crt" tcp:127.0.0.1:1
# a key with a passphrase: refused at once, never a prompt (which would
# block without a deadline); a directory or a DER file: what was expected
openssl pkey -in "$c/sender.key" -aes256 -passout pass:x \
	-out "$c/locked.key" 2>/dev/null
rejected "a key with a passphrase" "protected by a passphrase" \
	--tls-cert "$c/sender.crt" --tls-key "$c/locked.key" \
	--tls-ca "$c/ca.crt" tcp:127.0.0.1:1
rejected "a directory as the certificate" "is a directory: expected a regular PEM file" \
	--tls-cert "$c" --tls-key "$c/sender.key" --tls-ca "$c/ca.crt" \
	tcp:127.0.0.1:1
openssl x509 -in "$c/sender.crt" -outform DER -out "$c/sender.der"
rejected "a DER certificate" "expected a PEM file" \
	--tls-cert "$c/sender.der" --tls-key "$c/sender.key" \
	--tls-ca "$c/ca.crt" tcp:127.0.0.1:1
rejected "a key of another certificate" "does not match" \
	--tls-cert "$c/sender.crt" --tls-key "$c/receiver.key" \
	--tls-ca "$c/ca.crt" tcp:127.0.0.1:1

# ---- (f) the sender learns why the receiver failed, as without TLS ----
# (OpenSSL would answer the receiver's own shutdown of its reads with a
# fatal alert, and a reset under a send hid the reason that preceded it)
head -c $((32 << 20)) /dev/urandom >"$dir/big"
# why_told NAME WANT FAULT: a PSK session at 8 MiB/s, FAULT run on it,
# the sender's error must carry WANT
why_told() {
	local name=$1 want=$2 fault=$3 st
	start_recv "$name" tcp:127.0.0.1:0 --timeout 2 --tls \
		--secret-file "$dir/secret" || return
	"$MULTIFD" send -q -c 4 --max-bandwidth 8M --tls --timeout 20 \
		--secret-file "$dir/secret" "$ruri" "$dir/big" \
		2>"$dir/$name.send" &
	spid=$!
	sleep 1
	$fault
	wait $spid
	st=$?
	wait $rpid 2>/dev/null
	if [ $st = 1 ] && grep -q -- "$want" "$dir/$name.send"; then
		ok "$name: the sender says $(cat "$dir/$name.send")"
	else
		bad "$name (exit $st): $(cat "$dir/$name.send" "$dir/$name.err")"
	fi
}
stop_sender() { kill -STOP $spid; sleep 3; kill -CONT $spid; }
stop_receiver() { kill -TERM $rpid; }
why_told "a receiver that times out" \
	"the receiver failed: channel [0-9]: no data for 2000 ms" stop_sender
why_told "a receiver cancelled (SIGTERM)" \
	"the receiver failed: it was stopped by a signal (SIGTERM)" \
	stop_receiver
# a full file system: the tool's own test of it runs without TLS
# (test-files.sh); here only with a tmpfs this test may mount
if [ "$(id -u)" = 0 ] && mkdir -p "$dir/small" &&
	mount -t tmpfs -o size=4m tmpfs "$dir/small" 2>/dev/null; then
	"$MULTIFD" recv --tls --secret-file "$dir/secret" --timeout 10 \
		tcp:127.0.0.1:0 "$dir/small/out" 2>"$dir/full.err" &
	rpid=$!
	if ruri=$(wait_listening "$dir/full.err"); then
		timeout 60 "$MULTIFD" send -q -c 4 --tls \
			--secret-file "$dir/secret" "$ruri" "$dir/big" \
			2>"$dir/full.send"
		st=$?
		wait $rpid
		if [ $st = 1 ] && grep -q "the receiver failed: .*cannot be written" \
			"$dir/full.send"; then
			ok "a full file system: the sender says $(head -c 300 "$dir/full.send")"
		else
			bad "a full file system (exit $st): $(cat "$dir/full.send" "$dir/full.err")"
		fi
	fi
	umount "$dir/small"
fi

report test-tls.sh
