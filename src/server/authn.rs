//! Who may connect: the CONNECT's credentials (or the TLS client
//! certificate's identity) against the listener's password file.
//!
//! Password hashes (PBKDF2) are slow on purpose, so they are never checked
//! on a shard's executor: a pool of low-priority threads does it while the
//! CONNECT waits, and each shard remembers recent successes
//! (`auth::VerifiedCache`), so a reconnecting device costs one SHA-256.
//! A storm of wrong passwords therefore costs the pool's threads, which
//! the kernel schedules after the shards; beyond [`QUEUE`] waiting checks
//! new CONNECTs are told the server is busy.

use std::rc::Rc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytestring::ByteString;
use crossbeam::channel::{self, Sender, TrySendError};

use super::context::ShardCtx;
use super::security::ListenerSecurity;
use crate::auth::PasswordFile;
use crate::protocol::Connect;

/// Password checks waiting for a thread, over all shards.
const QUEUE: usize = 4096;
/// How often a waiting CONNECT looks for its answer.
const POLL: Duration = Duration::from_millis(1);
/// Niceness of the checking threads: shards run first.
const NICE: i32 = 10;

/// Why a CONNECT is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthRefusal {
    /// Unknown user or wrong password (the two are not told apart).
    BadCredentials,
    /// No username where one is required, or no certificate identity.
    NotAuthorized,
    /// Too many checks waiting.
    Busy,
}

impl AuthRefusal {
    /// The CONNACK code: 3.1.1 return code or 5.0 reason code.
    pub fn code(self, v5: bool) -> u8 {
        match (self, v5) {
            (AuthRefusal::BadCredentials, false) => 0x05,
            (AuthRefusal::BadCredentials, true) => 0x86,
            (AuthRefusal::NotAuthorized, false) => 0x05,
            (AuthRefusal::NotAuthorized, true) => 0x87,
            (AuthRefusal::Busy, false) => 0x03,
            (AuthRefusal::Busy, true) => 0x89,
        }
    }
}

const PENDING: u8 = 0;
const GOOD: u8 = 1;
const BAD: u8 = 2;

struct Job {
    file: Arc<PasswordFile>,
    user: ByteString,
    password: Vec<u8>,
    answer: Arc<AtomicU8>,
}

/// The password-checking threads (one per shard, niced).
pub struct Verifier {
    jobs: Sender<Job>,
}

impl Verifier {
    pub fn start(threads: usize) -> Verifier {
        let (jobs, rx) = channel::bounded::<Job>(QUEUE);
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("ringmq-auth-{i}"))
                .spawn(move || {
                    // SAFETY: plain syscall on the calling thread (who = 0).
                    unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
                    for job in rx {
                        let good = job.file.verify(&job.user, &job.password);
                        job.answer
                            .store(if good { GOOD } else { BAD }, Ordering::Release);
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a password-checking thread: {e}");
            }
        }
        Verifier { jobs }
    }

    /// Checks off the executor; `None` when the queue is full.
    async fn verify(
        &self,
        file: Arc<PasswordFile>,
        user: ByteString,
        password: Vec<u8>,
    ) -> Option<bool> {
        let answer = Arc::new(AtomicU8::new(PENDING));
        let job = Job {
            file,
            user,
            password,
            answer: answer.clone(),
        };
        match self.jobs.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => return None,
        }
        loop {
            match answer.load(Ordering::Acquire) {
                PENDING => glommio::timer::sleep(POLL).await,
                state => return Some(state == GOOD),
            }
        }
    }
}

/// Decides whether `connect` may connect through `listener`; with
/// `--tls-identity-as-username`, sets its username to the certificate's
/// CN first.
pub async fn authenticate(
    ctx: &Rc<ShardCtx>,
    listener: usize,
    security: &ListenerSecurity,
    connect: &mut Connect,
    identity: Option<String>,
) -> Result<(), AuthRefusal> {
    if security.identity_as_username {
        // The certificate, verified in the handshake, authenticates.
        let cn = identity.ok_or(AuthRefusal::NotAuthorized)?;
        connect.username = Some(ByteString::from(cn));
        connect.password = None;
        return Ok(());
    }
    let Some(file) = &security.passwords else {
        return Ok(());
    };
    let Some(user) = connect.username.clone() else {
        return if security.settings.allow_anonymous {
            Ok(())
        } else {
            Err(AuthRefusal::NotAuthorized)
        };
    };
    let password = connect.password.as_deref().unwrap_or_default();
    if ctx.verified_cache(listener, |cache| cache.check(&user, password)) {
        return Ok(());
    }
    let verifier = ctx.security.verifier.as_ref().ok_or(AuthRefusal::Busy)?;
    match verifier
        .verify(file.clone(), user.clone(), password.to_vec())
        .await
    {
        Some(true) => {
            ctx.verified_cache(listener, |cache| cache.remember(&user, password));
            Ok(())
        }
        Some(false) => Err(AuthRefusal::BadCredentials),
        None => Err(AuthRefusal::Busy),
    }
}
