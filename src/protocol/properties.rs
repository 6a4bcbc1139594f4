//! MQTT 5.0 properties (spec 2.2.2): the block is a varint length followed
//! by `identifier, value` pairs.
//!
//! Decoding enforces, per packet kind, the spec's table of which property
//! may appear where (a misplaced or unknown id is malformed), that only
//! User Property and, in PUBLISH, Subscription Identifier repeat, and the
//! value ranges the spec calls protocol errors. The encoder writes whatever
//! is set, in ascending id order, trusting its caller.

use bytes::{BufMut, BytesMut};
use bytestring::ByteString;

use super::error::DecodeError;
use super::packet::{Properties, Props};
use super::strings::{field_len, write_binary, write_string, Reader};
use super::topic::valid_topic_name;
use super::varint;

/// Property identifiers (spec table 2-4).
pub mod id {
    pub const PAYLOAD_FORMAT_INDICATOR: u8 = 0x01;
    pub const MESSAGE_EXPIRY_INTERVAL: u8 = 0x02;
    pub const CONTENT_TYPE: u8 = 0x03;
    pub const RESPONSE_TOPIC: u8 = 0x08;
    pub const CORRELATION_DATA: u8 = 0x09;
    pub const SUBSCRIPTION_IDENTIFIER: u8 = 0x0B;
    pub const SESSION_EXPIRY_INTERVAL: u8 = 0x11;
    pub const ASSIGNED_CLIENT_IDENTIFIER: u8 = 0x12;
    pub const SERVER_KEEP_ALIVE: u8 = 0x13;
    pub const AUTHENTICATION_METHOD: u8 = 0x15;
    pub const AUTHENTICATION_DATA: u8 = 0x16;
    pub const REQUEST_PROBLEM_INFORMATION: u8 = 0x17;
    pub const WILL_DELAY_INTERVAL: u8 = 0x18;
    pub const REQUEST_RESPONSE_INFORMATION: u8 = 0x19;
    pub const RESPONSE_INFORMATION: u8 = 0x1A;
    pub const SERVER_REFERENCE: u8 = 0x1C;
    pub const REASON_STRING: u8 = 0x1F;
    pub const RECEIVE_MAXIMUM: u8 = 0x21;
    pub const TOPIC_ALIAS_MAXIMUM: u8 = 0x22;
    pub const TOPIC_ALIAS: u8 = 0x23;
    pub const MAXIMUM_QOS: u8 = 0x24;
    pub const RETAIN_AVAILABLE: u8 = 0x25;
    pub const USER_PROPERTY: u8 = 0x26;
    pub const MAXIMUM_PACKET_SIZE: u8 = 0x27;
    pub const WILDCARD_SUBSCRIPTION_AVAILABLE: u8 = 0x28;
    pub const SUBSCRIPTION_IDENTIFIER_AVAILABLE: u8 = 0x29;
    pub const SHARED_SUBSCRIPTION_AVAILABLE: u8 = 0x2A;
}

/// Where a property block sits; decides which ids are legal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Context {
    Connect,
    Will,
    ConnAck,
    Publish,
    /// PUBACK, PUBREC, PUBREL, PUBCOMP.
    Ack,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl Context {
    const fn bit(self) -> u16 {
        1 << self as u16
    }
}

const C: u16 = Context::Connect.bit();
const W: u16 = Context::Will.bit();
const CA: u16 = Context::ConnAck.bit();
const P: u16 = Context::Publish.bit();
const A: u16 = Context::Ack.bit();
const S: u16 = Context::Subscribe.bit();
const SA: u16 = Context::SubAck.bit();
const UA: u16 = Context::UnsubAck.bit();
const D: u16 = Context::Disconnect.bit();
const AU: u16 = Context::Auth.bit();
const ALL: u16 = u16::MAX;

