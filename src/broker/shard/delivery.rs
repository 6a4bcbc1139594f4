//! Routing a message to shards and delivering it to local sessions.

use std::rc::Rc;

use bytestring::ByteString;

use super::Shard;
use crate::broker::message::{Message, ShardMessage};
use crate::broker::session::{ConnId, Inflight, OutboundState, Queued, SessionId};
use crate::protocol::{encode, encode_publish, Ack, Packet, QoS, SubscriptionOptions, Will};

impl Shard {
    /// Routes a message published by a local client: to the other shards
    /// that want it (every shard, for a retained one), then to local
    /// subscribers.
    pub(super) fn publish(&mut self, msg: Message) {
        let mut stamp = 0;
        if msg.retain {
            stamp = self.retain.next_stamp(self.id);
            self.retain.apply(&msg, stamp);
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
            for (sid, opts) in subs {
                matches.push((*sid, opts.qos));
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
    /// with room in the in-flight window), queued, or dropped and counted.
    pub(super) fn deliver(&mut self, sid: SessionId, msg: &Rc<Message>, qos: QoS, retain: bool) {
        let max_inflight = self.limits.max_inflight;
        let max_queued = self.limits.max_queued;
        let max_outbox = self.limits.max_outbox_bytes;
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        let conn_id = session.conn;
        let conn = conn_id
            .and_then(|c| self.conns.get_mut(&c))
            .filter(|c| !c.closing);
        if qos == QoS::AtMostOnce {
            match conn {
                Some(conn) if conn.outbox.len() < max_outbox => {
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
                }
                _ => self.stats.dropped_qos0 += 1,
            }
            return;
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
            }
            _ if session.queue.len() < max_queued => session.queue.push_back(Queued {
                msg: msg.clone(),
                qos,
                retain,
            }),
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
                        "session queue full ({max_queued}): dropping QoS 1/2 messages for this client until it catches up"
                    );
                }
            }
        }
    }

    /// Moves queued messages into the in-flight window while it has room.
    pub(super) fn pump_queue(&mut self, sid: SessionId) {
        let max_inflight = self.limits.max_inflight;
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
        while session.inflight.len() < max_inflight {
            let Some(q) = session.queue.pop_front() else {
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
    /// subscriptions (with retain set [MQTT-3.3.1-8]).
    pub(super) fn finish_subscribe(
        &mut self,
        conn_id: ConnId,
        sid: SessionId,
        suback: &Packet,
        retained: Vec<(ByteString, SubscriptionOptions)>,
    ) {
        self.write(conn_id, suback);
        for (filter, opts) in retained {
            let mut found = Vec::new();
            self.retain
                .for_each_match(&filter, |m| found.push(m.clone()));
            for m in found {
                let qos = m.qos.min(opts.qos);
                self.deliver(sid, &Rc::new(m), qos, true);
            }
        }
    }
}
