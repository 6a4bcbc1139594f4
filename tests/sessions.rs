//! Sessions: CONNACK codes, clean/persistent sessions, offline queueing,
//! redelivery, inbound QoS 2 exactly-once and takeover.

mod common;

use std::time::Duration;

use common::*;
use ringmq::broker::home_shard;
use ringmq::protocol::{Packet, QoS};

fn persistent() -> ConnectOpts {
    ConnectOpts {
        clean: false,
        ..ConnectOpts::default()
    }
}

/// [MQTT-3.2.2-1]: clean session 1 → session present 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_2_2_1_clean_session_gets_session_present_0() {
    let broker = Broker::start();
    let id = client_id_on(0, "clean");
    for _ in 0..2 {
        let (c, ack) = MqttClient::connect_with(broker.port(), &id, ConnectOpts::default()).await;
        assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
        assert!(!ack.session_present);
        c.disconnect().await;
    }
}

/// [MQTT-3.2.2-2/3]: a persistent session is resumed (session present 1)
/// with its subscriptions, and QoS 1/2 messages published while the client
/// was offline are delivered on reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_4_persistent_session_keeps_subscriptions_and_queues_messages() {
    let broker = Broker::start();
    let (pub_id, sub_id) = ids_on_different_shards("ppub", "psub");

    let (mut sub, ack) = MqttClient::connect_with(broker.port(), &sub_id, persistent()).await;
    assert!(
        !ack.session_present,
        "first connect must not find a session"
    );
    assert_eq!(
        sub.subscribe_many(&[("p/1", q(1)), ("p/2", q(2))]).await,
        vec![1, 2]
    );
    sub.disconnect().await;

    let mut publ = MqttClient::connect(broker.port(), &pub_id).await;
    publ.publish("p/1", q(1), false, b"offline-1").await;
    publ.publish("p/2", q(2), false, b"offline-2").await;

    let (mut sub, ack) = MqttClient::connect_with(broker.port(), &sub_id, persistent()).await;
    assert!(
        ack.session_present,
        "[MQTT-3.2.2-2] session present must be 1"
    );
    let a = sub.recv_publish().await;
    let b = sub.recv_publish().await;
    assert_eq!(
        (a.topic.as_str(), &a.payload[..]),
        ("p/1", &b"offline-1"[..])
    );
    assert_eq!(a.qos, q(1));
    assert_eq!(
        (b.topic.as_str(), &b.payload[..]),
        ("p/2", &b"offline-2"[..])
    );
    assert_eq!(b.qos, q(2));

    // Subscriptions survived without re-subscribing: live delivery works.
    publ.publish("p/1", q(1), false, b"live").await;
    let m = sub.recv_publish().await;
    assert_eq!(m.payload, &b"live"[..]);
    assert!(!m.retain);
    sub.expect_no_publish(Duration::from_millis(300)).await;
}

/// [MQTT-3.1.2-6]: connecting with clean session 1 discards the stored
/// session; the next persistent connect finds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_6_clean_session_discards_previous_session() {
    let broker = Broker::start();
    let (pub_id, sub_id) = ids_on_different_shards("dpub", "dsub");
    let (mut sub, _) = MqttClient::connect_with(broker.port(), &sub_id, persistent()).await;
    assert_eq!(sub.subscribe("d/t", q(1)).await, vec![1]);
    sub.disconnect().await;

    let (c, ack) = MqttClient::connect_with(broker.port(), &sub_id, ConnectOpts::default()).await;
    assert!(!ack.session_present);
    c.disconnect().await;

    let (mut sub, ack) = MqttClient::connect_with(broker.port(), &sub_id, persistent()).await;
    assert!(
        !ack.session_present,
        "the clean connect must have discarded it"
    );
    // ... and with it the subscription.
    let mut publ = MqttClient::connect(broker.port(), &pub_id).await;
    publ.publish("d/t", q(1), false, b"gone").await;
    sub.expect_no_publish(Duration::from_millis(700)).await;
}

