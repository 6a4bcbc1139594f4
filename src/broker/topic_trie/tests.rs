//! Unit tests of the topic trie: structure, wildcards, depth without
//! recursion, memory, and a randomized cross-check.

use super::*;
use crate::broker::retain::filter_matches;
use crate::broker::shard_set::ShardSet;
use crate::broker::subscribers::Subscribers;

fn matches(filters: &[&str], topic: &str) -> Vec<String> {
    let mut trie: TopicTrie<String> = TopicTrie::new();
    for f in filters {
        *trie.entry(f) = f.to_string();
    }
    check(&trie);
    let mut out = Vec::new();
    trie.for_each_match(topic, |v| out.push(v.clone()));
    out.sort();
    out
}

/// Keys (topic names) that `filter` selects with `for_each_in_filter`.
fn selected(keys: &[&str], filter: &str) -> Vec<String> {
    let mut trie: TopicTrie<String> = TopicTrie::new();
    for k in keys {
        *trie.entry(k) = k.to_string();
    }
    let mut out = Vec::new();
    trie.for_each_in_filter(filter, |v| {
        out.push(v.clone());
        ControlFlow::Continue(())
    });
    out.sort();
    out
}

/// The labels of every node but the root, sorted.
fn edges<V>(trie: &TopicTrie<V>) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![ROOT];
    while let Some(id) = stack.pop() {
        let node = &trie.nodes[id as usize];
        if id != ROOT {
            out.push(String::from_utf8_lossy(node.label.bytes()).into_owned());
        }
        stack.extend(trie.children(node));
    }
    out.sort();
    out
}

fn label_of<V>(trie: &TopicTrie<V>, id: u32) -> &[u8] {
    trie.nodes[id as usize].label.bytes()
}

/// Checks the structure's invariants (iteratively: it also runs on the
/// deep tries).
fn check<V>(trie: &TopicTrie<V>) {
    let (mut reachable, mut values) = (0, 0);
    let mut stack = vec![ROOT];
    while let Some(id) = stack.pop() {
        reachable += 1;
        let node = &trie.nodes[id as usize];
        values += usize::from(node.value != NIL) + usize::from(node.hash != NIL);
        if id != ROOT {
            let label = node.label.bytes();
            assert!(node.has_value() || node.child_count() >= 2, "{label:?}");
            assert!(!label.split(|&b| b == b'/').any(|l| l == b"#"));
            assert_eq!(node.wild, has_plus(label));
            let inline = matches!(node.label, Label::Inline(..));
            assert_eq!(inline, label.len() <= INLINE);
        }
        if node.plus != NIL {
            assert_eq!(first_level(label_of(trie, node.plus)), b"+");
        }
        let kids: Vec<u32> = match &node.children {
            Children::Small(v) => {
                assert!(v.len() <= SMALL_MAX);
                for c in v {
                    assert_eq!(c.tag, tag(first_level(label_of(trie, c.id))));
                }
                v.iter().map(|c| c.id).collect()
            }
            Children::Large(t) => {
                assert!(t.len() > SMALL_BACK);
                t.iter().copied().collect()
            }
        };
        let mut firsts: Vec<&[u8]> = kids
            .iter()
            .map(|&c| first_level(label_of(trie, c)))
            .collect();
        assert!(!firsts.contains(&&b"+"[..]));
        firsts.sort();
        firsts.dedup();
        assert_eq!(firsts.len(), kids.len(), "two children per level");
        for &c in &kids {
            let level = first_level(label_of(trie, c));
            assert_eq!(trie.find_literal(node, level), c);
        }
        stack.extend(trie.children(node));
    }
    assert_eq!(values, trie.len());
    let mut free = 0;
    let mut f = trie.free_node;
    while f != NIL {
        free += 1;
        f = trie.nodes[f as usize].value;
    }
    assert_eq!(reachable + free, trie.nodes.len());
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
    // Only the first level: `$` further down is an ordinary level.
    assert_eq!(matches(&["a/+/c", "a/#"], "a/$x/c"), ["a/#", "a/+/c"]);
}

