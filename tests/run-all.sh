#!/usr/bin/env bash
# make test: every part in turn; a summary line per part and, last, the
# total in the form CI reads: "N passed, N failed, N skipped".
set -uo pipefail
MAKE=${1:-make}
logdir=build/test-logs
mkdir -p "$logdir"
parts=(test-unit test-fuzz test-integration test-cluster test-vm test-san)
tp=0; tf=0; ts=0; bad=()
for part in "${parts[@]}"; do
	echo "=== $part"
	start=$(date +%s)
	# builds in parallel (the fuzz and sanitizer builds are long); the
	# tests themselves are one recipe each and run in order
	$MAKE --no-print-directory -j"$(nproc)" "$part" 2>&1 | tee "$logdir/$part.log"
	rc=${PIPESTATUS[0]}
	# a part may run several runners (test-san: unit + integration): add up
	# every summary line it printed
	lines=$(grep -E '^[0-9]+ passed, [0-9]+ failed' "$logdir/$part.log")
	p=0; f=0; s=0
	while read -r l; do
		[ -n "$l" ] || continue
		p=$((p + $(sed -E 's/^([0-9]+) passed.*/\1/' <<<"$l")))
		f=$((f + $(sed -E 's/^[0-9]+ passed, ([0-9]+) failed.*/\1/' <<<"$l")))
		n=$(sed -nE 's/.*, ([0-9]+) skipped.*/\1/p' <<<"$l")
		s=$((s + ${n:-0}))
	done <<<"$lines"
	line="$p passed, $f failed, $s skipped"
	tp=$((tp + p)); tf=$((tf + f)); ts=$((ts + s))
	if [ "$rc" -ne 0 ] || [ -z "$lines" ]; then
		bad+=("$part")
		[ -z "$lines" ] && tf=$((tf + 1))
	fi
	echo "=== $part: ${line:-no summary} (rc $rc, $(( $(date +%s) - start )) s)"
done
echo
[ ${#bad[@]} -eq 0 ] || echo "failing parts: ${bad[*]}"
echo "$tp passed, $tf failed, $ts skipped"
[ ${#bad[@]} -eq 0 ]
