//! Keel's command handler.
//!
//! Consumes command envelopes from `keel.commands`, decides (authenticate, authorise,
//! deduplicate, check the expected version, run the domain), and appends sealed, chained
//! events to `keel.events` with one result per command on `keel.command-results`, in one
//! Kafka transaction with the consumed offsets: exactly once. Decision state is derived from
//! the log, kept in the CQL store, and replayed from watermarks on partition assignment.
//! See `docs/architecture.md`.
//!
//! It knows no domain: [`run`] takes any [`Aggregate`] with its [`Codec`], and
//! [`run_domain`] any aggregate with the production codec. An app registers its domain by
//! calling it from its own `keel-handler` binary (`services/keel-support-app` for the worked
//! domain), through [`cli::Cli::run`].

mod avro;
pub mod cli;
pub mod codec;
pub mod config;
mod context;
pub mod decide;
mod faults;
mod memory;
mod replay;
pub mod tenants;
#[cfg(test)]
mod test_support;
mod worker;
mod writer;

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use keel_domain::Aggregate;
use keel_handler_state::HandlerState;
use keel_handler_state_cql::CqlHandlerState;
use keel_kafka::clients;
use keel_kafka::topics::{command_path_topics, ensure_topics};
use keel_service::{Readiness, serve_ops, telemetry};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, Producer};

pub use codec::Codec;
pub use config::HandlerConfig;

use crate::context::HandlerContext;
use crate::tenants::TenantsFile;
use crate::worker::Worker;

