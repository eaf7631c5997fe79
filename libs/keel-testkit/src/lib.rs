//! Test support for Keel's integration tests.
//!
//! Integration tests talk to the real Kafka broker and CQL store that `make up` starts
//! (or whatever `KEEL_KAFKA_BROKERS` / `KEEL_CQL_NODES` point at). This crate says where
//! they are, gives every test topic and keyspace a unique name so tests can run in
//! parallel and leave each other alone, and lets tests return [`TestResult`] instead of
//! unwrapping.
//!
//! Nothing here is a mock: if a server is not reachable, the helpers fail with a message
//! that says which address was tried and how to start it. A test never skips itself.

use std::time::Duration;

use anyhow::{Context, bail};
use rand::Rng;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use scylla::client::session::Session;
use scylla::client::session_builder::SessionBuilder;

/// What every integration test returns: any error fails the test with its context chain.
pub type TestResult<T = ()> = anyhow::Result<T>;

/// Kafka bootstrap servers used when `KEEL_KAFKA_BROKERS` is not set (the `make up` broker).
pub const DEFAULT_KAFKA_BROKERS: &str = "127.0.0.1:9092";

/// CQL contact points used when `KEEL_CQL_NODES` is not set (the `make up` node).
pub const DEFAULT_CQL_NODES: &str = "127.0.0.1:9042";

/// How long a test waits for a server to answer before failing with a hint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// Kafka bootstrap servers, from `KEEL_KAFKA_BROKERS` (comma-separated `host:port`).
pub fn kafka_brokers() -> String {
    env_or("KEEL_KAFKA_BROKERS", DEFAULT_KAFKA_BROKERS)
}

/// CQL contact points, from `KEEL_CQL_NODES` (comma-separated `host:port`).
pub fn cql_nodes() -> Vec<String> {
    env_or("KEEL_CQL_NODES", DEFAULT_CQL_NODES)
        .split(',')
        .map(str::trim)
        .filter(|node| !node.is_empty())
        .map(str::to_owned)
        .collect()
}

fn env_or(var: &str, default: &str) -> String {
    std::env::var(var)
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| default.to_owned())
}

/// A name no other test run will pick: `prefix` followed by a random suffix.
///
/// Only lowercase ASCII letters, digits and `_` are produced, so the result is valid both
/// as a Kafka topic name and as a CQL keyspace name (which is capped at 48 characters;
/// keep prefixes short).
pub fn unique_name(prefix: &str) -> String {
    let suffix: u64 = rand::thread_rng().r#gen();
    let prefix: String = prefix
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{prefix}_{suffix:016x}")
}

/// The real Kafka broker under test.
pub struct TestKafka {
    brokers: String,
    admin: AdminClient<DefaultClientContext>,
}

impl TestKafka {
    /// Connects to the broker and checks that it answers a metadata request.
    pub async fn connect() -> TestResult<Self> {
        let brokers = kafka_brokers();
        let probe = brokers.clone();
        tokio::task::spawn_blocking(move || check_metadata(&probe))
            .await
            .context("joining the Kafka metadata probe")??;
        let admin = Self::base_config(&brokers)
            .create()
            .with_context(|| format!("creating a Kafka admin client for {brokers}"))?;
        Ok(Self { brokers, admin })
    }

    /// The bootstrap servers this broker was reached at.
    pub fn brokers(&self) -> &str {
        &self.brokers
    }

    /// A client configuration pointing at this broker; add the role's own settings to it.
    pub fn client_config(&self) -> ClientConfig {
        Self::base_config(&self.brokers)
    }

    fn base_config(brokers: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", brokers);
        config
    }

    /// Creates a topic with a unique name (from `prefix`) and `partitions` partitions.
    pub async fn create_topic(&self, prefix: &str, partitions: i32) -> TestResult<String> {
        let name = unique_name(prefix);
        let topic = NewTopic::new(&name, partitions, TopicReplication::Fixed(1));
        let options = AdminOptions::new().operation_timeout(Some(CONNECT_TIMEOUT));
        let results = self
            .admin
            .create_topics([&topic], &options)
            .await
            .with_context(|| format!("creating topic {name}"))?;
        for result in results {
            result.map_err(|(topic, code)| anyhow::anyhow!("creating topic {topic}: {code}"))?;
        }
        Ok(name)
    }

