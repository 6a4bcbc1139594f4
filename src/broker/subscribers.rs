//! The local subscribers of one filter: the value of a shard's
//! subscription trie.
//!
//! Most filters have one subscriber, so that case is held inline (16
//! bytes, no allocation). Several are a vector, walked contiguously when a
//! message is delivered; above [`INDEX_ABOVE`] a position index (session →
//! slot) keeps SUBSCRIBE and UNSUBSCRIBE O(1) however many sessions share
//! the filter, where a linear search would let clients make each other's
//! subscribes quadratic.

use std::collections::HashMap;

use crate::broker::session::SessionId;
use crate::protocol::SubscriptionOptions;

/// More subscribers than this get a position index.
const INDEX_ABOVE: usize = 16;
/// The index goes again at this many (not at 16, so that a filter going
/// back and forth around the threshold does not rebuild it each time).
const INDEX_DROP: usize = 8;

type Entry = (SessionId, Subscription);

/// One session's subscription to a filter: its options and the 5.0
/// Subscription Identifier of the SUBSCRIBE that made it (0: none). Fits in
/// what was padding, so an entry stays 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscription {
    pub options: SubscriptionOptions,
    pub id: u32,
}

/// Sessions subscribed to one filter, each with its options.
#[derive(Debug, Default, Clone)]
pub struct Subscribers(Repr);

#[derive(Debug, Default, Clone)]
enum Repr {
    #[default]
    Empty,
    One(Entry),
    Many(Box<Many>),
}

#[derive(Debug, Clone)]
struct Many {
    entries: Vec<Entry>,
    /// Slot of each session in `entries`, when there are many.
    index: Option<HashMap<SessionId, usize>>,
}

impl Subscribers {
    /// Adds `sid` or replaces its options; true if it was there.
    pub fn upsert(&mut self, sid: SessionId, options: Subscription) -> bool {
        match &mut self.0 {
            Repr::Empty => {
                self.0 = Repr::One((sid, options));
                false
            }
            Repr::One(entry) if entry.0 == sid => {
                entry.1 = options;
                true
            }
            Repr::One(entry) => {
                let entries = vec![*entry, (sid, options)];
                self.0 = Repr::Many(Box::new(Many {
                    entries,
                    index: None,
                }));
                false
            }
            Repr::Many(many) => many.upsert(sid, options),
        }
    }

    /// Removes `sid`; true if it was there.
    pub fn remove(&mut self, sid: SessionId) -> bool {
        match &mut self.0 {
            Repr::Empty => false,
            Repr::One(entry) => {
                let found = entry.0 == sid;
                if found {
                    self.0 = Repr::Empty;
                }
                found
            }
            Repr::Many(many) => {
                if !many.remove(sid) {
                    return false;
                }
                match many.entries[..] {
                    [] => self.0 = Repr::Empty,
                    [only] => self.0 = Repr::One(only),
                    _ => {}
                }
                true
            }
        }
    }

    pub fn get(&self, sid: SessionId) -> Option<&Subscription> {
        match &self.0 {
            Repr::Empty => None,
            Repr::One(entry) => (entry.0 == sid).then_some(&entry.1),
            Repr::Many(many) => many.position(sid).map(|i| &many.entries[i].1),
        }
    }

    /// Every subscriber, in no particular order, from one slice.
    pub fn iter(&self) -> impl Iterator<Item = (SessionId, &Subscription)> + '_ {
        self.as_slice().iter().map(|(sid, options)| (*sid, options))
    }

    /// Every subscriber, in no particular order.
    pub fn as_slice(&self) -> &[(SessionId, Subscription)] {
        match &self.0 {
            Repr::Empty => &[],
            Repr::One(entry) => std::slice::from_ref(entry),
            Repr::Many(many) => &many.entries,
        }
    }

    pub fn len(&self) -> usize {
        self.as_slice().len()
    }

    pub fn is_empty(&self) -> bool {
        matches!(self.0, Repr::Empty)
    }
}

impl Many {
    fn position(&self, sid: SessionId) -> Option<usize> {
        match &self.index {
            Some(index) => index.get(&sid).copied(),
            None => self.entries.iter().position(|e| e.0 == sid),
        }
    }

