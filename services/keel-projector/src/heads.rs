//! The log heads of the assigned partitions, watched off the projector's path.
//!
//! A head is a `ListOffsets` round trip to the broker. Asked on the group consumer's own
//! connection, it queues behind that consumer's long-polling fetches (up to
//! `fetch.wait.max.ms`, 500 ms, each), and asked between batches, six partitions stalled
//! every batch by about three seconds: the projector applied 500 events in 0.3 s, then
//! waited. So a thread of its own asks, on a client of its own, about once a second, and
//! the projector takes the latest answer without waiting.

use std::thread::JoinHandle;
use std::time::Duration;

use keel_checkpoints::Head;
use keel_kafka::clients;
use rdkafka::consumer::{BaseConsumer, Consumer};
use tokio::sync::watch;

/// How often the heads are asked for.
const INTERVAL: Duration = Duration::from_secs(1);

/// The latest heads of the partitions the projector is assigned.
pub(crate) struct Heads {
    partitions: watch::Sender<Vec<i32>>,
    latest: watch::Receiver<Vec<Head>>,
    _watcher: JoinHandle<()>,
}

impl Heads {
    /// Starts watching the heads of `topic`'s partitions named by [`Self::latest`]. The
    /// watcher stops within [`INTERVAL`] of this being dropped.
    pub(crate) fn watch(brokers: &str, group_id: &str, topic: &str) -> anyhow::Result<Self> {
        // Never subscribes: no group membership, only a connection of its own.
        let probe: BaseConsumer<clients::Named> =
            clients::read_committed_consumer(brokers, &format!("{group_id}-heads"))
                .create_with_context(clients::Named("projector-heads"))?;
        let (partitions, wanted) = watch::channel(Vec::new());
        let (sender, latest) = watch::channel(Vec::new());
        let topic = topic.to_owned();
        let watcher = std::thread::Builder::new().name("keel-heads".into()).spawn(move || {
            while !sender.is_closed() {
                let partitions = wanted.borrow().clone();
                match heads(&probe, &topic, &partitions) {
                    Ok(heads) => {
                        sender.send_replace(heads);
                    }
                    Err(error) => tracing::warn!(%error, "reading the log heads failed"),
                }
                std::thread::sleep(INTERVAL);
            }
        })?;
        Ok(Self {
            partitions,
            latest,
            _watcher: watcher,
        })
    }

    /// The heads last seen of `assigned` (one not seen yet is left out); from now on the
    /// heads of `assigned` are the ones watched.
    pub(crate) fn latest(&self, assigned: Vec<i32>) -> Vec<Head> {
        let heads: Vec<Head> = self
            .latest
            .borrow()
            .iter()
            .filter(|head| assigned.contains(&head.partition))
            .copied()
            .collect();
        self.partitions.send_replace(assigned);
        heads
    }
}

fn heads(probe: &BaseConsumer<clients::Named>, topic: &str, partitions: &[i32]) -> anyhow::Result<Vec<Head>> {
    let mut heads = Vec::with_capacity(partitions.len());
    for &partition in partitions {
        let (_, high) = probe.fetch_watermarks(topic, partition, Duration::from_secs(5))?;
        heads.push(Head {
            partition,
            head_offset: high,
            observed_at_micros: keel_service::now_micros(),
        });
    }
    Ok(heads)
}
