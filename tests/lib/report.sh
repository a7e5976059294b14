# report.sh - sourced by the shell tests: ok and bad count the checks;
# report NAME prints the tally and exits non-zero when any check failed.
pass=0
fail=0
ok() { pass=$((pass + 1)); echo "ok: $*"; }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
report() {
	echo "$1: $pass passed, $fail failed"
	[ "$fail" = 0 ]
	exit
}
