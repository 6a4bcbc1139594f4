//! The retained-message store; every shard keeps a full replica.
//!
//! A retained PUBLISH is sent to every shard, and each one applies it to its
//! replica, so a new subscription finds its retained messages locally.
//! Concurrent retained publishes to one topic from different shards can
//! arrive in different orders on different shards; the stamp (a Lamport
//! clock with the shard id as tie-breaker) makes every replica keep the
//! same last write.

use std::collections::HashMap;

use bytestring::ByteString;

use super::message::Message;

#[derive(Debug, Default)]
pub struct RetainStore {
    messages: HashMap<ByteString, (Message, u64)>,
    clock: u64,
}

impl RetainStore {
    /// A fresh stamp for a retained publish made on `shard`.
    pub fn next_stamp(&mut self, shard: usize) -> u64 {
        self.clock += 1;
        (self.clock << 8) | shard as u64
    }

    /// Applies a retained publish: an empty payload clears the topic
    /// [MQTT-3.3.1-10/11], anything else replaces it [MQTT-3.3.1-5]. Older
    /// stamps than the stored one are ignored.
    pub fn apply(&mut self, msg: &Message, stamp: u64) {
        self.clock = self.clock.max(stamp >> 8);
        if let Some((_, current)) = self.messages.get(&msg.topic) {
            if *current > stamp {
                return;
            }
        }
        if msg.payload.is_empty() {
            self.messages.remove(&msg.topic);
        } else {
            let kept = msg.detached();
            self.messages.insert(kept.topic.clone(), (kept, stamp));
        }
    }

    /// Calls `visit` with every retained message matching `filter`.
    pub fn for_each_match(&self, filter: &str, mut visit: impl FnMut(&Message)) {
        if !filter.contains(['+', '#']) {
            if let Some((msg, _)) = self.messages.get(filter) {
                visit(msg);
            }
            return;
        }
        for (topic, (msg, _)) in &self.messages {
            if filter_matches(filter, topic) {
                visit(msg);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }
}

/// Whether one valid filter matches one topic name (same rules as the trie).
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::QoS;
    use bytes::Bytes;

    fn msg(topic: &'static str, payload: &'static str) -> Message {
        Message {
            topic: ByteString::from_static(topic),
            payload: Bytes::from_static(payload.as_bytes()),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: None,
        }
    }

    #[test]
    fn filter_matching() {
        assert!(filter_matches("sport/#", "sport"));
        assert!(filter_matches("sport/+/p", "sport/x/p"));
        assert!(!filter_matches("sport/+", "sport/x/p"));
        assert!(!filter_matches("#", "$SYS/x"));
        assert!(!filter_matches("+/x", "$SYS/x"));
        assert!(filter_matches("$SYS/#", "$SYS/x"));
        assert!(filter_matches("a", "a"));
        assert!(!filter_matches("a", "a/b"));
    }

    #[test]
    fn set_replace_clear_and_last_writer_wins() {
        let mut store = RetainStore::default();
        let s1 = store.next_stamp(0);
        store.apply(&msg("a/b", "1"), s1);
        let s2 = store.next_stamp(0);
        store.apply(&msg("a/b", "2"), s2);
        // A stale write from another shard loses.
        store.apply(&msg("a/b", "old"), s1 - 1);
        let mut seen = Vec::new();
        store.for_each_match("a/+", |m| seen.push(m.payload.clone()));
        assert_eq!(seen, [Bytes::from_static(b"2")]);
        let s3 = store.next_stamp(1);
        store.apply(&msg("a/b", ""), s3);
        assert!(store.is_empty());
    }
}
