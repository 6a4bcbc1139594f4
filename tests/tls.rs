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

use std::collections::VecDeque;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::hostile_kit::{assert_growth_below, MB};
use common::tls_kit::*;
use common::{
    assert_broker_healthy, client_id_on, connect_packet, encode, q, url_port, Broker, MqttClient,
    RawClient, RECV_TIMEOUT,
};
use ringmq::protocol::Packet;
use rumqttc::v5;
use rumqttc::v5::mqttbytes::v5::{Packet as V5Packet, PublishProperties};

/// Bound on the broker's answer to hostile input (close).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// rumqttc over mqtts, trusting the test CA, offering ALPN `mqtt`.
async fn mqtts(b: &Broker, pki: &Pki, id: &str) -> MqttClient {
    let tls = rumqttc_tls(&pki.ca, None, true);
    connect_tls(mqtts_options(b, id, tls), &format!("{id} (mqtts)")).await
}

/// Same with a client certificate.
async fn mqtts_as(b: &Broker, pki: &Pki, id: &str, cert: &ClientCert) -> MqttClient {
    let tls = rumqttc_tls(&pki.ca, Some(cert), true);
    connect_tls(
        mqtts_options(b, id, tls),
        &format!("{id} (mqtts, {})", cert.cn),
    )
    .await
}

/// rumqttc over wss, trusting the test CA.
async fn wss(b: &Broker, pki: &Pki, id: &str, cert: Option<&ClientCert>) -> MqttClient {
    let tls = rumqttc_tls(&pki.ca, cert, false);
    connect_tls(wss_options(b, id, tls), &format!("{id} (wss)")).await
}

/// Publishes at QoS 1 from `publ` and asserts `sub` receives it.
async fn assert_delivers(publ: &mut MqttClient, sub: &mut MqttClient, topic: &str, payload: &[u8]) {
    publ.publish(topic, q(1), false, payload).await;
    let m = sub.recv_publish().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        (topic, payload),
        "{}",
        sub.id
    );
}

/// A blocking tool run off the runtime's workers.
async fn tool(cmd: &'static str, args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || run_tool(cmd, &args, Duration::from_secs(10)))
        .await
        .expect("tool thread")
}

/// `mosquitto_pub -h 127.0.0.1 -p PORT --cafile CA ARGS`.
async fn mosquitto_pub_tls(port: u16, ca: &Path, args: &[&str]) -> (bool, String) {
    let mut all = vec!["-h", "127.0.0.1", "-p"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    all.extend([port.to_string(), "--cafile".into(), path_str(ca)]);
    all.extend(args.iter().map(|s| s.to_string()));
    tool("mosquitto_pub", all).await
}

fn cert_args(c: &ClientCert) -> Vec<String> {
    vec![
        "--cert".into(),
        path_str(&c.cert),
        "--key".into(),
        path_str(&c.key),
    ]
}

// ---------------------------------------------------------------------------
// Listeners and the ready line
// ---------------------------------------------------------------------------

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

/// Publishes at QoS 1 to `topic` and asserts `c` (subscribed to it) gets
/// it back: the connection is still served.
async fn assert_self_round_trip(c: &mut MqttClient, topic: &str, payload: &[u8]) {
    c.publish(topic, q(1), false, payload).await;
    let m = c.recv_publish().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        (topic, payload),
        "{}",
        c.id
    );
}

/// A blocking client's CONNECT, run off the runtime's workers.
async fn tls_mqtt_connect_async(
    port: u16,
    ca: &Path,
    opts: ProbeOpts,
    id: &str,
) -> Result<(), String> {
    let (ca, id) = (ca.to_path_buf(), id.to_string());
    tokio::task::spawn_blocking(move || tls_mqtt_connect(port, &ca, &opts, &id))
        .await
        .expect("blocking client thread")
}

