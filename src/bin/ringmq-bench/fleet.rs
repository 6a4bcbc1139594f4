//! The fleet engine: one thread drives thousands of non-blocking MQTT connections from one
//! `mio` loop: opens them at a bounded rate, completes CONNECT → CONNACK (→ SUBSCRIBE →
//! SUBACK), then lets each act on its own timer ([`crate::fleet_roles`]).
//!
//! A thread per connection (the p2p/fanin scenarios) caps out near 1,000 connections; the
//! devices MQTT exists for are thousands of mostly idle clients, which is this shape.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use mio::{Events, Interest, Poll, Token};
use ringmq::protocol::{Packet, ProtocolVersion, QoS};

use crate::args::source_ip;
use crate::fleet_conn::{cause, connect_packet, Conn};
use crate::fleet_ctl::{Ctl, Tally, WorkerOut};
use crate::fleet_plan::{unit_hash, Schedule, StepPlan};
use crate::fleet_sched::Wheel;
use crate::mqtt::subscribe_packet;
use crate::stats::SeqTracker;

/// What a connection does once ready.
pub enum Role {
    /// Publishes to `topic` on the step plan; `id` goes in the payload header.
    Publisher { id: u32, topic: String },
    /// Subscribes to `filter` and counts what arrives; subscribers with the same `scope`
    /// share duplicate tracking (the members of one shared group).
    Subscriber { filter: String, scope: u32 },
    /// Subscribes to `filter`, then only sends PINGREQ every keep-alive period.
    Idle { filter: String },
}

/// One connection to open: `index` is its place in the run's opening order.
pub struct ConnSpec {
    pub index: usize,
    pub role: Role,
}

/// Settings every fleet thread of a run shares.
pub struct FleetParams {
    pub target: SocketAddr,
    pub version: ProtocolVersion,
    pub qos: QoS,
    pub inflight: u32,
    pub payload: usize,
    pub keep_alive: u16,
    /// Connections opened per second over all threads (connection i at open_at + i / rate).
    pub connect_rate: u64,
    pub open_at_ns: u64,
    pub connect_timeout_ns: u64,
    /// Idle connections ping this often (0: never).
    pub ping_every_ns: u64,
    /// The step plan; its `t0_ns` is filled in from [`Ctl`] once the controller starts it.
    pub plan: StepPlan,
    /// Client id prefix.
    pub tag: String,
    /// `--tls-ca`: connect over TLS.
    pub tls: Option<crate::tls::TlsClient>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    NotOpened,
    Connecting,
    ConnAck,
    SubAck,
    Ready,
    Dead,
}

pub struct Slot {
    pub conn: Option<Conn>,
    pub role: Role,
    pub phase: Phase,
    pub index: usize,
    pub opened_ns: u64,
    pub inflight: u32,
    pub seq: u64,
    pub packet_id: u16,
    pub sched: Schedule,
    /// When the unanswered PINGREQ was sent (0: none).
    pub ping_ts: u64,
}

/// Handshakes in progress per thread at most: beyond it the broker's accept backlog, not
/// the broker, would be measured.
const MAX_HANDSHAKES: usize = 1024;
/// Ring of the timer wheel: 4 s of 1 ms buckets; longer waits take laps.
const WHEEL_SLOTS: usize = 4096;

pub struct Worker {
    pub p: Arc<FleetParams>,
    pub ctl: Arc<Ctl>,
    pub poll: Poll,
    pub slots: Vec<Slot>,
    pub wheel: Wheel,
    pub plan: Option<StepPlan>,
    pub tally: Tally,
    pub out: WorkerOut,
    pub trackers: HashMap<(u32, u32), SeqTracker>,
    pub payload: Vec<u8>,
    scratch: Vec<u8>,
    handshaking: usize,
    next_open: usize,
}

impl Worker {
    pub fn new(p: Arc<FleetParams>, ctl: Arc<Ctl>, specs: Vec<ConnSpec>) -> std::io::Result<Self> {
        let steps = p.plan.steps();
        let now_ms = ctl.now_ns() / 1_000_000;
        let slots = specs
            .into_iter()
            .map(|s| Slot {
                conn: None,
                role: s.role,
                phase: Phase::NotOpened,
                index: s.index,
                opened_ns: 0,
                inflight: 0,
                seq: 0,
                packet_id: 0,
                sched: Schedule::new(unit_hash(s.index as u64)),
                ping_ts: 0,
            })
            .collect();
        Ok(Worker {
            payload: vec![0; p.payload],
            p,
            ctl,
            poll: Poll::new()?,
            slots,
            wheel: Wheel::new(WHEEL_SLOTS, now_ms),
            plan: None,
            tally: Tally::new(steps),
            out: WorkerOut::new(steps),
            trackers: HashMap::new(),
            scratch: vec![0; 1 << 16],
            handshaking: 0,
            next_open: 0,
        })
    }

