//! What one devnet run shows at the end, every figure read back from the chain or the router
//! (docs/devnet.md says how to read each one again).

use alloy::primitives::{Address, B256, U256, utils::format_ether};
use serde::Serialize;

/// The run's outcome: the chat, the credit, the payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// The gateway's base URL, `http://127.0.0.1:PORT/v1`.
    pub gateway_url: String,
    /// The model's registered name.
    pub model: String,
    /// Its id in `ProviderRegistry`.
    pub model_id: B256,
    /// The provider that served and was paid.
    pub provider: Address,
    /// The answer to the question.
    pub answer: String,
    /// Prompt tokens, as the gateway's stream counted them.
    pub prompt_tokens: u64,
    /// Completion tokens, likewise.
    pub completion_tokens: u64,
    /// The provider's bid, MOR (wei) per token (`ProviderRegistry.getBid(provider, modelId)`).
    pub bid_per_token: U256,
    /// What a token earns, MOR (wei): the bid capped at the reference price of the
    /// SessionRouter's price source, `tokensUsd * 1e15 / morUsd` (docs/protocol.md, "Credit per
    /// token"). A credited session earns its tokens times this.
    pub price_per_token: U256,
    /// Tokens the claim settled: `SessionRouter.claimRecord(router, provider).tokens`.
    pub tokens: u64,
    /// MOR (wei) the router credited the provider: its voucher's `cumulativeAmount` plus
    /// `cumulativeBootstrap`.
    pub credited: U256,
    /// MOR (wei) the claim paid: `claimRecord.paid` plus `bootstrapPaid`, which is also what the
    /// provider's MOR balance grew by.
    pub paid: U256,
    /// The claim's transaction.
    pub claim_tx: B256,
    /// Gas the claim used (its receipt's `gasUsed`).
    pub claim_gas: u64,
    /// Today's budget of the pool (`ComputePool.today()`), MOR (wei).
    pub budget: U256,
    /// What is left of it after the claim.
    pub budget_left: U256,
}

impl Summary {
    /// Lines for people.
    pub fn render(&self) -> String {
        format!(
            "model        {} ({})\n\
             tokens       {} settled on-chain ({} prompt + {} completion in the chat)\n\
             price        {} MOR per token (the bid, {} MOR, capped at the reference price)\n\
             credited     {} MOR by the router's voucher\n\
             paid         {} MOR to provider {} (tx {})\n\
             gas used     {} (the claim)\n\
             budget left  {} MOR of today's {} MOR\n\
             gateway      {}\n",
            self.model,
            self.model_id,
            self.tokens,
            self.prompt_tokens,
            self.completion_tokens,
            format_ether(self.price_per_token),
            format_ether(self.bid_per_token),
            format_ether(self.credited),
            format_ether(self.paid),
            self.provider,
            self.claim_tx,
            self.claim_gas,
            format_ether(self.budget_left),
            format_ether(self.budget),
            self.gateway_url,
        )
    }
}
