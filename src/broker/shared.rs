//! Shared subscriptions, `$share/{group}/{filter}` (MQTT 5.0 §4.8.2; also
//! accepted from 3.1.1 clients, as mosquitto and EMQX do): each message
//! matching the filter goes to one member of the group, wherever it is.
//!
//! Two levels of choice keep that to exactly one member across shards with
//! no shared state. The publishing shard picks one shard among those with
//! members of the group (round robin, from its replica of
//! [`SharedInterest`]) and sends the message there tagged with a
//! [`SharedPick`]; that shard picks one of its local members
//! ([`LocalGroups`], round robin, preferring connected ones).

use std::cell::Cell;
use std::collections::HashMap;

use bytestring::ByteString;

use super::session::SessionId;
use super::shard_set::ShardSet;
use super::subscribers::{Subscribers, Subscription};
use super::topic_trie::TopicTrie;

const PREFIX: &str = "$share/";

/// How a group's member is chosen (`--shared-strategy`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Shards with members in turn, then their members in turn (connected
    /// ones first): an even spread.
    #[default]
    RoundRobin,
    /// Shards in turn, then the connected member with the fewest messages
    /// in flight and queued: a slow member gets less.
    LeastInflight,
    /// The publisher's own shard when it has a member (no hop between
    /// cores), else shards in turn; members in turn.
    Local,
}

/// What a `$share/...` filter names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareName {
    pub group: ByteString,
    pub filter: ByteString,
}

/// Whether `filter` is a shared subscription: `None` if not, `Some(None)`
/// if it is one but malformed (an empty group, a wildcard in the group, no
/// filter after it [MQTT-4.8.2-1, MQTT-4.8.2-2]).
pub fn parse(filter: &str) -> Option<Option<ShareName>> {
    let rest = filter.strip_prefix(PREFIX)?;
    let Some((group, topic)) = rest.split_once('/') else {
        return Some(None);
    };
    if group.is_empty() || group.contains(['+', '#']) || topic.is_empty() {
        return Some(None);
    }
    Some(Some(ShareName {
        group: ByteString::from(group),
        filter: ByteString::from(topic),
    }))
}

/// A message's assignment to one group on the shard that receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedPick {
    pub filter: ByteString,
    pub group: ByteString,
    /// Times the pick was passed on because the chosen shard had no
    /// connected member: at most once, so picks cannot circle.
    pub hops: u8,
}

/// This shard's members of each group, by filter, then by group name (a
/// map: one client can join a thousand groups of one filter, and each
/// message looks its group up by name).
#[derive(Debug, Default)]
pub struct LocalGroups {
    trie: TopicTrie<HashMap<ByteString, LocalGroup>>,
}

#[derive(Debug, Default)]
pub struct LocalGroup {
    pub members: Subscribers,
    /// Round-robin cursor over `members`.
    next: Cell<usize>,
}

impl LocalGroups {
    /// Adds or updates a member; returns (it was already a member, the
    /// group had no local member before).
    pub fn add(&mut self, share: &ShareName, sid: SessionId, sub: Subscription) -> (bool, bool) {
        let groups = self.trie.entry(&share.filter);
        let group = groups.entry(share.group.clone()).or_default();
        let first = group.members.is_empty();
        (group.members.upsert(sid, sub), first)
    }

    /// Removes a member; returns (it was a member, the group has no local
    /// member left).
    pub fn remove(&mut self, share: &ShareName, sid: SessionId) -> (bool, bool) {
        let (mut found, mut emptied) = (false, false);
        self.trie.remove_if(&share.filter, |groups| {
            if let Some(g) = groups.get_mut(&share.group) {
                found = g.members.remove(sid);
                if g.members.is_empty() {
                    groups.remove(&share.group);
                    emptied = found;
                }
            }
            groups.is_empty()
        });
        (found, emptied)
    }

