//! One shard's broker state: its connections, their sessions and
//! subscriptions, its replica of the retained store and of the interest
//! index.
//!
//! The server layer drives it: it calls [`Shard::connect`],
//! [`Shard::handle_packet`], [`Shard::connection_lost`], [`Shard::tick`] and
//! [`Shard::handle_shard_messages`], then collects what they produced:
//! bytes per connection ([`Shard::take_output`], for the connections listed
//! by [`Shard::take_dirty_conns`]) and batches per destination shard
//! ([`Shard::take_outgoing`]).

#[cfg(test)]
mod bounds_tests;
mod delivery;
mod inbound;
mod invariants;
mod mesh;
#[cfg(test)]
mod shared_tests;
mod sharing;
#[cfg(test)]
mod tests;
mod timers;
mod v5;

use std::collections::{BTreeMap, BTreeSet};

use bytes::BytesMut;
use bytestring::ByteString;

pub use super::limits::BrokerLimits;

use super::access::{self, Access, SessionAcl};
use super::client_index::ClientIndex;
use super::deadlines::{Deadlines, Slot};
use super::enhanced_auth::Methods;
use super::id_map::IdMap;
use super::interest::InterestIndex;
use super::message::{detached_str, ShardMessage};
use super::placement::home_shard;
use super::retain::RetainStore;
use super::session::{ConnId, Session, SessionId};
use super::shared::{LocalGroups, SharedInterest, Strategy};
use super::subscribers::{Subscribers, Subscription};
use super::topic_trie::TopicTrie;
use crate::protocol::{encode, valid_topic_name, ConnAck, Connect, Packet, ProtocolVersion, Will};

/// Counters a shard keeps; read by the server for logs and benchmarks.
#[derive(Debug, Clone, Default)]
pub struct ShardStats {
    pub connects: u64,
    pub publishes_received: u64,
    pub messages_delivered: u64,
    /// QoS 0 messages dropped because the subscriber's outbox was full or
    /// the session was offline.
    pub dropped_qos0: u64,
    /// QoS 1/2 messages dropped because the session's queue was full
    /// (--max-queued or --max-queued-bytes).
    pub dropped_queue_full: u64,
    /// Retained publishes to a new topic not stored because the retained
    /// store was full (they were still delivered to subscribers).
    pub retained_refused: u64,
    /// Filters of a SUBSCRIBE whose retained messages were not looked up
    /// because the session's outbox and queue were already full.
    pub retained_skipped: u64,
    /// Subscriptions refused at --max-subscriptions.
    pub subscriptions_refused: u64,
    /// QoS 1/2 messages queued or in flight to a session when it ended.
    pub dropped_session_ended: u64,
    /// Messages that entered a session queue, and that left one (written
    /// or dropped with their session): their difference is what the queues
    /// hold, which `check_bounds` verifies.
    pub queue_arrivals: u64,
    pub queue_departures: u64,
    /// Messages whose Message Expiry Interval passed before they could be
    /// sent (dropped from session queues, or on arrival).
    pub dropped_expired: u64,
    /// Messages larger than a 5.0 client's Maximum Packet Size, not sent to
    /// it [MQTT-3.1.2-25].
    pub dropped_too_large: u64,
    /// Sessions that expired (5.0 Session Expiry Interval) while
    /// disconnected, and their undelivered messages (also counted in
    /// `dropped_session_ended`).
    pub sessions_expired: u64,
    /// Messages for a shared group that reached a shard after its last
    /// local member left (a race of a few milliseconds).
    pub dropped_no_member: u64,
    /// Unacknowledged shared-group messages handed to another member
    /// because theirs disconnected.
    pub shared_redistributed: u64,
    /// PUBLISHes (and wills) the ACL did not let through.
    pub publishes_denied: u64,
    /// Subscription filters the ACL refused.
    pub subscriptions_denied: u64,
    /// Deliveries the ACL withheld (a rule narrower than the subscription,
    /// a retained message the client may not read).
    pub deliveries_denied: u64,
}

