//! The command line: clap's types live here, the library takes plain options.

use std::{net::SocketAddr, path::PathBuf};

use alloy::primitives::{Address, B256};
use clap::{Args, Parser, Subcommand, ValueEnum};
use morpheus_worker::{
    bench::BenchOptions, kernels::Activations, model::prepare::Kernels, runtime::Device,
};

#[derive(Parser)]
#[command(
    name = "morpheus-worker",
    version,
    about = "Morpheus Compute provider node"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) cmd: Cmd,
}

#[derive(Subcommand)]
pub(crate) enum Cmd {
    /// Serve a prepared model over the OpenAI-compatible API.
    Serve(ServeArgs),
    /// Model directories.
    Model {
        #[command(subcommand)]
        cmd: ModelCmd,
    },
    /// Measure prompt and decode throughput, against llama.cpp on the same GGUF.
    Bench(BenchArgs),
    /// Claim what the routers owe this provider, in one transaction, when it is worth the gas
    /// (or at once with --now); prints what each router owes and what was paid.
    Claim(ClaimArgs),
    /// Run as a provider's node from a configuration file: make the chain match it (registered,
    /// model registered and claimed, bid at its price), serve, and claim automatically.
    Run(RunArgs),
    /// The provider's standing: stake, bids, what each router owes and has paid, today's
    /// budget and what is left of it, reputation, the last claim.
    Status(NodeArgs),
    /// Bids: set a new price and capacity, or delete one.
    Bid {
        #[command(subcommand)]
        cmd: BidCmd,
    },
    /// Delete every bid and deregister: the stake unlocks after the registry's cooldown.
    Deregister(NodeArgs),
    /// Withdraw the stake of a deregistered provider once it has unlocked.
    Withdraw(NodeArgs),
}

/// What the provider's commands act with: the node's configuration and its key.
#[derive(Args)]
pub(crate) struct NodeArgs {
    /// The node's configuration (`worker.toml`): the chain, the deployment, the routers.
    #[arg(long, env = "MORPHEUS_WORKER_CONFIG", default_value = "worker.toml")]
    pub(crate) config: PathBuf,
    /// The provider's private key (hex), unless the configuration names a keystore.
    #[arg(long, env = "MORPHEUS_PROVIDER_KEY", hide_env_values = true)]
    pub(crate) provider_key: Option<String>,
    /// Print JSON for scripts instead of lines for people.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
pub(crate) enum BidCmd {
    /// Set the bid's price and capacity (edit `worker.toml` too: `run` sets its own on start).
    Set {
        #[command(flatten)]
        node: NodeArgs,
        /// MOR (decimal) per token.
        #[arg(long)]
        price: String,
        /// Sessions at once.
        #[arg(long)]
        capacity: u64,
        /// The model bid for (default: the provider's only bid).
        #[arg(long)]
        model_id: Option<B256>,
    },
    /// Delete a bid.
    Delete {
        #[command(flatten)]
        node: NodeArgs,
        /// The model bid for (default: the provider's only bid).
        #[arg(long)]
        model_id: Option<B256>,
    },
}

#[derive(Args)]
pub(crate) struct RunArgs {
    /// The node's configuration (`worker.toml`; docs/worker.md lists its keys).
    #[arg(long, env = "MORPHEUS_WORKER_CONFIG", default_value = "worker.toml")]
    pub(crate) config: PathBuf,
    /// The provider's private key (hex), unless the configuration names a keystore. Prefer the
    /// environment variable: an argument shows in `ps`. Never logged.
    #[arg(long, env = "MORPHEUS_PROVIDER_KEY", hide_env_values = true)]
    pub(crate) provider_key: Option<String>,
}

#[derive(Args)]
pub(crate) struct ClaimArgs {
    /// JSON-RPC URL of the chain.
    #[arg(long, env = "MORPHEUS_RPC_URL")]
    pub(crate) rpc_url: String,
    /// The deployment's addresses (`deployments/<chain id>.json`).
    #[arg(long, env = "MORPHEUS_DEPLOYMENT")]
    pub(crate) deployment: PathBuf,
    /// The provider's private key (hex); it also pays the claim's gas. Prefer the environment
    /// variable: an argument shows in `ps`.
    #[arg(long, env = "MORPHEUS_PROVIDER_KEY", hide_env_values = true)]
    pub(crate) provider_key: String,
    /// A router's URL to ask for vouchers (repeat, or comma-separated).
    #[arg(
        long = "router-url",
        env = "MORPHEUS_ROUTER_URLS",
        value_delimiter = ',',
        required = true
    )]
    pub(crate) router_urls: Vec<String>,
    /// The worker's database (the same file as `serve --db`): each router's newest voucher is
    /// kept there before it is claimed, and each claim is journaled, so a crash at any point is
    /// finished by the next run and a router that is down is still claimed from.
    #[arg(long, env = "MORPHEUS_WORKER_DB")]
    pub(crate) db: Option<PathBuf>,
    /// Claim whatever is owed now, whatever the gas.
    #[arg(long)]
    pub(crate) now: bool,
    /// Claim once what is owed is at least this many times the claim's gas cost in MOR.
    #[arg(long, default_value_t = 10)]
    pub(crate) gas_multiple: u64,
    /// Claim anything owed once the oldest credit is this many hours old.
    #[arg(long, default_value_t = 24)]
    pub(crate) max_age_hours: u64,
    /// Never claim at a gas price above this many gwei.
    #[arg(long, default_value_t = 100)]
    pub(crate) max_gas_gwei: u64,
    /// The price of 1 ETH in MOR, to price the gas (decimal, e.g. 1000).
    #[arg(long, default_value = "1000")]
    pub(crate) mor_per_eth: String,
    /// Print JSON for scripts instead of lines for people.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Subcommand)]
