//! A trie of topic filters, generic over what each filter carries.
//!
//! The same structure serves the per-shard subscription trie (a filter
//! carries the local sessions subscribed to it), the interest index (a
//! filter carries the set of shards with at least one subscriber) and the
//! retained store (keys are topic names; see [`TopicTrie::for_each_in_filter`]).
//!
//! It is a radix trie over *levels*: an edge carries one or more whole levels
//! (`a/+/c`), and a node exists only at a branch point or where a value sits,
//! so a 100-level filter that shares nothing costs one node and one copy of
//! its bytes. `#` is never on an edge: `f/#` is the `hash` slot of the node
//! for `f`. A `+` level may sit inside an edge; the child whose edge starts
//! with `+` is kept apart (`plus`) so that matching finds it without a lookup.
//!
//! Everything a client controls the depth of (levels of a filter or topic)
//! is walked with loops and explicit stacks, never recursion, and the nodes
//! live in one arena (`Vec<Node>`, children are `u32` indices), so dropping
//! the trie is flat too: a filter of 65,536 empty levels cannot overflow a
//! shard's stack. Children are a short vector (with a small tag per child to
//! skip most comparisons) up to [`SMALL_MAX`], then a hash table seeded per
//! trie ([`RandomState`], SipHash), since levels come from clients.
//!
//! Matching walks one path per topic level plus the `+` and `#` branches, so
//! its cost depends on the topic's depth and the number of wildcard
//! branches, not on the number of filters.
//!
//! Memory: a node is 64 bytes (one cache line, with an edge of up to
//! [`INLINE`] bytes inside; a longer edge is one allocation of its bytes), a
//! value slot `size_of::<V>() + 8` at most; nodes are at most twice the
//! filters (a split adds one branch node per new leaf). Freed nodes and
//! value slots are reused but their arenas do not shrink. See
//! `memory_per_filter_byte` in the tests.
//!
//! Internally everything is bytes: levels are split at `/`, which is ASCII,
//! so no slice ever cuts a character.

use std::hash::{BuildHasher, RandomState};
use std::ops::ControlFlow;

use hashbrown::HashTable;
use memchr::memrchr;

/// "No node" / "no value" in a `u32` link.
const NIL: u32 = u32::MAX;
const ROOT: u32 = 0;
/// Children kept in a vector up to this many, in a hash table above.
const SMALL_MAX: usize = 16;
/// A hash table shrinking to this many children goes back to a vector.
const SMALL_BACK: usize = 8;
/// Position sentinel of a walk: every level of the topic/filter consumed.
const DONE: usize = usize::MAX;
/// Position sentinel of [`TopicTrie::for_each_in_filter`]: a `#` matched,
/// take the node's value and its whole subtree.
const ALL: usize = usize::MAX - 1;
/// Edges up to this many bytes are kept inside their node.
const INLINE: usize = 22;

#[derive(Debug, Clone, Copy)]
struct Child {
    /// [`tag`] of the child's first level, checked before its label.
    tag: u32,
    id: u32,
}

#[derive(Debug)]
enum Children {
    Small(Vec<Child>),
    /// Node ids, hashed by the first level of their label.
    Large(Box<HashTable<u32>>),
}

#[derive(Debug)]
struct Node {
    /// The levels on the edge from the parent, joined by `/` (so `""` is one
    /// empty level). Never a `#` level; the first level is `+` only for a
    /// parent's `plus` child. Empty for the root and for free nodes.
    label: Label,
    /// Children whose label starts with a literal level.
    children: Children,
    /// The child whose label starts with `+`.
    plus: u32,
    /// Index in `values` of the filter ending here (for a free node: the
    /// next free node).
    value: u32,
    /// Index in `values` of the filter `<here>/#`.
    hash: u32,
    /// The label holds a `+` level, so it must be matched level by level.
    wild: bool,
}

/// An edge's bytes: inline when short (most levels are), else boxed.
#[derive(Debug)]
enum Label {
    Inline(u8, [u8; INLINE]),
    Heap(Box<[u8]>),
}

impl Label {
    fn new(bytes: &[u8]) -> Label {
        if bytes.len() <= INLINE {
            let mut buf = [0; INLINE];
            buf[..bytes.len()].copy_from_slice(bytes);
            Label::Inline(bytes.len() as u8, buf)
        } else {
            Label::Heap(bytes.into())
        }
    }

