//! One churn thread: starts short-lived clients on the step plan (open loop, at most `cap`
//! in progress), each doing TCP connect (→ TLS handshake with `--tls-ca`) → CONNECT →
//! CONNACK → PUBLISH (→ PUBACK) → DISCONNECT (→ close_notify) → close.
//!
//! Open loop because real devices reconnect on their own clocks, not when the broker is
//! ready: a start that finds `cap` clients in progress is skipped and counted, so an
//! overloaded broker shows as fewer completions rather than a slower offered rate.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use mio::{Events, Interest, Poll, Token};
use ringmq::protocol::{encode_publish, Packet, QoS};

use crate::args::{source_ip, Config};
use crate::fleet::kind;
use crate::fleet_conn::{cause, connect_packet, disconnect_packet, Conn};
use crate::fleet_ctl::Ctl;
use crate::fleet_plan::{Schedule, StepPlan};
use crate::payload::{self, Header};
use crate::stats::new_hist;

/// What one step's clients did (on this thread).
pub struct ChurnStep {
    pub started: u64,
    pub skipped_at_cap: u64,
    pub completed: u64,
    /// TLS handshakes that resumed a session (`--tls-resume`).
    pub tls_resumed: u64,
    pub failures: BTreeMap<String, u64>,
    pub connack_hist: Histogram<u64>,
}

impl ChurnStep {
    pub fn new() -> ChurnStep {
        ChurnStep {
            started: 0,
            skipped_at_cap: 0,
            completed: 0,
            tls_resumed: 0,
            failures: BTreeMap::new(),
            connack_hist: new_hist(),
        }
    }

    pub fn merge(&mut self, o: &ChurnStep) {
        self.started += o.started;
        self.skipped_at_cap += o.skipped_at_cap;
        self.completed += o.completed;
        self.tls_resumed += o.tls_resumed;
        for (k, v) in &o.failures {
            *self.failures.entry(k.clone()).or_insert(0) += v;
        }
        let _ = self.connack_hist.add(&o.connack_hist);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    ConnAck,
    PubAck,
}

struct Client {
    conn: Conn,
    state: State,
    index: u64,
    step: usize,
    started_ns: u64,
}

pub struct ChurnThread {
    pub cfg: Arc<Config>,
    pub ctl: Arc<Ctl>,
    pub plan: StepPlan,
    /// This thread's number and the number of churn threads (client indices interleave).
    pub me: usize,
    pub threads: usize,
    pub cap: usize,
}

impl ChurnThread {
    /// Runs the plan; returns once it is over and every client finished or timed out.
    pub fn run(self) -> Vec<ChurnStep> {
        let mut steps: Vec<ChurnStep> = (0..self.plan.steps()).map(|_| ChurnStep::new()).collect();
        let mut poll = match Poll::new() {
            Ok(p) => p,
            Err(e) => {
                self.ctl.error(format!("churn poll: {e}"));
                return steps;
            }
        };
        let mut slots: Vec<Option<Client>> = (0..self.cap).map(|_| None).collect();
        let mut free: Vec<usize> = (0..self.cap).rev().collect();
        let mut sched = Schedule::new(self.me as f64 / self.threads as f64);
        let mut events = Events::with_capacity(1024);
        let (mut started, mut last_scan, mut scratch) = (0u64, 0u64, vec![0u8; 4096]);
        let timeout_ns = self.cfg.args.connect_timeout.max(1) * 1_000_000_000;
        loop {
            let now = self.ctl.now_ns();
            while sched.due(&self.plan).is_some_and(|at| at <= now) {
                let step = sched.step;
                sched.advance();
                self.ctl.steps[step].offered.fetch_add(1, Ordering::Relaxed);
                let Some(slot) = free.pop() else {
                    steps[step].skipped_at_cap += 1;
                    continue;
                };
                let index = (self.me + self.threads * started as usize) as u64;
                started += 1;
                steps[step].started += 1;
                match self.start(&poll, slot, index, step, now) {
                    Ok(c) => slots[slot] = Some(c),
                    Err(why) => {
                        *steps[step].failures.entry(why).or_insert(0) += 1;
                        free.push(slot);
                    }
                }
            }
            let busy = free.len() < self.cap;
            let over = sched.due(&self.plan).is_none();
            if (over && !busy) || self.ctl.stop.load(Ordering::Relaxed) {
                break;
            }
            if now - last_scan > 50_000_000 {
                last_scan = now;
                for (slot, c) in slots.iter_mut().enumerate() {
                    if let Some(cl) = c.as_ref().filter(|c| now - c.started_ns > timeout_ns) {
                        let why = format!("timeout in {:?}", cl.state);
                        *steps[cl.step].failures.entry(why).or_insert(0) += 1;
                        close(&poll, c);
                        free.push(slot);
                    }
                }
            }
            if let Err(e) = poll.poll(&mut events, Some(Duration::from_millis(1))) {
                if e.kind() != std::io::ErrorKind::Interrupted {
                    self.ctl.error(format!("churn poll: {e}"));
                    break;
                }
            }
            for ev in events.iter() {
                let slot = ev.token().0;
                let Some(cl) = slots.get_mut(slot).and_then(|c| c.as_mut()) else {
                    continue;
                };
                let step = cl.step;
                match self.on_event(cl, &mut scratch, &mut steps[step]) {
                    Ok(false) => {}
                    Ok(true) => {
                        steps[step].completed += 1;
                        close(&poll, &mut slots[slot]);
                        free.push(slot);
                    }
                    Err(why) => {
                        *steps[step].failures.entry(why).or_insert(0) += 1;
                        close(&poll, &mut slots[slot]);
                        free.push(slot);
                    }
                }
            }
        }
        for c in slots.iter_mut() {
            if let Some(cl) = c.as_ref() {
                *steps[cl.step]
                    .failures
                    .entry("unfinished at stop".into())
                    .or_insert(0) += 1;
                close(&poll, c);
            }
        }
        steps
    }

