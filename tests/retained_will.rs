//! Retained messages and the Last Will and Testament.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::{Packet, QoS};

/// [MQTT-3.3.1-5/6/8/10/11]: a retained message is stored, sent with
/// retain=1 to later subscribers, replaced by the next retained message and
/// cleared by a retained message with an empty payload; live deliveries to
/// existing subscribers have retain=0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_3_1_5_retained_set_replace_clear() {
    let broker = Broker::start();
    let port = broker.port();
    let (pub_id, live_id) = ids_on_different_shards("rpub", "rlive");
    let mut live = MqttClient::connect(port, &live_id).await;
    assert_eq!(live.subscribe("ret/t", q(1)).await, vec![1]);
    let mut publ = MqttClient::connect(port, &pub_id).await;

    // Set.
    publ.publish("ret/t", q(1), true, b"v1").await;
    let m = live.recv_publish().await;
    assert_eq!(&m.payload[..], b"v1");
    assert!(!m.retain, "[MQTT-3.3.1-9] live delivery must have retain=0");

    let mut s1 = MqttClient::connect(port, &client_id_on(1, "late1")).await;
    assert_eq!(s1.subscribe("ret/t", q(1)).await, vec![1]);
    let m = s1.recv_publish().await;
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("ret/t", &b"v1"[..]));
    assert!(
        m.retain,
        "[MQTT-3.3.1-8] subscribe-time delivery must have retain=1"
    );
    assert_eq!(m.qos, q(1));
    s1.expect_no_publish(Duration::from_millis(200)).await;

    // Replace.
    publ.publish("ret/t", q(1), true, b"v2").await;
    assert!(!live.recv_publish().await.retain);
    let mut s2 = MqttClient::connect(port, &client_id_on(0, "late2")).await;
    assert_eq!(s2.subscribe("ret/t", q(1)).await, vec![1]);
    let m = s2.recv_publish().await;
    assert_eq!(
        &m.payload[..],
        b"v2",
        "the retained message must be replaced"
    );
    assert!(m.retain);
    s2.expect_no_publish(Duration::from_millis(200)).await;

    // A non-retained publish leaves the retained one alone.
    publ.publish("ret/t", q(1), false, b"not retained").await;
    let mut s3 = MqttClient::connect(port, &client_id_on(1, "late3")).await;
    assert_eq!(s3.subscribe("ret/t", q(1)).await, vec![1]);
    assert_eq!(&s3.recv_publish().await.payload[..], b"v2");

    // Clear with an empty retained payload.
    publ.publish("ret/t", q(1), true, b"").await;
    let mut s4 = MqttClient::connect(port, &client_id_on(0, "late4")).await;
    assert_eq!(s4.subscribe("ret/t", q(1)).await, vec![1]);
    s4.expect_no_publish(Duration::from_millis(700)).await;
}

/// A retained message is delivered at min(its QoS, granted QoS).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_delivered_at_minimum_qos() {
    let broker = Broker::start();
    let port = broker.port();
    let mut publ = MqttClient::connect(port, &client_id_on(0, "rqpub")).await;
    publ.publish("rq/t", q(2), true, b"two").await;
    let mut s0 = MqttClient::connect(port, &client_id_on(1, "rqs0")).await;
    assert_eq!(s0.subscribe("rq/t", q(0)).await, vec![0]);
    let m = s0.recv_publish().await;
    assert_eq!((m.qos, m.retain), (q(0), true));
    let mut s2 = MqttClient::connect(port, &client_id_on(1, "rqs2")).await;
    assert_eq!(s2.subscribe("rq/t", q(2)).await, vec![2]);
    let m = s2.recv_publish().await;
    assert_eq!((m.qos, m.retain), (q(2), true));
}

/// A wildcard subscription receives every matching retained message (and
/// none that does not match).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wildcard_subscription_receives_every_matching_retained_message() {
    let broker = Broker::start();
    let port = broker.port();
    let mut p0 = MqttClient::connect(port, &client_id_on(0, "wp0")).await;
    let mut p1 = MqttClient::connect(port, &client_id_on(1, "wp1")).await;
    let matching = ["home/a/temp", "home/b/temp", "home/c/temp"];
    for (i, t) in matching.iter().enumerate() {
        let p = if i % 2 == 0 { &mut p0 } else { &mut p1 };
        p.publish(t, q(1), true, t.as_bytes()).await;
    }
    p0.publish("home/a/hum", q(1), true, b"no").await;
    p1.publish("office/a/temp", q(1), true, b"no").await;

    let mut sub = MqttClient::connect(port, &client_id_on(1, "wsub")).await;
    assert_eq!(sub.subscribe("home/+/temp", q(1)).await, vec![1]);
    let mut got = Vec::new();
    for _ in 0..matching.len() {
        let m = sub.recv_publish().await;
        assert!(m.retain);
        assert_eq!(m.payload, m.topic.as_bytes());
        got.push(m.topic);
    }
    got.sort();
    assert_eq!(got, matching);
    sub.expect_no_publish(Duration::from_millis(500)).await;

    let mut all = MqttClient::connect(port, &client_id_on(0, "wall")).await;
    assert_eq!(all.subscribe("#", q(0)).await, vec![0]);
    // home/a/temp, home/b/temp, home/c/temp, home/a/hum, office/a/temp.
    for _ in 0..5 {
        assert!(all.recv_publish().await.retain);
    }
    all.expect_no_publish(Duration::from_millis(300)).await;
}

