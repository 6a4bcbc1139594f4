//! A hashed timing wheel of 1 ms buckets: what is due now, without a scan over every connection.
//!
//! Each fleet thread holds thousands of connections that each act every few milliseconds to
//! minutes (a publish, a PINGREQ). Scanning them all every tick would cost more than the sends;
//! the wheel visits only the buckets that time passed over. An entry keeps its absolute due
//! millisecond, so a due time further away than the ring is long simply waits for its lap.
//! Time is passed in, never read, so the wheel is tested without a clock.

/// Timers keyed by a `u32` token (a connection's slot on its thread).
pub struct Wheel {
    slots: Vec<Vec<(u64, u32)>>,
    /// The next millisecond to visit: everything due before it was handed out.
    next_ms: u64,
    len: usize,
}

impl Wheel {
    /// A wheel of `slots` buckets of 1 ms, starting at millisecond `now_ms`.
    pub fn new(slots: usize, now_ms: u64) -> Wheel {
        let slots = slots.max(1);
        Wheel {
            slots: (0..slots).map(|_| Vec::new()).collect(),
            next_ms: now_ms,
            len: 0,
        }
    }

    /// Timers pending.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Fires `token` at millisecond `due_ms` (at the next [`Wheel::advance`] if already past).
    pub fn insert(&mut self, due_ms: u64, token: u32) {
        let due = due_ms.max(self.next_ms);
        let n = self.slots.len() as u64;
        self.slots[(due % n) as usize].push((due, token));
        self.len += 1;
    }

    /// Appends to `out` every token due at or before `now_ms`, in due order of the buckets.
    pub fn advance(&mut self, now_ms: u64, out: &mut Vec<u32>) {
        if now_ms < self.next_ms {
            return;
        }
        let n = self.slots.len() as u64;
        // A jump longer than the ring visits each bucket once.
        let visits = (now_ms - self.next_ms + 1).min(n);
        for k in 0..visits {
            let ms = self.next_ms + k;
            let slot = &mut self.slots[(ms % n) as usize];
            let before = out.len();
            slot.retain(|&(due, token)| {
                if due <= now_ms {
                    out.push(token);
                    false
                } else {
                    true
                }
            });
            self.len -= out.len() - before;
        }
        self.next_ms = now_ms + 1;
    }

    /// The earliest millisecond at which something may be due (for the poll timeout): the
    /// next bucket to visit when anything is pending.
    pub fn next_visit(&self) -> Option<u64> {
        (self.len > 0).then_some(self.next_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fire(w: &mut Wheel, now: u64) -> Vec<u32> {
        let mut out = Vec::new();
        w.advance(now, &mut out);
        out
    }

    #[test]
    fn fires_at_due_millisecond_not_before() {
        let mut w = Wheel::new(8, 100);
        w.insert(103, 1);
        w.insert(101, 2);
        assert_eq!(fire(&mut w, 100), Vec::<u32>::new());
        assert_eq!(fire(&mut w, 102), vec![2]);
        assert_eq!(fire(&mut w, 103), vec![1]);
        assert_eq!(w.len(), 0);
    }

    #[test]
    fn due_beyond_the_ring_waits_its_lap() {
        let mut w = Wheel::new(4, 0);
        w.insert(9, 7); // same bucket as 1 and 5
        assert!(fire(&mut w, 1).is_empty());
        assert!(fire(&mut w, 5).is_empty());
        assert_eq!(fire(&mut w, 9), vec![7]);
    }

    #[test]
    fn past_due_fires_at_once_and_big_jumps_miss_nothing() {
        let mut w = Wheel::new(4, 50);
        w.insert(10, 1);
        for t in 51..=60 {
            w.insert(t, t as u32);
        }
        let mut got = fire(&mut w, 1000);
        got.sort_unstable();
        let mut want: Vec<u32> = (51..=60).collect();
        want.insert(0, 1);
        assert_eq!(got, want);
        assert_eq!(w.len(), 0);
        assert_eq!(w.next_visit(), None);
    }

    #[test]
    fn time_going_back_fires_nothing() {
        let mut w = Wheel::new(16, 10);
        w.insert(12, 1);
        assert_eq!(fire(&mut w, 12), vec![1]);
        w.insert(13, 2);
        assert!(fire(&mut w, 11).is_empty());
        assert_eq!(fire(&mut w, 13), vec![2]);
    }
}
