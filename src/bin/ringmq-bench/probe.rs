//! The well-behaved client of the hostile scenario: on its own thread for
//! the whole run it publishes QoS 1 to a topic it subscribes to every 50 ms
//! and sends PINGREQ every 200 ms, recording both round trips. What an
//! ordinary client would have seen while the others attacked: latency,
//! requests unanswered for more than 2 s, and disconnects (after which it
//! reconnects and goes on measuring).

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use ringmq::protocol::{decode, encode, encode_publish, Packet, ProtocolVersion, QoS};
use serde_json::json;

use crate::args::Config;
use crate::mqtt::{self, ack, MAX_PACKET};
use crate::pubsub::is_timeout;
use crate::stats::new_hist;
use crate::wire::Wire;

const PUBLISH_EVERY: Duration = Duration::from_millis(50);
const PING_EVERY: Duration = Duration::from_millis(200);
/// A request unanswered for this long counts as a timeout.
pub const TIMEOUT: Duration = Duration::from_secs(2);
const RECONNECT_EVERY: Duration = Duration::from_millis(500);

/// What the probe saw, per phase and in all.
pub struct ProbeReport {
    /// Publish → receive, ns, per phase.
    pub publish_rtt: Vec<Histogram<u64>>,
    /// PINGREQ → PINGRESP, ns, per phase.
    pub ping_rtt: Vec<Histogram<u64>>,
    pub timeouts: Vec<u64>,
    pub published: u64,
    pub received: u64,
    pub pings: u64,
    pub pongs: u64,
    pub disconnects: u64,
    pub reconnects: u64,
    pub first_disconnect_s: Option<f64>,
    pub errors: Vec<String>,
}

impl ProbeReport {
    /// Both round trips of `phases` (all when `None`) in one histogram.
    pub fn combined(&self, phase: Option<usize>) -> Histogram<u64> {
        let mut h = new_hist();
        for (i, (p, q)) in self.publish_rtt.iter().zip(&self.ping_rtt).enumerate() {
            if phase.is_none_or(|ph| ph == i) {
                let _ = h.add(p);
                let _ = h.add(q);
            }
        }
        h
    }

    pub fn to_json(&self) -> serde_json::Value {
        let merge = |hs: &[Histogram<u64>]| {
            let mut h = new_hist();
            hs.iter().for_each(|x| {
                let _ = h.add(x);
            });
            ms_json(&h)
        };
        json!({
            "published": self.published,
            "received": self.received,
            "pings": self.pings,
            "pongs": self.pongs,
            "timeouts": self.timeouts.iter().sum::<u64>(),
            "disconnects": self.disconnects,
            "reconnects": self.reconnects,
            "first_disconnect_at_s": self.first_disconnect_s.map(crate::scenario::round3),
            "publish_rtt_ms": merge(&self.publish_rtt),
            "ping_rtt_ms": merge(&self.ping_rtt),
            "errors": self.errors,
        })
    }
}

/// p50/p99/max in milliseconds.
pub fn ms_json(h: &Histogram<u64>) -> serde_json::Value {
    let ms = |ns: u64| crate::scenario::round3(ns as f64 / 1e6);
    if h.is_empty() {
        return json!({ "count": 0 });
    }
    json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.5)),
        "p99": ms(h.value_at_quantile(0.99)),
        "max": ms(h.max()),
    })
}

pub struct Probe {
    stop: Arc<AtomicBool>,
    handle: JoinHandle<ProbeReport>,
}

impl Probe {
    /// Connects and subscribes (so the baseline starts with a working
    /// probe), then measures on a thread until [`Probe::finish`]. `phase`
    /// says which phase's histogram a round trip goes to.
    pub fn start(
        cfg: Arc<Config>,
        topic: String,
        phase: Arc<AtomicUsize>,
        phases: usize,
    ) -> io::Result<Probe> {
        let wire = connect(&cfg, &topic, 0)?;
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut p = Run::new(cfg, topic, phase, phases, s);
            p.conn = Some((wire, BytesMut::new()));
            p.run();
            p.report
        });
        Ok(Probe { stop, handle })
    }

    pub fn finish(self) -> ProbeReport {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or_else(|_| {
            let mut r = Run::empty_report(1);
            r.errors.push("probe thread panicked".into());
            r
        })
    }
}

fn connect(cfg: &Config, topic: &str, n: u64) -> io::Result<Wire> {
    let id = format!("rb{}-probe{n}", std::process::id());
    let (mut wire, _) = mqtt::open(cfg, None, &id, 60)?;
    let timeout = Duration::from_secs(cfg.args.connect_timeout.max(1));
    let codes = mqtt::subscribe_all(&mut wire, cfg.version, &[topic], QoS::AtLeastOnce, timeout)?;
    match codes.first() {
        Some(c) if *c < 0x80 => Ok(wire),
        c => Err(io::Error::other(format!("probe SUBSCRIBE refused: {c:?}"))),
    }
}

struct Run {
    cfg: Arc<Config>,
    v: ProtocolVersion,
    topic: String,
    phase: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    conn: Option<(Wire, BytesMut)>,
    /// Publishes not yet received back: seq → (sent, counted as a timeout).
    pending: HashMap<u64, (Instant, bool)>,
    /// PINGREQs not yet answered, oldest first (PINGRESPs come in order).
    pings: VecDeque<(Instant, bool)>,
    seq: u64,
    packet_id: u16,
    out: BytesMut,
    start: Instant,
    report: ProbeReport,
}

impl Run {
    fn new(
        cfg: Arc<Config>,
        topic: String,
        phase: Arc<AtomicUsize>,
        phases: usize,
        stop: Arc<AtomicBool>,
    ) -> Run {
        Run {
            v: cfg.version,
            cfg,
            topic,
            phase,
            stop,
            conn: None,
            pending: HashMap::new(),
            pings: VecDeque::new(),
            seq: 0,
            packet_id: 0,
            out: BytesMut::new(),
            start: Instant::now(),
            report: Run::empty_report(phases),
        }
    }

