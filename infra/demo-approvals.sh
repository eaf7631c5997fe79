#!/usr/bin/env bash
# The approvals app's scenario in `make demo` (infra/demo.sh starts its services first):
# agent actions under human approval, driven only by what any domain gets from Keel, the
# `keel` CLI sending JSON payloads (encoded by the schemas in schemas/approvals/) and the
# query API's JSON.
#
#   infra/demo-approvals.sh <bin dir> <dev dir> <kafka flags of the approvals deployment...>
set -euo pipefail
BIN=$1
DEV=$2
shift 2
KAFKA=("$@")
API=http://127.0.0.1:8081/v1/tenants/acme
SCRATCH=$(mktemp -d)
trap 'rm -rf "$SCRATCH"' EXIT
run=$(date +%s)
DESK=payouts-$run
GRACE=b-grace-$run
ALAN=b-alan-$run

say() { printf '\n-- %s\n' "$*"; }
token() { "$BIN/keel" token --dir "$DEV" --tenant acme "$@"; }
HANA=$(token --actor human:hana --scope approvals:approver)
BOT=$(token --actor agent:payout-bot --on-behalf-of human:hana --scope approvals:agent)
DPO=$(token --actor human:dpo --scope keel:admin)

# Sends a command and prints its outcome; fails unless the outcome is the one expected.
# Leaves the position of its last event in $AFTER (for read-your-writes).
AFTER=
send() {
  local expect=$1 token=$2 type=$3 payload=$4 result
  result=$("$BIN/keel" command send "${KAFKA[@]}" --tenant acme --stream "$DESK" --token "$token" \
    --type "$type" --payload "$payload" --wait --timeout 60)
  python3 - "$expect" "$type" "$result" <<'PY'
import json, sys
expect, kind, result = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
outcome = result["outcome"]
line = f"   {kind}: {outcome['status']}"
if outcome["status"] == "rejected":
    line += f" ({outcome['reason']}: {outcome['message']})"
else:
    line += f", events at versions {outcome['versions']}"
print(line)
if outcome["status"] != expect:
    sys.exit(f"expected {expect}")
PY
  # A refusal appends nothing: the last position stays the one to read after.
  AFTER=$(python3 -c 'import json,sys; p=json.loads(sys.argv[1])["outcome"].get("position"); print("%s:%s" % (p["partition"], p["offset"]) if p else sys.argv[2])' "$result" "${AFTER:-}")
}

# GETs a route of the approvals query API, as hana, after the last command's events.
query() {
  curl -fsS -H "Authorization: Bearer $HANA" "$API$1?after=$AFTER&wait_ms=10000"
}

proposal() { # action cents risk beneficiary name
  printf '{"action_id":"%s","kind":"payout","amount_cents":%s,"risk":"%s","beneficiary_id":"%s","beneficiary_name":"%s","beneficiary_account":"NL91 ABNA 0417 1643 %s","summary":"refund of an overcharge"}' \
    "$1" "$2" "$3" "$4" "$5" "${1#a-}"
}

echo "The approvals app: an AI agent (agent:payout-bot, for human:hana) proposes payouts on desk"
echo "$DESK; hana's policy lets payouts up to 500.00 of low risk execute at once, the rest waits for her."

say "hana sets the desk's policy"
send accepted "$HANA" SetApprovalPolicy '{"approver_id":"hana","auto_execute_max_cents":50000,"auto_execute_max_risk":"LOW"}'

say "the agent proposes 200.00 to Grace (low risk): executed at once"
send accepted "$BOT" ProposeAction "$(proposal a-1 20000 LOW "$GRACE" "Grace Hopper")"
say "the agent proposes 9,000.00 to Alan (medium risk): waits for hana"
send accepted "$BOT" ProposeAction "$(proposal a-2 900000 MEDIUM "$ALAN" "Alan Turing")"
say "what waits for hana (GET /approvers/hana/pending)"
query /approvers/hana/pending | python3 -c '
import json, sys
body = json.load(sys.stdin)
for row in body["data"]:
    print("   %s/%s: %s %.2f (%s)" % (row["desk_id"], row["action_id"], row["kind"], row["amount_cents"] / 100, row["risk"]))
