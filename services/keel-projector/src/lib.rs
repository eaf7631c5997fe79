//! Keel's projector: a runtime that keeps any domain's read models.
//!
//! Consumes `keel.events` (`read_committed`) and builds, in the CQL store, the runtime's own
//! read models for every domain, the **audit trail per stream** and the **activity trail
//! per actor** (envelope metadata, no personal data), and a domain's through the projection
//! port ([`keel_projection::Projections`], [`run_domain`]): payloads are opened with the
//! tenant key for ids, amounts and statuses; personal fields are copied **sealed** from the
//! event, never in plaintext, and only the query API opens them. An app registers its
//! projections by calling [`cli::Cli::run`] from its own `keel-projector` binary
//! (`services/keel-support-app` for the worked domain).
//!
//! **Exactly once in effect.** Delivery is at least once; every row is written
//! `USING TIMESTAMP <log offset>` and keyed by what it describes, so applying an event twice
//! rewrites the same row with the same values. After a batch's rows, the checkpoint of each
//! projection and partition (next offset, last event time) is saved, then the Kafka offsets
//! committed; on restart, events before the checkpoint are skipped. **Freshness**: the log
//! heads of the assigned partitions are saved about once a second, so the query API can
//! tell lag; a thread of their own reads them ([`heads`]), so a batch never waits on them.
//!
//! **Faults.** An event that can never be projected (it does not read, its ids break the
//! id grammar, it does not open, the store refuses its rows, a projection panics on it) is
//! dead-lettered with its reason (a bounded copy, to `keel.dlq`), counted
//! (`keel_projector_dead_letters_total{reason}`), logged, and passed: the projection moves
//! on. When a batch's write fails and the event to blame is not known, its events are
//! written one by one to find it. Anything that may pass (the store or key vault out of
//! reach, an event of a payload schema this release does not know yet) pauses the
//! partition instead, retried with backoff, and `/readyz` says so: nothing is skipped for
//! an outage or a release behind its handler.

mod avro;
pub mod cli;
mod heads;
mod models;
pub mod rebuild;

pub use avro::meta_of;
pub use keel_trails::{ACTIVITY, AUDIT, EventMeta, Trails};
pub use models::{RUNTIME_PROJECTIONS, projection_names};

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use heads::Heads;
use keel_checkpoints::{Checkpoint, Checkpoints, CqlCheckpoints, Freshness, Generations};
use keel_kafka::clients;
use keel_kafka::trace::TraceHeaders;
use keel_projection::Projections;
use keel_service::{Readiness, serve_ops, telemetry};
use models::{Failure, Models, Prepared, Record};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};

/// Configuration of one projector instance: flags, each also a `KEEL_*` variable.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "keel-projector", about = "Keel's projector", version)]
pub struct ProjectorConfig {
    /// The Kafka cluster.
    #[command(flatten)]
    pub kafka: keel_kafka::KafkaArgs,
    /// Keyspace of the projections and checkpoints.
    #[command(flatten)]
    pub cql: keel_cql::CqlArgs,
    /// The events topic.
    #[arg(long, env = "KEEL_EVENTS_TOPIC", default_value = "keel.events")]
    pub events_topic: String,
    /// Consumer group of the projector instances.
    #[arg(long, env = "KEEL_PROJECTOR_GROUP", default_value = "keel-projector")]
    pub group_id: String,
    /// This instance's stable id (static group membership).
    #[arg(long, env = "KEEL_INSTANCE_ID", default_value = "projector-0")]
    pub instance_id: String,
    /// Address of /healthz, /readyz, /metrics.
    #[arg(long, env = "KEEL_OPS_ADDR", default_value = "127.0.0.1:9102")]
    pub ops_addr: SocketAddr,
    /// Most events applied per batch.
    #[arg(long, env = "KEEL_MAX_BATCH", default_value_t = 500)]
    pub max_batch: usize,
    /// Dead-letter topic for events that can never be projected.
    #[arg(long, env = "KEEL_DLQ_TOPIC", default_value = "keel.dlq")]
    pub dlq_topic: String,
    /// Where the keys that open payloads are.
    #[command(flatten)]
    pub keys: keel_vault_cql::KeyArgs,
}

