//! Property block decoding rules and encoding round trips.

use super::*;
use bytes::Bytes;

fn dec(raw: &'static [u8], ctx: Context) -> Result<Props, DecodeError> {
    let b = Bytes::from_static(raw);
    let mut r = Reader::new(&b, 0);
    let p = decode(&mut r, ctx)?;
    r.finish()?;
    Ok(p)
}

#[test]
fn empty_block_is_none() {
    assert_eq!(dec(b"\x00", Context::Publish), Ok(None));
}

#[test]
fn every_property_round_trips() {
    let s = |v: &'static str| Some(ByteString::from_static(v));
    let p = Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(7),
        content_type: s("t"),
        response_topic: s("r/t"),
        correlation_data: Some(Bytes::from_static(b"\x01")),
        subscription_identifiers: vec![1, 268_435_455],
        session_expiry_interval: Some(9),
        assigned_client_identifier: s("id"),
        server_keep_alive: Some(30),
        authentication_method: s("m"),
        authentication_data: Some(Bytes::from_static(b"d")),
        request_problem_information: Some(0),
        will_delay_interval: Some(3),
        request_response_information: Some(1),
        response_information: s("ri"),
        server_reference: s("sr"),
        reason_string: s("why"),
        receive_maximum: Some(10),
        topic_alias_maximum: Some(0),
        topic_alias: Some(4),
        maximum_qos: Some(1),
        retain_available: Some(0),
        user_properties: vec![(ByteString::from_static("k"), ByteString::from_static("v"))],
        maximum_packet_size: Some(1024),
        wildcard_subscription_available: Some(1),
        subscription_identifier_available: Some(1),
        shared_subscription_available: Some(0),
    };
    let mut out = BytesMut::new();
    write_block(&mut out, Some(&p));
    assert_eq!(out.len(), block_len(Some(&p)));
    // No packet kind allows all of them: a PUBLISH refuses the first
    // non-PUBLISH id, then the two richest kinds round-trip their own.
    let b = out.freeze();
    let mut r = Reader::new(&b, 0);
    assert!(matches!(
        decode(&mut r, Context::Publish),
        Err(DecodeError::InvalidProperty { id: 0x11 })
    ));
    let pubp = Properties {
        payload_format_indicator: Some(1),
        message_expiry_interval: Some(7),
        content_type: s("t"),
        response_topic: s("r/t"),
        correlation_data: Some(Bytes::from_static(b"\x01")),
        subscription_identifiers: vec![1, 268_435_455],
        topic_alias: Some(4),
        user_properties: p.user_properties.clone(),
        ..Properties::default()
    };
    let mut out = BytesMut::new();
    write_block(&mut out, Some(&pubp));
    let b = out.freeze();
    let mut r = Reader::new(&b, 0);
    assert_eq!(decode(&mut r, Context::Publish), Ok(Some(Box::new(pubp))));
    let ca = Properties {
        session_expiry_interval: Some(9),
        assigned_client_identifier: s("id"),
        server_keep_alive: Some(30),
        authentication_method: s("m"),
        authentication_data: Some(Bytes::from_static(b"d")),
        response_information: s("ri"),
        server_reference: s("sr"),
        reason_string: s("why"),
        receive_maximum: Some(10),
        topic_alias_maximum: Some(0),
        maximum_qos: Some(1),
        retain_available: Some(0),
        maximum_packet_size: Some(1024),
        wildcard_subscription_available: Some(1),
        subscription_identifier_available: Some(1),
        shared_subscription_available: Some(0),
        ..Properties::default()
    };
    let mut out = BytesMut::new();
    write_block(&mut out, Some(&ca));
    let b = out.freeze();
    let mut r = Reader::new(&b, 0);
    assert_eq!(decode(&mut r, Context::ConnAck), Ok(Some(Box::new(ca))));
}

#[test]
fn user_property_may_repeat() {
    let p = dec(
        b"\x0d\x26\x00\x01k\x00\x01v\x26\x00\x01k\x00\x00",
        Context::Unsubscribe,
    )
    .unwrap()
    .unwrap();
    assert_eq!(p.user_properties.len(), 2);
}

#[test]
fn duplicates_are_protocol_errors() {
    assert_eq!(
        dec(b"\x04\x01\x00\x01\x01", Context::Publish),
        Err(DecodeError::DuplicateProperty { id: 0x01 })
    );
    assert_eq!(
        dec(b"\x04\x0b\x01\x0b\x02", Context::Subscribe),
        Err(DecodeError::DuplicateProperty { id: 0x0b })
    );
    // Several subscription identifiers in a PUBLISH to a client.
    let p = dec(b"\x04\x0b\x01\x0b\x02", Context::Publish)
        .unwrap()
        .unwrap();
    assert_eq!(p.subscription_identifiers, [1, 2]);
}

#[test]
fn misplaced_or_unknown_ids_are_malformed() {
    assert_eq!(
        dec(b"\x05\x11\x00\x00\x00\x01", Context::Publish),
        Err(DecodeError::InvalidProperty { id: 0x11 })
    );
    assert_eq!(
        dec(b"\x02\x0b\x01", Context::Unsubscribe),
        Err(DecodeError::InvalidProperty { id: 0x0b })
    );
    assert_eq!(
        dec(b"\x02\x7f\x01", Context::Connect),
        Err(DecodeError::InvalidProperty { id: 0x7f })
    );
}

#[test]
fn values_are_range_checked() {
    let bad = |raw: &'static [u8], ctx, pid| {
        assert_eq!(
            dec(raw, ctx),
            Err(DecodeError::InvalidPropertyValue { id: pid })
        );
    };
    bad(b"\x02\x0b\x00", Context::Subscribe, 0x0b);
    bad(b"\x03\x21\x00\x00", Context::Connect, 0x21);
    bad(b"\x05\x27\x00\x00\x00\x00", Context::Connect, 0x27);
    bad(b"\x03\x23\x00\x00", Context::Publish, 0x23);
    bad(b"\x02\x24\x02", Context::ConnAck, 0x24);
    bad(b"\x02\x01\x02", Context::Publish, 0x01);
    bad(b"\x02\x17\x02", Context::Connect, 0x17);
    bad(b"\x06\x08\x00\x03a/#", Context::Publish, 0x08);
}

#[test]
fn overrunning_block_is_malformed() {
    assert!(matches!(
        dec(b"\x05\x01\x00", Context::Publish),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(
        dec(b"\x02\x02\x00", Context::Publish),
        Err(DecodeError::Malformed(_))
    ));
    assert!(matches!(
        dec(b"\x02\x0b\x80", Context::Publish),
        Err(DecodeError::Malformed(_))
    ));
}