/// Reconnects one persistent client many times in a row (the kernel accepts
/// it on either shard, so this exercises the hand-off to its home shard),
/// with one message queued while it is offline each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_client_reconnects_8_times_and_gets_each_queued_message() {
    let broker = Broker::start();
    let port = broker.port();
    for home in 0..SHARDS {
        let sub_id = client_id_on(home, &format!("hop{home}"));
        let pub_id = client_id_on(1 - home, &format!("hoppub{home}"));
        let topic = format!("hop/{home}");
        let (mut sub, present) = RawClient::connect(port, &sub_id, false);
        assert!(!present);
        assert_eq!(sub.subscribe(1, &[(&topic, QoS::AtLeastOnce)]), vec![1]);
        sub.disconnect();

        let mut publ = MqttClient::connect(port, &pub_id).await;
        for i in 0..8 {
            let payload = format!("queued-{i}");
            publ.publish(&topic, q(1), false, payload.as_bytes()).await;
            let (mut sub, present) = RawClient::connect(port, &sub_id, false);
            assert!(present, "iteration {i}: session present must be 1");
            let p = sub.read_publish(RECV_TIMEOUT);
            assert_eq!(
                std::str::from_utf8(&p.payload).unwrap(),
                payload,
                "iteration {i}"
            );
            assert_eq!(p.qos, QoS::AtLeastOnce);
            sub.puback(p.packet_id);
            // Nothing else queued (e.g. an earlier message again).
            sub.send(&[0xC0, 0x00]);
            match sub.read_packet(RECV_TIMEOUT) {
                Packet::PingResp => {}
                other => panic!("iteration {i}: expected PINGRESP, got {other:?}"),
            }
            sub.disconnect();
        }
    }
}

/// 4.4: an unacknowledged QoS 1 message is resent with DUP=1 (same packet
/// id) when the persistent session is resumed; once acked it is not resent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_4_0_1_unacked_qos1_resent_with_dup_on_reconnect() {
    let broker = Broker::start();
    let port = broker.port();
    let (pub_id, sub_id) = ids_on_different_shards("rpub", "rsub");
    let (mut sub, _) = RawClient::connect(port, &sub_id, false);
    assert_eq!(sub.subscribe(1, &[("r/t", QoS::AtLeastOnce)]), vec![1]);

    let mut publ = MqttClient::connect(port, &pub_id).await;
    publ.publish("r/t", q(1), false, b"unacked").await;
    let first = sub.read_publish(RECV_TIMEOUT);
    assert_eq!(&first.payload[..], b"unacked");
    assert!(!first.dup);
    // No PUBACK: drop the connection.
    drop(sub);

    let (mut sub, present) = RawClient::connect(port, &sub_id, false);
    assert!(present);
    let again = sub.read_publish(RECV_TIMEOUT);
    assert_eq!(&again.payload[..], b"unacked");
    assert!(again.dup, "[MQTT-3.3.1-1] a redelivery must have DUP=1");
    assert_eq!(again.qos, QoS::AtLeastOnce);
    assert_eq!(again.packet_id, first.packet_id, "same packet id on resend");
    sub.puback(again.packet_id);
    sub.disconnect();

    let (mut sub, present) = RawClient::connect(port, &sub_id, false);
    assert!(present);
    sub.expect_open_for(Duration::from_millis(700));
}

