//! The consumer's rebalance hooks: they record what was assigned and revoked, and the loop
//! acts on it between two polls (no transaction is open while polling).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};

/// Partitions assigned and revoked since the loop last looked.
#[derive(Debug, Default)]
pub(crate) struct RebalanceLog {
    pub(crate) assigned: BTreeSet<i32>,
    pub(crate) revoked: BTreeSet<i32>,
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

impl ClientContext for HandlerContext {}

impl ConsumerContext for HandlerContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
            for element in partitions.elements() {
                tracing::info!(partition = element.partition(), "partition revoked");
                log.revoked.insert(element.partition());
                log.assigned.remove(&element.partition());
            }
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let mut log = self.log.lock().unwrap_or_else(PoisonError::into_inner);
        match rebalance {
            Rebalance::Assign(partitions) => {
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