#[test]
fn empty_levels_are_levels() {
    assert_eq!(matches(&["/", "+/+", "#"], "/"), ["#", "+/+", "/"]);
    assert_eq!(matches(&["a//b", "a/+/b"], "a//b"), ["a/+/b", "a//b"]);
    assert_eq!(matches(&["/", "//", "/#", "+"], "//"), ["/#", "//"]);
    assert_eq!(matches(&["a/", "a"], "a/"), ["a/"]);
    assert_eq!(matches(&["a/", "a"], "a"), ["a"]);
}

#[test]
fn hash_alone_and_hash_after_empty_level() {
    assert_eq!(matches(&["#"], "x"), ["#"]);
    assert_eq!(matches(&["#"], "/"), ["#"]);
    assert_eq!(matches(&["/#"], "/"), ["/#"]);
    assert_eq!(matches(&["/#"], "x/y"), Vec::<String>::new());
    let mut trie: TopicTrie<u8> = TopicTrie::new();
    *trie.entry("#") = 1;
    assert_eq!(trie.get_mut("#"), Some(&mut 1));
    assert!(trie.remove_if("#", |_| true));
    assert!(trie.is_empty() && edges(&trie).is_empty());
}

#[test]
fn wildcards_inside_a_compressed_edge() {
    let mut trie: TopicTrie<&str> = TopicTrie::new();
    *trie.entry("a/+/c/#") = "a/+/c/#";
    assert_eq!(edges(&trie), ["a/+/c"]);
    for (topic, hit) in [
        ("a/x/c", true),
        ("a/x/c/d/e", true),
        ("a//c", true),
        ("a/x", false),
        ("a/x/d", false),
        ("b/x/c", false),
    ] {
        let mut n = 0;
        trie.for_each_match(topic, |_| n += 1);
        assert_eq!(n == 1, hit, "{topic}");
    }
    *trie.entry("+/+/+") = "+/+/+";
    *trie.entry("a/+/d") = "a/+/d";
    assert_eq!(edges(&trie), ["+/+/+", "a/+", "c", "d"]);
    assert_eq!(
        matches(&["+/+/+", "a/+/c/#"], "a/b/c"),
        ["+/+/+", "a/+/c/#"]
    );
    assert_eq!(matches(&["+/+/+"], "$a/b/c"), Vec::<String>::new());
    check(&trie);
}

#[test]
fn edges_split_on_insert_and_merge_on_remove() {
    let mut trie: TopicTrie<u32> = TopicTrie::new();
    *trie.entry("a/b/c/d") = 1;
    assert_eq!(edges(&trie), ["a/b/c/d"]);
    *trie.entry("a/b/x") = 2;
    assert_eq!(edges(&trie), ["a/b", "c/d", "x"]);
    check(&trie);
    assert!(trie.remove_if("a/b/x", |_| true));
    assert_eq!(edges(&trie), ["a/b/c/d"]);
    let mut hits = Vec::new();
    trie.for_each_match("a/b/c/d", |v| hits.push(*v));
    assert_eq!(hits, [1]);
    // A value on the edge's middle, then gone again.
    *trie.entry("a/b") = 3;
    *trie.entry("a/b/#") = 4;
    assert_eq!(edges(&trie), ["a/b", "c/d"]);
    assert!(trie.remove_if("a/b", |_| true));
    assert_eq!(edges(&trie), ["a/b", "c/d"]);
    assert!(trie.remove_if("a/b/#", |_| true));
    assert_eq!(edges(&trie), ["a/b/c/d"]);
    // A split inside a level is not a split: `a/bc` shares only `a`.
    *trie.entry("a/bc") = 5;
    assert_eq!(edges(&trie), ["a", "b/c/d", "bc"]);
    assert!(trie.remove_if("a/b/c/d", |_| true));
    assert_eq!(edges(&trie), ["a/bc"]);
    assert_eq!(trie.get_mut("a/b"), None);
    assert_eq!(trie.get_mut("a"), None);
    assert_eq!(trie.get("a/bc"), Some(&5));
    assert!(!trie.remove_if("a", |_| true));
    assert!(trie.remove_if("a/bc", |_| true));
    assert!(edges(&trie).is_empty());
    check(&trie);
    // Freed nodes are reused.
    *trie.entry("q/r") = 1;
    *trie.entry("q/s") = 1;
    assert_eq!(trie.nodes.len(), 4);
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
    assert!(edges(&trie).is_empty());
    check(&trie);
}

