#!/usr/bin/env bash
# Local infrastructure for Keel, without Docker: Apache Kafka 4.x (KRaft, one node) and
# Apache Cassandra 5.0 (one node), run from Maven Central jars on the machine's Java.
#
#   infra.sh up [kafka|cassandra]
#                     fetch on first use, format Kafka's storage on first start, start both,
#                     wait until each really answers (or fail with the log's tail)
#   infra.sh down     stop both; no process of this checkout's .local/ is left behind, and
#                     nothing else is touched (another checkout's stack keeps running)
#   infra.sh stop kafka|cassandra
#                     stop one server cleanly (SIGTERM); `up` starts it again
#   infra.sh kill kafka|cassandra
#                     kill one server with SIGKILL, as a crash would (tests of restarts)
#   infra.sh status   what runs, and what each server answers
#   infra.sh nodetool ARGS...
#                     Cassandra's nodetool against the local node (JMX on 127.0.0.1:7199),
#                     e.g. `nodetool flush` before scanning data files in a forensic test
#
# Everything lives under .local/ (KEEL_LOCAL_DIR): jars, data, logs, pid files.
# Environment: KEEL_JAVA (java binary, default: java on PATH), KEEL_UP_TIMEOUT (seconds to
# wait for each server, default 180), KEEL_MVN (default: mvn).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
INFRA="$ROOT/infra"
LOCAL=$(realpath -m -- "${KEEL_LOCAL_DIR:-$ROOT/.local}")
JAVA=${KEEL_JAVA:-java}
MVN=${KEEL_MVN:-mvn}
UP_TIMEOUT=${KEEL_UP_TIMEOUT:-180}
DEPENDENCY_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.6.1

KAFKA_PORTS=(9092 9093)
CASSANDRA_PORTS=(9042 7000 7199)

say() { printf '[infra] %s\n' "$*"; }
fail() { printf '[infra] error: %s\n' "$*" >&2; exit 1; }
probe() { python3 "$INFRA/probe.py" "$@"; }

show_log_tail() {
  local log=$1
  if [[ -s $log ]]; then
    printf '[infra] last lines of %s:\n' "$log" >&2
    tail -n 25 "$log" | sed 's/^/    /' >&2
  fi
}

# Every server process carries two markers on its command line: -Dkeel.infra=<name> and
# -Dkeel.local=<this .local/, canonical>. Only processes with both are this checkout's.

# Whether process $1's command line has the exact argument $2.
has_arg() {
  { tr '\0' '\n' < "/proc/$1/cmdline"; } 2>/dev/null | grep -qxF -- "$2"
}

# Whether process $1's command line has an argument starting with $2.
has_arg_prefix() {
  { tr '\0' '\n' < "/proc/$1/cmdline"; } 2>/dev/null | grep -q -- "^$2"
}

# The pid of a running server of ours, or nothing. A pid counts only if its command line
# carries our markers, so a recycled pid (or another checkout's server) is never mistaken
# for it; a server started before the -Dkeel.local marker existed counts if our pid file
# names it and it has no other checkout's marker.
running_pid() {
  local name=$1 pidfile="$LOCAL/run/$1.pid" pid
  [[ -f $pidfile ]] || return 0
  pid=$(<"$pidfile")
  [[ -n $pid ]] && has_arg "$pid" "-Dkeel.infra=$name" || return 0
  if has_arg "$pid" "-Dkeel.local=$LOCAL" || ! has_arg_prefix "$pid" "-Dkeel.local="; then
    echo "$pid"
  fi
}

# Every process of this checkout's servers, pid file or not (say, after `rm -rf .local/run`).
our_processes() {
  local pid
  for pid in $(pgrep -f -- "-Dkeel.infra=(kafka|cassandra)" || true); do
    if has_arg "$pid" "-Dkeel.local=$LOCAL"; then echo "$pid"; fi
  done
}

java_major() {
  command -v "$JAVA" >/dev/null 2>&1 || fail "no Java found ('$JAVA'); install Java 17 or set KEEL_JAVA to a Java 17 binary"
  "$JAVA" -version 2>&1 | sed -n 's/.*version "\([0-9]*\)[."].*/\1/p' | head -n 1
}

check_java() {
  local major
  major=$(java_major)
  # Cassandra 5.0 runs on Java 11 or 17; Kafka 4 needs 17 or newer: 17 serves both.
  [[ $major == 17 ]] || fail "Java 17 is needed (Cassandra 5.0 runs on 11 or 17, Kafka 4 on 17+), found Java ${major:-unknown} at '$JAVA'; set KEEL_JAVA to a Java 17 binary"
}

