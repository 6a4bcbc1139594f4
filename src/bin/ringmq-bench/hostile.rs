//! hostile: a bounded attack run against any MQTT 3.1.1 broker on loopback,
//! while a well-behaved [`probe`](crate::probe) measures what an ordinary
//! client sees. Phases, each bounded in time and connections:
//!
//! 1. baseline: the probe alone for a second;
//! 2. deep topics: SUBSCRIBE to a filter of 65,535 '/' (65,536 empty
//!    levels, valid), PUBLISH to the same deep topic, UNSUBSCRIBE, close
//!    without DISCONNECT;
//! 3. duplicate filters: a 900 KB retained QoS 1 message, then clients
//!    with a 4 KiB receive buffer that each send one SUBSCRIBE naming it 64
//!    times and never read, held 5 s;
//! 4. ping flood: PINGREQs as fast as the socket takes them for 3 s, never
//!    reading the PINGRESPs;
//! 5. connection storm: 5,000 CONNECTs as fast as possible, then closed.
//!
//! Then: does the broker process still exist, and does it still serve a
//! fresh client within 5 s. Broker RSS is sampled every 100 ms and after
//! each phase (`--broker-pid`).

use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use bytestring::ByteString;
use ringmq::protocol::{encode, encode_publish, Packet, ProtocolVersion, QoS, Unsubscribe};
use serde_json::{json, Map, Value};

use crate::args::{Config, Scenario};
use crate::mqtt::{self, read_packet};
use crate::probe::{ms_json, Probe};
use crate::sampler::{live_sample, Sampler};
use crate::scenario::{broker_json, fail, round3};
use crate::stats;
use crate::storm;
use crate::wire::Wire;

pub const PHASES: [&str; 6] = [
    "baseline",
    "deep_topics",
    "duplicate_filters",
    "ping_flood",
    "connection_storm",
    "after",
];
/// Longest any one connect, handshake or answer is waited for.
const STEP: Duration = Duration::from_secs(3);
const DEEP: usize = 65_535;
const BIG_TOPIC: &str = "hostile/big";
const BIG_PAYLOAD: usize = 900_000;
const DUP_CLIENTS: usize = 10;
const DUP_COPIES: usize = 64;
const DUP_SETUP: Duration = Duration::from_secs(8);
const HOLD: Duration = Duration::from_secs(5);
const FLOOD: Duration = Duration::from_secs(3);
const STORM_CONNECTIONS: usize = 5_000;
/// The fresh client after the attack must round-trip within this.
const SERVES_WITHIN: Duration = Duration::from_secs(5);
/// Time the broker gets after a phase's connections close, before RSS is read.
const SETTLE: Duration = Duration::from_millis(500);
const DISCONNECT: [u8; 2] = [0xE0, 0x00];
const TCP_ESTABLISHED: u8 = 1;

/// The watchdog's limit: every phase at its bound (a broker that accepts
/// and never answers), typically the run takes 13-15 s.
pub fn budget_secs() -> u64 {
    120
}

