#!/usr/bin/env bash
# The local stack: Apache Kafka (KRaft), a Confluent-API Schema Registry and ClickHouse on loopback.
#
#   stack.sh up [--quiet] [--cluster]
#                           start what is not answering yet, wait until every service answers a real request;
#                           --cluster also starts the replicated ClickHouse test cluster (cluster.sh)
#   stack.sh down [--clean] stop the processes this script started (pid files); --clean also wipes their data
#   stack.sh status         one line per service: up or down, with its address
#
# With a Docker engine it delegates to docker-compose.yml; otherwise it runs the services natively
# (Kafka jars and Apicurio Registry from Maven Central, ClickHouse from Debian), caching downloads under
# .stack/cache so that a second start needs no network. Endpoints are settings:
#   TRIBUTARY_BROKERS              (default 127.0.0.1:9092)
#   TRIBUTARY_SCHEMA_REGISTRY_URL  (default http://127.0.0.1:8081/apis/ccompat/v7)
#   TRIBUTARY_CLICKHOUSE_URL       (default http://127.0.0.1:8123)
# A service whose endpoint is not one of these loopback defaults is only checked, never started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/scripts/stack"
STACK_DIR="${TRIBUTARY_STACK_DIR:-$ROOT/.stack}"
CACHE="$STACK_DIR/cache"
DATA="$STACK_DIR/data"
RUN="$STACK_DIR/run"
LOGS="$STACK_DIR/logs"

# 3.9 is the tested default; 4.x works too (TRIBUTARY_KAFKA_VERSION=4.1.1, checked with the runtime tests).
KAFKA_VERSION=${TRIBUTARY_KAFKA_VERSION:-3.9.1}
APICURIO_VERSION=3.3.3
READY_TIMEOUT_S=${TRIBUTARY_STACK_TIMEOUT_S:-180}

BROKERS=${TRIBUTARY_BROKERS:-127.0.0.1:9092}
REGISTRY_URL=${TRIBUTARY_SCHEMA_REGISTRY_URL:-http://127.0.0.1:8081/apis/ccompat/v7}
CLICKHOUSE_URL=${TRIBUTARY_CLICKHOUSE_URL:-http://127.0.0.1:8123}

QUIET=0
say() { [ "$QUIET" = 1 ] || echo "stack: $*" >&2; }
die() { echo "stack: error: $*" >&2; exit 1; }

# ---- probes: a real request to each service -------------------------------------------------------

probe_kafka() { node "$HERE/probe-kafka.mjs" "$BROKERS" >/dev/null 2>&1; }
probe_registry() { curl -sf --max-time 3 "$REGISTRY_URL/subjects" >/dev/null 2>&1; }
probe_clickhouse() {
  [ "$(curl -s --max-time 3 --data-binary 'SELECT 1' "$CLICKHOUSE_URL/" 2>/dev/null)" = "1" ]
}

is_local_default() {
  case "$1" in
    kafka) [ "$BROKERS" = "127.0.0.1:9092" ] || [ "$BROKERS" = "localhost:9092" ] ;;
    registry) [ "$REGISTRY_URL" = "http://127.0.0.1:8081/apis/ccompat/v7" ] || [ "$REGISTRY_URL" = "http://localhost:8081/apis/ccompat/v7" ] || [ "$REGISTRY_URL" = "http://127.0.0.1:8081" ] ;;
    clickhouse) [ "$CLICKHOUSE_URL" = "http://127.0.0.1:8123" ] || [ "$CLICKHOUSE_URL" = "http://localhost:8123" ] ;;
  esac
}

address() {
  case "$1" in
    kafka) echo "$BROKERS" ;;
    registry) echo "$REGISTRY_URL" ;;
    clickhouse) echo "$CLICKHOUSE_URL" ;;
  esac
}

# ---- process bookkeeping --------------------------------------------------------------------------

# shellcheck source=processes.sh
source "$HERE/processes.sh"

# ---- installs (cached) ----------------------------------------------------------------------------

# Maven resolves the Kafka jars and the registry from Maven Central.
ensure_maven() {
  command -v mvn >/dev/null && return 0
  [ "$(id -u)" = 0 ] || die "Maven (mvn) is needed to fetch Kafka and the registry; run: sudo apt-get install -y maven"
  say "installing maven from Debian (once)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq maven) \
    >"$LOGS/install-maven.log" 2>&1 || die "installing Maven failed; see $LOGS/install-maven.log"
}

