#!/usr/bin/env bash
# Starts a single-node Cassandra 5.0 for development and tests, from Maven Central jars:
#   tools/cassandra/start.sh [start|stop|status]
# Jars are cached in .cache/cassandra/lib (and ~/.m2); data and the log live in .cache/cassandra/run.
# Env: CASSANDRA_PORT (9042), CASSANDRA_HEAP (2G: each keyspace the tests make costs heap), CASSANDRA_TIMEOUT (seconds to wait for CQL, 180).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
cache="$root/.cache/cassandra"
run="$cache/run"
port="${CASSANDRA_PORT:-9042}"
heap="${CASSANDRA_HEAP:-2G}"
timeout="${CASSANDRA_TIMEOUT:-180}"
log="$run/cassandra.log"
pidfile="$run/cassandra.pid"

fetch() {
  if [ ! -f "$cache/lib/.complete" ]; then
    mkdir -p "$cache/lib"
    mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$cache/lib"
    touch "$cache/lib/.complete"
  fi
}

write_config() {
  mkdir -p "$run/data" "$run/commitlog" "$run/saved_caches" "$run/hints"
  cat > "$run/cassandra.yaml" <<YAML
cluster_name: assistd-test
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters: [{seeds: "127.0.0.1:7000"}]
listen_address: 127.0.0.1
rpc_address: 127.0.0.1
storage_port: 7000
native_transport_port: $port
commitlog_sync: periodic
commitlog_sync_period: 10000ms
data_file_directories: [$run/data]
commitlog_directory: $run/commitlog
saved_caches_directory: $run/saved_caches
hints_directory: $run/hints
storage_compatibility_mode: NONE
auto_snapshot: false
memtable_heap_space: 256MiB
concurrent_compactors: 1
YAML
}

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

cql_ready() { (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; }

start() {
  if running && cql_ready; then echo "cassandra already running (pid $(cat "$pidfile")), CQL on 127.0.0.1:$port"; return; fi
  command -v java >/dev/null || { echo "java not found" >&2; exit 1; }
  fetch
  write_config
  local opens=()
  for m in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref java.base/jdk.internal.reflect \
           java.base/jdk.internal.math java.base/jdk.internal.module java.base/jdk.internal.util.jar \
           jdk.management/com.sun.management.internal java.base/sun.nio.ch java.base/java.io java.base/java.lang.reflect \
           jdk.compiler/com.sun.tools.javac java.base/java.lang java.base/java.util; do
    opens+=("--add-opens=$m=ALL-UNNAMED")
  done
  local exports=()
  for m in java.base/jdk.internal.misc java.management.rmi/com.sun.jmx.remote.internal.rmi java.rmi/sun.rmi.registry \
           java.rmi/sun.rmi.server java.sql/java.sql java.base/java.lang.ref jdk.unsupported/sun.misc \
           jdk.compiler/com.sun.tools.javac.file jdk.attach/sun.tools.attach; do
    exports+=("--add-exports=$m=ALL-UNNAMED")
  done
  nohup java -Xms"$heap" -Xmx"$heap" -XX:MaxDirectMemorySize=512M -XX:+UseG1GC -XX:ParallelGCThreads=2 -XX:ConcGCThreads=1 \
    -Xss256k -XX:+PerfDisableSharedMem -Djava.net.preferIPv4Stack=true -Djdk.attach.allowAttachSelf=true \
    "${opens[@]}" "${exports[@]}" \
    -Dio.netty.tryReflectionSetAccessible=true -Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11 \
    -javaagent:"$cache/lib/jamm-0.4.0.jar" \
    -Dcassandra-foreground=yes -Dcassandra.config="file://$run/cassandra.yaml" \
    -Dlogback.configurationFile="$here/logback.xml" -Dcassandra.logdir="$run" -Dcassandra.storagedir="$run" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.load_ring_state=false -Dcassandra.ring_delay_ms=1000 \
    -Dcassandra.superuser_setup_delay_ms=0 -Dcassandra.available_processors=2 -Dcassandra.jmx.local.port=7199 \
    -cp "$here:$cache/lib/*" org.apache.cassandra.service.CassandraDaemon > "$log" 2>&1 &
  echo $! > "$pidfile"
  echo "starting cassandra (pid $!), log: $log"
  local waited=0
  until grep -q "Startup complete" "$log" 2>/dev/null && cql_ready; do
    if ! running; then echo "cassandra exited during start-up; last lines of $log:" >&2; tail -40 "$log" >&2; exit 1; fi
    if [ "$waited" -ge "$timeout" ]; then echo "cassandra not ready after ${timeout}s; last lines of $log:" >&2; tail -40 "$log" >&2; exit 1; fi
    sleep 1; waited=$((waited + 1))
  done
  echo "cassandra ready after ${waited}s: CQL on 127.0.0.1:$port"
}

stop() {
  if running; then
    kill "$(cat "$pidfile")"
    for _ in $(seq 1 30); do running || break; sleep 1; done
    running && kill -9 "$(cat "$pidfile")"
  fi
  rm -f "$pidfile"
  echo "cassandra stopped"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) if running && cql_ready; then echo "running, CQL on 127.0.0.1:$port"; else echo "not running"; exit 1; fi ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac
