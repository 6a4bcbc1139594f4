//! Parked connections (`--park-after-ms`): a silent client's connection
//! gives up its tasks and waits in the shard's epoll set. Served light
//! (the default, `server::light`), its packets and its output are handled
//! inline from there, and it is resumed only when it gets busy; with
//! `--light-below 0` anything that concerns it — input, output, keepalive
//! expiry, takeover, EOF — brings it back. Either way it behaves exactly as
//! if it had never parked: every test here runs in both modes.

mod common;

use std::time::{Duration, Instant};

use common::*;
use ringmq::protocol::{Packet, QoS};

/// Parks after 100 ms of silence (checked every 500 ms); parked
/// connections are resumed for anything that concerns them.
const PARK: &[&str] = &["--park-after-ms", "100", "--light-below", "0"];
/// The same, with parked connections served light (the default).
const LIGHT: &[&str] = &["--park-after-ms", "100"];
/// Both ways of serving a parked connection.
const MODES: [&[&str]; 2] = [PARK, LIGHT];

/// Waits until `at_least` parks in all show in the broker's log.
fn wait_parked(broker: &Broker, at_least: usize) {
    broker.wait_log_count(" parked", at_least);
}

fn resumed(broker: &Broker) -> usize {
    broker.stderr().matches(" resumed").count()
}

/// A parked subscriber gets deliveries (QoS 0, 1 and 2) and a parked
/// publisher's PUBLISH goes through: resumed for it with `--light-below 0`,
/// served inline without a resume when light.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_clients_publish_and_receive() {
    for mode in MODES {
        parked_clients_publish_and_receive_in(mode).await;
    }
}

async fn parked_clients_publish_and_receive_in(mode: &[&str]) {
    let light = mode == LIGHT;
    let broker = Broker::start_with(mode);
    let (pub_id, sub_id) = ids_on_different_shards("park-pub", "park-sub");
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(sub.subscribe("park/#", q(2)).await, vec![2]);
    let mut publisher = MqttClient::connect(broker.port(), &pub_id).await;
    wait_parked(&broker, 2);
    for (i, qos) in [0u8, 1, 2].into_iter().enumerate() {
        let before = resumed(&broker);
        let payload = format!("m{i}");
        publisher
            .publish(&format!("park/{i}"), q(qos), false, payload.as_bytes())
            .await;
        let m = sub.recv_publish().await;
        assert_eq!(&m.payload[..], payload.as_bytes());
        assert_eq!(m.qos, q(qos));
        if light {
            assert_eq!(resumed(&broker), before, "a light connection was resumed");
        } else {
            assert!(resumed(&broker) > before, "nobody was resumed");
            // Both go quiet again and park once more.
            wait_parked(&broker, 2 * (i + 2));
        }
    }
    if light {
        assert_eq!(resumed(&broker), 0, "a light connection was resumed");
    }
    sub.expect_no_publish(Duration::from_millis(200)).await;
}

/// PINGREQ to a parked connection is answered; the connection stays up.
/// Light, it is answered without resuming the connection.
#[test]
fn parked_connection_answers_pingreq() {
    for mode in MODES {
        let broker = Broker::start_with(mode);
        let (mut c, _) = RawClient::connect(broker.port(), "park-ping", true);
        for round in 1..=3 {
            wait_parked(&broker, if mode == LIGHT { 1 } else { round });
            c.send_packet(&Packet::PingReq);
            assert!(
                matches!(c.read_packet(Duration::from_secs(3)), Packet::PingResp),
                "no PINGRESP in round {round}"
            );
        }
        if mode == LIGHT {
            assert_eq!(resumed(&broker), 0, "resumed for a PINGREQ");
        }
    }
}

/// A parked client with keepalive 1 s that stays silent is closed after
/// 1.5 × keepalive and its will is published.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connection_keepalive_expires_with_will() {
    for mode in MODES {
        parked_connection_keepalive_expires_with_will_in(mode).await;
    }
}

async fn parked_connection_keepalive_expires_with_will_in(mode: &[&str]) {
    let broker = Broker::start_with(mode);
    let (will_id, sub_id) = ids_on_different_shards("park-ka", "park-ka-watch");
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(sub.subscribe("parkka/will", q(1)).await, vec![1]);
    let (mut raw, _) = RawClient::connect_with(
        broker.port(),
        connect_packet(
            &will_id,
            true,
            1,
            Some(will("parkka/will", b"expired", QoS::AtLeastOnce, false)),
        ),
    );
    let t0 = Instant::now();
    let m = sub.recv_publish_within(Duration::from_secs(4)).await;
    assert_eq!(&m.payload[..], b"expired");
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(1400),
        "closed after {elapsed:?}"
    );
    raw.expect_closed(Duration::from_secs(1));
    assert!(broker.stderr().contains(" parked"), "never parked");
}

