//! Routing a message to shards and delivering it to local sessions.

use std::ops::ControlFlow;
use std::rc::Rc;

use bytestring::ByteString;

use super::Shard;
use crate::broker::message::{Message, ShardMessage};
use crate::broker::retain::RetainOutcome;
use crate::broker::session::{ConnId, Inflight, OutboundState, Queued, SessionId};
use crate::protocol::{encode, encode_publish, Ack, Packet, QoS, SubscriptionOptions, Will};

impl Shard {
    /// Routes a message published by a local client: to the other shards
    /// that want it (every shard, for a retained one), then to local
    /// subscribers.
    pub(super) fn publish(&mut self, mut msg: Message) {
        let mut stamp = 0;
        if msg.retain {
            // One copy that owns its bytes (a slice would pin the read
            // buffer) serves every shard's replica and the subscribers.
            msg = msg.detached();
            stamp = self.retain.next_stamp(self.id);
            self.apply_retained(&msg, stamp);
            for dst in 0..self.shards {
                if dst != self.id {
                    self.send_to_shard(
                        dst,
                        ShardMessage::Publish {
                            msg: msg.clone(),
                            retain_stamp: stamp,
                        },
                    );
                }
            }
        } else if self.shards > 1 {
            let targets = self.interest.shards_for(&msg.topic);
            for dst in targets.iter() {
                if dst != self.id && dst < self.shards {
                    self.send_to_shard(
                        dst,
                        ShardMessage::Publish {
                            msg: msg.clone(),
                            retain_stamp: stamp,
                        },
                    );
                }
            }
        }
        self.deliver_local(msg);
    }

    /// Applies a retained publish to this shard's replica; a new topic
    /// beyond the store's bounds is not kept (counted, warned at most once
    /// a second).
    pub(super) fn apply_retained(&mut self, msg: &Message, stamp: u64) {
        if self.retain.apply_at(msg, stamp, self.now) == RetainOutcome::Refused {
            self.stats.retained_refused += 1;
            if self.now.saturating_sub(self.retained_warned_at) >= 1000
                || self.stats.retained_refused == 1
            {
                self.retained_warned_at = self.now;
                tracing::warn!(
                    shard = self.id,
                    topic = %msg.topic,
                    refused = self.stats.retained_refused,
                    "retained store full (--max-retained-messages / --max-retained-bytes): not storing retained messages for new topics"
                );
            }
        }
    }

    pub(super) fn publish_will(&mut self, will: Will) {
        tracing::debug!(shard = self.id, topic = %will.topic, "publishing will");
        self.publish(Message {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            properties: None,
        });
    }

    /// Delivers to every local session with a matching subscription, once
    /// per session at the highest QoS among its matching subscriptions
    /// [MQTT-3.3.5-1].
    pub(super) fn deliver_local(&mut self, msg: Message) {
        let mut matches = std::mem::take(&mut self.matches);
        matches.clear();
        self.subs.for_each_match(&msg.topic, |subs| {
            for (sid, opts) in subs.iter() {
                matches.push((sid, opts.qos));
            }
        });
        if matches.is_empty() {
            self.matches = matches;
            return;
        }
        if matches.len() > 1 {
            // Sort by session, highest QoS first, and keep the first of each.
            matches.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
            matches.dedup_by_key(|m| m.0);
        }
        let msg = Rc::new(msg);
        for &(sid, sub_qos) in &matches {
            let qos = msg.qos.min(sub_qos);
            // Retain is 0 for messages matching established subscriptions
            // [MQTT-3.3.1-9].
            self.deliver(sid, &msg, qos, false);
        }
        self.matches = matches;
    }

    /// Delivers one message to one session: written now (QoS 0, or QoS 1/2
    /// with room in the in-flight window and the outbox), queued (QoS 1/2,
    /// a shared reference), or dropped and counted. Returns false when it
    /// was dropped.
    pub(super) fn deliver(
        &mut self,
        sid: SessionId,
        msg: &Rc<Message>,
        qos: QoS,
        retain: bool,
    ) -> bool {
        let limits = &self.limits;
        let (max_inflight, max_queued) = (limits.max_inflight, limits.max_queued);
        let (max_queued_bytes, max_outbox) = (limits.max_queued_bytes, limits.max_outbox_bytes);
        let Some(session) = self.sessions.get_mut(&sid) else {
            return false;
        };
        let conn_id = session.conn;
        let conn = conn_id
            .and_then(|c| self.conns.get_mut(&c))
            .filter(|c| !c.closing && c.outbox.len() < max_outbox);
        if qos == QoS::AtMostOnce {
            return match conn {
                Some(conn) => {
                    encode_publish(
                        &mut conn.outbox,
                        conn.protocol,
                        false,
                        QoS::AtMostOnce,
                        retain,
                        &msg.topic,
                        0,
                        &msg.payload,
                        msg.properties.as_deref(),
                    );
                    self.stats.messages_delivered += 1;
                    if let Some(c) = conn_id {
                        self.mark_dirty(c);
                    }
                    true
                }
                None => {
                    self.stats.dropped_qos0 += 1;
                    false
                }
            };
        }
        match conn {
            Some(conn) if session.inflight.len() < max_inflight && session.queue.is_empty() => {
                let packet_id = session.allocate_packet_id();
                encode_publish(
                    &mut conn.outbox,
                    conn.protocol,
                    false,
                    qos,
                    retain,
                    &msg.topic,
                    packet_id,
                    &msg.payload,
                    msg.properties.as_deref(),
                );
                session.inflight.push_back(Inflight {
                    packet_id,
                    msg: msg.clone(),
                    qos,
                    retain,
                    state: OutboundState::AwaitingAck,
                });
                self.stats.messages_delivered += 1;
                if let Some(c) = conn_id {
                    self.mark_dirty(c);
                }
                true
            }
            _ if session.queue_has_room(msg.size(), max_queued, max_queued_bytes) => {
                session.enqueue(Queued {
                    msg: msg.clone(),
                    qos,
                    retain,
                });
                self.stats.queue_arrivals += 1;
                true
            }
            _ => {
                self.stats.dropped_queue_full += 1;
                // Logged once when the queue overflows and once when it has
                // room again (with the count): a log line per dropped
                // message would itself become the bottleneck.
                session.dropped += 1;
                if session.dropped == 1 {
                    tracing::warn!(
                        shard = self.id,
                        client_id = %session.client_id,
                        topic = %msg.topic,
                        "session queue full ({max_queued} messages / {max_queued_bytes} bytes): dropping QoS 1/2 messages for this client until it catches up"
                    );
                }
                false
            }
        }
    }

