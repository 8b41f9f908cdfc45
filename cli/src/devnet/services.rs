//! The devnet's long-running parts: `morpheus-worker` and `morpheus-router` as children, the
//! gateway as a task of this process; each started, waited on until it answers, watched, and
//! stopped in order.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use morpheus_sdk::{Deployment, router::RouterClient};
use tokio::{process::Command, sync::oneshot, task::JoinHandle};

use super::{
    chain::Accounts,
    model::PreparedModel,
    ports::Ports,
    process::{Service, tail},
    tools::Tools,
};
use crate::{
    Error, Result,
    gateway::{self, Gateway, GatewayConfig},
};

/// How long the worker may take to load the model and answer.
const WORKER_START: Duration = Duration::from_secs(180);
/// How long the router may take to connect to the chain and answer.
const ROUTER_START: Duration = Duration::from_secs(30);
/// How long a service has to exit after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// What every service is started with: the deployed local chain.
#[derive(Debug)]
pub(super) struct Local<'a> {
    pub(super) tools: &'a Tools,
    pub(super) state: &'a Path,
    pub(super) ports: Ports,
    pub(super) rpc: String,
    pub(super) deployment: Deployment,
    pub(super) accounts: &'a Accounts,
}

impl Local<'_> {
    /// The worker's endpoint (what the provider registers).
    pub(super) fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.worker)
    }

    /// The router's base URL.
    pub(super) fn router_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.ports.router)
    }

    /// The gateway's base URL, as OpenAI clients take it.
    pub(super) fn gateway_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.ports.gateway)
    }

    /// A log file in the state directory.
    pub(super) fn log(&self, name: &str) -> PathBuf {
        self.state.join(format!("{name}.log"))
    }
}

/// A string as TOML writes it (JSON's escapes are TOML's).
fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_string()).to_string()
}

/// The node's configuration on the devnet: the router the devnet starts, the model the deploy
/// script registered, and claims left to the demo's last step (`morpheus-worker claim --now`,
/// on the node's database): one chat's credit is not worth a claim's gas at the default rule.
fn worker_toml(
    local: &Local<'_>,
    model: &PreparedModel,
    creator: alloy::primitives::Address,
    price: alloy::primitives::U256,
    capacity: u64,
) -> String {
    let price = alloy::primitives::utils::format_ether(price);
    format!(
        "# Written by `morpheus devnet`: the provider's node (docs/worker.md lists the keys).\n\
         rpc_url = {rpc}\n\
         deployment = {deployment}\n\
         listen = \"127.0.0.1:{port}\"\n\
         data_dir = {data}\n\
         routers = [\"{router}\"]\n\
         router_refresh_secs = 5\n\
         \n\
         [model]\n\
         dir = {dir}\n\
         name = {name}\n\
         creator = \"{creator}\"\n\
         price_per_token = \"{price}\"\n\
         capacity = {capacity}\n\
         \n\
         [claims]\n\
         router_urls = [{router_url}]\n\
         interval_secs = 10\n",
        rpc = toml_str(&local.rpc),
        deployment = toml_str(&local.state.join("deployment.json").display().to_string()),
        port = local.ports.worker,
        data = toml_str(&local.state.join("worker").display().to_string()),
        router = local.accounts.router.address(),
        dir = toml_str(&model.dir.display().to_string()),
        name = toml_str(&model.name),
        router_url = toml_str(&local.router_url()),
    )
}

/// The node's database (`worker.toml`'s `data_dir`): the demo's claim shares its journal.
pub(super) fn worker_db(state: &Path) -> PathBuf {
    state.join("worker").join("worker.db")
}

/// What is running: the children in the order they started, and the gateway's task.
#[derive(Debug, Default)]
pub(super) struct Running {
    services: Vec<Service>,
    gateway: Option<(oneshot::Sender<()>, JoinHandle<Result<()>>)>,
}

impl Running {
    /// Keeps `service` running until [`Running::stop`].
    pub(super) fn add(&mut self, service: Service) {
        self.services.push(service);
    }

