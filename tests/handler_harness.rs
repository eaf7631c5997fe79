//! Starts a command handler in this process against the real Kafka and CQL store, on
//! topics and a keyspace of the test's own, and plays the producer and the reader.
//!
//! The handler runs with the production codec (Avro envelopes, sealed payloads, hash
//! chains; `keel_handler::run_domain::<Customer>`), and the harness encodes commands and reads
//! events with keel-codec as any client would.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use ed25519_dalek::SigningKey;
use keel_auth::{Actor, ActorKind, Claims, TenantAuth, TenantKey, TokenIssuer};
use keel_customer_support::{Customer, SupportCommand};
use serde::{Deserialize, Serialize};

use keel_chain::{ChainHasher, Verdict, verify_stream};
use keel_codec::{CommandHeader, EventCodec, Wire, to_wire_actor};
use keel_crypto::LocalFileKms;
use keel_domain::Aggregate;
use keel_domain::DomainCommand;
use keel_envelope::EventEnvelope;
use keel_handler::tenants::{TenantConfig, TenantsFile};
use keel_handler::{Codec, HandlerConfig};
use keel_handler_state::HandlerState;
use keel_kafka::clients;
use keel_kafka::partition::stream_key;
use keel_kafka::topics::{command_path_topics, ensure_topics};
use keel_projector::ProjectorConfig;
use keel_results::CommandResult;
use keel_testkit::{TestKafka, TestResult, cql_nodes, unique_name};
use keel_vault_cql::{CqlKeyVault, KeyArgs};
use rdkafka::admin::AdminClient;
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::Consumer;
use rdkafka::error::KafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

pub mod projections;

/// Tenants every harness configures.
pub const TENANTS: [&str; 2] = ["acme", "globex"];
/// The agent's refund limit in the development policy.
pub const AGENT_REFUND_LIMIT: i64 = keel_cli::dev::AGENT_REFUND_LIMIT;

fn tenant_key(tenant: &str) -> SigningKey {
    let seed = if tenant == "acme" { 11 } else { 22 };
    SigningKey::from_bytes(&[seed; 32])
}

fn issuer(tenant: &str) -> String {
    format!("https://id.{tenant}.example")
}

/// The AI support agent every test acts as, on behalf of supervisor alice.
pub fn agent() -> Actor {
    Actor {
        kind: ActorKind::Agent,
        id: "support-bot".into(),
    }
}

/// The human supervisor.
pub fn supervisor() -> Actor {
    Actor {
        kind: ActorKind::Human,
        id: "alice".into(),
    }
}

/// Writes the tenants file the handler reads.
fn tenants_file(directory: &std::path::Path) -> TestResult<PathBuf> {
    let tenants = TENANTS
        .iter()
        .map(|tenant| {
            let auth = TenantAuth {
                issuer: issuer(tenant),
                keys: vec![TenantKey::ed25519(
                    format!("{tenant}-1"),
                    &tenant_key(tenant).verifying_key(),
                )],
            };
            (
                (*tenant).to_owned(),
                TenantConfig {
                    auth,
                    policy: keel_cli::dev::support_policy(tenant),
                },
            )
        })
        .collect();
    let path = directory.join("tenants.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&TenantsFile { tenants })?)?;
    Ok(path)
}

/// A credential for `actor` of `tenant`, signed with `signing` (the tenant's key unless a
/// test forges one), valid until `exp`.
pub fn credential_with(tenant: &str, actor: &Actor, on_behalf_of: &[Actor], signing: &SigningKey, exp: u64) -> String {
    let scope = if actor.kind == ActorKind::Agent {
        "support:agent"
    } else {
        "support:supervisor"
    };
    scoped_credential_with(tenant, actor, on_behalf_of, scope, signing, exp)
}

/// A valid credential of `actor` of `tenant` on behalf of `on_behalf_of`, granting `scope`.
pub fn scoped_credential(tenant: &str, actor: &Actor, on_behalf_of: &[Actor], scope: &str) -> String {
    scoped_credential_with(
        tenant,
        actor,
        on_behalf_of,
        scope,
        &tenant_key(tenant),
        now_secs() + 3_600,
    )
}

fn scoped_credential_with(
    tenant: &str,
    actor: &Actor,
    on_behalf_of: &[Actor],
    scope: &str,
    signing: &SigningKey,
    exp: u64,
) -> String {
    let claims = Claims {
        iss: issuer(tenant),
        sub: actor.id.clone(),
        tenant: tenant.to_owned(),
        actor_kind: actor.kind,
        on_behalf_of: on_behalf_of.to_vec(),
        scopes: vec![scope.to_owned()],
        exp,
        nbf: None,
        iat: None,
    };
    TokenIssuer::ed25519(format!("{tenant}-1"), signing)
        .and_then(|issuer| issuer.issue(&claims))
        .unwrap_or_default()
}

/// Seconds since the Unix epoch.
pub fn now_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or_default()
}