/// A new handshake's server certificate CN, off the runtime's workers.
async fn peer_cn(port: u16, ca: &Path) -> Result<String, String> {
    let ca = ca.to_path_buf();
    tokio::task::spawn_blocking(move || {
        handshake(port, &ca, &ProbeOpts::default()).map(|h| h.peer_cn)
    })
    .await
    .expect("blocking client thread")
}

/// Lines at INFO or above that speak of TLS, handshakes or certificates.
fn tls_log_lines(b: &Broker) -> usize {
    b.stderr()
        .lines()
        .filter(|l| !l.contains("DEBUG") && !l.contains("TRACE"))
        .map(str::to_ascii_lowercase)
        .filter(|l| l.contains("tls") || l.contains("handshake") || l.contains("certificate"))
        .count()
}

/// Waits (at most 5 s) until `n` more such lines than `before` were
/// logged, then asserts no more than `2 * n` (logged once, not a flood).
fn assert_logged_once_each(b: &Broker, before: usize, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while tls_log_lines(b) < before + n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    let logged = tls_log_lines(b) - before;
    assert!(
        (n..=2 * n).contains(&logged),
        "{what}: {n} refused handshakes logged {logged} lines mentioning tls/handshake/certificate \
         at INFO or above (expected one each)\n{}",
        b.stderr()
    );
}

