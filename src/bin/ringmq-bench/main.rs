//! ringmq-bench: a small MQTT load generator (point-to-point scenario).
//!
//! N publishers each publish to their own topic `bench/<i>` and N
//! subscribers each subscribe to one of them, over plain TCP or MQTT over
//! WebSocket (`--ws-port`) on loopback, with blocking sockets and one thread per connection. Each
//! payload carries a send timestamp, so latency is measured end to end. The
//! run is bounded by `--duration`, then a short drain; it prints only what it
//! counted. Works against any MQTT 3.1.1 broker (ringmq, mosquitto, ...).

mod wire;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use bytestring::ByteString;
use clap::Parser;
use wire::Wire;

use ringmq::protocol::{
    decode, encode, encode_publish, Connect, Packet, ProtocolVersion, QoS, Subscribe,
    SubscriptionOptions, SubscriptionRequest,
};

const V: ProtocolVersion = ProtocolVersion::V311;

#[derive(Parser, Debug, Clone)]
#[command(about = "MQTT point-to-point load generator (loopback only)")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// Publisher/subscriber pairs, one topic each.
    #[arg(long, default_value_t = 4)]
    pairs: usize,
    /// Payload bytes (at least 8: the send timestamp).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// 0 or 1.
    #[arg(long, default_value_t = 0)]
    qos: u8,
    /// Messages per second per publisher; 0 = as fast as the socket takes.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Use MQTT over WebSocket on this port (path --ws-path) instead of TCP.
    #[arg(long)]
    ws_port: Option<u16>,
    #[arg(long, default_value = "/mqtt")]
    ws_path: String,
    /// Label printed with the result.
    #[arg(long, default_value = "broker")]
    label: String,
}

fn main() {
    let args = Args::parse();
    if !is_loopback(&args.host) {
        eprintln!("ringmq-bench: refusing non-loopback host {}", args.host);
        std::process::exit(2);
    }
    let qos = match args.qos {
        0 => QoS::AtMostOnce,
        1 => QoS::AtLeastOnce,
        _ => {
            eprintln!("ringmq-bench: --qos must be 0 or 1");
            std::process::exit(2);
        }
    };
    let epoch = Instant::now();
    let received = Arc::new(AtomicU64::new(0));
    let sent = Arc::new(AtomicU64::new(0));
    let stop_pub = Arc::new(AtomicBool::new(false));
    let stop_sub = Arc::new(AtomicBool::new(false));
    let latencies = Arc::new(Mutex::new(Vec::<u64>::new()));
    let mut subs = Vec::new();
    for i in 0..args.pairs {
        let stream = connect(&args, &format!("bench-sub-{i}"));
        subscribe(&stream, &format!("bench/{i}"), qos);
        let (received, stop, latencies) = (received.clone(), stop_sub.clone(), latencies.clone());
        subs.push(std::thread::spawn(move || {
            subscriber(stream, epoch, received, stop, latencies)
        }));
    }
    let mut pubs = Vec::new();
    for i in 0..args.pairs {
        let stream = connect(&args, &format!("bench-pub-{i}"));
        let (sent, stop, a) = (sent.clone(), stop_pub.clone(), args.clone());
        pubs.push(std::thread::spawn(move || {
            publisher(stream, i, &a, qos, epoch, sent, stop)
        }));
    }
    let start = Instant::now();
    let mut last = 0;
    while start.elapsed() < Duration::from_secs(args.duration) {
        std::thread::sleep(Duration::from_secs(1));
        let r = received.load(Ordering::Relaxed);
        eprintln!(
            "[{:>3}s] sent {} received {} (+{}/s)",
            start.elapsed().as_secs(),
            sent.load(Ordering::Relaxed),
            r,
            r - last
        );
        last = r;
    }
    stop_pub.store(true, Ordering::Relaxed);
    for p in pubs {
        let _ = p.join();
    }
    let publish_secs = start.elapsed().as_secs_f64();
    // Drain: wait until deliveries stop growing (at most 5 s).
    let mut prev = u64::MAX;
    let drain_start = Instant::now();
    while drain_start.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(300));
        let r = received.load(Ordering::Relaxed);
        if r == prev {
            break;
        }
        prev = r;
    }
    stop_sub.store(true, Ordering::Relaxed);
    for s in subs {
        let _ = s.join();
    }
    let sent = sent.load(Ordering::Relaxed);
    let received = received.load(Ordering::Relaxed);
    let mut lat = std::mem::take(&mut *latencies.lock().unwrap_or_else(|e| e.into_inner()));
    lat.sort_unstable();
    let pct = |p: f64| -> f64 {
        if lat.is_empty() {
            return f64::NAN;
        }
        lat[((lat.len() - 1) as f64 * p) as usize] as f64 / 1000.0
    };
    println!(
        "{{\"label\":\"{}\",\"pairs\":{},\"qos\":{},\"payload\":{},\"seconds\":{:.2},\"sent\":{},\"received\":{},\"lost\":{},\"sent_per_s\":{:.0},\"received_per_s\":{:.0},\"p50_ms\":{:.3},\"p99_ms\":{:.3}}}",
        args.label,
        args.pairs,
        args.qos,
        args.payload,
        publish_secs,
        sent,
        received,
        sent.saturating_sub(received),
        sent as f64 / publish_secs,
        received as f64 / publish_secs,
        pct(0.5),
        pct(0.99)
    );
}

fn is_loopback(host: &str) -> bool {
    match host.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host == "localhost",
    }
}

