#!/usr/bin/env bash
# make test: every part in turn; a summary line per part and, last, the
# total in the form CI reads: "N passed, N failed, N skipped".
set -uo pipefail
MAKE=${1:-make}
logdir=build/test-logs
mkdir -p "$logdir"
parts=(test-unit test-fuzz test-integration test-san)
tp=0; tf=0; ts=0; bad=()
for part in "${parts[@]}"; do
	echo "=== $part"
	start=$(date +%s)
	$MAKE --no-print-directory "$part" 2>&1 | tee "$logdir/$part.log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logdir/$part.log" | tail -1)
	p=$(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$line")
	f=$(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$line")
	s=$(sed -nE 's/.*, ([0-9]+) skipped.*/\1/p' <<<"$line")
	tp=$((tp + ${p:-0})); tf=$((tf + ${f:-0})); ts=$((ts + ${s:-0}))
	if [ "$rc" -ne 0 ] || [ -z "$line" ]; then
		bad+=("$part")
		[ -z "$line" ] && tf=$((tf + 1))
	fi
	echo "=== $part: ${line:-no summary} (rc $rc, $(( $(date +%s) - start )) s)"
done
echo
[ ${#bad[@]} -eq 0 ] || echo "failing parts: ${bad[*]}"
echo "$tp passed, $tf failed, $ts skipped"
[ ${#bad[@]} -eq 0 ]
