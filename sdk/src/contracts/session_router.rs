use alloy::{
    primitives::{Address, B256, U256},
    providers::DynProvider,
    rpc::types::TransactionReceipt,
    sol_types::SolValue,
};

pub use super::bindings::session_router::ISessionRouter::{ClaimRecord, Reputation};
pub use super::bindings::session_router::SessionRouter::{VoucherClaimed, VoucherSkipped};
use super::{
    MorClient,
    bindings::{
        price_source::IPriceSource,
        session_router::{
            Messages,
            SessionRouter::{self, SessionRouterInstance},
        },
    },
    call::{SignedTx, receipt, send, send_signed, sign, submit, view},
};
use crate::{
    Error, Result,
    messages::{
        Assignment, ComputeRequest, CreditVoucher, LivenessChallenge, LivenessResponse,
        ReceiptRequest, ServiceReceipt, ServiceReceipts, Signed, UsageReport,
    },
};

/// Blocks per log query of [`SessionRouterClient::providers_paid_by`].
const LOG_WINDOW: u64 = 10_000;

/// A user's stake in `SessionRouter`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserStake {
    /// MOR (wei) staked now: the allowance is computed from it.
    pub staked: U256,
    /// MOR (wei) unstaked and waiting to become withdrawable.
    pub pending: U256,
    /// UTC day from which `pending` can be withdrawn.
    pub unlock_day: U256,
}

/// The prices `SessionRouter` computes the access rate from (`IPriceSource.prices()`), both in
/// USD with 18 decimals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prices {
    /// The USD price of 1 MOR.
    pub mor_usd: U256,
    /// The USD price of 1000 tokens of inference.
    pub tokens_usd: U256,
}

/// A router key's state (`SessionRouter.routerInfo`), pending changes applied from their
/// `effectiveAt`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouterInfo {
    /// Whether the key is authorised (false once removed).
    pub authorised: bool,
    /// The share (bps) of each day's budget its vouchers may pay, bootstrap payments included.
    pub share_bps: U256,
    /// What its vouchers have paid today.
    pub spent_today: U256,
}

/// Client of `SessionRouter`: user stakes, access rate, router signers, voucher claims.
#[derive(Debug, Clone)]
pub struct SessionRouterClient {
    contract: SessionRouterInstance<DynProvider>,
    mor: MorClient,
}

impl SessionRouterClient {
    /// The session router at `address`; `mor` pays stakes.
    pub fn new(address: Address, provider: DynProvider, mor: MorClient) -> Self {
        Self {
            contract: SessionRouter::new(address, provider),
            mor,
        }
    }

    /// A read-only client of the `SessionRouter` at `address` over `rpc_url`, for a party that
    /// knows only that address (a provider's worker): fails with [`Error::WrongChain`] when
    /// the node serves another chain than `chain_id`, and reads the MOR token from the contract.
    pub async fn connect(rpc_url: &str, chain_id: u64, address: Address) -> Result<Self> {
        use alloy::providers::{Provider, ProviderBuilder};
        let url = rpc_url
            .parse()
            .map_err(|e| Error::Rpc(format!("rpc url {rpc_url:?} is not a URL: {e}")))?;
        let provider = ProviderBuilder::new().connect_http(url).erased();
        let actual = provider
            .get_chain_id()
            .await
            .map_err(|e| Error::Rpc(e.to_string()))?;
        if actual != chain_id {
            return Err(Error::WrongChain {
                expected: chain_id,
                actual,
            });
        }
        let contract = SessionRouter::new(address, provider.clone());
        let mor = view(contract.mor()).await?;
        Ok(Self {
            contract,
            mor: MorClient::new(mor, provider, None),
        })
    }

    /// The contract's address (the EIP-712 verifying contract of the protocol's messages).
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    // --- users -------------------------------------------------------------------------------

    /// Stakes `amount` MOR (approved here) for the sender's daily allowance.
    pub async fn stake(&self, amount: U256) -> Result<TransactionReceipt> {
        self.mor.ensure_allowance(self.address(), amount).await?;
        send(self.contract.stake(amount)).await
    }

    /// Unstakes `amount`: it stops counting now and is withdrawable from the next UTC day.
    pub async fn unstake(&self, amount: U256) -> Result<TransactionReceipt> {
        send(self.contract.unstake(amount)).await
    }

