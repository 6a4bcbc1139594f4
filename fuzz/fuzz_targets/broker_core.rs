//! Fuzzes the whole broker core: arbitrary sequences of connects, raw and
//! structured packets, reads, disconnects, time and cross-shard delivery
//! from four clients drive a 2-shard simulation (what `server/` does with
//! sockets, without them). After every step each shard must hold within
//! its limits and account for every queued QoS 1/2 message
//! (`Shard::check_bounds`); nothing may panic. Small limits make the
//! fuzzer reach them. Run with `cargo +nightly fuzz run broker_core`.

#![no_main]

use bytes::{Bytes, BytesMut};
use bytestring::ByteString;
use libfuzzer_sys::fuzz_target;
use ringmq::broker::retain::RetainLimits;
use ringmq::broker::{home_shard, BrokerLimits, ConnId, Shard};
use ringmq::protocol::{
    decode, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, Subscribe,
    SubscriptionOptions, SubscriptionRequest,
};

const SHARDS: usize = 2;
const MAX_PACKET: usize = 4096;
const IDS: [&str; 5] = ["a", "b", "c", "d", ""];
const TOPICS: [&str; 6] = ["a", "a/b", "a/b/c", "$SYS/x", "x/y", "l/l/l/l/l/l/l/l/l"];
const FILTERS: [&str; 10] = [
    "#",
    "a/#",
    "+/b",
    "a/b",
    "$SYS/#",
    "+",
    "a/+/c",
    "x/#",
    "$share/g/a/#",
    "$share/h/+",
];

fn limits() -> BrokerLimits {
    BrokerLimits {
        max_inflight: 16,
        max_queued: 8,
        max_queued_bytes: 2048,
        max_outbox_bytes: 1024,
        max_topic_levels: 8,
        max_topic_length: 64,
        max_subscriptions: 6,
        max_client_id_len: 8,
        receive_maximum: 4,
        retained: RetainLimits {
            max_messages: 4,
            max_bytes: 1024,
        },
        max_packet_size: MAX_PACKET,
        max_topic_alias: 2,
        max_keepalive: 30,
    }
}

#[derive(Clone, Copy)]
struct Client {
    shard: usize,
    conn: ConnId,
    version: ProtocolVersion,
}

struct World {
    shards: Vec<Shard>,
    clients: [Option<Client>; 4],
    now: u64,
}

/// Reads the fuzz input a byte at a time (0 once it is used up).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        let Some((&b, rest)) = self.0.split_first() else {
            return 0;
        };
        self.0 = rest;
        b
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let n = n.min(self.0.len());
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[usize::from(self.byte()) % from.len()]
    }
}

impl World {
    fn drop_client(&mut self, slot: usize) {
        if let Some(c) = self.clients[slot].take() {
            self.shards[c.shard].connection_lost(c.conn, self.now);
            self.shards[c.shard].release(c.conn, self.now);
        }
    }

    fn connect(&mut self, slot: usize, input: &mut Input) {
        self.drop_client(slot);
        let id = input.pick(&IDS);
        let flags = input.byte();
        let version = if flags & 1 == 0 {
            ProtocolVersion::V311
        } else {
            ProtocolVersion::V5
        };
        let shard = if id.is_empty() {
            0
        } else {
            home_shard(id, SHARDS)
        };
        let conn = self.shards[shard].connect(
            Connect {
                protocol: version,
                clean_start: flags & 2 == 0,
                keep_alive: u16::from(flags >> 6),
                client_id: ByteString::from(id),
                will: None,
                username: None,
                password: None,
                // 5.0: session expiry, receive maximum, maximum packet
                // size and topic alias maximum, from the flags.
                properties: (version == ProtocolVersion::V5).then(|| {
                    Box::new(Properties {
                        session_expiry_interval: Some(u32::from(flags >> 4 & 3) * 2),
                        receive_maximum: Some(u16::from(flags >> 2 & 3) + 1),
                        maximum_packet_size: (flags & 1 != 0).then_some(200),
                        topic_alias_maximum: Some(u16::from(flags >> 6)),
                        ..Default::default()
                    })
                }),
            },
            self.now,
        );
        self.clients[slot] = Some(Client {
            shard,
            conn,
            version,
        });
    }

    /// Hands one packet to the core as the server would: not while the
    /// client's outbox is full (the server stops reading then).
    fn handle(&mut self, c: Client, packet: Packet) {
        let shard = &mut self.shards[c.shard];
        if !shard.outbox_full(c.conn) {
            let _ = shard.handle_packet(c.conn, packet, self.now);
        }
    }

    fn raw_packets(&mut self, slot: usize, input: &mut Input) {
        let Some(c) = self.clients[slot] else { return };
        let len = usize::from(input.byte());
        let mut buf = BytesMut::from(input.bytes(len));
        loop {
            match decode(&mut buf, c.version, MAX_PACKET) {
                Ok(Some(packet)) => self.handle(c, packet),
                Ok(None) => return,
                Err(_) => return self.drop_client(slot),
            }
        }
    }

