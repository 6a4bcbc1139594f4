//! TLS clients for the end-to-end tests: rumqttc over mqtts/wss, the
//! mosquitto tools with TLS options, and probes of what a handshake shows.

use std::path::Path;
use std::time::Duration;

use super::tls_kit::*;
use super::*;

/// Bound on the broker's answer to hostile input (close).
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Clients
// ---------------------------------------------------------------------------

/// rumqttc over mqtts, trusting the test CA, offering ALPN `mqtt`.
pub async fn mqtts(b: &Broker, pki: &Pki, id: &str) -> MqttClient {
    let tls = rumqttc_tls(&pki.ca, None, true);
    connect_tls(mqtts_options(b, id, tls), &format!("{id} (mqtts)")).await
}

/// Same with a client certificate.
pub async fn mqtts_as(b: &Broker, pki: &Pki, id: &str, cert: &ClientCert) -> MqttClient {
    let tls = rumqttc_tls(&pki.ca, Some(cert), true);
    connect_tls(
        mqtts_options(b, id, tls),
        &format!("{id} (mqtts, {})", cert.cn),
    )
    .await
}

/// rumqttc over wss, trusting the test CA.
pub async fn wss(b: &Broker, pki: &Pki, id: &str, cert: Option<&ClientCert>) -> MqttClient {
    let tls = rumqttc_tls(&pki.ca, cert, false);
    connect_tls(wss_options(b, id, tls), &format!("{id} (wss)")).await
}

/// Publishes at QoS 1 from `publ` and asserts `sub` receives it.
pub async fn assert_delivers(
    publ: &mut MqttClient,
    sub: &mut MqttClient,
    topic: &str,
    payload: &[u8],
) {
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
pub async fn tool(cmd: &'static str, args: Vec<String>) -> (bool, String) {
    tokio::task::spawn_blocking(move || run_tool(cmd, &args, Duration::from_secs(10)))
        .await
        .expect("tool thread")
}

/// `mosquitto_pub -h 127.0.0.1 -p PORT --cafile CA ARGS`.
pub async fn mosquitto_pub_tls(port: u16, ca: &Path, args: &[&str]) -> (bool, String) {
    let mut all = vec!["-h", "127.0.0.1", "-p"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    all.extend([port.to_string(), "--cafile".into(), path_str(ca)]);
    all.extend(args.iter().map(|s| s.to_string()));
    tool("mosquitto_pub", all).await
}

pub fn cert_args(c: &ClientCert) -> Vec<String> {
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

/// Publishes at QoS 1 to `topic` and asserts `c` (subscribed to it) gets
/// it back: the connection is still served.
pub async fn assert_self_round_trip(c: &mut MqttClient, topic: &str, payload: &[u8]) {
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
pub async fn tls_mqtt_connect_async(
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
pub async fn peer_cn(port: u16, ca: &Path) -> Result<String, String> {
    let ca = ca.to_path_buf();
    tokio::task::spawn_blocking(move || {
        handshake(port, &ca, &ProbeOpts::default()).map(|h| h.peer_cn)
    })
    .await
    .expect("blocking client thread")
}

/// Lines at INFO or above that speak of TLS, handshakes or certificates.
pub fn tls_log_lines(b: &Broker) -> usize {
    b.stderr()
        .lines()
        .filter(|l| !l.contains("DEBUG") && !l.contains("TRACE"))
        .map(str::to_ascii_lowercase)
        .filter(|l| l.contains("tls") || l.contains("handshake") || l.contains("certificate"))
        .count()
}

/// Waits (at most 5 s) until `n` more such lines than `before` were
/// logged, then asserts no more than `2 * n` (logged once, not a flood).
pub fn assert_logged_once_each(b: &Broker, before: usize, n: usize, what: &str) {
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
