//! How the node is stopping: the one signal every task watches.

/// How the node is stopping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopping {
    /// Running.
    No,
    /// Operator stop (SIGTERM/SIGINT): clients get CSTP TERMINATE and leave — on a single
    /// node. A cluster member hands its slots over first (`slots::hand_over`); its clients
    /// move to the new owners and never hear the TERMINATE, which the fence drops.
    Terminate,
    /// Restart (SIGUSR2): connections close without TERMINATE, so clients reconnect and
    /// resume with their cookies when the node is back.
    Restart,
}
