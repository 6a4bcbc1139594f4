//! Keepalive expiry and silence (parking) checks, driven by the shard's
//! tick through two timer wheels (`broker::deadlines`), so a tick's work is
//! proportional to the connections that come due, not to all of them.

use super::Shard;
use crate::broker::deadlines::{slot_of, Slot};
use crate::broker::session::ConnId;

impl Shard {
    /// Sets --park-after-ms (0: never park); connections accepted from now
    /// on are watched for silence.
    pub fn set_park_after(&mut self, ms: u64) {
        self.silence_ms = ms;
    }

    /// Starts the keepalive and silence checks of a new connection.
    pub(super) fn watch_conn(&mut self, conn: ConnId, now: u64) {
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if c.keep_alive_ms > 0 {
            let at = slot_of(now + u64::from(c.keep_alive_ms));
            self.schedule_keepalive(conn, at);
        }
        if self.silence_ms > 0 {
            self.schedule_silence(conn, slot_of(now + self.silence_ms));
        }
    }

    fn schedule_keepalive(&mut self, conn: ConnId, at: Slot) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.keepalive_due = at;
            self.keepalives.schedule(conn, at);
        }
    }

    fn schedule_silence(&mut self, conn: ConnId, at: Slot) {
        if let Some(c) = self.conns.get_mut(&conn) {
            c.silence_due = at;
            self.silences.schedule(conn, at);
        }
    }

    /// Closes connections whose keepalive expired [MQTT-3.1.2-24] (no
    /// packet within 1.5 x keepalive), at most one tick late.
    pub fn tick(&mut self, now: u64) {
        self.now = now;
        let mut due = std::mem::take(&mut self.due_scratch);
        self.keepalives.due(now, &mut due);
        for &(conn, slot) in &due {
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            if c.closing || c.keepalive_due != slot {
                continue;
            }
            let deadline = c.last_seen + u64::from(c.keep_alive_ms);
            if now > deadline {
                tracing::debug!(shard = self.id, conn, "keepalive expired");
                self.disconnect_v5(conn, 0x8D, "keep alive timeout");
                self.close_conn(conn, true);
            } else {
                self.schedule_keepalive(conn, slot_of(deadline));
            }
        }
        due.clear();
        self.due_scratch = due;
        self.retain.purge_expired(now);
        self.retain.purge_tombstones(now);
        self.run_session_timers(now);
    }

    /// Publishes delayed wills and ends expired sessions whose time came
    /// (5.0 Will Delay Interval and Session Expiry Interval).
    fn run_session_timers(&mut self, now: u64) {
        while let Some(&(at, sid)) = self.session_timers.first() {
            if at > now {
                break;
            }
            self.session_timers.pop_first();
            let Some(session) = self.sessions.get_mut(&sid) else {
                continue;
            };
            if session.conn.is_some() {
                continue;
            }
            if session
                .delayed_will
                .as_ref()
                .is_some_and(|(_, due)| *due <= now)
            {
                if let Some((will, _)) = session.delayed_will.take() {
                    if self.will_permitted(sid, &will.topic) {
                        self.publish_will(*will);
                    }
                }
            }
            let expired = self
                .sessions
                .get(&sid)
                .and_then(|s| s.expires_at)
                .is_some_and(|at| at <= now);
            if expired {
                tracing::debug!(shard = self.id, session = sid, "session expired");
                self.stats.sessions_expired += 1;
                self.discard_session(sid);
            }
        }
    }

    /// Connections that have sent nothing for --park-after-ms and are
    /// neither closing nor parked, appended to `out`: the server parks them
    /// (or, if it wrote to one lately, asks again a silence later).
    pub fn silent_conns(&mut self, now: u64, out: &mut Vec<ConnId>) {
        if self.silence_ms == 0 {
            return;
        }
        let mut due = std::mem::take(&mut self.due_scratch);
        self.silences.due(now, &mut due);
        for &(conn, slot) in &due {
            let Some(c) = self.conns.get(&conn) else {
                continue;
            };
            if c.closing || c.parked || c.silence_due != slot {
                continue;
            }
            let quiet_until = c.last_seen + self.silence_ms;
            if now >= quiet_until {
                out.push(conn);
                self.schedule_silence(conn, slot_of(now + self.silence_ms));
            } else {
                self.schedule_silence(conn, slot_of(quiet_until));
            }
        }
        due.clear();
        self.due_scratch = due;
    }

    /// The server parked `conn` (true) or resumed it (false): a parked
    /// connection costs no silence checks; a resumed one is watched again.
    pub fn set_parked(&mut self, conn: ConnId, parked: bool, now: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let was = std::mem::replace(&mut c.parked, parked);
        if was && !parked && self.silence_ms > 0 {
            self.schedule_silence(conn, slot_of(now + self.silence_ms));
        }
    }
}
