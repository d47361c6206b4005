#!/usr/bin/env bash
# The body of `make bench`: starts throwaway Postgres and Redis on loopback,
# runs the sync server on them, drives it with cartsync-bench (1,000 engine
# clients by default) and measures Postgres' own single-row insert rate for
# comparison; then the peer workload (64 shoppers looping add, set quantity,
# remove, over websocket and HTTP), the same on the embedded SQLite default,
# the storefront backend, idle connections and the widget. Extra arguments
# go to the first cartsync-bench run (see -h).
#
#   scripts/bench.sh restart [-clients N] [-editors N] ...
#   scripts/bench.sh idle [-clients N] [-source-addrs N]
#   scripts/bench.sh scale [-clients N] [-instances N] ...
#
# runs the restart scenario instead: cartsync-bench starts the server itself
# on the same services, connects the clients, restarts the server with
# SIGTERM and times their return (docs/benchmarks.md); idle measures the
# server's memory and goroutines per idle connection; scale (`make scale`)
# starts several instances on the same Postgres and Redis, holds idle
# connections across them and runs the peer workload on top.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { printf '\n=== %s\n' "$*" >&2; }

scripts/install-deps.sh
export CARTSYNC_TESTENV_STATE=$ROOT/.testenv/bench-$$.state
WORK=$(mktemp -d /tmp/cartsync-bench.XXXXXX)
server_pid=
cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	[[ -n $server_pid ]] && kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
	scripts/testenv.sh stop || true
	rm -rf "$WORK"
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "build"
go build -o "$WORK/cartsync" ./syncserver/cmd/cartsync
go build -o "$WORK/cartsync-bench" ./syncserver/cmd/cartsync-bench

log "services"
scripts/testenv.sh start
eval "$(scripts/testenv.sh env)"

# Each client is a socket here and on the server: 10,000 clients need more
# than the usual 1,024 descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

machine() {
	log "machine"
	echo "date: $(date -u +%Y-%m-%dT%H:%MZ)"
	echo "cpu: $(nproc) x $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')"
	echo "memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
	echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "go: $(go version | cut -d' ' -f3)"
	echo "postgres: $(psql --version | cut -d' ' -f3), fsync on, synchronous_commit on; redis: $(redis-server --version | cut -d' ' -f3)"
	echo "open files: $(ulimit -n)"
}

# Every client of the load generator comes from 127.0.0.1: lift the
# per-address limits meant for the open internet.
unlimited="-max-conns-per-ip -1 -rate-per-ip -1 -devices-per-ip -1 -edits-per-ip -1"

idle() {
	local port
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	TMPDIR=$WORK "$WORK/cartsync-bench" -scenario idle -server "http://127.0.0.1:$port" \
		-server-bin "$WORK/cartsync" \
		-server-args "-log-level warn -data $WORK/data-idle -postgres-url $CARTSYNC_TEST_POSTGRES_URL -redis-url $CARTSYNC_TEST_REDIS_URL -redis-prefix bench-idle-$$: $unlimited" "$@"
}

if [[ ${1:-} == idle ]]; then
	shift
	machine
	log "idle connections"
	idle "$@"
	exit
fi

if [[ ${1:-} == scale ]]; then
	shift
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	machine
	log "scale: several instances, one Postgres, one Redis"
	TMPDIR=$WORK "$WORK/cartsync-bench" -scenario scale -server "http://127.0.0.1:$port" \
		-server-bin "$WORK/cartsync" -source-addrs 8 -duration 15s -warmup 3s \
		-server-args "-log-level warn -postgres-url $CARTSYNC_TEST_POSTGRES_URL -postgres-max-conns 16 -redis-url $CARTSYNC_TEST_REDIS_URL -redis-prefix bench-scale-$$: $unlimited" "$@"
	exit
fi

if [[ ${1:-} == restart ]]; then
	shift
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
	machine
	log "restart"
	TMPDIR=$WORK "$WORK/cartsync-bench" -scenario restart -server "http://127.0.0.1:$port" \
		-server-bin "$WORK/cartsync" \
		-server-args "-log-level warn -data $WORK/data -postgres-url $CARTSYNC_TEST_POSTGRES_URL -postgres-max-conns 16 -redis-url $CARTSYNC_TEST_REDIS_URL $unlimited" "$@"
	exit
