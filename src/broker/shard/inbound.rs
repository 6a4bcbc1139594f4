//! Packets from a connected client.

use bytestring::ByteString;

use super::sharing::share_of;
use super::{PendingSubscribe, Shard};
use crate::auth::SubscribeAccess;
use crate::broker::access;
use crate::broker::error::ProtocolViolation;
use crate::broker::message::{detached_str, Message, Origin, ShardMessage};
use crate::broker::session::{ConnId, OutboundState, SessionId};
use crate::broker::shared;
use crate::broker::subscribers::Subscription;
use crate::protocol::{
    encode, valid_topic_filter, Ack, Disconnect, Packet, Properties, Publish, QoS, SubAck,
    Subscribe, UnsubAck, Unsubscribe,
};

/// SUBACK failure code (0x80 in 3.1.1, "Unspecified error" in 5.0); 5.0
/// clients get 0x8F "Topic Filter invalid" for a bad filter.
const SUBACK_FAILURE: u8 = 0x80;
const SUBACK_INVALID_FILTER_V5: u8 = 0x8F;
/// 5.0 "Quota exceeded": beyond --max-subscriptions.
const SUBACK_QUOTA_EXCEEDED_V5: u8 = 0x97;
/// 5.0 "Not authorized": the ACL refuses (SUBACK, PUBACK, PUBREC).
const NOT_AUTHORIZED: u8 = 0x87;

