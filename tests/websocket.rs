//! MQTT over WebSocket (MQTT-6.0, RFC 6455) end to end, against the real
//! `ringmq` binary started with a TCP and a WebSocket listener.
//!
//! Two kinds of clients:
//! - rumqttc with `Transport::Ws` (and plain TCP) for the MQTT behaviour:
//!   QoS 0/1/2, TCP <-> WS, a 256 KiB message, will, retained, takeover
//!   across transports;
//! - a raw `std::net::TcpStream` with hand-built HTTP requests and frames
//!   for the handshake and framing rules, after each of which a fresh
//!   client must still get through.
//!
//! Every wait has a timeout so that no test can hang.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::BytesMut;
use common::{
    client_id_on, connect_packet, encode, ids_on_different_shards, publish_packet, q,
    subscribe_packet, will, Broker, ConnectOpts, MqttClient, RawClient, Via, RECV_TIMEOUT, SHARDS,
    V311,
};
use ringmq::broker::home_shard;
use ringmq::protocol::{self, Packet, QoS};
use sha1::{Digest, Sha1};

/// The RFC 6455 §1.3 example key and its accept value.
const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/// How long a close frame + EOF may take after a protocol error.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Varies the WebSocket keys (`fresh_key`).
static SEQ: AtomicUsize = AtomicUsize::new(0);

// ---------------------------------------------------------------------------
// rumqttc clients over TCP or WebSocket
// ---------------------------------------------------------------------------

/// Connects (clean session); panics unless the CONNACK accepts.
async fn connect(b: &Broker, via: Via, id: &str) -> MqttClient {
    connect_with(b, via, id, None).await
}

async fn connect_with(
    b: &Broker,
    via: Via,
    id: &str,
    last_will: Option<rumqttc::LastWill>,
) -> MqttClient {
    let opts = ConnectOpts {
        will: last_will,
        ..ConnectOpts::default()
    };
    let (c, ack) = MqttClient::connect_via(b, via, id, opts).await;
    assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success, "{}", c.id);
    assert!(!ack.session_present, "{}: clean session", c.id);
    c
}

/// Asserts one received message.
fn assert_msg(m: &rumqttc::Publish, topic: &str, payload: &[u8], qos: rumqttc::QoS, retain: bool) {
    assert_eq!(m.topic, topic);
    assert_eq!(m.payload.len(), payload.len(), "payload length on {topic}");
    assert!(m.payload == payload, "payload differs on {topic}");
    assert_eq!(m.qos, qos, "QoS on {topic}");
    assert_eq!(m.retain, retain, "retain flag on {topic}");
}

// ---------------------------------------------------------------------------
// Raw WebSocket client: hand-built HTTP and frames
// ---------------------------------------------------------------------------

#[derive(Debug)]
struct HttpResponse {
    status: u16,
    head: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl HttpResponse {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn header_count(&self, name: &str) -> usize {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .count()
    }
}

#[derive(Debug)]
struct Frame {
    fin: bool,
    rsv: u8,
    opcode: u8,
    masked: bool,
    payload: Vec<u8>,
}

#[derive(Debug)]
enum FrameOutcome {
    Frame(Frame),
    Closed,
    TimedOut,
}

/// A WebSocket frame; `mask` `None` sends it unmasked (illegal from a client).
fn frame(fin: bool, rsv: u8, opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![(u8::from(fin) << 7) | (rsv << 4) | opcode];
    let m = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(m | n as u8),
        n if n <= 0xFFFF => {
            out.push(m | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(m | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Varies the masking key from frame to frame.
fn next_mask() -> [u8; 4] {
    static N: AtomicUsize = AtomicUsize::new(1);
    let n = N.fetch_add(0x9E37_79B9, Ordering::Relaxed) as u32;
    (n ^ 0xA5C3_3C5A).to_be_bytes()
}

/// A complete, masked client frame.
fn cframe(opcode: u8, payload: &[u8]) -> Vec<u8> {
    frame(true, 0, opcode, payload, Some(next_mask()))
}

fn binary(payload: &[u8]) -> Vec<u8> {
    cframe(0x2, payload)
}

fn close_payload(code: u16) -> Vec<u8> {
    code.to_be_bytes().to_vec()
}

fn accept_for(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    BASE64.encode(sha.finalize())
}

/// A fresh 16-byte key, base64.
fn fresh_key() -> String {
    let seed = SEQ.fetch_add(1, Ordering::SeqCst) as u64
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id()) << 32;
    let mut raw = [0u8; 16];
    for (i, b) in raw.iter_mut().enumerate() {
        *b = (seed.rotate_left(i as u32 * 7) as u8) ^ (i as u8).wrapping_mul(31);
    }
    BASE64.encode(raw)
}

/// An upgrade request for `path`. The standard headers (Host, Upgrade,
/// Connection, Sec-WebSocket-Version, Sec-WebSocket-Key with `RFC_KEY`)
/// are changed by `edits`: `(name, Some(v))` replaces the header of that
/// name or adds it; `(name, None)` removes it.
fn upgrade_request(path: &str, edits: &[(&str, Option<&str>)]) -> String {
    let mut headers: Vec<(String, String)> = [
        ("Host", "127.0.0.1"),
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", RFC_KEY),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    for (name, value) in edits {
        match headers
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(i) => match value {
                Some(v) => headers[i].1 = v.to_string(),
                None => {
                    headers.remove(i);
                }
            },
            None => {
                if let Some(v) = value {
                    headers.push((name.to_string(), v.to_string()));
                }
            }
        }
    }
    let mut req = format!("GET {path} HTTP/1.1\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req
}

struct WsRaw {
    stream: TcpStream,
    /// Bytes read and not yet parsed (HTTP, then frames).
    buf: Vec<u8>,
    /// MQTT bytes from binary/continuation frames not yet decoded.
    mqtt: BytesMut,
    /// Control frames (pong, close) seen while reading MQTT.
    controls: Vec<Frame>,
}

impl WsRaw {
    fn open(port: u16) -> WsRaw {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("tcp connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        WsRaw {
            stream,
            buf: Vec::new(),
            mqtt: BytesMut::new(),
            controls: Vec::new(),
        }
    }

    /// Opens a connection, sends `request`, reads the HTTP response.
    fn request(port: u16, request: &str) -> (WsRaw, HttpResponse) {
        let mut c = WsRaw::open(port);
        c.send(request.as_bytes());
        let resp = c.read_response(RECV_TIMEOUT);
        (c, resp)
    }

    /// A completed upgrade to `/mqtt` offering sub-protocol `mqtt`.
    fn upgrade(port: u16) -> WsRaw {
        let key = fresh_key();
        let (c, resp) = WsRaw::request(
            port,
            &upgrade_request(
                "/mqtt",
                &[
                    ("Sec-WebSocket-Key", Some(&key)),
                    ("Sec-WebSocket-Protocol", Some("mqtt")),
                ],
            ),
        );
        assert_eq!(resp.status, 101, "upgrade refused: {resp:?}");
        assert_eq!(
            resp.header("Sec-WebSocket-Accept"),
            Some(accept_for(&key).as_str())
        );
        c
    }

    /// Upgrade + CONNECT (3.1.1, clean) + CONNACK 0.
    fn connect(port: u16, id: &str) -> WsRaw {
        WsRaw::connect_with(port, connect_packet(id, true, 30, None))
    }

    fn connect_with(port: u16, connect: protocol::Connect) -> WsRaw {
        let mut c = WsRaw::upgrade(port);
        c.send_mqtt(&Packet::Connect(Box::new(connect)));
        match c.read_mqtt(RECV_TIMEOUT) {
            Packet::ConnAck(a) => assert_eq!(a.code, 0, "CONNACK refused: {a:?}"),
            other => panic!("expected CONNACK, got {other:?}"),
        }
        c
    }

    /// Writes bytes; errors (the broker may have closed already) ignored.
    fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
        let _ = self.stream.flush();
    }

    /// One packet in one masked binary frame.
    fn send_mqtt(&mut self, p: &Packet) {
        self.send(&binary(&encode(p)));
    }

    /// Reads more bytes into `buf`: `Ok(false)` on EOF/reset.
    fn fill(&mut self, deadline: Instant) -> Result<bool, ()> {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(());
        }
        self.stream.set_read_timeout(Some(left)).unwrap();
        let mut tmp = [0u8; 16384];
        loop {
            match self.stream.read(&mut tmp) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.buf.extend_from_slice(&tmp[..n]);
                    return Ok(true);
                }
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    return Err(())
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Ok(false),
            }
        }
    }