/// The packet kinds a property id may appear in; 0 for unknown ids.
fn allowed_in(pid: u8) -> u16 {
    match pid {
        id::PAYLOAD_FORMAT_INDICATOR
        | id::MESSAGE_EXPIRY_INTERVAL
        | id::CONTENT_TYPE
        | id::RESPONSE_TOPIC
        | id::CORRELATION_DATA => P | W,
        id::SUBSCRIPTION_IDENTIFIER => P | S,
        id::SESSION_EXPIRY_INTERVAL => C | CA | D,
        id::ASSIGNED_CLIENT_IDENTIFIER | id::SERVER_KEEP_ALIVE => CA,
        id::AUTHENTICATION_METHOD | id::AUTHENTICATION_DATA => C | CA | AU,
        id::REQUEST_PROBLEM_INFORMATION | id::REQUEST_RESPONSE_INFORMATION => C,
        id::WILL_DELAY_INTERVAL => W,
        id::RESPONSE_INFORMATION => CA,
        id::SERVER_REFERENCE => CA | D,
        id::REASON_STRING => CA | A | SA | UA | D | AU,
        id::RECEIVE_MAXIMUM | id::TOPIC_ALIAS_MAXIMUM | id::MAXIMUM_PACKET_SIZE => C | CA,
        id::TOPIC_ALIAS => P,
        id::MAXIMUM_QOS
        | id::RETAIN_AVAILABLE
        | id::WILDCARD_SUBSCRIPTION_AVAILABLE
        | id::SUBSCRIPTION_IDENTIFIER_AVAILABLE
        | id::SHARED_SUBSCRIPTION_AVAILABLE => CA,
        id::USER_PROPERTY => ALL,
        _ => 0,
    }
}

/// Stores a once-only property, refusing a second occurrence.
fn once<T>(slot: &mut Option<T>, v: T, pid: u8) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty { id: pid });
    }
    *slot = Some(v);
    Ok(())
}

/// Reads a byte that must be 0 or 1 (the spec's boolean-like properties).
fn bool_byte(r: &mut Reader<'_>, pid: u8) -> Result<u8, DecodeError> {
    match r.u8()? {
        v @ (0 | 1) => Ok(v),
        _ => Err(DecodeError::InvalidPropertyValue { id: pid }),
    }
}

fn nonzero_u16(r: &mut Reader<'_>, pid: u8) -> Result<u16, DecodeError> {
    match r.u16()? {
        0 => Err(DecodeError::InvalidPropertyValue { id: pid }),
        v => Ok(v),
    }
}

/// Decodes a property block (length included). `None` when it is empty,
/// so a decoded `Some` is never an empty `Properties`.
pub fn decode(r: &mut Reader<'_>, ctx: Context) -> Result<Props, DecodeError> {
    let len = r.varint()? as usize;
    if len == 0 {
        return Ok(None);
    }
    let mut r = r.sub(len)?;
    let mut p = Properties::default();
    while !r.is_empty() {
        // Identifiers are varints on the wire, but all defined ones are
        // < 128: a first byte with the top bit set is unknown anyway.
        let pid = r.u8()?;
        if allowed_in(pid) & ctx.bit() == 0 {
            return Err(DecodeError::InvalidProperty { id: pid });
        }
        match pid {
            id::PAYLOAD_FORMAT_INDICATOR => {
                let v = bool_byte(&mut r, pid)?;
                once(&mut p.payload_format_indicator, v, pid)?
            }
            id::MESSAGE_EXPIRY_INTERVAL => once(&mut p.message_expiry_interval, r.u32()?, pid)?,
            id::CONTENT_TYPE => once(&mut p.content_type, r.string()?, pid)?,
            id::RESPONSE_TOPIC => {
                let t = r.string()?;
                // [MQTT-3.3.2-14]: a topic name, so no wildcards.
                if !valid_topic_name(&t) {
                    return Err(DecodeError::InvalidPropertyValue { id: pid });
                }
                once(&mut p.response_topic, t, pid)?
            }
            id::CORRELATION_DATA => once(&mut p.correlation_data, r.binary()?, pid)?,
            id::SUBSCRIPTION_IDENTIFIER => {
                let v = r.varint()?;
                if v == 0 {
                    return Err(DecodeError::InvalidPropertyValue { id: pid });
                }
                // Several in a PUBLISH to a client (one per matching
                // subscription); at most one in a SUBSCRIBE.
                if ctx != Context::Publish && !p.subscription_identifiers.is_empty() {
                    return Err(DecodeError::DuplicateProperty { id: pid });
                }
                p.subscription_identifiers.push(v);
            }
            id::SESSION_EXPIRY_INTERVAL => once(&mut p.session_expiry_interval, r.u32()?, pid)?,
            id::ASSIGNED_CLIENT_IDENTIFIER => {
                once(&mut p.assigned_client_identifier, r.string()?, pid)?
            }
            id::SERVER_KEEP_ALIVE => once(&mut p.server_keep_alive, r.u16()?, pid)?,
            id::AUTHENTICATION_METHOD => once(&mut p.authentication_method, r.string()?, pid)?,
            id::AUTHENTICATION_DATA => once(&mut p.authentication_data, r.binary()?, pid)?,
            id::REQUEST_PROBLEM_INFORMATION => {
                let v = bool_byte(&mut r, pid)?;
                once(&mut p.request_problem_information, v, pid)?
            }
            id::WILL_DELAY_INTERVAL => once(&mut p.will_delay_interval, r.u32()?, pid)?,
            id::REQUEST_RESPONSE_INFORMATION => {
                let v = bool_byte(&mut r, pid)?;
                once(&mut p.request_response_information, v, pid)?
            }
            id::RESPONSE_INFORMATION => once(&mut p.response_information, r.string()?, pid)?,
            id::SERVER_REFERENCE => once(&mut p.server_reference, r.string()?, pid)?,
            id::REASON_STRING => once(&mut p.reason_string, r.string()?, pid)?,
            id::RECEIVE_MAXIMUM => {
                let v = nonzero_u16(&mut r, pid)?;
                once(&mut p.receive_maximum, v, pid)?
            }
            id::TOPIC_ALIAS_MAXIMUM => once(&mut p.topic_alias_maximum, r.u16()?, pid)?,
            id::TOPIC_ALIAS => {
                let v = nonzero_u16(&mut r, pid)?;
                once(&mut p.topic_alias, v, pid)?
            }
            id::MAXIMUM_QOS => {
                let v = bool_byte(&mut r, pid)?;
                once(&mut p.maximum_qos, v, pid)?
            }
            id::RETAIN_AVAILABLE => {
                let v = bool_byte(&mut r, pid)?;
                once(&mut p.retain_available, v, pid)?
            }
            id::USER_PROPERTY => {
                let k = r.string()?;
                let v = r.string()?;
                p.user_properties.push((k, v));
            }
            id::MAXIMUM_PACKET_SIZE => match r.u32()? {
                0 => return Err(DecodeError::InvalidPropertyValue { id: pid }),
                v => once(&mut p.maximum_packet_size, v, pid)?,
            },
            id::WILDCARD_SUBSCRIPTION_AVAILABLE => {
                let v = bool_byte(&mut r, pid)?;
                once(&mut p.wildcard_subscription_available, v, pid)?
            }
            id::SUBSCRIPTION_IDENTIFIER_AVAILABLE => {
                let v = bool_byte(&mut r, pid)?;
                once(&mut p.subscription_identifier_available, v, pid)?
            }
            id::SHARED_SUBSCRIPTION_AVAILABLE => {
                let v = bool_byte(&mut r, pid)?;
                once(&mut p.shared_subscription_available, v, pid)?
            }
            _ => return Err(DecodeError::InvalidProperty { id: pid }),
        }
    }
    Ok(Some(Box::new(p)))
}