    fn publish(&mut self, slot: usize, input: &mut Input) {
        let Some(c) = self.clients[slot] else { return };
        let flags = input.byte();
        let qos = [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce][usize::from(flags % 3)];
        let payload_len = usize::from(input.byte()) * 4;
        let packet = Packet::Publish(Publish {
            dup: false,
            qos,
            retain: flags & 0x10 != 0,
            topic: ByteString::from(input.pick(&TOPICS)),
            packet_id: if qos == QoS::AtMostOnce {
                0
            } else {
                u16::from(input.byte() % 8) + 1
            },
            payload: Bytes::from(vec![b'p'; payload_len]),
            // 5.0: message expiry and a topic alias, from the flags.
            properties: (c.version == ProtocolVersion::V5 && flags & 0x20 != 0).then(|| {
                Box::new(Properties {
                    message_expiry_interval: Some(u32::from(flags >> 6)),
                    topic_alias: (flags & 0x08 != 0).then_some(u16::from(flags >> 7) + 1),
                    ..Default::default()
                })
            }),
        });
        self.handle(c, packet);
    }

    fn subscribe(&mut self, slot: usize, input: &mut Input) {
        let Some(c) = self.clients[slot] else { return };
        let count = usize::from(input.byte() % 16) + 1;
        let filters = (0..count)
            .map(|_| {
                let b = input.byte();
                SubscriptionRequest {
                    filter: ByteString::from(FILTERS[usize::from(b % 10)]),
                    options: SubscriptionOptions {
                        qos: [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
                            [usize::from((b >> 4) % 3)],
                        no_local: c.version == ProtocolVersion::V5 && b & 0x40 != 0,
                        retain_as_published: b & 0x80 != 0,
                        retain_handling: (b >> 6) % 3,
                    },
                }
            })
            .collect();
        let sub_id = u32::from(input.byte() % 3);
        let packet = Packet::Subscribe(Subscribe {
            packet_id: 1,
            filters,
            properties: (c.version == ProtocolVersion::V5 && sub_id > 0).then(|| {
                Box::new(Properties {
                    subscription_identifiers: vec![sub_id],
                    ..Default::default()
                })
            }),
        });
        self.handle(c, packet);
    }

    /// The client reads everything and the server reports it written.
    fn read(&mut self, slot: usize) {
        let Some(c) = self.clients[slot] else { return };
        let shard = &mut self.shards[c.shard];
        let _ = shard.take_output(c.conn);
        shard.output_written(c.conn);
    }

    fn settle(&mut self) {
        for src in 0..SHARDS {
            let dsts: Vec<usize> = self.shards[src].shards_with_outgoing().collect();
            for dst in dsts {
                let batch = self.shards[src].take_outgoing(dst);
                self.shards[dst].handle_shard_messages(src, batch);
            }
        }
    }

    /// What the server does after each turn: forget dirty marks, finish
    /// closing connections; then the invariants.
    fn after_step(&mut self) {
        let mut dirty = Vec::new();
        for shard in &mut self.shards {
            shard.take_dirty_conns(&mut dirty);
            dirty.clear();
        }
        for slot in 0..self.clients.len() {
            if let Some(c) = self.clients[slot] {
                if self.shards[c.shard].is_closing(c.conn) {
                    let _ = self.shards[c.shard].take_output(c.conn);
                    self.shards[c.shard].release(c.conn, self.now);
                    self.clients[slot] = None;
                }
            }
        }
        for shard in &self.shards {
            // One step overshoots by at most a packet plus the replies to
            // one 255-byte read.
            if let Err(breach) = shard.check_bounds(MAX_PACKET + 512) {
                panic!("shard {}: {breach}", shard.id());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut world = World {
        shards: (0..SHARDS)
            .map(|i| Shard::new(i, SHARDS, limits()))
            .collect(),
        clients: [None; 4],
        now: 0,
    };
    for shard in &mut world.shards {
        shard.set_park_after(1000);
    }
    let mut input = Input(data);
    while !input.0.is_empty() {
        let op = input.byte();
        let slot = usize::from(op >> 4) % 4;
        match op % 8 {
            0 => world.connect(slot, &mut input),
            1 => world.raw_packets(slot, &mut input),
            2 => world.read(slot),
            3 => world.drop_client(slot),
            4 => {
                world.now += u64::from(input.byte()) * 100;
                let mut silent = Vec::new();
                for shard in &mut world.shards {
                    shard.tick(world.now);
                    shard.silent_conns(world.now, &mut silent);
                }
            }
            5 => world.settle(),
            6 => world.publish(slot, &mut input),
            _ => world.subscribe(slot, &mut input),
        }
        world.after_step();
    }
});
