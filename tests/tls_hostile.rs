//! What hostile TLS clients do to the broker: garbage and plaintext on the
//! TLS port, handshakes that never finish, and a storm of handshakes while
//! a steady client is served (latency, memory, survival).

mod common;

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hostile_kit::{assert_growth_below, MB};
use common::tls_clients::*;
use common::tls_kit::*;
use common::{assert_broker_healthy, connect_packet, encode, q, RawClient};
use ringmq::protocol::Packet;

/// Asserts the broker closes `c` within `CLOSE_TIMEOUT` without ever
/// sending a CONNACK (a TLS alert may come first).
fn assert_closed_without_connack(c: &mut RawClient, what: &str) {
    let got = c.expect_closed(CLOSE_TIMEOUT);
    assert_ne!(
        got.first(),
        Some(&0x20),
        "{what}: the broker answered with a CONNACK: {got:02X?}"
    );
    if let Some(&first) = got.first() {
        assert_eq!(
            first, 0x15,
            "{what}: expected nothing or a TLS alert, got {got:02X?}"
        );
    }
}

/// Garbage, HTTP, a TLS record with a junk body, and a plain MQTT CONNECT
/// on the mqtts port: each closed within 5 s with no CONNACK; the broker
/// keeps serving TLS and TCP clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_plaintext_on_the_tls_port_are_closed() {
    let pki = Pki::generate();
    let mut b = start_tls(&pki, &[]);
    let mut keeper = mqtts(&b, &pki, "hostile-keeper").await;
    assert_eq!(keeper.subscribe("keep", q(1)).await, vec![1]);
    let mut x: u32 = 0x2545_f491;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut junk_record = vec![0x16, 0x03, 0x01, 0x02, 0x00];
    junk_record.extend_from_slice(&noise[..512]);
    let connect = encode(&Packet::Connect(Box::new(connect_packet(
        "plain", true, 30, None,
    ))));
    let cases: [(&str, Vec<u8>); 4] = [
        ("random bytes", noise.clone()),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("a handshake record with a junk body", junk_record),
        ("a plaintext MQTT CONNECT", connect),
    ];
    for port in [b.mqtts_port(), b.wss_port()] {
        for (what, bytes) in &cases {
            let (what, bytes) = (what.to_string(), bytes.clone());
            tokio::task::spawn_blocking(move || {
                let mut c = RawClient::open(port);
                c.send(&bytes);
                assert_closed_without_connack(&mut c, &what);
            })
            .await
            .expect("raw client");
        }
        assert_self_round_trip(&mut keeper, "keep", b"served").await;
    }
    assert!(b.is_running(), "the broker died");
    let mut fresh = mqtts(&b, &pki, "hostile-fresh").await;
    assert_eq!(fresh.subscribe("fresh", q(1)).await, vec![1]);
    assert_self_round_trip(&mut fresh, "fresh", b"ok").await;
    assert_broker_healthy(b.port(), "garbage").await;
}

/// Handshakes that never finish (the first 20 bytes of a real ClientHello,
/// then silence) and finished handshakes never followed by a CONNECT are
/// closed by `--connect-timeout`; meanwhile others are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_are_closed_by_the_connect_timeout() {
    const TIMEOUT_S: u64 = 2;
    let pki = Pki::generate();
    let mut b = start_tls(&pki, &["--connect-timeout", &TIMEOUT_S.to_string()]);
    let hello = client_hello(&pki.ca);
    assert!(hello.len() > 20);
    let port = b.mqtts_port();
    let t0 = Instant::now();
    let mut half: Vec<RawClient> = (0..50)
        .map(|_| {
            let mut c = RawClient::open(port);
            c.send(&hello[..20]);
            c
        })
        .collect();
    let ca = pki.ca.clone();
    let silent: Vec<Handshake> = tokio::task::spawn_blocking(move || {
        (0..10)
            .map(|_| handshake(port, &ca, &ProbeOpts::default()).expect("handshake"))
            .collect()
    })
    .await
    .unwrap();

    // Others are served while those wait.
    let mut c = mqtts(&b, &pki, "stall-neighbour").await;
    assert_eq!(c.subscribe("stall", q(1)).await, vec![1]);
    assert_self_round_trip(&mut c, "stall", b"served").await;

    let bound = Duration::from_secs(TIMEOUT_S + 3);
    let closed = tokio::task::spawn_blocking(move || {
        let mut early = 0;
        for c in half.iter_mut() {
            let _ = c.expect_closed(
                bound
                    .saturating_sub(t0.elapsed())
                    .max(Duration::from_millis(100)),
            );
            if t0.elapsed() < Duration::from_millis(TIMEOUT_S * 1000 / 2) {
                early += 1;
            }
        }
        for mut h in silent {
            h.tls.sock.set_read_timeout(Some(bound)).unwrap();
            let mut buf = [0u8; 256];
            loop {
                match h.tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {} // session tickets
                }
            }
        }
        (early, t0.elapsed())
    })
    .await
    .expect("stalled clients");
    assert_eq!(
        closed.0, 0,
        "stalled handshakes closed before half the connect timeout"
    );
    assert!(
        closed.1 < bound + Duration::from_secs(1),
        "closing took {:?}",
        closed.1
    );
    assert!(b.is_running(), "the broker died");
    assert_self_round_trip(&mut c, "stall", b"still served").await;
}