    /// Reads an HTTP response head (and its Content-Length body).
    fn read_response(&mut self, timeout: Duration) -> HttpResponse {
        let deadline = Instant::now() + timeout;
        let end = loop {
            if let Some(i) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i;
            }
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => panic!(
                    "closed before a full HTTP response; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
                Err(()) => panic!(
                    "no HTTP response within {timeout:?}; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        };
        let head = String::from_utf8(self.buf[..end].to_vec()).expect("ASCII response head");
        self.buf.drain(..end + 4);
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let mut parts = status_line.splitn(3, ' ');
        assert_eq!(
            parts.next(),
            Some("HTTP/1.1"),
            "status line {status_line:?}"
        );
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("status line {status_line:?}"));
        let headers: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l
                    .split_once(':')
                    .unwrap_or_else(|| panic!("header line {l:?}"));
                (n.trim().to_string(), v.trim().to_string())
            })
            .collect();
        let mut resp = HttpResponse {
            status,
            head,
            headers,
            body: Vec::new(),
        };
        if let Some(len) = resp.header("Content-Length") {
            let len: usize = len.parse().expect("numeric Content-Length");
            while self.buf.len() < len {
                match self.fill(deadline) {
                    Ok(true) => {}
                    _ => panic!("body shorter than Content-Length {len}: {resp:?}"),
                }
            }
            resp.body = self.buf.drain(..len).collect();
        }
        resp
    }

    /// The next frame from the broker.
    fn read_frame(&mut self, timeout: Duration) -> FrameOutcome {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((f, used)) = parse_frame(&self.buf) {
                self.buf.drain(..used);
                return FrameOutcome::Frame(f);
            }
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return FrameOutcome::Closed,
                Err(()) => return FrameOutcome::TimedOut,
            }
        }
    }

    /// The next MQTT packet (binary/continuation payloads, decoded);
    /// control frames are kept in `controls`.
    fn read_mqtt(&mut self, timeout: Duration) -> Packet {
        let deadline = Instant::now() + timeout;
        loop {
            match protocol::decode(&mut self.mqtt, V311, 1 << 24) {
                Ok(Some(p)) => return p,
                Ok(None) => {}
                Err(e) => panic!("undecodable MQTT from the broker: {e:?}"),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                FrameOutcome::Frame(f) if f.opcode == 0x2 || f.opcode == 0x0 => {
                    assert!(!f.masked, "server frames must not be masked");
                    assert_eq!(f.rsv, 0, "server frame with RSV bits");
                    self.mqtt.extend_from_slice(&f.payload);
                }
                FrameOutcome::Frame(f) if f.opcode == 0x8 => {
                    panic!("close frame {:?} while waiting for MQTT", close_code(&f))
                }
                FrameOutcome::Frame(f) if f.opcode >= 0x8 => self.controls.push(f),
                FrameOutcome::Frame(f) => panic!("unexpected frame from the broker: {f:?}"),
                FrameOutcome::Closed => panic!("closed while waiting for an MQTT packet"),
                FrameOutcome::TimedOut => panic!("no MQTT packet within {timeout:?}"),
            }
        }
    }

    /// Asserts no MQTT packet (nor close) arrives within `dur`.
    fn expect_no_mqtt(&mut self, dur: Duration) {
        if let Ok(Some(p)) = protocol::decode(&mut self.mqtt, V311, 1 << 24) {
            panic!("unexpected packet {p:?}");
        }
        match self.read_frame(dur) {
            FrameOutcome::TimedOut => {}
            other => panic!("expected silence for {dur:?}, got {other:?}"),
        }
    }

    /// Asserts the broker sends a close frame with `code` (after any
    /// MQTT frames) and then closes the TCP connection.
    fn expect_close(&mut self, code: u16) {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_frame(left) {
                FrameOutcome::Frame(f) if f.opcode == 0x8 => {
                    assert!(!f.masked, "server close frame must not be masked");
                    assert!(f.fin, "close frame must not be fragmented");
                    assert_eq!(close_code(&f), Some(code), "close code (frame {f:?})");
                    break;
                }
                FrameOutcome::Frame(_) => {}
                FrameOutcome::Closed => {
                    panic!("TCP closed without a close frame (expected close {code})")
                }
                FrameOutcome::TimedOut => {
                    panic!("no close frame {code} within {CLOSE_TIMEOUT:?}")
                }
            }
        }
        self.expect_eof();
    }

    /// Asserts the TCP connection ends (EOF or reset) soon.
    fn expect_eof(&mut self) {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        loop {
            self.buf.clear();
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return,
                Err(()) => panic!("connection still open {CLOSE_TIMEOUT:?} after the close"),
            }
        }
    }

    /// Reads until EOF/reset; returns everything received. Panics if the
    /// connection is still open after `timeout`.
    fn read_to_close(&mut self, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Ok(true) => {}
                Ok(false) => return std::mem::take(&mut self.buf),
                Err(()) => panic!(
                    "connection still open after {timeout:?} (got {:?})",
                    String::from_utf8_lossy(&self.buf)
                ),
            }
        }
    }
}

fn close_code(f: &Frame) -> Option<u16> {
    (f.payload.len() >= 2).then(|| u16::from_be_bytes([f.payload[0], f.payload[1]]))
}

/// A whole frame at the start of `buf`, and its length.
fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let (b0, b1) = (*buf.first()?, *buf.get(1)?);
    let masked = b1 & 0x80 != 0;
    let (len, mut off) = match b1 & 0x7F {
        126 => (u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?]) as usize, 4),
        127 => (
            u64::from_be_bytes(buf.get(2..10)?.try_into().unwrap()) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let key = if masked {
        let k: [u8; 4] = buf.get(off..off + 4)?.try_into().unwrap();
        off += 4;
        Some(k)
    } else {
        None
    };
    let mut payload = buf.get(off..off + len)?.to_vec();
    if let Some(k) = key {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= k[i % 4];
        }
    }
    Some((
        Frame {
            fin: b0 & 0x80 != 0,
            rsv: (b0 >> 4) & 0x7,
            opcode: b0 & 0x0F,
            masked,
            payload,
        },
        off + len,
    ))
}

