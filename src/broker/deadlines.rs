//! Which connections may be due for a keepalive or silence check, without
//! scanning all of them: a coarse timer wheel.
//!
//! A connection's entry says "look at me at or after this time". Entries
//! are never moved when a packet arrives (that would cost per packet):
//! when one comes due, the owner compares the connection's real deadline
//! and schedules it again if it is not there yet. So each connection is
//! looked at about once per keepalive (or silence) period, and a tick's
//! work is proportional to what comes due, not to the number of
//! connections.

use super::session::ConnId;

/// Width of one slot, in milliseconds (the shard's tick is 500 ms).
pub const SLOT_MS: u64 = 500;
/// Slots in the wheel: entries further out than this many slots (128 s)
/// come back early and are scheduled again.
const SLOTS: usize = 256;

/// A time in slot units: what an entry and a connection remember.
pub type Slot = u32;

/// The slot that holds time `ms`.
pub fn slot_of(ms: u64) -> Slot {
    u32::try_from(ms / SLOT_MS).unwrap_or(u32::MAX)
}

#[derive(Debug)]
pub struct Deadlines {
    slots: Vec<Vec<(ConnId, Slot)>>,
    /// The slot number of `slots[cursor]`.
    base: Slot,
    cursor: usize,
    len: usize,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            base: 0,
            cursor: 0,
            len: 0,
        }
    }
}

impl Deadlines {
    /// Returns `conn` from [`Deadlines::due`] once the clock is in slot `at`
    /// or later (or earlier, for a time beyond the wheel's reach). An entry
    /// for a slot already drained comes back with the next slot.
    pub fn schedule(&mut self, conn: ConnId, at: Slot) {
        let ahead = at.saturating_sub(self.base) as usize;
        let idx = (self.cursor + ahead.min(SLOTS - 1)) % SLOTS;
        self.slots[idx].push((conn, at));
        self.len += 1;
    }

    /// Moves the entries of every slot up to the one holding `now_ms` into
    /// `out`, with the slot each was scheduled for: the caller checks the
    /// real deadline, which may be later in the current slot.
    pub fn due(&mut self, now_ms: u64, out: &mut Vec<(ConnId, Slot)>) {
        let now = slot_of(now_ms);
        let mut steps = (now + 1).saturating_sub(self.base) as usize;
        if steps > SLOTS {
            steps = SLOTS;
            self.base = now + 1 - SLOTS as Slot;
        }
        for _ in 0..steps {
            let slot = std::mem::take(&mut self.slots[self.cursor]);
            self.len -= slot.len();
            out.extend(slot);
            self.cursor = (self.cursor + 1) % SLOTS;
            self.base += 1;
        }
    }

    /// Entries held (stale ones included).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn due(d: &mut Deadlines, now_ms: u64) -> Vec<ConnId> {
        let mut out = Vec::new();
        d.due(now_ms, &mut out);
        out.into_iter().map(|(c, _)| c).collect()
    }

    #[test]
    fn entries_come_due_in_their_slot_never_before() {
        let mut d = Deadlines::default();
        d.schedule(1, slot_of(1200));
        d.schedule(2, slot_of(3000));
        assert!(due(&mut d, 999).is_empty(), "slot 2 (1000-1499) not begun");
        assert_eq!(due(&mut d, 1000), [1]);
        assert!(due(&mut d, 2999).is_empty());
        assert_eq!(due(&mut d, 3000), [2]);
        assert!(d.is_empty());
        // A slot already drained: back with the next slot.
        d.schedule(3, slot_of(2000));
        assert!(due(&mut d, 3100).is_empty());
        assert_eq!(due(&mut d, 3500), [3]);
    }

    #[test]
    fn far_entries_come_back_early_and_long_gaps_drain_everything() {
        let mut d = Deadlines::default();
        d.schedule(7, slot_of(10_000_000));
        let early = due(&mut d, (SLOTS as u64 - 1) * SLOT_MS);
        assert_eq!(early, [7], "beyond the wheel: back after one turn");
        d.schedule(8, slot_of(200_000));
        d.schedule(9, slot_of(201_000));
        assert_eq!(due(&mut d, 100_000_000), [8, 9]);
        assert!(d.is_empty());
        d.schedule(10, slot_of(100_000_500));
        assert!(due(&mut d, 100_000_400).is_empty());
        assert_eq!(due(&mut d, 100_000_500), [10]);
    }

    #[test]
    fn a_tick_touches_only_what_is_due() {
        let mut d = Deadlines::default();
        for c in 0..10_000 {
            d.schedule(c, slot_of(60_000));
        }
        d.schedule(99_999, slot_of(1000));
        assert_eq!(due(&mut d, 1500), [99_999]);
        assert!(due(&mut d, 59_000).is_empty());
        assert_eq!(d.len(), 10_000);
    }
}
