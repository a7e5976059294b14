# listening.sh - sourced by the shell tests.
# wait_listening FILE: print the URI a `multifd recv` says it listens on
# (its stderr goes to FILE; port 0 becomes a real port there); fail after
# 10 s without it.
wait_listening() {
	local uri
	for _ in $(seq 100); do
		uri=$(sed -n 's/^multifd: listening on //p' "$1" 2>/dev/null)
		if [ -n "$uri" ]; then
			echo "$uri"
			return 0
		fi
		sleep 0.1
	done
	return 1
}
