//! The read side end to end on the real servers: commands through the handler, the
//! projector, and the query API. What a client sees (state, freshness, read-your-writes,
//! erased markers, chain verification, history as of a version), what another tenant's
//! token sees (nothing, and not whether it exists), and what the CQL store's files hold
//! (ciphertext, never the personal data).

use std::time::Duration;

use keel_cli::demo::personal;
use keel_customer_support::SupportCommand;
use keel_integration_tests::forensics::{cassandra_dir, files_containing, files_under, flush_cql};
use keel_integration_tests::handler_harness::{HandlerHarness, TestCommand, agent_command, agent_credential};
use keel_integration_tests::read_side::{get, start_read_side};
use keel_results::LogPosition;
use keel_testkit::TestResult;
use serde_json::Value;
use uuid::Uuid;

/// Sends `command` and returns where its last event sits.
async fn accepted(harness: &HandlerHarness, command: &TestCommand) -> TestResult<LogPosition> {
    harness.send(command).await?;
    let result = harness.result_of(command.command_id).await?;
    result
        .accepted_at()
        .ok_or_else(|| anyhow::anyhow!("{} was not accepted: {:?}", command.command_type, result.outcome))
}

fn after(position: LogPosition) -> String {
    format!("after={}:{}&wait_ms=20000", position.partition, position.offset)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_command_did_is_visible_with_its_freshness_history_and_proof() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    let base = start_read_side(&harness).await?;
    let bearer = agent_credential("acme");
    let customer = format!("c-{}", Uuid::new_v4().simple());
    let friend = format!("f-{}", Uuid::new_v4().simple());

    let mut last = accepted(
        &harness,
        &agent_command(
            "acme",
            &customer,
            SupportCommand::RegisterCustomer {
                customer_id: customer.clone(),
                name: "Ada Lovelace".into(),
                email: "ada@example.com".into(),
                address: "12 St James's Square".into(),
            },
        ),
    )
    .await?;
    // Read-your-writes: with the command's position the new state is there at once.
    let (status, body) = get(
        &base,
        &format!("/v1/tenants/acme/customers/{customer}?{}", after(last)),
        &bearer,
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["stale"], false);
    assert_eq!(personal(&body["data"], "name"), "Ada Lovelace");
    assert_eq!(personal(&body["data"], "email"), "ada@example.com");
    assert_eq!(body["data"]["position"]["version"], 1);
    let applied = &body["freshness"]["partitions"][last.partition.to_string()];
    assert!(
        applied["applied_offset"].as_i64() > Some(last.offset) && applied["event_time_micros"].is_i64(),
        "the freshness says the command's event is applied, and when it happened: {}",
        body["freshness"]
    );

    for payload in [
        SupportCommand::StartSubscription {
            subscription_id: "s-1".into(),
            plan: "pro".into(),
        },
        SupportCommand::IssueRefund {
            refund_id: "r-1".into(),
            amount_cents: 500,
            reason: "late delivery".into(),
        },
        SupportCommand::IssueRefund {
            refund_id: "r-2".into(),
            amount_cents: 700,
            reason: "damaged".into(),
        },
        SupportCommand::SendEmail {
            email_id: "e-1".into(),
            to: "ada@example.com".into(),
            subject: "Your refund".into(),
            body: "Dear Ada, we refunded you.".into(),
        },
        SupportCommand::ReferFriend {
            friend_id: friend.clone(),
            friend_name: "Charles Babbage".into(),
            friend_email: "charles@example.com".into(),
            message: "You will like it, Charles".into(),
        },
    ] {
        last = accepted(&harness, &agent_command("acme", &customer, payload)).await?;
    }

    let path = |route: &str| format!("/v1/tenants/acme/customers/{customer}{route}?{}", after(last));
    let (status, body) = get(&base, &path("/refunds"), &bearer).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["data"]["issued_cents"], &body["data"]["net_cents"]),
        (&Value::from(1200), &Value::from(1200)),
        "refunds with their running total: {body}"
    );
    let (status, body) = get(&base, &path("/subscriptions"), &bearer).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"][0]["plan"], "pro");
    assert_eq!(body["data"][0]["status"], "active");
    let (status, body) = get(&base, &path("/emails"), &bearer).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(personal(&body["data"][0], "body"), "Dear Ada, we refunded you.");
    let (status, body) = get(&base, &path("/referrals"), &bearer).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(personal(&body["data"][0], "friend_name"), "Charles Babbage");
    assert_eq!(personal(&body["data"][0], "message"), "You will like it, Charles");

    // History: the state as of version 2 has the subscription and none of the refunds.
    let state = |query: &str| format!("/v1/tenants/acme/streams/{customer}/state?{query}");
    let (status, body) = get(&base, &state("version=2"), &bearer).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["version"], 2);
    assert_eq!(body["data"]["state"]["refunded_cents"], 0);
    assert!(body["data"]["state"]["subscriptions"]["s-1"].is_object(), "{body}");
    let at = body["data"]["recorded_at_micros"].as_i64().unwrap_or(0);
    let (status, body) = get(&base, &state(&format!("at_micros={at}")), &bearer).await?;
    assert_eq!((status, &body["data"]["version"]), (200, &Value::from(2)), "{body}");
    let (_, body) = get(&base, &state("version=6"), &bearer).await?;
    assert_eq!(body["data"]["state"]["refunded_cents"], 1200);

    // Proof: the chain recomputes intact up to the last version.
    let (status, body) = get(&base, &format!("/v1/tenants/acme/streams/{customer}/verify"), &bearer).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["data"]["verdict"], &body["data"]["version"]),
        (&Value::from("intact"), &Value::from(6))
    );

    // A position the projection has not reached: 503 with the freshness, or the stale
    // answer marked stale, as the client chooses.
    let ahead = format!(
        "/v1/tenants/acme/customers/{customer}?after={}:{}&wait_ms=300",
        last.partition,
        last.offset + 1_000_000
    );
    let (status, body) = get(&base, &ahead, &bearer).await?;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("not_fresh")),
        "{body}"
    );
    assert!(body["freshness"].is_object());
    let (status, body) = get(&base, &format!("{ahead}&on_timeout=stale"), &bearer).await?;
    assert_eq!((status, &body["stale"]), (200, &Value::from(true)), "{body}");

    // Another tenant's token: the same answer whether or not the customer exists.
    let other = agent_credential("globex");
    let existing = get(&base, &format!("/v1/tenants/acme/customers/{customer}"), &other).await?;
    let missing = get(&base, "/v1/tenants/acme/customers/c-nobody", &other).await?;
    assert_eq!(existing.0, 401);
    assert_eq!(existing, missing, "nothing tells whether the id exists");
    let (status, _) = get(&base, &format!("/v1/tenants/globex/customers/{customer}"), &other).await?;
    assert_eq!(status, 404, "globex has no such customer, and acme's does not leak");
    // Bad ids and parameters get machine-readable codes.
    let (status, body) = get(&base, &state("version=two"), &bearer).await?;
    assert_eq!(status, 400, "{body}");
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_is_nowhere_in_the_cql_stores_files() -> TestResult {
    let mut harness = HandlerHarness::start(1).await?;
    let base = start_read_side(&harness).await?;
    let canary = format!("Canary-{}", Uuid::new_v4().simple());
    // Not personal, stored in plaintext: proves the scan sees what is written.
    let control = format!("plan-{}", Uuid::new_v4().simple());
    let customer = format!("c-{}", Uuid::new_v4().simple());
    accepted(
        &harness,
        &agent_command(
            "acme",
            &customer,
            SupportCommand::RegisterCustomer {
                customer_id: customer.clone(),
                name: format!("{canary} Name"),
                email: format!("{canary}@example.com"),
                address: format!("1 {canary} Street"),
            },
        ),
    )
    .await?;
    let last = accepted(
        &harness,
        &agent_command(
            "acme",
            &customer,
            SupportCommand::StartSubscription {
                subscription_id: "s-1".into(),
                plan: control.clone(),
            },
        ),
    )
    .await?;
    let (status, body) = get(
        &base,
        &format!("/v1/tenants/acme/customers/{customer}/subscriptions?{}", after(last)),
        &agent_credential("acme"),
    )
    .await?;
    assert_eq!(status, 200, "{body}");
    let (_, body) = get(
        &base,
        &format!("/v1/tenants/acme/customers/{customer}"),
        &agent_credential("acme"),
    )
    .await?;
    assert_eq!(
        personal(&body["data"], "name"),
        format!("{canary} Name"),
        "the API opens it"
    );

    flush_cql(&harness.config.cql.keyspace)?;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let cassandra = cassandra_dir();
    let keyspace_files = files_under(&cassandra.join("data").join(&harness.config.cql.keyspace))?;
    assert!(!keyspace_files.is_empty(), "the flush wrote the keyspace's SSTables");
    let control_found = files_containing(&cassandra, control.as_bytes())?;
    assert!(!control_found.is_empty(), "the scan sees plaintext where it is stored");
    let canary_found = files_containing(&cassandra, canary.as_bytes())?;
    assert!(
        canary_found.is_empty(),
        "personal data in plaintext in the CQL store's files: {canary_found:?}"
    );
    harness.stop().await
}
