//! Replay on assignment: before deciding a partition's commands, the handler reads the
//! partition's events and results from its watermarks to the end of the committed log, so
//! its decision state is exact whatever happened between an earlier commit and the CQL
//! write that should have followed it.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use keel_domain::{Aggregate, Recorded};
use keel_handler_state::{HandlerState, StateBatch, StoredResult, Watermark};
use keel_kafka::clients::{self, ReaderContext};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::codec::Codec;
use crate::memory::{PartitionMemory, StreamEntry};
use crate::worker::{
    DELIVERY_SCOPE, RESULT_SCOPE_HEADER, WATERMARK_CONSUMER, Worker, WorkerError, entry_from_record, record_from_entry,
};

/// Gives up on a replay that makes no progress for this long (a broker down, or a
/// transaction of a fenced instance still open and not yet timed out).
const STALL: Duration = Duration::from_secs(120);

impl<A, C, S> Worker<A, C, S>
where
    A: Aggregate,
    C: Codec<A>,
    S: HandlerState,
{
    pub(crate) async fn replay_partition(&mut self, partition: i32) -> Result<(), WorkerError> {
        let started = std::time::Instant::now();
        self.readiness
            .set("partitions", false, format!("replaying partition {partition}"));
        let mut memory = PartitionMemory::<A::State>::default();
        let mut batch = StateBatch::default();

        let events_topic = self.config.events_topic.clone();
        let from = self.watermark(&events_topic, partition).await?;
        let mut replayed = 0_u64;
        let mut last_offset = None;
        let mut stale = BTreeSet::new();
        let mut reader = self.reader(&events_topic, partition, from)?;
        while let Some(record) = next_record(&mut reader, &events_topic, partition).await? {
            last_offset = Some(record.offset);
            let Some(key) = stream_of(&record) else {
                continue;
            };
            if !memory.streams.contains_key(&key) && !stale.contains(&key) {
                let stored = self.state.stream(&key.0, &key.1).await;
                let entry = match stored {
                    Err(error) if error.is_transient() => return Err(state_error(error)),
                    Err(error) => StreamEntry {
                        broken: Some(format!("its stored state cannot be read: {error}")),
                        ..StreamEntry::default()
                    },
                    Ok(None) => StreamEntry::default(),
                    Ok(Some(record)) => match entry_from_record::<A>(&record) {
                        Ok(entry) => entry,
                        Err(why) => {
                            tracing::warn!(partition, why = %why, "stored stream state is of another release; rebuilding it from the log");
                            stale.insert(key);
                            continue;
                        }
                    },
                };
                memory.streams.insert(key.clone(), entry);
            }
            if let Some(entry) = memory.streams.get_mut(&key) {
                replayed += u64::from(self.fold_record(entry, &record).await);
            }
        }
        if !stale.is_empty() {
            memory.streams.extend(self.rebuild_streams(partition, &stale).await?);
        }
        for ((tenant, stream), entry) in memory.streams.iter().filter(|(_, entry)| entry.broken.is_none()) {
            batch
                .streams
                .push(record_from_entry::<A>(tenant, stream, entry).map_err(WorkerError::Fatal)?);
        }
        if let Some(offset) = last_offset {
            batch.watermarks.push(watermark(&events_topic, partition, offset + 1));
        }

        let results_topic = self.config.results_topic.clone();
        let from = self.watermark(&results_topic, partition).await?;
        let mut reader = self.reader(&results_topic, partition, from)?;
        let mut last_offset = None;
        while let Some(record) = next_record(&mut reader, &results_topic, partition).await? {
            last_offset = Some(record.offset);
            if record.delivery_only {
                continue;
            }
            let result = match self.codec.decode_result(&record.value) {
                Ok(result) => result,
                Err(error) => {
                    // Not ours (the handler writes every result): nothing to learn from it.
                    tracing::error!(partition, offset = record.offset, %error, "a result on the results topic does not decode; skipped");
                    metrics::counter!("keel_handler_unreadable_results_total").increment(1);
                    continue;
                }
            };
            if let Some(tenant) = result.tenant.clone() {
                batch.results.push(StoredResult {
                    tenant: tenant.clone(),
                    command_id: result.command_id,
                    result: record.value,
                    position: record.offset,
                });
                memory.results.insert((tenant, result.command_id), result);
            }
        }
        if let Some(offset) = last_offset {
            batch.watermarks.push(watermark(&results_topic, partition, offset + 1));
        }

        self.state.apply(&batch).await.map_err(state_error)?;
        let streams: HashMap<_, _> = memory.streams;
        self.partitions.insert(
            partition,
            PartitionMemory {
                streams,
                results: memory.results,
            },
        );
        tracing::info!(
            partition,
            replayed,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "partition replayed"
        );
        metrics::histogram!("keel_handler_replay_seconds").record(started.elapsed().as_secs_f64());
        self.readiness
            .set("partitions", true, format!("partition {partition} replayed"));
        Ok(())
    }

    /// Rebuilds `streams` of `partition` from the start of the events log: what a stored
    /// snapshot of another release (or one that no longer decodes) is replaced with. One
    /// read of the partition serves every stream asked; only their events are opened (the
    /// record key names the stream). The rebuilt state is written to the store.
    pub(crate) async fn rebuild_streams(
        &mut self,
        partition: i32,
        streams: &BTreeSet<(String, String)>,
    ) -> Result<HashMap<(String, String), StreamEntry<A::State>>, WorkerError> {
        let started = std::time::Instant::now();
        let topic = self.config.events_topic.clone();
        let mut entries: HashMap<(String, String), StreamEntry<A::State>> = streams
            .iter()
            .map(|key| (key.clone(), StreamEntry::default()))
            .collect();
        let mut reader = self.reader(&topic, partition, 0)?;
        while let Some(record) = next_record(&mut reader, &topic, partition).await? {
            if let Some(entry) = stream_of(&record).and_then(|key| entries.get_mut(&key)) {
                self.fold_record(entry, &record).await;
            }
        }
        let mut batch = StateBatch::default();
        for ((tenant, stream), entry) in entries.iter().filter(|(_, entry)| entry.broken.is_none()) {
            batch
                .streams
                .push(record_from_entry::<A>(tenant, stream, entry).map_err(WorkerError::Fatal)?);
        }
        self.state.apply(&batch).await.map_err(state_error)?;
        metrics::counter!("keel_handler_snapshots_rebuilt_total").increment(streams.len() as u64);
        tracing::info!(
            partition,
            streams = streams.len(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "streams rebuilt from the log"
        );
        Ok(entries)
    }

    /// Folds the event in `record` into `entry` unless the entry already reflects it.
    /// An event that does not open breaks the stream (its commands are refused) instead of
    /// the partition. Returns whether the entry changed.
    async fn fold_record(&self, entry: &mut StreamEntry<A::State>, record: &LogRecord) -> bool {
        // Rows already reflecting this offset (written before the crash) are left alone.
        if record.offset <= entry.position || entry.broken.is_some() {
            return false;
        }
        match self.codec.open_event(&record.value).await {
            Ok(None) => false, // a system event (an erasure): no domain state
            Ok(Some(event)) => {
                let recorded = Recorded {
                    event_id: event.event_id,
                    version: event.version,
                };
                entry.fold::<A>(&event.event, &recorded, event.hash, record.offset);
                true
            }
            Err(error) => {
                tracing::error!(offset = record.offset, %error, "an event of the stream does not open; the stream is unavailable");
                metrics::counter!("keel_handler_unreadable_events_total").increment(1);
                entry.broken = Some(format!("event at offset {} does not open", record.offset));
                true
            }
        }
    }

    async fn watermark(&self, topic: &str, partition: i32) -> Result<i64, WorkerError> {
        let stored = self
            .state
            .watermark(WATERMARK_CONSUMER, topic, partition)
            .await
            .map_err(state_error)?;
        Ok(stored.unwrap_or(0))
    }

    fn reader(&self, topic: &str, partition: i32, from: i64) -> Result<StreamConsumer<ReaderContext>, WorkerError> {
        let group = format!("{}-replay-{}", self.config.group_id, self.config.instance_id);
        let reader = clients::reader(&self.config.kafka.brokers, &group).map_err(kafka_error)?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(from))
            .map_err(kafka_error)?;
        reader.assign(&assignment).map_err(kafka_error)?;
        Ok(reader)
    }
}

