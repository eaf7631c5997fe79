//! Planning tests: a batch of customer-support commands decided against committed memory,
//! sealed with the real codec over in-memory keys, without Kafka or the CQL store.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use keel_codec::EventCodec;
use keel_crypto::{InMemoryKeyVault, InMemoryKms, KeyRing, RotationPolicy};
use keel_customer_support::{Customer, CustomerState, SupportCommand};
use keel_domain::DomainCommand;
use keel_envelope::Upcasters;
use keel_kafka::partition::{partition_for, stream_key};
use keel_kafka::trace::TraceHeaders;
use keel_results::{CommandResult, LogPosition, Outcome, Reason};
use rdkafka::message::{Headers, OwnedHeaders};
use uuid::Uuid;

use super::{Item, Planned, Planner, RECORD_OVERHEAD};
use crate::codec::{DecodedCommand, Undecodable};
use crate::decide::Rejection;
use crate::faults::Quarantine;
use crate::memory::PartitionMemory;
use crate::test_support::{NOW, credential, gatekeeper, incoming};

const PARTITIONS: i32 = 4;
const COMMANDS_TOPIC: &str = "keel.commands";

type TestCodec = EventCodec<InMemoryKms, InMemoryKeyVault>;
type Memory = HashMap<i32, PartitionMemory<CustomerState>>;

fn clock() -> i64 {
    i64::try_from(NOW).expect("a sane clock") * 1_000_000
}

fn planner_with_limit(max_record_bytes: usize) -> Planner<Customer, TestCodec> {
    let keys = KeyRing::new(
        InMemoryKms::new(),
        InMemoryKeyVault::new(),
        RotationPolicy::default(),
        64,
    );
    let codec = EventCodec::new::<Customer>(Arc::new(keys), Upcasters::new()).expect("the domain's schemas parse");
    Planner::new(
        Arc::new(codec),
        Arc::new(gatekeeper()),
        PARTITIONS,
        max_record_bytes,
        COMMANDS_TOPIC.into(),
    )
}

fn planner() -> Planner<Customer, TestCodec> {
    planner_with_limit(1024 * 1024)
}

/// The partition that stream `acme/c-1` is keyed to.
fn home() -> i32 {
    partition_for(stream_key("acme", "c-1").as_bytes(), PARTITIONS)
}

fn decoded(command: SupportCommand, expected_version: Option<u64>) -> DecodedCommand<SupportCommand> {
    DecodedCommand {
        command_type: command.command_type().into(),
        incoming: incoming(command, expected_version),
        correlation_id: Uuid::new_v4(),
        causation_id: None,
    }
}

fn register(expected_version: Option<u64>) -> DecodedCommand<SupportCommand> {
    decoded(
        SupportCommand::RegisterCustomer {
            customer_id: "c-1".into(),
            name: "Ada".into(),
            email: "ada@example.com".into(),
            address: "London".into(),
        },
        expected_version,
    )
}

fn refund(refund_id: &str, expected_version: Option<u64>) -> DecodedCommand<SupportCommand> {
    decoded(
        SupportCommand::IssueRefund {
            refund_id: refund_id.into(),
            amount_cents: 900,
            reason: "late".into(),
        },
        expected_version,
    )
}

fn item_on(partition: i32, offset: i64, command: &DecodedCommand<SupportCommand>) -> Item<'static, SupportCommand> {
    Item::Command {
        partition,
        offset,
        raw: b"the command's record",
        command: Box::new(command.clone()),
        trace: TraceHeaders::default(),
    }
}

fn item(offset: i64, command: &DecodedCommand<SupportCommand>) -> Item<'static, SupportCommand> {
    item_on(home(), offset, command)
}

fn undecodable(offset: i64, command_id: Option<Uuid>) -> Item<'static, SupportCommand> {
    Item::Undecodable {
        partition: home(),
        offset,
        raw: b"not an envelope",
        error: Undecodable {
            command_id,
            tenant: Some("acme".into()),
            stream: Some("c-1".into()),
            reason: Reason::Undecodable.code(),
            error: "not an Avro command envelope".into(),
        },
        trace: TraceHeaders::default(),
    }
}

