//! A slab keyed by generational ids: the shard's table of connections and of
//! sessions.
//!
//! Why not a `HashMap<u64, T>`: a hash table spreads its entries over a
//! power-of-two array that is between 44 % and 88 % full, and every slot
//! page is touched, so an idle connection paid for up to two slots of
//! `Conn` and of `Session`. A slab is dense: the memory in use is
//! `len × size_of::<T>()` plus the vector's untouched growth room. The
//! generation in the id's high half means an id is never reused for a
//! different entry (a stale id finds nothing), as with the old counter.

use std::ops::Index;

/// An entry's id: slot index in the low 32 bits, the slot's generation
/// (from 1, so no id is 0) in the high 32.
pub type Id = u64;

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

#[derive(Debug)]
pub struct IdMap<T> {
    slots: Vec<Slot<T>>,
    /// Indices of empty slots, reused most recent first.
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for IdMap<T> {
    fn default() -> Self {
        IdMap {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

fn split(id: Id) -> (usize, u32) {
    ((id & 0xffff_ffff) as usize, (id >> 32) as u32)
}

impl<T> IdMap<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Stores `value` and returns its new id.
    pub fn insert(&mut self, value: T) -> Id {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.generation = slot.generation.wrapping_add(1).max(1);
            slot.value = Some(value);
            return (u64::from(slot.generation) << 32) | u64::from(index);
        }
        let index = self.slots.len() as u32;
        self.slots.push(Slot {
            generation: 1,
            value: Some(value),
        });
        (1 << 32) | u64::from(index)
    }

    pub fn get(&self, id: &Id) -> Option<&T> {
        let (index, generation) = split(*id);
        self.slots
            .get(index)
            .filter(|s| s.generation == generation)
            .and_then(|s| s.value.as_ref())
    }

    pub fn get_mut(&mut self, id: &Id) -> Option<&mut T> {
        let (index, generation) = split(*id);
        self.slots
            .get_mut(index)
            .filter(|s| s.generation == generation)
            .and_then(|s| s.value.as_mut())
    }

    pub fn contains_key(&self, id: &Id) -> bool {
        self.get(id).is_some()
    }

    pub fn remove(&mut self, id: &Id) -> Option<T> {
        let (index, generation) = split(*id);
        let slot = self.slots.get_mut(index)?;
        if slot.generation != generation {
            return None;
        }
        let value = slot.value.take()?;
        self.free.push(index as u32);
        self.len -= 1;
        Some(value)
    }

    pub fn iter(&self) -> impl Iterator<Item = (Id, &T)> + '_ {
        self.slots.iter().enumerate().filter_map(|(i, s)| {
            s.value
                .as_ref()
                .map(|v| ((u64::from(s.generation) << 32) | i as u64, v))
        })
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Id, &mut T)> + '_ {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| {
            let generation = s.generation;
            s.value
                .as_mut()
                .map(|v| ((u64::from(generation) << 32) | i as u64, v))
        })
    }

    pub fn keys(&self) -> impl Iterator<Item = Id> + '_ {
        self.iter().map(|(id, _)| id)
    }
}

impl<T> Index<&Id> for IdMap<T> {
    type Output = T;

    /// Panics on an id that is not present, like `HashMap`'s index.
    fn index(&self, id: &Id) -> &T {
        self.get(id).expect("IdMap: no entry for id")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_not_reused_for_new_entries() {
        let mut m = IdMap::new();
        let a = m.insert("a");
        let b = m.insert("b");
        assert_ne!(a, 0);
        assert_eq!(m.remove(&a), Some("a"));
        let c = m.insert("c");
        assert_ne!(c, a, "slot reused under a new generation");
        assert_eq!(
            c & 0xffff_ffff,
            a & 0xffff_ffff,
            "the slot itself is reused"
        );
        assert_eq!(m.get(&a), None, "stale id finds nothing");
        assert_eq!(m.remove(&a), None);
        assert_eq!(m[&b], "b");
        assert_eq!(m.get(&c), Some(&"c"));
        assert_eq!(m.len(), 2);
        let mut keys: Vec<_> = m.keys().collect();
        keys.sort();
        let mut want = vec![b, c];
        want.sort();
        assert_eq!(keys, want);
    }

    #[test]
    fn unknown_ids_find_nothing() {
        let mut m: IdMap<u8> = IdMap::new();
        assert_eq!(m.get(&0), None);
        assert_eq!(m.get_mut(&(5 | (1 << 32))), None);
        assert!(m.is_empty());
    }
}
