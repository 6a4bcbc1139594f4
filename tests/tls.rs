//! MQTT over TLS (`mqtts://`) and secure WebSocket (`wss://`) end to end,
//! against the real `ringmq` binary with a PKI made at run time by the
//! `openssl` CLI (`common::tls_kit`).
//!
//! Clients: rumqttc over rustls (3.1.1 and 5.0, mqtts and wss, with and
//! without a client certificate), `mosquitto_pub`/`mosquitto_sub` (OpenSSL),
//! `openssl s_client`, and a blocking rustls client for what only the
//! handshake shows (the server's certificate after a SIGHUP, ALPN, the
//! protocol version) and for the hostile cases (garbage, plaintext MQTT,
//! stalled handshakes, a storm of 2,000 handshakes).
//!
//! Every wait has a timeout so that no test can hang. A broker without TLS
//! refuses the `mqtts://` listener and exits: each test then fails at once
//! with its stderr.

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::tls_clients::*;
use common::tls_kit::*;
use common::{client_id_on, q, url_port, Broker, MqttClient, RECV_TIMEOUT};
use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5::{Packet as V5Packet, PublishProperties};

#[test]
fn ready_line_lists_every_listener_in_the_order_given() {
    let pki = Pki::generate();
    let b = start_tls(&pki, &[]);
    let words: Vec<&str> = b.ready_line().split_whitespace().collect();
    assert_eq!(words.len(), 4, "ready line: {:?}", b.ready_line());
    assert!(words[0].starts_with("mqtt://127.0.0.1:"), "{words:?}");
    assert!(words[1].starts_with("mqtts://127.0.0.1:"), "{words:?}");
    assert!(
        words[2].starts_with("wss://127.0.0.1:") && words[2].ends_with("/mqtt"),
        "{words:?}"
    );
    assert_eq!(words[3], "shards=2");
    let ports = [b.port(), b.mqtts_port(), b.wss_port()];
    assert!(ports.iter().all(|p| *p != 0), "{ports:?}");
    assert!(ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2]);
    drop(b);

    // Another order, and a wss:// listener without a path gets /mqtt.
    let tls = pki.server_args();
    let args: Vec<&str> = tls.iter().map(String::as_str).collect();
    let listeners = ["wss://127.0.0.1:0", "mqtts://127.0.0.1:0"];
    let b = Broker::start_listeners(&listeners, &args);
    let words: Vec<&str> = b.ready_line().split_whitespace().collect();
    assert_eq!(words.len(), 4, "ready line: {:?}", b.ready_line());
    assert!(words[0].starts_with("mqtt://"), "{words:?}");
    assert!(
        words[1].starts_with("wss://127.0.0.1:") && words[1].ends_with("/mqtt"),
        "{words:?}"
    );
    assert!(words[2].starts_with("mqtts://127.0.0.1:"), "{words:?}");
    assert_eq!(b.wss_port(), url_port(words[1]));
}

/// The server key may be SEC1 (EC), PKCS#8 or PKCS#1 (RSA): each broker
/// presents its certificate and serves a CONNECT over it.
#[test]
fn server_key_in_sec1_pkcs8_and_rsa_form() {
    let pki = Pki::generate();
    let cases = [
        ("SEC1 EC key", &pki.server_cert, &pki.server_key, SERVER_CN),
        (
            "PKCS#8 EC key",
            &pki.server_cert,
            &pki.server_key_pkcs8,
            SERVER_CN,
        ),
        (
            "PKCS#1 RSA key",
            &pki.server2_cert,
            &pki.server2_key,
            SERVER2_CN,
        ),
    ];
    for (what, cert, key, cn) in cases {
        let b = start_tls_with(&tls_args(cert, key), &[]);
        let h = handshake(b.mqtts_port(), &pki.ca, &ProbeOpts::default())
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        assert_eq!(h.peer_cn, cn, "{what}");
        tls_mqtt_connect(b.mqtts_port(), &pki.ca, &ProbeOpts::default(), "key-form")
            .unwrap_or_else(|e| panic!("{what}: {e}"));
    }
}

