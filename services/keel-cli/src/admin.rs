//! `keel admin`: erase a data subject, fetch and check erasure certificates.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use keel_codec::Wire;
use keel_erasure::certificate::{verify, verifying_key_from_hex};
use keel_erasure::{AdminCommand, ErasureStore, System, TENANT_ERASURE_STREAM, erasure_stream};
use keel_kafka::partition::stream_key;
use keel_results::CommandResult;
use uuid::Uuid;

use crate::command::{CommandPathArgs, header_for, produce};

/// `keel admin`.
#[derive(Debug, clap::Subcommand)]
pub enum Admin {
    /// Erases a data subject: the admin service destroys its keys, records SubjectErased and
    /// signs a certificate. Prints the command's result (with `--wait`).
    Erase(EraseArgs),
    /// Erases a whole tenant: every data key and KEK epoch of the tenant is destroyed, with a
    /// certificate of its own (subject `*`).
    EraseTenant(AdminSendArgs),
    /// Prints the signed certificate of a subject's erasure, from the CQL store.
    Certificate {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// The erased subject.
        #[arg(long)]
        subject: String,
        /// Where the control keyspace is.
        #[command(flatten)]
        cql: keel_cql::CqlArgs,
    },
    /// Rotates a tenant's KEK now: a new epoch, every live key re-wrapped, every older epoch
    /// destroyed, so no old copy of an erased subject's wrapped key (old SSTables,
    /// snapshots, backups) can be unwrapped again. Prints what it did.
    Rotate {
        /// The tenant.
        #[arg(long)]
        tenant: String,
        /// Grace between creating the epoch and re-wrapping, in ms.
        #[arg(long, env = "KEEL_ROTATION_GRACE_MS", default_value_t = 2_000)]
        grace_ms: u64,
        /// Where the control keyspace is.
        #[command(flatten)]
        cql: keel_cql::CqlArgs,
        /// Where the keys are.
        #[command(flatten)]
        keys: keel_vault_cql::KeyArgs,
    },
    /// Checks a certificate's signature with the admin service's public key; exits non-zero
    /// if it does not verify.
    VerifyCertificate {
        /// The certificate document (JSON), `-` for standard input.
        #[arg(long)]
        certificate: PathBuf,
        /// The public key: 64 hex digits, or a file holding them.
        #[arg(long, env = "KEEL_CERTIFICATE_PUBLIC_KEY")]
        public_key: String,
    },
}

/// Where and as whom an admin command is sent, and why.
#[derive(Debug, Clone, clap::Args)]
pub struct AdminSendArgs {
    /// Where Kafka is.
    #[command(flatten)]
    pub kafka: CommandPathArgs,
    /// The admin commands topic.
    #[arg(long, env = "KEEL_ADMIN_TOPIC", default_value = "keel.admin")]
    pub admin_topic: String,
    /// The tenant.
    #[arg(long)]
    pub tenant: String,
    /// Why (e.g. the request's ticket; no personal data).
    #[arg(long)]
    pub reason: String,
    /// A credential granting `keel:admin` (`keel token --scope keel:admin`).
    #[arg(long, env = "KEEL_TOKEN")]
    pub token: String,
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

/// `keel admin erase`.
#[derive(Debug, Clone, clap::Args)]
pub struct EraseArgs {
    /// Where, as whom, why.
    #[command(flatten)]
    pub send: AdminSendArgs,
    /// The subject to erase.
    #[arg(long)]
    pub subject: String,
}

impl Admin {
    /// Runs the subcommand.
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            Self::Erase(args) => print_sent(erase(&args).await?),
            Self::EraseTenant(args) => print_sent(erase_tenant(&args).await?),
            Self::Certificate { tenant, subject, cql } => {
                let store = ErasureStore::new(Arc::new(cql.connect().await.map_err(anyhow::Error::msg)?)).await?;
                let document = store
                    .certificate(&tenant, &subject)
                    .await?
                    .with_context(|| format!("no committed erasure of {subject} in tenant {tenant}"))?;
                let value: serde_json::Value = serde_json::from_str(&document)?;
                println!("{}", serde_json::to_string_pretty(&value)?);
                Ok(())
            }
            Self::Rotate {
                tenant,
                grace_ms,
                cql,
                keys,
            } => {
                let session = Arc::new(cql.connect().await.map_err(anyhow::Error::msg)?);
                let store = ErasureStore::new(Arc::clone(&session)).await?;
                let ring = keel_vault_cql::service_key_ring(&keys, &cql.nodes, session).await?;
                let rotated = keel_admin::rotation::rotate_tenant(
                    &ring,
                    &store,
                    &tenant,
                    std::time::Duration::from_millis(grace_ms),
                )
                .await?;
                println!("{}", serde_json::to_string_pretty(&rotated)?);
                Ok(())
            }
            Self::VerifyCertificate {
                certificate,
                public_key,
            } => {
                let document = if certificate.as_os_str() == "-" {
                    let mut text = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut text)?;
                    text
                } else {
                    std::fs::read(&certificate).with_context(|| format!("reading {}", certificate.display()))?
                };
                let key_text = if public_key.len() == 64 && public_key.chars().all(|c| c.is_ascii_hexdigit()) {
                    public_key
                } else {
                    std::fs::read_to_string(&public_key).with_context(|| format!("reading {public_key}"))?
                };
                let key = verifying_key_from_hex(&key_text)?;
                let certified = verify(&document, &key)?;
                println!(
                    "valid: erasure of {} in tenant {} at {} µs, {} key(s) destroyed, event {} at {}/{}/{}",
                    certified.subject,
                    certified.tenant,
                    certified.erased_at_micros,
                    certified.destroyed_key_ids.len(),
                    certified.event.event_id,
                    certified.event.topic,
                    certified.event.partition,
                    certified.event.offset
                );
                Ok(())
            }
        }
    }
}

fn print_sent((command_id, result): (Uuid, Option<CommandResult>)) -> anyhow::Result<()> {
    match result {
        Some(result) => println!("{}", serde_json::to_string_pretty(&result)?),
        None => println!("{command_id}"),
    }
    Ok(())
}

/// Sends an erase command; returns its id and, with `--wait`, its result.
pub async fn erase(args: &EraseArgs) -> anyhow::Result<(Uuid, Option<CommandResult>)> {
    let command = AdminCommand::EraseSubject {
        subject: args.subject.clone(),
        reason: args.send.reason.clone(),
    };
    send_admin(&args.send, &erasure_stream(&args.subject), &command).await
}

/// Sends an erase-tenant command; returns its id and, with `--wait`, its result.
pub async fn erase_tenant(args: &AdminSendArgs) -> anyhow::Result<(Uuid, Option<CommandResult>)> {
    let command = AdminCommand::EraseTenant {
        reason: args.reason.clone(),
    };
    send_admin(args, TENANT_ERASURE_STREAM, &command).await
}

async fn send_admin(
    args: &AdminSendArgs,
    stream: &str,
    command: &AdminCommand,
) -> anyhow::Result<(Uuid, Option<CommandResult>)> {
    let command_id = args.command_id.unwrap_or_else(Uuid::new_v4);
    let header = header_for(&args.token, &args.tenant, stream, command_id)?;
    let bytes = Wire::new::<System>()?.encode_command(header, command)?;
    let key = stream_key(&args.tenant, stream);
    let result = produce(
        &args.kafka,
        &args.admin_topic,
        &key,
        &bytes,
        command_id,
        args.wait.then_some(args.timeout),
    )
    .await?;
    Ok((command_id, result))
}
