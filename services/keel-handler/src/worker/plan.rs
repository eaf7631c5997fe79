//! Planning: each command of a batch decided against the batch's view of its stream, and
//! what it will write (its result, its sealed events, its dead letter) before any offset is
//! known.
//!
//! [`Planner`] holds only what deciding needs (the gatekeeper, the codec that seals, the
//! limits), never a Kafka client nor the CQL store: the committed memory, the quarantine and
//! the clock come in as arguments, and the batch's new stream states and results go to its
//! scratch memory, so unit tests drive it without any server (`plan_tests.rs`).

use keel_results::Reason;
use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;

use keel_domain::{Aggregate, DomainEvent, Recorded};
use keel_kafka::partition::{partition_for, stream_key};
use keel_kafka::trace::TraceHeaders;
use rdkafka::message::OwnedHeaders;
use tracing::Instrument;
use uuid::Uuid;

use super::collect::Item;
use super::commit::TxnError;
use crate::codec::{AppendContext, ChainHead, Codec, DecodedCommand, SealError, SealedEvent};
use crate::decide::{Decision, Gatekeeper, Rejection};
use crate::faults::Quarantine;
use crate::memory::{PartitionMemory, StreamEntry};
use keel_results::{CommandResult, Outcome};

/// Bytes a record's headers and framing may add to its key and value (trace context,
/// `keel-event-id`, the record batch overhead), kept free under the producer's limit.
const RECORD_OVERHEAD: usize = 1024;
/// The most bytes of a refusal's message in a result (parsers' errors can quote input).
const MAX_MESSAGE_BYTES: usize = 1024;

/// The clock planning reads: microseconds since the Unix epoch, read when a command is
/// decided (its credential's validity) and when its events are sealed (their recorded time).
/// The worker passes `keel_service::now_micros`; tests pass a fixed instant.
pub(crate) type Clock = fn() -> i64;

/// What one command will write, before offsets are known.
pub(crate) struct Planned {
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) tenant: Option<String>,
    pub(crate) stream: Option<String>,
    pub(crate) result: Option<CommandResult>,
    pub(crate) events: Vec<SealedEvent>,
    /// The dead letter: a bounded copy of the record and its headers.
    pub(crate) dlq: Option<(Vec<u8>, OwnedHeaders)>,
    /// The trace context for what this command writes (W3C `traceparent`).
    pub(crate) trace: TraceHeaders,
    /// Whether `result` is the command id's answer, remembered for deduplication (stored,
    /// replayed, repeated to a later duplicate); `false` for the refusal of one delivery
    /// whose credential did not authenticate, which must not replace the original.
    pub(crate) remember: bool,
}

/// Decides a batch's commands: what deciding needs, and nothing of Kafka or CQL.
pub(crate) struct Planner<A: Aggregate, C: Codec<A>> {
    /// Seals and chains accepted events.
    codec: Arc<C>,
    /// Credentials and policies of every tenant.
    gatekeeper: Arc<Gatekeeper>,
    /// Partitions of the commands topic: a command keyed to another is refused.
    partition_count: i32,
    /// The producer's record limit: an event over it is refused.
    max_record_bytes: usize,
    /// The commands topic, named in dead letters.
    commands_topic: String,
    aggregate: PhantomData<fn() -> A>,
}

/// What planning reads besides the batch.
struct Known<'a, S> {
    /// The decision state of committed batches (never changed by planning).
    committed: &'a HashMap<i32, PartitionMemory<S>>,
    /// Commands to refuse with why.
    quarantine: &'a Quarantine,
    clock: Clock,
}

