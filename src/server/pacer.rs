//! Batching busy connections' I/O on a shared shard tick (interrupt
//! coalescing, as a NIC does it).
//!
//! Why: at a steady 20,000 messages a second per client, serving each
//! message as it arrives costs a reactor wake-up, a `recv`, an io_uring
//! poll, a `send` and often a cross-shard wake-up — per message. A
//! connection that was read (or written) less than one tick (`--pace-us`,
//! 1 ms by default) ago is
//! *busy*: its next read (write) waits for the shard's next tick instead,
//! and then takes everything that arrived meanwhile in one syscall. All
//! busy connections of a shard wake on the same tick, so their messages
//! also cross to other shards in one batch. A message after a quiet spell
//! is still served at once; a busy stream pays at most one tick of extra
//! latency on each side; a connection that fills its read buffer skips the
//! wait (it is saturated, and waiting would cap its throughput).
//!
//! The tick runs only while somebody waits for it. `--pace-us 0` turns
//! pacing off: every connection is served as its data comes, and batches
//! cross shards through the waking channel only.

use std::cell::{Cell, RefCell};
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};
use std::time::{Duration, Instant};

use super::notify::Notify;

/// A shard's tick and clock.
pub struct Pacer {
    /// The tick period in microseconds; 0: pacing off.
    period_us: u32,
    started: Instant,
    tick: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
    /// Wakes the tick task when the first waiter comes.
    wanted: Notify,
}

impl Pacer {
    /// A pacer ticking every `period` (zero: never busy, never ticks).
    pub fn new(period: Duration) -> Pacer {
        Pacer {
            period_us: period.as_micros().min(u128::from(u32::MAX / 2)) as u32,
            started: Instant::now(),
            tick: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
            wanted: Notify::default(),
        }
    }

    /// Microseconds since the shard started, wrapping (every 71 minutes):
    /// compared only by wrapping difference, over spans far shorter.
    pub fn now_us(&self) -> u32 {
        self.started.elapsed().as_micros() as u32
    }

    /// Microseconds since `stamp`. Stamps wrap every 71 minutes, so one
    /// older than that reads as recent (for parking: a delay of one
    /// `--park-after-ms`, once).
    pub fn since(&self, stamp: u32) -> u32 {
        self.now_us().wrapping_sub(stamp)
    }

    /// Whether something stamped `last_us` (0: never) less than a tick ago.
    pub fn is_busy(&self, last_us: u32) -> bool {
        last_us != 0 && self.since(last_us) < self.period_us
    }

    /// A timestamp for [`is_busy`](Self::is_busy): never 0.
    pub fn stamp(&self) -> u32 {
        self.now_us().max(1)
    }

    /// Resolves at the shard's next tick.
    pub async fn next_tick(&self) {
        let start = self.tick.get();
        poll_fn(|cx| {
            if self.tick.get() != start {
                return Poll::Ready(());
            }
            let mut waiters = self.waiters.borrow_mut();
            if waiters.is_empty() {
                self.wanted.notify();
            }
            waiters.push(cx.waker().clone());
            Poll::Pending
        })
        .await
    }
}

/// The shard's tick task: ticks every period while anyone waits.
/// `ticking` is told when it starts and stops; `on_tick` runs on every
/// tick before the waiters wake (so what it produces goes out on this
/// tick), and once more after `ticking(false)` (to catch what was sent
/// while others still believed this shard was ticking).
pub async fn run(pacer: Rc<Pacer>, ticking: impl Fn(bool), on_tick: impl Fn()) {
    let mut woken = Vec::new();
    let mut is_ticking = false;
    loop {
        if pacer.waiters.borrow().is_empty() {
            if is_ticking {
                is_ticking = false;
                ticking(false);
                on_tick();
                continue;
            }
            pacer.wanted.wait().await;
            continue;
        }
        if !is_ticking {
            is_ticking = true;
            ticking(true);
        }
        glommio::timer::sleep(Duration::from_micros(u64::from(pacer.period_us))).await;
        pacer.tick.set(pacer.tick.get() + 1);
        on_tick();
        std::mem::swap(&mut woken, &mut *pacer.waiters.borrow_mut());
        for w in woken.drain(..) {
            w.wake();
        }
    }
}
