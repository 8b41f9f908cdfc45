//! Shared set-up: a devnet, a provider running a real worker with the tiny model registered
//! on-chain by its Merkle root, a staked user, and the router on 127.0.0.1:0.

use std::path::PathBuf;

use alloy::{
    primitives::{Address, B256, U256},
    signers::local::PrivateKeySigner,
};
use morpheus_router::{AppState, RouterConfig};
use morpheus_sdk::{
    messages::{Assignment, ComputeRequest, CreditVoucher, Signed, UsageReport},
    router::RouterClient,
};
use morpheus_testkit::{Devnet, TestWorker, WorkerOptions, unique_b256, unix_now};
use tempfile::TempDir;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt, copy_bidirectional},
    net::{TcpListener, TcpStream},
    sync::oneshot,
    task::{JoinHandle, JoinSet},
};

/// The `morpheus-worker` binary of this build, for tests that run it as a process.
pub(crate) fn worker_bin() -> &'static std::path::Path {
    static BIN: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BIN.get_or_init(|| {
        morpheus_testkit::workspace_binaries(
            std::path::Path::new(env!("CARGO_BIN_EXE_morpheus-router")),
            &["morpheus-worker"],
        )
        .join("morpheus-worker")
    })
}

/// Anvil account of the provider running the worker.
pub(crate) const PROVIDER: usize = 2;
/// Anvil account of the user.
pub(crate) const USER: usize = 3;
/// Anvil account of a second router key, which the provider's worker also trusts (a test
/// authorises it on-chain when it needs two routers).
pub(crate) const SECOND_ROUTER: usize = 6;
/// MOR (wei) per token the provider bids: half the reference price, so it is credited as bid.
pub(crate) const PRICE: u64 = 50_000_000_000;
/// MOR (wei) per token at the devnet's prices (MOR $20, $0.002 per 1000 tokens):
/// `0.002e18 * 1e15 / 20e18`, the most one token earns (`credit_per_token`).
pub(crate) const REFERENCE_PRICE: u64 = 100_000_000_000;

/// Registers account `index` as a provider at `endpoint`, claims `model_id` and bids `price`
/// for 16 sessions.
pub(crate) async fn provide(
    devnet: &Devnet,
    index: usize,
    endpoint: &str,
    model_id: B256,
    price: u64,
) {
    devnet
        .provide(index, endpoint, model_id, U256::from(price), 16)
        .await
        .expect("provide");
}

/// Account `index` stakes `mor` MOR (whole MOR, decimal) in `SessionRouter`.
pub(crate) async fn stake(devnet: &Devnet, index: usize, mor: &str) {
    devnet.stake(index, mor).await.expect("stake");
}

/// The database's write lock, held by [`Net::hold_write_lock`] until [`HeldLock::release`].
pub(crate) struct HeldLock {
    release: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HeldLock {
    /// Releases the lock and waits until it is.
    pub(crate) async fn release(mut self) {
        let _ = self.release.send(());
        if let Some(thread) = self.thread.take() {
            tokio::task::spawn_blocking(move || thread.join())
                .await
                .expect("join")
                .expect("the holder ends cleanly");
        }
    }
}

/// The whole set-up: devnet, provider + worker, staked user, router.
pub(crate) struct Net {
    pub(crate) devnet: Devnet,
    pub(crate) model_id: B256,
    pub(crate) router: RouterClient,
    pub(crate) worker: Option<TestWorker>,
    url: String,
    pub(crate) config: RouterConfig,
    db: TempDir,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<RouterTask>,
}

impl Net {
    pub(crate) async fn start() -> Self {
        Self::with(|_| {}).await
    }

    pub(crate) async fn with(edit: impl FnOnce(&mut RouterConfig)) -> Self {
        let devnet = Devnet::start().await.expect("devnet");

        // The provider: the model registered by its root, its worker registered at its address.
        let model_id = devnet
            .register_tiny_model(PROVIDER, "tiny")
            .await
            .expect("register model");
        let worker = TestWorker::with(WorkerOptions {
            also_trust: vec![devnet.signer(SECOND_ROUTER).address()],
            ..devnet.worker_options(PROVIDER, model_id)
        })
        .await;
        provide(&devnet, PROVIDER, &worker.url, model_id, PRICE).await;

        // The user stakes 5 MOR.
        stake(&devnet, USER, "5").await;
        Self::with_router(devnet, model_id, Some(worker), edit).await
    }

