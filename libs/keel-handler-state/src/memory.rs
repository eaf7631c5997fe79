//! An in-memory adapter, for unit tests of code that uses the port.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use crate::{HandlerState, StateBatch, StateError, StoredResult, StreamRecord};

#[derive(Default)]
struct Tables {
    streams: HashMap<(String, String), StreamRecord>,
    results: HashMap<(String, Uuid), StoredResult>,
    watermarks: HashMap<(String, String, i32), i64>,
}

/// Decision state held in memory; positions decide as in the CQL adapter.
#[derive(Default)]
pub struct InMemoryHandlerState {
    tables: Mutex<Tables>,
}

impl InMemoryHandlerState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    fn tables(&self) -> std::sync::MutexGuard<'_, Tables> {
        self.tables.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Last write wins by position; on a tie the later write wins, as with CQL timestamps
/// (where a tie is broken by value, and equal positions carry equal values here).
fn newer(existing: Option<i64>, incoming: i64) -> bool {
    existing.is_none_or(|stored| incoming >= stored)
}

impl HandlerState for InMemoryHandlerState {
    async fn stream(&self, tenant: &str, stream: &str) -> Result<Option<StreamRecord>, StateError> {
        Ok(self
            .tables()
            .streams
            .get(&(tenant.to_owned(), stream.to_owned()))
            .cloned())
    }

    async fn result(&self, tenant: &str, command_id: Uuid) -> Result<Option<StoredResult>, StateError> {
        Ok(self.tables().results.get(&(tenant.to_owned(), command_id)).cloned())
    }

    async fn watermark(&self, consumer: &str, topic: &str, partition: i32) -> Result<Option<i64>, StateError> {
        Ok(self
            .tables()
            .watermarks
            .get(&(consumer.to_owned(), topic.to_owned(), partition))
            .copied())
    }

    async fn apply(&self, batch: &StateBatch) -> Result<(), StateError> {
        let mut tables = self.tables();
        for record in &batch.streams {
            let key = (record.tenant.clone(), record.stream.clone());
            if newer(tables.streams.get(&key).map(|r| r.position), record.position) {
                tables.streams.insert(key, record.clone());
            }
        }
        for result in &batch.results {
            let key = (result.tenant.clone(), result.command_id);
            if newer(tables.results.get(&key).map(|r| r.position), result.position) {
                tables.results.insert(key, result.clone());
            }
        }
        for mark in &batch.watermarks {
            let key = (mark.consumer.clone(), mark.topic.clone(), mark.partition);
            if newer(tables.watermarks.get(&key).copied(), mark.next_offset) {
                tables.watermarks.insert(key, mark.next_offset);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    crate::handler_state_suite!(crate::InMemoryHandlerState::new());
}
