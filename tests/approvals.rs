//! The second worked domain end to end, on the real Kafka and Cassandra, through Keel's
//! runtimes and nothing else of the first domain: agent actions under human approval.
//!
//! Commands are sent as JSON by `keel command send`'s code path (encoded by their Avro
//! schemas from `schemas/`), by an agent and by a human approver; the approval desk's
//! handler (`keel_handler::run_domain::<ApprovalDesk>`), projector and query API serve them;
//! the admin service erases a beneficiary; their fields then read as erased, the rest intact,
//! and the chain verifies.

use std::future::pending;
use std::path::{Path, PathBuf};

use keel_approvals::ApprovalDesk;
use keel_approvals_projections::ApprovalProjections;
use keel_approvals_query::ApprovalReads;
use keel_auth::{Actor, ActorKind};
use keel_cli::admin::erase;
use keel_cli::command::{CommandPathArgs, SendArgs, send};
use keel_integration_tests::handler_harness::{HandlerHarness, erase_args, scoped_credential};
use keel_integration_tests::read_side::{get, start_read_side_of};
use keel_results::{CommandResult, LogPosition, Outcome};
use keel_testkit::TestResult;
use serde_json::{Value, json};
use uuid::Uuid;

fn schemas() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas")
}

fn agent() -> Actor {
    Actor {
        kind: ActorKind::Agent,
        id: "payout-bot".into(),
    }
}

fn approver() -> Actor {
    Actor {
        kind: ActorKind::Human,
        id: "hana".into(),
    }
}

/// `keel command send --wait` of `command_type` with `payload` on `stream`, as `token`.
fn send_args(harness: &HandlerHarness, token: &str, stream: &str, command_type: &str, payload: Value) -> SendArgs {
    SendArgs {
        kafka: CommandPathArgs {
            cluster: keel_kafka::KafkaArgs::new(harness.config.kafka.brokers.clone()),
            commands_topic: harness.config.commands_topic.clone(),
            results_topic: harness.config.results_topic.clone(),
        },
        tenant: "acme".into(),
        stream: stream.into(),
        command_type: command_type.into(),
        namespace: None,
        payload: payload.to_string(),
        schemas: schemas(),
        token: token.into(),
        expected_version: None,
        command_id: None,
        wait: true,
        timeout: 60,
    }
}

async fn result_of(args: &SendArgs) -> TestResult<CommandResult> {
    let (_, result) = send(args).await?;
    result.ok_or_else(|| anyhow::anyhow!("send --wait gives a result"))
}

/// Sends the command and returns where its last event sits.
async fn accepted(args: &SendArgs) -> TestResult<LogPosition> {
    let result = result_of(args).await?;
    result
        .accepted_at()
        .ok_or_else(|| anyhow::anyhow!("{} was not accepted: {:?}", args.command_type, result.outcome))
}

fn after(position: LogPosition) -> String {
    format!("after={}:{}&wait_ms=20000", position.partition, position.offset)
}

fn proposal(action: &str, cents: i64, risk: &str, beneficiary: &str, name: &str) -> Value {
    json!({
        "action_id": action,
        "kind": "payout",
        "amount_cents": cents,
        "risk": risk,
        "beneficiary_id": beneficiary,
        "beneficiary_name": name,
        "beneficiary_account": format!("NL91 ABNA 0417 {beneficiary}"),
        "summary": format!("refund of an overcharge, ticket {action}"),
    })
}

