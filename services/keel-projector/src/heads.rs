//! The log heads of the assigned partitions, watched off the projector's path.
//!
//! A head is a `ListOffsets` round trip to the broker. Asked on the group consumer's own
//! connection, it queues behind that consumer's long-polling fetches (up to
//! `fetch.wait.max.ms`, 500 ms, each), and asked between batches, six partitions stalled
//! every batch by about three seconds: the projector applied 500 events in 0.3 s, then
//! waited. So a thread of its own asks, on a client of its own, about once a second, and
//! the projector takes the latest answer without waiting.

use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_checkpoints::Head;
use keel_kafka::clients;
use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use tokio::sync::watch;

/// How often the heads are asked for.
const INTERVAL: Duration = Duration::from_secs(1);

/// The latest heads of the partitions `consumer` is assigned; empty until first seen.
pub(crate) struct Heads {
    latest: watch::Receiver<Vec<Head>>,
    _watcher: JoinHandle<()>,
}

impl Heads {
    /// Starts watching the heads of `topic`'s partitions assigned to `consumer`. The
    /// watcher stops within [`INTERVAL`] of this being dropped.
    pub(crate) fn watch(
        brokers: &str,
        group_id: &str,
        topic: &str,
        consumer: Arc<StreamConsumer>,
    ) -> anyhow::Result<Self> {
        // Never subscribes: no group membership, only a connection of its own.
        let probe: BaseConsumer = clients::read_committed_consumer(brokers, &format!("{group_id}-heads")).create()?;
        let (sender, latest) = watch::channel(Vec::new());
        let topic = topic.to_owned();
        let watcher = std::thread::Builder::new().name("keel-heads".into()).spawn(move || {
            while !sender.is_closed() {
                match heads(&probe, &consumer, &topic) {
                    Ok(heads) => {
                        sender.send_replace(heads);
                    }
                    Err(error) => tracing::warn!(%error, "reading the log heads failed"),
                }
                std::thread::sleep(INTERVAL);
            }
        })?;
        Ok(Self {
            latest,
            _watcher: watcher,
        })
    }

    /// The heads last seen, of the partitions assigned then.
    pub(crate) fn latest(&self) -> Vec<Head> {
        self.latest.borrow().clone()
    }
}

fn heads(probe: &BaseConsumer, consumer: &StreamConsumer, topic: &str) -> anyhow::Result<Vec<Head>> {
    let assignment = consumer.assignment()?;
    let mut heads = Vec::with_capacity(assignment.count());
    for element in assignment.elements_for_topic(topic) {
        let partition = element.partition();
        let (_, high) = probe.fetch_watermarks(topic, partition, Duration::from_secs(5))?;
        let observed_at_micros = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))?;
        heads.push(Head {
            partition,
            head_offset: high,
            observed_at_micros,
        });
    }
    Ok(heads)
}
