//! The consumer's rebalance hooks: they record what was assigned and revoked, and the loop
//! acts on it between two polls (no transaction is open while polling).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::statistics::{Statistics, Topic};

/// Partitions assigned and revoked since the loop last looked.
#[derive(Debug, Default)]
pub(crate) struct RebalanceLog {
    pub(crate) assigned: BTreeSet<i32>,
    pub(crate) revoked: BTreeSet<i32>,
    /// Whether the group gave this instance an assignment (possibly empty) since the loop
    /// last looked: the instance has joined.
    pub(crate) rebalanced: bool,
}

/// The handler consumer's context.
#[derive(Clone, Default)]
pub(crate) struct HandlerContext {
    log: Arc<Mutex<RebalanceLog>>,
}

impl HandlerContext {
    /// Takes what happened since the last call.
    pub(crate) fn take(&self) -> RebalanceLog {
        std::mem::take(&mut *self.log.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl ClientContext for HandlerContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        keel_kafka::clients::log_client_error("handler-consumer", error, reason);
    }

    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, facility: &str, message: &str) {
        keel_kafka::clients::log_client_line("handler-consumer", level, facility, message);
    }

    /// librdkafka's statistics (every `statistics.interval.ms`): the lag of each assigned
    /// partition as `keel_handler_consumer_lag{partition}`.
    fn stats(&self, statistics: Statistics) {
        for topic in statistics.topics.values() {
            for (partition, lag) in partition_lags(topic) {
                metrics::gauge!("keel_handler_consumer_lag", "partition" => partition.to_string()).set(lag as f64);
            }
        }
    }
}

/// Commands waiting in each assigned partition of `topic`: the last stable offset (what a
/// `read_committed` consumer can reach) minus the offset after the last command handed to
/// the handler, or, before the first one, the group's committed offset.
fn partition_lags(topic: &Topic) -> Vec<(i32, i64)> {
    topic
        .partitions
        .values()
        .filter(|p| p.partition >= 0 && p.desired)
        .filter_map(|p| {
            let position = if p.app_offset >= 0 {
                p.app_offset
            } else {
                p.committed_offset
            };
            (position >= 0 && p.ls_offset >= 0).then(|| (p.partition, (p.ls_offset - position).max(0)))
        })
        .collect()
}

impl ConsumerContext for HandlerContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
            for element in partitions.elements() {
                tracing::info!(partition = element.partition(), "partition revoked");
                // Another instance reports this partition's lag from now on.
                metrics::gauge!("keel_handler_consumer_lag", "partition" => element.partition().to_string()).set(0.0);
                log.revoked.insert(element.partition());
                log.assigned.remove(&element.partition());
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        match rebalance {
            Rebalance::Assign(partitions) => {
                log.rebalanced = true;
                for element in partitions.elements() {
                    tracing::info!(partition = element.partition(), "partition assigned");
                    log.assigned.insert(element.partition());
                }
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => tracing::error!(%error, "rebalance failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use rdkafka::statistics::Partition;

    use super::*;

    fn partition(partition: i32, desired: bool, app_offset: i64, committed_offset: i64, ls_offset: i64) -> Partition {
        Partition {
            partition,
            desired,
            app_offset,
            committed_offset,
            ls_offset,
            ..Partition::default()
        }
    }

    #[test]
    fn lag_is_counted_from_the_last_command_handed_over_or_else_the_committed_offset() {
        let topic = Topic {
            partitions: [
                (0, partition(0, true, 7, 3, 10)),         // 3 waiting past what the handler took
                (1, partition(1, true, -1001, 4, 10)),     // nothing taken yet: from the commit
                (2, partition(2, false, 5, 5, 10)),        // not assigned here
                (3, partition(3, true, -1001, -1001, 10)), // no position known
                (-1, partition(-1, true, 0, 0, 10)),       // librdkafka's unassigned queue
            ]
            .into_iter()
            .collect(),
            ..Topic::default()
        };
        let mut lags = partition_lags(&topic);
        lags.sort_unstable();
        assert_eq!(lags, [(0, 3), (1, 6)]);
    }
}
