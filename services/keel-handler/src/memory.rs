//! What the handler remembers of its assigned partitions, and how that memory stays bounded.
//!
//! Memory is a cache of the decision state in CQL: streams (version, last hash, folded state)
//! and results of command ids handled. Entries may only be dropped once the CQL store holds
//! them (the worker waits for the state writer to catch up first); a dropped stream is read
//! back at the next command for it, a dropped command id is found in the store by the
//! duplicate check every new command id goes through anyway.

use std::collections::HashMap;

use uuid::Uuid;

use keel_results::CommandResult;

/// A stream as the handler knows it between commands.
#[derive(Debug, Clone)]
pub(crate) struct StreamEntry<S> {
    pub(crate) version: u64,
    pub(crate) hash: Vec<u8>,
    pub(crate) state: S,
    /// Offset of the last event reflected, in the stream's events partition (-1: none).
    pub(crate) position: i64,
    /// Why the stream's state cannot be known (an event of it does not open, or the
    /// domain's `apply` panics on it): its commands are refused as `stream_unavailable`
    /// until a release that can fold it. A broken entry is never written to the store nor
    /// dropped from memory, so the store's older state is never decided from.
    pub(crate) broken: Option<String>,
}

impl<S: Default> Default for StreamEntry<S> {
    fn default() -> Self {
        Self {
            version: 0,
            hash: Vec::new(),
            state: S::default(),
            position: -1,
            broken: None,
        }
    }
}

impl<S: Default> StreamEntry<S> {
    /// Folds one event into the entry with the domain's `apply`; a panic there breaks the
    /// stream instead of the process.
    pub(crate) fn fold<A>(&mut self, event: &A::Event, recorded: &keel_domain::Recorded, hash: Vec<u8>, position: i64)
    where
        A: keel_domain::Aggregate<State = S>,
    {
        if self.broken.is_some() {
            return;
        }
        let state = std::mem::take(&mut self.state);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| A::apply(state, event, recorded))) {
            Ok(state) => self.state = state,
            Err(panic) => {
                let what = crate::decide::panic_text(panic.as_ref());
                tracing::error!(panic = %what, version = recorded.version, "the domain's apply panicked; the stream is unavailable");
                metrics::counter!("keel_handler_domain_panics_total", "in" => "apply").increment(1);
                self.broken = Some(format!("the domain cannot fold event version {}", recorded.version));
            }
        }
        self.version = recorded.version;
        self.hash = hash;
        self.position = position;
    }
}

/// What the handler remembers of one assigned partition.
pub(crate) struct PartitionMemory<S> {
    pub(crate) streams: HashMap<(String, String), StreamEntry<S>>,
    pub(crate) results: HashMap<(String, Uuid), CommandResult>,
}

impl<S> Default for PartitionMemory<S> {
    fn default() -> Self {
        Self {
            streams: HashMap::new(),
            results: HashMap::new(),
        }
    }
}

/// The most streams and results one partition's memory holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoryBounds {
    pub(crate) streams: usize,
    pub(crate) results: usize,
}

impl<S> PartitionMemory<S> {
    /// Whether this partition holds more than `bounds` allow.
    pub(crate) fn over(&self, bounds: MemoryBounds) -> bool {
        self.streams.len() > bounds.streams || self.results.len() > bounds.results
    }

    /// Drops entries down to three quarters of `bounds`, so that trimming (and the wait for
    /// the store before it) happens once per quarter of the bound, not after every batch.
    /// The streams written to least recently go first (the lowest event offset: one
    /// partition's offsets order its writes); results go in no particular order, as any
    /// of them is equally likely to be asked again. Only call this once the CQL store holds
    /// every entry.
    pub(crate) fn trim(&mut self, bounds: MemoryBounds) {
        if self.streams.len() > bounds.streams {
            let keep = bounds.streams * 3 / 4;
            // Broken streams stay: the store does not hold their state.
            let mut positions: Vec<i64> = self
                .streams
                .values()
                .filter(|entry| entry.broken.is_none())
                .map(|entry| entry.position)
                .collect();
            let cut = positions.len().saturating_sub(keep);
            if cut == 0 {
                return self.trim_results(bounds);
            }
            // Streams below the threshold go, and as many at it as needed.
            let (_, &mut threshold, _) = positions.select_nth_unstable(cut - 1);
            let below = positions.iter().filter(|position| **position < threshold).count();
            let mut ties = cut - below;
            self.streams.retain(|_, entry| {
                if entry.broken.is_some() {
                    return true;
                }
                if entry.position < threshold {
                    return false;
                }
                let drop = entry.position == threshold && ties > 0;
                ties -= usize::from(drop);
                !drop
            });
        }
        self.trim_results(bounds);
    }

