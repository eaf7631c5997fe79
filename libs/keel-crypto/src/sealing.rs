//! What a process seals with: per tenant and owner, the key version it seals with now and
//! how many of that version's seals, reserved in the vault, it has not used yet.
//!
//! Bounded: at capacity, the owner sealed for least recently is forgotten. Forgetting only
//! wastes the seals it held (they were reserved in the vault, so nobody else gets them); the
//! next seal for that owner reads the vault and reserves again.

use std::time::Instant;

use foldhash::{HashMap, HashMapExt};

use crate::{CREATOR_SEALS, KeyId, KeyOwner};

/// The largest reservation: what a restart can waste per key version at most.
const MAX_BLOCK: u64 = 1 << 20;

/// The version an owner seals with now.
#[derive(Debug)]
pub(crate) struct Current {
    pub(crate) id: KeyId,
    /// When the version is due for rotation by age.
    pub(crate) rotate_at: Instant,
    /// Reserved seals not used yet.
    pub(crate) left: u64,
    /// Size of the next reservation: doubles from [`CREATOR_SEALS`] to [`MAX_BLOCK`], so a
    /// key sealed with once costs one small reservation and a busy one rarely reserves.
    block: u64,
    /// Tick of the last use, for eviction.
    used: u64,
}

/// The [`Current`] version of each tenant's owners, at most `capacity` of them.
#[derive(Debug)]
pub(crate) struct Sealing {
    capacity: usize,
    tick: u64,
    len: usize,
    /// Nested so that a lookup by `(&str, &KeyOwner)` builds nothing.
    owners: HashMap<String, HashMap<KeyOwner, Current>>,
}