    /// Deletes a topic made by [`TestKafka::create_topic`].
    pub async fn delete_topic(&self, name: &str) -> TestResult {
        let options = AdminOptions::new().operation_timeout(Some(CONNECT_TIMEOUT));
        for result in self.admin.delete_topics(&[name], &options).await? {
            result.map_err(|(topic, code)| anyhow::anyhow!("deleting topic {topic}: {code}"))?;
        }
        Ok(())
    }
}

/// Asks the broker for cluster metadata (a blocking call: run it off the async runtime).
fn check_metadata(brokers: &str) -> TestResult {
    let client: BaseConsumer = TestKafka::base_config(brokers)
        .create()
        .with_context(|| format!("creating a Kafka client for {brokers}"))?;
    let metadata = client
        .fetch_metadata(None, CONNECT_TIMEOUT)
        .with_context(|| format!("Kafka is not reachable at {brokers} (start it with `make up`)"))?;
    if metadata.brokers().is_empty() {
        bail!("Kafka at {brokers} answered a metadata request with no brokers");
    }
    Ok(())
}

/// A keyspace of its own for one test, on the real CQL store.
pub struct TestKeyspace {
    session: Session,
    name: String,
}

impl TestKeyspace {
    /// Connects to the CQL store, creates a uniquely named keyspace (replication factor 1)
    /// and makes it the session's current keyspace.
    pub async fn create(prefix: &str) -> TestResult<Self> {
        let session = connect_cql().await?;
        let name = unique_name(prefix);
        session
            .query_unpaged(
                format!(
                    "CREATE KEYSPACE {name} WITH replication = \
                     {{'class': 'SimpleStrategy', 'replication_factor': 1}}"
                ),
                &[],
            )
            .await
            .with_context(|| format!("creating keyspace {name}"))?;
        session
            .use_keyspace(&name, true)
            .await
            .with_context(|| format!("using keyspace {name}"))?;
        Ok(Self { session, name })
    }

    /// The session, already switched to this keyspace.
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Hands the session (switched to this keyspace) to an adapter under test. The keyspace
    /// is then left behind when the test ends, like a failed test's; `make down && rm -rf
    /// .local/cassandra/data` clears them.
    pub fn into_session(self) -> Session {
        self.session
    }

    /// The keyspace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drops the keyspace. Tests call this at the end; a failed test leaves its keyspace
    /// behind for inspection (`make down && rm -rf .local/cassandra/data` clears them).
    pub async fn drop(self) -> TestResult {
        self.session
            .query_unpaged(format!("DROP KEYSPACE IF EXISTS {}", self.name), &[])
            .await
            .with_context(|| format!("dropping keyspace {}", self.name))?;
        Ok(())
    }
}

/// Opens a session to the CQL store at [`cql_nodes`], failing with a hint if it is down.
pub async fn connect_cql() -> TestResult<Session> {
    let nodes = cql_nodes();
    let mut builder = SessionBuilder::new();
    builder = builder.known_nodes(&nodes).connection_timeout(CONNECT_TIMEOUT);
    tokio::time::timeout(CONNECT_TIMEOUT, builder.build())
        .await
        .map_err(anyhow::Error::from)
        .and_then(|session| session.map_err(anyhow::Error::from))
        .with_context(|| {
            format!(
                "the CQL store is not reachable at {} (start it with `make up`)",
                nodes.join(",")
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_names_differ_and_are_valid_cql_identifiers() {
        let first = unique_name("Smoke-Test");
        let second = unique_name("Smoke-Test");
        assert_ne!(first, second);
        assert!(first.starts_with("smoke_test_"), "{first}");
        assert!(first.len() <= 48, "{first} is too long for a keyspace");
        assert!(
            first
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}