/// The value of a personal field as answered, or "erased".
fn personal(field: &Value) -> String {
    if field["erased"] == true {
        return "erased".into();
    }
    field["value"].as_str().unwrap_or("?").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_under_approval_run_end_to_end_and_a_beneficiary_is_erased() -> TestResult {
    let harness = HandlerHarness::prepare(2).await?;
    tokio::spawn(keel_handler::run_domain::<ApprovalDesk>(
        harness.config.clone(),
        pending::<()>(),
    ));
    let base = start_read_side_of::<ApprovalProjections, ApprovalReads>(
        &harness,
        harness.projector_config(&harness.config.cql.keyspace),
    )
    .await?;
    let directory = tempfile::tempdir()?;
    let (key_file, _) = keel_cli::dev::certificate_key(directory.path())?;
    let admin = harness.admin_config(key_file);
    let admin_topic = admin.admin_topic.clone();
    tokio::spawn(keel_admin::run(admin, pending::<()>()));

    let desk = format!("payouts-{}", Uuid::new_v4().simple());
    let (grace, alan) = (
        format!("b-{}", Uuid::new_v4().simple()),
        format!("b-{}", Uuid::new_v4().simple()),
    );
    let human = scoped_credential("acme", &approver(), &[], "approvals:approver");
    let bot = scoped_credential("acme", &agent(), &[approver()], "approvals:agent");

    // A proposal before the desk has a policy is refused, with the domain's reason.
    let refused = result_of(&send_args(
        &harness,
        &bot,
        &desk,
        "ProposeAction",
        proposal("a-0", 100, "LOW", &grace, "Grace Hopper"),
    ))
    .await?;
    assert!(
        matches!(&refused.outcome, Outcome::Rejected { reason, .. } if reason == "policy_not_set"),
        "{refused:?}"
    );
    // A command of another domain sent here is refused: no domain of this deployment takes
    // it.
    let stray = json!({"customer_id": "c-1", "name": "Ada", "email": "ada@example.com", "address": "x"});
    let refused = result_of(&send_args(&harness, &human, &desk, "RegisterCustomer", stray)).await?;
    assert!(
        matches!(&refused.outcome, Outcome::Rejected { reason, .. } if reason == "unknown_command"),
        "{refused:?}"
    );
    // The approver sets the desk's policy: up to 500.00, low risk, executes alone.
    let policy = json!({"approver_id": "hana", "auto_execute_max_cents": 50_000, "auto_execute_max_risk": "LOW"});
    accepted(&send_args(&harness, &human, &desk, "SetApprovalPolicy", policy)).await?;

    // Within the policy: executed at once. Beyond it: waits for hana.
    accepted(&send_args(
        &harness,
        &bot,
        &desk,
        "ProposeAction",
        proposal("a-1", 20_000, "LOW", &grace, "Grace Hopper"),
    ))
    .await?;
    let waiting = accepted(&send_args(
        &harness,
        &bot,
        &desk,
        "ProposeAction",
        proposal("a-2", 900_000, "MEDIUM", &alan, "Alan Turing"),
    ))
    .await?;
    let (status, body) = get(
        &base,
        &format!("/v1/tenants/acme/approvers/hana/pending?{}", after(waiting)),
        &human,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let pending_ids: Vec<&str> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["desk_id"] == desk.as_str())
        .filter_map(|row| row["action_id"].as_str())
        .collect();
    assert_eq!(pending_ids, ["a-2"], "{body}");
    assert_eq!(body["stale"], false, "{body}");
    assert!(body["freshness"]["partitions"].is_object(), "{body}");

    // The approver approves a-2 and denies a-3.
    let approved = accepted(&send_args(
        &harness,
        &human,
        &desk,
        "ApproveAction",
        json!({"action_id": "a-2", "reason": "checked the invoice"}),
    ))
    .await?;
    accepted(&send_args(
        &harness,
        &bot,
        &desk,
        "ProposeAction",
        proposal("a-3", 70_000, "HIGH", &alan, "Alan Turing"),
    ))
    .await?;
    let denied = accepted(&send_args(
        &harness,
        &human,
        &desk,
        "DenyAction",
        json!({"action_id": "a-3", "reason": "no ticket"}),
    ))
    .await?;
    let (_, body) = get(
        &base,
        &format!("/v1/tenants/acme/approvers/hana/pending?{}", after(denied)),
        &human,
    )
    .await?;
    assert!(
        body["data"]
            .as_array()
            .is_some_and(|rows| rows.iter().all(|row| row["desk_id"] != desk.as_str())),
        "nothing of this desk waits once decided: {body}"
    );

    // Undo is a compensation naming the execution it undoes.
    let (_, body) = get(
        &base,
        &format!("/v1/tenants/acme/desks/{desk}/actions/a-1?{}", after(approved)),
        &human,
    )
    .await?;
    let executed_by = body["data"]["executed_by"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("a-1 executed: {body}"))?
        .to_owned();
    let reverted = accepted(&send_args(
        &harness,
        &human,
        &desk,
        "RevertAction",
        json!({"action_id": "a-1", "compensates": executed_by, "reason": "paid twice"}),
    ))
    .await?;

    // Actions per agent, with their outcome.
    let (status, body) = get(
        &base,
        &format!("/v1/tenants/acme/agents/payout-bot/actions?{}", after(reverted)),
        &human,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let mut outcomes: Vec<(String, String)> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|row| row["desk_id"] == desk.as_str())
        .map(|row| (row["action_id"].to_string(), row["outcome"].to_string()))
        .collect();
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("\"a-1\"".into(), "\"reverted\"".into()),
            ("\"a-2\"".into(), "\"executed\"".into()),
            ("\"a-3\"".into(), "\"denied\"".into()),
        ],
        "{body}"
    );

    // The desk's actions, the beneficiaries' fields opened.
    let (status, body) = get(
        &base,
        &format!("/v1/tenants/acme/desks/{desk}/actions?{}", after(reverted)),
        &human,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let names = |body: &Value| -> Vec<(String, String, String)> {
        body["data"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|row| {
                (
                    row["action_id"].as_str().unwrap_or("?").to_owned(),
                    personal(&row["beneficiary_name"]),
                    personal(&row["beneficiary_account"]),
                )
            })
            .collect()
    };
    let account = |b: &str| format!("NL91 ABNA 0417 {b}");
    assert_eq!(
        names(&body),
        [
            ("a-1".into(), "Grace Hopper".into(), account(&grace)),
            ("a-2".into(), "Alan Turing".into(), account(&alan)),
            ("a-3".into(), "Alan Turing".into(), account(&alan)),
        ],
        "{body}"
    );

    // A payload that does not fit its schema is refused before anything is sent, naming
    // the field.
    let mut bad = proposal("a-4", 1, "LOW", &grace, "Grace Hopper");
    bad["amount_cents"] = json!("lots");
    let error = send(&send_args(&harness, &bot, &desk, "ProposeAction", bad))
        .await
        .expect_err("a long is not a word");
    assert!(format!("{error:#}").contains("amount_cents"), "{error:#}");

    // Erase Alan: his fields read as erased, Grace's stay, the chain verifies.
    let result = erase(&erase_args(&harness, &admin_topic, "acme", &alan))
        .await?
        .1
        .ok_or_else(|| anyhow::anyhow!("erase --wait gives a result"))?;
    let erased_at = result
        .accepted_at()
        .ok_or_else(|| anyhow::anyhow!("the erasure was not accepted: {result:?}"))?;
    let (_, body) = get(
        &base,
        &format!("/v1/tenants/acme/desks/{desk}/actions?{}", after(erased_at)),
        &human,
    )
    .await?;
    assert_eq!(
        names(&body),
        [
            ("a-1".into(), "Grace Hopper".into(), account(&grace)),
            ("a-2".into(), "erased".into(), "erased".into()),
            ("a-3".into(), "erased".into(), "erased".into()),
        ],
        "{body}"
    );
    let amounts: Vec<i64> = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row["amount_cents"].as_i64())
        .collect();
    assert_eq!(amounts, [20_000, 900_000, 70_000], "the rest is intact: {body}");

    let (status, body) = get(&base, &format!("/v1/tenants/acme/streams/{desk}/verify"), &human).await?;
    assert_eq!(
        (status, body["data"]["verdict"].as_str()),
        (200, Some("intact")),
        "{body}"
    );

    // The stream routes of the runtime work for this aggregate too: its audit trail names
    // the agent and on whose behalf it acted; its state as of a version is the desk's.
    let (status, body) = get(&base, &format!("/v1/tenants/acme/streams/{desk}/audit"), &human).await?;
    assert_eq!(status, 200, "{body}");
    let proposed = body["data"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|entry| entry["event_type"] == "ActionProposed")
        .ok_or_else(|| anyhow::anyhow!("no ActionProposed in the trail: {body}"))?;
    assert_eq!(proposed["actor"]["id"], "payout-bot", "{proposed}");
    assert_eq!(proposed["on_behalf_of"][0]["id"], "hana", "{proposed}");
    let (status, body) = get(
        &base,
        &format!("/v1/tenants/acme/streams/{desk}/state?version=1"),
        &human,
    )
    .await?;
    assert_eq!((status, body["data"]["version"].as_u64()), (200, Some(1)), "{body}");
    assert!(
        body.to_string().contains("hana") && !body.to_string().contains("Alan"),
        "the policy, and no personal data: {body}"
    );
    Ok(())
}

