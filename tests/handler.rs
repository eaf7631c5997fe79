//! The command handler on the real Kafka and CQL store: commands become chained events
//! with gapless versions, exactly once, and bad input is refused without stopping anything.

use std::collections::BTreeMap;

use ed25519_dalek::SigningKey;
use keel_chain::{ChainHasher, Verdict, verify_stream};
use keel_codec::from_wire_actor;
use keel_customer_support::{SupportCommand, SupportEvent};
use keel_envelope::{COMMAND_ENVELOPE, CommandEnvelope, EventEnvelope, SchemaRegistry};
use keel_integration_tests::handler_harness::{
    AGENT_REFUND_LIMIT, HandlerHarness, agent, agent_command, credential_with, now_secs, register, supervisor,
};
use keel_kafka::partition::{partition_for, stream_key};
use keel_results::{CommandResult, Outcome};
use keel_testkit::TestResult;
use std::time::Duration;

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|window| window == needle)
}

fn reason(result: &CommandResult) -> Option<&str> {
    match &result.outcome {
        Outcome::Rejected { reason, .. } => Some(reason),
        Outcome::Accepted { .. } => None,
    }
}

fn refund(refund_id: &str, amount_cents: i64) -> SupportCommand {
    SupportCommand::IssueRefund {
        refund_id: refund_id.into(),
        amount_cents,
        reason: "late".into(),
    }
}