/// `--tls-client-ca`: alice's certificate works on mqtts and wss; no
/// certificate, an expired one and one from another CA each fail (rumqttc
/// over mqtts and wss, the blocking client), each logged once, while alice
/// keeps being served and the plain TCP listener asks for nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_certificate_required_and_verified() {
    let pki = Pki::generate();
    let b = start_tls(&pki, &["--tls-client-ca", &path_str(&pki.ca)]);
    let mut alice = mqtts_as(&b, &pki, &client_id_on(0, "cc-alice"), &pki.alice).await;
    assert_eq!(alice.subscribe("cc/#", q(1)).await, vec![1]);
    let mut bob = wss(&b, &pki, &client_id_on(1, "cc-bob"), Some(&pki.bob)).await;
    assert_delivers(&mut bob, &mut alice, "cc/bob", b"over wss with a cert").await;
    let port = b.mqtts_port();
    tls_mqtt_connect_async(port, &pki.ca, ProbeOpts::with_cert(&pki.alice), "cc-probe")
        .await
        .expect("alice, blocking client");

    let cases = [
        ("no certificate", None),
        ("an expired certificate", Some(&pki.expired)),
        ("a certificate from another CA", Some(&pki.rogue)),
    ];
    for (what, cert) in cases {
        let before = tls_log_lines(&b);
        let t0 = Instant::now();
        let o = mqtts_options(&b, "cc-bad", rumqttc_tls(&pki.ca, cert, true));
        let r = try_connect(o, HANDSHAKE_TIMEOUT).await;
        assert!(r.is_err(), "{what}: rumqttc over mqtts connected");
        let o = wss_options(&b, "cc-bad-wss", rumqttc_tls(&pki.ca, cert, false));
        let r = try_connect(o, HANDSHAKE_TIMEOUT).await;
        assert!(r.is_err(), "{what}: rumqttc over wss connected");
        let probe = ProbeOpts {
            client: cert.cloned(),
            ..ProbeOpts::default()
        };
        let r = tls_mqtt_connect_async(port, &pki.ca, probe, "cc-bad-sync").await;
        assert!(r.is_err(), "{what}: the blocking client connected");
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "{what}: three refusals took {:?}",
            t0.elapsed()
        );
        assert_self_round_trip(&mut alice, "cc/alice", what.as_bytes()).await;
        assert_logged_once_each(&b, before, 3, what);
    }

    // mosquitto_pub (OpenSSL) with and without a certificate.
    let mut args = cert_args(&pki.alice);
    args.extend(["-t", "cc/mosq", "-m", "with-cert", "-q", "1"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = mosquitto_pub_tls(port, &pki.ca, &args).await;
    assert!(ok, "mosquitto_pub with alice's certificate: {out}");
    let m = alice.recv_publish().await;
    assert_eq!(&m.payload[..], b"with-cert");
    let (ok, out) = mosquitto_pub_tls(
        port,
        &pki.ca,
        &["-t", "cc/mosq", "-m", "no-cert", "-q", "1"],
    )
    .await;
    assert!(!ok, "mosquitto_pub without a certificate connected: {out}");
    alice.expect_no_publish(Duration::from_millis(300)).await;

    assert_broker_healthy(b.port(), "cc-tcp").await;
    assert_delivers(&mut bob, &mut alice, "cc/bob", b"still here").await;
}

/// `--tls-identity-as-username` with `--password-file` and `--acl-file`:
/// the certificate's CN is the username, so alice needs no password and
/// the ACL's `user alice` rules (and `%u` patterns) apply to her; bob's
/// publish to alice/x is not delivered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_as_username_with_password_file_and_acl() {
    let pki = Pki::generate();
    let passwd = pki.dir.join("passwd");
    for (i, (user, pass)) in [("alice", "alice-pw"), ("bob", "bob-pw")]
        .iter()
        .enumerate()
    {
        let mut args: Vec<String> = if i == 0 { vec!["-c".into()] } else { vec![] };
        args.extend([
            "-b".into(),
            path_str(&passwd),
            user.to_string(),
            pass.to_string(),
        ]);
        let (ok, out) = tool("/usr/bin/mosquitto_passwd", args).await;
        assert!(ok, "mosquitto_passwd: {out}");
    }
    let acl = pki.write(
        "acl",
        "user alice\ntopic readwrite alice/#\n\nuser bob\ntopic readwrite bob/#\n\n\
         pattern readwrite users/%u/#\n",
    );
    let b = start_tls(
        &pki,
        &[
            "--tls-client-ca",
            &path_str(&pki.ca),
            "--tls-identity-as-username",
            "--password-file",
            &path_str(&passwd),
            "--acl-file",
            &path_str(&acl),
        ],
    );
    // Without a certificate (plain TCP) and without a password: refused.
    let o = rumqttc::MqttOptions::new("id-anon", "127.0.0.1", b.port());
    let r = try_connect(o, RECV_TIMEOUT).await;
    assert!(r.is_err(), "no certificate and no password, yet connected");

    let mut alice_sub = mqtts_as(&b, &pki, &client_id_on(0, "id-alice-sub"), &pki.alice).await;
    assert_eq!(alice_sub.subscribe("alice/#", q(1)).await, vec![1]);
    let mut alice_pub = mqtts_as(&b, &pki, &client_id_on(1, "id-alice-pub"), &pki.alice).await;
    assert_delivers(&mut alice_pub, &mut alice_sub, "alice/x", b"from alice").await;

    let mut bob = mqtts_as(&b, &pki, &client_id_on(1, "id-bob"), &pki.bob).await;
    // 3.1.1 cannot refuse a publish: bob gets his PUBACK, alice nothing.
    bob.publish("alice/x", q(1), false, b"from bob").await;
    alice_sub
        .expect_no_publish(Duration::from_millis(500))
        .await;

    // %u is the CN: bob reads and writes users/bob/#, alice does not read it.
    assert_eq!(bob.subscribe("users/bob/#", q(1)).await, vec![1]);
    let codes = alice_sub.subscribe("users/bob/#", q(1)).await;
    assert_self_round_trip(&mut bob, "users/bob/t", b"own").await;
    if codes != vec![0x80] {
        alice_sub
            .expect_no_publish(Duration::from_millis(500))
            .await;
    }

    // mosquitto_pub with alice's certificate and no -u/-P.
    let mut args = cert_args(&pki.alice);
    args.extend(["-t", "alice/mosq", "-m", "cert-only", "-q", "1"].map(String::from));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (ok, out) = mosquitto_pub_tls(b.mqtts_port(), &pki.ca, &args).await;
    assert!(ok, "mosquitto_pub with alice's certificate: {out}");
    let m = alice_sub.recv_publish().await;
    assert_eq!(
        (m.topic.as_str(), &m.payload[..]),
        ("alice/mosq", &b"cert-only"[..])
    );
}

