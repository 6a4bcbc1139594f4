//! The cross-shard hand-off: two glommio executors joined by the broker's
//! kind of channel mesh (`MeshBuilder::full(2, 256)`), one shipping batches
//! of `ShardMessage::Publish` to the other, which drops them after counting
//! (the receiving core's work is measured in `routing`). Messages per second
//! for batches of 1, 16 and 256 messages.
//!
//! The executors live for the whole bench. For each criterion sample the
//! driver asks the sending executor for `iters` messages; the sender takes a
//! timestamp, builds and ships the batches (cloning one `Message`, i.e. two
//! reference-count increments, per message, as `Shard::publish` does per
//! destination), the receiver takes a timestamp when the last one arrived,
//! and the sample's time is the difference (both use the monotonic clock).
//! All messages share one topic and one payload allocation, so their
//! reference counts bounce between the two cores as they would for slices
//! of one publisher's read buffer; batch 1 also pays a `Vec` per message.
//!
//! The server wraps each batch in its private `MeshItem::Broker(Vec<_>)`;
//! this bench sends the `Vec<ShardMessage>` itself, which has the same cost.
//!
//! Two paths, as in `server/mesh.rs`: `channel` (glommio's shared channel,
//! which wakes a sleeping receiver through an eventfd) and `lane` (a
//! crossbeam `ArrayQueue` of batches, which the broker drains on its pacer
//! tick without any wake-up; here the receiver polls it continuously, so
//! the figure is the lane's own cost, not the tick's).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use bytes::Bytes;
use bytestring::ByteString;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use crossbeam::queue::ArrayQueue;
use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{ExecutorJoinHandle, LocalExecutorBuilder};
use ringmq::broker::{Message, ShardMessage};
use ringmq::protocol::QoS;

/// The broker's ring size (`server::mesh::CHANNEL_CAPACITY`, private).
const CHANNEL_CAPACITY: usize = 256;
/// The broker's lane size (`server::mesh::LANE_CAPACITY`, private).
const LANE_CAPACITY: usize = 1024;
/// Enough for glommio's rings under this machine's RLIMIT_MEMLOCK.
const IO_MEMORY: usize = 64 << 10;

type Batch = Vec<ShardMessage>;

enum Command {
    Run { messages: u64, batch: usize },
    Stop,
}

#[derive(Clone, Copy, Debug)]
enum Path {
    Channel,
    Lane,
}

/// The lane and a flag that tells its polling receiver to stop.
struct Lane {
    ring: ArrayQueue<Batch>,
    closed: AtomicBool,
}

/// Two executors, a mesh and a lane between them, and the driver's control
/// lines.
struct Pair {
    commands: mpsc::Sender<Command>,
    started: mpsc::Receiver<Instant>,
    finished: mpsc::Receiver<Instant>,
    handles: Vec<ExecutorJoinHandle<()>>,
}

