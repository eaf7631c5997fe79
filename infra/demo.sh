#!/usr/bin/env bash
# `make demo`: Kafka and Cassandra up (infra/infra.sh), the services built and started (logs
# under .local/logs, pids under .local/services), development tenants, keys and topics created,
# then the scenarios, narrated: the customer-support app's (`keel demo`), then the approvals
# app's (a deployment of its own: its topics, keyspace and services), driven only by the
# generic tools any domain gets, `keel command send` with JSON payloads and the query API. The services keep running afterwards so the
# URLs the summary prints answer; `make down` (or `infra/demo.sh stop`) stops them.
#
#   infra/demo.sh         everything above
#   infra/demo.sh stop    stop the services this script started
#
# Exits non-zero at the first step that fails, naming it, with the end of the log concerned.
set -euo pipefail
cd "$(dirname "$0")/.."

LOCAL=.local
RUN=$LOCAL/services
LOGS=$LOCAL/logs
DEV=$LOCAL/dev
BIN=${CARGO_TARGET_DIR:-target}/debug
SERVICES=(handler projector admin query approvals-handler approvals-projector approvals-admin approvals-query)
declare -A READY=(
  [handler]=http://127.0.0.1:9101/readyz
  [projector]=http://127.0.0.1:9102/readyz
  [admin]=http://127.0.0.1:9104/readyz
  [query]=http://127.0.0.1:8080/readyz
  [approvals-handler]=http://127.0.0.1:9111/readyz
  [approvals-projector]=http://127.0.0.1:9112/readyz
  [approvals-admin]=http://127.0.0.1:9114/readyz
  [approvals-query]=http://127.0.0.1:8081/readyz
)
# The approvals app's deployment: its own topics, keyspace, consumer groups and KMS file.
APPROVALS_KAFKA=(--commands-topic approvals.commands --results-topic approvals.command-results)
APPROVALS_TOPICS=("${APPROVALS_KAFKA[@]}" --events-topic approvals.events --dlq-topic approvals.dlq)
APPROVALS_STORE=(--keyspace keel_approvals --kms-file "$LOCAL/keys/approvals-kms.json")

step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "demo FAILED at step '$1': $2" >&2
  if [[ -n "${3:-}" && -f "$3" ]]; then
    echo "--- last lines of $3:" >&2
    tail -n 25 "$3" >&2
  fi
  exit 1
}

stop_services() {
  local pidfile pid
  for pidfile in "$RUN"/*.pid; do
    [[ -e "$pidfile" ]] || continue
    pid=$(<"$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
      echo "[demo] stopped $(basename "$pidfile" .pid) (pid $pid)"
    fi
    rm -f "$pidfile"
  done
}

start_service() {
  local name=$1
  shift
  local log=$LOGS/$name.log
  : >"$log"
  local command=("$BIN/keel-$name")
  if [[ $name == approvals-* ]]; then
    command=("$BIN/keel-approvals" "${name#approvals-}")
    [[ $name == approvals-admin ]] && command=("$BIN/keel-admin")
  fi
  setsid "${command[@]}" "$@" >>"$log" 2>&1 </dev/null &
  echo $! >"$RUN/$name.pid"
  echo "[demo] started keel-$name (pid $!), log $log"
}

wait_ready() {
  local name=$1 url=${READY[$1]} deadline=$((SECONDS + 180))
  until curl -fsS -o /dev/null "$url" 2>/dev/null; do
    kill -0 "$(<"$RUN/$name.pid")" 2>/dev/null || fail "start $name" "keel-$name exited" "$LOGS/$name.log"
    ((SECONDS < deadline)) || fail "start $name" "not ready at $url within 180 s" "$LOGS/$name.log"
    sleep 0.5
  done
  echo "[demo] keel-$name ready ($url)"
}

if [[ "${1:-run}" == stop ]]; then
  stop_services
  exit 0
fi

started=$SECONDS
step "1/6 infrastructure: Kafka (KRaft) and Cassandra"
bash infra/infra.sh up || fail "infrastructure" "infra/infra.sh up failed (see .local/logs/)"

step "2/6 build the services and the CLI"
cargo build --locked --bins -p keel-cli -p keel-support-app -p keel-approvals-app -p keel-admin ||
  fail "build" "cargo build failed"

step "3/6 development tenants, signing keys, certificate key and topics"
mkdir -p "$RUN" "$LOGS"
"$BIN/keel" dev init --dir "$DEV" || fail "dev init" "keel dev init failed"
"$BIN/keel" topics create || fail "topics" "keel topics create failed"
"$BIN/keel" topics create "${APPROVALS_TOPICS[@]}" || fail "topics" "keel topics create (approvals) failed"

step "4/6 start the services of both apps: command handler, projector, admin service, query API"
stop_services
export KEEL_TENANTS=$DEV/tenants.json
start_service handler
start_service projector
start_service admin --certificate-key "$DEV/certificate.ed25519"
start_service query
start_service approvals-handler "${APPROVALS_TOPICS[@]}" "${APPROVALS_STORE[@]}" \
  --group-id approvals-handler --ops-addr 127.0.0.1:9111
start_service approvals-projector --events-topic approvals.events --dlq-topic approvals.dlq \
  "${APPROVALS_STORE[@]}" --group-id approvals-projector --ops-addr 127.0.0.1:9112
start_service approvals-admin --events-topic approvals.events --results-topic approvals.command-results \
  --dlq-topic approvals.dlq "${APPROVALS_STORE[@]}" --admin-topic approvals.admin --group-id approvals-admin --ops-addr 127.0.0.1:9114 \
  --certificate-key "$DEV/certificate.ed25519"
start_service approvals-query "${APPROVALS_STORE[@]}" --addr 127.0.0.1:8081
for name in "${SERVICES[@]}"; do wait_ready "$name"; done

step "5/6 the scenarios"
RUST_LIB_BACKTRACE=0 "$BIN/keel" demo --dir "$DEV" || fail "scenario" "keel demo failed (service logs under $LOGS/)"
bash infra/demo-approvals.sh "$BIN" "$DEV" "${APPROVALS_KAFKA[@]}" ||
  fail "approvals scenario" "infra/demo-approvals.sh failed (service logs under $LOGS/approvals-*.log)"

step "6/6 done in $((SECONDS - started)) s"
echo "The services keep running (pids in $RUN/); 'make down' stops them and the infrastructure."
