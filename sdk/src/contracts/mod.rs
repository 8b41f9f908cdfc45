//! Typed clients of the protocol's contracts.
//!
//! Each client wraps one deployed contract over an alloy provider (with a wallet for the
//! state-changing calls), waits for receipts, and decodes reverts into [`Revert`].

pub mod bindings;
mod call;
mod chain;
mod compute_pool;
mod price_feed;
mod provider_registry;
mod revert;
mod session_router;
mod token;

pub use call::SignedTx;
pub use chain::Protocol;
pub use chain::wallet_provider;
pub use compute_pool::{ComputePoolClient, DailyBudget};
pub use price_feed::{FeedRound, PriceFeedClient};
pub use provider_registry::{
    Bid, GGUF, Model, ProviderRecord, ProviderRegistryClient, format_label, model_format,
};
pub use revert::Revert;
pub use session_router::{
    ClaimRecord, Prices, Reputation, RouterInfo, SessionRouterClient, UserStake, VoucherClaimed,
    VoucherSkipped,
};
pub use token::MorClient;
