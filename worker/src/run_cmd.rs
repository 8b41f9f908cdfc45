//! `morpheus-worker run --config worker.toml`: the provider's node. On start it makes the chain
//! match the configuration (`node::onchain`), then serves the model and claims automatically
//! (`node::auto_claim`) until Ctrl-C or SIGTERM: streams in flight finish, no new assignment is
//! taken, a claim under way is finished, nothing is withdrawn.

use std::{sync::Arc, time::Duration};

use eyre::{Context, Result, eyre};
use morpheus_sdk::{Deployment, contracts::Protocol, merkle::PieceIndex};
use morpheus_worker::{
    ProtocolConfig,
    api::{self, AppState},
    claim,
    engine::EngineConfig,
    model::ModelDir,
    node::{
        NodeConfig,
        auto_claim::AutoClaim,
        onchain::{self, Wanted},
        progress::Progress,
        retry::retry,
    },
    runtime,
    store::Store,
};
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::cli::RunArgs;

pub(crate) async fn run(args: RunArgs) -> Result<()> {
    let cfg = NodeConfig::load(&args.config)?;
    let signer = cfg.signer(args.provider_key.as_deref())?;
    let provider = signer.address();
    // How long the chain may stay unreachable at start before the node gives up.
    let start_retry = Duration::from_secs(cfg.startup_retry_secs);
    if let Some(expected) = cfg.provider
        && expected != provider
    {
        return Err(eyre!(
            "provider: the key is {provider}'s, the configuration names {expected}"
        ));
    }
    let deployment = Deployment::load(&cfg.deployment)
        .wrap_err_with(|| format!("deployment: reading {}", cfg.deployment.display()))?;
    let protocol = retry(&format!("rpc_url {}", cfg.rpc_url), start_retry, || {
        let signer = signer.clone();
        let url = cfg.rpc_url.clone();
        async move { Ok(Protocol::connect(&url, deployment, Some(signer)).await?) }
    })
    .await?;

    // The file served, by its Merkle root: what the model is registered and claimed by.
    let model = Arc::new(ModelDir::open(&cfg.model.dir)?);
    let weights = model.weights_path();
    let (tree, pieces) = tokio::task::spawn_blocking(move || {
        let mut progress = Progress::new("hashing the weights");
        PieceIndex::from_file(&weights, |done, total| progress.update(done, total))
    })
    .await??;
    let wanted = Wanted {
        endpoint: cfg.endpoint(),
        stake: cfg.stake()?,
        model_name: cfg.model.name.clone(),
        creator: cfg.model.creator,
        root: tree.root(),
        chunk_count: tree.leaf_count(),
        format: model.meta.weights_format(),
        price_per_token: cfg.price_per_token()?,
        capacity: cfg.model.capacity,
    };
    let set_up = retry("setting up on-chain", start_retry, || {
        onchain::set_up(&protocol, &signer, &wanted)
    })
    .await?;
    if set_up.sent.is_empty() {
        info!(target: "worker::node", model = %set_up.model_id, "on-chain standing matches the configuration");
    }

    let session_router = protocol.session_router();
    let routers = if cfg.routers.is_empty() {
        retry("reading SessionRouter.routers", start_retry, || async {
            Ok(session_router.routers().await?)
        })
        .await?
    } else {
        cfg.routers.clone()
    };
    let claim_routers = claim::router_clients(&cfg.claims.router_urls)?;

    let protocol_cfg = ProtocolConfig {
        signer: signer.clone(),
        chain_id: protocol.deployment().chain_id,
        session_router: protocol.deployment().session_router,
        routers: routers.into_iter().collect(),
        model_id: Some(set_up.model_id),
        rpc_url: Some(cfg.rpc_url.clone()),
        router_refresh: Duration::from_secs(cfg.router_refresh_secs.max(1)),
        db: Some(cfg.db_path()),
    };
    let lib = match &cfg.engine.ort_lib {
        Some(p) => p.clone(),
        None => runtime::ort_library(&std::env::current_dir()?)?,
    };
    let env = runtime::environment(&lib)?;
    let mut engine = EngineConfig {
        max_batch: cfg.engine.max_batch,
        max_context: cfg.engine.max_context,
        max_queue: cfg.engine.max_queue,
        prefix_cache: cfg.engine.prefix_cache,
        ..Default::default()
    };
    if let Some(t) = cfg.engine.threads {
        engine.threads = t;
    }
    let state = tokio::task::spawn_blocking(move || {
        AppState::load_hashed(&env, model, (tree, pieces), &engine, protocol_cfg)
    })
    .await??;

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .wrap_err_with(|| format!("listen: cannot listen on {}", cfg.listen))?;
    let claims = AutoClaim {
        protocol,
        store: Store::open(&cfg.db_path())?,
        routers: claim_routers,
        provider,
        policy: cfg.claim_policy()?,
        eth_usd: cfg.eth_usd()?,
        metrics: state.metrics().clone(),
    };
    let stop = CancellationToken::new();
    let claiming = tokio::spawn(claims.run(
        Duration::from_secs(cfg.claims.interval_secs.max(1)),
        stop.clone(),
    ));
    info!(target: "worker::node", %provider, endpoint = %cfg.endpoint(), model = %set_up.model_id, "serving");
    let served = api::run(listener, state, crate::shutdown_signal()).await;
    stop.cancel();
    let _ = claiming.await;
    served?;
    Ok(())
}
