//! storm: open `--connections` at `--connect-rate` from a few threads, hold
//! them idle for `--hold` seconds, then close them; report connect latency,
//! failures and the broker's memory per connection.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::args::{source_ip, Config};
use crate::mqtt;
use crate::scenario::{broker_json, round3};
use crate::stats::{self, new_hist};
use crate::wire::Wire;

#[derive(Default)]
struct Progress {
    connected: AtomicU64,
    failed: AtomicU64,
    /// Opening stops (deadline passed).
    give_up: AtomicBool,
}

struct Opened {
    wires: Vec<Wire>,
    hist: hdrhistogram::Histogram<u64>,
    failures: BTreeMap<String, u64>,
    not_attempted: u64,
}

/// Files this process may need besides the connections.
const FD_MARGIN: usize = 64;

/// Raises the open-file soft limit to the hard one; exits 2 when `need`
/// descriptors do not fit.
pub fn ensure_nofile(need: usize) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain syscalls on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim = raised;
            }
        }
    }
    if need as u64 > lim.rlim_cur {
        eprintln!(
            "ringmq-bench: this needs {need} open files but this process may open at most {} \
             (RLIMIT_NOFILE, hard limit {}); a sandbox may cap it. Lower --connections or raise \
             the limit (ulimit -n).",
            lim.rlim_cur, lim.rlim_max
        );
        std::process::exit(2);
    }
}

pub fn run(cfg: Config) -> serde_json::Value {
    let a = &cfg.args.clone();
    let c = cfg.connections;
    ensure_nofile(c + FD_MARGIN);
    let cfg = Arc::new(cfg);
    let pid = a.broker_pid;
    let before = pid.and_then(stats::sample);
    let open_secs = if cfg.connect_rate == 0 {
        0.0
    } else {
        c as f64 / cfg.connect_rate as f64
    };
    // The broker must not time the idle connections out while they are held.
    let keep_alive = (open_secs as u64 + a.hold + 60).min(u16::MAX as u64) as u16;
    // Opening stops here, whatever is left (failing connects can be slow).
    let give_up_after = Duration::from_secs_f64(open_secs + 2.0 * a.connect_timeout as f64 + 10.0);
    let threads = a.threads.min(c);
    let progress = Arc::new(Progress::default());
    let start = Instant::now();
    let tag = format!("rb{}", std::process::id());
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let (cfg, progress, tag) = (cfg.clone(), progress.clone(), tag.clone());
            std::thread::spawn(move || opener(t, threads, &cfg, &progress, &tag, keep_alive, start))
        })
        .collect();
    let mut tick = start;
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(50));
        if start.elapsed() > give_up_after {
            progress.give_up.store(true, Ordering::Relaxed);
        }
        if tick.elapsed() >= Duration::from_secs(1) {
            tick += Duration::from_secs(1);
            eprintln!(
                "[{:>3}s] opening: connected {} failed {} of {c}",
                start.elapsed().as_secs(),
                progress.connected.load(Ordering::Relaxed),
                progress.failed.load(Ordering::Relaxed)
            );
        }
    }
    let connect_secs = start.elapsed().as_secs_f64();
    let mut hist = new_hist();
    let mut failures = BTreeMap::new();
    let mut wires = Vec::with_capacity(c);
    let mut not_attempted = 0;
    for h in handles {
        let Ok(o) = h.join() else { continue };
        let _ = hist.add(&o.hist);
        for (k, v) in o.failures {
            *failures.entry(k).or_insert(0) += v;
        }
        wires.extend(o.wires);
        not_attempted += o.not_attempted;
    }
    let connected = wires.len() as u64;
    let hold_start = Instant::now();
    while hold_start.elapsed() < Duration::from_secs(a.hold) {
        let left = Duration::from_secs(a.hold).saturating_sub(hold_start.elapsed());
        std::thread::sleep(left.min(Duration::from_secs(1)));
        eprintln!(
            "[{:>3}s] holding {connected} connections ({:.0}/{} s)",
            start.elapsed().as_secs(),
            hold_start.elapsed().as_secs_f64(),
            a.hold
        );
    }
    let held = pid.and_then(stats::sample);
    let closed_by_broker = wires.iter().filter(|w| w.peer_closed()).count();
    drop(wires);
    let rss_per_conn = match (before, held) {
        (Some(b), Some(h)) if connected > 0 => {
            json!(((h.rss_kb as f64 - b.rss_kb as f64) * 1024.0 / connected as f64).round())
        }
        _ => serde_json::Value::Null,
    };
    let failed: u64 = failures.values().sum();
    json!({
        "label": a.label,
        "scenario": "storm",
        "tls": cfg.tls.is_some(),
        "transport": format!("{:?}", a.transport).to_lowercase(),
        "mqtt": if cfg.version.is_v5() { 5 } else { 3 },
        "connections": c,
        "connect_rate": cfg.connect_rate,
        "threads": threads,
        "hold_seconds": a.hold,
        "connected": connected,
        "failed": failed,
        "not_attempted": not_attempted,
        "failures": failures,
        "closed_by_broker_during_hold": closed_by_broker,
        "connect_seconds": round3(connect_secs),
        "connects_per_s": (connected as f64 / connect_secs.max(1e-9)).round(),
        "connect_latency_us": stats::latency_json(&hist),
        "broker": broker_json(pid, before, held, hold_start.elapsed().as_secs_f64() + connect_secs),
        "rss_per_connection_bytes": rss_per_conn,
    })
}

/// Opens connections `t`, `t + threads`, ... each at its slot of the
/// global schedule (connection i at i / rate seconds).
fn opener(
    t: usize,
    threads: usize,
    cfg: &Config,
    progress: &Progress,
    tag: &str,
    keep_alive: u16,
    start: Instant,
) -> Opened {
    let (c, rate) = (cfg.connections, cfg.connect_rate);
    let mut o = Opened {
        wires: Vec::with_capacity(c / threads + 1),
        hist: new_hist(),
        failures: BTreeMap::new(),
        not_attempted: 0,
    };
    for i in (t..c).step_by(threads) {
        if progress.give_up.load(Ordering::Relaxed) {
            o.not_attempted += 1;
            continue;
        }
        if rate > 0 {
            let due = start + Duration::from_secs_f64(i as f64 / rate as f64);
            std::thread::sleep(due.saturating_duration_since(Instant::now()));
        }
        let local = Some(source_ip(cfg.target.ip(), i));
        match mqtt::open(cfg, local, &format!("{tag}-c{i}"), keep_alive) {
            Ok((wire, took)) => {
                o.hist.saturating_record((took.as_nanos() as u64).max(1));
                o.wires.push(wire);
                progress.connected.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                *o.failures.entry(e.to_string()).or_insert(0) += 1;
                progress.failed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    o
}