    /// Runs until the controller says stop; returns this thread's counts.
    pub fn run(mut self) -> WorkerOut {
        let mut events = Events::with_capacity(1024);
        let mut due = Vec::new();
        let mut last_flush = 0;
        let mut last_timeout_scan = 0;
        while !self.ctl.stop.load(Ordering::Relaxed) {
            let now = self.ctl.now_ns();
            self.open_due(now);
            self.ensure_plan();
            due.clear();
            self.wheel.advance(now / 1_000_000, &mut due);
            for &t in &due {
                self.on_timer(t as usize, now);
            }
            if now - last_timeout_scan > 100_000_000 && self.handshaking > 0 {
                last_timeout_scan = now;
                self.expire_handshakes(now);
            }
            if now - last_flush > 5_000_000 {
                last_flush = now;
                self.tally.flush(&self.ctl);
            }
            let busy = self.wheel.next_visit().is_some() || self.next_open < self.slots.len();
            let timeout = Duration::from_millis(if busy { 1 } else { 20 });
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.ctl.error(format!("poll: {e}"));
                    break;
                }
            }
            for ev in events.iter() {
                self.on_event(ev.token().0);
            }
        }
        self.tally.flush(&self.ctl);
        self.out.not_attempted += self.slots.len().saturating_sub(self.next_open) as u64;
        self.out
    }

    /// Builds the step plan once the controller has set the start.
    pub fn ensure_plan(&mut self) {
        if self.plan.is_some() {
            return;
        }
        let t0 = self.ctl.t0_ns.load(Ordering::Acquire);
        if t0 == 0 {
            return;
        }
        let mut plan = self.p.plan.clone();
        plan.t0_ns = t0;
        self.plan = Some(plan);
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            if s.phase == Phase::Ready && matches!(s.role, Role::Publisher { .. }) {
                self.start_role(i, self.ctl.now_ns());
            }
        }
    }

    /// Opens every connection whose time has come, within the handshake bound.
    fn open_due(&mut self, now: u64) {
        while self.next_open < self.slots.len() && self.handshaking < MAX_HANDSHAKES {
            if self.ctl.stop_opening.load(Ordering::Relaxed) {
                return;
            }
            let i = self.next_open;
            let index = self.slots[i].index as u64;
            let rate = self.p.connect_rate.max(1);
            if self.p.open_at_ns + index * 1_000_000_000 / rate > now {
                return;
            }
            self.next_open += 1;
            self.open(i, now);
        }
    }

    fn open(&mut self, i: usize, now: u64) {
        let index = self.slots[i].index;
        let local = source_ip(self.p.target.ip(), index);
        let mut conn = match Conn::open(self.p.target, local, self.p.tls.as_ref()) {
            Ok(c) => c,
            Err(e) => return self.fail(i, cause("connect", &e)),
        };
        let reg = self.poll.registry().register(
            &mut conn.stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        );
        if let Err(e) = reg {
            return self.fail(i, cause("register", &e));
        }
        let id = format!("{}-{index}", self.p.tag);
        connect_packet(self.p.version, &id, self.p.keep_alive, conn.queue());
        let s = &mut self.slots[i];
        s.conn = Some(conn);
        s.phase = Phase::Connecting;
        s.opened_ns = now;
        self.handshaking += 1;
    }

    fn on_event(&mut self, i: usize) {
        let Some(conn) = self.slots.get_mut(i).and_then(|s| s.conn.as_mut()) else {
            return;
        };
        match conn.check_established() {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => return self.fail(i, cause("connect", &e)),
        }
        if self.slots[i].phase == Phase::Connecting {
            self.slots[i].phase = Phase::ConnAck;
        }
        let Some(conn) = self.slots[i].conn.as_mut() else {
            return;
        };
        let open = match conn.read_all(&mut self.scratch) {
            Ok(open) => open,
            Err(e) => return self.fail(i, cause("read", &e)),
        };
        loop {
            let Some(conn) = self.slots[i].conn.as_mut() else {
                return;
            };
            match conn.next_packet(self.p.version) {
                Ok(Some(p)) => self.on_packet(i, p),
                Ok(None) => break,
                Err(e) => return self.fail(i, format!("decode: {e}")),
            }
        }
        if !open {
            return self.fail(i, "closed by the broker".into());
        }
        self.flush(i);
    }

    /// Writes what is queued on connection `i`.
    pub fn flush(&mut self, i: usize) {
        if let Some(conn) = self.slots[i].conn.as_mut() {
            if let Err(e) = conn.flush() {
                self.fail(i, cause("write", &e));
            }
        }
    }

    fn on_packet(&mut self, i: usize, p: Packet) {
        let now = self.ctl.now_ns();
        match (self.slots[i].phase, p) {
            (Phase::ConnAck, Packet::ConnAck(a)) if a.code == 0 => {
                if let Role::Subscriber { filter, .. } | Role::Idle { filter } = &self.slots[i].role
                {
                    let qos = match self.slots[i].role {
                        Role::Idle { .. } => QoS::AtLeastOnce,
                        _ => self.p.qos,
                    };
                    let sub = subscribe_packet(&[filter.as_str()], qos, self.p.version);
                    if let Some(c) = self.slots[i].conn.as_mut() {
                        c.queue().extend_from_slice(&sub);
                    }
                    self.slots[i].phase = Phase::SubAck;
                } else {
                    self.ready(i, now);
                }
            }
            (Phase::ConnAck, Packet::ConnAck(a)) => {
                self.fail(i, format!("CONNACK refused {:#04x}", a.code))
            }
            (Phase::SubAck, Packet::SubAck(a)) => match a.codes.first() {
                Some(&c) if c < 0x80 => self.ready(i, now),
                c => self.fail(i, format!("SUBACK refused {c:02x?}")),
            },
            (Phase::SubAck, Packet::Publish(_)) => {}
            (Phase::Ready, p) => self.on_ready_packet(i, p, now),
            (phase, p) => self.fail(i, format!("in {phase:?}: unexpected {}", kind(&p))),
        }
    }

    fn ready(&mut self, i: usize, now: u64) {
        self.handshaking -= 1;
        let s = &mut self.slots[i];
        s.phase = Phase::Ready;
        self.out
            .connect_hist
            .saturating_record(now.saturating_sub(s.opened_ns).max(1));
        self.ctl.ready.fetch_add(1, Ordering::Relaxed);
        // Before ensure_plan: a plan that appears now arms every ready publisher, this one too.
        self.start_role(i, now);
        self.ensure_plan();
    }

    fn expire_handshakes(&mut self, now: u64) {
        for i in 0..self.slots.len() {
            let s = &self.slots[i];
            let waiting = matches!(s.phase, Phase::Connecting | Phase::ConnAck | Phase::SubAck);
            if waiting && now.saturating_sub(s.opened_ns) > self.p.connect_timeout_ns {
                let what = format!("timeout in {:?}", s.phase);
                self.fail(i, what);
            }
        }
    }

    /// Counts a failure of connection `i` by cause and closes it.
    pub fn fail(&mut self, i: usize, why: String) {
        let s = &mut self.slots[i];
        match s.phase {
            Phase::Ready => {
                self.ctl.closed_by_broker.fetch_add(1, Ordering::Relaxed);
                if !self.ctl.stop.load(Ordering::Relaxed) {
                    self.ctl.error(format!("connection {}: {why}", s.index));
                }
            }
            Phase::Dead => return,
            Phase::NotOpened => {
                self.ctl.failed.fetch_add(1, Ordering::Relaxed);
                *self.out.failures.entry(why).or_insert(0) += 1;
            }
            _ => {
                self.handshaking -= 1;
                self.ctl.failed.fetch_add(1, Ordering::Relaxed);
                *self.out.failures.entry(why).or_insert(0) += 1;
            }
        }
        s.phase = Phase::Dead;
        if let Some(mut c) = s.conn.take() {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }
}

pub fn kind(p: &Packet) -> &'static str {
    match p {
        Packet::Connect(_) => "CONNECT",
        Packet::ConnAck(_) => "CONNACK",
        Packet::Publish(_) => "PUBLISH",
        Packet::PubAck(_) => "PUBACK",
        Packet::PubRec(_) => "PUBREC",
        Packet::PubRel(_) => "PUBREL",
        Packet::PubComp(_) => "PUBCOMP",
        Packet::Subscribe(_) => "SUBSCRIBE",
        Packet::SubAck(_) => "SUBACK",
        Packet::Unsubscribe(_) => "UNSUBSCRIBE",
        Packet::UnsubAck(_) => "UNSUBACK",
        Packet::PingReq => "PINGREQ",
        Packet::PingResp => "PINGRESP",
        Packet::Disconnect(_) => "DISCONNECT",
        Packet::Auth(_) => "AUTH",
    }
}
