//! PROXY protocol listeners (`--listen mqtt://HOST:PORT?proxy-protocol`)
//! end to end: v1 and v2 headers before a CONNECT, the proxied source in
//! the log and in `--max-connect-rate`, refusal of a plain CONNECT, a
//! header split across writes, and a header that never ends.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::{Packet, QoS};

const PROXY_LISTENER: &str = "mqtt://127.0.0.1:0?proxy-protocol";

/// A broker whose second listener expects PROXY headers; returns it and
/// that listener's port.
fn proxy_broker(extra: &[&str]) -> (Broker, u16) {
    let b = Broker::start_listeners(&[PROXY_LISTENER], extra);
    let ports = b.mqtt_ports().to_vec();
    assert_eq!(
        ports.len(),
        2,
        "ready line should list both mqtt listeners: {ports:?}"
    );
    (b, ports[1])
}

fn v1_header(src: &str, dst: &str) -> Vec<u8> {
    let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let proto = if s.is_ipv4() { "TCP4" } else { "TCP6" };
    format!(
        "PROXY {proto} {} {} {} {}\r\n",
        s.ip(),
        d.ip(),
        s.port(),
        d.port()
    )
    .into_bytes()
}

/// A v2 PROXY (command 1) header over TCP with one NOOP TLV.
fn v2_header(src: &str, dst: &str) -> Vec<u8> {
    let (s, d): (SocketAddr, SocketAddr) = (src.parse().unwrap(), dst.parse().unwrap());
    let mut block = Vec::new();
    let family = match (s, d) {
        (SocketAddr::V4(s), SocketAddr::V4(d)) => {
            block.extend_from_slice(&s.ip().octets());
            block.extend_from_slice(&d.ip().octets());
            0x11
        }
        (SocketAddr::V6(s), SocketAddr::V6(d)) => {
            block.extend_from_slice(&s.ip().octets());
            block.extend_from_slice(&d.ip().octets());
            0x21
        }
        _ => panic!("mixed families"),
    };
    block.extend_from_slice(&s.port().to_be_bytes());
    block.extend_from_slice(&d.port().to_be_bytes());
    block.extend_from_slice(&[0x04, 0x00, 0x02, b'o', b'k']);
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, family]);
    h.extend_from_slice(&(block.len() as u16).to_be_bytes());
    h.extend_from_slice(&block);
    h
}

fn connect_bytes(id: &str) -> Vec<u8> {
    encode(&Packet::Connect(Box::new(connect_packet(
        id, true, 30, None,
    ))))
}

/// Sends `header` + CONNECT in one write and returns what came back: the
/// client when accepted, or the outcome when not.
fn proxied_connect(port: u16, header: &[u8], id: &str) -> Result<RawClient, ReadOutcome> {
    let mut c = RawClient::open(port);
    let mut bytes = header.to_vec();
    bytes.extend_from_slice(&connect_bytes(id));
    c.send(&bytes);
    match c.read_outcome(RECV_TIMEOUT) {
        ReadOutcome::Packet(Packet::ConnAck(a)) if a.code == 0 => Ok(c),
        other => Err(other),
    }
}

/// A proxied client is a full client: it subscribes and gets a plain
/// client's publish, and the other way round.
fn assert_round_trip(proxied: &mut RawClient, plain_port: u16, tag: &str) {
    let topic = format!("pp/{tag}");
    assert_eq!(proxied.subscribe(1, &[(&topic, QoS::AtLeastOnce)]), [1]);
    let (mut plain, _) = RawClient::connect(plain_port, &format!("{tag}-plain"), true);
    plain.publish(&topic, QoS::AtMostOnce, 0, false, b"to proxied");
    let m = proxied.read_publish(RECV_TIMEOUT);
    assert_eq!(
        (&m.topic[..], &m.payload[..]),
        (topic.as_str(), &b"to proxied"[..])
    );
}

/// v1 (TCP4 and TCP6) then CONNECT: served, and the debug log names the
/// proxied source address.
#[test]
fn v1_header_then_connect_is_served_and_logged() {
    let (broker, pport) = proxy_broker(&[]);
    let mut c = proxied_connect(
        pport,
        &v1_header("203.0.113.7:40001", "10.0.0.1:1883"),
        "v1-4",
    )
    .unwrap_or_else(|o| panic!("v1 TCP4 + CONNECT not served: {o:?}"));
    assert_round_trip(&mut c, broker.port(), "v1");
    broker.wait_log_count("203.0.113.7", 1);
    let h6 = v1_header("[2001:db8::7]:40002", "[2001:db8::1]:1883");
    proxied_connect(pport, &h6, "v1-6")
        .unwrap_or_else(|o| panic!("v1 TCP6 + CONNECT not served: {o:?}"));
    broker.wait_log_count("2001:db8::7", 1);
}

/// v2 (INET with a TLV, INET6, LOCAL) then CONNECT: served and logged.
#[test]
fn v2_header_then_connect_is_served_and_logged() {
    let (broker, pport) = proxy_broker(&[]);
    let mut c = proxied_connect(
        pport,
        &v2_header("203.0.113.9:40003", "10.0.0.1:1883"),
        "v2-4",
    )
    .unwrap_or_else(|o| panic!("v2 INET + CONNECT not served: {o:?}"));
    assert_round_trip(&mut c, broker.port(), "v2");
    broker.wait_log_count("203.0.113.9", 1);
    let h6 = v2_header("[2001:db8::9]:40004", "[2001:db8::1]:1883");
    proxied_connect(pport, &h6, "v2-6")
        .unwrap_or_else(|o| panic!("v2 INET6 + CONNECT not served: {o:?}"));
    broker.wait_log_count("2001:db8::9", 1);
    // LOCAL (a balancer's health check): the real endpoints are used.
    let local = b"\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00".to_vec();
    proxied_connect(pport, &local, "v2-local")
        .unwrap_or_else(|o| panic!("v2 LOCAL + CONNECT not served: {o:?}"));
}