/// Runs the projector of a domain's projections `P` (beside the runtime's own) until
/// `shutdown` resolves: what an app's `keel-projector` binary runs for its domain.
pub async fn run_domain<P: Projections>(
    config: ProjectorConfig,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    let readiness = Readiness::new();
    readiness.set("progress", false, "starting");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind(config.ops_addr)
        .await
        .context("binding the ops address")?;
    let ops = tokio::spawn(serve_ops(
        listener,
        readiness.clone(),
        telemetry::metrics_handle(),
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        },
    ));

    let control = config.cql.connect().await.map_err(anyhow::Error::msg)?;
    let control = Arc::new(control);
    let keys = keel_vault_cql::service_key_ring(&config.keys, &config.cql.nodes, Arc::clone(&control)).await?;
    let keys = Arc::new(keys);
    let generations = Arc::new(Generations::new(Arc::clone(&control), &config.cql.keyspace).await?);
    readiness.set("cql", true, "connected");

    let mut consumer = Arc::new(group_consumer(&config)?);
    let heads = Arc::new(Heads::watch(
        &config.kafka.brokers,
        &config.group_id,
        &config.events_topic,
    )?);
    let dead_letters = Arc::new(
        clients::producer(&config.kafka.brokers).create_with_context(clients::Named("projector-dead-letters"))?,
    );

    tokio::pin!(shutdown);
    let mut generation = generations.serving().await?;
    let outcome = loop {
        let session = if generation == config.cql.keyspace {
            Arc::clone(&control)
        } else {
            let session = keel_cql::connect(&config.cql.nodes, &generation)
                .await
                .map_err(anyhow::Error::msg)?;
            Arc::new(session)
        };
        tracing::info!(generation, "projecting into this generation");
        readiness.set("generation", true, generation.clone());
        let mut projector = Projector {
            config: config.clone(),
            names: projection_names::<P>(),
            models: Models::<P>::new(Arc::clone(&session), Arc::clone(&keys)).await?,
            consumer: Arc::clone(&consumer),
            heads: Arc::clone(&heads),
            dead_letters: Arc::clone(&dead_letters),
            checkpoints: CqlCheckpoints::new(session).await?,
            readiness: readiness.clone(),
            generations: Arc::clone(&generations),
            generation: generation.clone(),
            positions: HashMap::new(),
            unchecked: HashSet::new(),
            event_times: HashMap::new(),
        };
        match projector.run(&mut shutdown).await {
            Ok(Stop::Shutdown) => break Ok(()),
            Ok(Stop::Rejoin) => {
                // As a restart would: a new consumer, positions read again from the
                // checkpoints.
                metrics::counter!("keel_projector_consumer_rejoins_total").increment(1);
                readiness.set("progress", false, "rejoining the group with a new consumer");
                drop(projector);
                let old = std::mem::replace(&mut consumer, Arc::new(group_consumer(&config)?));
                tokio::task::block_in_place(|| drop(old));
            }
            Ok(Stop::Switch(next)) => {
                tracing::info!(from = generation, to = next, "the serving generation switched");
                generation = next;
            }
            Err(error) => break Err(error),
        }
    };
    let _ = stop_tx.send(true);
    let _ = ops.await;
    outcome
}

/// The projector's group consumer of the events topic, subscribed: `read_committed`, and
/// static membership (a restarted instance takes its place in the group at once).
fn group_consumer(config: &ProjectorConfig) -> anyhow::Result<StreamConsumer<clients::Named>> {
    let mut consumer_config = clients::read_committed_consumer(&config.kafka.brokers, &config.group_id);
    consumer_config.set(
        "group.instance.id",
        format!("{}-{}", config.group_id, config.instance_id),
    );
    let consumer: StreamConsumer<clients::Named> =
        consumer_config.create_with_context(clients::Named("projector-consumer"))?;
    consumer.subscribe(&[&config.events_topic])?;
    Ok(consumer)
}

/// Why a projector's loop ended.
enum Stop {
    /// Shutdown was asked.
    Shutdown,
    /// The consumer failed fatally (the group fenced it after a broker restart): replace it.
    Rejoin,
    /// Another generation serves now: project into it.
    Switch(String),
}

