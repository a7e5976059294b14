# SPDX-License-Identifier: MIT
#
# lib.sh - what the bench scripts (and the rxe guest's checks) share;
# sourced, not run.

# num FILE FIELD: the first number FIELD has in the JSON of FILE
num() {
	sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p" "$1" | head -n 1
}

# median: of the numbers on stdin, one per line ("-" when there are none)
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "-"; exit }
		print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