pub(crate) enum ModelCmd {
    /// Convert a GGUF (`smollm2`, `tiny`, or a path) into a model directory (cached).
    Prepare {
        /// `smollm2`, `tiny` (the fixed-seed test model; `tiny-mixed`, `tiny-llama3`,
        /// `tiny-qwen2`, `tiny-qwen3`, `tiny-gemma3` its variants) or a path to a .gguf file.
        source: String,
        /// Output directory (default: models/<source>).
        #[arg(long)]
        out: Option<PathBuf>,
        /// Python interpreter with worker/python/requirements.txt installed (default:
        /// `.venv/bin/python` in the current directory or a parent, else `python3`).
        #[arg(long, env = "MORPHEUS_PYTHON")]
        python: Option<PathBuf>,
        /// Directory holding the converter's `morpheus_model` package (default: the copy
        /// built into this binary).
        #[arg(long, env = "MORPHEUS_PYTHON_DIR")]
        python_dir: Option<PathBuf>,
        /// Convert again even if up to date.
        #[arg(long)]
        force: bool,
        /// Operators for the quantised matmuls: `morpheus` (this worker's CPU kernels over the
        /// GGUF's own blocks, fastest on CPU) or `onnxruntime` (any ONNX Runtime, CUDA included).
        #[arg(long, value_enum, default_value_t)]
        kernels: KernelsArg,
    },
    /// Write the logits after every token of a sequence (then greedy tokens), on the CPU: for
    /// checking a model against a reference (`python -m morpheus_model verify` uses it).
    Logits(LogitsArgs),
    /// Time one matmul per GGML block format on each kernel implementation this CPU runs (one
    /// thread, random blocks): milliseconds and weight GB/s.
    Kernels {
        /// Output rows of the weight.
        #[arg(long, default_value_t = 2048)]
        n: usize,
        /// Inputs of the weight (a multiple of 256).
        #[arg(long, default_value_t = 2048)]
        k: usize,
        /// Activation rows to time (1: one decoding stream).
        #[arg(long, value_delimiter = ',', default_value = "1,4")]
        rows: Vec<usize>,
        /// Rounds; the best is reported.
        #[arg(long, default_value_t = 3)]
        repeats: usize,
        /// Formats to time (`q4_k,q8_0`, ...); every format when left out.
        #[arg(long, value_delimiter = ',')]
        formats: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
pub(crate) struct LogitsArgs {
    /// Model directory.
    #[arg(long)]
    pub(crate) model: PathBuf,
    /// Token ids to run, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub(crate) tokens: Vec<u32>,
    /// Greedy tokens to add after them.
    #[arg(long, default_value_t = 0)]
    pub(crate) generate: usize,
    /// Write the logits here: rows of vocab-size little-endian f32, one per token run.
    #[arg(long)]
    pub(crate) out: PathBuf,
    /// ONNX Runtime shared library (default: ORT_DYLIB_PATH, else found in .venv).
    #[arg(long)]
    pub(crate) ort_lib: Option<PathBuf>,
    /// ONNX Runtime intra-op threads.
    #[arg(long, default_value_t = 2)]
    pub(crate) threads: usize,
    /// Activation quantisation of the worker's own CPU kernels.
    #[arg(long, value_enum, default_value_t)]
    pub(crate) activations: ActivationsArg,
}

#[derive(Args)]
pub(crate) struct EngineArgs {
    /// Model directory (model.onnx, tokenizer.json, morpheus.json).
    #[arg(long, env = "MORPHEUS_MODEL", default_value = "models/smollm2")]
    pub(crate) model: PathBuf,
    /// ONNX Runtime shared library (default: ORT_DYLIB_PATH, else found in .venv).
    #[arg(long)]
    pub(crate) ort_lib: Option<PathBuf>,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub(crate) device: DeviceArg,
    /// ONNX Runtime intra-op threads (default: all cores).
    #[arg(long)]
    pub(crate) threads: Option<usize>,
    /// Most sequences decoded together.
    #[arg(long, default_value_t = 16)]
    pub(crate) max_batch: usize,
    /// Longest sequence (prompt + completion).
    #[arg(long, default_value_t = 2048)]
    pub(crate) max_context: usize,
    /// Activation quantisation of the worker's own CPU kernels: `int8x2` (two stages: logits as
    /// a float pass of the GGUF's weights) or `int8` (one stage, as llama.cpp: fastest).
    #[arg(long, value_enum, default_value_t)]
    pub(crate) activations: ActivationsArg,
    /// Do not keep finished sequences' caches for prompts that start the same way (the prefix
    /// cache makes a conversation's next turn and a shared system prompt nearly free, and lets
    /// a request's timing hint whether another request began the same way).
    #[arg(long)]
    pub(crate) no_prefix_cache: bool,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub(crate) engine: EngineArgs,
    /// Address to listen on.
    #[arg(long, env = "MORPHEUS_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: SocketAddr,
    /// Provider private key (hex).
    #[arg(long, env = "MORPHEUS_PROVIDER_KEY", hide_env_values = true)]
    pub(crate) provider_key: String,
    /// Chain id of the protocol's EIP-712 domain.
    #[arg(long, env = "MORPHEUS_CHAIN_ID")]
    pub(crate) chain_id: u64,
    /// SessionRouter address (the domain's verifying contract).
    #[arg(long, env = "MORPHEUS_SESSION_ROUTER")]
    pub(crate) session_router: Address,
    /// Authorised router signer (repeat, or comma-separated).
    #[arg(
        long = "router",
        env = "MORPHEUS_ROUTERS",
        value_delimiter = ',',
        required = true
    )]
    pub(crate) routers: Vec<Address>,
    /// Registered model id served (bytes32); when set, assignments must name it.
    #[arg(long, env = "MORPHEUS_MODEL_ID")]
    pub(crate) model_id: Option<B256>,
    /// JSON-RPC URL of the chain: the routers are then checked on-chain, and one the
    /// SessionRouter owner removed is no longer honoured.
    #[arg(long, env = "MORPHEUS_RPC_URL")]
    pub(crate) rpc_url: Option<String>,
    /// Seconds between on-chain checks of the routers (with --rpc-url).
    #[arg(long, env = "MORPHEUS_ROUTER_REFRESH", default_value_t = 30)]
    pub(crate) router_refresh: u64,
    /// The worker's database: each session's token count survives a restart (or a crash), so
    /// no assignment is served beyond its tokenMax. Without it the counts are kept in memory.
    #[arg(long, env = "MORPHEUS_WORKER_DB")]
    pub(crate) db: Option<PathBuf>,
    /// Requests waiting beyond the batch before new ones are refused (503).
    #[arg(long, default_value_t = 256)]
    pub(crate) max_queue: usize,
}

