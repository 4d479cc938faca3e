//! Start-up and shutdown: build the node from its config, bind, run, stop.

use crate::clock::Clock;
use crate::config::Config;
use crate::db::SessionStore;
use crate::edge::dataplane::DataPlane;
use crate::edge::listener as gateway;
use crate::edge::throttle::Throttle;
use crate::edge::tunnels::Tunnels;
use crate::edge::users::Users;
use crate::node::Node;
use crate::stopping::Stopping;
use crate::{admin, metrics, sessions, tls};
use anyhow::{Context, Result};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Run a node until SIGTERM/SIGINT (TERMINATE to clients) or SIGUSR2 (restart: clients
/// reconnect and resume when the node is back).
pub async fn run(cfg: Config) -> Result<()> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating {}", cfg.data_dir.display()))?;
    let handle = metrics::install()?;
    let identity = tls::load_or_generate(cfg.tls.as_ref(), &cfg.data_dir)?;
    let users = Arc::new(Users::open(&cfg.users_file)?);
    // Raft, the cluster service, the slot manager and the member heartbeats: control.rs.
    let control = crate::control::ControlRuntime::start()?;
    let db = {
        let (id, dir, cluster) = (cfg.node_id, cfg.data_dir.clone(), cfg.cluster.clone());
        control.run(async move { SessionStore::open(id, &dir, cluster.as_ref()).await }).await??
    };
    let (stop_tx, stop_rx) = watch::channel(Stopping::No);
    let clock = Clock::new();
    let drills: crate::cluster::drill_service::DrillCell = Default::default();
    let cluster_task = match &cfg.cluster {
        Some(c) => {
            let tls = crate::cluster::ClusterTls::load(c)?;
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.changed().await;
            };
            let (db2, listen, cell) = (db.clone(), c.listen, drills.clone());
            let (renew, lease) = cfg
                .slots
                .as_ref()
                .map_or((Duration::from_millis(50), Duration::from_millis(600)), |s| {
                    (s.renew_interval, s.lease)
                });
            let slots = crate::cluster::watch_service::SlotSource::new(
                db.clone(),
                cfg.listen.port(),
                clock,
                renew,
                lease,
            );
            Some(
                control
                    .run(async move {
                        crate::cluster::service::serve(&db2, listen, &tls, stopped, slots, cell)
                            .await
                    })
                    .await??,
            )
        }
        None => None,
    };
    match db.wait_leader(Duration::from_secs(if cfg.cluster.is_some() { 20 } else { 10 })).await {
        Ok(()) => {}
        Err(e) if cfg.cluster.is_none() => return Err(e),
        // A node that starts while most peers are down serves once a quorum is back.
        Err(e) => tracing::warn!("{e}; logins wait for a quorum"),
    }
    let dp = DataPlane::open(&cfg)?;
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("binding {}", cfg.listen))?;
    if cfg.slots.is_some() {
        // The listener's RSTs to stray segments (what a take-over's tickle draws) carry it;
        // the kernel fence drops socket-less ones (kernel::fence).
        socket2::SockRef::from(&listener)
            .set_mark(crate::kernel::fence::MARK_LISTEN)
            .context("marking the client listener (the node needs CAP_NET_ADMIN)")?;
    }
    let local_slots: Arc<crate::slots::LocalSlots> = Default::default();
    let slots = crate::slots::SlotCtx {
        cfg: Arc::new(crate::slots::SlotCfg {
            slots: cfg.slots.clone(),
            cluster: cfg.cluster.clone(),
        }),
        db: db.clone(),
        clock,
        local_slots: local_slots.clone(),
        stopping: stop_rx.clone(),
    };
    let node = Arc::new(Node {
        clock,
        db,
        dp: dp.clone(),
        tunnels: Arc::new(Tunnels::default()),
        users,
        throttle: Throttle::new(cfg.login.clone()),
        rng: ring::rand::SystemRandom::new(),
        tls: tokio_rustls::TlsAcceptor::from(identity.server_config.clone()),
        stopping: stop_rx,
        local_slots,
        slots,
        cfg,
    });
    tokio::spawn(dp.run_reader());
    tokio::spawn(sessions::follow_endings(node.db.clone(), node.tunnels.clone()));
    tokio::spawn(sessions::run_session_timers(node.db.clone()));
    tokio::spawn(sessions::run_gauges(node.db.clone()));
    let (leaving_tx, leaving_rx) = tokio::sync::watch::channel(false);
    control.spawn(crate::cluster::membership::run_member_duties(
        node.db.clone(),
        node.tunnels.clone(),
        node.clock,
        node.cfg.cluster.clone(),
        leaving_rx,
    ));
    if let Some(c) = node.cfg.cluster.clone() {
        control.spawn(crate::cluster::membership::call_elections(node.db.clone(), c));
    }
    let slots_task = control
        .spawn(crate::slots::run(node.slots.clone()))
        .context("control-plane runtime stopped")?;
    let _ = drills.set(std::sync::Arc::new(crate::slots::drill::NodeDrills(node.slots.clone())));
    tokio::spawn(metrics::follow_raft(node.db.raft().clone()));
    if let Some(addr) = node.cfg.metrics_listen {
        tokio::spawn(async move {
            if let Err(e) = metrics::serve(addr, handle).await {
                tracing::error!("metrics endpoint: {e:#}");
            }
        });
    }
    let admin_task = tokio::spawn(admin::serve(node.clone()));
    tracing::info!(
        node = node.cfg.node_id,
        listen = %node.cfg.listen,
        pin = %identity.pin,
        cert = %identity.cert_path.display(),
        "gatehouse node ready"
    );
    eprintln!(
        "gatehouse: listening on {} — openconnect --servercert {}",
        node.cfg.listen, identity.pin
    );
    let serve = tokio::spawn(gateway::serve(node.clone(), listener));

    let how = match wait_for_signal().await {
        // The sessions outlive a cluster member: its clients must reconnect (to the slot's
        // new owner, or to this node when it is back), never be told to leave.
        Stopping::Terminate if node.cfg.cluster.is_some() => Stopping::Restart,
        how => how,
    };
    tracing::info!(?how, "stopping");
    // A cluster member leaves in turn (gatehouse_core::leaving): when every node stops at
    // once, one goes while the others hold the quorum and the slots, the next once it is back.
    if let Some(c) = node.cfg.cluster.as_ref() {
        crate::cluster::membership::leave_in_turn(&node.db, &leaving_tx, c.leave_wait).await;
    }
    // Slots first: a stopping cluster member moves its clients to the standbys as a
    // switchover does (its tunnels then close behind the fence, unheard).
    crate::slots::hand_over(&node.slots, Duration::from_secs(2)).await;
    let _ = stop_tx.send(how);
    serve.abort();
    // Let tunnels say goodbye and detach before Raft stops.
    for _ in 0..40 {
        if node.tunnels.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The slot manager takes its addresses off on the stop signal.
    let _ = tokio::time::timeout(Duration::from_secs(2), slots_task).await;
    admin_task.abort();
    if let Some(t) = cluster_task {
        t.abort();
    }
    let db = node.db.clone();
    let cluster = node.cfg.cluster.clone();
    let _ = control
        .run(async move {
            if let Some(c) = cluster {
                crate::cluster::membership::stop_leading(&db, &c).await;
            }
            db.shutdown().await
        })
        .await;
    Ok(())
}

async fn wait_for_signal() -> Stopping {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int), Ok(mut usr2)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::user_defined2()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => Stopping::Terminate,
        _ = int.recv() => Stopping::Terminate,
        _ = usr2.recv() => Stopping::Restart,
    }
}
