//! Hot-path micro-benchmarks: PUBLISH decode/encode and topic matching.
//! (The full matrix of issue "Benchmarks" builds on these.)

use bytes::BytesMut;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmq::broker::topic_trie::TopicTrie;
use ringmq::protocol::{decode, encode_publish, ProtocolVersion, QoS};

fn publish_codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    for size in [16usize, 1024, 64 * 1024] {
        for version in [ProtocolVersion::V311, ProtocolVersion::V5] {
            let payload = vec![7u8; size];
            let mut wire = BytesMut::new();
            encode_publish(
                &mut wire,
                version,
                false,
                QoS::AtLeastOnce,
                false,
                "sensors/room1/temp",
                42,
                &payload,
                None,
            );
            let wire = wire.freeze();
            group.throughput(Throughput::Bytes(wire.len() as u64));
            let name = format!("{version:?}/{size}");
            group.bench_with_input(BenchmarkId::new("decode", &name), &wire, |b, wire| {
                b.iter(|| {
                    let mut buf = BytesMut::from(&wire[..]);
                    black_box(decode(&mut buf, version, 1 << 20).ok())
                })
            });
            group.bench_with_input(BenchmarkId::new("encode", &name), &payload, |b, payload| {
                let mut out = BytesMut::with_capacity(size + 64);
                b.iter(|| {
                    out.clear();
                    encode_publish(
                        &mut out,
                        version,
                        false,
                        QoS::AtLeastOnce,
                        false,
                        "sensors/room1/temp",
                        42,
                        payload,
                        None,
                    );
                    black_box(out.len())
                })
            });
        }
    }
    group.finish();
}

fn topic_match(c: &mut Criterion) {
    let mut group = c.benchmark_group("trie_match");
    for n in [1_000usize, 100_000] {
        let mut trie: TopicTrie<u32> = TopicTrie::new();
        for i in 0..n {
            let filter = match i % 3 {
                0 => format!("site/{}/dev/{}/temp", i % 100, i),
                1 => format!("site/{}/+/{}/temp", i % 100, i),
                _ => format!("site/{}/dev/{}/#", i % 100, i),
            };
            *trie.entry(&filter) += 1;
        }
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::from_parameter(n), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % n;
                let topic = format!("site/{}/dev/{}/temp", i % 100, i);
                let mut hits = 0u32;
                trie.for_each_match(&topic, |v| hits += *v);
                black_box(hits)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, publish_codec, topic_match);
criterion_main!(benches);