    /// How many more messages `sid` could take now (written or queued),
    /// roughly: bounds the retained lookups of one SUBSCRIBE.
    fn delivery_room(&self, sid: SessionId) -> usize {
        let Some(session) = self.sessions.get(&sid) else {
            return 0;
        };
        let limits = &self.limits;
        let queue_room = if session.queued_bytes < limits.max_queued_bytes {
            limits.max_queued.saturating_sub(session.queue.len())
        } else {
            0
        };
        let writable = session
            .conn
            .and_then(|c| self.conns.get(&c))
            .is_some_and(|c| !c.closing && c.outbox.len() < limits.max_outbox_bytes);
        let window = limits.max_inflight.saturating_sub(session.inflight.len()) + 1;
        queue_room + if writable { window } else { 0 }
    }

    /// Moves queued messages into the in-flight window while it and the
    /// outbox have room.
    pub(super) fn pump_queue(&mut self, sid: SessionId) {
        let max_inflight = self.limits.max_inflight;
        let max_outbox = self.limits.max_outbox_bytes;
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some(conn_id) = session.conn else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&conn_id).filter(|c| !c.closing) else {
            return;
        };
        if session.dropped > 0 && session.queue.len() < self.limits.max_queued / 2 {
            tracing::warn!(
                shard = self.id,
                client_id = %session.client_id,
                dropped = session.dropped,
                "session queue has room again; QoS 1/2 messages were dropped while it was full"
            );
            session.dropped = 0;
        }
        let mut wrote = 0u64;
        while session.inflight.len() < max_inflight && conn.outbox.len() < max_outbox {
            let Some(q) = session.dequeue() else {
                break;
            };
            let packet_id = session.allocate_packet_id();
            encode_publish(
                &mut conn.outbox,
                conn.protocol,
                false,
                q.qos,
                q.retain,
                &q.msg.topic,
                packet_id,
                &q.msg.payload,
                q.msg.properties.as_deref(),
            );
            session.inflight.push_back(Inflight {
                packet_id,
                msg: q.msg,
                qos: q.qos,
                retain: q.retain,
                state: OutboundState::AwaitingAck,
            });
            wrote += 1;
        }
        if wrote > 0 {
            self.stats.queue_departures += wrote;
            self.stats.messages_delivered += wrote;
            self.mark_dirty(conn_id);
        }
    }

    /// On resuming a session: every unacknowledged PUBLISH again with DUP
    /// set, and PUBREL for those already received [MQTT-4.4.0-1].
    pub(super) fn resend_inflight(&mut self, sid: SessionId) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let Some(conn_id) = session.conn else {
            return;
        };
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        // The whole window goes out again at once, past the outbox bound:
        // it is bounded by --max-inflight (see `check_bounds`).
        conn.resent = !session.inflight.is_empty();
        for f in &session.inflight {
            match f.state {
                OutboundState::AwaitingAck => encode_publish(
                    &mut conn.outbox,
                    conn.protocol,
                    true,
                    f.qos,
                    f.retain,
                    &f.msg.topic,
                    f.packet_id,
                    &f.msg.payload,
                    f.msg.properties.as_deref(),
                ),
                OutboundState::AwaitingComp => encode(
                    &Packet::PubRel(Ack {
                        packet_id: f.packet_id,
                        reason: 0,
                        properties: None,
                    }),
                    conn.protocol,
                    &mut conn.outbox,
                ),
            }
        }
        self.mark_dirty(conn_id);
    }

    /// Sends the SUBACK, then the retained messages of the new
    /// subscriptions (with retain set [MQTT-3.3.1-8]). Each filter of the
    /// SUBSCRIBE (a repeated one too) asks for its retained messages, so
    /// the lookups stop once the session can take no more: the work and
    /// memory one SUBSCRIBE causes are bounded by what can be delivered.
    pub(super) fn finish_subscribe(
        &mut self,
        conn_id: ConnId,
        sid: SessionId,
        suback: &Packet,
        retained: Vec<(ByteString, SubscriptionOptions)>,
    ) {
        self.write(conn_id, suback);
        let filters = retained.len();
        let mut found = Vec::new();
        for (done, (filter, opts)) in retained.into_iter().enumerate() {
            let room = self.delivery_room(sid);
            if room == 0 {
                self.stats.retained_skipped += (filters - done) as u64;
                break;
            }
            found.clear();
            self.retain.for_each_matching(&filter, |m| {
                found.push(Rc::new(m.clone()));
                if found.len() >= room {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            });
            for m in &found {
                let qos = m.qos.min(opts.qos);
                if !self.deliver(sid, m, qos, true) {
                    break;
                }
            }
        }
    }
}