impl Shard {
    /// Handles one packet from a connected client. On a protocol violation
    /// the connection is already closed (will published) when this returns
    /// the error, which the caller only logs.
    pub fn handle_packet(
        &mut self,
        conn_id: ConnId,
        packet: Packet,
        now: u64,
    ) -> Result<(), ProtocolViolation> {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Ok(());
        };
        if conn.closing {
            return Ok(());
        }
        conn.last_seen = now;
        self.now = now;
        let result = match packet {
            Packet::Publish(p) => self.on_publish(conn_id, p),
            Packet::PubAck(a) => {
                self.on_puback(conn_id, a.packet_id);
                Ok(())
            }
            Packet::PubRec(a) => {
                self.on_pubrec(conn_id, a.packet_id);
                Ok(())
            }
            Packet::PubRel(a) => {
                self.on_pubrel(conn_id, a.packet_id);
                Ok(())
            }
            Packet::PubComp(a) => {
                self.on_pubcomp(conn_id, a.packet_id);
                Ok(())
            }
            Packet::Subscribe(s) => self.on_subscribe(conn_id, s),
            Packet::Unsubscribe(u) => {
                self.on_unsubscribe(conn_id, u);
                Ok(())
            }
            Packet::PingReq => {
                self.write(conn_id, &Packet::PingResp);
                Ok(())
            }
            Packet::Disconnect(d) => self.on_disconnect(conn_id, d),
            Packet::Connect(_) => Err(ProtocolViolation::SecondConnect),
            Packet::ConnAck(_) => Err(ProtocolViolation::UnexpectedPacket("CONNACK")),
            Packet::SubAck(_) => Err(ProtocolViolation::UnexpectedPacket("SUBACK")),
            Packet::UnsubAck(_) => Err(ProtocolViolation::UnexpectedPacket("UNSUBACK")),
            Packet::PingResp => Err(ProtocolViolation::UnexpectedPacket("PINGRESP")),
            Packet::Auth(_) => Err(ProtocolViolation::UnexpectedPacket("AUTH")),
        };
        if let Err(violation) = &result {
            tracing::debug!(shard = self.id, conn = conn_id, %violation, "closing connection");
            self.disconnect_v5(conn_id, violation.reason_code(), &violation.to_string());
            self.close_conn(conn_id, true);
        }
        result
    }

    /// A client's DISCONNECT: a normal close (the will is dropped, unless
    /// 5.0 reason 0x04 "Disconnect with Will Message"); a 5.0 client may
    /// change its Session Expiry Interval here, but not from 0
    /// [MQTT-3.14.2-2].
    fn on_disconnect(&mut self, conn_id: ConnId, d: Disconnect) -> Result<(), ProtocolViolation> {
        let expiry = d
            .properties
            .as_ref()
            .and_then(|p| p.session_expiry_interval);
        if let (Some(secs), Some(s)) = (expiry, self.session_of(conn_id)) {
            if s.expiry_secs == 0 && secs != 0 {
                return Err(ProtocolViolation::SessionExpiryAfterZero);
            }
            s.set_expiry(secs);
        }
        let keep_will = d.reason == 0x04;
        if let Some(c) = self.conns.get_mut(&conn_id) {
            if !keep_will {
                c.will = None;
            }
        }
        self.close_conn(conn_id, keep_will);
        Ok(())
    }

    /// Tells a 5.0 client why the broker closes its connection (3.1.1 has
    /// no server DISCONNECT: the socket just closes). Also called by the
    /// server for packets the codec refused (too large, malformed).
    pub fn disconnect_v5(&mut self, conn_id: ConnId, reason: u8, why: &str) {
        let Some(v5) = self.conns.get(&conn_id).and_then(|c| c.v5.as_deref()) else {
            return;
        };
        // The Reason String only if the packet stays within the client's
        // Maximum Packet Size [MQTT-3.1.2-24] (header, reason, properties).
        let fits = why.len() + 16 <= v5.max_packet_size as usize;
        let properties = fits.then(|| {
            Box::new(Properties {
                reason_string: Some(ByteString::from(why)),
                ..Default::default()
            })
        });
        self.write(
            conn_id,
            &Packet::Disconnect(Disconnect { reason, properties }),
        );
    }

    /// Encodes `packet` into the connection's outbox.
    pub(super) fn write(&mut self, conn_id: ConnId, packet: &Packet) {
        if let Some(c) = self.conns.get_mut(&conn_id) {
            if !c.closing {
                encode(packet, c.protocol, &mut c.outbox);
                self.mark_dirty(conn_id);
            }
        }
    }

    fn ack(packet_id: u16) -> Ack {
        Ack {
            packet_id,
            reason: 0,
            properties: None,
        }
    }

    fn on_publish(&mut self, conn_id: ConnId, mut p: Publish) -> Result<(), ProtocolViolation> {
        let max_alias = self.limits.max_topic_alias;
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return Ok(());
        };
        let alias = p.properties.as_ref().and_then(|props| props.topic_alias);
        p.topic = match conn.v5.as_deref_mut() {
            Some(v5) => v5.aliases_in.resolve(alias, &p.topic, max_alias)?,
            None if p.topic.is_empty() => return Err(ProtocolViolation::EmptyTopic),
            None => p.topic,
        };
        let (sid, v5) = (conn.session, conn.protocol.is_v5());
        if !self.limits.topic_fits(&p.topic) {
            return Err(ProtocolViolation::TopicTooLarge);
        }
        if !access::may_publish(self.acl_of(sid), &p.topic) {
            self.refuse_publish(conn_id, sid, v5, &p);
            return Ok(());
        }
        let mut expires_at = None;
        if let Some(props) = &mut p.properties {
            // Only the broker sets a Subscription Identifier on a PUBLISH
            // [MQTT-3.3.4-6]. A topic alias belongs to one connection: it is
            // resolved above and never forwarded.
            if !props.subscription_identifiers.is_empty() {
                return Err(ProtocolViolation::SubscriptionIdentifierFromClient);
            }
            props.topic_alias = None;
            expires_at = props
                .message_expiry_interval
                .map(|secs| self.now + u64::from(secs) * 1000);
        }
        self.stats.publishes_received += 1;
        let (qos, packet_id) = (p.qos, p.packet_id);
        let msg = Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: p.properties,
            expires_at,
            origin: Origin {
                shard: self.id as u32,
                session: sid,
            },
        };
        match qos {
            QoS::AtMostOnce => self.publish(msg),
            QoS::AtLeastOnce => {
                self.publish(msg);
                self.write(conn_id, &Packet::PubAck(Self::ack(packet_id)));
            }
            QoS::ExactlyOnce => {
                // Exactly once [MQTT-4.3.3-2]: a PUBLISH whose id is still
                // awaiting PUBREL is a retransmission, acknowledged again but
                // not delivered again.
                let receive_maximum = usize::from(self.limits.receive_maximum);
                let Some(session) = self.sessions.get_mut(&sid) else {
                    return Ok(());
                };
                let ids = session.inbound_qos2.get_or_insert_default();
                if !ids.contains(&packet_id) && ids.len() >= receive_maximum {
                    return Err(ProtocolViolation::ReceiveMaximumExceeded);
                }
                let first = ids.insert(packet_id);
                if first {
                    self.publish(msg);
                }
                self.write(conn_id, &Packet::PubRec(Self::ack(packet_id)));
            }
        }
        Ok(())
    }

    /// A PUBLISH the ACL does not allow: not routed. 5.0 clients get
    /// "not authorized" (0x87) in the PUBACK/PUBREC; 3.1.1 has no such
    /// code, so the message is acknowledged and dropped (as mosquitto
    /// does; a QoS 2 id is kept so its PUBREL completes normally).
    fn refuse_publish(&mut self, conn_id: ConnId, sid: SessionId, v5: bool, p: &Publish) {
        tracing::debug!(shard = self.id, conn = conn_id, topic = %p.topic, "PUBLISH denied by the ACL");
        self.stats.publishes_denied += 1;
        let ack = Ack {
            reason: if v5 { NOT_AUTHORIZED } else { 0 },
            ..Self::ack(p.packet_id)
        };
        match p.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => self.write(conn_id, &Packet::PubAck(ack)),
            QoS::ExactlyOnce => {
                if !v5 {
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.inbound_qos2.get_or_insert_default().insert(p.packet_id);
                    }
                }
                self.write(conn_id, &Packet::PubRec(ack));
            }
        }
    }

    fn session_of(&mut self, conn_id: ConnId) -> Option<&mut crate::broker::session::Session> {
        let sid = self.conns.get(&conn_id)?.session;
        self.sessions.get_mut(&sid)
    }

    fn on_pubrel(&mut self, conn_id: ConnId, packet_id: u16) {
        if let Some(s) = self.session_of(conn_id) {
            if let Some(ids) = &mut s.inbound_qos2 {
                ids.remove(&packet_id);
            }
        }
        self.write(conn_id, &Packet::PubComp(Self::ack(packet_id)));
    }

    fn on_puback(&mut self, conn_id: ConnId, packet_id: u16) {
        let Some(s) = self.session_of(conn_id) else {
            return;
        };
        if let Some(pos) = s.inflight_position(packet_id) {
            if s.inflight[pos].qos == QoS::AtLeastOnce {
                s.inflight.remove(pos);
                let sid = self.conns[&conn_id].session;
                self.pump_queue(sid);
            }
        }
    }

    fn on_pubrec(&mut self, conn_id: ConnId, packet_id: u16) {
        let Some(s) = self.session_of(conn_id) else {
            return;
        };
        if let Some(pos) = s.inflight_position(packet_id) {
            if s.inflight[pos].qos == QoS::ExactlyOnce {
                s.inflight[pos].state = OutboundState::AwaitingComp;
            }
        }
        // PUBREL is sent even for an unknown id, so the client can finish.
        self.write(conn_id, &Packet::PubRel(Self::ack(packet_id)));
    }

    fn on_pubcomp(&mut self, conn_id: ConnId, packet_id: u16) {
        let Some(s) = self.session_of(conn_id) else {
            return;
        };
        if let Some(pos) = s.inflight_position(packet_id) {
            if s.inflight[pos].state == OutboundState::AwaitingComp {
                s.inflight.remove(pos);
                let sid = self.conns[&conn_id].session;
                self.pump_queue(sid);
            }
        }
    }

    fn on_subscribe(&mut self, conn_id: ConnId, sub: Subscribe) -> Result<(), ProtocolViolation> {
        let Some(conn) = self.conns.get(&conn_id) else {
            return Ok(());
        };
        let (sid, v5) = (conn.session, conn.protocol.is_v5());
        // Refused whole, before any filter takes effect [MQTT-3.8.3-4].
        let no_local_shared = sub
            .filters
            .iter()
            .any(|r| r.options.no_local && shared::parse(&r.filter).is_some());
        if no_local_shared {
            return Err(ProtocolViolation::NoLocalOnSharedSubscription);
        }
        // 5.0: one Subscription Identifier for every filter of the packet.
        let sub_id = sub
            .properties
            .as_ref()
            .and_then(|p| p.subscription_identifiers.first().copied())
            .unwrap_or(0);
        let mut codes = Vec::with_capacity(sub.filters.len());
        let mut retained = Vec::new();
        let mut new_interest = false;
        for req in sub.filters {
            if !valid_topic_filter(&req.filter) || !self.limits.topic_fits(&req.filter) {
                codes.push(if v5 {
                    SUBACK_INVALID_FILTER_V5
                } else {
                    SUBACK_FAILURE
                });
                continue;
            }
            let at_quota = self.sessions.get(&sid).is_some_and(|s| {
                s.subscriptions.len() >= self.limits.max_subscriptions
                    && !s.subscriptions.contains_key(&req.filter)
            });
            if at_quota {
                self.stats.subscriptions_refused += 1;
                codes.push(if v5 {
                    SUBACK_QUOTA_EXCEEDED_V5
                } else {
                    SUBACK_FAILURE
                });
                continue;
            }
            let share = match shared::parse(&req.filter) {
                None => None,
                Some(Some(share)) => Some(share),
                Some(None) => {
                    codes.push(if v5 {
                        SUBACK_INVALID_FILTER_V5
                    } else {
                        SUBACK_FAILURE
                    });
                    continue;
                }
            };
            // A shared subscription is judged by its filter.
            let inner = share.as_ref().map_or(&req.filter, |share| &share.filter);
            match self.subscribe_access(sid, inner) {
                SubscribeAccess::Denied => {
                    tracing::debug!(shard = self.id, conn = conn_id, filter = %req.filter, "SUBSCRIBE denied by the ACL");
                    self.stats.subscriptions_denied += 1;
                    codes.push(if v5 { NOT_AUTHORIZED } else { SUBACK_FAILURE });
                    continue;
                }
                SubscribeAccess::GrantedChecked => {
                    if let Some(acl) = self.acls.get_mut(&sid) {
                        acl.check_deliveries = true;
                    }
                }
                SubscribeAccess::Granted => {}
            }
            let subscription = Subscription {
                options: req.options,
                id: sub_id,
            };
            let existed = match &share {
                Some(share) => {
                    let existed = self.add_shared(sid, share, subscription, &mut new_interest);
                    if let Some(s) = self.sessions.get_mut(&sid) {
                        s.subscriptions
                            .insert(detached_str(&req.filter), subscription.options);
                    }
                    existed
                }
                None => self.add_subscription(sid, &req.filter, subscription, &mut new_interest),
            };
            codes.push(req.options.qos as u8);
            // Retained messages go to a new subscription, and again to a
            // replaced one in 3.1.1 [MQTT-3.8.4-3]; 5.0 retain handling 1
            // means "only if new", 2 "never"; never to a shared one.
            let send_retained = share.is_none()
                && match req.options.retain_handling {
                    0 => true,
                    1 => !existed,
                    _ => false,
                };
            if send_retained {
                retained.push((req.filter, subscription));
            }
        }
        let suback = Packet::SubAck(SubAck {
            packet_id: sub.packet_id,
            codes,
            properties: None,
        });
        // SUBACK only once every shard has applied our interest changes, so
        // a message published anywhere after the SUBACK is routed here.
        if self.shards > 1 && (new_interest || !self.pending_subscribes.is_empty()) {
            let token = self.next_token;
            self.next_token += 1;
            self.broadcast(ShardMessage::Sync(token));
            self.pending_subscribes.insert(
                token,
                PendingSubscribe {
                    conn: conn_id,
                    session: sid,
                    suback,
                    retained,
                },
            );
        } else {
            self.finish_subscribe(conn_id, sid, &suback, retained);
        }
        Ok(())
    }

    /// What session `sid`'s ACL says of subscribing to `filter`.
    fn subscribe_access(&self, sid: SessionId, filter: &str) -> SubscribeAccess {
        match self.acl_of(sid) {
            Some(acl) => acl.rules.may_subscribe(filter),
            None => SubscribeAccess::Granted,
        }
    }

    /// Adds or replaces one subscription; returns whether it existed.
    fn add_subscription(
        &mut self,
        sid: u64,
        filter: &ByteString,
        subscription: Subscription,
        new_interest: &mut bool,
    ) -> bool {
        // The session keeps the filter for its whole life: own its bytes
        // rather than pin the read buffer it was decoded from.
        let filter = &detached_str(filter);
        let entry = self.subs.entry(filter);
        let was_empty = entry.is_empty();
        let existed = entry.upsert(sid, subscription);
        if was_empty {
            *new_interest = true;
            self.broadcast(ShardMessage::InterestAdd(filter.clone()));
        }
        if let Some(s) = self.sessions.get_mut(&sid) {
            s.subscriptions.insert(filter.clone(), subscription.options);
        }
        existed
    }

    /// Removes one subscription from the trie (not from the session).
    pub(super) fn remove_subscription(&mut self, sid: u64, filter: &str) -> bool {
        if let Some(share) = share_of(filter) {
            return self.remove_shared(sid, &share);
        }
        let mut found = false;
        let emptied = self.subs.remove_if(filter, |subs| {
            found = subs.remove(sid);
            subs.is_empty()
        });
        if emptied {
            self.broadcast(ShardMessage::InterestRemove(ByteString::from(filter)));
        }
        found
    }

    fn on_unsubscribe(&mut self, conn_id: ConnId, unsub: Unsubscribe) {
        let Some(conn) = self.conns.get(&conn_id) else {
            return;
        };
        let (sid, v5) = (conn.session, conn.protocol.is_v5());
        let mut codes = Vec::new();
        for filter in &unsub.filters {
            let in_session = self
                .sessions
                .get_mut(&sid)
                .is_some_and(|s| s.subscriptions.remove(filter).is_some());
            let found = in_session && self.remove_subscription(sid, filter);
            if v5 {
                // 0x11: "No subscription existed".
                codes.push(if found { 0x00 } else { 0x11 });
            }
        }
        self.write(
            conn_id,
            &Packet::UnsubAck(UnsubAck {
                packet_id: unsub.packet_id,
                codes,
                properties: None,
            }),
        );
    }
}