/// An event that can never be projected, and why.
struct Fault {
    partition: i32,
    offset: i64,
    reason: &'static str,
    error: String,
}

impl Fault {
    fn of(record: &Record<'_>, reason: &'static str, error: String) -> Self {
        Self {
            partition: record.partition,
            offset: record.offset,
            reason,
            error,
        }
    }
}

/// The value of header `key` of `message`, if it is UTF-8 and an id.
fn header(message: &OwnedMessage, key: &str) -> Option<String> {
    keel_kafka::headers::value_of(message.headers(), key)
        .and_then(|value| String::from_utf8(value).ok())
        .filter(|value| keel_ids::is_valid(value))
}

/// The span of projecting one event: partition, offset and event id (the handler's
/// `keel-event-id` header), a child of the trace in the event's `traceparent` header.
fn event_span(message: &OwnedMessage) -> tracing::Span {
    let event_id = header(message, "keel-event-id").unwrap_or_default();
    let span = tracing::info_span!(
        "project",
        partition = message.partition(),
        offset = message.offset(),
        event_id
    );
    TraceHeaders::from_record(message.headers()).continue_in(&span);
    span
}

struct Projector<P> {
    config: ProjectorConfig,
    /// Every projection kept, as checkpoints name them.
    names: Vec<&'static str>,
    models: Models<P>,
    consumer: Arc<StreamConsumer<clients::Named>>,
    heads: Arc<Heads>,
    /// Sends events that can never be projected to the DLQ.
    dead_letters: Arc<FutureProducer<clients::Named>>,
    checkpoints: CqlCheckpoints,
    readiness: Readiness,
    generations: Arc<Generations>,
    /// The keyspace this projector writes into.
    generation: String,
    /// Per partition: the next offset not yet applied, loaded from the checkpoint.
    positions: HashMap<i32, i64>,
    /// Partitions whose checkpoint was loaded and whose first message was not seen yet.
    unchecked: HashSet<i32>,
    /// Per partition: the time of the last event applied.
    event_times: HashMap<i32, i64>,
}

impl<P: Projections> Projector<P> {
    async fn run(&mut self, shutdown: &mut (impl std::future::Future<Output = ()> + Unpin)) -> anyhow::Result<Stop> {
        let mut last_heads = Instant::now() - Duration::from_secs(10);
        let mut failures = 0_u32;
        loop {
            let batch = tokio::select! {
                () = &mut *shutdown => return Ok(Stop::Shutdown),
                batch = self.collect() => batch,
            };
            let Some(batch) = batch else {
                return Ok(Stop::Rejoin);
            };
            if last_heads.elapsed() >= Duration::from_secs(1) {
                last_heads = Instant::now();
                if let Err(error) = self.save_heads().await {
                    tracing::warn!(%error, "saving log heads failed");
                }
                match self.generations.serving().await {
                    Ok(serving) if serving != self.generation => return Ok(Stop::Switch(serving)),
                    Ok(_) => {}
                    Err(error) => tracing::warn!(%error, "reading the serving generation failed"),
                }
            }
            if batch.is_empty() {
                self.readiness.set("progress", true, "caught up");
                if let Err(error) = self.advance_past_markers().await {
                    tracing::warn!(%error, "advancing checkpoints past transaction markers failed");
                }
                continue;
            }
            let applying = Instant::now();
            match self.apply(&batch).await {
                Ok(()) => {
                    metrics::histogram!("keel_projector_batch_seconds").record(applying.elapsed().as_secs_f64());
                    failures = 0;
                    self.readiness.set("progress", true, "applying");
                    if let Err(error) = self.advance_past_markers().await {
                        tracing::warn!(%error, "advancing checkpoints past transaction markers failed");
                    }
                }
                Err(error) => {
                    // Only what may pass gets here (an event that never can is dead-lettered
                    // in `apply`): rewind to the checkpoints and try again, visibly.
                    failures += 1;
                    tracing::error!(%error, failures, "applying events failed; retrying from the checkpoints");
                    self.readiness
                        .set("progress", false, format!("{failures} failures, last: {error:#}"));
                    metrics::counter!("keel_projector_batch_failures_total").increment(1);
                    self.positions.clear();
                    self.rewind(&batch)?;
                    tokio::time::sleep(Duration::from_millis(100u64 << failures.min(6))).await;
                }
            }
        }
    }

