//! Producing a planned batch inside its transaction: events first (the results report their
//! offsets), then results and dead letters; and the decision state to write to the CQL store
//! once the transaction has committed.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use futures::future::join_all;
use keel_domain::Aggregate;
use keel_handler_state::{HandlerState, StateBatch, StoredResult, Watermark};
use keel_kafka::partition::stream_key;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use uuid::Uuid;

use super::commit::{TxnError, delivered};
use super::plan::Planned;
use super::{DELIVERY_SCOPE, RESULT_SCOPE_HEADER, WATERMARK_CONSUMER, Worker, record_from_entry};
use crate::codec::Codec;
use crate::memory::PartitionMemory;
use keel_results::{CommandResult, LogPosition, Outcome};

impl<A, C, S> Worker<A, C, S>
where
    A: Aggregate,
    C: Codec<A>,
    S: HandlerState,
{
    /// Produces the records of every planned command; returns the decision state to write
    /// once the transaction has committed, and how many events were appended.
    pub(super) async fn produce_batch(
        &self,
        mut planned: Vec<Planned>,
        scratch: &mut HashMap<i32, PartitionMemory<A::State>>,
    ) -> Result<(StateBatch, u64), TxnError> {
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
                    plan.remember,
                ));
                let headers = match plan.remember {
                    true => OwnedHeaders::new(),
                    false => OwnedHeaders::new().insert(Header {
                        key: RESULT_SCOPE_HEADER,
                        value: Some(DELIVERY_SCOPE),
                    }),
                };
                result_traces.push(plan.trace.add_to(headers));
            }
        }

        // Now that positions are known, remember the final results; a command id seen twice
        // in this batch answers the second time with the first's final result.
        let mut finals: HashMap<(String, Uuid), CommandResult> = HashMap::new();
        for (partition, _, tenant, _, result, remember) in &mut results {
            let Some(tenant) = tenant.as_ref().filter(|_| *remember) else {
                continue;
            };
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
        for ((partition, _, tenant, stream, result, _), headers) in results.iter().zip(result_traces) {
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
        for ((partition, command_offset, tenant, _, result, remember), delivery) in
            results.iter().zip(result_deliveries)
        {
            last_result_offset.insert(*partition, delivery.offset);
            if let Some(tenant) = tenant.as_ref().filter(|_| *remember) {
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
}