    fn bytes(&self) -> &[u8] {
        match self {
            Label::Inline(len, buf) => &buf[..*len as usize],
            Label::Heap(b) => b,
        }
    }
}

impl Node {
    fn new(label: &[u8]) -> Node {
        Node {
            label: Label::new(label),
            children: Children::Small(Vec::new()),
            plus: NIL,
            value: NIL,
            hash: NIL,
            wild: has_plus(label),
        }
    }

    fn child_count(&self) -> usize {
        let n = match &self.children {
            Children::Small(v) => v.len(),
            Children::Large(t) => t.len(),
        };
        n + usize::from(self.plus != NIL)
    }

    fn has_value(&self) -> bool {
        self.value != NIL || self.hash != NIL
    }
}

#[derive(Debug)]
enum Slot<V> {
    Full(V),
    /// Next free slot.
    Free(u32),
}

/// Filters stored level by level; see the module docs.
#[derive(Debug)]
pub struct TopicTrie<V> {
    nodes: Vec<Node>,
    free_node: u32,
    values: Vec<Slot<V>>,
    free_value: u32,
    len: usize,
    hasher: RandomState,
}

impl<V> Default for TopicTrie<V> {
    fn default() -> Self {
        TopicTrie {
            nodes: vec![Node::new(b"")],
            free_node: NIL,
            values: Vec::new(),
            free_value: NIL,
            len: 0,
            hasher: RandomState::new(),
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
        let (node, hash) = self.walk_create(filter.as_bytes());
        let n = &self.nodes[node as usize];
        let mut index = if hash { n.hash } else { n.value };
        if index == NIL {
            index = self.alloc_value(V::default());
            let n = &mut self.nodes[node as usize];
            *(if hash { &mut n.hash } else { &mut n.value }) = index;
            self.len += 1;
        }
        self.value_mut(index)
    }

    /// The value of `filter`, if stored.
    pub fn get(&self, filter: &str) -> Option<&V> {
        let (node, hash) = self.find(filter.as_bytes(), None)?;
        let n = &self.nodes[node as usize];
        let index = if hash { n.hash } else { n.value };
        (index != NIL).then(|| self.value(index))
    }

    /// The value of `filter`, if stored.
    pub fn get_mut(&mut self, filter: &str) -> Option<&mut V> {
        let (node, hash) = self.find(filter.as_bytes(), None)?;
        let n = &self.nodes[node as usize];
        let index = if hash { n.hash } else { n.value };
        (index != NIL).then(|| self.value_mut(index))
    }

    /// Removes `filter` when `should_remove` says its value is done with
    /// (e.g. its last subscriber left), pruning empty branches and merging
    /// a node left with one child into it. Returns true when the filter was
    /// removed.
    pub fn remove_if(&mut self, filter: &str, should_remove: impl FnOnce(&mut V) -> bool) -> bool {
        let mut path = Vec::new();
        let Some((node, hash)) = self.find(filter.as_bytes(), Some(&mut path)) else {
            return false;
        };
        let n = &self.nodes[node as usize];
        let index = if hash { n.hash } else { n.value };
        if index == NIL || !should_remove(self.value_mut(index)) {
            return false;
        }
        let n = &mut self.nodes[node as usize];
        *(if hash { &mut n.hash } else { &mut n.value }) = NIL;
        self.free_value(index);
        self.len -= 1;
        self.prune(&path);
        true
    }

    /// Calls `visit` with the value of every filter that matches `topic`,
    /// following MQTT's rules: `+` matches one level, `#` the rest including
    /// the parent level (`a/#` matches `a`), and neither matches a first
    /// level that starts with `$` [MQTT-4.7.2-1].
    pub fn for_each_match(&self, topic: &str, mut visit: impl FnMut(&V)) {
        let topic = topic.as_bytes();
        let dollar = topic.first() == Some(&b'$');
        let mut stack = Stack::new();
        stack.push((ROOT, 0));
        while let Some((id, at)) = stack.pop() {
            let node = &self.nodes[id as usize];
            let wild_ok = !(dollar && id == ROOT);
            if wild_ok && node.hash != NIL {
                visit(self.value(node.hash));
            }
            if at == DONE {
                if node.value != NIL {
                    visit(self.value(node.value));
                }
                continue;
            }
            let child = self.find_literal(node, first_level(&topic[at..]));
            if let Some(next) = self.match_topic(child, topic, at) {
                stack.push((child, next));
            }
            if wild_ok {
                if let Some(next) = self.match_topic(node.plus, topic, at) {
                    stack.push((node.plus, next));
                }
            }
        }
    }

    /// For a trie used as an index of topic *names* (keys without
    /// wildcards, e.g. the retained store): calls `visit` with the value of
    /// every key that `filter` matches, with the same rules as
    /// [`for_each_match`](Self::for_each_match) (a `+` or `#` first level
    /// does not match a key whose first level starts with `$`), until
    /// `visit` breaks. Only the part of the trie the filter matches is
    /// walked (plus the children of the nodes where a `+` stands).
    pub fn for_each_in_filter(&self, filter: &str, mut visit: impl FnMut(&V) -> ControlFlow<()>) {
        let filter = filter.as_bytes();
        let mut stack = Stack::new();
        stack.push((ROOT, 0));
        while let Some((id, at)) = stack.pop() {
            let node = &self.nodes[id as usize];
            let found = match at {
                ALL | DONE => node.value,
                _ if first_level(&filter[at..]) == b"#" => node.value,
                _ => NIL,
            };
            if found != NIL && visit(self.value(found)).is_break() {
                return;
            }
            if at == DONE {
                continue;
            }
            if at == ALL {
                self.children(node).for_each(|c| stack.push((c, ALL)));
                continue;
            }
            let level = first_level(&filter[at..]);
            if level == b"#" || level == b"+" {
                let skip_dollar = id == ROOT;
                for c in self.children(node) {
                    if skip_dollar && self.nodes[c as usize].label.bytes().first() == Some(&b'$') {
                        continue;
                    }
                    if let Some(next) = self.match_filter(c, filter, at) {
                        stack.push((c, next));
                    }
                }
            } else {
                let c = self.find_literal(node, level);
                if let Some(next) = self.match_filter(c, filter, at) {
                    stack.push((c, next));
                }
            }
        }
    }
}

// The walks behind the public methods.
impl<V> TopicTrie<V> {
    /// The node of `filter` (created, splitting an edge where needed) and
    /// whether its value is the node's `hash` slot.
    fn walk_create(&mut self, filter: &[u8]) -> (u32, bool) {
        let (path, hash) = split_hash(filter);
        let Some(mut rest) = path else {
            return (ROOT, hash);
        };
        let mut node = ROOT;
        loop {
            let child = self.find_child(node, first_level(rest));
            if child == NIL {
                let leaf = self.alloc_node(rest);
                self.attach(node, leaf);
                return (leaf, hash);
            }
            match common(self.nodes[child as usize].label.bytes(), rest) {
                Common::Whole => return (child, hash),
                Common::Prefix(after) => {
                    node = child;
                    rest = &rest[after..];
                }
                Common::Split(at) => {
                    let mid = self.split(node, child, at);
                    if at == rest.len() {
                        return (mid, hash);
                    }
                    let leaf = self.alloc_node(&rest[at + 1..]);
                    self.attach(mid, leaf);
                    return (leaf, hash);
                }
            }
        }
    }