    /// The local group `pick` names, if it still has members here.
    pub fn group(&self, filter: &str, group: &str) -> Option<&LocalGroup> {
        self.trie
            .get(filter)?
            .get(group)
            .filter(|g| !g.members.is_empty())
    }
}

impl LocalGroup {
    /// The next member in round-robin order for which `usable` holds.
    pub fn choose(&self, usable: impl Fn(SessionId) -> bool) -> Option<(SessionId, Subscription)> {
        let members = self.members.as_slice();
        let n = members.len();
        let start = self.next.get();
        let i = (0..n)
            .map(|k| (start + k) % n)
            .find(|&i| usable(members[i].0))?;
        self.next.set(i + 1);
        Some(members[i])
    }

    /// The member with the smallest `load` among those for which `usable`
    /// holds (ties: the first in round-robin order).
    pub fn choose_least(
        &self,
        usable: impl Fn(SessionId) -> bool,
        load: impl Fn(SessionId) -> usize,
    ) -> Option<(SessionId, Subscription)> {
        let members = self.members.as_slice();
        let n = members.len();
        let start = self.next.get();
        let i = (0..n)
            .map(|k| (start + k) % n)
            .filter(|&i| usable(members[i].0))
            .min_by_key(|&i| load(members[i].0))?;
        self.next.set(i + 1);
        Some(members[i])
    }

    /// The next member in round-robin order, usable or not (all offline:
    /// one keeps the message queued).
    pub fn next_member(&self) -> Option<(SessionId, Subscription)> {
        self.choose(|_| true)
    }
}

/// Every shard's replica of which shards have members of which group.
#[derive(Debug, Default)]
pub struct SharedInterest {
    trie: TopicTrie<SharedFilter>,
}

#[derive(Debug, Default)]
struct SharedFilter {
    filter: ByteString,
    groups: HashMap<ByteString, GroupShards>,
}

#[derive(Debug, Default)]
struct GroupShards {
    shards: ShardSet,
    /// Round-robin cursor over `shards`.
    next: Cell<usize>,
}

impl SharedInterest {
    pub fn add(&mut self, share: &ShareName, shard: usize) {
        let f = self.trie.entry(&share.filter);
        if f.filter.is_empty() {
            f.filter = share.filter.clone();
        }
        f.groups
            .entry(share.group.clone())
            .or_default()
            .shards
            .insert(shard);
    }

    pub fn remove(&mut self, share: &ShareName, shard: usize) {
        self.trie.remove_if(&share.filter, |f| {
            if let Some(g) = f.groups.get_mut(&share.group) {
                g.shards.remove(shard);
                if g.shards.is_empty() {
                    f.groups.remove(&share.group);
                }
            }
            f.groups.is_empty()
        });
    }

    /// For each group with a filter matching `topic`: one shard (round
    /// robin, or `local` itself when it has members), with the pick to
    /// send it.
    pub fn picks_for(
        &self,
        topic: &str,
        local: Option<usize>,
        mut out: impl FnMut(usize, SharedPick),
    ) {
        self.trie.for_each_match(topic, |f| {
            for (name, g) in &f.groups {
                let here = local.filter(|&me| g.shards.contains(me));
                if let Some(shard) = here.or_else(|| g.next_shard(None)) {
                    out(
                        shard,
                        SharedPick {
                            filter: f.filter.clone(),
                            group: name.clone(),
                            hops: 0,
                        },
                    );
                }
            }
        });
    }

    pub fn is_empty(&self) -> bool {
        self.trie.is_empty()
    }

    /// Another shard with members of `pick`'s group than `not`, if any.
    pub fn other_shard(&self, pick: &SharedPick, not: usize) -> Option<usize> {
        let f = self.trie.get(&pick.filter)?;
        f.groups.get(&pick.group)?.next_shard(Some(not))
    }
}

