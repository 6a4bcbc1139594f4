//! The retained-message store; every shard keeps a full replica.
//!
//! A retained PUBLISH is sent to every shard, and each one applies it to its
//! replica, so a new subscription finds its retained messages locally.
//! Concurrent retained publishes to one topic from different shards can
//! arrive in different orders on different shards; the stamp (a Lamport
//! clock with the shard id as tie-breaker) makes every replica keep the
//! same last write. A delete leaves a *tombstone* holding its stamp for
//! [`TOMBSTONE_TTL_MS`], so that an older write arriving after it is still
//! recognised as older, and the replicas still agree.
//!
//! Topics are keys of a [`TopicTrie`], so a wildcard SUBSCRIBE walks only
//! the part of the store its filter matches. The store is bounded
//! ([`RetainLimits`]): a write that would add a topic beyond the bounds is
//! refused, a delete always works.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::ops::ControlFlow;

use bytestring::ByteString;

use super::message::Message;
use super::topic_trie::TopicTrie;

/// How long a delete's stamp is kept.
pub const TOMBSTONE_TTL_MS: u64 = 60_000;

/// Bounds of one replica: `max_messages` live messages (tombstones are
/// bounded apart, by the same number), `max_bytes` of their topics and
/// payloads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

impl RetainLimits {
    pub const UNLIMITED: RetainLimits = RetainLimits {
        max_messages: usize::MAX,
        max_bytes: usize::MAX,
    };
}

/// What [`RetainStore::apply_at`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetainOutcome {
    /// The message is now the topic's retained message.
    Stored,
    /// The topic has no retained message (any it had was removed).
    Deleted,
    /// A newer write or delete of the topic was applied before: ignored.
    Stale,
    /// Storing it would cross a bound (or the topic has a wildcard): the
    /// store is unchanged.
    Refused,
}

/// A topic's state: a message, or a tombstone (`msg: None`).
#[derive(Debug, Default)]
struct Entry {
    msg: Option<Message>,
    stamp: u64,
    /// When a tombstone may go.
    expires: u64,
    /// An item of the purge queue names this topic.
    queued: bool,
    /// An item of the expiry queue names this topic.
    expiry_queued: bool,
}

#[derive(Debug)]
pub struct RetainStore {
    trie: TopicTrie<Entry>,
    /// Tombstones to look at, by expiry: at most one item per topic.
    purge_queue: VecDeque<(u64, ByteString)>,
    /// Messages with a Message Expiry Interval, by expiry (earliest
    /// first): at most one item per topic.
    expiry_queue: BinaryHeap<Reverse<(u64, ByteString)>>,
    limits: RetainLimits,
    clock: u64,
    live: usize,
    bytes: usize,
}

impl Default for RetainStore {
    /// Unbounded; see [`RetainStore::new`].
    fn default() -> Self {
        RetainStore::new(RetainLimits::UNLIMITED)
    }
}

impl RetainStore {
    pub fn new(limits: RetainLimits) -> Self {
        RetainStore {
            trie: TopicTrie::new(),
            purge_queue: VecDeque::new(),
            expiry_queue: BinaryHeap::new(),
            limits,
            clock: 0,
            live: 0,
            bytes: 0,
        }
    }

    /// A fresh stamp for a retained publish made on `shard`.
    pub fn next_stamp(&mut self, shard: usize) -> u64 {
        self.clock += 1;
        (self.clock << 8) | shard as u64
    }

