//! One in-process `morpheus-worker` for every crate's tests: the real engine on ONNX Runtime, the
//! real HTTP API on `127.0.0.1:0`, trusting one router key.

use std::{path::PathBuf, time::Duration};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
};
use morpheus_sdk::{
    messages::{Assignment, Signed, protocol_domain},
    provider::ProviderClient,
};
use morpheus_worker::{
    ProtocolConfig,
    api::{self, AppState},
    engine::{Engine, EngineConfig},
    kernels::Activations,
    runtime::Device,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

use crate::{Result, ids::unique_b256, models::tiny_model, setup, unix_now};

/// How to start a [`TestWorker`]. `Default` is the tiny model, a batch of 4, a random provider
/// key, a random trusted router key and a placeholder domain (chain 31337).
#[derive(Debug)]
pub struct WorkerOptions {
    /// Prepared model directory; the kit's tiny model when `None` (prepared only then).
    pub model: Option<PathBuf>,
    /// Most sequences decoded together.
    pub max_batch: usize,
    /// Requests waiting beyond the batch before refusals.
    pub max_queue: usize,
    /// Longest sequence.
    pub max_context: usize,
    /// ONNX Runtime intra-op threads.
    pub threads: usize,
    /// Activation quantisation of the worker's kernels.
    pub activations: Activations,
    /// Reuse the cache of prompts' shared prefixes (the engine's default: on).
    pub prefix_cache: bool,
    /// The provider's key.
    pub provider: PrivateKeySigner,
    /// The router key whose assignments it honours ([`TestWorker::assignment`] signs with it).
    pub router: PrivateKeySigner,
    /// More router signers it honours.
    pub also_trust: Vec<Address>,
    /// Chain id of the EIP-712 domain.
    pub chain_id: u64,
    /// `SessionRouter` address of the domain.
    pub session_router: Address,
    /// The model id assignments must name.
    pub model_id: B256,
    /// Where to listen; a fresh `127.0.0.1:0` when `None` (pass one to register its address
    /// on-chain before the worker starts).
    pub listener: Option<TcpListener>,
    /// JSON-RPC URL of the devnet: when set, the worker checks its router on-chain (every
    /// 500 ms here) and stops honouring it once removed.
    pub rpc_url: Option<String>,
    /// The worker's database (sessions' counts); in memory when `None`. Pass a file to start a
    /// second worker where a first one stopped.
    pub db: Option<PathBuf>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        Self {
            model: None,
            max_batch: 4,
            max_queue: 16,
            max_context: 4096,
            threads: 2,
            activations: Activations::default(),
            prefix_cache: true,
            provider: PrivateKeySigner::random(),
            router: PrivateKeySigner::random(),
            also_trust: Vec::new(),
            chain_id: 31337,
            session_router: Address::repeat_byte(0x11),
            model_id: B256::repeat_byte(0x42),
            listener: None,
            rpc_url: None,
            db: None,
        }
    }
}

/// A worker serving until [`TestWorker::stop`].
#[derive(Debug)]
pub struct TestWorker {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    /// The trusted router key.
    pub router: PrivateKeySigner,
    /// The provider's address.
    pub provider: Address,
    /// The model id it serves.
    pub model_id: B256,
    /// The protocol's EIP-712 domain it checks signatures in.
    pub domain: Eip712Domain,
    /// Its engine (to check it refuses work after shutdown).
    pub engine: Engine,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<morpheus_worker::Result<()>>>,
}

impl TestWorker {
    /// Starts a worker with the default options.
    pub async fn start() -> Self {
        Self::with(WorkerOptions::default()).await
    }

    /// Starts a worker; panics with the reason when it cannot (a test that needs it cannot run).
    pub async fn with(opts: WorkerOptions) -> Self {
        Self::try_with(opts)
            .await
            .unwrap_or_else(|e| panic!("the test worker did not start: {e}"))
    }

    async fn try_with(opts: WorkerOptions) -> Result<Self> {
        let env = setup::ort_environment()?;
        let cfg = EngineConfig {
            max_batch: opts.max_batch,
            max_context: opts.max_context,
            threads: opts.threads,
            device: Device::Cpu,
            max_queue: opts.max_queue,
            activations: opts.activations,
            prefix_cache: opts.prefix_cache,
            ..Default::default()
        };
        let protocol = ProtocolConfig {
            signer: opts.provider.clone(),
            chain_id: opts.chain_id,
            session_router: opts.session_router,
            routers: std::iter::once(opts.router.address())
                .chain(opts.also_trust.iter().copied())
                .collect(),
            model_id: Some(opts.model_id),
            rpc_url: opts.rpc_url.clone(),
            router_refresh: Duration::from_millis(500),
            db: opts.db.clone(),
        };
        let listener = match opts.listener {
            Some(l) => l,
            None => TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|e| crate::Error::io("127.0.0.1:0", e))?,
        };
        let addr = listener
            .local_addr()
            .map_err(|e| crate::Error::io("listener", e))?;
        let model = opts.model.clone().unwrap_or_else(tiny_model);
        let state =
            tokio::task::spawn_blocking(move || AppState::load(&env, &model, &cfg, protocol))
                .await
                .map_err(|e| crate::Error::Setup(e.to_string()))??;
        let engine = state.engine().clone();
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(api::run(listener, state, async {
            let _ = rx.await;
        }));
        Ok(Self {
            url: format!("http://{addr}"),
            router: opts.router,
            provider: opts.provider.address(),
            model_id: opts.model_id,
            domain: protocol_domain(opts.chain_id, opts.session_router),
            engine,
            shutdown: Some(tx),
            handle: Some(handle),
        })
    }

    /// A client for its OpenAI-compatible API.
    pub fn client(&self) -> ProviderClient {
        ProviderClient::new(&self.url).expect("a valid URL")
    }

    /// An assignment for this worker worth `token_max` tokens, signed by the trusted router.
    pub fn assignment(&self, token_max: u64) -> Signed<Assignment> {
        self.assignment_with(|_| {}, token_max)
    }

    /// The same, edited before signing (to make it wrong in one way).
    pub fn assignment_with(
        &self,
        edit: impl FnOnce(&mut Assignment),
        token_max: u64,
    ) -> Signed<Assignment> {
        let mut a = Assignment {
            sessionId: unique_b256(),
            provider: self.provider,
            endpoint: self.url.clone(),
            modelId: self.model_id,
            tokenMax: U256::from(token_max),
            pricePerToken: U256::from(1),
            expiresAt: U256::from(unix_now() + 600),
        };
        edit(&mut a);
        Signed::sign(a, &self.domain, &self.router).expect("signing with a local key")
    }

    /// Its Prometheus metrics page.
    pub async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.url);
        reqwest::get(&url)
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {url}: {e}"))
    }

    /// The value of the metric line starting with `name ` (e.g. a counter), if present.
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let prefix = format!("{name} ");
        self.metrics()
            .await
            .lines()
            .find_map(|l| l.strip_prefix(&prefix).and_then(|v| v.parse().ok()))
    }

    /// Polls the metrics until `line` appears; panics with the page after five seconds.
    pub async fn wait_for_metric(&self, line: &str) {
        for _ in 0..500 {
            if self.metrics().await.lines().any(|l| l == line) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("metric `{line}` never appeared:\n{}", self.metrics().await);
    }

    /// Stops taking requests, lets running ones finish and stops the engine; panics when the
    /// server ended with an error.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await
                .expect("the worker task ran to its end")
                .expect("the worker ended cleanly");
        }
    }
}
