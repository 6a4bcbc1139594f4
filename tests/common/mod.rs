//! Shared harness for the end-to-end tests: a guard that runs the real
//! `ringmq` binary, rumqttc clients driven by a background task, and raw
//! TCP clients for the byte-level cases.
//!
//! Every wait has a timeout so that no test can hang.

#![allow(dead_code)]

pub mod auth_kit;
pub mod hostile_kit;
pub mod tls_clients;
pub mod tls_kit;

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use ringmq::broker::home_shard;
use ringmq::protocol::{
    self, Ack, Connect, Packet, ProtocolVersion, Publish, QoS, Subscribe, SubscriptionOptions,
    SubscriptionRequest, Will,
};

pub const SHARDS: usize = 2;
/// Generous default for "this must arrive".
pub const RECV_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------
// Broker process guard
// ---------------------------------------------------------------------------

static BROKER_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A running `ringmq` process. SIGTERM (then SIGKILL after 5 s) on drop;
/// when the test is panicking, the tail of the broker's stderr is printed.
pub struct Broker {
    child: Option<Child>,
    port: u16,
    /// The ports of every `mqtt://` listener of the ready line, in order
    /// (the first is `port`).
    mqtt_ports: Vec<u16>,
    /// The `ws://` URLs of the ready line, in order (empty without a
    /// WebSocket listener).
    ws_urls: Vec<String>,
    /// The `mqtts://` and `wss://` URLs of the ready line, in order.
    mqtts_urls: Vec<String>,
    wss_urls: Vec<String>,
    /// The whole ready line, after `ready `.
    ready: String,
    stderr_path: PathBuf,
}

impl Broker {
    /// Starts `ringmq --listen mqtt://127.0.0.1:0 --shards 2 --log-level debug`.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Same, with extra command-line arguments.
    pub fn start_with(extra: &[&str]) -> Broker {
        Broker::spawn(&[], extra)
    }

    /// Starts the broker with a WebSocket listener too
    /// (`--listen ws://127.0.0.1:0/mqtt`), then `extra`.
    pub fn start_ws() -> Broker {
        Broker::start_ws_with(&[])
    }

    /// Same as `start_ws`, with extra command-line arguments.
    pub fn start_ws_with(extra: &[&str]) -> Broker {
        let b = Broker::spawn(&["--listen", "ws://127.0.0.1:0/mqtt"], extra);
        assert!(
            !b.ws_urls.is_empty(),
            "ready line lacks a ws:// URL: {:?}",
            b.ws_urls
        );
        b
    }

    /// Starts the broker with these `--listen` URLs after the default
    /// `mqtt://127.0.0.1:0` one (e.g. `mqtt://127.0.0.1:0?proxy-protocol`),
    /// then `extra`; `mqtt_ports()` lists their ports in the same order.
    pub fn start_listeners(listeners: &[&str], extra: &[&str]) -> Broker {
        let args: Vec<&str> = listeners.iter().flat_map(|l| ["--listen", l]).collect();
        Broker::spawn(&args, extra)
    }

