//! What SIGHUP reloads: each listener's TLS configs, password file and ACL
//! file, loaded at start and swapped in whole on reload.
//!
//! Shards read it at a connection's start only (never per message): each
//! keeps the last snapshot it took and compares a generation number, an
//! atomic load, before using it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::tls::TlsConfigs;
use crate::auth::{AclFile, PasswordFile};
use crate::config::{AuthSettings, Config, ListenerSpec};

/// One listener's loaded security settings.
pub struct ListenerSecurity {
    pub tls: Option<Arc<TlsConfigs>>,
    /// The client certificate's CN is the username.
    pub identity_as_username: bool,
    pub passwords: Option<Arc<PasswordFile>>,
    pub acl: Option<Arc<AclFile>>,
    pub settings: AuthSettings,
}

/// Every listener's settings (by listener index) and their generation,
/// and the threads that check passwords.
pub struct Security {
    generation: AtomicU64,
    current: Mutex<Arc<Vec<Arc<ListenerSecurity>>>>,
    /// Present when some listener has a password file.
    pub verifier: Option<super::authn::Verifier>,
}

impl Security {
    /// Loads every listener's files; any error stops the start.
    pub fn load(config: &Config) -> Result<Security, String> {
        let listeners = config
            .listeners
            .iter()
            .map(|l| load_listener(l).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let verifier = listeners
            .iter()
            .any(|l| l.passwords.is_some())
            .then(|| super::authn::Verifier::start(config.shards));
        Ok(Security {
            generation: AtomicU64::new(0),
            current: Mutex::new(Arc::new(listeners)),
            verifier,
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The current settings and their generation.
    pub fn snapshot(&self) -> (u64, Arc<Vec<Arc<ListenerSecurity>>>) {
        let current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (self.generation(), current.clone())
    }

    /// Reloads every listener's files. A file that fails to load keeps its
    /// previous version (logged); connections are not touched, new ones
    /// use what was reloaded, and shards recompile their clients' ACLs.
    pub fn reload(&self, config: &Config) {
        let (_, old) = self.snapshot();
        let mut next = Vec::with_capacity(old.len());
        for (i, spec) in config.listeners.iter().enumerate() {
            match load_listener(spec) {
                Ok(l) => next.push(Arc::new(l)),
                Err(e) => {
                    tracing::error!(listener = %spec.url(), "reload failed, keeping the previous settings: {e}");
                    if let Some(p) = old.get(i) {
                        next.push(p.clone());
                    }
                }
            }
        }
        for (spec, l) in config.listeners.iter().zip(&next) {
            tracing::info!(
                listener = %spec.url(),
                certificate = l.tls.as_ref().map(|t| t.subject.as_str()),
                users = l.passwords.as_ref().map(|p| p.len()),
                acl = l.acl.is_some(),
                "reloaded"
            );
        }
        *self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(next);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

fn load_listener(spec: &ListenerSpec) -> Result<ListenerSecurity, String> {
    let url = spec.url();
    let tls = match &spec.tls {
        Some(files) => Some(Arc::new(
            TlsConfigs::load(files).map_err(|e| format!("{url}: {e}"))?,
        )),
        None => None,
    };
    let passwords = match &spec.auth.password_file {
        Some(path) => Some(Arc::new(
            PasswordFile::load(path).map_err(|e| format!("{url}: {e}"))?,
        )),
        None => None,
    };
    let acl = match &spec.auth.acl_file {
        Some(path) => Some(Arc::new(
            AclFile::load(path).map_err(|e| format!("{url}: {e}"))?,
        )),
        None => None,
    };
    Ok(ListenerSecurity {
        identity_as_username: spec.tls.as_ref().is_some_and(|t| t.identity_as_username),
        tls,
        passwords,
        acl,
        settings: spec.auth.clone(),
    })
}
