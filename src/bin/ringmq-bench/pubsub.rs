//! Publisher and subscriber threads (one per connection; a publisher at
//! QoS 1/2 has a second thread reading its acks).

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq::protocol::{decode, encode_publish, Packet, QoS};

use crate::args::Config;
use crate::mqtt::{ack, MAX_PACKET};
use crate::payload::{self, Header};
use crate::stats::{SeqTracker, SubStats};
use crate::wire::Wire;

/// Counters and flags every thread of a run shares.
#[derive(Default)]
pub struct Shared {
    pub sent: AtomicU64,
    /// Publishes acknowledged to publishers (PUBACK, or PUBCOMP at QoS 2).
    pub acked: AtomicU64,
    /// v5 acks with a failure reason code (0x80 and up).
    pub ack_failures: AtomicU64,
    pub received: AtomicU64,
    pub duplicated: AtomicU64,
    /// Publishers stop sending.
    pub stop_pub: AtomicBool,
    /// Everything stops (end of drain).
    pub stop_all: AtomicBool,
    pub errors: Mutex<Vec<String>>,
}

impl Shared {
    pub fn error(&self, e: String) {
        let mut errs = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        if errs.len() < 20 {
            errs.push(e);
        }
    }
}

/// The QoS 1/2 window of one publisher: publishes sent and not yet acked.
#[derive(Default)]
struct Window {
    inflight: Mutex<usize>,
    cv: Condvar,
}

impl Window {
    fn release(&self, n: usize) {
        let mut f = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        *f = f.saturating_sub(n);
        self.cv.notify_one();
    }

