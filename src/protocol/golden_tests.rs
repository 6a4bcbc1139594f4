//! Golden byte vectors, written by hand from the 3.1.1 and 5.0 specs, for
//! every packet kind: each decodes to the expected value, encodes back to
//! the same bytes, and yields `Ok(None)` at every split point.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;

use super::*;

const V3: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const MAX: usize = 1 << 20;

fn s(v: &'static str) -> ByteString {
    ByteString::from_static(v)
}

fn b(v: &'static [u8]) -> Bytes {
    Bytes::from_static(v)
}

fn props(p: Properties) -> Props {
    Some(Box::new(p))
}

/// Decode → value, encode → same bytes, partial input → `Ok(None)`,
/// back-to-back framing, and the size limit at exactly the packet size.
fn golden(version: ProtocolVersion, wire: &[u8], expected: Packet) {
    let mut buf = BytesMut::from(wire);
    assert_eq!(decode(&mut buf, version, MAX), Ok(Some(expected.clone())));
    assert!(buf.is_empty());

    let mut out = BytesMut::new();
    encode(&expected, version, &mut out);
    assert_eq!(&out[..], wire, "encoding of {expected:?}");

    for i in 0..wire.len() {
        let mut buf = BytesMut::from(&wire[..i]);
        assert_eq!(decode(&mut buf, version, MAX), Ok(None), "split at {i}");
        assert_eq!(&buf[..], &wire[..i]);
    }

    let mut buf = BytesMut::from(wire);
    buf.extend_from_slice(wire);
    buf.extend_from_slice(&wire[..1]);
    for _ in 0..2 {
        assert_eq!(
            decode(&mut buf, version, wire.len()),
            Ok(Some(expected.clone()))
        );
    }
    assert_eq!(decode(&mut buf, version, wire.len()), Ok(None));
    assert_eq!(buf.len(), 1);

    assert_eq!(
        decode(&mut BytesMut::from(wire), version, wire.len() - 1),
        Err(DecodeError::PacketTooLarge {
            size: wire.len(),
            max: wire.len() - 1
        })
    );
}

/// Decode only: non-canonical forms that re-encode shorter.
fn decodes_to(version: ProtocolVersion, wire: &[u8], expected: Packet) {
    let mut buf = BytesMut::from(wire);
    assert_eq!(decode(&mut buf, version, MAX), Ok(Some(expected)));
    assert!(buf.is_empty());
}

fn connect(protocol: ProtocolVersion, client_id: &'static str) -> Connect {
    Connect {
        protocol,
        clean_start: true,
        keep_alive: 60,
        client_id: s(client_id),
        will: None,
        username: None,
        password: None,
        properties: None,
    }
}

fn publish(qos: QoS, topic: &'static str, packet_id: u16, payload: &'static [u8]) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: s(topic),
        packet_id,
        payload: b(payload),
        properties: None,
    }
}

fn ack(packet_id: u16, reason: u8) -> Ack {
    Ack {
        packet_id,
        reason,
        properties: None,
    }
}

fn opts(qos: QoS) -> SubscriptionOptions {
    SubscriptionOptions {
        qos,
        no_local: false,
        retain_as_published: false,
        retain_handling: 0,
    }
}

#[test]
fn v311_connect() {
    let c = connect(V3, "test");
    golden(
        V3,
        b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test",
        Packet::Connect(Box::new(c)),
    );
}

#[test]
fn v311_connect_with_will_username_password() {
    let mut c = connect(V3, "c");
    c.will = Some(Will {
        topic: s("w"),
        payload: b(b"bye"),
        qos: QoS::AtLeastOnce,
        retain: true,
        properties: None,
    });
    c.username = Some(s("u"));
    c.password = Some(b(b"p"));
    golden(
        V3,
        b"\x10\x1b\x00\x04MQTT\x04\xee\x00\x3c\x00\x01c\x00\x01w\x00\x03bye\x00\x01u\x00\x01p",
        Packet::Connect(Box::new(c)),
    );
}

#[test]
fn v31_connect_mqisdp() {
    let c = connect(ProtocolVersion::V31, "c");
    golden(
        V3,
        b"\x10\x0f\x00\x06MQIsdp\x03\x02\x00\x3c\x00\x01c",
        Packet::Connect(Box::new(c)),
    );
}

