//! What the controller and the fleet threads share: the start signal, stop flags and counters
//! per rate step, and what each thread hands back at the end.
//!
//! Threads count into a local [`Tally`] and add it to the shared atomics every few
//! milliseconds, so 100,000 sends a second do not fight over one cache line.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::stats::{new_hist, SubStats};

/// Counters of one rate step.
#[derive(Default)]
pub struct StepCounters {
    /// Sends the schedule asked for.
    pub offered: AtomicU64,
    pub sent: AtomicU64,
    /// QoS 1 sends skipped because the publisher's in-flight window was full.
    pub window_full: AtomicU64,
    pub acked: AtomicU64,
    pub received: AtomicU64,
    pub duplicated: AtomicU64,
}

/// Shared by the controller and every fleet thread of a run.
pub struct Ctl {
    pub epoch: Instant,
    /// Start of the first step, ns since `epoch`; 0 until the controller sets it.
    pub t0_ns: AtomicU64,
    /// Threads stop opening connections (the rest count as not attempted).
    pub stop_opening: AtomicBool,
    /// Threads return.
    pub stop: AtomicBool,
    pub ready: AtomicU64,
    pub failed: AtomicU64,
    pub closed_by_broker: AtomicU64,
    pub ack_failures: AtomicU64,
    pub steps: Vec<StepCounters>,
    /// idle-fleet: the measurement window [w0, w1) in ns since `epoch` (0: not set).
    pub w0_ns: AtomicU64,
    pub w1_ns: AtomicU64,
    pub pings: AtomicU64,
    pub pongs: AtomicU64,
    /// A ping was due while the previous one still had no answer.
    pub ping_unanswered: AtomicU64,
    pub errors: Mutex<Vec<String>>,
}

impl Ctl {
    pub fn new(steps: usize) -> Ctl {
        Ctl {
            epoch: Instant::now(),
            t0_ns: AtomicU64::new(0),
            stop_opening: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            ready: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            closed_by_broker: AtomicU64::new(0),
            ack_failures: AtomicU64::new(0),
            steps: (0..steps).map(|_| StepCounters::default()).collect(),
            w0_ns: AtomicU64::new(0),
            w1_ns: AtomicU64::new(0),
            pings: AtomicU64::new(0),
            pongs: AtomicU64::new(0),
            ping_unanswered: AtomicU64::new(0),
            errors: Mutex::new(Vec::new()),
        }
    }

    pub fn now_ns(&self) -> u64 {
        self.epoch.elapsed().as_nanos() as u64
    }

    pub fn error(&self, e: String) {
        let mut errs = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errs.len() < 20 {
            errs.push(e);
        }
    }

    /// Sum of one counter over the steps.
    pub fn total(&self, f: impl Fn(&StepCounters) -> &AtomicU64) -> u64 {
        self.steps
            .iter()
            .map(|s| f(s).load(Ordering::Relaxed))
            .sum()
    }

    /// Whether `ts_ns` falls in the idle-fleet window.
    pub fn in_window(&self, ts_ns: u64) -> bool {
        let w0 = self.w0_ns.load(Ordering::Relaxed);
        w0 != 0 && ts_ns >= w0 && ts_ns < self.w1_ns.load(Ordering::Relaxed)
    }
}

/// A thread's counts not yet added to [`Ctl`].
#[derive(Default)]
pub struct Tally {
    /// offered, sent, window_full, acked, received, duplicated per step.
    steps: Vec<[u64; 6]>,
}

pub const OFFERED: usize = 0;
pub const SENT: usize = 1;
pub const WINDOW_FULL: usize = 2;
pub const ACKED: usize = 3;
pub const RECEIVED: usize = 4;
pub const DUPLICATED: usize = 5;

impl Tally {
    pub fn new(steps: usize) -> Tally {
        Tally {
            steps: vec![[0; 6]; steps],
        }
    }

    pub fn add(&mut self, step: usize, what: usize) {
        if let Some(s) = self.steps.get_mut(step) {
            s[what] += 1;
        }
    }

    pub fn flush(&mut self, ctl: &Ctl) {
        for (s, c) in self.steps.iter_mut().zip(&ctl.steps) {
            let dst = [
                &c.offered,
                &c.sent,
                &c.window_full,
                &c.acked,
                &c.received,
                &c.duplicated,
            ];
            for (v, d) in s.iter_mut().zip(dst) {
                if *v > 0 {
                    d.fetch_add(*v, Ordering::Relaxed);
                    *v = 0;
                }
            }
        }
    }
}

/// What a fleet thread hands back.
pub struct WorkerOut {
    /// Per step: what this thread's subscribers received.
    pub subs: Vec<SubStats>,
    /// Messages from before the first step or without a bench header.
    pub stray: u64,
    /// TCP connect → CONNACK (→ SUBACK) of every connection that became ready.
    pub connect_hist: Histogram<u64>,
    /// PINGREQ → PINGRESP.
    pub ping_hist: Histogram<u64>,
    pub failures: BTreeMap<String, u64>,
    pub not_attempted: u64,
}

impl WorkerOut {
    pub fn new(steps: usize) -> WorkerOut {
        WorkerOut {
            subs: (0..steps).map(|_| SubStats::new()).collect(),
            stray: 0,
            connect_hist: new_hist(),
            ping_hist: new_hist(),
            failures: BTreeMap::new(),
            not_attempted: 0,
        }
    }

    pub fn merge(&mut self, o: &WorkerOut) {
        for (a, b) in self.subs.iter_mut().zip(&o.subs) {
            a.merge(b);
        }
        self.stray += o.stray;
        let _ = self.connect_hist.add(&o.connect_hist);
        let _ = self.ping_hist.add(&o.ping_hist);
        for (k, v) in &o.failures {
            *self.failures.entry(k.clone()).or_insert(0) += v;
        }
        self.not_attempted += o.not_attempted;
    }
}
