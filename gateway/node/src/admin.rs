//! Admin API (placeholder body until the gRPC service lands in this commit series).
use crate::node::Node;
use std::sync::Arc;
/// Serve the admin API.
pub async fn serve(_node: Arc<Node>) {}
