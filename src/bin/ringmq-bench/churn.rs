//! churn: clients that each connect, publish one message, disconnect and close, offered at
//! each connections/s of `--rates`, while one subscriber of `bench/churn/#` counts what
//! arrives; per step: completions/s, failures by cause, connect → CONNACK latency, loss.
//!
//! Devices on flaky links reconnect constantly; what a broker pays per connection set up and
//! torn down (and whether their messages still arrive) is its own limit.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::args::Config;
use crate::churn_client::{ChurnStep, ChurnThread};
use crate::fleet::{ConnSpec, Role};
use crate::fleet_args::{budget_secs, open_budget_secs};
use crate::fleet_ctl::Ctl;
use crate::fleet_run::{self as fr, broker_step};
use crate::scenario::round3;
use crate::stats;

const SETTLE_NS: u64 = 500_000_000;
const DRAIN_NS: u64 = 3_000_000_000;

pub fn run(cfg: Config) -> Value {
    let cfg = Arc::new(cfg);
    let a = &cfg.args;
    let n = a.rates.len();
    let ctl = Arc::new(Ctl::new(n));
    let before = fr::sample(&cfg);
    let keep_alive = fr::long_keep_alive(budget_secs(&cfg));
    let churners = a.threads;
    let p = Arc::new(fr::params(&cfg, &ctl, churners, keep_alive));
    let sub = ConnSpec {
        index: 0,
        role: Role::Subscriber {
            filter: "bench/churn/#".into(),
            scope: 0,
        },
    };
    let sub_handle = fr::spawn(&p, &ctl, vec![vec![sub]]);
    fr::wait_open(&ctl, 1, open_budget_secs(&cfg));
    if ctl.ready.load(Ordering::Relaxed) == 0 {
        let out = fr::finish(&ctl, sub_handle, n);
        crate::scenario::fail(&format!("subscriber could not connect: {:?}", out.failures));
    }
    let t0 = ctl.now_ns() + SETTLE_NS;
    ctl.t0_ns.store(t0, Ordering::Release);
    let mut plan = p.plan.clone();
    plan.t0_ns = t0;
    let cap = a.concurrency.div_ceil(churners).max(1);
    let handles: Vec<_> = (0..churners)
        .map(|me| {
            let t = ChurnThread {
                cfg: cfg.clone(),
                ctl: ctl.clone(),
                plan: plan.clone(),
                me,
                threads: churners,
                cap,
            };
            std::thread::spawn(move || t.run())
        })
        .collect();
    let fr::Boundaries {
        broker: samples,
        own,
        machine: mach,
    } = fr::sample_steps(
        &cfg,
        &ctl,
        n,
        |k| plan.start_ns(k),
        |k| format!("offered {} conn/s", a.rates[k]),
        "published",
    );
    // Churn threads end once their last clients finished or timed out.
    let mut steps: Vec<ChurnStep> = (0..n).map(|_| ChurnStep::new()).collect();
    for h in handles {
        if let Ok(st) = h.join() {
            for (a, b) in steps.iter_mut().zip(&st) {
                a.merge(b);
            }
        }
    }
    let drain_start = ctl.now_ns();
    let (mut prev, mut still) = (u64::MAX, drain_start);
    while ctl.now_ns() - drain_start < DRAIN_NS {
        std::thread::sleep(std::time::Duration::from_millis(50));
        let r = ctl.total(|s| &s.received);
        if r >= ctl.total(|s| &s.sent) {
            break;
        }
        if r != prev {
            (prev, still) = (r, ctl.now_ns());
        } else if ctl.now_ns() - still > 1_000_000_000 {
            break;
        }
    }
    let out = fr::finish(&ctl, sub_handle, n);
    let secs = a.step_secs as f64;
    let step_json: Vec<Value> = (0..n)
        .map(|k| {
            let (st, c, rx) = (&steps[k], &ctl.steps[k], &out.subs[k]);
            let sent = c.sent.load(Ordering::Relaxed);
            let unique = rx.received - rx.duplicated;
            let failed: u64 = st.failures.values().sum();
            json!({
                "step": k,
                "offered_per_s": a.rates[k],
                "offered": c.offered.load(Ordering::Relaxed),
                "started": st.started,
                "skipped_at_concurrency": st.skipped_at_cap,
                "completed": st.completed,
                "completed_per_s": (st.completed as f64 / secs).round(),
                "tls_resumed": st.tls_resumed,
                "failed": failed,
                "failures": st.failures,
                "connack_latency_us": stats::latency_json(&st.connack_hist),
                "published": sent,
                "acked": c.acked.load(Ordering::Relaxed),
                "received": rx.received,
                "lost": sent.saturating_sub(unique),
                "duplicated": rx.duplicated,
                "latency_us": stats::latency_json(&rx.hist),
                "broker": broker_step(samples[k], samples[k + 1]),
                "bench_cpu_seconds": round3(own[k + 1] - own[k]),
                "machine": fr::machine_step(mach[k], mach[k + 1], secs),
            })
        })
        .collect();
    json!({
        "label": a.label,
        "scenario": "churn",
        "tls": cfg.tls.is_some(),
        "mqtt": if cfg.version.is_v5() { 5 } else { 3 },
        "qos": cfg.qos as u8,
        "payload": a.payload,
        "concurrency": a.concurrency,
        "threads": churners,
        "rates": a.rates,
        "step_seconds": a.step_secs,
        "steps": step_json,
        "subscriber_closed": ctl.closed_by_broker.load(Ordering::Relaxed) > 0,
        "stray": out.stray,
        "drain_seconds": round3((ctl.now_ns() - drain_start) as f64 / 1e9),
        "broker": samples[n].map(|s| json!({
            "rss_before_kb": before.map(|b| b.rss_kb),
            "rss_kb": s.rss_kb,
            "peak_rss_kb": s.hwm_kb,
        })),
        "errors": fr::errors(&ctl),
    })
}
