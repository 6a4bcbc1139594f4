//! MQTT handshakes and acks over a [`Wire`], with the library's codec.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use bytestring::ByteString;
use ringmq::protocol::{
    decode, encode, Ack, Packet, ProtocolVersion, QoS, Subscribe, SubscriptionOptions,
    SubscriptionRequest,
};

use crate::args::Config;
use crate::wire::Wire;

pub const MAX_PACKET: usize = 16 << 20;

/// Opens a connection from `local` and completes CONNECT/CONNACK. Returns
/// the connection and how long TCP connect + TLS handshake or upgrade +
/// CONNACK took.
pub fn open(
    cfg: &Config,
    local: Option<IpAddr>,
    client_id: &str,
    keep_alive: u16,
) -> io::Result<(Wire, Duration)> {
    let timeout = Duration::from_secs(cfg.args.connect_timeout.max(1));
    let start = Instant::now();
    let mut wire = Wire::connect(cfg.target, local, cfg.ws_path(), cfg.tls.as_ref(), timeout)?;
    handshake(&mut wire, cfg.version, client_id, keep_alive, timeout)?;
    Ok((wire, start.elapsed()))
}

/// Sends CONNECT (clean start, no will, no credentials) and waits up to
/// `timeout` for a CONNACK that accepts it.
pub fn handshake(
    wire: &mut Wire,
    version: ProtocolVersion,
    client_id: &str,
    keep_alive: u16,
    timeout: Duration,
) -> io::Result<()> {
    let mut out = BytesMut::new();
    crate::fleet_conn::connect_packet(version, client_id, keep_alive, &mut out);
    wire.send(&out)?;
    match read_packet(wire, &mut BytesMut::new(), version, timeout)? {
        Packet::ConnAck(a) if a.code == 0 => Ok(()),
        Packet::ConnAck(a) => Err(io::Error::other(format!(
            "CONNECT refused, code {:#04x}",
            a.code
        ))),
        other => Err(io::Error::other(format!("expected CONNACK, got {other:?}"))),
    }
}

/// Subscribes to one filter at `--qos`; returns the SUBACK's code (granted
/// QoS, or a failure code from 0x80 up).
pub fn subscribe(cfg: &Config, wire: &mut Wire, filter: &str) -> io::Result<u8> {
    let timeout = Duration::from_secs(cfg.args.connect_timeout.max(1));
    let codes = subscribe_all(wire, cfg.version, &[filter], cfg.qos, timeout)?;
    Ok(codes.first().copied().unwrap_or(0x80))
}

/// The SUBSCRIBE packet (id 1) for `filters`, each at `qos`.
pub fn subscribe_packet(filters: &[&str], qos: QoS, v: ProtocolVersion) -> BytesMut {
    let mut out = BytesMut::new();
    let sub = Subscribe {
        packet_id: 1,
        filters: filters
            .iter()
            .map(|f| SubscriptionRequest {
                filter: ByteString::from(*f),
                options: SubscriptionOptions {
                    qos,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 0,
                },
            })
            .collect(),
        properties: None,
    };
    encode(&Packet::Subscribe(sub), v, &mut out);
    out
}

/// Subscribes to `filters` at `qos` in one SUBSCRIBE; returns the SUBACK's
/// codes. Packets before the SUBACK (retained messages) are skipped.
pub fn subscribe_all(
    wire: &mut Wire,
    v: ProtocolVersion,
    filters: &[&str],
    qos: QoS,
    timeout: Duration,
) -> io::Result<Vec<u8>> {
    wire.send(&subscribe_packet(filters, qos, v))?;
    let deadline = Instant::now() + timeout;
    let mut buf = BytesMut::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match read_packet(wire, &mut buf, v, left)? {
            Packet::SubAck(a) => return Ok(a.codes),
            Packet::Publish(_) => {}
            other => return Err(io::Error::other(format!("expected SUBACK, got {other:?}"))),
        }
    }
}

/// Reads one whole packet within `timeout`.
pub fn read_packet(
    wire: &mut Wire,
    buf: &mut BytesMut,
    v: ProtocolVersion,
    timeout: Duration,
) -> io::Result<Packet> {
    wire.set_read_timeout(Some(timeout))?;
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(p) = decode(buf, v, MAX_PACKET).map_err(io::Error::other)? {
            return Ok(p);
        }
        if Instant::now() > deadline {
            return Err(io::ErrorKind::TimedOut.into());
        }
        if wire.recv(buf)? == 0 {
            return Err(io::Error::other("connection closed by the broker"));
        }
    }
}

/// Appends PUBACK/PUBREC/PUBREL/PUBCOMP (`kind` picks) for `packet_id`.
pub fn ack(kind: fn(Ack) -> Packet, packet_id: u16, v: ProtocolVersion, out: &mut BytesMut) {
    let a = Ack {
        packet_id,
        reason: 0,
        properties: None,
    };
    encode(&kind(a), v, out);
}
