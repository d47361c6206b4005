#!/usr/bin/env bash
# The body of `make test` and of CI: installs what is missing, starts throwaway
# Postgres and Redis (stopped again on any exit, Ctrl-C included), then runs
#
#   0. make wasm                          the widget the browser tests load
#   1. go vet ./...
#   2. go test ./...                       natively, against those services
#      scripts/fuzz.sh -t 4s               each fuzz target for 4 seconds
#   3. go test -exec wasmbrowsertest       js/wasm packages of app/ and shared/
#                                          in headless Chromium
#
# Every step runs even when an earlier one failed; a summary ends the output
# and the exit status is non-zero if any step failed.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

log() { printf '\n=== %s\n' "$*" >&2; }

log "dependencies"
scripts/install-deps.sh
go version

# Own state file, so `make services-up` services are neither reused nor
# stopped by this run.
export CARTSYNC_TESTENV_STATE=$ROOT/.testenv/test-$$.state
WORK=$(mktemp -d /tmp/cartsync-test.XXXXXX)
summary=()
# shellcheck disable=SC2317 # reached through the EXIT trap
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	scripts/testenv.sh stop || rc=1
	rm -rf "$WORK"
	# The summary comes last, where CI reads the closing lines.
	if ((${#summary[@]} > 0)); then
		log "summary"
		printf '%s\n' "${summary[@]}"
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "services"
scripts/testenv.sh start
eval "$(scripts/testenv.sh env)"
export CARTSYNC_REQUIRE_SERVICES=1

# chromedp, and so wasmbrowsertest, starts the first of headless_shell,
# chromium, google-chrome, ... that it finds on PATH: make that our wrapper.
mkdir "$WORK/browser"
for name in headless_shell headless-shell chromium chromium-browser google-chrome; do
	ln -s "$ROOT/scripts/chromium-headless" "$WORK/browser/$name"
done
PATH=$WORK/browser:$(go env GOPATH)/bin:$PATH
export PATH

results=()
failed=0
# step NAME CMD... runs CMD, copies its output to the log that the package
# count below reads, and records the outcome.
step() {
	local name=$1
	shift
	log "$name: $*"
	if "$@" 2>&1 | tee -a "$WORK/go-test.log"; then
		results+=("PASS  $name")
	else
		results+=("FAIL  $name")
		failed=1
	fi
}

# The browser tests load the real widget: build it first.
step "build widget" make --no-print-directory wasm
step "vet" go vet ./...
step "test (native)" go test -count=1 -timeout 12m ./...
# Every fuzz target for a few seconds of new inputs (their seed corpora
# already ran as tests above); `make fuzz` runs them for long.
step "fuzz (4s per target)" scripts/fuzz.sh -t 4s

# Packages of app/ and shared/ with tests that build for js/wasm; either tree
# may not exist yet, and there may be none.
patterns=()
for dir in app shared; do
	if [[ -d $dir ]]; then
		patterns+=("./$dir/...")
	fi
done
wasm_pkgs=()
if ((${#patterns[@]} > 0)); then
	if list=$(GOOS=js GOARCH=wasm go list -e \
		-f '{{if or .TestGoFiles .XTestGoFiles}}{{.ImportPath}}{{end}}' "${patterns[@]}"); then
		mapfile -t wasm_pkgs < <(grep . <<<"$list" || true)
	else
		results+=("FAIL  list js/wasm test packages")
		failed=1
	fi
fi
if ((${#wasm_pkgs[@]} > 0)); then
	step "test (js/wasm in Chromium)" env GOOS=js GOARCH=wasm \
		go test -count=1 -timeout 12m -exec wasmbrowsertest "${wasm_pkgs[@]}"
else
	log "test (js/wasm in Chromium): no packages with tests in ${patterns[*]:-app/ or shared/}"
	results+=("SKIP  test (js/wasm in Chromium): no packages with tests")
fi

# go test prints "ok  <pkg>" and "FAIL <pkg>" once per package.
passed=$(grep -cE '^ok[[:space:]]+[^[:space:]]' "$WORK/go-test.log" || true)
pkgfailed=$(grep -cE '^FAIL[[:space:]]+[^[:space:]]' "$WORK/go-test.log" || true)

summary=("${results[@]}" "$(printf 'packages: %d passed, %d failed' "$passed" "$pkgfailed")")
exit "$failed"