// ---------------------------------------------------------------------------
// SIGHUP reload
// ---------------------------------------------------------------------------

/// Polls new handshakes on `port` (at most 5 s) until the server presents
/// `cn`.
async fn wait_for_peer_cn(port: u16, ca: &Path, cn: &str, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = peer_cn(port, ca).await;
        if got.as_deref() == Ok(cn) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: new handshakes still see {got:?}, not {cn:?}, 5 s after SIGHUP"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGHUP after the certificate and key files were replaced: connections
/// open before (mqtts and wss) keep working, new handshakes on both
/// listeners present the new certificate (rustls and `openssl s_client`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_without_dropping_connections() {
    let pki = Pki::generate();
    let cert = pki.copy_as(&pki.server_cert, "live.pem");
    let key = pki.copy_as(&pki.server_key, "live.key");
    let b = start_tls_with(&tls_args(&cert, &key), &[]);
    assert_eq!(
        peer_cn(b.mqtts_port(), &pki.ca).await.as_deref(),
        Ok(SERVER_CN)
    );
    let mut old_mqtts = mqtts(&b, &pki, &client_id_on(0, "hup-mqtts")).await;
    let mut old_wss = wss(&b, &pki, &client_id_on(1, "hup-wss"), None).await;
    assert_eq!(old_mqtts.subscribe("hup/#", q(1)).await, vec![1]);
    assert_eq!(old_wss.subscribe("hup/#", q(1)).await, vec![1]);

    replace_file(&pki.server2_cert, &cert);
    replace_file(&pki.server2_key, &key);
    b.sighup();
    wait_for_peer_cn(b.mqtts_port(), &pki.ca, SERVER2_CN, "mqtts").await;
    wait_for_peer_cn(b.wss_port(), &pki.ca, SERVER2_CN, "wss").await;
    let args = ["-showcerts", "-servername", "localhost"];
    let (_, out) = tokio::task::spawn_blocking({
        let (port, ca) = (b.mqtts_port(), pki.ca.clone());
        move || s_client(port, &ca, &args)
    })
    .await
    .unwrap();
    assert!(
        out.contains(&format!("CN = {SERVER2_CN}")),
        "openssl s_client after SIGHUP:\n{out}"
    );
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    // The connections from before are served both ways.
    let mut fresh = mqtts(&b, &pki, &client_id_on(1, "hup-new")).await;
    fresh.publish("hup/new", q(1), false, b"after reload").await;
    for c in [&mut old_mqtts, &mut old_wss] {
        let m = c.recv_publish().await;
        assert_eq!(&m.payload[..], b"after reload", "{}", c.id);
    }
    assert_eq!(fresh.subscribe("hup/old", q(1)).await, vec![1]);
    old_mqtts
        .publish("hup/old", q(1), false, b"old mqtts")
        .await;
    assert_eq!(&fresh.recv_publish().await.payload[..], b"old mqtts");
    old_wss.publish("hup/old", q(1), false, b"old wss").await;
    assert_eq!(&fresh.recv_publish().await.payload[..], b"old wss");
}