/// 2,000 TLS connections (`RINGMQ_TLS_STORM=N` for another number, e.g.
/// the 20,000 by hand) from 4 threads, up to 32 open at once per thread:
/// half send a ClientHello and vanish, half complete the handshake and
/// leave. Meanwhile a steady mqtts client's QoS 0 ping-pong keeps a p99
/// under 200 ms, the broker's RSS grows less than 64 MB, and it serves new
/// clients after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_storm_leaves_others_served_with_bounded_memory() {
    const THREADS: usize = 4;
    let per_thread = std::env::var("RINGMQ_TLS_STORM")
        .ok()
        .and_then(|n| n.parse::<usize>().ok())
        .map_or(500, |n| n.div_ceil(THREADS));
    let pki = Pki::generate();
    let mut b = start_tls(&pki, &[]);
    let mut steady = mqtts(&b, &pki, "storm-steady").await;
    assert_eq!(steady.subscribe("storm/ping", q(0)).await, vec![0]);
    assert_broker_healthy(b.port(), "storm-warm").await;
    let baseline = b.rss();

    let port = b.mqtts_port();
    let config = probe_config(&pki.ca, &ProbeOpts::default());
    let hello = Arc::new(client_hello(&pki.ca));
    let done = Arc::new(AtomicUsize::new(0));
    let handshakes_ok = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (config, hello) = (config.clone(), hello.clone());
            let (done, ok) = (done.clone(), handshakes_ok.clone());
            std::thread::spawn(move || {
                let mut open: VecDeque<TcpStream> = VecDeque::new();
                let mut kept = VecDeque::new();
                for i in 0..per_thread {
                    if i % 2 == 0 {
                        let addr = SocketAddr::from(([127, 0, 0, 1], port));
                        if let Ok(mut s) = TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT) {
                            let _ = s.set_write_timeout(Some(HANDSHAKE_TIMEOUT));
                            let _ = s.write_all(&hello);
                            open.push_back(s);
                        }
                    } else if let Ok(h) = handshake_with(port, config.clone(), "127.0.0.1") {
                        ok.fetch_add(1, Ordering::SeqCst);
                        kept.push_back(h);
                    }
                    if open.len() > 16 {
                        open.pop_front();
                    }
                    if kept.len() > 16 {
                        kept.pop_front();
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();

    let mut latencies = Vec::new();
    let mut peak = baseline;
    let cap = Instant::now() + Duration::from_secs(240.max(per_thread as u64 / 4));
    let mut seq = 0u64;
    while done.load(Ordering::SeqCst) < THREADS && Instant::now() < cap {
        seq += 1;
        let payload = seq.to_be_bytes();
        let t = Instant::now();
        steady.publish("storm/ping", q(0), false, &payload).await;
        let m = steady.recv_publish_within(Duration::from_secs(2)).await;
        latencies.push(t.elapsed());
        assert_eq!(&m.payload[..], &payload[..], "ping {seq}");
        peak = peak.max(b.rss());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(Instant::now() < cap, "the storm did not finish in time");
    for t in threads {
        t.join().expect("storm thread");
    }
    let ok = handshakes_ok.load(Ordering::SeqCst);
    let wanted = THREADS * per_thread / 2;
    eprintln!(
        "storm: {ok} of {wanted} handshakes completed, {} pings",
        latencies.len()
    );
    assert!(
        ok * 100 >= wanted * 95,
        "only {ok} of {wanted} handshakes completed"
    );

    latencies.sort();
    assert!(
        latencies.len() >= 20,
        "only {} pings during the storm",
        latencies.len()
    );
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    eprintln!(
        "storm: ping p99 {p99:?}, max {:?}",
        latencies.last().unwrap()
    );
    assert!(
        p99 < Duration::from_millis(200),
        "ping p99 {p99:?} during the storm"
    );

    assert!(b.is_running(), "the broker died in the storm");
    peak = peak.max(b.rss());
    assert_growth_below("TLS storm", baseline, peak, 64 * MB);
    assert_self_round_trip(&mut steady, "storm/ping", b"after").await;
    let mut fresh = mqtts(&b, &pki, "storm-after").await;
    assert_eq!(fresh.subscribe("storm/after", q(1)).await, vec![1]);
    assert_self_round_trip(&mut fresh, "storm/after", b"ok").await;
    assert_broker_healthy(b.port(), "storm").await;
}
