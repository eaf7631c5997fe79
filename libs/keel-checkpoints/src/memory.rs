//! In-memory checkpoints, for unit tests of code that uses the port.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, PoisonError};

use crate::{Checkpoint, CheckpointError, Checkpoints, Head};

/// Checkpoints held in memory; an older checkpoint never replaces a newer one, as in CQL.
#[derive(Default)]
pub struct InMemoryCheckpoints {
    checkpoints: Mutex<HashMap<String, BTreeMap<i32, Checkpoint>>>,
    heads: Mutex<HashMap<String, BTreeMap<i32, Head>>>,
}

impl InMemoryCheckpoints {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

impl Checkpoints for InMemoryCheckpoints {
    async fn checkpoints(&self, projection: &str) -> Result<Vec<Checkpoint>, CheckpointError> {
        let all = self.checkpoints.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(all
            .get(projection)
            .map(|by_partition| by_partition.values().copied().collect())
            .unwrap_or_default())
    }

    async fn save(&self, projection: &str, checkpoints: &[Checkpoint]) -> Result<(), CheckpointError> {
        let mut all = self.checkpoints.lock().unwrap_or_else(PoisonError::into_inner);
        let by_partition = all.entry(projection.to_owned()).or_default();
        for checkpoint in checkpoints {
            let stored = by_partition.get(&checkpoint.partition).map(|c| c.next_offset);
            if stored.is_none_or(|offset| checkpoint.next_offset >= offset) {
                by_partition.insert(checkpoint.partition, *checkpoint);
            }
        }
        Ok(())
    }

    async fn heads(&self, projection: &str) -> Result<Vec<Head>, CheckpointError> {
        let all = self.heads.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(all
            .get(projection)
            .map(|by_partition| by_partition.values().copied().collect())
            .unwrap_or_default())
    }

    async fn save_heads(&self, projection: &str, heads: &[Head]) -> Result<(), CheckpointError> {
        let mut all = self.heads.lock().unwrap_or_else(PoisonError::into_inner);
        let by_partition = all.entry(projection.to_owned()).or_default();
        for head in heads {
            by_partition.insert(head.partition, *head);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    crate::checkpoints_suite!(crate::InMemoryCheckpoints::new());
}