/// A fresh raw WebSocket client connects, subscribes, publishes to itself
/// at QoS 1 and gets the message; a TCP client gets through too.
fn assert_healthy(b: &mut Broker, tag: &str) {
    assert!(b.is_running(), "broker died ({tag})");
    let topic = format!("health/{tag}");
    let mut c = WsRaw::connect(b.ws_port(), &format!("{tag}-health"));
    c.send_mqtt(&subscribe_packet(1, &[(&topic, QoS::AtLeastOnce)]));
    match c.read_mqtt(RECV_TIMEOUT) {
        Packet::SubAck(s) => assert_eq!(s.codes, vec![1]),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    c.send_mqtt(&publish_packet(
        &topic,
        QoS::AtLeastOnce,
        7,
        false,
        false,
        b"ok",
    ));
    let mut got_puback = false;
    let mut got_publish = false;
    while !(got_puback && got_publish) {
        match c.read_mqtt(RECV_TIMEOUT) {
            Packet::PubAck(a) => {
                assert_eq!(a.packet_id, 7);
                got_puback = true;
            }
            Packet::Publish(p) => {
                assert_eq!(&p.topic[..], topic);
                assert_eq!(&p.payload[..], b"ok");
                got_publish = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let (tcp, _) = RawClient::connect(b.port(), &format!("{tag}-tcp-health"), true);
    tcp.disconnect();
}

// ---------------------------------------------------------------------------
// MQTT over WebSocket with rumqttc
// ---------------------------------------------------------------------------

/// WS publisher -> WS subscriber on the other shard at QoS 0, 1 and 2;
/// the ready line lists the ws:// URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_pubsub_qos_0_1_2_across_shards() {
    let b = Broker::start_ws();
    assert_eq!(b.ws_urls(), vec![b.ws_url()]);
    for (ps, ss) in [(0, 1), (1, 0)] {
        let pub_id = client_id_on(ps, &format!("wspub{ps}"));
        let sub_id = client_id_on(ss, &format!("wssub{ss}"));
        assert_ne!(home_shard(&pub_id, SHARDS), home_shard(&sub_id, SHARDS));
        let mut publ = connect(&b, Via::Ws, &pub_id).await;
        let mut sub = connect(&b, Via::Ws, &sub_id).await;
        let topic = format!("ws/{ps}/{ss}");
        assert_eq!(sub.subscribe(&topic, q(2)).await, vec![2]);
        for qos in 0..=2u8 {
            let payload = format!("qos{qos} over ws from shard {ps}");
            publ.publish(&topic, q(qos), false, payload.as_bytes())
                .await;
            let m = sub.recv_publish().await;
            assert_msg(&m, &topic, payload.as_bytes(), q(qos), false);
        }
        sub.expect_no_publish(Duration::from_millis(300)).await;
        publ.disconnect().await;
        sub.disconnect().await;
    }
}

/// TCP publisher -> WS subscriber and WS publisher -> TCP subscriber.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_and_tcp_exchange_messages_both_ways() {
    let b = Broker::start_ws();
    for (pub_via, sub_via) in [(Via::Tcp, Via::Ws), (Via::Ws, Via::Tcp)] {
        let (pub_id, sub_id) = ids_on_different_shards(
            &format!("x{pub_via:?}pub").to_lowercase(),
            &format!("x{sub_via:?}sub").to_lowercase(),
        );
        let mut publ = connect(&b, pub_via, &pub_id).await;
        let mut sub = connect(&b, sub_via, &sub_id).await;
        let topic = format!("mixed/{pub_via:?}-to-{sub_via:?}");
        assert_eq!(sub.subscribe("mixed/#", q(2)).await, vec![2]);
        for qos in 0..=2u8 {
            let payload = format!("{pub_via:?} to {sub_via:?} at qos {qos}");
            publ.publish(&topic, q(qos), false, payload.as_bytes())
                .await;
            let m = sub.recv_publish().await;
            assert_msg(&m, &topic, payload.as_bytes(), q(qos), false);
        }
        sub.expect_no_publish(Duration::from_millis(200)).await;
        publ.disconnect().await;
        sub.disconnect().await;
    }
}

/// A 256 KiB message over WS (several frames' worth, 64-bit frame length)
/// reaches a WS and a TCP subscriber intact; and back from TCP to WS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_256_kib_message() {
    let b = Broker::start_ws();
    let payload: Vec<u8> = (0..256 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (pub_id, sub_id) = ids_on_different_shards("bigpub", "bigsub");
    let mut publ = connect(&b, Via::Ws, &pub_id).await;
    let mut ws_sub = connect(&b, Via::Ws, &sub_id).await;
    let mut tcp_sub = connect(&b, Via::Tcp, "bigsub-tcp").await;
    assert_eq!(ws_sub.subscribe("big/#", q(1)).await, vec![1]);
    assert_eq!(tcp_sub.subscribe("big/#", q(1)).await, vec![1]);

    publ.publish("big/ws", q(1), false, &payload).await;
    assert_msg(
        &ws_sub.recv_publish().await,
        "big/ws",
        &payload,
        q(1),
        false,
    );
    assert_msg(
        &tcp_sub.recv_publish().await,
        "big/ws",
        &payload,
        q(1),
        false,
    );

    tcp_sub.publish("big/tcp", q(0), false, &payload).await;
    assert_msg(
        &ws_sub.recv_publish().await,
        "big/tcp",
        &payload,
        q(0),
        false,
    );
}

/// A WS client's will is published when its socket drops without DISCONNECT
/// (to a WS and a TCP subscriber), and not after a clean DISCONNECT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_will_on_socket_drop() {
    let b = Broker::start_ws();
    let (dying_id, sub_id) = ids_on_different_shards("wsdying", "wswatch");
    let mut ws_sub = connect(&b, Via::Ws, &sub_id).await;
    let mut tcp_sub = connect(&b, Via::Tcp, "wswatch-tcp").await;
    assert_eq!(ws_sub.subscribe("will/#", q(1)).await, vec![1]);
    assert_eq!(tcp_sub.subscribe("will/#", q(1)).await, vec![1]);

    let w = rumqttc::LastWill::new("will/ws", "gone", q(1), false);
    let dying = connect_with(&b, Via::Ws, &dying_id, Some(w)).await;
    dying.drop_socket().await;
    assert_msg(
        &ws_sub.recv_publish().await,
        "will/ws",
        b"gone",
        q(1),
        false,
    );
    assert_msg(
        &tcp_sub.recv_publish().await,
        "will/ws",
        b"gone",
        q(1),
        false,
    );

    let w = rumqttc::LastWill::new("will/ws", "must not appear", q(1), false);
    let polite = connect_with(&b, Via::Ws, &dying_id, Some(w)).await;
    polite.disconnect().await;
    ws_sub.expect_no_publish(Duration::from_millis(500)).await;
    tcp_sub.expect_no_publish(Duration::from_millis(100)).await;
}

/// Retained messages published over WS are delivered (retain=1) to later WS
/// and TCP subscribers, and one published over TCP to a later WS one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ws_retained_messages() {
    let b = Broker::start_ws();
    let mut ws_pub = connect(&b, Via::Ws, "ret-ws-pub").await;
    ws_pub.publish("ret/ws", q(1), true, b"kept-ws").await;
    let mut tcp_pub = connect(&b, Via::Tcp, "ret-tcp-pub").await;
    tcp_pub.publish("ret/tcp", q(2), true, b"kept-tcp").await;

    for (via, id) in [(Via::Ws, "ret-ws-sub"), (Via::Tcp, "ret-tcp-sub")] {
        let mut sub = connect(&b, via, id).await;
        assert_eq!(sub.subscribe("ret/ws", q(1)).await, vec![1]);
        assert_msg(&sub.recv_publish().await, "ret/ws", b"kept-ws", q(1), true);
        sub.disconnect().await;
    }
    let mut sub = connect(&b, Via::Ws, "ret-ws-sub2").await;
    assert_eq!(sub.subscribe("ret/tcp", q(2)).await, vec![2]);
    assert_msg(
        &sub.recv_publish().await,
        "ret/tcp",
        b"kept-tcp",
        q(2),
        true,
    );
    // Live delivery to an existing subscription has retain=0.
    ws_pub.publish("ret/tcp", q(0), true, b"live").await;
    assert_msg(&sub.recv_publish().await, "ret/tcp", b"live", q(0), false);
}

