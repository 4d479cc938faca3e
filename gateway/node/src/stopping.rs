//! How the node is stopping: the one signal every task watches.

/// How the node is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopping {
    /// Running.
    No,
    /// Operator stop (SIGTERM/SIGINT) of a single node: clients get CSTP TERMINATE and
    /// leave. A cluster member stops as for [`Restart`](Stopping::Restart) instead, after
    /// handing its slots over (`slots::hand_over`): the sessions live on in the cluster.
    Terminate,
    /// Restart (SIGUSR2): connections close without TERMINATE, so clients reconnect and
    /// resume with their cookies when the node is back.
    Restart,
}