/// A parked client whose socket drops (no DISCONNECT) gets its will
/// published; one that sends DISCONNECT does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parked_connection_eof_publishes_will_disconnect_does_not() {
    for mode in MODES {
        parked_connection_eof_publishes_will_disconnect_does_not_in(mode).await;
    }
}

async fn parked_connection_eof_publishes_will_disconnect_does_not_in(mode: &[&str]) {
    let broker = Broker::start_with(mode);
    let (will_id, sub_id) = ids_on_different_shards("park-eof", "park-eof-watch");
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(sub.subscribe("parkeof/+", q(1)).await, vec![1]);
    let connect = |id: &str, topic: &str| {
        connect_packet(
            id,
            true,
            60,
            Some(will(topic, b"gone", QoS::AtLeastOnce, false)),
        )
    };
    let (clean, _) = RawClient::connect_with(broker.port(), connect("park-clean", "parkeof/clean"));
    let (dropped, _) = RawClient::connect_with(broker.port(), connect(&will_id, "parkeof/dropped"));
    wait_parked(&broker, 3);
    clean.disconnect();
    drop(dropped);
    let m = sub.recv_publish().await;
    assert_eq!(m.topic, "parkeof/dropped");
    sub.expect_no_publish(Duration::from_millis(500)).await;
}

/// A new connection with the client id of a parked one takes the session
/// over: the parked connection is closed, the persistent session (with its
/// subscription) goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takeover_of_a_parked_connection() {
    for mode in MODES {
        takeover_of_a_parked_connection_in(mode).await;
    }
}

async fn takeover_of_a_parked_connection_in(mode: &[&str]) {
    let broker = Broker::start_with(mode);
    let (mut old, _) = RawClient::connect(broker.port(), "park-take", false);
    assert_eq!(old.subscribe(1, &[("take/t", QoS::AtLeastOnce)]), vec![1]);
    wait_parked(&broker, 1);
    let (mut new, present) = RawClient::connect(broker.port(), "park-take", false);
    assert!(present, "session lost in the takeover");
    old.expect_closed(Duration::from_secs(3));
    let mut publisher = MqttClient::connect(broker.port(), "park-take-pub").await;
    publisher.publish("take/t", q(1), false, b"after").await;
    let p = new.read_publish(Duration::from_secs(3));
    assert_eq!(&p.payload[..], b"after");
}

/// SIGTERM with parked connections closes them and exits promptly.
#[test]
fn shutdown_with_parked_connections() {
    for mode in MODES {
        shutdown_with_parked_connections_in(mode);
    }
}

fn shutdown_with_parked_connections_in(mode: &[&str]) {
    let mut broker = Broker::start_with(mode);
    let mut clients: Vec<RawClient> = (0..20)
        .map(|i| RawClient::connect(broker.port(), &format!("park-down-{i}"), true).0)
        .collect();
    wait_parked(&broker, 20);
    let status = broker
        .stop(Duration::from_secs(5))
        .expect("no exit within 5 s");
    assert!(status.success(), "exit status {status:?}");
    for c in &mut clients {
        c.expect_closed(Duration::from_secs(2));
    }
}

/// Malformed bytes from a parked connection close that connection only:
/// a parked neighbour on the same broker keeps working.
#[test]
fn malformed_packet_from_a_parked_connection_closes_only_it() {
    for mode in MODES {
        malformed_packet_from_a_parked_connection_closes_only_it_in(mode);
    }
}

fn malformed_packet_from_a_parked_connection_closes_only_it_in(mode: &[&str]) {
    let broker = Broker::start_with(mode);
    let (mut bad, _) = RawClient::connect(broker.port(), "park-bad", true);
    let (mut good, _) = RawClient::connect(broker.port(), "park-good", true);
    wait_parked(&broker, 2);
    // A PUBLISH whose remaining length runs past a 5-byte varint.
    bad.send(&[0x30, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]);
    let got = bad.expect_closed(Duration::from_secs(3));
    assert!(got.is_empty(), "sent {got:02X?} before closing");
    good.send_packet(&Packet::PingReq);
    assert!(matches!(
        good.read_packet(Duration::from_secs(3)),
        Packet::PingResp
    ));
}
