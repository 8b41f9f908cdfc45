//! Shared set-up of the gateway's tests: a devnet with the tiny model registered by its weights
//! file's root, providers (real workers serving it, or the fakes of `gateway_fakes`), staked
//! users, the router in-process on a fixed address (so it can be stopped and started again),
//! and gateways on 127.0.0.1:0.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use alloy::primitives::{Address, B256, U256};
use morpheus_cli::gateway::{Gateway, GatewayConfig};
use morpheus_router::{AppState, RouterConfig};
use morpheus_sdk::router::{ProviderInfo, RouterClient};
use morpheus_testkit::{Devnet, TestWorker};
use tempfile::TempDir;
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};

/// Anvil account of the first provider (it also registers the model).
pub(crate) const PROVIDER: usize = 2;
/// Anvil account of the first user (staked by [`Net::start`]).
pub(crate) const USER: usize = 3;
/// More users.
pub(crate) const USER_B: usize = 4;
/// More users.
pub(crate) const USER_C: usize = 5;
/// Anvil account of the second provider.
pub(crate) const PROVIDER_B: usize = 7;
/// Anvil account of a provider served by a fake.
pub(crate) const FAKE: usize = 8;
/// Anvil account of a second fake provider.
pub(crate) const FAKE_B: usize = 9;
/// MOR (wei) per token the first provider bids: half the devnet's reference price, so it is
/// credited as bid.
pub(crate) const PRICE: u64 = 50_000_000_000;
/// The name the model is registered under, the one users know.
pub(crate) const MODEL: &str = "tiny";

/// The devnet, the model, the router; providers are added by each test.
pub(crate) struct Net {
    pub(crate) devnet: Devnet,
    pub(crate) model_id: B256,
    pub(crate) router: RouterClient,
    pub(crate) workers: Vec<TestWorker>,
    router_addr: SocketAddr,
    config: RouterConfig,
    _db: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<morpheus_router::Result<()>>>,
}

impl Net {
    /// A devnet with the model registered, [`USER`] staked 5 MOR and the router serving, with
    /// liveness checks on or off (off lets the fakes, which hold no weights, be assigned).
    pub(crate) async fn start(liveness: bool) -> Self {
        Self::with(|c| c.liveness = liveness).await
    }

    /// The same, with the router's settings edited.
    pub(crate) async fn with(edit: impl FnOnce(&mut RouterConfig)) -> Self {
        let devnet = Devnet::start().await.expect("devnet");
        let model_id = devnet
            .register_tiny_model(PROVIDER, MODEL)
            .await
            .expect("register model");
        stake(&devnet, USER, "5").await;

        let db = TempDir::new().expect("tempdir");
        let mut config = RouterConfig::new(
            devnet.rpc_url(),
            devnet.deployment(),
            devnet.router_signer(),
            db.path().join("router.db"),
        );
        // The workers and fakes listen on 127.0.0.1.
        config.allow_private_endpoints = true;
        // The speed rule is the router's (tested there): here every passed report is credited,
        // whatever the machine's load does to the timings.
        config.slow_threshold_pct = 1_000_000;
        edit(&mut config);
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let router_addr = listener.local_addr().expect("addr");
        let mut net = Self {
            devnet,
            model_id,
            router: RouterClient::new(&format!("http://{router_addr}")).expect("client"),
            workers: Vec::new(),
            router_addr,
            config,
            _db: db,
            shutdown: None,
            handle: None,
        };
        net.serve(listener).await;
        net
    }

    /// The router's base URL.
    pub(crate) fn router_url(&self) -> String {
        format!("http://{}", self.router_addr)
    }

    async fn serve(&mut self, listener: TcpListener) {
        let state = AppState::connect(self.config.clone())
            .await
            .expect("router connects");
        let (tx, rx) = oneshot::channel();
        self.handle = Some(tokio::spawn(morpheus_router::run(listener, state, async {
            let _ = rx.await;
        })));
        self.shutdown = Some(tx);
    }

