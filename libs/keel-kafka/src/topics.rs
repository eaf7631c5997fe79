//! Keel's topics and their settings.
//!
//! Services create their topics at start (`ensure_topics`); a topic that already exists is
//! checked instead: `commands`, `events` and `results` must have the same partition count,
//! since a stream's commands, events and results share a partition number.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::types::RDKafkaErrorCode;

use crate::KafkaError;

/// The names of Keel's topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    /// Commands in (default `keel.commands`).
    pub commands: String,
    /// The log of record (default `keel.events`).
    pub events: String,
    /// One result per command (default `keel.command-results`).
    pub results: String,
    /// Undecodable input, raw (default `keel.dlq`).
    pub dlq: String,
}

impl Default for TopicNames {
    fn default() -> Self {
        Self {
            commands: "keel.commands".into(),
            events: "keel.events".into(),
            results: "keel.command-results".into(),
            dlq: "keel.dlq".into(),
        }
    }
}

/// How Keel's topics are laid out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSettings {
    /// Partitions of the commands, events and results topics (equal by design).
    pub partitions: i32,
    /// Replication factor (1 locally; 3 in production).
    pub replication: i32,
    /// Retention of the commands topic, which holds producers' plaintext: short.
    pub command_retention: Duration,
    /// Retention of the DLQ, which holds raw input: short.
    pub dlq_retention: Duration,
    /// Retention of the results topic.
    pub result_retention: Duration,
}

impl Default for TopicSettings {
    fn default() -> Self {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        Self {
            partitions: 6,
            replication: 1,
            command_retention: DAY,
            dlq_retention: DAY,
            result_retention: 7 * DAY,
        }
    }
}

/// One topic to create, with its configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication: i32,
    /// Topic-level configuration.
    pub config: Vec<(&'static str, String)>,
}

/// The segment roll of a topic with short `retention`: Kafka deletes only closed segments,
/// so a record lives at most its retention plus one segment's span (plus the broker's
/// retention check): at most an hour, and never longer than the retention itself.
pub fn segment_for(retention: Duration) -> Duration {
    retention.min(Duration::from_secs(3600)).max(Duration::from_secs(60))
}

fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

/// The specs of Keel's topics for the command path.
pub fn command_path_topics(names: &TopicNames, settings: &TopicSettings) -> Vec<TopicSpec> {
    let spec = |name: &str, partitions: i32, config: Vec<(&'static str, String)>| TopicSpec {
        name: name.to_owned(),
        partitions,
        replication: settings.replication,
        config,
    };
    let min_isr = settings.replication.min(2).to_string();
    vec![
        spec(
            &names.commands,
            settings.partitions,
            vec![
                ("retention.ms", millis(settings.command_retention)),
                ("segment.ms", millis(segment_for(settings.command_retention))),
                ("cleanup.policy", "delete".into()),
            ],
        ),
        spec(
            &names.events,
            settings.partitions,
            vec![
                // The log of record: kept forever.
                ("retention.ms", "-1".into()),
                ("retention.bytes", "-1".into()),
                ("cleanup.policy", "delete".into()),
                ("min.insync.replicas", min_isr),
            ],
        ),
        spec(
            &names.results,
            settings.partitions,
            vec![
                ("retention.ms", millis(settings.result_retention)),
                ("cleanup.policy", "delete".into()),
            ],
        ),
        spec(
            &names.dlq,
            1,
            vec![
                ("retention.ms", millis(settings.dlq_retention)),
                ("segment.ms", millis(segment_for(settings.dlq_retention))),
                ("cleanup.policy", "delete".into()),
            ],
        ),
    ]
}

/// Creates the topics that do not exist, then checks that the commands, events and results
/// topics (the first three specs) have equal partition counts.
pub async fn ensure_topics(admin: &AdminClient<DefaultClientContext>, specs: &[TopicSpec]) -> Result<(), KafkaError> {
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|spec| {
            let topic = NewTopic::new(&spec.name, spec.partitions, TopicReplication::Fixed(spec.replication));
            spec.config
                .iter()
                .fold(topic, |topic, (key, value)| topic.set(key, value))
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)));
    let results = admin
        .create_topics(new_topics.iter(), &options)
        .await
        .map_err(|error| KafkaError::classify("creating topics", error))?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::Layout(format!("creating topic {name} failed: {code}")));
            }
        }
    }
    check_partition_counts(admin, specs).await
}

/// How long freshly created topics may take to show in the cluster's metadata.
const METADATA_PROPAGATION: Duration = Duration::from_secs(30);

/// Waits until the commands, events and results topics (the first three specs) all show in
/// the metadata with their partitions, then checks that their partition counts are equal.
async fn check_partition_counts(
    admin: &AdminClient<DefaultClientContext>,
    specs: &[TopicSpec],
) -> Result<(), KafkaError> {
    let deadline = tokio::time::Instant::now() + METADATA_PROPAGATION;
    loop {
        let metadata = admin
            .inner()
            .fetch_metadata(None, Duration::from_secs(30))
            .map_err(|error| KafkaError::classify("reading topic metadata", error))?;
        // A topic just created may be listed with an error and no partitions yet.
        let count = |name: &str| {
            metadata
                .topics()
                .iter()
                .find(|topic| topic.name() == name && topic.error().is_none())
                .map(|topic| topic.partitions().len())
                .filter(|partitions| *partitions > 0)
        };
        let counts: Vec<(String, Option<usize>)> = specs
            .iter()
            .take(3)
            .map(|spec| (spec.name.clone(), count(&spec.name)))
            .collect();
        let visible: Vec<usize> = counts.iter().filter_map(|(_, count)| *count).collect();
        if visible.windows(2).any(|pair| pair[0] != pair[1]) {
            return Err(KafkaError::Layout(format!(
                "commands, events and results topics must have equal partition counts, found {counts:?}"
            )));
        }
        if visible.len() == counts.len() {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(KafkaError::Layout(format!(
                "topics did not appear in the cluster metadata within {METADATA_PROPAGATION:?}: {counts:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