    fn empty_report(phases: usize) -> ProbeReport {
        ProbeReport {
            publish_rtt: (0..phases).map(|_| new_hist()).collect(),
            ping_rtt: (0..phases).map(|_| new_hist()).collect(),
            timeouts: vec![0; phases],
            published: 0,
            received: 0,
            pings: 0,
            pongs: 0,
            disconnects: 0,
            reconnects: 0,
            first_disconnect_s: None,
            errors: Vec::new(),
        }
    }

    fn ph(&self) -> usize {
        self.phase
            .load(Ordering::Relaxed)
            .min(self.report.timeouts.len() - 1)
    }

    fn error(&mut self, e: String) {
        if self.report.errors.len() < 10 {
            let at = self.start.elapsed().as_secs_f64();
            self.report.errors.push(format!("{at:.1}s: {e}"));
        }
    }

    fn run(&mut self) {
        let (mut next_pub, mut next_ping) = (Instant::now(), Instant::now());
        let mut next_reconnect = Instant::now();
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            self.count_timeouts(now);
            if self.conn.is_none() {
                if now < next_reconnect {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                }
                self.report.reconnects += 1;
                match connect(&self.cfg, &self.topic, self.report.reconnects) {
                    Ok(w) => self.conn = Some((w, BytesMut::new())),
                    Err(e) => {
                        self.error(format!("reconnect: {e}"));
                        next_reconnect = Instant::now() + RECONNECT_EVERY;
                        continue;
                    }
                }
            }
            if now >= next_pub {
                self.seq += 1;
                self.packet_id = self.packet_id.checked_add(1).unwrap_or(1);
                let payload = self.seq.to_le_bytes();
                encode_publish(
                    &mut self.out,
                    self.v,
                    false,
                    QoS::AtLeastOnce,
                    false,
                    &self.topic,
                    self.packet_id,
                    &payload,
                    None,
                );
                self.pending.insert(self.seq, (now, false));
                self.report.published += 1;
                next_pub = (next_pub + PUBLISH_EVERY).max(now);
            }
            if now >= next_ping {
                encode(&Packet::PingReq, self.v, &mut self.out);
                self.pings.push_back((now, false));
                self.report.pings += 1;
                next_ping = (next_ping + PING_EVERY).max(now);
            }
            let wait = next_pub
                .min(next_ping)
                .saturating_duration_since(Instant::now());
            if let Err(e) = self.exchange(wait.max(Duration::from_millis(1))) {
                self.disconnected(e);
            }
        }
    }

    /// Sends what is queued, then reads (up to `wait`) and handles what came.
    fn exchange(&mut self, wait: Duration) -> io::Result<()> {
        let Some((wire, buf)) = self.conn.as_mut() else {
            return Ok(());
        };
        if !self.out.is_empty() {
            let res = wire.send(&self.out);
            self.out.clear();
            res?;
        }
        wire.set_read_timeout(Some(wait))?;
        match wire.recv(buf) {
            Ok(0) => return Err(io::Error::other("connection closed by the broker")),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => return Ok(()),
            Err(e) => return Err(e),
        }
        let mut packets = Vec::new();
        while let Some(p) = decode(buf, self.v, MAX_PACKET).map_err(io::Error::other)? {
            packets.push(p);
        }
        for p in packets {
            self.handle(p);
        }
        Ok(())
    }

    fn handle(&mut self, p: Packet) {
        let now = Instant::now();
        let ph = self.ph();
        match p {
            Packet::Publish(p) => {
                if p.qos == QoS::AtLeastOnce {
                    ack(Packet::PubAck, p.packet_id, self.v, &mut self.out);
                }
                let seq = p.payload.get(..8).and_then(|b| b.try_into().ok());
                let sent = seq.and_then(|b| self.pending.remove(&u64::from_le_bytes(b)));
                if let Some((sent, _)) = sent {
                    self.report.received += 1;
                    let ns = (now - sent).as_nanos() as u64;
                    self.report.publish_rtt[ph].saturating_record(ns.max(1));
                }
            }
            Packet::PingResp => {
                if let Some((sent, _)) = self.pings.pop_front() {
                    self.report.pongs += 1;
                    let ns = (now - sent).as_nanos() as u64;
                    self.report.ping_rtt[ph].saturating_record(ns.max(1));
                }
            }
            _ => {}
        }
    }

    /// Counts (once) every request older than [`TIMEOUT`]; a late answer
    /// still records its latency.
    fn count_timeouts(&mut self, now: Instant) {
        let ph = self.ph();
        let late = |(sent, counted): &mut (Instant, bool)| {
            let late = !*counted && now.duration_since(*sent) > TIMEOUT;
            *counted |= late;
            late as u64
        };
        let n = self.pending.values_mut().map(late).sum::<u64>()
            + self.pings.iter_mut().map(late).sum::<u64>();
        self.report.timeouts[ph] += n;
    }

    /// Requests never answered count as timeouts; reconnects from now on.
    fn disconnected(&mut self, e: io::Error) {
        self.error(format!("disconnected: {e}"));
        self.conn = None;
        self.out.clear();
        self.report.disconnects += 1;
        if self.report.first_disconnect_s.is_none() {
            self.report.first_disconnect_s = Some(self.start.elapsed().as_secs_f64());
        }
        let ph = self.ph();
        let uncounted = self.pending.values().chain(&self.pings).filter(|(_, c)| !c);
        self.report.timeouts[ph] += uncounted.count() as u64;
        self.pending.clear();
        self.pings.clear();
    }
}
