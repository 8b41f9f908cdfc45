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
    metrics::Metrics,
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

    // Each file served, by its Merkle root: what its model is registered and claimed by. The
    // provider is registered (and its endpoint moved) by the first model's set-up; the others
    // find it done.
    let mut served = Vec::new();
    for (key, m) in cfg.served()? {
        let model = Arc::new(
            ModelDir::open(&m.dir).wrap_err_with(|| format!("{key}.dir: {}", m.dir.display()))?,
        );
        let weights = model.weights_path();
        let label = format!("hashing {}", m.name);
        let (tree, pieces) = tokio::task::spawn_blocking(move || {
            let mut progress = Progress::new(label);
            PieceIndex::from_file(&weights, |done, total| progress.update(done, total))
        })
        .await??;
        let wanted = Wanted {
            endpoint: cfg.endpoint(),
            stake: cfg.stake()?,
            model_name: m.name.clone(),
            creator: m.creator,
            root: tree.root(),
            chunk_count: tree.leaf_count(),
            format: model.meta.weights_format(),
            price_per_token: m.price(&key)?,
            capacity: m.capacity,
        };
        let set_up = retry(&format!("setting up {key} on-chain"), start_retry, || {
            onchain::set_up(&protocol, &signer, &wanted)
        })
        .await?;
        if set_up.sent.is_empty() {
            info!(target: "worker::node", model = %set_up.model_id, name = %m.name, "on-chain standing matches the configuration");
        }
        served.push((model, (tree, pieces), set_up.model_id));
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
        model_id: None,
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
    // The models' engines share the cores: each gets its part of the threads.
    engine.threads = (engine.threads / served.len()).max(1);
    let model_ids: Vec<_> = served.iter().map(|(_, _, id)| *id).collect();
    let state = tokio::task::spawn_blocking(move || {
        let metrics = Arc::new(Metrics::new());
        served
            .into_iter()
            .map(|(model, hashed, model_id)| {
                let protocol = ProtocolConfig {
                    model_id: Some(model_id),
                    ..protocol_cfg.clone()
                };
                AppState::load_sharing(&env, model, hashed, &engine, protocol, metrics.clone())
            })
            .collect::<morpheus_worker::Result<Vec<_>>>()
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
        eth_price: cfg.eth_price()?,
        metrics: state[0].metrics().clone(),
    };
    let stop = CancellationToken::new();
    let claiming = tokio::spawn(claims.run(
        Duration::from_secs(cfg.claims.interval_secs.max(1)),
        stop.clone(),
    ));
    info!(target: "worker::node", %provider, endpoint = %cfg.endpoint(), models = ?model_ids, "serving");
    let served = api::run_several(listener, state, crate::shutdown_signal()).await;
    stop.cancel();
    let _ = claiming.await;
    served?;
    Ok(())
}
