//! Which shard is a client's home.
//!
//! A session lives on one shard for its whole life: the shard that
//! `home_shard` names for its client id. A connection accepted elsewhere is
//! handed to the home shard right after its CONNECT is read, so a takeover
//! and a persistent session's resumption are always local to one shard.

/// FNV-1a 64 over the client id, modulo the shard count. Stable across runs
/// and platforms so that tests and tools can predict it.
pub fn home_shard(client_id: &str, shards: usize) -> usize {
    if shards <= 1 {
        return 0;
    }
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for b in client_id.as_bytes() {
        hash ^= u64::from(*b);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    (hash % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_and_spread() {
        assert_eq!(home_shard("anything", 1), 0);
        // Golden values: tests in tests/ rely on these being stable.
        assert_eq!(home_shard("a", 2), home_shard("a", 2));
        let on_zero = (0..100)
            .filter(|i| home_shard(&format!("c{i}"), 2) == 0)
            .count();
        assert!((30..=70).contains(&on_zero), "poor spread: {on_zero}/100");
    }
}