/// A credential signed by the tenant's own key for whatever actor and delegation `command`
/// claims, so the command authenticates whatever ids it carries.
pub fn credential_for(command: &TestCommand) -> String {
    credential_with(
        &command.tenant,
        &command.actor,
        &command.on_behalf_of,
        &tenant_key(&command.tenant),
        now_secs() + 3_600,
    )
}

/// A valid credential of the tenant's agent acting for alice.
pub fn agent_credential(tenant: &str) -> String {
    credential_with(
        tenant,
        &agent(),
        &[supervisor()],
        &tenant_key(tenant),
        now_secs() + 3_600,
    )
}

/// A valid credential of the tenant's data-protection officer, granting `keel:admin`.
pub fn admin_credential(tenant: &str) -> String {
    let claims = Claims {
        iss: issuer(tenant),
        sub: "dpo".into(),
        tenant: tenant.to_owned(),
        actor_kind: ActorKind::Human,
        on_behalf_of: Vec::new(),
        scopes: vec![keel_erasure::ADMIN_SCOPE.to_owned()],
        exp: now_secs() + 3_600,
        nbf: None,
        iat: None,
    };
    TokenIssuer::ed25519(format!("{tenant}-1"), &tenant_key(tenant))
        .and_then(|issuer| issuer.issue(&claims))
        .unwrap_or_default()
}

/// A valid credential of supervisor alice.
pub fn supervisor_credential(tenant: &str) -> String {
    credential_with(tenant, &supervisor(), &[], &tenant_key(tenant), now_secs() + 3_600)
}

/// What `keel admin` sends to the admin service on `admin_topic` for `tenant`, with the
/// tenant's data-protection officer's credential, waiting up to a minute for the result.
pub fn admin_send_args(harness: &HandlerHarness, admin_topic: &str, tenant: &str) -> keel_cli::admin::AdminSendArgs {
    keel_cli::admin::AdminSendArgs {
        kafka: keel_cli::command::CommandPathArgs {
            cluster: keel_kafka::KafkaArgs::new(harness.config.kafka.brokers.clone()),
            commands_topic: harness.config.commands_topic.clone(),
            results_topic: harness.config.results_topic.clone(),
        },
        admin_topic: admin_topic.to_owned(),
        tenant: tenant.to_owned(),
        reason: "ticket DSR-42".into(),
        token: admin_credential(tenant),
        command_id: None,
        wait: true,
        timeout: 60,
    }
}

/// `keel admin erase` of `subject` in `tenant` (see [`admin_send_args`]).
pub fn erase_args(
    harness: &HandlerHarness,
    admin_topic: &str,
    tenant: &str,
    subject: &str,
) -> keel_cli::admin::EraseArgs {
    keel_cli::admin::EraseArgs {
        send: admin_send_args(harness, admin_topic, tenant),
        subject: subject.to_owned(),
    }
}

