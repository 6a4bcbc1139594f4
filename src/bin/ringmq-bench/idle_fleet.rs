//! idle-fleet: `--connections` clients each holding one QoS 1 subscription and sending
//! PINGREQ every `--keepalive` seconds at a random phase; what the broker spends on them.
//!
//! Most devices are idle most of the time, so a broker's cost per idle connection (CPU per
//! PINGREQ, memory) decides how many it holds per core. The window starts once every client
//! has pinged at least once (`K` + 2 s after the last connected), when the broker's state
//! for the fleet is steady.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use serde_json::{json, Value};

use crate::args::Config;
use crate::fleet::{ConnSpec, Role};
use crate::fleet_args::open_budget_secs;
use crate::fleet_ctl::Ctl;
use crate::fleet_run as fr;
use crate::scenario::round3;
use crate::stats;

/// How long the last pongs of the window may take.
const GRACE_NS: u64 = 2_000_000_000;

pub fn run(cfg: Config) -> Value {
    let a = &cfg.args;
    let n = cfg.connections;
    let ctl = Arc::new(Ctl::new(1));
    let before = fr::sample(&cfg);
    let mut params = fr::params(&cfg, &ctl, 1, a.keepalive);
    params.ping_every_ns = a.keepalive as u64 * 1_000_000_000;
    let p = Arc::new(params);
    let threads = a.threads.min(n);
    let mut groups: Vec<Vec<ConnSpec>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..n {
        let role = Role::Idle {
            filter: format!("bench/idle/{i}"),
        };
        groups[i % threads].push(ConnSpec { index: i, role });
    }
    let handles = fr::spawn(&p, &ctl, groups);
    let connect_secs = fr::wait_open(&ctl, n, open_budget_secs(&cfg));
    let open = fr::sample(&cfg);
    let connected = ctl.ready.load(Ordering::Relaxed);
    if connected == 0 {
        let out = fr::finish(&ctl, handles, 1);
        crate::scenario::fail(&format!("no connection became ready: {:?}", out.failures));
    }
    let settle = a.keepalive as u64 + 2;
    eprintln!("{connected} connected; settling {settle} s so every client has pinged");
    fr::sleep_until(&ctl, ctl.now_ns() + settle * 1_000_000_000);
    let w0 = ctl.now_ns();
    let w1 = w0 + a.window * 1_000_000_000;
    ctl.w1_ns.store(w1, Ordering::Relaxed);
    ctl.w0_ns.store(w0, Ordering::Relaxed);
    let s0 = fr::sample(&cfg);
    let mut tick = w0;
    while ctl.now_ns() < w1 {
        fr::sleep_until(&ctl, (tick + 10_000_000_000).min(w1));
        tick = ctl.now_ns();
        eprintln!(
            "window {:.0}/{} s: pings {} pongs {}",
            (tick - w0) as f64 / 1e9,
            a.window,
            ctl.pings.load(Ordering::Relaxed),
            ctl.pongs.load(Ordering::Relaxed)
        );
    }
    let s1 = fr::sample(&cfg);
    // Pongs of the window's last pings.
    let grace_end = ctl.now_ns() + GRACE_NS;
    while ctl.now_ns() < grace_end
        && ctl.pongs.load(Ordering::Relaxed) < ctl.pings.load(Ordering::Relaxed)
    {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let still_open = connected - ctl.closed_by_broker.load(Ordering::Relaxed);
    let out = fr::finish(&ctl, handles, 1);
    let (pings, pongs) = (
        ctl.pings.load(Ordering::Relaxed),
        ctl.pongs.load(Ordering::Relaxed),
    );
    let window = a.window as f64;
    let broker = match (before, s0, s1) {
        (Some(b), Some(s0), Some(s1)) => {
            let cpu = s1.cpu_s - s0.cpu_s;
            json!({
                "cpu_seconds": round3(cpu),
                "cpu_seconds_per_minute": round3(cpu * 60.0 / window),
                "cpu_us_per_pingreq": (pings > 0).then(|| round3(cpu * 1e6 / pings as f64)),
                "rss_before_kb": b.rss_kb,
                "rss_kb": s1.rss_kb,
                "peak_rss_kb": s1.hwm_kb,
                "rss_per_connection_bytes": (connected > 0).then(||
                    ((s1.rss_kb as f64 - b.rss_kb as f64) * 1024.0 / connected as f64).round()),
            })
        }
        _ => Value::Null,
    };
    json!({
        "label": a.label,
        "scenario": "idle-fleet",
        "tls": cfg.tls.is_some(),
        "mqtt": if cfg.version.is_v5() { 5 } else { 3 },
        "connections": n,
        "keepalive": a.keepalive,
        "window_seconds": a.window,
        "threads": threads,
        "connect": fr::connect_json(&out, &ctl, connect_secs, before, open),
        "connected": connected,
        "open_at_end": still_open,
        "closed_by_broker": ctl.closed_by_broker.load(Ordering::Relaxed),
        "pings": pings,
        "pongs": pongs,
        "missing_pongs": pings.saturating_sub(pongs),
        "ping_while_unanswered": ctl.ping_unanswered.load(Ordering::Relaxed),
        "pings_expected": (connected as f64 * window / a.keepalive as f64).round(),
        "ping_rtt_us": stats::latency_json(&out.ping_hist),
        "broker": broker,
        "errors": fr::errors(&ctl),
    })
}