    /// Applies a retained publish made with `stamp`: an empty payload clears
    /// the topic [MQTT-3.3.1-10/11], anything else replaces it
    /// [MQTT-3.3.1-5]. A write or delete older than what the topic holds
    /// (message or tombstone) is ignored.
    ///
    /// The store keeps `msg` as given (a clone of its handles): the caller
    /// detaches it ([`Message::detached`]) once, before sharing it with
    /// every shard, so that no replica pins a read buffer.
    pub fn apply_at(&mut self, msg: &Message, stamp: u64, now_ms: u64) -> RetainOutcome {
        self.clock = self.clock.max(stamp >> 8);
        let topic: &str = &msg.topic;
        if memchr::memchr2(b'+', b'#', topic.as_bytes()).is_some() {
            return RetainOutcome::Refused;
        }
        let Some(entry) = self.trie.get_mut(topic) else {
            return self.insert(msg, stamp, now_ms);
        };
        if entry.stamp > stamp {
            return RetainOutcome::Stale;
        }
        let old = entry.msg.as_ref().map_or(0, size);
        if msg.payload.is_empty() {
            if entry.msg.take().is_some() {
                self.live -= 1;
                self.bytes -= old;
            }
            entry.stamp = stamp;
            entry.expires = now_ms.saturating_add(TOMBSTONE_TTL_MS);
            if !entry.queued {
                entry.queued = true;
                self.purge_queue
                    .push_back((entry.expires, msg.topic.clone()));
            }
            return RetainOutcome::Deleted;
        }
        let bytes = self.bytes - old + size(msg);
        // A tombstone coming back to life is a new message for the count.
        let revives = entry.msg.is_none();
        if bytes > self.limits.max_bytes || (revives && self.live >= self.limits.max_messages) {
            return RetainOutcome::Refused;
        }
        if entry.msg.replace(msg.clone()).is_none() {
            self.live += 1;
        }
        entry.stamp = stamp;
        self.bytes = bytes;
        self.watch_expiry(msg);
        RetainOutcome::Stored
    }

    /// [`apply_at`](Self::apply_at) for a topic the store does not hold.
    fn insert(&mut self, msg: &Message, stamp: u64, now_ms: u64) -> RetainOutcome {
        let tombstones = self.trie.len() - self.live;
        if msg.payload.is_empty() {
            // Nothing to delete; keep the stamp if there is room for it.
            if tombstones < self.limits.max_messages {
                let expires = now_ms.saturating_add(TOMBSTONE_TTL_MS);
                *self.trie.entry(&msg.topic) = Entry {
                    msg: None,
                    stamp,
                    expires,
                    queued: true,
                    expiry_queued: false,
                };
                self.purge_queue.push_back((expires, msg.topic.clone()));
            }
            return RetainOutcome::Deleted;
        }
        let bytes = self.bytes.saturating_add(size(msg));
        if self.live >= self.limits.max_messages || bytes > self.limits.max_bytes {
            return RetainOutcome::Refused;
        }
        *self.trie.entry(&msg.topic) = Entry {
            msg: Some(msg.clone()),
            stamp,
            expires: 0,
            queued: false,
            expiry_queued: false,
        };
        self.live += 1;
        self.bytes = bytes;
        self.watch_expiry(msg);
        RetainOutcome::Stored
    }

    /// Removes the tombstones older than [`TOMBSTONE_TTL_MS`]. Cheap: looks
    /// only at the queue's front. A topic deleted again meanwhile goes back
    /// in the queue with its new expiry, so a tombstone may outlive its TTL
    /// by at most one TTL, and the queue never holds more items than the
    /// store holds topics.
    pub fn purge_tombstones(&mut self, now_ms: u64) {
        while self
            .purge_queue
            .front()
            .is_some_and(|(expires, _)| *expires <= now_ms)
        {
            let Some((_, topic)) = self.purge_queue.pop_front() else {
                return;
            };
            let mut rearm = None;
            self.trie.remove_if(&topic, |e| {
                e.queued = false;
                if e.msg.is_some() {
                    return false;
                }
                if e.expires <= now_ms {
                    return true;
                }
                e.queued = true;
                rearm = Some(e.expires);
                false
            });
            if let Some(expires) = rearm {
                self.purge_queue.push_back((expires, topic));
            }
        }
    }

    /// Queues a stored message with a Message Expiry Interval, unless its
    /// topic is queued already (the queue item re-checks the topic's
    /// current message when it comes due).
    fn watch_expiry(&mut self, msg: &Message) {
        let Some(at) = msg.expires_at else {
            return;
        };
        if let Some(e) = self.trie.get_mut(&msg.topic) {
            if !e.expiry_queued {
                e.expiry_queued = true;
                self.expiry_queue.push(Reverse((at, msg.topic.clone())));
            }
        }
    }

