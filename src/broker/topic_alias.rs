//! MQTT 5 topic aliases (spec 3.3.2.3.4), one table per direction and
//! connection, both bounded by the broker's --max-topic-alias.
//!
//! Inbound, the client names the aliases; outbound, the broker assigns them
//! first come, first served, and never replaces one: a topic that finds the
//! table full is sent in full. That keeps the table free of eviction work
//! and bounded by the smaller of the two sides' maximums.

use std::collections::HashMap;

use bytestring::ByteString;

use super::error::ProtocolViolation;
use super::message::detached_str;

/// The client's aliases for topics it publishes to.
#[derive(Debug, Default)]
pub struct InboundAliases {
    map: HashMap<u16, ByteString>,
}

impl InboundAliases {
    /// The topic a PUBLISH stands for. A topic with an alias (re)binds it;
    /// an empty topic uses the bound one. `max` is what the broker
    /// announced.
    pub fn resolve(
        &mut self,
        alias: Option<u16>,
        topic: &ByteString,
        max: u16,
    ) -> Result<ByteString, ProtocolViolation> {
        match alias {
            None if topic.is_empty() => Err(ProtocolViolation::EmptyTopic),
            None => Ok(topic.clone()),
            Some(a) if a == 0 || a > max => Err(ProtocolViolation::TopicAliasInvalid(a)),
            Some(a) if topic.is_empty() => self
                .map
                .get(&a)
                .cloned()
                .ok_or(ProtocolViolation::TopicAliasUnknown(a)),
            Some(a) => {
                // Kept past this packet: own the bytes instead of pinning
                // the read buffer the topic came in.
                self.map.insert(a, detached_str(topic));
                Ok(topic.clone())
            }
        }
    }
}

/// The aliases the broker assigned for topics it sends to the client.
#[derive(Debug, Default)]
pub struct OutboundAliases {
    map: HashMap<ByteString, u16>,
}

/// How to send a topic on one PUBLISH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundTopic {
    /// No alias: the topic in full.
    Full,
    /// A new alias: the topic in full, with the alias to bind.
    Bind(u16),
    /// A bound alias: an empty topic with the alias.
    Alias(u16),
}

impl OutboundAliases {
    /// How to send `topic`; `max` is the smaller of the client's Topic
    /// Alias Maximum and the broker's. A `Bind` takes effect only once
    /// [`bind`](Self::bind) is called (the PUBLISH was really sent).
    pub fn peek(&self, topic: &ByteString, max: u16) -> OutboundTopic {
        if max == 0 {
            return OutboundTopic::Full;
        }
        if let Some(&a) = self.map.get(topic) {
            return OutboundTopic::Alias(a);
        }
        let used = self.map.len();
        if used >= usize::from(max) {
            return OutboundTopic::Full;
        }
        OutboundTopic::Bind(used as u16 + 1)
    }

    /// Binds the alias `peek` offered for `topic`.
    pub fn bind(&mut self, topic: &ByteString) {
        let alias = self.map.len() as u16 + 1;
        self.map.entry(detached_str(topic)).or_insert(alias);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &'static str) -> ByteString {
        ByteString::from_static(s)
    }

    #[test]
    fn inbound_bind_use_and_refuse() {
        let mut a = InboundAliases::default();
        assert_eq!(a.resolve(Some(1), &t("a/b"), 4).unwrap(), "a/b");
        assert_eq!(a.resolve(Some(1), &t(""), 4).unwrap(), "a/b");
        assert_eq!(a.resolve(Some(1), &t("c"), 4).unwrap(), "c");
        assert_eq!(a.resolve(Some(1), &t(""), 4).unwrap(), "c");
        assert!(matches!(
            a.resolve(Some(2), &t(""), 4),
            Err(ProtocolViolation::TopicAliasUnknown(2))
        ));
        assert!(matches!(
            a.resolve(Some(5), &t("x"), 4),
            Err(ProtocolViolation::TopicAliasInvalid(5))
        ));
        assert!(matches!(
            a.resolve(Some(0), &t("x"), 4),
            Err(ProtocolViolation::TopicAliasInvalid(0))
        ));
        assert!(matches!(
            a.resolve(None, &t(""), 4),
            Err(ProtocolViolation::EmptyTopic)
        ));
    }

    #[test]
    fn outbound_assigns_until_full_then_sends_in_full() {
        let mut a = OutboundAliases::default();
        let send = |a: &mut OutboundAliases, topic: &'static str, max: u16| {
            let route = a.peek(&t(topic), max);
            if let OutboundTopic::Bind(_) = route {
                a.bind(&t(topic));
            }
            route
        };
        assert_eq!(send(&mut a, "x", 0), OutboundTopic::Full);
        assert_eq!(send(&mut a, "a", 2), OutboundTopic::Bind(1));
        assert_eq!(send(&mut a, "a", 2), OutboundTopic::Alias(1));
        // Offered but not sent (too large, say): not bound.
        assert_eq!(a.peek(&t("b"), 2), OutboundTopic::Bind(2));
        assert_eq!(send(&mut a, "c", 2), OutboundTopic::Bind(2));
        assert_eq!(send(&mut a, "b", 2), OutboundTopic::Full);
        assert_eq!(send(&mut a, "c", 2), OutboundTopic::Alias(2));
    }
}