    /// Withdraws the sender's unlocked unstaked MOR.
    pub async fn withdraw(&self) -> Result<TransactionReceipt> {
        send(self.contract.withdraw()).await
    }

    /// A user's stake.
    pub async fn stake_of(&self, user: Address) -> Result<UserStake> {
        let s = view(self.contract.stakeOf(user)).await?;
        Ok(UserStake {
            staked: s.staked,
            pending: s.pending,
            unlock_day: s.unlockDay,
        })
    }

    /// MOR (wei) staked by all users.
    pub async fn total_staked(&self) -> Result<U256> {
        view(self.contract.totalStaked()).await
    }

    /// Tokens the whole budget buys today: `budget * priceMOR / priceT * 1000`.
    pub async fn max_t(&self) -> Result<U256> {
        view(self.contract.maxT()).await
    }

    /// Tokens per whole MOR of stake per day.
    pub async fn access_rate(&self) -> Result<U256> {
        view(self.contract.accessRate()).await
    }

    /// Tokens `user` may be credited today.
    pub async fn user_max(&self, user: Address) -> Result<U256> {
        view(self.contract.userMax(user)).await
    }

    /// The price source `maxT`, `accessRate` and `userMax` read (owner-settable, so read it
    /// rather than the deployment file's address).
    pub async fn price_source(&self) -> Result<Address> {
        view(self.contract.priceSource()).await
    }

    /// The prices `maxT`, `accessRate` and `userMax` are computed from now: `prices()` of the
    /// current [`price_source`](Self::price_source) (two calls, not one atomic read).
    pub async fn prices(&self) -> Result<Prices> {
        let source = IPriceSource::new(self.price_source().await?, self.contract.provider());
        let p = view(source.prices()).await?;
        Ok(Prices {
            mor_usd: p.morUsd,
            tokens_usd: p.tokensUsd,
        })
    }

    // --- providers ---------------------------------------------------------------------------

    /// Claims vouchers (one or many routers, one or many providers) in one transaction.
    pub async fn claim(&self, vouchers: &[Signed<CreditVoucher>]) -> Result<TransactionReceipt> {
        let (messages, signatures) = claim_args(vouchers)?;
        send(self.contract.claim(messages, signatures)).await
    }

    /// Sends a claim of `vouchers` and returns its transaction's hash without waiting for it to
    /// be mined ([`receipt`](Self::receipt) tells how it ended): a claimant that must survive a
    /// crash records the hash before it waits.
    pub async fn submit_claim(&self, vouchers: &[Signed<CreditVoucher>]) -> Result<B256> {
        let (messages, signatures) = claim_args(vouchers)?;
        submit(self.contract.claim(messages, signatures)).await
    }

    /// Signs a claim of `vouchers` with `wallet` at the sender's `nonce` without sending it: its
    /// hash can be recorded before any node has the transaction ([`send_claim`](Self::send_claim)
    /// sends it).
    pub async fn sign_claim(
        &self,
        vouchers: &[Signed<CreditVoucher>],
        wallet: &alloy::network::EthereumWallet,
        nonce: u64,
    ) -> Result<SignedTx> {
        let (messages, signatures) = claim_args(vouchers)?;
        sign(
            self.contract.provider(),
            self.contract.claim(messages, signatures),
            wallet,
            nonce,
        )
        .await
    }

    /// Sends a claim [`sign_claim`](Self::sign_claim)ed before; returns its hash once the node
    /// accepted it.
    pub async fn send_claim(&self, claim: &SignedTx) -> Result<B256> {
        send_signed(self.contract.provider(), claim).await
    }

    /// The receipt of transaction `tx` (a [`submit_claim`](Self::submit_claim)): `None` while it
    /// is pending or when the node does not know it.
    pub async fn receipt(&self, tx: B256) -> Result<Option<TransactionReceipt>> {
        receipt(self.contract.provider(), tx).await
    }

    /// The vouchers a claim settled, read from its receipt (`VoucherClaimed`, in claim order):
    /// what each paid now from the daily budget and from the bootstrap reserve.
    pub fn claimed(&self, receipt: &TransactionReceipt) -> Vec<VoucherClaimed> {
        receipt
            .logs()
            .iter()
            .filter(|log| log.address() == self.address())
            .filter_map(|log| log.log_decode::<VoucherClaimed>().ok())
            .map(|log| log.inner.data)
            .collect()
    }

