//! Keel's admin service: erasure of data subjects by crypto-shredding.
//!
//! Consumes admin commands from `keel.admin` (read_committed, one command per Kafka
//! transaction) and, for `EraseSubject` from a credential granting `keel:admin` that the
//! tenant's policy allows:
//!
//! 1. records the erasure in the CQL store, with the subject's key versions listed;
//! 2. destroys every version of the subject's data key in the key vault (and drops it from
//!    this process's cache; other processes forget it within their cache lifetime);
//! 3. appends `SubjectErased`, free of personal data, as version 1 of stream
//!    `keel.erasure:<subject>`, sealed and chained like any event;
//! 4. signs the erasure certificate with Ed25519 and keeps it with the record;
//! 5. commits the event, the command's result and the consumed offset in one transaction,
//!    then marks the record committed (the query API serves committed certificates).
//!
//! Destroying keys cannot join the transaction, so it is made repeatable instead: a command
//! seen again after a crash finds its record and redoes steps 2 to 5 with the key ids listed
//! the first time. A later erase of the same subject gets the original result back.
//!
//! [`run`] is the service; `main` parses [`AdminConfig`], initialises telemetry and calls it.

mod config;
pub mod rotation;

use keel_results::Reason;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use keel_auth::{Authenticator, Policy, TenantsFile};
use keel_checkpoints::Generations;
use keel_codec::{CommandDecodeError, EventCodec, EventHeader, WireError, from_wire_actor, to_wire_actor};
use keel_crypto::{CryptoError, KeyVault, LocalFileKms};
use keel_envelope::{CommandEnvelope, EventEnvelope};
use keel_erasure::certificate::{Certificate, EventRef, FORMAT, SignedCertificate, Signer};
use keel_erasure::{
    ADMIN_SCOPE, AdminCommand, ErasureRecord, ErasureStore, System, SystemEvent, TENANT_ERASURE_STREAM, WHOLE_TENANT,
    erasure_stream,
};
use keel_kafka::clients;
use keel_kafka::partition::{partition_for, stream_key};
use keel_kafka::topics::{TopicSpec, ensure_topics};
use keel_kafka::trace::TraceHeaders;
use keel_results::{CommandResult, LogPosition, Outcome};
use keel_service::{Readiness, now_micros, serve_ops, telemetry};
use keel_vault_cql::CqlKeyVault;
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Message, Offset, TopicPartitionList};
use scylla::client::session::Session;
use tracing::Instrument;
use uuid::Uuid;

pub use config::AdminConfig;

/// How long one transactional call may block.
const TXN_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a command could not be carried out now.
#[derive(Debug, thiserror::Error)]
enum Failure {
    /// Something that may pass (a broker, the CQL store, the KMS): retried with backoff.
    #[error("retryable: {0}")]
    Retry(String),
    /// This instance cannot go on (fenced, fatal transactional state): exit, restart.
    #[error("fatal: {0}")]
    Fatal(String),
}

fn retry(what: &str) -> impl Fn(&dyn std::fmt::Display) -> Failure + '_ {
    move |error| Failure::Retry(format!("{what}: {error}"))
}

impl From<KafkaError> for Failure {
    fn from(error: KafkaError) -> Self {
        match &error {
            KafkaError::Transaction(e) if e.is_fatal() => Self::Fatal(error.to_string()),
            _ => Self::Retry(error.to_string()),
        }
    }
}

/// What one admin command leads to.
enum Decided {
    /// Not a command: a bounded copy goes to the DLQ, with a result when the id was
    /// readable.
    DeadLetter {
        reason: &'static str,
        error: String,
        command_id: Option<Uuid>,
        result: Option<CommandResult>,
    },
    /// A refusal or the original answer to a repeated erasure: nothing but the result.
    Answer(CommandResult),
    /// Keys destroyed; the event, certificate and result remain to be written.
    Erased(Box<Erasure>),
}

/// An admin command that passed authentication and authorisation.
struct Granted {
    tenant: String,
    stream: String,
    partition: i32,
    offset: i64,
    principal: keel_auth::Principal,
    authorization: keel_auth::Authorization,
    /// The actor as events carry it.
    actor: keel_envelope::Actor,
    /// The result so far (outcome still to fill).
    result: CommandResult,
}

/// What the erasure store knows of an erasure about to be carried out.
enum Begun {
    /// Done by an earlier command: its original answer.
    Repeated(Decided),
    /// Begun by this very input record before a crash or an abort: carry it on.
    Retry(ErasureRecord),
    /// Never begun.
    New,
}

/// What a certificate states beyond the command and the record: when, final when, and how
/// many events referenced the subject (`None` for a whole tenant).
struct Facts {
    erased_at: i64,
    final_by: i64,
    referencing_events: Option<u64>,
}

/// An erasure whose keys are destroyed and whose event is sealed.
struct Erasure {
    record: ErasureRecord,
    result: CommandResult,
    certificate: Certificate,
    event_key: String,
    event_bytes: Vec<u8>,
}

