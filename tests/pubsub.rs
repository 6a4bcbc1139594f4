//! Publish/subscribe across shards: QoS, overlapping subscriptions, order,
//! wildcards, SUBACK failure codes, UNSUBSCRIBE and PINGREQ.

mod common;

use std::time::Duration;

use common::*;
use ringmq::broker::home_shard;
use ringmq::protocol::{Packet, QoS};

fn assert_cross_shard(a: &str, b: &str) {
    assert_ne!(
        home_shard(a, SHARDS),
        home_shard(b, SHARDS),
        "{a} and {b} must live on different shards"
    );
}

/// A publisher on one shard reaches a subscriber on the other at every QoS,
/// in both directions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_shard_delivery_qos_0_1_2() {
    let broker = Broker::start();
    for (pub_shard, sub_shard) in [(0, 1), (1, 0)] {
        let pub_id = client_id_on(pub_shard, &format!("pub{pub_shard}"));
        let sub_id = client_id_on(sub_shard, &format!("sub{sub_shard}"));
        assert_cross_shard(&pub_id, &sub_id);

        let mut publ = MqttClient::connect(broker.port(), &pub_id).await;
        let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
        let topic = format!("x/{pub_shard}/{sub_shard}");
        assert_eq!(sub.subscribe(&topic, q(2)).await, vec![2]);

        for qos in 0..=2u8 {
            let payload = format!("qos{qos} from shard {pub_shard}");
            publ.publish(&topic, q(qos), false, payload.as_bytes())
                .await;
            let m = sub.recv_publish().await;
            assert_eq!(m.topic, topic);
            assert_eq!(m.payload, payload.as_bytes());
            assert_eq!(m.qos, q(qos), "delivered QoS must equal published QoS");
            assert!(!m.retain, "live delivery must have retain=0");
            assert!(!m.dup);
        }
        sub.expect_no_publish(Duration::from_millis(300)).await;
    }
}

/// [MQTT-3.8.4-6] / 4.3: messages are delivered at min(published, granted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_8_4_6_delivery_at_minimum_of_published_and_granted_qos() {
    let broker = Broker::start();
    let (pub_id, sub_id) = ids_on_different_shards("minpub", "minsub");
    let mut publ = MqttClient::connect(broker.port(), &pub_id).await;
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(
        sub.subscribe_many(&[("min/0", q(0)), ("min/1", q(1)), ("min/2", q(2))])
            .await,
        vec![0, 1, 2]
    );
    for granted in 0..=2u8 {
        for published in 0..=2u8 {
            let topic = format!("min/{granted}");
            let payload = format!("g{granted}p{published}");
            publ.publish(&topic, q(published), false, payload.as_bytes())
                .await;
            let m = sub.recv_publish().await;
            assert_eq!(m.payload, payload.as_bytes());
            assert_eq!(
                m.qos,
                q(granted.min(published)),
                "granted {granted}, published {published}"
            );
        }
    }
}

/// Overlapping subscriptions of one client: ONE copy, at the maximum QoS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_subscriptions_deliver_one_copy_at_max_qos() {
    let broker = Broker::start();
    let (pub_id, sub_id) = ids_on_different_shards("ovpub", "ovsub");
    let mut publ = MqttClient::connect(broker.port(), &pub_id).await;
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(sub.subscribe("ov/+", q(0)).await, vec![0]);
    assert_eq!(sub.subscribe("ov/#", q(2)).await, vec![2]);
    assert_eq!(sub.subscribe("ov/a", q(1)).await, vec![1]);

    publ.publish("ov/a", q(2), false, b"one").await;
    let m = sub.recv_publish().await;
    assert_eq!(m.payload, &b"one"[..]);
    assert_eq!(m.qos, q(2), "copy must be at the max granted QoS");
    // A sentinel on a topic matched only once: it must be the next message.
    publ.publish("ov/b/c", q(1), false, b"sentinel").await;
    let next = sub.recv_publish().await;
    assert_eq!(
        next.payload,
        &b"sentinel"[..],
        "a second copy of the overlapping message was delivered: {next:?}"
    );
    sub.expect_no_publish(Duration::from_millis(500)).await;
}

