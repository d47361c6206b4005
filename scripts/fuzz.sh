#!/usr/bin/env bash
# Runs the module's fuzz targets one after another, each for a while:
# `go test -fuzz` takes one target of one package at a time. `make test`
# runs it briefly, `make fuzz` for long.
#
#   scripts/fuzz.sh [-t FUZZTIME] [REGEXP]
#
# FUZZTIME is how long each target runs: a duration (5s, 10m) or a number
# of inputs (10000x); 5s by default. REGEXP picks targets by name (all by
# default). A target is a `func FuzzXxx(f *testing.F)` in a _test.go file
# that builds natively. Each line of the output says how a target did; a
# failing target's output follows its line, indented, and the input that
# failed is written to the package's testdata/fuzz/FuzzXxx/, where it stays
# a test case: rerun it with `go test -run=FuzzXxx/<file> ./<package>`.
# The inputs that widen coverage are kept in Go's build cache
# ($(go env GOCACHE)/fuzz), so each run carries on from the last.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

fuzztime=5s
while getopts 't:' opt; do
	case $opt in
	t) fuzztime=$OPTARG ;;
	*)
		echo "usage: $0 [-t FUZZTIME] [REGEXP]" >&2
		exit 2
		;;
	esac
done
shift $((OPTIND - 1))
pick=${1:-.}

# package dir and target name, one pair a line, in a stable order.
targets=()
while IFS= read -r file; do
	if grep -qE '^//go:build js && wasm' "$file"; then
		continue
	fi
	while IFS= read -r name; do
		if [[ $name =~ $pick ]]; then
			targets+=("$(dirname "$file") $name")
		fi
	done < <(sed -nE 's/^func (Fuzz[A-Za-z0-9_]*)\(f \*testing\.F\).*/\1/p' "$file")
done < <(git ls-files --cached --others --exclude-standard -- '*_test.go' | sort)

if ((${#targets[@]} == 0)); then
	echo "fuzz: no target matches ${pick@Q}" >&2
	exit 1
fi

out=$(mktemp)
trap 'rm -f "$out"' EXIT
failed=0
start=$SECONDS
for t in "${targets[@]}"; do
	read -r dir name <<<"$t"
	t0=$SECONDS
	status=0
	go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "./$dir" >"$out" 2>&1 || status=$?
	execs=$(grep -oE 'execs: [0-9]+' "$out" | tail -n 1 || true)
	if ((status == 0)); then
		printf 'fuzz  ok    %-20s ./%-22s %3ds  %s\n' "$name" "$dir" $((SECONDS - t0)) "${execs:-}"
	elif grep -qx '    context deadline exceeded' "$out" &&
		! grep -qE 'Failing input written|--- FAIL: .*/' "$out"; then
		# Go 1.26's fuzz coordinator can report its own -fuzztime
		# deadline as a failure when a worker is busy as it expires
		# (go.dev/issue/75804, fixed in Go 1.27): no input failed.
		printf 'fuzz  ok    %-20s ./%-22s %3ds  %s (stopped by go.dev/issue/75804)\n' "$name" "$dir" $((SECONDS - t0)) "${execs:-}"
	else
		printf 'fuzz  FAIL  %-20s ./%-22s %3ds\n' "$name" "$dir" $((SECONDS - t0))
		sed 's/^/    /' "$out"
		failed=1
	fi
done
printf 'fuzz: %d targets, %ds\n' "${#targets[@]}" $((SECONDS - start))
exit "$failed"