    /// The node of `filter` and whether its value is the `hash` slot, if the
    /// node exists; `path` collects the nodes walked, root first.
    fn find(&self, filter: &[u8], mut path: Option<&mut Vec<u32>>) -> Option<(u32, bool)> {
        let (levels, hash) = split_hash(filter);
        let mut node = ROOT;
        if let Some(p) = path.as_mut() {
            p.push(ROOT);
        }
        let Some(mut rest) = levels else {
            return Some((ROOT, hash));
        };
        loop {
            let child = self.find_child(node, first_level(rest));
            if child == NIL {
                return None;
            }
            if let Some(p) = path.as_mut() {
                p.push(child);
            }
            node = child;
            match common(self.nodes[child as usize].label.bytes(), rest) {
                Common::Whole => return Some((node, hash)),
                Common::Prefix(after) => rest = &rest[after..],
                Common::Split(_) => return None,
            }
        }
    }

    /// After a value left the last node of `path`: removes the nodes left
    /// with neither value nor child, and merges a node left with no value
    /// and a single child into that child.
    fn prune(&mut self, path: &[u32]) {
        for k in (1..path.len()).rev() {
            let (id, parent) = (path[k], path[k - 1]);
            let node = &self.nodes[id as usize];
            if node.has_value() {
                return;
            }
            match node.child_count() {
                0 => {
                    self.detach(parent, id);
                    self.free_node(id);
                }
                1 => return self.merge_with_child(id),
                _ => return,
            }
        }
    }