/// 4.6: order of messages from one publisher on one topic is kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_6_order_of_500_qos1_messages_is_kept() {
    let broker = Broker::start();
    let (pub_id, sub_id) = ids_on_different_shards("ordpub", "ordsub");
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(sub.subscribe("order/t", q(1)).await, vec![1]);
    let publ = MqttClient::connect(broker.port(), &pub_id).await;
    const N: usize = 500;
    let client = publ.client.clone();
    let sender = tokio::spawn(async move {
        for i in 0..N {
            client
                .publish("order/t", q(1), false, i.to_string().into_bytes())
                .await
                .unwrap();
        }
    });
    for i in 0..N {
        let m = sub.recv_publish_within(Duration::from_secs(20)).await;
        assert_eq!(
            std::str::from_utf8(&m.payload).unwrap(),
            i.to_string(),
            "message {i} out of order"
        );
        assert_eq!(m.qos, q(1));
    }
    sender.await.unwrap();
    sub.expect_no_publish(Duration::from_millis(300)).await;
    drop(publ);
}

/// [MQTT-4.7.1-2]: `sport/#` also matches the parent level `sport`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_7_1_2_multi_level_wildcard_matches_parent() {
    let broker = Broker::start();
    let (pub_id, sub_id) = ids_on_different_shards("wpub", "wsub");
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(sub.subscribe("sport/#", q(1)).await, vec![1]);
    let mut publ = MqttClient::connect(broker.port(), &pub_id).await;
    for topic in ["sport", "sport/tennis", "sport/tennis/player1", "sport/"] {
        publ.publish(topic, q(1), false, topic.as_bytes()).await;
        let m = sub.recv_publish().await;
        assert_eq!(m.topic, topic);
    }
    // Not matched: a different first level.
    publ.publish("sports", q(1), false, b"no").await;
    publ.publish("sport/end", q(1), false, b"sentinel").await;
    assert_eq!(sub.recv_publish().await.topic, "sport/end");
}

/// `+` matches exactly one level, including an empty one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_7_1_3_single_level_wildcard_matches_one_level() {
    let broker = Broker::start();
    let (pub_id, sub_id) = ids_on_different_shards("spub", "ssub");
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(sub.subscribe("s/+/x", q(1)).await, vec![1]);
    let mut publ = MqttClient::connect(broker.port(), &pub_id).await;
    publ.publish("s/a/b/x", q(1), false, b"no").await; // two levels
    publ.publish("s/x", q(1), false, b"no").await; // zero levels
    publ.publish("s//x", q(1), false, b"empty level").await;
    publ.publish("s/a/x", q(1), false, b"a").await;
    assert_eq!(sub.recv_publish().await.topic, "s//x");
    assert_eq!(sub.recv_publish().await.topic, "s/a/x");
    sub.expect_no_publish(Duration::from_millis(300)).await;
}

/// [MQTT-4.7.2-1]: `#` and `+/...` do not match topics starting with `$`;
/// `$SYS/#` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_4_7_2_1_wildcards_do_not_match_dollar_topics() {
    let broker = Broker::start();
    let port = broker.port();
    let mut all = MqttClient::connect(port, &client_id_on(0, "hash")).await;
    assert_eq!(all.subscribe("#", q(1)).await, vec![1]);
    let mut plus = MqttClient::connect(port, &client_id_on(1, "plus")).await;
    assert_eq!(plus.subscribe("+/x", q(1)).await, vec![1]);
    let mut sys = MqttClient::connect(port, &client_id_on(1, "sys")).await;
    assert_eq!(sys.subscribe("$SYS/#", q(1)).await, vec![1]);

    let mut publ = MqttClient::connect(port, &client_id_on(0, "dpub")).await;
    publ.publish("$SYS/x", q(1), false, b"dollar").await;
    publ.publish("n/x", q(1), false, b"sentinel").await;

    let m = sys.recv_publish().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("$SYS/x", &b"dollar"[..])
    );
    sys.expect_no_publish(Duration::from_millis(300)).await;

    let m = all.recv_publish().await;
    assert_eq!(m.topic, "n/x", "`#` must not match `$SYS/x`");
    let m = plus.recv_publish().await;
    assert_eq!(m.topic, "n/x", "`+/x` must not match `$SYS/x`");
    all.expect_no_publish(Duration::from_millis(300)).await;
    plus.expect_no_publish(Duration::from_millis(10)).await;
}