/// A record read back from the log: its offset, key and value.
pub(crate) struct LogRecord {
    offset: i64,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    /// A result that answered one delivery only (`keel-result-scope: delivery`), not the
    /// command id: nothing to learn from it.
    delivery_only: bool,
}

/// The tenant and stream a record's key names (`tenant/stream`), when both are ids and the
/// stream is not a system stream (erasures hold no domain state): an event under any other
/// key belongs to no stream a command can address.
fn stream_of(record: &LogRecord) -> Option<(String, String)> {
    let key = std::str::from_utf8(record.key.as_deref()?).ok()?;
    let (tenant, stream) = key.split_once('/')?;
    if stream.starts_with(keel_ids::SYSTEM_PREFIX) {
        return None;
    }
    let valid = keel_ids::is_valid(tenant) && keel_ids::check_stream("stream", stream).is_ok();
    if !valid {
        metrics::counter!("keel_handler_unaddressable_events_total").increment(1);
    }
    valid.then(|| (tenant.to_owned(), stream.to_owned()))
}

/// The next committed record of the partition, or `None` at its end.
async fn next_record(
    reader: &mut StreamConsumer<ReaderContext>,
    topic: &str,
    partition: i32,
) -> Result<Option<LogRecord>, WorkerError> {
    loop {
        match tokio::time::timeout(STALL, reader.recv()).await {
            Err(_) => {
                return Err(WorkerError::Retry(format!(
                    "replay of {topic}/{partition} made no progress for {STALL:?}"
                )));
            }
            Ok(Err(KafkaError::PartitionEOF(_))) => return Ok(None),
            Ok(Err(error)) => {
                tracing::warn!(%error, topic, partition, "replay read failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Ok(Ok(message)) => {
                return Ok(Some(LogRecord {
                    offset: message.offset(),
                    key: message.key().map(<[u8]>::to_vec),
                    value: message.payload().unwrap_or_default().to_vec(),
                    delivery_only: keel_kafka::headers::value_of(message.headers(), RESULT_SCOPE_HEADER)
                        .is_some_and(|value| value == DELIVERY_SCOPE.as_bytes()),
                }));
            }
        }
    }
}

fn watermark(topic: &str, partition: i32, next_offset: i64) -> Watermark {
    Watermark {
        consumer: WATERMARK_CONSUMER.into(),
        topic: topic.to_owned(),
        partition,
        next_offset,
    }
}

fn state_error(error: keel_handler_state::StateError) -> WorkerError {
    if error.is_transient() {
        WorkerError::Retry(format!("decision state: {error}"))
    } else {
        WorkerError::Fatal(format!("decision state: {error}"))
    }
}

fn kafka_error(error: KafkaError) -> WorkerError {
    WorkerError::Fatal(format!("replay reader: {error}"))
}
