//! The decision-state writer: committed batches go to the CQL store in order, in the
//! background, so the next transaction does not wait for them.
//!
//! Order matters only within a batch (its watermarks after its rows, which `apply` keeps)
//! and between batches (a later batch's watermark after an earlier batch's rows), so one
//! task writes them one after the other. A failed write is retried with backoff, batches
//! queued meanwhile are merged into it, and /readyz says the store is behind. The channel is
//! bounded: a store that cannot keep up slows the handler down rather than filling memory.
//! The worker can wait for the writer to catch up ([`StateWriter::caught_up`]) before it
//! forgets state that the store must then hold.

use std::sync::Arc;
use std::time::Duration;

use keel_handler_state::{HandlerState, StateBatch};
use keel_service::Readiness;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

const QUEUE: usize = 16;

pub(crate) struct StateWriter {
    sender: mpsc::Sender<StateBatch>,
    task: JoinHandle<()>,
    /// Batches queued so far.
    queued: u64,
    /// Batches the store holds so far.
    written: watch::Receiver<u64>,
}

impl StateWriter {
    pub(crate) fn spawn<S: HandlerState>(state: Arc<S>, readiness: Readiness) -> Self {
        let (sender, mut receiver) = mpsc::channel::<StateBatch>(QUEUE);
        let (written_tx, written) = watch::channel(0_u64);
        let task = tokio::spawn(async move {
            while let Some(mut batch) = receiver.recv().await {
                let mut failures = 0_u32;
                let mut merged = 1;
                loop {
                    while let Ok(more) = receiver.try_recv() {
                        batch.streams.extend(more.streams);
                        batch.results.extend(more.results);
                        batch.watermarks.extend(more.watermarks);
                        merged += 1;
                    }
                    match state.apply(&batch).await {
                        Ok(()) => {
                            if failures > 0 {
                                readiness.set("cql", true, "decision state caught up");
                            }
                            written_tx.send_modify(|written| *written += merged);
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
        Self {
            sender,
            task,
            queued: 0,
            written,
        }
    }

    /// Queues a committed batch, waiting if the writer is far behind.
    pub(crate) async fn write(&mut self, batch: StateBatch) {
        if batch == StateBatch::default() {
            return;
        }
        if self.sender.send(batch).await.is_err() {
            tracing::error!("the decision-state writer stopped; the next assignment's replay will repair the state");
            return;
        }
        self.queued += 1;
    }

    /// Whether the store holds every batch queued so far, waiting up to `wait` for it.
    pub(crate) async fn caught_up(&mut self, wait: Duration) -> bool {
        let queued = self.queued;
        matches!(
            tokio::time::timeout(wait, self.written.wait_for(|written| *written >= queued)).await,
            Ok(Ok(_))
        )
    }

    /// Writes everything queued, then stops.
    pub(crate) async fn finish(self) {
        drop(self.sender);
        if let Err(error) = self.task.await {
            tracing::error!(%error, "the decision-state writer failed");
        }
    }
}
