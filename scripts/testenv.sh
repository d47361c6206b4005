#!/usr/bin/env bash
# Throwaway services for tests: a PostgreSQL 15 cluster and a redis-server,
# both on 127.0.0.1 on free ports, with their files in one temp dir.
#
#   scripts/testenv.sh start   start both and wait until they answer
#   scripts/testenv.sh env     print the exports that point tests at them
#   scripts/testenv.sh stop    stop exactly what start started (safe to repeat)
#
# What start started is written to a state file, .testenv/state in the repo
# unless $CARTSYNC_TESTENV_STATE names another (scripts/test.sh uses its own,
# so `make test` leaves the services of `make services-up` alone).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=${CARTSYNC_TESTENV_STATE:-$ROOT/.testenv/state}
PG_BIN=/usr/lib/postgresql/15/bin
CHROMIUM=$ROOT/scripts/chromium-headless
WAIT_SECONDS=30 # how long each service may take to answer

log() { printf 'testenv: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

# as_postgres runs a command as the postgres user when we are root
# (PostgreSQL refuses to run as root), as ourselves otherwise. It runs from
# the temp dir, since the postgres user may not be able to enter the cwd.
as_postgres() {
	if ((EUID == 0)); then
		(cd "$TMP" && runuser -u postgres -- "$@")
	else
		(cd "$TMP" && "$@")
	fi
}

# port_in_use PORT reports whether something accepts connections on PORT.
port_in_use() {
	(exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# free_port prints a port below Linux's ephemeral range that nothing listens
# on. Another process may take it before we bind, so callers retry.
free_port() {
	local p i
	for ((i = 0; i < 100; i++)); do
		p=$((20000 + RANDOM % 12000))
		if ! port_in_use "$p"; then
			echo "$p"
			return 0
		fi
	done
	die "no free port found"
}

# save KEY VALUE appends to the state file as it goes, so that stop can undo a
# start that failed halfway.
save() {
	printf '%s=%q\n' "$1" "$2" >>"$STATE"
}

# alive PID PATTERN reports whether PID runs and its command line contains
# PATTERN, so that a recycled pid is never signalled.
alive() {
	local pid=$1 pattern=$2 cmdline
	[[ -n $pid && -r /proc/$pid/cmdline ]] || return 1
	cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmdline == *"$pattern"* ]]
}

# wait_gone CHECK PID ARG waits up to 10s until `CHECK PID ARG` (alive or
# redis_alive) fails; after that the process is killed.
wait_gone() {
	local check=$1 pid=$2 arg=$3 i
	for ((i = 0; i < 100; i++)); do
		"$check" "$pid" "$arg" || return 0
		sleep 0.1
	done
	log "pid $pid did not stop; killing it"
	kill -KILL "$pid" 2>/dev/null || true
	sleep 0.2
}

start_postgres() {
	local pgdir=$TMP/pg port i pid
	mkdir -p "$pgdir"
	if ((EUID == 0)); then
		id postgres >/dev/null 2>&1 || die "no postgres user: run scripts/install-deps.sh"
		chown postgres: "$pgdir"
	fi
	chmod 700 "$pgdir"
	[[ -x $PG_BIN/initdb ]] || die "$PG_BIN/initdb missing: run scripts/install-deps.sh"
	as_postgres "$PG_BIN/initdb" -D "$pgdir/data" -U postgres -A trust -E UTF8 --no-locale --no-sync \
		>"$TMP/initdb.log" 2>&1 || {
		cat "$TMP/initdb.log" >&2
		die "initdb failed"
	}
	save PG_DATA "$pgdir/data"
	for ((i = 0; i < 5; i++)); do
		port=$(free_port)
		rm -f "$pgdir/postgres.log"
		if as_postgres "$PG_BIN/pg_ctl" -D "$pgdir/data" -l "$pgdir/postgres.log" -w -t "$WAIT_SECONDS" \
			-o "-p $port -k $pgdir -c listen_addresses=127.0.0.1 -c fsync=on -c max_connections=200" \
			start >/dev/null; then
			break
		fi
		# A port taken between free_port and bind is worth another try;
		# anything else is not.
		grep -q 'already in use' "$pgdir/postgres.log" 2>/dev/null ||
			die "postgres did not start; its log: $pgdir/postgres.log"
		log "port $port was taken; trying another"
		port=
	done
	[[ -n $port ]] || die "postgres did not start; its log: $pgdir/postgres.log"
	pid=$(head -n1 "$pgdir/data/postmaster.pid")
	save PG_PORT "$port"
	save PG_PID "$pid"
	for ((i = 0; i < WAIT_SECONDS * 10; i++)); do
		if "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$port" -U postgres -t 1; then
			log "postgres (pid $pid) ready on 127.0.0.1:$port"
			return 0
		fi
		sleep 0.1
	done
	die "postgres on 127.0.0.1:$port did not answer within ${WAIT_SECONDS}s; its log: $pgdir/postgres.log"
}

start_redis() {
	local rdir=$TMP/redis port i j pid retry
	mkdir -p "$rdir"
	command -v redis-server >/dev/null || die "redis-server missing: run scripts/install-deps.sh"
	for ((i = 0; i < 5; i++)); do
		port=$(free_port)
		rm -f "$rdir/redis.pid" "$rdir/redis.log"
		save REDIS_PORT "$port"
		redis-server --bind 127.0.0.1 --port "$port" --protected-mode yes \
			--save '' --appendonly no --dir "$rdir" \
			--daemonize yes --pidfile "$rdir/redis.pid" --logfile "$rdir/redis.log" ||
			die "redis-server failed; its log: $rdir/redis.log"
		# Redis writes its pidfile only once it has bound the port, so a
		# PONG after that comes from ours, not from whoever took the port.
		retry=
		for ((j = 0; j < WAIT_SECONDS * 10; j++)); do
			pid=$(cat "$rdir/redis.pid" 2>/dev/null) || pid=
			if [[ -n $pid ]]; then
				redis_alive "$pid" "$port" || die "redis-server exited; its log: $rdir/redis.log"
				if [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]]; then
					save REDIS_PID "$pid"
					log "redis (pid $pid) ready on 127.0.0.1:$port"
					return 0
				fi
			elif grep -q 'already in use' "$rdir/redis.log" 2>/dev/null; then
				retry=1
				break
			fi
			sleep 0.1
		done
		[[ -n $retry ]] || die "redis on 127.0.0.1:$port did not answer within ${WAIT_SECONDS}s; its log: $rdir/redis.log"
		log "port $port was taken; trying another"
	done
	die "redis-server did not start; its log: $rdir/redis.log"
}