    /// Deletes the retained messages whose Message Expiry Interval passed
    /// (each becomes a tombstone with its own stamp, so every replica ends
    /// the same). Looks only at the queue's front.
    pub fn purge_expired(&mut self, now_ms: u64) {
        while let Some(Reverse((at, _))) = self.expiry_queue.peek() {
            if *at > now_ms {
                return;
            }
            let Some(Reverse((_, topic))) = self.expiry_queue.pop() else {
                return;
            };
            let Some(e) = self.trie.get_mut(&topic) else {
                continue;
            };
            e.expiry_queued = false;
            let Some(later) = e.msg.as_ref().and_then(|m| m.expires_at) else {
                continue;
            };
            if later > now_ms {
                e.expiry_queued = true;
                self.expiry_queue.push(Reverse((later, topic)));
                continue;
            }
            let old = e.msg.take().map_or(0, |m| size(&m));
            self.live -= 1;
            self.bytes -= old;
            e.expires = now_ms.saturating_add(TOMBSTONE_TTL_MS);
            if !e.queued {
                e.queued = true;
                self.purge_queue.push_back((e.expires, topic));
            }
        }
    }

    /// Calls `visit` with every retained message matching `filter`, until
    /// it breaks: one lookup for a filter without wildcards, else a walk of
    /// the matching part of the store only.
    pub fn for_each_matching(
        &self,
        filter: &str,
        mut visit: impl FnMut(&Message) -> ControlFlow<()>,
    ) {
        if memchr::memchr2(b'+', b'#', filter.as_bytes()).is_none() {
            if let Some(msg) = self.trie.get(filter).and_then(|e| e.msg.as_ref()) {
                let _ = visit(msg);
            }
            return;
        }
        self.trie.for_each_in_filter(filter, |e| match &e.msg {
            Some(msg) => visit(msg),
            None => ControlFlow::Continue(()),
        });
    }

    /// [`apply_at`](Self::apply_at) at time 0, outcome dropped. Does not
    /// detach `msg` (see there).
    pub fn apply(&mut self, msg: &Message, stamp: u64) {
        self.apply_at(msg, stamp, 0);
    }

    /// Calls `visit` with every retained message matching `filter`.
    pub fn for_each_match(&self, filter: &str, mut visit: impl FnMut(&Message)) {
        self.for_each_matching(filter, |m| {
            visit(m);
            ControlFlow::Continue(())
        });
    }

    /// Live retained messages (tombstones not counted).
    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Tombstones held.
    pub fn tombstones(&self) -> usize {
        self.trie.len() - self.live
    }

    /// Topic plus payload bytes of the live messages.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

fn size(msg: &Message) -> usize {
    msg.topic.len() + msg.payload.len()
}

/// Whether one valid filter matches one topic name (same rules as the trie).
pub use crate::protocol::topic::filter_matches;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::QoS;
    use bytes::Bytes;

    fn msg(topic: &str, payload: &str) -> Message {
        Message {
            topic: ByteString::from(topic),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
            qos: QoS::AtMostOnce,
            retain: true,
            properties: None,
            expires_at: None,
            origin: crate::broker::message::Origin::NONE,
        }
    }

    fn payloads(store: &RetainStore, filter: &str) -> Vec<String> {
        let mut seen = Vec::new();
        store.for_each_match(filter, |m| {
            seen.push(String::from_utf8_lossy(&m.payload).into_owned())
        });
        seen.sort();
        seen
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
        assert_eq!(payloads(&store, "a/+"), ["2"]);
        let s3 = store.next_stamp(1);
        store.apply(&msg("a/b", ""), s3);
        assert!(store.is_empty());
        assert_eq!(store.bytes(), 0);
    }