    fn trim_results(&mut self, bounds: MemoryBounds) {
        if self.results.len() > bounds.results {
            let mut over = self.results.len() - bounds.results * 3 / 4;
            self.results.retain(|_, _| {
                let drop = over > 0;
                over -= usize::from(drop);
                !drop
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_results::Outcome;

    fn memory(streams: i64, results: usize) -> PartitionMemory<u64> {
        let mut memory = PartitionMemory::default();
        for position in 0..streams {
            let entry = StreamEntry {
                position,
                ..StreamEntry::default()
            };
            memory.streams.insert(("acme".into(), format!("s-{position}")), entry);
        }
        for _ in 0..results {
            let result = CommandResult {
                command_id: Uuid::new_v4(),
                tenant: Some("acme".into()),
                stream: None,
                correlation_id: None,
                command_type: None,
                actor: None,
                on_behalf_of: Vec::new(),
                outcome: Outcome::Rejected {
                    reason: "test".into(),
                    message: String::new(),
                    current_version: None,
                },
            };
            memory.results.insert(("acme".into(), result.command_id), result);
        }
        memory
    }

    #[test]
    fn trimming_keeps_the_streams_written_to_last() {
        let mut memory = memory(10, 0);
        let bounds = MemoryBounds { streams: 8, results: 8 };
        assert!(memory.over(bounds));
        memory.trim(bounds);
        let mut kept: Vec<i64> = memory.streams.values().map(|entry| entry.position).collect();
        kept.sort_unstable();
        assert_eq!(kept, [4, 5, 6, 7, 8, 9]);
        assert!(!memory.over(bounds));
    }

    #[test]
    fn trimming_drops_results_to_three_quarters_of_the_bound() {
        let mut memory = memory(2, 20);
        memory.trim(MemoryBounds { streams: 8, results: 8 });
        assert_eq!((memory.streams.len(), memory.results.len()), (2, 6));
    }

    #[test]
    fn streams_sharing_a_position_are_dropped_only_as_far_as_needed() {
        let mut memory = memory(0, 0);
        for i in 0..5 {
            memory
                .streams
                .insert(("acme".into(), format!("new-{i}")), StreamEntry::<u64>::default());
        }
        memory.trim(MemoryBounds { streams: 4, results: 8 });
        assert_eq!(memory.streams.len(), 3);
    }

    #[test]
    fn a_broken_stream_is_never_dropped() {
        let mut memory = memory(4, 0);
        let broken = StreamEntry {
            broken: Some("test".into()),
            ..StreamEntry::default()
        };
        memory.streams.insert(("acme".into(), "broken".into()), broken);
        memory.trim(MemoryBounds { streams: 0, results: 0 });
        assert_eq!(memory.streams.len(), 1);
        assert!(memory.streams.contains_key(&("acme".to_owned(), "broken".to_owned())));
    }

    #[test]
    fn a_bound_of_zero_empties_memory_and_memory_within_bounds_is_left_alone() {
        let mut memory = memory(3, 3);
        memory.trim(MemoryBounds { streams: 3, results: 3 });
        assert_eq!((memory.streams.len(), memory.results.len()), (3, 3));
        memory.trim(MemoryBounds { streams: 0, results: 0 });
        assert_eq!((memory.streams.len(), memory.results.len()), (0, 0));
    }
}
