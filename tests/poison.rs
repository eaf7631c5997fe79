//! Poison input on the real Kafka and CQL store: a record that a service cannot process is
//! dead-lettered with a reason and a bounded copy, answered when its command id can be read,
//! and the next valid command on the same partition is answered. One partition per topic,
//! so "the same partition" holds by construction.

use std::future::pending;
use std::time::Duration;

use keel_cli::admin::erase;
use keel_codec::{CommandHeader, EventHeader, Wire, to_wire_actor};
use keel_customer_support::{SupportCommand, SupportEvent};
use keel_erasure::{AdminCommand, System, erasure_stream};
use keel_integration_tests::handler_harness::{
    DeadLetter, HandlerHarness, TestCommand, admin_credential, agent_command, erase_args, now_secs, register,
};
use keel_integration_tests::read_side::{get, start_read_side};
use keel_kafka::partition::stream_key;
use keel_results::{CommandResult, Outcome};
use keel_testkit::TestResult;
use rdkafka::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use uuid::Uuid;

/// A JWT with `alg=none` and no signature: what an attacker without a key can send.
const ALG_NONE: &str = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJ4In0.";
/// Over CQL's 65,535-byte limit for a partition key.
const OVER_KEY_LIMIT: usize = 70_000;
/// Over the handler's command limit, under the broker's 1 MiB record limit.
const NEAR_BROKER_LIMIT: usize = 1_030_000;
/// A valid W3C traceparent.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

/// A producer that may send records up to the broker's limit (librdkafka's own default
/// stops at 1,000,000 bytes), as any client configured for large records could.
fn large_producer(brokers: &str) -> TestResult<FutureProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("message.max.bytes", "1048576")
        .create()?)
}

async fn produce(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    payload: &[u8],
    headers: OwnedHeaders,
) -> TestResult {
    let record = FutureRecord::to(topic).key(key).payload(payload).headers(headers);
    producer
        .send(record, Duration::from_secs(30))
        .await
        .map_err(|(error, _)| error)?;
    Ok(())
}

/// A result in a line, ids and messages cut short (a poison's ids can be 70 KB).
fn summary(result: &CommandResult) -> String {
    let text = format!("{result:?}");
    text.chars().take(300).collect()
}

fn rejection(result: &CommandResult) -> Option<&str> {
    match &result.outcome {
        Outcome::Rejected { reason, .. } => Some(reason),
        Outcome::Accepted { .. } => None,
    }
}

/// Sends a registration and asserts it is accepted: the partition is alive.
async fn next_command_is_answered(harness: &HandlerHarness) -> TestResult {
    let customer = format!("c-{}", Uuid::new_v4().simple());
    let valid = agent_command("acme", &customer, register(&customer));
    harness.send(&valid).await?;
    let answer = harness.result_of(valid.command_id).await?;
    anyhow::ensure!(
        rejection(&answer).is_none(),
        "the valid command after the poison was refused: {}",
        summary(&answer)
    );
    Ok(())
}