#[test]
fn v311_connack() {
    let ca = |session_present, code| {
        Packet::ConnAck(ConnAck {
            session_present,
            code,
            properties: None,
        })
    };
    golden(
        V3,
        b"\x20\x02\x01\x00",
        ca(true, reason::connack_v3::ACCEPTED),
    );
    golden(
        V3,
        b"\x20\x02\x00\x05",
        ca(false, reason::connack_v3::NOT_AUTHORIZED),
    );
}

#[test]
fn v311_publish() {
    let p0 = publish(QoS::AtMostOnce, "a/b", 0, b"hello");
    golden(V3, b"\x30\x0a\x00\x03a/bhello", Packet::Publish(p0));
    let mut p1 = publish(QoS::AtLeastOnce, "a/b", 10, b"hi");
    p1.dup = true;
    p1.retain = true;
    golden(V3, b"\x3b\x09\x00\x03a/b\x00\x0ahi", Packet::Publish(p1));
    let p2 = publish(QoS::ExactlyOnce, "a", 0x1234, b"x");
    golden(V3, b"\x34\x06\x00\x01a\x12\x34x", Packet::Publish(p2));
    let empty = publish(QoS::AtMostOnce, "a", 0, b"");
    golden(V3, b"\x30\x03\x00\x01a", Packet::Publish(empty));
}

#[test]
fn v311_acks() {
    golden(V3, b"\x40\x02\x00\x01", Packet::PubAck(ack(1, 0)));
    golden(V3, b"\x50\x02\x00\x02", Packet::PubRec(ack(2, 0)));
    golden(V3, b"\x62\x02\x00\x03", Packet::PubRel(ack(3, 0)));
    golden(V3, b"\x70\x02\xff\xff", Packet::PubComp(ack(0xFFFF, 0)));
}

#[test]
fn v311_subscribe_suback() {
    let sub = Subscribe {
        packet_id: 10,
        filters: vec![
            SubscriptionRequest {
                filter: s("a/b"),
                options: opts(QoS::AtLeastOnce),
            },
            SubscriptionRequest {
                filter: s("#"),
                options: opts(QoS::ExactlyOnce),
            },
        ],
        properties: None,
    };
    golden(
        V3,
        b"\x82\x0c\x00\x0a\x00\x03a/b\x01\x00\x01#\x02",
        Packet::Subscribe(sub),
    );
    let ack = SubAck {
        packet_id: 10,
        codes: vec![1, 2, 0x80],
        properties: None,
    };
    golden(V3, b"\x90\x05\x00\x0a\x01\x02\x80", Packet::SubAck(ack));
}

#[test]
fn v311_unsubscribe_unsuback() {
    let un = Unsubscribe {
        packet_id: 11,
        filters: vec![s("a/b"), s("+")],
        properties: None,
    };
    golden(
        V3,
        b"\xa2\x0a\x00\x0b\x00\x03a/b\x00\x01+",
        Packet::Unsubscribe(un),
    );
    let ack = UnsubAck {
        packet_id: 11,
        codes: vec![],
        properties: None,
    };
    golden(V3, b"\xb0\x02\x00\x0b", Packet::UnsubAck(ack));
}

#[test]
fn v311_ping_disconnect() {
    golden(V3, b"\xc0\x00", Packet::PingReq);
    golden(V3, b"\xd0\x00", Packet::PingResp);
    let d = Disconnect {
        reason: 0,
        properties: None,
    };
    golden(V3, b"\xe0\x00", Packet::Disconnect(d));
}

#[test]
fn v5_connect_with_properties() {
    let mut c = connect(V5, "c");
    c.properties = props(Properties {
        session_expiry_interval: Some(10),
        receive_maximum: Some(20),
        ..Properties::default()
    });
    let wire = b"\x10\x16\x00\x04MQTT\x05\x02\x00\x3c\x08\x11\x00\x00\x00\x0a\x21\x00\x14\x00\x01c";
    golden(V5, wire, Packet::Connect(Box::new(c.clone())));
    // CONNECT is self-describing: the connection's version does not matter.
    decodes_to(V3, wire, Packet::Connect(Box::new(c)));
}

