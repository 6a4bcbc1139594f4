//! A shard's parked connections, indexed by the slot half of their ids.
//!
//! Why not a `HashMap`: a light connection's every packet looks its entry
//! up (`light`), among thousands; connection ids are slab ids
//! (`broker::id_map`: slot index in the low 32 bits, generation in the
//! high), so the slot index is a dense array index, and a lookup is one
//! bounds-checked access plus a compare of the full id (a stale id finds
//! nothing).

use crate::broker::ConnId;

pub struct ParkedTable<T> {
    slots: Vec<Option<(ConnId, T)>>,
    len: usize,
}

impl<T> Default for ParkedTable<T> {
    fn default() -> Self {
        ParkedTable {
            slots: Vec::new(),
            len: 0,
        }
    }
}

fn index(conn: ConnId) -> usize {
    (conn & 0xFFFF_FFFF) as usize
}

impl<T> ParkedTable<T> {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Inserts or replaces `conn`'s entry.
    pub fn insert(&mut self, conn: ConnId, value: T) {
        let i = index(conn);
        if i >= self.slots.len() {
            self.slots.resize_with(i + 1, || None);
        }
        if self.slots[i].replace((conn, value)).is_none() {
            self.len += 1;
        }
    }

    pub fn get(&self, conn: ConnId) -> Option<&T> {
        match self.slots.get(index(conn))? {
            Some((id, v)) if *id == conn => Some(v),
            _ => None,
        }
    }

    pub fn get_mut(&mut self, conn: ConnId) -> Option<&mut T> {
        match self.slots.get_mut(index(conn))? {
            Some((id, v)) if *id == conn => Some(v),
            _ => None,
        }
    }

    pub fn contains_key(&self, conn: ConnId) -> bool {
        self.get(conn).is_some()
    }

    pub fn remove(&mut self, conn: ConnId) -> Option<T> {
        let slot = self.slots.get_mut(index(conn))?;
        if !matches!(slot, Some((id, _)) if *id == conn) {
            return None;
        }
        let (_, v) = slot.take()?;
        self.len -= 1;
        // Give the tail back once it is empty, so a burst of connections
        // does not keep its table forever.
        while matches!(self.slots.last(), Some(None)) {
            self.slots.pop();
        }
        if self.slots.capacity() > 64 && self.slots.len() * 4 < self.slots.capacity() {
            self.slots.shrink_to_fit();
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_ids_find_nothing_and_the_tail_shrinks() {
        let mut t = ParkedTable::default();
        let a: ConnId = (1 << 32) | 3;
        let a_later: ConnId = (2 << 32) | 3;
        t.insert(a, "a");
        assert_eq!(t.get(a), Some(&"a"));
        assert_eq!(t.get(a_later), None);
        assert!(t.remove(a_later).is_none());
        assert_eq!(t.len(), 1);
        t.insert(a, "a2");
        assert_eq!(t.len(), 1);
        assert_eq!(t.remove(a), Some("a2"));
        assert!(t.is_empty());
        assert_eq!(t.slots.len(), 0);
        assert!(t.get((1 << 32) | 1000).is_none());
    }
}
