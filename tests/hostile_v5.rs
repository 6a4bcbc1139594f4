//! Hostile input against the MQTT 5.0 features, one class per test, from
//! raw sockets: topic alias tables a client tries to grow, a client that
//! asks for a receive maximum of 1 and never acknowledges, and one client in
//! a thousand shared groups that never reads. Each asserts the broker's
//! answer, its survival, service to a fresh pair of clients, and a bound on
//! its resident memory.

mod common;

use std::time::Duration;

use common::hostile_kit::*;
use common::*;
use ringmq::protocol::{Packet, Properties, QoS};

/// A 5.0 connection whose CONNECT carries `props`.
fn connect_v5_with(port: u16, id: &str, props: Properties) -> RawV5 {
    RawV5::connect_with(port, id, Some(props)).0
}

fn long_topic(prefix: &str, i: usize) -> String {
    format!("{prefix}/{i}/{}", "x".repeat(900))
}

/// Hostile class: topic alias tables. A subscriber allows 65,535 aliases
/// and gets messages on 500 distinct 1 KB topics: the broker assigns at
/// most its own maximum (64) and sends the rest in full. A publisher
/// rebinds aliases 1..=64 to 6,400 distinct 1 KB topics: the table stays at
/// 64 entries (memory bound), and alias 65 is refused with 0x94.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alias_tables_stay_bounded() {
    let mut broker = Broker::start();
    let port = broker.port();
    let baseline = warm_baseline(&broker, "alias").await;

    let mut sub = connect_v5_with(
        port,
        &client_id_on(0, "alias-sub"),
        Properties {
            topic_alias_maximum: Some(u16::MAX),
            ..Default::default()
        },
    );
    assert_eq!(sub.subscribe(1, &[("ta/#", QoS::AtMostOnce)]), [0]);
    let mut publ = connect_v5_with(port, &client_id_on(1, "alias-pub"), Properties::default());
    for i in 0..500 {
        publ.send_packet(&v5_publish(
            &long_topic("ta", i),
            QoS::AtMostOnce,
            0,
            b"m",
            Properties::default(),
        ));
    }
    // Topic 0 again: by now it has alias 1.
    publ.send_packet(&v5_publish(
        &long_topic("ta", 0),
        QoS::AtMostOnce,
        0,
        b"again",
        Properties::default(),
    ));
    let mut aliases = std::collections::BTreeSet::new();
    for i in 0..500 {
        let Packet::Publish(p) = sub.read_packet(RECV_TIMEOUT) else {
            panic!("expected PUBLISH {i}");
        };
        let alias = p.properties.as_ref().and_then(|p| p.topic_alias);
        assert_eq!(
            p.topic,
            long_topic("ta", i),
            "first sight of a topic: in full"
        );
        match alias {
            Some(a) => {
                assert!((1..=64).contains(&a), "alias {a} beyond the broker's 64");
                aliases.insert(a);
            }
            None => assert!(i >= 64, "topic {i}: no alias while the table had room"),
        }
    }
    assert_eq!(aliases.len(), 64, "the broker assigns its 64 aliases");
    let Packet::Publish(again) = sub.read_packet(RECV_TIMEOUT) else {
        panic!("expected the repeated PUBLISH");
    };
    assert!(again.topic.is_empty(), "a known topic goes by its alias");
    assert_eq!(again.properties.and_then(|p| p.topic_alias), Some(1));

    for round in 0..100 {
        for alias in 1..=64u16 {
            publ.send_packet(&v5_publish(
                &long_topic(&format!("rebind{round}"), usize::from(alias)),
                QoS::AtMostOnce,
                0,
                b"r",
                Properties {
                    topic_alias: Some(alias),
                    ..Default::default()
                },
            ));
        }
    }
    publ.ping();
    let peak = peak_rss_over(&broker, Duration::from_millis(500)).await;
    assert_growth_below(
        "6,400 alias rebinds of 1 KB topics",
        baseline,
        peak,
        32 * MB,
    );
    publ.send_packet(&v5_publish(
        "ta/over",
        QoS::AtMostOnce,
        0,
        b"x",
        Properties {
            topic_alias: Some(65),
            ..Default::default()
        },
    ));
    publ.expect_disconnect(0x94, "Topic Alias 65 (maximum 64)");
    assert_survives(&mut broker, "alias").await;
}