#[test]
fn many_children_use_a_table_and_come_back() {
    let mut trie: TopicTrie<usize> = TopicTrie::new();
    for i in 0..200 {
        *trie.entry(&format!("k{i}/x")) = i;
        *trie.entry(&format!("r/k{i}")) = i;
    }
    *trie.entry("+/x") = 1000;
    check(&trie);
    assert!(matches!(trie.nodes[0].children, Children::Large(_)));
    for i in 0..200 {
        let mut hits = Vec::new();
        trie.for_each_match(&format!("k{i}/x"), |v| hits.push(*v));
        hits.sort();
        assert_eq!(hits, [i, 1000]);
        assert_eq!(trie.get(&format!("r/k{i}")), Some(&i));
    }
    for i in 0..195 {
        assert!(trie.remove_if(&format!("k{i}/x"), |_| true));
        assert!(trie.remove_if(&format!("r/k{i}"), |_| true));
    }
    check(&trie);
    assert!(matches!(trie.nodes[0].children, Children::Small(_)));
    assert_eq!(trie.len(), 11);
}

#[test]
fn for_each_in_filter_selects_keys() {
    let keys = [
        "a", "a/b", "a/b/c", "a/c", "b", "/", "a//c", "$SYS/x", "$SYS",
    ];
    assert_eq!(
        selected(&keys, "#"),
        ["/", "a", "a//c", "a/b", "a/b/c", "a/c", "b"]
    );
    assert_eq!(selected(&keys, "a/#"), ["a", "a//c", "a/b", "a/b/c", "a/c"]);
    assert_eq!(selected(&keys, "a/b/#"), ["a/b", "a/b/c"]);
    assert_eq!(selected(&keys, "a/+"), ["a/b", "a/c"]);
    assert_eq!(selected(&keys, "a/+/c"), ["a//c", "a/b/c"]);
    assert_eq!(selected(&keys, "+"), ["a", "b"]);
    assert_eq!(selected(&keys, "+/+"), ["/", "a/b", "a/c"]);
    assert_eq!(
        selected(&keys, "+/#"),
        ["/", "a", "a//c", "a/b", "a/b/c", "a/c", "b"]
    );
    assert_eq!(selected(&keys, "$SYS/#"), ["$SYS", "$SYS/x"]);
    assert_eq!(selected(&keys, "$SYS/+"), ["$SYS/x"]);
    assert_eq!(selected(&keys, "+/x"), Vec::<String>::new());
    assert_eq!(selected(&keys, "a/b"), ["a/b"]);
    assert_eq!(selected(&keys, "a/b/c/d"), Vec::<String>::new());
    assert_eq!(selected(&["a/b/c/d"], "a/#"), ["a/b/c/d"]);
    assert_eq!(selected(&["a/b/c/d"], "a/+/c"), Vec::<String>::new());
    assert_eq!(selected(&["a/b/c/d"], "a/+/+/+"), ["a/b/c/d"]);
}