    fn spawn(listeners: &[&str], extra: &[&str]) -> Broker {
        let seq = BROKER_SEQ.fetch_add(1, Ordering::SeqCst);
        let stderr_path = std::env::temp_dir().join(format!(
            "ringmq-e2e-{}-{}-{}.log",
            std::process::id(),
            seq,
            std::thread::current()
                .name()
                .unwrap_or("t")
                .replace(|c: char| !c.is_ascii_alphanumeric(), "_")
        ));
        let stderr_file = File::create(&stderr_path).expect("create broker stderr log");
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringmq"))
            .args(["--listen", "mqtt://127.0.0.1:0"])
            .args(listeners)
            .args(["--shards", "2", "--log-level", "debug"])
            .args(extra)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr_file))
            .spawn()
            .expect("spawn ringmq");

        // Read stdout on a thread (and keep draining it afterwards).
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            let reader = BufReader::new(stdout);
            for line in reader.lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let deadline = Instant::now() + Duration::from_secs(20);
        let mut seen = Vec::new();
        let ready = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix("ready ") {
                        break parse_ready(rest).unwrap_or_else(|| {
                            let _ = child.kill();
                            let _ = child.wait();
                            panic!("unparsable ready line {line:?}");
                        });
                    }
                    seen.push(line);
                }
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait();
                    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                    let why = match e {
                        mpsc::RecvTimeoutError::Timeout => {
                            "did not print its ready line within 20 s"
                        }
                        mpsc::RecvTimeoutError::Disconnected => "exited before its ready line",
                    };
                    panic!(
                        "ringmq {why} ({status:?}).\nargs: {listeners:?} {extra:?}\n\
                         stdout so far: {seen:?}\n--- stderr ---\n{stderr}"
                    );
                }
            }
        };
        Broker {
            child: Some(child),
            port: ready.mqtt_ports[0],
            mqtt_ports: ready.mqtt_ports,
            ws_urls: ready.ws_urls,
            mqtts_urls: ready.mqtts_urls,
            wss_urls: ready.wss_urls,
            ready: ready.line,
            stderr_path,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The ports of every `mqtt://` listener, in the ready line's order.
    pub fn mqtt_ports(&self) -> &[u16] {
        &self.mqtt_ports
    }

    /// The `ws://` URLs listed in the ready line.
    pub fn ws_urls(&self) -> &[String] {
        &self.ws_urls
    }

    /// The port of the first WebSocket listener; panics without one.
    pub fn ws_port(&self) -> u16 {
        url_port(self.ws_urls.first().expect("broker has no ws:// listener"))
    }

    /// The ready line after `ready `: every listener in the order given,
    /// then `shards=2`.
    pub fn ready_line(&self) -> &str {
        &self.ready
    }

    /// The `mqtts://` URLs listed in the ready line.
    pub fn mqtts_urls(&self) -> &[String] {
        &self.mqtts_urls
    }

    /// The port of the first MQTT-over-TLS listener; panics without one.
    pub fn mqtts_port(&self) -> u16 {
        url_port(
            self.mqtts_urls
                .first()
                .expect("broker has no mqtts:// listener (the ready line lists none)"),
        )
    }

    /// The `wss://` URLs listed in the ready line.
    pub fn wss_urls(&self) -> &[String] {
        &self.wss_urls
    }

    /// The port of the first secure WebSocket listener; panics without one.
    pub fn wss_port(&self) -> u16 {
        url_port(
            self.wss_urls
                .first()
                .expect("broker has no wss:// listener (the ready line lists none)"),
        )
    }

    /// The first `wss://` URL of the ready line (e.g.
    /// `wss://127.0.0.1:PORT/mqtt`).
    pub fn wss_url(&self) -> String {
        self.wss_urls
            .first()
            .expect("broker has no wss:// listener (the ready line lists none)")
            .clone()
    }

    /// Sends SIGHUP (reload the TLS certificate, key and client CA).
    pub fn sighup(&self) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        let rc = unsafe { libc::kill(self.pid() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(rc, 0, "kill -HUP {}", self.pid());
    }

    /// `ws://127.0.0.1:PORT/mqtt` for the first WebSocket listener.
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/mqtt", self.ws_port())
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The broker's stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until the log holds `needle` at least `at_least` times;
    /// panics with the log after 5 s.
    pub fn wait_log_count(&self, needle: &str, at_least: usize) {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.stderr();
            let seen = log.matches(needle).count();
            if seen >= at_least {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} logged {seen} times, not {at_least}, within 5 s:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Sends SIGTERM and waits up to `timeout`; `None` if it had to be killed.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return None;
                }
            }
        }
    }
}

/// What the ready line says.
struct Ready {
    line: String,
    /// Every `mqtt://` listener's port, in order (at least one).
    mqtt_ports: Vec<u16>,
    ws_urls: Vec<String>,
    mqtts_urls: Vec<String>,
    wss_urls: Vec<String>,
}

