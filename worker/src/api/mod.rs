//! The HTTP API: OpenAI-compatible chat and text completions, the model list, the router's
//! liveness check, session receipts and metrics.

mod auth;
mod call_stream;
mod chat;
mod completions;
mod error;
mod generate;
mod liveness;
mod models;
mod receipt;
mod routers;
mod several;
mod tool_chunks;
mod tools;

use std::{future::Future, path::Path, sync::Arc};

use alloy::signers::local::Secp256k1Signer;
use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    routing::{get, post},
};
pub use error::ApiError;
use morpheus_sdk::merkle::{ModelTree, PieceIndex};
use ort::environment::Environment;
use tokio::net::TcpListener;
use tracing::{info, warn};

use crate::{
    Error, ProtocolConfig, Result,
    engine::{Engine, EngineConfig},
    metrics::Metrics,
    model::{ModelDir, prepare},
    store::Store,
};

/// Largest request body accepted (bigger ones get 413).
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// Everything the handlers share.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

struct Shared {
    engine: Engine,
    model: Arc<ModelDir>,
    protocol: ProtocolConfig,
    /// The provider's key signing through libsecp256k1 (several times k256's speed, the same
    /// signatures): a liveness answer and every receipt request are signed with it.
    signer: Secp256k1Signer,
    auth: auth::Auth,
    tree: ModelTree,
    /// Proves a liveness answer's piece from one 64 KiB read (`merkle::PieceIndex`).
    pieces: PieceIndex,
    metrics: Arc<Metrics>,
    created: u64,
}

impl AppState {
    /// Opens the prepared model in `model_dir`, hashes its weights file's Merkle tree (for
    /// liveness answers),
    /// starts the engine and returns the state to serve it with. Blocking: hashing and loading
    /// take a second or more, so async callers run it on a blocking thread.
    pub fn load(
        env: &Arc<Environment>,
        model_dir: &Path,
        cfg: &EngineConfig,
        protocol: ProtocolConfig,
    ) -> Result<Self> {
        let model = Arc::new(ModelDir::open(model_dir)?);
        let hashed = prepare::model_tree(&model.weights_path())?;
        Self::load_hashed(env, model, hashed, cfg, protocol)
    }

    /// As [`load`](Self::load), for a model whose weights file the caller already hashed
    /// (`morpheus-worker run` registers the model by its root before it serves).
    pub fn load_hashed(
        env: &Arc<Environment>,
        model: Arc<ModelDir>,
        (tree, pieces): (ModelTree, PieceIndex),
        cfg: &EngineConfig,
        protocol: ProtocolConfig,
    ) -> Result<Self> {
        if let Some(root) = &model.meta.merkle_root
            && *root != tree.root().to_string()
        {
            warn!(target: "worker", file = %model.meta.weights_file(), recorded = %root, actual = %tree.root(), "the weights file differs from the Merkle root in morpheus.json");
        }
        Self::load_sharing(
            env,
            model,
            (tree, pieces),
            cfg,
            protocol,
            Arc::new(Metrics::new()),
        )
    }

    /// As [`load_hashed`](Self::load_hashed), counting into `metrics`: one of several models
    /// served behind one endpoint ([`run_several`]), whose figures are the node's together.
    pub fn load_sharing(
        env: &Arc<Environment>,
        model: Arc<ModelDir>,
        (tree, pieces): (ModelTree, PieceIndex),
        cfg: &EngineConfig,
        protocol: ProtocolConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Self> {
        let store = match &protocol.db {
            Some(path) => Store::open(path)?,
            None => Store::in_memory()?,
        };
        let engine = Engine::start(env, &model, cfg, metrics.clone())?;
        Self::new(engine, model, protocol, (tree, pieces), metrics, store)
    }

    /// State for serving `model` through `engine`; `tree` is the Merkle tree of its weights
    /// file with its piece index ([`PieceIndex::from_file`]).
    pub fn new(
        engine: Engine,
        model: Arc<ModelDir>,
        protocol: ProtocolConfig,
        (tree, pieces): (ModelTree, PieceIndex),
        metrics: Arc<Metrics>,
        store: Store,
    ) -> Result<Self> {
        let auth = auth::Auth::new(protocol.policy(), protocol.model_id, store)?;
        Ok(Self(Arc::new(Shared {
            engine,
            model,
            signer: protocol.signer.to_secp256k1(),
            protocol,
            auth,
            tree,
            pieces,
            metrics,
            created: auth::now(),
        })))
    }

    /// The worker's metrics (the node adds its claims' figures).
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    /// The engine behind the API.
    pub fn engine(&self) -> &Engine {
        &self.0.engine
    }
}

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat::completions))
        .route("/v1/completions", post(completions::completions))
        .route("/v1/models", get(models::list))
        .route("/v1/liveness", post(liveness::answer))
        .route("/v1/receipt", post(receipt::close))
        .route("/v1/receipts", post(receipt::close_many))
        .route("/metrics", get(metrics))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

async fn metrics(State(state): State<AppState>) -> String {
    state.0.metrics.render()
}

/// Serves the API on `listener` until `shutdown` resolves; then stops taking requests, lets
/// running ones finish (streams included), and stops the engine.
pub async fn run(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    run_several(listener, vec![state], shutdown).await
}

/// Serves `states`' models behind one endpoint on `listener` (each request goes to the model it
/// is for: `several.rs`; one state is served as [`router`] serves it) until `shutdown`
/// resolves; then stops taking requests, lets running ones finish (streams included), and
/// stops the engines.
pub async fn run_several(
    listener: TcpListener,
    states: Vec<AppState>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let addr = listener
        .local_addr()
        .map_err(|e| Error::io("listener", e))?;
    let mut watchers = Vec::new();
    for state in &states {
        let s = &state.0;
        info!(target: "worker::api", %addr, model = %s.model.meta.name, model_id = ?s.auth.model_id(), format = %s.model.meta.weights_format(), merkle_root = %s.tree.root(), provider = %s.protocol.signer.address(), "serving");
        if let Some(url) = s.protocol.rpc_url.clone() {
            watchers.push(tokio::spawn(routers::watch(state.clone(), url)));
        }
    }
    let engines: Vec<Engine> = states.iter().map(|s| s.engine().clone()).collect();
    let app = match states.as_slice() {
        [one] => router(one.clone()),
        _ => several::router(states)?,
    };
    let served = axum::serve(
        // Small writes (an SSE chunk, a short JSON answer) go out at once: with Nagle's
        // algorithm the first token waits for the client's delayed ACK, 40 ms on Linux.
        axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        }),
        app,
    )
    .with_graceful_shutdown(shutdown)
    .await;
    for w in watchers {
        w.abort();
    }
    served.map_err(|e| Error::io("server", e))?;
    info!(target: "worker::api", "draining the engine");
    tokio::task::spawn_blocking(move || engines.into_iter().for_each(|e| e.shutdown()))
        .await
        .map_err(|e| Error::Engine(e.to_string()))?;
    info!(target: "worker::api", "stopped");
    Ok(())
}