/// A retained message published on shard 0 reaches a subscriber homed on
/// shard 1 that subscribes afterwards (and vice versa).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retained_message_is_visible_across_shards() {
    let broker = Broker::start();
    let port = broker.port();
    for (ps, ss) in [(0, 1), (1, 0)] {
        let mut publ = MqttClient::connect(port, &client_id_on(ps, &format!("xp{ps}"))).await;
        let topic = format!("xs/{ps}");
        publ.publish(&topic, q(1), true, b"across").await;
        let mut sub = MqttClient::connect(port, &client_id_on(ss, &format!("xs{ss}"))).await;
        assert_eq!(sub.subscribe(&topic, q(1)).await, vec![1]);
        let m = sub.recv_publish().await;
        assert_eq!((&m.payload[..], m.retain), (&b"across"[..], true));
    }
}

/// [MQTT-3.1.2-8]: the will is published when the network connection is
/// closed without DISCONNECT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_8_will_published_on_abnormal_disconnect() {
    let broker = Broker::start();
    let port = broker.port();
    let (will_id, sub_id) = ids_on_different_shards("wdie", "wwatch");
    let mut sub = MqttClient::connect(port, &sub_id).await;
    assert_eq!(sub.subscribe("will/+", q(1)).await, vec![1]);

    let (raw, _) = RawClient::connect_with(
        port,
        connect_packet(
            &will_id,
            true,
            30,
            Some(will("will/a", b"gone", QoS::AtMostOnce, false)),
        ),
    );
    sub.expect_no_publish(Duration::from_millis(200)).await;
    drop(raw);
    let m = sub.recv_publish().await;
    assert_eq!((m.topic.as_str(), &m.payload[..]), ("will/a", &b"gone"[..]));
    assert_eq!(m.qos, q(0));
    assert!(!m.retain);
    sub.expect_no_publish(Duration::from_millis(300)).await;
}

/// [MQTT-3.1.2-24] + will: a silent client with keepalive 1 s is closed
/// after 1.5 × keepalive and its will is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_24_keepalive_timeout_closes_and_publishes_will() {
    let broker = Broker::start();
    let port = broker.port();
    let (will_id, sub_id) = ids_on_different_shards("kdie", "kwatch");
    let mut sub = MqttClient::connect(port, &sub_id).await;
    assert_eq!(sub.subscribe("ka/will", q(1)).await, vec![1]);

    let (mut raw, _) = RawClient::connect_with(
        port,
        connect_packet(
            &will_id,
            true,
            1,
            Some(will("ka/will", b"timed out", QoS::AtLeastOnce, false)),
        ),
    );
    let t0 = Instant::now();
    let m = sub.recv_publish_within(Duration::from_secs(4)).await;
    let elapsed = t0.elapsed();
    assert_eq!(&m.payload[..], b"timed out");
    assert!(
        elapsed >= Duration::from_millis(1400),
        "closed after {elapsed:?}: the server must allow 1.5 × keepalive"
    );
    assert!(elapsed <= Duration::from_secs(3), "will after {elapsed:?}");
    raw.expect_closed(Duration::from_secs(1));
}

/// Keepalive is satisfied by PINGREQs: a client with keepalive 1 s that
/// pings every 500 ms stays connected well beyond 1.5 s.
#[test]
fn mqtt_3_1_2_23_pings_keep_the_connection_alive() {
    let broker = Broker::start();
    let (mut raw, _) = RawClient::connect_with(
        broker.port(),
        connect_packet(&client_id_on(0, "pinger"), true, 1, None),
    );
    for _ in 0..6 {
        std::thread::sleep(Duration::from_millis(500));
        raw.send(&[0xC0, 0x00]);
        assert_eq!(raw.read_exact_bytes(2, RECV_TIMEOUT), vec![0xD0, 0x00]);
    }
}