    #[test]
    fn mqtt_3_3_1_10_delete_leaves_a_tombstone_that_beats_older_writes() {
        let mut store = RetainStore::default();
        // Shard 1 deletes at stamp 5|1 while shard 0's write at 4|0 is in
        // flight: every replica must end without a message, whichever
        // order the two arrive in.
        let (write, delete) = (4 << 8, (5 << 8) | 1);
        let o = store.apply_at(&msg("t", ""), delete, 10);
        assert_eq!(o, RetainOutcome::Deleted);
        assert_eq!(store.tombstones(), 1);
        let o = store.apply_at(&msg("t", "late"), write, 20);
        assert_eq!(o, RetainOutcome::Stale);
        assert!(store.is_empty());
        let mut other = RetainStore::default();
        let o = other.apply_at(&msg("t", "late"), write, 10);
        assert_eq!(o, RetainOutcome::Stored);
        let o = other.apply_at(&msg("t", ""), delete, 20);
        assert_eq!(o, RetainOutcome::Deleted);
        assert!(other.is_empty());
        assert_eq!(other.tombstones(), 1);
        // A newer write replaces the tombstone.
        let o = store.apply_at(&msg("t", "new"), 6 << 8, 30);
        assert_eq!(o, RetainOutcome::Stored);
        assert_eq!(payloads(&store, "t"), ["new"]);
        assert_eq!(store.tombstones(), 0);
    }

    #[test]
    fn tombstones_are_purged_after_their_ttl() {
        let mut store = RetainStore::default();
        store.apply_at(&msg("a", ""), 1 << 8, 0);
        store.apply_at(&msg("b", "x"), 2 << 8, 0);
        store.apply_at(&msg("b", ""), 3 << 8, 1_000);
        assert_eq!(store.tombstones(), 2);
        store.purge_tombstones(TOMBSTONE_TTL_MS - 1);
        assert_eq!(store.tombstones(), 2);
        store.purge_tombstones(TOMBSTONE_TTL_MS);
        assert_eq!(store.tombstones(), 1);
        // "b" deleted again: its TTL starts over.
        store.apply_at(&msg("b", ""), 4 << 8, 30_000);
        store.purge_tombstones(TOMBSTONE_TTL_MS + 1_000);
        assert_eq!(store.tombstones(), 1);
        store.purge_tombstones(TOMBSTONE_TTL_MS + 30_000);
        assert_eq!(store.tombstones(), 0);
        assert!(store.purge_queue.is_empty());
        // Once purged, an old write is taken again (after the TTL, nothing
        // older can still be in flight).
        let o = store.apply_at(&msg("b", "x"), 2 << 8, 100_000);
        assert_eq!(o, RetainOutcome::Stored);
    }

    #[test]
    fn a_tombstone_that_became_a_message_again_is_not_purged() {
        let mut store = RetainStore::default();
        store.apply_at(&msg("a", ""), 1 << 8, 0);
        store.apply_at(&msg("a", "back"), 2 << 8, 10);
        store.purge_tombstones(10 * TOMBSTONE_TTL_MS);
        assert_eq!(payloads(&store, "#"), ["back"]);
        // Write/delete churn keeps one queue item per topic.
        for i in 3..1000u64 {
            let payload = if i % 2 == 0 { "" } else { "x" };
            store.apply_at(&msg("a", payload), i << 8, 20);
        }
        assert_eq!(store.purge_queue.len(), 1);
    }