#[test]
fn v5_connect_with_will_properties() {
    let mut c = connect(V5, "c");
    c.will = Some(Will {
        topic: s("w"),
        payload: b(b"hi"),
        qos: QoS::AtMostOnce,
        retain: false,
        properties: props(Properties {
            will_delay_interval: Some(5),
            ..Properties::default()
        }),
    });
    c.username = Some(s("u"));
    c.password = Some(b(b"p"));
    golden(
        V5,
        b"\x10\x21\x00\x04MQTT\x05\xc6\x00\x3c\x00\x00\x01c\x05\x18\x00\x00\x00\x05\x00\x01w\x00\x02hi\x00\x01u\x00\x01p",
        Packet::Connect(Box::new(c)),
    );
}

#[test]
fn v5_connect_password_without_username_is_allowed() {
    let mut c = connect(V5, "");
    c.keep_alive = 0;
    c.clean_start = false;
    c.password = Some(b(b"p"));
    golden(
        V5,
        b"\x10\x10\x00\x04MQTT\x05\x40\x00\x00\x00\x00\x00\x00\x01p",
        Packet::Connect(Box::new(c)),
    );
}

#[test]
fn v5_connack() {
    let plain = ConnAck {
        session_present: false,
        code: 0,
        properties: None,
    };
    golden(V5, b"\x20\x03\x00\x00\x00", Packet::ConnAck(plain));
    let rich = ConnAck {
        session_present: true,
        code: 0,
        properties: props(Properties {
            assigned_client_identifier: Some(s("x")),
            maximum_qos: Some(1),
            retain_available: Some(0),
            ..Properties::default()
        }),
    };
    golden(
        V5,
        b"\x20\x0b\x01\x00\x08\x12\x00\x01x\x24\x01\x25\x00",
        Packet::ConnAck(rich),
    );
}

#[test]
fn v5_publish() {
    let p0 = publish(QoS::AtMostOnce, "a/b", 0, b"hello");
    golden(V5, b"\x30\x0b\x00\x03a/b\x00hello", Packet::Publish(p0));
    let mut p1 = publish(QoS::AtLeastOnce, "a/b", 1, b"x");
    p1.properties = props(Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(60),
        subscription_identifiers: vec![7],
        topic_alias: Some(5),
        user_properties: vec![(s("k"), s("v"))],
        ..Properties::default()
    });
    golden(
        V5,
        b"\x32\x1c\x00\x03a/b\x00\x01\x13\x01\x01\x02\x00\x00\x00\x3c\x0b\x07\x23\x00\x05\x26\x00\x01k\x00\x01vx",
        Packet::Publish(p1),
    );
    let mut aliased = publish(QoS::AtMostOnce, "", 0, b"x");
    aliased.properties = props(Properties {
        topic_alias: Some(1),
        ..Properties::default()
    });
    golden(
        V5,
        b"\x30\x07\x00\x00\x03\x23\x00\x01x",
        Packet::Publish(aliased),
    );
}

#[test]
fn v5_acks_short_and_long_forms() {
    golden(V5, b"\x40\x02\x00\x01", Packet::PubAck(ack(1, 0)));
    golden(V5, b"\x40\x03\x00\x01\x10", Packet::PubAck(ack(1, 0x10)));
    let mut with_props = ack(1, 0x80);
    with_props.properties = props(Properties {
        reason_string: Some(s("err")),
        ..Properties::default()
    });
    golden(
        V5,
        b"\x40\x0a\x00\x01\x80\x06\x1f\x00\x03err",
        Packet::PubAck(with_props),
    );
    golden(V5, b"\x50\x03\x00\x02\x90", Packet::PubRec(ack(2, 0x90)));
    golden(V5, b"\x62\x03\x00\x03\x92", Packet::PubRel(ack(3, 0x92)));
    golden(V5, b"\x70\x02\x00\x04", Packet::PubComp(ack(4, 0)));
    // Explicit defaults decode the same as the short form.
    decodes_to(V5, b"\x40\x03\x00\x01\x00", Packet::PubAck(ack(1, 0)));
    decodes_to(V5, b"\x40\x04\x00\x01\x00\x00", Packet::PubAck(ack(1, 0)));
}