# redis_alive PID PORT reports whether PID is the redis-server on PORT: its
# command line reads "redis-server 127.0.0.1:PORT" once it runs, and still
# holds "--port PORT" just before.
redis_alive() {
	alive "$1" "127.0.0.1:$2" || alive "$1" "--port $2"
}

running() {
	[[ -f $STATE ]] || return 1
	local PG_DATA='' PG_PID='' PG_PORT='' REDIS_PID='' REDIS_PORT=''
	# shellcheck source=/dev/null
	. "$STATE"
	[[ -n $PG_DATA && -n $PG_PORT && -n $REDIS_PORT ]] &&
		alive "$PG_PID" "$PG_DATA" && redis_alive "$REDIS_PID" "$REDIS_PORT"
}

cmd_start() {
	if running; then
		log "already running (state in $STATE)"
		return 0
	fi
	if [[ -f $STATE ]]; then
		cmd_stop # a stale or half-started one
	fi
	mkdir -p "$(dirname "$STATE")"
	TMP=$(mktemp -d /tmp/cartsync-testenv.XXXXXX)
	chmod 755 "$TMP"
	save TMP "$TMP"
	# On failure, undo what was started before reporting it.
	trap 'rc=$?; if ((rc != 0)); then log "start failed; cleaning up"; cmd_stop; fi' EXIT
	start_postgres
	start_redis
	trap - EXIT
}

cmd_stop() {
	if [[ ! -f $STATE ]]; then
		log "not running"
		return 0
	fi
	local TMP='' PG_DATA='' PG_PID='' PG_PORT='' REDIS_PID='' REDIS_PORT=''
	# shellcheck source=/dev/null
	. "$STATE"
	if [[ -n $REDIS_PORT ]] && redis_alive "$REDIS_PID" "$REDIS_PORT"; then
		kill -TERM "$REDIS_PID" 2>/dev/null || true
		wait_gone redis_alive "$REDIS_PID" "$REDIS_PORT"
		log "redis (pid $REDIS_PID) stopped"
	fi
	if [[ -n $PG_DATA ]] && alive "$PG_PID" "$PG_DATA"; then
		as_postgres "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t 20 stop >/dev/null 2>&1 ||
			kill -TERM "$PG_PID" 2>/dev/null || true
		wait_gone alive "$PG_PID" "$PG_DATA"
		log "postgres (pid $PG_PID) stopped"
	fi
	if [[ $TMP == /tmp/cartsync-testenv.* ]]; then
		rm -rf "$TMP"
	fi
	rm -f "$STATE"
}

cmd_env() {
	running || die "not running: run scripts/testenv.sh start (state file $STATE)"
	local PG_PORT='' REDIS_PORT=''
	# shellcheck source=/dev/null
	. "$STATE"
	# Values are quoted for eval; none of them holds a single quote.
	printf "export CARTSYNC_TEST_POSTGRES_URL='%s'\n" "postgres://postgres@127.0.0.1:$PG_PORT/postgres?sslmode=disable"
	printf "export CARTSYNC_TEST_REDIS_URL='%s'\n" "redis://127.0.0.1:$REDIS_PORT/0"
	printf "export CARTSYNC_TEST_CHROMIUM='%s'\n" "$CHROMIUM"
}

case ${1:-} in
start) cmd_start ;;
stop) cmd_stop ;;
env) cmd_env ;;
*) die "usage: $0 start|stop|env" ;;
esac