    /// Up to a batch of events; `None` when the consumer failed fatally and must be replaced
    /// (what it gathered is dropped: the checkpoints say where to resume).
    async fn collect(&mut self) -> Option<Vec<OwnedMessage>> {
        let mut batch = Vec::new();
        let mut deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while batch.len() < self.config.max_batch {
            match tokio::time::timeout_at(deadline, self.consumer.recv()).await {
                Err(_) => break,
                Ok(Ok(message)) => {
                    if batch.is_empty() {
                        deadline = tokio::time::Instant::now() + Duration::from_millis(20);
                    }
                    batch.push(message.detach());
                }
                Ok(Err(rdkafka::error::KafkaError::MessageConsumptionFatal(code))) => {
                    tracing::warn!(%code, "the consumer failed fatally; it is replaced and rejoins the group");
                    return None;
                }
                Ok(Err(error)) => {
                    tracing::warn!(%error, "consuming events failed");
                    break;
                }
            }
        }
        Some(batch)
    }

    fn rewind(&self, batch: &[OwnedMessage]) -> anyhow::Result<()> {
        let mut first: BTreeMap<i32, i64> = BTreeMap::new();
        for message in batch {
            first.entry(message.partition()).or_insert(message.offset());
        }
        for (partition, offset) in first {
            self.consumer.seek(
                &self.config.events_topic,
                partition,
                Offset::Offset(offset),
                Duration::from_secs(10),
            )?;
        }
        Ok(())
    }

    /// The next offset to apply of `partition`, from the checkpoints the first time: the
    /// least of all projections' (a crash between two checkpoint saves leaves them apart,
    /// and rewriting what one projection already has changes nothing).
    async fn position(&mut self, partition: i32) -> anyhow::Result<i64> {
        if let Some(position) = self.positions.get(&partition) {
            return Ok(*position);
        }
        let mut least: Option<Checkpoint> = None;
        for (index, projection) in self.names.iter().copied().enumerate() {
            let stored = self.checkpoints.checkpoints(projection).await?;
            let Some(found) = stored.into_iter().find(|c| c.partition == partition) else {
                least = None;
                break; // a projection with nothing for this partition: start from 0
            };
            if index == 0
                || least
                    .as_ref()
                    .is_some_and(|least| found.next_offset < least.next_offset)
            {
                least = Some(found);
            }
        }
        let position = least.as_ref().map_or(0, |c| c.next_offset);
        self.positions.insert(partition, position);
        self.unchecked.insert(partition);
        if let Some(checkpoint) = least {
            self.event_times.insert(partition, checkpoint.event_time_micros);
        }
        Ok(position)
    }

