//! A trie of topic filters, generic over what each filter carries.
//!
//! The same structure serves the per-shard subscription trie (a filter
//! carries the local sessions subscribed to it) and the interest index (a
//! filter carries the set of shards with at least one subscriber). Matching
//! walks one path per topic level plus the `+` and `#` branches, so its cost
//! depends on the topic's depth and the number of wildcard branches, not on
//! the number of filters.

use std::collections::HashMap;

/// One level of the trie.
#[derive(Debug)]
struct Node<V> {
    /// Value of the filter that ends exactly at this node.
    value: Option<V>,
    /// Value of the filter `<this node>/#`.
    hash: Option<V>,
    /// The `+` branch.
    plus: Option<Box<Node<V>>>,
    /// Literal levels.
    children: HashMap<Box<str>, Node<V>>,
}

impl<V> Default for Node<V> {
    fn default() -> Self {
        Node {
            value: None,
            hash: None,
            plus: None,
            children: HashMap::new(),
        }
    }
}

impl<V> Node<V> {
    fn is_empty(&self) -> bool {
        self.value.is_none()
            && self.hash.is_none()
            && self.plus.is_none()
            && self.children.is_empty()
    }
}

/// Filters stored level by level; see the module docs.
#[derive(Debug)]
pub struct TopicTrie<V> {
    root: Node<V>,
    len: usize,
}

