//! Faults on the real Kafka and CQL store: a command whose handling panics gets a rejected
//! result, and the handler goes on with the next commands of the same partition; a store or
//! key store out of reach pauses the batch and retries it, refusing no command.

use keel_domain::{Aggregate, DomainCommand, DomainError, DomainEvent, Recorded};
use keel_handler::Codec;
use keel_handler::codec::{
    AppendContext, ChainHead, CodecError, DecodedCommand, ReplayedEvent, SealError, SealedEvent, Undecodable,
};
use keel_handler::decide::IncomingCommand;
use keel_integration_tests::handler_harness::{HandlerHarness, agent, agent_credential, gauge, supervisor};
use keel_kafka::partition::stream_key;
use keel_results::{CommandResult, Outcome};
use keel_testkit::TestResult;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicU32, Ordering};
use uuid::Uuid;

/// A domain whose `handle` panics when a command says "boom", whose `apply` panics on an
/// event saying "apply-boom", and on "later" once [`FOLD_LATER_PANICS`] is set (as a new
/// release that cannot fold an old event).
struct Fragile;

/// Makes Fragile's `apply` panic on the event "later".
static FOLD_LATER_PANICS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Say(String);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Said(String);

impl DomainCommand for Say {
    fn command_type(&self) -> &'static str {
        // The harness policy lets agents send emails; this domain borrows that command type.
        "SendEmail"
    }
}

impl DomainEvent for Said {
    fn event_type(&self) -> &'static str {
        "Said"
    }
}

impl Aggregate for Fragile {
    const NAME: &'static str = "fragile";
    type State = u64;
    type Command = Say;
    type Event = Said;

    fn handle(_: &u64, command: &Say) -> Result<Vec<Said>, DomainError> {
        assert!(command.0 != "boom", "the domain blew up on purpose");
        Ok(vec![Said(command.0.clone())])
    }

    fn apply(count: u64, said: &Said, _: &Recorded) -> u64 {
        assert!(said.0 != "apply-boom", "the domain's apply blew up on purpose");
        assert!(
            !(said.0 == "later" && FOLD_LATER_PANICS.load(Ordering::SeqCst)),
            "a later release cannot fold this event"
        );
        count + 1
    }
}

/// Commands and events as JSON: `{"command_id", "tenant", "stream", "credential", "say"}`.
#[derive(Serialize, Deserialize)]
struct Wire {
    command_id: Uuid,
    tenant: String,
    stream: String,
    credential: String,
    say: String,
}

#[derive(Serialize, Deserialize)]
struct StoredEvent {
    event_id: Uuid,
    tenant: String,
    stream: String,
    version: u64,
    said: String,
}

/// The Fragile domain's JSON codec; its first `seal_failures` seals fail as if the key store
/// were out of reach.
#[derive(Default)]
struct FragileCodec {
    seal_failures: AtomicU32,
}

impl Codec<Fragile> for FragileCodec {
    fn decode_command(&self, bytes: &[u8]) -> Result<DecodedCommand<Say>, Undecodable> {
        let wire: Wire = serde_json::from_slice(bytes).map_err(|error| Undecodable::unreadable(error.to_string()))?;
        Ok(DecodedCommand {
            command_type: "SendEmail".into(),
            correlation_id: wire.command_id,
            causation_id: None,
            incoming: IncomingCommand {
                command_id: wire.command_id,
                tenant: wire.tenant,
                stream: wire.stream,
                expected_version: None,
                actor: agent(),
                on_behalf_of: vec![supervisor()],
                credential: wire.credential,
                command: Say(wire.say),
            },
        })
    }

    async fn seal_events(
        &self,
        context: &AppendContext<'_>,
        head: &ChainHead,
        events: &[Said],
    ) -> Result<Vec<SealedEvent>, SealError> {
        if self
            .seal_failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
            .is_ok()
        {
            return Err(SealError::Unavailable("key store unreachable (test)".into()));
        }
        events
            .iter()
            .enumerate()
            .map(|(index, said)| {
                let event = StoredEvent {
                    event_id: Uuid::new_v4(),
                    tenant: context.tenant.into(),
                    stream: context.stream.into(),
                    version: head.version + index as u64 + 1,
                    said: said.0.clone(),
                };
                let bytes = serde_json::to_vec(&event).map_err(|error| CodecError(error.to_string()))?;
                Ok(SealedEvent {
                    event_id: event.event_id,
                    version: event.version,
                    hash: Vec::new(),
                    bytes,
                })
            })
            .collect::<Result<_, CodecError>>()
            .map_err(SealError::from)
    }

