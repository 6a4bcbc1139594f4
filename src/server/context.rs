//! What every task of one shard shares: the broker core and the wake-up
//! flags of the tasks that turn its output into I/O.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Instant;

use crate::broker::{ConnId, Shard};
use crate::config::Config;

use super::admission::{Admission, ConnectRate};
use super::notify::Notify;
use super::security::{ListenerSecurity, Security};
use super::transport::WriteSide;
use crate::auth::VerifiedCache;

/// Successful password checks each shard remembers per listener.
const VERIFIED_PER_LISTENER: usize = 10_000;

/// Most rounds of one `wake` (see there); what is left waits for the next.
const WAKE_ROUNDS: usize = 4;

pub struct ShardCtx {
    pub id: usize,
    pub shards: usize,
    pub config: Config,
    pub core: RefCell<Shard>,
    /// The writer task of each live connection.
    pub writers: RefCell<HashMap<ConnId, Rc<WriteSide>>>,
    /// The mesh sender task for each destination shard.
    pub mesh_senders: Vec<Rc<Notify>>,
    /// Senders to the other shards, once the mesh is joined.
    pub mesh:
        std::cell::OnceCell<Rc<glommio::channels::channel_mesh::Senders<super::mesh::MeshItem>>>,
    /// The tick-drained paths between shards (all shards share them).
    pub lanes: Arc<super::mesh::Lanes>,
    /// The tick that busy connections batch their reads and writes on.
    pub pacer: Rc<super::pacer::Pacer>,
    /// Connections parked after a silence, waiting in an epoll set.
    pub parking: super::parking::Parking,
    /// Sockets open on this shard (for --max-connections).
    pub open_sockets: std::cell::Cell<usize>,
    /// The memory mark and refusal counts, shared by all shards.
    pub admission: Arc<Admission>,
    /// This shard's per-address connection rate buckets.
    pub connect_rate: ConnectRate,
    /// TLS, password and ACL files (reloaded on SIGHUP), all shards'.
    pub security: Arc<Security>,
    /// The last snapshot of `security` this shard took.
    security_seen: RefCell<(u64, Arc<Vec<Arc<ListenerSecurity>>>)>,
    /// Passwords verified lately, per listener (cleared on reload).
    verified: RefCell<(u64, Vec<VerifiedCache>)>,
    /// The generation the ACLs of this shard's clients were compiled from.
    acl_generation: std::cell::Cell<u64>,
    started: Instant,
    scratch: RefCell<Vec<ConnId>>,
}

impl ShardCtx {
    pub fn new(
        id: usize,
        shards: usize,
        config: Config,
        lanes: Arc<super::mesh::Lanes>,
        admission: Arc<Admission>,
        security: Arc<Security>,
    ) -> Result<Rc<ShardCtx>, super::parking::ParkingError> {
        let snapshot = security.snapshot();
        let mut core = Shard::new(id, shards, config.limits.clone());
        core.set_park_after(config.park_after.map_or(0, |d| d.as_millis() as u64));
        core.set_shared_strategy(config.shared_strategy);
        let pacer = Rc::new(super::pacer::Pacer::new(config.pace));
        Ok(Rc::new(ShardCtx {
            id,
            shards,
            config,
            core: RefCell::new(core),
            writers: RefCell::new(HashMap::new()),
            mesh_senders: (0..shards).map(|_| Rc::new(Notify::default())).collect(),
            mesh: std::cell::OnceCell::new(),
            lanes,
            pacer,
            parking: super::parking::Parking::new()?,
            open_sockets: std::cell::Cell::new(0),
            connect_rate: ConnectRate::default(),
            acl_generation: std::cell::Cell::new(snapshot.0),
            verified: RefCell::new((snapshot.0, Vec::new())),
            security_seen: RefCell::new(snapshot),
            security,
            started: admission.started(),
            admission,
            scratch: RefCell::new(Vec::new()),
        }))
    }

    /// The current security settings of listener `index`.
    pub fn security_for(&self, index: usize) -> Arc<ListenerSecurity> {
        let generation = self.security.generation();
        let mut seen = self.security_seen.borrow_mut();
        if seen.0 != generation {
            *seen = self.security.snapshot();
        }
        seen.1[index].clone()
    }

    /// Runs `f` on listener `index`'s cache of verified passwords, emptied
    /// first if the files were reloaded since it was filled.
    pub fn verified_cache<R>(&self, index: usize, f: impl FnOnce(&mut VerifiedCache) -> R) -> R {
        let generation = self.security.generation();
        let mut verified = self.verified.borrow_mut();
        if verified.0 != generation {
            *verified = (generation, Vec::new());
        }
        while verified.1.len() <= index {
            verified.1.push(VerifiedCache::new(VERIFIED_PER_LISTENER));
        }
        f(&mut verified.1[index])
    }

    /// After a reload, compiles this shard's clients' ACLs again from the
    /// new files (called on the shard's tick).
    pub fn reload_acls_if_changed(&self) {
        let generation = self.security.generation();
        if self.acl_generation.replace(generation) == generation {
            return;
        }
        let (_, listeners) = self.security.snapshot();
        let acl_of = |listener: u16| {
            listeners
                .get(usize::from(listener))
                .and_then(|l| l.acl.clone())
        };
        let recompiled = self.core.borrow_mut().reload_acls(&acl_of);
        tracing::info!(shard = self.id, clients = recompiled, "ACLs recompiled");
    }

    /// Milliseconds since the broker started: the broker core's clock, the
    /// same on every shard.
    pub fn now(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Wakes the tasks that have work after a call into the core: the
    /// writers of connections with output, the senders of shards with a
    /// batch. Called after every core call; cheap when nothing changed.
    pub fn wake(self: &Rc<Self>) {
        // Writing to a parked connection inline can produce more work (a
        // will on close, the next queued message): a few rounds catch it.
        for _ in 0..WAKE_ROUNDS {
            let mut dirty = self.scratch.borrow_mut();
            let mut core = self.core.borrow_mut();
            core.take_dirty_conns(&mut dirty);
            for dst in core.shards_with_outgoing() {
                self.mesh_senders[dst].notify();
            }
            drop(core);
            let writers = self.writers.borrow();
            let mut parked = Vec::new();
            for conn in dirty.drain(..) {
                if let Some(w) = writers.get(&conn) {
                    w.notify.notify();
                } else if self.parking.is_parked(conn) {
                    parked.push(conn);
                }
            }
            drop(writers);
            drop(dirty);
            if parked.is_empty() {
                return;
            }
            for conn in parked {
                super::light::flush(self, conn);
            }
        }
    }

    /// Asks connections silent for --park-after-ms to park (called by the
    /// shard's ticker).
    pub fn request_parks(&self) {
        let Some(after) = self.config.park_after else {
            return;
        };
        let mut silent = Vec::new();
        self.core.borrow_mut().silent_conns(self.now(), &mut silent);
        let after_us = after.as_micros().min(u128::from(u32::MAX / 2)) as u32;
        let writers = self.writers.borrow();
        for conn in silent {
            if let Some(w) = writers.get(&conn) {
                if self.pacer.since(w.last_write.get()) >= after_us {
                    w.park.notify();
                }
            }
        }
    }

    /// Gives back the room of the writers table once most of its
    /// connections have parked (a hash table never shrinks by itself).
    pub fn shrink_idle_tables(&self) {
        let mut writers = self.writers.borrow_mut();
        if writers.capacity() > 64 && writers.len() * 4 < writers.capacity() {
            writers.shrink_to_fit();
        }
    }
}