/// A broker refuses to start with a key that does not match the
/// certificate, or a certificate file that holds none.
#[test]
fn mismatched_or_missing_certificate_refused_at_start() {
    let pki = Pki::generate();
    // The control: the same command line with a good pair starts.
    drop(start_tls(&pki, &[]));
    let not_pem = pki.write("not-a-cert.pem", "hello\n");
    for (what, cert, key) in [
        (
            "key of another certificate",
            &pki.server_cert,
            &pki.server2_key,
        ),
        ("no certificate in the file", &not_pem, &pki.server_key),
    ] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ringmq"))
            .args(["--listen", "mqtts://127.0.0.1:0", "--shards", "2"])
            .args(tls_args(cert, key))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn ringmq");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut out = String::new();
        let _ = child.stdout.take().map(|mut s| s.read_to_string(&mut out));
        let status = status.unwrap_or_else(|| panic!("{what}: the broker kept running"));
        assert!(!status.success(), "{what}: exit status {status:?}");
        assert!(!out.contains("ready "), "{what}: it printed {out:?}");
    }
}

// ---------------------------------------------------------------------------
// Publish and subscribe over TLS
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtts_publish_subscribe_qos_0_1_2_and_256_kib() {
    let pki = Pki::generate();
    let b = start_tls(&pki, &[]);
    let mut sub = mqtts(&b, &pki, &client_id_on(0, "tls-sub")).await;
    let mut publ = mqtts(&b, &pki, &client_id_on(1, "tls-pub")).await;
    assert_eq!(sub.subscribe("tls/q/#", q(2)).await, vec![2]);
    for n in 0..=2u8 {
        let payload = format!("over tls at qos {n}");
        publ.publish(&format!("tls/q/{n}"), q(n), false, payload.as_bytes())
            .await;
        let m = sub.recv_publish().await;
        assert_eq!(m.topic, format!("tls/q/{n}"));
        assert_eq!(&m.payload[..], payload.as_bytes());
        assert_eq!(m.qos, q(n));
    }
    // Larger than one TLS record (16 KiB): the broker reassembles.
    let big: Vec<u8> = (0..256 * 1024u32)
        .map(|i| ((i * 7919) >> 3) as u8)
        .collect();
    publ.publish("tls/q/big", q(1), false, &big).await;
    let m = sub.recv_publish().await;
    assert_eq!(m.payload.len(), big.len());
    assert!(m.payload[..] == big[..], "256 KiB payload differs");
    sub.expect_no_publish(Duration::from_millis(300)).await;
}

/// One subscriber per transport; each transport publishes once; every
/// subscriber gets all three.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cross_transport_tcp_mqtts_wss() {
    let pki = Pki::generate();
    let b = start_tls(&pki, &[]);
    let mut clients = [
        MqttClient::connect(b.port(), &client_id_on(0, "x-tcp")).await,
        mqtts(&b, &pki, &client_id_on(1, "x-mqtts")).await,
        wss(&b, &pki, &client_id_on(0, "x-wss"), None).await,
    ];
    for c in clients.iter_mut() {
        assert_eq!(c.subscribe("x/#", q(1)).await, vec![1], "{}", c.id);
    }
    for (i, via) in ["tcp", "mqtts", "wss"].iter().enumerate() {
        let topic = format!("x/from-{via}");
        clients[i]
            .publish(&topic, q(1), false, via.as_bytes())
            .await;
        for c in clients.iter_mut() {
            let m = c.recv_publish().await;
            assert_eq!(
                (m.topic.as_str(), &m.payload[..]),
                (&topic[..], via.as_bytes()),
                "{}",
                c.id
            );
        }
    }
    for c in clients.iter_mut() {
        c.expect_no_publish(Duration::from_millis(200)).await;
    }
}

/// Polls a v5 event loop until `f` accepts an incoming packet.
async fn v5_wait<T>(
    el: &mut v5::EventLoop,
    what: &str,
    mut f: impl FnMut(&V5Packet) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + RECV_TIMEOUT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match tokio::time::timeout(left, el.poll()).await {
            Ok(Ok(v5::Event::Incoming(p))) => {
                if let Some(t) = f(&p) {
                    return t;
                }
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => panic!("v5 client: error while waiting for {what}: {e}"),
            Err(_) => panic!("v5 client: no {what} within {RECV_TIMEOUT:?}"),
        }
    }
}

