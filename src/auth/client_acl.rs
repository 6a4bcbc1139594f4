//! One client's compiled ACL: answers publish, delivery and subscribe checks.

use std::sync::Arc;

use super::acl::{Access, Rule};
use super::topic::{covers, intersects, is_valid_filter, is_valid_topic, matches};

/// The answer to a SUBSCRIBE check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubscribeAccess {
    /// No topic that the filter can match is readable.
    Denied,
    /// Every topic that the filter can match is readable: deliveries need no
    /// further check.
    Granted,
    /// Granted, but some deny or narrower read rule overlaps the filter:
    /// each delivery must pass [`ClientAcl::may_read`]. mosquitto checks
    /// every delivery, so this is what it would deliver.
    GrantedChecked,
}

/// The rules for one connected client, built by
/// [`AclFile::for_client`](super::AclFile::for_client) at CONNECT: the
/// user's (or the anonymous) block is shared with the file, the patterns are
/// owned with `%c`/`%u` already substituted. Owned and small, so the
/// connection can keep it without a lock or a lookup per message.
#[derive(Clone, Debug)]
pub struct ClientAcl {
    fixed: Arc<[Rule]>,
    own: Vec<Rule>,
    /// A deny pattern could not be applied safely (see `for_client`).
    deny_all: bool,
}

impl ClientAcl {
    pub(crate) fn new(fixed: Arc<[Rule]>, own: Vec<Rule>, deny_all: bool) -> ClientAcl {
        ClientAcl {
            fixed,
            own,
            deny_all,
        }
    }

    fn rules(&self) -> impl Iterator<Item = &Rule> {
        self.fixed.iter().chain(self.own.iter())
    }

    fn denied(&self, topic: &str) -> bool {
        self.deny_all
            || self
                .rules()
                .any(|r| r.access == Access::Deny && matches(&r.filter, topic))
    }

    /// May this client PUBLISH on `topic`? (A topic with wildcards is never
    /// allowed; the decoder should have refused it already.)
    pub fn may_publish(&self, topic: &str) -> bool {
        is_valid_topic(topic)
            && !self.denied(topic)
            && self
                .rules()
                .any(|r| r.access.writes() && matches(&r.filter, topic))
    }

    /// May a message on `topic` (live or retained) be delivered to this
    /// client?
    pub fn may_read(&self, topic: &str) -> bool {
        is_valid_topic(topic)
            && !self.denied(topic)
            && self
                .rules()
                .any(|r| r.access.reads() && matches(&r.filter, topic))
    }

    /// May this client SUBSCRIBE to `filter`, and must its deliveries be
    /// checked one by one? `$share/GROUP/f` is judged by `f`.
    pub fn may_subscribe(&self, filter: &str) -> SubscribeAccess {
        let Some(filter) = inner_filter(filter) else {
            return SubscribeAccess::Denied;
        };
        if self.deny_all || !is_valid_filter(filter) {
            return SubscribeAccess::Denied;
        }
        let mut deny_overlaps = false;
        for r in self.rules().filter(|r| r.access == Access::Deny) {
            if covers(&r.filter, filter) {
                return SubscribeAccess::Denied;
            }
            deny_overlaps |= intersects(&r.filter, filter);
        }
        let mut readable = false;
        for r in self.rules().filter(|r| r.access.reads()) {
            if covers(&r.filter, filter) {
                return if deny_overlaps {
                    SubscribeAccess::GrantedChecked
                } else {
                    SubscribeAccess::Granted
                };
            }
            readable |= intersects(&r.filter, filter);
        }
        if readable {
            SubscribeAccess::GrantedChecked
        } else {
            SubscribeAccess::Denied
        }
    }
}

/// The filter inside `$share/GROUP/filter`, or `filter` itself; `None` for
/// a malformed shared subscription (empty group or filter).
fn inner_filter(filter: &str) -> Option<&str> {
    let Some(rest) = filter.strip_prefix("$share/") else {
        return Some(filter);
    };
    let (group, inner) = rest.split_once('/')?;
    (!group.is_empty() && !group.contains(['+', '#']) && !inner.is_empty()).then_some(inner)
}