/// A command as a test describes it; [`HandlerHarness::encode`] puts it on the wire.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TestCommand {
    /// Idempotency key.
    pub command_id: Uuid,
    /// Tenant.
    pub tenant: String,
    /// Stream.
    pub stream: String,
    /// Command type (the envelope's; a test may make it disagree with the payload).
    pub command_type: String,
    /// Expected version.
    pub expected_version: Option<u64>,
    /// Claimed actor.
    pub actor: Actor,
    /// On whose behalf, outermost first.
    pub on_behalf_of: Vec<Actor>,
    /// Signed credential.
    pub credential: String,
    /// Correlation id.
    pub correlation_id: Uuid,
    /// The domain command.
    pub payload: SupportCommand,
}

/// A command from the agent, with a fresh command id.
pub fn agent_command(tenant: &str, stream: &str, payload: SupportCommand) -> TestCommand {
    TestCommand {
        command_id: Uuid::new_v4(),
        tenant: tenant.to_owned(),
        stream: stream.to_owned(),
        command_type: payload.command_type().to_owned(),
        expected_version: None,
        actor: agent(),
        on_behalf_of: vec![supervisor()],
        credential: agent_credential(tenant),
        correlation_id: Uuid::new_v4(),
        payload,
    }
}

/// Registration of customer `stream` with canary personal data.
pub fn register(stream: &str) -> SupportCommand {
    SupportCommand::RegisterCustomer {
        customer_id: stream.to_owned(),
        name: format!("Canary Name {stream}"),
        email: format!("{stream}@canary.example"),
        address: "1 Canary Wharf".into(),
    }
}

/// A record of the DLQ as a test sees it: its headers and how large its value is.
#[derive(Debug, Clone, Default)]
pub struct DeadLetter {
    /// Every header, values read as UTF-8 (lossy).
    pub headers: Vec<(String, String)>,
    /// Bytes of the record's value.
    pub payload_len: usize,
}

impl DeadLetter {
    /// The value of header `key`, if the letter has it.
    pub fn header(&self, key: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
    }
}

/// A running handler and the test's side of its topics.
pub struct HandlerHarness {
    /// The broker.
    pub kafka: TestKafka,
    /// The handler's configuration.
    pub config: HandlerConfig,
    producer: FutureProducer,
    wire: Wire,
    running: Option<(oneshot::Sender<()>, JoinHandle<anyhow::Result<()>>)>,
    _directory: tempfile::TempDir,
}

impl HandlerHarness {
    /// Starts a handler over fresh topics with `partitions` partitions and a fresh keyspace.
    pub async fn start(partitions: i32) -> TestResult<Self> {
        let mut harness = Self::prepare(partitions).await?;
        harness.restart()?;
        Ok(harness)
    }

    /// Creates fresh topics and a configuration, without starting a handler.
    pub async fn prepare(partitions: i32) -> TestResult<Self> {
        let kafka = TestKafka::connect().await?;
        let directory = tempfile::tempdir()?;
        let prefix = unique_name("h");
        let config = HandlerConfig {
            kafka: keel_kafka::KafkaArgs::new(kafka.brokers().to_owned()),
            cql: keel_cql::CqlArgs::new(cql_nodes(), prefix.clone()),
            instance_id: "handler-0".into(),
            group_id: format!("{prefix}_group"),
            commands_topic: format!("{prefix}_commands"),
            events_topic: format!("{prefix}_events"),
            results_topic: format!("{prefix}_results"),
            dlq_topic: format!("{prefix}_dlq"),
            partitions,
            replication: 1,
            plaintext_retention_hours: 1,
            tenants: tenants_file(directory.path())?,
            ops_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_batch: 100,
            batch_linger_ms: 5,
            max_command_bytes: 64 * 1024,
            max_record_bytes: 1_000_000,
            dedup_retention_hours: 24,
            session_timeout_ms: 10_000,
            retry_pause_after: 10,
            retry_backoff_max_ms: 10_000,
            // Small bounds, so every handler test (the kill -9 ones too) runs with memory
            // trimmed and state read back from the store.
            memory_streams: 16,
            memory_results: 128,
            keys: KeyArgs {
                kms_file: directory.path().join("kms.json"),
                key_cache: 1_000,
                key_cache_ttl_ms: 1_000,
                vault_keyspace: None,
            },
        };
        let admin: AdminClient<DefaultClientContext> = kafka.client_config().create()?;
        ensure_topics(
            &admin,
            &command_path_topics(&config.topic_names(), &config.topic_settings()),
        )
        .await?;
        let producer = clients::producer(kafka.brokers()).create()?;
        Ok(Self {
            kafka,
            config,
            producer,
            wire: Wire::new::<Customer>()?,
            running: None,
            _directory: directory,
        })
    }

