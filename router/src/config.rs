//! What a router needs to run.

use std::{path::PathBuf, time::Duration};

use alloy::signers::local::PrivateKeySigner;
use morpheus_sdk::Deployment;

use crate::{Error, FailPolicy, RateLimit, Result, record::RecordRule, speed::SpeedRule};

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
    /// The SQLite database file (created when missing). Unused when
    /// [`postgres_url`](Self::postgres_url) is set.
    pub db_path: PathBuf,
    /// A PostgreSQL database instead of the SQLite file (`postgres://user:pass@host/db`): what
    /// several instances of one router (one key) behind a load balancer share. `None` (the
    /// default): the SQLite file.
    pub postgres_url: Option<String>,
    /// X: a passed report earns nothing when its ms per token is more than this many percent
    /// above the model's speed reference: the median of the newest credited report of each of
    /// the model's last [`report_window`](Self::report_window) reporting users.
    pub slow_threshold_pct: u32,
    /// Z: how many reporting users the speed reference takes one sample from each, and how many
    /// of a provider's recent reports its record looks at.
    pub report_window: u32,
    /// The floor in ms per token: a report claiming less (`durationMs < floor × tokens`) is
    /// judged at the floor and is not a sample of the speed reference. Above 0.
    pub min_ms_per_token: f64,
    /// The ceiling in ms per token: the most one report contributes to the speed reference (and
    /// to a provider's mean). At least the floor.
    pub max_ms_per_token: f64,
    /// K: a provider's record is bad only when its failed reports come from at least this many
    /// distinct users. At least 1.
    pub bad_record_users: u32,
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
    /// How long all the checks for one request may take together: a check still running then
    /// counts as failed, and the first candidate in order that passed is taken.
    pub liveness_deadline: Duration,
    /// How many candidates are checked at once (in selection order). At least 1.
    pub liveness_concurrency: usize,
    /// How long a failed check is remembered per provider endpoint: the provider is refused
    /// with the remembered reason, not contacted, until it ends. A passed check clears it; 0
    /// remembers nothing.
    pub liveness_cooldown: Duration,
    /// How long a passed liveness proof stands for the same provider, endpoint and model: the
    /// requests assigned to it meanwhile are not challenged again. 0 (the default) challenges
    /// on every assignment; a failed check ends it at once.
    pub liveness_ttl: Duration,
    /// Whether provider endpoints may be loopback, private, link-local or other non-public
    /// addresses (a devnet on one machine). Off: such endpoints, and names resolving to them,
    /// are refused without being contacted.
    pub allow_private_endpoints: bool,
    /// How often expired sessions whose token count is not settled are asked for (their
    /// provider's signed receipt). Above 0.
    pub settle_interval: Duration,
    /// How many times the provider of an expired session is asked for its receipt before the
    /// session is settled by the user's report alone (`usage::counted_tokens`). At least 1.
    pub receipt_attempts: u32,
    /// Whether a failed report withholds the credit always (`Withhold`, the default) or only
    /// when the user's stake exceeds the provider's (`ByStake`, the specification's option).
    pub fail_policy: FailPolicy,
    /// How long a request may wait for a provider's place when every live provider of its model
    /// is at capacity (`queue.rs`: in order of the user's stake, ties by arrival); then it is
    /// refused 503 with `Retry-After`. 0: refused at once.
    pub queue_wait: Duration,
    /// How many requests may wait at once, over all models; more are refused at once.
    pub queue_max: usize,
    /// Requests per client address (the TCP peer) on the `/v1` routes; more are refused 429
    /// `rate_limited` with `Retry-After` (`rate_limit.rs`).
    pub ip_rate_limit: RateLimit,
    /// Compute requests and reports per user (the address the signature recovers to).
    pub user_rate_limit: RateLimit,
    /// Behind a proxy: the header it writes the client's address into (`X-Forwarded-For`),
    /// whose last entry is then the client's address for the rate limit. `None` (the default):
    /// the TCP peer. Set it only when every request comes through the proxy, or a client could
    /// name any address.
    pub client_ip_header: Option<axum::http::HeaderName>,
}