ensure_kafka_jars() {
  local libs="$CACHE/kafka-$KAFKA_VERSION"
  if [ ! -f "$libs/.complete" ]; then
    say "fetching Kafka $KAFKA_VERSION jars from Maven Central (once)"
    ensure_maven
    mvn -q -f "$HERE/kafka-pom.xml" -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
      -DoutputDirectory="$libs" -Dmaven.repo.local="$CACHE/m2" >"$LOGS/fetch-kafka.log" 2>&1 \
      || die "fetching the Kafka jars failed; see $LOGS/fetch-kafka.log"
    touch "$libs/.complete"
  fi
  echo "$libs"
}

ensure_apicurio() {
  local home="$CACHE/apicurio-$APICURIO_VERSION"
  if [ ! -f "$home/.complete" ]; then
    say "fetching Apicurio Registry $APICURIO_VERSION from Maven Central (once, ~160 MB)"
    ensure_maven
    mvn -q dependency:copy -Dartifact="io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" \
      -DoutputDirectory="$CACHE" -Dmaven.repo.local="$CACHE/m2" >"$LOGS/fetch-apicurio.log" 2>&1 \
      || die "fetching Apicurio Registry failed; see $LOGS/fetch-apicurio.log"
    rm -rf "$home" && mkdir -p "$home"
    tar xzf "$CACHE/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz" -C "$home"
    rm -f "$CACHE/apicurio-registry-app-$APICURIO_VERSION-all.tar.gz"
    touch "$home/.complete"
  fi
  echo "$home"
}

ensure_clickhouse() {
  if ! command -v clickhouse-server >/dev/null && [ ! -x /usr/sbin/clickhouse-server ]; then
    [ "$(id -u)" = 0 ] || die "clickhouse-server is not installed; run: sudo apt-get install -y clickhouse-server clickhouse-client"
    say "installing clickhouse-server from Debian (once)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clickhouse-server clickhouse-client) \
      >"$LOGS/install-clickhouse.log" 2>&1 || die "installing ClickHouse failed; see $LOGS/install-clickhouse.log"
  fi
  command -v clickhouse-server 2>/dev/null || echo /usr/sbin/clickhouse-server
}

