//! Bounded decision memory on the real Kafka and CQL store: a handler that remembers only a
//! few streams and results per partition decides exactly as one that remembers everything.
//! Streams it forgot are read back from the store (their chains continue unbroken), and a
//! command id it forgot is still answered as a duplicate, with its original result.

use anyhow::Context;
use keel_integration_tests::handler_harness::{HandlerHarness, assert_exactly_once, gauge, workload};
use keel_results::Outcome;
use keel_testkit::TestResult;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_with_little_memory_decides_exactly_once_and_still_answers_old_duplicates() -> TestResult {
    let mut harness = HandlerHarness::prepare(1).await?;
    harness.config.memory_streams = 4;
    harness.config.memory_results = 8;
    harness.config.max_batch = 10;
    harness.restart()?;

    // 12 streams, round-robin: every batch needs streams the handler has forgotten.
    let commands = workload(12, 120);
    harness.send_many(&commands).await?;
    let results = harness.results(commands.len()).await?;
    assert_exactly_once(&harness, &commands, &results, 12).await?;
    let streams = gauge("keel_handler_memory_streams").context("no stream gauge")?;
    let remembered = gauge("keel_handler_memory_results").context("no result gauge")?;
    assert!(
        streams <= 4.0 && remembered <= 8.0,
        "memory within its bounds: {streams} streams, {remembered} results"
    );

    // The first command again, long forgotten by memory: its original result, nothing more.
    let first = &commands[0];
    let original = results
        .iter()
        .find(|result| result.command_id == first.command_id)
        .context("the first command has a result")?
        .clone();
    harness.send(first).await?;
    let again = harness.results(commands.len() + 1).await?;
    let answers: Vec<_> = again
        .iter()
        .filter(|result| result.command_id == first.command_id)
        .collect();
    assert_eq!(answers.len(), 2, "the duplicate is answered");
    assert_eq!(answers[1].outcome, original.outcome, "with the original result");
    assert!(matches!(original.outcome, Outcome::Accepted { .. }));
    let events = harness.events(commands.len()).await?;
    assert_eq!(events.len(), commands.len(), "and no event is appended for it");
    harness.stop().await
}
