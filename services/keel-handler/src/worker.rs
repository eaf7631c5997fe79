//! The exactly-once loop.
//!
//! One Kafka transaction per batch of commands: every event, every result, every DLQ record
//! and the consumed offsets commit together or not at all. Decision state in memory changes
//! only once the transaction has committed; it is then written to the CQL store, and a crash
//! before that write is repaired by the replay on the next assignment (`replay.rs`).

use keel_results::Reason;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::future::join_all;
use keel_domain::{Aggregate, DomainEvent, Recorded};
use keel_handler_state::{HandlerState, StateBatch, StoredResult, StreamRecord, Watermark};
use keel_kafka::partition::{partition_for, stream_key};
use keel_kafka::trace::TraceHeaders;
use keel_service::{Readiness, now_micros};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::future_producer::Delivery;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tracing::Instrument;
use uuid::Uuid;

use crate::codec::{AppendContext, ChainHead, Codec, DecodedCommand, SealError, SealedEvent, Undecodable};
use crate::config::HandlerConfig;
use crate::context::HandlerContext;
use crate::decide::{Decision, Gatekeeper, Rejection};
use crate::faults::{Isolation, Quarantine, record_refused};
use crate::memory::{MemoryBounds, PartitionMemory, StreamEntry};
use crate::writer::StateWriter;
use keel_results::{CommandResult, LogPosition, Outcome};

/// How long one transactional call may block.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// How long trimming memory waits for the state writer to catch up.
const MEMORY_TRIM_WAIT: Duration = Duration::from_secs(1);
/// The consumer name under which watermarks are stored.
pub(crate) const WATERMARK_CONSUMER: &str = "keel-handler";
/// Bytes a record's headers and framing may add to its key and value (trace context,
/// `keel-event-id`, the record batch overhead), kept free under the producer's limit.
const RECORD_OVERHEAD: usize = 1024;
/// The most bytes of a stream's stored state snapshot (a large cell is slow in ScyllaDB,
/// and a mutation over half the commit-log segment is refused).
pub(crate) const MAX_SNAPSHOT_BYTES: usize = 1024 * 1024;

/// Why the loop stopped.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WorkerError {
    /// This instance can go no further (fenced by a newer instance, a fatal transactional
    /// state, unreadable state): the process must exit and be restarted.
    #[error("fatal: {0}")]
    Fatal(String),
    /// The batch failed for a reason that may pass (a broker or the CQL store unavailable):
    /// nothing of it committed; it is rewound and retried with backoff.
    #[error("retryable: {0}")]
    Retry(String),
    /// A command of the batch was found poisoned and quarantined: nothing of the batch
    /// committed; it is rewound and retried at once, refusing that command.
    #[error("a command was quarantined")]
    Quarantined,
    /// The batch failed for a reason nobody classified: it is retried with backoff one
    /// command at a time, until the command that fails alone is found (`faults.rs`).
    #[error("unexplained: {0}")]
    Unexplained(String),
}

/// A command of the batch, decoded or not, with its raw record.
enum Item<'m, C> {
    Command {
        partition: i32,
        offset: i64,
        raw: &'m [u8],
        command: Box<DecodedCommand<C>>,
        trace: TraceHeaders,
    },
    Undecodable {
        partition: i32,
        offset: i64,
        raw: &'m [u8],
        error: Undecodable,
        trace: TraceHeaders,
    },
}

/// What one command will write, before offsets are known.
struct Planned {
    partition: i32,
    offset: i64,
    tenant: Option<String>,
    stream: Option<String>,
    result: Option<CommandResult>,
    events: Vec<SealedEvent>,
    /// The dead letter: a bounded copy of the record and its headers.
    dlq: Option<(Vec<u8>, OwnedHeaders)>,
    /// The trace context for what this command writes (W3C `traceparent`).
    trace: TraceHeaders,
}

pub(crate) struct Worker<A: Aggregate, C: Codec<A>, S: HandlerState> {
    pub(crate) config: Arc<HandlerConfig>,
    pub(crate) codec: Arc<C>,
    pub(crate) state: Arc<S>,
    pub(crate) gatekeeper: Arc<Gatekeeper>,
    pub(crate) consumer: StreamConsumer<HandlerContext>,
    pub(crate) context: HandlerContext,
    pub(crate) producer: FutureProducer<keel_kafka::clients::Named>,
    pub(crate) partitions: HashMap<i32, PartitionMemory<A::State>>,
    /// The most streams and results remembered per partition.
    pub(crate) bounds: MemoryBounds,
    /// Writes committed decision state to CQL in the background.
    pub(crate) writer: StateWriter,
    pub(crate) readiness: Readiness,
    pub(crate) partition_count: i32,
    /// Commands found poisoned: refused and dead-lettered when their batch is retried.
    pub(crate) quarantine: Quarantine,
    /// Narrowing an unexplained failure down to one command.
    pub(crate) isolation: Isolation,
    /// The consumer reported a fatal error (the group fenced it): it must be replaced.
    pub(crate) fenced: bool,
}

