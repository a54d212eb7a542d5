#!/bin/sh
# Runs libFuzzer targets for a fixed time each.
#   tests/run-fuzz.sh SECONDS build/fuzz/fuzz_nbd_request ...
# Each target starts from a copy of tests/fuzz/corpus/<target>/ in a temp
# directory, so the checked-in corpus is never modified. A crash, leak,
# timeout, OOM or failed invariant fails the target; its log and crashing
# input are kept (the path is printed). One line per target, then exactly
# "N passed, N failed" as the last line; exit 1 if anything failed.

if [ $# -lt 2 ]; then
	echo "usage: $0 SECONDS FUZZER..." >&2
	exit 2
fi
secs=$1
shift
case $secs in
*[!0-9]* | "") echo "$0: SECONDS must be a whole number" >&2; exit 2 ;;
esac

corpus_root=$(cd "$(dirname "$0")" && pwd)/fuzz/corpus
passed=0
failed=0

for bin in "$@"; do
	name=$(basename "$bin")
	if [ ! -x "$bin" ]; then
		echo "FAIL  $name: not found or not executable"
		failed=$((failed + 1))
		continue
	fi
	work=$(mktemp -d "${TMPDIR:-/tmp}/urbd-fuzz-$name.XXXXXX") || exit 1
	mkdir "$work/corpus"
	if [ -d "$corpus_root/$name" ]; then
		cp -R "$corpus_root/$name/." "$work/corpus/"
	fi
	"$bin" -max_total_time="$secs" -rss_limit_mb=2048 -timeout=25 \
		-print_final_stats=1 -artifact_prefix="$work/" \
		"$work/corpus" >"$work/log" 2>&1
	rc=$?
	runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$work/log" |
		grep -oE '[0-9]+$' | tail -n 1)
	speed=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$work/log" |
		grep -oE '[0-9]+$' | tail -n 1)
	[ -n "$speed" ] && [ "$speed" -gt 0 ] ||
		speed=$(grep -oE 'exec/s: [0-9]+' "$work/log" | grep -oE '[0-9]+$' | tail -n 1)
	cov=$(grep -oE 'cov: [0-9]+' "$work/log" | grep -oE '[0-9]+$' | tail -n 1)
	ncorp=$(ls "$work/corpus" | wc -l)
	artifact=$(ls "$work" | grep -E '^(crash|leak|timeout|oom|slow-unit)-' | head -n 1)
	if [ "$rc" -eq 0 ] && [ -z "$artifact" ]; then
		echo "PASS  $name: ${runs:-?} runs in ${secs}s, ${speed:-?} exec/s, cov ${cov:-?}, corpus $ncorp"
		passed=$((passed + 1))
		rm -rf "$work"
	else
		echo "FAIL  $name: exit status $rc after ${runs:-?} runs${artifact:+, input $work/$artifact}; log $work/log"
		grep -E 'invariant failed|differs at|ERROR: |SUMMARY: |runtime error' "$work/log" |
			head -n 5 | sed 's/^/      /'
		failed=$((failed + 1))
	fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