    /// Starts the provider's node, `morpheus-worker run`, from the `worker.toml` it writes in
    /// the state directory: the node registers the provider, claims `model` (registered by
    /// `creator`) and bids `price` MOR wei per token, then serves; returns once it lists the
    /// model, with the ids it lists.
    pub(super) async fn start_worker(
        &mut self,
        local: &Local<'_>,
        model: &PreparedModel,
        creator: alloy::primitives::Address,
        (price, capacity): (alloy::primitives::U256, u64),
    ) -> Result<String> {
        // A fresh chain each run: the sessions, vouchers and claims of the last run name
        // contracts gone with it.
        remove_db(&worker_db(local.state))?;
        let config = local.state.join("worker.toml");
        let text = worker_toml(local, model, creator, price, capacity);
        std::fs::write(&config, text).map_err(|e| Error::io(&config, e))?;
        let mut command = Command::new(&local.tools.worker);
        command
            .arg("run")
            .arg("--config")
            .arg(&config)
            // Keys through the environment, not the command line, where `ps` shows them.
            .env(
                "MORPHEUS_PROVIDER_KEY",
                local.accounts.provider.to_bytes().to_string(),
            );
        self.add(Service::spawn(
            "morpheus-worker",
            command,
            &local.tools.root,
            local.log("worker"),
        )?);

        let url = format!("{}/v1/models", local.endpoint());
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            self.check()?;
            if let Ok(response) = http.get(&url).send().await
                && response.status().is_success()
            {
                let list: serde_json::Value = response
                    .json()
                    .await
                    .map_err(|e| Error::Devnet(format!("GET {url}: {e}")))?;
                let ids: Vec<&str> = list["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|m| m["id"].as_str())
                    .collect();
                return Ok(ids.join(", "));
            }
            if started.elapsed() > WORKER_START {
                return Err(self.late(format!("GET {url} got no answer")));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Starts the router with a fresh database; returns once it answers.
    pub(super) async fn start_router(&mut self, local: &Local<'_>) -> Result<RouterClient> {
        let db = local.state.join("router.db");
        // A fresh chain each run: sessions and vouchers of the last run name contracts gone
        // with it.
        remove_db(&db)?;
        let mut command = Command::new(&local.tools.router);
        command
            .arg("serve")
            .arg("--rpc-url")
            .arg(&local.rpc)
            .arg("--deployment")
            .arg(local.state.join("deployment.json"))
            .arg("--db")
            .arg(&db)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", local.ports.router))
            .arg("--allow-private-endpoints")
            .env(
                "MORPHEUS_ROUTER_KEY",
                local.accounts.router.to_bytes().to_string(),
            );
        self.add(Service::spawn(
            "morpheus-router",
            command,
            &local.tools.root,
            local.log("router"),
        )?);

        let router = RouterClient::new(&local.router_url())?;
        let started = Instant::now();
        loop {
            self.check()?;
            match router.allowance(local.accounts.user.address()).await {
                Ok(_) => return Ok(router),
                Err(e) if started.elapsed() > ROUTER_START => {
                    return Err(self.late(format!("it answers {e}")));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }

    /// Starts the gateway on `socket`, signing as the user, with a fresh outbox at `outbox`.
    pub(super) async fn start_gateway(
        &mut self,
        local: &Local<'_>,
        outbox: PathBuf,
        socket: std::net::TcpListener,
    ) -> Result<()> {
        // Reports left from an earlier run are for sessions of a chain that is gone.
        remove_db(&outbox)?;
        let config = GatewayConfig::new(
            local.rpc.clone(),
            local.router_url(),
            local.deployment,
            local.accounts.user.clone(),
            outbox,
        );
        let gateway = Gateway::connect(config).await?;
        socket
            .set_nonblocking(true)
            .map_err(|e| Error::io("gateway socket", e))?;
        let listener = tokio::net::TcpListener::from_std(socket)
            .map_err(|e| Error::io("gateway socket", e))?;
        let (tx, rx) = oneshot::channel();
        // The sender dropped (this devnet dropped unstopped) ends the gateway as well.
        let task = tokio::spawn(gateway::run(listener, gateway, async move {
            let _ = rx.await;
        }));
        self.gateway = Some((tx, task));
        Ok(())
    }

    /// Resolves with an error when anything stops on its own.
    pub(super) async fn watch(&mut self) -> Error {
        loop {
            if let Err(e) = self.check() {
                return e;
            }
            if self
                .gateway
                .as_ref()
                .is_some_and(|(_, task)| task.is_finished())
                && let Some((_, task)) = self.gateway.take()
            {
                return match task.await {
                    Ok(Ok(())) => Error::Devnet("the gateway stopped".into()),
                    Ok(Err(e)) => Error::Devnet(format!("the gateway stopped: {e}")),
                    Err(e) => Error::Devnet(format!("the gateway's task failed: {e}")),
                };
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Stops the gateway (it finishes its chats), then the children, last started first;
    /// prints what it stopped.
    pub(super) async fn stop(mut self) {
        let mut stopped = Vec::new();
        if let Some((tx, mut task)) = self.gateway.take() {
            let _ = tx.send(());
            if tokio::time::timeout(STOP_GRACE, &mut task).await.is_err() {
                task.abort();
            }
            stopped.push("gateway".to_string());
        }
        while let Some(service) = self.services.pop() {
            let name = service.name();
            stopped.push(match service.stop(STOP_GRACE).await {
                Some(s) if !s.success() && !ended_by_sigterm(s) => format!("{name} ({s})"),
                _ => name.to_string(),
            });
        }
        if !stopped.is_empty() {
            println!("\nstopped: {}", stopped.join(", "));
        }
    }

    /// An error when a child has stopped.
    fn check(&mut self) -> Result<()> {
        self.services
            .iter_mut()
            .try_for_each(Service::check_running)
    }

    /// The error for the newest service not answering in time, with the end of its log.
    fn late(&self, what: String) -> Error {
        match self.services.last() {
            Some(s) => Error::Devnet(format!(
                "{} is not up in time ({what}); its log is {}{}",
                s.name(),
                s.log().display(),
                tail(s.log())
            )),
            None => Error::Devnet(what),
        }
    }
}

fn ended_by_sigterm(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(15)
}

/// Removes a SQLite database and its journal files.
fn remove_db(path: &Path) -> Result<()> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        match std::fs::remove_file(&file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(&file, e)),
        }
    }
    Ok(())
}