/// SIGHUP reloads the client CA too: after switching it to the other CA,
/// the rogue certificate is accepted, alice's is not, and alice's
/// connection from before is still served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_client_ca() {
    let pki = Pki::generate();
    let client_ca = pki.copy_as(&pki.ca, "live-client-ca.pem");
    let b = start_tls(&pki, &["--tls-client-ca", &path_str(&client_ca)]);
    let port = b.mqtts_port();
    let mut alice = mqtts_as(&b, &pki, &client_id_on(0, "ca-alice"), &pki.alice).await;
    assert_eq!(alice.subscribe("ca/#", q(1)).await, vec![1]);
    let rogue = ProbeOpts::with_cert(&pki.rogue);
    let r = tls_mqtt_connect_async(port, &pki.ca, rogue.clone(), "ca-rogue").await;
    assert!(
        r.is_err(),
        "the rogue certificate was accepted before the reload"
    );

    replace_file(&pki.rogue_ca, &client_ca);
    b.sighup();
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Err(e) = tls_mqtt_connect_async(port, &pki.ca, rogue.clone(), "ca-rogue").await {
        assert!(
            Instant::now() < deadline,
            "rogue certificate still refused 5 s after SIGHUP: {e}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = tls_mqtt_connect_async(port, &pki.ca, ProbeOpts::with_cert(&pki.alice), "ca-a2").await;
    assert!(
        r.is_err(),
        "alice's certificate accepted after the client CA changed"
    );
    assert_self_round_trip(&mut alice, "ca/alice", b"still served").await;
}

/// A SIGHUP while the key file is broken keeps the broker up and serving
/// TLS (with the certificate it had).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_key_keeps_serving() {
    let pki = Pki::generate();
    let cert = pki.copy_as(&pki.server_cert, "live.pem");
    let key = pki.copy_as(&pki.server_key, "live.key");
    let mut b = start_tls_with(&tls_args(&cert, &key), &[]);
    let mut c = mqtts(&b, &pki, "broken-key").await;
    assert_eq!(c.subscribe("bk", q(1)).await, vec![1]);
    replace_file(&pki.server2_cert, &cert);
    std::fs::write(
        &key,
        "-----BEGIN PRIVATE KEY-----\nbroken\n-----END PRIVATE KEY-----\n",
    )
    .expect("break the key");
    b.sighup();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        b.is_running(),
        "the broker died on a reload with a broken key"
    );
    assert_eq!(
        peer_cn(b.mqtts_port(), &pki.ca).await.as_deref(),
        Ok(SERVER_CN)
    );
    assert_self_round_trip(&mut c, "bk", b"after a failed reload").await;
    let mut fresh = mqtts(&b, &pki, "broken-key-2").await;
    assert_eq!(fresh.subscribe("bk2", q(1)).await, vec![1]);
    assert_self_round_trip(&mut fresh, "bk2", b"a new client").await;
}

// ---------------------------------------------------------------------------
// ALPN, SNI, protocol versions
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

/// Asserts the broker closes `c` within `CLOSE_TIMEOUT` without ever
/// sending a CONNACK (a TLS alert may come first).
fn assert_closed_without_connack(c: &mut RawClient, what: &str) {
    let got = c.expect_closed(CLOSE_TIMEOUT);
    assert_ne!(
        got.first(),
        Some(&0x20),
        "{what}: the broker answered with a CONNACK: {got:02X?}"
    );
    if let Some(&first) = got.first() {
        assert_eq!(
            first, 0x15,
            "{what}: expected nothing or a TLS alert, got {got:02X?}"
        );
    }
}

