//! Serialisation of packets, 3.1/3.1.1 or 5.0 as asked.
//!
//! Encoding is infallible: the broker only encodes values it built or
//! decoded, and respects the peer's size limits before calling. Every
//! packet computes its remaining length first and reserves the exact size
//! once, so encoding into a connection's write buffer never reallocates
//! halfway through. 5.0 fields are ignored when encoding for 3.1.1, and
//! 5.0 uses the short forms the spec allows (e.g. a 2-byte PUBACK).

use bytes::{BufMut, BytesMut};

use super::packet::*;
use super::properties::{block_len, is_empty, write_block};
use super::strings::{field_len, write_binary, write_string};
use super::varint;

/// Writes the fixed header and reserves room for the whole packet.
fn header(out: &mut BytesMut, first: u8, remaining: usize) {
    out.reserve(1 + varint::len(remaining) + remaining);
    out.put_u8(first);
    varint::write(out, remaining);
}

fn props_len(v5: bool, p: &Props) -> usize {
    if v5 {
        block_len(p.as_deref())
    } else {
        0
    }
}

/// Encodes `packet` for a connection speaking `version` (a CONNECT uses
/// its own `protocol` field instead).
pub fn encode(packet: &Packet, version: ProtocolVersion, out: &mut BytesMut) {
    let v5 = version.is_v5();
    match packet {
        Packet::Connect(c) => connect(c, out),
        Packet::ConnAck(c) => {
            header(out, 0x20, 2 + props_len(v5, &c.properties));
            out.put_u8(u8::from(c.session_present));
            out.put_u8(c.code);
            if v5 {
                write_block(out, c.properties.as_deref());
            }
        }
        Packet::Publish(p) => encode_publish(
            out,
            version,
            p.dup,
            p.qos,
            p.retain,
            &p.topic,
            p.packet_id,
            &p.payload,
            p.properties.as_deref(),
        ),
        Packet::PubAck(a) => ack(out, 0x40, a, v5),
        Packet::PubRec(a) => ack(out, 0x50, a, v5),
        Packet::PubRel(a) => ack(out, 0x62, a, v5),
        Packet::PubComp(a) => ack(out, 0x70, a, v5),
        Packet::Subscribe(s) => {
            let filters: usize = s
                .filters
                .iter()
                .map(|f| field_len(f.filter.as_bytes()) + 1)
                .sum();
            header(out, 0x82, 2 + props_len(v5, &s.properties) + filters);
            out.put_u16(s.packet_id);
            if v5 {
                write_block(out, s.properties.as_deref());
            }
            for f in &s.filters {
                write_string(out, &f.filter);
                out.put_u8(options_byte(&f.options, v5));
            }
        }
        Packet::SubAck(s) => {
            header(out, 0x90, 2 + props_len(v5, &s.properties) + s.codes.len());
            out.put_u16(s.packet_id);
            if v5 {
                write_block(out, s.properties.as_deref());
            }
            out.put_slice(&s.codes);
        }
        Packet::Unsubscribe(u) => {
            let filters: usize = u.filters.iter().map(|f| field_len(f.as_bytes())).sum();
            header(out, 0xA2, 2 + props_len(v5, &u.properties) + filters);
            out.put_u16(u.packet_id);
            if v5 {
                write_block(out, u.properties.as_deref());
            }
            for f in &u.filters {
                write_string(out, f);
            }
        }
        Packet::UnsubAck(u) => {
            // 3.1.1 UNSUBACK is just the packet id.
            let codes = if v5 { u.codes.len() } else { 0 };
            header(out, 0xB0, 2 + props_len(v5, &u.properties) + codes);
            out.put_u16(u.packet_id);
            if v5 {
                write_block(out, u.properties.as_deref());
                out.put_slice(&u.codes);
            }
        }
        Packet::PingReq => out.put_slice(&[0xC0, 0]),
        Packet::PingResp => out.put_slice(&[0xD0, 0]),
        Packet::Disconnect(d) => {
            if v5 {
                reason_tail(out, 0xE0, None, d.reason, &d.properties);
            } else {
                out.put_slice(&[0xE0, 0]);
            }
        }
        // AUTH exists only in 5.0; it is written in that form whatever
        // `version` says, since there is nothing else to write.
        Packet::Auth(a) => reason_tail(out, 0xF0, None, a.reason, &a.properties),
    }
}

