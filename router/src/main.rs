//! `morpheus-router`: the router service of Morpheus Compute.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::signers::{Signer, local::PrivateKeySigner};
use clap::{Parser, Subcommand};
use eyre::WrapErr;
use morpheus_router::{AppState, RouterConfig};
use morpheus_sdk::Deployment;
use tracing_subscriber::EnvFilter;

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
    /// SQLite database file.
    #[arg(long, env = "MORPHEUS_DB", default_value = "morpheus-router.db")]
    db: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "MORPHEUS_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,
    /// X: percent above the model's recent mean ms/token beyond which a report earns nothing.
    #[arg(long, env = "MORPHEUS_SLOW_THRESHOLD_PCT", default_value_t = 50)]
    slow_threshold_pct: u32,
    /// Z: recent reports the speed mean and provider records look at.
    #[arg(long, env = "MORPHEUS_REPORT_WINDOW", default_value_t = 20)]
    report_window: u32,
    /// Seconds an assignment is valid.
    #[arg(long, env = "MORPHEUS_ASSIGNMENT_LIFETIME", default_value_t = 300)]
    assignment_lifetime: u64,
    /// Skip the liveness challenge before assigning (for testing only).
    #[arg(long, env = "MORPHEUS_NO_LIVENESS")]
    no_liveness: bool,
    /// Seconds a provider has to answer a liveness challenge (the whole request).
    #[arg(long, env = "MORPHEUS_LIVENESS_TIMEOUT", default_value_t = 10)]
    liveness_timeout: u64,
    /// Seconds to wait for a provider to accept the connection.
    #[arg(long, env = "MORPHEUS_PROVIDER_CONNECT_TIMEOUT", default_value_t = 3)]
    provider_connect_timeout: u64,
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
    config.assignment_lifetime = Duration::from_secs(args.assignment_lifetime);
    config.liveness = !args.no_liveness;
    config.liveness_timeout = Duration::from_secs(args.liveness_timeout);
    config.provider_connect_timeout = Duration::from_secs(args.provider_connect_timeout);
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
