#!/usr/bin/env bash
# Installs what building and testing cartsync needs, and only what is missing:
# a no-op taking well under a second when everything is there.
#
#   scripts/install-deps.sh        Debian packages, Go tools and axe-core
#   scripts/install-deps.sh go     Go tools only (what `make lint` needs)
#
# Debian packages need root; without it the script prints the command to run
# and fails. Go tools go to $(go env GOPATH)/bin at pinned versions. axe-core
# (the accessibility checker of the axe browser test) comes from the npm
# registry into .tools/axe-core/ in the repository, which git ignores.
set -euo pipefail

# Pinned Go tools: import path and version.
STATICCHECK=honnef.co/go/tools/cmd/staticcheck
STATICCHECK_VERSION=v0.8.2
WASMBROWSERTEST=github.com/agnivade/wasmbrowsertest
WASMBROWSERTEST_VERSION=v0.11.0
# Pinned npm packages: axe-core, for syncserver/cmd/cartsync/axe_browser_test.go.
AXE_CORE_VERSION=4.14.1

PG_BIN=/usr/lib/postgresql/15/bin

log() { printf 'install-deps: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

what=${1:-all}
case $what in
all | go) ;;
*) die "usage: $0 [all|go]" ;;
esac

command -v go >/dev/null || die "go is not on PATH; install Go 1.26 first"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# install_apt installs the Debian packages whose binaries are absent.
install_apt() {
	local missing=()
	# package, then the binaries it must provide
	have_all redis-server /usr/bin/redis-server /usr/bin/redis-cli || missing+=(redis-server)
	have_all postgresql "$PG_BIN/postgres" "$PG_BIN/initdb" "$PG_BIN/pg_ctl" "$PG_BIN/pg_isready" ||
		missing+=(postgresql)
	have_all chromium /usr/bin/chromium || missing+=(chromium)
	have_all brotli /usr/bin/brotli || missing+=(brotli)
	((${#missing[@]} == 0)) && return 0

	if ((EUID != 0)); then
		log "missing Debian packages: ${missing[*]}"
		die "run as root: apt-get update && apt-get install -y ${missing[*]}"
	fi
	# Tests start their own throwaway cluster: keep the package from creating
	# and starting a default one on port 5432.
	if [[ " ${missing[*]} " == *" postgresql "* ]]; then
		mkdir -p /etc/postgresql-common/createcluster.d
		printf '%s\n' '# Written by cartsync scripts/install-deps.sh' 'create_main_cluster = false' \
			>/etc/postgresql-common/createcluster.d/cartsync-no-main.conf
	fi
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -q
	apt-get install -y -q "${missing[@]}"
	for p in "${missing[@]}"; do
		case $p in
		redis-server) have_all "$p" /usr/bin/redis-server /usr/bin/redis-cli ;;
		postgresql) have_all "$p" "$PG_BIN/postgres" "$PG_BIN/initdb" "$PG_BIN/pg_ctl" ;;
		chromium) have_all "$p" /usr/bin/chromium ;;
		brotli) have_all "$p" /usr/bin/brotli ;;
		esac || die "$p installed but its binaries are still missing (is PostgreSQL 15 the distribution's version?)"
	done
}

# have_all PACKAGE FILE... reports whether every FILE is executable.
have_all() {
	shift
	local f
	for f; do
		[[ -x $f ]] || return 1
	done
}

# install_go_tool PATH VERSION installs PATH@VERSION into GOPATH/bin unless the
# binary there already is that version built by this Go toolchain (staticcheck
# built by an older Go cannot load newer code).
install_go_tool() {
	local pkg=$1 version=$2 bin info
	bin=$gobin/${pkg##*/}
	if [[ -x $bin ]] && info=$(go version -m "$bin" 2>/dev/null); then
		if [[ $info == "$bin: $goversion"$'\n'* ]] &&
			grep -qE "^[[:space:]]+mod[[:space:]]+[^[:space:]]+[[:space:]]+$version([[:space:]]|$)" <<<"$info"; then
			return 0
		fi
	fi
	log "installing $pkg@$version"
	GOBIN=$gobin GOFLAGS='' go install "$pkg@$version"
}

# install_axe installs axe-core@AXE_CORE_VERSION into .tools/axe-core/ unless
# that version is there.
install_axe() {
	local dir=$ROOT/.tools/axe-core
	local pkg=$dir/node_modules/axe-core
	if [[ -f $pkg/axe.min.js ]] &&
		grep -qE '^[[:space:]]*"version":[[:space:]]*"'"${AXE_CORE_VERSION//./\\.}"'"' "$pkg/package.json" 2>/dev/null; then
		return 0
	fi
	command -v npm >/dev/null || die "npm is not on PATH; install Node.js 20 with npm (for axe-core)"
	log "installing axe-core@$AXE_CORE_VERSION into $dir"
	mkdir -p "$dir"
	npm install --prefix "$dir" "axe-core@$AXE_CORE_VERSION" --no-audit --no-fund --save-exact --loglevel=error
	[[ -f $pkg/axe.min.js ]] || die "npm installed axe-core but $pkg/axe.min.js is missing"
}

if [[ $what == all ]]; then
	install_apt
	install_axe
fi

gobin=$(go env GOPATH)/bin
goversion=$(go env GOVERSION)
install_go_tool "$STATICCHECK" "$STATICCHECK_VERSION"
install_go_tool "$WASMBROWSERTEST" "$WASMBROWSERTEST_VERSION"