/// The admin service's parts.
struct Admin {
    config: AdminConfig,
    store: Arc<ErasureStore>,
    schedule: rotation::Schedule,
    codec: EventCodec<LocalFileKms, CqlKeyVault>,
    authenticator: Authenticator,
    policies: HashMap<String, Policy>,
    signer: Signer,
    producer: FutureProducer<clients::Named>,
    consumer: StreamConsumer<clients::Named>,
    events_partitions: i32,
    /// The control session, for the per-subject event counts of the serving generation.
    session: Arc<Session>,
    /// Which keyspace's projections serve reads.
    generations: Generations,
    /// What `/readyz` says: not ready while a command is being retried.
    readiness: Readiness,
}

/// Runs one admin service instance until `shutdown` resolves.
pub async fn run(config: AdminConfig, shutdown: impl std::future::Future<Output = ()> + Send) -> anyhow::Result<()> {
    let readiness = Readiness::new();
    readiness.set("admin", false, "starting");
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let listener = tokio::net::TcpListener::bind(config.ops_addr)
        .await
        .with_context(|| format!("binding the ops address {}", config.ops_addr))?;
    tracing::info!(address = %listener.local_addr()?, "ops endpoints listening");
    let ops = tokio::spawn(serve_ops(
        listener,
        readiness.clone(),
        telemetry::metrics_handle(),
        async move {
            let _ = stop_rx.wait_for(|stop| *stop).await;
        },
    ));

    let admin = connect(config, readiness.clone()).await?;
    let rotations = tokio::spawn({
        let keys = Arc::clone(admin.codec.keys());
        let store = Arc::clone(&admin.store);
        let schedule = admin.schedule;
        async move { rotation::run_schedule(&keys, &store, schedule).await }
    });
    readiness.set("admin", true, "consuming admin commands");
    let outcome = admin.run(shutdown).await;
    rotations.abort();
    let _ = stop_tx.send(true);
    let _ = ops.await;
    outcome
}

async fn connect(config: AdminConfig, readiness: Readiness) -> anyhow::Result<Admin> {
    let session = config.cql.connect().await.map_err(anyhow::Error::msg)?;
    let session = Arc::new(session);
    let store = Arc::new(ErasureStore::new(Arc::clone(&session)).await?);
    let generations = Generations::new(Arc::clone(&session), &config.cql.keyspace).await?;
    let keys = keel_vault_cql::service_key_ring(&config.keys, &config.cql.nodes, Arc::clone(&session)).await?;
    let codec = EventCodec::new::<System>(Arc::new(keys), keel_envelope::Upcasters::new())?;
    let tenants = TenantsFile::load(&config.tenants).map_err(anyhow::Error::msg)?;
    let authenticator = tenants.authenticator().map_err(anyhow::Error::msg)?;
    let key_text = std::fs::read_to_string(&config.certificate_key)
        .with_context(|| format!("reading the certificate key {}", config.certificate_key.display()))?;
    let signer = Signer::from_hex(&key_text)?;
    tracing::info!(
        public_key = %hex::encode(signer.verifying_key().as_bytes()),
        "erasure certificates are signed with this key"
    );

    let topics: AdminClient<DefaultClientContext> = clients::producer(&config.kafka.brokers).create()?;
    let retention = Duration::from_secs(config.plaintext_retention_hours * 3600);
    ensure_topics(
        &topics,
        &[TopicSpec {
            name: config.admin_topic.clone(),
            partitions: config.admin_partitions,
            replication: config.replication,
            config: vec![
                ("retention.ms", retention.as_millis().to_string()),
                (
                    "segment.ms",
                    keel_kafka::topics::segment_for(retention).as_millis().to_string(),
                ),
                ("cleanup.policy", "delete".into()),
            ],
        }],
    )
    .await?;

    let producer: FutureProducer<clients::Named> =
        clients::transactional_producer(&config.kafka.brokers, &config.transactional_id())
            .create_with_context(clients::Named("admin-producer"))?;
    tokio::task::block_in_place(|| producer.init_transactions(TXN_TIMEOUT))
        .context("initialising transactions (fences any earlier instance with the same id)")?;
    let consumer = group_consumer(&config)?;
    let events_partitions = partition_count(&consumer, &config.events_topic).await?;
    repair_uncommitted(&store, &consumer, &config.admin_topic).await?;
    tracing::info!(instance = %config.instance_id, events_partitions, "admin service started");
    let schedule = rotation::Schedule {
        delay: Duration::from_secs(config.rotation_delay_secs),
        check_every: Duration::from_secs(config.rotation_check_secs.max(1)),
        grace: Duration::from_millis(config.rotation_grace_ms),
    };
    Ok(Admin {
        schedule,
        policies: tenants.policies(),
        config,
        store,
        codec,
        authenticator,
        signer,
        producer,
        consumer,
        events_partitions,
        session,
        generations,
        readiness,
    })
}

