//! The node: everything a running gateway holds, built once from the config.

use crate::clock::Clock;
use crate::config::Config;
use crate::db::SessionStore;
use crate::edge::dataplane::DataPlane;
use crate::edge::throttle::Throttle;
use crate::edge::tunnels::Tunnels;
use crate::edge::users::Users;
use ring::rand::SystemRandom;
use std::sync::Arc;
use tokio::sync::watch;

pub use crate::stopping::Stopping;

/// What the client-facing edge and the admin API share. The control plane's components
/// (session store, cluster services, membership, session timers, slots) take narrow handles
/// instead, so that nothing they are made of imports this struct back.
pub struct Node {
    /// Validated config.
    pub cfg: Config,
    /// The one clock.
    pub clock: Clock,
    /// This node's handle on the replicated session db.
    pub db: SessionStore,
    /// Tun device and inner-address routes.
    pub dp: Arc<DataPlane>,
    /// Tunnels running here.
    pub tunnels: Arc<Tunnels>,
    /// Local users.
    pub users: Arc<Users>,
    /// Login throttling.
    pub throttle: Throttle,
    /// CSPRNG for tokens.
    pub rng: SystemRandom,
    /// TLS acceptor for clients.
    pub tls: tokio_rustls::TlsAcceptor,
    /// Stop signal.
    pub stopping: watch::Receiver<Stopping>,
    /// Slots whose addresses this node holds.
    pub local_slots: Arc<crate::slots::local::LocalSlots>,
    /// What the slot manager, switchovers and drills work with.
    pub slots: crate::slots::SlotCtx,
}

impl Node {
    /// Whether the node is stopping.
    pub fn is_stopping(&self) -> bool {
        *self.stopping.borrow() != Stopping::No
    }
}