/// "mqtt://127.0.0.1:P1 [mqtt://127.0.0.1:P2] [mqtts://127.0.0.1:P3]
/// [ws://127.0.0.1:P4/mqtt] [wss://127.0.0.1:P5/mqtt ...] shards=2" -> the
/// mqtt ports and the URLs of each other scheme, in order.
fn parse_ready(rest: &str) -> Option<Ready> {
    if !rest.ends_with("shards=2") {
        return None;
    }
    let mut mqtt_ports = Vec::new();
    let (mut ws_urls, mut mqtts_urls, mut wss_urls) = (Vec::new(), Vec::new(), Vec::new());
    for word in rest.split_whitespace() {
        if word.starts_with("mqtt://") {
            mqtt_ports.push(url_port(word));
        } else if word.starts_with("ws://") {
            ws_urls.push(word.to_string());
        } else if word.starts_with("mqtts://") {
            mqtts_urls.push(word.to_string());
        } else if word.starts_with("wss://") {
            wss_urls.push(word.to_string());
        }
    }
    if mqtt_ports.is_empty() {
        return None;
    }
    Some(Ready {
        line: rest.to_string(),
        mqtt_ports,
        ws_urls,
        mqtts_urls,
        wss_urls,
    })
}

/// The port of `scheme://HOST:PORT[/PATH]`; panics without one.
pub fn url_port(url: &str) -> u16 {
    url.split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|hp| hp.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {url:?}"))
}

impl Drop for Broker {
    fn drop(&mut self) {
        let status = self.stop(Duration::from_secs(5));
        if std::thread::panicking() {
            let stderr = self.stderr();
            let lines: Vec<&str> = stderr.lines().collect();
            let tail = &lines[lines.len().saturating_sub(300)..];
            eprintln!(
                "--- ringmq exit status: {status:?}; last {} stderr lines ({}) ---\n{}",
                tail.len(),
                self.stderr_path.display(),
                tail.join("\n")
            );
        } else {
            let _ = std::fs::remove_file(&self.stderr_path);
        }
    }
}

// ---------------------------------------------------------------------------
// Client ids and shards
// ---------------------------------------------------------------------------

/// A client id starting with `tag` whose home shard is `shard`.
pub fn client_id_on(shard: usize, tag: &str) -> String {
    assert!(shard < SHARDS);
    (0..10_000)
        .map(|i| format!("{tag}-{i}"))
        .find(|id| home_shard(id, SHARDS) == shard)
        .expect("some id hashes to the shard")
}

/// Asserts two ids live on different shards and returns them.
pub fn ids_on_different_shards(tag_a: &str, tag_b: &str) -> (String, String) {
    let a = client_id_on(0, tag_a);
    let b = client_id_on(1, tag_b);
    assert_ne!(home_shard(&a, SHARDS), home_shard(&b, SHARDS));
    (a, b)
}

// ---------------------------------------------------------------------------
// rumqttc clients
// ---------------------------------------------------------------------------

#[derive(Debug)]
pub enum ClientEvent {
    Packet(rumqttc::Packet),
    /// The event loop returned an error (connection closed/refused).
    Closed(String),
}

/// A rumqttc client whose event loop is polled by a tokio task. The task
/// stops at the first error, so the client never silently reconnects.
pub struct MqttClient {
    pub client: rumqttc::AsyncClient,
    pub id: String,
    events: mpsc::Receiver<ClientEvent>,
    /// Publishes received while waiting for something else.
    pending: VecDeque<rumqttc::Publish>,
    task: tokio::task::JoinHandle<()>,
    closed: bool,
}

/// Which of the broker's listeners a rumqttc client connects to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Via {
    Tcp,
    /// rumqttc's `Transport::Ws` to `Broker::ws_url()`.
    Ws,
}

pub struct ConnectOpts {
    pub clean: bool,
    pub keep_alive: Duration,
    pub will: Option<rumqttc::LastWill>,
}

impl Default for ConnectOpts {
    fn default() -> Self {
        ConnectOpts {
            clean: true,
            keep_alive: Duration::from_secs(30),
            will: None,
        }
    }
}

