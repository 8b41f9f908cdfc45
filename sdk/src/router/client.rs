//! HTTP client of a `morpheus-router`.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use reqwest::{Response, StatusCode, Url};
use serde::{Serialize, de::DeserializeOwned};

use super::{Allowance, ProviderList, UsageReceipt};
use crate::{
    Error, Result,
    messages::{Assignment, ComputeRequest, CreditVoucher, Signed, UsageReport},
    openai::ErrorBody,
};

const PEER: &str = "router";

/// Client of one router (users ask it for compute and report usage; providers fetch vouchers).
#[derive(Debug, Clone)]
pub struct RouterClient {
    http: reqwest::Client,
    base: Url,
}

impl RouterClient {
    /// A client of the router at `url` (its base URL, e.g. `http://127.0.0.1:8090`).
    pub fn new(url: &str) -> Result<Self> {
        let mut base = Url::parse(url).map_err(|e| Error::Transport {
            peer: PEER,
            message: format!("router URL {url:?} is not a URL: {e}"),
        })?;
        if !base.path().ends_with('/') {
            base.set_path(&format!("{}/", base.path()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .build()
            .map_err(transport)?;
        Ok(Self { http, base })
    }

    /// Asks for a provider: the router checks the request and answers with a signed assignment.
    pub async fn request_compute(
        &self,
        request: &Signed<ComputeRequest>,
    ) -> Result<Signed<Assignment>> {
        self.post("v1/compute", request).await
    }

    /// Reports on a finished session (signed by the session's user).
    pub async fn report_usage(&self, report: &Signed<UsageReport>) -> Result<UsageReceipt> {
        self.post("v1/usage", report).await
    }

    /// The provider's newest cumulative voucher; `None` while it has earned nothing.
    pub async fn voucher(&self, provider: Address) -> Result<Option<Signed<CreditVoucher>>> {
        let response = self
            .http
            .get(self.url(&format!("v1/vouchers/{provider}"))?)
            .send()
            .await
            .map_err(transport)?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        json(response).await.map(Some)
    }

    /// Providers with a bid for `model_id`, cheapest first, with their records.
    pub async fn providers(&self, model_id: B256) -> Result<ProviderList> {
        let mut url = self.url("v1/providers")?;
        url.query_pairs_mut()
            .append_pair("model", &model_id.to_string());
        json(self.http.get(url).send().await.map_err(transport)?).await
    }

    /// A user's allowance today: `userMax`, used and remaining tokens.
    pub async fn allowance(&self, user: Address) -> Result<Allowance> {
        let response = self
            .http
            .get(self.url(&format!("v1/allowance/{user}"))?)
            .send()
            .await
            .map_err(transport)?;
        json(response).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T> {
        let response = self
            .http
            .post(self.url(path)?)
            .json(body)
            .send()
            .await
            .map_err(transport)?;
        json(response).await
    }

    fn url(&self, path: &str) -> Result<Url> {
        self.base.join(path).map_err(|e| Error::Transport {
            peer: PEER,
            message: format!("bad path {path}: {e}"),
        })
    }
}

fn transport(e: reqwest::Error) -> Error {
    Error::Transport {
        peer: PEER,
        message: e.to_string(),
    }
}

/// Decodes a success body, or turns a refusal into [`Error::Http`] with the router's reason.
async fn json<T: DeserializeOwned>(response: Response) -> Result<T> {
    let status = response.status();
    if !status.is_success() {
        let text = response.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&text)
            .map(|b| b.error.message)
            .unwrap_or(text);
        return Err(Error::Http {
            peer: PEER,
            status: status.as_u16(),
            message,
        });
    }
    response.json().await.map_err(transport)
}