pub fn run(cfg: Config) -> Value {
    // The storm's sockets, known up front rather than part-way through.
    storm::ensure_nofile(STORM_CONNECTIONS + 256);
    let mut cfg = cfg;
    cfg.args.connect_timeout = cfg.args.connect_timeout.clamp(1, STEP.as_secs());
    let cfg = Arc::new(cfg);
    let (pid, v) = (cfg.args.broker_pid, cfg.version);
    let tag = format!("rb{}", std::process::id());
    let start = Instant::now();
    let before = pid.and_then(live_sample);
    let sampler = pid.map(Sampler::start);
    let phase = Arc::new(AtomicUsize::new(0));
    let topic = format!("hostile/probe/{tag}");
    let probe = Probe::start(cfg.clone(), topic, phase.clone(), PHASES.len())
        .unwrap_or_else(|e| fail(&format!("probe: connect {}: {e}", cfg.target)));
    let mut log = PhaseLog {
        list: Vec::new(),
        t: Instant::now(),
        phase,
        sampler: sampler.as_ref(),
        start,
    };
    std::thread::sleep(Duration::from_secs(1));
    log.done(json!({}));
    log.done(deep_topics(&cfg, &tag));
    log.done(duplicate_filters(&cfg, &tag));
    log.done(ping_flood(&cfg, &tag));
    log.done(connection_storm(&cfg));
    let (serves, serves_detail) = serves_after(&cfg, &tag);
    let alive = pid.map(stats::alive);
    log.done(serves_detail);
    let report = probe.finish();
    let mut list = log.list;
    for (i, p) in list.iter_mut().enumerate() {
        p["probe_ms"] = ms_json(&report.combined(Some(i)));
        p["probe_timeouts"] = json!(report.timeouts[i]);
    }
    let (baseline_kb, peak_kb, last) = match &sampler {
        Some(s) => s.finish(),
        None => (None, None, None),
    };
    let bytes = |kb: Option<u64>| kb.map(|k| k * 1024);
    let rss_after: Map<String, Value> = list
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap_or("").to_string(),
                p["rss_after_bytes"].clone(),
            )
        })
        .collect();
    let all = report.combined(None);
    let q = |x: f64| (!all.is_empty()).then(|| round3(all.value_at_quantile(x) as f64 / 1e6));
    let secs = start.elapsed().as_secs_f64();
    json!({
        "label": cfg.args.label,
        "scenario": "hostile",
        "transport": "tcp",
        "mqtt": if v.is_v5() { 5 } else { 3 },
        "seconds": round3(secs),
        "alive": alive,
        "serves_after": serves,
        "rss_baseline_bytes": bytes(baseline_kb),
        "rss_peak_bytes": bytes(peak_kb),
        "rss_growth_bytes": baseline_kb.zip(peak_kb).map(|(b, p)| p.saturating_sub(b) * 1024),
        "rss_after_phase_bytes": rss_after,
        "probe_p50_ms": q(0.5),
        "probe_p99_ms": q(0.99),
        "probe_max_ms": (!all.is_empty()).then(|| round3(all.max() as f64 / 1e6)),
        "probe_timeouts": report.timeouts.iter().sum::<u64>(),
        "probe_disconnected": report.disconnects > 0,
        "broker_cpu_seconds": before.zip(last).map(|(b, a)| round3(a.cpu_s - b.cpu_s)),
        "phases": list,
        "probe": report.to_json(),
        "broker": broker_json(pid, before, last, secs),
    })
}

/// Phase results, each with the RSS once the broker had [`SETTLE`] to
/// clean up after it; moves the probe on to the next phase.
struct PhaseLog<'a> {
    list: Vec<Value>,
    t: Instant,
    phase: Arc<AtomicUsize>,
    sampler: Option<&'a Sampler>,
    start: Instant,
}

impl PhaseLog<'_> {
    fn done(&mut self, detail: Value) {
        std::thread::sleep(SETTLE);
        let i = self.list.len();
        let rss = self.sampler.and_then(Sampler::now).map(|s| s.rss_kb * 1024);
        let mut p = json!({
            "name": PHASES[i],
            "seconds": round3(self.t.elapsed().as_secs_f64()),
            "rss_after_bytes": rss,
        });
        if let (Some(p), Value::Object(d)) = (p.as_object_mut(), detail) {
            p.extend(d);
        }
        eprintln!(
            "[{:>3}s] {} done: {p}",
            self.start.elapsed().as_secs(),
            PHASES[i]
        );
        self.list.push(p);
        self.t = Instant::now();
        self.phase.fetch_add(1, Ordering::Relaxed);
    }
}

