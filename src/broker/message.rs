//! What travels between shards, and the application message itself.

use bytes::Bytes;
use bytestring::ByteString;

use super::shared::{ShareName, SharedPick};
use crate::protocol::{Props, QoS};

/// An application message on its way to subscribers. Cloning it clones two
/// reference-counted handles (topic and payload), never the bytes: this is
/// what crosses shards, once per destination shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub topic: ByteString,
    pub payload: Bytes,
    /// The QoS it was published with; each subscriber gets the minimum of
    /// this and its subscription's QoS.
    pub qos: QoS,
    /// The publisher's retain flag.
    pub retain: bool,
    /// 5.0 properties to forward (none for 3.1.1 publishers). The
    /// Message Expiry Interval in here is the publisher's; each delivery
    /// sends what remains of it (see `expires_at`).
    pub properties: Props,
    /// When the message expires, on the broker's clock (milliseconds, the
    /// same on every shard): from the publisher's Message Expiry Interval.
    pub expires_at: Option<u64>,
    /// Who published it, for No Local subscriptions.
    pub origin: Origin,
}

/// The session that published a message: its shard and its id there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub shard: u32,
    pub session: u64,
}

impl Origin {
    /// A message no client published (a will, a test).
    pub const NONE: Origin = Origin {
        shard: u32::MAX,
        session: u64::MAX,
    };
}

impl Message {
    /// What holding the message costs, as counted against the queue and
    /// retained-store bounds: topic and payload bytes.
    pub fn size(&self) -> usize {
        self.topic.len() + self.payload.len()
    }

    /// Whether the message's expiry interval has passed at `now`.
    pub fn expired(&self, now: u64) -> bool {
        self.expires_at.is_some_and(|at| at <= now)
    }

    /// A copy that owns its bytes, for what is kept long (the retained
    /// store): a slice of a read buffer would pin the whole buffer.
    pub fn detached(&self) -> Message {
        Message {
            topic: detached_str(&self.topic),
            payload: Bytes::copy_from_slice(&self.payload),
            qos: self.qos,
            retain: self.retain,
            properties: self.properties.clone(),
            expires_at: self.expires_at,
            origin: self.origin,
        }
    }
}

/// A copy of a decoded string that owns its bytes (see [`Message::detached`]).
pub fn detached_str(s: &ByteString) -> ByteString {
    ByteString::from(&**s)
}

/// The one enum of messages shards exchange, in batches, through the mesh.
/// Each pair of shards has its own FIFO channel, so what one shard sends to
/// another arrives in the order it was sent: the SUBACK barrier and the
/// per-publisher ordering both rest on that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShardMessage {
    /// Deliver to the local subscribers that match. A retained publish is
    /// sent to every shard (each keeps a replica of the retained store) with
    /// `retain_stamp` ordering concurrent writes to one topic.
    Publish {
        msg: Message,
        retain_stamp: u64,
        /// Shared subscription groups this shard is to serve the message
        /// to (one member each); empty for most messages.
        shared: Vec<SharedPick>,
    },
    /// The sender gained its first local member of a shared group.
    SharedAdd(ShareName),
    /// The sender lost its last local member of a shared group.
    SharedRemove(ShareName),
    /// The sender gained its first local subscriber of this filter.
    InterestAdd(ByteString),
    /// The sender lost its last local subscriber of this filter.
    InterestRemove(ByteString),
    /// Barrier: answer with `SyncAck` once everything sent before it has
    /// been applied (which FIFO order makes immediate).
    Sync(u64),
    SyncAck(u64),
}

impl ShardMessage {
    /// What the message counts for in the mesh backlog bound: one, plus
    /// one per shared group pick it carries.
    pub fn weight(&self) -> usize {
        match self {
            ShardMessage::Publish { shared, .. } => 1 + shared.len(),
            _ => 1,
        }
    }
}
