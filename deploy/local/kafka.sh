#!/usr/bin/env bash
# Run a real Apache Kafka (KRaft, combined broker+controller) cluster locally,
# without Docker, from jars fetched from Maven Central. See README.md here.
#
#   kafka.sh fetch
#   kafka.sh start [--brokers 1|3] [--port 9092] [--controller-port P] [--data-dir DIR] [--secure]
#   kafka.sh stop [--node N]
#   kafka.sh kill --node N
#   kafka.sh restart-node --node N
#   kafka.sh status
#   kafka.sh bootstrap
#   kafka.sh clean [--all]
#
# Progress goes to stderr; `start` and `restart-node` print the bootstrap
# address list (e.g. 127.0.0.1:9092,127.0.0.1:9093) as the only/last line of
# stdout, so `BOOTSTRAP=$(deploy/local/kafka.sh start)` works.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)"
PROG="$(basename "$0")"

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
CACHE_DIR="${KAFKA_CACHE_DIR:-$SCRIPT_DIR/.cache}"
HEAP_OPTS="${KAFKA_HEAP_OPTS:-${KAFKA_HEAP:--Xms128m -Xmx512m}}"
# KAFKA_HEAP may also be just a size ("768m", "1g").
if [[ "$HEAP_OPTS" =~ ^[0-9]+[kKmMgG]$ ]]; then HEAP_OPTS="-Xmx$HEAP_OPTS"; fi
JVM_EXTRA_OPTS="${KAFKA_JVM_OPTS:-}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
LOG_LEVEL="${KAFKA_LOG_LEVEL:-INFO}"
EXTRA_PROPS="${KAFKA_EXTRA_PROPS:-}"
MAVEN_REPO="${KAFKA_MAVEN_REPO:-}"
# Short-lived tool JVMs (format, classpath check): start fast, no need for C2.
TOOL_JVM_OPTS=(-Xmx256m -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto)
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

# ---------------------------------------------------------------- helpers

log() { printf '[%s] %s\n' "$PROG" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "$PROG" "$*" >&2; exit 1; }

usage() {
  cat >&2 <<EOF
usage: $PROG <command> [options]

commands:
  fetch                              download Kafka $KAFKA_VERSION jars into the cache (idempotent)
  start [--brokers N] [--port P] [--controller-port C] [--data-dir DIR] [--secure]
                                     start a 1-node (default) or 3-node KRaft cluster and wait for it;
                                     prints the bootstrap list on the last line of stdout.
                                     --secure: SASL_SSL only (TLS with a CA generated in
                                     DIR/secure, SCRAM-SHA-512/256 and PLAIN users; see README.md)
  stop [--node N]                    stop all nodes (or one): SIGTERM, SIGKILL after \$KAFKA_STOP_TIMEOUT s
  kill --node N                      SIGKILL one node (fault injection)
  restart-node --node N              start one node again from its existing data dir and wait for it
  status                             show node states (exit 0 if all nodes are up, 3 otherwise)
  bootstrap                          print the bootstrap address list of the current cluster
  clean [--all]                      stop everything and delete the data dir (--all: the whole cache)

stop/kill/restart-node/status/bootstrap/clean also accept --data-dir DIR.
env: KAFKA_CACHE_DIR KAFKA_DATA_DIR KAFKA_VERSION KAFKA_HEAP_OPTS KAFKA_JVM_OPTS
     KAFKA_START_TIMEOUT KAFKA_STOP_TIMEOUT KAFKA_LOG_LEVEL KAFKA_EXTRA_PROPS KAFKA_MAVEN_REPO
     KAFKA_SASL_USER KAFKA_SASL_PASSWORD (--secure: the client user; default spanpipe, random)
EOF
}

