//! The controller's side of a fleet run, shared by iot, churn and idle-fleet: start the
//! threads, wait (bounded) for every connection, keep time, collect the threads' counts.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};

use crate::args::Config;
use crate::fleet::{ConnSpec, FleetParams, Worker};
use crate::fleet_ctl::{Ctl, WorkerOut};
use crate::fleet_plan::StepPlan;
use crate::scenario::round3;
use crate::stats::{self, ProcSample};

/// Settings for a run's threads; `ping_every_ns` is 0 except for idle-fleet.
pub fn params(cfg: &Config, ctl: &Ctl, senders: usize, keep_alive: u16) -> FleetParams {
    let a = &cfg.args;
    FleetParams {
        target: cfg.target,
        version: cfg.version,
        qos: cfg.qos,
        inflight: a.inflight as u32,
        payload: a.payload,
        keep_alive,
        connect_rate: cfg.connect_rate,
        open_at_ns: ctl.now_ns(),
        connect_timeout_ns: a.connect_timeout.max(1) * 1_000_000_000,
        ping_every_ns: 0,
        plan: StepPlan {
            t0_ns: 0,
            step_ns: a.step_secs * 1_000_000_000,
            rates: a.rates.clone(),
            senders: senders.max(1),
        },
        tag: format!("rb{}", std::process::id()),
        tls: cfg.tls.clone(),
    }
}

/// Keep-alive for connections that must outlive the whole run without pinging (a
/// subscriber at QoS 0 sends nothing, and the broker would close it after 1.5 × this).
pub fn long_keep_alive(budget_secs: u64) -> u16 {
    (budget_secs + 60).min(u16::MAX as u64) as u16
}

/// One thread per list of connections.
pub fn spawn(
    p: &Arc<FleetParams>,
    ctl: &Arc<Ctl>,
    groups: Vec<Vec<ConnSpec>>,
) -> Vec<JoinHandle<WorkerOut>> {
    groups
        .into_iter()
        .filter(|g| !g.is_empty())
        .map(|specs| {
            let w = Worker::new(p.clone(), ctl.clone(), specs);
            let steps = p.plan.steps();
            std::thread::spawn(move || match w {
                Ok(w) => w.run(),
                Err(e) => {
                    let mut out = WorkerOut::new(steps);
                    out.failures.insert(format!("poll: {e}"), 1);
                    out
                }
            })
        })
        .collect()
}

