//! A bounded cache of unwrapped data keys with explicit eviction and a bounded lifetime.

use foldhash::{HashMap, HashMapExt};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::aead::DataKey;
use crate::{KeyId, KeyOwner};

/// One cached key: the key, when it was last used (a tick), when it was unwrapped.
#[derive(Debug)]
struct Entry {
    key: Arc<DataKey>,
    used: u64,
    loaded: Instant,
}

/// Unwrapped keys by id, least recently used evicted first once `capacity` is reached, and
/// none kept longer than `ttl` after it was unwrapped: a process that never hears of an
/// erasure made elsewhere stops opening the erased subject's data within `ttl`.
/// Dropping the last `Arc` of an evicted key zeroizes it.
#[derive(Debug)]
pub(crate) struct KeyCache {
    capacity: usize,
    ttl: Duration,
    tick: u64,
    entries: HashMap<KeyId, Entry>,
}

impl KeyCache {
    pub(crate) fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity,
            ttl,
            tick: 0,
            entries: HashMap::new(),
        }
    }

    /// The key `id` if cached and unwrapped less than the lifetime before `now` (the caller
    /// reads the clock once for everything it checks).
    pub(crate) fn get(&mut self, id: &KeyId, now: Instant) -> Option<Arc<DataKey>> {
        self.tick += 1;
        let entry = self.entries.get_mut(id)?;
        if now.saturating_duration_since(entry.loaded) < self.ttl {
            entry.used = self.tick;
            return Some(Arc::clone(&entry.key));
        }
        self.entries.remove(id);
        None
    }

    pub(crate) fn insert(&mut self, id: KeyId, key: Arc<DataKey>) {
        if self.capacity == 0 || self.ttl.is_zero() {
            return;
        }
        while self.entries.len() >= self.capacity && !self.entries.contains_key(&id) {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, entry)| entry.used)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => self.entries.remove(&k),
                None => break,
            };
        }
        self.tick += 1;
        let entry = Entry {
            key,
            used: self.tick,
            loaded: Instant::now(),
        };
        self.entries.insert(id, entry);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn id(version: u32) -> KeyId {
        KeyId {
            tenant: "acme".into(),
            owner: KeyOwner::Subject("s-1".into()),
            version,
        }
    }

    #[test]
    fn a_key_is_served_until_its_lifetime_ends_then_forgotten() {
        let mut cache = KeyCache::new(8, Duration::from_millis(50));
        cache.insert(id(1), Arc::new(DataKey::generate().0));
        assert!(cache.get(&id(1), Instant::now()).is_some());
        std::thread::sleep(Duration::from_millis(60));
        assert!(
            cache.get(&id(1), Instant::now()).is_none(),
            "an expired key must not be served"
        );
        assert_eq!(cache.len(), 0, "an expired key is dropped, not just hidden");
    }

    #[test]
    fn a_zero_lifetime_caches_nothing() {
        let mut cache = KeyCache::new(8, Duration::ZERO);
        cache.insert(id(1), Arc::new(DataKey::generate().0));
        assert!(cache.get(&id(1), Instant::now()).is_none());
    }

    #[test]
    fn the_least_recently_used_key_goes_first_at_capacity() {
        let mut cache = KeyCache::new(2, Duration::from_secs(60));
        cache.insert(id(1), Arc::new(DataKey::generate().0));
        cache.insert(id(2), Arc::new(DataKey::generate().0));
        assert!(cache.get(&id(1), Instant::now()).is_some());
        cache.insert(id(3), Arc::new(DataKey::generate().0));
        assert!(cache.get(&id(2), Instant::now()).is_none());
        assert!(cache.get(&id(1), Instant::now()).is_some());
        assert!(cache.get(&id(3), Instant::now()).is_some());
    }
}
