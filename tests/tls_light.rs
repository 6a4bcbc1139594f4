//! TLS clients served light: an idle mqtts client's PINGREQs are answered
//! from the shard's epoll set without resuming its tasks, and a delivery
//! larger than the socket takes at once (part of the sealed records left
//! for the tasks) reaches the client intact.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use common::tls_kit::*;
use common::*;
use ringmq::protocol::{self, Packet, ProtocolVersion, QoS};
use rustls_pki_types::ServerName;

type TlsStream = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// A blocking TLS client trusting the test CA; `rcvbuf` sets SO_RCVBUF
/// before connecting (a small one makes the broker's sends partial).
fn tls_client(port: u16, pki: &Pki, rcvbuf: Option<usize>) -> TlsStream {
    let config = probe_config(&pki.ca, &ProbeOpts::default());
    let name = ServerName::try_from("127.0.0.1".to_string()).expect("server name");
    let conn = rustls::ClientConnection::new(config, name).expect("client session");
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    if let Some(size) = rcvbuf {
        sock.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    sock.connect_timeout(&addr.into(), Duration::from_secs(5))
        .expect("connect");
    let sock: TcpStream = sock.into();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    rustls::StreamOwned::new(conn, sock)
}

fn send(s: &mut TlsStream, p: &Packet) {
    s.write_all(&encode(p)).expect("write");
    s.flush().expect("flush");
}

/// Reads one packet, waiting up to `timeout`.
fn read_packet(s: &mut TlsStream, buf: &mut BytesMut, timeout: Duration) -> Packet {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(p) = protocol::decode(buf, ProtocolVersion::V311, 16 << 20).expect("decode") {
            return p;
        }
        assert!(Instant::now() < deadline, "no packet within {timeout:?}");
        let mut chunk = [0u8; 16 * 1024];
        match s.read(&mut chunk) {
            Ok(0) => panic!("the broker closed the connection"),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
    }
}

fn connect(s: &mut TlsStream, buf: &mut BytesMut, id: &str) {
    send(
        s,
        &Packet::Connect(Box::new(connect_packet(id, true, 60, None))),
    );
    match read_packet(s, buf, RECV_TIMEOUT) {
        Packet::ConnAck(a) => assert_eq!(a.code, 0, "CONNACK"),
        other => panic!("expected CONNACK, got {other:?}"),
    }
}

#[test]
fn idle_tls_client_pings_without_resuming() {
    let pki = Pki::generate();
    let b = start_tls(&pki, &[]);
    let mut c = tls_client(b.mqtts_port(), &pki, None);
    let mut buf = BytesMut::new();
    connect(&mut c, &mut buf, "light-tls-ping");
    b.wait_log_count("parked", 1);
    let resumed = b.stderr_count("resumed");
    for _ in 0..5 {
        send(&mut c, &Packet::PingReq);
        assert!(
            matches!(
                read_packet(&mut c, &mut buf, RECV_TIMEOUT),
                Packet::PingResp
            ),
            "PINGRESP expected"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        b.stderr_count("resumed"),
        resumed,
        "a light TLS client's PINGREQ resumed its tasks"
    );
}

#[test]
fn light_tls_delivery_larger_than_the_socket_takes_arrives_intact() {
    let pki = Pki::generate();
    // Larger than the kernel's largest send buffer (tcp_wmem, 4 MiB).
    let b = start_tls(&pki, &["--max-packet-size", "16777216"]);
    let mut sub = tls_client(b.mqtts_port(), &pki, Some(8 * 1024));
    let mut buf = BytesMut::new();
    connect(&mut sub, &mut buf, "light-tls-big");
    send(
        &mut sub,
        &subscribe_packet(1, &[("big/#", QoS::AtMostOnce)]),
    );
    assert!(matches!(
        read_packet(&mut sub, &mut buf, RECV_TIMEOUT),
        Packet::SubAck(_)
    ));
    b.wait_log_count("parked", 1);
    // 8 MiB in one delivery, while the subscriber reads nothing.
    let payload: Vec<u8> = (0..8 << 20).map(|i| (i % 251) as u8).collect();
    let (mut publ, _) = RawClient::connect(b.port(), "light-tls-pub", true);
    publ.publish("big/1", QoS::AtMostOnce, 0, false, &payload);
    b.wait_log_count("the kernel took part", 1);
    match read_packet(&mut sub, &mut buf, Duration::from_secs(30)) {
        Packet::Publish(p) => {
            assert_eq!(p.topic.as_ref() as &str, "big/1");
            assert!(p.payload[..] == payload[..], "payload corrupted");
        }
        other => panic!("expected the PUBLISH, got {other:?}"),
    }
    // The session goes on: a ping round trip after it.
    send(&mut sub, &Packet::PingReq);
    assert!(matches!(
        read_packet(&mut sub, &mut buf, RECV_TIMEOUT),
        Packet::PingResp
    ));
}
