//! Codec micro-benchmarks: PUBLISH decode/encode at three payload sizes for
//! 3.1.1, 5.0 without properties and 5.0 with two properties; CONNECT decode.
//!
//! Decoding consumes its input, so each iteration gets a fresh copy of the
//! wire bytes from `iter_batched`'s (untimed) setup, in a buffer already in
//! the shared state of a connection's read buffer: what is timed is the
//! framing, the checks and the zero-copy split. Encoding writes into a reused buffer with `encode_publish`, the
//! broker's fan-out path.

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use criterion::{
    black_box, criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput,
};
use ringmq::protocol::{
    decode, encode, encode_publish, Connect, Packet, Properties, ProtocolVersion, QoS,
};

const TOPIC: &str = "site/42/dev/1337/temp";
const MAX_PACKET: usize = 1 << 20;

/// The three protocol flavours of a PUBLISH.
#[derive(Clone, Copy)]
enum Flavour {
    V311,
    V5,
    V5Props,
}

impl Flavour {
    const ALL: [Flavour; 3] = [Flavour::V311, Flavour::V5, Flavour::V5Props];

    fn name(self) -> &'static str {
        match self {
            Flavour::V311 => "v3.1.1",
            Flavour::V5 => "v5",
            Flavour::V5Props => "v5+2props",
        }
    }

    fn version(self) -> ProtocolVersion {
        match self {
            Flavour::V311 => ProtocolVersion::V311,
            Flavour::V5 | Flavour::V5Props => ProtocolVersion::V5,
        }
    }

    /// Content type and one user property: what an application typically
    /// attaches to a 5.0 PUBLISH.
    fn properties(self) -> Option<Properties> {
        match self {
            Flavour::V5Props => Some(Properties {
                content_type: Some(ByteString::from_static("application/json")),
                user_properties: vec![(
                    ByteString::from_static("trace-id"),
                    ByteString::from_static("4bf92f3577b34da6"),
                )],
                ..Properties::default()
            }),
            _ => None,
        }
    }
}

fn size_name(size: usize) -> String {
    if size >= 1024 {
        format!("{}KiB", size / 1024)
    } else {
        format!("{size}B")
    }
}

fn publish_wire(flavour: Flavour, payload: &[u8]) -> Bytes {
    let props = flavour.properties();
    let mut wire = BytesMut::new();
    encode_publish(
        &mut wire,
        flavour.version(),
        false,
        QoS::AtLeastOnce,
        false,
        TOPIC,
        42,
        payload,
        props.as_ref(),
    );
    wire.freeze()
}

/// A read buffer holding `wire`, in the state a connection's buffer is in
/// after earlier packets were split off it (shared representation), so
/// that `decode`'s split costs what it costs on a live connection and not
/// the one-time promotion of a fresh `BytesMut`.
fn read_buffer(wire: &[u8]) -> BytesMut {
    let mut buf = BytesMut::with_capacity(wire.len() + 64);
    buf.extend_from_slice(wire);
    drop(buf.split_off(wire.len()));
    buf
}

fn batch_size(bytes: usize) -> BatchSize {
    if bytes > 4096 {
        BatchSize::LargeInput
    } else {
        BatchSize::SmallInput
    }
}

fn publish_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_decode");
    for size in [16usize, 1024, 64 * 1024] {
        let payload = vec![0xA5u8; size];
        for flavour in Flavour::ALL {
            let version = flavour.version();
            let wire = publish_wire(flavour, &payload);
            // Sanity: the bytes decode to the PUBLISH we meant.
            match decode(&mut BytesMut::from(&wire[..]), version, MAX_PACKET) {
                Ok(Some(Packet::Publish(p))) => assert_eq!(p.payload.len(), size),
                other => panic!("bad fixture: {other:?}"),
            }
            group.throughput(Throughput::Bytes(wire.len() as u64));
            let id = format!("{}/{}", flavour.name(), size_name(size));
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                b.iter_batched(
                    || read_buffer(&wire),
                    |mut buf| decode(&mut buf, version, MAX_PACKET),
                    batch_size(wire.len()),
                )
            });
        }
    }
    group.finish();
}

fn publish_encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish_encode");
    for size in [16usize, 1024, 64 * 1024] {
        let payload = vec![0xA5u8; size];
        for flavour in Flavour::ALL {
            let version = flavour.version();
            let props = flavour.properties();
            let wire_len = publish_wire(flavour, &payload).len();
            group.throughput(Throughput::Bytes(wire_len as u64));
            let id = format!("{}/{}", flavour.name(), size_name(size));
            group.bench_function(BenchmarkId::from_parameter(id), |b| {
                let mut out = BytesMut::with_capacity(wire_len);
                b.iter(|| {
                    out.clear();
                    encode_publish(
                        &mut out,
                        version,
                        false,
                        QoS::AtLeastOnce,
                        false,
                        black_box(TOPIC),
                        42,
                        black_box(&payload),
                        props.as_ref(),
                    );
                    black_box(out.len())
                })
            });
        }
    }
    group.finish();
}

fn connect_packet(version: ProtocolVersion) -> Connect {
    let properties = version.is_v5().then(|| {
        Box::new(Properties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(64),
            topic_alias_maximum: Some(16),
            ..Properties::default()
        })
    });
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 60,
        client_id: ByteString::from_static("sensor-gateway-0042"),
        will: None,
        username: Some(ByteString::from_static("gateway")),
        password: Some(Bytes::from_static(b"s3cr3t-t0ken")),
        properties,
    }
}

fn connect_decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("connect_decode");
    group.throughput(Throughput::Elements(1));
    for (name, version) in [
        ("v3.1.1", ProtocolVersion::V311),
        ("v5", ProtocolVersion::V5),
    ] {
        let mut wire = BytesMut::new();
        encode(
            &Packet::Connect(Box::new(connect_packet(version))),
            version,
            &mut wire,
        );
        let wire = wire.freeze();
        match decode(&mut BytesMut::from(&wire[..]), version, MAX_PACKET) {
            Ok(Some(Packet::Connect(c))) => assert_eq!(c.protocol, version),
            other => panic!("bad fixture: {other:?}"),
        }
        group.bench_function(BenchmarkId::from_parameter(name), |b| {
            b.iter_batched(
                || read_buffer(&wire),
                |mut buf| decode(&mut buf, version, MAX_PACKET),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(benches, publish_decode, publish_encode, connect_decode);
criterion_main!(benches);