    async fn apply(&mut self, batch: &[OwnedMessage]) -> anyhow::Result<()> {
        let mut records = Vec::with_capacity(batch.len());
        // One span per event, continuing the trace its headers carry, open until the event's
        // rows and checkpoint are saved.
        let mut spans = Vec::with_capacity(batch.len());
        let mut rewound = HashSet::new();
        for message in batch {
            let partition = message.partition();
            let position = self.position(partition).await?;
            if self.unchecked.remove(&partition) && message.offset() > position {
                // The consumer resumed past the checkpoint (group offsets of another
                // generation, or a transaction marker): go back to it once, skip nothing.
                self.consumer.seek(
                    &self.config.events_topic,
                    partition,
                    Offset::Offset(position),
                    Duration::from_secs(10),
                )?;
                rewound.insert(partition);
            }
            if rewound.contains(&partition) || message.offset() < position {
                continue; // rewound, or applied before the last restart
            }
            records.push(Record {
                partition: message.partition(),
                offset: message.offset(),
                bytes: message.payload().unwrap_or_default(),
            });
            spans.push(event_span(message));
        }
        let (prepared, faults) = self.project(&records).await?;
        self.dead_letter(batch, &faults).await?;
        let times: HashMap<(i32, i64), i64> = prepared
            .iter()
            .map(|p| ((p.record.partition, p.record.offset), p.recorded_at_micros()))
            .collect();
        let mut last: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        for record in &records {
            let previous = last
                .get(&record.partition)
                .map(|(_, time)| *time)
                .or_else(|| self.event_times.get(&record.partition).copied())
                .unwrap_or(0);
            let time = times
                .get(&(record.partition, record.offset))
                .copied()
                .unwrap_or(previous);
            last.insert(record.partition, (record.offset, time));
        }
        let saved: Vec<Checkpoint> = last
            .iter()
            .map(|(&partition, &(offset, time))| Checkpoint {
                partition,
                next_offset: offset + 1,
                event_time_micros: time,
            })
            .collect();
        futures::future::try_join_all(
            self.names
                .iter()
                .map(|projection| self.checkpoints.save(projection, &saved)),
        )
        .await?;
        let mut offsets = TopicPartitionList::new();
        for checkpoint in &saved {
            self.positions.insert(checkpoint.partition, checkpoint.next_offset);
            self.event_times
                .insert(checkpoint.partition, checkpoint.event_time_micros);
            offsets.add_partition_offset(
                &self.config.events_topic,
                checkpoint.partition,
                Offset::Offset(checkpoint.next_offset),
            )?;
        }
        if offsets.count() > 0 {
            // Only a hint for where to resume: the checkpoints above are the truth.
            self.consumer.commit(&offsets, CommitMode::Async)?;
        }
        metrics::counter!("keel_projector_events_total").increment(prepared.len() as u64);
        drop(spans);
        Ok(())
    }