/// Same client id over the other transport: the second CONNECT closes the
/// first connection, and the new one works.
async fn takeover(first: Via, second: Via) {
    let b = Broker::start_ws();
    let id = format!("take-{first:?}-{second:?}").to_lowercase();
    let mut watcher = connect(&b, Via::Tcp, "take-watch").await;
    assert_eq!(watcher.subscribe("take/#", q(1)).await, vec![1]);

    let w = rumqttc::LastWill::new("take/will", "first died", q(1), false);
    let mut old = connect_with(&b, first, &id, Some(w)).await;
    assert_eq!(old.subscribe("take/old", q(1)).await, vec![1]);
    let mut new = connect(&b, second, &id).await;
    old.expect_closed(RECV_TIMEOUT).await;

    assert_eq!(new.subscribe("take/new", q(1)).await, vec![1]);
    watcher.publish("take/new", q(1), false, b"to new").await;
    assert_msg(
        &new.recv_publish().await,
        "take/new",
        b"to new",
        q(1),
        false,
    );
    // The new connection had a clean session: the old subscription is gone.
    watcher.publish("take/old", q(1), false, b"to old").await;
    new.expect_no_publish(Duration::from_millis(300)).await;
    // A taken-over connection publishes its will [MQTT-3.1.4-2 + 3.1.2-8].
    let m = watcher.recv_publish().await;
    assert_msg(&m, "take/will", b"first died", q(1), false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_tcp_then_ws_closes_tcp() {
    takeover(Via::Tcp, Via::Ws).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_ws_then_tcp_closes_ws() {
    takeover(Via::Ws, Via::Tcp).await;
}

/// SIGTERM with WS clients connected: the broker exits 0 promptly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_ws_clients_exits_cleanly() {
    let mut b = Broker::start_ws();
    let _a = connect(&b, Via::Ws, "term-a").await;
    let _raw = WsRaw::connect(b.ws_port(), "term-b");
    let half = WsRaw::open(b.ws_port()); // mid-handshake
    let status = b.stop(Duration::from_secs(10));
    drop(half);
    let status = status.expect("broker did not exit within 10 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
}

// ---------------------------------------------------------------------------
// Handshake
// ---------------------------------------------------------------------------

#[test]
fn handshake_accept_key_and_server_frames() {
    let mut b = Broker::start_ws();
    // The RFC 6455 example.
    let (_c, resp) = WsRaw::request(b.ws_port(), &upgrade_request("/mqtt", &[]));
    assert_eq!(resp.status, 101, "{resp:?}");
    assert_eq!(resp.header("Sec-WebSocket-Accept"), Some(RFC_ACCEPT));
    assert!(resp
        .header("Upgrade")
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket")));
    assert!(resp
        .header("Connection")
        .is_some_and(|v| v.to_ascii_lowercase().contains("upgrade")));
    // Another key, headers in other case and order, a query string.
    let key = fresh_key();
    let req = format!(
        "GET /mqtt?x=1 HTTP/1.1\r\nsec-websocket-key: {key}\r\nhost: 127.0.0.1\r\n\
         connection: keep-alive, Upgrade\r\nupgrade: WebSocket\r\nsec-websocket-version: 13\r\n\r\n"
    );
    let (mut c, resp) = WsRaw::request(b.ws_port(), &req);
    assert_eq!(resp.status, 101, "{resp:?}");
    assert_eq!(
        resp.header("Sec-WebSocket-Accept"),
        Some(accept_for(&key).as_str())
    );
    // The CONNACK comes in one unmasked, final binary frame.
    c.send(&binary(&encode(&Packet::Connect(Box::new(
        connect_packet("accept-key", true, 30, None),
    )))));
    match c.read_frame(RECV_TIMEOUT) {
        FrameOutcome::Frame(f) => {
            assert_eq!(f.opcode, 0x2, "server frames are binary: {f:?}");
            assert!(f.fin && !f.masked && f.rsv == 0, "{f:?}");
            assert_eq!(f.payload, vec![0x20, 0x02, 0x00, 0x00], "CONNACK");
        }
        other => panic!("expected the CONNACK frame, got {other:?}"),
    }
    assert_healthy(&mut b, "accept");
}

/// Sub-protocol echo: exactly one of `mqtt`/`mqttv3.1`, the first served
/// one offered; none offered → no header, and MQTT is still served.
#[test]
fn handshake_subprotocol_echo() {
    let mut b = Broker::start_ws();
    for (offer, want) in [
        ("mqtt", "mqtt"),
        ("mqttv3.1", "mqttv3.1"),
        ("foo, mqtt", "mqtt"),
        ("foo,mqttv3.1, mqtt", "mqttv3.1"),
    ] {
        let (_c, resp) = WsRaw::request(
            b.ws_port(),
            &upgrade_request("/mqtt", &[("Sec-WebSocket-Protocol", Some(offer))]),
        );
        assert_eq!(resp.status, 101, "offer {offer:?}: {resp:?}");
        assert_eq!(resp.header_count("Sec-WebSocket-Protocol"), 1, "{resp:?}");
        assert_eq!(
            resp.header("Sec-WebSocket-Protocol"),
            Some(want),
            "offer {offer:?}"
        );
    }
    // No sub-protocol offered: upgraded without the header, MQTT works.
    let (mut c, resp) = WsRaw::request(b.ws_port(), &upgrade_request("/mqtt", &[]));
    assert_eq!(resp.status, 101, "{resp:?}");
    assert_eq!(resp.header("Sec-WebSocket-Protocol"), None, "{resp:?}");
    c.send_mqtt(&Packet::Connect(Box::new(connect_packet(
        "no-subproto",
        true,
        30,
        None,
    ))));
    match c.read_mqtt(RECV_TIMEOUT) {
        Packet::ConnAck(a) => assert_eq!(a.code, 0),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert_healthy(&mut b, "subproto");
}

/// Asserts a refused handshake: the status, a short text body, and the
/// connection closed afterwards.
fn assert_refused(port: u16, request: &str, status: u16) -> HttpResponse {
    let (mut c, resp) = WsRaw::request(port, request);
    assert_eq!(resp.status, status, "{resp:?}");
    assert!(resp.header("Sec-WebSocket-Accept").is_none(), "{resp:?}");
    assert!(
        !resp.body.is_empty() && resp.body.len() < 1024,
        "expected a short body: {resp:?}"
    );
    c.read_to_close(CLOSE_TIMEOUT);
    resp
}

#[test]
fn handshake_wrong_version_is_426_with_version_header() {
    let mut b = Broker::start_ws();
    for version in [Some("8"), Some("14"), None] {
        let req = upgrade_request("/mqtt", &[("Sec-WebSocket-Version", version)]);
        let resp = assert_refused(b.ws_port(), &req, 426);
        assert_eq!(
            resp.header("Sec-WebSocket-Version"),
            Some("13"),
            "version {version:?}: {resp:?}"
        );
    }
    assert_healthy(&mut b, "v426");
}

#[test]
fn handshake_bad_key_is_400() {
    let mut b = Broker::start_ws();
    for key in [
        Some("abc"),                          // not base64 of 16 bytes
        Some("AAAAAAAAAAAAAAAAAAAAAAAAAA=="), // 19 bytes
        Some("not base64 at all!!!!!!="),
        None,
    ] {
        let req = upgrade_request("/mqtt", &[("Sec-WebSocket-Key", key)]);
        let resp = assert_refused(b.ws_port(), &req, 400);
        assert!(resp.head.starts_with("HTTP/1.1 400"), "key {key:?}");
    }
    assert_healthy(&mut b, "key400");
}

#[test]
fn handshake_unknown_path_is_404() {
    let mut b = Broker::start_ws();
    for path in ["/nope", "/mqtt/x", "/MQTT", "/"] {
        assert_refused(b.ws_port(), &upgrade_request(path, &[]), 404);
    }
    assert_healthy(&mut b, "p404");
}

#[test]
fn handshake_plain_http_is_400() {
    let mut b = Broker::start_ws();
    let resp = assert_refused(
        b.ws_port(),
        "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n",
        400,
    );
    assert!(
        resp.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/plain")),
        "{resp:?}"
    );
    // Raw MQTT bytes on the WebSocket port are refused at once, not left
    // waiting for the handshake timeout.
    let mut c = WsRaw::open(b.ws_port());
    let started = Instant::now();
    c.send(&encode(&Packet::Connect(Box::new(connect_packet(
        "raw-on-ws",
        true,
        30,
        None,
    )))));
    let got = c.read_to_close(CLOSE_TIMEOUT);
    assert!(
        got.starts_with(b"HTTP/1.1 400"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_healthy(&mut b, "plain400");
}

#[test]
fn handshake_headers_over_8_kib_is_431() {
    let mut b = Broker::start_ws();
    // A complete request whose head is over 8 KiB.
    let big = "a".repeat(9000);
    let req = upgrade_request("/mqtt", &[("X-Filler", Some(&big))]);
    assert_refused(b.ws_port(), &req, 431);
    // A head that is still unfinished at 8 KiB.
    let mut c = WsRaw::open(b.ws_port());
    let mut partial = upgrade_request("/mqtt", &[]);
    partial.truncate(partial.len() - 2); // no blank line
    c.send(partial.as_bytes());
    for _ in 0..9 {
        c.send(format!("X-More: {}\r\n", "b".repeat(1000)).as_bytes());
    }
    let resp = c.read_response(RECV_TIMEOUT);
    assert_eq!(resp.status, 431, "{resp:?}");
    c.read_to_close(CLOSE_TIMEOUT);
    // Just under the limit is still served.
    let ok = upgrade_request("/mqtt", &[("X-Filler", Some(&"c".repeat(7800)))]);
    assert!(ok.len() < 8192);
    let (_c, resp) = WsRaw::request(b.ws_port(), &ok);
    assert_eq!(resp.status, 101, "{resp:?}");
    assert_healthy(&mut b, "h431");
}

#[test]
fn handshake_timeout_closes_the_connection() {
    let mut b = Broker::start_ws_with(&["--ws-handshake-timeout", "1"]);
    // Nothing sent at all, and a request left unfinished.
    let mut silent = WsRaw::open(b.ws_port());
    let mut partial = WsRaw::open(b.ws_port());
    let started = Instant::now();
    partial.send(b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n");
    for c in [&mut silent, &mut partial] {
        let got = c.read_to_close(Duration::from_secs(5));
        assert!(
            !String::from_utf8_lossy(&got).contains("101"),
            "must not upgrade: {:?}",
            String::from_utf8_lossy(&got)
        );
    }
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(700),
        "closed after {took:?}, before the 1 s handshake timeout"
    );
    assert!(took < Duration::from_secs(4), "closed after {took:?}");
    // A handshake that completes in time is not cut by the timer later.
    let mut c = WsRaw::connect(b.ws_port(), "slow-ok");
    std::thread::sleep(Duration::from_millis(1500));
    c.send_mqtt(&Packet::PingReq);
    assert!(matches!(c.read_mqtt(RECV_TIMEOUT), Packet::PingResp));
    assert_healthy(&mut b, "hs-timeout");
}

#[test]
fn handshake_origin_allow_list() {
    let mut b = Broker::start_ws_with(&["--ws-allowed-origin", "http://good.example"]);
    let evil = upgrade_request("/mqtt", &[("Origin", Some("http://evil.example"))]);
    assert_refused(b.ws_port(), &evil, 403);
    for origin in [
        Some("http://good.example"),
        Some("HTTP://GOOD.EXAMPLE"),
        None,
    ] {
        let req = upgrade_request(
            "/mqtt",
            &[("Origin", origin), ("Sec-WebSocket-Protocol", Some("mqtt"))],
        );
        let (_c, resp) = WsRaw::request(b.ws_port(), &req);
        assert_eq!(resp.status, 101, "origin {origin:?}: {resp:?}");
    }
    assert_healthy(&mut b, "origin");
}

/// `GET /` is the built-in page; `--no-ws-page` turns it off.
#[test]
fn get_root_serves_the_page() {
    let mut b = Broker::start_ws();
    let (mut c, resp) = WsRaw::request(
        b.ws_port(),
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n",
    );
    assert_eq!(resp.status, 200, "{resp:?}");
    assert!(
        resp.header("Content-Type")
            .is_some_and(|t| t.starts_with("text/html")),
        "{resp:?}"
    );
    let body = String::from_utf8_lossy(&resp.body);
    assert!(body.contains("ringmq"), "page body: {body}");
    assert!(body.contains("/mqtt"), "the page connects back to /mqtt");
    c.read_to_close(CLOSE_TIMEOUT);
    assert_healthy(&mut b, "page");

    let b2 = Broker::start_ws_with(&["--no-ws-page"]);
    let (_c, resp) = WsRaw::request(b2.ws_port(), "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    assert_eq!(resp.status, 400, "--no-ws-page: {resp:?}");
}

/// The upgrade request and the first frames in one TCP segment.
#[test]
fn upgrade_request_and_connect_in_one_write() {
    let mut b = Broker::start_ws();
    let mut bytes =
        upgrade_request("/mqtt", &[("Sec-WebSocket-Protocol", Some("mqtt"))]).into_bytes();
    bytes.extend(binary(&encode(&Packet::Connect(Box::new(connect_packet(
        "eager", true, 30, None,
    ))))));
    let mut c = WsRaw::open(b.ws_port());
    c.send(&bytes);
    let resp = c.read_response(RECV_TIMEOUT);
    assert_eq!(resp.status, 101, "{resp:?}");
    match c.read_mqtt(RECV_TIMEOUT) {
        Packet::ConnAck(a) => assert_eq!(a.code, 0),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    assert_healthy(&mut b, "eager");
}

// ---------------------------------------------------------------------------
// Framing
// ---------------------------------------------------------------------------

/// Connects over WS, sends `bad`, expects close `code` then EOF, then
/// checks the broker with fresh clients.
fn frame_error_case(b: &mut Broker, tag: &str, bad: &[u8], code: u16) {
    let mut c = WsRaw::connect(b.ws_port(), tag);
    c.send(bad);
    c.expect_close(code);
    assert_healthy(b, tag);
}

#[test]
fn frame_unmasked_is_1002() {
    let mut b = Broker::start_ws();
    // Before CONNECT: the CONNECT itself unmasked.
    let mut c = WsRaw::upgrade(b.ws_port());
    c.send(&frame(
        true,
        0,
        0x2,
        &encode(&Packet::Connect(Box::new(connect_packet(
            "unmasked", true, 30, None,
        )))),
        None,
    ));
    c.expect_close(1002);
    // After CONNECT.
    let ping = encode(&Packet::PingReq);
    frame_error_case(&mut b, "unmasked2", &frame(true, 0, 0x2, &ping, None), 1002);
}

#[test]
fn frame_text_is_1003() {
    let mut b = Broker::start_ws();
    frame_error_case(&mut b, "text", &cframe(0x1, b"hello"), 1003);
}

#[test]
fn frame_rsv1_is_1002() {
    let mut b = Broker::start_ws();
    let ping = encode(&Packet::PingReq);
    let bad = frame(true, 0b100, 0x2, &ping, Some(next_mask()));
    frame_error_case(&mut b, "rsv1", &bad, 1002);
}

#[test]
fn frame_ping_over_125_bytes_is_1002() {
    let mut b = Broker::start_ws();
    frame_error_case(&mut b, "bigping", &cframe(0x9, &[0x55; 130]), 1002);
}

#[test]
fn frame_fragmented_ping_is_1002() {
    let mut b = Broker::start_ws();
    let bad = frame(false, 0, 0x9, b"frag", Some(next_mask()));
    frame_error_case(&mut b, "fragping", &bad, 1002);
}

#[test]
fn frame_unknown_opcode_is_1002() {
    let mut b = Broker::start_ws();
    frame_error_case(&mut b, "op3", &cframe(0x3, b"?"), 1002);
}

#[test]
fn frame_message_over_max_is_1009() {
    let mut b = Broker::start_ws_with(&["--ws-max-message", "1024"]);
    // One frame over the limit (a well-formed PUBLISH of 2000 bytes).
    let big = encode(&publish_packet(
        "big",
        QoS::AtMostOnce,
        0,
        false,
        false,
        &[7; 2000],
    ));
    frame_error_case(&mut b, "big1", &binary(&big), 1009);
    // Fragments each under the limit, their sum over it.
    let mut bad = frame(false, 0, 0x2, &big[..700], Some(next_mask()));
    bad.extend(frame(true, 0, 0x0, &big[700..1400], Some(next_mask())));
    frame_error_case(&mut b, "big2", &bad, 1009);
    // Up to the limit is fine.
    let mut c = WsRaw::connect(b.ws_port(), "fits");
    let fits = encode(&publish_packet(
        "fits",
        QoS::AtLeastOnce,
        3,
        false,
        false,
        &[1; 900],
    ));
    assert!(fits.len() <= 1024);
    c.send(&binary(&fits));
    match c.read_mqtt(RECV_TIMEOUT) {
        Packet::PubAck(a) => assert_eq!(a.packet_id, 3),
        other => panic!("expected PUBACK, got {other:?}"),
    }
}

#[test]
fn ping_is_answered_with_pong_of_same_payload() {
    let mut b = Broker::start_ws();
    let mut c = WsRaw::connect(b.ws_port(), "pinger");
    for payload in [&b""[..], b"hello-ping", &[0xAB; 125][..]] {
        c.send(&cframe(0x9, payload));
        match c.read_frame(RECV_TIMEOUT) {
            FrameOutcome::Frame(f) => {
                assert_eq!(f.opcode, 0xA, "expected pong, got {f:?}");
                assert!(f.fin && !f.masked, "{f:?}");
                assert_eq!(f.payload, payload, "pong payload");
            }
            other => panic!("no pong: {other:?}"),
        }
    }
    // An unsolicited pong is ignored; the connection keeps working.
    c.send(&cframe(0xA, b"unsolicited"));
    c.send_mqtt(&Packet::PingReq);
    assert!(matches!(c.read_mqtt(RECV_TIMEOUT), Packet::PingResp));
    assert_healthy(&mut b, "ping");
}

/// A close frame is answered with the same code and the connection ends;
/// without DISCONNECT first the will is published, with it not.
#[test]
fn close_is_echoed_and_counts_as_abnormal_without_disconnect() {
    let mut b = Broker::start_ws();
    let (watch_id, id) = ids_on_different_shards("closewatch", "closer");
    let mut watcher = WsRaw::connect(b.ws_port(), &watch_id);
    watcher.send_mqtt(&subscribe_packet(1, &[("close/#", QoS::AtLeastOnce)]));
    assert!(matches!(watcher.read_mqtt(RECV_TIMEOUT), Packet::SubAck(_)));

    for code in [1000u16, 4000] {
        let w = will(
            "close/will",
            format!("{code}").as_bytes(),
            QoS::AtMostOnce,
            false,
        );
        let mut c = WsRaw::connect_with(b.ws_port(), connect_packet(&id, true, 30, Some(w)));
        c.send(&cframe(0x8, &close_payload(code)));
        c.expect_close(code);
        match watcher.read_mqtt(RECV_TIMEOUT) {
            Packet::Publish(p) => {
                assert_eq!(&p.topic[..], "close/will");
                assert_eq!(&p.payload[..], format!("{code}").as_bytes());
            }
            other => panic!("expected the will, got {other:?}"),
        }
    }
    // A close without a code is answered (1000 or empty) too.
    let mut c = WsRaw::connect(b.ws_port(), "closer-empty");
    c.send(&cframe(0x8, b""));
    match c.read_frame(CLOSE_TIMEOUT) {
        FrameOutcome::Frame(f) if f.opcode == 0x8 => {
            assert!(matches!(close_code(&f), Some(1000) | None), "{f:?}")
        }
        other => panic!("expected a close frame, got {other:?}"),
    }
    c.expect_eof();
    assert_healthy(&mut b, "close");
}

/// Watcher subscribed to `close/#` over WS, plus a client id on the other
/// shard for the client that closes.
fn close_watcher(b: &Broker, tag: &str) -> (WsRaw, String) {
    let (watch_id, id) = ids_on_different_shards(&format!("{tag}w"), &format!("{tag}c"));
    let mut watcher = WsRaw::connect(b.ws_port(), &watch_id);
    watcher.send_mqtt(&subscribe_packet(1, &[("close/#", QoS::AtLeastOnce)]));
    assert!(matches!(watcher.read_mqtt(RECV_TIMEOUT), Packet::SubAck(_)));
    (watcher, id)
}

/// Waits for the broker to end a connection that sent DISCONNECT (+ close):
/// a close frame, if any, must echo 1000.
fn expect_end_after_disconnect(c: &mut WsRaw) {
    loop {
        match c.read_frame(CLOSE_TIMEOUT) {
            FrameOutcome::Frame(f) if f.opcode == 0x8 => {
                assert!(matches!(close_code(&f), Some(1000) | None), "{f:?}");
            }
            FrameOutcome::Frame(f) => panic!("unexpected frame after DISCONNECT: {f:?}"),
            FrameOutcome::Closed => return,
            FrameOutcome::TimedOut => panic!("connection open after DISCONNECT + close"),
        }
    }
}

/// DISCONNECT, then (in a later write) a close frame: no will.
#[test]
fn disconnect_then_close_in_separate_writes_suppresses_will() {
    let mut b = Broker::start_ws();
    let (mut watcher, id) = close_watcher(&b, "dsep");
    let w = will("close/will", b"not this one", QoS::AtMostOnce, false);
    let mut c = WsRaw::connect_with(b.ws_port(), connect_packet(&id, true, 30, Some(w)));
    c.send(&binary(&[0xE0, 0x00]));
    std::thread::sleep(Duration::from_millis(200));
    c.send(&cframe(0x8, &close_payload(1000)));
    expect_end_after_disconnect(&mut c);
    watcher.expect_no_mqtt(Duration::from_millis(500));
    assert_healthy(&mut b, "dsep");
}

/// DISCONNECT and a close frame in one TCP write (what a client doing
/// `disconnect(); ws.close()` typically produces): the DISCONNECT came
/// first, so no will may be published.
#[test]
fn disconnect_then_close_in_one_write_suppresses_will() {
    let mut b = Broker::start_ws();
    let (mut watcher, id) = close_watcher(&b, "done");
    let w = will("close/will", b"not this one", QoS::AtMostOnce, false);
    let mut c = WsRaw::connect_with(b.ws_port(), connect_packet(&id, true, 30, Some(w)));
    let mut both = binary(&[0xE0, 0x00]);
    both.extend(cframe(0x8, &close_payload(1000)));
    c.send(&both);
    expect_end_after_disconnect(&mut c);
    watcher.expect_no_mqtt(Duration::from_millis(500));
    assert_healthy(&mut b, "done");
}

/// A PUBLISH followed by a close frame in one write: the PUBLISH, which came
/// before the close, is still delivered.
#[test]
fn publish_then_close_in_one_write_is_delivered() {
    let mut b = Broker::start_ws();
    let (mut watcher, id) = close_watcher(&b, "pcl");
    let mut c = WsRaw::connect(b.ws_port(), &id);
    let mut both = binary(&encode(&publish_packet(
        "close/last-words",
        QoS::AtMostOnce,
        0,
        false,
        false,
        b"sent before the close",
    )));
    both.extend(cframe(0x8, &close_payload(1000)));
    c.send(&both);
    c.expect_close(1000);
    match watcher.read_mqtt(RECV_TIMEOUT) {
        Packet::Publish(p) => {
            assert_eq!(&p.topic[..], "close/last-words");
            assert_eq!(&p.payload[..], b"sent before the close");
        }
        other => panic!("expected the PUBLISH sent before the close, got {other:?}"),
    }
    assert_healthy(&mut b, "pcl");
}

/// A close frame before CONNECT is echoed too.
#[test]
fn close_before_connect_is_echoed() {
    let mut b = Broker::start_ws();
    let mut c = WsRaw::upgrade(b.ws_port());
    c.send(&cframe(0x8, &close_payload(1001)));
    c.expect_close(1001);
    assert_healthy(&mut b, "close-pre");
}

/// A ping before CONNECT, and one between the fragments of a CONNECT, are
/// answered with pongs [RFC 6455 5.5.2: "as soon as is practical"].
#[test]
fn ping_before_connect_is_answered() {
    let mut b = Broker::start_ws();
    let mut c = WsRaw::upgrade(b.ws_port());
    c.send(&cframe(0x9, b"early"));
    match c.read_frame(Duration::from_secs(2)) {
        FrameOutcome::Frame(f) => {
            assert_eq!(f.opcode, 0xA, "expected pong, got {f:?}");
            assert_eq!(f.payload, b"early");
        }
        other => panic!("no pong for a ping sent before CONNECT: {other:?}"),
    }
    drop(c);

    let connect = encode(&Packet::Connect(Box::new(connect_packet(
        "ping-mid-connect",
        true,
        30,
        None,
    ))));
    let mut c = WsRaw::upgrade(b.ws_port());
    c.send(&frame(false, 0, 0x2, &connect[..4], Some(next_mask())));
    c.send(&cframe(0x9, b"mid"));
    std::thread::sleep(Duration::from_millis(100));
    c.send(&frame(true, 0, 0x0, &connect[4..], Some(next_mask())));
    match c.read_mqtt(RECV_TIMEOUT) {
        Packet::ConnAck(a) => assert_eq!(a.code, 0),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    if c.controls.is_empty() {
        match c.read_frame(Duration::from_secs(2)) {
            FrameOutcome::Frame(f) => c.controls.push(f),
            other => panic!("no pong for the ping between CONNECT fragments: {other:?}"),
        }
    }
    assert!(
        c.controls
            .iter()
            .any(|f| f.opcode == 0xA && f.payload == b"mid"),
        "pong for the ping between fragments: {:?}",
        c.controls
    );
    assert_healthy(&mut b, "ping-pre");
}

/// MQTT packets are a byte stream across frames: a CONNECT split over three
/// frames (as three messages, and as one fragmented message with a ping in
/// between), and several packets in one frame.
#[test]
fn connect_split_over_three_frames() {
    let mut b = Broker::start_ws();
    let connect = encode(&Packet::Connect(Box::new(connect_packet(
        "split-connect",
        true,
        30,
        None,
    ))));
    let (p1, rest) = connect.split_at(3);
    let (p2, p3) = rest.split_at(rest.len() / 2);

    // Three binary messages.
    let mut c = WsRaw::upgrade(b.ws_port());
    for part in [p1, p2, p3] {
        c.send(&binary(part));
        std::thread::sleep(Duration::from_millis(50));
    }
    match c.read_mqtt(RECV_TIMEOUT) {
        Packet::ConnAck(a) => assert_eq!(a.code, 0),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // One message: binary(FIN=0), ping, continuation(FIN=0), continuation(FIN=1);
    // the ping between fragments must not disturb the reassembly.
    let mut c = WsRaw::upgrade(b.ws_port());
    c.send(&frame(false, 0, 0x2, p1, Some(next_mask())));
    c.send(&cframe(0x9, b"mid"));
    std::thread::sleep(Duration::from_millis(50));
    c.send(&frame(false, 0, 0x0, p2, Some(next_mask())));
    std::thread::sleep(Duration::from_millis(50));
    c.send(&frame(true, 0, 0x0, p3, Some(next_mask())));
    match c.read_mqtt(RECV_TIMEOUT) {
        Packet::ConnAck(a) => assert_eq!(a.code, 0),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // (The pong for that ping: see ping_before_connect_is_answered.)
    assert_healthy(&mut b, "split");
}

#[test]
fn connect_and_subscribe_in_one_frame() {
    let mut b = Broker::start_ws();
    let mut bytes = encode(&Packet::Connect(Box::new(connect_packet(
        "one-frame",
        true,
        30,
        None,
    ))));
    bytes.extend(encode(&subscribe_packet(
        5,
        &[("one/frame", QoS::ExactlyOnce)],
    )));
    bytes.extend(encode(&publish_packet(
        "one/frame",
        QoS::AtMostOnce,
        0,
        false,
        false,
        b"to myself",
    )));
    let mut c = WsRaw::upgrade(b.ws_port());
    c.send(&binary(&bytes));
    match c.read_mqtt(RECV_TIMEOUT) {
        Packet::ConnAck(a) => assert_eq!(a.code, 0),
        other => panic!("expected CONNACK, got {other:?}"),
    }
    // [3.8.4] The server may send matching PUBLISHes before the SUBACK.
    let (mut suback, mut publish) = (false, false);
    while !(suback && publish) {
        match c.read_mqtt(RECV_TIMEOUT) {
            Packet::SubAck(s) if !suback => {
                assert_eq!(s.packet_id, 5);
                assert_eq!(s.codes, vec![2]);
                suback = true;
            }
            Packet::Publish(p) if !publish => {
                assert_eq!(&p.topic[..], "one/frame");
                assert_eq!(&p.payload[..], b"to myself");
                publish = true;
            }
            other => panic!("expected SUBACK and own PUBLISH, got {other:?}"),
        }
    }
    assert_healthy(&mut b, "oneframe");
}

/// Raw TCP and raw WS clients with the same id: the TCP one is closed.
#[test]
fn raw_takeover_tcp_by_ws() {
    let mut b = Broker::start_ws();
    let id = client_id_on(1, "rawtake");
    let (mut tcp, _) = RawClient::connect(b.port(), &id, true);
    let mut ws = WsRaw::connect(b.ws_port(), &id);
    tcp.expect_closed(RECV_TIMEOUT);
    ws.send_mqtt(&Packet::PingReq);
    assert!(matches!(ws.read_mqtt(RECV_TIMEOUT), Packet::PingResp));
    // And back: a TCP CONNECT closes the WS one (close frame, then EOF).
    let (mut tcp2, _) = RawClient::connect(b.port(), &id, true);
    match ws.read_frame(RECV_TIMEOUT) {
        FrameOutcome::Frame(f) => assert_eq!(f.opcode, 0x8, "expected a close: {f:?}"),
        FrameOutcome::Closed => {}
        FrameOutcome::TimedOut => panic!("WS connection not closed by the takeover"),
    }
    ws.expect_eof();
    tcp2.send(&[0xC0, 0x00]);
    assert!(matches!(tcp2.read_packet(RECV_TIMEOUT), Packet::PingResp));
    assert_healthy(&mut b, "rawtake");
}

/// Two WebSocket paths on one port: the ready line lists both URLs (same
/// port) and both paths upgrade and serve MQTT.
#[test]
fn two_ws_paths_on_one_port() {
    let mut b = Broker::start_ws_with(&["--listen", "ws://127.0.0.1:0/alt"]);
    let port = b.ws_port();
    assert_eq!(
        b.ws_urls(),
        vec![
            format!("ws://127.0.0.1:{port}/mqtt"),
            format!("ws://127.0.0.1:{port}/alt")
        ]
    );
    for path in ["/mqtt", "/alt"] {
        let (mut c, resp) = WsRaw::request(
            port,
            &upgrade_request(path, &[("Sec-WebSocket-Protocol", Some("mqtt"))]),
        );
        assert_eq!(resp.status, 101, "{path}: {resp:?}");
        c.send_mqtt(&Packet::Connect(Box::new(connect_packet(
            &format!("path{}", path.len()),
            true,
            30,
            None,
        ))));
        assert!(
            matches!(c.read_mqtt(RECV_TIMEOUT), Packet::ConnAck(a) if a.code == 0),
            "{path}"
        );
    }
    assert_refused(port, &upgrade_request("/other", &[]), 404);
    assert_healthy(&mut b, "twopaths");
}

/// A parked WebSocket connection (`--park-after-ms`) keeps its frame state:
/// a ping is answered with its pong, MQTT keeps flowing both ways, and it
/// parks again after each exchange.
#[test]
fn parked_ws_connection_answers_pings_and_receives() {
    let mut b = Broker::start_ws_with(&["--park-after-ms", "100"]);
    let mut sub = WsRaw::connect(b.ws_port(), "ws-parked-sub");
    sub.send_mqtt(&subscribe_packet(1, &[("wspark/t", QoS::AtLeastOnce)]));
    match sub.read_mqtt(RECV_TIMEOUT) {
        Packet::SubAck(s) => assert_eq!(s.codes, vec![1]),
        other => panic!("expected SUBACK, got {other:?}"),
    }
    b.wait_log_count(" parked", 1);
    sub.send(&cframe(0x9, b"still there?"));
    match sub.read_frame(RECV_TIMEOUT) {
        FrameOutcome::Frame(f) => {
            assert_eq!(f.opcode, 0xA, "expected pong, got {f:?}");
            assert_eq!(f.payload, b"still there?");
        }
        other => panic!("no pong from a parked connection: {other:?}"),
    }
    b.wait_log_count(" parked", 2);
    let mut publisher = WsRaw::connect(b.ws_port(), "ws-parked-pub");
    publisher.send_mqtt(&publish_packet(
        "wspark/t",
        QoS::AtLeastOnce,
        3,
        false,
        false,
        b"to a parked ws",
    ));
    match publisher.read_mqtt(RECV_TIMEOUT) {
        Packet::PubAck(a) => assert_eq!(a.packet_id, 3),
        other => panic!("expected PUBACK, got {other:?}"),
    }
    match sub.read_mqtt(RECV_TIMEOUT) {
        Packet::Publish(p) => assert_eq!(&p.payload[..], b"to a parked ws"),
        other => panic!("expected PUBLISH, got {other:?}"),
    }
    assert_healthy(&mut b, "ws-parked");
}
