//! The bounds on what one client can make the broker hold or do, from the
//! configuration; each has a test in `tests/hostile.rs`.

use super::retain::RetainLimits;

/// Per-client and per-shard bounds. The defaults are chosen so that ten
/// clients that never read cannot make the broker hold more than about
/// 100 MB between them (see the README's "Limits" section).
#[derive(Debug, Clone)]
pub struct BrokerLimits {
    /// Outbound QoS 1/2 messages awaiting acknowledgement, per session.
    pub max_inflight: usize,
    /// Messages queued behind the in-flight window (or while offline).
    pub max_queued: usize,
    /// Topic and payload bytes queued per session. A queued message is a
    /// shared reference, counted in full by every session that queues it.
    pub max_queued_bytes: usize,
    /// Encoded bytes waiting to be written to one connection: beyond it
    /// QoS 0 messages are dropped, QoS 1/2 messages stay queued, and the
    /// server stops reading from the client (its replies pile up here too).
    pub max_outbox_bytes: usize,
    /// Levels of a topic name or filter.
    pub max_topic_levels: usize,
    /// Bytes of a topic name or filter.
    pub max_topic_length: usize,
    /// Subscriptions one session may hold.
    pub max_subscriptions: usize,
    /// Bytes of a client identifier.
    pub max_client_id_len: usize,
    /// Inbound QoS 2 messages awaiting PUBREL per session.
    pub receive_maximum: u16,
    /// The retained store's bounds (each shard's replica).
    pub retained: RetainLimits,
    /// Largest packet accepted (announced to 5.0 clients as Maximum Packet
    /// Size; the reader enforces it).
    pub max_packet_size: usize,
    /// Topic aliases per connection, each way (announced to 5.0 clients as
    /// Topic Alias Maximum; the broker also assigns at most this many to a
    /// client, whatever larger number it allows).
    pub max_topic_alias: u16,
    /// Longest keepalive granted, in seconds; a 5.0 client asking for more
    /// (or for none) gets Server Keep Alive with this value.
    pub max_keepalive: u16,
}

/// 2 MiB: a 1 MiB payload with room for its topic, header and properties
/// (EMQX and HiveMQ allow about 1 MiB and 256 MiB; mosquitto 256 MiB).
pub const DEFAULT_MAX_PACKET_SIZE: usize = 2 << 20;

impl Default for BrokerLimits {
    fn default() -> Self {
        BrokerLimits {
            max_inflight: 64,
            max_queued: 10_000,
            max_queued_bytes: 2 << 20,
            max_outbox_bytes: 4 << 20,
            max_topic_levels: 128,
            max_topic_length: 1024,
            max_subscriptions: 1000,
            max_client_id_len: 256,
            receive_maximum: 1024,
            retained: RetainLimits {
                max_messages: 100_000,
                max_bytes: 256 << 20,
            },
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            max_topic_alias: 64,
            max_keepalive: u16::MAX,
        }
    }
}

impl BrokerLimits {
    /// Whether a topic name or filter is within the length and depth
    /// bounds (its syntax is checked elsewhere).
    pub fn topic_fits(&self, topic: &str) -> bool {
        topic.len() <= self.max_topic_length
            && memchr::memchr_iter(b'/', topic.as_bytes()).count() < self.max_topic_levels
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_bounds() {
        let limits = BrokerLimits {
            max_topic_levels: 3,
            max_topic_length: 8,
            ..Default::default()
        };
        assert!(limits.topic_fits("a/b/c"));
        assert!(!limits.topic_fits("a/b/c/d"));
        assert!(!limits.topic_fits("///"));
        assert!(limits.topic_fits("//"));
        assert!(!limits.topic_fits("aaaaaaaaa"));
    }
}