    /// The gas a claim of `vouchers` would use now (a revert is the contract's error).
    pub async fn estimate_claim_gas(&self, vouchers: &[Signed<CreditVoucher>]) -> Result<u64> {
        let (messages, signatures) = claim_args(vouchers)?;
        self.contract
            .claim(messages, signatures)
            .estimate_gas()
            .await
            .map_err(super::call::contract_error)
    }

    /// The vouchers a claim skipped, read from its receipt (`VoucherSkipped`, in claim order): in a
    /// claim of several, a voucher older than the newest already claimed for its router and
    /// provider (someone claimed a fresher one first) pays nothing and is skipped, while the rest
    /// pay. A claim of one such voucher reverts instead (`SessionRouterStaleVoucher`).
    pub fn skipped(&self, receipt: &TransactionReceipt) -> Vec<VoucherSkipped> {
        receipt
            .logs()
            .iter()
            .filter(|log| log.address() == self.address())
            .filter_map(|log| log.log_decode::<VoucherSkipped>().ok())
            .map(|log| log.inner.data)
            .collect()
    }

    /// What `router` has paid `provider` so far, and its last counters.
    pub async fn claim_record(&self, router: Address, provider: Address) -> Result<ClaimRecord> {
        view(self.contract.claimRecord(router, provider)).await
    }

    /// The providers that claims of `router`'s vouchers have paid since `from_block` (its
    /// `VoucherClaimed` events), each once, in address order. The logs are read in windows of
    /// [`LOG_WINDOW`] blocks, so that nodes limiting a log query's range answer too.
    pub async fn providers_paid_by(
        &self,
        router: Address,
        from_block: u64,
    ) -> Result<Vec<Address>> {
        use alloy::providers::Provider;
        let latest = self
            .contract
            .provider()
            .get_block_number()
            .await
            .map_err(|e| Error::Rpc(e.to_string()))?;
        let mut paid = std::collections::BTreeSet::new();
        let mut start = from_block;
        while start <= latest {
            let end = start.saturating_add(LOG_WINDOW - 1).min(latest);
            let logs = self
                .contract
                .VoucherClaimed_filter()
                .topic1(router.into_word())
                .from_block(start)
                .to_block(end)
                .query()
                .await
                .map_err(super::call::contract_error)?;
            paid.extend(logs.into_iter().map(|(event, _)| event.provider));
            start = end + 1;
        }
        Ok(paid.into_iter().collect())
    }

    /// A provider's record over all routers (tokens, sessions, failed, earned).
    pub async fn reputation(&self, provider: Address) -> Result<Reputation> {
        view(self.contract.reputation(provider)).await
    }

    // --- routers -----------------------------------------------------------------------------

    /// Whether `router` is an authorised router signer.
    pub async fn is_router(&self, router: Address) -> Result<bool> {
        view(self.contract.isRouter(router)).await
    }

    /// `router`'s state now: authorised, its share of the daily budget, spent today.
    pub async fn router_info(&self, router: Address) -> Result<RouterInfo> {
        let r = view(self.contract.routerInfo(router)).await?;
        Ok(RouterInfo {
            authorised: r.authorised,
            share_bps: r.shareBps,
            spent_today: r.spentToday,
        })
    }

    /// Every authorised router signer.
    pub async fn routers(&self) -> Result<Vec<Address>> {
        view(self.contract.routers()).await
    }

    /// Announces `router` with a share (bps) of the daily budget (owner only): it is authorised
    /// from `ROUTER_DELAY` seconds later ([`pending_router_change`](Self::pending_router_change)).
    pub async fn add_router(&self, router: Address, share_bps: u64) -> Result<TransactionReceipt> {
        send(self.contract.addRouter(router, U256::from(share_bps))).await
    }

    /// Sets a router's share (owner only): a decrease at once, an increase announced like
    /// [`add_router`](Self::add_router).
    pub async fn set_router_share(
        &self,
        router: Address,
        share_bps: u64,
    ) -> Result<TransactionReceipt> {
        send(self.contract.setRouterShare(router, U256::from(share_bps))).await
    }

    /// Cancels an announced add or share increase (owner only).
    pub async fn cancel_router_change(&self, router: Address) -> Result<TransactionReceipt> {
        send(self.contract.cancelRouterChange(router)).await
    }