/// Every stream's events have versions 1..n in order and each links to its predecessor.
fn assert_chains(events: &[EventEnvelope]) {
    let mut streams: BTreeMap<(&str, &str), Vec<EventEnvelope>> = BTreeMap::new();
    for event in events {
        streams
            .entry((&event.tenant_id, &event.stream_id))
            .or_default()
            .push(event.clone());
    }
    let hasher = ChainHasher::new().expect("the envelope schema parses");
    for ((tenant, stream), events) in streams {
        let verdict = verify_stream(&hasher, &events, None).expect("the chain can be computed");
        assert!(
            matches!(verdict, Verdict::Intact { version, .. } if version == events.len() as i64),
            "{tenant}/{stream}: gapless versions and an intact chain: {verdict:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepted_commands_become_chained_events_with_gapless_versions() -> TestResult {
    let mut harness = HandlerHarness::start(3).await?;
    let commands = [
        agent_command("acme", "c-1", register("c-1")),
        agent_command(
            "acme",
            "c-1",
            SupportCommand::StartSubscription {
                subscription_id: "s-1".into(),
                plan: "pro".into(),
            },
        ),
        agent_command("acme", "c-1", refund("r-1", 1_200)),
        agent_command("globex", "c-9", register("c-9")),
    ];
    for command in &commands {
        harness.send(command).await?;
    }
    let results = harness.results(commands.len()).await?;
    assert_eq!(results.len(), commands.len());
    assert!(results.iter().all(|result| reason(result).is_none()), "{results:?}");

    let events = harness.events(4).await?;
    assert_eq!(events.len(), 4);
    assert_chains(&events);
    let last = results
        .iter()
        .find(|r| r.command_id == commands[2].command_id)
        .expect("refund result");
    let Outcome::Accepted {
        versions,
        position: Some(position),
        ..
    } = &last.outcome
    else {
        panic!("the refund should be accepted with a position: {last:?}");
    };
    assert_eq!(versions, &[3]);
    assert_eq!(
        position.partition,
        partition_for(stream_key("acme", "c-1").as_bytes(), 3)
    );
    let refund_event = events
        .iter()
        .find(|e| e.event_type == "RefundIssued")
        .expect("refund event");
    let (actor, on_behalf_of, authorization) = from_wire_actor(&refund_event.actor);
    assert_eq!(actor, agent(), "the event names who acted");
    assert_eq!(on_behalf_of, [supervisor()], "and on whose behalf");
    assert_eq!(
        authorization.map(|a| a.rule).as_deref(),
        Some("agent-support"),
        "and the rule that allowed it"
    );
    assert_eq!(
        refund_event.data_subjects,
        Vec::<String>::new(),
        "a refund holds no personal field"
    );

    // Personal data is sealed on the wire and opens back with the keys.
    let raw = harness
        .read_all(
            &harness.config.events_topic,
            |records| records.len() >= 4,
            Duration::from_secs(30),
        )
        .await?;
    assert!(
        raw.iter().all(|bytes| !contains(bytes, b"Canary Name")),
        "no personal plaintext in the events topic"
    );
    let registration = events
        .iter()
        .find(|e| e.stream_id == "c-1" && e.event_type == "CustomerRegistered")
        .expect("registration event");
    assert_eq!(registration.data_subjects, ["c-1"]);
    let codec = harness.codec().await?;
    let opened = codec.open_event::<SupportEvent>(registration.clone()).await?;
    assert!(
        matches!(&opened.event, SupportEvent::CustomerRegistered { name, .. } if name == "Canary Name c-1"),
        "{:?}",
        opened.event
    );
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_command_id_gets_the_original_result_and_writes_no_event() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    let command = agent_command("acme", "c-1", register("c-1"));
    harness.send(&command).await?;
    let original = harness.result_of(command.command_id).await?;

    harness.send(&command).await?;
    let results = harness.results(2).await?;
    assert_eq!(results.len(), 2, "each delivery of the command gets an answer");
    assert!(
        results.iter().all(|result| *result == original),
        "the same answer both times: {results:?}"
    );
    assert_eq!(harness.events(1).await?.len(), 1, "and one event only");
    harness.stop().await
}

/// Deletes every row of the handler's decision state, as if no CQL write had ever followed a
/// commit: what the handler knows must then come from the log alone.
async fn lose_decision_state(harness: &HandlerHarness) -> TestResult {
    let session = keel_testkit::connect_cql().await?;
    for table in ["handler_streams", "handler_results", "handler_watermarks"] {
        session
            .query_unpaged(format!("TRUNCATE {}.{table}", harness.config.cql.keyspace), &[])
            .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_command_id_with_a_forged_credential_learns_nothing_and_the_original_stays() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    let command = agent_command("acme", "c-1", register("c-1"));
    harness.send(&command).await?;
    let original = harness.result_of(command.command_id).await?;

    // Someone who knows the command id but holds no credential of the tenant's keys.
    let mut forged = command.clone();
    forged.credential = credential_with(
        "acme",
        &agent(),
        &[supervisor()],
        &SigningKey::from_bytes(&[99; 32]),
        now_secs() + 600,
    );
    harness.send(&forged).await?;
    let results = harness.results(2).await?;
    assert!(
        matches!(&results[1].outcome, Outcome::Rejected { reason, .. } if reason == "credential_invalid"),
        "the forged delivery is refused, not told the original result: {:?}",
        results[1]
    );
    harness.stop().await?;

    // Decision state lost: the handler learns command ids again from the results topic, where
    // the refusal of the forged delivery follows the original result.
    lose_decision_state(&harness).await?;
    harness.restart()?;
    harness.send(&command).await?;
    let results = harness.results(3).await?;
    assert_eq!(
        results[2], original,
        "the sender's retry still gets the original result"
    );
    assert_eq!(harness.events(1).await?.len(), 1, "and one event only");
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cannot_seal_its_data_under_another_subjects_key() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    let existing = agent_command("acme", "c-1", register("c-1"));
    harness.send(&existing).await?;
    assert!(harness.result_of(existing.command_id).await?.accepted_at().is_some());

    // A new stream whose registration names the existing customer: its name, email and
    // address would be sealed under c-1's key (erasing c-1 would erase them, erasing c-2
    // nothing).
    let hijack = agent_command("acme", "c-2", register("c-1"));
    harness.send(&hijack).await?;
    let result = harness.result_of(hijack.command_id).await?;
    assert!(
        matches!(&result.outcome, Outcome::Rejected { reason, .. } if reason == "subject_not_bound"),
        "{result:?}"
    );
    let events = harness.events(1).await?;
    assert!(
        events.iter().all(|event| event.stream_id != "c-2"),
        "nothing was appended to c-2: {events:?}"
    );
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_expected_version_is_a_conflict_with_the_current_version() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    harness.send(&agent_command("acme", "c-1", register("c-1"))).await?;
    let mut stale = agent_command("acme", "c-1", refund("r-1", 100));
    stale.expected_version = Some(0);
    harness.send(&stale).await?;

    let result = harness.result_of(stale.command_id).await?;
    let Outcome::Rejected {
        reason,
        current_version,
        ..
    } = &result.outcome
    else {
        panic!("a stale version must be refused: {result:?}");
    };
    assert_eq!((reason.as_str(), *current_version), ("version_conflict", Some(1)));
    assert_eq!(harness.events(1).await?.len(), 1, "nothing appended for the conflict");
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_other_tenant_credentials_are_rejected() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    let forger = SigningKey::from_bytes(&[99; 32]);
    let mut forged = agent_command("acme", "c-1", register("c-1"));
    forged.credential = credential_with("acme", &agent(), &[supervisor()], &forger, now_secs() + 600);
    let mut expired = agent_command("acme", "c-2", register("c-2"));
    expired.credential = credential_with(
        "acme",
        &agent(),
        &[supervisor()],
        &SigningKey::from_bytes(&[11; 32]),
        now_secs() - 3_600,
    );
    let mut other_tenant = agent_command("acme", "c-3", register("c-3"));
    other_tenant.credential = keel_integration_tests::handler_harness::agent_credential("globex");
    for command in [&forged, &expired, &other_tenant] {
        harness.send(command).await?;
    }

    let reasons = [
        reason(&harness.result_of(forged.command_id).await?).map(str::to_owned),
        reason(&harness.result_of(expired.command_id).await?).map(str::to_owned),
        reason(&harness.result_of(other_tenant.command_id).await?).map(str::to_owned),
    ];
    assert_eq!(
        reasons,
        [
            Some("credential_invalid".into()),
            Some("credential_expired".into()),
            Some("credential_invalid".into())
        ]
    );
    assert!(harness.events(0).await?.is_empty(), "no event for any of them");
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_bytes_go_to_the_dlq_and_the_handler_keeps_going() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    harness
        .send_raw("acme/c-1", b"\x00\x01 definitely not a command")
        .await?;
    // An envelope that decodes around a payload that does not.
    let registry = SchemaRegistry::with_envelopes()?;
    let half_command = agent_command("acme", "c-1", register("c-1"));
    let readable_id = half_command.command_id;
    let mut half: CommandEnvelope = registry.decode(COMMAND_ENVELOPE, &harness.encode(&half_command)?)?;
    half.payload.data = b"\xff\xff not avro".to_vec();
    harness
        .send_raw("acme/c-1", &registry.encode(COMMAND_ENVELOPE, &half)?)
        .await?;
    let good = agent_command("acme", "c-1", register("c-1"));
    harness.send(&good).await?;

    assert!(
        reason(&harness.result_of(good.command_id).await?).is_none(),
        "the next command is accepted"
    );
    assert_eq!(
        reason(&harness.result_of(readable_id).await?),
        Some("undecodable"),
        "a readable id gets an answer"
    );
    let dead = harness
        .read_all(
            &harness.config.dlq_topic,
            |records| records.len() >= 2,
            std::time::Duration::from_secs(30),
        )
        .await?;
    assert_eq!(dead.len(), 2);
    assert_eq!(dead[0], b"\x00\x01 definitely not a command", "the raw bytes are kept");
    harness.stop().await
}

/// Refusals between acceptances on one stream, all in one batch (sent before the handler
/// starts): each refusal leaves the stream as the batch had it, so the acceptances after it
/// continue the versions and the chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_inside_a_batch_leave_the_stream_as_the_batch_had_it() -> TestResult {
    let mut harness = HandlerHarness::prepare(2).await?;
    let mut stale = agent_command("acme", "c-1", refund("r-3", 100));
    stale.expected_version = Some(0);
    let commands = vec![
        agent_command("acme", "c-1", register("c-1")),
        agent_command("acme", "c-1", refund("r-1", 100)),
        agent_command("acme", "c-1", refund("r-2", AGENT_REFUND_LIMIT + 1)),
        agent_command("acme", "c-1", refund("r-4", 200)),
        stale,
        agent_command("acme", "c-1", refund("r-5", 300)),
    ];
    harness.send_many(&commands).await?;
    harness.restart()?;
    let mut outcomes = Vec::new();
    for command in &commands {
        let result = harness.result_of(command.command_id).await?;
        outcomes.push(match &result.outcome {
            Outcome::Accepted { versions, .. } => format!("v{}", versions.first().copied().unwrap_or_default()),
            Outcome::Rejected { reason, .. } => reason.clone(),
        });
    }
    assert_eq!(
        outcomes,
        ["v1", "v2", "limit_exceeded", "v3", "version_conflict", "v4"],
        "versions continue past each refusal"
    );
    assert_chains(&harness.events(4).await?);
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refund_over_the_agents_limit_is_rejected_and_recorded_with_who_tried() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    harness.send(&agent_command("acme", "c-1", register("c-1"))).await?;
    let too_much = agent_command("acme", "c-1", refund("r-1", AGENT_REFUND_LIMIT + 1));
    harness.send(&too_much).await?;

    let result = harness.result_of(too_much.command_id).await?;
    assert_eq!(reason(&result), Some("limit_exceeded"));
    assert_eq!(result.actor, Some(agent()), "the refusal records who tried");
    assert_eq!(result.on_behalf_of, [supervisor()]);
    assert_eq!(result.command_type.as_deref(), Some("IssueRefund"), "and what");
    assert_eq!(harness.events(1).await?.len(), 1, "only the registration was appended");
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_on_the_wrong_partition_is_refused() -> TestResult {
    let mut harness = HandlerHarness::start(3).await?;
    let command = agent_command("acme", "c-1", register("c-1"));
    let key = stream_key("acme", "c-1");
    let right = partition_for(key.as_bytes(), 3);
    harness
        .send_to_partition((right + 1) % 3, &key, &harness.encode(&command)?)
        .await?;

    assert_eq!(
        reason(&harness.result_of(command.command_id).await?),
        Some("wrong_partition")
    );
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_handler_continues_each_stream_where_it_was() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    harness.send(&agent_command("acme", "c-1", register("c-1"))).await?;
    let before = agent_command("acme", "c-1", refund("r-1", 100));
    harness.send(&before).await?;
    harness.result_of(before.command_id).await?;
    harness.stop().await?;

    harness.restart()?;
    let duplicate_refund = agent_command("acme", "c-1", refund("r-1", 100));
    let after = agent_command("acme", "c-1", refund("r-2", 100));
    harness.send(&duplicate_refund).await?;
    harness.send(&after).await?;
    assert_eq!(
        reason(&harness.result_of(duplicate_refund.command_id).await?),
        Some("refund_exists"),
        "state survived"
    );
    let result = harness.result_of(after.command_id).await?;
    assert!(
        matches!(&result.outcome, Outcome::Accepted { versions, .. } if versions == &[3]),
        "{result:?}"
    );
    let events = harness.events(3).await?;
    assert_eq!(events.len(), 3);
    assert_chains(&events);
    harness.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_whose_decision_state_was_lost_rebuilds_it_from_the_log() -> TestResult {
    let mut harness = HandlerHarness::start(2).await?;
    let registered = agent_command("acme", "c-1", register("c-1"));
    let first_refund = agent_command("acme", "c-1", refund("r-1", 100));
    for command in [&registered, &first_refund] {
        harness.send(command).await?;
    }
    let original = harness.result_of(first_refund.command_id).await?;
    harness.stop().await?;

    // Lose every row of decision state, as if no CQL write had ever followed a commit.
    lose_decision_state(&harness).await?;

    harness.restart()?;
    let same_refund_again = agent_command("acme", "c-1", refund("r-1", 100));
    let next_refund = agent_command("acme", "c-1", refund("r-2", 100));
    harness.send(&first_refund).await?;
    harness.send(&same_refund_again).await?;
    harness.send(&next_refund).await?;

    let results = harness.results(5).await?;
    let replayed_id: Vec<_> = results
        .iter()
        .filter(|r| r.command_id == first_refund.command_id)
        .collect();
    assert_eq!(
        replayed_id,
        [&original, &original],
        "the command id is still known, with its original result"
    );
    assert_eq!(
        reason(&harness.result_of(same_refund_again.command_id).await?),
        Some("refund_exists"),
        "domain state"
    );
    let next = harness.result_of(next_refund.command_id).await?;
    assert!(
        matches!(&next.outcome, Outcome::Accepted { versions, .. } if versions == &[3]),
        "versions: {next:?}"
    );
    let events = harness.events(3).await?;
    assert_eq!(events.len(), 3);
    assert_chains(&events);
    harness.stop().await
}

/// The `traceparent` header of every committed record of `topic` (partition 0), in order.
async fn traceparents(harness: &HandlerHarness, topic: &str) -> TestResult<Vec<Option<String>>> {
    use rdkafka::Message;
    use rdkafka::consumer::Consumer;
    use rdkafka::message::Headers;
    let reader = keel_kafka::clients::reader(harness.kafka.brokers(), &keel_testkit::unique_name("traces"))?;
    let mut assignment = rdkafka::TopicPartitionList::new();
    assignment.add_partition_offset(topic, 0, rdkafka::Offset::Beginning)?;
    reader.assign(&assignment)?;
    let mut found = Vec::new();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), reader.recv()).await? {
            Err(rdkafka::error::KafkaError::PartitionEOF(_)) => return Ok(found),
            Err(error) => return Err(error.into()),
            Ok(message) => found.push(
                message
                    .headers()
                    .and_then(|headers| headers.iter().find(|h| h.key == keel_kafka::trace::TRACEPARENT))
                    .and_then(|header| header.value)
                    .map(|value| String::from_utf8_lossy(value).into_owned()),
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commands_trace_context_travels_to_its_events_and_result() -> TestResult {
    use rdkafka::message::{Header, OwnedHeaders};
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let harness = HandlerHarness::start(1).await?;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let traceparent = format!("00-{trace_id}-b7ad6b7169203331-01");
    let command = agent_command("acme", "c-trace", register("c-trace"));
    let producer: FutureProducer = keel_kafka::clients::producer(harness.kafka.brokers()).create()?;
    let key = stream_key(&command.tenant, &command.stream);
    let payload = harness.encode(&command)?;
    let record = FutureRecord::to(&harness.config.commands_topic)
        .key(&key)
        .payload(&payload)
        .headers(OwnedHeaders::new().insert(Header {
            key: keel_kafka::trace::TRACEPARENT,
            value: Some(&traceparent),
        }));
    producer
        .send(record, Duration::from_secs(10))
        .await
        .map_err(|(error, _)| error)?;
    let results = harness.results(1).await?;
    assert!(reason(&results[0]).is_none(), "{results:?}");

    for topic in [&harness.config.events_topic, &harness.config.results_topic] {
        let found = traceparents(&harness, topic).await?;
        assert_eq!(found.len(), 1, "{topic}: {found:?}");
        let written = found[0].as_deref().unwrap_or_default();
        assert_eq!(
            written.split('-').nth(1),
            Some(trace_id),
            "{topic} continues the command's trace: {written:?}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handler_reports_its_consumer_lag_per_partition() -> TestResult {
    let harness = HandlerHarness::start(1).await?;
    harness.send(&agent_command("acme", "c-lag", register("c-lag"))).await?;
    harness.results(1).await?;
    // librdkafka's statistics arrive every second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = keel_service::telemetry::metrics_handle().render();
        if text.contains("keel_handler_consumer_lag{partition=\"0\"}") {
            return Ok(());
        }
        assert!(tokio::time::Instant::now() < deadline, "no consumer lag in:\n{text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_projector_reports_its_lag_in_events_and_seconds_per_partition() -> TestResult {
    let harness = HandlerHarness::start(1).await?;
    keel_integration_tests::read_side::start_read_side(&harness).await?;
    harness
        .send(&agent_command("acme", "c-plag", register("c-plag")))
        .await?;
    harness.results(1).await?;
    // The projector saves log heads, and sets its lag gauges, about once a second.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let text = keel_service::telemetry::metrics_handle().render();
        if text.contains("keel_projector_lag_events{partition=\"0\"}")
            && text.contains("keel_projector_lag_seconds{partition=\"0\"}")
        {
            return Ok(());
        }
        assert!(tokio::time::Instant::now() < deadline, "no projector lag in:\n{text}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
