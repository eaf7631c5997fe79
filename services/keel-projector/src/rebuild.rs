//! Rebuilding the projections without downtime.
//!
//! A rebuild projects the log from its start into a new generation (a keyspace of its own)
//! while the serving generation keeps answering. Once the new one is within `max_lag`
//! events of the log's end on every partition, the pointer in the control keyspace
//! switches: query APIs swap their read models within a second, and live projectors
//! continue in the new generation from its checkpoints (rewinding if they were ahead).
//! The rebuild's own projector keeps running through a grace period, so nothing written
//! in the meantime is missed (both write the same rows with the same timestamps), then the
//! old generation is dropped.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use keel_checkpoints::{Checkpoints, CqlCheckpoints, Generations};
use keel_kafka::clients;
use rdkafka::consumer::{BaseConsumer, Consumer};

use keel_projection::Projections;

use crate::{ProjectorConfig, projection_names};

/// What to rebuild, and how.
#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    /// The Kafka cluster.
    #[command(flatten)]
    pub kafka: keel_kafka::KafkaArgs,
    /// The control keyspace: the services' own, holding the serving pointer and the vault.
    #[command(flatten)]
    pub cql: keel_cql::CqlArgs,
    /// The events topic.
    #[arg(long, env = "KEEL_EVENTS_TOPIC", default_value = "keel.events")]
    pub events_topic: String,
    /// Dead-letter topic for events the rebuild's projector can never project.
    #[arg(long, env = "KEEL_DLQ_TOPIC", default_value = "keel.dlq")]
    pub dlq_topic: String,
    /// The new generation's keyspace (default: `<keyspace>_g<unix seconds>`).
    #[arg(long)]
    pub into: Option<String>,
    /// Switch once the new generation is at most this many log positions behind the end of
    /// every partition.
    #[arg(long, default_value_t = 20)]
    pub max_lag: i64,
    /// How long the old generation stays after the switch, for readers to move over.
    #[arg(long, default_value_t = 5)]
    pub grace_secs: u64,
    /// Keep the old generation instead of dropping it.
    #[arg(long)]
    pub keep_old: bool,
    /// Give up if the new generation has not caught up by then.
    #[arg(long, default_value_t = 3_600)]
    pub timeout_secs: u64,
    /// Where the keys that open payloads are.
    #[command(flatten)]
    pub keys: keel_vault_cql::KeyArgs,
}

/// What a rebuild did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rebuilt {
    /// The generation that served before.
    pub old: String,
    /// The generation that serves now.
    pub new: String,
    /// Log positions applied into the new generation by the switch.
    pub positions: i64,
    /// Time until the switch.
    pub caught_up_after_secs: f64,
    /// Whether the old generation was dropped.
    pub dropped_old: bool,
}

/// Every table a generation of `P` holds: the runtime's projections', `P`'s and their
/// checkpoints'.
pub fn tables<P: Projections>() -> Vec<String> {
    [
        keel_trails::SCHEMA,
        keel_trails::LOG_SCHEMA,
        P::SCHEMA,
        keel_checkpoints::SCHEMA,
    ]
    .into_iter()
    .flat_map(keel_cql::table_names)
    .collect()
}

fn end_offsets(args: &RebuildArgs) -> anyhow::Result<Vec<(i32, i64)>> {
    let consumer: BaseConsumer = clients::read_committed_reader(&args.kafka.brokers, "keel-rebuild-ends").create()?;
    let metadata = consumer.fetch_metadata(Some(&args.events_topic), Duration::from_secs(10))?;
    let topic = metadata
        .topics()
        .first()
        .filter(|topic| !topic.partitions().is_empty())
        .with_context(|| format!("topic {} not found", args.events_topic))?;
    topic
        .partitions()
        .iter()
        .map(|partition| {
            let (_, high) = consumer.fetch_watermarks(&args.events_topic, partition.id(), Duration::from_secs(10))?;
            Ok((partition.id(), high))
        })
        .collect()
}

/// Rebuilds every projection into a new generation and switches reads to it.
pub async fn rebuild<P: Projections>(args: RebuildArgs) -> anyhow::Result<Rebuilt> {
    let names = projection_names::<P>();
    let control = Arc::new(args.cql.connect().await.map_err(anyhow::Error::msg)?);
    let generations = Generations::new(Arc::clone(&control), &args.cql.keyspace).await?;
    let old = generations.serving().await?;
    let new = args.into.clone().unwrap_or_else(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        format!("{}_g{now}", args.cql.keyspace)
    });
    anyhow::ensure!(new != old, "{new} already serves");
    anyhow::ensure!(
        new != args.cql.keyspace,
        "the control keyspace cannot be a rebuild's target"
    );

    let config = ProjectorConfig {
        kafka: args.kafka.clone(),
        cql: keel_cql::CqlArgs::new(args.cql.nodes.clone(), new.clone()),
        events_topic: args.events_topic.clone(),
        group_id: format!("keel-rebuild-{new}"),
        instance_id: "rebuild-0".into(),
        ops_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        max_batch: 500,
        dlq_topic: args.dlq_topic.clone(),
        keys: keel_vault_cql::KeyArgs {
            vault_keyspace: Some(
                args.keys
                    .vault_keyspace
                    .clone()
                    .unwrap_or_else(|| args.cql.keyspace.clone()),
            ),
            ..args.keys.clone()
        },
    };
    tracing::info!(old, new, "rebuilding the projections into a new generation");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut projector = tokio::spawn(crate::run_domain::<P>(config, async {
        let _ = stopped.await;
    }));
    let session = Arc::new(
        keel_cql::connect(&args.cql.nodes, &new)
            .await
            .map_err(anyhow::Error::msg)?,
    );
    let checkpoints = CqlCheckpoints::new(Arc::clone(&session)).await?;
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.timeout_secs);
    let positions = loop {
        anyhow::ensure!(Instant::now() < deadline, "the new generation did not catch up in time");
        if projector.is_finished() {
            return match (&mut projector).await {
                Ok(Err(error)) => Err(error.context("the rebuild's projector failed")),
                _ => Err(anyhow::anyhow!("the rebuild's projector stopped")),
            };
        }
        let ends = tokio::task::block_in_place(|| end_offsets(&args))?;
        let mut behind = false;
        let mut applied = 0;
        for &projection in &names {
            let stored = checkpoints.checkpoints(projection).await?;
            for (partition, end) in &ends {
                let next = stored
                    .iter()
                    .find(|c| c.partition == *partition)
                    .map_or(0, |c| c.next_offset);
                behind |= end - next > args.max_lag;
                if projection == names[0] {
                    applied += next;
                }
            }
        }
        if !behind {
            break applied;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let caught_up_after_secs = started.elapsed().as_secs_f64();
    generations.switch(&new, keel_service::now_micros()).await?;
    tracing::info!(old, new, caught_up_after_secs, "switched reads to the new generation");
    tokio::time::sleep(Duration::from_secs(args.grace_secs)).await;
    let _ = stop.send(());
    projector.await??;

    if !args.keep_old {
        if old == args.cql.keyspace {
            // The control keyspace also holds the vault and the handler's state: drop only
            // the generation's tables.
            for table in tables::<P>() {
                control
                    .query_unpaged(format!("DROP TABLE IF EXISTS {old}.{table}"), &[])
                    .await?;
            }
        } else {
            control
                .query_unpaged(format!("DROP KEYSPACE IF EXISTS {old}"), &[])
                .await?;
        }
        tracing::info!(old, "dropped the old generation");
    }
    Ok(Rebuilt {
        old,
        new,
        positions,
        caught_up_after_secs,
        dropped_old: !args.keep_old,
    })
}
