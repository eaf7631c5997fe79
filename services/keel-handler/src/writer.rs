//! The decision-state writer: committed batches go to the CQL store in order, in the
//! background, so the next transaction does not wait for them.
//!
//! Order matters only within a batch (its watermarks after its rows, which `apply` keeps)
//! and between batches (a later batch's watermark after an earlier batch's rows), so one
//! task writes them one after the other. A failed write is retried with backoff, batches
//! queued meanwhile are merged into it, and /readyz says the store is behind. The channel is
//! bounded: a store that cannot keep up slows the handler down rather than filling memory.

use std::sync::Arc;
use std::time::Duration;

use keel_handler_state::{HandlerState, StateBatch};
use keel_service::Readiness;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

const QUEUE: usize = 16;

pub(crate) struct StateWriter {
    sender: mpsc::Sender<StateBatch>,
    task: JoinHandle<()>,
}

impl StateWriter {
    pub(crate) fn spawn<S: HandlerState>(state: Arc<S>, readiness: Readiness) -> Self {
        let (sender, mut receiver) = mpsc::channel::<StateBatch>(QUEUE);
        let task = tokio::spawn(async move {
            while let Some(mut batch) = receiver.recv().await {
                let mut failures = 0_u32;
                loop {
                    while let Ok(more) = receiver.try_recv() {
                        batch.streams.extend(more.streams);
                        batch.results.extend(more.results);
                        batch.watermarks.extend(more.watermarks);
                    }
                    match state.apply(&batch).await {
                        Ok(()) => {
                            if failures > 0 {
                                readiness.set("cql", true, "decision state caught up");
                            }
                            break;
                        }
                        Err(error) => {
                            failures += 1;
                            tracing::error!(%error, failures, "writing decision state failed; retrying");
                            metrics::counter!("keel_handler_state_write_errors_total").increment(1);
                            readiness.set("cql", false, format!("decision state behind: {error}"));
                            let wait = Duration::from_millis(100u64 << failures.min(7)).min(Duration::from_secs(10));
                            tokio::time::sleep(wait).await;
                        }
                    }
                }
            }
        });
        Self { sender, task }
    }

    /// Queues a committed batch, waiting if the writer is far behind.
    pub(crate) async fn write(&self, batch: StateBatch) {
        if batch != StateBatch::default() && self.sender.send(batch).await.is_err() {
            tracing::error!("the decision-state writer stopped; the next assignment's replay will repair the state");
        }
    }

    /// Writes everything queued, then stops.
    pub(crate) async fn finish(self) {
        drop(self.sender);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the decision-state writer failed");
        }
    }
}