/// Waits until `total` connections are ready or failed, or `budget_secs` passed (then the
/// threads stop opening). Returns the seconds it took.
pub fn wait_open(ctl: &Ctl, total: usize, budget_secs: u64) -> f64 {
    let start = ctl.now_ns();
    let mut tick = start;
    loop {
        let (ready, failed) = (
            ctl.ready.load(Ordering::Relaxed),
            ctl.failed.load(Ordering::Relaxed),
        );
        let now = ctl.now_ns();
        if ready + failed >= total as u64 {
            break;
        }
        if now - start > budget_secs * 1_000_000_000 {
            ctl.stop_opening.store(true, Ordering::Relaxed);
            eprintln!("opening: gave up after {budget_secs} s");
            break;
        }
        if now - tick >= 1_000_000_000 {
            tick = now;
            eprintln!(
                "[{:>3}s] opening: ready {ready} failed {failed} of {total}",
                (now - start) / 1_000_000_000
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (ctl.now_ns() - start) as f64 / 1e9
}

pub fn sleep_until(ctl: &Ctl, at_ns: u64) {
    let now = ctl.now_ns();
    if at_ns > now {
        std::thread::sleep(Duration::from_nanos(at_ns - now));
    }
}

/// Stops the threads and merges what they counted.
pub fn finish(ctl: &Ctl, handles: Vec<JoinHandle<WorkerOut>>, steps: usize) -> WorkerOut {
    ctl.stop.store(true, Ordering::Relaxed);
    let mut total = WorkerOut::new(steps);
    for h in handles {
        if let Ok(o) = h.join() {
            total.merge(&o);
        }
    }
    total
}

/// The broker between two samples: CPU seconds, RSS at the end, its high-water mark.
pub fn broker_step(a: Option<ProcSample>, b: Option<ProcSample>) -> Value {
    match (a, b) {
        (Some(a), Some(b)) => json!({
            "cpu_seconds": round3(b.cpu_s - a.cpu_s),
            "rss_kb": b.rss_kb,
            "peak_rss_kb": b.hwm_kb,
        }),
        _ => Value::Null,
    }
}

pub fn sample(cfg: &Config) -> Option<ProcSample> {
    cfg.args.broker_pid.and_then(stats::sample)
}

/// The whole machine's CPU seconds so far from /proc/stat: (busy, softirq). Softirq time
/// (loopback TCP's receive work) is charged to no process, and other work on the machine
/// shows here too, so a step where the machine was saturated can be told apart.
pub fn machine_cpu() -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let f: Vec<u64> = line
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...
    let (idle, iowait) = (*f.get(3)?, *f.get(4)?);
    let busy: u64 = f.iter().take(8).sum::<u64>() - idle - iowait;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    Some((busy as f64 / tck, *f.get(6)? as f64 / tck))
}

/// What the whole machine did between two [`machine_cpu`] readings over `secs`.
pub fn machine_step(a: Option<(f64, f64)>, b: Option<(f64, f64)>, secs: f64) -> Value {
    match (a, b) {
        (Some(a), Some(b)) => json!({
            "busy_cores": round3((b.0 - a.0) / secs.max(1e-9)),
            "softirq_seconds": round3(b.1 - a.1),
            "cores": std::thread::available_parallelism().map_or(1, |n| n.get()),
        }),
        _ => Value::Null,
    }
}

/// This process's CPU seconds so far: on a shared machine the load generator's own sends
/// can be what limits a step, and the report should say so.
pub fn own_cpu() -> f64 {
    stats::sample(std::process::id()).map_or(0.0, |s| s.cpu_s)
}

/// What connecting cost: time, failures by cause, latency, the broker's RSS once open.
pub fn connect_json(
    out: &WorkerOut,
    ctl: &Ctl,
    secs: f64,
    before: Option<ProcSample>,
    open: Option<ProcSample>,
) -> Value {
    json!({
        "seconds": round3(secs),
        "ready": ctl.ready.load(Ordering::Relaxed),
        "failed": ctl.failed.load(Ordering::Relaxed),
        "not_attempted": out.not_attempted,
        "failures": out.failures,
        "latency_us": stats::latency_json(&out.connect_hist),
        "broker_rss_before_kb": before.map(|s| s.rss_kb),
        "broker_rss_open_kb": open.map(|s| s.rss_kb),
    })
}

pub fn errors(ctl: &Ctl) -> Value {
    json!(ctl.errors.lock().unwrap_or_else(|e| e.into_inner()).clone())
}

/// What is sampled at each of a run's step boundaries: the broker (from
/// /proc), this process's CPU seconds, and the machine's busy cores.
pub struct Boundaries {
    pub broker: Vec<Option<ProcSample>>,
    pub own: Vec<f64>,
    pub machine: Vec<Option<(f64, f64)>>,
}

/// Sleeps to each of the `n + 1` step boundaries (`at(k)`, on the run's
/// clock) and samples there; after each finished step prints its progress
/// as `step k/n <what(k)>: <sent_word> S received R`.
pub fn sample_steps(
    cfg: &Config,
    ctl: &Ctl,
    n: usize,
    at: impl Fn(usize) -> u64,
    what: impl Fn(usize) -> String,
    sent_word: &str,
) -> Boundaries {
    let mut b = Boundaries {
        broker: Vec::with_capacity(n + 1),
        own: Vec::with_capacity(n + 1),
        machine: Vec::with_capacity(n + 1),
    };
    for k in 0..=n {
        sleep_until(ctl, at(k));
        b.broker.push(sample(cfg));
        b.own.push(own_cpu());
        b.machine.push(machine_cpu());
        if k > 0 {
            let c = &ctl.steps[k - 1];
            eprintln!(
                "step {k}/{n} {}: {sent_word} {} received {}",
                what(k - 1),
                c.sent.load(Ordering::Relaxed),
                c.received.load(Ordering::Relaxed)
            );
        }
    }
    b
}