    /// Moves the only child of `id` into `id` (same first level, so the
    /// parent's link stays right).
    fn merge_with_child(&mut self, id: u32) {
        let node = &mut self.nodes[id as usize];
        let child = match &node.children {
            _ if node.plus != NIL => node.plus,
            Children::Small(v) => v[0].id,
            Children::Large(t) => *t.iter().next().expect("one child"),
        };
        let c = std::mem::replace(&mut self.nodes[child as usize], Node::new(b""));
        let node = &mut self.nodes[id as usize];
        let (a, b) = (node.label.bytes(), c.label.bytes());
        let mut label = Vec::with_capacity(a.len() + 1 + b.len());
        label.extend_from_slice(a);
        label.push(b'/');
        label.extend_from_slice(b);
        node.label = Label::new(&label);
        node.wild |= c.wild;
        node.children = c.children;
        node.plus = c.plus;
        node.value = c.value;
        node.hash = c.hash;
        self.free_node(child);
    }

    /// Splits the label of `child` (a child of `parent`) at byte `at` (a
    /// `/`): a new node takes the first part and `child` hangs below it
    /// with the rest. Returns the new node.
    fn split(&mut self, parent: u32, child: u32, at: usize) -> u32 {
        let label = std::mem::replace(&mut self.nodes[child as usize].label, Label::new(b""));
        let label = label.bytes();
        let mid = self.alloc_node(&label[..at]);
        let c = &mut self.nodes[child as usize];
        c.label = Label::new(&label[at + 1..]);
        c.wild = has_plus(&label[at + 1..]);
        self.replace_child(parent, child, mid);
        self.attach(mid, child);
        mid
    }

    /// Where `topic[at..]` goes after the label of `child`, if it matches:
    /// the start of the next level, or [`DONE`].
    fn match_topic(&self, child: u32, topic: &[u8], at: usize) -> Option<usize> {
        if child == NIL {
            return None;
        }
        let node = &self.nodes[child as usize];
        let mut label = node.label.bytes();
        if !node.wild {
            if !topic[at..].starts_with(label) {
                return None;
            }
            return after_level(topic, at + label.len());
        }
        let mut pos = at;
        loop {
            if pos == DONE {
                return None;
            }
            let want = first_level(label);
            let level = first_level(&topic[pos..]);
            if want != b"+" && want != level {
                return None;
            }
            pos = after_level(topic, pos + level.len())?;
            match label.get(want.len() + 1..) {
                Some(rest) => label = rest,
                None => return Some(pos),
            }
        }
    }

    /// Where `filter[at..]` goes after the label of key node `child`: the
    /// start of the next filter level, [`DONE`], or [`ALL`] when a `#`
    /// takes the rest of the label and everything below.
    fn match_filter(&self, child: u32, filter: &[u8], at: usize) -> Option<usize> {
        if child == NIL {
            return None;
        }
        let mut label = self.nodes[child as usize].label.bytes();
        let mut pos = at;
        loop {
            if pos == DONE {
                return None;
            }
            let key_level = first_level(label);
            let level = first_level(&filter[pos..]);
            if level == b"#" {
                return Some(ALL);
            }
            if level != b"+" && level != key_level {
                return None;
            }
            pos = after_level(filter, pos + level.len())?;
            match label.get(key_level.len() + 1..) {
                Some(rest) => label = rest,
                None => return Some(pos),
            }
        }
    }
}

// Children, nodes and value slots.
impl<V> TopicTrie<V> {
    fn find_child(&self, node: u32, level: &[u8]) -> u32 {
        let node = &self.nodes[node as usize];
        if level == b"+" {
            node.plus
        } else {
            self.find_literal(node, level)
        }
    }

    fn find_literal(&self, node: &Node, level: &[u8]) -> u32 {
        let label_is = |id: &u32| starts_with_level(self.nodes[*id as usize].label.bytes(), level);
        match &node.children {
            Children::Small(v) => {
                let t = tag(level);
                v.iter()
                    .find(|c| c.tag == t && label_is(&c.id))
                    .map_or(NIL, |c| c.id)
            }
            Children::Large(table) => {
                let h = self.hasher.hash_one(level);
                table.find(h, label_is).copied().unwrap_or(NIL)
            }
        }
    }

