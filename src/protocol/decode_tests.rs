//! One test per way a packet can be refused, named after the spec
//! statement it enforces where there is one.

use bytes::BytesMut;

use super::*;

const V3: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;
const MAX: usize = 1 << 20;

fn err(version: ProtocolVersion, wire: &[u8]) -> DecodeError {
    match decode(&mut BytesMut::from(wire), version, MAX) {
        Err(e) => e,
        Ok(p) => panic!("{wire:02x?} decoded as {p:?}"),
    }
}

fn malformed(version: ProtocolVersion, wire: &[u8]) {
    assert!(
        matches!(err(version, wire), DecodeError::Malformed(_)),
        "{wire:02x?}"
    );
}

#[test]
fn oversized_remaining_length_rejected_with_only_fixed_header() {
    // 65 536 bytes of body announced, nothing of it sent.
    let mut buf = BytesMut::from(&b"\x30\x80\x80\x04"[..]);
    assert_eq!(
        decode(&mut buf, V3, 64 * 1024),
        Err(DecodeError::PacketTooLarge {
            size: 65_540,
            max: 65_536
        })
    );
    assert_eq!(
        err(V5, b"\x30\xff\xff\xff\x7f"),
        DecodeError::PacketTooLarge {
            size: 5 + 268_435_455,
            max: MAX
        }
    );
}

#[test]
fn mqtt_1_5_5_remaining_length_over_4_bytes() {
    assert_eq!(
        err(V3, b"\x30\xff\xff\xff\xff"),
        DecodeError::MalformedRemainingLength
    );
    assert_eq!(
        err(V3, b"\x30\x80\x80\x80\x80\x01"),
        DecodeError::MalformedRemainingLength
    );
    // Three continuation bytes: still possibly valid, wait for more.
    assert_eq!(
        decode(&mut BytesMut::from(&b"\x30\xff\xff\xff"[..]), V3, MAX),
        Ok(None)
    );
}

#[test]
fn invalid_packet_types() {
    assert_eq!(err(V3, b"\x00\x00"), DecodeError::InvalidPacketType(0));
    assert_eq!(err(V5, b"\x00"), DecodeError::InvalidPacketType(0));
    // AUTH does not exist before 5.0.
    assert_eq!(err(V3, b"\xf0\x00"), DecodeError::InvalidPacketType(15));
    assert_eq!(
        err(ProtocolVersion::V31, b"\xf0\x00"),
        DecodeError::InvalidPacketType(15)
    );
}

#[test]
fn mqtt_2_2_2_2_rejects_bad_fixed_header_flags() {
    let bad = |wire: &[u8], packet_type, flags| {
        assert_eq!(
            err(V3, wire),
            DecodeError::InvalidFixedHeaderFlags { packet_type, flags }
        );
    };
    // Judged from the first byte alone.
    bad(b"\x60", 6, 0);
    bad(b"\x60\x02\x00\x01", 6, 0);
    bad(b"\x80\x06\x00\x01\x00\x01a\x00", 8, 0);
    bad(b"\xa0\x05\x00\x01\x00\x01a", 10, 0);
    bad(b"\x42\x02\x00\x01", 4, 2);
    bad(b"\x11\x00", 1, 1);
    bad(b"\xc1\x00", 12, 1);
    bad(b"\xe8\x00", 14, 8);
}

#[test]
fn mqtt_3_3_1_2_rejects_dup_on_qos_0() {
    assert_eq!(
        err(V3, b"\x38\x03\x00\x01a"),
        DecodeError::InvalidFixedHeaderFlags {
            packet_type: 3,
            flags: 8
        }
    );
}

#[test]
fn mqtt_3_3_1_4_rejects_publish_qos_3() {
    assert_eq!(
        err(V3, b"\x36\x05\x00\x01a\x00\x01"),
        DecodeError::InvalidQoS
    );
    assert_eq!(err(V5, b"\x36"), DecodeError::InvalidQoS);
}

