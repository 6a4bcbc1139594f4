//! A client's session: what outlives its network connection.
//!
//! Holds the subscriptions, the outbound in-flight window and queue, and the
//! inbound QoS 2 packet ids that guard exactly-once delivery. It knows
//! nothing of sockets or encoding: the shard decides what goes on the wire.

use std::collections::{HashSet, VecDeque};
use std::rc::Rc;

use bytestring::ByteString;

use super::message::Message;
use super::session_subs::SessionSubs;
use super::shared::SharedPick;
use crate::protocol::{ProtocolVersion, QoS, Will};

/// The Subscription Identifiers of the subscriptions a message matched
/// (5.0); empty (no allocation) for most deliveries.
pub type SubIds = Box<[u32]>;

/// Session Expiry Interval meaning "never expires" (and the value for a
/// 3.1.1 session with clean session 0).
pub const NEVER_EXPIRES: u32 = u32::MAX;

/// Index of a session within its shard.
pub type SessionId = u64;
/// Index of a connection within its shard (never reused).
pub type ConnId = u64;

/// Where an outbound QoS 1/2 message stands in its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutboundState {
    /// QoS 1 sent, waiting for PUBACK; or QoS 2 sent, waiting for PUBREC.
    AwaitingAck,
    /// QoS 2: PUBREC received, PUBREL sent, waiting for PUBCOMP.
    AwaitingComp,
}

#[derive(Debug, Clone)]
pub struct Inflight {
    pub packet_id: u16,
    pub msg: Rc<Message>,
    pub qos: QoS,
    pub retain: bool,
    pub sub_ids: SubIds,
    /// The shared group it was given to this session for, if any: it goes
    /// to another member if this one leaves before acknowledging it.
    pub via: Option<Box<SharedPick>>,
    pub state: OutboundState,
}

/// A message waiting for room in the in-flight window (or for the client to
/// come back).
#[derive(Debug, Clone)]
pub struct Queued {
    pub msg: Rc<Message>,
    pub qos: QoS,
    pub retain: bool,
    pub sub_ids: SubIds,
    pub via: Option<Box<SharedPick>>,
}

#[derive(Debug)]
pub struct Session {
    pub client_id: ByteString,
    /// Kept after the connection ends (3.1.1 clean session = 0, 5.0 a
    /// non-zero Session Expiry Interval).
    pub persistent: bool,
    /// Seconds the session outlives its connection (5.0; `NEVER_EXPIRES`
    /// for a persistent 3.1.1 session, 0 for a clean one).
    pub expiry_secs: u32,
    /// While disconnected: when the session expires (broker ms), if ever.
    pub expires_at: Option<u64>,
    /// A will waiting out its Will Delay Interval, and when it is due.
    pub delayed_will: Option<(Box<Will>, u64)>,
    pub protocol: ProtocolVersion,
    pub conn: Option<ConnId>,
    pub subscriptions: SessionSubs,
    pub inflight: VecDeque<Inflight>,
    pub queue: VecDeque<Queued>,
    /// Topic and payload bytes of the queued messages.
    pub queued_bytes: usize,
    /// Inbound QoS 2 packet ids received but not yet released by PUBREL.
    /// Boxed and created on first use: most sessions never receive QoS 2.
    pub inbound_qos2: Option<Box<HashSet<u16>>>,
    /// QoS 1/2 messages dropped since the queue last overflowed (for the
    /// warning when it has room again).
    pub dropped: u64,
    next_packet_id: u16,
}

impl Session {
    pub fn new(client_id: ByteString, persistent: bool, protocol: ProtocolVersion) -> Self {
        Session {
            client_id,
            persistent,
            expiry_secs: if persistent { NEVER_EXPIRES } else { 0 },
            expires_at: None,
            delayed_will: None,
            protocol,
            conn: None,
            subscriptions: SessionSubs::default(),
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            queued_bytes: 0,
            inbound_qos2: None,
            dropped: 0,
            next_packet_id: 0,
        }
    }

    /// A packet id not used by any in-flight message (1..=65535, wrapping).
    /// The caller keeps the window far below 65535, so this terminates fast.
    pub fn allocate_packet_id(&mut self) -> u16 {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            if self.next_packet_id == 0 {
                self.next_packet_id = 1;
            }
            let id = self.next_packet_id;
            if !self.inflight.iter().any(|f| f.packet_id == id) {
                return id;
            }
        }
    }

    /// Whether a message of `size` bytes may join the queue under the
    /// bounds: an empty queue takes one message of any size, so a message
    /// larger than `max_bytes` is delayed rather than always dropped.
    pub fn queue_has_room(&self, size: usize, max_messages: usize, max_bytes: usize) -> bool {
        self.queue.len() < max_messages
            && (self.queue.is_empty() || self.queued_bytes + size <= max_bytes)
    }

    pub fn enqueue(&mut self, q: Queued) {
        self.queued_bytes += q.msg.size();
        self.queue.push_back(q);
    }

    pub fn dequeue(&mut self) -> Option<Queued> {
        let q = self.queue.pop_front()?;
        self.queued_bytes -= q.msg.size();
        Some(q)
    }

    /// Sets how long the session outlives its connection (5.0).
    pub fn set_expiry(&mut self, secs: u32) {
        self.expiry_secs = secs;
        self.persistent = secs > 0;
    }

    /// Position of the in-flight entry for `packet_id` (usually the front).
    pub fn inflight_position(&self, packet_id: u16) -> Option<usize> {
        self.inflight.iter().position(|f| f.packet_id == packet_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn packet_ids_skip_zero_and_in_use() {
        let mut s = Session::new(ByteString::from_static("c"), true, ProtocolVersion::V311);
        let msg = Rc::new(Message {
            topic: ByteString::from_static("t"),
            payload: Bytes::new(),
            qos: QoS::AtLeastOnce,
            retain: false,
            properties: None,
            expires_at: None,
            origin: crate::broker::message::Origin::NONE,
        });
        s.next_packet_id = 65534;
        assert_eq!(s.allocate_packet_id(), 65535);
        s.inflight.push_back(Inflight {
            packet_id: 1,
            msg,
            qos: QoS::AtLeastOnce,
            retain: false,
            sub_ids: SubIds::default(),
            via: None,
            state: OutboundState::AwaitingAck,
        });
        assert_eq!(s.allocate_packet_id(), 2);
        assert_eq!(s.inflight_position(1), Some(0));
    }
}