#[test]
fn for_each_in_filter_stops_on_break() {
    let mut trie: TopicTrie<u32> = TopicTrie::new();
    for i in 0..50 {
        *trie.entry(&format!("t/{i}")) = i;
    }
    for filter in ["#", "t/#", "t/+", "+/+"] {
        let mut n = 0;
        trie.for_each_in_filter(filter, |_| {
            n += 1;
            if n == 5 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(n, 5, "{filter}");
    }
}

/// xorshift64: deterministic, no dependency. `wide` adds 40 more
/// levels, so that some nodes get more than `SMALL_MAX` children.
struct Rng(u64, bool);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }

    fn levels(&mut self, alphabet: &[&str], first: &[&str]) -> Vec<String> {
        let n = 1 + self.below(5);
        (0..n)
            .map(|i| {
                if self.1 && self.below(2) == 0 {
                    return format!("w{}", self.below(40));
                }
                let pool = if i == 0 { first } else { alphabet };
                pool[self.below(pool.len())].to_string()
            })
            .collect()
    }

    fn topic(&mut self) -> String {
        const LEVELS: [&str; 4] = ["a", "b", "", "ab"];
        const FIRST: [&str; 5] = ["a", "b", "", "$s", "ab"];
        loop {
            let t = self.levels(&LEVELS, &FIRST).join("/");
            if !t.is_empty() {
                return t;
            }
        }
    }

    fn filter(&mut self) -> String {
        const LEVELS: [&str; 5] = ["a", "b", "", "+", "ab"];
        const FIRST: [&str; 6] = ["a", "b", "", "+", "$s", "ab"];
        loop {
            let mut levels = self.levels(&LEVELS, &FIRST);
            if self.below(4) == 0 {
                levels.push("#".into());
            }
            let f = levels.join("/");
            if !f.is_empty() {
                return f;
            }
        }
    }
}

/// Random inserts and removes, then every kind of query compared with
/// `filter_matches` over the set of stored strings.
#[test]
fn randomized_against_the_naive_matcher() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15, false);
    for round in 0..60 {
        rng.1 = round % 3 == 2;
        let mut filters: TopicTrie<String> = TopicTrie::new();
        let mut keys: TopicTrie<String> = TopicTrie::new();
        let (mut fset, mut kset) = (Vec::<String>::new(), Vec::<String>::new());
        for _ in 0..(20 + round * 10) {
            let (f, k) = (rng.filter(), rng.topic());
            *filters.entry(&f) = f.clone();
            *keys.entry(&k) = k.clone();
            fset.push(f);
            kset.push(k);
            if rng.below(3) == 0 {
                let f = fset.swap_remove(rng.below(fset.len()));
                assert!(filters.remove_if(&f, |_| true));
                fset.retain(|x| *x != f);
                let k = kset.swap_remove(rng.below(kset.len()));
                assert!(keys.remove_if(&k, |_| true));
                kset.retain(|x| *x != k);
            }
        }
        fset.sort();
        fset.dedup();
        kset.sort();
        kset.dedup();
        check(&filters);
        check(&keys);
        assert_eq!((filters.len(), keys.len()), (fset.len(), kset.len()));
        for _ in 0..200 {
            let topic = rng.topic();
            let mut got = Vec::new();
            filters.for_each_match(&topic, |v| got.push(v.clone()));
            got.sort();
            let want: Vec<_> = fset
                .iter()
                .filter(|f| filter_matches(f, &topic))
                .cloned()
                .collect();
            assert_eq!(got, want, "topic {topic:?}");

            let filter = rng.filter();
            let mut got = Vec::new();
            keys.for_each_in_filter(&filter, |v| {
                got.push(v.clone());
                ControlFlow::Continue(())
            });
            got.sort();
            let want: Vec<_> = kset
                .iter()
                .filter(|k| filter_matches(&filter, k))
                .cloned()
                .collect();
            assert_eq!(got, want, "filter {filter:?}");
        }
    }
}

