#!/usr/bin/env bash
# A local three-node Cassandra 5.0 cluster for the cluster suite and benchmarks, from the same Maven jars
# as start.sh, beside the single test node (which keeps 127.0.0.1): node N (1-3) listens on 127.0.0.(N+1),
# CQL on port 9042, JMX on 127.0.0.1:(7200+N); data and logs in .cache/cassandra/cluster/nodeN.
#   tools/cassandra/cluster.sh start              start the nodes that are not running, wait for all
#   tools/cassandra/cluster.sh stop               stop all three
#   tools/cassandra/cluster.sh status             nodetool status (exit 1 unless all three are up)
#   tools/cassandra/cluster.sh kill N             kill -9 node N (a crash)
#   tools/cassandra/cluster.sh stop-node N        stop node N cleanly
#   tools/cassandra/cluster.sh start-node N       (re)start node N and wait for it
#   tools/cassandra/cluster.sh nodetool N ARGS... nodetool against node N
#   tools/cassandra/cluster.sh hosts              the CQL contact points, for cassandra:// URLs
# Env: CASSANDRA_CLUSTER_HEAP (768M per node), CASSANDRA_TIMEOUT (seconds to wait per node, 240).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="$root/.cache/cassandra"
base="$cache/cluster"
heap="${CASSANDRA_CLUSTER_HEAP:-768M}"
timeout="${CASSANDRA_TIMEOUT:-240}"
port=9042
memtable=128MiB  # of a 768M heap
# shellcheck source=common.sh
. "$here/common.sh"

# Evenly spaced tokens (one per node, no vnodes): each node owns a third of the ring, and with
# replication factor 3 every node holds every row.
tokens=(-9223372036854775808 -3074457345618258603 3074457345618258602)
seeds="127.0.0.2:7000,127.0.0.3:7000,127.0.0.4:7000"

address() { echo "127.0.0.$(($1 + 1))"; }
dir_of() { echo "$base/node$1"; }
jmx_of() { echo "$((7200 + $1))"; }

check_node() { case "${1:-}" in 1|2|3) ;; *) echo "node must be 1, 2 or 3" >&2; exit 2 ;; esac; }

launch_node() {
  local n="$1" dir
  dir="$(dir_of "$n")"
  if node_running "$dir"; then return; fi
  # Every node is a seed and none bootstraps: the ring is fixed by initial_token, so the three can
  # start at once. Hints cover a node that is down for a while (the node-loss tests rely on them).
  write_config "$dir" "$(address "$n")" assistd-cluster "$seeds" "${tokens[$((n - 1))]}" \
    "auto_bootstrap: false
hinted_handoff_enabled: true
max_hint_window: 3h
hints_flush_period: 2000ms"
  mark_log "$dir"
  launch "$dir" "$heap" "$(jmx_of "$n")"
  echo "starting node $n (pid $(cat "$dir/cassandra.pid")) at $(address "$n"), log: $dir/cassandra.log"
}

start_all() {
  fetch
  local n failed=0
  for n in 1 2 3; do launch_node "$n"; done
  for n in 1 2 3; do wait_ready "$(dir_of "$n")" "$(address "$n")" "$timeout" || failed=1; done
  [ "$failed" = 0 ] || exit 1
  wait_all_up
}

# Until every node sees all three as Up/Normal (gossip has settled), so a QUORUM write right after start finds its replicas.
wait_all_up() {
  local waited=0
  until [ "$(nodetool_at "$(jmx_of 1)" status 2>/dev/null | grep -c '^UN ')" = 3 ]; do
    if [ "$waited" -ge 120 ]; then echo "the cluster did not settle:" >&2; nodetool_at "$(jmx_of 1)" status >&2 || true; exit 1; fi
    sleep 2; waited=$((waited + 2))
  done
  echo "cluster up: 3 nodes at 127.0.0.2-4:9042"
}

case "${1:-start}" in
  start) start_all ;;
  stop) for n in 1 2 3; do stop_node "$(dir_of "$n")"; done; echo "cluster stopped" ;;
  status) out="$(nodetool_at "$(jmx_of 1)" status 2>&1 || nodetool_at "$(jmx_of 2)" status 2>&1 || true)"; echo "$out"
          [ "$(echo "$out" | grep -c '^UN ')" = 3 ] ;;
  kill) check_node "${2:-}"; stop_node "$(dir_of "$2")" KILL; echo "node $2 killed" ;;
  stop-node) check_node "${2:-}"; stop_node "$(dir_of "$2")"; echo "node $2 stopped" ;;
  start-node) check_node "${2:-}"; fetch; launch_node "$2"; wait_ready "$(dir_of "$2")" "$(address "$2")" "$timeout" ;;
  nodetool) check_node "${2:-}"; n="$2"; shift 2; nodetool_at "$(jmx_of "$n")" "$@" ;;
  hosts) echo "127.0.0.2,127.0.0.3,127.0.0.4:9042" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