abspath() {
  case "$1" in
    /*) printf '%s\n' "$1" ;;
    *) printf '%s/%s\n' "$(pwd -P)" "$1" ;;
  esac
}

java_bin() {
  if [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then
    printf '%s\n' "$JAVA_HOME/bin/java"
  elif command -v java >/dev/null 2>&1; then
    command -v java
  else
    die "java not found (Kafka 4.x needs Java 17+); install a JDK/JRE or set JAVA_HOME"
  fi
}

check_java() {
  local j v major
  j="$(java_bin)"
  v="$("$j" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')"
  major="${v%%.*}"
  [[ "$major" == "1" ]] && major="$(echo "$v" | cut -d. -f2)"
  if [[ "$major" =~ ^[0-9]+$ ]] && (( major < 17 )); then
    die "Kafka $KAFKA_VERSION needs Java 17+, found '$v' ($j)"
  fi
}

port_open() { # port -> 0 if something accepts TCP connections on 127.0.0.1:port
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" >/dev/null 2>&1
}

KAFKA_HOME_DIR="$CACHE_DIR/kafka-$KAFKA_VERSION"
LIB_DIR="$KAFKA_HOME_DIR/lib"
MARKER="$KAFKA_HOME_DIR/.complete"

classpath() { printf '%s/*\n' "$LIB_DIR"; }

# ------------------------------------------------------------------ fetch

fetched() {
  [[ -f "$MARKER" ]] || return 1
  local jar
  while IFS= read -r jar; do
    [[ -z "$jar" ]] && continue
    [[ -f "$LIB_DIR/$jar" ]] || return 1
  done <"$MARKER"
  return 0
}

verify_classpath() { # dir -> 0 if the broker classes load with the jars in dir
  local dir="$1" out
  ls "$dir"/kafka_2.13-*.jar >/dev/null 2>&1 || { log "kafka_2.13 jar missing in $dir"; return 1; }
  ls "$dir"/log4j-slf4j-impl-*.jar >/dev/null 2>&1 || { log "log4j-slf4j-impl jar missing in $dir"; return 1; }
  # Runs real Kafka code (scala, kafka-clients, kafka-server-common, argparse4j, log4j).
  out="$("$(java_bin)" "${TOOL_JVM_OPTS[@]}" -Dlog4j2.level=WARN -cp "$dir/*" kafka.tools.StorageTool random-uuid 2>&1)" || {
    log "classpath check failed: $out"; return 1; }
  [[ "$(printf '%s\n' "$out" | tail -n1)" =~ ^[A-Za-z0-9_-]{22}$ ]] || {
    log "classpath check: unexpected output: $out"; return 1; }
  # kafka.Kafka (the broker main class) must load and report the expected version.
  out="$("$(java_bin)" "${TOOL_JVM_OPTS[@]}" -cp "$dir/*" kafka.Kafka --version 2>&1)" || {
    log "kafka.Kafka --version failed: $out"; return 1; }
  [[ "$(printf '%s\n' "$out" | tail -n1)" == "$KAFKA_VERSION" ]] || {
    log "kafka.Kafka --version printed '$out', expected $KAFKA_VERSION"; return 1; }
  return 0
}

cmd_fetch() {
  check_java
  if fetched; then
    verify_classpath "$LIB_DIR" || die "cached jars in $LIB_DIR do not work; delete $KAFKA_HOME_DIR and fetch again"
    log "Kafka $KAFKA_VERSION already in $LIB_DIR (classpath OK)"
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn (Maven) not found; it is needed once to fetch the Kafka jars"
  mkdir -p "$CACHE_DIR"
  # Serialise concurrent fetches into the same cache. The lock fd is closed
  # again before any broker is launched (brokers must not inherit it).
  exec 9>"$CACHE_DIR/.fetch.lock"
  if command -v flock >/dev/null 2>&1; then flock 9; fi
  local rc=0
  fetched || fetch_locked || rc=$?
  exec 9>&-
  return "$rc"
}

fetch_locked() {
  local tmp="$CACHE_DIR/.fetch-$KAFKA_VERSION.$$" mvnlog="$CACHE_DIR/fetch-$KAFKA_VERSION.log"
  local -a mvn_args=(-B -q -Dstyle.color=never -f "$SCRIPT_DIR/pom.xml" "-Dkafka.version=$KAFKA_VERSION"
    "$DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime "-DoutputDirectory=$tmp/lib")
  if [[ -n "$MAVEN_REPO" ]]; then mvn_args+=("-Dmaven.repo.local=$MAVEN_REPO"); fi
  log "fetching Kafka $KAFKA_VERSION from Maven Central (first time can take a few minutes; log: $mvnlog)"
  local attempt ok=0 t0=$SECONDS
  : >"$mvnlog"
  for attempt in 1 2 3; do
    rm -rf "$tmp"
    # -U on retries: do not trust resolution failures cached by the first attempt
    if ((attempt == 2)); then mvn_args+=(-U); fi
    echo "=== attempt $attempt: mvn ${mvn_args[*]}" >>"$mvnlog"
    if mvn "${mvn_args[@]}" >>"$mvnlog" 2>&1; then ok=1; break; fi
    log "maven attempt $attempt of 3 failed"
    if ((attempt < 3)); then sleep $((attempt * 5)); fi
  done
  if (( ! ok )); then
    rm -rf "$tmp"
    tail -n 40 "$mvnlog" >&2
    log "could not fetch Kafka $KAFKA_VERSION with Maven (full log: $mvnlog)"
    return 1
  fi
  if ! verify_classpath "$tmp/lib"; then
    rm -rf "$tmp"
    log "fetched jars do not form a working classpath (see above)"
    return 1
  fi
  (cd "$tmp/lib" && ls -1 -- *.jar) >"$tmp/.complete"
  rm -rf "$KAFKA_HOME_DIR"
  mv "$tmp" "$KAFKA_HOME_DIR"
  log "fetched Kafka $KAFKA_VERSION: $(wc -l <"$MARKER") jars in $LIB_DIR ($((SECONDS - t0)) s)"
}

ensure_fetched() {
  fetched && return 0
  cmd_fetch || die "fetch failed"
}

# --------------------------------------------------------- cluster layout

DATA_DIR=""
BROKERS=""
PORT=""
CONTROLLER_PORT=""
CLUSTER_ID=""
SECURE=0

# Resolve the data dir: --data-dir flag > $KAFKA_DATA_DIR > last started > default.
resolve_data_dir() {
  local flag="${1:-}"
  if [[ -n "$flag" ]]; then
    DATA_DIR="$(abspath "$flag")"
  elif [[ -n "${KAFKA_DATA_DIR:-}" ]]; then
    DATA_DIR="$(abspath "$KAFKA_DATA_DIR")"
  elif [[ -s "$CACHE_DIR/current-data-dir" ]]; then
    DATA_DIR="$(cat "$CACHE_DIR/current-data-dir")"
  else
    DATA_DIR="$CACHE_DIR/data"
  fi
}

load_layout() { # -> 0 if $DATA_DIR/cluster.env exists (and loads it)
  local f="$DATA_DIR/cluster.env" k v
  [[ -f "$f" ]] || return 1
  while IFS='=' read -r k v; do
    case "$k" in
      BROKERS) BROKERS="$v" ;;
      PORT) PORT="$v" ;;
      CONTROLLER_PORT) CONTROLLER_PORT="$v" ;;
      CLUSTER_ID) CLUSTER_ID="$v" ;;
      SECURE) SECURE="$v" ;;
    esac
  done <"$f"
  return 0
}

require_layout() {
  load_layout || die "no cluster in $DATA_DIR (run '$PROG start' first)"
}

save_layout() {
  mkdir -p "$DATA_DIR"
  cat >"$DATA_DIR/cluster.env.tmp" <<EOF
BROKERS=$BROKERS
PORT=$PORT
CONTROLLER_PORT=$CONTROLLER_PORT
CLUSTER_ID=$CLUSTER_ID
SECURE=$SECURE
KAFKA_VERSION=$KAFKA_VERSION
EOF
  mv "$DATA_DIR/cluster.env.tmp" "$DATA_DIR/cluster.env"
}

node_dir() { printf '%s/node-%s\n' "$DATA_DIR" "$1"; }
client_port() { echo $((PORT + $1 - 1)); }
ctrl_port() { echo $((CONTROLLER_PORT + $1 - 1)); }

bootstrap_list() {
  local n out=""
  for ((n = 1; n <= BROKERS; n++)); do
    out+="${out:+,}127.0.0.1:$(client_port "$n")"
  done
  printf '%s\n' "$out"
}

new_cluster_id() {
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    # a leading '-' would be parsed as an option by the storage tool
    [[ "$id" =~ ^[A-Za-z0-9_][A-Za-z0-9_-]{21}$ ]] && { printf '%s\n' "$id"; return; }
  done
}

check_node_arg() {
  local n="$1"
  if ! [[ "$n" =~ ^[0-9]+$ ]] || (( n < 1 || n > BROKERS )); then
    die "--node must be between 1 and $BROKERS (cluster in $DATA_DIR has $BROKERS node(s))"
  fi
}

# ------------------------------------------------------------ node config

write_node_config() {
  local n="$1" dir rf isr voters="" i
  dir="$(node_dir "$n")"
  mkdir -p "$dir/data" "$dir/logs" || return 1
  if (( BROKERS >= 3 )); then rf=3; isr=2; else rf=$BROKERS; isr=1; fi
  for ((i = 1; i <= BROKERS; i++)); do
    voters+="${voters:+,}$i@127.0.0.1:$(ctrl_port "$i")"
  done
  local client=PLAINTEXT
  ((SECURE)) && client=SASL_SSL
  cat >"$dir/server.properties" <<EOF
# Generated by deploy/local/kafka.sh - rewritten on every start.
node.id=$n
process.roles=broker,controller
controller.quorum.voters=$voters
listeners=$client://127.0.0.1:$(client_port "$n"),CONTROLLER://127.0.0.1:$(ctrl_port "$n")
advertised.listeners=$client://127.0.0.1:$(client_port "$n")
listener.security.protocol.map=$client:$client,CONTROLLER:PLAINTEXT
inter.broker.listener.name=$client
controller.listener.names=CONTROLLER
log.dirs=$dir/data

num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
auto.create.topics.enable=true
delete.topic.enable=true
group.initial.rebalance.delay.ms=0
# A killed node can only re-register once its old broker session expired
# (default 9 s); keep fault-test restarts quick.
broker.heartbeat.interval.ms=1000
broker.session.timeout.ms=5000
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=168
EOF
  if ((SECURE)); then secure_props >>"$dir/server.properties" || return 1; fi
  if [[ -n "$EXTRA_PROPS" ]]; then
    printf '\n# KAFKA_EXTRA_PROPS\n%s\n' "$EXTRA_PROPS" >>"$dir/server.properties"
  fi
  cat >"$dir/log4j2.properties" <<EOF
# Generated by deploy/local/kafka.sh
status = warn
name = spanpipe-local-kafka-node-$n
# Keep logging during the broker's own shutdown (log4j's hook would stop it early).
shutdownHook = disable
appender.file.type = File
appender.file.name = FILE
appender.file.fileName = $dir/logs/server.log
appender.file.append = true
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = $LOG_LEVEL
rootLogger.appenderRef.file.ref = FILE
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.zookeeper.name = org.apache.zookeeper
logger.zookeeper.level = WARN
EOF
}

# ---------------------------------------------------------- secured mode

secure_dir() { printf '%s/secure\n' "$DATA_DIR"; }

random_secret() { head -c 48 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c 24; echo; }

keytool_bin() {
  local j
  j="$(java_bin)"
  if [[ -x "$(dirname "$j")/keytool" ]]; then printf '%s\n' "$(dirname "$j")/keytool"
  elif command -v keytool >/dev/null 2>&1; then command -v keytool
  else die "keytool not found next to $j (it ships with every JDK/JRE)"; fi
}

# ensure_secure creates, once per data dir, a CA and a broker certificate for
# 127.0.0.1/localhost signed by it (keytool only: it ships with the Java the broker
# needs anyway), and the passwords of the brokers' own user (admin) and of the client
# user. Clients trust DIR/secure/ca.pem and read DIR/secure/<user>.password.
ensure_secure() {
  SECURE_DIR="$(secure_dir)"
  [[ -f "$SECURE_DIR/.complete" ]] && return 0
  local kt d="$SECURE_DIR" pass user
  kt="$(keytool_bin)"
  user="${KAFKA_SASL_USER:-spanpipe}"
  [[ "$user" =~ ^[A-Za-z0-9_.-]+$ && "$user" != admin ]] || die "KAFKA_SASL_USER must be [A-Za-z0-9_.-]+ and not admin"
  [[ -z "${KAFKA_SASL_PASSWORD:-}" || "$KAFKA_SASL_PASSWORD" =~ ^[A-Za-z0-9_.-]+$ ]] || die "KAFKA_SASL_PASSWORD must be [A-Za-z0-9_.-]+"
  rm -rf "$d" && mkdir -p "$d" && chmod 700 "$d"
  pass="$(random_secret)"
  printf '%s\n' "$user" >"$d/user"
  printf '%s\n' "$pass" >"$d/keystore.password"
  random_secret >"$d/admin.password"
  if [[ -n "${KAFKA_SASL_PASSWORD:-}" ]]; then printf '%s\n' "$KAFKA_SASL_PASSWORD" >"$d/$user.password"
  else random_secret >"$d/$user.password"; fi
  chmod 600 "$d"/*.password
  log "secure: generating a CA and a broker certificate in $d"
  local -a k=("$kt" -J-XX:TieredStopAtLevel=1 -J-XX:+UseSerialGC -storetype PKCS12 -storepass "$pass")
  {
    "${k[@]}" -genkeypair -keystore "$d/ca.p12" -alias ca -dname "CN=spanpipe local Kafka CA" \
      -keyalg EC -groupname secp256r1 -validity 3650 -ext bc:c &&
    "${k[@]}" -exportcert -keystore "$d/ca.p12" -alias ca -rfc -file "$d/ca.pem" &&
    "${k[@]}" -genkeypair -keystore "$d/broker.p12" -alias broker -dname "CN=localhost" \
      -keyalg EC -groupname secp256r1 -validity 3650 &&
    "${k[@]}" -certreq -keystore "$d/broker.p12" -alias broker -file "$d/broker.csr" &&
    "${k[@]}" -gencert -keystore "$d/ca.p12" -alias ca -infile "$d/broker.csr" -outfile "$d/broker.pem" -rfc \
      -validity 3650 -ext SAN=ip:127.0.0.1,dns:localhost -ext EKU=serverAuth,clientAuth &&
    "${k[@]}" -importcert -noprompt -keystore "$d/broker.p12" -alias ca -file "$d/ca.pem" &&
    "${k[@]}" -importcert -noprompt -keystore "$d/broker.p12" -alias broker -file "$d/broker.pem"
  } >"$d/keytool.log" 2>&1 || { cat "$d/keytool.log" >&2; die "secure: keytool failed (log: $d/keytool.log)"; }
  rm -f "$d/broker.csr"
  touch "$d/.complete"
}

# secure_props: the SASL_SSL listener's settings. Brokers talk to each other over it
# too, as admin with SCRAM-SHA-512; PLAIN users are listed in its JAAS line.
secure_props() {
  local d="$SECURE_DIR" pass admin user upw
  pass="$(cat "$d/keystore.password")"; admin="$(cat "$d/admin.password")"
  user="$(cat "$d/user")"; upw="$(cat "$d/$user.password")"
  cat <<EOF

# --secure (deploy/local/kafka.sh): TLS + SASL on the client listener
sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$admin";
listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="$admin" user_admin="$admin" user_$user="$upw";
ssl.keystore.type=PKCS12
ssl.keystore.location=$d/broker.p12
ssl.keystore.password=$pass
ssl.key.password=$pass
ssl.truststore.type=PEM
ssl.truststore.location=$d/ca.pem
EOF
}

node_formatted() { [[ -f "$(node_dir "$1")/data/meta.properties" ]]; }

format_node() {
  local n="$1" dir
  dir="$(node_dir "$n")"
  local -a scram=()
  if ((SECURE)); then
    # SCRAM credentials live in the cluster metadata: KRaft takes them at format time,
    # before any broker (inter-broker traffic included) could create them.
    local user pw mech
    for user in admin "$(cat "$SECURE_DIR/user")"; do
      pw="$(cat "$SECURE_DIR/$user.password")"
      for mech in SCRAM-SHA-512 SCRAM-SHA-256; do scram+=(--add-scram "$mech=[name=$user,password=$pw]"); done
    done
  fi
  log "node $n: formatting KRaft storage in $dir/data (cluster id $CLUSTER_ID)"
  if ! "$(java_bin)" "${TOOL_JVM_OPTS[@]}" -cp "$(classpath)" \
      "-Dlog4j2.configurationFile=$dir/log4j2.properties" \
      kafka.tools.StorageTool format --ignore-formatted \
      -t "$CLUSTER_ID" -c "$dir/server.properties" "${scram[@]+"${scram[@]}"}" >"$dir/logs/format.log" 2>&1; then
    cat "$dir/logs/format.log" >&2
    log "node $n: storage format failed (log: $dir/logs/format.log)"
    return 1
  fi
}

# ------------------------------------------------------------ processes

pid_file() { printf '%s/kafka.pid\n' "$(node_dir "$1")"; }

node_pid() { # n -> prints pid if the node's broker process is alive
  local f pid
  f="$(pid_file "$1")"
  [[ -f "$f" ]] || return 1
  pid="$(cat "$f" 2>/dev/null || true)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  # Guard against pid reuse: the process must be this node's kafka.Kafka.
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$(node_dir "$1")/server.properties" || return 1
  fi
  printf '%s\n' "$pid"
}

log_size() { local f="$1"; [[ -f "$f" ]] && wc -c <"$f" | tr -d ' ' || echo 0; }

declare -A LOG_OFFSET=()
declare -a LAUNCHED=()

launch_node() {
  local n="$1" dir p
  dir="$(node_dir "$n")"
  if node_pid "$n" >/dev/null; then
    log "node $n: already running (pid $(node_pid "$n"))"
    LOG_OFFSET[$n]=0
    return 0
  fi
  rm -f "$(pid_file "$n")"
  for p in "$(client_port "$n")" "$(ctrl_port "$n")"; do
    if port_open "$p"; then
      log "node $n: port 127.0.0.1:$p is already in use by another process"
      return 1
    fi
  done
  write_node_config "$n" || { log "node $n: could not write config in $dir"; return 1; }
  if ! node_formatted "$n"; then format_node "$n" || return 1; fi
  LOG_OFFSET[$n]="$(log_size "$dir/logs/server.log")"
  printf '\n=== %s starting node %s (Kafka %s)\n' "$(date '+%F %T')" "$n" "$KAFKA_VERSION" >>"$dir/logs/console.log"
  # shellcheck disable=SC2086  # HEAP_OPTS / JVM_EXTRA_OPTS are word lists on purpose
  nohup "$(java_bin)" $HEAP_OPTS \
    -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
    -XX:+ExplicitGCInvokesConcurrent -XX:+ExitOnOutOfMemoryError \
    -Djava.awt.headless=true \
    "-Dkafka.logs.dir=$dir/logs" \
    "-Dlog4j2.configurationFile=$dir/log4j2.properties" \
    $JVM_EXTRA_OPTS \
    -cp "$(classpath)" kafka.Kafka "$dir/server.properties" \
    >>"$dir/logs/console.log" 2>&1 </dev/null &
  echo $! >"$(pid_file "$n")"
  disown "$!" 2>/dev/null || true  # no "Killed" job notices from this shell
  LAUNCHED+=("$n")
  log "node $n: started pid $! (client 127.0.0.1:$(client_port "$n"), controller 127.0.0.1:$(ctrl_port "$n"), logs $dir/logs/server.log)"
}

node_ready() { # n -> 0 once the broker logged startup and accepts connections
  local n="$1" dir
  dir="$(node_dir "$n")"
  port_open "$(client_port "$n")" || return 1
  # Only look at log lines written since this launch.
  tail -c +"$(( ${LOG_OFFSET[$n]:-0} + 1 ))" "$dir/logs/server.log" 2>/dev/null \
    | grep -qE 'Kafka Server started|started \(kafka\.server\.KafkaRaftServer\)'
}

dump_node_logs() {
  local n="$1" dir
  dir="$(node_dir "$n")"
  {
    echo "----- node $n: ERROR/FATAL lines of this launch in $dir/logs/server.log -----"
    tail -c +"$(( ${LOG_OFFSET[$n]:-0} + 1 ))" "$dir/logs/server.log" 2>/dev/null \
      | grep -E -A1 '^\[[^]]*\] (ERROR|FATAL) ' | grep -v 'Exceptionally slow controller event' | tail -n 20 || true
    echo "----- node $n: last 50 lines of $dir/logs/server.log -----"
    tail -n 50 "$dir/logs/server.log" 2>/dev/null || echo "(no server.log)"
    echo "----- node $n: last 20 lines of $dir/logs/console.log -----"
    tail -n 20 "$dir/logs/console.log" 2>/dev/null || echo "(no console.log)"
  } >&2
}

wait_ready() { # nodes... -> waits up to START_TIMEOUT for all of them
  local deadline=$((SECONDS + START_TIMEOUT)) n pending=("$@") still t0=$SECONDS
  while ((${#pending[@]})); do
    still=()
    for n in "${pending[@]}"; do
      if node_ready "$n"; then
        log "node $n: ready on 127.0.0.1:$(client_port "$n") after $((SECONDS - t0)) s"
      elif ! kill -0 "$(cat "$(pid_file "$n")" 2>/dev/null || echo x)" 2>/dev/null; then
        # Not node_pid: until the launched process has exec'd java its command line is
        # the forking shell's, which a loaded machine shows long enough to look "exited".
        dump_node_logs "$n"
        log "node $n: process exited during startup"
        return 1
      else
        still+=("$n")
      fi
    done
    pending=("${still[@]+"${still[@]}"}")
    ((${#pending[@]})) || break
    if ((SECONDS >= deadline)); then
      for n in "${pending[@]}"; do dump_node_logs "$n"; done
      log "timed out after ${START_TIMEOUT}s waiting for node(s): ${pending[*]}"
      return 1
    fi
    sleep 0.5
  done
}

stop_nodes() { # signal_timeout nodes...
  local timeout="$1"; shift
  local n pid deadline alive
  declare -A pids=()
  for n in "$@"; do
    if pid="$(node_pid "$n")"; then
      pids[$n]="$pid"
      kill -TERM "$pid" 2>/dev/null || true
      log "node $n: SIGTERM sent to pid $pid"
    else
      rm -f "$(pid_file "$n")"
    fi
  done
  deadline=$((SECONDS + timeout))
  while :; do
    alive=()
    for n in "${!pids[@]}"; do
      kill -0 "${pids[$n]}" 2>/dev/null && alive+=("$n")
    done
    ((${#alive[@]})) || break
    if ((SECONDS >= deadline)); then
      for n in "${alive[@]}"; do
        log "node $n: still running after ${timeout}s, sending SIGKILL to pid ${pids[$n]}"
        kill -KILL "${pids[$n]}" 2>/dev/null || true
      done
      sleep 0.5
      break
    fi
    sleep 0.3
  done
  for n in "${!pids[@]}"; do
    rm -f "$(pid_file "$n")"
    log "node $n: stopped"
  done
}

fail_start() {
  if ((${#LAUNCHED[@]})); then
    log "stopping the node(s) started by this command: ${LAUNCHED[*]}"
    stop_nodes 10 "${LAUNCHED[@]}"
  fi
  exit 1
}

# ------------------------------------------------------------- commands

cmd_start() {
  local want_brokers="" want_port="" want_cport="" data_flag="" want_secure=0
  while (($#)); do
    case "$1" in
      --brokers) want_brokers="${2:?--brokers needs a value}"; shift 2 ;;
      --brokers=*) want_brokers="${1#*=}"; shift ;;
      --port) want_port="${2:?--port needs a value}"; shift 2 ;;
      --port=*) want_port="${1#*=}"; shift ;;
      --controller-port) want_cport="${2:?--controller-port needs a value}"; shift 2 ;;
      --controller-port=*) want_cport="${1#*=}"; shift ;;
      --data-dir) data_flag="${2:?--data-dir needs a value}"; shift 2 ;;
      --data-dir=*) data_flag="${1#*=}"; shift ;;
      --secure) want_secure=1; shift ;;
      -h|--help) usage; exit 0 ;;
      *) die "start: unknown option '$1'" ;;
    esac
  done
  if [[ -n "$data_flag" || -n "${KAFKA_DATA_DIR:-}" ]]; then
    resolve_data_dir "$data_flag"
  else
    DATA_DIR="$CACHE_DIR/data"
  fi
  [[ -z "$want_brokers" || "$want_brokers" =~ ^[1-5]$ ]] || die "--brokers must be 1 or 3 (1..5 accepted)"
  [[ -z "$want_port" || "$want_port" =~ ^[0-9]+$ ]] || die "--port must be a number"
  [[ -z "$want_cport" || "$want_cport" =~ ^[0-9]+$ ]] || die "--controller-port must be a number"

  ensure_fetched

  if load_layout; then
    if [[ -n "$want_brokers" && "$want_brokers" != "$BROKERS" ]]; then
      die "$DATA_DIR holds a $BROKERS-node cluster; run '$PROG clean' (deletes its data) or use another --data-dir for a $want_brokers-node cluster"
    fi
    if ((want_secure != SECURE)); then
      die "$DATA_DIR holds a cluster started with secure=$SECURE; start it the same way, or '$PROG clean' it first"
    fi
  else
    BROKERS="${want_brokers:-1}"
    CLUSTER_ID="$(new_cluster_id)"
    SECURE="$want_secure"
  fi
  if ((SECURE)); then ensure_secure; fi
  PORT="${want_port:-${PORT:-9092}}"
  if [[ -n "$want_cport" ]]; then
    CONTROLLER_PORT="$want_cport"
  elif [[ -n "$want_port" || -z "$CONTROLLER_PORT" ]]; then
    CONTROLLER_PORT=$((PORT + 100))
  fi
  if (( CONTROLLER_PORT < PORT + BROKERS && PORT < CONTROLLER_PORT + BROKERS )); then
    die "controller ports $CONTROLLER_PORT.. overlap client ports $PORT.. (use --controller-port)"
  fi
  save_layout
  mkdir -p "$CACHE_DIR"
  printf '%s\n' "$DATA_DIR" >"$CACHE_DIR/current-data-dir"

  log "starting $BROKERS-node Kafka $KAFKA_VERSION cluster (KRaft combined mode), data in $DATA_DIR"
  local n nodes=()
  for ((n = 1; n <= BROKERS; n++)); do
    launch_node "$n" || fail_start
    nodes+=("$n")
  done
  wait_ready "${nodes[@]}" || fail_start
  log "cluster ready: $(bootstrap_list)"
  if ((SECURE)); then
    log "secure: SASL_SSL; CA $SECURE_DIR/ca.pem; user $(cat "$SECURE_DIR/user") (SCRAM-SHA-512, SCRAM-SHA-256, PLAIN), password in $SECURE_DIR/$(cat "$SECURE_DIR/user").password"
  fi
  bootstrap_list
}

cmd_stop() {
  local node="" data_flag=""
  while (($#)); do
    case "$1" in
      --node) node="${2:?--node needs a value}"; shift 2 ;;
      --node=*) node="${1#*=}"; shift ;;
      --data-dir) data_flag="${2:?}"; shift 2 ;;
      --data-dir=*) data_flag="${1#*=}"; shift ;;
      *) die "stop: unknown option '$1'" ;;
    esac
  done
  resolve_data_dir "$data_flag"
  if ! load_layout; then
    log "no cluster in $DATA_DIR; nothing to stop"
    return 0
  fi
  if [[ -n "$node" ]]; then
    check_node_arg "$node"
    stop_nodes "$STOP_TIMEOUT" "$node"
  else
    local n all=()
    for ((n = 1; n <= BROKERS; n++)); do all+=("$n"); done
    stop_nodes "$STOP_TIMEOUT" "${all[@]}"
  fi
}

cmd_kill() {
  local node="" data_flag="" pid
  while (($#)); do
    case "$1" in
      --node) node="${2:?--node needs a value}"; shift 2 ;;
      --node=*) node="${1#*=}"; shift ;;
      --data-dir) data_flag="${2:?}"; shift 2 ;;
      --data-dir=*) data_flag="${1#*=}"; shift ;;
      *) die "kill: unknown option '$1'" ;;
    esac
  done
  [[ -n "$node" ]] || die "kill needs --node N"
  resolve_data_dir "$data_flag"
  require_layout
  check_node_arg "$node"
  if ! pid="$(node_pid "$node")"; then
    rm -f "$(pid_file "$node")"
    log "node $node: not running"
    return 0
  fi
  kill -KILL "$pid" 2>/dev/null || true
  local i
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  rm -f "$(pid_file "$node")"
  log "node $node: killed (SIGKILL pid $pid)"
}

cmd_restart_node() {
  local node="" data_flag=""
  while (($#)); do
    case "$1" in
      --node) node="${2:?--node needs a value}"; shift 2 ;;
      --node=*) node="${1#*=}"; shift ;;
      --data-dir) data_flag="${2:?}"; shift 2 ;;
      --data-dir=*) data_flag="${1#*=}"; shift ;;
      *) die "restart-node: unknown option '$1'" ;;
    esac
  done
  [[ -n "$node" ]] || die "restart-node needs --node N"
  resolve_data_dir "$data_flag"
  require_layout
  check_node_arg "$node"
  ensure_fetched
  if node_pid "$node" >/dev/null; then
    log "node $node: running, stopping it first"
    stop_nodes "$STOP_TIMEOUT" "$node"
  fi
  if ((SECURE)); then ensure_secure; fi
  node_formatted "$node" || log "node $node: data dir is not formatted; it will be formatted (data is NOT kept)"
  launch_node "$node"
  wait_ready "$node" || fail_start
  bootstrap_list
}

cmd_status() {
  local data_flag=""
  while (($#)); do
    case "$1" in
      --data-dir) data_flag="${2:?}"; shift 2 ;;
      --data-dir=*) data_flag="${1#*=}"; shift ;;
      *) die "status: unknown option '$1'" ;;
    esac
  done
  resolve_data_dir "$data_flag"
  if ! load_layout; then
    echo "no cluster in $DATA_DIR"
    return 3
  fi
  local n pid down=0 state
  echo "Kafka $KAFKA_VERSION, $BROKERS node(s), data dir $DATA_DIR, cluster id $CLUSTER_ID$( ((SECURE)) && echo ", SASL_SSL (CA $(secure_dir)/ca.pem)")"
  for ((n = 1; n <= BROKERS; n++)); do
    if pid="$(node_pid "$n")"; then
      if port_open "$(client_port "$n")"; then state="up"; else state="starting (port closed)"; down=1; fi
      echo "node $n: $state  pid $pid  client 127.0.0.1:$(client_port "$n")  controller 127.0.0.1:$(ctrl_port "$n")"
    else
      down=1
      echo "node $n: stopped  client 127.0.0.1:$(client_port "$n")  controller 127.0.0.1:$(ctrl_port "$n")"
    fi
  done
  echo "bootstrap: $(bootstrap_list)"
  return $((down ? 3 : 0))
}

cmd_bootstrap() {
  local data_flag=""
  while (($#)); do
    case "$1" in
      --data-dir) data_flag="${2:?}"; shift 2 ;;
      --data-dir=*) data_flag="${1#*=}"; shift ;;
      *) die "bootstrap: unknown option '$1'" ;;
    esac
  done
  resolve_data_dir "$data_flag"
  require_layout
  bootstrap_list
}

cmd_clean() {
  local wipe_cache=0 data_flag=""
  while (($#)); do
    case "$1" in
      --all) wipe_cache=1; shift ;;
      --data-dir) data_flag="${2:?}"; shift 2 ;;
      --data-dir=*) data_flag="${1#*=}"; shift ;;
      *) die "clean: unknown option '$1'" ;;
    esac
  done
  resolve_data_dir "$data_flag"
  if load_layout; then
    local n all_nodes=()
    for ((n = 1; n <= BROKERS; n++)); do all_nodes+=("$n"); done
    stop_nodes "$STOP_TIMEOUT" "${all_nodes[@]}"
  fi
  if [[ -d "$DATA_DIR" ]]; then
    rm -rf "$DATA_DIR"
    log "removed $DATA_DIR"
  fi
  if [[ -f "$CACHE_DIR/current-data-dir" && "$(cat "$CACHE_DIR/current-data-dir")" == "$DATA_DIR" ]]; then
    rm -f "$CACHE_DIR/current-data-dir"
  fi
  if ((wipe_cache)) && [[ -d "$CACHE_DIR" ]]; then
    rm -rf "$CACHE_DIR"
    log "removed $CACHE_DIR"
  fi
}

main() {
  local cmd="${1:-}"
  [[ $# -gt 0 ]] && shift
  case "$cmd" in
    fetch) cmd_fetch "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    kill) cmd_kill "$@" ;;
    restart-node|restart) cmd_restart_node "$@" ;;
    status) cmd_status "$@" ;;
    bootstrap) cmd_bootstrap "$@" ;;
    clean) cmd_clean "$@" ;;
    -h|--help|help) usage ;;
    "") usage; exit 2 ;;
    *) usage; die "unknown command '$cmd'" ;;
  esac
}

main "$@"
