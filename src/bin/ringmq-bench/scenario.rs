//! p2p, fanout and fanin: connect subscribers, then publishers; publish for
//! `--duration`; drain (bounded); count.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::args::{source_ip, Config, Scenario};
use crate::mqtt;
use crate::pubsub::{publisher, subscriber, Shared};
use crate::stats::{self, SubStats};

/// Who publishes where and who subscribes to what.
struct Layout {
    pub_topics: Vec<String>,
    sub_filters: Vec<String>,
    /// Copies of each publish the subscribers should receive together.
    per_topic: u64,
}

fn layout(cfg: &Config) -> Layout {
    // A per-run prefix keeps concurrent runs on one broker apart.
    let run = format!("bench/{}", std::process::id());
    let (p, s) = (cfg.publishers, cfg.subscribers);
    match cfg.args.scenario {
        Scenario::P2p => Layout {
            pub_topics: (0..p).map(|i| format!("{run}/p2p/{i}")).collect(),
            sub_filters: (0..s).map(|i| format!("{run}/p2p/{i}")).collect(),
            per_topic: 1,
        },
        Scenario::Fanout => Layout {
            pub_topics: vec![format!("{run}/fanout"); p],
            sub_filters: vec![format!("{run}/fanout"); s],
            per_topic: s as u64,
        },
        Scenario::Fanin => {
            let filter = if cfg.args.shared {
                format!("$share/g/{run}/fanin/+")
            } else {
                format!("{run}/fanin/+")
            };
            Layout {
                pub_topics: (0..p).map(|i| format!("{run}/fanin/{i}")).collect(),
                sub_filters: vec![filter; s],
                // A shared group should get each message once.
                per_topic: if cfg.args.shared { 1 } else { s as u64 },
            }
        }
        _ => {
            unreachable!("storm, hostile and the fleet scenarios have their own runners")
        }
    }
}

