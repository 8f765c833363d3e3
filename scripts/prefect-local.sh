#!/usr/bin/env bash
# Local Prefect server + process worker for the deployments in prefect.yaml.
#   scripts/prefect-local.sh start   # start both in the background (logs in .prefect-local/)
#   scripts/prefect-local.sh stop    # stops everything start started: each runs in its own
#                                    # process group (setsid), stop signals the whole group
# Uses PREFECT_API_URL=http://127.0.0.1:${PREFECT_PORT:-4200}/api; export it in
# the shell where you run `prefect deploy` / `prefect deployment run`.
set -euo pipefail
cd "$(dirname "$0")/.."
export DO_NOT_TRACK=1 PREFECT_SERVER_ANALYTICS_ENABLED=false
PORT=${PREFECT_PORT:-4200}
export PREFECT_API_URL="http://127.0.0.1:${PORT}/api"
STATE=.prefect-local
POOL=catalog-local
PREFECT=${PREFECT:-prefect}
mkdir -p "$STATE"

# launch NAME CMD...: CMD in a new session (its pid is its process-group id), logged to $STATE/NAME.log.
launch() {
  local name=$1; shift
  setsid nohup "$@" >"$STATE/$name.log" 2>&1 </dev/null &
  echo $! >"$STATE/$name.pid"
}

start() {
  if [ -f "$STATE/server.pid" ] && kill -0 "$(cat "$STATE/server.pid")" 2>/dev/null; then
    echo "server already running (pid $(cat "$STATE/server.pid"))"
  else
    launch server "$PREFECT" server start --host 127.0.0.1 --port "$PORT"
  fi
  for _ in $(seq 1 120); do
    curl -fsS "$PREFECT_API_URL/health" >/dev/null 2>&1 && break
    sleep 1
  done
  curl -fsS "$PREFECT_API_URL/health" >/dev/null || { echo "server did not start; see $STATE/server.log" >&2; exit 1; }
  "$PREFECT" work-pool inspect "$POOL" >/dev/null 2>&1 || "$PREFECT" work-pool create "$POOL" --type process >/dev/null
  if [ -f "$STATE/worker.pid" ] && kill -0 "$(cat "$STATE/worker.pid")" 2>/dev/null; then
    echo "worker already running (pid $(cat "$STATE/worker.pid"))"
  else
    launch worker "$PREFECT" worker start --pool "$POOL" --type process
  fi
  echo "Prefect server at ${PREFECT_API_URL%/api} (UI), worker on pool '$POOL'."
  echo "Now: export PREFECT_API_URL=$PREFECT_API_URL; prefect deploy --all; prefect deployment run 'catalog/nightly'"
}

# stop_group NAME: TERM to the whole process group (the server's uvicorn child, the worker's
# flow-run processes), KILL whatever is left after 15 s.
stop_group() {
  local name=$1 pid
  [ -f "$STATE/$name.pid" ] || return 0
  pid=$(cat "$STATE/$name.pid")
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
