//! Kafka adapter errors, split by what the caller does next.

use rdkafka::error::{KafkaError as RdKafkaError, RDKafkaErrorCode};

/// A failure talking to Kafka.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// Worth retrying with backoff: the broker is unreachable, busy or electing.
    #[error("transient kafka failure while {action}: {source}")]
    Transient {
        /// What was being done.
        action: String,
        /// The client's error.
        source: RdKafkaError,
    },
    /// Retrying will not help: bad configuration, authorisation, a fenced producer.
    #[error("kafka failure while {action}: {source}")]
    Permanent {
        /// What was being done.
        action: String,
        /// The client's error.
        source: RdKafkaError,
    },
    /// The cluster's topics do not match what Keel needs (e.g. partition counts differ).
    #[error("kafka topic layout: {0}")]
    Layout(String),
}

impl KafkaError {
    /// Classifies a client error raised while doing `action`.
    pub fn classify(action: impl Into<String>, source: RdKafkaError) -> Self {
        let action = action.into();
        if is_transient(&source) {
            Self::Transient { action, source }
        } else {
            Self::Permanent { action, source }
        }
    }

    /// Whether retrying may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Transient { .. })
    }
}

fn is_transient(error: &RdKafkaError) -> bool {
    use RDKafkaErrorCode as C;
    match error.rdkafka_error_code() {
        Some(
            C::BrokerTransportFailure
            | C::AllBrokersDown
            | C::OperationTimedOut
            | C::RequestTimedOut
            | C::NetworkException
            | C::NotCoordinator
            | C::CoordinatorNotAvailable
            | C::CoordinatorLoadInProgress
            | C::LeaderNotAvailable
            | C::NotLeaderForPartition
            | C::NotEnoughReplicas
            | C::NotEnoughReplicasAfterAppend
            | C::ConcurrentTransactions
            | C::QueueFull,
        ) => true,
        Some(_) => false,
        // Transaction API errors carry their own retriable flag.
        None => matches!(error, RdKafkaError::Transaction(inner) if inner.is_retriable()),
    }
}
