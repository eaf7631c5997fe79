//! The exactly-once loop.
//!
//! One Kafka transaction per batch of commands: every event, every result, every DLQ record
//! and the consumed offsets commit together or not at all. Decision state in memory changes
//! only once the transaction has committed; it is then written to the CQL store, and a crash
//! before that write is repaired by the replay on the next assignment (`replay.rs`).
//!
//! A batch goes through one stage per module: [`collect`] (records from Kafka, decoded, their
//! stored state prefetched), [`plan`] (each command decided against the batch's view of its
//! stream, without Kafka), [`produce`] (events, results and dead letters sent in the
//! transaction) and [`commit`] (the consumed offsets with them, then memory merged). This
//! module keeps the loop: rewinding a failed batch, retrying it, rejoining the group.

mod collect;
mod commit;
mod plan;
mod produce;

use keel_results::Reason;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keel_domain::Aggregate;
use keel_handler_state::{HandlerState, StreamRecord};
use keel_service::{Readiness, now_micros};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, Producer};
use rdkafka::{Message, Offset};

use crate::codec::Codec;
use crate::config::HandlerConfig;
use crate::context::HandlerContext;
use crate::decide::Rejection;
use crate::faults::{Isolation, Quarantine};
use crate::memory::{MemoryBounds, PartitionMemory, StreamEntry};
use crate::writer::StateWriter;

use self::collect::Item;
use self::commit::{TxnError, next_offsets, transactional};
pub(crate) use self::plan::Planner;

/// How long one transactional call may block.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);
/// The consumer name under which watermarks are stored.
pub(crate) const WATERMARK_CONSUMER: &str = "keel-handler";
/// The header of a result that answers one delivery of a command id and is not its result
/// (a duplicate whose credential did not authenticate): replay does not learn it, so the
/// original stays the answer.
pub(crate) const RESULT_SCOPE_HEADER: &str = "keel-result-scope";
/// [`RESULT_SCOPE_HEADER`]'s value for such a result.
pub(crate) const DELIVERY_SCOPE: &str = "delivery";
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

pub(crate) struct Worker<A: Aggregate, C: Codec<A>, S: HandlerState> {
    pub(crate) config: Arc<HandlerConfig>,
    pub(crate) codec: Arc<C>,
    pub(crate) state: Arc<S>,
    /// Decides the batch's commands (the gatekeeper, the codec that seals, the limits).
    pub(crate) planner: Planner<A, C>,
    pub(crate) consumer: StreamConsumer<HandlerContext>,
    pub(crate) context: HandlerContext,
    pub(crate) producer: FutureProducer<keel_kafka::clients::Named>,
    pub(crate) partitions: HashMap<i32, PartitionMemory<A::State>>,
    /// The most streams and results remembered per partition.
    pub(crate) bounds: MemoryBounds,
    /// Writes committed decision state to CQL in the background.
    pub(crate) writer: StateWriter,
    pub(crate) readiness: Readiness,
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

    /// One batch through every stage: decoded and prefetched, planned, produced and
    /// committed in one transaction, then remembered; on failure, the transaction aborted
    /// and the failure classified for the loop.
    async fn process_batch(&mut self, messages: Vec<OwnedMessage>) -> Result<(), WorkerError> {
        let started = Instant::now();
        let items: Vec<Item<'_, A::Command>> = messages.iter().map(|message| self.decode(message)).collect();
        self.prefetch(&items).await?;

        let mut scratch: HashMap<i32, PartitionMemory<A::State>> = HashMap::new();
        transactional(|| self.producer.begin_transaction())
            .map_err(|error| WorkerError::Fatal(format!("beginning a transaction: {error}")))?;

        let outcome = self
            .planner
            .plan(&self.partitions, &self.quarantine, &items, &mut scratch, now_micros)
            .await;
        let outcome = match outcome {
            Ok(planned) => self.produce_batch(planned, &mut scratch).await,
            Err(error) => Err(error),
        };
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
