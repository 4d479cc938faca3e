//! Every director metric name in one place, and the Prometheus endpoint.

use anyhow::Result;
use metrics_exporter_prometheus::PrometheusHandle;

/// Counter: clients redirected, label `slot` (the slot id).
pub const REDIRECTS: &str = "gatehouse_director_redirects_total";
/// Counter: clients answered 503 because no slot was available.
pub const NO_SLOT: &str = "gatehouse_director_no_slot_total";
/// Counter: connections refused before a redirect, label `reason` (tls, timeout, and the
/// HTTP parse errors: malformed, head_too_large, too_many_headers, body_too_large,
/// unsupported).
pub const BAD_REQUESTS: &str = "gatehouse_director_bad_requests_total";
/// Gauge: 1 while the slot-table stream from node `node` is open.
pub const WATCH_CONNECTED: &str = "gatehouse_director_watch_connected";
/// Gauge: seconds since the newest slot table arrived from any node.
pub const TABLE_AGE: &str = "gatehouse_director_table_age_seconds";

/// Install the global recorder; returns the handle that renders the exposition text.
pub fn install() -> Result<PrometheusHandle> {
    gatehouse_runtime::metrics::install(&[])
}

/// Serve the exposition text in plain HTTP on `addr` (the node's endpoint, shared).
pub use gatehouse_runtime::metrics::serve;

/// Count a connection refused before a redirect.
pub fn bad_request(reason: &'static str) {
    metrics::counter!(BAD_REQUESTS, "reason" => reason).increment(1);
}