/// 4.3.3: a QoS 2 PUBLISH retransmitted with the same packet id before
/// PUBREL is acknowledged again but delivered only once; PUBREL gets
/// PUBCOMP, after which the id may be reused for a new message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_3_3_inbound_qos2_delivered_exactly_once() {
    let broker = Broker::start();
    let port = broker.port();
    let (pub_id, sub_id) = ids_on_different_shards("q2pub", "q2sub");
    let mut sub = MqttClient::connect(port, &sub_id).await;
    assert_eq!(sub.subscribe("q2/t", q(2)).await, vec![2]);

    let (mut publ, _) = RawClient::connect(port, &pub_id, true);
    publ.publish("q2/t", QoS::ExactlyOnce, 7, false, b"once");
    match publ.read_packet(RECV_TIMEOUT) {
        Packet::PubRec(a) => assert_eq!(a.packet_id, 7),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    publ.publish("q2/t", QoS::ExactlyOnce, 7, true, b"once");
    match publ.read_packet(RECV_TIMEOUT) {
        Packet::PubRec(a) => assert_eq!(a.packet_id, 7, "retransmission must be re-PUBRECed"),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    // PUBREL 7 → PUBCOMP 7 (exact bytes).
    publ.send(&[0x62, 0x02, 0x00, 0x07]);
    assert_eq!(
        publ.read_exact_bytes(4, RECV_TIMEOUT),
        vec![0x70, 0x02, 0x00, 0x07]
    );

    let m = sub.recv_publish().await;
    assert_eq!(&m.payload[..], b"once");
    assert_eq!(m.qos, q(2));
    sub.expect_no_publish(Duration::from_millis(700)).await;

    // The id is free again: a new message with id 7 is a new message.
    publ.publish("q2/t", QoS::ExactlyOnce, 7, false, b"twice");
    match publ.read_packet(RECV_TIMEOUT) {
        Packet::PubRec(a) => assert_eq!(a.packet_id, 7),
        other => panic!("expected PUBREC, got {other:?}"),
    }
    publ.send(&[0x62, 0x02, 0x00, 0x07]);
    assert_eq!(
        publ.read_exact_bytes(4, RECV_TIMEOUT),
        vec![0x70, 0x02, 0x00, 0x07]
    );
    assert_eq!(&sub.recv_publish().await.payload[..], b"twice");
}

/// [MQTT-3.1.4-2]: a second connection with the same client id takes over:
/// the first is closed, the second works. Done for ids homed on each shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_4_2_takeover_closes_first_connection() {
    let broker = Broker::start();
    let port = broker.port();
    for home in 0..SHARDS {
        let id = client_id_on(home, &format!("take{home}"));
        assert_eq!(home_shard(&id, SHARDS), home);
        let (mut first, _) = RawClient::connect(port, &id, true);
        assert_eq!(first.subscribe(1, &[("take/a", QoS::AtMostOnce)]), vec![0]);

        let (mut second, present) = RawClient::connect(port, &id, true);
        assert!(!present);
        first.expect_closed(Duration::from_secs(3));

        // The second connection is fully functional.
        assert_eq!(
            second.subscribe(2, &[("take/b", QoS::AtLeastOnce)]),
            vec![1]
        );
        second.publish("take/b", QoS::AtMostOnce, 0, false, b"mine");
        let p = second.read_publish(RECV_TIMEOUT);
        assert_eq!(&p.payload[..], b"mine");
        second.send(&[0xC0, 0x00]);
        assert_eq!(second.read_exact_bytes(2, RECV_TIMEOUT), vec![0xD0, 0x00]);
    }
}

/// Takeover of a persistent session keeps the session for the new
/// connection (session present 1, subscription still active).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_of_persistent_session_keeps_it() {
    let broker = Broker::start();
    let port = broker.port();
    let (pub_id, id) = ids_on_different_shards("tkpub", "tkp");
    let (mut first, _) = RawClient::connect(port, &id, false);
    assert_eq!(first.subscribe(1, &[("tk/t", QoS::AtLeastOnce)]), vec![1]);
    let (mut second, present) = RawClient::connect(port, &id, false);
    assert!(present, "the session must survive the takeover");
    first.expect_closed(Duration::from_secs(3));
    let mut publ = MqttClient::connect(port, &pub_id).await;
    publ.publish("tk/t", q(1), false, b"to-second").await;
    let p = second.read_publish(RECV_TIMEOUT);
    assert_eq!(&p.payload[..], b"to-second");
}

/// [MQTT-3.1.2-2]: unsupported protocol level → CONNACK 0x01, then close.
#[test]
fn mqtt_3_1_2_2_unsupported_protocol_level_gets_connack_0x01() {
    let broker = Broker::start();
    let mut raw = RawClient::open(broker.port());
    // CONNECT "MQTT" level 9, clean session, keepalive 60, client id "a".
    raw.send(&[
        0x10, 0x0D, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x09, 0x02, 0x00, 0x3C, 0x00, 0x01, b'a',
    ]);
    let got = raw.expect_closed(Duration::from_secs(3));
    assert_eq!(got, vec![0x20, 0x02, 0x00, 0x01]);
}

