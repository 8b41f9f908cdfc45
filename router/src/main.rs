//! `morpheus-router`: the router service of Morpheus Compute.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::signers::{Signer, local::PrivateKeySigner};
use clap::{Parser, Subcommand};
use eyre::WrapErr;
use morpheus_router::{AppState, FailPolicy, RateLimit, RouterConfig};
use morpheus_sdk::Deployment;
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc's allocator: a pair's requests allocate and free hundreds of small
/// buffers (JSON, headers, rows) across threads, where glibc's arenas spent about 6% of the
/// router's time (`perf record` under `--example load`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The Morpheus Compute router: assigns providers, credits usage, signs vouchers.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serves the router's HTTP API.
    Serve(Serve),
}

#[derive(Debug, clap::Args)]
struct Serve {
    /// JSON-RPC URL of the chain.
    #[arg(long, env = "MORPHEUS_RPC_URL")]
    rpc_url: String,
    /// Deployment file written by `script/Deploy.s.sol` (deployments/<chainId>.json).
    #[arg(long, env = "MORPHEUS_DEPLOYMENT")]
    deployment: PathBuf,
    /// The router signer's private key (0x hex); must be an authorised router.
    #[arg(long, env = "MORPHEUS_ROUTER_KEY", hide_env_values = true)]
    router_key: String,
    /// SQLite database file (the default backend).
    #[arg(long, env = "MORPHEUS_DB", default_value = "morpheus-router.db")]
    db: PathBuf,
    /// A PostgreSQL database instead of the SQLite file (postgres://user:password@host/db):
    /// what several instances of this router (the same key) share behind a load balancer.
    #[arg(
        long,
        env = "MORPHEUS_POSTGRES",
        hide_env_values = true,
        conflicts_with = "db"
    )]
    postgres: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "MORPHEUS_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// X: percent above the model's speed reference (median ms/token) beyond which a report
    /// earns nothing.
    #[arg(long, env = "MORPHEUS_SLOW_THRESHOLD_PCT", default_value_t = 50)]
    slow_threshold_pct: u32,
    /// Z: recent users the speed reference takes a sample from each; recent reports a
    /// provider's record looks at.
    #[arg(long, env = "MORPHEUS_REPORT_WINDOW", default_value_t = 20)]
    report_window: u32,
    /// The speed floor: a report claiming fewer ms/token is judged at it and is not a sample.
    #[arg(long, env = "MORPHEUS_MIN_MS_PER_TOKEN", default_value_t = 1.0)]
    min_ms_per_token: f64,
    /// The speed ceiling: the most ms/token one report contributes to the reference.
    #[arg(long, env = "MORPHEUS_MAX_MS_PER_TOKEN", default_value_t = 10_000.0)]
    max_ms_per_token: f64,
    /// K: distinct users whose failures a provider's bad record needs.
    #[arg(long, env = "MORPHEUS_BAD_RECORD_USERS", default_value_t = 3)]
    bad_record_users: u32,
    /// Seconds an assignment is valid.
    #[arg(long, env = "MORPHEUS_ASSIGNMENT_LIFETIME", default_value_t = 300)]
    assignment_lifetime: u64,
    /// Skip the liveness challenge before assigning (for testing only).
    #[arg(long, env = "MORPHEUS_NO_LIVENESS")]
    no_liveness: bool,
    /// Seconds a provider has to answer a liveness challenge (the whole request).
    #[arg(long, env = "MORPHEUS_LIVENESS_TIMEOUT", default_value_t = 3)]
    liveness_timeout: u64,
    /// Seconds to wait for a provider to accept the connection.
    #[arg(long, env = "MORPHEUS_PROVIDER_CONNECT_TIMEOUT", default_value_t = 3)]
    provider_connect_timeout: u64,
    /// Seconds all the provider checks of one request may take together.
    #[arg(long, env = "MORPHEUS_LIVENESS_DEADLINE", default_value_t = 5)]
    liveness_deadline: u64,
    /// Providers checked at once, in selection order.
    #[arg(long, env = "MORPHEUS_LIVENESS_CONCURRENCY", default_value_t = 8)]
    liveness_concurrency: usize,
    /// Seconds a provider endpoint that failed a check is not contacted again (0: none).
    #[arg(long, env = "MORPHEUS_LIVENESS_COOLDOWN", default_value_t = 30)]
    liveness_cooldown: u64,
    /// Seconds a passed liveness proof stands for the same provider, endpoint and model (0:
    /// every assignment is challenged).
    #[arg(long, env = "MORPHEUS_LIVENESS_TTL", default_value_t = 0)]
    liveness_ttl: u64,
    /// Allow provider endpoints on loopback, private and other non-public addresses (a devnet).
    #[arg(long, env = "MORPHEUS_ALLOW_PRIVATE_ENDPOINTS")]
    allow_private_endpoints: bool,
    /// Seconds between rounds asking the providers of expired sessions for their receipts.
    #[arg(long, env = "MORPHEUS_SETTLE_INTERVAL", default_value_t = 10)]
    settle_interval: u64,
    /// Times a provider is asked for an expired session's receipt before the user's report
    /// alone settles what the session counts.
    #[arg(long, env = "MORPHEUS_RECEIPT_ATTEMPTS", default_value_t = 6)]
    receipt_attempts: u32,
    /// What a failed report does: "withhold" the session's credit always, or "by-stake": only
    /// when the user's stake exceeds the provider's (otherwise it is credited and counts
    /// against the provider's record).
    #[arg(long, env = "MORPHEUS_FAIL_POLICY", default_value_t = FailPolicy::Withhold)]
    fail_policy: FailPolicy,
    /// Seconds a request may wait for a place when every live provider of its model is at
    /// capacity (served in order of the user's stake, ties by arrival); then 503 with
    /// Retry-After. 0: refused at once.
    #[arg(long, env = "MORPHEUS_QUEUE_WAIT", default_value_t = 10)]
    queue_wait: u64,
    /// Requests that may wait at once, over all models; more are refused at once (503).
    #[arg(long, env = "MORPHEUS_QUEUE_MAX", default_value_t = 1024)]
    queue_max: usize,
    /// Requests a second per client address on the /v1 routes (0: no limit); more are refused
    /// 429 with Retry-After.
    #[arg(long, env = "MORPHEUS_IP_RATE", default_value_t = 500.0)]
    ip_rate: f64,
    /// Requests one client address may send at once before its rate applies.
    #[arg(long, env = "MORPHEUS_IP_BURST", default_value_t = 1000.0)]
    ip_burst: f64,
    /// Compute requests and reports a second per user (0: no limit).
    #[arg(long, env = "MORPHEUS_USER_RATE", default_value_t = 20.0)]
    user_rate: f64,
    /// Requests one user may send at once before its rate applies.
    #[arg(long, env = "MORPHEUS_USER_BURST", default_value_t = 200.0)]
    user_burst: f64,
    /// Behind a proxy: the header it writes the client's address into (e.g. X-Forwarded-For);
    /// its last entry is the client's address for the rate limit. Only when every request
    /// comes through the proxy.
    #[arg(long, env = "MORPHEUS_CLIENT_IP_HEADER")]
    client_ip_header: Option<String>,
}

