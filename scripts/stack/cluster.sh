#!/usr/bin/env bash
# A replicated ClickHouse cluster on loopback for the cluster test: ZooKeeper (Debian's `zookeeper`) and
# two ClickHouse servers (Debian's 18.16), one shard with two replicas, named `tributary_cluster`. It
# uses its own ports and data, so the shared single server (8123/9000) is never touched.
#
#   cluster.sh up [--quiet]     install what is missing (apt, once), start what is not answering, wait for it
#   cluster.sh down [--clean]   stop the cluster's processes (pid files); --clean also wipes their data
#   cluster.sh stop <1|2>       stop one replica (SIGTERM, like an operator would)
#   cluster.sh start <1|2>      start it again and wait until it answers
#   cluster.sh status           one line per process
#
# Ports: ZooKeeper 2191; replica 1 HTTP 8131, native 9131, interserver 9141; replica 2 HTTP 8132,
# native 9132, interserver 9142.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/scripts/stack"
STACK_DIR="${TRIBUTARY_STACK_DIR:-$ROOT/.stack}"
BASE="$STACK_DIR/cluster"
DATA="$BASE/data"
RUN="$BASE/run"
LOGS="$BASE/logs"
READY_TIMEOUT_S=${TRIBUTARY_STACK_TIMEOUT_S:-180}

CLUSTER=tributary_cluster
ZOOKEEPER_PORT=2191
http_port() { echo $((8130 + $1)); }
tcp_port() { echo $((9130 + $1)); }
interserver_port() { echo $((9140 + $1)); }

QUIET=0
say() { [ "$QUIET" = 1 ] || echo "cluster: $*" >&2; }
die() { echo "cluster: error: $*" >&2; exit 1; }

# shellcheck source=processes.sh
source "$HERE/processes.sh"

ensure_packages() {
  local missing=()
  [ -f /usr/share/java/zookeeper.jar ] || missing+=(zookeeper)
  command -v clickhouse-server >/dev/null || [ -x /usr/sbin/clickhouse-server ] || missing+=(clickhouse-server clickhouse-client)
  command -v java >/dev/null || missing+=(openjdk-17-jre-headless)
  [ "${#missing[@]}" -eq 0 ] && return 0
  [ "$(id -u)" = 0 ] || die "missing Debian packages; run: sudo apt-get install -y ${missing[*]}"
  say "installing ${missing[*]} from Debian (once)"
  mkdir -p "$LOGS"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") \
    >"$LOGS/install.log" 2>&1 || die "installing ${missing[*]} failed; see $LOGS/install.log"
}

probe_zookeeper() {
  # `srvr` is on ZooKeeper's default four-letter-word whitelist.
  { exec 3<>"/dev/tcp/127.0.0.1/$ZOOKEEPER_PORT"; } 2>/dev/null || return 1
  printf 'srvr' >&3
  local answer
  answer=$(timeout 3 cat <&3 || true)
  exec 3<&-
  [[ "$answer" == *Mode:* ]]
}
probe_replica() { curl -sf --max-time 3 "http://127.0.0.1:$(http_port "$1")/?query=SELECT%201" >/dev/null 2>&1; }

start_zookeeper() {
  local dir="$DATA/zookeeper"
  mkdir -p "$dir" "$RUN"
  cat >"$RUN/zoo.cfg" <<CFG
tickTime=500
initLimit=10
syncLimit=5
dataDir=$dir
clientPort=$ZOOKEEPER_PORT
clientPortAddress=127.0.0.1
admin.enableServer=false
4lw.commands.whitelist=srvr,ruok
CFG
  spawn zookeeper java -Xmx256m -Dzookeeper.log.dir="$LOGS" -cp "/usr/share/java/zookeeper.jar:/etc/zookeeper/conf" \
    org.apache.zookeeper.server.quorum.QuorumPeerMain "$RUN/zoo.cfg"
}