impl MqttClient {
    /// Connects with a clean session; panics unless CONNACK accepted.
    pub async fn connect(port: u16, id: &str) -> MqttClient {
        let (c, ack) = MqttClient::connect_with(port, id, ConnectOpts::default()).await;
        assert_eq!(ack.code, rumqttc::ConnectReturnCode::Success);
        c
    }

    /// Connects and returns the CONNACK (whatever its code).
    pub async fn connect_with(
        port: u16,
        id: &str,
        opts: ConnectOpts,
    ) -> (MqttClient, rumqttc::ConnAck) {
        let o = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        MqttClient::connect_options(o, id.to_string(), opts).await
    }

    /// Connects to `broker` over TCP or WebSocket and returns the CONNACK
    /// (whatever its code). The client's `id` names the transport.
    pub async fn connect_via(
        broker: &Broker,
        via: Via,
        id: &str,
        opts: ConnectOpts,
    ) -> (MqttClient, rumqttc::ConnAck) {
        let o = match via {
            Via::Tcp => rumqttc::MqttOptions::new(id, "127.0.0.1", broker.port()),
            Via::Ws => {
                let mut o = rumqttc::MqttOptions::new(id, broker.ws_url(), broker.ws_port());
                o.set_transport(rumqttc::Transport::Ws);
                o
            }
        };
        MqttClient::connect_options(o, format!("{id} ({via:?})"), opts).await
    }

