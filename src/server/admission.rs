//! Who gets in and who gets read: the broker-wide memory high-water mark,
//! the per-IP connection rate, and the count of refused connections.

use std::cell::RefCell;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

/// Shared by every shard.
#[derive(Debug)]
pub struct Admission {
    /// Resident bytes at which reading and accepting stop; 0: never.
    max_memory: u64,
    memory_high: AtomicBool,
    refused: AtomicU64,
    /// Sockets open (accepted, handed off or parked), all shards together.
    open: AtomicUsize,
    /// Millisecond (since start) of the last memory sample.
    sampled_at: AtomicU64,
    /// Second (since start) of the last refusal log line.
    logged_at: AtomicU64,
    started: Instant,
}

/// Why a new connection was turned away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    MaxConnections,
    ConnectRate,
    MemoryHigh,
}

impl Refusal {
    fn reason(self) -> &'static str {
        match self {
            Refusal::MaxConnections => "--max-connections reached",
            Refusal::ConnectRate => "--max-connect-rate exceeded for the source address",
            Refusal::MemoryHigh => "memory above --max-memory",
        }
    }
}

impl Admission {
    pub fn new(max_memory: u64) -> Admission {
        Admission {
            max_memory,
            memory_high: AtomicBool::new(false),
            refused: AtomicU64::new(0),
            open: AtomicUsize::new(0),
            sampled_at: AtomicU64::new(0),
            logged_at: AtomicU64::new(u64::MAX),
            started: Instant::now(),
        }
    }

    /// Whether the process is above its memory mark: readers pause (except
    /// for acknowledgements, which free memory) and new connections are
    /// refused.
    /// When the broker started: the epoch of every shard's clock, so that
    /// times in messages (expiry) mean the same on every shard.
    pub fn started(&self) -> Instant {
        self.started
    }

    pub fn memory_high(&self) -> bool {
        self.memory_high.load(Ordering::Relaxed)
    }

    /// Samples memory if nobody did for `MEMORY_SAMPLE_MS`: called before
    /// every read, so a shard too busy reading to run its timers still
    /// notices the mark (one `/proc` read per 50 ms for the whole broker).
    pub fn check_memory_if_due(&self) {
        if self.max_memory == 0 {
            return;
        }
        let now = self.started.elapsed().as_millis() as u64;
        let last = self.sampled_at.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= MEMORY_SAMPLE_MS
            && self
                .sampled_at
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.check_memory();
        }
    }

    /// Samples the resident set size and updates the mark, with hysteresis:
    /// high from `max_memory` until it is back under 90% of it.
    pub fn check_memory(&self) {
        if self.max_memory == 0 {
            return;
        }
        let Some(rss) = resident_bytes() else {
            return;
        };
        let was = self.memory_high();
        let high = if was {
            rss > self.max_memory / 10 * 9
        } else {
            rss >= self.max_memory
        };
        if high != was {
            self.memory_high.store(high, Ordering::Relaxed);
            if high {
                tracing::warn!(
                    rss,
                    max_memory = self.max_memory,
                    "memory high-water mark reached: pausing reads from publishers and refusing new connections"
                );
            } else {
                tracing::warn!(rss, "memory back under the high-water mark: serving again");
            }
        }
    }

    /// Counts a refused connection and logs it, at most once a second for
    /// the whole broker (a storm must not turn into a log storm).
    pub fn refuse(&self, why: Refusal, shard: usize) {
        let total = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let now_s = self.started.elapsed().as_secs();
        let last = self.logged_at.load(Ordering::Relaxed);
        if (last == u64::MAX || now_s > last)
            && self
                .logged_at
                .compare_exchange(last, now_s, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(
                shard,
                refused_total = total,
                "refused connection: {} (refused {total} connections so far)",
                why.reason()
            );
        }
    }

    /// Counts a new socket unless `max` are open already (--max-connections
    /// holds for the whole broker, whichever shard accepts or serves).
    pub fn try_open(&self, max: usize) -> bool {
        self.open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .is_ok()
    }

    /// A counted socket closed.
    pub fn closed(&self) {
        let _ = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    /// Connections refused since start.
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

/// How often memory is sampled at most.
const MEMORY_SAMPLE_MS: u64 = 50;

/// The process's resident set size, from `/proc/self/statm`.
fn resident_bytes() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = text.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).unwrap_or(4096))
}

/// Per-shard token buckets, one per source address: `rate` new
/// connections a second, bursts up to `rate`.
#[derive(Debug, Default)]
pub struct ConnectRate {
    buckets: RefCell<HashMap<IpAddr, Bucket>>,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at_ms: u64,
}

/// Addresses tracked at most; beyond, buckets that have refilled are
/// forgotten (a full bucket is the same as none).
const MAX_TRACKED: usize = 16 * 1024;

impl ConnectRate {
    /// Takes a token for `ip` at `now_ms`; false when its bucket is empty.
    pub fn admit(&self, ip: IpAddr, rate: u32, now_ms: u64) -> bool {
        if rate == 0 {
            return true;
        }
        let rate = f64::from(rate);
        let mut buckets = self.buckets.borrow_mut();
        if buckets.len() >= MAX_TRACKED && !buckets.contains_key(&ip) {
            buckets.retain(|_, b| refill(*b, rate, now_ms).tokens < rate);
            if buckets.len() >= MAX_TRACKED {
                // Every tracked address is still limited: an attack from
                // very many addresses. Start over rather than grow.
                buckets.clear();
            }
        }
        let bucket = buckets.entry(ip).or_insert(Bucket {
            tokens: rate,
            at_ms: now_ms,
        });
        *bucket = refill(*bucket, rate, now_ms);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

fn refill(b: Bucket, rate: f64, now_ms: u64) -> Bucket {
    let elapsed = now_ms.saturating_sub(b.at_ms) as f64 / 1000.0;
    Bucket {
        tokens: (b.tokens + elapsed * rate).min(rate),
        at_ms: now_ms.max(b.at_ms),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_burst_then_rate() {
        let limiter = ConnectRate::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        let admitted = (0..50).filter(|_| limiter.admit(ip, 10, 1000)).count();
        assert_eq!(admitted, 10, "a burst of the rate");
        assert!(limiter.admit(other, 10, 1000), "other addresses unaffected");
        assert!(!limiter.admit(ip, 10, 1050));
        assert!(
            limiter.admit(ip, 10, 1100),
            "one token after 100 ms at 10/s"
        );
        assert!(limiter.admit(ip, 0, 1100), "0 means no limit");
    }

    #[test]
    fn tracking_is_bounded() {
        let limiter = ConnectRate::default();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            let ip = IpAddr::from(i.to_be_bytes());
            limiter.admit(ip, 5, 0);
        }
        assert!(limiter.buckets.borrow().len() <= MAX_TRACKED);
    }

    #[test]
    fn refusals_are_counted() {
        let a = Admission::new(0);
        a.refuse(Refusal::MaxConnections, 0);
        a.refuse(Refusal::ConnectRate, 1);
        assert_eq!(a.refused_total(), 2);
        assert!(a.try_open(2) && a.try_open(2));
        assert!(!a.try_open(2), "the cap holds");
        a.closed();
        assert!(a.try_open(2), "a closed socket frees its place");
        a.check_memory();
        assert!(!a.memory_high(), "no mark: never high");
        let tiny = Admission::new(1);
        tiny.check_memory();
        assert!(tiny.memory_high(), "any process is above 1 byte");
    }
}
