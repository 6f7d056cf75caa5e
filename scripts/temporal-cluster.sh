#!/usr/bin/env bash
# A production-shaped Temporal on this machine, beside the dev server: the real server binary
# (scripts/install-temporal-server.sh builds it) with PostgreSQL persistence, its schemas set up by
# temporal-sql-tool, and the frontend, history, matching and worker services as separate processes.
#
#   scripts/temporal-cluster.sh start [service...]   start PostgreSQL and the services (all by default)
#   scripts/temporal-cluster.sh stop [service...]    stop the services (all, then PostgreSQL)
#   scripts/temporal-cluster.sh status               each process, its pid and the frontend's health
#   scripts/temporal-cluster.sh address              the frontend's host:port (for temporal.address)
#   scripts/temporal-cluster.sh pid <service>        a service's pid (postgres included)
#
# State lives in $TEMPORAL_CLUSTER_DIR (default .sage/temporal-cluster): pg/ (the database cluster),
# config.yaml and dynamic-config.yaml (written once), ports.env (free loopback ports picked once),
# <service>.pid and <service>.log. The first start runs initdb, creates the databases temporal and
# temporal_visibility (create, setup-schema -v 0.0, update-schema over the versioned dir), then
# registers the namespace `default` and sage's search attributes SagePipeline and SageJobId.
# PostgreSQL refuses to run as root: as root, it runs as the `postgres` user (runuser), and its
# data directory belongs to that user. A service killed with kill -9 comes back with `start <service>`.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
DIR="$(mkdir -p "${TEMPORAL_CLUSTER_DIR:-$ROOT/.sage/temporal-cluster}" && cd "${TEMPORAL_CLUSTER_DIR:-$ROOT/.sage/temporal-cluster}" && pwd)"
BIN="$ROOT/.tools/temporal-server"
CLI="$ROOT/.tools/temporal/bin/temporal"
PGBIN="${PG_BIN:-/usr/local/bin}"
PSQL="${PSQL:-/usr/bin/psql}"
SERVICES=(history matching frontend worker)
NAMESPACE="default"
PG_USER="temporal"
PG_PASSWORD="temporal"

say() { echo "temporal-cluster: $*" >&2; }
die() { say "$*"; exit 1; }

# PostgreSQL's own commands run as `postgres` when we are root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

alive() { [ -f "$DIR/$1.pid" ] && kill -0 "$(cat "$DIR/$1.pid")" 2>/dev/null; }

# Picks the cluster's loopback ports once; a restarted service binds the same ones. They come from
# below the kernel's ephemeral range (32768+): the cluster_membership table keeps a service's
# membership port in a SMALLINT, and a port above 32767 stops the service at start-up.
pick_ports() {
  [ -f "$DIR/ports.env" ] && return
  node -e '
    const net = require("node:net");
    const names = ["PG", "FRONTEND", "FRONTEND_HTTP", "FRONTEND_MEMBERSHIP", "HISTORY", "HISTORY_MEMBERSHIP",
      "MATCHING", "MATCHING_MEMBERSHIP", "WORKER", "WORKER_MEMBERSHIP"];
    const free = (port) => new Promise((ok) => {
      const s = net.createServer().once("error", () => ok(false));
      s.listen(port, "127.0.0.1", () => s.close(() => ok(true)));
    });
    (async () => {
      const picked = new Set();
      while (picked.size < names.length) {
        const port = 20000 + Math.floor(Math.random() * 12000);
        if (!picked.has(port) && (await free(port))) picked.add(port);
      }
      [...picked].forEach((port, i) => console.log(`${names[i]}_PORT=${port}`));
    })();' >"$DIR/ports.env.tmp"
  mv "$DIR/ports.env.tmp" "$DIR/ports.env"
}

load_ports() {
  # shellcheck source=/dev/null
  . "$DIR/ports.env"
  ADDRESS="127.0.0.1:$FRONTEND_PORT"
}