# Apicurio 3 is a Quarkus app that needs Java 21 or newer; the default java may be 17.
find_java21() {
  local candidate version
  for candidate in ${JAVA21_HOME:+$JAVA21_HOME/bin/java} ${JAVA_HOME:+$JAVA_HOME/bin/java} /usr/lib/jvm/*/bin/java "$(command -v java || true)"; do
    [ -x "$candidate" ] || continue
    version=$("$candidate" -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
    if [ -n "$version" ] && [ "${version%%.*}" -ge 21 ] 2>/dev/null; then echo "$candidate"; return 0; fi
  done
  return 1
}

# ---- starts ---------------------------------------------------------------------------------------

start_kafka() {
  # One data folder per version: a newer broker upgrades the metadata, an older one cannot read it back.
  local libs conf="$RUN/kafka.properties" dir="$DATA/kafka-$KAFKA_VERSION"
  libs=$(ensure_kafka_jars)
  mkdir -p "$dir" "$RUN"
  sed "s#@DATA@#$dir#" "$HERE/kafka.properties" >"$conf"
  if [ ! -f "$dir/meta.properties" ]; then
    java -cp "$libs/*" -Dlog4j.configuration="file:$HERE/log4j.properties" kafka.tools.StorageTool format \
      -t tributary-local-cluster-01 -c "$conf" >>"$LOGS/kafka.log" 2>&1 \
      || die "formatting Kafka storage failed; see $LOGS/kafka.log"
  fi
  spawn kafka java -Xms256m -Xmx1g -XX:+UseG1GC -Dlog4j.configuration="file:$HERE/log4j.properties" \
    -cp "$libs/*" kafka.Kafka "$conf"
}

start_registry() {
  local home java
  home=$(ensure_apicurio)
  java=$(find_java21) || die "Schema Registry (Apicurio $APICURIO_VERSION) needs a JDK >= 21; none found under /usr/lib/jvm. Set JAVA21_HOME."
  mkdir -p "$DATA/registry"
  (cd "$DATA/registry" && spawn registry "$java" -Xms128m -Xmx768m \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port=8081 -Dquarkus.management.port=9001 \
    -Dquarkus.management.host=127.0.0.1 -Dapicurio.rules.global.compatibility=BACKWARD \
    -Dquarkus.log.level=WARN -Dquarkus.http.access-log.enabled=false -jar "$home/quarkus-run.jar")
}

start_clickhouse() {
  local server dir="$DATA/clickhouse"
  server=$(ensure_clickhouse)
  mkdir -p "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$RUN"
  sed "s#@DATA@#$dir#g; s#@LOGS@#$LOGS#g" "$HERE/clickhouse-config.xml" >"$RUN/clickhouse-config.xml"
  cp "$HERE/clickhouse-users.xml" "$RUN/clickhouse-users.xml"
  spawn clickhouse "$server" --config-file="$RUN/clickhouse-config.xml"
}

wait_ready() {
  local name=$1 deadline=$((SECONDS + READY_TIMEOUT_S)) restarts=0
  until "probe_$name"; do
    if [ -f "$RUN/$name.pid" ] && ! running "$name"; then
      # A process killed a moment ago may still hold its port or lock: give the new one a few tries.
      if [ "$restarts" -lt 3 ]; then
        restarts=$((restarts + 1))
        sleep 2
        say "restarting $name (attempt $((restarts + 1)))"
        "start_$name"
        continue
      fi
      echo "stack: error: $name exited during start-up; last lines of $LOGS/$name.log:" >&2
      tail -n 20 "$LOGS/$name.log" >&2 || true
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "stack: error: $name did not answer at $(address "$name") within ${READY_TIMEOUT_S}s; see $LOGS/$name.log" >&2
      tail -n 20 "$LOGS/$name.log" >&2 2>/dev/null || true
      return 1
    fi
    sleep 0.5
  done
  say "$name up at $(address "$name")"
}

docker_available() { command -v docker >/dev/null && docker info >/dev/null 2>&1; }

# ---- commands -------------------------------------------------------------------------------------

cmd_up() {
  mkdir -p "$CACHE" "$DATA" "$RUN" "$LOGS"
  if [ ! -d "$ROOT/node_modules/kafkajs" ] || [ ! -d "$ROOT/node_modules/tsx" ]; then
    say "installing npm packages (npm ci, once)"
    (cd "$ROOT" && npm ci --no-audit --no-fund >"$LOGS/npm-ci.log" 2>&1) || die "npm ci failed; see $LOGS/npm-ci.log"
  fi
  if docker_available; then
    say "Docker engine found: docker compose up"
    docker compose -f "$ROOT/docker-compose.yml" up -d --wait
    return
  fi
  local name started=()
  for name in kafka registry clickhouse; do
    if "probe_$name"; then continue; fi
    if ! is_local_default "$name"; then
      die "$name does not answer at $(address "$name") (a remote endpoint; this script starts only local services)"
    fi
    if running "$name"; then
      started+=("$name") # still starting up
      continue
    fi
    say "starting $name"
    "start_$name"
    started+=("$name")
  done
  local failed=0
  for name in "${started[@]}"; do wait_ready "$name" || failed=1; done
  [ "$failed" = 0 ] || exit 1
  say "all services up (kafka $BROKERS, registry $REGISTRY_URL, clickhouse $CLICKHOUSE_URL)"
  if [ "$WITH_CLUSTER" = 1 ]; then bash "$HERE/cluster.sh" up $([ "$QUIET" = 1 ] && echo --quiet); fi
}

cmd_down() {
  local clean=0
  [ "${1:-}" = "--clean" ] && clean=1
  if docker_available; then
    docker compose -f "$ROOT/docker-compose.yml" down $([ "$clean" = 1 ] && echo -v)
  fi
  local name
  for name in clickhouse registry kafka; do stop_process "$name"; done
  # The test cluster, when it was started (its pid files say so).
  bash "$HERE/cluster.sh" down $([ "$clean" = 1 ] && echo --clean)
  if [ "$clean" = 1 ]; then
    rm -rf "$DATA" "$RUN"
    say "data wiped ($DATA)"
  fi
}

cmd_status() {
  local name state all_up=0
  for name in kafka registry clickhouse; do
    if "probe_$name"; then state=up; else state=down; all_up=1; fi
    printf '%-11s %-5s %s\n' "$name" "$state" "$(address "$name")"
  done
  return "$all_up"
}

command=${1:-}
shift || true
WITH_CLUSTER=0
for arg in "$@"; do
  [ "$arg" = "--quiet" ] && QUIET=1
  [ "$arg" = "--cluster" ] && WITH_CLUSTER=1
done
case "$command" in
  up) cmd_up ;;
  down) cmd_down "$@" ;;
  status) cmd_status ;;
  *) echo "usage: stack.sh up [--quiet] [--cluster] | down [--clean] | status" >&2; exit 2 ;;
esac