    /// Takes up to `want` slots of `size`, waiting (up to 100 ms) for one.
    fn take(&self, want: usize, size: usize) -> usize {
        let mut f = self.inflight.lock().unwrap_or_else(|e| e.into_inner());
        if *f >= size {
            f = self
                .cv
                .wait_timeout(f, Duration::from_millis(100))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        let n = want.min(size.saturating_sub(*f));
        *f += n;
        n
    }
}

const BATCH: usize = 64;

pub fn publisher(
    wire: Wire,
    id: u32,
    topic: String,
    cfg: Arc<Config>,
    epoch: Instant,
    shared: Arc<Shared>,
) {
    let (qos, v, rate) = (cfg.qos, cfg.version, cfg.args.rate);
    let reader = match wire.try_clone() {
        Ok(r) => r,
        Err(e) => return shared.error(format!("publisher {id}: clone socket: {e}")),
    };
    let writer = Arc::new(Mutex::new(wire));
    let window = Arc::new(Window::default());
    if qos != QoS::AtMostOnce {
        let (w, win, sh) = (writer.clone(), window.clone(), shared.clone());
        std::thread::spawn(move || ack_reader(reader, w, win, v, id, sh));
    }
    let mut payload = vec![0u8; cfg.args.payload];
    let mut out = BytesMut::with_capacity(BATCH * (payload.len() + 64));
    let mut seq: u64 = 0;
    let mut packet_id: u16 = 0;
    let start = Instant::now();
    while !shared.stop_pub.load(Ordering::Relaxed) {
        let mut n = BATCH;
        if rate > 0 {
            let due = (start.elapsed().as_secs_f64() * rate as f64) as u64 + 1;
            if due <= seq {
                let next = start + Duration::from_secs_f64(seq as f64 / rate as f64);
                let wait = next.saturating_duration_since(Instant::now());
                std::thread::sleep(wait.min(Duration::from_millis(100)));
                continue;
            }
            n = n.min((due - seq) as usize);
        }
        if qos != QoS::AtMostOnce {
            n = window.take(n, cfg.args.inflight);
            if n == 0 {
                continue;
            }
        }
        out.clear();
        for _ in 0..n {
            let h = Header {
                ts_ns: epoch.elapsed().as_nanos() as u64,
                publisher: id,
                seq,
            };
            payload::write(&mut payload, h);
            seq += 1;
            packet_id = packet_id.checked_add(1).unwrap_or(1);
            encode_publish(
                &mut out, v, false, qos, false, &topic, packet_id, &payload, None,
            );
        }
        let res = writer.lock().unwrap_or_else(|e| e.into_inner()).send(&out);
        if let Err(e) = res {
            shared.error(format!("publisher {id}: send: {e}"));
            break;
        }
        shared.sent.fetch_add(n as u64, Ordering::Relaxed);
    }
}

fn ack_reader(
    mut r: Wire,
    w: Arc<Mutex<Wire>>,
    win: Arc<Window>,
    v: ringmq::protocol::ProtocolVersion,
    id: u32,
    shared: Arc<Shared>,
) {
    let _ = r.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = BytesMut::with_capacity(1 << 16);
    let mut out = BytesMut::new();
    while !shared.stop_all.load(Ordering::Relaxed) {
        match r.recv(&mut buf) {
            Ok(0) => {
                if !shared.stop_all.load(Ordering::Relaxed) {
                    shared.error(format!("publisher {id}: connection closed by the broker"));
                }
                break;
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => continue,
            Err(e) => {
                shared.error(format!("publisher {id}: recv: {e}"));
                break;
            }
        }
        out.clear();
        let mut done = 0;
        loop {
            let p = match decode(&mut buf, v, MAX_PACKET) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    shared.error(format!("publisher {id}: decode: {e}"));
                    return;
                }
            };
            match p {
                Packet::PubAck(a) | Packet::PubComp(a) => {
                    done += 1;
                    if a.reason >= 0x80 {
                        shared.ack_failures.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Packet::PubRec(a) if a.reason >= 0x80 => {
                    done += 1;
                    shared.ack_failures.fetch_add(1, Ordering::Relaxed);
                }
                Packet::PubRec(a) => ack(Packet::PubRel, a.packet_id, v, &mut out),
                _ => {}
            }
        }
        if !out.is_empty() {
            let res = w.lock().unwrap_or_else(|e| e.into_inner()).send(&out);
            if let Err(e) = res {
                shared.error(format!("publisher {id}: send PUBREL: {e}"));
                break;
            }
        }
        if done > 0 {
            shared.acked.fetch_add(done as u64, Ordering::Relaxed);
            win.release(done);
        }
    }
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

/// Reads until `stop_all`, acking QoS 1/2, counting every publish.
pub fn subscriber(
    mut wire: Wire,
    idx: usize,
    cfg: Arc<Config>,
    epoch: Instant,
    shared: Arc<Shared>,
) -> SubStats {
    let v = cfg.version;
    let mut st = SubStats::new();
    let mut seqs: HashMap<u32, SeqTracker> = HashMap::new();
    let _ = wire.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = BytesMut::with_capacity(1 << 16);
    let mut out = BytesMut::new();
    while !shared.stop_all.load(Ordering::Relaxed) {
        match wire.recv(&mut buf) {
            Ok(0) => {
                shared.error(format!("subscriber {idx}: connection closed by the broker"));
                break;
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) => continue,
            Err(e) => {
                shared.error(format!("subscriber {idx}: recv: {e}"));
                break;
            }
        }
        out.clear();
        let (before_r, before_d) = (st.received, st.duplicated);
        loop {
            let p = match decode(&mut buf, v, MAX_PACKET) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    shared.error(format!("subscriber {idx}: decode: {e}"));
                    return st;
                }
            };
            match p {
                Packet::Publish(p) => {
                    st.received += 1;
                    match payload::read(&p.payload) {
                        Some(h) => {
                            let now = epoch.elapsed().as_nanos() as u64;
                            st.hist
                                .saturating_record(now.saturating_sub(h.ts_ns).max(1));
                            let a = seqs.entry(h.publisher).or_default().observe(h.seq);
                            st.count(a);
                        }
                        None => st.foreign += 1,
                    }
                    match p.qos {
                        QoS::AtMostOnce => {}
                        QoS::AtLeastOnce => ack(Packet::PubAck, p.packet_id, v, &mut out),
                        QoS::ExactlyOnce => ack(Packet::PubRec, p.packet_id, v, &mut out),
                    }
                }
                Packet::PubRel(a) => ack(Packet::PubComp, a.packet_id, v, &mut out),
                _ => {}
            }
        }
        if !out.is_empty() {
            if let Err(e) = wire.send(&out) {
                shared.error(format!("subscriber {idx}: send ack: {e}"));
                break;
            }
        }
        shared
            .received
            .fetch_add(st.received - before_r, Ordering::Relaxed);
        shared
            .duplicated
            .fetch_add(st.duplicated - before_d, Ordering::Relaxed);
    }
    st
}