write_config() {
  [ -f "$DIR/config.yaml" ] && return
  local ds=""
  for db in temporal temporal_visibility; do
    ds+="
    $db:
      sql:
        pluginName: postgres12
        databaseName: $db
        connectAddr: 127.0.0.1:$PG_PORT
        connectProtocol: tcp
        user: $PG_USER
        password: $PG_PASSWORD
        maxConns: 20
        maxIdleConns: 20
        maxConnLifetime: 1h"
  done
  cat >"$DIR/config.yaml" <<YAML
# Written by scripts/temporal-cluster.sh: one cluster, four services on loopback, PostgreSQL.
log:
  stdout: true
  level: warn
persistence:
  defaultStore: temporal
  visibilityStore: temporal_visibility
  numHistoryShards: 4
  datastores:$ds
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
services:
  frontend:
    rpc: { grpcPort: $FRONTEND_PORT, httpPort: $FRONTEND_HTTP_PORT, membershipPort: $FRONTEND_MEMBERSHIP_PORT, bindOnLocalHost: true }
  history:
    rpc: { grpcPort: $HISTORY_PORT, membershipPort: $HISTORY_MEMBERSHIP_PORT, bindOnLocalHost: true }
  matching:
    rpc: { grpcPort: $MATCHING_PORT, membershipPort: $MATCHING_MEMBERSHIP_PORT, bindOnLocalHost: true }
  worker:
    rpc: { grpcPort: $WORKER_PORT, membershipPort: $WORKER_MEMBERSHIP_PORT, bindOnLocalHost: true }
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: 127.0.0.1:$FRONTEND_PORT
      httpAddress: 127.0.0.1:$FRONTEND_HTTP_PORT
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: $DIR/dynamic-config.yaml
  pollInterval: 10s
YAML
  # The server defaults sage's streaming jobs want changed (README, "A real Temporal cluster"):
  # a second query to a workflow while its task runs is refused at 1 and retried after 1-2 s; and
  # the timer queue fires a timer up to 1 s late, so each checkpoint's close stalls a second.
  cat >"$DIR/dynamic-config.yaml" <<YAML
history.MaxBufferedQueryCount:
  - value: 100
history.timerProcessorMaxTimeShift:
  - value: 10ms
limit.maxIDLength:
  - value: 255
YAML
}

start_postgres() {
  if [ ! -f "$DIR/pg/PG_VERSION" ]; then
    as_pg test -x "$DIR" || die "the postgres user cannot reach $DIR: every directory above it needs o+x"
    mkdir -p "$DIR/pg"
    [ "$(id -u)" = 0 ] && chown postgres: "$DIR/pg"
    chmod 700 "$DIR/pg"
    as_pg "$PGBIN/initdb" -D "$DIR/pg" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$DIR/initdb.log"
  fi
  if ! as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" status >/dev/null 2>&1; then
    touch "$DIR/postgres.log"
    [ "$(id -u)" = 0 ] && chown postgres: "$DIR/postgres.log"
    as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -l "$DIR/postgres.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $DIR/pg -c max_connections=200" >/dev/null
  fi
  head -1 "$DIR/pg/postmaster.pid" >"$DIR/postgres.pid"
}

sql_tool() {
  local db="$1"
  shift
  "$BIN/temporal-sql-tool" --plugin postgres12 --ep 127.0.0.1 -p "$PG_PORT" -u "$PG_USER" --pw "$PG_PASSWORD" \
    --db "$db" "$@" >>"$DIR/schema.log" 2>&1 || die "temporal-sql-tool --db $db $*: failed, see $DIR/schema.log"
}

setup_schema() {
  [ -f "$DIR/schema.done" ] && return
  "$PSQL" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d postgres -q -v ON_ERROR_STOP=1 \
    -c "DO \$\$ BEGIN CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$;"
  # database name -> its schema directory in the module
  local db schema
  for db in temporal:temporal temporal_visibility:visibility; do
    schema="${db#*:}"
    db="${db%%:*}"
    sql_tool "$db" create
    sql_tool "$db" setup-schema -v 0.0
    sql_tool "$db" update-schema -d "$BIN/schema/postgresql/v12/$schema/versioned"
  done
  touch "$DIR/schema.done"
}

start_service() {
  local s="$1"
  alive "$s" && return
  # setsid: a service outlives this script and is killed by pid alone, never with its caller's group.
  setsid "$BIN/server" --config-file "$DIR/config.yaml" --allow-no-auth start --service "$s" \
    >>"$DIR/$s.log" 2>&1 </dev/null &
  echo $! >"$DIR/$s.pid"
}

healthy() { "$CLI" operator cluster health --address "$ADDRESS" 2>/dev/null | grep -q SERVING; }

