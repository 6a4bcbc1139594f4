//! Framing and parsing of one packet from a connection's read buffer.
//!
//! The fixed header is judged as soon as it is readable: type, flags and
//! the size limit are checked before the body has arrived, so a peer cannot
//! make us buffer a huge packet only to reject it. Once the whole packet is
//! there it is split off the buffer and frozen; every string, binary field
//! and payload in the result is a slice of that `Bytes`.

use bytes::{Buf, Bytes, BytesMut};

use super::error::DecodeError;
use super::packet::*;
use super::properties::{self, Context};
use super::strings::Reader;
use super::varint;

/// Decodes one packet from the front of `buf`.
///
/// `Ok(None)`: not a whole packet yet, `buf` untouched. `Ok(Some(p))`: the
/// packet's bytes were consumed. `Err`: the connection must be closed (a
/// CONNECT is parsed with its own protocol level whatever `version` is).
pub fn decode(
    buf: &mut BytesMut,
    version: ProtocolVersion,
    max_packet_size: usize,
) -> Result<Option<Packet>, DecodeError> {
    let Some(&first) = buf.first() else {
        return Ok(None);
    };
    let (packet_type, flags) = (first >> 4, first & 0x0F);
    check_fixed_header(packet_type, flags, version)?;
    let Some((remaining, len_bytes)) = varint::read_header(buf.get(1..).unwrap_or_default())?
    else {
        return Ok(None);
    };
    let header = 1 + len_bytes;
    let total = header + remaining;
    if total > max_packet_size {
        return Err(DecodeError::PacketTooLarge {
            size: total,
            max: max_packet_size,
        });
    }
    if buf.len() < total {
        return Ok(None);
    }
    let frame = buf.split_to(total).freeze();
    let mut r = Reader::new(&frame, header);
    let packet = parse(packet_type, flags, version, &mut r)?;
    r.finish()?;
    Ok(Some(packet))
}

/// The fixed-header rules of [MQTT-2.2.2-1/2] and [MQTT-3.3.1-2/4].
fn check_fixed_header(
    packet_type: u8,
    flags: u8,
    version: ProtocolVersion,
) -> Result<(), DecodeError> {
    let expected = match packet_type {
        0 => return Err(DecodeError::InvalidPacketType(0)),
        15 if !version.is_v5() => return Err(DecodeError::InvalidPacketType(15)),
        3 => {
            let qos = (flags >> 1) & 0b11;
            if qos == 3 {
                return Err(DecodeError::InvalidQoS);
            }
            // DUP must be 0 for QoS 0 messages.
            if qos == 0 && flags & 0b1000 != 0 {
                return Err(DecodeError::InvalidFixedHeaderFlags { packet_type, flags });
            }
            return Ok(());
        }
        6 | 8 | 10 => 0b0010,
        _ => 0,
    };
    if flags != expected {
        return Err(DecodeError::InvalidFixedHeaderFlags { packet_type, flags });
    }
    Ok(())
}

fn parse(
    packet_type: u8,
    flags: u8,
    version: ProtocolVersion,
    r: &mut Reader<'_>,
) -> Result<Packet, DecodeError> {
    let v5 = version.is_v5();
    Ok(match packet_type {
        1 => Packet::Connect(Box::new(connect(r)?)),
        2 => Packet::ConnAck(connack(r, v5)?),
        3 => Packet::Publish(publish(flags, r, v5)?),
        4 => Packet::PubAck(ack(r, v5)?),
        5 => Packet::PubRec(ack(r, v5)?),
        6 => Packet::PubRel(ack(r, v5)?),
        7 => Packet::PubComp(ack(r, v5)?),
        8 => Packet::Subscribe(subscribe(r, v5)?),
        9 => Packet::SubAck(suback(r, v5)?),
        10 => Packet::Unsubscribe(unsubscribe(r, v5)?),
        11 => Packet::UnsubAck(unsuback(r, v5)?),
        12 => Packet::PingReq,
        13 => Packet::PingResp,
        14 => {
            let (reason, properties) = reason_and_props(r, v5, Context::Disconnect)?;
            Packet::Disconnect(Disconnect { reason, properties })
        }
        15 => {
            let (reason, properties) = reason_and_props(r, v5, Context::Auth)?;
            Packet::Auth(Auth { reason, properties })
        }
        t => return Err(DecodeError::InvalidPacketType(t)),
    })
}