/// [MQTT-3.8.4-5] / 3.9.3: an invalid topic filter is answered with
/// return code 0x80 for that filter only; the others are granted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_9_3_invalid_filter_gets_failure_code_0x80() {
    let broker = Broker::start();
    let (mut raw, _) = RawClient::connect(broker.port(), &client_id_on(0, "badf"), true);
    let codes = raw.subscribe(
        7,
        &[
            ("a/#/b", QoS::AtLeastOnce),
            ("ok/+", QoS::AtLeastOnce),
            ("a+", QoS::ExactlyOnce),
            ("x/#", QoS::ExactlyOnce),
            ("b/c#", QoS::AtMostOnce),
        ],
    );
    assert_eq!(codes, vec![0x80, 1, 0x80, 2, 0x80]);
    // The connection stays usable and the valid filter works.
    raw.publish("ok/1", QoS::AtMostOnce, 0, false, b"hi");
    let p = raw.read_publish(RECV_TIMEOUT);
    assert_eq!(&p.topic[..], "ok/1");
    assert_eq!(&p.payload[..], b"hi");
}

/// 3.10: after UNSUBACK no more messages are delivered for that filter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_10_4_unsubscribe_stops_delivery() {
    let broker = Broker::start();
    let (pub_id, sub_id) = ids_on_different_shards("upub", "usub");
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(sub.subscribe("u/t", q(1)).await, vec![1]);
    assert_eq!(sub.subscribe("u/sentinel", q(1)).await, vec![1]);
    let mut publ = MqttClient::connect(broker.port(), &pub_id).await;
    publ.publish("u/t", q(1), false, b"before").await;
    assert_eq!(sub.recv_publish().await.payload, &b"before"[..]);

    sub.unsubscribe("u/t").await;
    publ.publish("u/t", q(1), false, b"after").await;
    publ.publish("u/sentinel", q(1), false, b"sentinel").await;
    let m = sub.recv_publish().await;
    assert_eq!(m.topic, "u/sentinel", "delivered after UNSUBACK: {m:?}");
    sub.expect_no_publish(Duration::from_millis(300)).await;
}

/// Raw UNSUBSCRIBE is answered with UNSUBACK carrying the same packet id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_10_4_4_unsuback_has_same_packet_id() {
    let broker = Broker::start();
    let (mut raw, _) = RawClient::connect(broker.port(), &client_id_on(1, "unsraw"), true);
    assert_eq!(raw.subscribe(3, &[("r/t", QoS::AtMostOnce)]), vec![0]);
    // UNSUBSCRIBE id 0x1234, filter "r/t"
    raw.send(&[0xA2, 0x07, 0x12, 0x34, 0x00, 0x03, b'r', b'/', b't']);
    assert_eq!(
        raw.read_exact_bytes(4, RECV_TIMEOUT),
        vec![0xB0, 0x02, 0x12, 0x34]
    );
}

/// 3.12/3.13: PINGREQ is answered with exactly `D0 00`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_12_4_1_pingreq_gets_pingresp() {
    let broker = Broker::start();
    let (mut raw, _) = RawClient::connect(broker.port(), &client_id_on(0, "ping"), true);
    for _ in 0..3 {
        raw.send(&[0xC0, 0x00]);
        assert_eq!(raw.read_exact_bytes(2, RECV_TIMEOUT), vec![0xD0, 0x00]);
    }
}

