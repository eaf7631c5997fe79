//! A bounded cache of unwrapped data keys with explicit eviction.

use std::collections::HashMap;
use std::sync::Arc;

use crate::aead::DataKey;
use crate::{KeyId, KeyOwner};

/// Unwrapped keys by id, least recently used evicted first once `capacity` is reached.
/// Dropping the last `Arc` of an evicted key zeroizes it.
#[derive(Debug)]
pub(crate) struct KeyCache {
    capacity: usize,
    tick: u64,
    entries: HashMap<KeyId, (Arc<DataKey>, u64)>,
}

impl KeyCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    pub(crate) fn get(&mut self, id: &KeyId) -> Option<Arc<DataKey>> {
        self.tick += 1;
        let tick = self.tick;
        self.entries.get_mut(id).map(|(key, used)| {
            *used = tick;
            Arc::clone(key)
        })
    }

    pub(crate) fn insert(&mut self, id: KeyId, key: Arc<DataKey>) {
        if self.capacity == 0 {
            return;
        }
        while self.entries.len() >= self.capacity && !self.entries.contains_key(&id) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, (_, used))| *used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
        self.tick += 1;
        self.entries.insert(id, (key, self.tick));
    }

    pub(crate) fn evict_subject(&mut self, tenant: &str, subject: &str) {
        self.entries
            .retain(|id, _| !(id.tenant == tenant && id.subject_id() == Some(subject)));
    }

    pub(crate) fn evict_tenant(&mut self, tenant: &str) {
        self.entries.retain(|id, _| id.tenant != tenant);
    }

    pub(crate) fn evict_owner(&mut self, tenant: &str, owner: &KeyOwner) {
        self.entries
            .retain(|id, _| !(id.tenant == tenant && &id.owner == owner));
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}