impl Sealing {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            tick: 0,
            len: 0,
            owners: HashMap::new(),
        }
    }

    /// The version `owner` seals with now, marked as used.
    pub(crate) fn get_mut(&mut self, tenant: &str, owner: &KeyOwner) -> Option<&mut Current> {
        self.tick += 1;
        let current = self.owners.get_mut(tenant)?.get_mut(owner)?;
        current.used = self.tick;
        Some(current)
    }

    fn get(&self, id: &KeyId) -> Option<&Current> {
        self.owners
            .get(&id.tenant)?
            .get(&id.owner)
            .filter(|current| current.id == *id)
    }

    /// Seals of version `id` this process holds.
    pub(crate) fn left(&self, id: &KeyId) -> u64 {
        self.get(id).map_or(0, |current| current.left)
    }

    /// How many seals of `id` to reserve next.
    pub(crate) fn next_block(&self, id: &KeyId) -> u64 {
        self.get(id).map_or(CREATOR_SEALS, |current| current.block)
    }

    /// Adds `granted` reserved seals of `id` and makes it its owner's current version, to be
    /// replaced by age at `rotate_at`.
    pub(crate) fn grant(&mut self, id: &KeyId, rotate_at: Instant, granted: u64) {
        // `get_mut` advances the tick, found or not: the new entry below is the latest used.
        if let Some(current) = self.get_mut(&id.tenant, &id.owner).filter(|c| c.id == *id) {
            current.left += granted;
            current.block = (current.block * 2).min(MAX_BLOCK);
            return;
        }
        let current = Current {
            id: id.clone(),
            rotate_at,
            left: granted,
            block: (CREATOR_SEALS * 2).min(MAX_BLOCK),
            used: self.tick,
        };
        let replaced = self
            .owners
            .entry(id.tenant.clone())
            .or_default()
            .insert(id.owner.clone(), current);
        if replaced.is_none() {
            self.len += 1;
            if self.len > self.capacity {
                self.evict_least_recent();
            }
        }
    }

    /// Takes one seal of `id`, if this process holds one.
    pub(crate) fn take(&mut self, id: &KeyId) -> bool {
        match self
            .get_mut(&id.tenant, &id.owner)
            .filter(|c| c.id == *id && c.left > 0)
        {
            Some(current) => {
                current.left -= 1;
                true
            }
            None => false,
        }
    }

    pub(crate) fn forget_subject(&mut self, tenant: &str, subject: &str) {
        if let Some(owners) = self.owners.get_mut(tenant)
            && owners.remove(&KeyOwner::Subject(subject.to_owned())).is_some()
        {
            self.len -= 1;
        }
    }

    pub(crate) fn forget_tenant(&mut self, tenant: &str) {
        if let Some(owners) = self.owners.remove(tenant) {
            self.len -= owners.len();
        }
    }

    /// Drops the owner used least recently: a scan, paid only when a vault read brought in a
    /// new owner at capacity.
    fn evict_least_recent(&mut self) {
        let oldest = self
            .owners
            .values()
            .flat_map(HashMap::values)
            .min_by_key(|current| current.used)
            .map(|current| current.id.clone());
        let Some(id) = oldest else { return };
        if let Some(owners) = self.owners.get_mut(&id.tenant) {
            owners.remove(&id.owner);
            self.len -= 1;
            if owners.is_empty() {
                self.owners.remove(&id.tenant);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(name: &str, version: u32) -> KeyId {
        KeyId::subject("acme", name, version)
    }

    #[test]
    fn granted_seals_are_taken_one_by_one_and_then_run_out() {
        let mut sealing = Sealing::new(8);
        let id = subject("ada", 1);
        sealing.grant(&id, Instant::now(), 2);
        assert!(sealing.take(&id));
        assert!(sealing.take(&id));
        assert!(!sealing.take(&id), "no seal beyond what was granted");
    }

    #[test]
    fn a_new_version_replaces_the_old_one_and_its_seals() {
        let mut sealing = Sealing::new(8);
        sealing.grant(&subject("ada", 1), Instant::now(), 5);
        sealing.grant(&subject("ada", 2), Instant::now(), 1);
        assert!(!sealing.take(&subject("ada", 1)), "an old version is not sealed with");
        assert_eq!(sealing.left(&subject("ada", 2)), 1);
        assert_eq!(sealing.len(), 1);
    }

    #[test]
    fn reservations_double_up_to_the_largest_block() {
        let mut sealing = Sealing::new(8);
        let id = KeyId::tenant("acme", 1);
        assert_eq!(sealing.next_block(&id), CREATOR_SEALS);
        let mut blocks = Vec::new();
        for _ in 0..14 {
            sealing.grant(&id, Instant::now(), 1);
            blocks.push(sealing.next_block(&id));
        }
        assert_eq!(blocks[0], CREATOR_SEALS * 2);
        assert_eq!(blocks[1], CREATOR_SEALS * 4);
        assert_eq!(blocks.last(), Some(&MAX_BLOCK));
    }

    #[test]
    fn at_capacity_the_least_recently_used_owner_is_forgotten() {
        let mut sealing = Sealing::new(2);
        sealing.grant(&subject("ada", 1), Instant::now(), 5);
        sealing.grant(&subject("bob", 1), Instant::now(), 5);
        assert!(sealing.take(&subject("ada", 1)));
        sealing.grant(&subject("cy", 1), Instant::now(), 5);
        assert_eq!(sealing.len(), 2);
        assert_eq!(sealing.left(&subject("bob", 1)), 0, "bob was used least recently");
        assert_eq!(sealing.left(&subject("ada", 1)), 4);
        assert_eq!(sealing.left(&subject("cy", 1)), 5);
    }

    #[test]
    fn forgetting_a_subject_or_a_tenant_drops_their_seals() {
        let mut sealing = Sealing::new(8);
        sealing.grant(&subject("ada", 1), Instant::now(), 5);
        sealing.grant(&KeyId::tenant("acme", 1), Instant::now(), 5);
        sealing.grant(&KeyId::tenant("other", 1), Instant::now(), 5);
        sealing.forget_subject("acme", "ada");
        assert_eq!(sealing.left(&subject("ada", 1)), 0);
        assert_eq!(sealing.len(), 2);
        sealing.forget_tenant("acme");
        assert_eq!(sealing.len(), 1);
        assert_eq!(sealing.left(&KeyId::tenant("other", 1)), 5);
    }
}