#[test]
fn mqtt_3_1_2_1_rejects_unknown_protocol_name() {
    assert_eq!(
        err(V3, b"\x10\x0d\x00\x04MQTX\x04\x02\x00\x3c\x00\x01c"),
        DecodeError::InvalidProtocolName
    );
    assert_eq!(
        err(V3, b"\x10\x0d\x00\x04mqtt\x04\x02\x00\x3c\x00\x01c"),
        DecodeError::InvalidProtocolName
    );
}

#[test]
fn mqtt_3_1_2_2_rejects_unsupported_protocol_level() {
    assert_eq!(
        err(V3, b"\x10\x0d\x00\x04MQTT\x06\x02\x00\x3c\x00\x01c"),
        DecodeError::UnsupportedProtocolLevel(6)
    );
    assert_eq!(
        err(V3, b"\x10\x0d\x00\x04MQTT\x03\x02\x00\x3c\x00\x01c"),
        DecodeError::UnsupportedProtocolLevel(3)
    );
    assert_eq!(
        err(V3, b"\x10\x0f\x00\x06MQIsdp\x04\x02\x00\x3c\x00\x01c"),
        DecodeError::UnsupportedProtocolLevel(4)
    );
}

#[test]
fn mqtt_3_1_2_3_rejects_reserved_connect_flag() {
    assert_eq!(
        err(V3, b"\x10\x0d\x00\x04MQTT\x04\x03\x00\x3c\x00\x01c"),
        DecodeError::InvalidConnectFlags
    );
}

#[test]
fn mqtt_3_1_2_13_and_15_will_bits_need_will_flag() {
    // Will QoS 1 without the Will Flag.
    assert_eq!(
        err(V3, b"\x10\x0d\x00\x04MQTT\x04\x0a\x00\x3c\x00\x01c"),
        DecodeError::InvalidConnectFlags
    );
    // Will Retain without the Will Flag.
    assert_eq!(
        err(V5, b"\x10\x0e\x00\x04MQTT\x05\x22\x00\x3c\x00\x00\x01c"),
        DecodeError::InvalidConnectFlags
    );
}

#[test]
fn mqtt_3_1_2_14_rejects_will_qos_3() {
    assert_eq!(
        err(
            V3,
            b"\x10\x13\x00\x04MQTT\x04\x1e\x00\x3c\x00\x01c\x00\x01w\x00\x01x"
        ),
        DecodeError::InvalidQoS
    );
}

#[test]
fn mqtt_3_1_2_22_rejects_password_without_username_in_v311() {
    assert_eq!(
        err(
            V3,
            b"\x10\x10\x00\x04MQTT\x04\x42\x00\x3c\x00\x01c\x00\x01p"
        ),
        DecodeError::InvalidConnectFlags
    );
}

#[test]
fn will_topic_must_be_a_topic_name() {
    assert_eq!(
        err(
            V3,
            b"\x10\x13\x00\x04MQTT\x04\x06\x00\x3c\x00\x01c\x00\x01#\x00\x01x"
        ),
        DecodeError::InvalidTopicName
    );
}

