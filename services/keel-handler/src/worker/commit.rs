//! Committing a batch: the consumed offsets join the transaction, which commits; then what
//! the batch decided joins the memory of committed batches, kept within its bounds. Also how
//! a failure inside a transaction is told apart ([`TxnError`]).

use keel_results::Reason;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use keel_domain::Aggregate;
use keel_handler_state::HandlerState;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::producer::Producer;
use rdkafka::producer::future_producer::Delivery;
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{TXN_TIMEOUT, Worker};
use crate::codec::Codec;
use crate::decide::Rejection;
use crate::faults::record_refused;
use crate::memory::PartitionMemory;

/// How long trimming memory waits for the state writer to catch up.
const MEMORY_TRIM_WAIT: Duration = Duration::from_secs(1);

impl<A, C, S> Worker<A, C, S>
where
    A: Aggregate,
    C: Codec<A>,
    S: HandlerState,
{
    /// Adds the consumed offsets to the transaction and commits it.
    pub(super) fn commit(&self, messages: &[OwnedMessage]) -> Result<(), TxnError> {
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
    pub(super) async fn trim_memory(&mut self) {
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

    /// Adds what a committed batch decided to the memory of its partitions.
    pub(super) fn merge(&mut self, scratch: HashMap<i32, PartitionMemory<A::State>>) {
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
pub(super) fn delivered(deliveries: Vec<Result<Delivery, (KafkaError, CommandAt)>>) -> Result<Vec<Delivery>, TxnError> {
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
    /// Whether the producer can go no further (fenced, or a fatal transactional state).
    pub(super) fn is_fatal(&self) -> bool {
        match self {
            Self::Kafka(KafkaError::Transaction(error)) => error.is_fatal(),
            _ => false,
        }
    }
}

/// Runs a blocking transactional call off the async scheduler's core threads.
pub(super) fn transactional<T>(call: impl FnOnce() -> Result<T, KafkaError>) -> Result<T, KafkaError> {
    tokio::task::block_in_place(call)
}

/// The offset after the last record of each partition in `batch`: what the group resumes
/// from once the batch has committed.
pub(super) fn next_offsets(batch: &[OwnedMessage]) -> BTreeMap<i32, i64> {
    let mut next = BTreeMap::new();
    for message in batch {
        let entry = next.entry(message.partition()).or_insert(0);
        *entry = (*entry).max(message.offset() + 1);
    }
    next
}