    /// Connects with prepared options (any transport: the TLS tests pass
    /// `Transport::Tls`/`Wss`) and returns the CONNACK; panics when the
    /// connection closes first.
    pub async fn connect_options(
        mut o: rumqttc::MqttOptions,
        id: String,
        opts: ConnectOpts,
    ) -> (MqttClient, rumqttc::ConnAck) {
        o.set_clean_session(opts.clean);
        o.set_keep_alive(opts.keep_alive);
        o.set_inflight(100);
        o.set_max_packet_size(1 << 20, 1 << 20);
        if let Some(w) = opts.will {
            o.set_last_will(w);
        }
        let (client, mut eventloop) = rumqttc::AsyncClient::new(o, 1000);
        let (tx, rx) = mpsc::channel();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(rumqttc::Event::Incoming(p)) => {
                        if tx.send(ClientEvent::Packet(p)).is_err() {
                            break;
                        }
                    }
                    Ok(rumqttc::Event::Outgoing(_)) => {}
                    Err(e) => {
                        let _ = tx.send(ClientEvent::Closed(e.to_string()));
                        break;
                    }
                }
            }
        });
        let mut c = MqttClient {
            client,
            id,
            events: rx,
            pending: VecDeque::new(),
            task,
            closed: false,
        };
        let ack = c
            .wait_for(RECV_TIMEOUT, "CONNACK", |p| match p {
                rumqttc::Packet::ConnAck(a) => Some(a.clone()),
                _ => None,
            })
            .await;
        (c, ack)
    }

    /// Next event, or `None` on timeout.
    async fn next_event(&mut self, timeout: Duration) -> Option<ClientEvent> {
        if self.closed {
            return None;
        }
        // tokio's `sync` feature is not enabled for the tests: poll a std
        // channel instead.
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self.events.try_recv() {
                Ok(ev) => {
                    if matches!(ev, ClientEvent::Closed(_)) {
                        self.closed = true;
                    }
                    return Some(ev);
                }
                Err(mpsc::TryRecvError::Disconnected) => {
                    self.closed = true;
                    return Some(ClientEvent::Closed("event loop task ended".into()));
                }
                Err(mpsc::TryRecvError::Empty) => {
                    if tokio::time::Instant::now() >= deadline {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    }

    /// Waits for an incoming packet `f` accepts; publishes seen meanwhile are
    /// kept for `recv_publish`. Panics on timeout or close.
    pub async fn wait_for<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&rumqttc::Packet) -> Option<T>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Some(ClientEvent::Packet(p)) => {
                    if let Some(t) = f(&p) {
                        return t;
                    }
                    if let rumqttc::Packet::Publish(p) = p {
                        self.pending.push_back(p);
                    }
                }
                Some(ClientEvent::Closed(e)) => {
                    panic!(
                        "{}: connection closed while waiting for {what}: {e}",
                        self.id
                    )
                }
                None => panic!("{}: no {what} within {timeout:?}", self.id),
            }
        }
    }

    /// Subscribes and waits for the SUBACK; returns the return codes
    /// (granted QoS, or 0x80).
    pub async fn subscribe(&mut self, filter: &str, qos: rumqttc::QoS) -> Vec<u8> {
        self.client.subscribe(filter, qos).await.unwrap();
        self.wait_suback().await
    }

    pub async fn subscribe_many(&mut self, filters: &[(&str, rumqttc::QoS)]) -> Vec<u8> {
        let f: Vec<rumqttc::SubscribeFilter> = filters
            .iter()
            .map(|(t, q)| rumqttc::SubscribeFilter::new(t.to_string(), *q))
            .collect();
        self.client.subscribe_many(f).await.unwrap();
        self.wait_suback().await
    }

    async fn wait_suback(&mut self) -> Vec<u8> {
        self.wait_for(RECV_TIMEOUT, "SUBACK", |p| match p {
            rumqttc::Packet::SubAck(s) => Some(
                s.return_codes
                    .iter()
                    .map(|c| match c {
                        rumqttc::SubscribeReasonCode::Success(q) => *q as u8,
                        rumqttc::SubscribeReasonCode::Failure => 0x80,
                    })
                    .collect(),
            ),
            _ => None,
        })
        .await
    }

    pub async fn unsubscribe(&mut self, filter: &str) {
        self.client.unsubscribe(filter).await.unwrap();
        self.wait_for(RECV_TIMEOUT, "UNSUBACK", |p| {
            matches!(p, rumqttc::Packet::UnsubAck(_)).then_some(())
        })
        .await
    }

    /// Publishes and, for QoS 1/2, waits until the broker acknowledged it
    /// (PUBACK / PUBCOMP).
    pub async fn publish(&mut self, topic: &str, qos: rumqttc::QoS, retain: bool, payload: &[u8]) {
        self.client
            .publish(topic, qos, retain, payload.to_vec())
            .await
            .unwrap();
        match qos {
            rumqttc::QoS::AtMostOnce => {}
            rumqttc::QoS::AtLeastOnce => {
                self.wait_for(RECV_TIMEOUT, "PUBACK", |p| {
                    matches!(p, rumqttc::Packet::PubAck(_)).then_some(())
                })
                .await
            }
            rumqttc::QoS::ExactlyOnce => {
                self.wait_for(RECV_TIMEOUT, "PUBCOMP", |p| {
                    matches!(p, rumqttc::Packet::PubComp(_)).then_some(())
                })
                .await
            }
        }
    }

    /// Next PUBLISH received, within `timeout`; panics otherwise.
    pub async fn recv_publish_within(&mut self, timeout: Duration) -> rumqttc::Publish {
        if let Some(p) = self.pending.pop_front() {
            return p;
        }
        self.wait_for(timeout, "PUBLISH", |p| match p {
            rumqttc::Packet::Publish(p) => Some(p.clone()),
            _ => None,
        })
        .await
    }

    pub async fn recv_publish(&mut self) -> rumqttc::Publish {
        self.recv_publish_within(RECV_TIMEOUT).await
    }

    /// Asserts that no PUBLISH arrives within `dur`.
    pub async fn expect_no_publish(&mut self, dur: Duration) {
        if let Some(p) = self.pending.pop_front() {
            panic!("{}: unexpected PUBLISH {p:?}", self.id);
        }
        let deadline = tokio::time::Instant::now() + dur;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                return;
            }
            match self.next_event(left).await {
                Some(ClientEvent::Packet(rumqttc::Packet::Publish(p))) => {
                    panic!("{}: unexpected PUBLISH {p:?}", self.id)
                }
                Some(ClientEvent::Packet(_)) => {}
                Some(ClientEvent::Closed(e)) => {
                    panic!("{}: connection closed unexpectedly: {e}", self.id)
                }
                None => return,
            }
        }
    }

    /// Waits until the connection is closed by the broker.
    pub async fn expect_closed(&mut self, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.next_event(left).await {
                Some(ClientEvent::Closed(_)) => return,
                Some(ClientEvent::Packet(_)) => {}
                None if self.closed => return,
                None => panic!("{}: connection not closed within {timeout:?}", self.id),
            }
        }
    }

    /// Drops the socket without DISCONNECT (nor a WebSocket close frame).
    pub async fn drop_socket(mut self) {
        self.task.abort();
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
    }

    /// Sends DISCONNECT and waits (briefly) for the event loop to end.
    pub async fn disconnect(mut self) {
        let _ = self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(2), &mut self.task).await;
    }
}

