//! A fixed-size set of shard ids, for the interest index.

/// Most shards a broker runs; one bit each.
pub const MAX_SHARDS: usize = 256;

/// A set of shard ids (bitmap of [`MAX_SHARDS`] bits, no allocation).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShardSet([u64; MAX_SHARDS / 64]);

impl ShardSet {
    pub fn insert(&mut self, shard: usize) {
        self.0[shard / 64] |= 1 << (shard % 64);
    }

    pub fn remove(&mut self, shard: usize) {
        self.0[shard / 64] &= !(1 << (shard % 64));
    }

    pub fn contains(&self, shard: usize) -> bool {
        self.0[shard / 64] & (1 << (shard % 64)) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|w| *w == 0)
    }

    pub fn union_with(&mut self, other: &ShardSet) {
        for (a, b) in self.0.iter_mut().zip(other.0.iter()) {
            *a |= *b;
        }
    }

    /// Shard ids in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        self.0.iter().enumerate().flat_map(|(i, word)| {
            let mut w = *word;
            std::iter::from_fn(move || {
                if w == 0 {
                    return None;
                }
                let bit = w.trailing_zeros() as usize;
                w &= w - 1;
                Some(i * 64 + bit)
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_remove_iter() {
        let mut s = ShardSet::default();
        for i in [0, 3, 64, 255] {
            s.insert(i);
        }
        assert_eq!(s.iter().collect::<Vec<_>>(), [0, 3, 64, 255]);
        s.remove(3);
        assert!(!s.contains(3) && s.contains(64));
        let mut t = ShardSet::default();
        t.insert(7);
        t.union_with(&s);
        assert_eq!(t.iter().collect::<Vec<_>>(), [0, 7, 64, 255]);
        assert!(ShardSet::default().is_empty());
    }
}
