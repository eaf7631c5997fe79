//! Topics, and commands of any domain: encode from the domain's schema files (see
//! [`crate::schemas`]), produce, wait for the result.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use keel_auth::Claims;
use keel_codec::{CommandHeader, to_wire_actor};
use keel_kafka::clients;
use keel_kafka::partition::stream_key;
use keel_kafka::topics::{TopicNames, TopicSettings, command_path_topics, ensure_topics};
use keel_results::CommandResult;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use uuid::Uuid;

use crate::schemas::CommandSchemas;

/// Where Kafka and the command-path topics are.
#[derive(Debug, Clone, clap::Args)]
pub struct CommandPathArgs {
    /// The Kafka cluster.
    #[command(flatten)]
    pub cluster: keel_kafka::KafkaArgs,
    /// The commands topic.
    #[arg(long, env = "KEEL_COMMANDS_TOPIC", default_value = "keel.commands")]
    pub commands_topic: String,
    /// The results topic.
    #[arg(long, env = "KEEL_RESULTS_TOPIC", default_value = "keel.command-results")]
    pub results_topic: String,
}

/// `keel topics`.
#[derive(Debug, clap::Subcommand)]
pub enum Topics {
    /// Creates the command-path topics if missing (the handler does too, at start).
    Create {
        /// Where Kafka is.
        #[command(flatten)]
        kafka: CommandPathArgs,
        /// The events topic.
        #[arg(long, env = "KEEL_EVENTS_TOPIC", default_value = "keel.events")]
        events_topic: String,
        /// The dead-letter topic.
        #[arg(long, env = "KEEL_DLQ_TOPIC", default_value = "keel.dlq")]
        dlq_topic: String,
        /// Partitions of the commands, events and results topics.
        #[arg(long, env = "KEEL_PARTITIONS", default_value_t = 6)]
        partitions: i32,
    },
}

impl Topics {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        let Self::Create {
            kafka,
            events_topic,
            dlq_topic,
            partitions,
        } = self;
        let admin = clients::producer(&kafka.cluster.brokers).create()?;
        let names = TopicNames {
            commands: kafka.commands_topic,
            results: kafka.results_topic,
            events: events_topic,
            dlq: dlq_topic,
        };
        let settings = TopicSettings {
            partitions,
            ..TopicSettings::default()
        };
        ensure_topics(&admin, &command_path_topics(&names, &settings)).await?;
        println!(
            "topics ready: {}, {}, {}, {}",
            names.commands, names.events, names.results, names.dlq
        );
        Ok(())
    }
}

/// `keel command`.
#[derive(Debug, clap::Subcommand)]
pub enum CommandCli {
    /// Sends a command of any domain whose schemas are in --schemas.
    Send(SendArgs),
    /// Waits for the result of a command and prints it.
    Wait {
        /// Where Kafka is.
        #[command(flatten)]
        kafka: CommandPathArgs,
        /// The command id.
        #[arg(long)]
        command_id: Uuid,
        /// How long to wait, in seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

/// `keel command send`.
#[derive(Debug, Clone, clap::Args)]
pub struct SendArgs {
    /// Where Kafka is.
    #[command(flatten)]
    pub kafka: CommandPathArgs,
    /// The tenant.
    #[arg(long)]
    pub tenant: String,
    /// The stream (the aggregate id, e.g. the customer id).
    #[arg(long)]
    pub stream: String,
    /// The command type: the record name of a command schema under --schemas, e.g.
    /// `IssueRefund` (schemas/customer-support/commands/IssueRefund.v1.avsc). Its newest
    /// `keel.schema_version` is sent.
    #[arg(long = "type")]
    pub command_type: String,
    /// The namespace of the command type, needed only when several define it, e.g.
    /// `dev.keel.support.commands`.
    #[arg(long)]
    pub namespace: Option<String>,
    /// The payload's fields as a JSON object, checked against the command's schema, e.g.
    /// `{"refund_id":"r-1","amount_cents":900,"reason":"late"}`. A nullable field may be
    /// left out or null; a uuid is its text form; an enum is its symbol.
    #[arg(long)]
    pub payload: String,
    /// The directory of the schema files: every `*.avsc` under it, at any depth, of a
    /// record in a `*.commands` namespace is a command schema.
    #[arg(long, env = "KEEL_SCHEMAS", default_value = "schemas")]
    pub schemas: PathBuf,
    /// The actor's credential (`keel token`); the envelope's actor is read from it.
    #[arg(long, env = "KEEL_TOKEN")]
    pub token: String,
    /// Refuse unless the stream is at this version.
    #[arg(long)]
    pub expected_version: Option<u64>,
    /// The idempotency key; a fresh one if absent.
    #[arg(long)]
    pub command_id: Option<Uuid>,
    /// Waits for the result and prints it.
    #[arg(long)]
    pub wait: bool,
    /// How long to wait, in seconds.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
}

impl CommandCli {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Self::Send(args) => {
                match send(&args).await? {
                    (_, Some(result)) => println!("{}", serde_json::to_string_pretty(&result)?),
                    (command_id, None) => println!("{command_id}"),
                }
                Ok(())
            }
            Self::Wait {
                kafka,
                command_id,
                timeout,
            } => {
                let from = starts(&kafka, Offset::Beginning).await?;
                let result = wait(&kafka, from, command_id, Duration::from_secs(timeout)).await?;
                println!("{}", serde_json::to_string_pretty(&result)?);
                Ok(())
            }
        }
    }
}