    /// Prepares and writes `records`: the events written, and those that can never be
    /// (dead letters to be). Fails only for what may pass, and then nothing is skipped.
    async fn project<'a>(&self, records: &[Record<'a>]) -> anyhow::Result<(Vec<Prepared<'a, P::Event>>, Vec<Fault>)> {
        let mut prepared = Vec::with_capacity(records.len());
        let mut faults = Vec::new();
        for record in records {
            match self.models.prepare(*record).await {
                Ok(event) => prepared.push(event),
                Err(Failure::Transient(error)) => anyhow::bail!(error),
                Err(Failure::Permanent { reason, error }) => faults.push(Fault::of(record, reason, error)),
            }
        }
        match self.models.write(&prepared).await {
            Ok(()) => {}
            Err(Failure::Transient(error)) => anyhow::bail!(error),
            Err(Failure::Permanent { reason, error }) => {
                // Which event is it? Rewriting the others' rows changes nothing.
                tracing::warn!(reason, %error, events = prepared.len(), "a batch's rows were refused; writing its events one by one");
                let mut written = Vec::with_capacity(prepared.len());
                for event in prepared {
                    match self.models.write(std::slice::from_ref(&event)).await {
                        Ok(()) => written.push(event),
                        Err(Failure::Transient(error)) => anyhow::bail!(error),
                        Err(Failure::Permanent { reason, error }) => {
                            faults.push(Fault::of(&event.record, reason, error));
                        }
                    }
                }
                prepared = written;
            }
        }
        Ok((prepared, faults))
    }

    /// Sends a bounded copy of each faulted event to the DLQ with its reason, and waits
    /// for the broker to have them (before the checkpoint passes them). A crash in between
    /// sends them again: dead letters are at least once; `keel-source` tells copies apart.
    async fn dead_letter(&self, batch: &[OwnedMessage], faults: &[Fault]) -> anyhow::Result<()> {
        for fault in faults {
            let Some(message) = batch
                .iter()
                .find(|m| m.partition() == fault.partition && m.offset() == fault.offset)
            else {
                continue;
            };
            let event_id = header(message, "keel-event-id").or_else(|| self.models.event_id(message.payload()?));
            tracing::error!(
                partition = fault.partition,
                offset = fault.offset,
                event_id = event_id.as_deref().unwrap_or_default(),
                reason = fault.reason,
                error = %fault.error,
                "an event cannot be projected; it is dead-lettered and passed"
            );
            let (value, headers) = keel_kafka::DeadLetter {
                reason: fault.reason,
                error: &format!("projection: {}", fault.error),
                topic: &self.config.events_topic,
                partition: fault.partition,
                offset: fault.offset,
                command_id: None,
                event_id,
            }
            .record(
                message.payload().unwrap_or_default(),
                &TraceHeaders::from_record(message.headers()),
            );
            let record: FutureRecord<'_, (), Vec<u8>> = FutureRecord::to(&self.config.dlq_topic)
                .payload(&value)
                .headers(headers);
            self.dead_letters
                .send(record, Duration::from_secs(30))
                .await
                .map_err(|(error, _)| anyhow::anyhow!("dead-lettering an event failed: {error}"))?;
            metrics::counter!("keel_projector_dead_letters_total", "reason" => fault.reason).increment(1);
        }
        Ok(())
    }

    /// Transactions leave a control marker after their records, so the last event of a
    /// partition is not its last offset. Once everything delivered is applied, the consumer's
    /// position (past markers and aborted records) is where the projection stands; saving it
    /// lets a caught-up projection show no lag.
    async fn advance_past_markers(&mut self) -> anyhow::Result<()> {
        let positions = self.consumer.position()?;
        let mut advanced = Vec::new();
        for element in positions.elements() {
            let (partition, Offset::Offset(position)) = (element.partition(), element.offset()) else {
                continue;
            };
            let known = self.positions.get(&partition).copied();
            if known.is_some_and(|known| position > known) {
                let event_time_micros = self.event_times.get(&partition).copied().unwrap_or(0);
                advanced.push(Checkpoint {
                    partition,
                    next_offset: position,
                    event_time_micros,
                });
            }
        }
        if advanced.is_empty() {
            return Ok(());
        }
        futures::future::try_join_all(
            self.names
                .iter()
                .map(|projection| self.checkpoints.save(projection, &advanced)),
        )
        .await?;
        for checkpoint in advanced {
            self.positions.insert(checkpoint.partition, checkpoint.next_offset);
        }
        Ok(())
    }

    /// Saves the heads last seen and sets the lag gauges from them.
    async fn save_heads(&self) -> anyhow::Result<()> {
        let assigned = self
            .consumer
            .assignment()?
            .elements_for_topic(&self.config.events_topic)
            .iter()
            .map(|element| element.partition())
            .collect();
        let heads = self.heads.latest(assigned);
        if heads.is_empty() {
            return Ok(());
        }
        let now = keel_service::now_micros();
        // Lag as the query API reports it: events behind the head, and how long ago the last
        // applied event was recorded while events wait (0 when caught up).
        let applied: Vec<Checkpoint> = heads
            .iter()
            .filter_map(|head| {
                Some(Checkpoint {
                    partition: head.partition,
                    next_offset: *self.positions.get(&head.partition)?,
                    // No event applied yet (only markers passed): behind by nothing known.
                    event_time_micros: self.event_times.get(&head.partition).copied().unwrap_or(now),
                })
            })
            .collect();
        for (partition, lag) in Freshness::from_parts(&applied, &heads, now).partitions {
            let partition = partition.to_string();
            metrics::gauge!("keel_projector_lag_events", "partition" => partition.clone()).set(lag.lag_events as f64);
            metrics::gauge!("keel_projector_lag_seconds", "partition" => partition).set(lag.lag_seconds);
        }
        futures::future::try_join_all(
            self.names
                .iter()
                .map(|projection| self.checkpoints.save_heads(projection, &heads)),
        )
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::Timestamp;
    use rdkafka::message::{Header, OwnedHeaders};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[test]
    fn an_event_span_continues_the_trace_of_the_event_header() {
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let headers = OwnedHeaders::new().insert(Header {
            key: keel_kafka::trace::TRACEPARENT,
            value: Some(traceparent),
        });
        let message = OwnedMessage::new(
            None,
            None,
            "events".into(),
            Timestamp::NotAvailable,
            0,
            7,
            Some(headers),
        );
        // The layer services install without an OTLP endpoint: contexts pass through as is.
        let subscriber = tracing_subscriber::registry().with(tracing_opentelemetry::layer());
        let continued = tracing::subscriber::with_default(subscriber, || TraceHeaders::of_span(&event_span(&message)));
        assert_eq!(continued.traceparent(), Some(traceparent));
    }
}