/// The admin service's group consumer of the admin topic, subscribed: `read_committed`,
/// static membership.
fn group_consumer(config: &AdminConfig) -> anyhow::Result<StreamConsumer<clients::Named>> {
    let mut consumer_config = clients::read_committed_consumer(&config.kafka.brokers, &config.group_id);
    consumer_config.set("group.instance.id", config.transactional_id());
    let consumer: StreamConsumer<clients::Named> =
        consumer_config.create_with_context(clients::Named("admin-consumer"))?;
    consumer.subscribe(&[&config.admin_topic])?;
    Ok(consumer)
}

/// Marks committed every erasure record whose input record the group has consumed past:
/// its transaction committed (offsets only move inside one) but the process died before
/// marking it.
async fn repair_uncommitted(
    store: &ErasureStore,
    consumer: &StreamConsumer<clients::Named>,
    topic: &str,
) -> anyhow::Result<()> {
    let pending = store.uncommitted().await?;
    if pending.is_empty() {
        return Ok(());
    }
    let mut partitions = TopicPartitionList::new();
    for record in &pending {
        if partitions.find_partition(topic, record.input_partition).is_none() {
            partitions.add_partition(topic, record.input_partition);
        }
    }
    let committed = tokio::task::block_in_place(|| consumer.committed_offsets(partitions, TXN_TIMEOUT))?;
    for record in pending {
        let consumed_past = committed
            .find_partition(topic, record.input_partition)
            .and_then(|p| p.offset().to_raw())
            .is_some_and(|next| next > record.input_offset);
        if consumed_past {
            store.commit(&record.tenant, &record.subject).await?;
            tracing::info!(tenant = %record.tenant, command_id = %record.command_id, "repaired a committed erasure left unmarked");
        }
    }
    Ok(())
}