/// A live network connection, after its CONNECT.
#[derive(Debug)]
pub(crate) struct Conn {
    session: SessionId,
    protocol: ProtocolVersion,
    keep_alive_ms: u32,
    last_seen: u64,
    /// The slot of this connection's live entry in the keepalive wheel
    /// (entries for other slots are stale); see `timers`.
    keepalive_due: Slot,
    /// Same for the silence (parking) wheel.
    silence_due: Slot,
    /// Parked by the server: no silence checks until it resumes.
    parked: bool,
    /// The outbox holds a resent in-flight window (until taken).
    resent: bool,
    outbox: BytesMut,
    /// Boxed: most connections have none, and this struct is per connection.
    will: Option<Box<Will>>,
    /// 5.0 only (boxed for the same reason).
    v5: Option<Box<v5::ConnV5>>,
    closing: bool,
    dirty: bool,
}

/// A SUBSCRIBE whose SUBACK waits for the other shards to apply its
/// interest changes.
#[derive(Debug)]
struct PendingSubscribe {
    conn: ConnId,
    session: SessionId,
    suback: Packet,
    retained: Vec<(ByteString, Subscription)>,
}

#[derive(Debug)]
pub struct Shard {
    id: usize,
    shards: usize,
    limits: BrokerLimits,
    conns: IdMap<Conn>,
    sessions: IdMap<Session>,
    by_client: ClientIndex,
    subs: TopicTrie<Subscribers>,
    interest: InterestIndex,
    retain: RetainStore,
    outgoing: Vec<Vec<ShardMessage>>,
    outgoing_len: usize,
    dirty_conns: Vec<ConnId>,
    /// SUBACKs waiting for every other shard's `SyncAck`, by token (tokens
    /// grow, so they finish in order).
    pending_subscribes: BTreeMap<u64, PendingSubscribe>,
    /// Disconnected sessions' expiry and delayed wills, by due time
    /// (broker ms); at most two entries per session.
    session_timers: BTreeSet<(u64, SessionId)>,
    /// Local members of shared groups, and every shard's replica of which
    /// shards have members (see `broker::shared`).
    shared: LocalGroups,
    shared_interest: SharedInterest,
    shared_strategy: Strategy,
    /// Enhanced authentication methods offered (none yet).
    auth_methods: Methods,
    /// The compiled ACL of each session that has one (its listener has an
    /// ACL file): beside the sessions, not in them, so a broker without
    /// ACLs pays nothing per session.
    acls: std::collections::HashMap<SessionId, Box<SessionAcl>>,
    next_token: u64,
    /// Per shard: the highest of our `Sync` tokens it has answered.
    syncs_acked: Vec<u64>,
    /// Per shard: the highest of its `Sync` tokens we have applied (the
    /// server publishes it so that shard can finish its barrier without
    /// waiting behind our outgoing backlog; see `server::mesh`).
    syncs_applied: Vec<u64>,
    /// Scratch for fan-out, kept to avoid an allocation per PUBLISH.
    matches: Vec<delivery::Match>,
    generated_ids: u64,
    /// Keepalive and silence checks, by due time (see `timers`).
    keepalives: Deadlines,
    silences: Deadlines,
    due_scratch: Vec<(ConnId, Slot)>,
    /// --park-after-ms; 0: connections are never parked.
    silence_ms: u64,
    /// The latest time a caller passed in (ms), for what has no `now` of
    /// its own (retained tombstones applied from the mesh).
    now: u64,
    retained_warned_at: u64,
    pub stats: ShardStats,
}