/// Garbage, HTTP, a TLS record with a junk body, and a plain MQTT CONNECT
/// on the mqtts port: each closed within 5 s with no CONNACK; the broker
/// keeps serving TLS and TCP clients.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_plaintext_on_the_tls_port_are_closed() {
    let pki = Pki::generate();
    let mut b = start_tls(&pki, &[]);
    let mut keeper = mqtts(&b, &pki, "hostile-keeper").await;
    assert_eq!(keeper.subscribe("keep", q(1)).await, vec![1]);
    let mut x: u32 = 0x2545_f491;
    let noise: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    let mut junk_record = vec![0x16, 0x03, 0x01, 0x02, 0x00];
    junk_record.extend_from_slice(&noise[..512]);
    let connect = encode(&Packet::Connect(Box::new(connect_packet(
        "plain", true, 30, None,
    ))));
    let cases: [(&str, Vec<u8>); 4] = [
        ("random bytes", noise.clone()),
        (
            "an HTTP request",
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("a handshake record with a junk body", junk_record),
        ("a plaintext MQTT CONNECT", connect),
    ];
    for port in [b.mqtts_port(), b.wss_port()] {
        for (what, bytes) in &cases {
            let (what, bytes) = (what.to_string(), bytes.clone());
            tokio::task::spawn_blocking(move || {
                let mut c = RawClient::open(port);
                c.send(&bytes);
                assert_closed_without_connack(&mut c, &what);
            })
            .await
            .expect("raw client");
        }
        assert_self_round_trip(&mut keeper, "keep", b"served").await;
    }
    assert!(b.is_running(), "the broker died");
    let mut fresh = mqtts(&b, &pki, "hostile-fresh").await;
    assert_eq!(fresh.subscribe("fresh", q(1)).await, vec![1]);
    assert_self_round_trip(&mut fresh, "fresh", b"ok").await;
    assert_broker_healthy(b.port(), "garbage").await;
}

/// Handshakes that never finish (the first 20 bytes of a real ClientHello,
/// then silence) and finished handshakes never followed by a CONNECT are
/// closed by `--connect-timeout`; meanwhile others are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_handshakes_are_closed_by_the_connect_timeout() {
    const TIMEOUT_S: u64 = 2;
    let pki = Pki::generate();
    let mut b = start_tls(&pki, &["--connect-timeout", &TIMEOUT_S.to_string()]);
    let hello = client_hello(&pki.ca);
    assert!(hello.len() > 20);
    let port = b.mqtts_port();
    let t0 = Instant::now();
    let mut half: Vec<RawClient> = (0..50)
        .map(|_| {
            let mut c = RawClient::open(port);
            c.send(&hello[..20]);
            c
        })
        .collect();
    let ca = pki.ca.clone();
    let silent: Vec<Handshake> = tokio::task::spawn_blocking(move || {
        (0..10)
            .map(|_| handshake(port, &ca, &ProbeOpts::default()).expect("handshake"))
            .collect()
    })
    .await
    .unwrap();

    // Others are served while those wait.
    let mut c = mqtts(&b, &pki, "stall-neighbour").await;
    assert_eq!(c.subscribe("stall", q(1)).await, vec![1]);
    assert_self_round_trip(&mut c, "stall", b"served").await;

    let bound = Duration::from_secs(TIMEOUT_S + 3);
    let closed = tokio::task::spawn_blocking(move || {
        let mut early = 0;
        for c in half.iter_mut() {
            let _ = c.expect_closed(
                bound
                    .saturating_sub(t0.elapsed())
                    .max(Duration::from_millis(100)),
            );
            if t0.elapsed() < Duration::from_millis(TIMEOUT_S * 1000 / 2) {
                early += 1;
            }
        }
        for mut h in silent {
            h.tls.sock.set_read_timeout(Some(bound)).unwrap();
            let mut buf = [0u8; 256];
            loop {
                match h.tls.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {} // session tickets
                }
            }
        }
        (early, t0.elapsed())
    })
    .await
    .expect("stalled clients");
    assert_eq!(
        closed.0, 0,
        "stalled handshakes closed before half the connect timeout"
    );
    assert!(
        closed.1 < bound + Duration::from_secs(1),
        "closing took {:?}",
        closed.1
    );
    assert!(b.is_running(), "the broker died");
    assert_self_round_trip(&mut c, "stall", b"still served").await;
}

