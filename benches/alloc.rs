//! Heap allocations per PUBLISH through one `Shard`, counted by a wrapping
//! global allocator. Not a timing bench: it prints a table and asserts the
//! fan-out design goal (no allocation per subscriber once warm).
//!
//! Set-up: one shard, one publisher, N local subscribers of one topic
//! (N = 1, 10, 100), all 3.1.1. Each round is what the server does for one
//! incoming PUBLISH: `handle_packet(PUBLISH)`, then `take_dirty_conns` and
//! `take_output` for every dirty connection, dropping the buffers as the
//! writer tasks do once written. For QoS 1 (publish and subscriptions at
//! QoS 1) every subscriber then acknowledges its copy with a PUBACK; those
//! calls are counted separately. Counting starts after warm-up rounds, so
//! buffers and scratch vectors have reached their steady size.
//!
//! `cargo bench --bench alloc` (criterion's flags are accepted and ignored).

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use support::fanout_shard;

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use ringmq::broker::{ConnId, Shard};
use ringmq::protocol::{decode, Ack, Packet, ProtocolVersion, Publish, QoS};

struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);
static REALLOCS: AtomicU64 = AtomicU64::new(0);
static BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: forwards every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(layout.size() as u64, Relaxed);
        System.alloc_zeroed(layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        REALLOCS.fetch_add(1, Relaxed);
        BYTES.fetch_add(new_size as u64, Relaxed);
        System.realloc(ptr, layout, new_size)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

#[derive(Clone, Copy, Default)]
struct Counts {
    allocs: u64,
    reallocs: u64,
    bytes: u64,
}

impl Counts {
    fn now() -> Counts {
        Counts {
            allocs: ALLOCS.load(Relaxed),
            reallocs: REALLOCS.load(Relaxed),
            bytes: BYTES.load(Relaxed),
        }
    }

    fn since(self, start: Counts) -> Counts {
        Counts {
            allocs: self.allocs - start.allocs,
            reallocs: self.reallocs - start.reallocs,
            bytes: self.bytes - start.bytes,
        }
    }

    fn add(&mut self, other: Counts) {
        self.allocs += other.allocs;
        self.reallocs += other.reallocs;
        self.bytes += other.bytes;
    }

    /// Allocations and reallocations: every call into the allocator that
    /// can cost a trip to malloc.
    fn events(self) -> u64 {
        self.allocs + self.reallocs
    }
}

const TOPIC: &str = "site/7/dev/42/temp";
const V: ProtocolVersion = ProtocolVersion::V311;
const WARMUP: u64 = 2_000;
const ROUNDS: u64 = 10_000;

struct Fixture {
    shard: Shard,
    publisher: ConnId,
    subscribers: Vec<ConnId>,
    qos: QoS,
    dirty: Vec<ConnId>,
    publish: Publish,
    /// Packet id the broker gave (and will give) every subscriber's copy;
    /// they all start together and ack everything, so it is the same.
    next_delivery_id: u16,
    next_publish_id: u16,
}

fn next_id(id: u16) -> u16 {
    if id == u16::MAX {
        1
    } else {
        id + 1
    }
}

impl Fixture {
    fn new(subscribers: usize, qos: QoS) -> Fixture {
        let (shard, publisher, subscribers) = fanout_shard(subscribers, TOPIC, qos);
        let mut f = Fixture {
            dirty: Vec::with_capacity(subscribers.len() + 1),
            shard,
            publisher,
            subscribers,
            qos,
            publish: Publish {
                dup: false,
                qos,
                retain: false,
                topic: ByteString::from_static(TOPIC),
                packet_id: 0,
                payload: Bytes::from(vec![0x5Au8; 64]),
                properties: None,
            },
            next_delivery_id: 1,
            next_publish_id: 1,
        };
        f.drain(|_, _| {});
        f
    }

    fn drain(&mut self, mut seen: impl FnMut(ConnId, BytesMut)) {
        self.shard.take_dirty_conns(&mut self.dirty);
        for conn in self.dirty.drain(..) {
            if let Some((out, _)) = self.shard.take_output(conn) {
                seen(conn, out);
            }
        }
    }

    /// One PUBLISH in, outputs taken; the outputs are checked (decoded)
    /// when `check`, outside any counting.
    fn publish(&mut self, check: bool) -> Vec<(ConnId, BytesMut)> {
        let mut publish = self.publish.clone();
        if self.qos != QoS::AtMostOnce {
            publish.packet_id = self.next_publish_id;
            self.next_publish_id = next_id(self.next_publish_id);
        }
        let _ = self
            .shard
            .handle_packet(self.publisher, Packet::Publish(publish), 1);
        let mut kept = Vec::new();
        self.drain(|conn, out| {
            if check {
                kept.push((conn, out));
            }
        });
        kept
    }

    fn ack_all(&mut self) {
        if self.qos == QoS::AtMostOnce {
            return;
        }
        let packet_id = self.next_delivery_id;
        for &conn in &self.subscribers {
            let _ = self.shard.handle_packet(
                conn,
                Packet::PubAck(Ack {
                    packet_id,
                    reason: 0,
                    properties: None,
                }),
                1,
            );
        }
        self.next_delivery_id = next_id(packet_id);
    }

    /// A round whose outputs are decoded and checked (not counted).
    fn checked_round(&mut self) {
        let expect_id = self.next_delivery_id;
        let outputs = self.publish(true);
        let mut deliveries = 0;
        for (conn, mut out) in outputs {
            while let Some(p) = decode(&mut out, V, 1 << 20).expect("valid output") {
                match p {
                    Packet::Publish(p) => {
                        assert!(self.subscribers.contains(&conn));
                        if self.qos != QoS::AtMostOnce {
                            assert_eq!(p.packet_id, expect_id, "delivery packet id");
                        }
                        deliveries += 1;
                    }
                    Packet::PubAck(_) => assert_eq!(conn, self.publisher),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(deliveries, self.subscribers.len());
        self.ack_all();
    }
}

struct Row {
    subscribers: usize,
    qos: QoS,
    publish: Counts,
    ack: Counts,
}

fn measure(subscribers: usize, qos: QoS) -> Row {
    let mut f = Fixture::new(subscribers, qos);
    for _ in 0..WARMUP {
        f.checked_round();
    }
    let delivered_before = f.shard.stats.messages_delivered;
    let (mut publish, mut ack) = (Counts::default(), Counts::default());
    for _ in 0..ROUNDS {
        let start = Counts::now();
        let kept = f.publish(false);
        publish.add(Counts::now().since(start));
        drop(kept);
        let start = Counts::now();
        f.ack_all();
        ack.add(Counts::now().since(start));
    }
    // Every copy was written (not queued or dropped), and the window is
    // still in step with our acks.
    assert_eq!(
        f.shard.stats.messages_delivered - delivered_before,
        ROUNDS * subscribers as u64
    );
    assert_eq!(f.shard.stats.dropped_qos0, 0);
    assert_eq!(f.shard.stats.dropped_queue_full, 0);
    f.checked_round();
    Row {
        subscribers,
        qos,
        publish,
        ack,
    }
}

fn main() {
    println!(
        "allocations per PUBLISH through one Shard ({WARMUP} warm-up rounds, {ROUNDS} counted; \
         64 B payload, 3.1.1)"
    );
    println!(
        "{:>5} {:>4} | {:>12} {:>14} {:>12} {:>10} | {:>12}",
        "subs", "qos", "alloc/pub", "alloc/deliv", "realloc/pub", "bytes/pub", "alloc/PUBACK"
    );
    let mut rows = Vec::new();
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        for subscribers in [1usize, 10, 100] {
            let row = measure(subscribers, qos);
            let per_pub = row.publish.allocs as f64 / ROUNDS as f64;
            let deliveries = (ROUNDS * subscribers as u64) as f64;
            let ack = if qos == QoS::AtMostOnce {
                "-".to_string()
            } else {
                format!("{:.3}", row.ack.events() as f64 / deliveries)
            };
            println!(
                "{:>5} {:>4} | {:>12.3} {:>14.4} {:>12.3} {:>10.1} | {:>12}",
                subscribers,
                qos as u8,
                per_pub,
                row.publish.allocs as f64 / deliveries,
                row.publish.reallocs as f64 / ROUNDS as f64,
                row.publish.bytes as f64 / ROUNDS as f64,
                ack
            );
            rows.push(row);
        }
    }
    // The design goal: the allocator calls of a PUBLISH do not grow with the
    // number of subscribers (a fixed few per PUBLISH, none per copy).
    for qos in [QoS::AtMostOnce, QoS::AtLeastOnce] {
        let per_pub = |subs: usize| {
            let row = rows
                .iter()
                .find(|r| r.qos == qos && r.subscribers == subs)
                .expect("measured");
            row.publish.events() as f64 / ROUNDS as f64
        };
        let (one, hundred) = (per_pub(1), per_pub(100));
        assert!(
            hundred <= one + 0.1,
            "QoS {}: {hundred:.3} allocator calls per PUBLISH with 100 subscribers vs \
             {one:.3} with 1: fan-out allocates per subscriber",
            qos as u8
        );
    }
    println!("ok: allocator calls per PUBLISH do not grow with the number of subscribers");
}
