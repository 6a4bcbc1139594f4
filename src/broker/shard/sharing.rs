//! Shared subscriptions on one shard: joining and leaving a group, serving
//! a message to one local member, and handing a leaving member's
//! unacknowledged messages to another (see `broker::shared`).

use std::rc::Rc;

use super::delivery::ids_of;
use super::Shard;
use crate::broker::message::{Message, ShardMessage};
use crate::broker::session::SessionId;
use crate::broker::shared::{ShareName, SharedPick, Strategy};
use crate::broker::subscribers::Subscription;
use crate::protocol::QoS;

impl Shard {
    /// Sets `--shared-strategy`.
    pub fn set_shared_strategy(&mut self, strategy: Strategy) {
        self.shared_strategy = strategy;
    }

    /// Adds `sid` to a shared group; returns whether it was a member. The
    /// group's first local member is announced to every shard (and counted
    /// here), so the SUBACK waits for the barrier like any new interest.
    pub(super) fn add_shared(
        &mut self,
        sid: SessionId,
        share: &ShareName,
        sub: Subscription,
        new_interest: &mut bool,
    ) -> bool {
        let (existed, first) = self.shared.add(share, sid, sub);
        if first {
            *new_interest = true;
            self.shared_interest.add(share, self.id);
            self.broadcast(ShardMessage::SharedAdd(share.clone()));
        }
        existed
    }

    /// Removes `sid` from a shared group; returns whether it was a member.
    pub(super) fn remove_shared(&mut self, sid: SessionId, share: &ShareName) -> bool {
        let (found, emptied) = self.shared.remove(share, sid);
        if emptied {
            self.shared_interest.remove(share, self.id);
            self.broadcast(ShardMessage::SharedRemove(share.clone()));
        }
        found
    }

    /// Serves `msg` to one local member of `pick`'s group: a connected one
    /// if there is one; else, once, another shard's member; else an
    /// offline member's queue. Counted as dropped if the group has no
    /// member here any more (it left while the message was on its way).
    pub(super) fn deliver_pick(&mut self, msg: &Rc<Message>, mut pick: SharedPick) {
        let connected = |sid: SessionId| {
            self.sessions
                .get(&sid)
                .and_then(|s| s.conn)
                .and_then(|c| self.conns.get(&c))
                .is_some_and(|c| !c.closing)
        };
        let Some(group) = self.shared.group(&pick.filter, &pick.group) else {
            self.stats.dropped_no_member += 1;
            return;
        };
        let chosen = match self.shared_strategy {
            Strategy::LeastInflight => group.choose_least(connected, |sid| {
                self.sessions
                    .get(&sid)
                    .map_or(usize::MAX, |s| s.inflight.len() + s.queue.len())
            }),
            Strategy::RoundRobin | Strategy::Local => group.choose(connected),
        };
        let chosen = match chosen {
            Some(member) => member,
            None => {
                // No connected member here: once, another shard's; else an
                // offline member's queue.
                if pick.hops == 0 {
                    if let Some(dst) = self.shared_interest.other_shard(&pick, self.id) {
                        pick.hops = 1;
                        // Only the pick travels: the retained replicas
                        // already have the message.
                        let mut msg = (**msg).clone();
                        msg.retain = false;
                        self.send_to_shard(
                            dst,
                            ShardMessage::Publish {
                                msg,
                                retain_stamp: 0,
                                shared: vec![pick],
                            },
                        );
                        return;
                    }
                }
                match group.next_member() {
                    Some(member) => member,
                    None => {
                        self.stats.dropped_no_member += 1;
                        return;
                    }
                }
            }
        };
        let (sid, sub) = chosen;
        let qos = msg.qos.min(sub.options.qos);
        let retain = sub.options.retain_as_published && msg.retain;
        let via = (qos != QoS::AtMostOnce).then(|| Box::new(pick));
        self.deliver(sid, msg, qos, retain, ids_of(sub.id), via);
    }

    /// A member's connection ended: the messages it was given for a shared
    /// group and has not received (queued), and the QoS 1 ones it has not
    /// acknowledged, go to another member. QoS 2 ones stay with it.
    pub(super) fn redistribute_shared(&mut self, sid: SessionId) {
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        // In place: nothing is allocated or rebuilt for a session that
        // holds no shared-group message (most of them).
        let mut moved = Vec::new();
        session.inflight.retain_mut(|f| {
            // A QoS 2 PUBLISH may have reached the client: its delivery
            // must complete with this session [MQTT-4.8.2-5]. Only QoS 1
            // moves (the new member may see a duplicate, as QoS 1 allows).
            if f.qos != QoS::AtLeastOnce {
                return true;
            }
            match f.via.take() {
                Some(pick) => {
                    moved.push((f.msg.clone(), pick));
                    false
                }
                None => true,
            }
        });
        let (mut left, mut bytes) = (0u64, 0usize);
        session.queue.retain_mut(|q| match q.via.take() {
            Some(pick) => {
                left += 1;
                bytes += q.msg.size();
                moved.push((q.msg.clone(), pick));
                false
            }
            None => true,
        });
        session.queued_bytes -= bytes;
        self.stats.queue_departures += left;
        self.stats.shared_redistributed += moved.len() as u64;
        for (msg, pick) in moved {
            let pick = SharedPick { hops: 0, ..*pick };
            self.deliver_pick(&msg, pick);
        }
    }
}

/// The shared group a session subscription key names, if it is one.
pub(super) fn share_of(filter: &str) -> Option<ShareName> {
    crate::broker::shared::parse(filter).flatten()
}