    /// The devnet, the staked user and the router, and no provider yet: a test brings its own
    /// (and sets [`model_id`](Self::model_id) to the model it serves).
    pub(crate) async fn without_provider() -> Self {
        let devnet = Devnet::start().await.expect("devnet");
        stake(&devnet, USER, "5").await;
        Self::with_router(devnet, B256::ZERO, None, |_| {}).await
    }

    async fn with_router(
        devnet: Devnet,
        model_id: B256,
        worker: Option<TestWorker>,
        edit: impl FnOnce(&mut RouterConfig),
    ) -> Self {
        // The router.
        let db = TempDir::new().expect("tempdir");
        let mut config = RouterConfig::new(
            devnet.rpc_url(),
            devnet.deployment(),
            devnet.router_signer(),
            db.path().join("router.db"),
        );
        // The devnet's worker and the tests' hostile servers listen on 127.0.0.1.
        config.allow_private_endpoints = true;
        // The suite's PostgreSQL pass: a new database of its own (a test about the SQLite file
        // sets this back to `None` in `edit`).
        config.postgres_url = morpheus_testkit::test_database().expect("a PostgreSQL database");
        edit(&mut config);
        let (url, shutdown, handle) = serve(config.clone()).await;
        Self {
            devnet,
            model_id,
            router: RouterClient::new(&url).expect("client"),
            worker,
            url,
            config,
            db,
            shutdown: Some(shutdown),
            handle: Some(handle),
        }
    }

    /// As [`start`](Self::start), with the router reaching the chain through a [`forward`]er:
    /// aborting the returned task cuts the chain off from the router alone.
    pub(crate) async fn with_chain_forwarded() -> (Self, JoinHandle<()>) {
        let mut chain = None;
        let net = Self::with(|c| {
            let (url, task) = forward(&c.rpc_url);
            c.rpc_url = url;
            chain = Some(task);
        })
        .await;
        (net, chain.expect("the forwarder"))
    }

    /// The router's `/metrics` text.
    pub(crate) async fn metrics(&self) -> String {
        reqwest::get(self.router_url("/metrics"))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("metrics text")
    }

    /// The provider (account [`PROVIDER`]) changes its bid on the model.
    pub(crate) async fn bid(&self, price_per_token: U256, capacity: u64) {
        self.devnet
            .protocol(PROVIDER)
            .await
            .expect("connect")
            .registry()
            .update_bid(self.model_id, price_per_token, U256::from(capacity))
            .await
            .expect("update bid");
    }

    /// Stops the router and starts a new one on the same database (on a new port).
    pub(crate) async fn restart_router(&mut self) {
        self.stop_router().await;
        self.start_router().await;
    }

    /// Starts a router on the same configuration and database (after [`stop_router`]).
    ///
    /// [`stop_router`]: Self::stop_router
    pub(crate) async fn start_router(&mut self) {
        let (url, shutdown, handle) = serve(self.config.clone()).await;
        self.router = RouterClient::new(&url).expect("client");
        self.url = url;
        self.shutdown = Some(shutdown);
        self.handle = Some(handle);
    }

    /// Stops the router, deletes its database (as a lost disk would), and starts a new one on
    /// a new empty file at the same path.
    pub(crate) async fn restart_router_losing_its_database(&mut self) {
        self.stop_router().await;
        match &self.config.postgres_url {
            Some(url) => morpheus_testkit::recreate_database(url).expect("drop the database"),
            None => {
                for suffix in ["", "-wal", "-shm"] {
                    let mut path = self.db_path().into_os_string();
                    path.push(suffix);
                    let _ = std::fs::remove_file(path);
                }
            }
        }
        let (url, shutdown, handle) = serve(self.config.clone()).await;
        self.router = RouterClient::new(&url).expect("client");
        self.url = url;
        self.shutdown = Some(shutdown);
        self.handle = Some(handle);
    }

    /// Stops the router (gracefully), keeping its database.
    pub(crate) async fn stop_router(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            h.await.expect("router task").expect("router ends cleanly");
        }
    }

    /// The database file the router uses (on the SQLite backend).
    pub(crate) fn db_path(&self) -> PathBuf {
        self.config.db_path.clone()
    }

