#!/usr/bin/env bash
# A single-node Apache Kafka broker (KRaft) from Apache Kafka's jars on Maven Central, on loopback.
#   bash scripts/kafka.sh install   # jars into .tools/kafka/libs (mvn, ~5 s when cached)
#   bash scripts/kafka.sh start     # format storage once, start, wait until a transactional producer and a group join work; idempotent
#   bash scripts/kafka.sh stop      # SIGTERM (clean shutdown), SIGKILL after 30 s
#   bash scripts/kafka.sh status
# Settings: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (9093), KAFKA_DATA (.sage/kafka), KAFKA_HEAP (512m),
#   KAFKA_JVM_OPTS (more JVM flags, e.g. "-XX:+UseSerialGC" on a small machine; none by default).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
LIBS="$ROOT/.tools/kafka/libs"
PORT="${KAFKA_PORT:-9092}"
CPORT="${KAFKA_CONTROLLER_PORT:-9093}"
DATA="$(mkdir -p "${KAFKA_DATA:-.sage/kafka}" && cd "${KAFKA_DATA:-.sage/kafka}" && pwd)"
PIDFILE="$DATA/broker.pid"
CP="$LIBS/*"

install() {
  if [ "$(ls "$LIBS" 2>/dev/null | grep -c '\.jar$')" -ge 90 ]; then echo "kafka jars present: $LIBS"; return; fi
  mvn -q -B -f scripts/kafka/pom.xml dependency:copy-dependencies -DoutputDirectory="$LIBS"
  echo "kafka jars installed: $(ls "$LIBS" | wc -l) in $LIBS"
}

running() { [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; }

answers() { java -cp "$CP" -Dlog4j2.configurationFile="$DATA/log4j2-tools.properties" org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" --list >/dev/null 2>&1; }

tool() { java -cp "$CP" -Dlog4j2.configurationFile="$DATA/log4j2-tools.properties" "$@"; }

# Ready means usable, not just listening: a transactional producer initialises (the transaction
# state topic exists) and a read_committed consumer joins a group (the offsets topic exists).
ready() {
  tool org.apache.kafka.tools.TopicCommand --bootstrap-server "127.0.0.1:$PORT" --create --if-not-exists --topic sage.ready --partitions 1 --replication-factor 1 >/dev/null 2>&1 &&
  tool org.apache.kafka.tools.ProducerPerformance --topic sage.ready --num-records 1 --record-size 16 --throughput -1 \
    --command-property "bootstrap.servers=127.0.0.1:$PORT" --transactional-id sage-ready-check --transaction-duration-ms 100 >/dev/null 2>&1 &&
  tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "127.0.0.1:$PORT" --topic sage.ready --group sage-ready-check \
    --from-beginning --max-messages 1 --isolation-level read_committed --timeout-ms 30000 >/dev/null 2>&1
}

write_config() {
  cat > "$DATA/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=127.0.0.1:$CPORT
listeners=PLAINTEXT://127.0.0.1:$PORT,CONTROLLER://127.0.0.1:$CPORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$DATA/logs
num.partitions=1
# Single broker: replication factor 1 and one partition for the internal topics keep start-up fast.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
PROPS
  # Without a log4j2 configuration the broker logs only errors; with it, INFO goes to a file.
  cat > "$DATA/log4j2.properties" <<PROPS
appender.file.type=File
appender.file.name=file
appender.file.fileName=$DATA/broker.log
appender.file.layout.type=PatternLayout
appender.file.layout.pattern=[%d] %p %m (%c)%n
rootLogger.level=INFO
rootLogger.appenderRef.file.ref=file
PROPS
  cat > "$DATA/log4j2-tools.properties" <<PROPS
rootLogger.level=ERROR
PROPS
}

start() {
  install
  if running; then echo "kafka already running (pid $(cat "$PIDFILE")) on 127.0.0.1:$PORT"; return; fi
  write_config
  if [ ! -f "$DATA/logs/meta.properties" ]; then
    local id
    id="$(java -cp "$CP" -Dlog4j2.configurationFile="$DATA/log4j2-tools.properties" kafka.tools.StorageTool random-uuid)"
    java -cp "$CP" -Dlog4j2.configurationFile="$DATA/log4j2-tools.properties" kafka.tools.StorageTool format -t "$id" -c "$DATA/server.properties" --standalone >/dev/null
  fi
  # shellcheck disable=SC2086
  nohup java -Xmx"${KAFKA_HEAP:-512m}" ${KAFKA_JVM_OPTS:-} -cp "$CP" -Dlog4j2.configurationFile="$DATA/log4j2.properties" kafka.Kafka "$DATA/server.properties" \
    >"$DATA/broker.out" 2>&1 &
  echo $! > "$PIDFILE"
  for _ in $(seq 1 120); do
    if answers; then
      if ready; then echo "kafka ready on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"), data $DATA): transactions and group joins work"; return; fi
      echo "kafka answers on 127.0.0.1:$PORT but a transactional producer or a group join failed; see $DATA/broker.log" >&2
      exit 1
    fi
    if ! running; then echo "kafka exited during start-up; see $DATA/broker.out and $DATA/broker.log" >&2; exit 1; fi
    sleep 0.5
  done
  echo "kafka did not answer on 127.0.0.1:$PORT within 60 s; see $DATA/broker.log" >&2
  exit 1
}

stop() {
  if ! running; then echo "kafka not running"; rm -f "$PIDFILE"; return; fi
  local pid; pid="$(cat "$PIDFILE")"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || { rm -f "$PIDFILE"; echo "kafka stopped"; return; }; sleep 0.5; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$PIDFILE"
  echo "kafka killed after 30 s"
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop ;;
  status) if running && answers; then echo "kafka running on 127.0.0.1:$PORT (pid $(cat "$PIDFILE"))"; else echo "kafka not running"; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