#[test]
fn v5_subscribe_suback() {
    let sub = Subscribe {
        packet_id: 10,
        filters: vec![SubscriptionRequest {
            filter: s("a/b"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: 2,
            },
        }],
        properties: props(Properties {
            subscription_identifiers: vec![5],
            ..Properties::default()
        }),
    };
    golden(
        V5,
        b"\x82\x0b\x00\x0a\x02\x0b\x05\x00\x03a/b\x2d",
        Packet::Subscribe(sub),
    );
    let ack = SubAck {
        packet_id: 10,
        codes: vec![1, reason::v5::TOPIC_FILTER_INVALID],
        properties: None,
    };
    golden(V5, b"\x90\x05\x00\x0a\x00\x01\x8f", Packet::SubAck(ack));
}

#[test]
fn v5_unsubscribe_unsuback() {
    let un = Unsubscribe {
        packet_id: 11,
        filters: vec![s("a/b")],
        properties: None,
    };
    golden(
        V5,
        b"\xa2\x08\x00\x0b\x00\x00\x03a/b",
        Packet::Unsubscribe(un),
    );
    let ack = UnsubAck {
        packet_id: 11,
        codes: vec![0, reason::v5::NO_SUBSCRIPTION_EXISTED],
        properties: None,
    };
    golden(V5, b"\xb0\x05\x00\x0b\x00\x00\x11", Packet::UnsubAck(ack));
}

#[test]
fn v5_ping_disconnect_auth() {
    golden(V5, b"\xc0\x00", Packet::PingReq);
    golden(V5, b"\xd0\x00", Packet::PingResp);
    let d = |reason, properties| Packet::Disconnect(Disconnect { reason, properties });
    golden(V5, b"\xe0\x00", d(0, None));
    golden(V5, b"\xe0\x01\x04", d(4, None));
    let expiry = props(Properties {
        session_expiry_interval: Some(0),
        ..Properties::default()
    });
    golden(V5, b"\xe0\x07\x8e\x05\x11\x00\x00\x00\x00", d(0x8E, expiry));
    decodes_to(V5, b"\xe0\x02\x00\x00", d(0, None));
    let auth = |reason, properties| Packet::Auth(Auth { reason, properties });
    golden(V5, b"\xf0\x00", auth(0, None));
    let method = props(Properties {
        authentication_method: Some(s("abc")),
        authentication_data: Some(b(b"\x01\x02")),
        ..Properties::default()
    });
    golden(
        V5,
        b"\xf0\x0d\x18\x0b\x15\x00\x03abc\x16\x00\x02\x01\x02",
        auth(0x18, method),
    );
}

#[test]
fn decoded_fields_are_slices_of_the_read_buffer() {
    let mut buf = BytesMut::from(&b"\x30\x0a\x00\x03a/bhello"[..]);
    let start = buf.as_ptr() as usize;
    let Ok(Some(Packet::Publish(p))) = decode(&mut buf, V3, MAX) else {
        panic!("not a publish");
    };
    assert_eq!(p.topic.as_bytes().as_ptr() as usize, start + 4);
    assert_eq!(p.payload.as_ptr() as usize, start + 7);
}

#[test]
fn encode_publish_ignores_v5_fields_in_v311() {
    let p = Properties {
        topic_alias: Some(3),
        ..Properties::default()
    };
    let mut out = BytesMut::new();
    encode_publish(
        &mut out,
        V3,
        false,
        QoS::AtMostOnce,
        false,
        "a/b",
        99,
        b"hello",
        Some(&p),
    );
    assert_eq!(&out[..], b"\x30\x0a\x00\x03a/bhello");
}

#[test]
fn large_publish_uses_multi_byte_remaining_length() {
    let payload = vec![7u8; 200];
    let mut out = BytesMut::new();
    encode_publish(
        &mut out,
        V3,
        false,
        QoS::AtLeastOnce,
        true,
        "t",
        1,
        &payload,
        None,
    );
    // 3 (topic) + 2 (id) + 200 = 205 = 0xCD 0x01.
    assert_eq!(&out[..5], b"\x33\xcd\x01\x00\x01");
    assert_eq!(out.len(), 3 + 205);
    let Ok(Some(Packet::Publish(p))) = decode(&mut out, V3, MAX) else {
        panic!("not a publish");
    };
    assert_eq!(p.payload.len(), 200);
}
