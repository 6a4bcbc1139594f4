//! Bad input closes that one connection and nothing else: after every case
//! a fresh healthy pair of clients must still connect, publish and receive.

mod common;

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

const CLOSE_TIMEOUT: Duration = Duration::from_secs(3);

/// CONNECT, 3.1.1, clean session, keepalive 60, client id "ok".
const GOOD_CONNECT: [u8; 16] = [
    0x10, 0x0E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, b'o', b'k',
];

/// Sends `bytes` on a fresh connection (after a good CONNECT when
/// `connect_first`), asserts the broker closes it, and returns what it sent
/// back before closing (the CONNACK excluded).
fn closed_after(port: u16, connect_first: bool, bytes: &[u8]) -> Vec<u8> {
    let mut raw = RawClient::open(port);
    if connect_first {
        raw.send(&GOOD_CONNECT);
        assert_eq!(
            raw.read_exact_bytes(4, RECV_TIMEOUT),
            vec![0x20, 0x02, 0x00, 0x00],
            "the good CONNECT must be accepted"
        );
    }
    raw.send(bytes);
    raw.expect_closed(CLOSE_TIMEOUT)
}

fn assert_no_accepting_connack(got: &[u8]) {
    assert!(
        !got.windows(4).any(|w| w == [0x20, 0x02, 0x00, 0x00]),
        "the broker accepted the connection: {got:02X?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_close_the_connection() {
    let broker = Broker::start();
    let got = closed_after(broker.port(), false, &[0xFF, 0xFF, 0xFF, 0xFF]);
    assert!(got.is_empty(), "sent {got:02X?}");
    let got = closed_after(broker.port(), true, &[0xFF, 0xFF, 0xFF, 0xFF]);
    assert!(got.is_empty(), "sent {got:02X?}");
    assert_broker_healthy(broker.port(), "garbage").await;
}

/// [MQTT-3.1.0-1]: the first packet must be CONNECT.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_0_1_first_packet_not_connect_closes() {
    let broker = Broker::start();
    let got = closed_after(broker.port(), false, &[0xC0, 0x00]);
    assert!(
        got.is_empty(),
        "PINGREQ before CONNECT answered: {got:02X?}"
    );
    // A SUBSCRIBE first, too.
    let got = closed_after(
        broker.port(),
        false,
        &[0x82, 0x06, 0x00, 0x01, 0x00, 0x01, b'a', 0x00],
    );
    assert!(
        got.is_empty(),
        "SUBSCRIBE before CONNECT answered: {got:02X?}"
    );
    assert_broker_healthy(broker.port(), "first").await;
}

/// [MQTT-3.1.0-2]: a second CONNECT is a protocol violation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_0_2_second_connect_closes() {
    let broker = Broker::start();
    let got = closed_after(broker.port(), true, &GOOD_CONNECT);
    assert!(got.is_empty(), "second CONNECT answered: {got:02X?}");
    assert_broker_healthy(broker.port(), "second").await;
}

/// A remaining length above --max-packet-size is rejected as soon as the
/// fixed header is read: the body is never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_packet_rejected_from_fixed_header() {
    let broker = Broker::start_with(&["--max-packet-size", "1024"]);
    let port = broker.port();
    // PUBLISH QoS 0 with remaining length 2048, header only.
    let got = closed_after(port, true, &[0x30, 0x80, 0x10]);
    assert!(got.is_empty(), "sent {got:02X?}");
    // 1022 + 3 header bytes = 1025 > 1024.
    let got = closed_after(port, true, &[0x30, 0xFE, 0x07]);
    assert!(got.is_empty(), "sent {got:02X?}");
    // An oversized CONNECT (16383 bytes announced), header only.
    let got = closed_after(port, false, &[0x10, 0xFF, 0x7F]);
    assert_no_accepting_connack(&got);

    // A packet just under the limit still goes through.
    let (pub_id, sub_id) = ids_on_different_shards("bigp", "bigs");
    let mut sub = MqttClient::connect(port, &sub_id).await;
    assert_eq!(sub.subscribe("big", q(1)).await, vec![1]);
    let (mut publ, _) = RawClient::connect(port, &pub_id, true);
    let payload = vec![0xAB; 1000]; // 3 + 5 + 1000 = 1008 bytes
    publ.publish("big", ringmq::protocol::QoS::AtMostOnce, 0, false, &payload);
    let m = sub.recv_publish().await;
    assert_eq!(m.payload.len(), 1000);
    assert_broker_healthy(port, "oversized").await;
}