impl Drop for MqttClient {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub fn q(n: u8) -> rumqttc::QoS {
    match n {
        0 => rumqttc::QoS::AtMostOnce,
        1 => rumqttc::QoS::AtLeastOnce,
        2 => rumqttc::QoS::ExactlyOnce,
        _ => panic!("bad qos {n}"),
    }
}

// ---------------------------------------------------------------------------
// Raw TCP clients
// ---------------------------------------------------------------------------

/// What a raw read ended with.
#[derive(Debug)]
pub enum ReadOutcome {
    Packet(Packet),
    /// EOF or connection reset.
    Closed,
    TimedOut,
    /// The bytes could not be decoded as MQTT.
    Undecodable(String),
}

pub struct RawClient {
    pub stream: TcpStream,
    buf: BytesMut,
}

pub const V311: ProtocolVersion = ProtocolVersion::V311;

impl RawClient {
    pub fn open(port: u16) -> RawClient {
        RawClient::from_stream(TcpStream::connect(("127.0.0.1", port)).expect("tcp connect"))
    }

    /// Opens a connection and completes a 3.1.1 CONNECT; panics unless the
    /// CONNACK accepts it. Returns the client and the session-present flag.
    pub fn connect(port: u16, id: &str, clean: bool) -> (RawClient, bool) {
        RawClient::connect_with(port, connect_packet(id, clean, 30, None))
    }

    pub fn connect_with(port: u16, connect: Connect) -> (RawClient, bool) {
        let mut c = RawClient::open(port);
        c.send_packet(&Packet::Connect(Box::new(connect)));
        match c.read_packet(RECV_TIMEOUT) {
            Packet::ConnAck(a) => {
                assert_eq!(a.code, 0, "CONNACK refused: {a:?}");
                (c, a.session_present)
            }
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// Writes raw bytes; errors (the broker may already have closed) ignored.
    pub fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
        let _ = self.stream.flush();
    }

    pub fn send_packet(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        protocol::encode(p, V311, &mut out);
        self.send(&out);
    }

    pub fn publish(&mut self, topic: &str, qos: QoS, packet_id: u16, dup: bool, payload: &[u8]) {
        self.send_packet(&publish_packet(topic, qos, packet_id, dup, false, payload));
    }

    pub fn subscribe(&mut self, packet_id: u16, filters: &[(&str, QoS)]) -> Vec<u8> {
        self.send_packet(&subscribe_packet(packet_id, filters));
        suback_codes(self.read_packet(RECV_TIMEOUT), packet_id)
    }

    pub fn puback(&mut self, packet_id: u16) {
        self.send_packet(&Packet::PubAck(ack(packet_id)));
    }

    pub fn disconnect(mut self) {
        self.send(&[0xE0, 0x00]);
        let _ = self.stream.shutdown(Shutdown::Write);
        // Wait for the broker to close its side so the DISCONNECT is
        // processed before the caller goes on.
        let _ = self.read_outcome(Duration::from_secs(2));
    }

    /// Reads until one packet is decoded, the peer closes, or `timeout`.
    pub fn read_outcome(&mut self, timeout: Duration) -> ReadOutcome {
        read_outcome_from(&mut self.stream, &mut self.buf, V311, timeout)
    }

    /// The next packet; panics on timeout, close or garbage.
    pub fn read_packet(&mut self, timeout: Duration) -> Packet {
        match self.read_outcome(timeout) {
            ReadOutcome::Packet(p) => p,
            other => panic!("expected a packet within {timeout:?}, got {other:?}"),
        }
    }

    /// The next packet, which must be a PUBLISH.
    pub fn read_publish(&mut self, timeout: Duration) -> Publish {
        match self.read_packet(timeout) {
            Packet::Publish(p) => p,
            other => panic!("expected PUBLISH, got {other:?}"),
        }
    }

    /// Reads exactly `n` raw bytes (after whatever is buffered).
    pub fn read_exact_bytes(&mut self, n: usize, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        while self.buf.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "only {:?} within {timeout:?}",
                &self.buf[..]
            );
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut tmp = [0u8; 4096];
            match self.stream.read(&mut tmp) {
                Ok(0) => panic!("closed after {:?}", &self.buf[..]),
                Ok(n) => self.buf.extend_from_slice(&tmp[..n]),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("read error {e} after {:?}", &self.buf[..]),
            }
        }
        self.buf.split_to(n).to_vec()
    }