fn str_len(s: &Option<ByteString>) -> usize {
    s.as_ref().map_or(0, |s| 1 + field_len(s.as_bytes()))
}

/// Length of the properties themselves, without the length prefix.
pub fn inner_len(p: &Properties) -> usize {
    let byte = |v: &Option<u8>| v.map_or(0, |_| 2);
    let short = |v: &Option<u16>| v.map_or(0, |_| 3);
    let int = |v: &Option<u32>| v.map_or(0, |_| 5);
    let bin = |v: &Option<bytes::Bytes>| v.as_ref().map_or(0, |b| 1 + field_len(b));
    byte(&p.payload_format_indicator)
        + int(&p.message_expiry_interval)
        + str_len(&p.content_type)
        + str_len(&p.response_topic)
        + bin(&p.correlation_data)
        + p.subscription_identifiers
            .iter()
            .map(|&v| 1 + varint::len(v as usize))
            .sum::<usize>()
        + int(&p.session_expiry_interval)
        + str_len(&p.assigned_client_identifier)
        + short(&p.server_keep_alive)
        + str_len(&p.authentication_method)
        + bin(&p.authentication_data)
        + byte(&p.request_problem_information)
        + int(&p.will_delay_interval)
        + byte(&p.request_response_information)
        + str_len(&p.response_information)
        + str_len(&p.server_reference)
        + str_len(&p.reason_string)
        + short(&p.receive_maximum)
        + short(&p.topic_alias_maximum)
        + short(&p.topic_alias)
        + byte(&p.maximum_qos)
        + byte(&p.retain_available)
        + p.user_properties
            .iter()
            .map(|(k, v)| 1 + field_len(k.as_bytes()) + field_len(v.as_bytes()))
            .sum::<usize>()
        + int(&p.maximum_packet_size)
        + byte(&p.wildcard_subscription_available)
        + byte(&p.subscription_identifier_available)
        + byte(&p.shared_subscription_available)
}