/// 2.2.3: the remaining length is at most 4 bytes; a 5th continuation byte
/// is malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_2_2_3_five_byte_remaining_length_closes() {
    let broker = Broker::start();
    let bad = [0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F];
    let got = closed_after(broker.port(), true, &bad);
    assert!(got.is_empty(), "sent {got:02X?}");
    let got = closed_after(broker.port(), false, &[0x10, 0x80, 0x80, 0x80, 0x80, 0x01]);
    assert_no_accepting_connack(&got);
    assert_broker_healthy(broker.port(), "varint").await;
}

/// A truncated CONNECT followed by silence is closed by --connect-timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_connect_closed_by_connect_timeout() {
    let broker = Broker::start_with(&["--connect-timeout", "1"]);
    let mut raw = RawClient::open(broker.port());
    let t0 = Instant::now();
    raw.send(&GOOD_CONNECT[..6]);
    let got = raw.expect_closed(Duration::from_secs(4));
    let elapsed = t0.elapsed();
    assert!(got.is_empty(), "sent {got:02X?}");
    assert!(
        elapsed >= Duration::from_millis(800),
        "closed after {elapsed:?}, before the connect timeout"
    );
    assert_broker_healthy(broker.port(), "trunc").await;
}

/// A client that connects and sends nothing is closed by --connect-timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connection_closed_by_connect_timeout() {
    let broker = Broker::start_with(&["--connect-timeout", "1"]);
    let mut raw = RawClient::open(broker.port());
    let t0 = Instant::now();
    let got = raw.expect_closed(Duration::from_secs(4));
    let elapsed = t0.elapsed();
    assert!(got.is_empty(), "sent {got:02X?}");
    assert!(
        elapsed >= Duration::from_millis(800),
        "closed after {elapsed:?}, before the connect timeout"
    );
    // The timeout only applies before CONNECT: a connected client that is
    // quiet (keepalive 60) stays.
    let (mut ok, _) = RawClient::connect(broker.port(), &client_id_on(0, "quiet"), true);
    ok.expect_open_for(Duration::from_millis(1500));
    assert_broker_healthy(broker.port(), "silent").await;
}

/// [MQTT-3.3.2-2]: the topic name of a PUBLISH must not contain wildcards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_3_2_2_publish_with_wildcard_topic_closes() {
    let broker = Broker::start();
    let port = broker.port();
    // Someone subscribed to everything must not see it.
    let mut watcher = MqttClient::connect(port, &client_id_on(1, "watch")).await;
    assert_eq!(watcher.subscribe("#", q(0)).await, vec![0]);
    // PUBLISH QoS 0 topic "a/+" payload "x".
    let got = closed_after(
        port,
        true,
        &[0x30, 0x06, 0x00, 0x03, b'a', b'/', b'+', b'x'],
    );
    assert!(got.is_empty(), "sent {got:02X?}");
    // PUBLISH QoS 1 topic "a/#" id 1 payload "x".
    let got = closed_after(
        port,
        true,
        &[0x32, 0x08, 0x00, 0x03, b'a', b'/', b'#', 0x00, 0x01, b'x'],
    );
    assert!(got.is_empty(), "sent {got:02X?}");
    watcher.expect_no_publish(Duration::from_millis(300)).await;
    assert_broker_healthy(port, "wild").await;
}

/// [MQTT-3.3.1-4]: QoS 3 in a PUBLISH is malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_3_1_4_publish_qos3_closes() {
    let broker = Broker::start();
    let got = closed_after(
        broker.port(),
        true,
        &[0x36, 0x06, 0x00, 0x01, b'a', 0x00, 0x01, b'x'],
    );
    assert!(got.is_empty(), "sent {got:02X?}");
    assert_broker_healthy(broker.port(), "qos3").await;
}

/// [MQTT-1.5.3-1]: ill-formed UTF-8 (overlong `C0 80`) in the client id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_1_5_3_1_invalid_utf8_client_id_closes() {
    let broker = Broker::start();
    let connect = [
        0x10, 0x0E, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C, 0x00, 0x02, 0xC0,
        0x80,
    ];
    let got = closed_after(broker.port(), false, &connect);
    assert_no_accepting_connack(&got);
    assert_broker_healthy(broker.port(), "utf8").await;
}

