//! Tests for the filter algebra, against a brute-force enumeration.

use super::topic::*;

/// An independent statement of MQTT matching: `#` is a prefix match
/// (parent included), `+` one level, `$` topics hidden from a first-level
/// wildcard.
fn reference_match(filter: &str, topic: &str) -> bool {
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    if topic.starts_with('$') && (f[0] == "+" || f[0] == "#") {
        return false;
    }
    let level = |(fl, tl): (&&str, &&str)| *fl == "+" || fl == tl;
    match f.split_last() {
        Some((&"#", prefix)) => t.len() >= prefix.len() && prefix.iter().zip(&t).all(level),
        _ => f.len() == t.len() && f.iter().zip(&t).all(level),
    }
}

fn product(alphabet: &[&str], depth: usize, last: &[&str]) -> Vec<String> {
    let mut out = Vec::new();
    let mut layer: Vec<String> = vec![String::new()];
    for d in 1..=depth {
        let mut next = Vec::new();
        for prefix in &layer {
            let join = |l: &str| {
                if d == 1 {
                    l.to_owned()
                } else {
                    format!("{prefix}/{l}")
                }
            };
            next.extend(alphabet.iter().map(|l| join(l)));
            out.extend(last.iter().map(|l| join(l)));
        }
        out.extend(next.iter().cloned());
        layer = next;
    }
    out.retain(|s| !s.is_empty());
    out
}

/// Includes the empty topic (one empty level), which MQTT forbids: the
/// algebra counts it, so `+` and `/#` intersect. For an ACL that errs on the
/// safe side (a check per delivery that was not strictly needed).
fn topics() -> Vec<String> {
    let mut all = product(&["a", "b", "z", "$x", ""], 4, &[]);
    all.push(String::new());
    all
}

fn filters() -> Vec<String> {
    product(&["a", "$x", "", "+"], 3, &["#"])
}

#[test]
fn matches_agrees_with_the_reference() {
    let topics = topics();
    for f in filters() {
        assert!(is_valid_filter(&f), "{f}");
        for t in &topics {
            assert_eq!(matches(&f, t), reference_match(&f, t), "{f} vs {t}");
        }
    }
}

#[test]
fn covers_and_intersects_agree_with_enumeration() {
    let topics = topics();
    let filters = filters();
    let sets: Vec<Vec<bool>> = filters
        .iter()
        .map(|f| topics.iter().map(|t| reference_match(f, t)).collect())
        .collect();
    for (a, sa) in filters.iter().zip(&sets) {
        for (b, sb) in filters.iter().zip(&sets) {
            let covered = sb.iter().zip(sa).all(|(inb, ina)| !inb || *ina);
            let overlap = sb.iter().zip(sa).any(|(inb, ina)| *inb && *ina);
            assert_eq!(covers(a, b), covered, "covers({a}, {b})");
            assert_eq!(intersects(a, b), overlap, "intersects({a}, {b})");
        }
    }
}

#[test]
fn named_cases() {
    assert!(matches("a/#", "a"));
    assert!(matches("a/#", "a/b/c"));
    assert!(!matches("a/+", "a"));
    assert!(!matches("#", "$SYS/x"));
    assert!(!matches("+/x", "$SYS/x"));
    assert!(matches("$SYS/#", "$SYS/x"));
    assert!(covers("a/#", "a/+/c"));
    assert!(covers("a/#", "a/#"));
    assert!(!covers("a/+", "a/#"));
    assert!(!covers("#", "$SYS/#"));
    assert!(covers("#", "+/#"));
    assert!(intersects("a/+", "+/b"));
    assert!(!intersects("a/+", "a"));
    assert!(!intersects("+/#", "$SYS/x"));
}

#[test]
fn validity() {
    for good in ["#", "+", "a/+/b", "a/#", "/", "a b/c", "$SYS/#"] {
        assert!(is_valid_filter(good), "{good}");
    }
    for bad in ["", "a/#/b", "a+", "a/b#", "#/a"] {
        assert!(!is_valid_filter(bad), "{bad}");
    }
    assert!(is_valid_topic("a/b"));
    assert!(!is_valid_topic("a/+"));
    assert!(!is_valid_topic(""));
}

#[test]
fn fifty_thousand_levels_do_not_recurse() {
    let deep = "a/".repeat(50_000);
    let filter = format!("{deep}#");
    let topic = format!("{deep}b");
    assert!(is_valid_filter(&filter));
    assert!(matches(&filter, &topic));
    assert!(covers(&filter, &format!("{deep}+")));
    assert!(!covers(&format!("{deep}+"), &filter));
    assert!(intersects(&filter, &topic));
}
