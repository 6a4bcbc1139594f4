//! Routing micro-benchmarks.
//!
//! - `route_subscription_trie`: one topic matched against a shard's
//!   subscription trie (`TopicTrie<Vec<_>>`, the shape `Shard` uses) holding
//!   1k or 100k filters.
//! - `route_interest_index`: the same topics and filters in the cross-shard
//!   `InterestIndex` (filter -> set of shards), i.e. `shards_for(topic)`.
//! - `shard_fanout_qos0`: one `Shard`, one publisher, N subscribers of one
//!   topic; `handle_packet(PUBLISH)` plus draining every connection's output.
//!   Throughput is deliveries.
//!
//! Filters and topics come from an IoT-like tree `site/<s>/dev/<d>/<metric>`
//! (100 devices per site, 4 metrics): 70% exact filters, 15%
//! `site/<s>/dev/+/<metric>`, 10% `site/<s>/dev/<d>/#`, 5% `site/<s>/#`.

mod support;

use bytes::Bytes;
use bytestring::ByteString;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use ringmq::broker::interest::InterestIndex;
use ringmq::broker::topic_trie::TopicTrie;
use ringmq::broker::{ConnId, Shard};
use ringmq::protocol::{Packet, Publish, QoS};
use support::fanout_shard;

const METRICS: [&str; 4] = ["temp", "hum", "co2", "power"];
const DEVICES_PER_SITE: u64 = 100;
const TOPICS: usize = 4096;

/// xorshift64*: deterministic, dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `n` filters over a tree sized so that exact filters mostly hit distinct
/// devices.
fn filters(n: usize) -> Vec<String> {
    let sites = (n as u64 / DEVICES_PER_SITE).max(10);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ n as u64);
    (0..n)
        .map(|_| {
            let s = rng.below(sites);
            let d = rng.below(DEVICES_PER_SITE);
            let m = METRICS[rng.below(METRICS.len() as u64) as usize];
            match rng.below(100) {
                0..=69 => format!("site/{s}/dev/{d}/{m}"),
                70..=84 => format!("site/{s}/dev/+/{m}"),
                85..=94 => format!("site/{s}/dev/{d}/#"),
                _ => format!("site/{s}/#"),
            }
        })
        .collect()
}

/// Topics drawn from the same tree (so most match something).
fn topics(n: usize) -> Vec<String> {
    let sites = (n as u64 / DEVICES_PER_SITE).max(10);
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    (0..TOPICS)
        .map(|_| {
            let s = rng.below(sites);
            let d = rng.below(DEVICES_PER_SITE);
            let m = METRICS[rng.below(METRICS.len() as u64) as usize];
            format!("site/{s}/dev/{d}/{m}")
        })
        .collect()
}

fn label(n: usize) -> String {
    if n >= 1000 {
        format!("{}k_filters", n / 1000)
    } else {
        format!("{n}_filters")
    }
}

fn subscription_trie(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_subscription_trie");
    group.throughput(Throughput::Elements(1));
    for n in [1_000usize, 100_000] {
        let mut trie: TopicTrie<Vec<u32>> = TopicTrie::new();
        for (i, f) in filters(n).iter().enumerate() {
            trie.entry(f).push(i as u32);
        }
        let topics = topics(n);
        let mut total = 0usize;
        for t in &topics {
            trie.for_each_match(t, |v| total += v.len());
        }
        eprintln!(
            "route_subscription_trie/{}: {} distinct filters, {:.2} subscriptions matched per topic",
            label(n),
            trie.len(),
            total as f64 / topics.len() as f64
        );
        group.bench_function(BenchmarkId::from_parameter(label(n)), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % TOPICS;
                let mut hits = 0usize;
                trie.for_each_match(black_box(&topics[i]), |v| hits += v.len());
                hits
            })
        });
    }
    group.finish();
}

fn interest_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_interest_index");
    group.throughput(Throughput::Elements(1));
    for n in [1_000usize, 100_000] {
        let mut index = InterestIndex::default();
        for (i, f) in filters(n).iter().enumerate() {
            index.add(f, i % 4);
        }
        let topics = topics(n);
        group.bench_function(BenchmarkId::from_parameter(label(n)), |b| {
            let mut i = 0usize;
            b.iter(|| {
                i = (i + 1) % TOPICS;
                index.shards_for(black_box(&topics[i]))
            })
        });
    }
    group.finish();
}

const FANOUT_TOPIC: &str = "site/7/dev/42/temp";

/// Drains every dirty connection's output (as the writer tasks would, once
/// per reactor turn) and returns the bytes written.
fn drain(shard: &mut Shard, dirty: &mut Vec<ConnId>) -> usize {
    shard.take_dirty_conns(dirty);
    let mut bytes = 0;
    for conn in dirty.drain(..) {
        if let Some((out, _)) = shard.take_output(conn) {
            bytes += out.len();
        }
    }
    bytes
}

fn shard_fanout(c: &mut Criterion) {
    let mut group = c.benchmark_group("shard_fanout_qos0");
    for subscribers in [1usize, 100, 1000] {
        let (mut shard, publisher, _) = fanout_shard(subscribers, FANOUT_TOPIC, QoS::AtMostOnce);
        let mut dirty = Vec::with_capacity(subscribers + 1);
        drain(&mut shard, &mut dirty);
        let publish = Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: ByteString::from_static(FANOUT_TOPIC),
            packet_id: 0,
            payload: Bytes::from(vec![0x5Au8; 64]),
            properties: None,
        };
        // Sanity: every subscriber gets it.
        let before = shard.stats.messages_delivered;
        let _ = shard.handle_packet(publisher, Packet::Publish(publish.clone()), 1);
        drain(&mut shard, &mut dirty);
        assert_eq!(
            shard.stats.messages_delivered - before,
            subscribers as u64,
            "fan-out fixture"
        );

        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_function(
            BenchmarkId::from_parameter(format!("{subscribers}_subscribers")),
            |b| {
                b.iter(|| {
                    let _ = shard.handle_packet(publisher, Packet::Publish(publish.clone()), 1);
                    drain(&mut shard, &mut dirty)
                })
            },
        );
        assert_eq!(shard.stats.dropped_qos0, 0, "outbox limit hit in bench");
    }
    group.finish();
}

criterion_group!(benches, subscription_trie, interest_index, shard_fanout);
criterion_main!(benches);