    /// Asserts the broker closes the connection (EOF or reset) within
    /// `timeout`; returns every byte received before the close.
    pub fn expect_closed(&mut self, timeout: Duration) -> Vec<u8> {
        let deadline = Instant::now() + timeout;
        let mut got = self.buf.split().to_vec();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "connection still open after {timeout:?} (received {got:02X?})"
            );
            self.stream.set_read_timeout(Some(left)).unwrap();
            let mut tmp = [0u8; 4096];
            match self.stream.read(&mut tmp) {
                Ok(0) => return got,
                Ok(n) => got.extend_from_slice(&tmp[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    // Loop: the assert above reports the timeout.
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return got, // reset
            }
        }
    }

    /// Asserts the connection stays open (nothing but maybe packets) for `dur`.
    pub fn expect_open_for(&mut self, dur: Duration) {
        match self.read_outcome(dur) {
            ReadOutcome::TimedOut => {}
            other => panic!("expected silence for {dur:?}, got {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Packet builders (well-formed packets through the library codec)
// ---------------------------------------------------------------------------

pub fn connect_packet(id: &str, clean: bool, keep_alive: u16, will: Option<Will>) -> Connect {
    Connect {
        protocol: V311,
        clean_start: clean,
        keep_alive,
        client_id: ByteString::from(id),
        will,
        username: None,
        password: None,
        properties: None,
    }
}

pub fn will(topic: &str, payload: &[u8], qos: QoS, retain: bool) -> Will {
    Will {
        topic: ByteString::from(topic),
        payload: Bytes::copy_from_slice(payload),
        qos,
        retain,
        properties: None,
    }
}

pub fn publish_packet(
    topic: &str,
    qos: QoS,
    packet_id: u16,
    dup: bool,
    retain: bool,
    payload: &[u8],
) -> Packet {
    Packet::Publish(Publish {
        dup,
        qos,
        retain,
        topic: ByteString::from(topic),
        packet_id,
        payload: Bytes::copy_from_slice(payload),
        properties: None,
    })
}

/// The codes of `p`, which must be the SUBACK for `packet_id`.
pub fn suback_codes(p: Packet, packet_id: u16) -> Vec<u8> {
    match p {
        Packet::SubAck(s) => {
            assert_eq!(s.packet_id, packet_id, "SUBACK packet id");
            s.codes
        }
        other => panic!("expected SUBACK, got {other:?}"),
    }
}

pub fn subscribe_packet(packet_id: u16, filters: &[(&str, QoS)]) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id,
        filters: filters
            .iter()
            .map(|(f, q)| SubscriptionRequest {
                filter: ByteString::from(*f),
                options: SubscriptionOptions {
                    qos: *q,
                    no_local: false,
                    retain_as_published: false,
                    retain_handling: 0,
                },
            })
            .collect(),
        properties: None,
    })
}

pub fn ack(packet_id: u16) -> Ack {
    Ack {
        packet_id,
        reason: 0,
        properties: None,
    }
}

/// Encodes a packet to bytes (3.1.1).
pub fn encode(p: &Packet) -> Vec<u8> {
    let mut out = BytesMut::new();
    protocol::encode(p, V311, &mut out);
    out.to_vec()
}

/// A full healthy round trip on a broker: subscribe with one client,
/// publish QoS 1 with another, receive it. Used after every bad-input case.
pub async fn assert_broker_healthy(port: u16, tag: &str) {
    let (pub_id, sub_id) = ids_on_different_shards(&format!("{tag}-hp"), &format!("{tag}-hs"));
    let mut sub = MqttClient::connect(port, &sub_id).await;
    assert_eq!(sub.subscribe(&format!("health/{tag}"), q(1)).await, vec![1]);
    let mut publ = MqttClient::connect(port, &pub_id).await;
    publ.publish(&format!("health/{tag}"), q(1), false, b"ok")
        .await;
    let m = sub.recv_publish().await;
    assert_eq!(m.topic, format!("health/{tag}"));
    assert_eq!(&m.payload[..], b"ok");
}

// ---------------------------------------------------------------------------
// Process memory, logs and non-reading sockets (the hostile-input tests)
// ---------------------------------------------------------------------------

impl Broker {
    /// The broker's process id; panics once it was stopped.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the broker was stopped").id()
    }

