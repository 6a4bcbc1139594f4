//! Per-client authorization in the core: the ACL compiled for a session at
//! CONNECT (from its listener's ACL file, with its username and client
//! id), the checks the shard makes with it, and recompiling on reload.
//!
//! A session without an ACL (no ACL file) costs nothing: `Session::acl` is
//! `None` and every check is one branch. With one, publishes and
//! subscriptions are checked as they come; deliveries are checked only
//! for sessions holding a subscription that some rule narrows
//! (`SubscribeAccess::GrantedChecked`), so a plain `topic read a/#` costs
//! nothing per message.

use std::sync::Arc;

use bytestring::ByteString;

use crate::auth::{AclFile, ClientAcl, SubscribeAccess};

/// What the server tells the core about a new connection's permissions.
#[derive(Clone, Default)]
pub struct Access {
    /// The listener the client came through (to find its ACL file again
    /// on reload).
    pub listener: u16,
    /// That listener's ACL file; `None`: everything is allowed.
    pub acl: Option<Arc<AclFile>>,
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Access")
            .field("listener", &self.listener)
            .field("acl", &self.acl.is_some())
            .finish()
    }
}

/// A session's compiled ACL.
pub struct SessionAcl {
    pub listener: u16,
    pub username: Option<ByteString>,
    pub rules: ClientAcl,
    /// Some subscription of the session is narrowed by a rule: every
    /// delivery to it is checked with `may_read`.
    pub check_deliveries: bool,
}

impl std::fmt::Debug for SessionAcl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionAcl")
            .field("listener", &self.listener)
            .field("username", &self.username)
            .field("check_deliveries", &self.check_deliveries)
            .finish()
    }
}

impl SessionAcl {
    /// Compiles `file` for a client; `filters` are the subscriptions the
    /// session already has (a resumed session, a reload).
    pub fn compile<'a>(
        file: &AclFile,
        listener: u16,
        username: Option<ByteString>,
        client_id: &str,
        filters: impl Iterator<Item = &'a ByteString>,
    ) -> SessionAcl {
        let rules = file.for_client(username.as_deref(), client_id);
        let check_deliveries = filters
            .into_iter()
            .any(|f| !matches!(rules.may_subscribe(f), SubscribeAccess::Granted));
        SessionAcl {
            listener,
            username,
            rules,
            check_deliveries,
        }
    }
}

/// Whether a session may publish on `topic` (a will too).
pub fn may_publish(acl: Option<&SessionAcl>, topic: &str) -> bool {
    acl.is_none_or(|a| a.rules.may_publish(topic))
}

/// Whether a message on `topic` may be delivered to a session: checked
/// only when some rule narrows its subscriptions, or for retained
/// messages (`always`), which a subscription's grant does not cover.
pub fn may_receive(acl: Option<&SessionAcl>, topic: &str, always: bool) -> bool {
    acl.is_none_or(|a| !(always || a.check_deliveries) || a.rules.may_read(topic))
}