impl Pair {
    fn start(path: Path) -> Pair {
        let mesh: MeshBuilder<Batch, _> = MeshBuilder::full(2, CHANNEL_CAPACITY);
        let lane = Arc::new(Lane {
            ring: ArrayQueue::new(LANE_CAPACITY),
            closed: AtomicBool::new(false),
        });
        let sender_lane = lane.clone();
        let (commands, command_rx) = mpsc::channel::<Command>();
        let (started_tx, started) = mpsc::channel();
        let (finished_tx, finished) = mpsc::channel();
        let (total_tx, total_rx) = mpsc::channel::<u64>();

        let sender_mesh = mesh.clone();
        let sender = LocalExecutorBuilder::default()
            .name("bench-shard-tx")
            .io_memory(IO_MEMORY)
            .spawn(move || async move {
                let (senders, _receivers) = sender_mesh.join().await.expect("mesh join");
                let peer = 1 - senders.peer_id();
                let msg = Message {
                    topic: ByteString::from_static("site/7/dev/42/temp"),
                    payload: Bytes::from(vec![0x5Au8; 64]),
                    qos: QoS::AtMostOnce,
                    retain: false,
                    properties: None,
                    expires_at: None,
                    origin: ringmq::broker::message::Origin::NONE,
                };
                // Blocking on the driver here is fine: this executor has
                // nothing else to do between samples.
                while let Ok(Command::Run { messages, batch }) = command_rx.recv() {
                    total_tx.send(messages).expect("receiver alive");
                    started_tx.send(Instant::now()).expect("driver alive");
                    let mut left = messages;
                    while left > 0 {
                        let n = left.min(batch as u64) as usize;
                        let mut items = Vec::with_capacity(n);
                        for _ in 0..n {
                            items.push(ShardMessage::Publish {
                                msg: msg.clone(),
                                retain_stamp: 0,
                                shared: Vec::new(),
                            });
                        }
                        match path {
                            Path::Channel => {
                                if senders.send_to(peer, items).await.is_err() {
                                    panic!("mesh channel closed");
                                }
                            }
                            Path::Lane => {
                                while let Err(back) = sender_lane.ring.push(items) {
                                    items = back;
                                    futures_lite::future::yield_now().await;
                                }
                            }
                        }
                        left -= n as u64;
                    }
                }
                sender_lane.closed.store(true, Ordering::SeqCst);
                senders.close();
            })
            .expect("spawn sending executor (RLIMIT_MEMLOCK?)");

        let receiver = LocalExecutorBuilder::default()
            .name("bench-shard-rx")
            .io_memory(IO_MEMORY)
            .spawn(move || async move {
                let (senders, mut receivers) = mesh.join().await.expect("mesh join");
                senders.close();
                let (_, stream) = receivers.streams().pop().expect("one peer");
                let mut expected = 0u64;
                let mut got = 0u64;
                loop {
                    let batch = match path {
                        Path::Channel => match stream.recv().await {
                            Some(b) => b,
                            None => break,
                        },
                        Path::Lane => match lane.ring.pop() {
                            Some(b) => b,
                            None if lane.closed.load(Ordering::SeqCst) => break,
                            None => {
                                futures_lite::future::yield_now().await;
                                continue;
                            }
                        },
                    };
                    if expected == 0 {
                        // Sent before the first batch of the round.
                        expected = total_rx.recv().expect("sender alive");
                    }
                    got += batch.len() as u64;
                    drop(batch);
                    if got >= expected {
                        debug_assert_eq!(got, expected);
                        finished_tx.send(Instant::now()).expect("driver alive");
                        got = 0;
                        expected = 0;
                    }
                }
            })
            .expect("spawn receiving executor (RLIMIT_MEMLOCK?)");

        Pair {
            commands,
            started,
            finished,
            handles: vec![sender, receiver],
        }
    }

    /// Ships `messages` messages in batches of `batch` and returns the time
    /// from the first send to the last receive.
    fn run(&self, messages: u64, batch: usize) -> Duration {
        if messages == 0 {
            return Duration::ZERO;
        }
        self.commands
            .send(Command::Run { messages, batch })
            .expect("sender alive");
        let start = self.started.recv().expect("sender alive");
        let end = self.finished.recv().expect("receiver alive");
        end.saturating_duration_since(start)
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Stop);
        for h in self.handles.drain(..) {
            let _ = h.join();
        }
    }
}

fn handoff(c: &mut Criterion) {
    let mut group = c.benchmark_group("cross_shard_handoff");
    group.throughput(Throughput::Elements(1));
    for path in [Path::Channel, Path::Lane] {
        let pair = Pair::start(path);
        // Sanity and warm-up of the rings.
        for batch in [1, 16, 256] {
            pair.run(1000, batch);
        }
        for batch in [1usize, 16, 256] {
            let name = format!("{path:?}/batch_{batch}").to_lowercase();
            group.bench_function(BenchmarkId::from_parameter(name), |b| {
                b.iter_custom(|iters| pair.run(iters, batch))
            });
        }
        drop(pair);
    }
    group.finish();
}

criterion_group!(benches, handoff);
criterion_main!(benches);