    /// The handler's command line for this configuration.
    pub fn args(&self) -> Vec<String> {
        let c = &self.config;
        let pairs = [
            ("--brokers", c.kafka.brokers.clone()),
            ("--cql-nodes", c.cql.nodes.join(",")),
            ("--keyspace", c.cql.keyspace.clone()),
            ("--instance-id", c.instance_id.clone()),
            ("--group-id", c.group_id.clone()),
            ("--commands-topic", c.commands_topic.clone()),
            ("--events-topic", c.events_topic.clone()),
            ("--results-topic", c.results_topic.clone()),
            ("--dlq-topic", c.dlq_topic.clone()),
            ("--partitions", c.partitions.to_string()),
            ("--tenants", c.tenants.display().to_string()),
            ("--ops-addr", c.ops_addr.to_string()),
            ("--max-batch", c.max_batch.to_string()),
            ("--batch-linger-ms", c.batch_linger_ms.to_string()),
            ("--session-timeout-ms", c.session_timeout_ms.to_string()),
            ("--memory-streams", c.memory_streams.to_string()),
            ("--memory-results", c.memory_results.to_string()),
            ("--kms-file", c.keys.kms_file.display().to_string()),
        ];
        pairs
            .into_iter()
            .flat_map(|(flag, value)| [flag.to_owned(), value])
            .collect()
    }

    /// A projector over this handler's events, building into `keyspace` and opening
    /// payloads with the handler's keys (its KMS file, its key vault).
    pub fn projector_config(&self, keyspace: &str) -> ProjectorConfig {
        ProjectorConfig {
            kafka: keel_kafka::KafkaArgs::new(self.config.kafka.brokers.clone()),
            cql: keel_cql::CqlArgs::new(self.config.cql.nodes.clone(), keyspace.to_owned()),
            events_topic: self.config.events_topic.clone(),
            group_id: unique_name("projector"),
            instance_id: "projector-0".into(),
            ops_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            max_batch: 200,
            dlq_topic: self.config.dlq_topic.clone(),
            keys: KeyArgs {
                vault_keyspace: Some(self.config.cql.keyspace.clone()),
                ..self.config.keys.clone()
            },
        }
    }

    /// An admin service over this handler's topics, keys and keyspace, signing certificates
    /// with the key in `certificate_key`.
    pub fn admin_config(&self, certificate_key: PathBuf) -> keel_admin::AdminConfig {
        let prefix = unique_name("admin");
        keel_admin::AdminConfig {
            kafka: keel_kafka::KafkaArgs::new(self.config.kafka.brokers.clone()),
            cql: keel_cql::CqlArgs::new(self.config.cql.nodes.clone(), self.config.cql.keyspace.clone()),
            instance_id: "admin-0".into(),
            group_id: format!("{prefix}_group"),
            admin_topic: format!("{prefix}_admin"),
            admin_partitions: 1,
            events_topic: self.config.events_topic.clone(),
            results_topic: self.config.results_topic.clone(),
            dlq_topic: self.config.dlq_topic.clone(),
            replication: 1,
            plaintext_retention_hours: 1,
            tenants: self.config.tenants.clone(),
            certificate_key,
            max_command_bytes: 64 * 1024,
            ops_addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            retry_backoff_max_ms: 2_000,
            // Tests rotate on demand (`keel admin rotate`); the schedule stays out of the way.
            rotation_delay_secs: 3_600,
            rotation_check_secs: 60,
            rotation_grace_ms: 200,
            keys: self.config.keys.clone(),
        }
    }

