# Shared by start.sh (one node) and cluster.sh (three nodes): fetching the jars, writing a node's
# cassandra.yaml, launching one CassandraDaemon JVM, waiting for it, and nodetool. Sourced, not run.
# Needs: $here (this folder), $cache (.cache/cassandra).

fetch() {
  if [ ! -f "$cache/lib/.complete" ]; then
    mkdir -p "$cache/lib"
    mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$cache/lib"
    touch "$cache/lib/.complete"
  fi
}

# write_config DIR ADDRESS CLUSTER_NAME SEEDS TOKEN [extra yaml lines]
write_config() {
  local dir="$1" address="$2" name="$3" seeds="$4" token="$5" extra="${6:-}"
  mkdir -p "$dir/data" "$dir/commitlog" "$dir/saved_caches" "$dir/hints"
  cat > "$dir/cassandra.yaml" <<YAML
cluster_name: $name
num_tokens: 1
initial_token: $token
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
endpoint_snitch: SimpleSnitch
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters: [{seeds: "$seeds"}]
listen_address: $address
rpc_address: $address
storage_port: 7000
native_transport_port: ${port:-9042}
commitlog_sync: periodic
commitlog_sync_period: 10000ms
data_file_directories: [$dir/data]
commitlog_directory: $dir/commitlog
saved_caches_directory: $dir/saved_caches
hints_directory: $dir/hints
storage_compatibility_mode: NONE
auto_snapshot: false
memtable_heap_space: ${memtable:-256MiB}
concurrent_compactors: 1
$extra
YAML
}

jvm_flags() {
  local m
  for m in java.base/java.lang.module java.base/jdk.internal.loader java.base/jdk.internal.ref java.base/jdk.internal.reflect \
           java.base/jdk.internal.math java.base/jdk.internal.module java.base/jdk.internal.util.jar \
           jdk.management/com.sun.management.internal java.base/sun.nio.ch java.base/java.io java.base/java.lang.reflect \
           jdk.compiler/com.sun.tools.javac java.base/java.lang java.base/java.util; do
    echo "--add-opens=$m=ALL-UNNAMED"
  done
  for m in java.base/jdk.internal.misc java.management.rmi/com.sun.jmx.remote.internal.rmi java.rmi/sun.rmi.registry \
           java.rmi/sun.rmi.server java.sql/java.sql java.base/java.lang.ref jdk.unsupported/sun.misc \
           jdk.compiler/com.sun.tools.javac.file jdk.attach/sun.tools.attach; do
    echo "--add-exports=$m=ALL-UNNAMED"
  done
}

# launch DIR HEAP JMX_PORT: starts the node whose cassandra.yaml is in DIR; its pid goes to DIR/cassandra.pid.
launch() {
  local dir="$1" heap="$2" jmx="$3"
  command -v java >/dev/null || { echo "java not found" >&2; exit 1; }
  local flags
  mapfile -t flags < <(jvm_flags)
  nohup java -Xms"$heap" -Xmx"$heap" -XX:MaxDirectMemorySize=512M -XX:+UseG1GC -XX:ParallelGCThreads=2 -XX:ConcGCThreads=1 \
    -Xss256k -XX:+PerfDisableSharedMem -Djava.net.preferIPv4Stack=true -Djdk.attach.allowAttachSelf=true \
    "${flags[@]}" \
    -Dio.netty.tryReflectionSetAccessible=true -Dio.netty.allocator.useCacheForAllThreads=true -Dio.netty.allocator.maxOrder=11 \
    -javaagent:"$cache/lib/jamm-0.4.0.jar" \
    -Dcassandra-foreground=yes -Dcassandra.config="file://$dir/cassandra.yaml" \
    -Dlogback.configurationFile="$here/logback.xml" -Dcassandra.logdir="$dir" -Dcassandra.storagedir="$dir" \
    -Dcassandra.skip_wait_for_gossip_to_settle=0 -Dcassandra.load_ring_state=false -Dcassandra.ring_delay_ms=1000 \
    -Dcassandra.superuser_setup_delay_ms=0 -Dcassandra.available_processors=2 -Dcassandra.jmx.local.port="$jmx" \
    -cp "$here:$cache/lib/*" org.apache.cassandra.service.CassandraDaemon >> "$dir/cassandra.log" 2>&1 &
  echo $! > "$dir/cassandra.pid"
}

node_running() { [ -f "$1/cassandra.pid" ] && kill -0 "$(cat "$1/cassandra.pid")" 2>/dev/null; }

cql_open() { (exec 3<>"/dev/tcp/$1/${2:-9042}") 2>/dev/null; }

# wait_ready DIR ADDRESS TIMEOUT: until this start's "Startup complete" and CQL answers.
wait_ready() {
  local dir="$1" address="$2" timeout="$3" waited=0 from
  from="$(cat "$dir/.log_offset" 2>/dev/null || echo 0)"
  # (grep -c reads to the end: with -q, tail could die of SIGPIPE and pipefail would fail the test)
  until tail -c +"$((from + 1))" "$dir/cassandra.log" 2>/dev/null | grep -c "Startup complete" >/dev/null && cql_open "$address" "${port:-9042}"; do
    if ! node_running "$dir"; then echo "cassandra at $address exited during start-up; last lines of $dir/cassandra.log:" >&2; tail -40 "$dir/cassandra.log" >&2; return 1; fi
    if [ "$waited" -ge "$timeout" ]; then echo "cassandra at $address not ready after ${timeout}s; last lines of $dir/cassandra.log:" >&2; tail -40 "$dir/cassandra.log" >&2; return 1; fi
    sleep 1; waited=$((waited + 1))
  done
  echo "cassandra ready after ${waited}s: CQL on $address:${port:-9042}"
}

# Remembers where this start's log lines begin, so wait_ready does not take an earlier start's "Startup complete".
mark_log() { mkdir -p "$1"; stat -c %s "$1/cassandra.log" 2>/dev/null > "$1/.log_offset" || echo 0 > "$1/.log_offset"; }

# stop_node DIR [SIGNAL]: SIGTERM and wait (then SIGKILL), or the given signal at once (KILL: a crash).
stop_node() {
  local dir="$1" signal="${2:-TERM}"
  if node_running "$dir"; then
    kill -"$signal" "$(cat "$dir/cassandra.pid")"
    for _ in $(seq 1 30); do node_running "$dir" || break; sleep 1; done
    node_running "$dir" && kill -9 "$(cat "$dir/cassandra.pid")"
  fi
  rm -f "$dir/cassandra.pid"
}

# nodetool JMX_PORT ARGS...: the NodeTool class from the same jars, over local JMX.
nodetool_at() {
  local jmx="$1"; shift
  local flags
  mapfile -t flags < <(jvm_flags)
  java -Xmx256m "${flags[@]}" -cp "$here:$cache/lib/*" -Dlogback.configurationFile="$here/logback.xml" \
    org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p "$jmx" "$@"
}