    /// Every child of `node`, `plus` included.
    fn children<'a>(&'a self, node: &'a Node) -> impl Iterator<Item = u32> + 'a {
        let (small, large) = match &node.children {
            Children::Small(v) => (Some(v.iter().map(|c| c.id)), None),
            Children::Large(t) => (None, Some(t.iter().copied())),
        };
        let plus = (node.plus != NIL).then_some(node.plus);
        small
            .into_iter()
            .flatten()
            .chain(large.into_iter().flatten())
            .chain(plus)
    }

    fn hash_of(&self, id: u32) -> u64 {
        self.hasher
            .hash_one(first_level(self.nodes[id as usize].label.bytes()))
    }

    /// Links `child` under `parent` by the first level of its label.
    fn attach(&mut self, parent: u32, child: u32) {
        let level = first_level(self.nodes[child as usize].label.bytes());
        if level == b"+" {
            self.nodes[parent as usize].plus = child;
            return;
        }
        let t = tag(level);
        let empty = Children::Small(Vec::new());
        let mut children = std::mem::replace(&mut self.nodes[parent as usize].children, empty);
        if let Children::Small(v) = &children {
            if v.len() >= SMALL_MAX {
                let mut table = HashTable::with_capacity(2 * SMALL_MAX);
                for id in v.iter().map(|c| c.id) {
                    table.insert_unique(self.hash_of(id), id, |&id| self.hash_of(id));
                }
                children = Children::Large(Box::new(table));
            }
        }
        match &mut children {
            Children::Small(v) => v.push(Child { tag: t, id: child }),
            Children::Large(table) => {
                table.insert_unique(self.hash_of(child), child, |&id| self.hash_of(id));
            }
        }
        self.nodes[parent as usize].children = children;
    }

    /// Unlinks `child` from `parent`.
    fn detach(&mut self, parent: u32, child: u32) {
        let h = self.hash_of(child);
        let node = &mut self.nodes[parent as usize];
        if node.plus == child {
            node.plus = NIL;
            return;
        }
        let shrink = match &mut node.children {
            Children::Small(v) => {
                v.retain(|c| c.id != child);
                false
            }
            Children::Large(table) => {
                if let Ok(entry) = table.find_entry(h, |&id| id == child) {
                    entry.remove();
                }
                table.len() <= SMALL_BACK
            }
        };
        if shrink {
            let empty = Children::Small(Vec::new());
            let old = std::mem::replace(&mut self.nodes[parent as usize].children, empty);
            if let Children::Large(table) = old {
                let v = table.iter().map(|&id| Child {
                    tag: tag(first_level(self.nodes[id as usize].label.bytes())),
                    id,
                });
                self.nodes[parent as usize].children = Children::Small(v.collect());
            }
        }
    }

    /// Puts `new` where `old` was among the children of `parent` (both
    /// labels start with the same level).
    fn replace_child(&mut self, parent: u32, old: u32, new: u32) {
        let h = self.hash_of(new);
        let node = &mut self.nodes[parent as usize];
        if node.plus == old {
            node.plus = new;
            return;
        }
        match &mut node.children {
            Children::Small(v) => v
                .iter_mut()
                .filter(|c| c.id == old)
                .for_each(|c| c.id = new),
            Children::Large(table) => {
                if let Some(id) = table.find_mut(h, |&id| id == old) {
                    *id = new;
                }
            }
        }
    }

    fn alloc_node(&mut self, label: &[u8]) -> u32 {
        if self.free_node != NIL {
            let id = self.free_node;
            self.free_node = self.nodes[id as usize].value;
            self.nodes[id as usize] = Node::new(label);
            return id;
        }
        let id = u32::try_from(self.nodes.len()).expect("topic trie: 2^32 nodes");
        assert!(id != NIL, "topic trie: 2^32 nodes");
        self.nodes.push(Node::new(label));
        id
    }

    fn free_node(&mut self, id: u32) {
        let mut node = Node::new(b"");
        node.value = self.free_node;
        self.nodes[id as usize] = node;
        self.free_node = id;
    }

