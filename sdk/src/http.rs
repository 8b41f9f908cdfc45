//! What the SDK's HTTP clients share: one peer's base URL, JSON requests, and refusals mapped to
//! [`Error::Http`] with the peer's own reason (the OpenAI error shape every service here answers in).

use std::time::Duration;

use reqwest::{RequestBuilder, Response, Url};
use serde::de::DeserializeOwned;

use crate::{Error, Result, openai::ErrorBody};

/// An HTTP peer (`"router"`, `"provider"`) at a base URL.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    name: &'static str,
    http: reqwest::Client,
    base: Url,
}

impl Peer {
    /// A peer at `url`; `timeout` bounds whole requests (none for streams that may run long).
    pub(crate) fn new(name: &'static str, url: &str, timeout: Option<Duration>) -> Result<Self> {
        let mut builder = reqwest::Client::builder().connect_timeout(Duration::from_secs(10));
        if let Some(timeout) = timeout {
            builder = builder.timeout(timeout);
        }
        let http = builder.build().map_err(|e| Error::Transport {
            peer: name,
            message: e.to_string(),
        })?;
        Self::with_client(name, url, http)
    }

    /// A peer at `url` over `http`, whose settings (timeouts, pool) the caller chose.
    pub(crate) fn with_client(
        name: &'static str,
        url: &str,
        http: reqwest::Client,
    ) -> Result<Self> {
        let mut base = Url::parse(url).map_err(|e| Error::Transport {
            peer: name,
            message: format!("{name} URL {url:?} is not a URL: {e}"),
        })?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        Ok(Self { name, http, base })
    }

    /// The peer's name, for errors.
    pub(crate) fn name(&self) -> &'static str {
        self.name
    }

    /// `GET base/path`.
    pub(crate) fn get(&self, path: &str) -> Result<RequestBuilder> {
        Ok(self.http.get(self.url(path)?))
    }

    /// `POST base/path`.
    pub(crate) fn post(&self, path: &str) -> Result<RequestBuilder> {
        Ok(self.http.post(self.url(path)?))
    }

    /// Sends a request; a non-success answer becomes [`Error::Http`] with the peer's reason.
    pub(crate) async fn send(&self, request: RequestBuilder) -> Result<Response> {
        let response = request.send().await.map_err(|e| self.transport(e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error.message)
            .unwrap_or(text);
        Err(Error::Http {
            peer: self.name,
            status: status.as_u16(),
            message,
        })
    }

    /// Sends a request and decodes its JSON answer.
    pub(crate) async fn json<T: DeserializeOwned>(&self, request: RequestBuilder) -> Result<T> {
        self.send(request)
            .await?
            .json()
            .await
            .map_err(|e| self.transport(e))
    }

    /// A transport failure talking to this peer.
    pub(crate) fn transport(&self, e: reqwest::Error) -> Error {
        Error::Transport {
            peer: self.name,
            message: e.to_string(),
        }
    }

    /// `base/path` with `path` relative to the base.
    pub(crate) fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error::Transport {
            peer: self.name,
            message: format!("bad path {path}: {e}"),
        })
    }
}
