//! iot-fanin and iot-pairs: open every connection once, then offer each total rate of
//! `--rates` for `--step-secs`, drain (at most 3 s), and report per step.
//!
//! Subscribers run on threads of their own, so a busy publishing thread never delays the
//! reads that measure the broker.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::args::{Config, Scenario};
use crate::fleet::{ConnSpec, Role};
use crate::fleet_args::{budget_secs, open_budget_secs};
use crate::fleet_ctl::{Ctl, WorkerOut};
use crate::fleet_run::{self as fr, broker_step};
use crate::scenario::round3;
use crate::stats::{self, ProcSample};

/// Longest wait for the last deliveries after the last step.
const DRAIN_NS: u64 = 3_000_000_000;
/// Pause between "all connected" and the first step.
const SETTLE_NS: u64 = 500_000_000;

/// Connections per thread: subscribers first (they open first), then publishers.
fn layout(cfg: &Config) -> (Vec<Vec<ConnSpec>>, u64) {
    let (p, s, threads) = (cfg.publishers, cfg.subscribers, cfg.args.threads);
    let pairs = cfg.args.scenario == Scenario::IotPairs;
    // Pairs: 5,000 subscribers are spread over two reading threads; fan-in: one consumer
    // thread, as a real back end would have.
    let sub_threads = if pairs { 2 } else { 1 };
    let mut groups: Vec<Vec<ConnSpec>> = (0..sub_threads + threads).map(|_| Vec::new()).collect();
    for i in 0..s {
        let (filter, scope) = match (pairs, cfg.args.shared) {
            (true, _) => (format!("bench/pairs/{i}"), i as u32),
            (false, true) => ("$share/g/bench/fanin/+".to_string(), 0),
            (false, false) => ("bench/fanin/+".to_string(), i as u32),
        };
        let role = Role::Subscriber { filter, scope };
        groups[i % sub_threads].push(ConnSpec { index: i, role });
    }
    for i in 0..p {
        let topic = if pairs {
            format!("bench/pairs/{i}")
        } else {
            format!("bench/fanin/{i}")
        };
        let role = Role::Publisher {
            id: i as u32,
            topic,
        };
        groups[sub_threads + i % threads].push(ConnSpec { index: s + i, role });
    }
    // Copies of each message the subscribers should receive together.
    let copies = if pairs || cfg.args.shared {
        1
    } else {
        s as u64
    };
    (groups, copies)
}

pub fn run(cfg: Config) -> Value {
    let a = &cfg.args;
    let n = a.rates.len();
    let ctl = Arc::new(Ctl::new(n));
    let before = fr::sample(&cfg);
    let keep_alive = fr::long_keep_alive(budget_secs(&cfg));
    let p = Arc::new(fr::params(&cfg, &ctl, cfg.publishers, keep_alive));
    let (groups, copies) = layout(&cfg);
    let total = cfg.publishers + cfg.subscribers;
    let handles = fr::spawn(&p, &ctl, groups);
    let connect_secs = fr::wait_open(&ctl, total, open_budget_secs(&cfg));
    let open = fr::sample(&cfg);
    if ctl.ready.load(Ordering::Relaxed) == 0 {
        let out = fr::finish(&ctl, handles, n);
        crate::scenario::fail(&format!(
            "no connection to {} became ready: {:?}",
            cfg.target, out.failures
        ));
    }
    let t0 = ctl.now_ns() + SETTLE_NS;
    ctl.t0_ns.store(t0, Ordering::Release);
    let step_ns = a.step_secs * 1_000_000_000;
    let fr::Boundaries {
        broker: samples,
        own,
        machine: mach,
    } = fr::sample_steps(
        &cfg,
        &ctl,
        n,
        |k| t0 + k as u64 * step_ns,
        |k| format!("offered {}/s", a.rates[k]),
        "sent",
    );
    let drain_secs = drain(&ctl, copies);
    let out = fr::finish(&ctl, handles, n);
    let steps: Vec<Value> = (0..n)
        .map(|k| {
            let mut v = step_json(&cfg, &ctl, &out, k, copies, samples[k], samples[k + 1]);
            v["bench_cpu_seconds"] = json!(round3(own[k + 1] - own[k]));
            v["machine"] = fr::machine_step(mach[k], mach[k + 1], a.step_secs as f64);
            v
        })
        .collect();
    json!({
        "label": a.label,
        "scenario": crate::fleet_args::name(a.scenario),
        "tls": cfg.tls.is_some(),
        "mqtt": if cfg.version.is_v5() { 5 } else { 3 },
        "qos": cfg.qos as u8,
        "payload": a.payload,
        "inflight": a.inflight,
        "publishers": cfg.publishers,
        "subscribers": cfg.subscribers,
        "shared": a.shared,
        "copies_per_message": copies,
        "threads": a.threads,
        "rates": a.rates,
        "step_seconds": a.step_secs,
        "connect": fr::connect_json(&out, &ctl, connect_secs, before, open),
        "drain_seconds": round3(drain_secs),
        "steps": steps,
        "stray": out.stray,
        "ack_failures": ctl.ack_failures.load(Ordering::Relaxed),
        "closed_by_broker": ctl.closed_by_broker.load(Ordering::Relaxed),
        "broker": samples[n].map(|s| json!({ "peak_rss_kb": s.hwm_kb, "rss_kb": s.rss_kb })),
        "errors": fr::errors(&ctl),
    })
}

/// Until every expected copy arrived, nothing arrived for 1 s, or 3 s passed.
fn drain(ctl: &Ctl, copies: u64) -> f64 {
    let start = ctl.now_ns();
    let expected = ctl.total(|s| &s.sent) * copies;
    let (mut prev, mut still_since) = (u64::MAX, start);
    while ctl.now_ns() - start < DRAIN_NS {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let r = ctl.total(|s| &s.received);
        if r - ctl.total(|s| &s.duplicated) >= expected {
            break;
        }
        if r != prev {
            (prev, still_since) = (r, ctl.now_ns());
        } else if ctl.now_ns() - still_since >= 1_000_000_000 {
            break;
        }
    }
    (ctl.now_ns() - start) as f64 / 1e9
}

fn step_json(
    cfg: &Config,
    ctl: &Ctl,
    out: &WorkerOut,
    k: usize,
    copies: u64,
    a: Option<ProcSample>,
    b: Option<ProcSample>,
) -> Value {
    let c = &ctl.steps[k];
    let secs = cfg.args.step_secs as f64;
    let sent = c.sent.load(Ordering::Relaxed);
    let st = &out.subs[k];
    let unique = st.received - st.duplicated;
    let expected = sent * copies;
    let cpu = match (a, b) {
        (Some(a), Some(b)) => Some(b.cpu_s - a.cpu_s),
        _ => None,
    };
    json!({
        "step": k,
        "offered_per_s": cfg.args.rates[k],
        "offered": c.offered.load(Ordering::Relaxed),
        "sent": sent,
        "window_full": c.window_full.load(Ordering::Relaxed),
        "acked": c.acked.load(Ordering::Relaxed),
        "expected": expected,
        "received": st.received,
        "lost": expected.saturating_sub(unique),
        "excess": unique.saturating_sub(expected),
        "duplicated": st.duplicated,
        "out_of_order": st.out_of_order,
        "sent_per_s": (sent as f64 / secs).round(),
        "received_per_s": (st.received as f64 / secs).round(),
        "latency_us": stats::latency_json(&st.hist),
        "broker": broker_step(a, b),
        "deliveries_per_cpu_s": cpu.filter(|&c| c > 0.0).map(|c| (st.received as f64 / c).round()),
    })
}
