//! What an MQTT 5 client asked for in its CONNECT, and how every PUBLISH to
//! it is shaped by that: its receive maximum, its maximum packet size, topic
//! aliases, the remaining message expiry and subscription identifiers.
//!
//! Request Problem Information needs nothing here: the broker puts Reason
//! Strings only on CONNACK and DISCONNECT, where the spec allows them
//! whatever the client asked [MQTT-3.1.2-29].

use super::{Conn, Shard};
use crate::broker::message::Message;
use crate::broker::session::NEVER_EXPIRES;
use crate::broker::topic_alias::{InboundAliases, OutboundAliases, OutboundTopic};
use crate::protocol::{encode_publish, Properties, ProtocolVersion, QoS};

/// A 5.0 connection's settings and alias tables (boxed in `Conn`: 3.1.1
/// connections have none).
#[derive(Debug, Default)]
pub(crate) struct ConnV5 {
    /// Unacknowledged QoS 1/2 PUBLISHes the client accepts at once.
    pub receive_maximum: u16,
    /// Largest packet the client accepts (u32::MAX: no limit given).
    pub max_packet_size: u32,
    /// Aliases the broker may assign to this client: the smaller of its
    /// Topic Alias Maximum and ours.
    pub alias_max_out: u16,
    pub aliases_in: InboundAliases,
    pub aliases_out: OutboundAliases,
}

impl ConnV5 {
    /// From the CONNECT's properties, within the broker's limits.
    pub fn from_connect(props: Option<&Properties>, our_alias_max: u16) -> ConnV5 {
        let p = props.cloned().unwrap_or_default();
        ConnV5 {
            receive_maximum: p.receive_maximum.unwrap_or(u16::MAX),
            max_packet_size: p.maximum_packet_size.unwrap_or(u32::MAX),
            alias_max_out: p.topic_alias_maximum.unwrap_or(0).min(our_alias_max),
            ..Default::default()
        }
    }
}

/// One PUBLISH to one client.
pub(super) struct Outgoing<'a> {
    pub msg: &'a Message,
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    pub packet_id: u16,
    pub sub_ids: &'a [u32],
}

/// Why a PUBLISH was not written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Unsent {
    /// Larger than the client's Maximum Packet Size: discarded, and
    /// treated as delivered [MQTT-3.1.2-25].
    TooLarge,
}

/// Encodes `out` into `conn`'s outbox: as it came for a 3.1.1 client; for
/// a 5.0 client with the remaining expiry, its subscription identifiers
/// and a topic alias where the client allows them, and only if it fits the
/// client's Maximum Packet Size.
#[inline]
pub(super) fn encode_delivery(conn: &mut Conn, now: u64, out: &Outgoing) -> Result<(), Unsent> {
    let msg = out.msg;
    let Some(v5) = conn.v5.as_deref_mut() else {
        encode_publish(
            &mut conn.outbox,
            conn.protocol,
            out.dup,
            out.qos,
            out.retain,
            &msg.topic,
            out.packet_id,
            &msg.payload,
            None,
        );
        return Ok(());
    };
    let route = v5.aliases_out.peek(&msg.topic, v5.alias_max_out);
    let adjusted = needs_own_properties(msg, out.sub_ids, route).then(|| {
        let mut p = msg.properties.as_deref().cloned().unwrap_or_default();
        if let Some(at) = msg.expires_at {
            // What is left, rounded up: a message never reaches a client
            // with 0 (which would read as "no expiry" to some), nor with
            // more than the publisher gave it.
            let left = at.saturating_sub(now).div_ceil(1000).max(1);
            let given = p.message_expiry_interval.map_or(u64::MAX, u64::from);
            p.message_expiry_interval = Some(left.min(given) as u32);
        }
        p.subscription_identifiers = out.sub_ids.to_vec();
        p.topic_alias = match route {
            OutboundTopic::Full => None,
            OutboundTopic::Bind(a) | OutboundTopic::Alias(a) => Some(a),
        };
        p
    });
    let props = adjusted.as_ref().or(msg.properties.as_deref());
    let topic = match route {
        OutboundTopic::Alias(_) => "",
        _ => &msg.topic,
    };
    let start = conn.outbox.len();
    encode_publish(
        &mut conn.outbox,
        ProtocolVersion::V5,
        out.dup,
        out.qos,
        out.retain,
        topic,
        out.packet_id,
        &msg.payload,
        props,
    );
    if conn.outbox.len() - start > v5.max_packet_size as usize {
        conn.outbox.truncate(start);
        return Err(Unsent::TooLarge);
    }
    if let OutboundTopic::Bind(_) = route {
        v5.aliases_out.bind(&msg.topic);
    }
    Ok(())
}

fn needs_own_properties(msg: &Message, sub_ids: &[u32], route: OutboundTopic) -> bool {
    msg.expires_at.is_some() || !sub_ids.is_empty() || route != OutboundTopic::Full
}

impl Shard {
    /// The most QoS 1/2 messages in flight to `conn` at once: ours, or
    /// fewer if a 5.0 client asked for fewer (its Receive Maximum).
    pub(super) fn inflight_cap(&self, conn: Option<&Conn>) -> usize {
        inflight_cap(self.limits.max_inflight, conn)
    }

    /// The CONNACK properties for a 5.0 client: our limits, the id we
    /// chose for an empty one, and the keepalive we impose if we cap it.
    pub(super) fn connack_properties(
        &self,
        assigned_id: Option<&bytestring::ByteString>,
        server_keep_alive: Option<u16>,
    ) -> Box<Properties> {
        Box::new(Properties {
            assigned_client_identifier: assigned_id.cloned(),
            receive_maximum: Some(self.limits.receive_maximum),
            maximum_packet_size: Some(self.limits.max_packet_size.min(u32::MAX as usize) as u32),
            topic_alias_maximum: Some(self.limits.max_topic_alias),
            server_keep_alive,
            shared_subscription_available: Some(1),
            ..Default::default()
        })
    }
}

/// `max_inflight`, or fewer if `conn` is a 5.0 client that asked for
/// fewer (its Receive Maximum).
pub(super) fn inflight_cap(max_inflight: usize, conn: Option<&Conn>) -> usize {
    match conn.and_then(|c| c.v5.as_deref()) {
        Some(v) => max_inflight.min(usize::from(v.receive_maximum)),
        None => max_inflight,
    }
}

/// The keepalive a client gets: its own, unless above `max` (or 0, "none",
/// while we impose one), then `max`. Returns (seconds, whether it changed).
pub(super) fn granted_keepalive(asked: u16, max: u16) -> (u16, bool) {
    if max == u16::MAX {
        (asked, false)
    } else if asked == 0 || asked > max {
        (max, true)
    } else {
        (asked, false)
    }
}

/// How long a new 5.0 session outlives its connection, from the CONNECT's
/// Session Expiry Interval (absent: 0, the session ends with it).
pub(super) fn session_expiry_of(props: Option<&Properties>) -> u32 {
    props.and_then(|p| p.session_expiry_interval).unwrap_or(0)
}

/// The broker's clock `secs` from now, or never.
pub(super) fn expiry_deadline(now: u64, secs: u32) -> Option<u64> {
    (secs != NEVER_EXPIRES).then(|| now + u64::from(secs) * 1000)
}
