//! HTTP client of a `morpheus-router`.

use std::time::Duration;

use alloy::primitives::{Address, B256};
use reqwest::StatusCode;

use super::{Allowance, ComputeBody, Preferences, ProviderList, UsageReceipt};
use crate::{
    Error, Result,
    http::Peer,
    messages::{Assignment, ComputeRequest, CreditVoucher, Signed, UsageReport},
};

/// Client of one router (users ask it for compute and report usage; providers fetch vouchers).
#[derive(Debug, Clone)]
pub struct RouterClient {
    peer: Peer,
}

impl RouterClient {
    /// A client of the router at `url` (its base URL, e.g. `http://127.0.0.1:8090`).
    pub fn new(url: &str) -> Result<Self> {
        // A compute request includes the router's liveness check of a provider: allow for it.
        // Its refusal lists every provider it passed over, with why: read more than a line.
        Ok(Self {
            peer: Peer::new("router", url, Some(Duration::from_secs(120)))?.error_limit(64 * 1024),
        })
    }

    /// Asks for a provider: the router checks the request and answers with a signed assignment.
    pub async fn request_compute(
        &self,
        request: &Signed<ComputeRequest>,
    ) -> Result<Signed<Assignment>> {
        self.peer
            .json(self.peer.post("v1/compute")?.json(request))
            .await
    }

    /// [`request_compute`](Self::request_compute) with the user's preferences for the choice
    /// of provider (order, maximum price).
    pub async fn request_compute_with(
        &self,
        request: &Signed<ComputeRequest>,
        preferences: Preferences,
    ) -> Result<Signed<Assignment>> {
        let body = ComputeBody {
            request: request.clone(),
            preferences,
        };
        self.peer
            .json(self.peer.post("v1/compute")?.json(&body))
            .await
    }

    /// Reports on a finished session (signed by the session's user).
    pub async fn report_usage(&self, report: &Signed<UsageReport>) -> Result<UsageReceipt> {
        self.peer
            .json(self.peer.post("v1/usage")?.json(report))
            .await
    }

    /// The provider's newest cumulative voucher; `None` until one of its sessions is reported (it may pay 0 and
    /// only carry the counters).
    pub async fn voucher(&self, provider: Address) -> Result<Option<Signed<CreditVoucher>>> {
        match self
            .peer
            .json(self.peer.get(&format!("v1/vouchers/{provider}"))?)
            .await
        {
            Ok(voucher) => Ok(Some(voucher)),
            Err(Error::Http { status, .. }) if status == StatusCode::NOT_FOUND.as_u16() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Providers with a bid for `model_id`, cheapest first, with their records.
    pub async fn providers(&self, model_id: B256) -> Result<ProviderList> {
        let mut url = self.peer.url("v1/providers")?;
        url.query_pairs_mut()
            .append_pair("model", &model_id.to_string());
        self.peer.json(self.peer.get(url.as_str())?).await
    }

    /// A user's allowance today: `userMax`, used and remaining tokens.
    pub async fn allowance(&self, user: Address) -> Result<Allowance> {
        self.peer
            .json(self.peer.get(&format!("v1/allowance/{user}"))?)
            .await
    }
}