/// [MQTT-1.5.3-1/2]: invalid UTF-8 or U+0000 in a PUBLISH topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_1_5_3_2_invalid_utf8_or_nul_in_topic_closes() {
    let broker = Broker::start();
    let port = broker.port();
    for topic in [
        &[b'a', 0x00, b'b'][..],
        &[b'a', 0xFF, b'b'][..],
        &[0xED, 0xA0, 0x80][..],
    ] {
        let mut p = vec![0x30, 2 + topic.len() as u8 + 1, 0x00, topic.len() as u8];
        p.extend_from_slice(topic);
        p.push(b'x');
        let got = closed_after(port, true, &p);
        assert!(got.is_empty(), "topic {topic:02X?}: sent {got:02X?}");
    }
    assert_broker_healthy(port, "nul").await;
}

/// [MQTT-3.1.2-3]: the reserved CONNECT flag must be 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_1_2_3_reserved_connect_flag_closes() {
    let broker = Broker::start();
    let mut connect = GOOD_CONNECT;
    connect[9] = 0x03; // clean session + reserved bit
    let got = closed_after(broker.port(), false, &connect);
    assert_no_accepting_connack(&got);
    assert_broker_healthy(broker.port(), "reserved").await;
}

/// A will topic with a wildcard makes the CONNECT malformed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn will_topic_with_wildcard_closes() {
    let broker = Broker::start();
    let bytes = encode(&ringmq::protocol::Packet::Connect(Box::new(
        connect_packet(
            "willwild",
            true,
            60,
            Some(will("w/#", b"x", ringmq::protocol::QoS::AtMostOnce, false)),
        ),
    )));
    let got = closed_after(broker.port(), false, &bytes);
    assert_no_accepting_connack(&got);
    assert_broker_healthy(broker.port(), "willwild").await;
}

/// 300 bad connections in a row (several kinds) while a good pub/sub pair
/// keeps exchanging QoS 1 messages: every message arrives, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_storm_does_not_disturb_healthy_clients() {
    let broker = Broker::start_with(&["--connect-timeout", "2"]);
    let port = broker.port();
    let (pub_id, sub_id) = ids_on_different_shards("stormp", "storms");
    let mut sub = MqttClient::connect(port, &sub_id).await;
    assert_eq!(sub.subscribe("storm/t", q(1)).await, vec![1]);
    let mut publ = MqttClient::connect(port, &pub_id).await;

    let done = Arc::new(AtomicBool::new(false));
    let closed = Arc::new(AtomicUsize::new(0));
    let storm = {
        let done = done.clone();
        let closed = closed.clone();
        std::thread::spawn(move || {
            let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
            for i in 0..300 {
                let mut raw = RawClient::open(port);
                let bytes: Vec<u8> = match i % 7 {
                    0 => vec![0xFF, 0xFF, 0xFF, 0xFF],
                    1 => vec![0xC0, 0x00],
                    2 => (0..64)
                        .map(|_| {
                            seed = seed
                                .wrapping_mul(6_364_136_223_846_793_005)
                                .wrapping_add(1_442_695_040_888_963_407);
                            (seed >> 56) as u8
                        })
                        .collect(),
                    3 => GOOD_CONNECT[..7].to_vec(), // truncated, then dropped
                    4 => vec![0x10, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F],
                    5 => {
                        // A good anonymous CONNECT, then a reserved type 0.
                        let mut v = vec![
                            0x10, 0x0C, 0x00, 0x04, b'M', b'Q', b'T', b'T', 0x04, 0x02, 0x00, 0x3C,
                            0x00, 0x00,
                        ];
                        v.extend_from_slice(&[0x00, 0x00]);
                        v
                    }
                    _ => vec![0x10, 0xFF, 0xFF, 0xFF, 0x7F], // 256 MiB CONNECT
                };
                raw.send(&bytes);
                if i % 7 == 3 {
                    drop(raw);
                    continue;
                }
                raw.expect_closed(Duration::from_secs(5));
                closed.fetch_add(1, Ordering::SeqCst);
            }
            done.store(true, Ordering::SeqCst);
        })
    };

    let mut n = 0usize;
    while !done.load(Ordering::SeqCst) || n < 50 {
        let payload = n.to_string();
        publ.publish("storm/t", q(1), false, payload.as_bytes())
            .await;
        let m = sub.recv_publish().await;
        assert_eq!(
            std::str::from_utf8(&m.payload).unwrap(),
            payload,
            "message {n} lost or out of order during the storm"
        );
        n += 1;
        assert!(n < 100_000, "storm never finished");
        if storm.is_finished() && !done.load(Ordering::SeqCst) {
            break;
        }
    }
    if let Err(e) = storm.join() {
        std::panic::resume_unwind(e);
    }
    assert!(closed.load(Ordering::SeqCst) >= 250);
    assert!(broker_is_listening(port));
    assert_broker_healthy(port, "storm").await;
}

fn broker_is_listening(port: u16) -> bool {
    std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
}