#[test]
fn mqtt_1_5_4_2_rejects_null_char() {
    assert_eq!(
        err(V3, b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02a\x00"),
        DecodeError::InvalidUtf8
    );
    assert_eq!(err(V3, b"\x30\x05\x00\x03a\x00b"), DecodeError::InvalidUtf8);
}

#[test]
fn mqtt_1_5_4_1_rejects_ill_formed_utf8() {
    // Overlong NUL.
    assert_eq!(
        err(V3, b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x02\xc0\x80"),
        DecodeError::InvalidUtf8
    );
    // Encoded surrogate U+D800.
    assert_eq!(
        err(V3, b"\x30\x05\x00\x03\xed\xa0\x80"),
        DecodeError::InvalidUtf8
    );
    // In a SUBSCRIBE filter and a user property too.
    assert_eq!(
        err(V3, b"\x82\x06\x00\x01\x00\x01\xff\x00"),
        DecodeError::InvalidUtf8
    );
    assert_eq!(
        err(V5, b"\x40\x0a\x00\x01\x80\x06\x26\x00\x01\xff\x00\x00"),
        DecodeError::InvalidUtf8
    );
}

#[test]
fn mqtt_3_3_2_2_rejects_wildcards_in_topic_name() {
    assert_eq!(
        err(V3, b"\x30\x05\x00\x03a/+"),
        DecodeError::InvalidTopicName
    );
    assert_eq!(err(V3, b"\x30\x03\x00\x01#"), DecodeError::InvalidTopicName);
    assert_eq!(
        err(V5, b"\x30\x06\x00\x03a/#\x00"),
        DecodeError::InvalidTopicName
    );
}

#[test]
fn mqtt_4_7_3_1_rejects_empty_topic_in_v311() {
    assert_eq!(err(V3, b"\x30\x03\x00\x00x"), DecodeError::InvalidTopicName);
}

#[test]
fn v5_empty_topic_needs_a_topic_alias() {
    assert_eq!(
        err(V5, b"\x30\x04\x00\x00\x00x"),
        DecodeError::InvalidTopicName
    );
}

#[test]
fn mqtt_2_2_1_3_rejects_zero_packet_id() {
    assert_eq!(
        err(V3, b"\x32\x05\x00\x01a\x00\x00"),
        DecodeError::ZeroPacketId
    );
    assert_eq!(err(V3, b"\x40\x02\x00\x00"), DecodeError::ZeroPacketId);
    assert_eq!(err(V5, b"\x62\x02\x00\x00"), DecodeError::ZeroPacketId);
    assert_eq!(
        err(V3, b"\x82\x06\x00\x00\x00\x01a\x00"),
        DecodeError::ZeroPacketId
    );
    assert_eq!(
        err(V3, b"\xa2\x05\x00\x00\x00\x01a"),
        DecodeError::ZeroPacketId
    );
    assert_eq!(err(V3, b"\x90\x03\x00\x00\x00"), DecodeError::ZeroPacketId);
    assert_eq!(err(V3, b"\xb0\x02\x00\x00"), DecodeError::ZeroPacketId);
}

#[test]
fn mqtt_3_8_3_3_and_3_10_3_2_reject_empty_subscriptions() {
    assert_eq!(err(V3, b"\x82\x02\x00\x01"), DecodeError::EmptySubscription);
    assert_eq!(err(V3, b"\xa2\x02\x00\x01"), DecodeError::EmptySubscription);
    assert_eq!(
        err(V5, b"\x82\x03\x00\x01\x00"),
        DecodeError::EmptySubscription
    );
    assert_eq!(
        err(V5, b"\xa2\x03\x00\x01\x00"),
        DecodeError::EmptySubscription
    );
}

#[test]
fn mqtt_3_8_3_4_rejects_bad_subscription_options() {
    let bad = |v, wire: &[u8]| assert_eq!(err(v, wire), DecodeError::InvalidSubscriptionOptions);
    // 3.1.1: upper 6 bits reserved (no_local is a 5.0 bit).
    bad(V3, b"\x82\x06\x00\x01\x00\x01a\x04");
    bad(V3, b"\x82\x06\x00\x01\x00\x01a\x03");
    // 5.0: bits 6-7 reserved, retain handling 3, QoS 3.
    bad(V5, b"\x82\x07\x00\x01\x00\x00\x01a\x40");
    bad(V5, b"\x82\x07\x00\x01\x00\x00\x01a\x30");
    bad(V5, b"\x82\x07\x00\x01\x00\x00\x01a\x03");
}

#[test]
fn filters_are_not_validated_as_filters() {
    let mut buf = BytesMut::from(&b"\x82\x09\x00\x01\x00\x04a/#b\x00"[..]);
    assert!(matches!(
        decode(&mut buf, V3, MAX),
        Ok(Some(Packet::Subscribe(_)))
    ));
}

#[test]
fn properties_not_allowed_in_packet_kind() {
    // Session Expiry Interval in PUBLISH.
    assert_eq!(
        err(V5, b"\x30\x0a\x00\x01a\x05\x11\x00\x00\x00\x01x"),
        DecodeError::InvalidProperty { id: 0x11 }
    );
    // Subscription Identifier in UNSUBSCRIBE.
    assert_eq!(
        err(V5, b"\xa2\x08\x00\x01\x02\x0b\x01\x00\x01a"),
        DecodeError::InvalidProperty { id: 0x0b }
    );
    // Unknown id in CONNECT.
    assert_eq!(
        err(
            V5,
            b"\x10\x10\x00\x04MQTT\x05\x02\x00\x3c\x02\x7f\x00\x00\x01c"
        ),
        DecodeError::InvalidProperty { id: 0x7f }
    );
}

#[test]
fn duplicate_properties() {
    assert_eq!(
        err(V5, b"\x30\x09\x00\x01a\x04\x01\x00\x01\x00x"),
        DecodeError::DuplicateProperty { id: 0x01 }
    );
    assert_eq!(
        err(V5, b"\x82\x0a\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00"),
        DecodeError::DuplicateProperty { id: 0x0b }
    );
}

#[test]
fn invalid_property_values() {
    // Receive Maximum 0 in CONNECT.
    assert_eq!(
        err(
            V5,
            b"\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x03\x21\x00\x00\x00\x01c"
        ),
        DecodeError::InvalidPropertyValue { id: 0x21 }
    );
    // Topic Alias 0 in PUBLISH.
    assert_eq!(
        err(V5, b"\x30\x08\x00\x01a\x03\x23\x00\x00x"),
        DecodeError::InvalidPropertyValue { id: 0x23 }
    );
    // Maximum QoS 2 in CONNACK.
    assert_eq!(
        err(V5, b"\x20\x05\x00\x00\x02\x24\x02"),
        DecodeError::InvalidPropertyValue { id: 0x24 }
    );
}

#[test]
fn malformed_bodies() {
    // Truncated: remaining length shorter than the fields need.
    malformed(V3, b"\x40\x01\x00");
    malformed(V3, b"\x30\x02\x00\x05");
    malformed(V3, b"\x10\x05\x00\x04MQT");
    malformed(V5, b"\x40\x04\x00\x01\x00\x05");
    // Trailing bytes.
    malformed(V3, b"\xc0\x01\x00");
    malformed(V3, b"\xe0\x01\x00");
    malformed(V3, b"\x40\x03\x00\x01\x00");
    malformed(V3, b"\xb0\x03\x00\x01\x00");
    malformed(V3, b"\x20\x03\x00\x00\x00");
    malformed(V3, b"\x10\x0e\x00\x04MQTT\x04\x02\x00\x3c\x00\x01cx");
    // SUBACK / UNSUBACK without codes; reserved CONNACK flags.
    malformed(V3, b"\x90\x02\x00\x01");
    malformed(V5, b"\xb0\x03\x00\x01\x00");
    malformed(V3, b"\x20\x02\x02\x00");
    // 5.0 CONNACK must carry a property length.
    malformed(V5, b"\x20\x02\x00\x00");
    // SUBSCRIBE filter without its options byte.
    malformed(V3, b"\x82\x05\x00\x01\x00\x01a");
}

#[test]
fn every_error_maps_to_a_failure_reason_code() {
    for e in [
        err(V3, b"\x30\xff\xff\xff\xff"),
        err(V3, b"\x00\x00"),
        err(V3, b"\x60"),
        err(V3, b"\x36"),
        err(V3, b"\x40\x02\x00\x00"),
    ] {
        assert!(e.reason_code() >= 0x80, "{e:?}");
    }
}