fn packet_id(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::ZeroPacketId),
        id => Ok(id),
    }
}

fn props(r: &mut Reader<'_>, v5: bool, ctx: Context) -> Result<Props, DecodeError> {
    if v5 {
        properties::decode(r, ctx)
    } else {
        Ok(None)
    }
}

/// A topic name from PUBLISH or a Will: no wildcards [MQTT-3.3.2-2]; empty
/// only where `allow_empty` (5.0 PUBLISH, where a topic alias stands in).
fn topic_name(
    r: &mut Reader<'_>,
    allow_empty: bool,
) -> Result<bytestring::ByteString, DecodeError> {
    let t = r.string()?;
    if t.is_empty() {
        if allow_empty {
            return Ok(t);
        }
        return Err(DecodeError::InvalidTopicName);
    }
    if memchr::memchr2(b'+', b'#', t.as_bytes()).is_some() {
        return Err(DecodeError::InvalidTopicName);
    }
    Ok(t)
}

fn connect(r: &mut Reader<'_>) -> Result<Connect, DecodeError> {
    // Read raw, not as UTF-8: any unexpected name is the same error.
    let name: Bytes = r.binary()?;
    let level = r.u8()?;
    let protocol = match (&name[..], level) {
        (b"MQTT", 4) => ProtocolVersion::V311,
        (b"MQTT", 5) => ProtocolVersion::V5,
        (b"MQIsdp", 3) => ProtocolVersion::V31,
        (b"MQTT", l) | (b"MQIsdp", l) => return Err(DecodeError::UnsupportedProtocolLevel(l)),
        _ => return Err(DecodeError::InvalidProtocolName),
    };
    let v5 = protocol.is_v5();
    let flags = r.u8()?;
    let will_flag = flags & 0x04 != 0;
    let will_qos = (flags >> 3) & 0b11;
    let will_retain = flags & 0x20 != 0;
    let has_password = flags & 0x40 != 0;
    let has_username = flags & 0x80 != 0;
    // [MQTT-3.1.2-3] reserved bit; [MQTT-3.1.2-11/13/15] will bits.
    if flags & 0x01 != 0 || (!will_flag && (will_qos != 0 || will_retain)) {
        return Err(DecodeError::InvalidConnectFlags);
    }
    if will_qos == 3 {
        return Err(DecodeError::InvalidQoS);
    }
    // [MQTT-3.1.2-22] (3.1.1 only; 5.0 allows a password alone).
    if !v5 && has_password && !has_username {
        return Err(DecodeError::InvalidConnectFlags);
    }
    let keep_alive = r.u16()?;
    let properties = props(r, v5, Context::Connect)?;
    let client_id = r.string()?;
    let will = if will_flag {
        let properties = props(r, v5, Context::Will)?;
        let topic = topic_name(r, false)?;
        let payload = r.binary()?;
        Some(Will {
            topic,
            payload,
            qos: QoS::from_u8(will_qos).ok_or(DecodeError::InvalidQoS)?,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string()?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary()?)
    } else {
        None
    };
    Ok(Connect {
        protocol,
        clean_start: flags & 0x02 != 0,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

fn connack(r: &mut Reader<'_>, v5: bool) -> Result<ConnAck, DecodeError> {
    let flags = r.u8()?;
    // [MQTT-3.2.2-1]: bits 7-1 are reserved.
    if flags & 0xFE != 0 {
        return Err(DecodeError::Malformed("reserved CONNACK flags set"));
    }
    let code = r.u8()?;
    let properties = props(r, v5, Context::ConnAck)?;
    Ok(ConnAck {
        session_present: flags & 0x01 != 0,
        code,
        properties,
    })
}

fn publish(flags: u8, r: &mut Reader<'_>, v5: bool) -> Result<Publish, DecodeError> {
    let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(DecodeError::InvalidQoS)?;
    let topic = topic_name(r, v5)?;
    let packet_id = if qos == QoS::AtMostOnce {
        0
    } else {
        packet_id(r)?
    };
    let properties = props(r, v5, Context::Publish)?;
    // A zero-length topic is only meaningful with a topic alias.
    if topic.is_empty() && properties.as_ref().and_then(|p| p.topic_alias).is_none() {
        return Err(DecodeError::InvalidTopicName);
    }
    Ok(Publish {
        dup: flags & 0b1000 != 0,
        qos,
        retain: flags & 0b0001 != 0,
        topic,
        packet_id,
        payload: r.rest(),
        properties,
    })
}

/// 5.0 lets the reason code and properties be omitted at the end of acks,
/// DISCONNECT and AUTH (meaning success and none).
fn reason_and_props(
    r: &mut Reader<'_>,
    v5: bool,
    ctx: Context,
) -> Result<(u8, Props), DecodeError> {
    if !v5 || r.is_empty() {
        return Ok((0, None));
    }
    let reason = r.u8()?;
    if r.is_empty() {
        return Ok((reason, None));
    }
    Ok((reason, properties::decode(r, ctx)?))
}

fn ack(r: &mut Reader<'_>, v5: bool) -> Result<Ack, DecodeError> {
    let packet_id = packet_id(r)?;
    let (reason, properties) = reason_and_props(r, v5, Context::Ack)?;
    Ok(Ack {
        packet_id,
        reason,
        properties,
    })
}

/// Subscription options byte (3.1.1 3.8.3.1 / 5.0 3.8.3.1).
fn subscription_options(b: u8, v5: bool) -> Result<SubscriptionOptions, DecodeError> {
    let reserved = if v5 { 0b1100_0000 } else { 0b1111_1100 };
    let retain_handling = (b >> 4) & 0b11;
    if b & reserved != 0 || retain_handling == 3 {
        return Err(DecodeError::InvalidSubscriptionOptions);
    }
    Ok(SubscriptionOptions {
        qos: QoS::from_u8(b & 0b11).ok_or(DecodeError::InvalidSubscriptionOptions)?,
        no_local: b & 0b0100 != 0,
        retain_as_published: b & 0b1000 != 0,
        retain_handling,
    })
}

fn subscribe(r: &mut Reader<'_>, v5: bool) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = props(r, v5, Context::Subscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        let filter = r.string()?;
        let options = subscription_options(r.u8()?, v5)?;
        filters.push(SubscriptionRequest { filter, options });
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscription);
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

fn suback(r: &mut Reader<'_>, v5: bool) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = props(r, v5, Context::SubAck)?;
    let codes = r.rest();
    if codes.is_empty() {
        return Err(DecodeError::Malformed("SUBACK without return codes"));
    }
    Ok(SubAck {
        packet_id,
        codes: codes.chunk().to_vec(),
        properties,
    })
}

fn unsubscribe(r: &mut Reader<'_>, v5: bool) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = props(r, v5, Context::Unsubscribe)?;
    let mut filters = Vec::new();
    while !r.is_empty() {
        filters.push(r.string()?);
    }
    if filters.is_empty() {
        return Err(DecodeError::EmptySubscription);
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

fn unsuback(r: &mut Reader<'_>, v5: bool) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    if !v5 {
        return Ok(UnsubAck {
            packet_id,
            codes: Vec::new(),
            properties: None,
        });
    }
    let properties = properties::decode(r, Context::UnsubAck)?;
    let codes = r.rest();
    if codes.is_empty() {
        return Err(DecodeError::Malformed("UNSUBACK without reason codes"));
    }
    Ok(UnsubAck {
        packet_id,
        codes: codes.chunk().to_vec(),
        properties,
    })
}

#[cfg(test)]
#[path = "decode_tests.rs"]
mod tests;