/// [MQTT-3.1.3-8]: empty client id with clean session 0 → CONNACK 0x02,
/// then close.
#[test]
fn mqtt_3_1_3_8_empty_client_id_with_clean_session_0_gets_connack_0x02() {
    let broker = Broker::start();
    let mut raw = RawClient::open(broker.port());
    raw.send(&[
        0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x00, 0x00, 0x3C, 0x00, 0x00,
    ]);
    let got = raw.expect_closed(Duration::from_secs(3));
    assert_eq!(got, vec![0x20, 0x02, 0x00, 0x02]);
}

/// [MQTT-3.1.3-6]: empty client id with clean session 1 is accepted, and
/// the connection works.
#[test]
fn mqtt_3_1_3_6_empty_client_id_with_clean_session_1_accepted() {
    let broker = Broker::start();
    for _ in 0..4 {
        let mut raw = RawClient::open(broker.port());
        raw.send(&[
            0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00,
        ]);
        assert_eq!(
            raw.read_exact_bytes(4, RECV_TIMEOUT),
            vec![0x20, 0x02, 0x00, 0x00]
        );
        assert_eq!(raw.subscribe(1, &[("anon/t", QoS::AtLeastOnce)]), vec![1]);
        raw.publish("anon/t", QoS::AtMostOnce, 0, false, b"anon");
        let p = raw.read_publish(RECV_TIMEOUT);
        assert_eq!(&p.payload[..], b"anon");
        raw.disconnect();
    }
}

/// Two anonymous clients (empty ids) are distinct sessions: neither takes
/// the other over.
#[test]
fn two_empty_client_ids_do_not_take_each_other_over() {
    let broker = Broker::start();
    let connect = [
        0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x00,
    ];
    let mut clients: Vec<RawClient> = (0..4)
        .map(|_| {
            let mut raw = RawClient::open(broker.port());
            raw.send(&connect);
            assert_eq!(
                raw.read_exact_bytes(4, RECV_TIMEOUT),
                vec![0x20, 0x02, 0x00, 0x00]
            );
            raw
        })
        .collect();
    for c in &mut clients {
        c.send(&[0xC0, 0x00]);
        assert_eq!(c.read_exact_bytes(2, RECV_TIMEOUT), vec![0xD0, 0x00]);
    }
}

/// [MQTT-4.4.0-1]: a QoS 2 message whose PUBREC was sent but whose PUBREL
/// was not completed is continued with PUBREL (not the PUBLISH again) when
/// the persistent session is resumed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_4_0_1_pubrel_resent_on_reconnect() {
    let broker = Broker::start();
    let port = broker.port();
    let (pub_id, sub_id) = ids_on_different_shards("relpub", "relsub");
    let (mut sub, _) = RawClient::connect(port, &sub_id, false);
    assert_eq!(sub.subscribe(1, &[("rel/t", QoS::ExactlyOnce)]), vec![2]);
    let mut publ = MqttClient::connect(port, &pub_id).await;
    publ.publish("rel/t", q(2), false, b"q2").await;

    let p = sub.read_publish(RECV_TIMEOUT);
    assert_eq!((p.qos, &p.payload[..]), (QoS::ExactlyOnce, &b"q2"[..]));
    let id = p.packet_id;
    sub.send_packet(&Packet::PubRec(ack(id)));
    match sub.read_packet(RECV_TIMEOUT) {
        Packet::PubRel(a) => assert_eq!(a.packet_id, id),
        other => panic!("expected PUBREL, got {other:?}"),
    }
    // No PUBCOMP: drop the connection and resume.
    drop(sub);
    let (mut sub, present) = RawClient::connect(port, &sub_id, false);
    assert!(present);
    match sub.read_packet(RECV_TIMEOUT) {
        Packet::PubRel(a) => assert_eq!(a.packet_id, id),
        other => panic!("expected the PUBREL to be resent, got {other:?}"),
    }
    sub.send_packet(&Packet::PubComp(ack(id)));
    sub.expect_open_for(Duration::from_millis(500));
}