/// 65,536 empty levels, 100,000 levels of `a` and of `+`, in a thread
/// with a 128 KiB stack: insert, match, select, remove, re-insert, drop.
#[test]
fn deep_filters_do_not_recurse() {
    let run = || {
        let slashes = "/".repeat(65_535);
        let deep = vec!["a"; 100_000].join("/");
        let pluses = format!("{}/#", vec!["+"; 99_999].join("/"));
        let mut trie: TopicTrie<u32> = TopicTrie::new();
        for round in 0..2 {
            for (i, f) in [&slashes, &deep, &pluses].into_iter().enumerate() {
                *trie.entry(f) = i as u32;
            }
            *trie.entry(&format!("{deep}/b")) = 3;
            *trie.entry(&deep[..99_999]) = 4;
            check(&trie);
            let mut hits = Vec::new();
            trie.for_each_match(&slashes, |v| hits.push(*v));
            assert_eq!(hits, [0]);
            hits.clear();
            trie.for_each_match(&deep, |v| hits.push(*v));
            hits.sort();
            assert_eq!(hits, [1, 2]);
            let mut n = 0;
            trie.for_each_in_filter("#", |_| {
                n += 1;
                ControlFlow::Continue(())
            });
            assert_eq!(n, 4, "the keys; `+/.../#` is a hash slot, not a key");
            if round == 0 {
                for f in [&slashes, &deep, &pluses] {
                    assert!(trie.remove_if(f, |_| true));
                }
                check(&trie);
            }
        }
        drop(trie);
        let mut subs: TopicTrie<Subscribers> = TopicTrie::new();
        subs.entry(&slashes);
        drop(subs);
    };
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(run)
        .expect("spawn")
        .join()
        .expect("no stack overflow");
}

/// Heap bytes the trie holds (exact for its own allocations; the
/// allocator's rounding is not counted, nor heap owned by values).
fn heap_bytes<V>(trie: &TopicTrie<V>) -> usize {
    let mut bytes = trie.nodes.capacity() * std::mem::size_of::<Node>()
        + trie.values.capacity() * std::mem::size_of::<Slot<V>>();
    for node in &trie.nodes {
        if let Label::Heap(b) = &node.label {
            bytes += b.len();
        }
        bytes += match &node.children {
            Children::Small(v) => v.capacity() * std::mem::size_of::<Child>(),
            Children::Large(t) => std::mem::size_of::<HashTable<u32>>() + t.allocation_size(),
        };
    }
    bytes
}

/// 5,000 distinct 100-level filters (and 5,000 `+/+/...` ones with
/// distinct first levels): trie bytes per filter byte, for the
/// subscription trie (`Subscribers`) and the interest index
/// (`ShardSet`). Run with `--nocapture` to see the figures.
#[test]
fn memory_per_filter_byte() {
    const WORDS: [&str; 8] = ["a", "temp", "x1", "dev", "b", "site", "7", "c"];
    let mut rng = Rng(0xD1B5_4A32_D192_ED03, false);
    let mut filters = Vec::new();
    for i in 0..5_000 {
        let mut levels = vec![format!("f{i}")];
        levels.extend((0..99).map(|_| WORDS[rng.below(WORDS.len())].to_string()));
        filters.push(levels.join("/"));
    }
    for i in 0..5_000 {
        filters.push(format!("p{i}/{}/#", vec!["+"; 98].join("/")));
    }
    let filter_bytes: usize = filters.iter().map(|f| f.len()).sum();
    let mut subs: TopicTrie<Subscribers> = TopicTrie::new();
    let mut interest: TopicTrie<ShardSet> = TopicTrie::new();
    for f in &filters {
        subs.entry(f);
        interest.entry(f).insert(1);
    }
    let ratio = |b: usize| b as f64 / filter_bytes as f64;
    let (s, i) = (heap_bytes(&subs), heap_bytes(&interest));
    eprintln!(
        "{} filters, {filter_bytes} bytes: subscription trie {s} B ({:.2}/B), \
         interest index {i} B ({:.2}/B); size_of Node {}, Slot<Subscribers> {}, \
         Slot<ShardSet> {}",
        filters.len(),
        ratio(s),
        ratio(i),
        std::mem::size_of::<Node>(),
        std::mem::size_of::<Slot<Subscribers>>(),
        std::mem::size_of::<Slot<ShardSet>>(),
    );
    assert!(
        ratio(s) < 1.6 && ratio(i) < 1.8,
        "{} {}",
        ratio(s),
        ratio(i)
    );
}