impl<A, C> Planner<A, C>
where
    A: Aggregate,
    C: Codec<A>,
{
    /// A planner sealing with `codec`, deciding with `gatekeeper`, for a commands topic of
    /// `partition_count` partitions and records of at most `max_record_bytes`.
    pub(crate) fn new(
        codec: Arc<C>,
        gatekeeper: Arc<Gatekeeper>,
        partition_count: i32,
        max_record_bytes: usize,
        commands_topic: String,
    ) -> Self {
        Self {
            codec,
            gatekeeper,
            partition_count,
            max_record_bytes,
            commands_topic,
            aggregate: PhantomData,
        }
    }

    /// Decides every item of the batch, in order, against `committed` and what the batch's
    /// earlier commands left in `scratch` (where the new stream states and results go).
    /// An error means the batch cannot be decided now (a key store or KMS out of reach, the
    /// domain failing on its own events) and is retried as a whole.
    pub(crate) async fn plan(
        &self,
        committed: &HashMap<i32, PartitionMemory<A::State>>,
        quarantine: &Quarantine,
        items: &[Item<'_, A::Command>],
        scratch: &mut HashMap<i32, PartitionMemory<A::State>>,
        clock: Clock,
    ) -> Result<Vec<Planned>, TxnError> {
        let known = Known {
            committed,
            quarantine,
            clock,
        };
        let mut planned = Vec::with_capacity(items.len());
        for item in items {
            planned.push(self.plan_item(item, &known, scratch).await?);
        }
        Ok(planned)
    }

    /// Decides one command: its result and events. An error means the batch cannot be
    /// decided now (a key store or KMS out of reach) and is retried as a whole.
    async fn plan_item(
        &self,
        item: &Item<'_, A::Command>,
        known: &Known<'_, A::State>,
        scratch: &mut HashMap<i32, PartitionMemory<A::State>>,
    ) -> Result<Planned, TxnError> {
        let (partition, offset, raw, command, trace) = match item {
            Item::Undecodable {
                partition,
                offset,
                raw,
                error,
                trace,
            } => {
                tracing::warn!(partition, offset, reason = error.reason, error = %error.error, "undecodable command sent to the DLQ");
                let rejection = Rejection::new(error.reason, error.error.clone());
                metrics::counter!("keel_handler_commands_total", "outcome" => "rejected", "reason" => error.reason)
                    .increment(1);
                let result = error.command_id.map(|command_id| CommandResult {
                    command_id,
                    tenant: error.tenant.clone(),
                    stream: error.stream.clone(),
                    correlation_id: None,
                    command_type: None,
                    actor: None,
                    on_behalf_of: Vec::new(),
                    outcome: rejected(&rejection),
                });
                return Ok(Planned {
                    partition: *partition,
                    offset: *offset,
                    tenant: error.tenant.clone(),
                    stream: error.stream.clone(),
                    result,
                    events: Vec::new(),
                    dlq: Some(self.dead_letter(raw, &rejection, (*partition, *offset), error.command_id, trace)),
                    trace: trace.clone(),
                    remember: true,
                });
            }
            Item::Command {
                partition,
                offset,
                raw,
                command,
                trace,
            } => (*partition, *offset, *raw, command, trace),
        };
        let incoming = &command.incoming;
        let span = tracing::info_span!(
            "command",
            tenant = %incoming.tenant,
            stream = %incoming.stream,
            command_id = %incoming.command_id,
            command_type = %command.command_type,
            correlation_id = %command.correlation_id,
            actor = %incoming.actor.id,
        );
        // The command's span continues the producer's trace; what it writes names it as the
        // parent (or passes the producer's context on when spans carry none).
        trace.continue_in(&span);
        let mut planned = self
            .plan_command(partition, offset, command, known, scratch)
            .instrument(span.clone())
            .await?;
        planned.trace = TraceHeaders::of_span(&span).or(trace);
        if let Some(rejection) = known.quarantine.get(partition, offset) {
            planned.dlq = Some(self.dead_letter(
                raw,
                rejection,
                (partition, offset),
                Some(incoming.command_id),
                &planned.trace,
            ));
        }
        Ok(planned)
    }

    /// The bounded DLQ record of the command at `position`, refused with `rejection`.
    fn dead_letter(
        &self,
        raw: &[u8],
        rejection: &Rejection,
        (partition, offset): (i32, i64),
        command_id: Option<Uuid>,
        trace: &TraceHeaders,
    ) -> (Vec<u8>, OwnedHeaders) {
        keel_kafka::DeadLetter {
            reason: &rejection.reason,
            error: &rejection.message,
            topic: &self.commands_topic,
            partition,
            offset,
            command_id: command_id.map(|id| id.to_string()),
            event_id: None,
        }
        .record(raw, trace)
    }

    /// Decides one decoded command (inside its span: tenant, stream, command id, correlation
    /// id, actor).
    async fn plan_command(
        &self,
        partition: i32,
        offset: i64,
        command: &DecodedCommand<A::Command>,
        known: &Known<'_, A::State>,
        scratch: &mut HashMap<i32, PartitionMemory<A::State>>,
    ) -> Result<Planned, TxnError> {
        let incoming = &command.incoming;
        let result_of = |outcome| CommandResult {
            command_id: incoming.command_id,
            tenant: Some(incoming.tenant.clone()),
            stream: Some(incoming.stream.clone()),
            correlation_id: Some(command.correlation_id),
            command_type: Some(command.command_type.clone()),
            actor: Some(incoming.actor.clone()),
            on_behalf_of: incoming.on_behalf_of.clone(),
            outcome,
        };
        let planned = |result: CommandResult, events: Vec<SealedEvent>| Planned {
            partition,
            offset,
            tenant: Some(incoming.tenant.clone()),
            stream: Some(incoming.stream.clone()),
            result: Some(result),
            events,
            dlq: None,
            trace: TraceHeaders::default(),
            remember: true,
        };

        // A quarantined command is refused with why, before anything else reads it.
        if let Some(rejection) = known.quarantine.get(partition, offset) {
            let rejection = rejection.clone();
            return Ok(self.refuse(result_of(rejected(&rejection)), &rejection, scratch, partition, planned));
        }

        // A replayed command id gets its original result and writes nothing else.
        let result_key = (incoming.tenant.clone(), incoming.command_id);
        let original = scratch
            .get(&partition)
            .and_then(|memory| memory.results.get(&result_key))
            .or_else(|| {
                known
                    .committed
                    .get(&partition)
                    .and_then(|memory| memory.results.get(&result_key))
            });
        if let Some(original) = original {
            // Only a sender who authenticates for the tenant learns the original result (its
            // actor, versions, positions); anyone else is refused for this delivery alone.
            let now = u64::try_from((known.clock)() / 1_000_000).unwrap_or_default();
            if let Err(rejection) = self.gatekeeper.authenticate(incoming, now) {
                tracing::info!(reason = %rejection.reason, "a duplicate command id with a credential that does not authenticate; refused");
                metrics::counter!("keel_handler_commands_total", "outcome" => "rejected", "reason" => rejection.reason.clone())
                    .increment(1);
                return Ok(Planned {
                    remember: false,
                    ..planned(result_of(rejected(&rejection)), Vec::new())
                });
            }
            tracing::info!("command id already handled; answering with its original result");
            metrics::counter!("keel_handler_duplicates_total").increment(1);
            return Ok(planned(original.clone(), Vec::new()));
        }

        let key = stream_key(&incoming.tenant, &incoming.stream);
        if partition_for(key.as_bytes(), self.partition_count) != partition {
            let rejection = Rejection::new(
                Reason::WrongPartition.code(),
                format!(
                    "the command for {key} arrived on partition {partition}; producers must key commands \
                     by tenant/stream and use the murmur2 partitioner (see schemas/README.md)"
                ),
            );
            return Ok(self.refuse(result_of(rejected(&rejection)), &rejection, scratch, partition, planned));
        }

        // The stream's entry, owned: moved out of this batch's scratch when an earlier command
        // of the batch touched the stream, else copied from the committed memory, which must
        // survive an aborted batch. So a stream's state is copied once per batch, not once
        // per command (a long history with growing state stays linear).
        let stream_key_pair = (incoming.tenant.clone(), incoming.stream.clone());
        let taken = scratch
            .get_mut(&partition)
            .and_then(|memory| memory.streams.remove(&stream_key_pair));
        let from_scratch = taken.is_some();
        let entry = taken
            .or_else(|| {
                known
                    .committed
                    .get(&partition)
                    .and_then(|memory| memory.streams.get(&stream_key_pair))
                    .cloned()
            })
            .unwrap_or_default();
        // A refused command leaves the stream as it was in the batch.
        let restore = |scratch: &mut HashMap<i32, PartitionMemory<A::State>>, entry: StreamEntry<A::State>| {
            if from_scratch {
                scratch
                    .entry(partition)
                    .or_default()
                    .streams
                    .insert(stream_key_pair.clone(), entry);
            }
        };
        if entry.broken.is_some() {
            let rejection = Rejection::new(
                Reason::StreamUnavailable.code(),
                "the stream's history cannot be folded by this release of the domain; its commands are refused until one can",
            );
            restore(scratch, entry);
            return Ok(self.refuse(result_of(rejected(&rejection)), &rejection, scratch, partition, planned));
        }
        let now = u64::try_from((known.clock)() / 1_000_000).unwrap_or_default();
        match self.gatekeeper.decide::<A>(incoming, &entry.state, entry.version, now) {
            Decision::Rejected(rejection) => {
                restore(scratch, entry);
                Ok(self.refuse(result_of(rejected(&rejection)), &rejection, scratch, partition, planned))
            }
            Decision::Accepted {
                events,
                principal,
                authorization,
            } => {
                let context = AppendContext {
                    tenant: &incoming.tenant,
                    stream: &incoming.stream,
                    command_id: incoming.command_id,
                    correlation_id: command.correlation_id,
                    principal: &principal,
                    authorization: &authorization,
                    recorded_at_micros: (known.clock)(),
                };
                let head = ChainHead {
                    version: entry.version,
                    hash: entry.hash.clone(),
                };
                let sealing = match self.codec.seal_events(&context, &head, &events).await {
                    Ok(sealed) => Ok(sealed),
                    // Nothing is wrong with the command: the batch is aborted and retried.
                    Err(SealError::Unavailable(message)) => return Err(TxnError::Unavailable(message)),
                    Err(SealError::TenantErased(tenant)) => Err(Rejection::new(
                        Reason::TenantErased.code(),
                        format!("tenant {tenant} is erased: its keys are destroyed, it takes no commands"),
                    )),
                    Err(SealError::Refused { reason, message }) => Err(Rejection::new(reason, message)),
                    Err(SealError::Codec(error)) => {
                        tracing::error!(%error, "sealing events failed; the command is refused");
                        Err(Rejection::new(
                            Reason::SealingFailed.code(),
                            "the events could not be sealed; retry later",
                        ))
                    }
                };
                let sealing = match sealing {
                    Ok(sealed) => self.within_record_limit(&incoming.tenant, &incoming.stream, sealed),
                    Err(rejection) => Err(rejection),
                };
                let sealed = match sealing {
                    Ok(sealed) => sealed,
                    Err(rejection) => {
                        restore(scratch, entry);
                        return Ok(self.refuse(
                            result_of(rejected(&rejection)),
                            &rejection,
                            scratch,
                            partition,
                            planned,
                        ));
                    }
                };
                let mut next = entry;
                for (event, seal) in events.iter().zip(&sealed) {
                    let recorded = Recorded {
                        event_id: seal.event_id,
                        version: seal.version,
                    };
                    // Keeps the position; `produce_batch` sets it once the offsets are known.
                    next.fold::<A>(event, &recorded, seal.hash.clone(), next.position);
                }
                if next.broken.is_some() {
                    // The domain cannot fold the events it just decided: abort the batch and
                    // refuse this command on the retry (its stream state is lost with the
                    // batch's scratch, never with what committed).
                    return Err(TxnError::Record {
                        partition,
                        offset,
                        rejection: Rejection::new(
                            Reason::InternalError.code(),
                            "the domain failed unexpectedly while applying this command's events",
                        ),
                    });
                }
                tracing::info!(events = sealed.len(), version = next.version, "command accepted");
                metrics::counter!("keel_handler_commands_total", "outcome" => "accepted", "reason" => "").increment(1);
                for event in &events {
                    metrics::counter!("keel_handler_events_total", "event_type" => event.event_type()).increment(1);
                }
                let outcome = Outcome::Accepted {
                    event_ids: sealed.iter().map(|seal| seal.event_id).collect(),
                    versions: sealed.iter().map(|seal| seal.version).collect(),
                    position: None,
                };
                let result = result_of(outcome);
                let memory = scratch.entry(partition).or_default();
                memory.streams.insert(stream_key_pair, next);
                memory.results.insert(result_key, result.clone());
                Ok(planned(result, sealed))
            }
        }
    }

    /// `sealed`, if every event fits the producer's record limit with its key and headers;
    /// else the refusal of the command (producing it would fail the whole transaction).
    fn within_record_limit(
        &self,
        tenant: &str,
        stream: &str,
        sealed: Vec<SealedEvent>,
    ) -> Result<Vec<SealedEvent>, Rejection> {
        let key = tenant.len() + 1 + stream.len();
        let limit = self.max_record_bytes;
        match sealed
            .iter()
            .find(|event| key + event.bytes.len() + RECORD_OVERHEAD > limit)
        {
            None => Ok(sealed),
            Some(event) => Err(Rejection::new(
                Reason::EventTooLarge.code(),
                format!(
                    "event version {} of this command is {} bytes sealed; a record may hold {} with its key and headers",
                    event.version,
                    event.bytes.len(),
                    limit.saturating_sub(key + RECORD_OVERHEAD)
                ),
            )),
        }
    }

    fn refuse(
        &self,
        result: CommandResult,
        rejection: &Rejection,
        scratch: &mut HashMap<i32, PartitionMemory<A::State>>,
        partition: i32,
        planned: impl FnOnce(CommandResult, Vec<SealedEvent>) -> Planned,
    ) -> Planned {
        tracing::info!(reason = %rejection.reason, message = %rejection.message, "command rejected");
        metrics::counter!("keel_handler_commands_total", "outcome" => "rejected", "reason" => rejection.reason.clone())
            .increment(1);
        if let Some(tenant) = &result.tenant {
            scratch
                .entry(partition)
                .or_default()
                .results
                .insert((tenant.clone(), result.command_id), result.clone());
        }
        planned(result, Vec::new())
    }
}

fn rejected(rejection: &Rejection) -> Outcome {
    let mut message = rejection.message.clone();
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES - 3;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
        message.push('…');
    }
    Outcome::Rejected {
        reason: rejection.reason.clone(),
        message,
        current_version: rejection.current_version,
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
