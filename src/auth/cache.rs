//! A per-shard memory of recent successful password checks.
//!
//! PBKDF2 is slow on purpose; a fleet of devices reconnecting after a
//! network blip would otherwise pay it once per CONNECT. Each shard keeps its
//! own cache (no sharing, no locks). It never holds a password: per user it
//! keeps SHA-256(random per-cache key ‖ password), a tag that is useless
//! outside this process and compared in constant time.

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How many users a cache remembers unless told otherwise.
pub const DEFAULT_CAPACITY: usize = 10_000;

/// Users whose password was verified against the password file, with a
/// keyed tag of the password that passed. The owner must [`clear`] it when
/// the password file is reloaded, or a changed password would still be
/// accepted.
///
/// [`clear`]: VerifiedCache::clear
pub struct VerifiedCache {
    key: [u8; 32],
    tags: HashMap<Box<str>, [u8; 32]>,
    capacity: usize,
}

impl VerifiedCache {
    /// A cache of at most `capacity` users (0 remembers nothing).
    ///
    /// # Panics
    /// If the operating system has no randomness to give: a predictable key
    /// would make the tags plain unsalted hashes.
    pub fn new(capacity: usize) -> Self {
        let mut key = [0u8; 32];
        getrandom::getrandom(&mut key).expect("the OS random source failed");
        VerifiedCache {
            key,
            tags: HashMap::new(),
            capacity,
        }
    }

    pub(super) fn tag(&self, password: &[u8]) -> [u8; 32] {
        Sha256::new()
            .chain_update(self.key)
            .chain_update(password)
            .finalize()
            .into()
    }

    /// Was `password` verified for `user` before (since the last `clear`)?
    /// The tag is computed even for an unknown user, so that a miss costs
    /// about what a hit costs.
    pub fn check(&self, user: &str, password: &[u8]) -> bool {
        let tag = self.tag(password);
        match self.tags.get(user) {
            Some(stored) => stored.ct_eq(&tag).into(),
            None => false,
        }
    }

    /// Records a successful verification; replaces what was known for
    /// `user`. When full, one arbitrary entry goes (the first in the map's
    /// randomly seeded order): no bookkeeping per hit, and a client cannot
    /// choose whom it pushes out. The evicted user pays PBKDF2 once more.
    pub fn remember(&mut self, user: &str, password: &[u8]) {
        if self.capacity == 0 {
            return;
        }
        let tag = self.tag(password);
        if let Some(stored) = self.tags.get_mut(user) {
            *stored = tag;
            return;
        }
        if self.tags.len() >= self.capacity {
            let victim = self.tags.keys().next().cloned();
            if let Some(victim) = victim {
                self.tags.remove(&victim);
            }
        }
        self.tags.insert(user.into(), tag);
    }

    /// Forgets everything (on a password file reload).
    pub fn clear(&mut self) {
        self.tags.clear();
    }

    /// How many users are remembered.
    pub fn len(&self) -> usize {
        self.tags.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tags.is_empty()
    }
}

impl Default for VerifiedCache {
    fn default() -> Self {
        VerifiedCache::new(DEFAULT_CAPACITY)
    }
}
