//! Light connections (`server::light`): a TCP client that reads and writes
//! little is served from its shard's epoll set, its packets handled inline,
//! and goes back to tasks when it gets busy or leaves half a packet.
//! Driven by rumqttc and a raw client; the broker's debug log tells parks
//! and resumes.

mod common;

use std::time::Duration;

use common::*;
use ringmq::protocol::QoS;

fn count(broker: &Broker, needle: &str) -> usize {
    broker.stderr().matches(needle).count()
}

/// A publisher at a few messages a second becomes light without ever
/// being silent for --park-after-ms, and its messages keep arriving in
/// order, QoS 1 acknowledged, without a resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_publisher_becomes_light_and_keeps_publishing() {
    let broker = Broker::start_with(&["--park-after-ms", "60000"]);
    let (pub_id, sub_id) = ids_on_different_shards("light-pub", "light-sub");
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(sub.subscribe("light/#", q(1)).await, vec![1]);
    let mut publisher = MqttClient::connect(broker.port(), &pub_id).await;
    for i in 0..25 {
        publisher
            .publish("light/t", q(1), false, format!("m{i}").as_bytes())
            .await;
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    for i in 0..25 {
        let m = sub.recv_publish().await;
        assert_eq!(m.payload, format!("m{i}").as_bytes());
    }
    assert!(
        count(&broker, " parked") >= 1,
        "the slow publisher never went light"
    );
    assert_eq!(
        count(&broker, " resumed"),
        0,
        "a light connection was resumed"
    );
}

/// A light connection that sends more than one inline read takes is
/// resumed, and nothing it sent is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_connection_that_gets_busy_is_resumed() {
    let broker = Broker::start_with(&["--park-after-ms", "100"]);
    let mut sub = MqttClient::connect(broker.port(), "light-busy-sub").await;
    assert_eq!(sub.subscribe("busy/#", q(1)).await, vec![1]);
    let (mut raw, _) = RawClient::connect(broker.port(), "light-busy-pub", true);
    broker.wait_log_count(" parked", 2);
    // 100 QoS 0 PUBLISHes of 100 bytes in one write: 10 KB, more than one
    // inline read.
    let mut burst = Vec::new();
    for i in 0..100u32 {
        let mut payload = format!("b{i:03}").into_bytes();
        payload.resize(100, b'.');
        burst.extend(encode(&publish_packet(
            "busy/t",
            QoS::AtMostOnce,
            0,
            false,
            false,
            &payload,
        )));
    }
    raw.send(&burst);
    for i in 0..100u32 {
        let m = sub.recv_publish().await;
        assert_eq!(&m.payload[..4], format!("b{i:03}").as_bytes());
    }
    assert!(
        count(&broker, " resumed") >= 1,
        "the busy connection was not resumed"
    );
}

/// Half a packet to a light connection: it is resumed with those bytes,
/// and the packet completes when the rest comes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_a_packet_to_a_light_connection_completes() {
    let broker = Broker::start_with(&["--park-after-ms", "100"]);
    let mut sub = MqttClient::connect(broker.port(), "light-half-sub").await;
    assert_eq!(sub.subscribe("half/#", q(0)).await, vec![0]);
    let (mut raw, _) = RawClient::connect(broker.port(), "light-half-pub", true);
    broker.wait_log_count(" parked", 2);
    let bytes = encode(&publish_packet(
        "half/t",
        QoS::AtMostOnce,
        0,
        false,
        false,
        b"joined",
    ));
    raw.send(&bytes[..5]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    raw.send(&bytes[5..]);
    let m = sub.recv_publish().await;
    assert_eq!(&m.payload[..], b"joined");
}
