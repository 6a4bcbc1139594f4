//! MQTT handshakes and acks over a [`Wire`], with the library's codec.

use std::io;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use bytestring::ByteString;
use ringmq::protocol::{
    decode, encode, Ack, Connect, Packet, ProtocolVersion, Subscribe, SubscriptionOptions,
    SubscriptionRequest,
};

use crate::args::Config;
use crate::wire::Wire;

pub const MAX_PACKET: usize = 16 << 20;

/// Opens a connection from `local` and completes CONNECT/CONNACK. Returns
/// the connection and how long TCP connect + upgrade + CONNACK took.
pub fn open(
    cfg: &Config,
    local: Option<IpAddr>,
    client_id: &str,
    keep_alive: u16,
) -> io::Result<(Wire, Duration)> {
    let timeout = Duration::from_secs(cfg.args.connect_timeout.max(1));
    let start = Instant::now();
    let mut wire = Wire::connect(cfg.target, local, cfg.ws_path(), timeout)?;
    let mut out = BytesMut::new();
    let connect = Connect {
        protocol: cfg.version,
        clean_start: true,
        keep_alive,
        client_id: ByteString::from(client_id),
        will: None,
        username: None,
        password: None,
        properties: None,
    };
    encode(&Packet::Connect(Box::new(connect)), cfg.version, &mut out);
    wire.send(&out)?;
    match read_packet(&mut wire, &mut BytesMut::new(), cfg.version, timeout)? {
        Packet::ConnAck(a) if a.code == 0 => Ok((wire, start.elapsed())),
        Packet::ConnAck(a) => Err(io::Error::other(format!(
            "CONNECT refused, code {:#04x}",
            a.code
        ))),
        other => Err(io::Error::other(format!("expected CONNACK, got {other:?}"))),
    }
}

/// Subscribes to one filter; returns the SUBACK's code (granted QoS, or a
/// failure code from 0x80 up).
pub fn subscribe(cfg: &Config, wire: &mut Wire, filter: &str) -> io::Result<u8> {
    let timeout = Duration::from_secs(cfg.args.connect_timeout.max(1));
    let mut out = BytesMut::new();
    let sub = Subscribe {
        packet_id: 1,
        filters: vec![SubscriptionRequest {
            filter: ByteString::from(filter),
            options: SubscriptionOptions {
                qos: cfg.qos,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            },
        }],
        properties: None,
    };
    encode(&Packet::Subscribe(sub), cfg.version, &mut out);
    wire.send(&out)?;
    match read_packet(wire, &mut BytesMut::new(), cfg.version, timeout)? {
        Packet::SubAck(a) => Ok(a.codes.first().copied().unwrap_or(0x80)),
        other => Err(io::Error::other(format!("expected SUBACK, got {other:?}"))),
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