/// A QoS 0 message published to a client's own subscription comes back
/// (no-local does not exist in 3.1.1).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn own_subscription_receives_own_publish() {
    let broker = Broker::start();
    let (mut raw, _) = RawClient::connect(broker.port(), &client_id_on(1, "self"), true);
    assert_eq!(raw.subscribe(1, &[("me/#", QoS::AtLeastOnce)]), vec![1]);
    raw.publish("me/x", QoS::AtLeastOnce, 9, false, b"loop");
    // PUBACK for our publish and the delivered PUBLISH, in either order.
    let mut got_puback = false;
    let mut got_publish = false;
    for _ in 0..2 {
        match raw.read_packet(RECV_TIMEOUT) {
            Packet::PubAck(a) => {
                assert_eq!(a.packet_id, 9);
                got_puback = true;
            }
            Packet::Publish(p) => {
                assert_eq!(&p.payload[..], b"loop");
                assert_eq!(p.qos, QoS::AtLeastOnce);
                assert_ne!(p.packet_id, 0);
                raw.puback(p.packet_id);
                got_publish = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(got_puback && got_publish);
}

/// SIGTERM shuts the broker down cleanly with exit status 0, even with
/// clients connected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_exits_zero_with_clients_connected() {
    let mut broker = Broker::start();
    let mut c = MqttClient::connect(broker.port(), &client_id_on(0, "term")).await;
    assert_eq!(c.subscribe("t", q(1)).await, vec![1]);
    let (_raw, _) = RawClient::connect(broker.port(), &client_id_on(1, "termraw"), true);
    let status = broker
        .stop(Duration::from_secs(5))
        .expect("broker did not exit within 5 s of SIGTERM");
    assert!(status.success(), "exit status {status:?}");
    c.expect_closed(Duration::from_secs(5)).await;
}

/// [MQTT-3.8.4-3]: subscribing again to the same filter replaces the
/// subscription (new QoS, still one copy).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_3_8_4_3_resubscribe_replaces_subscription() {
    let broker = Broker::start();
    let (pub_id, sub_id) = ids_on_different_shards("rspub", "rssub");
    let mut sub = MqttClient::connect(broker.port(), &sub_id).await;
    assert_eq!(sub.subscribe("rs/t", q(0)).await, vec![0]);
    assert_eq!(sub.subscribe("rs/t", q(2)).await, vec![2]);
    let mut publ = MqttClient::connect(broker.port(), &pub_id).await;
    publ.publish("rs/t", q(2), false, b"x").await;
    let m = sub.recv_publish().await;
    assert_eq!(m.qos, q(2), "the new subscription's QoS applies");
    sub.expect_no_publish(Duration::from_millis(500)).await;
}

/// [MQTT-3.10.4-5]: UNSUBSCRIBE of a filter that is not subscribed is
/// still answered with UNSUBACK.
#[test]
fn mqtt_3_10_4_5_unsubscribe_unknown_filter_gets_unsuback() {
    let broker = Broker::start();
    let (mut raw, _) = RawClient::connect(broker.port(), &client_id_on(0, "unsnone"), true);
    raw.send(&[0xA2, 0x07, 0x00, 0x05, 0x00, 0x03, b'n', b'/', b'o']);
    assert_eq!(
        raw.read_exact_bytes(4, RECV_TIMEOUT),
        vec![0xB0, 0x02, 0x00, 0x05]
    );
}

/// [MQTT-3.3.4-1]: a QoS 1 PUBLISH is answered with PUBACK carrying its id
/// (exact bytes), even with no subscriber.
#[test]
fn mqtt_3_3_4_1_qos1_publish_gets_puback() {
    let broker = Broker::start();
    let (mut raw, _) = RawClient::connect(broker.port(), &client_id_on(1, "puback"), true);
    for id in [1u16, 0x1234, 0xFFFF] {
        raw.publish("nobody/here", QoS::AtLeastOnce, id, false, b"x");
        let [hi, lo] = id.to_be_bytes();
        assert_eq!(
            raw.read_exact_bytes(4, RECV_TIMEOUT),
            vec![0x40, 0x02, hi, lo]
        );
    }
}