/// A v5 client over mqtts and one over wss: CONNACK, SUBACK, and a PUBLISH
/// whose user properties and content type pass through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt5_over_mqtts_and_wss() {
    let pki = Pki::generate();
    let b = start_tls(&pki, &[]);
    let mut o = v5::MqttOptions::new("v5-tls-sub", "127.0.0.1", b.mqtts_port());
    o.set_transport(rumqttc::Transport::tls_with_config(rumqttc_tls(
        &pki.ca, None, true,
    )));
    let (sub, mut sub_el) = v5::AsyncClient::new(o, 10);
    let code = v5_wait(&mut sub_el, "CONNACK", |p| match p {
        V5Packet::ConnAck(a) => Some(a.code),
        _ => None,
    })
    .await;
    assert_eq!(code, v5::mqttbytes::v5::ConnectReturnCode::Success);
    sub.subscribe("v5/tls", v5::mqttbytes::QoS::AtLeastOnce)
        .await
        .unwrap();
    let codes = v5_wait(&mut sub_el, "SUBACK", |p| match p {
        V5Packet::SubAck(s) => Some(s.return_codes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(
        codes,
        vec![v5::mqttbytes::v5::SubscribeReasonCode::Success(
            v5::mqttbytes::QoS::AtLeastOnce
        )]
    );

    let mut o = v5::MqttOptions::new("v5-wss-pub", b.wss_url(), b.wss_port());
    o.set_transport(rumqttc::Transport::wss_with_config(rumqttc_tls(
        &pki.ca, None, false,
    )));
    let (publ, mut pub_el) = v5::AsyncClient::new(o, 10);
    v5_wait(&mut pub_el, "CONNACK (wss)", |p| {
        matches!(p, V5Packet::ConnAck(_)).then_some(())
    })
    .await;
    let props = PublishProperties {
        user_properties: vec![("k".into(), "v1".into()), ("k".into(), "v2".into())],
        content_type: Some("text/plain".into()),
        ..Default::default()
    };
    publ.publish_with_properties(
        "v5/tls",
        v5::mqttbytes::QoS::AtLeastOnce,
        false,
        "hi",
        props,
    )
    .await
    .unwrap();
    v5_wait(&mut pub_el, "PUBACK", |p| {
        matches!(p, V5Packet::PubAck(_)).then_some(())
    })
    .await;
    let m = v5_wait(&mut sub_el, "PUBLISH", |p| match p {
        V5Packet::Publish(m) => Some(m.clone()),
        _ => None,
    })
    .await;
    assert_eq!((&m.topic[..], &m.payload[..]), (&b"v5/tls"[..], &b"hi"[..]));
    let p = m.properties.expect("publish properties");
    assert_eq!(
        p.user_properties,
        vec![("k".into(), "v1".into()), ("k".into(), "v2".into())]
    );
    assert_eq!(p.content_type.as_deref(), Some("text/plain"));
}

/// mosquitto_sub over mqtts gets what mosquitto_pub (5.0, TLS 1.2) sends
/// over mqtts; a rumqttc TCP client gets it too; a client that does not
/// trust the broker's CA fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_clients_over_mqtts() {
    let pki = Pki::generate();
    let b = start_tls(&pki, &[]);
    let port = b.mqtts_port();
    let mut tcp = MqttClient::connect(b.port(), "mosq-watch").await;
    assert_eq!(tcp.subscribe("mosq/tls", q(1)).await, vec![1]);
    let mut sub = std::process::Command::new("mosquitto_sub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "--cafile"])
        .arg(&pki.ca)
        .args([
            "-V", "mqttv311", "-t", "mosq/tls", "-q", "1", "-C", "1", "-W", "8",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn mosquitto_sub");
    // Its SUBACK cannot be seen through a pipe: publish until it has
    // received one message (-C 1) and left.
    let deadline = Instant::now() + Duration::from_secs(9);
    let args = [
        "-V",
        "mqttv5",
        "--tls-version",
        "tlsv1.2",
        "-t",
        "mosq/tls",
        "-m",
        "hello-tls",
        "-q",
        "1",
    ];
    while sub.try_wait().expect("wait").is_none() && Instant::now() < deadline {
        let (ok, out) = mosquitto_pub_tls(port, &pki.ca, &args).await;
        assert!(ok, "mosquitto_pub over mqtts: {out}");
        let m = tcp.recv_publish().await;
        assert_eq!(&m.payload[..], b"hello-tls");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if sub.try_wait().expect("wait").is_none() {
        let _ = sub.kill();
    }
    let out = sub.wait_with_output().expect("mosquitto_sub output");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.trim() == "hello-tls",
        "mosquitto_sub over mqtts: {:?} {text:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let (ok, out) = mosquitto_pub_tls(
        port,
        &pki.rogue_ca,
        &["-t", "mosq/tls", "-m", "x", "-q", "1"],
    )
    .await;
    assert!(!ok, "mosquitto_pub trusting another CA connected: {out}");
}

/// `GET /` on the wss:// listener serves the broker's page over https.
#[test]
fn wss_listener_serves_the_page_over_https() {
    let pki = Pki::generate();
    let b = start_tls(&pki, &[]);
    let mut h = handshake(b.wss_port(), &pki.ca, &ProbeOpts::default()).expect("handshake");
    h.tls
        .write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .expect("write GET");
    let mut got = Vec::new();
    let deadline = Instant::now() + RECV_TIMEOUT;
    let mut buf = [0u8; 4096];
    while !got.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match h.tls.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "read the response: {e} (got {:?})",
                String::from_utf8_lossy(&got)
            ),
        }
    }
    let head = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/html"), "{head}");
}

// ---------------------------------------------------------------------------
// Client certificates
// ---------------------------------------------------------------------------

#[test]
fn alpn_mqtt_negotiated_and_sni_accepted() {
    let pki = Pki::generate();
    let b = start_tls(&pki, &[]);
    let port = b.mqtts_port();
    let (_, out) = s_client(
        port,
        &pki.ca,
        &["-alpn", "mqtt", "-servername", "localhost"],
    );
    assert!(
        out.contains("ALPN protocol: mqtt"),
        "openssl s_client -alpn mqtt:\n{out}"
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    let sni_alpn = ProbeOpts {
        alpn: vec![b"mqtt"],
        server_name: Some("localhost".into()),
        ..ProbeOpts::default()
    };
    let h = handshake(port, &pki.ca, &sni_alpn).expect("rustls with SNI and ALPN");
    assert_eq!(h.alpn.as_deref(), Some(&b"mqtt"[..]));
    assert_eq!(h.peer_cn, SERVER_CN);
    tls_mqtt_connect(port, &pki.ca, &sni_alpn, "alpn-sni").expect("CONNECT with SNI and ALPN");
    // No ALPN and no SNI (an IP address) are fine too.
    let h = handshake(port, &pki.ca, &ProbeOpts::default()).expect("rustls without ALPN");
    assert_eq!(h.alpn, None);
    tls_mqtt_connect(port, &pki.ca, &ProbeOpts::default(), "no-alpn").expect("CONNECT, no ALPN");
}

/// TLS 1.2 and 1.3 are accepted; 1.1 and 1.0 are refused (OpenSSL's
/// client made able to offer them with `@SECLEVEL=0`).
#[test]
fn tls_1_2_and_1_3_only() {
    let pki = Pki::generate();
    let b = start_tls(&pki, &[]);
    for (port, listener) in [(b.mqtts_port(), "mqtts"), (b.wss_port(), "wss")] {
        for (v, want) in [
            (0x0303, rustls::ProtocolVersion::TLSv1_2),
            (0x0304, rustls::ProtocolVersion::TLSv1_3),
        ] {
            let opts = ProbeOpts {
                versions: vec![v],
                ..ProbeOpts::default()
            };
            let h = handshake(port, &pki.ca, &opts)
                .unwrap_or_else(|e| panic!("{listener}: {want:?} refused: {e}"));
            assert_eq!(h.version, Some(want), "{listener}");
        }
        for old in ["-tls1_1", "-tls1"] {
            let (ok, out) = s_client(port, &pki.ca, &[old, "-cipher", "DEFAULT:@SECLEVEL=0"]);
            assert!(!ok, "{listener}: openssl s_client {old} succeeded:\n{out}");
            assert!(
                out.contains("Cipher is (NONE)"),
                "{listener}: {old}:\n{out}"
            );
        }
    }
    let r = tls_mqtt_connect(b.mqtts_port(), &pki.ca, &ProbeOpts::default(), "after-old");
    r.expect("a TLS 1.3 client after the refusals");
}

// ---------------------------------------------------------------------------
// Hostile input on the TLS port
// ---------------------------------------------------------------------------
