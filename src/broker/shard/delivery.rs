//! Routing a message to shards and delivering it to local sessions.

use std::ops::ControlFlow;
use std::rc::Rc;

use bytestring::ByteString;

use super::v5::{self, encode_delivery, Outgoing};
use super::Shard;
use crate::broker::access;
use crate::broker::message::{Message, Origin, ShardMessage};
use crate::broker::retain::RetainOutcome;
use crate::broker::session::{ConnId, Inflight, OutboundState, Queued, SessionId, SubIds};
use crate::broker::shard_set::ShardSet;
use crate::broker::shared::{SharedPick, Strategy};
use crate::broker::subscribers::Subscription;
use crate::protocol::{encode, Ack, Packet, QoS, Will};

/// One matching subscription of a local session, while a message is routed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Match {
    sid: SessionId,
    qos: QoS,
    retain_as_published: bool,
    id: u32,
}

/// The picks for shard `dst`, taken out of `picks`.
fn take_picks(picks: &mut Vec<(usize, SharedPick)>, dst: usize) -> Vec<SharedPick> {
    if picks.is_empty() {
        return Vec::new();
    }
    let mut mine = Vec::new();
    picks.retain(|(shard, pick)| {
        if *shard == dst {
            mine.push(pick.clone());
            false
        } else {
            true
        }
    });
    mine
}

/// The identifier list for one subscription (0: none).
pub(super) fn ids_of(id: u32) -> SubIds {
    if id == 0 {
        SubIds::default()
    } else {
        Box::new([id])
    }
}

impl Shard {
    /// Routes a message published by a local client: to the other shards
    /// that want it (every shard, for a retained one), then to local
    /// subscribers.
    pub(super) fn publish(&mut self, mut msg: Message) {
        let mut stamp = 0;
        // Shared groups: one shard each (see `broker::shared`).
        let mut picks: Vec<(usize, SharedPick)> = Vec::new();
        if !self.shared_interest.is_empty() {
            let local = (self.shared_strategy == Strategy::Local).then_some(self.id);
            self.shared_interest
                .picks_for(&msg.topic, local, |shard, pick| picks.push((shard, pick)));
        }
        let mut targets = ShardSet::default();
        if msg.retain {
            // One copy that owns its bytes (a slice would pin the read
            // buffer) serves every shard's replica and the subscribers.
            msg = msg.detached();
            stamp = self.retain.next_stamp(self.id);
            self.apply_retained(&msg, stamp);
            for dst in 0..self.shards {
                targets.insert(dst);
            }
        } else if self.shards > 1 {
            targets = self.interest.shards_for(&msg.topic);
        }
        for &(dst, _) in &picks {
            targets.insert(dst);
        }
        for dst in targets.iter() {
            if dst != self.id && dst < self.shards {
                let shared = take_picks(&mut picks, dst);
                self.send_to_shard(
                    dst,
                    ShardMessage::Publish {
                        msg: msg.clone(),
                        retain_stamp: stamp,
                        shared,
                    },
                );
            }
        }
        let mine = take_picks(&mut picks, self.id);
        self.deliver_local(msg, mine);
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
        // The will's properties go with it [MQTT-3.1.3-10], except its
        // delay, which is not a PUBLISH property.
        let properties = will.properties.map(|mut p| {
            p.will_delay_interval = None;
            p
        });
        let expires_at = properties
            .as_ref()
            .and_then(|p| p.message_expiry_interval)
            .map(|secs| self.now + u64::from(secs) * 1000);
        self.publish(Message {
            topic: will.topic,
            payload: will.payload,
            qos: will.qos,
            retain: will.retain,
            properties,
            expires_at,
            origin: Origin::NONE,
        });
    }

