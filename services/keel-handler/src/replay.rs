//! Replay on assignment: before deciding a partition's commands, the handler reads the
//! partition's events and results from its watermarks to the end of the committed log, so
//! its decision state is exact whatever happened between an earlier commit and the CQL
//! write that should have followed it.

use std::collections::HashMap;
use std::time::Duration;

use keel_domain::{Aggregate, Recorded};
use keel_handler_state::{HandlerState, StateBatch, StoredResult, Watermark};
use keel_kafka::clients::{self, ReaderContext};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::{Message, Offset, TopicPartitionList};

use crate::codec::Codec;
use crate::memory::{PartitionMemory, StreamEntry};
use crate::worker::{WATERMARK_CONSUMER, Worker, WorkerError, entry_from_record, record_from_entry};

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
        let mut reader = self.reader(&events_topic, partition, from)?;
        while let Some((offset, bytes)) = next_record(&mut reader, &events_topic, partition).await? {
            last_offset = Some(offset);
            let Some(event) = self.codec.open_event(&bytes).await.map_err(|error| {
                WorkerError::Fatal(format!(
                    "event {events_topic}/{partition}/{offset} does not open: {error}"
                ))
            })?
            else {
                continue;
            };
            let key = (event.tenant.clone(), event.stream.clone());
            if !memory.streams.contains_key(&key) {
                let stored = self
                    .state
                    .stream(&event.tenant, &event.stream)
                    .await
                    .map_err(state_error)?;
                let entry = match stored {
                    Some(record) => entry_from_record::<A>(&record)?,
                    None => StreamEntry::default(),
                };
                memory.streams.insert(key.clone(), entry);
            }
            let entry = memory
                .streams
                .get_mut(&key)
                .ok_or_else(|| WorkerError::Fatal("stream entry vanished".into()))?;
            // Rows already reflecting this offset (written before the crash) are left alone.
            if offset > entry.position {
                let recorded = Recorded {
                    event_id: event.event_id,
                    version: event.version,
                };
                entry.state = A::apply(std::mem::take(&mut entry.state), &event.event, &recorded);
                entry.version = event.version;
                entry.hash = event.hash;
                entry.position = offset;
                replayed += 1;
            }
        }
        for ((tenant, stream), entry) in &memory.streams {
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
        while let Some((offset, bytes)) = next_record(&mut reader, &results_topic, partition).await? {
            last_offset = Some(offset);
            let result = self.codec.decode_result(&bytes).map_err(|error| {
                WorkerError::Fatal(format!(
                    "result {results_topic}/{partition}/{offset} does not decode: {error}"
                ))
            })?;
            if let Some(tenant) = result.tenant.clone() {
                batch.results.push(StoredResult {
                    tenant: tenant.clone(),
                    command_id: result.command_id,
                    result: bytes,
                    position: offset,
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
        let reader = clients::reader(&self.config.brokers, &group).map_err(kafka_error)?;
        let mut assignment = TopicPartitionList::new();
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(from))
            .map_err(kafka_error)?;
        reader.assign(&assignment).map_err(kafka_error)?;
        Ok(reader)
    }
}

/// The next committed record of the partition, or `None` at its end.
async fn next_record(
    reader: &mut StreamConsumer<ReaderContext>,
    topic: &str,
    partition: i32,
) -> Result<Option<(i64, Vec<u8>)>, WorkerError> {
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
                return Ok(Some((message.offset(), message.payload().unwrap_or_default().to_vec())));
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