    /// Starts (again) the handler process-in-a-task: what the `keel-handler` binary runs.
    pub fn restart(&mut self) -> TestResult {
        anyhow::ensure!(self.running.is_none(), "the handler is already running");
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.config.clone();
        let task = tokio::spawn(async move {
            keel_handler::run_domain::<Customer>(config, async {
                let _ = stopped.await;
            })
            .await
        });
        self.running = Some((stop, task));
        Ok(())
    }

    /// Starts (again) the handler with its decision state in `state` instead of CQL.
    pub fn restart_with_state<S: HandlerState>(&mut self, state: Arc<S>) -> TestResult {
        anyhow::ensure!(self.running.is_none(), "the handler is already running");
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.config.clone();
        let task = tokio::spawn(async move {
            let codec = keel_handler::production_codec::<Customer>(&config).await?;
            keel_handler::run_with_state::<Customer, _, S>(config, codec, state, async {
                let _ = stopped.await;
            })
            .await
        });
        self.running = Some((stop, task));
        Ok(())
    }

    /// Starts (again) a handler of another aggregate, with its codec.
    pub fn restart_with<A: Aggregate, C: Codec<A>>(&mut self, codec: C) -> TestResult {
        anyhow::ensure!(self.running.is_none(), "the handler is already running");
        let (stop, stopped) = oneshot::channel::<()>();
        let config = self.config.clone();
        let task = tokio::spawn(async move {
            keel_handler::run::<A, C>(config, codec, async {
                let _ = stopped.await;
            })
            .await
        });
        self.running = Some((stop, task));
        Ok(())
    }

    /// Stops the handler gracefully (as on SIGTERM) and returns how it ended.
    pub async fn stop(&mut self) -> TestResult {
        let (stop, task) = self.running.take().context("the handler is not running")?;
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .context("the handler did not stop")???;
        Ok(())
    }

    /// The command's record value: an Avro command envelope, as any producer would write it.
    pub fn encode(&self, command: &TestCommand) -> TestResult<Vec<u8>> {
        let header = CommandHeader {
            command_id: command.command_id,
            tenant: command.tenant.clone(),
            stream: command.stream.clone(),
            expected_version: command.expected_version,
            issued_at_micros: i64::try_from(now_secs())? * 1_000_000,
            actor: to_wire_actor(&command.actor, &command.on_behalf_of, None),
            credential: command.credential.clone(),
            correlation_id: command.correlation_id,
            causation_id: None,
        };
        let mut bytes = self.wire.encode_command(header, &command.payload)?;
        if command.command_type != command.payload.command_type() {
            // A test that makes the envelope disagree with its payload.
            let mut envelope = self
                .wire
                .decode_command::<SupportCommand>(&bytes)
                .map_err(|e| e.error)?
                .0;
            envelope.command_type.clone_from(&command.command_type);
            bytes =
                keel_envelope::SchemaRegistry::with_envelopes()?.encode(keel_envelope::COMMAND_ENVELOPE, &envelope)?;
        }
        Ok(bytes)
    }

    /// Sends a command as a producer would: keyed by tenant/stream, murmur2-partitioned.
    pub async fn send(&self, command: &TestCommand) -> TestResult {
        let key = stream_key(&command.tenant, &command.stream);
        self.send_raw(&key, &self.encode(command)?).await
    }

    /// Sends many commands, up to 500 in flight at once; order per stream is kept because the
    /// producer is idempotent (at most 5 requests in flight per partition, in order).
    pub async fn send_many(&self, commands: &[TestCommand]) -> TestResult {
        for chunk in commands.chunks(500) {
            let encoded: Vec<(String, Vec<u8>)> = chunk
                .iter()
                .map(|command| Ok((stream_key(&command.tenant, &command.stream), self.encode(command)?)))
                .collect::<TestResult<_>>()?;
            let sends = encoded.iter().map(|(key, bytes)| {
                let record = FutureRecord::to(&self.config.commands_topic).key(key).payload(bytes);
                self.producer.send(record, Duration::from_secs(30))
            });
            for delivery in futures::future::join_all(sends).await {
                delivery.map_err(|(error, _)| error).context("producing a command")?;
            }
        }
        Ok(())
    }