fi

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
conns=16
"$WORK/cartsync" -addr "127.0.0.1:$port" -log-level error \
	-postgres-url "$CARTSYNC_TEST_POSTGRES_URL" -postgres-max-conns "$conns" \
	-redis-url "$CARTSYNC_TEST_REDIS_URL" $unlimited &
server_pid=$!
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done

machine

log "load (group commit; the baseline at the server's pool size and at 64 connections)"
"$WORK/cartsync-bench" -server "http://127.0.0.1:$port" \
	-postgres-url "$CARTSYNC_TEST_POSTGRES_URL" -postgres-conns "$conns,64" "$@"

log "open loop: 1,000 edits/s over the same 1,000 clients (about half of the closed loop's rate)"
"$WORK/cartsync-bench" -server "http://127.0.0.1:$port" -rate 1000 -duration 15s

log "peer workload: 64 shoppers, add -> set quantity 3 -> remove, over websocket and HTTP"
"$WORK/cartsync-bench" -scenario peer -server "http://127.0.0.1:$port" -shoppers 64 -duration 15s -warmup 3s

log "the embedded default (SQLite, in-process cache and fan-out): load, its baseline, the peer workload"
kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
"$WORK/cartsync" -addr "127.0.0.1:$port" -log-level error -data "$WORK/data-sqlite" $unlimited &
server_pid=$!
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done
"$WORK/cartsync-bench" -server "http://127.0.0.1:$port" -duration 15s -sqlite-baseline "$WORK"
"$WORK/cartsync-bench" -scenario peer -server "http://127.0.0.1:$port" -shoppers 64 -duration 15s -warmup 3s

log "storefront backend: catalog uploads, cart events to webhooks"
kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
server_pid=
hookport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
key=bench-api-key-$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
secret=whsec_$(head -c 32 /dev/urandom | base64)
psql "$CARTSYNC_TEST_POSTGRES_URL" -qc 'CREATE SCHEMA bench_commerce' >/dev/null
"$WORK/cartsync" -addr "127.0.0.1:$port" -log-level error \
	-postgres-url "$CARTSYNC_TEST_POSTGRES_URL&search_path=bench_commerce" -postgres-max-conns "$conns" \
	-redis-url "$CARTSYNC_TEST_REDIS_URL" -redis-prefix bench-commerce: $unlimited \
	-api-keys "$key" -webhook-url "http://127.0.0.1:$hookport/hook" -webhook-secrets "$secret" &
server_pid=$!
for _ in $(seq 100); do
	curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
	sleep 0.1
done
"$WORK/cartsync-bench" -scenario commerce -server "http://127.0.0.1:$port" -api-key "$key" \
	-webhook-secret "$secret" -webhook-listen "127.0.0.1:$hookport" -duration 20s

log "idle connections: server memory and goroutines per connection"
kill "$server_pid" 2>/dev/null && wait "$server_pid" 2>/dev/null
server_pid=
idle -clients 10000

log "widget in a storefront page: blocking time, LCP, load, add() latency (headless Chromium)"
go build -o "$WORK/cartsync-hostbench" ./syncserver/cmd/cartsync-hostbench
"$WORK/cartsync-hostbench" -server-bin "$WORK/cartsync" -server-args "$unlimited"

if [[ -f web/app.wasm ]]; then
	log "widget size"
	raw=$(stat -c %s web/app.wasm)
	awk -v n="$raw" 'BEGIN { printf "app.wasm: %.2f MiB raw", n/1048576 }'
	[[ -f web/app.wasm.br ]] && awk -v n="$(stat -c %s web/app.wasm.br)" 'BEGIN { printf ", %.2f MiB brotli", n/1048576 }'
	[[ -f web/app.wasm.gz ]] && awk -v n="$(stat -c %s web/app.wasm.gz)" 'BEGIN { printf ", %.2f MiB gzip", n/1048576 }'
	echo
fi

if [[ -f web/app.wasm ]]; then
	log "widget size by package"
	go run ./syncserver/cmd/wasmsize -shipped web/app.wasm -top 15
fi
