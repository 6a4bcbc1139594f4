//! Topic name and topic filter syntax (spec 4.7).
//!
//! Names are what PUBLISH carries: concrete, no wildcards. Filters are what
//! SUBSCRIBE carries: levels separated by `/`, where `+` matches one whole
//! level and `#` the rest of the tree. The decoder only checks names; filter
//! syntax is checked by the broker so that a bad filter gets a SUBACK
//! failure code instead of a closed connection.

/// Prefix of a shared subscription filter (`$share/{group}/{filter}`).
pub const SHARED_PREFIX: &str = "$share/";

/// Longest string a u16 length prefix can carry.
const MAX_LEN: usize = u16::MAX as usize;

/// A valid topic name: non-empty [MQTT-4.7.3-1], no wildcard characters
/// [MQTT-3.3.2-2], no U+0000, fits a u16 length.
pub fn valid_topic_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_LEN && memchr::memchr3(b'+', b'#', 0, s.as_bytes()).is_none()
}

/// A valid topic filter: non-empty, `#` only as the whole last level
/// [MQTT-4.7.1-2], `+` only as a whole level [MQTT-4.7.1-3]. `$share/...`
/// filters pass as ordinary strings here; see [`split_shared`].
pub fn valid_topic_filter(s: &str) -> bool {
    if s.is_empty() || s.len() > MAX_LEN || s.as_bytes().contains(&0) {
        return false;
    }
    let mut levels = s.split('/').peekable();
    while let Some(level) = levels.next() {
        let last = levels.peek().is_none();
        if level.contains('#') && (level != "#" || !last) {
            return false;
        }
        if level.contains('+') && level != "+" {
            return false;
        }
    }
    true
}

/// True for a `$share/` filter.
pub fn is_shared(filter: &str) -> bool {
    filter.starts_with(SHARED_PREFIX)
}

/// Splits `$share/{group}/{filter}` into group and filter, or `None` when
/// `filter` is not shared or is malformed: the group must be non-empty
/// without wildcards [MQTT-4.8.2-2] and the rest a valid filter.
pub fn split_shared(filter: &str) -> Option<(&str, &str)> {
    let rest = filter.strip_prefix(SHARED_PREFIX)?;
    let (group, inner) = rest.split_once('/')?;
    if group.is_empty() || group.contains(['+', '#']) || !valid_topic_filter(inner) {
        return None;
    }
    Some((group, inner))
}

/// Whether one valid filter matches one topic name: `+` one level, `#` the
/// rest including the parent (`a/#` matches `a`), and a wildcard first
/// level never matches a `$` topic [MQTT-4.7.2-1]. Iterative: no recursion
/// on the depth a client controls.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut f = filter.split('/');
    let mut t = topic.split('/');
    loop {
        match (f.next(), t.next()) {
            (Some("#"), _) => return true,
            (Some("+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// True for topics starting with `$`, which `#` and `+` in the first level
/// must not match [MQTT-4.7.2-1].
pub fn is_system(topic: &str) -> bool {
    topic.starts_with('$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_spec_4_7_examples() {
        for ok in [
            "sport/#",
            "#",
            "+",
            "sport/+/player1",
            "/",
            "//",
            "+/+",
            "/+",
            "$SYS/#",
            "sport/tennis/#",
            "+/tennis/#",
            "$share/g/a/+",
        ] {
            assert!(valid_topic_filter(ok), "{ok}");
        }
        for bad in [
            "",
            "sport+",
            "sport/#/x",
            "sport/tennis#",
            "#/",
            "a/#b",
            "++",
            "a\0",
        ] {
            assert!(!valid_topic_filter(bad), "{bad}");
        }
    }

    #[test]
    fn mqtt_3_3_2_2_names_have_no_wildcards() {
        for ok in ["a", "/", "//", "sport/tennis", "$SYS/x", " "] {
            assert!(valid_topic_name(ok), "{ok}");
        }
        for bad in ["", "#", "+", "a/+", "a/#", "a+b", "a\0b"] {
            assert!(!valid_topic_name(bad), "{bad}");
        }
        assert!(valid_topic_name(&"a".repeat(65_535)));
        assert!(!valid_topic_name(&"a".repeat(65_536)));
    }

    #[test]
    fn shared_subscriptions() {
        assert!(is_shared("$share/g/a"));
        assert!(!is_shared("$SYS/a"));
        assert_eq!(split_shared("$share/g/a/#"), Some(("g", "a/#")));
        assert_eq!(split_shared("$share/g/"), None);
        assert_eq!(split_shared("$share//a"), None);
        assert_eq!(split_shared("$share/g+/a"), None);
        assert_eq!(split_shared("$share/g"), None);
        assert_eq!(split_shared("a/b"), None);
        assert!(is_system("$SYS/x"));
    }
}