# Lays the jars of infra/NAME/pom.xml into .local/NAME/libs, once per version of the pom.
fetch() {
  local name=$1 pom="$INFRA/$1/pom.xml" libs="$LOCAL/$1/libs" want
  want=$(sha256sum "$pom" | cut -d' ' -f1)
  if [[ -f $libs/.pom-sha256 && $(<"$libs/.pom-sha256") == "$want" ]]; then
    return 0
  fi
  command -v "$MVN" >/dev/null 2>&1 || fail "Maven ('$MVN') is needed to fetch $name from Maven Central; install Maven 3"
  say "fetching $name jars from Maven Central (first run only)"
  local tmp="$libs.partial" log="$LOCAL/logs/fetch-$name.log"
  rm -rf "$tmp"
  if ! "$MVN" -B -q -f "$pom" -Dmaven.repo.local="$LOCAL/m2" \
      "$DEPENDENCY_PLUGIN:copy-dependencies" -DincludeScope=runtime -DoutputDirectory="$tmp" \
      > "$log" 2>&1; then
    show_log_tail "$log"
    fail "downloading $name failed (is Maven Central reachable?); full log: $log"
  fi
  echo "$want" > "$tmp/.pom-sha256"
  rm -rf "$libs"
  mv "$tmp" "$libs"
}

# Refuses to start a server when one of its ports is held by someone else.
check_ports_free() {
  local name=$1; shift
  local port
  for port in "$@"; do
    if ! probe port-free "$port"; then
      local holder
      holder=$(ss -ltnpH "sport = :$port" 2>/dev/null | sed -n 's/.*users:((\(.*\))).*/\1/p' | head -n 1)
      fail "port $port is already in use${holder:+ by $holder}, so $name cannot start; stop that process or run 'make down' if it is an earlier Keel stack"
    fi
  done
}

# Options files hold one option per line; '#' starts a comment.
read_options() { grep -v '^[[:space:]]*\(#\|$\)' "$1"; }

render() { # template destination key=value...
  local template=$1 destination=$2; shift 2
  local script=() pair
  for pair in "$@"; do script+=(-e "s|@${pair%%=*}@|${pair#*=}|g"); done
  sed "${script[@]}" "$template" > "$destination"
}

launch() { # name log command...
  local name=$1 log=$2; shift 2
  # setsid: the server leads its own process group, so `down` can stop all of it.
  setsid nohup "$@" > "$log" 2>&1 < /dev/null &
  echo $! > "$LOCAL/run/$name.pid"
}

