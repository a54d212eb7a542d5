# One test-suite runner for tests/{integration,cluster,vm}/run.sh (sourced).
#
#   suite_init NAME SELECT     cd to the repo root, export URBD_BUILD, make
#                              build/test-logs/NAME; SELECT is the list of
#                              test names to run (with or without .sh), or
#                              empty for every t-*.sh beside the caller
#   suite_run LIMIT SKIP_ALL   run each test under `timeout` (its whole
#                              process group; SIGKILL 20 s later), one line
#                              "PASS|FAIL|SKIP name (N s)[: detail]", the last
#                              40 lines of a failure, and finally exactly
#                              "N passed, N failed, N skipped"; returns 1 if
#                              any failed. A non-empty SKIP_ALL skips every
#                              test with that reason instead of running it.
#
# Tests exit 0 (pass), 77 (skip, reason on a "SKIP: name: why" line) or
# anything else (fail).

suite_init() {
	local name=$1 select=$2 n f
	SUITE_DIR=$(cd "$(dirname "$0")" && pwd)
	SUITE_ROOT=$(cd "$SUITE_DIR/../.." && pwd)
	cd "$SUITE_ROOT" || exit 1
	export URBD_BUILD=${URBD_BUILD:-build}
	SUITE_LOGDIR=$SUITE_ROOT/build/test-logs/$name
	mkdir -p "$SUITE_LOGDIR"
	SUITE_TESTS=()
	if [ -n "$select" ]; then
		for n in $select; do SUITE_TESTS+=("$SUITE_DIR/${n%.sh}.sh"); done
	else
		for f in "$SUITE_DIR"/t-*.sh; do [ -e "$f" ] && SUITE_TESTS+=("$f"); done
	fi
}

# the text after "WORD: name: " on the first such line of a test's output
_suite_detail() { grep -m1 "^$1:" "$2" | tr -d '\r' | sed -E "s/^$1: [^:]*: ?//"; }

suite_run() {
	local limit=$1 skip_all=$2 t name out start rc secs status detail
	local passed=0 failed=0 skipped=0
	for t in "${SUITE_TESTS[@]}"; do
		name=$(basename "$t" .sh)
		out=$SUITE_LOGDIR/$name.log
		start=$(date +%s)
		if [ -n "$skip_all" ]; then
			echo "SKIP: $name: $skip_all" >"$out"
			rc=77
		elif [ ! -f "$t" ]; then
			echo "no such test: $t" >"$out"
			rc=1
		else
			timeout -k 20 "$limit" bash "$t" </dev/null >"$out" 2>&1
			rc=$?
		fi
		secs=$(($(date +%s) - start))
		case $rc in
		0) status=PASS; passed=$((passed + 1)) ;;
		77) status=SKIP; skipped=$((skipped + 1)) ;;
		*) status=FAIL; failed=$((failed + 1)) ;;
		esac
		detail=
		[ "$status" = FAIL ] || detail=$(_suite_detail "$status" "$out")
		echo "$status $name (${secs}s)${detail:+: $detail}"
		if [ "$status" = FAIL ]; then
			[ "$rc" -eq 124 ] && echo "  (timed out after ${limit}s)"
			echo "  --- last 40 lines of $out (exit $rc)"
			tail -n 40 "$out" | tr -d '\r' | sed 's/^/  | /'
		fi
	done
	echo "$passed passed, $failed failed, $skipped skipped"
	[ "$failed" -eq 0 ]
}