    /// The integer `sql` answers on the router's database, on either backend.
    pub(crate) fn db_count(&self, sql: &str) -> i64 {
        match &self.config.postgres_url {
            Some(url) => morpheus_testkit::postgres_query_i64(url, sql).expect("query"),
            None => {
                let db = rusqlite::Connection::open(self.db_path()).expect("open the database");
                db.busy_timeout(std::time::Duration::from_secs(5))
                    .expect("busy timeout");
                db.query_row(sql, [], |r| r.get(0)).expect("query")
            }
        }
    }

    /// Runs `sql` on the router's database behind its back (a tampering test), on either
    /// backend.
    pub(crate) fn db_execute(&self, sql: &str) {
        match &self.config.postgres_url {
            Some(url) => morpheus_testkit::postgres_run_sql(url, sql).expect("statement"),
            None => {
                let db = rusqlite::Connection::open(self.db_path()).expect("open the database");
                db.busy_timeout(std::time::Duration::from_secs(5))
                    .expect("busy timeout");
                db.execute_batch(sql).expect("statement");
            }
        }
    }

    /// Takes the database's write lock from a connection of its own (SQLite's file lock, or on
    /// PostgreSQL the router's global key, exclusive) and holds it until the guard is released.
    pub(crate) fn hold_write_lock(&self) -> HeldLock {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (held, taken) = std::sync::mpsc::channel::<()>();
        let (path, url) = (self.db_path(), self.config.postgres_url.clone());
        let thread = std::thread::spawn(move || match url {
            Some(url) => {
                let mut db = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
                // 0x4d4f52: the router's global key (`store/pg.rs` GLOBAL_SPACE), every writer's.
                db.batch_execute("BEGIN; SELECT pg_advisory_xact_lock(5066578, 0)")
                    .expect("take the router's global key");
                held.send(()).expect("held");
                let _ = released.recv();
                db.batch_execute("ROLLBACK").expect("release");
            }
            None => {
                let db = rusqlite::Connection::open(path).expect("open the database");
                db.execute_batch("BEGIN IMMEDIATE")
                    .expect("take the write lock");
                held.send(()).expect("held");
                let _ = released.recv();
                db.execute_batch("ROLLBACK").expect("release");
            }
        });
        taken.recv().expect("the lock is taken");
        HeldLock {
            release,
            thread: Some(thread),
        }
    }

    /// The PostgreSQL database the router uses, when the suite runs on PostgreSQL.
    pub(crate) fn postgres_url(&self) -> Option<&str> {
        self.config.postgres_url.as_deref()
    }

    /// The directory holding the router's database and nothing else: every file the router
    /// writes is in it.
    pub(crate) fn state_dir(&self) -> PathBuf {
        self.db.path().to_path_buf()
    }

    /// The router's URL for `path` (for raw requests).
    pub(crate) fn router_url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub(crate) fn user(&self) -> PrivateKeySigner {
        self.devnet.signer(USER)
    }

    /// A request from `signer` naming `user`.
    pub(crate) fn request_as(
        &self,
        signer: &PrivateKeySigner,
        edit: impl FnOnce(&mut ComputeRequest),
    ) -> Signed<ComputeRequest> {
        let mut r = ComputeRequest {
            user: self.user().address(),
            modelId: self.model_id,
            tokenMax: U256::from(256),
            nonce: U256::from_be_bytes(*unique_b256()),
            deadline: U256::from(unix_now() + 60),
        };
        edit(&mut r);
        Signed::sign(r, &self.devnet.deployment().domain(), signer).expect("sign")
    }

    /// An assignment for a default request of the user (256 tokens), which must be granted.
    pub(crate) async fn assignment(&self) -> Signed<Assignment> {
        self.router
            .request_compute(&self.request(|_| {}))
            .await
            .expect("assignment")
    }

    /// The newest voucher the router signs for `provider`, which must have earned something.
    pub(crate) async fn voucher(&self, provider: Address) -> Signed<CreditVoucher> {
        self.router
            .voucher(provider)
            .await
            .expect("voucher")
            .expect("the provider was credited")
    }