impl Shard {
    pub fn new(id: usize, shards: usize, limits: BrokerLimits) -> Self {
        let retained_limits = limits.retained.clone();
        Shard {
            id,
            shards,
            limits,
            conns: IdMap::new(),
            sessions: IdMap::new(),
            by_client: ClientIndex::default(),
            subs: TopicTrie::new(),
            interest: InterestIndex::default(),
            retain: RetainStore::new(retained_limits),
            outgoing: (0..shards).map(|_| Vec::new()).collect(),
            outgoing_len: 0,
            dirty_conns: Vec::new(),
            pending_subscribes: BTreeMap::new(),
            session_timers: BTreeSet::new(),
            shared: LocalGroups::default(),
            shared_interest: SharedInterest::default(),
            shared_strategy: Strategy::default(),
            auth_methods: Methods::default(),
            acls: Default::default(),
            next_token: 1,
            syncs_acked: vec![0; shards],
            syncs_applied: vec![0; shards],
            matches: Vec::new(),
            generated_ids: 0,
            keepalives: Deadlines::default(),
            silences: Deadlines::default(),
            due_scratch: Vec::new(),
            silence_ms: 0,
            now: 0,
            retained_warned_at: 0,
            stats: ShardStats::default(),
        }
    }

    pub fn id(&self) -> usize {
        self.id
    }

    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Moves the core's clock forward (broker ms) before work that does not
    /// pass the time itself, such as applying other shards' batches.
    pub fn advance_clock(&mut self, now: u64) {
        self.now = self.now.max(now);
    }

    /// Sessions held, connected or not.
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Accepts a decoded CONNECT (already placed on this shard) and returns
    /// the new connection. The CONNACK, or the refusal and the close, are in
    /// its output. `now` is in milliseconds on any monotonic clock.
    pub fn connect(&mut self, connect: Connect, now: u64) -> ConnId {
        self.connect_with(connect, Access::default(), now)
    }