/// Runs one handler instance for aggregate `A` with `codec` until `shutdown` resolves.
///
/// Returns an error when the instance cannot go on (unreachable stores at start, a fenced
/// producer): the process should exit non-zero and be restarted.
pub async fn run<A, C>(config: HandlerConfig, codec: C, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()>
where
    A: Aggregate,
    C: Codec<A>,
{
    let state = Arc::new(connect_state(&config).await?);
    run_with_state::<A, C, _>(config, codec, state, shutdown).await
}

/// The handler's group consumer of the commands topic, subscribed: `read_committed`, offsets
/// committed only inside transactions, and static membership (KIP-345): a restarted
/// instance takes its predecessor's place in the group at once instead of waiting out its
/// session, and keeps its partitions.
pub(crate) fn group_consumer(
    config: &HandlerConfig,
    context: HandlerContext,
) -> Result<StreamConsumer<HandlerContext>, rdkafka::error::KafkaError> {
    let mut consumer_config = clients::read_committed_consumer(&config.kafka.brokers, &config.group_id);
    consumer_config
        .set("group.instance.id", config.transactional_id())
        .set("session.timeout.ms", config.session_timeout_ms.to_string())
        // Statistics every second feed keel_handler_consumer_lag (context.rs).
        .set("statistics.interval.ms", "1000");
    let consumer: StreamConsumer<HandlerContext> = consumer_config.create_with_context(context)?;
    consumer.subscribe(&[&config.commands_topic])?;
    Ok(consumer)
}

/// Connects to the CQL store, creating the keyspace and tables of the decision state.
async fn connect_state(config: &HandlerConfig) -> anyhow::Result<CqlHandlerState> {
    Ok(CqlHandlerState::new(connect(config).await?)
        .await?
        .with_result_retention(config.dedup_retention()))
}

async fn connect(config: &HandlerConfig) -> anyhow::Result<Arc<scylla::client::session::Session>> {
    let session = config.cql.connect().await.map_err(anyhow::Error::msg)?;
    Ok(Arc::new(session))
}

/// The production codec of domain `D`: Avro envelopes, payloads sealed with the key ring of
/// `config.keys` (KEKs in the KMS, wrapped data keys in the CQL store), chained per stream.
pub async fn production_codec<D: keel_domain::WireSchemas>(
    config: &HandlerConfig,
) -> anyhow::Result<keel_codec::EventCodec<keel_crypto::LocalFileKms, keel_vault_cql::CqlKeyVault>> {
    let keys = keel_vault_cql::key_ring(&config.keys, connect(config).await?).await?;
    Ok(keel_codec::EventCodec::new::<D>(
        Arc::new(keys),
        keel_envelope::Upcasters::new(),
    )?)
}

/// The handler of domain `D` with the production codec, until `shutdown` resolves: what an
/// app's `keel-handler` binary runs for its domain.
pub async fn run_domain<D>(config: HandlerConfig, shutdown: impl Future<Output = ()> + Send) -> anyhow::Result<()>
where
    D: Aggregate + keel_domain::WireSchemas,
    D::Command: serde::de::DeserializeOwned,
    D::Event: serde::Serialize + serde::de::DeserializeOwned,
{
    let codec = production_codec::<D>(&config).await?;
    run::<D, _>(config, codec, shutdown).await
}

/// [`run`] with the decision state in `state`: any [`HandlerState`] adapter (tests use one
/// that fails on demand).
pub async fn run_with_state<A, C, S>(
    config: HandlerConfig,
    codec: C,
    state: Arc<S>,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()>
where
    A: Aggregate,
    C: Codec<A>,
    S: HandlerState,
{
    let config = Arc::new(config);
    tracing::info!(instance = %config.instance_id, "handler starting");
    let readiness = Readiness::new();
    readiness.set("partitions", false, "starting");
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|stop| *stop).await;
    };

    let listener = tokio::net::TcpListener::bind(config.ops_addr)
        .await
        .with_context(|| format!("binding the ops address {}", config.ops_addr))?;
    tracing::info!(address = %listener.local_addr()?, "ops endpoints listening");
    let ops = tokio::spawn(serve_ops(
        listener,
        readiness.clone(),
        telemetry::metrics_handle(),
        stopped(stop_rx.clone()),
    ));

    readiness.set("cql", true, "connected");
    let tenants = TenantsFile::load(&config.tenants).map_err(anyhow::Error::msg)?;
    let gatekeeper = Arc::new(tenants::gatekeeper(&tenants)?);

    let admin: AdminClient<DefaultClientContext> = clients::producer(&config.kafka.brokers).create()?;
    ensure_topics(
        &admin,
        &command_path_topics(&config.topic_names(), &config.topic_settings()),
    )
    .await?;

    config.check().map_err(anyhow::Error::msg)?;
    let producer: FutureProducer<clients::Named> =
        clients::transactional_producer(&config.kafka.brokers, &config.transactional_id())
            .set("message.max.bytes", config.max_record_bytes.to_string())
            .create_with_context(clients::Named("handler-producer"))?;
    tokio::task::block_in_place(|| producer.init_transactions(Duration::from_secs(60)))
        .context("initialising transactions (fences any earlier instance with the same id)")?;

    let context = HandlerContext::default();
    let consumer = group_consumer(&config, context.clone())?;
    let metadata =
        tokio::task::block_in_place(|| consumer.fetch_metadata(Some(&config.commands_topic), Duration::from_secs(30)))?;
    let partition_count = metadata
        .topics()
        .first()
        .map(|topic| topic.partitions().len())
        .and_then(|count| i32::try_from(count).ok())
        .filter(|count| *count > 0)
        .with_context(|| format!("topic {} has no partitions", config.commands_topic))?;
    // Not ready until the group assigns this instance its partitions (worker.rs).
    readiness.set("partitions", false, "waiting for an assignment");
    tracing::info!(instance = %config.instance_id, partitions = partition_count, "handler started");

    let codec = Arc::new(codec);
    let worker = Worker::<A, C, _> {
        config: Arc::clone(&config),
        codec: Arc::clone(&codec),
        state: Arc::clone(&state),
        planner: worker::Planner::new(
            codec,
            gatekeeper,
            partition_count,
            config.max_record_bytes,
            config.commands_topic.clone(),
        ),
        consumer,
        context,
        producer,
        partitions: HashMap::new(),
        bounds: memory::MemoryBounds {
            streams: config.memory_streams,
            results: config.memory_results,
        },
        writer: writer::StateWriter::spawn(Arc::clone(&state), readiness.clone()),
        readiness,
        quarantine: faults::Quarantine::default(),
        isolation: faults::Isolation::default(),
        fenced: false,
    };
    let outcome = worker.run(shutdown).await;
    let _ = stop_tx.send(true);
    let _ = ops.await;
    outcome.map_err(anyhow::Error::from)
}