    /// Removes a router signer at once (owner only): its vouchers issued up to now stay
    /// claimable within its share for `REMOVED_ROUTER_GRACE`, later ones never pay.
    pub async fn remove_router(&self, router: Address) -> Result<TransactionReceipt> {
        send(self.contract.removeRouter(router)).await
    }

    /// The add or increase announced for `router` and not applied yet: `(shareBps,
    /// effectiveAt)`, `None` when there is none.
    pub async fn pending_router_change(&self, router: Address) -> Result<Option<(U256, U256)>> {
        let p = view(self.contract.pendingRouterChange(router)).await?;
        Ok((!p.effectiveAt.is_zero()).then_some((p.shareBps, p.effectiveAt)))
    }

    /// Seconds between announcing a router change and its effect.
    pub async fn router_delay(&self) -> Result<U256> {
        view(self.contract.ROUTER_DELAY()).await
    }

    /// The part of `user`'s daily allowance `router` may grant: `userMax × shareBps / 10,000`
    /// (0 for a router that is not authorised), so honest routers together never grant more
    /// than `userMax` a day.
    pub async fn router_user_max(&self, router: Address, user: Address) -> Result<U256> {
        view(self.contract.routerUserMax(router, user)).await
    }

    // --- hashing (the contract's view of each message's EIP-712 digest) ------------------------

    /// The contract's EIP-712 domain separator.
    pub async fn domain_separator(&self) -> Result<B256> {
        view(self.contract.domainSeparator()).await
    }

    /// The contract's digest of a compute request.
    pub async fn hash_compute_request(&self, m: &ComputeRequest) -> Result<B256> {
        view(self.contract.hashComputeRequest(recast(m)?)).await
    }

    /// The contract's digest of an assignment.
    pub async fn hash_assignment(&self, m: &Assignment) -> Result<B256> {
        view(self.contract.hashAssignment(recast(m)?)).await
    }

    /// The contract's digest of a usage report.
    pub async fn hash_usage_report(&self, m: &UsageReport) -> Result<B256> {
        view(self.contract.hashUsageReport(recast(m)?)).await
    }

    /// The contract's digest of a credit voucher.
    pub async fn hash_credit_voucher(&self, m: &CreditVoucher) -> Result<B256> {
        view(self.contract.hashCreditVoucher(recast(m)?)).await
    }

    /// The contract's digest of a liveness challenge.
    pub async fn hash_liveness_challenge(&self, m: &LivenessChallenge) -> Result<B256> {
        view(self.contract.hashLivenessChallenge(recast(m)?)).await
    }

    /// The contract's digest of a liveness response.
    pub async fn hash_liveness_response(&self, m: &LivenessResponse) -> Result<B256> {
        view(self.contract.hashLivenessResponse(recast(m)?)).await
    }

    /// The contract's digest of a service receipt (what the provider signs).
    pub async fn hash_service_receipt(&self, m: &ServiceReceipt) -> Result<B256> {
        view(self.contract.hashServiceReceipt(recast(m)?)).await
    }

    /// The contract's digest of a receipt request (what the router signs).
    pub async fn hash_receipt_request(&self, m: &ReceiptRequest) -> Result<B256> {
        view(self.contract.hashReceiptRequest(recast(m)?)).await
    }

    /// The contract's digest of a provider's receipts for several sessions.
    pub async fn hash_service_receipts(&self, m: &ServiceReceipts) -> Result<B256> {
        view(self.contract.hashServiceReceipts(recast(m)?)).await
    }
}

/// Converts between the SDK's documented message types and the ABI-generated copies of the same
/// Solidity structs: their ABI encodings are identical by construction.
fn recast<A: SolValue, B: SolValue + From<<B::SolType as alloy::sol_types::SolType>::RustType>>(
    a: &A,
) -> Result<B> {
    B::abi_decode(&a.abi_encode())
        .map_err(|e| Error::Rpc(format!("message layout differs from the ABI: {e}")))
}

/// `claim`'s arguments: the vouchers' messages and their signatures.
fn claim_args(
    vouchers: &[Signed<CreditVoucher>],
) -> Result<(Vec<Messages::CreditVoucher>, Vec<alloy::primitives::Bytes>)> {
    vouchers
        .iter()
        .map(|v| {
            Ok((
                recast::<_, Messages::CreditVoucher>(&v.message)?,
                v.signature_bytes(),
            ))
        })
        .collect()
}
