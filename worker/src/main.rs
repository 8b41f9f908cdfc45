//! `morpheus-worker`: serve a model, prepare one, or benchmark the engine.

mod claim_cmd;
mod cli;
mod provider_cmd;
mod run_cmd;

use std::{collections::HashSet, path::PathBuf, sync::Arc};

use alloy::signers::local::PrivateKeySigner;
use clap::Parser;
use eyre::{Context, Result};
use morpheus_worker::{
    ProtocolConfig,
    api::{self, AppState},
    bench,
    engine::{self, EngineConfig},
    model::prepare::{self, PrepareOptions},
    runtime::{self, Device},
};

use crate::cli::{Cli, Cmd, EngineArgs, LogitsArgs, ModelCmd, ServeArgs};

impl EngineArgs {
    fn config(&self, max_queue: usize) -> EngineConfig {
        let mut cfg = EngineConfig {
            max_batch: self.max_batch,
            max_context: self.max_context,
            device: self.device.into(),
            max_queue,
            activations: self.activations.into(),
            prefix_cache: !self.no_prefix_cache,
            ..Default::default()
        };
        if let Some(t) = self.threads {
            cfg.threads = t;
        }
        cfg
    }

    fn environment(&self) -> Result<Arc<ort::environment::Environment>> {
        let lib = match &self.ort_lib {
            Some(p) => p.clone(),
            None => runtime::ort_library(&std::env::current_dir()?)?,
        };
        Ok(runtime::environment(&lib)?)
    }
}

use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> Result<()> {
    // The log goes to stderr: stdout is for what a command prints (`claim --json`).
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().cmd {
        Cmd::Serve(args) => serve(args).await,
        Cmd::Model {
            cmd:
                ModelCmd::Prepare {
                    source,
                    out,
                    python,
                    python_dir,
                    force,
                    kernels,
                },
        } => {
            let out = out.unwrap_or_else(|| {
                let name = std::path::Path::new(&source)
                    .file_stem()
                    .map_or(source.clone(), |s| s.to_string_lossy().into());
                PathBuf::from("models").join(name)
            });
            let meta = tokio::task::spawn_blocking(move || {
                prepare::prepare(&PrepareOptions {
                    source,
                    out,
                    python,
                    python_dir,
                    force,
                    kernels: kernels.into(),
                })
            })
            .await??;
            // What to register the model by: the published weights, whatever this build's kernels.
            tracing::info!(
                model = %meta.name,
                weights = %meta.weights_file(),
                format = %meta.weights_format(),
                merkle_root = ?meta.merkle_root,
                "model ready"
            );
            Ok(())
        }
        Cmd::Model {
            cmd: ModelCmd::Logits(args),
        } => tokio::task::spawn_blocking(move || logits(&args)).await?,
        Cmd::Model {
            cmd:
                ModelCmd::Kernels {
                    n,
                    k,
                    rows,
                    repeats,
                    formats,
                    json,
                },
        } => {
            let timings = tokio::task::spawn_blocking(move || {
                morpheus_worker::kernels::bench::run(n, k, &rows, &formats, repeats)
            })
            .await?
            .map_err(|e| eyre::eyre!(e))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&timings)?);
            } else {
                println!(
                    "BlockMatMul, {n} x {k}, one thread, two-stage activations (best of {repeats})"
                );
                println!(
                    "{:<6} {:<9} {:>4} {:>9} {:>8}",
                    "format", "isa", "rows", "ms", "GB/s"
                );
                for t in &timings {
                    println!(
                        "{:<6} {:<9} {:>4} {:>9.3} {:>8.1}",
                        t.format, t.isa, t.rows, t.ms, t.gb_per_s
                    );
                }
            }
            Ok(())
        }
        Cmd::Bench(args) => tokio::task::spawn_blocking(move || bench::run(&args.into()))
            .await?
            .map_err(Into::into),
        Cmd::Claim(args) => claim_cmd::run(args).await,
        Cmd::Run(args) => run_cmd::run(args).await,
        Cmd::Status(args) => provider_cmd::status(args).await,
        Cmd::Bid { cmd } => provider_cmd::bid(cmd).await,
        Cmd::Deregister(args) => provider_cmd::deregister(args).await,
        Cmd::Withdraw(args) => provider_cmd::withdraw(args).await,
    }
}

async fn serve(args: ServeArgs) -> Result<()> {
    let signer: PrivateKeySigner = args
        .provider_key
        .trim()
        .parse()
        .wrap_err("invalid --provider-key")?;
    let protocol = ProtocolConfig {
        signer,
        chain_id: args.chain_id,
        session_router: args.session_router,
        routers: args.routers.iter().copied().collect::<HashSet<_>>(),
        model_id: args.model_id,
        rpc_url: args.rpc_url.clone(),
        router_refresh: std::time::Duration::from_secs(args.router_refresh.max(1)),
        db: args.db.clone(),
    };
    let env = args.engine.environment()?;
    let (model_dir, cfg) = (
        args.engine.model.clone(),
        args.engine.config(args.max_queue),
    );
    let state =
        tokio::task::spawn_blocking(move || AppState::load(&env, &model_dir, &cfg, protocol))
            .await??;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .wrap_err_with(|| format!("cannot listen on {}", args.listen))?;
    api::run(listener, state, shutdown_signal()).await?;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing running requests");
}

fn logits(args: &LogitsArgs) -> Result<()> {
    let lib = match &args.ort_lib {
        Some(p) => p.clone(),
        None => runtime::ort_library(&std::env::current_dir()?)?,
    };
    let env = runtime::environment(&lib)?;
    let cfg = EngineConfig {
        threads: args.threads,
        device: Device::Cpu,
        activations: args.activations.into(),
        ..Default::default()
    };
    let found = engine::sequence_logits(&env, &args.model, &cfg, &args.tokens, args.generate)?;
    let bytes: Vec<u8> = found.logits.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&args.out, bytes)?;
    let rows = found.logits.len() / found.vocab;
    println!(
        "{}",
        serde_json::json!({ "generated": found.generated, "rows": rows, "vocab": found.vocab })
    );
    Ok(())
}
