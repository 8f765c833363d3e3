#!/usr/bin/env bash
# Local Prefect server + process worker for the deployments in prefect.yaml.
#   scripts/prefect-local.sh start   # start both in the background (logs in .prefect-local/)
#   scripts/prefect-local.sh stop    # stops everything start started: each runs in its own
#                                    # process group (setsid), stop signals the whole group,
#                                    # and only when the pid file's process is still the one start
#                                    # started (same start time): a stale pid file signals nothing
# Uses PREFECT_API_URL=http://127.0.0.1:${PREFECT_PORT:-4200}/api; export it in
# the shell where you run `prefect deploy` / `prefect deployment run`.
set -euo pipefail
cd "$(dirname "$0")/.."
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
PORT=${PREFECT_PORT:-4200}
export PREFECT_API_URL="http://127.0.0.1:${PORT}/api"
STATE=${PREFECT_LOCAL_STATE:-.prefect-local}
POOL=catalog-local
PREFECT=${PREFECT:-prefect}
mkdir -p "$STATE"

# started_at PID: the process's start time (clock ticks after boot, field 22 of /proc/PID/stat; it
# survives exec), empty when there is no such process. A reused pid has another start time.
started_at() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  stat=${stat##*) }  # the fields after "pid (comm) ", from field 3 on
  # shellcheck disable=SC2086
  set -- $stat
  echo "${20}"
}

# launch NAME CMD...: CMD in a new session (its pid is its process-group id), logged to $STATE/NAME.log;
# $STATE/NAME.pid holds "pid start-time".
launch() {
  local name=$1 pid; shift
  setsid nohup "$@" >"$STATE/$name.log" 2>&1 </dev/null &
  pid=$!
  echo "$pid $(started_at "$pid")" >"$STATE/$name.pid"
}

# owns NAME: the pid file names a live process that is still the one launch started (same start
# time) and still leads its own process group. Prints the pid.
owns() {
  local pid start stat
  [ -f "$STATE/$1.pid" ] || return 1
  read -r pid start _ <"$STATE/$1.pid" || true
  [[ "$pid" =~ ^[0-9]+$ && -n "${start:-}" ]] || return 1
  [ "$(started_at "$pid")" = "$start" ] || return 1
  stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  # shellcheck disable=SC2086
  set -- $stat
  [ "$3" = "$pid" ] || return 1  # field 5, the process group
  echo "$pid"
}

start() {
  local pid
  if pid=$(owns server); then
    echo "server already running (pid $pid)"
  else
    launch server "$PREFECT" server start --host 127.0.0.1 --port "$PORT"
  fi
  for _ in $(seq 1 120); do
    curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1 && break
    sleep 1
  done
  curl -fsS "$PREFECT_API_URL/health" >/dev/null || { echo "server did not start; see $STATE/server.log" >&2; exit 1; }
  "$PREFECT" work-pool inspect "$POOL" >/dev/null 2>&1 || "$PREFECT" work-pool create "$POOL" --type process >/dev/null
  if pid=$(owns worker); then
    echo "worker already running (pid $pid)"
  else
    launch worker "$PREFECT" worker start --pool "$POOL" --type process
  fi
  echo "Prefect server at ${PREFECT_API_URL%/api} (UI), worker on pool '$POOL'."
  echo "Now: export PREFECT_API_URL=$PREFECT_API_URL; prefect deploy --all; prefect deployment run 'catalog/nightly'"
}

# stop_group NAME: TERM to the whole process group (the server's uvicorn child, the worker's
# flow-run processes), KILL whatever is left after 15 s. Only a group that start started: a stale
# pid file (the process is gone and its pid may now be another program's) signals nothing.
stop_group() {
  local name=$1 pid
  [ -f "$STATE/$name.pid" ] || return 0
  if ! pid=$(owns "$name"); then
    echo "$name is not running (stale pid file $STATE/$name.pid: $(head -c 80 "$STATE/$name.pid")); nothing signalled"
    rm -f "$STATE/$name.pid"
    return 0
  fi
  if kill -TERM -- "-$pid" 2>/dev/null; then
    for _ in $(seq 1 30); do
      kill -0 -- "-$pid" 2>/dev/null || break
      sleep 0.5
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    echo "stopped $name"
  fi
  rm -f "$STATE/$name.pid"
}

stop() {
  stop_group worker
  stop_group server
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