impl GroupShards {
    fn next_shard(&self, not: Option<usize>) -> Option<usize> {
        let candidates = || self.shards.iter().filter(move |&s| Some(s) != not);
        let n = candidates().count();
        if n == 0 {
            return None;
        }
        let i = self.next.get();
        self.next.set(i.wrapping_add(1));
        candidates().nth(i % n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{QoS, SubscriptionOptions};

    fn sub() -> Subscription {
        Subscription {
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: 0,
            },
            id: 0,
        }
    }

    fn share(s: &str) -> ShareName {
        parse(s).unwrap().unwrap()
    }

    #[test]
    fn parses_share_names() {
        assert_eq!(parse("a/b"), None);
        assert_eq!(
            share("$share/g/a/#"),
            ShareName {
                group: "g".into(),
                filter: "a/#".into()
            }
        );
        assert_eq!(parse("$share/g"), Some(None));
        assert_eq!(parse("$share//a"), Some(None));
        assert_eq!(parse("$share/g+/a"), Some(None));
        assert_eq!(parse("$share/g/"), Some(None));
    }

    #[test]
    fn local_round_robin_prefers_usable_members() {
        let mut groups = LocalGroups::default();
        let s = share("$share/g/t/+");
        assert_eq!(groups.add(&s, 1, sub()), (false, true));
        assert_eq!(groups.add(&s, 2, sub()), (false, false));
        assert_eq!(groups.add(&s, 3, sub()), (false, false));
        let g = groups.group("t/+", "g").unwrap();
        let picked: Vec<_> = (0..6).map(|_| g.choose(|_| true).unwrap().0).collect();
        assert_eq!(picked, [1, 2, 3, 1, 2, 3]);
        let picked: Vec<_> = (0..3)
            .map(|_| g.choose(|sid| sid != 2).unwrap().0)
            .collect();
        assert!(!picked.contains(&2), "{picked:?}");
        assert!(g.choose(|_| false).is_none(), "no usable member");
        assert!(g.next_member().is_some(), "all offline: one still keeps it");
        let least = g.choose_least(|sid| sid != 1, |sid| if sid == 3 { 0 } else { 5 });
        assert_eq!(least.map(|m| m.0), Some(3), "least loaded usable member");
        assert_eq!(groups.remove(&s, 2), (true, false));
        assert_eq!(groups.remove(&s, 1), (true, false));
        assert_eq!(groups.remove(&s, 3), (true, true));
        assert!(groups.group("t/+", "g").is_none());
    }

    #[test]
    fn publisher_picks_one_shard_per_group() {
        let mut idx = SharedInterest::default();
        idx.add(&share("$share/g/t/#"), 0);
        idx.add(&share("$share/g/t/#"), 2);
        idx.add(&share("$share/h/t/x"), 1);
        let mut seen = Vec::new();
        for _ in 0..4 {
            idx.picks_for("t/x", None, |shard, pick| {
                seen.push((shard, pick.group.to_string()))
            });
        }
        // `local`: the publisher's shard when it has members.
        let mut here = Vec::new();
        idx.picks_for("t/x", Some(2), |shard, pick| {
            here.push((shard, pick.group.to_string()))
        });
        here.sort();
        assert_eq!(here, [(1, "h".to_string()), (2, "g".to_string())]);
        let g: Vec<usize> = seen.iter().filter(|p| p.1 == "g").map(|p| p.0).collect();
        let h: Vec<usize> = seen.iter().filter(|p| p.1 == "h").map(|p| p.0).collect();
        assert_eq!(g, [0, 2, 0, 2]);
        assert_eq!(h, [1, 1, 1, 1]);
        let pick = SharedPick {
            filter: "t/#".into(),
            group: "g".into(),
            hops: 0,
        };
        assert_eq!(idx.other_shard(&pick, 0), Some(2));
        idx.remove(&share("$share/g/t/#"), 2);
        assert_eq!(idx.other_shard(&pick, 0), None);
        idx.remove(&share("$share/g/t/#"), 0);
        let mut none = true;
        idx.picks_for("t/y", None, |_, p| none &= p.group != "g");
        assert!(none);
    }
}