start_replica() {
  local n=$1 server dir="$DATA/replica$1"
  server=$(command -v clickhouse-server 2>/dev/null || echo /usr/sbin/clickhouse-server)
  mkdir -p "$dir/tmp" "$dir/user_files" "$dir/format_schemas" "$RUN/replica$n"
  sed "s#@DATA@#$dir#g; s#@LOGS@#$LOGS#g; s#@REPLICA@#r$n#g; s#@CLUSTER@#$CLUSTER#g;
       s#@HTTP_PORT@#$(http_port "$n")#g; s#@TCP_PORT@#$(tcp_port "$n")#g;
       s#@INTERSERVER_PORT@#$(interserver_port "$n")#g; s#@ZOOKEEPER_PORT@#$ZOOKEEPER_PORT#g;
       s#@TCP_PORT_1@#$(tcp_port 1)#g; s#@TCP_PORT_2@#$(tcp_port 2)#g" \
    "$HERE/clickhouse-replica.xml" >"$RUN/replica$n/config.xml"
  cp "$HERE/clickhouse-users.xml" "$RUN/replica$n/clickhouse-users.xml"
  spawn "replica$n" "$server" --config-file="$RUN/replica$n/config.xml"
}

wait_for() {
  local name=$1 probe=$2 deadline=$((SECONDS + READY_TIMEOUT_S))
  until $probe; do
    if ! running "$name"; then
      echo "cluster: error: $name exited during start-up; last lines of $LOGS/$name.log:" >&2
      tail -n 20 "$LOGS/$name.log" >&2 || true
      return 1
    fi
    [ "$SECONDS" -lt "$deadline" ] || { echo "cluster: error: $name did not answer within ${READY_TIMEOUT_S}s" >&2; return 1; }
    sleep 0.5
  done
  say "$name up"
}

up_replica() {
  local n=$1
  probe_replica "$n" && return 0
  running "replica$n" || start_replica "$n"
  wait_for "replica$n" "probe_replica $n"
}

cmd_up() {
  ensure_packages
  mkdir -p "$DATA" "$RUN" "$LOGS"
  if ! probe_zookeeper; then
    running zookeeper || start_zookeeper
    wait_for zookeeper probe_zookeeper
  fi
  up_replica 1
  up_replica 2
  say "cluster $CLUSTER up (replicas http://127.0.0.1:$(http_port 1), http://127.0.0.1:$(http_port 2); zookeeper 127.0.0.1:$ZOOKEEPER_PORT)"
}

cmd_down() {
  stop_process replica1
  stop_process replica2
  stop_process zookeeper
  if [ "${1:-}" = "--clean" ]; then rm -rf "$DATA" "$RUN"; say "data wiped ($DATA)"; fi
}

cmd_status() {
  local all_up=0
  if probe_zookeeper; then echo "zookeeper   up    127.0.0.1:$ZOOKEEPER_PORT"; else echo "zookeeper   down  127.0.0.1:$ZOOKEEPER_PORT"; all_up=1; fi
  for n in 1 2; do
    if probe_replica "$n"; then state=up; else state=down; all_up=1; fi
    printf 'replica%-4s %-5s http://127.0.0.1:%s\n' "$n" "$state" "$(http_port "$n")"
  done
  return "$all_up"
}

replica_arg() { case "${1:-}" in 1 | 2) echo "$1" ;; *) die "which replica? 1 or 2" ;; esac; }

command=${1:-}
shift || true
for arg in "$@"; do [ "$arg" = "--quiet" ] && QUIET=1; done
case "$command" in
  up) cmd_up ;;
  down) cmd_down "$@" ;;
  stop) stop_process "replica$(replica_arg "${1:-}")" ;;
  start) up_replica "$(replica_arg "${1:-}")" ;;
  status) cmd_status ;;
  *) echo "usage: cluster.sh up [--quiet] | down [--clean] | stop <1|2> | start <1|2> | status" >&2; exit 2 ;;
esac
