#!/usr/bin/env bash
# Starts a single-node Cassandra 5.0 for development and tests, from Maven Central jars:
#   tools/cassandra/start.sh [start|stop|status]
#   tools/cassandra/start.sh nodetool ARGS...   nodetool against this node (JMX on 127.0.0.1:7199)
# Jars are cached in .cache/cassandra/lib (and ~/.m2); data and the log live in .cache/cassandra/run.
# Env: CASSANDRA_PORT (9042), CASSANDRA_HEAP (2G: each keyspace the tests make costs heap), CASSANDRA_TIMEOUT (seconds to wait for CQL, 180).
# Three nodes for the cluster suite: cluster.sh beside this file.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="$root/.cache/cassandra"
run="$cache/run"
port="${CASSANDRA_PORT:-9042}"
heap="${CASSANDRA_HEAP:-2G}"
timeout="${CASSANDRA_TIMEOUT:-180}"
# shellcheck source=common.sh
. "$here/common.sh"

start() {
  if node_running "$run" && cql_open 127.0.0.1 "$port"; then
    echo "cassandra already running (pid $(cat "$run/cassandra.pid")), CQL on 127.0.0.1:$port"; return
  fi
  fetch
  write_config "$run" 127.0.0.1 assistd-test "127.0.0.1:7000" 0
  mark_log "$run"
  launch "$run" "$heap" 7199
  echo "starting cassandra (pid $(cat "$run/cassandra.pid")), log: $run/cassandra.log"
  wait_ready "$run" 127.0.0.1 "$timeout" || exit 1
}

case "${1:-start}" in
  start) start ;;
  stop) stop_node "$run"; echo "cassandra stopped" ;;
  nodetool) shift; nodetool_at 7199 "$@" ;;
  status) if node_running "$run" && cql_open 127.0.0.1 "$port"; then echo "running, CQL on 127.0.0.1:$port"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 [start|stop|status|nodetool ARGS...]" >&2; exit 2 ;;
esac