/// A second broker on a port that one already serves refuses to start
/// (SO_REUSEPORT would otherwise let the two split the clients), and the
/// first goes on serving.
#[test]
fn second_broker_on_a_taken_port_refuses_to_start() {
    let mut first = Broker::start();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
        .args(["--listen", &format!("mqtt://127.0.0.1:{}", first.port())])
        .args(["--shards", "1"])
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run a second ringmq");
    assert!(!out.status.success(), "second broker started: {out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already in use"), "stderr: {stderr}");
    assert!(first.is_running(), "the first broker died");
    let (mut raw, _) = RawClient::connect(first.port(), "after-refusal", true);
    raw.publish("x/y", QoS::AtLeastOnce, 9, false, b"still serving");
    assert_eq!(
        raw.read_exact_bytes(4, RECV_TIMEOUT),
        vec![0x40, 0x02, 0, 9]
    );
}

/// Bursts across shards, with pauses between them: within a burst the
/// shards tick and batches cross through the tick-drained lanes, between
/// bursts they go idle and batches cross through the waking channel. Every
/// message arrives once and in order through the switches, and a
/// subscription made mid-stream (its SUBACK waits on a barrier through the
/// same paths) gets everything published after its SUBACK.
#[test]
fn cross_shard_bursts_keep_order_across_lane_and_channel() {
    bursts_keep_order(&[]);
}

/// The same with pacing off (`--pace-us 0`): every batch crosses through
/// the waking channel.
#[test]
fn cross_shard_bursts_keep_order_without_pacing() {
    bursts_keep_order(&["--pace-us", "0"]);
}

fn bursts_keep_order(broker_args: &[&str]) {
    let broker = Broker::start_with(broker_args);
    let (mut publisher, _) = RawClient::connect(broker.port(), &client_id_on(0, "burst-pub"), true);
    let (mut sub, _) = RawClient::connect(broker.port(), &client_id_on(1, "burst-sub"), true);
    assert_eq!(sub.subscribe(1, &[("burst/t", QoS::AtMostOnce)]), vec![0]);
    const BURSTS: usize = 20;
    const PER_BURST: usize = 500;
    let mut late: Option<(RawClient, usize)> = None;
    for b in 0..BURSTS {
        let mut bytes = Vec::new();
        for i in 0..PER_BURST {
            let n = (b * PER_BURST + i).to_string();
            let mut out = bytes::BytesMut::new();
            ringmq::protocol::encode(
                &publish_packet("burst/t", QoS::AtMostOnce, 0, false, false, n.as_bytes()),
                V311,
                &mut out,
            );
            bytes.extend_from_slice(&out);
        }
        publisher.send(&bytes);
        if b == BURSTS / 2 {
            let (mut c, _) =
                RawClient::connect(broker.port(), &client_id_on(1, "burst-late"), true);
            assert_eq!(c.subscribe(1, &[("burst/t", QoS::AtMostOnce)]), vec![0]);
            late = Some((c, (b + 1) * PER_BURST));
        }
        std::thread::sleep(Duration::from_millis(if b % 2 == 0 { 5 } else { 0 }));
    }
    for n in 0..BURSTS * PER_BURST {
        let p = sub.read_publish(Duration::from_secs(10));
        assert_eq!(
            std::str::from_utf8(&p.payload).unwrap(),
            n.to_string(),
            "message {n} lost, repeated or out of order"
        );
    }
    let (mut late, first_after) = late.expect("late subscriber");
    // Everything after its SUBACK, in order (some earlier ones may come too).
    let mut expect = None;
    loop {
        let p = late.read_publish(Duration::from_secs(10));
        let n: usize = std::str::from_utf8(&p.payload).unwrap().parse().unwrap();
        if let Some(e) = expect {
            assert_eq!(n, e, "late subscriber: out of order");
        } else {
            assert!(
                n <= first_after,
                "late subscriber missed {first_after}..{n}"
            );
        }
        expect = Some(n + 1);
        if n == BURSTS * PER_BURST - 1 {
            break;
        }
    }
}