    fn upsert(&mut self, sid: SessionId, options: Subscription) -> bool {
        if let Some(i) = self.position(sid) {
            self.entries[i].1 = options;
            return true;
        }
        self.entries.push((sid, options));
        let slot = self.entries.len() - 1;
        match &mut self.index {
            Some(index) => {
                index.insert(sid, slot);
            }
            None if self.entries.len() > INDEX_ABOVE => {
                let index = self.entries.iter().enumerate();
                self.index = Some(index.map(|(i, e)| (e.0, i)).collect());
            }
            None => {}
        }
        false
    }

    fn remove(&mut self, sid: SessionId) -> bool {
        let Some(i) = self.position(sid) else {
            return false;
        };
        self.entries.swap_remove(i);
        if let Some(index) = &mut self.index {
            index.remove(&sid);
            if let Some(moved) = self.entries.get(i) {
                index.insert(moved.0, i);
            }
            if self.entries.len() <= INDEX_DROP {
                self.index = None;
            }
        }
        if self.entries.capacity() > 4 * self.entries.len().max(4) {
            self.entries.shrink_to(2 * self.entries.len());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::QoS;
    use std::collections::BTreeMap;

    fn opts(qos: QoS) -> Subscription {
        Subscription {
            options: SubscriptionOptions {
                qos,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            },
            id: 0,
        }
    }

    #[test]
    fn one_subscriber_is_inline_and_small() {
        assert!(std::mem::size_of::<Subscribers>() <= 16);
        let mut s = Subscribers::default();
        assert!(s.is_empty());
        assert!(!s.upsert(7, opts(QoS::AtMostOnce)));
        assert!(matches!(s.0, Repr::One(_)));
        assert!(s.upsert(7, opts(QoS::ExactlyOnce)));
        assert_eq!(s.get(7).map(|o| o.options.qos), Some(QoS::ExactlyOnce));
        assert_eq!(s.iter().map(|(sid, _)| sid).collect::<Vec<_>>(), [7]);
        assert!(!s.remove(8));
        assert!(s.remove(7));
        assert!(s.is_empty() && s.get(7).is_none());
    }

    #[test]
    fn many_subscribers_get_an_index_and_lose_it() {
        let mut s = Subscribers::default();
        for sid in 0..100 {
            assert!(!s.upsert(sid, opts(QoS::AtLeastOnce)));
        }
        let Repr::Many(many) = &s.0 else {
            panic!("100 subscribers inline");
        };
        assert!(many.index.is_some());
        for sid in (0..100).step_by(2) {
            assert!(s.remove(sid));
        }
        assert_eq!(s.len(), 50);
        for sid in 0..100 {
            assert_eq!(s.get(sid).is_some(), sid % 2 == 1, "{sid}");
        }
        for sid in (1..98).step_by(2) {
            assert!(s.remove(sid));
        }
        assert!(matches!(s.0, Repr::One((99, _))));
    }

    /// Random upserts and removes against a `BTreeMap`, across the inline,
    /// vector and indexed forms (deterministic xorshift).
    #[test]
    fn randomized_against_a_map() {
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce];
        for round in 0..20 {
            let universe = [2, 20, 200][round % 3];
            let mut s = Subscribers::default();
            let mut model = BTreeMap::new();
            for _ in 0..5_000 {
                let sid = next() % universe;
                if next() % 3 == 0 {
                    assert_eq!(s.remove(sid), model.remove(&sid).is_some());
                } else {
                    let o = opts(qos[(next() % 3) as usize]);
                    assert_eq!(s.upsert(sid, o), model.insert(sid, o).is_some());
                }
                assert_eq!(s.len(), model.len());
                assert_eq!(s.is_empty(), model.is_empty());
                let probe = next() % universe;
                assert_eq!(s.get(probe), model.get(&probe));
            }
            let mut got: Vec<_> = s.iter().map(|(sid, o)| (sid, *o)).collect();
            got.sort_by_key(|e| e.0);
            assert_eq!(got, model.into_iter().collect::<Vec<_>>());
        }
    }

    #[test]
    fn a_million_subscribers_stay_linear() {
        let mut s = Subscribers::default();
        let n = 1_000_000;
        for sid in 0..n {
            s.upsert(sid, opts(QoS::AtMostOnce));
        }
        for sid in (0..n).rev() {
            assert!(s.upsert(sid, opts(QoS::AtLeastOnce)));
        }
        for sid in 0..n - 1 {
            assert!(s.remove(sid));
        }
        assert_eq!(s.len(), 1);
    }
}