/// The one dead letter of the harness's DLQ, checked to be bounded and to say why.
async fn one_bounded_dead_letter(harness: &HandlerHarness, reason: &str) -> TestResult<DeadLetter> {
    let letters = harness.dead_letters(1).await?;
    anyhow::ensure!(letters.len() == 1, "{} dead letters, expected 1", letters.len());
    let letter = letters.into_iter().next().unwrap_or_default();
    let error = letter.header("keel-error").unwrap_or_default();
    anyhow::ensure!(error.contains(reason), "keel-error {error:?} does not say {reason:?}");
    let size: usize = letter.payload_len + letter.headers.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>();
    anyhow::ensure!(
        size <= keel_kafka::MAX_DEAD_LETTER_BYTES,
        "a dead letter of {size} bytes: the copy is not bounded"
    );
    Ok(letter)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_id_over_the_key_limit_is_refused_and_the_partition_moves_on() -> TestResult {
    let mut harness = HandlerHarness::prepare(1).await?;
    // The production limit, so that the id, not the size, is what is wrong.
    harness.config.max_command_bytes = 256 * 1024;
    harness.restart()?;
    // Unknown tenant, unsigned credential: refused before anything reads the store.
    let mut poison = agent_command("nobody", &"s".repeat(OVER_KEY_LIMIT), register("c-1"));
    poison.credential = ALG_NONE.into();
    harness.send(&poison).await?;

    next_command_is_answered(&harness).await?;
    let refused = harness.result_of(poison.command_id).await?;
    assert_eq!(rejection(&refused), Some("invalid_id"), "{}", summary(&refused));
    assert_eq!(refused.stream, None, "an invalid id is not echoed back");
    let letter = one_bounded_dead_letter(&harness, "invalid_id").await?;
    assert_eq!(letter.header("keel-command-id"), Some(poison.command_id.to_string()));
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_near_the_broker_limit_is_answered_and_dead_lettered_bounded() -> TestResult {
    let mut harness = HandlerHarness::start(1).await?;
    let customer = "c-big";
    let big = agent_command(
        "acme",
        customer,
        SupportCommand::SendEmail {
            email_id: "e-1".into(),
            to: "big@example.com".into(),
            subject: "Big".into(),
            body: "x".repeat(NEAR_BROKER_LIMIT),
        },
    );
    let producer = large_producer(harness.kafka.brokers())?;
    let bytes = harness.encode(&big)?;
    anyhow::ensure!(bytes.len() > 1_000_000, "the poison is {} bytes", bytes.len());
    let key = stream_key("acme", customer);
    produce(
        &producer,
        &harness.config.commands_topic,
        &key,
        &bytes,
        OwnedHeaders::new(),
    )
    .await?;

    next_command_is_answered(&harness).await?;
    let refused = harness.result_of(big.command_id).await?;
    assert_eq!(rejection(&refused), Some("payload_too_large"), "{}", summary(&refused));
    let letter = one_bounded_dead_letter(&harness, "payload_too_large").await?;
    assert_eq!(
        letter.header("keel-original-bytes"),
        Some(bytes.len().to_string()),
        "the letter says how large the original was"
    );
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_megabyte_tracestate_header_is_not_copied_and_the_partition_moves_on() -> TestResult {
    let mut harness = HandlerHarness::start(1).await?;
    let producer = large_producer(harness.kafka.brokers())?;
    let tracestate = format!("keel={}", "a".repeat(NEAR_BROKER_LIMIT));
    let headers = OwnedHeaders::new()
        .insert(Header {
            key: keel_kafka::trace::TRACEPARENT,
            value: Some(TRACEPARENT),
        })
        .insert(Header {
            key: keel_kafka::trace::TRACESTATE,
            value: Some(&tracestate),
        });
    let noise: Vec<u8> = (0..16).map(|_| rand::random::<u8>()).collect();
    produce(&producer, &harness.config.commands_topic, "acme/noise", &noise, headers).await?;

    next_command_is_answered(&harness).await?;
    let letter = one_bounded_dead_letter(&harness, "undecodable").await?;
    assert_eq!(
        letter.header(keel_kafka::trace::TRACESTATE),
        None,
        "{:?}",
        letter.headers
    );
    harness.stop().await
}

/// An admin command of `reason_bytes` of reason, encoded as the CLI would.
fn admin_command(tenant: &str, subject: &str, reason_bytes: usize) -> TestResult<(Uuid, String, Vec<u8>)> {
    let command_id = Uuid::new_v4();
    let stream = erasure_stream(subject);
    let token = admin_credential(tenant);
    let actor = keel_auth::Actor {
        kind: keel_auth::ActorKind::Human,
        id: "dpo".into(),
    };
    let header = CommandHeader {
        command_id,
        tenant: tenant.to_owned(),
        stream: stream.clone(),
        expected_version: None,
        issued_at_micros: i64::try_from(now_secs())? * 1_000_000,
        actor: to_wire_actor(&actor, &[], None),
        credential: token,
        correlation_id: Uuid::new_v4(),
        causation_id: None,
    };
    let command = AdminCommand::EraseSubject {
        subject: subject.to_owned(),
        reason: "r".repeat(reason_bytes),
    };
    let bytes = Wire::new::<System>()?.encode_command(header, &command)?;
    Ok((command_id, stream_key(tenant, &stream), bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_command_near_the_broker_limit_is_answered_and_the_next_erasure_too() -> TestResult {
    let harness = HandlerHarness::start(1).await?;
    let directory = tempfile::tempdir()?;
    let (key_file, _public) = keel_cli::dev::certificate_key(directory.path())?;
    let admin = harness.admin_config(key_file);
    let admin_topic = admin.admin_topic.clone();
    tokio::spawn(keel_admin::run(admin, pending::<()>()));

    let (poison_id, key, bytes) = admin_command("acme", "c-poison", NEAR_BROKER_LIMIT)?;
    let producer = large_producer(harness.kafka.brokers())?;
    // The admin service creates its topic at start: wait for it by retrying the first send.
    let mut attempts = 0;
    while let Err(error) = produce(&producer, &admin_topic, &key, &bytes, OwnedHeaders::new()).await {
        attempts += 1;
        anyhow::ensure!(attempts < 60, "the admin topic never appeared: {error}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let customer = format!("c-{}", Uuid::new_v4().simple());
    harness
        .send(&agent_command("acme", &customer, register(&customer)))
        .await?;
    let mut args = erase_args(&harness, &admin_topic, "acme", &customer);
    args.send.reason = "ticket DSR-7".into();
    let (_, answer) = erase(&args).await?;
    let answer = answer.ok_or_else(|| anyhow::anyhow!("the erasure after the poison was not answered"))?;
    assert_eq!(rejection(&answer), None, "{}", summary(&answer));

    let refused = harness.result_of(poison_id).await?;
    assert_eq!(rejection(&refused), Some("payload_too_large"), "{}", summary(&refused));
    one_bounded_dead_letter(&harness, "payload_too_large").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_projector_cannot_store_is_dead_lettered_and_projection_moves_on() -> TestResult {
    let harness = HandlerHarness::start(1).await?;
    let base = start_read_side(&harness).await?;

    // An event as a handler without id limits wrote it: sealed, chained, with an actor id
    // over CQL's key limit (the activity trail's partition key).
    let codec = harness.codec().await?;
    let actor = keel_auth::Actor {
        kind: keel_auth::ActorKind::Agent,
        id: "a".repeat(OVER_KEY_LIMIT),
    };
    let header = EventHeader {
        tenant: "acme",
        stream: "c-legacy",
        version: 1,
        recorded_at_micros: i64::try_from(now_secs())? * 1_000_000,
        command_id: Uuid::new_v4(),
        correlation_id: Uuid::new_v4(),
        actor: to_wire_actor(&actor, &[], None),
        compensates: None,
    };
    let event = SupportEvent::CustomerDeleted {
        customer_id: "c-legacy".into(),
        reason: "legacy".into(),
    };
    let envelope = codec.seal_event(&header, &event, &[]).await?;
    let poison_event_id = envelope.event_id.clone();
    let bytes = codec.wire().encode_event(&envelope)?;
    let producer = large_producer(harness.kafka.brokers())?;
    produce(
        &producer,
        &harness.config.events_topic,
        &stream_key("acme", "c-legacy"),
        &bytes,
        OwnedHeaders::new(),
    )
    .await?;

    let customer = format!("c-{}", Uuid::new_v4().simple());
    let valid: TestCommand = agent_command("acme", &customer, register(&customer));
    harness.send(&valid).await?;
    let result = harness.result_of(valid.command_id).await?;
    let Outcome::Accepted {
        position: Some(position),
        ..
    } = result.outcome
    else {
        anyhow::bail!("the valid command was refused: {}", summary(&result));
    };
    let token = keel_integration_tests::handler_harness::agent_credential("acme");
    let path = format!(
        "/v1/tenants/acme/customers/{customer}?after={}:{}&wait_ms=30000",
        position.partition, position.offset
    );
    let (status, body) = get(&base, &path, &token).await?;
    assert_eq!(status, 200, "the projection did not move past the poison event: {body}");

    let letters = harness.dead_letters(1).await?;
    let letter = letters
        .iter()
        .find(|letter| letter.header("keel-event-id").as_deref() == Some(poison_event_id.as_str()))
        .ok_or_else(|| anyhow::anyhow!("the poison event is not in the DLQ: {letters:?}"))?;
    let error = letter.header("keel-error").unwrap_or_default();
    assert!(error.contains("projection"), "{error}");
    Ok(())
}

/// Produces one record with a producer that speaks the protocol itself
/// (`tests/support/raw_produce.py`), with headers the usual clients cannot build.
fn raw_produce(
    harness: &HandlerHarness,
    topic: &str,
    key: &[u8],
    value: &[u8],
    headers: &[(&[u8], &[u8])],
) -> TestResult {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("support/raw_produce.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(harness.kafka.brokers())
        .arg(topic)
        .arg("0")
        .arg(hex::encode(key))
        .arg(hex::encode(value))
        .args(
            headers
                .iter()
                .map(|(name, data)| format!("{}={}", hex::encode(name), hex::encode(data))),
        )
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "raw produce failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_key_that_is_not_utf8_stops_nothing() -> TestResult {
    let mut harness = HandlerHarness::start(1).await?;
    let base = start_read_side(&harness).await?;
    let customer = format!("c-{}", Uuid::new_v4().simple());
    let command = agent_command("acme", &customer, register(&customer));
    let key = stream_key("acme", &customer);
    // rdkafka 0.38 unwraps every header key as UTF-8 when a consumer reads headers.
    raw_produce(
        &harness,
        &harness.config.commands_topic,
        key.as_bytes(),
        &harness.encode(&command)?,
        &[(b"\xff\xfekey", b"value"), (b"traceparent", TRACEPARENT.as_bytes())],
    )?;
    let answer = harness.result_of(command.command_id).await?;
    anyhow::ensure!(rejection(&answer).is_none(), "{}", summary(&answer));

    // The same in the events topic: the projector passes it and goes on.
    raw_produce(
        &harness,
        &harness.config.events_topic,
        b"acme/c-raw",
        b"not an event",
        &[(b"\xff\xfekey", b"value")],
    )?;
    let after = agent_command("acme", &format!("{customer}-2"), register(&format!("{customer}-2")));
    harness.send(&after).await?;
    let Outcome::Accepted {
        position: Some(position),
        ..
    } = harness.result_of(after.command_id).await?.outcome
    else {
        anyhow::bail!("the command after the raw record was refused");
    };
    let path = format!(
        "/v1/tenants/acme/customers/{}-2?after={}:{}&wait_ms=30000",
        customer, position.partition, position.offset
    );
    let (status, body) = get(
        &base,
        &path,
        &keel_integration_tests::handler_harness::agent_credential("acme"),
    )
    .await?;
    assert_eq!(status, 200, "the projector did not pass the raw record: {body}");
    harness.stop().await
}
