//! `morpheus-worker`: serve a model, prepare one, or benchmark the engine.

use std::{collections::HashSet, net::SocketAddr, path::PathBuf, sync::Arc};

use alloy::{
    primitives::{Address, B256},
    signers::local::PrivateKeySigner,
};
use clap::{Args, Parser, Subcommand};
use eyre::{Context, Result};
use morpheus_worker::{
    ProtocolConfig,
    api::{self, AppState},
    bench,
    engine::{self, EngineConfig},
    model::prepare::{self, PrepareOptions},
    runtime::{self, Device},
};
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(
    name = "morpheus-worker",
    version,
    about = "Morpheus Compute provider node"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve a prepared model over the OpenAI-compatible API.
    Serve(ServeArgs),
    /// Model directories.
    Model {
        #[command(subcommand)]
        cmd: ModelCmd,
    },
    /// Measure prompt and decode throughput, against llama.cpp on the same GGUF.
    Bench(bench::BenchArgs),
}

#[derive(Subcommand)]
enum ModelCmd {
    /// Convert a GGUF (`smollm2`, `tiny`, or a path) into a model directory (cached).
    Prepare {
        /// `smollm2`, `tiny` (the fixed-seed test model) or a path to a .gguf file.
        source: String,
        /// Output directory (default: models/<source>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Python interpreter with worker/python/requirements.txt installed.
        #[arg(long, env = "MORPHEUS_PYTHON")]
        python: Option<PathBuf>,
        /// Convert again even if up to date.
        #[arg(long)]
        force: bool,
        /// Operators for the quantised matmuls: `morpheus` (this worker's CPU kernels over the
        /// GGUF's own blocks, fastest on CPU) or `onnxruntime` (any ONNX Runtime, CUDA included).
        #[arg(long, value_enum, default_value_t)]
        kernels: prepare::Kernels,
    },
    /// Write the logits after every token of a sequence (then greedy tokens), on the CPU: for
    /// checking a model against a reference (`python -m morpheus_model verify` uses it).
    Logits(LogitsArgs),
}

#[derive(Args)]
struct LogitsArgs {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// Token ids to run, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    tokens: Vec<u32>,
    /// Greedy tokens to add after them.
    #[arg(long, default_value_t = 0)]
    generate: usize,
    /// Write the logits here: rows of vocab-size little-endian f32, one per token run.
    #[arg(long)]
    out: PathBuf,
    /// ONNX Runtime shared library (default: ORT_DYLIB_PATH, else found in .venv).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Activation quantisation of the worker's own CPU kernels.
    #[arg(long, value_enum, default_value_t)]
    activations: morpheus_worker::kernels::Activations,
}

#[derive(Args)]
struct EngineArgs {
    /// Model directory (model.onnx, tokenizer.json, morpheus.json).
    #[arg(long, env = "MORPHEUS_MODEL", default_value = "models/smollm2")]
    model: PathBuf,
    /// ONNX Runtime shared library (default: ORT_DYLIB_PATH, else found in .venv).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = Device::Auto)]
    device: Device,
    /// ONNX Runtime intra-op threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Most sequences decoded together.
    #[arg(long, default_value_t = 16)]
    max_batch: usize,
    /// Longest sequence (prompt + completion).
    #[arg(long, default_value_t = 2048)]
    max_context: usize,
    /// Activation quantisation of the worker's own CPU kernels: `int8x2` (two stages: logits as
    /// a float pass of the GGUF's weights) or `int8` (one stage, as llama.cpp: fastest).
    #[arg(long, value_enum, default_value_t)]
    activations: morpheus_worker::kernels::Activations,
}

#[derive(Args)]
struct ServeArgs {
    #[command(flatten)]
    engine: EngineArgs,
    /// Address to listen on.
    #[arg(long, env = "MORPHEUS_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Provider private key (hex).
    #[arg(long, env = "MORPHEUS_PROVIDER_KEY", hide_env_values = true)]
    provider_key: String,
    /// Chain id of the protocol's EIP-712 domain.
    #[arg(long, env = "MORPHEUS_CHAIN_ID")]
    chain_id: u64,
    /// SessionRouter address (the domain's verifying contract).
    #[arg(long, env = "MORPHEUS_SESSION_ROUTER")]
    session_router: Address,
    /// Authorised router signer (repeat, or comma-separated).
    #[arg(
        long = "router",
        env = "MORPHEUS_ROUTERS",
        value_delimiter = ',',
        required = true
    )]
    routers: Vec<Address>,
    /// Registered model id served (bytes32); when set, assignments must name it.
    #[arg(long, env = "MORPHEUS_MODEL_ID")]
    model_id: Option<B256>,
    /// Requests waiting beyond the batch before new ones are refused (503).
    #[arg(long, default_value_t = 256)]
    max_queue: usize,
}

impl EngineArgs {
    fn config(&self, max_queue: usize) -> EngineConfig {
        let mut cfg = EngineConfig {
            max_batch: self.max_batch,
            max_context: self.max_context,
            device: self.device,
            max_queue,
            activations: self.activations,
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

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    match Cli::parse().cmd {
        Cmd::Serve(args) => serve(args).await,
        Cmd::Model {
            cmd:
                ModelCmd::Prepare {
                    source,
                    out,
                    python,
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
                    force,
                    kernels,
                })
            })
            .await??;
            tracing::info!(model = %meta.name, merkle_root = ?meta.merkle_root, "model ready");
            Ok(())
        }
        Cmd::Model {
            cmd: ModelCmd::Logits(args),
        } => tokio::task::spawn_blocking(move || logits(&args)).await?,
        Cmd::Bench(args) => tokio::task::spawn_blocking(move || bench::run(&args))
            .await?
            .map_err(Into::into),
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
        activations: args.activations,
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
