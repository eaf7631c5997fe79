//! The admin service's configuration: flags, each also settable as a `KEEL_*` variable.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;

/// Configuration of one admin service instance.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "keel-admin",
    about = "Keel's admin service: erasure by crypto-shredding",
    version
)]
pub struct AdminConfig {
    /// The Kafka cluster.
    #[command(flatten)]
    pub kafka: keel_kafka::KafkaArgs,
    /// The control keyspace: erasure records and certificates (and the key vault, unless
    /// `--vault-keyspace` names another).
    #[command(flatten)]
    pub cql: keel_cql::CqlArgs,
    /// This instance's stable id: its Kafka transactional id derives from it.
    #[arg(long, env = "KEEL_INSTANCE_ID", default_value = "admin-0")]
    pub instance_id: String,
    /// Consumer group of the admin service's instances.
    #[arg(long, env = "KEEL_ADMIN_GROUP", default_value = "keel-admin")]
    pub group_id: String,
    /// Admin commands topic (created if missing, with the commands' short retention).
    #[arg(long, env = "KEEL_ADMIN_TOPIC", default_value = "keel.admin")]
    pub admin_topic: String,
    /// Partitions of the admin topic when created.
    #[arg(long, env = "KEEL_ADMIN_PARTITIONS", default_value_t = 1)]
    pub admin_partitions: i32,
    /// Events topic: the log of record (the handler creates it).
    #[arg(long, env = "KEEL_EVENTS_TOPIC", default_value = "keel.events")]
    pub events_topic: String,
    /// Command results topic.
    #[arg(long, env = "KEEL_RESULTS_TOPIC", default_value = "keel.command-results")]
    pub results_topic: String,
    /// Dead-letter topic for undecodable input.
    #[arg(long, env = "KEEL_DLQ_TOPIC", default_value = "keel.dlq")]
    pub dlq_topic: String,
    /// Replication factor of created topics.
    #[arg(long, env = "KEEL_REPLICATION", default_value_t = 1)]
    pub replication: i32,
    /// Retention of the admin topic, in hours.
    #[arg(long, env = "KEEL_PLAINTEXT_RETENTION_HOURS", default_value_t = 24)]
    pub plaintext_retention_hours: u64,
    /// Tenants file: per tenant, its credential keys and its policy (JSON).
    #[arg(long, env = "KEEL_TENANTS")]
    pub tenants: PathBuf,
    /// The Ed25519 key that signs erasure certificates: its 32-byte seed as 64 hex digits,
    /// in a file readable by the service only.
    #[arg(long, env = "KEEL_CERTIFICATE_KEY")]
    pub certificate_key: PathBuf,
    /// Largest accepted admin command record, in bytes.
    #[arg(long, env = "KEEL_MAX_COMMAND_BYTES", default_value_t = 64 * 1024)]
    pub max_command_bytes: usize,
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "KEEL_OPS_ADDR", default_value = "127.0.0.1:9104")]
    pub ops_addr: SocketAddr,
    /// Longest wait between retries of a failed command, in ms (it doubles from 100 ms).
    #[arg(long, env = "KEEL_RETRY_BACKOFF_MAX_MS", default_value_t = 10_000)]
    pub retry_backoff_max_ms: u64,
    /// How long a tenant's oldest pending erasure waits for the KEK rotation that makes it
    /// final, in seconds (erasures in between share the rotation).
    #[arg(long, env = "KEEL_ROTATION_DELAY_SECS", default_value_t = 3_600)]
    pub rotation_delay_secs: u64,
    /// How often pending rotations are looked for, in seconds.
    #[arg(long, env = "KEEL_ROTATION_CHECK_SECS", default_value_t = 60)]
    pub rotation_check_secs: u64,
    /// Grace between creating a new KEK epoch and re-wrapping, in ms: keys other processes
    /// were wrapping under the old epoch land in the vault meanwhile.
    #[arg(long, env = "KEEL_ROTATION_GRACE_MS", default_value_t = 2_000)]
    pub rotation_grace_ms: u64,
    /// Where the tenant and data-subject keys are.
    #[command(flatten)]
    pub keys: keel_vault_cql::KeyArgs,
}

impl AdminConfig {
    /// The Kafka transactional id of this instance.
    pub fn transactional_id(&self) -> String {
        format!("{}-{}", self.group_id, self.instance_id)
    }
}