/// [MQTT-3.1.2-10]: no will after a DISCONNECT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_10_no_will_after_disconnect() {
    let broker = Broker::start();
    let port = broker.port();
    let (will_id, sub_id) = ids_on_different_shards("ndie", "nwatch");
    let mut sub = MqttClient::connect(port, &sub_id).await;
    assert_eq!(sub.subscribe("nw/#", q(1)).await, vec![1]);
    let (raw, _) = RawClient::connect_with(
        port,
        connect_packet(
            &will_id,
            true,
            1,
            Some(will("nw/will", b"must not", QoS::AtLeastOnce, true)),
        ),
    );
    raw.disconnect();
    // Past the 1.5 s keepalive deadline too.
    sub.expect_no_publish(Duration::from_secs(2)).await;
    // Not retained either.
    let mut late = MqttClient::connect(port, &client_id_on(0, "nlate")).await;
    assert_eq!(late.subscribe("nw/#", q(1)).await, vec![1]);
    late.expect_no_publish(Duration::from_millis(300)).await;
}

/// [MQTT-3.1.2-17]: a will with retain=1 is published as a retained
/// message, so a later subscriber gets it with retain=1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_17_will_retain_is_honoured() {
    let broker = Broker::start();
    let port = broker.port();
    let (will_id, sub_id) = ids_on_different_shards("rdie", "rwatch");
    let mut sub = MqttClient::connect(port, &sub_id).await;
    assert_eq!(sub.subscribe("wr/status", q(1)).await, vec![1]);
    let (raw, _) = RawClient::connect_with(
        port,
        connect_packet(
            &will_id,
            true,
            30,
            Some(will("wr/status", b"offline", QoS::AtLeastOnce, true)),
        ),
    );
    drop(raw);
    // The live subscriber gets it (retain=0: it is a live delivery).
    let m = sub.recv_publish().await;
    assert_eq!(&m.payload[..], b"offline");
    assert!(!m.retain);

    for shard in 0..SHARDS {
        let mut late = MqttClient::connect(port, &client_id_on(shard, "rlate")).await;
        assert_eq!(late.subscribe("wr/status", q(1)).await, vec![1]);
        let m = late.recv_publish().await;
        assert_eq!((&m.payload[..], m.retain), (&b"offline"[..], true));
    }
}

/// [MQTT-3.1.2-14]: the will QoS is honoured: a QoS 1 will reaches a
/// QoS 1 subscriber at QoS 1 (and a QoS 2 one at min(1, 2) = 1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_14_will_qos_1_delivered_at_qos_1() {
    let broker = Broker::start();
    let port = broker.port();
    let (will_id, sub_id) = ids_on_different_shards("qdie", "qwatch");
    let (mut sub, _) = RawClient::connect(port, &sub_id, true);
    assert_eq!(sub.subscribe(1, &[("wq/t", QoS::AtLeastOnce)]), vec![1]);
    let mut sub2 = MqttClient::connect(port, &client_id_on(0, "qwatch2")).await;
    assert_eq!(sub2.subscribe("wq/t", q(2)).await, vec![2]);
    let (raw, _) = RawClient::connect_with(
        port,
        connect_packet(
            &will_id,
            true,
            30,
            Some(will("wq/t", b"q1 will", QoS::AtLeastOnce, false)),
        ),
    );
    drop(raw);
    match sub.read_packet(RECV_TIMEOUT) {
        Packet::Publish(p) => {
            assert_eq!(&p.payload[..], b"q1 will");
            assert_eq!(p.qos, QoS::AtLeastOnce);
            assert_ne!(p.packet_id, 0);
            sub.puback(p.packet_id);
        }
        other => panic!("expected the will PUBLISH, got {other:?}"),
    }
    let m = sub2.recv_publish().await;
    assert_eq!(m.qos, q(1));
}

/// Will of a persistent session whose client vanishes is queued for an
/// offline persistent subscriber (QoS 1), like any other message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_is_queued_for_offline_persistent_subscriber() {
    let broker = Broker::start();
    let port = broker.port();
    let (will_id, sub_id) = ids_on_different_shards("odie", "owatch");
    let (mut sub, _) = RawClient::connect(port, &sub_id, false);
    assert_eq!(sub.subscribe(1, &[("ow/t", QoS::AtLeastOnce)]), vec![1]);
    sub.disconnect();
    let (raw, _) = RawClient::connect_with(
        port,
        connect_packet(
            &will_id,
            true,
            30,
            Some(will("ow/t", b"queued will", QoS::AtLeastOnce, false)),
        ),
    );
    drop(raw);
    // Give the broker a moment to notice the close and route the will.
    std::thread::sleep(Duration::from_millis(300));
    let (mut sub, present) = RawClient::connect(port, &sub_id, false);
    assert!(present);
    let p = sub.read_publish(RECV_TIMEOUT);
    assert_eq!(&p.payload[..], b"queued will");
}
