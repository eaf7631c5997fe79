//! The handler's configuration: flags, each also settable as a `KEEL_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use keel_kafka::topics::{TopicNames, TopicSettings};

/// Streams remembered per assigned partition unless configured (`KEEL_MEMORY_STREAMS`).
pub const DEFAULT_MEMORY_STREAMS: usize = 50_000;
/// Command results remembered per assigned partition unless configured
/// (`KEEL_MEMORY_RESULTS`).
pub const DEFAULT_MEMORY_RESULTS: usize = 50_000;

/// Configuration of one handler instance.
#[derive(Debug, Clone, Parser)]
#[command(name = "keel-handler", about = "Keel's command handler", version)]
pub struct HandlerConfig {
    /// The Kafka cluster.
    #[command(flatten)]
    pub kafka: keel_kafka::KafkaArgs,
    /// The CQL store and the keyspace of the handler's decision state.
    #[command(flatten)]
    pub cql: keel_cql::CqlArgs,
    /// This instance's stable id: its Kafka transactional id derives from it, so a restarted
    /// instance fences its predecessor. Give each instance its own.
    #[arg(long, env = "KEEL_INSTANCE_ID", default_value = "handler-0")]
    pub instance_id: String,
    /// Consumer group shared by all handler instances.
    #[arg(long, env = "KEEL_HANDLER_GROUP", default_value = "keel-handler")]
    pub group_id: String,
    /// Commands topic.
    #[arg(long, env = "KEEL_COMMANDS_TOPIC", default_value = "keel.commands")]
    pub commands_topic: String,
    /// Events topic: the log of record.
    #[arg(long, env = "KEEL_EVENTS_TOPIC", default_value = "keel.events")]
    pub events_topic: String,
    /// Command results topic.
    #[arg(long, env = "KEEL_RESULTS_TOPIC", default_value = "keel.command-results")]
    pub results_topic: String,
    /// Dead-letter topic for undecodable input.
    #[arg(long, env = "KEEL_DLQ_TOPIC", default_value = "keel.dlq")]
    pub dlq_topic: String,
    /// Partitions of the commands, events and results topics when the handler creates them.
    #[arg(long, env = "KEEL_PARTITIONS", default_value_t = 6)]
    pub partitions: i32,
    /// Replication factor of created topics.
    #[arg(long, env = "KEEL_REPLICATION", default_value_t = 1)]
    pub replication: i32,
    /// Retention of the commands topic and the DLQ, which hold producers' plaintext, in hours.
    #[arg(long, env = "KEEL_PLAINTEXT_RETENTION_HOURS", default_value_t = 24)]
    pub plaintext_retention_hours: u64,
    /// Tenants file: per tenant, its credential keys and its policy (JSON).
    #[arg(long, env = "KEEL_TENANTS")]
    pub tenants: PathBuf,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "KEEL_OPS_ADDR", default_value = "127.0.0.1:9101")]
    pub ops_addr: SocketAddr,
    /// Most commands decided in one Kafka transaction.
    #[arg(long, env = "KEEL_MAX_BATCH", default_value_t = 200)]
    pub max_batch: usize,
    /// How long to wait for more commands before committing a partial batch, in ms.
    #[arg(long, env = "KEEL_BATCH_LINGER_MS", default_value_t = 10)]
    pub batch_linger_ms: u64,
    /// Largest accepted command record, in bytes; larger ones are refused.
    #[arg(long, env = "KEEL_MAX_COMMAND_BYTES", default_value_t = 256 * 1024)]
    pub max_command_bytes: usize,
    /// Largest record the handler produces (the producer's `message.max.bytes`; keep it at
    /// or under the topics' `max.message.bytes`): a command whose event would not fit is
    /// refused as `event_too_large` instead of failing its transaction.
    #[arg(long, env = "KEEL_MAX_RECORD_BYTES", default_value_t = 1_000_000)]
    pub max_record_bytes: usize,
    /// How long command results are kept for deduplication, in hours: a command id sent
    /// again within it gets its original result. At least the commands topic's retention
    /// (`KEEL_PLAINTEXT_RETENTION_HOURS`), so no command still in the topic can be decided
    /// twice.
    #[arg(long, env = "KEEL_DEDUP_RETENTION_HOURS", default_value_t = 7 * 24)]
    pub dedup_retention_hours: u64,
    /// How long the group waits for a silent instance before moving its partitions, in ms.
    #[arg(long, env = "KEEL_SESSION_TIMEOUT_MS", default_value_t = 45_000)]
    pub session_timeout_ms: u64,
    /// Consecutive failed batches after which the handler reports itself paused.
    #[arg(long, env = "KEEL_RETRY_PAUSE_AFTER", default_value_t = 10)]
    pub retry_pause_after: u32,
    /// Longest wait between retries of a failed batch, in ms (it doubles from 100 ms).
    #[arg(long, env = "KEEL_RETRY_BACKOFF_MAX_MS", default_value_t = 10_000)]
    pub retry_backoff_max_ms: u64,
    /// Most streams remembered per assigned partition (version, last hash, folded state);
    /// beyond it, those written to least recently are read back from the CQL store when
    /// next needed.
    #[arg(long, env = "KEEL_MEMORY_STREAMS", default_value_t = DEFAULT_MEMORY_STREAMS)]
    pub memory_streams: usize,
    /// Most command results remembered per assigned partition; beyond it, a duplicate
    /// command id is answered from the CQL store.
    #[arg(long, env = "KEEL_MEMORY_RESULTS", default_value_t = DEFAULT_MEMORY_RESULTS)]
    pub memory_results: usize,
    /// Where the tenant and data-subject keys are.
    #[command(flatten)]
    pub keys: keel_vault_cql::KeyArgs,
}

impl HandlerConfig {
    /// Rejects settings that would break a guarantee: a deduplication window shorter than
    /// the commands topic's retention, or a command limit the record limit cannot carry.
    pub fn check(&self) -> Result<(), String> {
        if self.dedup_retention_hours < self.plaintext_retention_hours {
            return Err(format!(
                "--dedup-retention-hours ({}) must be at least the commands topic's retention, \
                 --plaintext-retention-hours ({}): a command still in the topic could be decided twice",
                self.dedup_retention_hours, self.plaintext_retention_hours
            ));
        }
        if self.max_command_bytes >= self.max_record_bytes {
            return Err(format!(
                "--max-command-bytes ({}) must be under --max-record-bytes ({})",
                self.max_command_bytes, self.max_record_bytes
            ));
        }
        Ok(())
    }

    /// How long command results are kept for deduplication.
    pub fn dedup_retention(&self) -> Duration {
        Duration::from_secs(self.dedup_retention_hours.saturating_mul(3600))
    }

    /// The topic names.
    pub fn topic_names(&self) -> TopicNames {
        TopicNames {
            commands: self.commands_topic.clone(),
            events: self.events_topic.clone(),
            results: self.results_topic.clone(),
            dlq: self.dlq_topic.clone(),
        }
    }

    /// The topic layout the handler creates when topics are missing.
    pub fn topic_settings(&self) -> TopicSettings {
        let plaintext = Duration::from_secs(self.plaintext_retention_hours * 3600);
        TopicSettings {
            partitions: self.partitions,
            replication: self.replication,
            command_retention: plaintext,
            dlq_retention: plaintext,
            ..TopicSettings::default()
        }
    }

    /// The Kafka transactional id of this instance.
    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.group_id, self.instance_id)
    }
}