/// 5.0 packets ending in `[reason [properties]]` (acks, DISCONNECT,
/// AUTH): trailing parts equal to their defaults are left out.
fn reason_tail(out: &mut BytesMut, first: u8, packet_id: Option<u16>, reason: u8, p: &Props) {
    let id_len = if packet_id.is_some() { 2 } else { 0 };
    let no_props = is_empty(p.as_deref());
    let tail = match (reason, no_props) {
        (0, true) => 0,
        (_, true) => 1,
        (_, false) => 1 + block_len(p.as_deref()),
    };
    header(out, first, id_len + tail);
    if let Some(id) = packet_id {
        out.put_u16(id);
    }
    if tail > 0 {
        out.put_u8(reason);
    }
    if !no_props {
        write_block(out, p.as_deref());
    }
}

fn ack(out: &mut BytesMut, first: u8, a: &Ack, v5: bool) {
    if v5 {
        reason_tail(out, first, Some(a.packet_id), a.reason, &a.properties);
    } else {
        header(out, first, 2);
        out.put_u16(a.packet_id);
    }
}

fn options_byte(o: &SubscriptionOptions, v5: bool) -> u8 {
    let qos = o.qos as u8;
    if !v5 {
        return qos;
    }
    qos | u8::from(o.no_local) << 2
        | u8::from(o.retain_as_published) << 3
        | (o.retain_handling & 0b11) << 4
}

fn connect(c: &Connect, out: &mut BytesMut) {
    let (name, level): (&[u8], u8) = match c.protocol {
        ProtocolVersion::V31 => (b"MQIsdp", 3),
        ProtocolVersion::V311 => (b"MQTT", 4),
        ProtocolVersion::V5 => (b"MQTT", 5),
    };
    let v5 = c.protocol.is_v5();
    let mut flags = u8::from(c.clean_start) << 1;
    let mut len = field_len(name) + 4 + props_len(v5, &c.properties);
    len += field_len(c.client_id.as_bytes());
    if let Some(w) = &c.will {
        flags |= 0x04 | (w.qos as u8) << 3 | u8::from(w.retain) << 5;
        len += props_len(v5, &w.properties) + field_len(w.topic.as_bytes()) + field_len(&w.payload);
    }
    if let Some(u) = &c.username {
        flags |= 0x80;
        len += field_len(u.as_bytes());
    }
    if let Some(p) = &c.password {
        flags |= 0x40;
        len += field_len(p);
    }
    header(out, 0x10, len);
    write_binary(out, name);
    out.put_u8(level);
    out.put_u8(flags);
    out.put_u16(c.keep_alive);
    if v5 {
        write_block(out, c.properties.as_deref());
    }
    write_string(out, &c.client_id);
    if let Some(w) = &c.will {
        if v5 {
            write_block(out, w.properties.as_deref());
        }
        write_string(out, &w.topic);
        write_binary(out, &w.payload);
    }
    if let Some(u) = &c.username {
        write_string(out, u);
    }
    if let Some(p) = &c.password {
        write_binary(out, p);
    }
}

/// Writes a whole PUBLISH straight from its parts: the broker's fan-out
/// path, which must not build a `Publish` (and clone its `Bytes`) per
/// subscriber. `packet_id` is ignored for QoS 0, `properties` for 3.1.1.
#[allow(clippy::too_many_arguments)] // mirrors the wire fields one to one
pub fn encode_publish(
    out: &mut BytesMut,
    version: ProtocolVersion,
    dup: bool,
    qos: QoS,
    retain: bool,
    topic: &str,
    packet_id: u16,
    payload: &[u8],
    properties: Option<&Properties>,
) {
    let v5 = version.is_v5();
    let first = 0x30 | u8::from(dup) << 3 | (qos as u8) << 1 | u8::from(retain);
    let id_len = if qos == QoS::AtMostOnce { 0 } else { 2 };
    let props_len = if v5 { block_len(properties) } else { 0 };
    header(
        out,
        first,
        field_len(topic.as_bytes()) + id_len + props_len + payload.len(),
    );
    write_string(out, topic);
    if id_len > 0 {
        out.put_u16(packet_id);
    }
    if v5 {
        write_block(out, properties);
    }
    out.put_slice(payload);
}
