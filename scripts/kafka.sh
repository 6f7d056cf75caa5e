#!/usr/bin/env bash
# Apache Kafka brokers (KRaft) from Apache Kafka's jars on Maven Central, on loopback: one broker, or a
# cluster of combined broker+controller nodes; optionally with SCRAM/PLAIN (SASL) and TLS listeners.
#   bash scripts/kafka.sh install   # jars into .tools/kafka/libs (mvn, ~5 s when cached); openssl if missing (root only)
#   bash scripts/kafka.sh start     # format storage once, start, wait until a transactional producer and a group join work; idempotent
#   bash scripts/kafka.sh stop      # SIGTERM (clean shutdown), SIGKILL after 30 s
#   bash scripts/kafka.sh status
# Settings: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_DATA (.sage/kafka), KAFKA_HEAP (512m),
#   KAFKA_JVM_OPTS (more JVM flags, e.g. "-XX:+UseSerialGC" on a small machine; none by default).
# A cluster: KAFKA_NODES=3 runs nodes 1..3 with data in $KAFKA_DATA/node-<i>, a 3-voter controller
#   quorum, replication factor 3 and min.insync.replicas=2 for new topics and the internal ones.
#   Node i listens on the i-th entry of KAFKA_PORT / KAFKA_CONTROLLER_PORT when they are comma
#   lists, else on the port plus 2*(i-1) (9092, 9094, 9096; controllers 9093, 9095, 9097).
#   KAFKA_NODE=<i> makes start/stop act on node i alone (a restart after a crash).
# Security (besides the PLAINTEXT listener, which the brokers use among themselves and this script's checks):
#   KAFKA_SASL_PORT     a SASL listener (SCRAM-SHA-512, SCRAM-SHA-256 and PLAIN), SASL_SSL unless
#   KAFKA_SASL_PROTOCOL=SASL_PLAINTEXT; users from KAFKA_SASL_USERS ("name:password,..."), stored as
#                       SCRAM credentials when the storage is formatted (first start) and as PLAIN users.
#   KAFKA_SSL_PORT      an SSL listener that requires a client certificate signed by the test CA.
#   Certificates come from the JDK's keytool into $KAFKA_DATA/tls once: ca.pem (trust it), broker.p12,
#   client.pem + client-key.pem (for the SSL listener) and client-expired.pem (same key, validity past).
#   Ports of these follow the same comma-list-or-base rule in a cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
LIBS="$ROOT/.tools/kafka/libs"
NODES="${KAFKA_NODES:-1}"
DATA="$(mkdir -p "${KAFKA_DATA:-.sage/kafka}" && cd "${KAFKA_DATA:-.sage/kafka}" && pwd)"
TLS="$DATA/tls"
SASL_PROTOCOL="${KAFKA_SASL_PROTOCOL:-SASL_SSL}"
CP="$LIBS/*"

# The port of node $2 from setting $1: its entry in a comma list, or the base plus 2 per node.
nth() {
  local value="$1" i="$2"
  if [[ "$value" == *,* ]]; then echo "$value" | cut -d, -f"$i"; else echo $((value + 2 * (i - 1))); fi
}
dir_of() { if [ "$NODES" = 1 ]; then echo "$DATA"; else echo "$DATA/node-$1"; fi; }
port_of() { nth "${KAFKA_PORT:-9092}" "$1"; }
cport_of() { nth "${KAFKA_CONTROLLER_PORT:-9093}" "$1"; }
nodes() { if [ -n "${KAFKA_NODE:-}" ]; then echo "$KAFKA_NODE"; else seq 1 "$NODES"; fi; }
pidfile() { echo "$(dir_of "$1")/broker.pid"; }

install() {
  # The TLS listener's client key is exported from keytool's PKCS12 store with openssl.
  if ! command -v openssl >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get install -y -q openssl >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q openssl >/dev/null; } ||
        echo "warning: could not install openssl: TLS listeners will not start" >&2
    else
      echo "warning: openssl not found (apt-get install openssl): TLS listeners will not start" >&2
    fi
  fi
  if [ "$(ls "$LIBS" 2>/dev/null | grep -c '\.jar$')" -ge 90 ]; then echo "kafka jars present: $LIBS"; return; fi
  mvn -q -B -f scripts/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory="$LIBS"
  echo "kafka jars installed: $(ls "$LIBS" | wc -l) in $LIBS"
}

# A killed node stays a zombie until its parent (init here) reaps it: that is not running.
running() {
  local f pid
  f="$(pidfile "$1")"
  [ -f "$f" ] && pid="$(cat "$f")" && kill -0 "$pid" 2>/dev/null && [ "$(cut -d' ' -f3 "/proc/$pid/stat" 2>/dev/null)" != Z ]
}

