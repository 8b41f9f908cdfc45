//! A price feed in the shape of Chainlink's aggregators (`IAggregatorV3`): the latest round's
//! answer, its decimals and when it was updated. A provider's node reads ETH/USD from one to
//! price a claim's gas in MOR; whether an answer is fresh enough is the reader's rule.

use alloy::{
    primitives::{Address, I256},
    providers::DynProvider,
};

use super::{
    bindings::aggregator_v3::IAggregatorV3::{self, IAggregatorV3Instance},
    call::view,
};
use crate::Result;

/// A feed's latest round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeedRound {
    /// The price, with [`decimals`](Self::decimals) decimals.
    pub answer: I256,
    /// The decimals of `answer`.
    pub decimals: u8,
    /// When the answer was last updated (unix seconds).
    pub updated_at: u64,
}

/// Client of a Chainlink-shaped price feed.
#[derive(Debug, Clone)]
pub struct PriceFeedClient {
    contract: IAggregatorV3Instance<DynProvider>,
}

impl PriceFeedClient {
    /// The feed at `address`.
    pub fn new(address: Address, provider: DynProvider) -> Self {
        Self {
            contract: IAggregatorV3::new(address, provider),
        }
    }

    /// The feed's address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// The latest round (two calls: the decimals and the round).
    pub async fn latest(&self) -> Result<FeedRound> {
        let decimals = view(self.contract.decimals()).await?;
        let round = view(self.contract.latestRoundData()).await?;
        Ok(FeedRound {
            answer: round.answer,
            decimals,
            updated_at: u64::try_from(round.updatedAt).unwrap_or(u64::MAX),
        })
    }
}