/// 2,000 TLS connections from 4 threads, up to 32 open at once per thread:
/// half send a ClientHello and vanish, half complete the handshake and
/// leave. Meanwhile a steady mqtts client's QoS 0 ping-pong keeps a p99
/// under 200 ms, the broker's RSS grows less than 64 MB, and it serves new
/// clients after.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_storm_leaves_others_served_with_bounded_memory() {
    const THREADS: usize = 4;
    const PER_THREAD: usize = 500;
    let pki = Pki::generate();
    let mut b = start_tls(&pki, &[]);
    let mut steady = mqtts(&b, &pki, "storm-steady").await;
    assert_eq!(steady.subscribe("storm/ping", q(0)).await, vec![0]);
    assert_broker_healthy(b.port(), "storm-warm").await;
    let baseline = b.rss();

    let port = b.mqtts_port();
    let config = probe_config(&pki.ca, &ProbeOpts::default());
    let hello = Arc::new(client_hello(&pki.ca));
    let done = Arc::new(AtomicUsize::new(0));
    let handshakes_ok = Arc::new(AtomicUsize::new(0));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (config, hello) = (config.clone(), hello.clone());
            let (done, ok) = (done.clone(), handshakes_ok.clone());
            std::thread::spawn(move || {
                let mut open: VecDeque<TcpStream> = VecDeque::new();
                let mut kept = VecDeque::new();
                for i in 0..PER_THREAD {
                    if i % 2 == 0 {
                        let addr = SocketAddr::from(([127, 0, 0, 1], port));
                        if let Ok(mut s) = TcpStream::connect_timeout(&addr, HANDSHAKE_TIMEOUT) {
                            let _ = s.set_write_timeout(Some(HANDSHAKE_TIMEOUT));
                            let _ = s.write_all(&hello);
                            open.push_back(s);
                        }
                    } else if let Ok(h) = handshake_with(port, config.clone(), "127.0.0.1") {
                        ok.fetch_add(1, Ordering::SeqCst);
                        kept.push_back(h);
                    }
                    if open.len() > 16 {
                        open.pop_front();
                    }
                    if kept.len() > 16 {
                        kept.pop_front();
                    }
                }
                done.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();

    let mut latencies = Vec::new();
    let mut peak = baseline;
    let cap = Instant::now() + Duration::from_secs(240);
    let mut seq = 0u64;
    while done.load(Ordering::SeqCst) < THREADS && Instant::now() < cap {
        seq += 1;
        let payload = seq.to_be_bytes();
        let t = Instant::now();
        steady.publish("storm/ping", q(0), false, &payload).await;
        let m = steady.recv_publish_within(Duration::from_secs(2)).await;
        latencies.push(t.elapsed());
        assert_eq!(&m.payload[..], &payload[..], "ping {seq}");
        peak = peak.max(b.rss());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        Instant::now() < cap,
        "the storm did not finish within 240 s"
    );
    for t in threads {
        t.join().expect("storm thread");
    }
    let ok = handshakes_ok.load(Ordering::SeqCst);
    let wanted = THREADS * PER_THREAD / 2;
    eprintln!(
        "storm: {ok} of {wanted} handshakes completed, {} pings",
        latencies.len()
    );
    assert!(
        ok * 100 >= wanted * 95,
        "only {ok} of {wanted} handshakes completed"
    );

    latencies.sort();
    assert!(
        latencies.len() >= 20,
        "only {} pings during the storm",
        latencies.len()
    );
    let p99 = latencies[(latencies.len() * 99).div_ceil(100) - 1];
    eprintln!(
        "storm: ping p99 {p99:?}, max {:?}",
        latencies.last().unwrap()
    );
    assert!(
        p99 < Duration::from_millis(200),
        "ping p99 {p99:?} during the storm"
    );

    assert!(b.is_running(), "the broker died in the storm");
    peak = peak.max(b.rss());
    assert_growth_below("TLS storm", baseline, peak, 64 * MB);
    assert_self_round_trip(&mut steady, "storm/ping", b"after").await;
    let mut fresh = mqtts(&b, &pki, "storm-after").await;
    assert_eq!(fresh.subscribe("storm/after", q(1)).await, vec![1]);
    assert_self_round_trip(&mut fresh, "storm/after", b"ok").await;
    assert_broker_healthy(b.port(), "storm").await;
}