#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Prepared model directory.
    #[arg(long, default_value = "models/smollm2")]
    model: PathBuf,
    /// The GGUF it was prepared from, for llama.cpp (`smollm2` or a path); omit to skip llama.cpp.
    #[arg(long)]
    gguf: Option<String>,
    /// Threads for both engines.
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Prompt length for the prompt-throughput test.
    #[arg(long, default_value_t = 256)]
    prompt_tokens: usize,
    /// Prompt length of each stream in the decode tests.
    #[arg(long, default_value_t = 32)]
    stream_prompt_tokens: usize,
    /// Tokens generated per stream.
    #[arg(long, default_value_t = 64)]
    gen_tokens: u32,
    /// Concurrent stream counts to test.
    #[arg(long, value_delimiter = ',', default_value = "1,4,16")]
    streams: Vec<usize>,
    /// ONNX Runtime shared library (default: ORT_DYLIB_PATH, else found in .venv).
    #[arg(long)]
    ort_lib: Option<PathBuf>,
    /// Rounds of each measurement; the best is reported (for both engines).
    #[arg(long, default_value_t = 3)]
    repeats: usize,
    /// Python interpreter for the llama.cpp side.
    #[arg(long, env = "MORPHEUS_PYTHON")]
    python: Option<PathBuf>,
    /// Python interpreter whose `llama_cpp` runs the llama.cpp side, when it is not `--python`'s
    /// (`make bench-avx2`: a llama.cpp built for AVX2 only).
    #[arg(long)]
    llama_python: Option<PathBuf>,
    /// Directory holding `llama_cpp_bench.py` and `morpheus_model` (default: the copies built
    /// into this binary).
    #[arg(long, env = "MORPHEUS_PYTHON_DIR")]
    python_dir: Option<PathBuf>,
    /// Write the results here as JSON too.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Activation modes of the worker's kernels to measure (each against the same llama.cpp run).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "int8x2,int8")]
    activations: Vec<ActivationsArg>,
}