/// Reads packets until `want` accepts one (`Ok(true)`) or `deadline`
/// passes (`Ok(false)`).
fn wait_for(
    wire: &mut Wire,
    buf: &mut BytesMut,
    v: ProtocolVersion,
    deadline: Instant,
    mut want: impl FnMut(&Packet) -> bool,
) -> io::Result<bool> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(false);
        }
        match read_packet(wire, buf, v, left) {
            Ok(p) if want(&p) => return Ok(true),
            Ok(_) => {}
            Err(e) if crate::pubsub::is_timeout(&e) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

fn publish(topic: &str, qos: QoS, retain: bool, payload: &[u8], v: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::with_capacity(topic.len() + payload.len() + 16);
    encode_publish(&mut out, v, false, qos, retain, topic, 1, payload, None);
    out
}

/// Puts the error of a step into `d` as `"error"`.
fn record(d: &mut Map<String, Value>, step: &str, r: io::Result<()>) {
    if let Err(e) = r {
        d.insert("error".into(), json!(format!("{step}: {e}")));
    }
}

/// Names the step an error happened at.
fn at(step: &'static str) -> impl Fn(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{step}: {e}"))
}

fn deep_topics(cfg: &Config, tag: &str) -> Value {
    let mut d = Map::new();
    d.insert("levels".into(), json!(DEEP + 1));
    let r = mqtt::open(cfg, None, &format!("{tag}-deep"), 60).and_then(|(mut wire, _)| {
        let r = deep_steps(&mut wire, cfg.version, &mut d);
        // Abruptly: no DISCONNECT; dropping the socket closes it.
        drop(wire);
        r
    });
    record(&mut d, "deep topics", r);
    Value::Object(d)
}

fn deep_steps(wire: &mut Wire, v: ProtocolVersion, d: &mut Map<String, Value>) -> io::Result<()> {
    let deep = "/".repeat(DEEP);
    let codes =
        mqtt::subscribe_all(wire, v, &[&deep], QoS::AtLeastOnce, STEP).map_err(at("SUBSCRIBE"))?;
    d.insert("suback".into(), json!(codes));
    let deep_publish = publish(&deep, QoS::AtLeastOnce, false, b"deep", v);
    wire.send(&deep_publish).map_err(at("PUBLISH"))?;
    let (mut acked, mut delivered) = (false, false);
    let mut buf = BytesMut::new();
    wait_for(wire, &mut buf, v, Instant::now() + STEP, |p| {
        match p {
            Packet::PubAck(_) => acked = true,
            Packet::Publish(p) if p.topic.len() == DEEP => delivered = true,
            _ => {}
        }
        acked && delivered
    })
    .map_err(at("PUBLISH"))?;
    d.insert("puback".into(), json!(acked));
    d.insert("delivered".into(), json!(delivered));
    let unsub = Unsubscribe {
        packet_id: 2,
        filters: vec![ByteString::from(deep)],
        properties: None,
    };
    let mut out = BytesMut::new();
    encode(&Packet::Unsubscribe(unsub), v, &mut out);
    wire.send(&out).map_err(at("UNSUBSCRIBE"))?;
    let deadline = Instant::now() + STEP;
    let unsuback = wait_for(wire, &mut buf, v, deadline, |p| {
        matches!(p, Packet::UnsubAck(_))
    })
    .map_err(at("UNSUBSCRIBE"))?;
    d.insert("unsuback".into(), json!(unsuback));
    Ok(())
}

fn duplicate_filters(cfg: &Config, tag: &str) -> Value {
    let v = cfg.version;
    let setup_end = Instant::now() + DUP_SETUP;
    let mut d = Map::new();
    d.insert("payload_bytes".into(), json!(BIG_PAYLOAD));
    let r = mqtt::open(cfg, None, &format!("{tag}-big"), 60).and_then(|(mut w, _)| {
        let big = vec![b'x'; BIG_PAYLOAD];
        w.send(&publish(BIG_TOPIC, QoS::AtLeastOnce, true, &big, v))?;
        let deadline = Instant::now() + STEP;
        let acked = wait_for(&mut w, &mut BytesMut::new(), v, deadline, |p| {
            matches!(p, Packet::PubAck(_))
        })?;
        d.insert("retained_puback".into(), json!(acked));
        w.send(&DISCONNECT)
    });
    record(&mut d, "retained publish", r);
    let sub = mqtt::subscribe_packet(&[BIG_TOPIC; DUP_COPIES], QoS::AtLeastOnce, v);
    let mut held = Vec::new();
    let mut failures = Vec::new();
    for i in 0..DUP_CLIENTS {
        if Instant::now() > setup_end {
            failures.push(format!("client {i}: setup time over"));
            continue;
        }
        let w = Wire::tcp_small_rcvbuf(cfg.target, 4096, STEP).and_then(|mut w| {
            mqtt::handshake(&mut w, v, &format!("{tag}-dup{i}"), 60, STEP)?;
            // One SUBSCRIBE, then never a read.
            w.send(&sub)?;
            Ok(w)
        });
        match w {
            Ok(w) => held.push(w),
            Err(e) => failures.push(format!("client {i}: {e}")),
        }
    }
    std::thread::sleep(HOLD);
    let closed = held
        .iter()
        .filter(|w| w.tcp_state() != Some(TCP_ESTABLISHED))
        .count();
    d.insert("subscribers".into(), json!(held.len()));
    d.insert("filters_per_subscribe".into(), json!(DUP_COPIES));
    // A FIN behind a full receive window is not seen: a lower bound.
    d.insert("closed_by_broker".into(), json!(closed));
    d.insert("failures".into(), json!(failures));
    drop(held);
    Value::Object(d)
}

fn ping_flood(cfg: &Config, tag: &str) -> Value {
    let mut d = Map::new();
    let r = Wire::tcp_small_rcvbuf(cfg.target, 4096, STEP).and_then(|mut w| {
        mqtt::handshake(&mut w, cfg.version, &format!("{tag}-flood"), 60, STEP)?;
        w.set_write_timeout(Some(Duration::from_millis(100)))?;
        let batch = [0xC0u8, 0x00].repeat(4096);
        let (mut off, mut bytes, mut stalls) = (0, 0u64, 0u64);
        let end = Instant::now() + FLOOD;
        let mut res = Ok(());
        while Instant::now() < end {
            match w.write_some(&batch[off..]) {
                Ok(0) => break,
                Ok(n) => {
                    off = (off + n) % batch.len();
                    bytes += n as u64;
                }
                Err(e) if crate::pubsub::is_timeout(&e) => stalls += 1,
                Err(e) => {
                    res = Err(e);
                    break;
                }
            }
        }
        d.insert("pingreqs_sent".into(), json!(bytes / 2));
        d.insert("write_stalls_100ms".into(), json!(stalls));
        d.insert(
            "closed_by_broker".into(),
            json!(w.tcp_state() != Some(TCP_ESTABLISHED)),
        );
        res
    });
    record(&mut d, "ping flood", r);
    Value::Object(d)
}

fn connection_storm(cfg: &Config) -> Value {
    let mut sc = cfg.clone();
    sc.args.scenario = Scenario::Storm;
    sc.connections = STORM_CONNECTIONS;
    sc.connect_rate = 0;
    sc.args.hold = 0;
    sc.args.threads = 4;
    sc.args.broker_pid = None;
    let r = storm::run(sc);
    json!({
        "connections": STORM_CONNECTIONS,
        "connected": r["connected"],
        "failed": r["failed"],
        "not_attempted": r["not_attempted"],
        "failures": r["failures"],
        "connects_per_s": r["connects_per_s"],
        "connect_latency_us": r["connect_latency_us"],
    })
}

/// A fresh client: CONNECT, SUBSCRIBE, PUBLISH QoS 1 and its delivery, all
/// within [`SERVES_WITHIN`]. Then clears the retained message of phase 3.
fn serves_after(cfg: &Config, tag: &str) -> (bool, Value) {
    let v = cfg.version;
    let start = Instant::now();
    let deadline = start + SERVES_WITHIN;
    let topic = format!("hostile/after/{tag}");
    let r = mqtt::open(cfg, None, &format!("{tag}-after"), 60).and_then(|(mut w, _)| {
        let left = deadline.saturating_duration_since(Instant::now());
        let codes = mqtt::subscribe_all(&mut w, v, &[&topic], QoS::AtLeastOnce, left)?;
        if codes.first().is_none_or(|c| *c >= 0x80) {
            return Err(io::Error::other(format!("SUBSCRIBE refused: {codes:?}")));
        }
        w.send(&publish(&topic, QoS::AtLeastOnce, false, b"after", v))?;
        let got = wait_for(
            &mut w,
            &mut BytesMut::new(),
            v,
            deadline,
            |p| matches!(p, Packet::Publish(p) if *p.topic == *topic),
        )?;
        let _ = w.send(&publish(BIG_TOPIC, QoS::AtMostOnce, true, b"", v));
        let _ = w.send(&DISCONNECT);
        Ok(got)
    });
    let took = start.elapsed();
    let ok = matches!(r, Ok(true)) && took <= SERVES_WITHIN;
    let mut d = json!({ "serves_after_ms": round3(took.as_secs_f64() * 1e3) });
    match r {
        Ok(false) => d["error"] = json!("no delivery within 5 s"),
        Err(e) => d["error"] = json!(format!("fresh client: {e}")),
        Ok(true) => {}
    }
    (ok, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmq::protocol::decode;

    #[test]
    fn deep_subscribe_is_one_valid_packet() {
        let deep = "/".repeat(DEEP);
        let v = ProtocolVersion::V311;
        let mut b = mqtt::subscribe_packet(&[&deep], QoS::AtLeastOnce, v);
        // 0x82, remaining length 65,540 (id 2 + length 2 + 65,535 + options 1).
        assert_eq!(&b[..4], &[0x82, 0x84, 0x80, 0x04]);
        assert_eq!(b.len(), 4 + 65_540);
        match decode(&mut b, v, mqtt::MAX_PACKET) {
            Ok(Some(Packet::Subscribe(s))) => {
                assert_eq!(s.filters.len(), 1);
                assert_eq!(s.filters[0].filter.len(), DEEP);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn duplicate_filters_stay_in_one_subscribe() {
        let v = ProtocolVersion::V311;
        let mut b = mqtt::subscribe_packet(&[BIG_TOPIC; DUP_COPIES], QoS::AtLeastOnce, v);
        match decode(&mut b, v, mqtt::MAX_PACKET) {
            Ok(Some(Packet::Subscribe(s))) => {
                assert_eq!(s.filters.len(), DUP_COPIES);
                assert!(s.filters.iter().all(|f| f.filter == BIG_TOPIC));
            }
            other => panic!("{other:?}"),
        }
        assert!(b.is_empty());
    }
}
