//! Interoperability with Debian's `mosquitto_pub` / `mosquitto_sub`.
//! Every invocation has a timeout (`-W` for mosquitto_sub, a kill deadline
//! for everything) so nothing can hang.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

fn require(bin: &str) {
    let found = Command::new("which")
        .arg(bin)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !found {
        panic!("{bin} not found: install mosquitto-clients (scripts/test.sh does)");
    }
}

/// Runs mosquitto_pub to completion (10 s at most) and asserts success.
fn mosquitto_pub(port: u16, id: &str, args: &[&str]) {
    require("mosquitto_pub");
    let child = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-i", id])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mosquitto_pub");
    let out = wait_with_deadline(child, Duration::from_secs(10));
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?} failed: {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn wait_with_deadline(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait().expect("try_wait") {
            Some(_) => return child.wait_with_output().expect("output"),
            None if Instant::now() >= deadline => {
                let _ = child.kill();
                let out = child.wait_with_output().expect("output");
                panic!(
                    "process still running after {limit:?}\nstdout: {}\nstderr: {}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
            None => std::thread::sleep(Duration::from_millis(20)),
        }
    }
}

/// A running `mosquitto_sub -d -v`: its stdout lines arrive on a channel;
/// debug lines ("Client ... received SUBACK") tell when it has subscribed.
struct MosquittoSub {
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line seen so far, for failure messages.
    seen: Vec<String>,
}

impl MosquittoSub {
    fn spawn(port: u16, id: &str, args: &[&str]) -> MosquittoSub {
        require("mosquitto_sub");
        // stdout is a pipe: without `stdbuf -oL` mosquitto_sub would
        // block-buffer its output until it exits.
        let mut child = Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub"])
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-i", id])
            .args(["-d", "-v", "-W", "10"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto_sub");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        MosquittoSub {
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = self.lines.recv_timeout(left).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Waits for the SUBACK debug line.
    fn wait_subscribed(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while let Some(line) = self.next_line(deadline) {
            if line.contains("received SUBACK") {
                return;
            }
        }
        panic!("mosquitto_sub never got a SUBACK; output: {:?}", self.seen);
    }

    /// The next `n` message lines (`topic payload`), skipping debug lines.
    fn messages(&mut self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        while out.len() < n {
            match self.next_line(deadline) {
                Some(line) if line.starts_with("Client ") || line.starts_with("Subscribed (") => {}
                Some(line) => out.push(line),
                None => panic!(
                    "mosquitto_sub printed {} of {n} messages; output: {:?}",
                    out.len(),
                    self.seen
                ),
            }
        }
        out
    }

    /// Waits for mosquitto_sub to exit on its own (it does after `-C`).
    fn wait_exit_success(mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.child.try_wait().expect("try_wait") {
                Some(s) => {
                    assert!(s.success(), "mosquitto_sub exited {s:?}: {:?}", self.seen);
                    return;
                }
                None if Instant::now() >= deadline => {
                    panic!("mosquitto_sub did not exit; output: {:?}", self.seen)
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }
}

impl Drop for MosquittoSub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// mosquitto_pub at QoS 0, 1 and 2 → mosquitto_sub (QoS 1) on another shard.
#[test]
fn mosquitto_pub_qos_0_1_2_to_mosquitto_sub() {
    let broker = Broker::start();
    let port = broker.port();
    let (pub_id, sub_id) = ids_on_different_shards("mpub", "msub");
    let mut sub = MosquittoSub::spawn(port, &sub_id, &["-t", "interop/#", "-C", "3", "-q", "1"]);
    sub.wait_subscribed();
    for qos in ["0", "1", "2"] {
        let topic = format!("interop/q{qos}");
        let msg = format!("hello-{qos}");
        mosquitto_pub(port, &pub_id, &["-t", &topic, "-m", &msg, "-q", qos]);
    }
    assert_eq!(
        sub.messages(3),
        vec![
            "interop/q0 hello-0",
            "interop/q1 hello-1",
            "interop/q2 hello-2"
        ]
    );
    sub.wait_exit_success();
}

/// `mosquitto_pub -r` stores a retained message that a later mosquitto_sub
/// receives.
#[test]
fn mosquitto_retained_message() {
    let broker = Broker::start();
    let port = broker.port();
    let (pub_id, sub_id) = ids_on_different_shards("mrpub", "mrsub");
    mosquitto_pub(
        port,
        &pub_id,
        &["-t", "interop/ret", "-m", "kept", "-q", "1", "-r"],
    );
    let mut sub = MosquittoSub::spawn(port, &sub_id, &["-t", "interop/ret", "-C", "1", "-q", "1"]);
    assert_eq!(sub.messages(1), vec!["interop/ret kept"]);
    sub.wait_exit_success();
}

/// A rumqttc publisher reaches a mosquitto_sub subscriber on another shard.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_publisher_to_mosquitto_sub() {
    let broker = Broker::start();
    let port = broker.port();
    let (pub_id, sub_id) = ids_on_different_shards("rmpub", "rmsub");
    let mut sub = MosquittoSub::spawn(port, &sub_id, &["-t", "interop/r", "-C", "2", "-q", "2"]);
    sub.wait_subscribed();
    let mut publ = MqttClient::connect(port, &pub_id).await;
    publ.publish("interop/r", q(1), false, b"from rumqttc 1")
        .await;
    publ.publish("interop/r", q(2), false, b"from rumqttc 2")
        .await;
    assert_eq!(
        sub.messages(2),
        vec!["interop/r from rumqttc 1", "interop/r from rumqttc 2"]
    );
    sub.wait_exit_success();
}

/// mosquitto_pub → rumqttc subscriber, QoS 2 end to end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mosquitto_pub_to_rumqttc_subscriber() {
    let broker = Broker::start();
    let port = broker.port();
    let (pub_id, sub_id) = ids_on_different_shards("mrqpub", "mrqsub");
    let mut sub = MqttClient::connect(port, &sub_id).await;
    assert_eq!(sub.subscribe("interop/m", q(2)).await, vec![2]);
    let p = std::thread::spawn(move || {
        mosquitto_pub(
            port,
            &pub_id,
            &["-t", "interop/m", "-m", "from mosquitto", "-q", "2"],
        )
    });
    let m = sub.recv_publish_within(Duration::from_secs(10)).await;
    assert_eq!(&m.payload[..], b"from mosquitto");
    assert_eq!(m.qos, q(2));
    if let Err(e) = p.join() {
        std::panic::resume_unwind(e);
    }
}