pub fn run(cfg: Config) -> serde_json::Value {
    let cfg = Arc::new(cfg);
    let lay = layout(&cfg);
    let epoch = Instant::now();
    let shared = Arc::new(Shared::default());
    let pid = cfg.args.broker_pid;
    let before = pid.and_then(stats::sample);
    let keep_alive = 60;
    let tag = format!("rb{}", std::process::id());

    let mut suback_codes = Vec::new();
    let mut subs = Vec::new();
    for (i, filter) in lay.sub_filters.iter().enumerate() {
        let local = Some(source_ip(cfg.target.ip(), i));
        let (mut wire, _) = mqtt::open(&cfg, local, &format!("{tag}-s{i}"), keep_alive)
            .unwrap_or_else(|e| fail(&format!("subscriber {i}: connect {}: {e}", cfg.target)));
        let code = mqtt::subscribe(&cfg, &mut wire, filter)
            .unwrap_or_else(|e| fail(&format!("subscriber {i}: subscribe {filter}: {e}")));
        if code >= 0x80 {
            eprintln!("ringmq-bench: SUBSCRIBE {filter} refused with {code:#04x}");
        }
        suback_codes.push(code);
        let (c, sh) = (cfg.clone(), shared.clone());
        subs.push(std::thread::spawn(move || {
            subscriber(wire, i, c, epoch, sh)
        }));
    }
    let mut pubs = Vec::new();
    for (i, topic) in lay.pub_topics.iter().enumerate() {
        let local = Some(source_ip(cfg.target.ip(), lay.sub_filters.len() + i));
        let (wire, _) = mqtt::open(&cfg, local, &format!("{tag}-p{i}"), keep_alive)
            .unwrap_or_else(|e| fail(&format!("publisher {i}: connect {}: {e}", cfg.target)));
        let (c, sh, t) = (cfg.clone(), shared.clone(), topic.clone());
        pubs.push(std::thread::spawn(move || {
            publisher(wire, i as u32, t, c, epoch, sh)
        }));
    }

    let start = Instant::now();
    let progress = |label: &str, last: &mut u64| {
        let r = shared.received.load(Ordering::Relaxed);
        eprintln!(
            "[{:>3}s] {label} sent {} received {} (+{}/s) acked {}",
            start.elapsed().as_secs(),
            shared.sent.load(Ordering::Relaxed),
            r,
            r - *last,
            shared.acked.load(Ordering::Relaxed),
        );
        *last = r;
    };
    let mut last = 0;
    let end = start + Duration::from_secs(cfg.args.duration);
    let mut tick = start;
    while Instant::now() < end {
        tick += Duration::from_secs(1);
        std::thread::sleep(tick.min(end).saturating_duration_since(Instant::now()));
        progress("publishing", &mut last);
    }
    shared.stop_pub.store(true, Ordering::Relaxed);
    for p in pubs {
        let _ = p.join();
    }
    let publish_secs = start.elapsed().as_secs_f64();
    let sent = shared.sent.load(Ordering::Relaxed);
    let expected = sent * lay.per_topic;

    // Drain: until every expected copy arrived, or nothing arrived for 1 s,
    // or --drain seconds passed.
    let drain_start = Instant::now();
    let drain_max = Duration::from_secs(cfg.args.drain);
    let (mut prev, mut still_since, mut tick) = (u64::MAX, Instant::now(), drain_start);
    while drain_start.elapsed() < drain_max {
        std::thread::sleep(Duration::from_millis(100));
        let r = shared.received.load(Ordering::Relaxed);
        let unique = r - shared.duplicated.load(Ordering::Relaxed);
        if unique >= expected {
            break;
        }
        if r != prev {
            (prev, still_since) = (r, Instant::now());
        } else if still_since.elapsed() >= Duration::from_secs(1) {
            break;
        }
        if tick.elapsed() >= Duration::from_secs(1) {
            tick = Instant::now();
            progress("draining", &mut last);
        }
    }
    let drain_secs = drain_start.elapsed().as_secs_f64();
    let after = pid.and_then(stats::sample);
    shared.stop_all.store(true, Ordering::Relaxed);
    let mut total = SubStats::new();
    for s in subs {
        if let Ok(st) = s.join() {
            total.merge(&st);
        }
    }
    let unique = total.received - total.duplicated;
    suback_codes.sort_unstable();
    suback_codes.dedup();
    let errors = shared
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    json!({
        "label": cfg.args.label,
        "scenario": format!("{:?}", cfg.args.scenario).to_lowercase(),
        "tls": cfg.tls.is_some(),
        "transport": format!("{:?}", cfg.args.transport).to_lowercase(),
        "mqtt": if cfg.version.is_v5() { 5 } else { 3 },
        "qos": cfg.qos as u8,
        "payload": cfg.args.payload,
        "rate": cfg.args.rate,
        "inflight": cfg.args.inflight,
        "publishers": cfg.publishers,
        "subscribers": cfg.subscribers,
        "shared": cfg.args.shared,
        "subscribers_per_topic": lay.per_topic,
        "suback_codes": suback_codes,
        "seconds": round3(publish_secs),
        "drain_seconds": round3(drain_secs),
        "sent": sent,
        "acked": shared.acked.load(Ordering::Relaxed),
        "ack_failures": shared.ack_failures.load(Ordering::Relaxed),
        "expected": expected,
        "received": total.received,
        "unique": unique,
        "lost": expected.saturating_sub(unique),
        "excess": unique.saturating_sub(expected),
        "duplicated": total.duplicated,
        "out_of_order": total.out_of_order,
        "too_old": total.too_old,
        "foreign": total.foreign,
        "sent_per_s": (sent as f64 / publish_secs).round(),
        "received_per_s": (total.received as f64 / publish_secs).round(),
        "latency_us": stats::latency_json(&total.hist),
        "broker": broker_json(pid, before, after, publish_secs + drain_secs),
        "errors": errors,
    })
}

pub fn broker_json(
    pid: Option<u32>,
    before: Option<stats::ProcSample>,
    after: Option<stats::ProcSample>,
    secs: f64,
) -> serde_json::Value {
    match (pid, before, after) {
        (Some(pid), Some(b), Some(a)) => json!({
            "pid": pid,
            "cpu_seconds": round3(a.cpu_s - b.cpu_s),
            "cpu_cores": round3((a.cpu_s - b.cpu_s) / secs.max(1e-9)),
            "rss_before_kb": b.rss_kb,
            "rss_after_kb": a.rss_kb,
            "peak_rss_kb": a.hwm_kb,
        }),
        (Some(pid), _, _) => json!({ "pid": pid, "error": "cannot read /proc/PID" }),
        _ => serde_json::Value::Null,
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

pub fn fail(msg: &str) -> ! {
    eprintln!("ringmq-bench: {msg}");
    std::process::exit(1)
}