impl<A, C, S> Worker<A, C, S>
where
    A: Aggregate,
    C: Codec<A>,
    S: HandlerState,
{
    /// Runs until `shutdown` resolves or Kafka fences this instance.
    pub(crate) async fn run(mut self, shutdown: impl std::future::Future<Output = ()>) -> Result<(), WorkerError> {
        tokio::pin!(shutdown);
        let mut failures = 0_u32;
        loop {
            let batch = tokio::select! {
                () = &mut shutdown => break,
                batch = self.collect_batch() => batch,
            };
            if self.fenced {
                // Nothing of `batch` was decided; the new consumer resumes from the offsets
                // committed with the last transaction.
                self.rejoin()?;
                continue;
            }
            if batch.is_empty() {
                continue;
            }
            let first_offsets = first_offsets(&batch);
            let first = batch.first().map(|m| (m.partition(), m.offset())).unwrap_or_default();
            let size = batch.len();
            let outcome = self.replay_then_process(batch).await;
            if let Err(WorkerError::Quarantined) = outcome {
                // Nothing committed; the retry refuses the quarantined command at once.
                self.rewind(&first_offsets)?;
                continue;
            }
            let outcome = match outcome {
                Err(WorkerError::Unexplained(message)) => {
                    self.rewind(&first_offsets)?;
                    if let Some((partition, offset)) = self.isolation.failed(first, size) {
                        self.quarantine.add(
                            partition,
                            offset,
                            Rejection::new(
                                Reason::InternalError.code(),
                                "the command failed alone repeatedly for a reason not classified; see the handler's log",
                            ),
                        );
                        continue;
                    }
                    tracing::warn!(error = %message, size, "batch failed for an unexplained reason; isolating its commands");
                    Err(WorkerError::Retry(message))
                }
                other => other,
            };
            match outcome {
                Ok(()) => {
                    self.isolation.succeeded();
                    if failures > 0 {
                        tracing::info!(failures, "processing resumed");
                        self.readiness.set("processing", true, "resumed");
                        metrics::gauge!("keel_handler_paused").set(0.0);
                    }
                    failures = 0;
                }
                Err(WorkerError::Fatal(message)) => return Err(WorkerError::Fatal(message)),
                Err(WorkerError::Quarantined | WorkerError::Unexplained(_)) => {}
                Err(WorkerError::Retry(message)) => {
                    // Nothing of the batch committed: rewind it, wait, and try again. The
                    // commands are never skipped; past the bound the handler says it is paused.
                    // (Rewinding twice after an unexplained failure is harmless.)
                    self.rewind(&first_offsets)?;
                    failures += 1;
                    let paused = failures >= self.config.retry_pause_after;
                    let detail = format!("{failures} consecutive failures, last: {message}");
                    if paused {
                        tracing::error!(failures, error = %message, "processing paused: retrying with backoff");
                    } else {
                        tracing::warn!(failures, error = %message, "batch failed: retrying with backoff");
                    }
                    self.readiness.set("processing", !paused, detail);
                    metrics::counter!("keel_handler_batch_retries_total").increment(1);
                    metrics::gauge!("keel_handler_paused").set(if paused { 1.0 } else { 0.0 });
                    tokio::select! {
                        () = &mut shutdown => break,
                        () = tokio::time::sleep(keel_service::backoff(failures, Duration::from_millis(self.config.retry_backoff_max_ms))) => {}
                    }
                }
            }
        }
        self.writer.finish().await;
        tracing::info!("handler stopped: no transaction open, state written");
        Ok(())
    }

    async fn replay_then_process(&mut self, batch: Vec<OwnedMessage>) -> Result<(), WorkerError> {
        for partition in batch_partitions(&batch) {
            if !self.partitions.contains_key(&partition) {
                self.replay_partition(partition).await?;
            }
        }
        self.process_batch(batch).await
    }

    /// Replaces a consumer that failed fatally with a new one of the same static member id,
    /// as a restart of the process would: what it remembered of its partitions is dropped
    /// (the new assignment replays them), nothing committed is lost.
    fn rejoin(&mut self) -> Result<(), WorkerError> {
        metrics::counter!("keel_handler_consumer_rejoins_total").increment(1);
        self.readiness
            .set("partitions", false, "rejoining the group with a new consumer");
        self.partitions.clear();
        self.quarantine = Quarantine::default();
        self.isolation = Isolation::default();
        self.context.take();
        let consumer = crate::group_consumer(&self.config, self.context.clone())
            .map_err(|error| WorkerError::Fatal(format!("creating a new consumer: {error}")))?;
        let old = std::mem::replace(&mut self.consumer, consumer);
        tokio::task::block_in_place(|| drop(old));
        self.fenced = false;
        Ok(())
    }

    /// Seeks each partition back to the first offset of a batch that did not commit.
    fn rewind(&self, first_offsets: &BTreeMap<i32, i64>) -> Result<(), WorkerError> {
        for (&partition, &offset) in first_offsets {
            let topic = &self.config.commands_topic;
            if let Err(error) = self
                .consumer
                .seek(topic, partition, Offset::Offset(offset), TXN_TIMEOUT)
            {
                return Err(WorkerError::Fatal(format!("rewinding partition {partition}: {error}")));
            }
        }
        Ok(())
    }

    /// Applies rebalances recorded by the consumer context.
    fn apply_rebalances(&mut self, batch: &mut Vec<OwnedMessage>) {
        let log = self.context.take();
        for partition in &log.revoked {
            self.partitions.remove(partition);
            self.quarantine.revoked(*partition);
            batch.retain(|message| message.partition() != *partition);
        }
        if log.rebalanced {
            // Ready once the group has given this instance its share, even none: until then
            // it decides nothing.
            let assigned: Vec<i32> = log.assigned.iter().copied().collect();
            self.readiness.set(
                "partitions",
                true,
                format!("assigned {assigned:?} (replayed on first command)"),
            );
        }
    }

    /// Waits for the first command (up to a second), then gathers more for the linger time.
    async fn collect_batch(&mut self) -> Vec<OwnedMessage> {
        let mut batch = Vec::new();
        let linger = Duration::from_millis(self.config.batch_linger_ms);
        let mut deadline = Instant::now() + Duration::from_secs(1);
        let limit = self.isolation.batch_limit(self.config.max_batch);
        while batch.len() < limit {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let received = tokio::time::timeout(remaining, self.consumer.recv())
                .await
                .map(|result| result.map(|message| message.detach()));
            // A rebalance runs inside `recv`: it concerns the messages gathered before it, and
            // a message this same `recv` returned was fetched under the new assignment, so it
            // must not be dropped with them (it would be skipped when later offsets commit).
            self.apply_rebalances(&mut batch);
            match received {
                Err(_elapsed) => break,
                Ok(Ok(message)) => {
                    if batch.is_empty() {
                        deadline = Instant::now() + linger;
                    }
                    batch.push(message);
                }
                Ok(Err(KafkaError::MessageConsumptionFatal(code))) => {
                    // librdkafka's consumer is unusable after a fatal error. Seen after a
                    // broker restart: the coordinator fences the static member's old
                    // session (FencedInstanceId) while it rejoins.
                    tracing::warn!(%code, "the consumer failed fatally; it is replaced and rejoins the group");
                    self.fenced = true;
                    break;
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "consuming commands failed; retrying");
                    metrics::counter!("keel_handler_consume_errors_total").increment(1);
                    break;
                }
            }
        }
        batch
    }

    fn decode<'m>(&self, message: &'m OwnedMessage) -> Item<'m, A::Command> {
        let partition = message.partition();
        let offset = message.offset();
        let raw = message.payload().unwrap_or_default();
        let trace = TraceHeaders::from_record(message.headers());
        let undecodable = |error: Undecodable| Item::Undecodable {
            partition,
            offset,
            raw,
            error,
            trace: trace.clone(),
        };
        if raw.len() > self.config.max_command_bytes {
            // Still read what can be read (valid ids only), so the sender gets a result for
            // its command id.
            let readable = match self.codec.decode_command(raw) {
                Ok(command) => Some((
                    Some(command.incoming.command_id),
                    Some(command.incoming.tenant),
                    Some(command.incoming.stream),
                )),
                Err(error) => Some((error.command_id, error.tenant, error.stream)),
            };
            let (command_id, tenant, stream) = readable.unwrap_or_default();
            return undecodable(Undecodable {
                command_id,
                tenant,
                stream,
                reason: Reason::PayloadTooLarge.code(),
                error: format!(
                    "the command is {} bytes, the limit is {}",
                    raw.len(),
                    self.config.max_command_bytes
                ),
            });
        }
        match self.codec.decode_command(raw) {
            Ok(command) => Item::Command {
                partition,
                offset,
                raw,
                command: Box::new(command),
                trace,
            },
            Err(error) => undecodable(error),
        }
    }

    /// Loads, from the CQL store, the streams and results of this batch not held in memory.
    ///
    /// A store out of reach fails the batch (it is retried); a stream or result the store
    /// holds but cannot give back (a permanent error of its own) quarantines the commands
    /// that need it; a snapshot of another release, or one that no longer decodes, is
    /// rebuilt from the log.
    async fn prefetch(&mut self, items: &[Item<'_, A::Command>]) -> Result<(), WorkerError> {
        type Needing = (i32, Vec<i64>);
        let mut streams: BTreeMap<(String, String), Needing> = BTreeMap::new();
        let mut results: BTreeMap<(String, Uuid), Needing> = BTreeMap::new();
        for item in items {
            let Item::Command {
                partition,
                offset,
                command,
                ..
            } = item
            else {
                continue;
            };
            if self.quarantine.get(*partition, *offset).is_some() {
                continue;
            }
            let memory = self.partitions.entry(*partition).or_default();
            let key = (command.incoming.tenant.clone(), command.incoming.stream.clone());
            if !memory.streams.contains_key(&key) {
                streams.entry(key).or_insert((*partition, Vec::new())).1.push(*offset);
            }
            let result_key = (command.incoming.tenant.clone(), command.incoming.command_id);
            if !memory.results.contains_key(&result_key) {
                results
                    .entry(result_key)
                    .or_insert((*partition, Vec::new()))
                    .1
                    .push(*offset);
            }
        }
        if streams.is_empty() && results.is_empty() {
            return Ok(());
        }
        let state = &self.state;
        // Streams and results are read together: both are point reads, independent.
        let (loaded_streams, loaded_results) = futures::join!(
            join_all(streams.iter().map(|((tenant, stream), _)| state.stream(tenant, stream))),
            join_all(
                results
                    .iter()
                    .map(|((tenant, command_id), _)| state.result(tenant, *command_id))
            ),
        );
        let mut stale: BTreeMap<i32, BTreeSet<(String, String)>> = BTreeMap::new();
        for ((key, (partition, offsets)), loaded) in streams.into_iter().zip(loaded_streams) {
            let entry = match self.store_read(loaded)? {
                Err(error) => {
                    self.quarantine_all(partition, &offsets, Reason::StateUnreadable.code(), &error);
                    continue;
                }
                Ok(None) => StreamEntry::default(),
                Ok(Some(record)) => match entry_from_record::<A>(&record) {
                    Ok(entry) => entry,
                    Err(why) => {
                        tracing::warn!(partition, why = %why, "stored stream state is of another release; rebuilding it from the log");
                        stale.entry(partition).or_default().insert(key);
                        continue;
                    }
                },
            };
            self.partitions.entry(partition).or_default().streams.insert(key, entry);
        }
        for (partition, keys) in stale {
            let rebuilt = self.rebuild_streams(partition, &keys).await?;
            self.partitions.entry(partition).or_default().streams.extend(rebuilt);
        }
        for ((key, (partition, offsets)), loaded) in results.into_iter().zip(loaded_results) {
            let stored = match self.store_read(loaded)? {
                Err(error) => {
                    self.quarantine_all(partition, &offsets, Reason::StateUnreadable.code(), &error);
                    continue;
                }
                Ok(stored) => stored,
            };
            if let Some(stored) = stored {
                match self.codec.decode_result(&stored.result) {
                    Ok(result) => {
                        self.partitions
                            .entry(partition)
                            .or_default()
                            .results
                            .insert(key, result);
                    }
                    Err(error) => self.quarantine_all(partition, &offsets, Reason::StateUnreadable.code(), &error),
                }
            }
        }
        self.readiness.set("cql", true, "decision state readable");
        Ok(())
    }

    /// A read of the decision state: an outage fails the batch (retried, and `/readyz`
    /// says so); a permanent error is the caller's to pin on the commands that need it.
    fn store_read<T>(
        &self,
        loaded: Result<T, keel_handler_state::StateError>,
    ) -> Result<Result<T, keel_handler_state::StateError>, WorkerError> {
        match loaded {
            Err(error) if error.is_transient() => {
                self.readiness.set("cql", false, error.to_string());
                Err(WorkerError::Retry(format!("reading decision state: {error}")))
            }
            other => Ok(other),
        }
    }

    fn quarantine_all(&mut self, partition: i32, offsets: &[i64], reason: &str, error: &dyn std::fmt::Display) {
        for offset in offsets {
            self.quarantine.add(
                partition,
                *offset,
                Rejection::new(
                    reason,
                    format!("the stored decision state this command needs cannot be read: {error}"),
                ),
            );
        }
    }

    async fn process_batch(&mut self, messages: Vec<OwnedMessage>) -> Result<(), WorkerError> {
        let started = Instant::now();
        let items: Vec<Item<'_, A::Command>> = messages.iter().map(|message| self.decode(message)).collect();
        self.prefetch(&items).await?;

        let mut scratch: HashMap<i32, PartitionMemory<A::State>> = HashMap::new();
        transactional(|| self.producer.begin_transaction())
            .map_err(|error| WorkerError::Fatal(format!("beginning a transaction: {error}")))?;

        let outcome = self.produce_batch(&items, &mut scratch).await;
        let outcome = match outcome {
            Ok(written) => self.commit(&messages).map(|()| written),
            Err(error) => Err(error),
        };
        match outcome {
            Ok((state_batch, counts)) => {
                for (partition, next) in next_offsets(&messages) {
                    self.quarantine.committed(partition, next);
                }
                self.merge(scratch);
                self.writer.write(state_batch).await;
                self.trim_memory().await;
                metrics::histogram!("keel_handler_transaction_seconds").record(started.elapsed().as_secs_f64());
                metrics::counter!("keel_handler_events_appended_total").increment(counts);
                Ok(())
            }
            Err(error) => {
                tracing::warn!(%error, "transaction failed; aborting it");
                metrics::counter!("keel_handler_transactions_aborted_total").increment(1);
                if error.is_fatal() {
                    return Err(WorkerError::Fatal(error.to_string()));
                }
                if let Err(abort) = transactional(|| self.producer.abort_transaction(TXN_TIMEOUT)) {
                    return Err(WorkerError::Fatal(format!("aborting a transaction failed: {abort}")));
                }
                // The loop rewinds the batch and retries it: at once without a quarantined
                // command, one command at a time after an unexplained failure, with backoff
                // after an outage.
                match error {
                    TxnError::Record {
                        partition,
                        offset,
                        rejection,
                    } => {
                        self.quarantine.add(partition, offset, rejection);
                        Err(WorkerError::Quarantined)
                    }
                    TxnError::Codec(message) => Err(WorkerError::Unexplained(message)),
                    other => Err(WorkerError::Retry(format!("transaction aborted: {other}"))),
                }
            }
        }
    }

    /// Decides every command and produces its records; returns the decision state to write
    /// once the transaction has committed, and how many events were appended.
    async fn produce_batch(
        &mut self,
        items: &[Item<'_, A::Command>],
        scratch: &mut HashMap<i32, PartitionMemory<A::State>>,
    ) -> Result<(StateBatch, u64), TxnError> {
        let mut planned = Vec::with_capacity(items.len());
        for item in items {
            planned.push(self.plan(item, scratch).await?);
        }

        // Phase 1: events, whose offsets the results report.
        let events_topic = self.config.events_topic.as_str();
        let producer = &self.producer;
        let event_sends = planned.iter().flat_map(|plan| {
            plan.events.iter().map(move |event| {
                let key = stream_key(
                    plan.tenant.as_deref().unwrap_or_default(),
                    plan.stream.as_deref().unwrap_or_default(),
                );
                let event_id = event.event_id.to_string();
                let headers = plan.trace.add_to(OwnedHeaders::new().insert(Header {
                    key: "keel-event-id",
                    value: Some(&event_id),
                }));
                async move {
                    let record = FutureRecord::to(events_topic)
                        .partition(plan.partition)
                        .key(&key)
                        .payload(&event.bytes)
                        .headers(headers);
                    producer.send(record, Duration::ZERO).await.map_err(|(error, _)| error)
                }
            })
        });
        let sent = join_all(event_sends).await;
        let event_owners = planned
            .iter()
            .flat_map(|plan| plan.events.iter().map(move |_| (plan.partition, plan.offset)));
        let deliveries: Vec<_> = sent
            .into_iter()
            .zip(event_owners)
            .map(|(delivery, owner)| delivery.map_err(|error| (error, owner)))
            .collect();
        let event_offsets = delivered(deliveries)?;
        let mut event_offsets = event_offsets.into_iter().map(|delivery| delivery.offset);

        let mut batch = StateBatch::default();
        let mut appended = 0_u64;
        let mut last_event_offset: BTreeMap<i32, i64> = BTreeMap::new();
        let mut results = Vec::new();
        let mut result_traces = Vec::new();
        for plan in &mut planned {
            let offsets: Vec<i64> = plan.events.iter().filter_map(|_| event_offsets.next()).collect();
            appended += offsets.len() as u64;
            if let (Some(&last), Some(result)) = (offsets.last(), plan.result.as_mut()) {
                last_event_offset.insert(plan.partition, last);
                if let Outcome::Accepted { position, .. } = &mut result.outcome {
                    *position = Some(LogPosition {
                        partition: plan.partition,
                        offset: last,
                    });
                }
                let (tenant, stream) = (
                    plan.tenant.clone().unwrap_or_default(),
                    plan.stream.clone().unwrap_or_default(),
                );
                if let Some(entry) = scratch
                    .get_mut(&plan.partition)
                    .and_then(|m| m.streams.get_mut(&(tenant, stream)))
                {
                    entry.position = last;
                }
            }
            if let Some(result) = &plan.result {
                results.push((
                    plan.partition,
                    plan.offset,
                    plan.tenant.clone(),
                    plan.stream.clone(),
                    result.clone(),
                ));
                result_traces.push(plan.trace.add_to(OwnedHeaders::new()));
            }
        }

        // Now that positions are known, remember the final results; a command id seen twice
        // in this batch answers the second time with the first's final result.
        let mut finals: HashMap<(String, Uuid), CommandResult> = HashMap::new();
        for (partition, _, tenant, _, result) in &mut results {
            let Some(tenant) = tenant else { continue };
            let key = (tenant.clone(), result.command_id);
            match finals.get(&key) {
                Some(first) => *result = first.clone(),
                None => {
                    finals.insert(key.clone(), result.clone());
                    scratch
                        .entry(*partition)
                        .or_default()
                        .results
                        .insert(key, result.clone());
                }
            }
        }

        // Phase 2: results and dead letters.
        let mut encoded = Vec::with_capacity(results.len());
        for ((partition, _, tenant, stream, result), headers) in results.iter().zip(result_traces) {
            let bytes = self
                .codec
                .encode_result(result)
                .map_err(|error| TxnError::Codec(error.to_string()))?;
            let key = stream_key(
                tenant.as_deref().unwrap_or_default(),
                stream.as_deref().unwrap_or_default(),
            );
            encoded.push((*partition, key, bytes, headers));
        }
        let result_sends = encoded.iter().map(|(partition, key, bytes, headers)| {
            let record = FutureRecord::to(&self.config.results_topic)
                .partition(*partition)
                .key(key)
                .payload(bytes)
                .headers(headers.clone());
            self.producer.send(record, Duration::ZERO)
        });
        let dlq_sends = planned.iter().filter_map(|plan| {
            let (value, headers) = plan.dlq.as_ref()?;
            let record: FutureRecord<'_, (), Vec<u8>> = FutureRecord::to(&self.config.dlq_topic)
                .payload(value)
                .headers(headers.clone());
            Some(self.producer.send(record, Duration::ZERO))
        });
        let (result_deliveries, dlq_deliveries) = futures::join!(join_all(result_sends), join_all(dlq_sends));
        for delivery in dlq_deliveries {
            // A dead letter is bounded far below any record limit: its failure is the broker's.
            delivery.map_err(|(error, _)| error)?;
            metrics::counter!("keel_handler_dlq_total").increment(1);
        }
        let result_deliveries = delivered(
            result_deliveries
                .into_iter()
                .zip(&results)
                .map(|(delivery, (partition, offset, ..))| {
                    delivery.map_err(|(error, _)| (error, (*partition, *offset)))
                })
                .collect(),
        )?;
        let mut last_result_offset: BTreeMap<i32, i64> = BTreeMap::new();
        for ((partition, command_offset, tenant, _, result), delivery) in results.iter().zip(result_deliveries) {
            last_result_offset.insert(*partition, delivery.offset);
            if let Some(tenant) = tenant {
                let bytes = self
                    .codec
                    .encode_result(result)
                    .map_err(|error| TxnError::Codec(error.to_string()))?;
                batch.results.push(StoredResult {
                    tenant: tenant.clone(),
                    command_id: result.command_id,
                    result: bytes,
                    position: *command_offset,
                });
            }
        }

        for memory in scratch.values() {
            for ((tenant, stream), entry) in memory.streams.iter().filter(|(_, entry)| entry.broken.is_none()) {
                batch
                    .streams
                    .push(record_from_entry::<A>(tenant, stream, entry).map_err(TxnError::Codec)?);
            }
        }
        for (partition, offset) in last_event_offset {
            batch.watermarks.push(Watermark {
                consumer: WATERMARK_CONSUMER.into(),
                topic: self.config.events_topic.clone(),
                partition,
                next_offset: offset + 1,
            });
        }
        for (partition, offset) in last_result_offset {
            batch.watermarks.push(Watermark {
                consumer: WATERMARK_CONSUMER.into(),
                topic: self.config.results_topic.clone(),
                partition,
                next_offset: offset + 1,
            });
        }
        Ok((batch, appended))
    }

    /// Decides one command against the batch's view of its stream.
    /// Decides one command: its result and events. An error means the batch cannot be
    /// decided now (a key store or KMS out of reach) and is retried as a whole.
    async fn plan(
        &self,
        item: &Item<'_, A::Command>,
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
            .plan_command(partition, offset, command, scratch)
            .instrument(span.clone())
            .await?;
        planned.trace = TraceHeaders::of_span(&span).or(trace);
        if let Some(rejection) = self.quarantine.get(partition, offset) {
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
            topic: &self.config.commands_topic,
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
        };

        // A quarantined command is refused with why, before anything else reads it.
        if let Some(rejection) = self.quarantine.get(partition, offset) {
            let rejection = rejection.clone();
            return Ok(self.refuse(result_of(rejected(&rejection)), &rejection, scratch, partition, planned));
        }

        // A replayed command id gets its original result and writes nothing else.
        let result_key = (incoming.tenant.clone(), incoming.command_id);
        let known = scratch
            .get(&partition)
            .and_then(|memory| memory.results.get(&result_key))
            .or_else(|| {
                self.partitions
                    .get(&partition)
                    .and_then(|memory| memory.results.get(&result_key))
            });
        if let Some(original) = known {
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
                self.partitions
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
        let now = u64::try_from(now_micros() / 1_000_000).unwrap_or_default();
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
                    recorded_at_micros: now_micros(),
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
        let limit = self.config.max_record_bytes;
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

    /// Adds the consumed offsets to the transaction and commits it.
    fn commit(&self, messages: &[OwnedMessage]) -> Result<(), TxnError> {
        let mut offsets = TopicPartitionList::new();
        for (partition, next) in next_offsets(messages) {
            offsets.add_partition_offset(&self.config.commands_topic, partition, Offset::Offset(next))?;
        }
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or_else(|| TxnError::Unavailable("the consumer has no group metadata yet".into()))?;
        transactional(|| {
            self.producer
                .send_offsets_to_transaction(&offsets, &metadata, TXN_TIMEOUT)
        })?;
        transactional(|| self.producer.commit_transaction(TXN_TIMEOUT))?;
        Ok(())
    }

    /// Keeps each partition's memory within its bounds: once the state writer has put
    /// everything committed into the CQL store, entries are dropped there (`memory.rs`). A
    /// writer that cannot catch up soon (the store is struggling) leaves memory as it is
    /// for now: holding more for a while is better than deciding from a store behind.
    async fn trim_memory(&mut self) {
        let bounds = self.bounds;
        if self.partitions.values().any(|memory| memory.over(bounds)) {
            if self.writer.caught_up(MEMORY_TRIM_WAIT).await {
                for memory in self.partitions.values_mut() {
                    memory.trim(bounds);
                }
            } else {
                tracing::warn!("decision state not yet in the store; memory stays above its bounds for now");
            }
        }
        let (streams, results) = self.partitions.values().fold((0, 0), |(streams, results), memory| {
            (streams + memory.streams.len(), results + memory.results.len())
        });
        metrics::gauge!("keel_handler_memory_streams").set(streams as f64);
        metrics::gauge!("keel_handler_memory_results").set(results as f64);
    }

    fn merge(&mut self, scratch: HashMap<i32, PartitionMemory<A::State>>) {
        for (partition, memory) in scratch {
            let target = self.partitions.entry(partition).or_default();
            target.streams.extend(memory.streams);
            target.results.extend(memory.results);
        }
    }
}

/// A failure inside a transaction.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TxnError {
    #[error("kafka: {0}")]
    Kafka(#[from] KafkaError),
    #[error("{0}")]
    Codec(String),
    /// A key store or KMS out of reach while sealing: the batch is retried.
    #[error("sealing events: {0}")]
    Unavailable(String),
    /// Something about one command makes the transaction fail (the broker refuses its
    /// record, the domain cannot fold its events): it is quarantined.
    #[error("the command at {partition}/{offset} cannot be written: {}", rejection.message)]
    Record {
        partition: i32,
        offset: i64,
        rejection: Rejection,
    },
}

/// Where a command was read: its partition and offset.
type CommandAt = (i32, i64);

/// The deliveries of a transaction's sends, or why they failed: a record the broker
/// refuses for itself blames its command (the first such, as a refused record aborts the
/// transaction and fails the sends after it); any other failure blames the broker.
fn delivered(deliveries: Vec<Result<Delivery, (KafkaError, CommandAt)>>) -> Result<Vec<Delivery>, TxnError> {
    if let Some((error, (partition, offset))) = deliveries
        .iter()
        .find_map(|delivery| delivery.as_ref().err().filter(|(error, _)| record_refused(error)))
    {
        return Err(TxnError::Record {
            partition: *partition,
            offset: *offset,
            rejection: Rejection::new(
                Reason::RecordRefused.code(),
                format!("the broker refused a record of this command: {error}"),
            ),
        });
    }
    deliveries
        .into_iter()
        .map(|delivery| delivery.map_err(|(error, _)| TxnError::Kafka(error)))
        .collect()
}

impl TxnError {
    fn is_fatal(&self) -> bool {
        match self {
            Self::Kafka(KafkaError::Transaction(error)) => error.is_fatal(),
            _ => false,
        }
    }
}

/// Runs a blocking transactional call off the async scheduler's core threads.
fn transactional<T>(call: impl FnOnce() -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    tokio::task::block_in_place(call)
}

/// The most bytes of a refusal's message in a result (parsers' errors can quote input).
const MAX_MESSAGE_BYTES: usize = 1024;

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

fn batch_partitions(batch: &[OwnedMessage]) -> Vec<i32> {
    let mut partitions: Vec<i32> = batch.iter().map(Message::partition).collect();
    partitions.sort_unstable();
    partitions.dedup();
    partitions
}

fn first_offsets(batch: &[OwnedMessage]) -> BTreeMap<i32, i64> {
    let mut first = BTreeMap::new();
    for message in batch {
        first.entry(message.partition()).or_insert(message.offset());
    }
    first
}

fn next_offsets(batch: &[OwnedMessage]) -> BTreeMap<i32, i64> {
    let mut next = BTreeMap::new();
    for message in batch {
        let entry = next.entry(message.partition()).or_insert(0);
        *entry = (*entry).max(message.offset() + 1);
    }
    next
}

/// The stream entry a stored record holds; `Err` with why when its snapshot is of another
/// release of the domain (another [`Aggregate::SNAPSHOT_VERSION`]) or does not decode: the
/// caller rebuilds the stream from the log instead.
pub(crate) fn entry_from_record<A: Aggregate>(record: &StreamRecord) -> Result<StreamEntry<A::State>, String> {
    if record.snapshot_version != A::SNAPSHOT_VERSION {
        return Err(format!(
            "snapshot version {} where this release writes {}",
            record.snapshot_version,
            A::SNAPSHOT_VERSION
        ));
    }
    let state =
        serde_json::from_slice(&record.snapshot).map_err(|error| format!("the snapshot does not decode: {error}"))?;
    Ok(StreamEntry {
        version: record.version,
        hash: record.last_hash.clone(),
        state,
        position: record.position,
        broken: None,
    })
}

pub(crate) fn record_from_entry<A: Aggregate>(
    tenant: &str,
    stream: &str,
    entry: &StreamEntry<A::State>,
) -> Result<StreamRecord, String> {
    let snapshot =
        serde_json::to_vec(&entry.state).map_err(|error| format!("snapshot of {tenant}/{stream}: {error}"))?;
    if snapshot.len() > MAX_SNAPSHOT_BYTES {
        return Err(format!(
            "snapshot of {tenant}/{stream} is {} bytes, over the limit of {MAX_SNAPSHOT_BYTES}",
            snapshot.len()
        ));
    }
    Ok(StreamRecord {
        tenant: tenant.to_owned(),
        stream: stream.to_owned(),
        version: entry.version,
        last_hash: entry.hash.clone(),
        snapshot_version: A::SNAPSHOT_VERSION,
        snapshot,
        position: entry.position,
    })
}