    #[test]
    fn bounds_on_messages_and_bytes() {
        let limits = RetainLimits {
            max_messages: 2,
            max_bytes: 10,
        };
        let mut store = RetainStore::new(limits);
        let mut stamp = 0;
        let mut apply = |store: &mut RetainStore, t: &str, p: &str| {
            stamp += 1 << 8;
            store.apply_at(&msg(t, p), stamp, 0)
        };
        // 5 bytes; 5 + 6 > 10; 5 + 5 = 10; a third topic.
        assert_eq!(apply(&mut store, "a", "1234"), RetainOutcome::Stored);
        assert_eq!(apply(&mut store, "b", "12345"), RetainOutcome::Refused);
        assert_eq!(apply(&mut store, "b", "1234"), RetainOutcome::Stored);
        assert_eq!(apply(&mut store, "c", "1"), RetainOutcome::Refused);
        // Replacing within the bytes: fine; beyond them: refused, old kept.
        assert_eq!(apply(&mut store, "a", "123"), RetainOutcome::Stored);
        assert_eq!(store.bytes(), 9);
        assert_eq!(apply(&mut store, "a", "12345"), RetainOutcome::Refused);
        assert_eq!(payloads(&store, "a"), ["123"]);
        // Deletes always work and free the message's slot at once; the
        // tombstone counts apart (at most max_messages of them).
        assert_eq!(apply(&mut store, "a", ""), RetainOutcome::Deleted);
        assert_eq!((store.len(), store.bytes()), (1, 5));
        assert_eq!(apply(&mut store, "c", "1"), RetainOutcome::Stored);
        assert_eq!(apply(&mut store, "d", ""), RetainOutcome::Deleted);
        assert_eq!(store.tombstones(), 2);
        // A tombstone written again is a new message: refused while full.
        assert_eq!(apply(&mut store, "a", "1"), RetainOutcome::Refused);
        assert_eq!(store.len(), 2);
        // No room for a third tombstone: still a delete.
        assert_eq!(apply(&mut store, "e", ""), RetainOutcome::Deleted);
        assert_eq!(store.tombstones(), 2);
        store.purge_tombstones(TOMBSTONE_TTL_MS);
        assert_eq!(store.tombstones(), 0);
        assert_eq!(apply(&mut store, "x/+", "1"), RetainOutcome::Refused);
    }

    #[test]
    fn for_each_matching_stops_on_break() {
        let mut store = RetainStore::default();
        for i in 0..100 {
            store.apply(&msg(&format!("s/{i}"), "x"), (i + 1) << 8);
        }
        let mut seen = 0;
        store.for_each_matching("s/+", |_| {
            seen += 1;
            if seen == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(seen, 3);
        assert_eq!(payloads(&store, "s/#").len(), 100);
        assert_eq!(payloads(&store, "s/42"), ["x"]);
        assert!(payloads(&store, "s/42/+").is_empty());
    }

    #[test]
    fn mqtt_4_7_2_1_dollar_topics_only_for_explicit_filters() {
        let mut store = RetainStore::default();
        store.apply(&msg("$SYS/uptime", "1"), 1 << 8);
        store.apply(&msg("sys/uptime", "2"), 2 << 8);
        assert_eq!(payloads(&store, "#"), ["2"]);
        assert_eq!(payloads(&store, "+/uptime"), ["2"]);
        assert_eq!(payloads(&store, "$SYS/#"), ["1"]);
        assert_eq!(payloads(&store, "$SYS/+"), ["1"]);
        assert_eq!(payloads(&store, "$SYS/uptime"), ["1"]);
    }

    #[test]
    fn expired_messages_leave_the_store_as_tombstones() {
        let mut store = RetainStore::default();
        let mut m = msg("t/exp", "soon");
        m.expires_at = Some(1_000);
        let stamp = store.next_stamp(0);
        assert_eq!(store.apply_at(&m, stamp, 0), RetainOutcome::Stored);
        // Replaced by a longer-lived copy: the queue item re-arms.
        let mut later = msg("t/exp", "later");
        later.expires_at = Some(3_000);
        let stamp2 = store.next_stamp(0);
        assert_eq!(store.apply_at(&later, stamp2, 0), RetainOutcome::Stored);
        store.purge_expired(2_000);
        assert_eq!(payloads(&store, "t/#"), ["later"]);
        store.purge_expired(3_000);
        assert!(payloads(&store, "t/#").is_empty());
        assert_eq!((store.len(), store.tombstones(), store.bytes()), (0, 1, 0));
        // An older write that arrives late loses to the expiry's tombstone.
        assert_eq!(
            store.apply_at(&msg("t/exp", "old"), stamp, 3_000),
            RetainOutcome::Stale
        );
    }
}
