//! What subscribers count, and what /proc says about the broker.

use hdrhistogram::Histogram;

/// Bits of history kept below the highest sequence seen.
const WINDOW: u64 = 1 << 16;

/// Duplicate and order tracking for one (publisher, topic) stream as seen by
/// one subscriber: a sliding bitmap of the last [`WINDOW`] sequences.
/// An arrival below the highest sequence seen is out of order (or a
/// duplicate); one older than the window is counted out of order (whether it
/// is also a duplicate cannot be told) and in `too_old`.
#[derive(Debug, Default)]
pub struct SeqTracker {
    /// Highest sequence seen + 1 (0: none yet).
    next: u64,
    bits: Vec<u64>,
    /// Sequences remembered (a multiple of 64); 0 means [`WINDOW`].
    window: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    InOrder,
    OutOfOrder,
    Duplicate,
    TooOld,
}

impl SeqTracker {
    /// A tracker remembering `window` sequences (rounded up to a multiple of 64): the fleet
    /// scenarios track 10,000 slow streams, where [`WINDOW`]'s 8 KB each would cost 80 MB.
    pub fn with_window(window: u64) -> SeqTracker {
        SeqTracker {
            window: window.max(64).div_ceil(64) * 64,
            ..SeqTracker::default()
        }
    }

    pub fn observe(&mut self, seq: u64) -> Arrival {
        if self.window == 0 {
            self.window = WINDOW;
        }
        let window = self.window;
        if self.bits.is_empty() {
            self.bits = vec![0; (window / 64) as usize];
        }
        let slot = |s: u64| ((s % window / 64) as usize, 1u64 << (s % 64));
        if seq >= self.next {
            // Clear the slots that the window slides over.
            let from = self.next.max((seq + 1).saturating_sub(window));
            for s in from..seq {
                let (w, b) = slot(s);
                self.bits[w] &= !b;
            }
            let (w, b) = slot(seq);
            self.bits[w] |= b;
            // A gap is counted as loss (or, if it arrives later, out of order).
            self.next = seq + 1;
            return Arrival::InOrder;
        }
        if self.next - seq > window {
            return Arrival::TooOld;
        }
        let (w, b) = slot(seq);
        if self.bits[w] & b != 0 {
            Arrival::Duplicate
        } else {
            self.bits[w] |= b;
            Arrival::OutOfOrder
        }
    }
}

/// Counts of one subscriber (merged at the end).
pub struct SubStats {
    pub received: u64,
    pub duplicated: u64,
    /// Arrivals with a sequence below the highest one already seen.
    pub out_of_order: u64,
    pub too_old: u64,
    /// Publishes whose payload had no bench header.
    pub foreign: u64,
    /// Latency in nanoseconds of every received message.
    pub hist: Histogram<u64>,
}

impl SubStats {
    pub fn new() -> SubStats {
        SubStats {
            received: 0,
            duplicated: 0,
            out_of_order: 0,
            too_old: 0,
            foreign: 0,
            hist: new_hist(),
        }
    }

    pub fn merge(&mut self, o: &SubStats) {
        self.received += o.received;
        self.duplicated += o.duplicated;
        self.out_of_order += o.out_of_order;
        self.too_old += o.too_old;
        self.foreign += o.foreign;
        let _ = self.hist.add(&o.hist);
    }

    pub fn count(&mut self, a: Arrival) {
        match a {
            Arrival::InOrder => {}
            Arrival::OutOfOrder => self.out_of_order += 1,
            Arrival::Duplicate => self.duplicated += 1,
            Arrival::TooOld => {
                self.out_of_order += 1;
                self.too_old += 1;
            }
        }
    }
}

/// 1 ns .. 100 s, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram bounds")
}

/// p50/p90/p99/p99.9/max/mean in microseconds.
pub fn latency_json(h: &Histogram<u64>) -> serde_json::Value {
    let us = |ns: u64| ns as f64 / 1000.0;
    if h.is_empty() {
        return serde_json::json!({ "count": 0 });
    }
    serde_json::json!({
        "count": h.len(),
        "p50": us(h.value_at_quantile(0.5)),
        "p90": us(h.value_at_quantile(0.9)),
        "p99": us(h.value_at_quantile(0.99)),
        "p999": us(h.value_at_quantile(0.999)),
        "max": us(h.max()),
        "mean": h.mean().round() / 1000.0,
    })
}

/// A snapshot of the broker process from /proc.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcSample {
    pub cpu_s: f64,
    pub rss_kb: u64,
    pub hwm_kb: u64,
}

pub fn sample(pid: u32) -> Option<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let tck = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    };
    Some(ProcSample {
        cpu_s: (utime + stime) as f64 / tck,
        rss_kb: kb("VmRSS:"),
        hwm_kb: kb("VmHWM:"),
    })
}

/// Whether process `pid` still exists and is not a zombie (a broker that
/// died before its parent reaped it).
pub fn alive(pid: u32) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state is the first field after the parenthesised command name.
    let state = stat
        .rfind(')')
        .and_then(|i| stat[i + 1..].split_whitespace().next());
    !matches!(state, Some("Z" | "X" | "x") | None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracker_counts_dups_and_reorders() {
        let mut t = SeqTracker::default();
        assert_eq!(t.observe(0), Arrival::InOrder);
        assert_eq!(t.observe(1), Arrival::InOrder);
        assert_eq!(t.observe(1), Arrival::Duplicate);
        assert_eq!(t.observe(3), Arrival::InOrder);
        assert_eq!(t.observe(2), Arrival::OutOfOrder);
        assert_eq!(t.observe(2), Arrival::Duplicate);
        assert_eq!(t.observe(4), Arrival::InOrder);
        assert_eq!(t.observe(4 + WINDOW * 3), Arrival::InOrder);
        assert_eq!(t.observe(5), Arrival::TooOld);
        assert_eq!(t.observe(3 + WINDOW * 3), Arrival::OutOfOrder);
        assert_eq!(t.observe(3 + WINDOW * 3), Arrival::Duplicate);
    }

    #[test]
    fn small_window_tracker() {
        let mut t = SeqTracker::with_window(100); // rounds up to 128
        assert_eq!(t.observe(0), Arrival::InOrder);
        assert_eq!(t.observe(200), Arrival::InOrder);
        assert_eq!(t.observe(100), Arrival::OutOfOrder);
        assert_eq!(t.observe(100), Arrival::Duplicate);
        assert_eq!(t.observe(50), Arrival::TooOld);
    }

    #[test]
    fn proc_sample_of_self() {
        let s = sample(std::process::id()).expect("own /proc");
        assert!(s.rss_kb > 0 && s.hwm_kb >= s.rss_kb);
    }

    #[test]
    fn alive_sees_self_and_not_a_missing_pid() {
        assert!(alive(std::process::id()));
        assert!(!alive(u32::MAX));
    }
}