# Short-lived tools (format, readiness checks: on every start and restart) take less CPU time on the
# client compiler alone and the serial collector; the broker keeps the JVM's defaults.
tool() { java -XX:TieredStopAtLevel=1 -XX:+UseSerialGC -cp "$CP" -Dlog4j2.configurationFile="$DATA/log4j2-tools.properties" "$@"; }

answers() { tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$(port_of "$1")" --list >/dev/null 2>&1; }

# Ready means usable, not just listening: a transactional producer initialises (the transaction
# state topic exists) and a read_committed consumer joins a group (the offsets topic exists).
ready() {
  local bootstrap="127.0.0.1:$(port_of "$1")"
  tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" --create --if-not-exists --topic sage.ready --partitions 1 --replication-factor "$NODES" >/dev/null 2>&1 &&
  tool org.apache.kafka.tools.ProducerPerformance --topic sage.ready --num-records 1 --record-size 16 --throughput -1 \
    --command-property "bootstrap.servers=$bootstrap" --transactional-id sage-ready-check --transaction-duration-ms 100 >/dev/null 2>&1 &&
  tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$bootstrap" --topic sage.ready --group sage-ready-check \
    --from-beginning --max-messages 1 --isolation-level read_committed --timeout-ms 30000 >/dev/null 2>&1
}

users() { echo "${KAFKA_SASL_USERS:-}" | tr ',' '\n' | grep -v '^$' || true; }

# CA, broker and client certificates from keytool, once per data dir; PEM copies for Node clients.
tls_material() {
  # store.pass is written last: without it, an earlier run stopped half-way and everything is made again.
  [ -f "$TLS/store.pass" ] && return
  mkdir -p "$TLS"
  local pass
  pass="$(head -c 18 /dev/urandom | base64 | tr -d '/+=')"
  local kt=(keytool -storetype PKCS12 -storepass "$pass" -keyalg RSA -keysize 2048)
  (
    cd "$TLS"
    rm -f ./*.p12 ./*.pem
    "${kt[@]}" -genkeypair -alias ca -dname "CN=sage-test-ca" -ext bc:c -validity 3650 -keystore ca.p12 2>/dev/null
    keytool -exportcert -rfc -alias ca -keystore ca.p12 -storepass "$pass" -file ca.pem 2>/dev/null
    keytool -importcert -noprompt -alias ca -file ca.pem -keystore truststore.p12 -storetype PKCS12 -storepass "$pass" 2>/dev/null
    # The broker's and the client's chains are independent: made side by side (each keytool is a JVM start).
    local chains=()
    for who in broker client; do
      (
        "${kt[@]}" -genkeypair -alias "$who" -dname "CN=$([ "$who" = broker ] && echo localhost || echo sage-client)" -validity 3650 -keystore "$who.p12" 2>/dev/null
        keytool -certreq -alias "$who" -keystore "$who.p12" -storepass "$pass" 2>/dev/null |
          keytool -gencert -alias ca -keystore ca.p12 -storepass "$pass" -ext SAN=dns:localhost,ip:127.0.0.1 -validity 3650 -rfc >"$who.pem" 2>/dev/null
        keytool -importcert -noprompt -alias ca -file ca.pem -keystore "$who.p12" -storepass "$pass" 2>/dev/null
        keytool -importcert -alias "$who" -file "$who.pem" -keystore "$who.p12" -storepass "$pass" 2>/dev/null
      ) &
      chains+=($!)
    done
    for pid in "${chains[@]}"; do wait "$pid"; done
    # The client's key pair again, certified for 30 days that ended long ago (a bad-input test).
    keytool -certreq -alias client -keystore client.p12 -storepass "$pass" 2>/dev/null |
      keytool -gencert -alias ca -keystore ca.p12 -storepass "$pass" -startdate -400d -validity 30 -rfc >client-expired.pem 2>/dev/null
    openssl pkcs12 -in client.p12 -nocerts -nodes -passin "pass:$pass" 2>/dev/null | openssl pkey -out client-key.pem
    echo "$pass" >store.pass
    chmod 600 store.pass client-key.pem
  )
}

# Listener lines of node $1: PLAINTEXT always; SASL and SSL when their ports are set.
listeners() {
  local i="$1" l a map="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  l="PLAINTEXT://127.0.0.1:$(port_of "$i")"
  a="$l"
  if [ -n "${KAFKA_SASL_PORT:-}" ]; then
    l="$l,$SASL_PROTOCOL://127.0.0.1:$(nth "$KAFKA_SASL_PORT" "$i")"
    a="$a,$SASL_PROTOCOL://127.0.0.1:$(nth "$KAFKA_SASL_PORT" "$i")"
    map="$map,$SASL_PROTOCOL:$SASL_PROTOCOL"
  fi
  if [ -n "${KAFKA_SSL_PORT:-}" ]; then
    l="$l,SSL://127.0.0.1:$(nth "$KAFKA_SSL_PORT" "$i")"
    a="$a,SSL://127.0.0.1:$(nth "$KAFKA_SSL_PORT" "$i")"
    map="$map,SSL:SSL"
  fi
  echo "listeners=$l,CONTROLLER://127.0.0.1:$(cport_of "$i")"
  echo "advertised.listeners=$a"
  echo "listener.security.protocol.map=$map"
}

security_config() {
  if [ -n "${KAFKA_SASL_PORT:-}" ]; then
    [ -n "$(users)" ] || { echo "KAFKA_SASL_PORT is set but KAFKA_SASL_USERS (name:password,...) is empty" >&2; exit 2; }
    local name plain="org.apache.kafka.common.security.plain.PlainLoginModule required"
    name="$(echo "$SASL_PROTOCOL" | tr '[:upper:]' '[:lower:]')"
    while IFS=: read -r user password; do plain="$plain user_$user=\"$password\""; done < <(users)
    echo "sasl.enabled.mechanisms=SCRAM-SHA-512,SCRAM-SHA-256,PLAIN"
    echo "listener.name.$name.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    echo "listener.name.$name.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
    echo "listener.name.$name.plain.sasl.jaas.config=$plain;"
  fi
  if [ -n "${KAFKA_SSL_PORT:-}" ] || { [ -n "${KAFKA_SASL_PORT:-}" ] && [ "$SASL_PROTOCOL" = SASL_SSL ]; }; then
    local pass
    pass="$(cat "$TLS/store.pass")"
    cat <<PROPS
ssl.keystore.type=PKCS12
ssl.keystore.location=$TLS/broker.p12
ssl.keystore.password=$pass
ssl.key.password=$pass
ssl.truststore.type=PKCS12
ssl.truststore.location=$TLS/truststore.p12
ssl.truststore.password=$pass
listener.name.ssl.ssl.client.auth=required
PROPS
  fi
}

# Internal topics: one broker keeps replication factor 1 and one partition (fast start-up); a
# cluster replicates everything three ways and acknowledges writes once two replicas have them.
replication_config() {
  if [ "$NODES" = 1 ]; then
    cat <<PROPS
controller.quorum.bootstrap.servers=127.0.0.1:$(cport_of 1)
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
PROPS
  else
    local voters="" i
    for i in $(seq 1 "$NODES"); do voters="$voters${voters:+,}$i@127.0.0.1:$(cport_of "$i")"; done
    local rf=$((NODES < 3 ? NODES : 3)) isr=$((NODES < 3 ? 1 : 2))
    cat <<PROPS
controller.quorum.voters=$voters
default.replication.factor=$rf
min.insync.replicas=$isr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=$NODES
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$isr
transaction.state.log.num.partitions=$NODES
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$isr
PROPS
  fi
}

write_config() {
  local i="$1" dir
  dir="$(dir_of "$i")"
  mkdir -p "$dir"
  {
    cat <<PROPS
process.roles=broker,controller
node.id=$i
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$dir/logs
num.partitions=1
group.initial.rebalance.delay.ms=0
PROPS
    listeners "$i"
    replication_config
    security_config
  } >"$dir/server.properties"
  # Without a log4j2 configuration the broker logs only errors; with it, INFO goes to a file.
  cat >"$dir/log4j2.properties" <<PROPS
appender.file.type=File
appender.file.name=file
appender.file.fileName=$dir/broker.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
PROPS
}

# Formats node $1's storage once: one cluster id for all nodes, SCRAM users added here.
format() {
  local i="$1" dir id
  dir="$(dir_of "$i")"
  [ -f "$dir/logs/meta.properties" ] && return
  id="$(cat "$DATA/cluster.id")"
  local args=(format -t "$id" -c "$dir/server.properties")
  [ "$NODES" = 1 ] && args+=(--standalone)
  if [ -n "${KAFKA_SASL_PORT:-}" ]; then
    while IFS=: read -r user password; do
      args+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$password]" --add-scram "SCRAM-SHA-256=[name=$user,password=$password]")
    done < <(users)
  fi
  tool kafka.tools.StorageTool "${args[@]}" >/dev/null
}

# "Kafka Server started" lines in node $1's log so far (the log is appended to across restarts).
starts() {
  local n
  n="$(grep -c "Kafka Server started" "$(dir_of "$1")/broker.log" 2>/dev/null)" || true
  echo "${n:-0}"
}

# True once node $1 logged a start since its launch and takes connections (no JVM tool needed).
listening() {
  local i="$1"
  [ "$(starts "$i")" -gt "$(cat "$(dir_of "$i")/starts.before")" ] && (exec 3<>"/dev/tcp/127.0.0.1/$(port_of "$i")") 2>/dev/null
}

launch() {
  local i="$1" dir
  dir="$(dir_of "$i")"
  starts "$i" >"$dir/starts.before"
  # shellcheck disable=SC2086
  nohup java -Xmx"${KAFKA_HEAP:-512m}" ${KAFKA_JVM_OPTS:-} -cp "$CP" -Dlog4j2.configurationFile="$dir/log4j2.properties" kafka.Kafka "$dir/server.properties" \
    >"$dir/broker.out" 2>&1 &
  echo $! >"$(pidfile "$i")"
}

# Waits until node $1 has started (a cluster's nodes start once the quorum has a leader and they
# caught up with its metadata) and answers on its port.
await_node() {
  local i="$1" dir
  dir="$(dir_of "$i")"
  for _ in $(seq 1 120); do
    listening "$i" && return 0
    if ! running "$i"; then echo "kafka node $i exited during start-up; see $dir/broker.out and $dir/broker.log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "kafka node $i did not answer on 127.0.0.1:$(port_of "$i") within 60 s; see $dir/broker.log" >&2
  exit 1
}

start() {
  install
  printf 'rootLogger.level=ERROR\n' >"$DATA/log4j2-tools.properties"
  if [ -n "${KAFKA_SSL_PORT:-}" ] || { [ -n "${KAFKA_SASL_PORT:-}" ] && [ "$SASL_PROTOCOL" = SASL_SSL ]; }; then tls_material; fi
  local started=() i
  for i in $(nodes); do
    if running "$i"; then continue; fi
    write_config "$i"
    started+=("$i")
  done
  if [ ${#started[@]} -eq 0 ]; then
    for i in $(nodes); do echo "kafka already running (pid $(cat "$(pidfile "$i")")) on 127.0.0.1:$(port_of "$i")"; done
    return
  fi
  [ -f "$DATA/cluster.id" ] || tool kafka.tools.StorageTool random-uuid >"$DATA/cluster.id"
  # Each format is a JVM start of its own: side by side, a cluster starts in the time of one.
  local formats=()
  for i in "${started[@]}"; do format "$i" & formats+=($!); done
  for i in "${formats[@]}"; do wait "$i"; done
  for i in "${started[@]}"; do launch "$i"; done
  for i in "${started[@]}"; do await_node "$i"; done
  if [ -n "${KAFKA_NODE:-}" ]; then
    # One node restarted into a running cluster: it serves once it answers; the rest was ready already.
    echo "kafka node $KAFKA_NODE answers on 127.0.0.1:$(port_of "$KAFKA_NODE") (pid $(cat "$(pidfile "$KAFKA_NODE")"))"
    return 0
  fi
  local first="${started[0]}"
  if ! ready "$first"; then
    echo "kafka answers on 127.0.0.1:$(port_of "$first") but a transactional producer or a group join failed; see $(dir_of "$first")/broker.log" >&2
    exit 1
  fi
  for i in "${started[@]}"; do
    echo "kafka ready on 127.0.0.1:$(port_of "$i") (pid $(cat "$(pidfile "$i")"), data $(dir_of "$i")): transactions and group joins work"
  done
  [ -d "$TLS" ] && echo "kafka TLS material in $TLS (trust ca.pem)"
  return 0
}

# SIGTERM to every node at once (a cluster's last node could not finish a controlled shutdown alone).
stop() {
  local pids=() i
  for i in $(nodes); do
    if running "$i"; then
      pids+=("$(cat "$(pidfile "$i")")")
      kill -TERM "${pids[-1]}"
    else
      rm -f "$(pidfile "$i")"
    fi
  done
  if [ ${#pids[@]} -eq 0 ]; then echo "kafka not running"; return; fi
  local pid
  for _ in $(seq 1 60); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    if [ "$alive" = 0 ]; then
      for i in $(nodes); do rm -f "$(pidfile "$i")"; done
      echo "kafka stopped"
      return
    fi
    sleep 0.5
  done
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for i in $(nodes); do rm -f "$(pidfile "$i")"; done
  echo "kafka killed after 30 s"
}

status() {
  local down=0 i
  for i in $(nodes); do
    if running "$i" && answers "$i"; then echo "kafka running on 127.0.0.1:$(port_of "$i") (pid $(cat "$(pidfile "$i")"))"; else echo "kafka node $i not running"; down=1; fi
  done
  return "$down"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
