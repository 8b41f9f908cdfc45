//! What a router needs to run.

use std::{path::PathBuf, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use morpheus_sdk::Deployment;

/// A router's settings. [`RouterConfig::new`] fills in the defaults.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// JSON-RPC URL of the chain the protocol is deployed on.
    pub rpc_url: String,
    /// The protocol's addresses.
    pub deployment: Deployment,
    /// The router signer: signs assignments, liveness challenges and vouchers. Must be an
    /// authorised router in `SessionRouter`; it never sends a transaction.
    pub signer: PrivateKeySigner,
    /// The SQLite database file (created when missing).
    pub db_path: PathBuf,
    /// X: a report earns nothing when its ms per token is more than this many percent above the
    /// mean of the model's last [`report_window`](Self::report_window) reports.
    pub slow_threshold_pct: u32,
    /// Z: how many recent reports the speed mean and a provider's record look at.
    pub report_window: u32,
    /// How long an assignment is valid (its `expiresAt`).
    pub assignment_lifetime: Duration,
    /// Whether providers must pass a liveness challenge before each assignment.
    pub liveness: bool,
    /// How long a provider has to answer a liveness challenge: the whole-request timeout of the
    /// router's one HTTP client to providers (connecting, sending, the answer's headers and
    /// body). The challenge's deadline is twice this.
    pub liveness_timeout: Duration,
    /// How long the router's HTTP client waits for a provider's TCP connection to be accepted.
    /// Also bounded by [`liveness_timeout`](Self::liveness_timeout).
    pub provider_connect_timeout: Duration,
}

impl RouterConfig {
    /// Settings with the defaults: X = 50 %, Z = 20 reports, assignments valid 300 s, liveness
    /// on with a 10 s timeout, 3 s to connect to a provider.
    pub fn new(
        rpc_url: impl Into<String>,
        deployment: Deployment,
        signer: PrivateKeySigner,
        db_path: impl Into<PathBuf>,
    ) -> Self {
        Self {
            rpc_url: rpc_url.into(),
            deployment,
            signer,
            db_path: db_path.into(),
            slow_threshold_pct: 50,
            report_window: 20,
            assignment_lifetime: Duration::from_secs(300),
            liveness: true,
            liveness_timeout: Duration::from_secs(10),
            provider_connect_timeout: Duration::from_secs(3),
        }
    }
}