    /// Account `index` (a provider) claims `voucher` on-chain; returns the MOR it was paid.
    pub(crate) async fn claim(&self, index: usize, voucher: Signed<CreditVoucher>) -> U256 {
        let chain = self.devnet.protocol(index).await.expect("connect");
        let provider = self.devnet.signer(index).address();
        let before = chain.mor().balance_of(provider).await.expect("balance");
        chain
            .session_router()
            .claim(std::slice::from_ref(&voucher))
            .await
            .expect("claim");
        chain.mor().balance_of(provider).await.expect("balance") - before
    }

    /// A request from the user.
    pub(crate) fn request(&self, edit: impl FnOnce(&mut ComputeRequest)) -> Signed<ComputeRequest> {
        self.request_as(&self.user(), edit)
    }

    /// A usage report signed by `signer`.
    pub(crate) fn report_as(
        &self,
        signer: &PrivateKeySigner,
        session: B256,
        tokens: u64,
        duration_ms: u64,
        passed: bool,
    ) -> Signed<UsageReport> {
        Signed::sign(
            UsageReport {
                sessionId: session,
                tokens: U256::from(tokens),
                ttftMs: U256::from(duration_ms / 10),
                durationMs: U256::from(duration_ms),
                passed,
            },
            &self.devnet.deployment().domain(),
            signer,
        )
        .expect("sign")
    }

    pub(crate) async fn stop(mut self) {
        self.stop_router().await;
        if let Some(w) = self.worker.take() {
            w.stop().await;
        }
    }
}

pub(crate) type RouterTask = JoinHandle<morpheus_router::Result<()>>;

/// Starts a router on 127.0.0.1:0; returns its URL, its shutdown switch and its task.
pub(crate) async fn serve(config: RouterConfig) -> (String, oneshot::Sender<()>, RouterTask) {
    let state = AppState::connect(config).await.expect("router connects");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (tx, rx) = oneshot::channel();
    let handle = tokio::spawn(morpheus_router::run(listener, state, async {
        let _ = rx.await;
    }));
    (url, tx, handle)
}

/// Asserts `result` is the router's refusal with `status` and a message containing `words`.
pub(crate) fn assert_refused<T: std::fmt::Debug>(
    result: morpheus_sdk::Result<T>,
    status: u16,
    words: &str,
) {
    morpheus_testkit::assert_refused(result, "router", status, words);
}

/// Forwards TCP connections from a new local port to `target` (`http://host:port`) until the
/// returned task is aborted, which also cuts every connection it carries: the chain "goes away"
/// for whoever uses the new URL.
pub(crate) fn forward(target: &str) -> (String, JoinHandle<()>) {
    forward_on("127.0.0.1:0", target)
}

/// [`forward`] from `listen` (a port given back by an aborted forwarder, to bring the chain back
/// at the same URL).
pub(crate) fn forward_on(listen: &str, target: &str) -> (String, JoinHandle<()>) {
    let target = target.trim_start_matches("http://").to_string();
    let listener = std::net::TcpListener::bind(listen).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    let task = tokio::spawn(async move {
        // Dropped with the task: the connections end with it.
        let mut connections = JoinSet::new();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            connections.spawn(async move {
                if let Ok(mut outbound) = TcpStream::connect(&target).await {
                    let _ = copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (url, task)
}

/// Forwards TCP connections from a new local port to `target` (`http://host:port`), holding
/// every piece of the answers back for `delay`: a provider that is slow to answer, so that
/// requests sent together certainly overlap with its answers.
pub(crate) fn forward_slowly(target: &str, delay: std::time::Duration) -> (String, JoinHandle<()>) {
    let target = target.trim_start_matches("http://").to_string();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let listener = TcpListener::from_std(listener).expect("tokio listener");
    let task = tokio::spawn(async move {
        let mut connections = JoinSet::new();
        while let Ok((inbound, _)) = listener.accept().await {
            let target = target.clone();
            connections.spawn(async move {
                let Ok(outbound) = TcpStream::connect(&target).await else {
                    return;
                };
                let (mut from_client, mut to_client) = inbound.into_split();
                let (mut from_server, mut to_server) = outbound.into_split();
                let up = tokio::io::copy(&mut from_client, &mut to_server);
                let down = async {
                    let mut buf = vec![0u8; 64 * 1024];
                    while let Ok(n) = from_server.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        tokio::time::sleep(delay).await;
                        if to_client.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                };
                let _ = tokio::join!(up, down);
            });
        }
    });
    (url, task)
}