print("   (stale: %s, generation %s)" % (body["stale"], body["generation"]))'

say "a malformed payload is refused before it is sent, naming the field"
if RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$BIN/keel" command send "${KAFKA[@]}" --tenant acme --stream "$DESK" --token "$BOT" \
  --type ProposeAction --payload "$(proposal a-9 '"lots"' LOW "$GRACE" "Grace Hopper")" 2>"$SCRATCH/bad.txt"; then
  echo "   a malformed payload was sent" >&2
  exit 1
fi
sed "s/^/   /" "$SCRATCH/bad.txt"

say "hana approves a-2; the agent proposes a-3 (high risk), hana denies it"
send accepted "$HANA" ApproveAction '{"action_id":"a-2","reason":"invoice checked"}'
send accepted "$BOT" ProposeAction "$(proposal a-3 70000 HIGH "$ALAN" "Alan Turing")"
send accepted "$HANA" DenyAction '{"action_id":"a-3","reason":"no ticket"}'
say "hana cannot approve a-3 any more"
send rejected "$HANA" ApproveAction '{"action_id":"a-3","reason":"changed my mind"}'

EXECUTED_BY=$(query "/desks/$DESK/actions/a-1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"]["executed_by"])')
say "a-1 was paid twice elsewhere: hana reverts it, naming its execution ($EXECUTED_BY)"
send accepted "$HANA" RevertAction "{\"action_id\":\"a-1\",\"compensates\":\"$EXECUTED_BY\",\"reason\":\"paid twice\"}"

show_desk() {
  query "/desks/$DESK/actions" | python3 -c '
import json, sys
def personal(field):
    return "<erased>" if field and field["erased"] else (field or {}).get("value")
for row in json.load(sys.stdin)["data"]:
    print("   %s: %-8s %9.2f to %s (%s)" % (row["action_id"], row["outcome"], row["amount_cents"] / 100,
          personal(row["beneficiary_name"]), personal(row["beneficiary_account"])))'
}
say "the desk (GET /desks/$DESK/actions), beneficiaries' fields opened with their keys"
show_desk
say "what the agent did (GET /agents/payout-bot/actions)"
query /agents/payout-bot/actions | python3 -c '
import json, sys
for row in json.load(sys.stdin)["data"]:
    if row["desk_id"] == sys.argv[1]:
        print("   %s: %s" % (row["action_id"], row["outcome"]))' "$DESK"
say "today's totals (GET /totals/$(date -u +%F))"
query "/totals/$(date -u +%F)" | python3 -c '
import json, sys
for kind in json.load(sys.stdin)["data"]["kinds"]:
    print("   %s: %d executed (%.2f, %d without approval), %d reverted (%.2f)" % (kind["kind"],
          kind["executed_count"], kind["executed_cents"] / 100, kind["automatic_count"],
          kind["reverted_count"], kind["reverted_cents"] / 100))'

say "Alan asks to be forgotten: keel admin erase --subject $ALAN (the approvals deployment's admin service)"
"$BIN/keel" admin erase "${KAFKA[@]}" --admin-topic approvals.admin --tenant acme --subject "$ALAN" \
  --reason "ticket DSR-7" --token "$DPO" --wait --timeout 60 >"$SCRATCH/erase.json"
AFTER=$(python3 -c 'import json,sys; p=json.load(open(sys.argv[1]))["outcome"]["position"]; print("%s:%s" % (p["partition"], p["offset"]))' "$SCRATCH/erase.json")
echo "   erased; certificate at GET /erasures/$ALAN"
show_desk
say "the desk's chain still verifies (GET /streams/$DESK/verify)"
query "/streams/$DESK/verify" | python3 -c '
import json, sys
data = json.load(sys.stdin)["data"]
print("   %s through version %s" % (data["verdict"], data["version"]))
sys.exit(0 if data["verdict"] == "intact" else 1)'
