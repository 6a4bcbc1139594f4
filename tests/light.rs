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

/// Every TCP client starts light; a publisher that got busy (and was
/// resumed) becomes light again once it slows to a few messages a second,
/// without ever being silent for --park-after-ms, and its messages keep
/// arriving in order, QoS 1 acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publisher_that_slows_down_becomes_light_again() {
    let broker = Broker::start_with(&["--park-after-ms", "60000"]);
    let (pub_id, sub_id) = ids_on_different_shards("light-pub", "light-sub");
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(sub.subscribe("light/#", q(1)).await, vec![1]);
    let (mut raw, _) = RawClient::connect(broker.port(), &pub_id, true);
    broker.wait_log_count(" parked", 2);
    // Busy: 8 KB in one write is more than one inline read.
    let mut burst = Vec::new();
    for i in 0..80u32 {
        let mut payload = format!("b{i:03}").into_bytes();
        payload.resize(100, b'.');
        burst.extend(encode(&publish_packet(
            "light/burst",
            QoS::AtMostOnce,
            0,
            false,
            false,
            &payload,
        )));
    }
    raw.send(&burst);
    for _ in 0..80 {
        sub.recv_publish().await;
    }
    broker.wait_log_count(" resumed", 1);
    let parks_before = count(&broker, " parked");
    // Slow: about 8 QoS 1 messages a second for 3 s.
    for i in 0..24u16 {
        raw.publish(
            "light/slow",
            QoS::AtLeastOnce,
            i + 1,
            false,
            format!("s{i}").as_bytes(),
        );
        match raw.read_packet(Duration::from_secs(3)) {
            ringmq::protocol::Packet::PubAck(a) => assert_eq!(a.packet_id, i + 1),
            other => panic!("expected PUBACK {}, got {other:?}", i + 1),
        }
        std::thread::sleep(Duration::from_millis(120));
    }
    for i in 0..24 {
        let m = sub.recv_publish().await;
        assert_eq!(m.payload, format!("s{i}").as_bytes());
    }
    assert!(
        count(&broker, " parked") > parks_before,
        "the publisher did not become light again"
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

/// Hostile: 200 clients that each leave half a packet, then another half
/// packet a little over a second later (each such read takes a light
/// connection back to tasks, and a second of quiet makes it light again),
/// for 4 s. The broker survives, a neighbour's PINGREQ is answered
/// promptly throughout, and memory stays bounded (no buffer per flap is
/// kept).
#[test]
fn clients_that_flap_between_light_and_tasks_cost_a_bounded_amount() {
    let broker = Broker::start_with(&["--park-after-ms", "100"]);
    let (mut good, _) = RawClient::connect(broker.port(), "flap-good", true);
    let mut flappers: Vec<RawClient> = (0..200)
        .map(|i| RawClient::connect(broker.port(), &format!("flap-{i}"), true).0)
        .collect();
    broker.wait_log_count(" parked", 201);
    let before = broker.rss();
    // A PUBLISH header byte and its remaining length, sent one at a time:
    // neither makes a whole packet until the last.
    let packet = encode(&publish_packet(
        "flap/t",
        QoS::AtMostOnce,
        0,
        false,
        false,
        b"slow",
    ));
    for part in packet.iter().take(4) {
        for f in &mut flappers {
            f.send(&[*part]);
        }
        let t0 = std::time::Instant::now();
        good.send_packet(&ringmq::protocol::Packet::PingReq);
        assert!(matches!(
            good.read_packet(Duration::from_secs(2)),
            ringmq::protocol::Packet::PingResp
        ));
        assert!(
            t0.elapsed() < Duration::from_secs(1),
            "PINGRESP took {:?} while 200 clients flapped",
            t0.elapsed()
        );
        std::thread::sleep(Duration::from_millis(1100));
    }
    let growth = broker.rss().saturating_sub(before);
    assert!(
        growth < 16 << 20,
        "RSS grew {growth} B for 200 flapping clients"
    );
    assert!(
        broker.stderr_count(" resumed") >= 200,
        "the half packets resumed nobody"
    );
}