/// The claims of a credential, unverified: only to fill the envelope's actor (the handler
/// verifies the credential).
fn claims(token: &str) -> anyhow::Result<Claims> {
    let payload = token.split('.').nth(1).context("the token is not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .context("the token's claims are not base64url")?;
    serde_json::from_slice(&bytes).context("the token's claims are not Keel claims")
}

/// Sends the command; returns its id and, with `--wait`, its result.
pub async fn send(args: &SendArgs) -> anyhow::Result<(Uuid, Option<CommandResult>)> {
    let fields: serde_json::Value = serde_json::from_str(&args.payload).context("--payload is not JSON")?;
    let schemas = CommandSchemas::load(&args.schemas)?;
    let command_id = args.command_id.unwrap_or_else(Uuid::new_v4);
    let header = CommandHeader {
        expected_version: args.expected_version,
        ..header_for(&args.token, &args.tenant, &args.stream, command_id)?
    };
    let bytes = schemas.encode(header, &args.command_type, args.namespace.as_deref(), &fields)?;
    let key = stream_key(&args.tenant, &args.stream);
    let result = produce(
        &args.kafka,
        &args.kafka.commands_topic,
        &key,
        &bytes,
        command_id,
        args.wait.then_some(args.timeout),
    )
    .await?;
    Ok((command_id, result))
}

/// The envelope header of a command from the actor `token` names, issued now.
pub(crate) fn header_for(token: &str, tenant: &str, stream: &str, command_id: Uuid) -> anyhow::Result<CommandHeader> {
    let claims = claims(token)?;
    let actor = keel_auth::Actor {
        kind: claims.actor_kind,
        id: claims.sub.clone(),
    };
    Ok(CommandHeader {
        command_id,
        tenant: tenant.to_owned(),
        stream: stream.to_owned(),
        expected_version: None,
        issued_at_micros: i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_micros(),
        )?,
        actor: to_wire_actor(&actor, &claims.on_behalf_of, None),
        credential: token.to_owned(),
        correlation_id: Uuid::new_v4(),
        causation_id: None,
    })
}

/// Produces an encoded command to `topic` keyed by `key` and, given a timeout in seconds,
/// waits for its result.
pub(crate) async fn produce(
    kafka: &CommandPathArgs,
    topic: &str,
    key: &str,
    bytes: &[u8],
    command_id: Uuid,
    wait_secs: Option<u64>,
) -> anyhow::Result<Option<CommandResult>> {
    let from = match wait_secs {
        Some(_) => Some(starts(kafka, Offset::End).await?),
        None => None,
    };
    let producer: FutureProducer = clients::producer(&kafka.cluster.brokers).create()?;
    producer
        .send(FutureRecord::to(topic).key(key).payload(bytes), Duration::from_secs(30))
        .await
        .map_err(|(error, _)| error)
        .context("producing the command")?;
    match (from, wait_secs) {
        (Some(from), Some(secs)) => Ok(Some(wait(kafka, from, command_id, Duration::from_secs(secs)).await?)),
        _ => Ok(None),
    }
}

/// Every partition of the results topic at `offset` (its end before sending, or its start).
async fn starts(kafka: &CommandPathArgs, offset: Offset) -> anyhow::Result<TopicPartitionList> {
    let topic = kafka.results_topic.clone();
    let metadata = tokio::task::spawn_blocking({
        let brokers = kafka.cluster.brokers.clone();
        let topic = topic.clone();
        move || -> anyhow::Result<Vec<(i32, i64)>> {
            let probe = clients::reader(&brokers, &format!("keel-cli-{}", Uuid::new_v4()))?;
            let metadata = probe.fetch_metadata(Some(&topic), Duration::from_secs(10))?;
            let partitions: Vec<i32> = metadata
                .topics()
                .iter()
                .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                .collect();
            partitions
                .into_iter()
                .map(|p| Ok((p, probe.fetch_watermarks(&topic, p, Duration::from_secs(10))?.1)))
                .collect()
        }
    })
    .await??;
    anyhow::ensure!(
        !metadata.is_empty(),
        "topic {topic} has no partitions (is the handler running?)"
    );
    let mut list = TopicPartitionList::new();
    for (partition, high) in metadata {
        let at = match offset {
            Offset::End => Offset::Offset(high),
            other => other,
        };
        list.add_partition_offset(&topic, partition, at)?;
    }
    Ok(list)
}

/// Reads the results topic from `from` until the result of `command_id` arrives.
async fn wait(
    kafka: &CommandPathArgs,
    from: TopicPartitionList,
    command_id: Uuid,
    timeout: Duration,
) -> anyhow::Result<CommandResult> {
    let reader = clients::reader(&kafka.cluster.brokers, &format!("keel-cli-{}", Uuid::new_v4()))?;
    reader.assign(&from)?;
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
        anyhow::ensure!(
            !remaining.is_zero(),
            "no result for command {command_id} within {} s (is the handler running?)",
            timeout.as_secs()
        );
        match tokio::time::timeout(remaining, reader.recv()).await {
            Err(_) => continue,
            Ok(Err(KafkaError::PartitionEOF(_))) => continue,
            Ok(Err(error)) => return Err(error.into()),
            Ok(Ok(message)) => {
                let Some(bytes) = message.payload() else { continue };
                if let Ok(result) = serde_json::from_slice::<CommandResult>(bytes)
                    && result.command_id == command_id
                {
                    return Ok(result);
                }
            }
        }
    }
}
