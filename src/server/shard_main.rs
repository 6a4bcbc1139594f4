//! What each executor thread runs: its shard's setup, then its tasks until
//! shutdown.

use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::Duration;

use glommio::channels::channel_mesh::MeshBuilder;

use super::admission::Admission;
use super::context::ShardCtx;
use super::mesh::{self, MeshItem};
use super::pacer;
use super::parking;
use super::security::Security;
use super::{listener, ShardEvent};
use crate::config::Config;

/// How often keepalives are checked.
const TICK: Duration = Duration::from_millis(500);
/// How often the memory high-water mark is checked: a flood of 1 GB/s
/// overshoots it by at most ~50 MB.
const MEMORY_CHECK: Duration = Duration::from_millis(50);

/// Joins the shard mesh, with a timer ticking meanwhile.
///
/// glommio 0.9's `MeshBuilder::join` connects shared channels whose
/// "connected" wakers are only re-polled when the reactor turns: nothing
/// wakes an executor that went to sleep (no timer armed, no I/O) before
/// its peer connected, so about one start in fifty under CPU load hung
/// there for good. The tick keeps the reactor turning until the join is
/// done.
async fn join_mesh(
    builder: MeshBuilder<MeshItem, glommio::channels::channel_mesh::Full>,
) -> glommio::Result<
    (
        glommio::channels::channel_mesh::Senders<MeshItem>,
        glommio::channels::channel_mesh::Receivers<MeshItem>,
    ),
    (),
> {
    futures_lite::future::or(builder.join(), async {
        loop {
            glommio::timer::sleep(JOIN_TICK).await;
        }
    })
    .await
}

/// How often the reactor turns while the mesh is being joined.
const JOIN_TICK: Duration = Duration::from_millis(2);

/// What every shard starts from.
pub struct ShardSetup {
    pub config: Config,
    pub lanes: Arc<mesh::Lanes>,
    pub admission: Arc<Admission>,
    pub security: Arc<Security>,
    pub mesh_builder: Option<MeshBuilder<MeshItem, glommio::channels::channel_mesh::Full>>,
    pub events: Sender<ShardEvent>,
    pub shutdown: Arc<AtomicBool>,
}

pub async fn run(setup: ShardSetup) {
    let ShardSetup {
        config,
        lanes,
        admission,
        security,
        mesh_builder,
        events,
        shutdown,
    } = setup;
    let shards = config.shards;
    tracing::debug!("shard executor started: joining the mesh");
    // The mesh's join is a barrier for all shards; peer_id is our rank.
    let (id, mesh_ends) = match mesh_builder {
        Some(builder) => match join_mesh(builder).await {
            Ok((senders, receivers)) => (senders.peer_id(), Some((senders, receivers))),
            Err(e) => {
                let _ = events.send(ShardEvent::Failed(format!("joining the shard mesh: {e}")));
                return;
            }
        },
        None => (0, None),
    };
    tracing::debug!(shard = id, "mesh joined");
    let ctx = match ShardCtx::new(id, shards, config, lanes, admission, security) {
        Ok(ctx) => ctx,
        Err(e) => {
            let _ = events.send(ShardEvent::Failed(format!("shard {id}: {e}")));
            return;
        }
    };
    if let Some((senders, receivers)) = mesh_ends {
        let senders = mesh::start(&ctx, senders, receivers);
        let _ = ctx.mesh.set(senders);
    }
    let mut listeners = Vec::new();
    for (index, spec) in ctx.config.listeners.iter().enumerate() {
        match listener::bind(spec) {
            Ok(l) => listeners.push((
                l,
                Rc::new(listener::Listener::for_spec(index, spec, &ctx.config)),
            )),
            Err(e) => {
                let _ = events.send(ShardEvent::Failed(format!(
                    "shard {id}: binding {}: {e}",
                    spec.url()
                )));
                return;
            }
        }
    }
    let accept_tasks: Vec<_> = listeners
        .into_iter()
        .map(|(l, kind)| glommio::spawn_local(listener::accept_loop(ctx.clone(), l, kind)))
        .collect();
    let ticker = {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(TICK).await;
                ctx.core.borrow_mut().tick(ctx.now());
                ctx.reload_acls_if_changed();
                ctx.wake();
                ctx.request_parks();
                ctx.shrink_idle_tables();
                parking::trim_if_due(&ctx);
            }
        })
    };
    let parking_waiter = glommio::spawn_local(parking::waiter(ctx.clone()));
    // One shard samples the process's memory for all of them.
    let memory_watch = (id == 0 && ctx.config.max_memory > 0).then(|| {
        let ctx = ctx.clone();
        glommio::spawn_local(async move {
            loop {
                ctx.admission.check_memory();
                glommio::timer::sleep(MEMORY_CHECK).await;
            }
        })
    });
    let pacer_task = {
        let (a, b) = (ctx.clone(), ctx.clone());
        glommio::spawn_local(pacer::run(
            ctx.pacer.clone(),
            move |on| a.lanes.set_ticking(a.id, on),
            move || mesh::drain_lanes(&b),
        ))
    };
    tracing::debug!(shard = id, "shard ready");
    let _ = events.send(ShardEvent::Ready(id));

    while !shutdown.load(Ordering::Relaxed) {
        glommio::timer::sleep(Duration::from_millis(100)).await;
    }
    // Stop accepting, close every connection after flushing what it has.
    drop(accept_tasks);
    drop(ticker);
    drop(parking_waiter);
    drop(memory_watch);
    // Connections still closing may wait for a tick: keep it running.
    pacer_task.detach();
    ctx.core.borrow_mut().close_all();
    ctx.wake();
    let deadline = ctx.now() + 2000;
    while ctx.core.borrow().connection_count() > 0 && ctx.now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
    let stats = ctx.core.borrow().stats.clone();
    tracing::debug!(
        shard = id,
        ?stats,
        refused_connections = ctx.admission.refused_total(),
        "shard stopped"
    );
    let _ = Rc::strong_count(&ctx);
}