    /// Delivers to every local session with a matching subscription, once
    /// per session at the highest QoS among its matching subscriptions
    /// [MQTT-3.3.5-1], with the identifiers of all of them [MQTT-3.3.4-3],
    /// skipping a No Local subscription of the publisher itself
    /// [MQTT-3.8.3-3].
    pub(super) fn deliver_local(&mut self, msg: Message, shared: Vec<SharedPick>) {
        if msg.expired(self.now) {
            self.stats.dropped_expired += 1;
            return;
        }
        let mut matches = std::mem::take(&mut self.matches);
        matches.clear();
        let publisher = (msg.origin.shard == self.id as u32).then_some(msg.origin.session);
        self.subs.for_each_match(&msg.topic, |subs| {
            for (sid, sub) in subs.iter() {
                if sub.options.no_local && Some(sid) == publisher {
                    continue;
                }
                matches.push(Match {
                    sid,
                    qos: sub.options.qos,
                    retain_as_published: sub.options.retain_as_published,
                    id: sub.id,
                });
            }
        });
        if matches.is_empty() && shared.is_empty() {
            self.matches = matches;
            return;
        }
        if matches.len() > 1 {
            matches.sort_unstable_by_key(|m| m.sid);
        }
        // One shared copy serves the shared groups and the subscribers.
        let msg = Rc::new(msg);
        for pick in shared {
            self.deliver_pick(&msg, pick);
        }
        let mut i = 0;
        while i < matches.len() {
            let first = matches[i];
            let mut end = i + 1;
            while end < matches.len() && matches[end].sid == first.sid {
                end += 1;
            }
            // Most sessions match once: no merging, no allocation.
            let (qos, rap, ids) = if end == i + 1 {
                (first.qos, first.retain_as_published, ids_of(first.id))
            } else {
                let all = &matches[i..end];
                (
                    all.iter().map(|m| m.qos).max().unwrap_or(first.qos),
                    all.iter().any(|m| m.retain_as_published),
                    all.iter().map(|m| m.id).filter(|&id| id != 0).collect(),
                )
            };
            i = end;
            // Retain is 0 for messages matching established subscriptions
            // [MQTT-3.3.1-9], unless Retain As Published [MQTT-3.3.1-12].
            let retain = rap && msg.retain;
            self.deliver(first.sid, &msg, msg.qos.min(qos), retain, ids, None);
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
        sub_ids: SubIds,
        via: Option<Box<SharedPick>>,
    ) -> bool {
        let limits = &self.limits;
        let (max_queued, max_queued_bytes) = (limits.max_queued, limits.max_queued_bytes);
        let (max_outbox, max_inflight) = (limits.max_outbox_bytes, limits.max_inflight);
        let now = self.now;
        if !access::may_receive(self.acl_of(sid), &msg.topic, false) {
            self.stats.deliveries_denied += 1;
            return false;
        }
        let Some(session) = self.sessions.get_mut(&sid) else {
            return false;
        };
        let conn_id = session.conn;
        let conn = conn_id
            .and_then(|c| self.conns.get_mut(&c))
            .filter(|c| !c.closing && c.outbox.len() < max_outbox);
        if qos == QoS::AtMostOnce {
            let Some(conn) = conn else {
                self.stats.dropped_qos0 += 1;
                return false;
            };
            let out = Outgoing {
                msg,
                dup: false,
                qos,
                retain,
                packet_id: 0,
                sub_ids: &sub_ids,
            };
            if encode_delivery(conn, now, &out).is_err() {
                self.stats.dropped_too_large += 1;
                return false;
            }
            self.stats.messages_delivered += 1;
            if let Some(c) = conn_id {
                self.mark_dirty(c);
            }
            return true;
        }
        match conn {
            Some(conn)
                if session.inflight.len() < v5::inflight_cap(max_inflight, Some(conn))
                    && session.queue.is_empty() =>
            {
                let packet_id = session.allocate_packet_id();
                let out = Outgoing {
                    msg,
                    dup: false,
                    qos,
                    retain,
                    packet_id,
                    sub_ids: &sub_ids,
                };
                if encode_delivery(conn, now, &out).is_err() {
                    // Discarded as if delivered [MQTT-3.1.2-25].
                    self.stats.dropped_too_large += 1;
                    return false;
                }
                session.inflight.push_back(Inflight {
                    packet_id,
                    msg: msg.clone(),
                    qos,
                    retain,
                    sub_ids,
                    via,
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
                    sub_ids,
                    via,
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
        let conn = session.conn.and_then(|c| self.conns.get(&c));
        let writable = conn.is_some_and(|c| !c.closing && c.outbox.len() < limits.max_outbox_bytes);
        let window = self
            .inflight_cap(conn)
            .saturating_sub(session.inflight.len())
            + 1;
        queue_room + if writable { window } else { 0 }
    }

    /// Moves queued messages into the in-flight window while it and the
    /// outbox have room; expired ones are dropped on the way (counted).
    pub(super) fn pump_queue(&mut self, sid: SessionId) {
        let max_outbox = self.limits.max_outbox_bytes;
        let now = self.now;
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
        let cap = v5::inflight_cap(max_inflight, Some(conn));
        if session.dropped > 0 && session.queue.len() < self.limits.max_queued / 2 {
            tracing::warn!(
                shard = self.id,
                client_id = %session.client_id,
                dropped = session.dropped,
                "session queue has room again; QoS 1/2 messages were dropped while it was full"
            );
            session.dropped = 0;
        }
        let (mut wrote, mut left, mut expired, mut too_large) = (0u64, 0u64, 0u64, 0u64);
        while session.inflight.len() < cap && conn.outbox.len() < max_outbox {
            let Some(q) = session.dequeue() else {
                break;
            };
            left += 1;
            if q.msg.expired(now) {
                expired += 1;
                continue;
            }
            let packet_id = session.allocate_packet_id();
            let out = Outgoing {
                msg: &q.msg,
                dup: false,
                qos: q.qos,
                retain: q.retain,
                packet_id,
                sub_ids: &q.sub_ids,
            };
            if encode_delivery(conn, now, &out).is_err() {
                too_large += 1;
                continue;
            }
            session.inflight.push_back(Inflight {
                packet_id,
                msg: q.msg,
                qos: q.qos,
                retain: q.retain,
                sub_ids: q.sub_ids,
                via: q.via,
                state: OutboundState::AwaitingAck,
            });
            wrote += 1;
        }
        self.stats.queue_departures += left;
        self.stats.dropped_expired += expired;
        self.stats.dropped_too_large += too_large;
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
        // The whole window goes out again at once, past the outbox bound:
        // it is bounded by --max-inflight (see `check_bounds`). Onward
        // delivery has started, so expiry no longer applies. (A smaller
        // Receive Maximum on the new connection is not applied to this
        // window: it is resent whole.)
        conn.resent = !session.inflight.is_empty();
        let now = self.now;
        let mut too_large = 0;
        session.inflight.retain(|f| match f.state {
            OutboundState::AwaitingAck => {
                let out = Outgoing {
                    msg: &f.msg,
                    dup: true,
                    qos: f.qos,
                    retain: f.retain,
                    packet_id: f.packet_id,
                    sub_ids: &f.sub_ids,
                };
                // Too large for the client's new maximum: discarded as if
                // delivered [MQTT-3.1.2-25], so it frees its slot.
                let sent = encode_delivery(conn, now, &out).is_ok();
                too_large += u64::from(!sent);
                sent
            }
            OutboundState::AwaitingComp => {
                encode(
                    &Packet::PubRel(Ack {
                        packet_id: f.packet_id,
                        reason: 0,
                        properties: None,
                    }),
                    conn.protocol,
                    &mut conn.outbox,
                );
                true
            }
        });
        self.stats.dropped_too_large += too_large;
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
        retained: Vec<(ByteString, Subscription)>,
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
                if m.expired(self.now) {
                    continue;
                }
                // A grant to subscribe does not cover every retained topic
                // under the filter (a deny rule, a narrower read rule).
                if !access::may_receive(self.acl_of(sid), &m.topic, true) {
                    self.stats.deliveries_denied += 1;
                    continue;
                }
                let qos = m.qos.min(opts.options.qos);
                // Stop once the session can take no more; a message it
                // cannot take for its size alone does not stop the rest.
                if !self.deliver(sid, m, qos, true, ids_of(opts.id), None)
                    && self.delivery_room(sid) == 0
                {
                    break;
                }
            }
        }
    }
}
