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
/// wait for, not an error, so it is not logged. Nor are lost broker connections: a reader is
/// short-lived, librdkafka reports every broker down each time one is dropped (while the
/// broker is up), and a reader that cannot reach the broker says so to its caller through
/// `recv`. Every other client error is logged as an error.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReaderContext;

impl rdkafka::ClientContext for ReaderContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};
        match error {
            // librdkafka reports the end of a partition both ways.
            KafkaError::PartitionEOF(_) | KafkaError::Global(Code::PartitionEOF) => {}
            KafkaError::Global(Code::AllBrokersDown | Code::BrokerTransportFailure) => {
                tracing::debug!(%error, reason, "reader lost its broker connections");
            }
            _ => tracing::error!(%error, reason, "kafka client error"),
        }
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        // `FAIL` lines repeat the connection failures `error` reports.
        if facility == "FAIL" {
            tracing::debug!(facility, message, "librdkafka");
        } else {
            rdkafka::client::DefaultClientContext.log(level, facility, message);
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

/// The context of Keel's long-lived clients (producers, group consumers, probes): every line
/// it logs names the client. A lost broker connection is a warning, not an error: the client
/// reconnects by itself, and whether the service can work meanwhile is what its readiness
/// and its own logs say (a handler that cannot commit reports itself paused). librdkafka's
/// "all brokers down" is only logged at debug level: librdkafka 2.10 raises it every second
/// in an idle client after its connections were closed, while the broker is up
/// (confluentinc/librdkafka#5142; seen here in an idle producer after a broker restart, the
/// "false AllBrokersDown six times a second" of an idle admin service).
#[derive(Debug, Clone, Copy)]
pub struct Named(pub &'static str);

impl rdkafka::ClientContext for Named {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        log_client_error(self.0, error, reason);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        log_client_line(self.0, level, facility, message);
    }
}

impl rdkafka::consumer::ConsumerContext for Named {}

/// How a Keel client logs an error librdkafka reports (see [`Named`]).
pub fn log_client_error(client: &str, error: rdkafka::error::KafkaError, reason: &str) {
    use rdkafka::error::{KafkaError, RDKafkaErrorCode as Code};
    match error {
        KafkaError::Global(Code::AllBrokersDown) => {
            tracing::debug!(client, %error, reason, "no kafka connection open");
        }
        KafkaError::Global(Code::BrokerTransportFailure) => {
            tracing::warn!(client, %error, reason, "kafka connection lost; the client reconnects");
        }
        _ => tracing::error!(client, %error, reason, "kafka client error"),
    }
}

/// How a Keel client logs a line of librdkafka's own log (see [`Named`]): its level, but a
/// failed connection (`FAIL`) as a warning, like the error it repeats.
pub fn log_client_line(client: &str, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
    use rdkafka::config::RDKafkaLogLevel as Level;
    match level {
        Level::Emerg | Level::Alert | Level::Critical | Level::Error if facility != "FAIL" => {
            tracing::error!(client, facility, message, "librdkafka");
        }
        Level::Emerg | Level::Alert | Level::Critical | Level::Error | Level::Warning => {
            tracing::warn!(client, facility, message, "librdkafka");
        }
        Level::Notice | Level::Info => tracing::info!(client, facility, message, "librdkafka"),
        Level::Debug => tracing::debug!(client, facility, message, "librdkafka"),
    }
}
