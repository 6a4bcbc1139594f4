//! The cross-shard interest index: which shards have at least one local
//! subscriber to a filter.
//!
//! Every shard holds a copy. A shard tells the others only when it gains its
//! first or loses its last subscriber of a filter, so the index changes far
//! less often than subscriptions do, and a PUBLISH is sent only to the shards
//! that can deliver it.

use super::shard_set::ShardSet;
use super::topic_trie::TopicTrie;

#[derive(Debug, Default)]
pub struct InterestIndex {
    trie: TopicTrie<ShardSet>,
}

impl InterestIndex {
    pub fn add(&mut self, filter: &str, shard: usize) {
        self.trie.entry(filter).insert(shard);
    }

    pub fn remove(&mut self, filter: &str, shard: usize) {
        self.trie.remove_if(filter, |set| {
            set.remove(shard);
            set.is_empty()
        });
    }

    /// The shards interested in a PUBLISH to `topic`.
    pub fn shards_for(&self, topic: &str) -> ShardSet {
        let mut out = ShardSet::default();
        self.trie.for_each_match(topic, |set| out.union_with(set));
        out
    }

    /// Number of distinct filters known.
    pub fn len(&self) -> usize {
        self.trie.len()
    }

    pub fn is_empty(&self) -> bool {
        self.trie.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_of_matching_filters() {
        let mut idx = InterestIndex::default();
        idx.add("a/+", 1);
        idx.add("a/#", 2);
        idx.add("b", 3);
        assert_eq!(idx.shards_for("a/x").iter().collect::<Vec<_>>(), [1, 2]);
        idx.remove("a/+", 1);
        assert_eq!(idx.shards_for("a/x").iter().collect::<Vec<_>>(), [2]);
        idx.remove("a/#", 2);
        assert!(idx.shards_for("a/x").is_empty());
        assert_eq!(idx.len(), 1);
    }
}
