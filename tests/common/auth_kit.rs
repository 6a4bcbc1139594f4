//! Helpers for the authentication and ACL tests: password files made by
//! the real `mosquitto_passwd`, ACL files, raw CONNECTs with credentials in
//! either protocol version, a rumqttc 5.0 client, and bounded child runs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use ringmq::protocol::{ConnAck, Connect, Packet, ProtocolVersion, Will};

use super::hostile_kit::RawV5;
use super::{ReadOutcome, RECV_TIMEOUT};

static DIR_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A private temporary folder, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let seq = DIR_SEQ.fetch_add(1, Ordering::SeqCst);
        let dir =
            std::env::temp_dir().join(format!("ringmq-auth-{}-{seq}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    /// Writes `contents` to `name` in the folder; returns its path as text.
    pub fn write(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write temp file");
        path_text(&path)
    }

    /// A mosquitto password file with these users, made by the real
    /// `/usr/bin/mosquitto_passwd` (hashes exactly as mosquitto writes them).
    pub fn password_file(&self, users: &[(&str, &str)]) -> String {
        let path = self.0.join("passwd");
        for (i, (user, pw)) in users.iter().enumerate() {
            let mut cmd = Command::new("mosquitto_passwd");
            if i == 0 {
                cmd.arg("-c");
            }
            cmd.arg("-b").arg(&path).arg(user).arg(pw);
            let out = run_bounded(cmd, Duration::from_secs(10));
            assert!(
                out.status.success(),
                "mosquitto_passwd for {user} failed (install mosquitto): {:?}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        path_text(&path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn path_text(p: &Path) -> String {
    p.to_str().expect("temp paths are UTF-8").to_string()
}

/// Runs `cmd` with null stdin to completion, killing it after `limit`.
pub fn run_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{cmd:?} still running after {limit:?}\nstdout: {}\nstderr: {}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// A CONNECT of `version` with optional credentials and will.
pub fn credentials_connect(
    version: ProtocolVersion,
    id: &str,
    user: Option<&str>,
    password: Option<&str>,
    will: Option<Will>,
) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 60,
        client_id: ByteString::from(id),
        will,
        username: user.map(ByteString::from),
        password: password.map(|p| Bytes::copy_from_slice(p.as_bytes())),
        properties: None,
    }))
}

/// Sends the CONNECT on a fresh raw socket and returns the CONNACK,
/// whatever its code; panics on anything else.
pub fn raw_connect(port: u16, connect: &Packet) -> (RawV5, ConnAck) {
    let Packet::Connect(c) = connect else {
        panic!("not a CONNECT: {connect:?}");
    };
    let mut raw = RawV5::open_as(port, c.protocol);
    raw.send_packet(connect);
    match raw.read_outcome(RECV_TIMEOUT) {
        ReadOutcome::Packet(Packet::ConnAck(a)) => (raw, a),
        other => panic!("{}: expected CONNACK, got {other:?}", c.client_id),
    }
}

/// Connects with credentials; panics unless accepted.
pub fn raw_login(
    port: u16,
    version: ProtocolVersion,
    id: &str,
    user: Option<&str>,
    password: Option<&str>,
) -> RawV5 {
    let (raw, ack) = raw_connect(
        port,
        &credentials_connect(version, id, user, password, None),
    );
    assert_eq!(ack.code, 0, "{id} ({user:?}): CONNACK refused: {ack:?}");
    raw
}

/// Asserts the CONNECT is answered with CONNACK `code` and the connection
/// is then closed; returns the CONNACK for comparisons.
pub fn expect_refused(port: u16, connect: &Packet, code: u8) -> ConnAck {
    let (mut raw, ack) = raw_connect(port, connect);
    assert_eq!(
        ack.code, code,
        "CONNACK {:#04X}, expected {code:#04X} for {connect:?}",
        ack.code
    );
    match raw.read_outcome(RECV_TIMEOUT) {
        ReadOutcome::Closed => ack,
        other => panic!("refused connection not closed: {other:?}"),
    }
}

/// What a rumqttc 5.0 event loop produced.
pub type V5Event = Result<rumqttc::v5::Event, String>;

/// A rumqttc 5.0 client whose event loop runs on a tokio task; events come
/// back on a channel so every wait can be bounded.
pub struct V5Client {
    pub client: rumqttc::v5::AsyncClient,
    events: mpsc::Receiver<V5Event>,
    task: tokio::task::JoinHandle<()>,
}

impl V5Client {
    /// Starts the event loop; the CONNACK (or the refusal) is the first event.
    pub fn start(port: u16, id: &str, user: Option<&str>, password: Option<&str>) -> V5Client {
        let mut o = rumqttc::v5::MqttOptions::new(id, "127.0.0.1", port);
        o.set_keep_alive(Duration::from_secs(30));
        if let (Some(u), Some(p)) = (user, password) {
            o.set_credentials(u, p);
        }
        let (client, mut eventloop) = rumqttc::v5::AsyncClient::new(o, 100);
        let (tx, events) = mpsc::channel();
        let task = tokio::spawn(async move {
            loop {
                let ev = eventloop.poll().await.map_err(|e| format!("{e:?}"));
                let stop = ev.is_err();
                if tx.send(ev).is_err() || stop {
                    break;
                }
            }
        });
        V5Client {
            client,
            events,
            task,
        }
    }

    /// The next incoming packet `f` accepts, or the event loop's error;
    /// panics after `timeout`.
    pub async fn wait<T>(
        &mut self,
        timeout: Duration,
        what: &str,
        mut f: impl FnMut(&rumqttc::v5::mqttbytes::v5::Packet) -> Option<T>,
    ) -> Result<T, String> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.events.try_recv() {
                Ok(Ok(rumqttc::v5::Event::Incoming(p))) => {
                    if let Some(t) = f(&p) {
                        return Ok(t);
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
                Err(mpsc::TryRecvError::Disconnected) => return Err("event loop ended".into()),
                Err(mpsc::TryRecvError::Empty) => {
                    assert!(Instant::now() < deadline, "no {what} within {timeout:?}");
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        }
    }
}

impl Drop for V5Client {
    fn drop(&mut self) {
        self.task.abort();
    }
}
