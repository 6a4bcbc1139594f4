//! What a ready fleet connection does: publishers send on their schedule within a QoS 1
//! window, subscribers count and ack every delivery at once, idle clients ping.
//!
//! Every send time is read from the clock just before the packet is written and is the
//! one in the payload header, so the subscriber attributes a message to the same rate
//! step the publisher counted it in ([`crate::fleet_plan::StepPlan::step_at`]).

use std::sync::atomic::Ordering;

use ringmq::protocol::{encode_publish, Packet, QoS};

use crate::fleet::{kind, Phase, Role, Worker};
use crate::fleet_conn::pingreq_packet;
use crate::fleet_ctl::{ACKED, DUPLICATED, OFFERED, RECEIVED, SENT, WINDOW_FULL};
use crate::mqtt::ack;
use crate::payload::{self, Header};
use crate::stats::{Arrival, SeqTracker};

/// Sequences tracked per (subscriber, publisher) stream: a fleet publisher sends a few
/// hundred messages a step, so a small window keeps 10,000 streams in a few megabytes.
const TRACK_WINDOW: u64 = 4096;

impl Worker {
    /// Arms connection `i`'s first timer once it is ready (publishers: once the plan is known).
    pub fn start_role(&mut self, i: usize, now: u64) {
        let s = &mut self.slots[i];
        match s.role {
            Role::Publisher { .. } => {
                if let Some(plan) = &self.plan {
                    if let Some(at) = s.sched.due(plan) {
                        self.wheel.insert(at / 1_000_000, i as u32);
                    }
                }
            }
            Role::Idle { .. } if self.p.ping_every_ns > 0 => {
                // Random phase, as real clients that connected at different times.
                let phase = crate::fleet_plan::unit_hash(s.index as u64 ^ 0x5eed);
                let at = now + (phase * self.p.ping_every_ns as f64) as u64;
                self.wheel.insert(at / 1_000_000, i as u32);
            }
            _ => {}
        }
    }

    pub fn on_timer(&mut self, i: usize, now: u64) {
        if self.slots[i].phase != Phase::Ready {
            return;
        }
        match self.slots[i].role {
            Role::Publisher { .. } => self.publish_due(i, now),
            Role::Idle { .. } => self.ping(i, now),
            Role::Subscriber { .. } => {}
        }
    }

    /// Sends every publish of connection `i` due by `now`, then re-arms its timer.
    fn publish_due(&mut self, i: usize, now: u64) {
        // Out of `self` while the slot, wheel and tally are borrowed; put back below.
        let Some(plan) = self.plan.take() else { return };
        loop {
            let s = &mut self.slots[i];
            match s.sched.due(&plan) {
                None => break,
                Some(at) if at > now => {
                    self.wheel.insert(at / 1_000_000, i as u32);
                    break;
                }
                Some(_) => {
                    let step = s.sched.step;
                    s.sched.advance();
                    self.tally.add(step, OFFERED);
                    if self.p.qos != QoS::AtMostOnce && s.inflight >= self.p.inflight {
                        self.tally.add(step, WINDOW_FULL);
                        continue;
                    }
                    self.publish_one(i, &plan);
                }
            }
        }
        self.plan = Some(plan);
        self.flush(i);
    }

    fn publish_one(&mut self, i: usize, plan: &crate::fleet_plan::StepPlan) {
        let (qos, v) = (self.p.qos, self.p.version);
        let s = &mut self.slots[i];
        let Role::Publisher { id, topic } = &s.role else {
            return;
        };
        let Some(conn) = s.conn.as_mut() else { return };
        let ts = self.ctl.now_ns();
        let h = Header {
            ts_ns: ts,
            publisher: *id,
            seq: s.seq,
        };
        payload::write(&mut self.payload, h);
        s.seq += 1;
        if qos != QoS::AtMostOnce {
            s.packet_id = s.packet_id.checked_add(1).unwrap_or(1);
            s.inflight += 1;
        }
        let out = conn.queue();
        encode_publish(
            out,
            v,
            false,
            qos,
            false,
            topic,
            s.packet_id,
            &self.payload,
            None,
        );
        if let Some(step) = plan.step_at(ts) {
            self.tally.add(step, SENT);
        }
    }

    fn ping(&mut self, i: usize, now: u64) {
        let v = self.p.version;
        let s = &mut self.slots[i];
        let Some(conn) = s.conn.as_mut() else { return };
        if s.ping_ts != 0 && self.ctl.in_window(now) {
            self.ctl.ping_unanswered.fetch_add(1, Ordering::Relaxed);
        }
        pingreq_packet(v, conn.queue());
        s.ping_ts = now;
        if self.ctl.in_window(now) {
            self.ctl.pings.fetch_add(1, Ordering::Relaxed);
        }
        self.wheel
            .insert((now + self.p.ping_every_ns) / 1_000_000, i as u32);
        self.flush(i);
    }

    pub fn on_ready_packet(&mut self, i: usize, p: Packet, now: u64) {
        match p {
            Packet::Publish(p) => {
                self.record(i, &p.payload, now);
                if p.qos == QoS::AtLeastOnce {
                    if let Some(c) = self.slots[i].conn.as_mut() {
                        ack(Packet::PubAck, p.packet_id, self.p.version, c.queue());
                    }
                }
            }
            Packet::PubAck(a) => {
                let s = &mut self.slots[i];
                s.inflight = s.inflight.saturating_sub(1);
                if a.reason >= 0x80 {
                    self.ctl.ack_failures.fetch_add(1, Ordering::Relaxed);
                }
                // Acks are counted in the step being run when they arrive.
                let step = self.plan.as_ref().and_then(|p| p.step_at(now)).unwrap_or(0);
                self.tally.add(step, ACKED);
            }
            Packet::PingResp => {
                let s = &mut self.slots[i];
                if s.ping_ts != 0 {
                    if self.ctl.in_window(s.ping_ts) {
                        self.ctl.pongs.fetch_add(1, Ordering::Relaxed);
                    }
                    let rtt = now.saturating_sub(s.ping_ts).max(1);
                    self.out.ping_hist.saturating_record(rtt);
                    s.ping_ts = 0;
                }
            }
            p => self.fail(i, format!("unexpected {}", kind(&p))),
        }
    }

    /// Counts one delivery to subscriber `i`: its step, latency, and order per publisher.
    fn record(&mut self, i: usize, body: &[u8], now: u64) {
        let Role::Subscriber { scope, .. } = self.slots[i].role else {
            return;
        };
        self.ensure_plan();
        let h = payload::read(body);
        let step = h.and_then(|h| self.plan.as_ref()?.step_at(h.ts_ns));
        let (Some(h), Some(step)) = (h, step) else {
            self.out.stray += 1;
            return;
        };
        let st = &mut self.out.subs[step];
        st.received += 1;
        st.hist
            .saturating_record(now.saturating_sub(h.ts_ns).max(1));
        let a = self
            .trackers
            .entry((scope, h.publisher))
            .or_insert_with(|| SeqTracker::with_window(TRACK_WINDOW))
            .observe(h.seq);
        st.count(a);
        self.tally.add(step, RECEIVED);
        if a == Arrival::Duplicate {
            self.tally.add(step, DUPLICATED);
        }
    }
}