/// The partition count of `topic`, waiting up to a minute for it to exist.
async fn partition_count(consumer: &StreamConsumer<clients::Named>, topic: &str) -> anyhow::Result<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let metadata = tokio::task::block_in_place(|| consumer.fetch_metadata(Some(topic), Duration::from_secs(10)))?;
        let count = metadata
            .topics()
            .first()
            .filter(|t| t.error().is_none())
            .map(|t| t.partitions().len())
            .unwrap_or(0);
        if count > 0 {
            return Ok(i32::try_from(count)?);
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "topic {topic} does not exist (the handler creates it: is it running?)"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn rejected(base: &CommandResult, reason: &str, message: impl Into<String>) -> CommandResult {
    let message = message.into();
    tracing::info!(reason, %message, "admin command rejected");
    metrics::counter!("keel_admin_commands_total", "outcome" => "rejected", "reason" => reason.to_owned()).increment(1);
    CommandResult {
        outcome: Outcome::Rejected {
            reason: reason.to_owned(),
            message,
            current_version: None,
        },
        ..base.clone()
    }
}

fn accepted(base: &CommandResult, event: &EventRef) -> CommandResult {
    CommandResult {
        outcome: Outcome::Accepted {
            event_ids: vec![event.event_id],
            versions: vec![1],
            position: Some(LogPosition {
                partition: event.partition,
                offset: event.offset,
            }),
        },
        ..base.clone()
    }
}

/// The most bytes of an erasure's reason: it is kept in the certificate and the event.
const MAX_REASON_BYTES: usize = 1024;

/// A refusal of input that is not an admin command Keel can carry out: a bounded copy to
/// the DLQ, and a result when the envelope's command id could be read (ids echoed only when
/// valid, the message cut to 1 KiB).
fn dead_letter(envelope: Option<&CommandEnvelope>, reason: &'static str, mut error: String) -> Decided {
    if error.len() > 1024 {
        let mut end = 1021;
        while !error.is_char_boundary(end) {
            end -= 1;
        }
        error.truncate(end);
        error.push('…');
    }
    let command_id = envelope
        .filter(|e| keel_ids::is_valid(&e.command_id))
        .and_then(|e| e.command_id.parse::<Uuid>().ok());
    let result = envelope.zip(command_id).map(|(envelope, id)| {
        let mut base = base_result(envelope, id);
        base.actor = base.actor.filter(|actor| keel_ids::is_valid(&actor.id));
        base.on_behalf_of.retain(|actor| keel_ids::is_valid(&actor.id));
        rejected(&base, reason, error.clone())
    });
    Decided::DeadLetter {
        reason,
        error,
        command_id,
        result,
    }
}

/// What a result can say of a command whose envelope decoded (ids that break the grammar
/// are left out).
fn base_result(envelope: &CommandEnvelope, command_id: Uuid) -> CommandResult {
    let (actor, on_behalf_of, _) = from_wire_actor(&envelope.actor);
    let valid = |id: &str| keel_ids::is_valid(id).then(|| id.to_owned());
    CommandResult {
        command_id,
        tenant: valid(&envelope.tenant_id),
        stream: Some(envelope.stream_id.clone()).filter(|s| keel_ids::check_stream("stream_id", s).is_ok()),
        correlation_id: envelope.correlation_id.parse().ok(),
        command_type: valid(&envelope.command_type),
        actor: Some(actor),
        on_behalf_of,
        outcome: Outcome::Rejected {
            reason: String::new(),
            message: String::new(),
            current_version: None,
        },
    }
}

impl Admin {
    async fn run(mut self, shutdown: impl std::future::Future<Output = ()> + Send) -> anyhow::Result<()> {
        tokio::pin!(shutdown);
        loop {
            let message = tokio::select! {
                () = &mut shutdown => {
                    tracing::info!("admin service stopping");
                    return Ok(());
                }
                received = self.consumer.recv() => match received {
                    Ok(message) => message.detach(),
                    Err(KafkaError::PartitionEOF(_)) => continue,
                    Err(KafkaError::MessageConsumptionFatal(code)) => {
                        // The consumer is unusable (the group fenced it after a broker
                        // restart): a new one rejoins, as a restart of the process would.
                        tracing::warn!(%code, "the consumer failed fatally; it is replaced and rejoins the group");
                        metrics::counter!("keel_admin_consumer_rejoins_total").increment(1);
                        let consumer = group_consumer(&self.config)?;
                        let old = std::mem::replace(&mut self.consumer, consumer);
                        tokio::task::block_in_place(|| drop(old));
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, "consuming admin commands failed; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        continue;
                    }
                },
            };
            let mut failures = 0_u32;
            loop {
                match self.handle(&message).await {
                    Ok(()) => {
                        if failures > 0 {
                            self.readiness.set("admin", true, "consuming admin commands");
                            tracing::info!(failures, "admin command carried out after retries");
                        }
                        break;
                    }
                    Err(Failure::Fatal(error)) => return Err(anyhow::anyhow!(error)),
                    Err(Failure::Retry(error)) => {
                        // Every failure here is the infrastructure's (a broker, the CQL store,
                        // the KMS): input that can never be carried out is answered and
                        // dead-lettered in `decide` before anything is done. An erasure is
                        // never given up half done; while it waits, the service says so.
                        failures += 1;
                        let wait =
                            keel_service::backoff(failures, Duration::from_millis(self.config.retry_backoff_max_ms));
                        tracing::warn!(%error, failures, ?wait, "admin command failed; retrying it");
                        metrics::counter!("keel_admin_retries_total").increment(1);
                        self.readiness.set(
                            "admin",
                            false,
                            format!(
                                "retrying the command at {}/{} ({failures} failures, last: {error})",
                                message.partition(),
                                message.offset()
                            ),
                        );
                        tokio::select! {
                            () = &mut shutdown => return Ok(()),
                            () = tokio::time::sleep(wait) => {}
                        }
                    }
                }
            }
        }
    }

    /// Carries one admin command out, exactly once.
    async fn handle(&self, message: &OwnedMessage) -> Result<(), Failure> {
        let started = Instant::now();
        let decided = self.decide(message).await?;
        tokio::task::block_in_place(|| self.producer.begin_transaction()).map_err(Failure::from)?;
        match self.write(message, &decided).await {
            Ok(()) => {}
            Err(error) => {
                if let Err(abort) = tokio::task::block_in_place(|| self.producer.abort_transaction(TXN_TIMEOUT)) {
                    return Err(Failure::Fatal(format!("aborting a transaction failed: {abort}")));
                }
                return Err(error);
            }
        }
        if let Decided::Erased(erasure) = &decided {
            // The transaction committed: from here on nothing may run the command again.
            self.mark_committed(&erasure.record.tenant, &erasure.record.subject)
                .await;
            metrics::counter!("keel_admin_erasures_total").increment(1);
            metrics::counter!("keel_admin_commands_total", "outcome" => "accepted", "reason" => "").increment(1);
            metrics::histogram!("keel_admin_erase_seconds").record(started.elapsed().as_secs_f64());
            tracing::info!(
                tenant = %erasure.record.tenant,
                command_id = %erasure.record.command_id,
                keys = erasure.record.destroyed_key_ids.len(),
                "subject erased"
            );
        }
        Ok(())
    }

    /// Marks an erasure whose transaction committed, retrying until the store takes it: the
    /// query API serves its certificate from then on. If this process dies first, the next
    /// start repairs it ([`repair_uncommitted`]).
    async fn mark_committed(&self, tenant: &str, subject: &str) {
        let mut failures = 0_u32;
        while let Err(error) = self.store.commit(tenant, subject).await {
            failures += 1;
            tracing::warn!(%error, tenant, failures, "marking a committed erasure failed; retrying");
            tokio::time::sleep(keel_service::backoff(failures, Duration::MAX)).await;
        }
    }

    /// Decodes, authenticates, authorises and, for an erasure, destroys the keys and seals
    /// the event. Writes nothing to Kafka.
    async fn decide(&self, message: &OwnedMessage) -> Result<Decided, Failure> {
        let bytes = message.payload().unwrap_or_default();
        let decoded = self.codec.wire().decode_command::<AdminCommand>(bytes);
        if bytes.len() > self.config.max_command_bytes {
            // Still answered when its command id can be read, so the sender is not left waiting.
            let envelope = match &decoded {
                Ok((envelope, _)) => Some(envelope),
                Err(CommandDecodeError { envelope, .. }) => envelope.as_deref(),
            };
            return Ok(dead_letter(
                envelope,
                Reason::PayloadTooLarge.code(),
                format!(
                    "the admin command is {} bytes, the limit is {}",
                    bytes.len(),
                    self.config.max_command_bytes
                ),
            ));
        }
        let (envelope, command) = match decoded {
            Ok(decoded) => decoded,
            Err(CommandDecodeError { envelope, error }) => {
                return Ok(dead_letter(envelope.as_deref(), error.code(), error.to_string()));
            }
        };
        let Ok(command_id) = envelope.command_id.parse::<Uuid>() else {
            return Ok(dead_letter(
                None,
                Reason::Undecodable.code(),
                "command_id is not a UUID".into(),
            ));
        };
        let base = base_result(&envelope, command_id);
        let span = tracing::info_span!(
            "admin_command",
            tenant = %envelope.tenant_id,
            stream = %envelope.stream_id,
            command_id = %command_id,
            actor = %envelope.actor.id,
        );
        self.decide_command(message, envelope, command, base)
            .instrument(span)
            .await
    }

    /// Decides a decoded admin command (inside its span: tenant, stream, command id, actor).
    async fn decide_command(
        &self,
        message: &OwnedMessage,
        envelope: CommandEnvelope,
        command: AdminCommand,
        base: CommandResult,
    ) -> Result<Decided, Failure> {
        let (actor, on_behalf_of, _) = from_wire_actor(&envelope.actor);
        let now = u64::try_from(now_micros() / 1_000_000).unwrap_or(0);
        let principal =
            match self
                .authenticator
                .authenticate(&envelope.tenant_id, &envelope.credential, &actor, &on_behalf_of, now)
            {
                Ok(principal) => principal,
                Err(error) => return Ok(Decided::Answer(rejected(&base, error.code(), error.to_string()))),
            };
        if !principal.scopes.iter().any(|scope| scope == ADMIN_SCOPE) {
            return Ok(Decided::Answer(rejected(
                &base,
                Reason::NotAdmin.code(),
                format!("admin commands need a credential granting {ADMIN_SCOPE}"),
            )));
        }
        let Some(policy) = self.policies.get(&envelope.tenant_id) else {
            return Ok(Decided::Answer(rejected(
                &base,
                Reason::NoPolicy.code(),
                format!("tenant {} has no policy", envelope.tenant_id),
            )));
        };
        let authorization = match policy.authorize(&principal, &command) {
            Ok(authorization) => authorization,
            Err(error) => return Ok(Decided::Answer(rejected(&base, error.code(), error.to_string()))),
        };
        let granted = Granted {
            tenant: envelope.tenant_id.clone(),
            stream: envelope.stream_id.clone(),
            partition: message.partition(),
            offset: message.offset(),
            actor: to_wire_actor(&principal.actor, &principal.on_behalf_of, Some(&authorization)),
            result: CommandResult {
                actor: Some(principal.actor.clone()),
                on_behalf_of: principal.on_behalf_of.clone(),
                ..base
            },
            principal,
            authorization,
        };
        match command {
            AdminCommand::EraseSubject { subject, reason } => self.erase_subject(granted, subject, reason).await,
            AdminCommand::EraseTenant { reason } => self.erase_tenant(granted, reason).await,
        }
    }

    /// Destroys a subject's keys and prepares its `SubjectErased` and certificate.
    async fn erase_subject(&self, granted: Granted, subject: String, reason: String) -> Result<Decided, Failure> {
        let base = &granted.result;
        if let Err(error) = keel_ids::check("subject", &subject) {
            return Ok(Decided::Answer(rejected(
                base,
                Reason::InvalidId.code(),
                error.to_string(),
            )));
        }
        if let Err(error) = keel_ids::check_text("reason", &reason, MAX_REASON_BYTES) {
            return Ok(Decided::Answer(rejected(
                base,
                Reason::OutOfBounds.code(),
                error.to_string(),
            )));
        }
        if subject.is_empty() || subject == WHOLE_TENANT || granted.stream != erasure_stream(&subject) {
            return Ok(Decided::Answer(rejected(
                base,
                Reason::WrongStream.code(),
                format!("an erasure of a subject goes to stream {}", erasure_stream("<subject>")),
            )));
        }
        let tenant = granted.tenant.as_str();
        let record = match self.begun(&granted, &subject).await? {
            Begun::Repeated(decided) => return Ok(decided),
            Begun::Retry(record) => record,
            Begun::New => {
                let Some(ids) = self
                    .codec
                    .keys()
                    .subject_key_ids(tenant, &subject)
                    .await
                    .map_err(|e| retry("listing the subject's keys")(&e))?
                else {
                    return Ok(Decided::Answer(rejected(
                        base,
                        "already_erased",
                        "the subject's keys were destroyed without an erasure record",
                    )));
                };
                let record = ErasureRecord {
                    tenant: tenant.to_owned(),
                    subject: subject.clone(),
                    command_id: base.command_id,
                    input_partition: granted.partition,
                    input_offset: granted.offset,
                    destroyed_keys: i64::try_from(ids.len()).unwrap_or(i64::MAX),
                    destroyed_key_ids: ids.iter().map(ToString::to_string).collect(),
                    event: None,
                    certificate: None,
                    committed: false,
                };
                self.store.begin(&record).await.map_err(|e| retry("recording")(&e))?;
                record
            }
        };
        self.codec
            .keys()
            .erase_subject(tenant, &subject)
            .await
            .map_err(|e| retry("destroying the subject's keys")(&e))?;

        let referencing_events = self.referencing_events(tenant, &subject).await?;
        let erased_at = now_micros();
        self.store
            .note_pending_rotation(tenant, erased_at, &subject)
            .await
            .map_err(|e| retry("noting the rotation due")(&e))?;
        let event = SystemEvent::SubjectErased {
            subject,
            reason: reason.clone(),
            destroyed_key_ids: record.destroyed_key_ids.clone(),
            referencing_events,
            erased_at,
        };
        let sealed = match self.seal(&granted, &event, erased_at).await? {
            Ok(sealed) => sealed,
            Err(refused) => return Ok(Decided::Answer(refused)),
        };
        let final_by = self.final_by(erased_at);
        let facts = Facts {
            erased_at,
            final_by,
            referencing_events: Some(u64::try_from(referencing_events).unwrap_or(0)),
        };
        self.erasure(granted, record, &sealed, reason, facts)
    }

    /// How many events of `tenant` referenced `subject`, as the serving projections have
    /// applied them: one row per events partition, however long the history.
    async fn referencing_events(&self, tenant: &str, subject: &str) -> Result<i64, Failure> {
        let serving = self
            .generations
            .serving()
            .await
            .map_err(|e| retry("reading the serving generation")(&e))?;
        keel_trails::subject_event_count(&self.session, &serving, tenant, subject)
            .await
            .map_err(|e| retry("counting the subject's events")(&format!("{e:#}")))
    }

    /// Prepares a tenant's `TenantErased` (sealed now: once the tenant's keys are gone
    /// nothing can seal for it) and destroys every key and KEK epoch of the tenant.
    async fn erase_tenant(&self, granted: Granted, reason: String) -> Result<Decided, Failure> {
        let base = &granted.result;
        if let Err(error) = keel_ids::check_text("reason", &reason, MAX_REASON_BYTES) {
            return Ok(Decided::Answer(rejected(
                base,
                Reason::OutOfBounds.code(),
                error.to_string(),
            )));
        }
        if granted.stream != TENANT_ERASURE_STREAM {
            return Ok(Decided::Answer(rejected(
                base,
                Reason::WrongStream.code(),
                format!("an erasure of a tenant goes to stream {TENANT_ERASURE_STREAM}"),
            )));
        }
        let tenant = granted.tenant.as_str();
        let record = match self.begun(&granted, WHOLE_TENANT).await? {
            Begun::Repeated(decided) => return Ok(decided),
            Begun::Retry(record) => record,
            Begun::New => {
                let keys = self
                    .codec
                    .keys()
                    .vault()
                    .live_keys(tenant)
                    .await
                    .map_err(|e| retry("counting the tenant's keys")(&e))?
                    .len();
                let destroyed_keys = i64::try_from(keys).unwrap_or(i64::MAX);
                let erased_at = now_micros();
                let event = SystemEvent::TenantErased {
                    reason: reason.clone(),
                    destroyed_keys,
                    erased_at,
                };
                let sealed = match self.seal(&granted, &event, erased_at).await? {
                    Ok(sealed) => sealed,
                    Err(refused) => return Ok(Decided::Answer(refused)),
                };
                let bytes = self
                    .codec
                    .wire()
                    .encode_event(&sealed)
                    .map_err(|e| Failure::Fatal(format!("encoding the event: {e}")))?;
                let record = ErasureRecord {
                    tenant: tenant.to_owned(),
                    subject: WHOLE_TENANT.to_owned(),
                    command_id: base.command_id,
                    input_partition: granted.partition,
                    input_offset: granted.offset,
                    destroyed_key_ids: Vec::new(),
                    destroyed_keys,
                    event: Some(bytes),
                    certificate: None,
                    committed: false,
                };
                self.store.begin(&record).await.map_err(|e| retry("recording")(&e))?;
                record
            }
        };
        let bytes = record
            .event
            .as_deref()
            .ok_or_else(|| Failure::Fatal("a tenant's erasure record has no event".into()))?;
        let sealed = self
            .codec
            .wire()
            .read_event(bytes)
            .map_err(|e| Failure::Fatal(format!("the recorded event does not read: {e}")))?;
        self.codec
            .keys()
            .erase_tenant(tenant)
            .await
            .map_err(|e| retry("destroying the tenant's keys")(&e))?;
        let erased_at = sealed.recorded_at;
        // Every KEK epoch is gone, so no rotation is awaited: only the plaintext topics bound
        // it (and never before now, for a retry long after the event was sealed).
        let final_by = self.plaintext_gone(erased_at).max(now_micros());
        let facts = Facts {
            erased_at,
            final_by,
            referencing_events: None,
        };
        self.erasure(granted, record, &sealed, reason, facts)
    }

    /// Whether this erasure was begun before: by this very input record (a retry after a
    /// crash or an aborted transaction), or by an earlier one (answered with its result).
    async fn begun(&self, granted: &Granted, subject: &str) -> Result<Begun, Failure> {
        Ok(
            match self
                .store
                .get(&granted.tenant, subject)
                .await
                .map_err(|e| retry("reading")(&e))?
            {
                Some(done)
                    if done.committed
                        || (done.input_partition, done.input_offset) != (granted.partition, granted.offset) =>
                {
                    Begun::Repeated(self.repeat(&granted.result, done).await?)
                }
                Some(begun) => Begun::Retry(begun),
                None => Begun::New,
            },
        )
    }

    /// Seals `event` as version 1 of the command's stream; a refusal if the tenant is gone.
    async fn seal(
        &self,
        granted: &Granted,
        event: &SystemEvent,
        at: i64,
    ) -> Result<Result<EventEnvelope, CommandResult>, Failure> {
        let header = EventHeader {
            tenant: &granted.tenant,
            stream: &granted.stream,
            version: 1,
            recorded_at_micros: at,
            command_id: granted.result.command_id,
            correlation_id: granted.result.correlation_id.unwrap_or(granted.result.command_id),
            actor: granted.actor.clone(),
            compensates: None,
        };
        match self.codec.seal_event(&header, event, &[]).await {
            Ok(sealed) => Ok(Ok(sealed)),
            Err(WireError::Crypto(CryptoError::TenantDestroyed(_))) => Ok(Err(rejected(
                &granted.result,
                Reason::TenantErased.code(),
                "the tenant is erased",
            ))),
            Err(error) => Err(retry("sealing the event")(&error)),
        }
    }

    /// The erasure, its keys destroyed and its event sealed, ready to write.
    fn erasure(
        &self,
        granted: Granted,
        record: ErasureRecord,
        sealed: &EventEnvelope,
        reason: String,
        facts: Facts,
    ) -> Result<Decided, Failure> {
        let Facts {
            erased_at,
            final_by,
            referencing_events,
        } = facts;
        let event_bytes = self
            .codec
            .wire()
            .encode_event(sealed)
            .map_err(|e| Failure::Fatal(format!("encoding the event: {e}")))?;
        let event_id = sealed
            .event_id
            .parse()
            .map_err(|e| Failure::Fatal(format!("event id: {e}")))?;
        let certificate = Certificate {
            format: FORMAT.into(),
            tenant: granted.tenant.clone(),
            subject: record.subject.clone(),
            erased_at_micros: erased_at,
            requested_by: granted.principal.actor,
            on_behalf_of: granted.principal.on_behalf_of,
            authorization: granted.authorization,
            reason,
            command_id: granted.result.command_id,
            destroyed_key_ids: record.destroyed_key_ids.clone(),
            destroyed_key_count: u64::try_from(record.destroyed_keys).unwrap_or(0),
            referencing_events,
            event: EventRef {
                event_id,
                stream: granted.stream.clone(),
                topic: self.config.events_topic.clone(),
                partition: -1,
                offset: -1,
                hash: hex::encode(&sealed.hash),
            },
            final_by_micros: Some(final_by),
        };
        Ok(Decided::Erased(Box::new(Erasure {
            event_key: stream_key(&granted.tenant, &granted.stream),
            record,
            result: granted.result,
            certificate,
            event_bytes,
        })))
    }

    /// When the plaintext topics (commands, admin, DLQ) have deleted every segment that
    /// could hold what was sent before `erased_at`: retention, one segment roll, the
    /// broker's five-minute retention check.
    fn plaintext_gone(&self, erased_at: i64) -> i64 {
        let retention = Duration::from_secs(self.config.plaintext_retention_hours * 3600);
        let plaintext = retention + keel_kafka::topics::segment_for(retention) + Duration::from_secs(300);
        erased_at.saturating_add(i64::try_from(plaintext.as_micros()).unwrap_or(i64::MAX))
    }

    /// When an erasure at `erased_at` is final against every copy on disk: the KEK rotation
    /// that covers it has run, and the plaintext topics have forgotten what preceded it.
    fn final_by(&self, erased_at: i64) -> i64 {
        self.schedule.final_by(erased_at).max(self.plaintext_gone(erased_at))
    }

    /// The answer to an erase of a subject already erased: the original result.
    async fn repeat(&self, base: &CommandResult, done: ErasureRecord) -> Result<Decided, Failure> {
        // A record begun by an earlier input record that this consumer has moved past was
        // committed with it: the offset only moves inside a committed transaction.
        if !done.committed {
            self.store
                .commit(&done.tenant, &done.subject)
                .await
                .map_err(|e| retry("marking the erasure committed")(&e))?;
        }
        let signed: SignedCertificate = done
            .certificate
            .as_deref()
            .map(serde_json::from_str)
            .transpose()
            .map_err(|e| Failure::Fatal(format!("a stored certificate does not parse: {e}")))?
            .ok_or_else(|| Failure::Fatal("a committed erasure has no certificate".into()))?;
        tracing::info!(original = %done.command_id, "subject already erased; answering with the original result");
        metrics::counter!("keel_admin_commands_total", "outcome" => "repeated", "reason" => "").increment(1);
        Ok(Decided::Answer(accepted(base, &signed.certificate.event)))
    }

    /// Produces what `decided` says inside the open transaction and commits it with the
    /// consumed offset.
    async fn write(&self, message: &OwnedMessage, decided: &Decided) -> Result<(), Failure> {
        let results = &self.config.results_topic;
        let send = |topic: &str, key: Option<String>, payload: Vec<u8>, headers: OwnedHeaders| {
            let producer = &self.producer;
            let topic = topic.to_owned();
            async move {
                let mut record = FutureRecord::to(&topic).payload(&payload).headers(headers);
                if let Some(key) = &key {
                    record = record.key(key);
                }
                producer
                    .send(record, Duration::ZERO)
                    .await
                    .map_err(|(error, _)| Failure::from(error))
            }
        };
        let encode = |result: &CommandResult| {
            serde_json::to_vec(result).map_err(|e| Failure::Fatal(format!("encoding a result: {e}")))
        };
        let result_key = |result: &CommandResult| {
            Some(stream_key(
                result.tenant.as_deref().unwrap_or_default(),
                result.stream.as_deref().unwrap_or_default(),
            ))
        };
        match decided {
            Decided::DeadLetter {
                reason,
                error,
                command_id,
                result,
            } => {
                let (value, headers) = keel_kafka::DeadLetter {
                    reason,
                    error,
                    topic: &self.config.admin_topic,
                    partition: message.partition(),
                    offset: message.offset(),
                    command_id: command_id.map(|id| id.to_string()),
                    event_id: None,
                }
                .record(
                    message.payload().unwrap_or_default(),
                    &TraceHeaders::from_record(message.headers()),
                );
                send(&self.config.dlq_topic, None, value, headers).await?;
                metrics::counter!("keel_admin_dlq_total").increment(1);
                metrics::counter!("keel_admin_commands_total", "outcome" => "rejected", "reason" => *reason)
                    .increment(1);
                tracing::warn!(reason, %error, offset = message.offset(), "admin command refused and sent to the DLQ");
                if let Some(result) = result {
                    send(results, result_key(result), encode(result)?, OwnedHeaders::new()).await?;
                }
            }
            Decided::Answer(result) => {
                send(results, result_key(result), encode(result)?, OwnedHeaders::new()).await?;
            }
            Decided::Erased(erasure) => {
                let partition = partition_for(erasure.event_key.as_bytes(), self.events_partitions);
                let event_id = erasure.certificate.event.event_id.to_string();
                let record = FutureRecord::to(&self.config.events_topic)
                    .partition(partition)
                    .key(&erasure.event_key)
                    .payload(&erasure.event_bytes)
                    .headers(OwnedHeaders::new().insert(Header {
                        key: "keel-event-id",
                        value: Some(&event_id),
                    }));
                let delivery = self
                    .producer
                    .send(record, Duration::ZERO)
                    .await
                    .map_err(|(error, _)| Failure::from(error))?;
                let mut certificate = erasure.certificate.clone();
                certificate.event.partition = delivery.partition;
                certificate.event.offset = delivery.offset;
                let signed = self
                    .signer
                    .sign(certificate)
                    .map_err(|e| Failure::Fatal(format!("signing: {e}")))?;
                let document = serde_json::to_string(&signed).map_err(|e| Failure::Fatal(format!("encoding: {e}")))?;
                self.store
                    .certify(&erasure.record.tenant, &erasure.record.subject, &document)
                    .await
                    .map_err(|e| retry("keeping the certificate")(&e))?;
                let result = accepted(&erasure.result, &signed.certificate.event);
                send(results, result_key(&result), encode(&result)?, OwnedHeaders::new()).await?;
            }
        }
        let mut offsets = TopicPartitionList::new();
        offsets
            .add_partition_offset(
                &self.config.admin_topic,
                message.partition(),
                Offset::Offset(message.offset() + 1),
            )
            .map_err(Failure::from)?;
        let metadata = self
            .consumer
            .group_metadata()
            .ok_or_else(|| Failure::Retry("the consumer has no group metadata yet".into()))?;
        tokio::task::block_in_place(|| {
            self.producer
                .send_offsets_to_transaction(&offsets, &metadata, TXN_TIMEOUT)
        })?;
        tokio::task::block_in_place(|| self.producer.commit_transaction(TXN_TIMEOUT))?;
        Ok(())
    }
}