start_kafka() {
  local home="$LOCAL/kafka" pid
  pid=$(running_pid kafka)
  if [[ -n $pid ]]; then say "kafka already running (pid $pid)"; return 0; fi
  check_ports_free kafka "${KAFKA_PORTS[@]}"
  fetch kafka
  mkdir -p "$home/data"
  render "$INFRA/kafka/server.properties" "$home/server.properties" DATA_DIR="$home/data"
  local classpath="$home/libs/*"
  if [[ ! -f $home/data/meta.properties ]]; then
    local cluster_id
    # Kafka's own Uuid.randomUuid(): URL-safe base64 of 16 random bytes, never starting
    # with '-' (which command lines would read as an option).
    cluster_id=$(python3 -c '
import base64, uuid
while (text := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
    pass
print(text)')
    say "formatting kafka storage (cluster $cluster_id)"
    "$JAVA" -cp "$classpath" -Dlog4j2.configurationFile="$INFRA/kafka/log4j2.yaml" kafka.tools.StorageTool \
      format --standalone --cluster-id="$cluster_id" --config="$home/server.properties" \
      > "$LOCAL/logs/kafka-format.log" 2>&1 \
      || { show_log_tail "$LOCAL/logs/kafka-format.log"; fail "formatting kafka storage failed"; }
  fi
  mapfile -t options < <(read_options "$INFRA/kafka/jvm.options")
  say "starting kafka"
  launch kafka "$LOCAL/logs/kafka.log" "$JAVA" "${options[@]}" -Dkeel.infra=kafka -Dkeel.local="$LOCAL" \
    -Dlog4j2.configurationFile="$INFRA/kafka/log4j2.yaml" -cp "$classpath" kafka.Kafka "$home/server.properties"
}

start_cassandra() {
  local home="$LOCAL/cassandra" pid
  pid=$(running_pid cassandra)
  if [[ -n $pid ]]; then say "cassandra already running (pid $pid)"; return 0; fi
  check_ports_free cassandra "${CASSANDRA_PORTS[@]}"
  fetch cassandra
  mkdir -p "$home/data" "$home/conf" "$home/triggers"
  render "$INFRA/cassandra/cassandra.yaml" "$home/conf/cassandra.yaml" DATA="$home/data"
  cp "$INFRA/cassandra/logback.xml" "$home/conf/logback.xml"
  local jamm
  jamm=$(ls "$home"/libs/jamm-*.jar 2>/dev/null | head -n 1)
  [[ -n $jamm ]] || fail "jamm agent jar missing from $home/libs; delete $home/libs and retry"
  mapfile -t options < <(read_options "$INFRA/cassandra/jvm17-server.options")
  say "starting cassandra"
  launch cassandra "$LOCAL/logs/cassandra.log" "$JAVA" "${options[@]}" -Dkeel.infra=cassandra -Dkeel.local="$LOCAL" \
    -javaagent:"$jamm" \
    -Dcassandra.config="file://$home/conf/cassandra.yaml" \
    -Dlogback.configurationFile="$home/conf/logback.xml" \
    -Dcassandra.logdir="$LOCAL/logs" -Dcassandra.storagedir="$home/data" \
    -Dcassandra.triggers_dir="$home/triggers" -Dcassandra-foreground=yes \
    -cp "$home/conf:$home/libs/*" org.apache.cassandra.service.CassandraDaemon
}

# Waits until NAME answers its probe; fails early if the process dies, or after the timeout.
wait_ready() {
  local name=$1 kind=$2 address=$3 deadline=$((SECONDS + UP_TIMEOUT)) answer
  while true; do
    if answer=$(probe "$kind" "$address" 2>/dev/null); then
      say "$name ready at $address: $answer"
      return 0
    fi
    if [[ -z $(running_pid "$name") ]]; then
      show_log_tail "$LOCAL/logs/$name.log"
      fail "$name exited during start-up; full log: $LOCAL/logs/$name.log"
    fi
    if (( SECONDS >= deadline )); then
      show_log_tail "$LOCAL/logs/$name.log"
      fail "$name did not answer at $address within ${UP_TIMEOUT}s (KEEL_UP_TIMEOUT); it is left running for inspection, 'make down' stops it"
    fi
    sleep 0.5
  done
}

up() {
  local only=${1:-all}
  [[ $only == all || $only == kafka || $only == cassandra ]] || fail "unknown server '$only' (kafka or cassandra)"
  mkdir -p "$LOCAL/logs" "$LOCAL/run"
  check_java
  command -v python3 >/dev/null 2>&1 || fail "python3 is needed for the readiness probes"
  local started=$SECONDS
  # Both start first and are then awaited, so their start-ups overlap.
  [[ $only == cassandra ]] || start_kafka
  [[ $only == kafka ]] || start_cassandra
  [[ $only == cassandra ]] || wait_ready kafka kafka 127.0.0.1:9092
  [[ $only == kafka ]] || wait_ready cassandra cql 127.0.0.1:9042
  say "up in $((SECONDS - started))s; logs in $LOCAL/logs"
}

stop() {
  local name=$1 pid
  pid=$(running_pid "$name")
  if [[ -z $pid ]]; then
    rm -f "$LOCAL/run/$name.pid"
    return 0
  fi
  say "stopping $name (pid $pid)"
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do sleep 0.3; done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop within 60s; killing it"
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$LOCAL/run/$name.pid"
}

# Kills one server with SIGKILL, as a crash would; its pid file stays, like after a crash.
crash() {
  local name=$1 pid
  pid=$(running_pid "$name")
  [[ -n $pid ]] || fail "$name is not running"
  say "killing $name (pid $pid) with SIGKILL"
  kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
}

one_server() {
  [[ ${1:-} == kafka || ${1:-} == cassandra ]] || fail "name a server: kafka or cassandra"
}

down() {
  stop kafka
  stop cassandra
  # Anything of this checkout's that outlived its pid file; never another checkout's.
  local stray
  stray=$(our_processes)
  if [[ -n $stray ]]; then
    say "stopping leftover processes: $(echo $stray)"
    kill -KILL $stray 2>/dev/null || true
  fi
  say "down"
}

status() {
  local rc=0 name kind address pid answer
  for entry in kafka:kafka:127.0.0.1:9092 cassandra:cql:127.0.0.1:9042; do
    IFS=: read -r name kind address <<<"$entry"
    address=${entry#*:*:}
    pid=$(running_pid "$name")
    if [[ -n $pid ]] && answer=$(probe "$kind" "$address" 2>&1); then
      say "$name: running (pid $pid), $answer"
    elif [[ -n $pid ]]; then
      say "$name: running (pid $pid) but not answering: $answer"; rc=1
    else
      say "$name: stopped"; rc=1
    fi
  done
  return $rc
}

nodetool() {
  local home="$LOCAL/cassandra"
  [[ -n $(running_pid cassandra) ]] || fail "cassandra is not running; run: make up"
  local opens
  mapfile -t opens < <(read_options "$INFRA/cassandra/jvm17-server.options" | grep -- '^--add-')
  "$JAVA" -Xmx256m "${opens[@]}" -Dlogback.configurationFile="$home/conf/logback.xml" \
    -Duser.home="$LOCAL/run" -cp "$home/conf:$home/libs/*" \
    org.apache.cassandra.tools.NodeTool -h 127.0.0.1 -p 7199 "$@"
}

case ${1:-} in
  up) up "${2:-all}" ;;
  down) down ;;
  stop) one_server "${2:-}"; stop "$2" ;;
  kill) one_server "${2:-}"; crash "$2" ;;
  status) status ;;
  nodetool) shift; nodetool "$@" ;;
  *) echo "usage: $0 up [kafka|cassandra] | down | stop kafka|cassandra | kill kafka|cassandra | status | nodetool ARGS..." >&2; exit 2 ;;
esac