impl RouterConfig {
    /// Settings with the defaults: X = 50 %, Z = 20, a floor of 1 ms/token and a ceiling of
    /// 10,000 ms/token, K = 3 users, assignments valid 300 s, liveness on with a 3 s timeout,
    /// 3 s to connect to a provider, all checks of a request within 5 s, 8 at once, a failure
    /// remembered 30 s, private endpoints refused, expired sessions settled every 10 s and by
    /// the user's report after 6 unanswered requests for the provider's receipt, every failed
    /// report withholding the credit, requests waiting up to 10 s for capacity, at most 1,024 at
    /// once, and at most 500 requests a second per client address (1,000 at once) and 20 per
    /// user (200 at once).
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
            postgres_url: None,
            slow_threshold_pct: 50,
            report_window: 20,
            min_ms_per_token: 1.0,
            max_ms_per_token: 10_000.0,
            bad_record_users: 3,
            assignment_lifetime: Duration::from_secs(300),
            liveness: true,
            liveness_timeout: Duration::from_secs(3),
            provider_connect_timeout: Duration::from_secs(3),
            liveness_deadline: Duration::from_secs(5),
            liveness_concurrency: 8,
            liveness_cooldown: Duration::from_secs(30),
            liveness_ttl: Duration::ZERO,
            allow_private_endpoints: false,
            settle_interval: Duration::from_secs(10),
            receipt_attempts: 6,
            fail_policy: FailPolicy::Withhold,
            queue_wait: Duration::from_secs(10),
            queue_max: 1024,
            ip_rate_limit: RateLimit {
                per_second: 500.0,
                burst: 1000.0,
            },
            user_rate_limit: RateLimit {
                per_second: 20.0,
                burst: 200.0,
            },
            client_ip_header: None,
        }
    }

    /// Refuses settings the report rules cannot work with.
    pub(crate) fn check(&self) -> Result<()> {
        let refuse = |why: &str| Err(Error::Config(why.into()));
        if self.report_window == 0 {
            return refuse("the report window Z must be at least 1");
        }
        if !self.min_ms_per_token.is_finite() || self.min_ms_per_token <= 0.0 {
            return refuse("the speed floor (min ms/token) must be a number above 0");
        }
        if self.max_ms_per_token.is_nan() || self.max_ms_per_token < self.min_ms_per_token {
            return refuse("the speed ceiling (max ms/token) must be at least the floor");
        }
        if self.bad_record_users == 0 {
            return refuse("the bad record's distinct users K must be at least 1");
        }
        if self.settle_interval.is_zero() {
            return refuse("the settle interval must be above 0");
        }
        if self.queue_max == 0 {
            return refuse("the queue's maximum depth must be at least 1");
        }
        if self.receipt_attempts == 0 {
            return refuse("the receipt attempts must be at least 1");
        }
        for (which, limit) in [
            ("per client address", self.ip_rate_limit),
            ("per user", self.user_rate_limit),
        ] {
            if !limit.per_second.is_finite() || limit.per_second < 0.0 {
                return refuse(&format!(
                    "the rate limit {which} must be 0 (off) or a number of requests a second"
                ));
            }
            if limit.is_on() && !(limit.burst >= 1.0 && limit.burst.is_finite()) {
                return refuse(&format!("the burst {which} must be at least 1"));
            }
        }
        Ok(())
    }

    /// The speed rule's parameters (`speed.rs`).
    pub(crate) fn speed_rule(&self) -> SpeedRule {
        SpeedRule {
            slow_threshold_pct: self.slow_threshold_pct,
            window: self.report_window,
            min_ms_per_token: self.min_ms_per_token,
            max_ms_per_token: self.max_ms_per_token,
        }
    }

    /// The bad record's parameters (`record.rs`).
    pub(crate) fn record_rule(&self) -> RecordRule {
        RecordRule {
            window: self.report_window,
            min_users: self.bad_record_users,
        }
    }
}