/// Wire size of the whole block, length prefix included.
pub fn block_len(p: Option<&Properties>) -> usize {
    let n = p.map_or(0, inner_len);
    varint::len(n) + n
}

/// Writes the whole block (length prefix included); `None` is `00`.
pub fn write_block(out: &mut BytesMut, p: Option<&Properties>) {
    let Some(p) = p else {
        out.put_u8(0);
        return;
    };
    varint::write(out, inner_len(p));
    let byte = |out: &mut BytesMut, pid: u8, v: Option<u8>| {
        if let Some(v) = v {
            out.put_u8(pid);
            out.put_u8(v);
        }
    };
    let short = |out: &mut BytesMut, pid: u8, v: Option<u16>| {
        if let Some(v) = v {
            out.put_u8(pid);
            out.put_u16(v);
        }
    };
    let int = |out: &mut BytesMut, pid: u8, v: Option<u32>| {
        if let Some(v) = v {
            out.put_u8(pid);
            out.put_u32(v);
        }
    };
    let string = |out: &mut BytesMut, pid: u8, v: &Option<ByteString>| {
        if let Some(v) = v {
            out.put_u8(pid);
            write_string(out, v);
        }
    };
    let bin = |out: &mut BytesMut, pid: u8, v: &Option<bytes::Bytes>| {
        if let Some(v) = v {
            out.put_u8(pid);
            write_binary(out, v);
        }
    };
    byte(
        out,
        id::PAYLOAD_FORMAT_INDICATOR,
        p.payload_format_indicator,
    );
    int(out, id::MESSAGE_EXPIRY_INTERVAL, p.message_expiry_interval);
    string(out, id::CONTENT_TYPE, &p.content_type);
    string(out, id::RESPONSE_TOPIC, &p.response_topic);
    bin(out, id::CORRELATION_DATA, &p.correlation_data);
    for &v in &p.subscription_identifiers {
        out.put_u8(id::SUBSCRIPTION_IDENTIFIER);
        varint::write(out, v as usize);
    }
    int(out, id::SESSION_EXPIRY_INTERVAL, p.session_expiry_interval);
    string(
        out,
        id::ASSIGNED_CLIENT_IDENTIFIER,
        &p.assigned_client_identifier,
    );
    short(out, id::SERVER_KEEP_ALIVE, p.server_keep_alive);
    string(out, id::AUTHENTICATION_METHOD, &p.authentication_method);
    bin(out, id::AUTHENTICATION_DATA, &p.authentication_data);
    byte(
        out,
        id::REQUEST_PROBLEM_INFORMATION,
        p.request_problem_information,
    );
    int(out, id::WILL_DELAY_INTERVAL, p.will_delay_interval);
    byte(
        out,
        id::REQUEST_RESPONSE_INFORMATION,
        p.request_response_information,
    );
    string(out, id::RESPONSE_INFORMATION, &p.response_information);
    string(out, id::SERVER_REFERENCE, &p.server_reference);
    string(out, id::REASON_STRING, &p.reason_string);
    short(out, id::RECEIVE_MAXIMUM, p.receive_maximum);
    short(out, id::TOPIC_ALIAS_MAXIMUM, p.topic_alias_maximum);
    short(out, id::TOPIC_ALIAS, p.topic_alias);
    byte(out, id::MAXIMUM_QOS, p.maximum_qos);
    byte(out, id::RETAIN_AVAILABLE, p.retain_available);
    for (k, v) in &p.user_properties {
        out.put_u8(id::USER_PROPERTY);
        write_string(out, k);
        write_string(out, v);
    }
    int(out, id::MAXIMUM_PACKET_SIZE, p.maximum_packet_size);
    byte(
        out,
        id::WILDCARD_SUBSCRIPTION_AVAILABLE,
        p.wildcard_subscription_available,
    );
    byte(
        out,
        id::SUBSCRIPTION_IDENTIFIER_AVAILABLE,
        p.subscription_identifier_available,
    );
    byte(
        out,
        id::SHARED_SUBSCRIPTION_AVAILABLE,
        p.shared_subscription_available,
    );
}

/// True when `p` would encode as an empty block (lets the encoder use the
/// short forms of acks, DISCONNECT and AUTH).
pub fn is_empty(p: Option<&Properties>) -> bool {
    p.is_none_or(|p| inner_len(p) == 0)
}

#[cfg(test)]
#[path = "properties_tests.rs"]
mod tests;