#[tokio::main]
async fn main() -> eyre::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => serve(args).await,
    }
}

async fn serve(args: Serve) -> eyre::Result<()> {
    let deployment = Deployment::load(&args.deployment)
        .wrap_err_with(|| format!("reading {}", args.deployment.display()))?;
    let signer = args
        .router_key
        .trim()
        .parse::<PrivateKeySigner>()
        .wrap_err("--router-key is not a private key")?
        .with_chain_id(Some(deployment.chain_id));
    let mut config = RouterConfig::new(args.rpc_url, deployment, signer, args.db);
    config.slow_threshold_pct = args.slow_threshold_pct;
    config.report_window = args.report_window;
    config.min_ms_per_token = args.min_ms_per_token;
    config.max_ms_per_token = args.max_ms_per_token;
    config.bad_record_users = args.bad_record_users;
    config.assignment_lifetime = Duration::from_secs(args.assignment_lifetime);
    config.liveness = !args.no_liveness;
    config.liveness_timeout = Duration::from_secs(args.liveness_timeout);
    config.provider_connect_timeout = Duration::from_secs(args.provider_connect_timeout);
    config.liveness_deadline = Duration::from_secs(args.liveness_deadline);
    config.liveness_concurrency = args.liveness_concurrency;
    config.liveness_cooldown = Duration::from_secs(args.liveness_cooldown);
    config.liveness_ttl = Duration::from_secs(args.liveness_ttl);
    config.postgres_url = args.postgres;
    config.allow_private_endpoints = args.allow_private_endpoints;
    config.settle_interval = Duration::from_secs(args.settle_interval);
    config.receipt_attempts = args.receipt_attempts;
    config.fail_policy = args.fail_policy;
    config.queue_wait = Duration::from_secs(args.queue_wait);
    config.queue_max = args.queue_max;
    config.ip_rate_limit = RateLimit {
        per_second: args.ip_rate,
        burst: args.ip_burst,
    };
    config.user_rate_limit = RateLimit {
        per_second: args.user_rate,
        burst: args.user_burst,
    };
    config.client_ip_header = args
        .client_ip_header
        .as_deref()
        .map(axum::http::HeaderName::try_from)
        .transpose()
        .wrap_err("--client-ip-header is not a header name")?;
    let state = AppState::connect(config).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .wrap_err_with(|| format!("binding {}", args.listen))?;
    morpheus_router::run(listener, state, shutdown_signal()).await?;
    Ok(())
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what `kill`, systemd and container runtimes send),
/// after logging which; the server then lets running requests finish.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(target: "router", error = %e, "waiting for ctrl-c failed");
            std::future::pending::<()>().await;
        }
    };
    let signal = tokio::select! {
        () = ctrl_c => "SIGINT",
        () = terminate() => "SIGTERM",
    };
    tracing::info!(target: "router", signal, "shutting down");
}

#[cfg(unix)]
async fn terminate() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut sigterm) => {
            sigterm.recv().await;
        }
        Err(e) => {
            tracing::error!(target: "router", error = %e, "listening for SIGTERM failed");
            std::future::pending::<()>().await;
        }
    }
}

#[cfg(not(unix))]
async fn terminate() {
    std::future::pending::<()>().await;
}