    fn alloc_value(&mut self, v: V) -> u32 {
        if self.free_value != NIL {
            let index = self.free_value;
            let slot = std::mem::replace(&mut self.values[index as usize], Slot::Full(v));
            if let Slot::Free(next) = slot {
                self.free_value = next;
            }
            return index;
        }
        let index = u32::try_from(self.values.len()).expect("topic trie: 2^32 values");
        assert!(index != NIL, "topic trie: 2^32 values");
        self.values.push(Slot::Full(v));
        index
    }

    fn free_value(&mut self, index: u32) {
        self.values[index as usize] = Slot::Free(self.free_value);
        self.free_value = index;
    }

    fn value(&self, index: u32) -> &V {
        match &self.values[index as usize] {
            Slot::Full(v) => v,
            Slot::Free(_) => unreachable!("topic trie: link to a free value slot"),
        }
    }

    fn value_mut(&mut self, index: u32) -> &mut V {
        match &mut self.values[index as usize] {
            Slot::Full(v) => v,
            Slot::Free(_) => unreachable!("topic trie: link to a free value slot"),
        }
    }
}

/// How a node's label compares with the levels still to walk.
enum Common {
    /// Same levels.
    Whole,
    /// The label is a prefix of whole levels; the rest starts at this byte.
    Prefix(usize),
    /// They share the levels before this byte of the label (a `/`, or the
    /// end of the rest), then differ.
    Split(usize),
}

/// `label` and `rest` start with the same level.
fn common(l: &[u8], r: &[u8]) -> Common {
    let i = l.iter().zip(r).take_while(|(a, b)| a == b).count();
    if i == l.len() {
        if i == r.len() {
            return Common::Whole;
        }
        if r[i] == b'/' {
            return Common::Prefix(i + 1);
        }
    } else if i == r.len() && l[i] == b'/' {
        return Common::Split(i);
    }
    // Before `i` both are equal, so a `/` in one is a `/` in the other.
    let at = memrchr(b'/', &l[..i]).expect("child found by its first level");
    Common::Split(at)
}

/// The levels of `filter` before a trailing `#` (`None` for `#` alone),
/// and whether there was one.
fn split_hash(filter: &[u8]) -> (Option<&[u8]>, bool) {
    if filter == b"#" {
        (None, true)
    } else if let Some(path) = filter.strip_suffix(b"/#") {
        (Some(path), true)
    } else {
        (Some(filter), false)
    }
}

/// A plain loop: levels are short, and `memchr`'s set-up costs more than
/// it saves on them.
fn first_level(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == b'/') {
        Some(i) => &s[..i],
        None => s,
    }
}

/// Whether the first level of `label` is `level`.
fn starts_with_level(label: &[u8], level: &[u8]) -> bool {
    label.starts_with(level) && matches!(label.get(level.len()), None | Some(b'/'))
}

/// `end` is the end of a level of `s` that matched: the start of the next
/// level, or [`DONE`] at the end of `s`; `None` if the level went on.
fn after_level(s: &[u8], end: usize) -> Option<usize> {
    match s.get(end) {
        None => Some(DONE),
        Some(b'/') => Some(end + 1),
        Some(_) => None,
    }
}

fn has_plus(label: &[u8]) -> bool {
    label.split(|&b| b == b'/').any(|l| l == b"+")
}

/// A cheap summary of a level (length, first, middle and last byte) to skip
/// most label comparisons in a short child vector.
fn tag(b: &[u8]) -> u32 {
    match b.len() {
        0 => 0,
        n => {
            (n.min(255) as u32) << 24
                | u32::from(b[0]) << 16
                | u32::from(b[n / 2]) << 8
                | u32::from(b[n - 1])
        }
    }
}

/// A LIFO of walk states: 16 on the stack, the rest (deep `+` chains) on
/// the heap, so a match allocates nothing in the common case.
struct Stack {
    inline: [(u32, usize); 16],
    len: usize,
    spill: Vec<(u32, usize)>,
}

impl Stack {
    fn new() -> Stack {
        Stack {
            inline: [(0, 0); 16],
            len: 0,
            spill: Vec::new(),
        }
    }

    fn push(&mut self, item: (u32, usize)) {
        if self.len < self.inline.len() {
            self.inline[self.len] = item;
            self.len += 1;
        } else {
            self.spill.push(item);
        }
    }

    fn pop(&mut self) -> Option<(u32, usize)> {
        if let Some(item) = self.spill.pop() {
            return Some(item);
        }
        self.len = self.len.checked_sub(1)?;
        Some(self.inline[self.len])
    }
}

#[cfg(test)]
mod tests;