fn connect(args: &Args, client_id: &str) -> Wire {
    let port = args.ws_port.unwrap_or(args.port);
    let path = args.ws_port.map(|_| args.ws_path.as_str());
    let mut stream = Wire::connect(&args.host, port, path).unwrap_or_else(|e| {
        eprintln!("ringmq-bench: connect {}:{port}: {e}", args.host);
        std::process::exit(1)
    });
    let mut out = BytesMut::new();
    let connect = Connect {
        protocol: V,
        clean_start: true,
        keep_alive: 60,
        client_id: ByteString::from(client_id),
        will: None,
        username: None,
        password: None,
        properties: None,
    };
    encode(&Packet::Connect(Box::new(connect)), V, &mut out);
    stream.send(&out).expect("write CONNECT");
    match read_packet(&mut stream, &mut BytesMut::new()) {
        Some(Packet::ConnAck(a)) if a.code == 0 => stream,
        other => {
            eprintln!("ringmq-bench: CONNECT refused: {other:?}");
            std::process::exit(1)
        }
    }
}

fn subscribe(stream: &Wire, topic: &str, qos: QoS) {
    let mut s = stream.try_clone().expect("clone socket");
    let mut out = BytesMut::new();
    let sub = Subscribe {
        packet_id: 1,
        filters: vec![SubscriptionRequest {
            filter: ByteString::from(topic),
            options: SubscriptionOptions {
                qos,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            },
        }],
        properties: None,
    };
    encode(&Packet::Subscribe(sub), V, &mut out);
    s.send(&out).expect("write SUBSCRIBE");
    match read_packet(&mut s, &mut BytesMut::new()) {
        Some(Packet::SubAck(_)) => {}
        other => {
            eprintln!("ringmq-bench: SUBSCRIBE failed: {other:?}");
            std::process::exit(1)
        }
    }
}

fn read_packet(stream: &mut Wire, buf: &mut BytesMut) -> Option<Packet> {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    loop {
        if let Ok(Some(p)) = decode(buf, V, 1 << 20) {
            return Some(p);
        }
        if stream.recv(buf).ok()? == 0 {
            return None;
        }
    }
}

fn publisher(
    mut stream: Wire,
    i: usize,
    args: &Args,
    qos: QoS,
    epoch: Instant,
    sent: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) {
    let topic = format!("bench/{i}");
    let mut payload = vec![0u8; args.payload.max(8)];
    // Acks for QoS 1 are read and discarded by a helper thread; the window
    // is not limited (the broker must keep up or push back via TCP).
    if qos != QoS::AtMostOnce {
        let mut r = stream.try_clone().expect("clone socket");
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = BytesMut::new();
            let _ = r.set_read_timeout(Some(Duration::from_millis(200)));
            while !stop.load(Ordering::Relaxed) {
                buf.clear();
                if let Ok(0) = r.recv(&mut buf) {
                    break;
                }
            }
        });
    }
    let batch = if args.rate == 0 { 64 } else { 1 };
    let interval = (args.rate > 0).then(|| Duration::from_nanos(1_000_000_000 / args.rate));
    let mut next = Instant::now();
    let mut out = BytesMut::with_capacity(batch * (args.payload + 32));
    let mut packet_id: u16 = 0;
    while !stop.load(Ordering::Relaxed) {
        out.clear();
        for _ in 0..batch {
            let ts = epoch.elapsed().as_nanos() as u64;
            payload[..8].copy_from_slice(&ts.to_le_bytes());
            packet_id = if packet_id == u16::MAX {
                1
            } else {
                packet_id + 1
            };
            let pid = if qos == QoS::AtMostOnce { 0 } else { packet_id };
            encode_publish(&mut out, V, false, qos, false, &topic, pid, &payload, None);
        }
        if stream.send(&out).is_err() {
            break;
        }
        sent.fetch_add(batch as u64, Ordering::Relaxed);
        if let Some(iv) = interval {
            next += iv;
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
        }
    }
}

fn subscriber(
    mut stream: Wire,
    epoch: Instant,
    received: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    latencies: Arc<Mutex<Vec<u64>>>,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut buf = BytesMut::with_capacity(1 << 16);
    let mut local_lat = Vec::new();
    let mut n_local = 0u64;
    let mut acks = BytesMut::new();
    while !stop.load(Ordering::Relaxed) {
        match stream.recv(&mut buf) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => continue,
        }
        acks.clear();
        while let Ok(Some(p)) = decode(&mut buf, V, 1 << 20) {
            if let Packet::Publish(p) = p {
                n_local += 1;
                if n_local.is_multiple_of(16) && p.payload.len() >= 8 {
                    let mut ts = [0u8; 8];
                    ts.copy_from_slice(&p.payload[..8]);
                    let now = epoch.elapsed().as_nanos() as u64;
                    local_lat.push(now.saturating_sub(u64::from_le_bytes(ts)) / 1000);
                }
                if p.qos == QoS::AtLeastOnce {
                    encode(
                        &Packet::PubAck(ringmq::protocol::Ack {
                            packet_id: p.packet_id,
                            reason: 0,
                            properties: None,
                        }),
                        V,
                        &mut acks,
                    );
                }
            }
        }
        if !acks.is_empty() && stream.send(&acks).is_err() {
            break;
        }
        received.fetch_add(n_local, Ordering::Relaxed);
        n_local = 0;
    }
    latencies
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .extend(local_lat);
}
