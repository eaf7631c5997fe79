//! The handler's decision state across releases and time, on the real Kafka and CQL store: a
//! stored snapshot that no longer decodes is rebuilt from the log instead of stopping the
//! handler, and command results kept for deduplication expire after their retention.

use std::sync::Arc;
use std::time::Duration;

use keel_customer_support::SupportCommand;
use keel_handler_state::{HandlerState, StateBatch, StoredResult};
use keel_handler_state_cql::CqlHandlerState;
use keel_integration_tests::handler_harness::{HandlerHarness, agent_command, register};
use keel_results::Outcome;
use keel_testkit::{TestKeyspace, TestResult};
use uuid::Uuid;

async fn accepted_version(harness: &HandlerHarness, command_id: Uuid) -> TestResult<u64> {
    let result = harness.result_of(command_id).await?;
    match result.outcome {
        Outcome::Accepted { versions, .. } => versions
            .last()
            .copied()
            .ok_or_else(|| anyhow::anyhow!("accepted with no event")),
        Outcome::Rejected { reason, message, .. } => anyhow::bail!("refused: {reason}: {message}"),
    }
}

/// Overwrites the stored snapshot of a stream and its version, as a release whose state
/// type changed finds it.
async fn rewrite_snapshot(harness: &HandlerHarness, stream: &str, version: i32, snapshot: &[u8]) -> TestResult {
    let session = harness.session().await?;
    session
        .query_unpaged(
            "UPDATE handler_streams SET snapshot_version = ?, snapshot = ? WHERE tenant = ? AND stream = ?",
            (version, snapshot, "acme", stream),
        )
        .await?;
    Ok(())
}

/// A customer registered and refunded once (`r-1`, stream version 2), with the handler
/// stopped afterwards so its state is in the store.
async fn refunded_customer(harness: &mut HandlerHarness) -> TestResult<String> {
    let customer = format!("c-{}", Uuid::new_v4().simple());
    let registration = agent_command("acme", &customer, register(&customer));
    harness.send(&registration).await?;
    let refund = agent_command(
        "acme",
        &customer,
        SupportCommand::IssueRefund {
            refund_id: "r-1".into(),
            amount_cents: 500,
            reason: "late".into(),
        },
    );
    harness.send(&refund).await?;
    assert_eq!(accepted_version(harness, refund.command_id).await?, 2);
    harness.stop().await?;
    Ok(customer)
}

/// The refund `r-1` again (expected version 2), then `r-2`: only a state rebuilt from the
/// log refuses the first and puts the second at version 3.
async fn decided_from_the_log(harness: &HandlerHarness, customer: &str) -> TestResult {
    let mut again = agent_command(
        "acme",
        customer,
        SupportCommand::IssueRefund {
            refund_id: "r-1".into(),
            amount_cents: 500,
            reason: "twice".into(),
        },
    );
    again.expected_version = Some(2);
    harness.send(&again).await?;
    let result = harness.result_of(again.command_id).await?;
    match &result.outcome {
        Outcome::Rejected { reason, .. } => assert_eq!(reason, "refund_exists", "{result:?}"),
        Outcome::Accepted { .. } => anyhow::bail!("a refund id issued before was accepted again: {result:?}"),
    }
    let next = agent_command(
        "acme",
        customer,
        SupportCommand::IssueRefund {
            refund_id: "r-2".into(),
            amount_cents: 500,
            reason: "after".into(),
        },
    );
    harness.send(&next).await?;
    assert_eq!(accepted_version(harness, next.command_id).await?, 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_that_no_longer_decodes_is_rebuilt_from_the_log() -> TestResult {
    let mut harness = HandlerHarness::start(1).await?;
    let customer = refunded_customer(&mut harness).await?;
    rewrite_snapshot(&harness, &customer, 1, br#"{"shape":"of another release"}"#).await?;
    harness.restart()?;
    decided_from_the_log(&harness, &customer).await?;
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_of_an_older_release_is_rebuilt_even_when_it_decodes() -> TestResult {
    let mut harness = HandlerHarness::start(1).await?;
    let customer = refunded_customer(&mut harness).await?;
    // It decodes, but says what an older release knew: no refunds.
    let older = serde_json::to_vec(&keel_customer_support::CustomerState {
        customer_id: Some(customer.clone()),
        ..keel_customer_support::CustomerState::default()
    })?;
    rewrite_snapshot(&harness, &customer, 0, &older).await?;
    harness.restart()?;
    decided_from_the_log(&harness, &customer).await?;
    harness.stop().await
}

/// A state batch of one command result of tenant `acme`.
fn one_result(command_id: Uuid) -> StateBatch {
    StateBatch {
        results: vec![StoredResult {
            tenant: "acme".into(),
            command_id,
            result: b"{}".to_vec(),
            position: 1,
        }],
        ..StateBatch::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_command_result_carries_the_dedup_retention() -> TestResult {
    let keyspace = TestKeyspace::create("results_ttl").await?;
    let session = Arc::new(
        keel_cql::connect(&keel_testkit::cql_nodes(), keyspace.name())
            .await
            .map_err(anyhow::Error::msg)?,
    );
    let state = CqlHandlerState::new(Arc::clone(&session)).await?;
    let command_id = Uuid::new_v4();
    state.apply(&one_result(command_id)).await?;
    let (ttl,): (Option<i32>,) = session
        .query_unpaged(
            "SELECT TTL(result) FROM handler_results WHERE tenant = ? AND command_id = ?",
            ("acme", command_id),
        )
        .await?
        .into_rows_result()?
        .single_row()?;
    let ttl = ttl.ok_or_else(|| anyhow::anyhow!("a stored result never expires"))?;
    anyhow::ensure!(ttl > 0, "ttl {ttl}");
    drop(state);
    keyspace.drop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_command_result_is_gone_after_its_retention() -> TestResult {
    let keyspace = TestKeyspace::create("results_gone").await?;
    let session = Arc::new(
        keel_cql::connect(&keel_testkit::cql_nodes(), keyspace.name())
            .await
            .map_err(anyhow::Error::msg)?,
    );
    let state = CqlHandlerState::new(Arc::clone(&session))
        .await?
        .with_result_retention(Duration::from_secs(1));
    let command_id = Uuid::new_v4();
    state.apply(&one_result(command_id)).await?;
    anyhow::ensure!(
        state.result("acme", command_id).await?.is_some(),
        "the result was not stored"
    );
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    let after = state.result("acme", command_id).await?;
    anyhow::ensure!(after.is_none(), "the result outlived its retention: {after:?}");
    drop(state);
    keyspace.drop().await?;
    Ok(())
}

#[test]
fn a_dedup_window_shorter_than_the_commands_topic_retention_is_refused() -> TestResult {
    use clap::Parser;
    let config = |dedup: &str| {
        keel_handler::HandlerConfig::try_parse_from([
            "keel-handler",
            "--tenants",
            "tenants.json",
            "--plaintext-retention-hours",
            "24",
            "--dedup-retention-hours",
            dedup,
        ])
    };
    let short = config("12")?.check().err().unwrap_or_default();
    anyhow::ensure!(short.contains("dedup-retention-hours"), "{short:?}");
    anyhow::ensure!(config("24")?.check().is_ok());
    Ok(())
}
