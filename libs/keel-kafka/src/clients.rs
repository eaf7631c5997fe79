//! Client configurations that keep Keel's exactly-once guarantees.

use rdkafka::ClientConfig;

/// A transactional producer: idempotent, `acks=all`, fenced by `transactional_id` (stable
/// per handler instance, so a restarted instance fences its zombie), placing keyed records
/// with the Java-compatible murmur2 partitioner.
///
/// `linger.ms` is 1, not librdkafka's 5: a transaction hands over all its records at once
/// and then waits for their offsets, so lingering only adds to every phase of it
/// (measured with the handler's 200-command batches: a phase took 8.6 ms at p50 with 5 ms,
/// 3.9 ms with 1 ms).
pub fn transactional_producer(brokers: &str, transactional_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("transactional.id", transactional_id)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random")
        .set("linger.ms", "1")
        .set("transaction.timeout.ms", "60000");
    config
}

/// A plain producer placing keyed records as Java clients do (for the CLI and tests that
/// play the part of users producing commands).
pub fn producer(brokers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("partitioner", "murmur2_random");
    config
}

/// A group consumer that only sees committed records and never commits on its own: offsets
/// are committed inside the producer's transaction.
pub fn read_committed_consumer(brokers: &str, group_id: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", group_id)
        .set("isolation.level", "read_committed")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest");
    config
}

/// A consumer for reading partitions by explicit assignment (replays, verifiers): committed
/// records only, no group offsets, and the end of each partition reported promptly. A
/// reader wants the end, not to wait there: with the default `fetch.wait.max.ms` (500 ms)
/// the broker holds a fetch at the end that long, so a handler's replay of an empty
/// partition, two such reads, took a second per partition.
pub fn read_committed_reader(brokers: &str, group_id: &str) -> ClientConfig {
    let mut config = read_committed_consumer(brokers, group_id);
    config
        .set("enable.partition.eof", "true")
        .set("fetch.wait.max.ms", "10");
    config
}

/// The context of explicit-assignment readers: reaching the end of a partition is what they
/// wait for, not an error, so it is not logged; every other client error is.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReaderContext;

impl rdkafka::ClientContext for ReaderContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode};
        // librdkafka reports the end of a partition both ways.
        let end_of_partition = matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        );
        if !end_of_partition {
            tracing::error!(%error, reason, "kafka client error");
        }
    }
}

impl rdkafka::consumer::ConsumerContext for ReaderContext {}

/// A reader for explicit assignments (replays, verifiers, tests): committed records only, an
/// end-of-partition signal, no group offsets, and no error logs for reaching the end.
pub fn reader(
    brokers: &str,
    group_id: &str,
) -> rdkafka::error::KafkaResult<rdkafka::consumer::StreamConsumer<ReaderContext>> {
    read_committed_reader(brokers, group_id).create_with_context(ReaderContext)
}
