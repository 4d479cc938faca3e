//! The control plane's own runtime.
//!
//! Raft (openraft's core and replication tasks, the sled store), the cluster gRPC service, the
//! slot manager and the member heartbeats run on dedicated threads. The client-facing runtime
//! can be saturated for seconds — a thousand clients reconnecting to a slot this node just took
//! over means a thousand TLS handshakes and attach commits — and a heartbeat or lease renewal
//! queued behind that work would arrive late: followers would start elections and slot owners
//! would fence themselves, turning one failover into several. On threads of their own these
//! tasks get the CPU from the kernel's scheduler within a time slice instead of waiting for
//! a tokio worker to work through hundreds of ready tasks.

use anyhow::{Context, Result};
use std::future::Future;

/// A tokio runtime for the control plane; shut down in the background when dropped (it may be
/// dropped from inside the client-facing runtime, where a blocking shutdown would panic).
#[derive(Debug)]
pub struct ControlRuntime(Option<tokio::runtime::Runtime>);

impl ControlRuntime {
    /// Start the control plane's runtime (two worker threads named `gh-control`).
    pub fn start() -> Result<Self> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("gh-control")
            .enable_all()
            .build()
            .context("starting the control-plane runtime")?;
        Ok(Self(Some(rt)))
    }

    /// Run `f` on the control plane and wait for its result from any runtime. Tasks `f`
    /// spawns (openraft's, tonic's) stay on the control plane.
    pub async fn run<F>(&self, f: F) -> Result<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let rt = self.0.as_ref().context("control-plane runtime stopped")?;
        rt.spawn(f).await.context("control-plane task failed")
    }

    /// Spawn `f` on the control plane.
    pub fn spawn<F>(&self, f: F) -> Option<tokio::task::JoinHandle<F::Output>>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.as_ref().map(|rt| rt.spawn(f))
    }
}

impl Drop for ControlRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}
