//! Client id → session, without a second copy of each id.
//!
//! A `HashMap<ByteString, SessionId>` stores a 32-byte `ByteString` per key
//! (and forces the id's bytes into a shared, refcounted allocation). This
//! table stores only the session id and finds an entry by comparing the
//! session's own `client_id`: 8 bytes a slot, which matters at a million
//! idle sessions.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::id_map::IdMap;
use super::session::{Session, SessionId};

#[derive(Debug, Default)]
pub struct ClientIndex {
    table: HashTable<SessionId>,
    hasher: RandomState,
}

impl ClientIndex {
    pub fn get(&self, client_id: &str, sessions: &IdMap<Session>) -> Option<SessionId> {
        let hash = self.hasher.hash_one(client_id);
        self.table
            .find(hash, |sid| {
                sessions
                    .get(sid)
                    .is_some_and(|s| s.client_id.as_ref() as &str == client_id)
            })
            .copied()
    }

    /// Indexes `sid` (already in `sessions`) under its client id, which
    /// must not be indexed yet.
    pub fn insert(&mut self, sid: SessionId, sessions: &IdMap<Session>) {
        let Some(session) = sessions.get(&sid) else {
            return;
        };
        let hash = self.hasher.hash_one(&*session.client_id);
        let hasher = &self.hasher;
        self.table.insert_unique(hash, sid, |s| {
            sessions
                .get(s)
                .map_or(0, |s| hasher.hash_one(&*s.client_id))
        });
    }

    /// Removes `sid` if it is what `client_id` maps to.
    pub fn remove(&mut self, client_id: &str, sid: SessionId) {
        let hash = self.hasher.hash_one(client_id);
        if let Ok(entry) = self.table.find_entry(hash, |s| *s == sid) {
            entry.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ProtocolVersion;
    use bytestring::ByteString;

    fn session(id: &str) -> Session {
        Session::new(ByteString::from(id), false, ProtocolVersion::V311)
    }

    #[test]
    fn finds_inserts_and_removes_by_client_id() {
        let mut sessions = IdMap::new();
        let mut index = ClientIndex::default();
        let ids: Vec<_> = (0..1000)
            .map(|i| {
                let sid = sessions.insert(session(&format!("c{i}")));
                index.insert(sid, &sessions);
                sid
            })
            .collect();
        for (i, sid) in ids.iter().enumerate() {
            assert_eq!(index.get(&format!("c{i}"), &sessions), Some(*sid));
        }
        assert_eq!(index.get("nobody", &sessions), None);
        index.remove("c7", ids[7]);
        assert_eq!(index.get("c7", &sessions), None);
        // Removing under a stale id leaves the entry.
        index.remove("c8", ids[9]);
        assert_eq!(index.get("c8", &sessions), Some(ids[8]));
    }
}