    /// `connect`, with the permissions of the listener the client came
    /// through (its ACL is compiled here, once the client id is known).
    pub fn connect_with(&mut self, connect: Connect, access: Access, now: u64) -> ConnId {
        self.now = now;
        self.stats.connects += 1;
        let Connect {
            protocol,
            clean_start,
            keep_alive,
            client_id,
            will,
            properties,
            username,
            ..
        } = connect;
        let v5 = protocol.is_v5();
        let (keep_alive, keep_alive_capped) = if v5 {
            v5::granted_keepalive(keep_alive, self.limits.max_keepalive)
        } else {
            (keep_alive, false)
        };
        let mut conn = Conn {
            session: 0,
            protocol,
            keep_alive_ms: u32::from(keep_alive) * 1500,
            last_seen: now,
            keepalive_due: 0,
            silence_due: 0,
            parked: false,
            resent: false,
            outbox: BytesMut::new(),
            will: will.map(Box::new),
            v5: v5.then(|| {
                Box::new(v5::ConnV5::from_connect(
                    properties.as_deref(),
                    self.limits.max_topic_alias,
                ))
            }),
            closing: false,
            dirty: false,
        };
        let refusal = if (client_id.is_empty() && !clean_start && !protocol.is_v5())
            || client_id.len() > self.limits.max_client_id_len
        {
            Some(ConnackRefusal::IdentifierRejected)
        } else if conn
            .will
            .as_ref()
            .is_some_and(|w| !valid_topic_name(&w.topic) || !self.limits.topic_fits(&w.topic))
        {
            Some(ConnackRefusal::InvalidWill)
        } else if let Some(method) = properties
            .as_ref()
            .and_then(|p| p.authentication_method.as_ref())
            .filter(|m| self.auth_methods.find(m).is_none())
        {
            // Enhanced authentication (5.0): see `broker::enhanced_auth`.
            // A method found here would start its AUTH exchange instead.
            tracing::debug!(shard = self.id, %method, "unknown authentication method");
            Some(ConnackRefusal::BadAuthenticationMethod)
        } else {
            None
        };
        if let Some(refusal) = refusal {
            tracing::debug!(shard = self.id, client_id = %client_id, ?refusal, "CONNECT refused");
            let code = refusal.code(protocol);
            // 3.1.1 has no return code for a bad will topic: it is a
            // protocol violation, answered by closing the connection.
            let answer = protocol.is_v5() || !matches!(refusal, ConnackRefusal::InvalidWill);
            if answer {
                let properties = protocol.is_v5().then(|| {
                    Box::new(crate::protocol::Properties {
                        reason_string: Some(ByteString::from(refusal.describe())),
                        ..Default::default()
                    })
                });
                encode(
                    &Packet::ConnAck(ConnAck {
                        session_present: false,
                        code,
                        properties,
                    }),
                    protocol,
                    &mut conn.outbox,
                );
            }
            conn.closing = true;
            conn.will = None;
            let conn_id = self.conns.insert(conn);
            self.mark_dirty(conn_id);
            return conn_id;
        }
        let (client_id, assigned) = if client_id.is_empty() {
            (self.generate_client_id(), true)
        } else {
            // Kept for the session's life: own the bytes instead of pinning
            // the read buffer the CONNECT came in.
            (detached_str(&client_id), false)
        };
        conn.will = conn.will.take().map(|w| {
            Box::new(Will {
                topic: detached_str(&w.topic),
                payload: bytes::Bytes::copy_from_slice(&w.payload),
                ..*w
            })
        });
        let conn_id = self.conns.insert(conn);
        self.watch_conn(conn_id, now);

        // Takeover [MQTT-3.1.4-2]: the existing connection is closed (its
        // will is published: it did not DISCONNECT).
        let existing = self.by_client.get(&client_id, &self.sessions);
        if let Some(sid) = existing {
            if let Some(old) = self.sessions.get(&sid).and_then(|s| s.conn) {
                tracing::debug!(shard = self.id, client_id = %client_id, "session taken over");
                self.disconnect_v5(old, 0x8E, "session taken over");
                self.close_conn(old, true);
            }
        }
        let resumed = match existing {
            Some(sid) if !clean_start && self.sessions.get(&sid).is_some_and(|s| s.persistent) => {
                Some(sid)
            }
            Some(sid) => {
                self.discard_session(sid);
                None
            }
            None => None,
        };
        let session_present = resumed.is_some();
        let sid = resumed.unwrap_or_else(|| {
            let sid = self
                .sessions
                .insert(Session::new(client_id.clone(), !clean_start, protocol));
            self.by_client.insert(sid, &self.sessions);
            sid
        });
        let session_expiry = v5::session_expiry_of(properties.as_deref());
        let mut deadlines = [None, None];
        if let Some(s) = self.sessions.get_mut(&sid) {
            // Back in time: neither the session nor a delayed will expires
            // [MQTT-3.1.3-9].
            deadlines = [
                s.expires_at.take(),
                s.delayed_will.take().map(|(_, due)| due),
            ];
            s.conn = Some(conn_id);
            s.protocol = protocol;
            if v5 {
                s.set_expiry(session_expiry);
            }
            match &access.acl {
                Some(file) => {
                    let acl = SessionAcl::compile(
                        file,
                        access.listener,
                        username.as_ref().map(detached_str),
                        &client_id,
                        s.subscriptions.keys(),
                    );
                    self.acls.insert(sid, Box::new(acl));
                }
                None => {
                    self.acls.remove(&sid);
                }
            }
        }
        for at in deadlines.into_iter().flatten() {
            self.session_timers.remove(&(at, sid));
        }
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return conn_id;
        };
        conn.session = sid;
        let properties = v5.then(|| {
            self.connack_properties(
                assigned.then_some(&client_id),
                keep_alive_capped.then_some(keep_alive),
            )
        });
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return conn_id;
        };
        encode(
            &Packet::ConnAck(ConnAck {
                session_present,
                code: 0,
                properties,
            }),
            protocol,
            &mut conn.outbox,
        );
        self.mark_dirty(conn_id);
        tracing::debug!(shard = self.id, client_id = %client_id, session_present, "connected");
        if session_present {
            self.resend_inflight(sid);
            self.pump_queue(sid);
        }
        conn_id
    }

    /// The network side ended (EOF, error, decode failure): closes the
    /// connection as abnormal, so its will is published unless it sent
    /// DISCONNECT first.
    pub fn connection_lost(&mut self, conn: ConnId, now: u64) {
        self.now = now;
        self.close_conn(conn, true);
    }

    /// Frees `conn`'s empty output buffer (its spare room is kept across
    /// flushes while the connection is busy); for a connection going idle.
    pub fn shed_outbox(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if c.outbox.is_empty() {
                c.outbox = BytesMut::new();
            }
        }
    }

    /// Whether `conn` has bytes waiting or is closing (a parked connection
    /// with either must be resumed). False for an unknown connection.
    pub fn has_output(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.closing || !c.outbox.is_empty())
    }

    /// Whether `conn`'s outbox holds --max-outbox-bytes or more: the server
    /// stops reading from the client until it has taken some, so a client
    /// that sends but never reads cannot pile up replies.
    pub fn outbox_full(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.outbox.len() >= self.limits.max_outbox_bytes)
    }

    /// The server wrote what `take_output` gave it: room for the session's
    /// queued messages.
    pub fn output_written(&mut self, conn: ConnId) {
        if let Some(sid) = self.conns.get(&conn).map(|c| c.session) {
            self.pump_queue(sid);
        }
    }

    /// Whether `conn`'s session has QoS 1/2 messages in flight: their
    /// acknowledgements free memory, so the server keeps reading such a
    /// client even above the memory high-water mark.
    pub fn has_inflight(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .and_then(|c| self.sessions.get(&c.session))
            .is_some_and(|s| !s.inflight.is_empty())
    }

    /// Whether `conn`'s session has messages waiting behind a full
    /// in-flight window: its client's acknowledgements are what lets them
    /// go, so the server should read them without delay.
    pub fn awaits_acks(&self, conn: ConnId) -> bool {
        self.conns
            .get(&conn)
            .and_then(|c| self.sessions.get(&c.session))
            .is_some_and(|s| s.inflight.len() >= self.limits.max_inflight && !s.queue.is_empty())
    }

    /// Closes every connection, for shutdown.
    pub fn close_all(&mut self) {
        let all: Vec<ConnId> = self.conns.keys().collect();
        for conn in all {
            self.close_conn(conn, false);
        }
    }

    /// Moves the ids of connections with new output (or newly closing) into
    /// `out`.
    pub fn take_dirty_conns(&mut self, out: &mut Vec<ConnId>) {
        for id in &self.dirty_conns {
            if let Some(c) = self.conns.get_mut(id) {
                c.dirty = false;
            }
        }
        out.append(&mut self.dirty_conns);
    }

    /// The bytes to write to `conn`, and whether to close it once written.
    /// `None` for a connection that was released.
    pub fn take_output(&mut self, conn: ConnId) -> Option<(BytesMut, bool)> {
        let c = self.conns.get_mut(&conn)?;
        c.resent = false;
        // Split: the spare room stays for the next messages, so a busy
        // connection does not allocate per flush (see `shed_outbox` for
        // idle ones).
        Some((c.outbox.split(), c.closing))
    }

    /// Whether a session for `client_id` exists here (a CONNECT with this
    /// id will resume or take it over).
    pub fn has_session(&self, client_id: &str) -> bool {
        self.by_client.get(client_id, &self.sessions).is_some()
    }

    /// Puts back the part of `take_output`'s bytes the server could not
    /// write, ahead of anything queued since.
    pub fn return_output(&mut self, conn: ConnId, mut unsent: BytesMut) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !unsent.is_empty() {
                unsent.extend_from_slice(&c.outbox);
                c.outbox = unsent;
                self.mark_dirty(conn);
            }
        }
    }

    /// Forgets a closed connection once the server has finished with it.
    pub fn release(&mut self, conn: ConnId, now: u64) {
        self.now = now;
        self.close_conn(conn, true);
        self.conns.remove(&conn);
    }

    pub fn is_closing(&self, conn: ConnId) -> bool {
        self.conns.get(&conn).is_none_or(|c| c.closing)
    }

    /// The batch of messages for shard `dst`, emptied.
    pub fn take_outgoing(&mut self, dst: usize) -> Vec<ShardMessage> {
        let batch = std::mem::take(&mut self.outgoing[dst]);
        self.outgoing_len -= batch.iter().map(ShardMessage::weight).sum::<usize>();
        batch
    }

    /// Messages waiting to go to other shards, weighed by what they carry
    /// (a message for a thousand shared groups weighs a thousand); the
    /// server stops reading from clients while this is high (backpressure).
    pub fn outgoing_backlog(&self) -> usize {
        self.outgoing_len
    }

    /// Shards that have a batch waiting.
    pub fn shards_with_outgoing(&self) -> impl Iterator<Item = usize> + '_ {
        self.outgoing
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(i, _)| i)
    }

    fn send_to_shard(&mut self, dst: usize, msg: ShardMessage) {
        self.outgoing_len += msg.weight();
        self.outgoing[dst].push(msg);
    }

    fn broadcast(&mut self, msg: ShardMessage) {
        for dst in 0..self.shards {
            if dst != self.id {
                self.send_to_shard(dst, msg.clone());
            }
        }
    }

    fn mark_dirty(&mut self, conn: ConnId) {
        if let Some(c) = self.conns.get_mut(&conn) {
            if !c.dirty {
                c.dirty = true;
                self.dirty_conns.push(conn);
            }
        }
    }

    /// Marks `conn` closing, publishes its will if `abnormal` (or holds it
    /// for its Will Delay Interval while the session lives on), and
    /// detaches, discards or starts expiring its session. Idempotent.
    fn close_conn(&mut self, conn_id: ConnId, abnormal: bool) {
        let Some(conn) = self.conns.get_mut(&conn_id) else {
            return;
        };
        if conn.closing {
            return;
        }
        conn.closing = true;
        let will = conn.will.take();
        let sid = conn.session;
        self.mark_dirty(conn_id);
        let now = self.now;
        let owned = self.sessions.get(&sid).filter(|s| s.conn == Some(conn_id));
        let lives_on = owned.is_some_and(|s| s.persistent);
        if let Some(will) = will.filter(|_| abnormal) {
            let delay = will
                .properties
                .as_ref()
                .and_then(|p| p.will_delay_interval)
                .unwrap_or(0);
            if delay > 0 && lives_on {
                let due = now + u64::from(delay) * 1000;
                if let Some(s) = self.sessions.get_mut(&sid) {
                    s.delayed_will = Some((will, due));
                }
                self.session_timers.insert((due, sid));
            } else if self.will_permitted(sid, &will.topic) {
                self.publish_will(*will);
            }
        }
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        if session.conn != Some(conn_id) {
            return;
        }
        session.conn = None;
        let persistent = session.persistent;
        self.redistribute_shared(sid);
        let Some(session) = self.sessions.get_mut(&sid) else {
            return;
        };
        if !persistent {
            self.discard_session(sid);
        } else if let Some(at) = v5::expiry_deadline(now, session.expiry_secs) {
            session.expires_at = Some(at);
            self.session_timers.insert((at, sid));
        }
    }

    /// Removes a session and its subscriptions; its delayed will, if any,
    /// is published now (the session ended first [MQTT-3.1.3-9]).
    fn discard_session(&mut self, sid: SessionId) {
        let Some(mut session) = self.sessions.remove(&sid) else {
            return;
        };
        self.by_client.remove(&session.client_id, sid);
        self.cancel_session_timers(sid, &mut session);
        // A session that ends takes its undelivered messages with it (a
        // clean session, or one replaced by a clean start): counted.
        let undelivered = (session.queue.len() + session.inflight.len()) as u64;
        self.stats.dropped_session_ended += undelivered;
        self.stats.queue_departures += session.queue.len() as u64;
        for filter in session.subscriptions.keys() {
            self.remove_subscription(sid, filter);
        }
        let acl = self.acls.remove(&sid);
        if let Some((will, _)) = session.delayed_will.take() {
            if access::may_publish(acl.as_deref(), &will.topic) {
                self.publish_will(*will);
            } else {
                self.stats.publishes_denied += 1;
            }
        }
    }

    /// Session `sid`'s compiled ACL, if it has one.
    pub(super) fn acl_of(&self, sid: SessionId) -> Option<&SessionAcl> {
        if self.acls.is_empty() {
            return None;
        }
        self.acls.get(&sid).map(|a| &**a)
    }

    /// Whether session `sid`'s ACL lets its will on `topic` be published
    /// (counted when not).
    pub(super) fn will_permitted(&mut self, sid: SessionId, topic: &str) -> bool {
        if access::may_publish(self.acl_of(sid), topic) {
            return true;
        }
        tracing::debug!(shard = self.id, %topic, "will not published: the ACL denies it");
        self.stats.publishes_denied += 1;
        false
    }

    /// Compiles every session's ACL again from `acl_of(listener)` (the
    /// files were reloaded); returns how many were compiled.
    pub fn reload_acls(
        &mut self,
        acl_of: &dyn Fn(u16) -> Option<std::sync::Arc<crate::auth::AclFile>>,
    ) -> usize {
        let sessions = &self.sessions;
        self.acls.retain(|sid, acl| {
            let (Some(s), Some(file)) = (sessions.get(sid), acl_of(acl.listener)) else {
                return false;
            };
            **acl = SessionAcl::compile(
                &file,
                acl.listener,
                acl.username.take(),
                &s.client_id,
                s.subscriptions.keys(),
            );
            true
        });
        self.acls.len()
    }

    /// Forgets a session's expiry and will-delay deadlines (it came back,
    /// or it ends): each session has at most two timer entries.
    fn cancel_session_timers(&mut self, sid: SessionId, session: &mut Session) {
        if let Some(at) = session.expires_at.take() {
            self.session_timers.remove(&(at, sid));
        }
        if let Some((_, due)) = &session.delayed_will {
            self.session_timers.remove(&(*due, sid));
        }
    }

    /// A client id for an empty one, whose home shard is this shard, so that
    /// a later client using it explicitly lands here too.
    fn generate_client_id(&mut self) -> ByteString {
        loop {
            self.generated_ids += 1;
            let id = format!("ringmq-{}-{}", self.id, self.generated_ids);
            if home_shard(&id, self.shards) == self.id
                && self.by_client.get(&id, &self.sessions).is_none()
            {
                return ByteString::from(id);
            }
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum ConnackRefusal {
    IdentifierRejected,
    InvalidWill,
    BadAuthenticationMethod,
}

impl ConnackRefusal {
    /// The Reason String sent with a 5.0 refusal.
    fn describe(self) -> &'static str {
        match self {
            ConnackRefusal::IdentifierRejected => "client identifier refused (empty with a persistent session, or longer than --max-client-id-len)",
            ConnackRefusal::InvalidWill => "will topic is not a valid topic name, or beyond --max-topic-length / --max-topic-levels",
            ConnackRefusal::BadAuthenticationMethod => "no enhanced authentication method is configured",
        }
    }

    fn code(self, protocol: ProtocolVersion) -> u8 {
        match (self, protocol.is_v5()) {
            (ConnackRefusal::IdentifierRejected, false) => 0x02,
            (ConnackRefusal::IdentifierRejected, true) => 0x85,
            (ConnackRefusal::InvalidWill, false) => 0x03, // not sent, see connect()
            (ConnackRefusal::InvalidWill, true) => 0x90,
            // Only 5.0 CONNECTs carry an authentication method.
            (ConnackRefusal::BadAuthenticationMethod, _) => 0x8C,
        }
    }
}