    async fn open_event(&self, bytes: &[u8]) -> Result<Option<ReplayedEvent<Said>>, CodecError> {
        let event: StoredEvent = serde_json::from_slice(bytes).map_err(|error| CodecError(error.to_string()))?;
        Ok(Some(ReplayedEvent {
            tenant: event.tenant,
            stream: event.stream,
            version: event.version,
            hash: Vec::new(),
            event_id: event.event_id,
            event: Said(event.said),
        }))
    }

    fn encode_result(&self, result: &CommandResult) -> Result<Vec<u8>, CodecError> {
        serde_json::to_vec(result).map_err(|error| CodecError(error.to_string()))
    }

    fn decode_result(&self, bytes: &[u8]) -> Result<CommandResult, CodecError> {
        serde_json::from_slice(bytes).map_err(|error| CodecError(error.to_string()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_domain_code_rejects_that_command_and_the_handler_goes_on() -> TestResult {
    let mut harness = HandlerHarness::prepare(1).await?;
    harness.restart_with::<Fragile, _>(FragileCodec::default())?;
    let send = async |say: &str| -> TestResult<Uuid> {
        let wire = Wire {
            command_id: Uuid::new_v4(),
            tenant: "acme".into(),
            stream: "s-1".into(),
            credential: agent_credential("acme"),
            say: say.into(),
        };
        harness
            .send_raw(&stream_key("acme", "s-1"), &serde_json::to_vec(&wire)?)
            .await?;
        Ok(wire.command_id)
    };
    let before = send("hello").await?;
    let boom = send("boom").await?;
    let after = send("still here").await?;

    let outcome = async |id| -> TestResult<Outcome> { Ok(harness.result_of(id).await?.outcome) };
    assert!(matches!(outcome(before).await?, Outcome::Accepted { versions, .. } if versions == [1]));
    assert!(matches!(outcome(boom).await?, Outcome::Rejected { reason, .. } if reason == "internal_error"));
    assert!(matches!(outcome(after).await?, Outcome::Accepted { versions, .. } if versions == [2]));
    harness.stop().await
}

/// Sends `say` to `stream` as the agent; returns the command id.
async fn say(harness: &HandlerHarness, stream: &str, say: &str) -> TestResult<Uuid> {
    let wire = Wire {
        command_id: Uuid::new_v4(),
        tenant: "acme".into(),
        stream: stream.into(),
        credential: agent_credential("acme"),
        say: say.into(),
    };
    harness
        .send_raw(&stream_key("acme", stream), &serde_json::to_vec(&wire)?)
        .await?;
    Ok(wire.command_id)
}

fn accepted_at(outcome: &Outcome, version: u64) -> bool {
    matches!(outcome, Outcome::Accepted { versions, .. } if versions == &[version])
}

fn refused_for(outcome: &Outcome, why: &str) -> bool {
    matches!(outcome, Outcome::Rejected { reason, .. } if reason == why)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_in_the_domains_apply_refuses_that_command_and_the_handler_goes_on() -> TestResult {
    let mut harness = HandlerHarness::prepare(1).await?;
    harness.restart_with::<Fragile, _>(FragileCodec::default())?;
    let before = say(&harness, "s-1", "hello").await?;
    let boom = say(&harness, "s-1", "apply-boom").await?;
    let after = say(&harness, "s-1", "still here").await?;

    let outcome = async |id| -> TestResult<Outcome> { Ok(harness.result_of(id).await?.outcome) };
    assert!(accepted_at(&outcome(before).await?, 1));
    let refused = outcome(boom).await?;
    assert!(refused_for(&refused, "internal_error"), "{refused:?}");
    assert!(
        accepted_at(&outcome(after).await?, 2),
        "the stream goes on at version 2"
    );
    let letters = harness.dead_letters(1).await?;
    assert_eq!(
        letters.iter().map(|l| l.header("keel-command-id")).collect::<Vec<_>>(),
        [Some(boom.to_string())],
        "the command is dead-lettered"
    );
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_the_domain_cannot_fold_is_unavailable_while_the_partition_goes_on() -> TestResult {
    let mut harness = HandlerHarness::prepare(1).await?;
    harness.restart_with::<Fragile, _>(FragileCodec::default())?;
    let outcome =
        async |harness: &HandlerHarness, id| -> TestResult<Outcome> { Ok(harness.result_of(id).await?.outcome) };
    let old = say(&harness, "s-old", "later").await?;
    let other = say(&harness, "s-other", "hello").await?;
    assert!(accepted_at(&outcome(&harness, old).await?, 1));
    assert!(accepted_at(&outcome(&harness, other).await?, 1));
    harness.stop().await?;

    // A release that cannot fold "later" replays the partition from the log alone.
    FOLD_LATER_PANICS.store(true, Ordering::SeqCst);
    let session = harness.session().await?;
    for table in ["handler_streams", "handler_watermarks"] {
        session.query_unpaged(format!("TRUNCATE {table}"), &[]).await?;
    }
    harness.restart_with::<Fragile, _>(FragileCodec::default())?;
    let stuck = say(&harness, "s-old", "more").await?;
    let fine = say(&harness, "s-other", "more").await?;
    let refused = outcome(&harness, stuck).await?;
    assert!(refused_for(&refused, "stream_unavailable"), "{refused:?}");
    assert!(
        accepted_at(&outcome(&harness, fine).await?, 2),
        "the rest of the partition goes on"
    );
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_store_out_of_reach_while_sealing_retries_the_batch_and_refuses_no_command() -> TestResult {
    let mut harness = HandlerHarness::prepare(1).await?;
    harness.config.retry_backoff_max_ms = 200;
    harness.restart_with::<Fragile, _>(FragileCodec {
        seal_failures: AtomicU32::new(3),
    })?;
    let wire = Wire {
        command_id: Uuid::new_v4(),
        tenant: "acme".into(),
        stream: "s-1".into(),
        credential: agent_credential("acme"),
        say: "hello".into(),
    };
    harness
        .send_raw(&stream_key("acme", "s-1"), &serde_json::to_vec(&wire)?)
        .await?;

    let result = harness.result_of(wire.command_id).await?;
    assert!(
        matches!(result.outcome, Outcome::Accepted { ref versions, .. } if versions == &[1]),
        "three failed seals are retried, not answered with a refusal: {result:?}"
    );
    assert_eq!(harness.results(1).await?.len(), 1, "exactly one result");
    harness.stop().await
}

/// Decision state in memory whose first `failures` stream reads fail as if the store were down.
struct FlakyState {
    inner: keel_handler_state::InMemoryHandlerState,
    failures: std::sync::atomic::AtomicU32,
}

impl keel_handler_state::HandlerState for FlakyState {
    async fn stream(
        &self,
        tenant: &str,
        stream: &str,
    ) -> Result<Option<keel_handler_state::StreamRecord>, keel_handler_state::StateError> {
        use std::sync::atomic::Ordering;
        if self
            .failures
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| left.checked_sub(1))
            .is_ok()
        {
            return Err(keel_handler_state::StateError::Transient {
                action: "reading a stream",
                message: "store unavailable (test)".into(),
            });
        }
        self.inner.stream(tenant, stream).await
    }

    async fn result(
        &self,
        tenant: &str,
        command_id: Uuid,
    ) -> Result<Option<keel_handler_state::StoredResult>, keel_handler_state::StateError> {
        self.inner.result(tenant, command_id).await
    }

    async fn watermark(
        &self,
        consumer: &str,
        topic: &str,
        partition: i32,
    ) -> Result<Option<i64>, keel_handler_state::StateError> {
        self.inner.watermark(consumer, topic, partition).await
    }

    async fn apply(&self, batch: &keel_handler_state::StateBatch) -> Result<(), keel_handler_state::StateError> {
        self.inner.apply(batch).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_store_pauses_the_handler_visibly_and_no_command_is_skipped() -> TestResult {
    let mut harness = HandlerHarness::prepare(1).await?;
    harness.config.retry_pause_after = 3;
    harness.config.retry_backoff_max_ms = 300;
    let state = std::sync::Arc::new(FlakyState {
        inner: keel_handler_state::InMemoryHandlerState::new(),
        failures: std::sync::atomic::AtomicU32::new(5),
    });
    harness.restart_with_state(state)?;
    let command = keel_integration_tests::handler_harness::agent_command(
        "acme",
        "c-1",
        keel_integration_tests::handler_harness::register("c-1"),
    );
    harness.send(&command).await?;

    let mut saw_paused = false;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    while tokio::time::Instant::now() < deadline {
        if gauge("keel_handler_paused") == Some(1.0) {
            saw_paused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(
        saw_paused,
        "after 3 failed batches the handler must report itself paused"
    );

    let result = harness.result_of(command.command_id).await?;
    assert!(
        matches!(result.outcome, Outcome::Accepted { ref versions, .. } if versions == &[1]),
        "{result:?}"
    );
    assert_eq!(harness.results(1).await?.len(), 1, "exactly one result");
    assert_eq!(gauge("keel_handler_paused"), Some(0.0), "and it says it resumed");
    harness.stop().await
}

fn free_local_addr() -> TestResult<std::net::SocketAddr> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?.local_addr()?)
}

/// `/readyz` of the service at `addr`: ready or not, and what its checks say.
async fn readyz(addr: std::net::SocketAddr) -> Option<(bool, String)> {
    let response = reqwest::get(format!("http://{addr}/readyz")).await.ok()?;
    let ready = response.status().is_success();
    Some((ready, response.text().await.ok()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_is_not_ready_before_the_group_gives_it_its_partitions() -> TestResult {
    let mut harness = HandlerHarness::prepare(2).await?;
    harness.config.ops_addr = free_local_addr()?;
    let ops = harness.config.ops_addr;
    harness.restart()?;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut waiting_seen = false;
    let body = loop {
        if let Some((ready, body)) = readyz(ops).await {
            if body.contains("waiting for an assignment") {
                waiting_seen = true;
                assert!(!ready, "ready while waiting for an assignment: {body}");
            }
            if ready {
                break body;
            }
        }
        anyhow::ensure!(tokio::time::Instant::now() < deadline, "never ready");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert!(body.contains("assigned"), "ready once assigned: {body}");
    assert!(
        waiting_seen,
        "the wait for an assignment was observed (else this test proves nothing)"
    );
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_is_ready_again_once_its_store_answers_again() -> TestResult {
    let mut harness = HandlerHarness::prepare(1).await?;
    harness.config.retry_backoff_max_ms = 300;
    harness.config.ops_addr = free_local_addr()?;
    let ops = harness.config.ops_addr;
    let state = std::sync::Arc::new(FlakyState {
        inner: keel_handler_state::InMemoryHandlerState::new(),
        failures: std::sync::atomic::AtomicU32::new(3),
    });
    harness.restart_with_state(state)?;
    let command = keel_integration_tests::handler_harness::agent_command(
        "acme",
        "c-1",
        keel_integration_tests::handler_harness::register("c-1"),
    );
    harness.send(&command).await?;
    let mut said_unavailable = false;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    while !said_unavailable && tokio::time::Instant::now() < deadline {
        said_unavailable = readyz(ops)
            .await
            .is_some_and(|(ready, body)| !ready && body.contains("store unavailable"));
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        said_unavailable,
        "while its store failed, the handler said it was not ready"
    );
    let result = harness.result_of(command.command_id).await?;
    assert!(accepted_at(&result.outcome, 1), "{result:?}");
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (ready, body) = readyz(ops).await.unwrap_or_default();
        if ready {
            break;
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the store answers again and commands are accepted, yet the handler says: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    harness.stop().await
}