    /// The broker's resident set size now, in bytes (`VmRSS`).
    pub fn rss(&self) -> u64 {
        rss_bytes(self.pid())
    }

    /// How many times the broker's stderr so far holds `needle`.
    pub fn stderr_count(&self, needle: &str) -> usize {
        self.stderr().matches(needle).count()
    }
}

/// `VmRSS` of process `pid` in bytes, read from `/proc/PID/status`; panics
/// when the process is gone.
pub fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .unwrap_or_else(|| panic!("no VmRSS in /proc/{pid}/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("unparsable {line:?}"));
    kib * 1024
}

impl RawClient {
    /// Wraps a connected stream, with the same settings as `open`.
    pub fn from_stream(stream: TcpStream) -> RawClient {
        RawClient {
            stream: raw_settings(stream),
            buf: BytesMut::new(),
        }
    }

    /// Opens a connection whose receive buffer is `rcvbuf` bytes, set
    /// before connecting so that the kernel never grows the window: a
    /// client that does not read then takes almost nothing off the broker.
    pub fn open_with_rcvbuf(port: u16, rcvbuf: usize) -> RawClient {
        use socket2::{Domain, Protocol, Socket, Type};
        let socket =
            Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).expect("tcp socket");
        socket.set_recv_buffer_size(rcvbuf).expect("set SO_RCVBUF");
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        socket.connect(&addr.into()).expect("tcp connect");
        RawClient::from_stream(socket.into())
    }
}

/// Reads from `stream` into `buf` until one packet of `version` is decoded,
/// the peer closes, or `timeout` (raw clients of either version).
pub fn read_outcome_from(
    stream: &mut TcpStream,
    buf: &mut BytesMut,
    version: ProtocolVersion,
    timeout: Duration,
) -> ReadOutcome {
    let deadline = Instant::now() + timeout;
    loop {
        match protocol::decode(buf, version, 1 << 24) {
            Ok(Some(p)) => return ReadOutcome::Packet(p),
            Ok(None) => {}
            Err(e) => return ReadOutcome::Undecodable(format!("{e:?}")),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return ReadOutcome::TimedOut;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        let mut tmp = [0u8; 4096];
        match stream.read(&mut tmp) {
            Ok(0) => return ReadOutcome::Closed,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return ReadOutcome::TimedOut
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return ReadOutcome::Closed,
        }
    }
}

/// What every raw test socket gets: no Nagle delay, and writes that fail
/// after 5 s rather than hang on a broker that stopped reading.
pub fn raw_settings(stream: TcpStream) -> TcpStream {
    stream.set_nodelay(true).unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream
}
