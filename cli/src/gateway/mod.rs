//! The gateway: an OpenAI-compatible endpoint (`http://127.0.0.1:PORT/v1`) in front of the
//! network. Per chat request it signs a `ComputeRequest` with the user's key, gets an assignment
//! from the router, streams the provider's answer through (failing over to another provider
//! when one fails before its first token), judges the session and signs and sends the usage
//! report, kept in an outbox until the router has it. `docs/gateway.md` has the rules.
//!
//! [`Gateway::chat`] is the one-shot path (`morpheus chat`); [`run`] serves the HTTP API
//! (`morpheus gateway`).

mod answer;
mod api;
pub mod catalog;
pub mod completions;
mod config;
pub mod failover;
pub mod judge;
pub mod outbox;
pub mod refusal;
pub mod reports;
pub mod request;
mod session;
mod terminal;
pub mod tokens;

use std::sync::Arc;

use alloy::sol_types::Eip712Domain;
pub use answer::Answer;
pub use api::{router, run};
pub use config::GatewayConfig;
use morpheus_sdk::{
    openai::{ChatCompletionRequest, CompletionRequest, ModelList},
    router::RouterClient,
};
pub use terminal::chat_to_terminal;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use self::{catalog::Catalog, outbox::Outbox, session::Request};
use crate::{Error, Result};

/// The gateway. Cheap to clone: every clone shares one state.
#[derive(Debug, Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

/// What every request shares.
#[derive(Debug)]
pub(crate) struct Inner {
    config: GatewayConfig,
    domain: Eip712Domain,
    router: RouterClient,
    /// One connection pool for every provider.
    http: reqwest::Client,
    catalog: Catalog,
    outbox: Outbox,
    /// Sessions being passed on and reports being sent: [`Gateway::drain`] waits for them.
    tasks: TaskTracker,
}

impl Gateway {
    /// Opens the outbox and sets up the clients; reports left in the outbox are sent again in
    /// the background. The chain is connected on first use (a gateway started while it is
    /// down answers 502 until it is up), but tried once here so a wrong chain is logged at start.
    pub async fn connect(config: GatewayConfig) -> Result<Self> {
        let outbox = Outbox::open(&config.outbox)?;
        let router = RouterClient::new(&config.router_url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .build()
            .map_err(|e| Error::Config(format!("the HTTP client cannot be built: {e}")))?;
        let catalog = Catalog::new(
            config.rpc_url.clone(),
            config.deployment,
            config.models_ttl,
            config.chain_timeout,
        );
        if let Err(e) = catalog.chain().await {
            warn!(target: "gateway", rpc = %config.rpc_url, error = %e, "the chain cannot be read yet");
        }
        let inner = Arc::new(Inner {
            domain: config.deployment.domain(),
            config,
            router,
            http,
            catalog,
            outbox,
            tasks: TaskTracker::new(),
        });
        let gateway = Self { inner };
        let resend = gateway.clone();
        gateway.inner.tasks.spawn(async move {
            resend.resend_outbox().await;
        });
        Ok(gateway)
    }

    /// The settings it runs with.
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }

    /// The outbox of reports not yet sent.
    pub fn outbox(&self) -> &Outbox {
        &self.inner.outbox
    }

    /// The models the network serves, by name (`GET /v1/models`).
    pub async fn models(&self) -> Result<ModelList> {
        self.inner.catalog.list().await
    }

    /// One chat through the network. Returns once a provider has sent its first token (or its
    /// whole, empty answer); the rest streams through the [`Answer`]. Every session it opens is
    /// reported, in the background: call [`drain`](Self::drain) before the process exits.
    pub async fn chat(&self, request: ChatCompletionRequest) -> Result<Answer> {
        request::validate(&request, self.inner.config.max_choices)?;
        let id = request_id();
        let model = self.inner.catalog.resolve(&request.model).await?;
        let config = &self.inner.config;
        // Tools in use are described to the model: their text counts towards the prompt.
        let shown = match request.tool_choice() {
            Ok(morpheus_sdk::openai::ToolChoice::None) | Err(_) => Vec::new(),
            Ok(_) => request.tool_functions().unwrap_or_default(),
        };
        let token_max = tokens::token_max_with(
            tokens::prompt_bound_with_tools(&request.messages, &shown),
            request.requested_max_tokens(),
            config.default_max_tokens,
            request.n.unwrap_or(1),
            config.max_session_tokens,
        );
        info!(target: "gateway", request = %id, model = %model.name, model_id = %model.model_id, token_max, stream = request.stream, "chat request");
        self.answer(Request::new(id, model, token_max, request))
            .await
    }

    /// One text completion through the network (`POST /v1/completions`), as [`chat`](Self::chat):
    /// the answer's chunks are chat chunks carrying the text (`completions::as_completion_chunk`
    /// writes them back).
    pub async fn complete(&self, request: CompletionRequest) -> Result<Answer> {
        completions::validate(&request, self.inner.config.max_choices)?;
        let id = request_id();
        let model = self.inner.catalog.resolve(&request.model).await?;
        let config = &self.inner.config;
        let token_max = tokens::token_max_with(
            completions::prompt_bound(&request.prompt),
            request.max_tokens,
            config.default_max_tokens,
            request.n.unwrap_or(1),
            config.max_session_tokens,
        );
        info!(target: "gateway", request = %id, model = %model.name, model_id = %model.model_id, token_max, stream = request.stream, "completion request");
        self.answer(Request::completion(id, model, token_max, request))
            .await
    }

    /// Runs `request` in a task of its own: a client that goes away while the providers are
    /// tried does not cancel a session half-way; the answer it no longer waits for is reported
    /// as any other.
    async fn answer(&self, request: Request) -> Result<Answer> {
        let inner = self.inner.clone();
        self.inner
            .tasks
            .spawn(async move { inner.answer(request).await })
            .await
            .map_err(|e| Error::NoAnswer(format!("the request's task failed: {e}")))?
    }

    /// Sends the reports waiting in the outbox once; logs what it could not.
    pub async fn resend_outbox(&self) {
        match reports::resend_pending(&self.inner.router, &self.inner.outbox).await {
            Ok(0) => {}
            Ok(n) => info!(target: "gateway::reports", sent = n, "reports from the outbox sent"),
            Err(e) => warn!(target: "gateway::reports", error = %e, "the outbox could not be read"),
        }
    }

    /// Waits until every session started is over and its report sent or kept in the outbox.
    pub async fn drain(&self) {
        let tasks = &self.inner.tasks;
        tasks.close();
        tasks.wait().await;
        tasks.reopen();
    }
}

/// A fresh request id: `req-` and 16 hex digits.
fn request_id() -> String {
    format!("req-{:016x}", rand::random::<u64>())
}