    /// Stops the router (its address then refuses connections).
    pub(crate) async fn stop_router(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("router task").expect("router ends cleanly");
        }
    }

    /// Starts the router again on the same address and database.
    pub(crate) async fn start_router(&mut self) {
        let listener = TcpListener::bind(self.router_addr)
            .await
            .expect("the router's address is free again");
        self.serve(listener).await;
    }

    /// Starts a worker serving the model for account `index`, registered at its address and
    /// bidding `price`; returns its place in [`Net::workers`].
    pub(crate) async fn add_worker(&mut self, index: usize, price: u64) -> usize {
        let worker = TestWorker::with(self.devnet.worker_options(index, self.model_id)).await;
        self.provide(index, &worker.url, price).await;
        self.workers.push(worker);
        self.workers.len() - 1
    }

    /// Registers account `index` as a provider at `endpoint`, claims the model and bids `price`
    /// for 16 sessions.
    pub(crate) async fn provide(&self, index: usize, endpoint: &str, price: u64) {
        self.devnet
            .provide(index, endpoint, self.model_id, U256::from(price), 16)
            .await
            .expect("provide");
    }

    /// The address of anvil account `index`.
    pub(crate) fn address(&self, index: usize) -> Address {
        self.devnet.signer(index).address()
    }

    /// A gateway for anvil account `user`, its settings edited, serving on 127.0.0.1:0.
    pub(crate) async fn gateway(
        &self,
        user: usize,
        edit: impl FnOnce(&mut GatewayConfig),
    ) -> TestGateway {
        let dir = TempDir::new().expect("tempdir");
        let outbox = dir.path().join("outbox.db");
        self.gateway_with_outbox(user, outbox, dir, edit).await
    }

    /// The same, keeping its reports in `outbox` (kept alive by `dir`).
    pub(crate) async fn gateway_with_outbox(
        &self,
        user: usize,
        outbox: PathBuf,
        dir: TempDir,
        edit: impl FnOnce(&mut GatewayConfig),
    ) -> TestGateway {
        let mut config = GatewayConfig::new(
            self.devnet.rpc_url(),
            self.router_url(),
            self.devnet.deployment(),
            self.devnet.signer(user),
            outbox,
        );
        edit(&mut config);
        TestGateway::start(config, dir).await
    }

    /// The router's view of `provider` for the model.
    pub(crate) async fn provider_info(&self, provider: Address) -> ProviderInfo {
        self.router
            .providers(self.model_id)
            .await
            .expect("providers")
            .providers
            .into_iter()
            .find(|p| p.provider == provider)
            .unwrap_or_else(|| panic!("the router lists no provider {provider}"))
    }

    /// Waits (up to 20 s) until the router has `n` reports on `provider`'s sessions.
    pub(crate) async fn wait_for_reports(&self, provider: Address, n: u64) -> ProviderInfo {
        for _ in 0..200 {
            let info = self.provider_info(provider).await;
            if info.record.sessions >= n {
                return info;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let info = self.provider_info(provider).await;
        panic!(
            "the router got {} reports on {provider}, not {n}: {info:?}",
            info.record.sessions
        );
    }

    /// Stops the router and every worker.
    pub(crate) async fn stop(mut self) {
        self.stop_router().await;
        for w in self.workers.drain(..) {
            w.stop().await;
        }
    }
}

/// Account `index` stakes `mor` MOR (decimal) in `SessionRouter`.
pub(crate) async fn stake(devnet: &Devnet, index: usize, mor: &str) {
    devnet.stake(index, mor).await.expect("stake");
}

/// A gateway serving on 127.0.0.1:0.
pub(crate) struct TestGateway {
    /// `http://127.0.0.1:PORT`.
    pub(crate) url: String,
    pub(crate) gateway: Gateway,
    pub(crate) dir: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<JoinHandle<morpheus_cli::Result<()>>>,
}

impl TestGateway {
    async fn start(config: GatewayConfig, dir: TempDir) -> Self {
        let gateway = Gateway::connect(config).await.expect("gateway connects");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let (tx, rx) = oneshot::channel();
        let handle = tokio::spawn(morpheus_cli::gateway::run(
            listener,
            gateway.clone(),
            async {
                let _ = rx.await;
            },
        ));
        Self {
            url,
            gateway,
            dir,
            shutdown: Some(tx),
            handle: Some(handle),
        }
    }

    /// The OpenAI base URL: `http://127.0.0.1:PORT/v1`.
    pub(crate) fn v1(&self) -> String {
        format!("{}/v1", self.url)
    }

    /// `POST /v1/chat/completions` with `body`.
    pub(crate) async fn post(&self, body: &serde_json::Value) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/chat/completions", self.v1()))
            .bearer_auth("any key")
            .json(body)
            .send()
            .await
            .expect("the gateway answers")
    }

    /// Panics unless every report was sent: the outbox holds none.
    pub(crate) async fn assert_outbox_empty(&self) {
        let pending = self.gateway.outbox().pending().await.expect("outbox");
        assert!(pending.is_empty(), "reports left unsent: {pending:?}");
    }

    /// Stops serving, waits for the reports; returns the directory holding the outbox.
    pub(crate) async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await
                .expect("gateway task")
                .expect("the gateway ends cleanly");
        }
        self.dir
    }
}

/// Checks an error answer: its status, and that OpenAI's `error.message` says `says`; returns
/// the body for more checks.
pub(crate) async fn assert_error(
    response: reqwest::Response,
    status: u16,
    says: &str,
) -> serde_json::Value {
    assert_eq!(response.status(), status);
    let body: serde_json::Value = response.json().await.expect("an error body");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(says), "expected {says:?} in {body}");
    body
}

/// A chat request body for the model.
pub(crate) fn chat_body(prompt: &str, max_tokens: u32, stream: bool) -> serde_json::Value {
    let mut body = serde_json::json!({
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "seed": 1,
        "stream": stream,
    });
    if stream {
        body["stream_options"] = serde_json::json!({"include_usage": true});
    }
    body
}

/// The `data:` payloads of a server-sent-events body, in order.
pub(crate) fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: Vec<&str> = event
                .lines()
                .filter_map(|l| l.strip_prefix("data:"))
                .map(|d| d.strip_prefix(' ').unwrap_or(d))
                .collect();
            (!data.is_empty()).then(|| data.join("\n"))
        })
        .collect()
}

/// The `x-morpheus-provider` header of a gateway's answer.
pub(crate) fn provider_of(response: &reqwest::Response) -> Address {
    response
        .headers()
        .get("x-morpheus-provider")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .expect("the answer names its provider")
}