    /// Sends raw bytes with `key` to the commands topic.
    pub async fn send_raw(&self, key: &str, bytes: &[u8]) -> TestResult {
        self.producer
            .send(
                FutureRecord::to(&self.config.commands_topic).key(key).payload(bytes),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(error, _)| error)
            .context("producing a command")?;
        Ok(())
    }

    /// Sends raw bytes to an explicit partition (as a producer with the wrong partitioner).
    pub async fn send_to_partition(&self, partition: i32, key: &str, bytes: &[u8]) -> TestResult {
        let record = FutureRecord::to(&self.config.commands_topic)
            .partition(partition)
            .key(key)
            .payload(bytes);
        self.producer
            .send(record, Duration::from_secs(10))
            .await
            .map_err(|(error, _)| error)?;
        Ok(())
    }

    /// Every committed record of `topic`, in partition then offset order, read until `wanted`
    /// says it has all it waits for (or the timeout).
    pub async fn read_all(
        &self,
        topic: &str,
        wanted: impl Fn(&[Vec<u8>]) -> bool,
        timeout: Duration,
    ) -> TestResult<Vec<Vec<u8>>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let records = self.read_once(topic).await?;
            if wanted(&records) || tokio::time::Instant::now() >= deadline {
                return Ok(records);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn read_once(&self, topic: &str) -> TestResult<Vec<Vec<u8>>> {
        let reader = clients::reader(self.kafka.brokers(), &unique_name("reader"))?;
        let partitions = if topic == self.config.dlq_topic {
            1
        } else {
            self.config.partitions
        };
        let mut assignment = TopicPartitionList::new();
        for partition in 0..partitions {
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
        reader.assign(&assignment)?;
        let mut by_partition: BTreeMap<i32, Vec<(i64, Vec<u8>)>> = BTreeMap::new();
        let mut at_end = 0;
        while at_end < partitions {
            match tokio::time::timeout(Duration::from_secs(20), reader.recv()).await? {
                Err(KafkaError::PartitionEOF(_)) => at_end += 1,
                Err(error) => return Err(error.into()),
                Ok(message) => by_partition
                    .entry(message.partition())
                    .or_default()
                    .push((message.offset(), message.payload().unwrap_or_default().to_vec())),
            }
        }
        Ok(by_partition.into_values().flatten().map(|(_, bytes)| bytes).collect())
    }

    /// Every dead letter of the DLQ, once at least `count` are there (or after a minute).
    pub async fn dead_letters(&self, count: usize) -> TestResult<Vec<DeadLetter>> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let letters = self.read_dead_letters().await?;
            if letters.len() >= count || tokio::time::Instant::now() >= deadline {
                return Ok(letters);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn read_dead_letters(&self) -> TestResult<Vec<DeadLetter>> {
        use rdkafka::message::Headers;
        let reader = clients::reader(self.kafka.brokers(), &unique_name("reader"))?;
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(&self.config.dlq_topic, 0, Offset::Beginning)?;
        reader.assign(&assignment)?;
        let mut letters = Vec::new();
        loop {
            match tokio::time::timeout(Duration::from_secs(20), reader.recv()).await? {
                Err(KafkaError::PartitionEOF(_)) => return Ok(letters),
                Err(error) => return Err(error.into()),
                Ok(message) => letters.push(DeadLetter {
                    headers: message
                        .headers()
                        .map(|headers| {
                            headers
                                .iter()
                                .map(|header| {
                                    let value = header.value.map(String::from_utf8_lossy).unwrap_or_default();
                                    (header.key.to_owned(), value.into_owned())
                                })
                                .collect()
                        })
                        .unwrap_or_default(),
                    payload_len: message.payload().map_or(0, <[u8]>::len),
                }),
            }
        }
    }

    /// Every result, once at least `count` have been published.
    pub async fn results(&self, count: usize) -> TestResult<Vec<CommandResult>> {
        let records = self
            .read_all(
                &self.config.results_topic,
                |records| records.len() >= count,
                Duration::from_secs(60),
            )
            .await?;
        records.iter().map(|bytes| Ok(serde_json::from_slice(bytes)?)).collect()
    }

    /// The result of `command_id`, waiting for it.
    pub async fn result_of(&self, command_id: Uuid) -> TestResult<CommandResult> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let results = self.results(0).await?;
            if let Some(result) = results.into_iter().find(|result| result.command_id == command_id) {
                return Ok(result);
            }
            anyhow::ensure!(
                tokio::time::Instant::now() < deadline,
                "no result for command {command_id}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Every event envelope (payloads sealed), once at least `count` are committed.
    pub async fn events(&self, count: usize) -> TestResult<Vec<EventEnvelope>> {
        let records = self
            .read_all(
                &self.config.events_topic,
                |records| records.len() >= count,
                Duration::from_secs(60),
            )
            .await?;
        records.iter().map(|bytes| Ok(self.wire.read_event(bytes)?)).collect()
    }

    /// A session on the handler's keyspace (the control keyspace: vault, erasures).
    pub async fn session(&self) -> TestResult<Arc<scylla::client::session::Session>> {
        let session = keel_cql::connect(&self.config.cql.nodes, &self.config.cql.keyspace)
            .await
            .map_err(anyhow::Error::msg)?;
        Ok(Arc::new(session))
    }

    /// The key ring every service builds from this configuration: the same KMS file and
    /// key vault.
    pub async fn key_ring(&self) -> TestResult<keel_vault_cql::ServiceKeyRing> {
        let session = self.session().await?;
        Ok(keel_vault_cql::service_key_ring(&self.config.keys, &self.config.cql.nodes, session).await?)
    }

    /// A codec with the handler's keys (the same KMS file and key vault), to open events.
    pub async fn codec(&self) -> TestResult<EventCodec<LocalFileKms, CqlKeyVault>> {
        keel_handler::production_codec::<Customer>(&self.config).await
    }
}

/// The `keel-projector` command line for `config`.
pub fn projector_args(config: &ProjectorConfig) -> Vec<String> {
    let mut pairs = vec![
        ("--brokers", config.kafka.brokers.clone()),
        ("--cql-nodes", config.cql.nodes.join(",")),
        ("--keyspace", config.cql.keyspace.clone()),
        ("--events-topic", config.events_topic.clone()),
        ("--group-id", config.group_id.clone()),
        ("--instance-id", config.instance_id.clone()),
        ("--ops-addr", config.ops_addr.to_string()),
        ("--max-batch", config.max_batch.to_string()),
        ("--dlq-topic", config.dlq_topic.clone()),
        ("--kms-file", config.keys.kms_file.display().to_string()),
    ];
    if let Some(keyspace) = &config.keys.vault_keyspace {
        pairs.push(("--vault-keyspace", keyspace.clone()));
    }
    pairs
        .into_iter()
        .flat_map(|(flag, value)| [flag.to_owned(), value])
        .collect()
}

/// A handler running as its own process, to be killed with SIGKILL.
pub struct HandlerProcess {
    binary: PathBuf,
    args: Vec<String>,
    log: PathBuf,
    child: Option<Child>,
}

impl HandlerProcess {
    /// A process of `binary` with `args`, logging to `log`; not started yet.
    pub fn new(binary: PathBuf, args: Vec<String>, log: PathBuf) -> Self {
        Self {
            binary,
            args,
            log,
            child: None,
        }
    }

    /// Starts it (again).
    pub fn spawn(&mut self) -> TestResult {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let child = Command::new(&self.binary)
            .args(&self.args)
            .env("RUST_LOG", "warn,keel_handler=info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .context("starting the handler process")?;
        self.child = Some(child);
        Ok(())
    }

    /// Kills it with SIGKILL and reaps it.
    pub fn kill_9(&mut self) -> TestResult {
        if let Some(mut child) = self.child.take() {
            child.kill()?; // SIGKILL
            child.wait()?;
        }
        Ok(())
    }

    /// Stops it with SIGTERM and waits for it.
    pub fn terminate(&mut self) -> TestResult {
        if let Some(mut child) = self.child.take() {
            Command::new("kill").arg("-TERM").arg(child.id().to_string()).status()?;
            child.wait()?;
        }
        Ok(())
    }
}

/// The exactly-once checks of the crash and scale-out tests: every command in `commands`
/// has exactly one result (and no result is for an unknown command), every command was
/// accepted with one event, every event belongs to an accepted command, and each of the
/// `streams` streams is gapless from version 1 with a chain that verifies.
pub async fn assert_exactly_once(
    harness: &HandlerHarness,
    commands: &[TestCommand],
    results: &[CommandResult],
    streams: usize,
) -> TestResult {
    use std::collections::{HashMap, HashSet};

    use keel_results::Outcome;

    let mut per_command: HashMap<Uuid, usize> = HashMap::new();
    for result in results {
        *per_command.entry(result.command_id).or_default() += 1;
    }
    let sent: HashSet<Uuid> = commands.iter().map(|command| command.command_id).collect();
    let missing = sent.iter().filter(|id| !per_command.contains_key(id)).count();
    let duplicated = per_command.values().filter(|count| **count > 1).count();
    let unknown = per_command.keys().filter(|id| !sent.contains(id)).count();
    anyhow::ensure!(
        (missing, duplicated, unknown) == (0, 0, 0),
        "results: {missing} missing, {duplicated} duplicated, {unknown} unknown"
    );

    let mut expected_events = 0;
    for result in results {
        match &result.outcome {
            Outcome::Accepted { event_ids, .. } => expected_events += event_ids.len(),
            Outcome::Rejected { reason, message, .. } => {
                anyhow::bail!("command {} rejected: {reason}: {message}", result.command_id)
            }
        }
    }
    anyhow::ensure!(
        expected_events == commands.len(),
        "each command of these workloads appends one event"
    );
    let events = harness.events(expected_events).await?;
    anyhow::ensure!(
        events.len() == expected_events,
        "{} events appended, {expected_events} accepted",
        events.len()
    );

    let mut by_stream: BTreeMap<&str, Vec<EventEnvelope>> = BTreeMap::new();
    for event in &events {
        by_stream.entry(&event.stream_id).or_default().push(event.clone());
    }
    anyhow::ensure!(
        by_stream.len() == streams,
        "{} streams, expected {streams}",
        by_stream.len()
    );
    let hasher = ChainHasher::new()?;
    for (stream, events) in by_stream {
        let verdict = verify_stream(&hasher, &events, None)?;
        anyhow::ensure!(
            matches!(verdict, Verdict::Intact { version, .. } if version == events.len() as i64),
            "{stream}: versions must be gapless, in order, unique, and the chain intact: {verdict:?}"
        );
    }
    Ok(())
}

/// The value of an unlabelled gauge this process's handlers set, as /metrics renders it.
pub fn gauge(name: &str) -> Option<f64> {
    let text = keel_service::telemetry::metrics_handle().render();
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// The crash and scale-out workload: a registration per stream, then refunds and emails
/// round-robin over the streams; every command appends one event.
pub fn workload(streams: usize, commands: usize) -> Vec<TestCommand> {
    let stream = |i: usize| format!("c-{:03}", i % streams);
    let mut all: Vec<TestCommand> = (0..streams)
        .map(|i| agent_command("acme", &stream(i), register(&stream(i))))
        .collect();
    for i in streams..commands {
        let payload = if i % 2 == 0 {
            SupportCommand::IssueRefund {
                refund_id: format!("r-{i}"),
                amount_cents: 100,
                reason: "load".into(),
            }
        } else {
            SupportCommand::SendEmail {
                email_id: format!("e-{i}"),
                to: format!("{}@canary.example", stream(i)),
                subject: "Hello".into(),
                body: "Load".into(),
            }
        };
        all.push(agent_command("acme", &stream(i), payload));
    }
    all
}