    fn start(
        &self,
        poll: &Poll,
        slot: usize,
        index: u64,
        step: usize,
        now: u64,
    ) -> Result<Client, String> {
        // Index 0 is the subscriber; each client its own source address slot, so TIME_WAIT
        // from thousands of closed clients never exhausts one address's ports.
        let local = source_ip(self.cfg.target.ip(), 1 + index as usize);
        let mut conn = Conn::open(self.cfg.target, local, self.cfg.tls.as_ref())
            .map_err(|e| cause("connect", &e))?;
        poll.registry()
            .register(
                &mut conn.stream,
                Token(slot),
                Interest::READABLE | Interest::WRITABLE,
            )
            .map_err(|e| cause("register", &e))?;
        let id = format!("rb{}-churn-{index}", std::process::id());
        connect_packet(self.cfg.version, &id, 30, conn.queue());
        Ok(Client {
            conn,
            state: State::Connecting,
            index,
            step,
            started_ns: now,
        })
    }

    /// Advances a client on an event: `Ok(true)` once it is done and may be closed.
    fn on_event(
        &self,
        cl: &mut Client,
        scratch: &mut [u8],
        st: &mut ChurnStep,
    ) -> Result<bool, String> {
        match cl.conn.check_established() {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err(e) => return Err(cause("connect", &e)),
        }
        if cl.state == State::Connecting {
            cl.state = State::ConnAck;
        }
        let open = cl.conn.read_all(scratch).map_err(|e| cause("read", &e))?;
        let v = self.cfg.version;
        let mut done = false;
        while let Some(p) = cl.conn.next_packet(v).map_err(|e| format!("decode: {e}"))? {
            match (cl.state, p) {
                (State::ConnAck, Packet::ConnAck(a)) if a.code == 0 => {
                    let now = self.ctl.now_ns();
                    st.connack_hist
                        .saturating_record(now.saturating_sub(cl.started_ns).max(1));
                    st.tls_resumed += cl.conn.tls_resumed() as u64;
                    self.publish(cl, now);
                    if self.cfg.qos == QoS::AtMostOnce {
                        done = true;
                    } else {
                        cl.state = State::PubAck;
                    }
                }
                (State::ConnAck, Packet::ConnAck(a)) => {
                    return Err(format!("CONNACK refused {:#04x}", a.code))
                }
                (State::PubAck, Packet::PubAck(a)) if a.reason < 0x80 => {
                    self.ctl.steps[cl.step]
                        .acked
                        .fetch_add(1, Ordering::Relaxed);
                    done = true;
                }
                (State::PubAck, Packet::PubAck(a)) => {
                    return Err(format!("PUBACK refused {:#04x}", a.reason))
                }
                (s, p) => return Err(format!("in {s:?}: unexpected {}", kind(&p))),
            }
        }
        if done {
            disconnect_packet(v, cl.conn.queue());
            cl.conn.close_notify().map_err(|e| cause("write", &e))?;
        }
        cl.conn.flush().map_err(|e| cause("write", &e))?;
        if !open && !done {
            return Err(format!("closed by the broker in {:?}", cl.state));
        }
        Ok(done)
    }

    fn publish(&self, cl: &mut Client, now: u64) {
        let mut body = vec![0u8; self.cfg.args.payload];
        // All churn messages are one stream (publisher 0) numbered by client.
        payload::write(
            &mut body,
            Header {
                ts_ns: now,
                publisher: 0,
                seq: cl.index,
            },
        );
        let topic = format!("bench/churn/{}", cl.index);
        encode_publish(
            cl.conn.queue(),
            self.cfg.version,
            false,
            self.cfg.qos,
            false,
            &topic,
            1,
            &body,
            None,
        );
        if let Some(k) = self.plan.step_at(now) {
            self.ctl.steps[k].sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn close(poll: &Poll, c: &mut Option<Client>) {
    if let Some(mut cl) = c.take() {
        let _ = poll.registry().deregister(&mut cl.conn.stream);
    }
}