/// `--max-connect-rate 2` counts per proxied source, not per balancer:
/// a burst from 203.0.113.7 gets refusals (at most 2 per shard's bucket
/// accepted), then 203.0.113.8, over the same real 127.0.0.1, is served.
#[test]
fn connect_rate_applies_per_proxied_source() {
    let (_broker, pport) = proxy_broker(&["--max-connect-rate", "2"]);
    let t0 = Instant::now();
    let mut accepted = Vec::new();
    let mut refused = 0;
    for i in 0..6 {
        let h = v1_header(&format!("203.0.113.7:{}", 41000 + i), "10.0.0.1:1883");
        match proxied_connect(pport, &h, &format!("rate-7-{i}")) {
            Ok(c) => accepted.push(c),
            Err(ReadOutcome::Closed) => refused += 1,
            Err(ReadOutcome::Packet(Packet::ConnAck(a))) if a.code != 0 => refused += 1,
            Err(other) => panic!("connection {i}: neither CONNACK nor close: {other:?}"),
        }
    }
    let elapsed = t0.elapsed().as_secs_f64();
    let allowed = (SHARDS as f64 * (2.0 + 2.0 * elapsed)).floor() as usize;
    assert!(
        accepted.len() >= 2,
        "the first two from 203.0.113.7 must be served"
    );
    assert!(
        accepted.len() <= allowed && refused >= 1,
        "{} of 6 from 203.0.113.7 accepted in {elapsed:.2} s (at most {allowed}): \
         the rate is not applied to the proxied source",
        accepted.len()
    );
    let h = v1_header("203.0.113.8:42000", "10.0.0.1:1883");
    proxied_connect(pport, &h, "rate-8")
        .unwrap_or_else(|o| panic!("203.0.113.8 refused with 203.0.113.7's budget: {o:?}"));
}

/// A plain CONNECT on a PROXY listener is closed at once (its first byte
/// cannot start a header), long before the 10 s connect timeout; no
/// CONNACK is sent.
#[test]
fn plain_connect_without_header_is_closed_at_once() {
    let (broker, pport) = proxy_broker(&["--connect-timeout", "10"]);
    let mut c = RawClient::open(pport);
    let t0 = Instant::now();
    c.send(&connect_bytes("no-header"));
    let got = c.expect_closed(Duration::from_secs(3));
    assert!(
        got.is_empty(),
        "bytes sent to a header-less client: {got:02X?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
    // Garbage after "PROXY " is refused the same way.
    let mut g = RawClient::open(pport);
    g.send(b"PROXY TCP4 not-an-address\r\n");
    g.send(&connect_bytes("bad-header"));
    assert!(g.expect_closed(Duration::from_secs(3)).is_empty());
    RawClient::connect(broker.port(), "plain-listener-still-fine", true)
        .0
        .disconnect();
}

/// Header and CONNECT dribbled a few bytes per write still work.
#[test]
fn header_split_across_writes_works() {
    let (broker, pport) = proxy_broker(&[]);
    for (tag, header) in [
        ("split-v1", v1_header("203.0.113.21:40005", "10.0.0.1:1883")),
        ("split-v2", v2_header("203.0.113.22:40006", "10.0.0.1:1883")),
    ] {
        let mut c = RawClient::open(pport);
        let mut bytes = header;
        bytes.extend_from_slice(&connect_bytes(tag));
        for chunk in bytes.chunks(3) {
            c.send(chunk);
            std::thread::sleep(Duration::from_millis(5));
        }
        match c.read_outcome(RECV_TIMEOUT) {
            ReadOutcome::Packet(Packet::ConnAck(a)) => assert_eq!(a.code, 0, "{tag}"),
            other => panic!("{tag}: expected CONNACK, got {other:?}"),
        }
        assert_round_trip(&mut c, broker.port(), tag);
    }
    broker.wait_log_count("203.0.113.22", 1);
}

/// A header that never ends is closed within `--connect-timeout 1` (not
/// before: it is a valid beginning) while other clients are served.
#[test]
fn unfinished_header_is_closed_within_connect_timeout() {
    let (broker, pport) = proxy_broker(&["--connect-timeout", "1"]);
    let t0 = Instant::now();
    let mut v1 = RawClient::open(pport);
    v1.send(b"PROXY TCP4 203.0.");
    let mut v2 = RawClient::open(pport);
    v2.send(b"\r\n\r\n\0\r\nQUIT\n\x21");
    let mut ok = proxied_connect(
        pport,
        &v1_header("203.0.113.30:40007", "10.0.0.1:1883"),
        "meanwhile",
    )
    .unwrap_or_else(|o| panic!("a complete header was not served meanwhile: {o:?}"));
    assert_round_trip(&mut ok, broker.port(), "meanwhile");
    for (what, c) in [("v1", &mut v1), ("v2", &mut v2)] {
        let got = c.expect_closed(Duration::from_secs(4));
        assert!(got.is_empty(), "{what}: {got:02X?}");
        let after = t0.elapsed();
        assert!(
            after >= Duration::from_millis(900),
            "{what}: a valid header prefix was closed after {after:?}, before the timeout"
        );
    }
    ok.send_packet(&Packet::PingReq);
    assert!(matches!(ok.read_packet(RECV_TIMEOUT), Packet::PingResp));
}
