//! Helpers for the hostile-input tests (`tests/hostile*.rs`): survival and
//! memory checks against the running broker, and a raw MQTT 5.0 client
//! (`RawClient` speaks 3.1.1 only).

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use ringmq::protocol::{self, Connect, Packet, Properties, ProtocolVersion, Publish, QoS};

use super::*;

pub const MB: u64 = 1_000_000;
pub const MIB: u64 = 1 << 20;
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Survival, health and memory
// ---------------------------------------------------------------------------

/// The process is alive, a fresh pair of clients gets a QoS 1 round trip,
/// and it is still alive after that.
pub async fn assert_survives(broker: &mut Broker, tag: &str) {
    assert!(broker.is_running(), "{tag}: the broker process died");
    assert_broker_healthy(broker.port(), tag).await;
    assert!(
        broker.is_running(),
        "{tag}: the broker died during the health check"
    );
}

/// One round trip so that the shards have served clients, then the RSS.
pub async fn warm_baseline(broker: &Broker, tag: &str) -> u64 {
    assert_broker_healthy(broker.port(), &format!("{tag}-warm")).await;
    broker.rss()
}

/// The highest RSS seen over `dur`, sampled every 50 ms.
pub async fn peak_rss_over(broker: &Broker, dur: Duration) -> u64 {
    let end = Instant::now() + dur;
    let mut peak = broker.rss();
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(50)).await;
        peak = peak.max(broker.rss());
    }
    peak
}

pub fn assert_growth_below(what: &str, baseline: u64, now: u64, bound: u64) {
    let growth = now.saturating_sub(baseline);
    eprintln!(
        "{what}: grew {:.1} MB (bound {:.1} MB)",
        growth as f64 / MB as f64,
        bound as f64 / MB as f64
    );
    assert!(
        growth < bound,
        "{what}: the broker grew by {:.1} MB (RSS {:.1} MB -> {:.1} MB), the bound is {:.1} MB",
        growth as f64 / MB as f64,
        baseline as f64 / MB as f64,
        now as f64 / MB as f64,
        bound as f64 / MB as f64,
    );
}

// ---------------------------------------------------------------------------
// A raw MQTT 5.0 client (RawClient speaks 3.1.1 only)
// ---------------------------------------------------------------------------

pub const V5: ProtocolVersion = ProtocolVersion::V5;

/// Speaks 5.0 unless opened with `open_as` (the CONNECT tests need both).
pub struct RawV5 {
    pub stream: TcpStream,
    pub buf: BytesMut,
    pub version: ProtocolVersion,
}

impl RawV5 {
    pub fn open(port: u16) -> RawV5 {
        RawV5::open_as(port, V5)
    }

    pub fn open_as(port: u16, version: ProtocolVersion) -> RawV5 {
        let stream = raw_settings(TcpStream::connect(("127.0.0.1", port)).expect("tcp connect"));
        RawV5 {
            stream,
            buf: BytesMut::new(),
            version,
        }
    }

    pub fn connect_packet(id: &str) -> Packet {
        RawV5::connect_packet_as(id, V5)
    }

    pub fn connect_packet_as(id: &str, version: ProtocolVersion) -> Packet {
        RawV5::connect_packet_with(id, version, None)
    }

    pub fn connect_packet_with(
        id: &str,
        version: ProtocolVersion,
        properties: Option<Properties>,
    ) -> Packet {
        Packet::Connect(Box::new(Connect {
            protocol: version,
            clean_start: true,
            keep_alive: 60,
            client_id: ByteString::from(id),
            will: None,
            username: None,
            password: None,
            properties: properties.map(Box::new),
        }))
    }

    /// Connects; panics unless the CONNACK accepts. Returns its properties.
    pub fn connect(port: u16, id: &str) -> (RawV5, Option<Box<Properties>>) {
        RawV5::connect_with(port, id, None)
    }

    /// Connects with these CONNECT properties; as [`RawV5::connect`].
    pub fn connect_with(
        port: u16,
        id: &str,
        props: Option<Properties>,
    ) -> (RawV5, Option<Box<Properties>>) {
        let mut c = RawV5::open(port);
        c.send_packet(&RawV5::connect_packet_with(id, V5, props));
        match c.read_packet(RECV_TIMEOUT) {
            Packet::ConnAck(a) => {
                assert_eq!(a.code, 0, "{id}: CONNACK refused: {a:?}");
                (c, a.properties)
            }
            other => panic!("{id}: expected CONNACK, got {other:?}"),
        }
    }

    pub fn send_packet(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        protocol::encode(p, self.version, &mut out);
        let _ = self.stream.write_all(&out);
    }

    pub fn read_outcome(&mut self, timeout: Duration) -> ReadOutcome {
        read_outcome_from(&mut self.stream, &mut self.buf, self.version, timeout)
    }

    pub fn read_packet(&mut self, timeout: Duration) -> Packet {
        match self.read_outcome(timeout) {
            ReadOutcome::Packet(p) => p,
            other => panic!("expected a packet within {timeout:?}, got {other:?}"),
        }
    }

    pub fn subscribe(&mut self, packet_id: u16, filters: &[(&str, QoS)]) -> Vec<u8> {
        self.send_packet(&subscribe_packet(packet_id, filters));
        suback_codes(self.read_packet(RECV_TIMEOUT), packet_id)
    }

    pub fn ping(&mut self) {
        self.send_packet(&Packet::PingReq);
        match self.read_packet(RECV_TIMEOUT) {
            Packet::PingResp => {}
            other => panic!("expected PINGRESP, got {other:?}"),
        }
    }

    /// The broker sends DISCONNECT with `reason` (after any other packets,
    /// which are skipped), then closes the connection.
    pub fn expect_disconnect(&mut self, reason: u8, what: &str) {
        let deadline = Instant::now() + CLOSE_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.read_outcome(left) {
                ReadOutcome::Packet(Packet::Disconnect(d)) => {
                    assert_eq!(
                        d.reason, reason,
                        "{what}: DISCONNECT reason {:#04X}, expected {reason:#04X}",
                        d.reason
                    );
                    break;
                }
                ReadOutcome::Packet(_) => {}
                other => panic!("{what}: expected DISCONNECT {reason:#04X}, got {other:?}"),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match self.read_outcome(left) {
            ReadOutcome::Closed => {}
            ReadOutcome::Packet(p) => panic!("{what}: {p:?} after DISCONNECT"),
            other => panic!("{what}: not closed after DISCONNECT: {other:?}"),
        }
    }
}

pub fn v5_publish(
    topic: &str,
    qos: QoS,
    packet_id: u16,
    payload: &[u8],
    props: Properties,
) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: ByteString::from(topic),
        packet_id,
        payload: Bytes::copy_from_slice(payload),
        properties: Some(Box::new(props)),
    })
}