/// `keel command send` speaks the customer-support domain from JSON too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_support_command_is_sent_from_json() -> TestResult {
    let harness = HandlerHarness::start(1).await?;
    let customer = format!("c-{}", Uuid::new_v4().simple());
    let supervisor = keel_integration_tests::handler_harness::supervisor_credential("acme");
    let register = json!({
        "customer_id": customer,
        "name": "Ada Lovelace",
        "email": "ada@example.com",
        "address": "12 St James's Square, London",
    });
    accepted(&send_args(
        &harness,
        &supervisor,
        &customer,
        "RegisterCustomer",
        register,
    ))
    .await?;
    let mut refund = json!({"refund_id": "r-1", "amount_cents": 900, "reason": "late"});
    let _ = refund.as_object_mut().map(|fields| fields.remove("reason"));
    let error = send(&send_args(&harness, &supervisor, &customer, "IssueRefund", refund))
        .await
        .expect_err("a refund has a reason");
    assert!(format!("{error:#}").contains("reason"), "{error:#}");
    Ok(())
}

/// The guide's app (`docs/your-domain.md`, `domains/badges`) runs on the real servers: a
/// badge issued from JSON, read back with read-your-writes, returned (a compensation), its
/// visitor erased: the name reads as erased, the chain verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_guides_badges_app_issues_returns_and_erases() -> TestResult {
    let harness = HandlerHarness::prepare(1).await?;
    tokio::spawn(keel_handler::run_domain::<keel_badges::Badge>(
        harness.config.clone(),
        pending::<()>(),
    ));
    let base = start_read_side_of::<keel_badges::BadgeProjections, keel_badges::BadgeReads>(
        &harness,
        harness.projector_config(&harness.config.cql.keyspace),
    )
    .await?;
    let directory = tempfile::tempdir()?;
    let (key_file, _) = keel_cli::dev::certificate_key(directory.path())?;
    let admin = harness.admin_config(key_file);
    let admin_topic = admin.admin_topic.clone();
    tokio::spawn(keel_admin::run(admin, pending::<()>()));

    // The harness's tenants allow a supervisor any command; the guide's own rule is in
    // domains/badges/dev/policy-rule.json.
    let desk = keel_integration_tests::handler_harness::supervisor_credential("acme");
    let badge = format!("badge-{}", Uuid::new_v4().simple());
    let visitor = format!("v-{}", Uuid::new_v4().simple());
    let issue = json!({"badge_id": badge, "visitor_id": visitor, "visitor_name": "Katherine Johnson"});
    let issued = accepted(&send_args(&harness, &desk, &badge, "IssueBadge", issue)).await?;
    let (status, body) = get(
        &base,
        &format!("/v1/tenants/acme/badges/{badge}?{}", after(issued)),
        &desk,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(personal(&body["data"]["visitor_name"]), "Katherine Johnson", "{body}");

    let returned = accepted(&send_args(
        &harness,
        &desk,
        &badge,
        "ReturnBadge",
        json!({"reason": "visit over"}),
    ))
    .await?;
    let (_, body) = get(
        &base,
        &format!("/v1/tenants/acme/badges/{badge}?{}", after(returned)),
        &desk,
    )
    .await?;
    assert_eq!(body["data"]["status"], "returned", "{body}");

    let result = erase(&erase_args(&harness, &admin_topic, "acme", &visitor))
        .await?
        .1
        .ok_or_else(|| anyhow::anyhow!("erase --wait gives a result"))?;
    let erased_at = result
        .accepted_at()
        .ok_or_else(|| anyhow::anyhow!("the erasure was not accepted: {result:?}"))?;
    let (_, body) = get(
        &base,
        &format!("/v1/tenants/acme/badges/{badge}?{}", after(erased_at)),
        &desk,
    )
    .await?;
    assert_eq!(personal(&body["data"]["visitor_name"]), "erased", "{body}");
    assert_eq!(body["data"]["status"], "returned", "the rest is intact: {body}");
    let (_, body) = get(&base, &format!("/v1/tenants/acme/streams/{badge}/verify"), &desk).await?;
    assert_eq!(body["data"]["verdict"], "intact", "{body}");
    Ok(())
}
