//! MQTT topic-filter algebra for ACLs: match, cover and intersect.
//!
//! All three walk the two strings level by level with `split('/')`, in a
//! loop: a filter of 50k levels costs 50k steps and no stack. The `$` rule
//! (MQTT-4.7.2-1) is applied once, at the first level: a wildcard there never
//! matches a topic whose name starts with `$`.

/// True when `filter` is a valid MQTT topic filter: non-empty, `+` and `#`
/// only as whole levels, `#` only last. ACL files are checked with this so
/// that a typo such as `a/#/b` is an error and not a rule that never fires.
pub fn is_valid_filter(filter: &str) -> bool {
    if filter.is_empty() {
        return false;
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        match level {
            "+" => {}
            "#" if last => {}
            _ if level.contains(['+', '#']) => return false,
            _ => {}
        }
    }
    true
}

/// True when `topic` is a valid topic name: non-empty and no wildcards.
pub fn is_valid_topic(topic: &str) -> bool {
    !topic.is_empty() && !topic.contains(['+', '#'])
}

fn is_wild(level: &str) -> bool {
    level == "+" || level == "#"
}

/// The `$` rule: `topic`'s first level starts with `$` and `filter`'s first
/// level is a wildcard.
fn dollar_excluded(filter: &str, topic: &str) -> bool {
    topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#'))
}

/// Does `filter` match the topic name `topic`? `#` matches the rest of the
/// topic including its parent (`a/#` matches `a`); the broker's own rule.
pub fn matches(filter: &str, topic: &str) -> bool {
    crate::protocol::topic::filter_matches(filter, topic)
}

/// Does `rule` match every topic that `sub` matches? (`a/#` covers `a/+/c`
/// and `a/#`; `a/+` does not cover `a/#`, which also matches `a/b/c`.)
pub fn covers(rule: &str, sub: &str) -> bool {
    // A literal `$` first level in `sub` selects `$` topics, which a rule
    // with a wildcard first level never matches.
    if dollar_excluded(rule, sub) {
        return false;
    }
    // A topic has at least one level, so a lone `#` means `+/#`.
    if sub == "#" {
        return rule == "#" || rule == "+/#";
    }
    let mut r = rule.split('/');
    let mut s = sub.split('/');
    loop {
        match (r.next(), s.next()) {
            (Some("#"), _) => return true,
            // `sub`'s `#` also matches deeper topics than any non-`#` rule.
            (Some(_), Some("#")) => return false,
            (Some("+"), Some(_)) => {}
            (Some(rl), Some(sl)) if rl == sl && sl != "+" => {}
            (None, None) => return true,
            (Some(_), _) | (None, Some(_)) => return false,
        }
    }
}

/// Is there a topic name that both filters match?
pub fn intersects(a: &str, b: &str) -> bool {
    let (fa, fb) = (first_level(a), first_level(b));
    let a_dollar = !is_wild(fa) && fa.starts_with('$');
    let b_dollar = !is_wild(fb) && fb.starts_with('$');
    if (a_dollar && is_wild(fb)) || (b_dollar && is_wild(fa)) {
        return false;
    }
    let mut x = a.split('/');
    let mut y = b.split('/');
    loop {
        match (x.next(), y.next()) {
            (Some("#"), _) | (_, Some("#")) => return true,
            (Some("+"), Some(_)) | (Some(_), Some("+")) => {}
            (Some(xl), Some(yl)) if xl == yl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

fn first_level(filter: &str) -> &str {
    filter.split('/').next().unwrap_or(filter)
}