impl From<BenchArgs> for BenchOptions {
    fn from(a: BenchArgs) -> Self {
        Self {
            model: a.model,
            gguf: a.gguf,
            threads: a.threads,
            prompt_tokens: a.prompt_tokens,
            stream_prompt_tokens: a.stream_prompt_tokens,
            gen_tokens: a.gen_tokens,
            streams: a.streams,
            ort_lib: a.ort_lib,
            repeats: a.repeats,
            python: a.python,
            llama_python: a.llama_python,
            python_dir: a.python_dir,
            json: a.json,
            activations: a.activations.into_iter().map(Into::into).collect(),
        }
    }
}

/// `--device`: where to run.
#[derive(Clone, Copy, Default, ValueEnum)]
pub(crate) enum DeviceArg {
    /// CUDA when this ONNX Runtime build and the machine have it, else CPU.
    #[default]
    Auto,
    /// CPU only.
    Cpu,
    /// CUDA, falling back to CPU with a warning when unavailable.
    Cuda,
}

impl From<DeviceArg> for Device {
    fn from(d: DeviceArg) -> Self {
        match d {
            DeviceArg::Auto => Self::Auto,
            DeviceArg::Cpu => Self::Cpu,
            DeviceArg::Cuda => Self::Cuda,
        }
    }
}

/// `--kernels`: operators for the quantised matmuls.
#[derive(Clone, Copy, Default, ValueEnum)]
pub(crate) enum KernelsArg {
    /// This worker's CPU kernels over the GGUF's own blocks (fastest on CPU).
    #[default]
    Morpheus,
    /// ONNX Runtime's `MatMulNBits` only (any ONNX Runtime, CUDA included).
    Onnxruntime,
}

impl From<KernelsArg> for Kernels {
    fn from(k: KernelsArg) -> Self {
        match k {
            KernelsArg::Morpheus => Self::Morpheus,
            KernelsArg::Onnxruntime => Self::Onnxruntime,
        }
    }
}

/// `--activations`: activation quantisation of the worker's own CPU kernels.
#[derive(Clone, Copy, Default, ValueEnum)]
pub(crate) enum ActivationsArg {
    /// Two int8 stages per block: logits within ~0.01 of a float pass of the GGUF's weights.
    #[default]
    Int8x2,
    /// One int8 stage per block, as llama.cpp: fastest, logits within ~2.
    Int8,
}

impl From<ActivationsArg> for Activations {
    fn from(a: ActivationsArg) -> Self {
        match a {
            ActivationsArg::Int8x2 => Self::Int8x2,
            ActivationsArg::Int8 => Self::Int8,
        }
    }
}
