//! A session's own record of its subscriptions (filter → options).
//!
//! Why not always a `HashMap`: most clients hold one to a few
//! subscriptions, and an empty-then-one-entry hash table allocates room for
//! four entries plus control bytes (about 180 B) per session — at a million
//! devices, more than the connection itself. A short vector searched
//! linearly is exact-sized; past [`FEW`] entries it becomes a hash table,
//! so a client with thousands of filters never pays a linear search.

use std::collections::HashMap;

use bytestring::ByteString;

use crate::protocol::SubscriptionOptions;

/// Most entries kept in a vector.
const FEW: usize = 8;

#[derive(Debug)]
pub enum SessionSubs {
    Few(Vec<(ByteString, SubscriptionOptions)>),
    Many(HashMap<ByteString, SubscriptionOptions>),
}

impl Default for SessionSubs {
    fn default() -> Self {
        SessionSubs::Few(Vec::new())
    }
}

impl SessionSubs {
    pub fn len(&self) -> usize {
        match self {
            SessionSubs::Few(v) => v.len(),
            SessionSubs::Many(m) => m.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn contains_key(&self, filter: &str) -> bool {
        match self {
            SessionSubs::Few(v) => v.iter().any(|(f, _)| f == filter),
            SessionSubs::Many(m) => m.contains_key(filter),
        }
    }

    pub fn get(&self, filter: &str) -> Option<&SubscriptionOptions> {
        match self {
            SessionSubs::Few(v) => v.iter().find(|(f, _)| f == filter).map(|(_, o)| o),
            SessionSubs::Many(m) => m.get(filter),
        }
    }

    /// Inserts or replaces; returns the options replaced.
    pub fn insert(
        &mut self,
        filter: ByteString,
        options: SubscriptionOptions,
    ) -> Option<SubscriptionOptions> {
        match self {
            SessionSubs::Few(v) => {
                if let Some((_, o)) = v.iter_mut().find(|(f, _)| *f == filter) {
                    return Some(std::mem::replace(o, options));
                }
                if v.len() < FEW {
                    // Exact growth: one more entry, not a doubling.
                    v.reserve_exact(1);
                    v.push((filter, options));
                    return None;
                }
                let mut m: HashMap<_, _> = v.drain(..).collect();
                m.insert(filter, options);
                *self = SessionSubs::Many(m);
                None
            }
            SessionSubs::Many(m) => m.insert(filter, options),
        }
    }

    pub fn remove(&mut self, filter: &str) -> Option<SubscriptionOptions> {
        match self {
            SessionSubs::Few(v) => {
                let i = v.iter().position(|(f, _)| f == filter)?;
                let (_, o) = v.swap_remove(i);
                if v.is_empty() {
                    *v = Vec::new();
                }
                Some(o)
            }
            SessionSubs::Many(m) => m.remove(filter),
        }
    }

    pub fn keys(&self) -> Box<dyn Iterator<Item = &ByteString> + '_> {
        match self {
            SessionSubs::Few(v) => Box::new(v.iter().map(|(f, _)| f)),
            SessionSubs::Many(m) => Box::new(m.keys()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::QoS;

    fn opts(qos: QoS) -> SubscriptionOptions {
        SubscriptionOptions {
            qos,
            no_local: false,
            retain_as_published: false,
            retain_handling: 0,
        }
    }

    #[test]
    fn few_then_many_keeps_every_entry() {
        let mut s = SessionSubs::default();
        for i in 0..20 {
            assert!(s
                .insert(format!("t/{i}").into(), opts(QoS::AtMostOnce))
                .is_none());
        }
        assert!(matches!(s, SessionSubs::Many(_)));
        assert_eq!(s.len(), 20);
        assert_eq!(
            s.insert("t/3".into(), opts(QoS::AtLeastOnce)),
            Some(opts(QoS::AtMostOnce))
        );
        assert_eq!(s.get("t/3"), Some(&opts(QoS::AtLeastOnce)));
        assert_eq!(s.keys().count(), 20);
        assert!(s.remove("t/19").is_some());
        assert!(!s.contains_key("t/19"));
        assert_eq!(s.len(), 19);
    }

    #[test]
    fn one_entry_is_exact_sized() {
        let mut s = SessionSubs::default();
        s.insert("a/b".into(), opts(QoS::AtLeastOnce));
        let SessionSubs::Few(v) = &s else {
            panic!("not a vector");
        };
        assert_eq!(v.capacity(), 1);
        assert_eq!(s.remove("a/b"), Some(opts(QoS::AtLeastOnce)));
        assert!(s.is_empty());
        assert!(s.remove("a/b").is_none());
    }
}