# Until the frontend serves and every service just started is still up 2 s later.
wait_healthy() {
  local s
  for _ in $(seq 1 240); do
    for s in "$@"; do alive "$s" || die "$s exited: $(tail -3 "$DIR/$s.log")"; done
    if healthy; then
      sleep 2
      for s in "$@"; do alive "$s" || die "$s exited: $(tail -3 "$DIR/$s.log")"; done
      return
    fi
    sleep 0.5
  done
  die "the frontend at $ADDRESS is not serving after 120 s"
}

pg_query() {
  "$PSQL" -h 127.0.0.1 -p "$PG_PORT" -U postgres -d temporal -Atqc "$1"
}

register() {
  [ -f "$DIR/registered.done" ] && return
  local cli=("$CLI" --address "$ADDRESS")
  if ! "${cli[@]}" operator namespace describe --namespace "$NAMESPACE" >/dev/null 2>&1; then
    "${cli[@]}" operator namespace create --namespace "$NAMESPACE" --retention 3d >/dev/null
  fi
  # The namespace cache of the other services fills within seconds; retry until it knows it.
  for name in SagePipeline SageJobId; do
    for i in $(seq 1 60); do
      "${cli[@]}" operator search-attribute create --namespace "$NAMESPACE" --name "$name" --type Keyword >/dev/null 2>"$DIR/register.err" && break
      grep -q "already" "$DIR/register.err" && break
      [ "$i" = 60 ] && die "search attribute $name: $(cat "$DIR/register.err")"
      sleep 1
    done
  done
  touch "$DIR/registered.done"
}

cmd_start() {
  [ -x "$BIN/server" ] || die "no server binary: run scripts/install-temporal-server.sh"
  pick_ports
  load_ports
  write_config
  start_postgres
  setup_schema
  local which=("$@")
  [ ${#which[@]} = 0 ] && which=("${SERVICES[@]}")
  # Each service writes the cluster's metadata record if it is missing: started together on an
  # empty database they race, and the losers exit. The first one writes it alone.
  if [ "$(pg_query "SELECT count(*) FROM cluster_metadata_info")" = 0 ]; then
    start_service "${which[0]}"
    for _ in $(seq 1 120); do
      [ "$(pg_query "SELECT count(*) FROM cluster_metadata_info")" = 0 ] || break
      alive "${which[0]}" || die "${which[0]} exited: $(tail -3 "$DIR/${which[0]}.log")"
      sleep 0.5
    done
  fi
  for s in "${which[@]}"; do start_service "$s"; done
  wait_healthy "${which[@]}"
  register
  echo "$ADDRESS"
}

stop_service() {
  local s="$1"
  alive "$s" || { rm -f "$DIR/$s.pid"; return; }
  local pid
  pid="$(cat "$DIR/$s.pid")"
  kill -TERM "$pid"
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
  rm -f "$DIR/$s.pid"
}

cmd_stop() {
  if [ $# -gt 0 ]; then
    for s in "$@"; do stop_service "$s"; done
    return
  fi
  for s in worker frontend matching history; do stop_service "$s"; done
  if [ -f "$DIR/pg/PG_VERSION" ] && as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" status >/dev/null 2>&1; then
    as_pg "$PGBIN/pg_ctl" -D "$DIR/pg" -m fast -w stop >/dev/null
  fi
  rm -f "$DIR/postgres.pid"
}

cmd_status() {
  [ -f "$DIR/ports.env" ] || { say "not set up in $DIR"; exit 1; }
  load_ports
  local down=0
  for s in postgres "${SERVICES[@]}"; do
    if alive "$s"; then echo "$s: running, pid $(cat "$DIR/$s.pid")"; else echo "$s: stopped"; down=1; fi
  done
  if healthy; then echo "frontend $ADDRESS: SERVING"; else echo "frontend $ADDRESS: not serving"; down=1; fi
  return $down
}

case "${1:-}" in
  start) shift; cmd_start "$@" ;;
  stop) shift; cmd_stop "$@" ;;
  status) cmd_status ;;
  address) load_ports; echo "$ADDRESS" ;;
  pid) alive "${2:?service}" && cat "$DIR/$2.pid" || die "$2 is not running" ;;
  *) die "usage: $0 start|stop [service...] | status | address | pid <service>" ;;
esac