impl<V> Default for TopicTrie<V> {
    fn default() -> Self {
        TopicTrie {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<V> TopicTrie<V> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of filters stored.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The value slot of `filter`, created with `V::default()` when absent.
    /// `filter` must be valid (see `protocol::valid_topic_filter`).
    pub fn entry(&mut self, filter: &str) -> &mut V
    where
        V: Default,
    {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            let last = levels.peek().is_none();
            if last && level == "#" {
                if node.hash.is_none() {
                    self.len += 1;
                }
                return node.hash.get_or_insert_with(V::default);
            }
            node = if level == "+" {
                node.plus.get_or_insert_with(Box::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
        }
        if node.value.is_none() {
            self.len += 1;
        }
        node.value.get_or_insert_with(V::default)
    }

    /// The value of `filter`, if stored.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        let mut node = &mut self.root;
        let mut levels = filter.split('/').peekable();
        while let Some(level) = levels.next() {
            if levels.peek().is_none() && level == "#" {
                return node.hash.as_mut();
            }
            node = if level == "+" {
                node.plus.as_deref_mut()?
            } else {
                node.children.get_mut(level)?
            };
        }
        node.value.as_mut()
    }

    /// Removes `filter` when `should_remove` says its value is done with
    /// (e.g. its last subscriber left), pruning empty branches. Returns true
    /// when the filter was removed.
    pub fn remove_if(&mut self, filter: &str, should_remove: impl FnOnce(&mut V) -> bool) -> bool {
        let levels: Vec<&str> = filter.split('/').collect();
        let removed = remove_at(&mut self.root, &levels, should_remove);
        if removed {
            self.len -= 1;
        }
        removed
    }

    /// Calls `visit` with the value of every filter that matches `topic`,
    /// following MQTT's rules: `+` matches one level, `#` the rest including
    /// the parent level (`a/#` matches `a`), and neither matches a first
    /// level that starts with `$` [MQTT-4.7.2-1].
    pub fn for_each_match(&self, topic: &str, mut visit: impl FnMut(&V)) {
        let dollar = topic.starts_with('$');
        match_node(&self.root, Some(topic), !dollar, &mut visit);
    }
}

fn remove_at<V>(
    node: &mut Node<V>,
    levels: &[&str],
    should_remove: impl FnOnce(&mut V) -> bool,
) -> bool {
    let Some((&level, rest)) = levels.split_first() else {
        return take_if(&mut node.value, should_remove);
    };
    if rest.is_empty() && level == "#" {
        return take_if(&mut node.hash, should_remove);
    }
    if level == "+" {
        let Some(child) = node.plus.as_deref_mut() else {
            return false;
        };
        let removed = remove_at(child, rest, should_remove);
        if removed && child.is_empty() {
            node.plus = None;
        }
        removed
    } else {
        let Some(child) = node.children.get_mut(level) else {
            return false;
        };
        let removed = remove_at(child, rest, should_remove);
        if removed && child.is_empty() {
            node.children.remove(level);
        }
        removed
    }
}

fn take_if<V>(slot: &mut Option<V>, should_remove: impl FnOnce(&mut V) -> bool) -> bool {
    let remove = slot.as_mut().is_some_and(should_remove);
    if remove {
        *slot = None;
    }
    remove
}

/// `rest` is the part of the topic not yet matched: `None` once every level
/// has been consumed. `wild_ok` is false only for a `$` first level.
fn match_node<V>(node: &Node<V>, rest: Option<&str>, wild_ok: bool, visit: &mut impl FnMut(&V)) {
    if wild_ok {
        if let Some(v) = &node.hash {
            visit(v);
        }
    }
    let Some(rest) = rest else {
        if let Some(v) = &node.value {
            visit(v);
        }
        return;
    };
    let (level, next) = match rest.split_once('/') {
        Some((level, next)) => (level, Some(next)),
        None => (rest, None),
    };
    if let Some(child) = node.children.get(level) {
        match_node(child, next, true, visit);
    }
    if wild_ok {
        if let Some(child) = node.plus.as_deref() {
            match_node(child, next, true, visit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(filters: &[&str], topic: &str) -> Vec<String> {
        let mut trie: TopicTrie<String> = TopicTrie::new();
        for f in filters {
            *trie.entry(f) = f.to_string();
        }
        let mut out = Vec::new();
        trie.for_each_match(topic, |v| out.push(v.clone()));
        out.sort();
        out
    }

    #[test]
    fn exact_and_single_level() {
        assert_eq!(
            matches(&["a/b", "a/+", "+/b", "a/c"], "a/b"),
            ["+/b", "a/+", "a/b"]
        );
        assert_eq!(matches(&["a/+"], "a/b/c"), Vec::<String>::new());
        assert_eq!(matches(&["+/+"], "/x"), ["+/+"]);
        assert_eq!(matches(&["+"], "/x"), Vec::<String>::new());
    }

    #[test]
    fn mqtt_4_7_1_2_multi_level_matches_parent() {
        assert_eq!(matches(&["sport/#"], "sport"), ["sport/#"]);
        assert_eq!(matches(&["sport/#"], "sport/tennis/player1"), ["sport/#"]);
        assert_eq!(matches(&["sport/#"], "sports"), Vec::<String>::new());
        assert_eq!(matches(&["#"], "a/b/c"), ["#"]);
        assert_eq!(
            matches(&["sport/tennis/+/#"], "sport/tennis/p1"),
            ["sport/tennis/+/#"]
        );
    }

    #[test]
    fn mqtt_4_7_2_1_dollar_topics_not_matched_by_leading_wildcards() {
        assert_eq!(
            matches(&["#", "+/monitor/Clients"], "$SYS/monitor/Clients"),
            Vec::<String>::new()
        );
        assert_eq!(
            matches(&["$SYS/#", "$SYS/monitor/+"], "$SYS/monitor/Clients"),
            ["$SYS/#", "$SYS/monitor/+"]
        );
    }

    #[test]
    fn empty_levels_are_levels() {
        assert_eq!(matches(&["/", "+/+", "#"], "/"), ["#", "+/+", "/"]);
        assert_eq!(matches(&["a//b", "a/+/b"], "a//b"), ["a/+/b", "a//b"]);
    }

    #[test]
    fn remove_prunes_and_counts() {
        let mut trie: TopicTrie<u32> = TopicTrie::new();
        *trie.entry("a/+/c") += 1;
        *trie.entry("a/#") += 1;
        *trie.entry("a/#") += 1;
        assert_eq!(trie.len(), 2);
        assert!(!trie.remove_if("a/#", |v| {
            *v -= 1;
            *v == 0
        }));
        assert!(trie.remove_if("a/#", |v| {
            *v -= 1;
            *v == 0
        }));
        assert!(trie.remove_if("a/+/c", |_| true));
        assert!(!trie.remove_if("x/y", |_| true));
        assert!(trie.is_empty());
        assert!(trie.root.is_empty());
    }
}