/// Outbound QoS 2 handshake on a live connection: PUBLISH → PUBREC →
/// PUBREL (same id, exact bytes `62 02 id`) → PUBCOMP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_3_3_outbound_qos2_handshake() {
    let broker = Broker::start();
    let port = broker.port();
    let (pub_id, sub_id) = ids_on_different_shards("o2pub", "o2sub");
    let (mut sub, _) = RawClient::connect(port, &sub_id, true);
    assert_eq!(sub.subscribe(1, &[("o2/t", QoS::ExactlyOnce)]), vec![2]);
    let mut publ = MqttClient::connect(port, &pub_id).await;
    for i in 0..3u8 {
        publ.publish("o2/t", q(2), false, &[i]).await;
        let p = sub.read_publish(RECV_TIMEOUT);
        assert_eq!(
            (p.qos, &p.payload[..], p.dup),
            (QoS::ExactlyOnce, &[i][..], false)
        );
        let id = p.packet_id;
        sub.send_packet(&Packet::PubRec(ack(id)));
        let [hi, lo] = id.to_be_bytes();
        assert_eq!(
            sub.read_exact_bytes(4, RECV_TIMEOUT),
            vec![0x62, 0x02, hi, lo]
        );
        sub.send_packet(&Packet::PubComp(ack(id)));
    }
    sub.expect_open_for(Duration::from_millis(300));
}

/// Many messages queued while offline are all delivered, in order, when
/// the persistent session resumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_offline_messages_delivered_in_order() {
    let broker = Broker::start();
    let port = broker.port();
    let (pub_id, sub_id) = ids_on_different_shards("qopub", "qosub");
    let (mut sub, _) = RawClient::connect(port, &sub_id, false);
    assert_eq!(sub.subscribe(1, &[("qo/t", QoS::AtLeastOnce)]), vec![1]);
    sub.disconnect();
    let mut publ = MqttClient::connect(port, &pub_id).await;
    for i in 0..50 {
        publ.publish("qo/t", q(1), false, i.to_string().as_bytes())
            .await;
    }
    let (mut sub, present) = RawClient::connect(port, &sub_id, false);
    assert!(present);
    for i in 0..50 {
        let p = sub.read_publish(RECV_TIMEOUT);
        assert_eq!(std::str::from_utf8(&p.payload).unwrap(), i.to_string());
        sub.puback(p.packet_id);
    }
    sub.expect_open_for(Duration::from_millis(300));
}

/// --max-inflight bounds the unacknowledged QoS 1 messages sent to one
/// client; acknowledging one lets the next through, none is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_inflight_bounds_unacknowledged_deliveries() {
    let broker = Broker::start_with(&["--max-inflight", "2"]);
    let port = broker.port();
    let (pub_id, sub_id) = ids_on_different_shards("ifpub", "ifsub");
    let (mut sub, _) = RawClient::connect(port, &sub_id, true);
    assert_eq!(sub.subscribe(1, &[("if/t", QoS::AtLeastOnce)]), vec![1]);
    let mut publ = MqttClient::connect(port, &pub_id).await;
    for i in 0..5 {
        publ.publish("if/t", q(1), false, i.to_string().as_bytes())
            .await;
    }
    let a = sub.read_publish(RECV_TIMEOUT);
    let b = sub.read_publish(RECV_TIMEOUT);
    assert_eq!((&a.payload[..], &b.payload[..]), (&b"0"[..], &b"1"[..]));
    // A third would exceed the window.
    sub.expect_open_for(Duration::from_millis(500));
    sub.puback(a.packet_id);
    let c = sub.read_publish(RECV_TIMEOUT);
    assert_eq!(&c.payload[..], b"2");
    for p in [b.packet_id, c.packet_id] {
        sub.puback(p);
    }
    for want in ["3", "4"] {
        let p = sub.read_publish(RECV_TIMEOUT);
        assert_eq!(std::str::from_utf8(&p.payload).unwrap(), want);
        sub.puback(p.packet_id);
    }
}
