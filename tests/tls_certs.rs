//! TLS client certificates (`--tls-client-ca`, `--tls-identity-as-username`
//! with passwords and ACLs) and SIGHUP reloads of the certificate, key and
//! client CA, end to end with a PKI made at run time by `openssl`.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::tls_clients::*;
use common::tls_kit::*;
use common::{assert_broker_healthy, client_id_on, q, RECV_TIMEOUT};

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