/// Hostile class: a client that asks for a Receive Maximum of 1 and never
/// acknowledges, while 20,000 QoS 1 messages of 1 KB arrive for it. It gets
/// exactly one PUBLISH; the rest wait in its bounded queue or are dropped
/// (counted), so the broker grows by far less than the 20 MB sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receive_maximum_one_without_acks_is_bounded() {
    let mut broker = Broker::start();
    let port = broker.port();
    let baseline = warm_baseline(&broker, "rm1").await;
    let mut slow = connect_v5_with(
        port,
        &client_id_on(0, "rm1-slow"),
        Properties {
            receive_maximum: Some(1),
            ..Default::default()
        },
    );
    assert_eq!(slow.subscribe(1, &[("rm/#", QoS::AtLeastOnce)]), [1]);
    let mut publ = RawClient::connect(port, &client_id_on(1, "rm1-pub"), true).0;
    let payload = vec![7u8; 1000];
    let mut batch = Vec::new();
    for i in 0..20_000u32 {
        let id = (i % 60_000 + 1) as u16;
        batch.extend(encode(&publish_packet(
            "rm/t",
            QoS::AtLeastOnce,
            id,
            false,
            false,
            &payload,
        )));
        if batch.len() > 256 << 10 {
            publ.send(&batch);
            batch.clear();
        }
    }
    publ.send(&batch);
    let peak = peak_rss_over(&broker, Duration::from_millis(2000)).await;
    let Packet::Publish(first) = slow.read_packet(RECV_TIMEOUT) else {
        panic!("expected the first PUBLISH");
    };
    assert_eq!(first.qos, QoS::AtLeastOnce);
    match slow.read_outcome(Duration::from_millis(500)) {
        ReadOutcome::TimedOut => {}
        other => panic!("a second PUBLISH beyond Receive Maximum 1: {other:?}"),
    }
    assert_growth_below(
        "20,000 x 1 KB QoS 1 to a receive-maximum-1 client",
        baseline,
        peak,
        16 * MB,
    );
    assert_survives(&mut broker, "rm1").await;
}

/// Hostile class: one client in 1,000 shared groups of one topic (each
/// group gets its own copy, so one PUBLISH asks for 1,000 deliveries to
/// it), which never reads, while 2,000 QoS 1 messages of 4 KB arrive: 8 GB
/// asked for. Its outbox and queue bounds hold: the broker grows by less
/// than 64 MB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_groups_do_not_amplify_past_the_bounds() {
    let mut broker = Broker::start();
    let port = broker.port();
    let baseline = warm_baseline(&broker, "amp").await;
    let groups: Vec<String> = (0..1000).map(|i| format!("$share/g{i}/amp/t")).collect();
    let filters: Vec<(&str, QoS)> = groups
        .iter()
        .map(|g| (g.as_str(), QoS::AtLeastOnce))
        .collect();
    let mut hog = RawClient::open_with_rcvbuf(port, 4096);
    hog.send_packet(&Packet::Connect(Box::new(connect_packet(
        &client_id_on(0, "amp-hog"),
        true,
        60,
        None,
    ))));
    assert!(matches!(hog.read_packet(RECV_TIMEOUT), Packet::ConnAck(a) if a.code == 0));
    let codes = hog.subscribe(1, &filters);
    assert!(codes.iter().all(|&c| c == 1), "{codes:02X?}");

    let mut publ = RawClient::connect(port, &client_id_on(1, "amp-pub"), true).0;
    let payload = vec![3u8; 4096];
    for i in 0..2000u32 {
        publ.send(&encode(&publish_packet(
            "amp/t",
            QoS::AtLeastOnce,
            (i + 1) as u16,
            false,
            false,
            &payload,
        )));
    }
    let peak = peak_rss_over(&broker, Duration::from_millis(2500)).await;
    assert_broker_healthy(port, "amp-by").await;
    let peak = peak.max(peak_rss_over(&broker, Duration::from_millis(500)).await);
    assert_growth_below(
        "1,000 shared groups x 2,000 x 4 KB to a non-reader",
        baseline,
        peak,
        64 * MB,
    );
    drop(hog);
    assert_survives(&mut broker, "amp").await;
}