/// Plans `items` against `committed`; returns the plans and the batch's scratch memory.
async fn plan_batch(
    planner: &Planner<Customer, TestCodec>,
    committed: &Memory,
    quarantine: &Quarantine,
    items: &[Item<'_, SupportCommand>],
) -> (Vec<Planned>, Memory) {
    let mut scratch = Memory::new();
    let planned = planner
        .plan(committed, quarantine, items, &mut scratch, clock)
        .await
        .expect("the batch is planned");
    (planned, scratch)
}

/// Committed memory holding stream `acme/c-1` registered at version 1 (by `command`), as the
/// worker's merge leaves it after that batch commits.
async fn registered_by(command: &DecodedCommand<SupportCommand>) -> Memory {
    let (planned, scratch) = plan_batch(&planner(), &Memory::new(), &Quarantine::default(), &[item(1, command)]).await;
    assert_eq!(versions(&planned[0]), [1]);
    scratch
}

fn result(plan: &Planned) -> &CommandResult {
    plan.result.as_ref().expect("the command has a result")
}

/// The versions of an accepted command's events.
fn versions(plan: &Planned) -> Vec<u64> {
    match &result(plan).outcome {
        Outcome::Accepted { versions, .. } => {
            assert_eq!(
                plan.events.iter().map(|event| event.version).collect::<Vec<_>>(),
                *versions
            );
            versions.clone()
        }
        Outcome::Rejected { reason, message, .. } => panic!("expected acceptance, got {reason}: {message}"),
    }
}

/// The reason and current version of a refused command, which writes no event.
fn refusal(plan: &Planned) -> (String, Option<u64>) {
    assert!(plan.events.is_empty(), "a refused command writes no event");
    match &result(plan).outcome {
        Outcome::Rejected {
            reason,
            current_version,
            ..
        } => (reason.clone(), *current_version),
        Outcome::Accepted { .. } => panic!("expected a refusal"),
    }
}

fn header(headers: &OwnedHeaders, key: &str) -> Option<String> {
    headers
        .iter()
        .find(|header| header.key == key)
        .and_then(|header| header.value)
        .map(|value| String::from_utf8_lossy(value).into_owned())
}

/// The `keel-reason` header of the plan's dead letter.
fn dead_letter_reason(plan: &Planned) -> String {
    let (_, headers) = plan.dlq.as_ref().expect("the command is dead-lettered");
    header(headers, "keel-reason").expect("a dead letter names its reason")
}

/// The stream `acme/c-1` as `memory` holds it: version and last hash.
fn stream(memory: &Memory) -> Option<(u64, Vec<u8>)> {
    memory
        .get(&home())
        .and_then(|memory| memory.streams.get(&("acme".to_owned(), "c-1".to_owned())))
        .map(|entry| (entry.version, entry.hash.clone()))
}

type Snapshot = (
    BTreeMap<(i32, String, String), (u64, Vec<u8>, CustomerState, i64)>,
    BTreeMap<(i32, String, Uuid), CommandResult>,
);

/// Everything `memory` holds, comparable.
fn snapshot(memory: &Memory) -> Snapshot {
    let mut streams = BTreeMap::new();
    let mut results = BTreeMap::new();
    for (partition, memory) in memory {
        for ((tenant, stream), entry) in &memory.streams {
            streams.insert(
                (*partition, tenant.clone(), stream.clone()),
                (entry.version, entry.hash.clone(), entry.state.clone(), entry.position),
            );
        }
        for ((tenant, command_id), result) in &memory.results {
            results.insert((*partition, tenant.clone(), *command_id), result.clone());
        }
    }
    (streams, results)
}

#[tokio::test]
async fn two_commands_on_one_stream_in_a_batch_take_versions_one_and_two_chained() {
    let planner = planner();
    let codec = Arc::clone(&planner.codec);
    let items = [item(10, &register(Some(0))), item(11, &refund("r-1", Some(1)))];
    let (planned, scratch) = plan_batch(&planner, &Memory::new(), &Quarantine::default(), &items).await;

    assert_eq!(versions(&planned[0]), [1]);
    assert_eq!(versions(&planned[1]), [2]);
    let first = codec.wire().read_event(&planned[0].events[0].bytes).expect("reads");
    let second = codec.wire().read_event(&planned[1].events[0].bytes).expect("reads");
    assert_eq!(first.hash, planned[0].events[0].hash);
    assert_eq!(
        second.prev_hash, first.hash,
        "the second event follows the first in the chain"
    );
    assert_eq!(stream(&scratch), Some((2, second.hash)));
}

#[tokio::test]
async fn a_command_id_seen_twice_in_a_batch_gets_the_first_result_and_no_events() {
    let command = register(None);
    let items = [item(10, &command), item(11, &command)];
    let (planned, _) = plan_batch(&planner(), &Memory::new(), &Quarantine::default(), &items).await;

    assert_eq!(versions(&planned[0]), [1]);
    assert_eq!(planned[1].result, planned[0].result);
    assert!(planned[1].events.is_empty());
}

/// An accepted result of `command` in committed memory, as an earlier batch left it.
fn committed_result_of(command: &DecodedCommand<SupportCommand>) -> (CommandResult, Memory) {
    let original = CommandResult {
        command_id: command.incoming.command_id,
        tenant: Some("acme".into()),
        stream: Some("c-1".into()),
        correlation_id: Some(command.correlation_id),
        command_type: Some(command.command_type.clone()),
        actor: Some(command.incoming.actor.clone()),
        on_behalf_of: command.incoming.on_behalf_of.clone(),
        outcome: Outcome::Accepted {
            event_ids: vec![Uuid::new_v4()],
            versions: vec![7],
            position: Some(LogPosition {
                partition: home(),
                offset: 42,
            }),
        },
    };
    let mut committed = Memory::new();
    committed
        .entry(home())
        .or_default()
        .results
        .insert(("acme".into(), command.incoming.command_id), original.clone());
    (original, committed)
}

#[tokio::test]
async fn a_command_id_already_committed_gets_its_original_result_and_no_events() {
    let command = refund("r-1", None);
    let (original, committed) = committed_result_of(&command);
    let (planned, _) = plan_batch(&planner(), &committed, &Quarantine::default(), &[item(10, &command)]).await;

    assert_eq!(planned[0].result.as_ref(), Some(&original));
    assert!(planned[0].events.is_empty());
    assert!(planned[0].dlq.is_none());
}

/// `command` sent again with a credential signed by a key the tenant does not trust.
fn forged(command: &DecodedCommand<SupportCommand>) -> DecodedCommand<SupportCommand> {
    let mut forged = command.clone();
    forged.incoming.credential = credential(&SigningKey::from_bytes(&[9; 32]));
    forged
}

#[tokio::test]
async fn a_duplicate_command_id_with_a_forged_credential_learns_nothing_of_the_original() {
    let command = refund("r-1", None);
    let (original, committed) = committed_result_of(&command);
    let items = [item(10, &forged(&command))];
    let (planned, scratch) = plan_batch(&planner(), &committed, &Quarantine::default(), &items).await;

    assert_eq!(refusal(&planned[0]).0, "credential_invalid");
    assert_ne!(
        planned[0].result.as_ref(),
        Some(&original),
        "the forged delivery is not told the original"
    );
    assert!(!planned[0].remember, "the refusal must not replace the original result");
    assert!(planned[0].events.is_empty());
    assert!(
        scratch.values().all(|memory| memory.results.is_empty()),
        "nothing is remembered for the command id"
    );
}

#[tokio::test]
async fn a_forged_duplicate_in_the_batch_of_its_original_is_refused_and_the_original_stays() {
    let command = register(None);
    let items = [item(10, &command), item(11, &forged(&command))];
    let (planned, scratch) = plan_batch(&planner(), &Memory::new(), &Quarantine::default(), &items).await;

    assert_eq!(versions(&planned[0]), [1]);
    assert!(planned[0].remember);
    assert_eq!(refusal(&planned[1]).0, "credential_invalid");
    assert!(!planned[1].remember);
    let remembered = scratch
        .get(&home())
        .and_then(|memory| memory.results.get(&("acme".to_owned(), command.incoming.command_id)));
    assert_eq!(remembered, planned[0].result.as_ref());
}

#[tokio::test]
async fn a_stale_expected_version_is_refused_and_the_next_command_follows_the_stream_as_it_was() {
    let items = [
        item(10, &register(Some(0))),
        item(11, &refund("r-1", Some(0))),
        item(12, &refund("r-2", Some(1))),
    ];
    let (planned, scratch) = plan_batch(&planner(), &Memory::new(), &Quarantine::default(), &items).await;

    assert_eq!(versions(&planned[0]), [1]);
    assert_eq!(
        refusal(&planned[1]),
        (Reason::VersionConflict.code().to_owned(), Some(1))
    );
    assert_eq!(versions(&planned[2]), [2]);
    assert_eq!(stream(&scratch).map(|(version, _)| version), Some(2));
}

#[tokio::test]
async fn a_command_on_another_partition_than_its_keys_is_refused() {
    let elsewhere = (home() + 1) % PARTITIONS;
    let items = [item_on(elsewhere, 10, &register(None))];
    let (planned, scratch) = plan_batch(&planner(), &Memory::new(), &Quarantine::default(), &items).await;

    assert_eq!(refusal(&planned[0]).0, Reason::WrongPartition.code());
    assert!(planned[0].dlq.is_none());
    assert_eq!(stream(&scratch), None);
}

#[tokio::test]
async fn a_quarantined_command_is_refused_with_its_reason_and_dead_lettered() {
    let mut quarantine = Quarantine::default();
    quarantine.add(
        home(),
        11,
        Rejection::new(Reason::StateUnreadable.code(), "its stored state cannot be read"),
    );
    let items = [item(10, &register(None)), item(11, &refund("r-1", None))];
    let (planned, _) = plan_batch(&planner(), &Memory::new(), &quarantine, &items).await;

    assert!(planned[0].dlq.is_none());
    assert_eq!(refusal(&planned[1]).0, Reason::StateUnreadable.code());
    assert_eq!(dead_letter_reason(&planned[1]), Reason::StateUnreadable.code());
    let (_, headers) = planned[1].dlq.as_ref().expect("dead-lettered");
    assert_eq!(
        header(headers, "keel-source"),
        Some(format!("{COMMANDS_TOPIC}/{}/11", home()))
    );
}

#[tokio::test]
async fn an_undecodable_command_with_an_id_gets_a_rejected_result_and_a_dead_letter() {
    let command_id = Uuid::new_v4();
    let (planned, _) = plan_batch(
        &planner(),
        &Memory::new(),
        &Quarantine::default(),
        &[undecodable(10, Some(command_id))],
    )
    .await;

    assert_eq!(result(&planned[0]).command_id, command_id);
    assert_eq!(refusal(&planned[0]).0, Reason::Undecodable.code());
    assert_eq!(dead_letter_reason(&planned[0]), Reason::Undecodable.code());
}

#[tokio::test]
async fn an_undecodable_command_without_an_id_gets_a_dead_letter_and_no_result() {
    let (planned, _) = plan_batch(
        &planner(),
        &Memory::new(),
        &Quarantine::default(),
        &[undecodable(10, None)],
    )
    .await;

    assert!(planned[0].result.is_none());
    assert!(planned[0].events.is_empty());
    assert_eq!(dead_letter_reason(&planned[0]), Reason::Undecodable.code());
}

#[tokio::test]
async fn an_event_over_the_record_limit_is_refused_as_too_large() {
    let key = "acme/c-1".len();
    let planner = planner_with_limit(RECORD_OVERHEAD + key + 64);
    let (planned, scratch) = plan_batch(
        &planner,
        &Memory::new(),
        &Quarantine::default(),
        &[item(10, &register(None))],
    )
    .await;

    assert_eq!(refusal(&planned[0]).0, Reason::EventTooLarge.code());
    assert_eq!(stream(&scratch), None, "the stream stays as it was");
}

#[tokio::test]
async fn planning_changes_only_the_scratch_never_committed_memory() {
    let registration = register(None);
    let committed = registered_by(&registration).await;
    let before = snapshot(&committed);
    let items = [
        item(20, &registration),
        item(21, &refund("r-1", Some(0))),
        item(22, &refund("r-2", Some(1))),
    ];
    let (planned, scratch) = plan_batch(&planner(), &committed, &Quarantine::default(), &items).await;

    let original = committed.get(&home()).and_then(|memory| {
        memory
            .results
            .get(&("acme".to_owned(), registration.incoming.command_id))
    });
    assert_eq!(
        planned[0].result.as_ref(),
        original,
        "a duplicate of a committed command"
    );
    assert!(planned[0].events.is_empty());
    assert_eq!(refusal(&planned[1]).0, Reason::VersionConflict.code());
    assert_eq!(versions(&planned[2]), [2]);
    assert_eq!(snapshot(&committed), before);
    assert_eq!(stream(&committed).map(|(version, _)| version), Some(1));
    assert_eq!(stream(&scratch).map(|(version, _)| version), Some(2));
}
