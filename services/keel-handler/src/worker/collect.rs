//! Collecting a batch: command records gathered from the consumer (rebalances applied between
//! two polls), decoded, and the stored decision state they need loaded into memory.

use keel_results::Reason;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::future::join_all;
use keel_domain::Aggregate;
use keel_handler_state::HandlerState;
use keel_kafka::trace::TraceHeaders;
use rdkafka::Message;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use uuid::Uuid;

use super::{Worker, WorkerError, entry_from_record};
use crate::codec::{Codec, DecodedCommand, Undecodable};
use crate::decide::Rejection;
use crate::memory::StreamEntry;

/// A command of the batch, decoded or not, with its raw record: what planning decides.
pub(crate) enum Item<'m, C> {
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

impl<A, C, S> Worker<A, C, S>
where
    A: Aggregate,
    C: Codec<A>,
    S: HandlerState,
{
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
    pub(super) async fn collect_batch(&mut self) -> Vec<OwnedMessage> {
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

    pub(super) fn decode<'m>(&self, message: &'m OwnedMessage) -> Item<'m, A::Command> {
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
    pub(super) async fn prefetch(&mut self, items: &[Item<'_, A::Command>]) -> Result<(), WorkerError> {
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
}
