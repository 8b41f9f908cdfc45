use alloy::{
    primitives::{Address, U256},
    providers::DynProvider,
    rpc::types::TransactionReceipt,
};

use super::{
    MorClient,
    bindings::compute_pool::ComputePool::{self, ComputePoolInstance},
    call::{send, view},
};
use crate::Result;

/// Today's budget of the pool, in MOR (wei).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DailyBudget {
    /// The UTC day (days since the unix epoch).
    pub day: U256,
    /// 1% (the pool's budget bps) of the balance at the start of the day.
    pub budget: U256,
    /// Paid so far today.
    pub spent: U256,
    /// The bootstrap reserve.
    pub reserve: U256,
}

impl DailyBudget {
    /// What can still be paid today.
    pub fn remaining(&self) -> U256 {
        self.budget.saturating_sub(self.spent)
    }
}

/// Client of `ComputePool`: the compute bucket's MOR and its daily budget.
#[derive(Debug, Clone)]
pub struct ComputePoolClient {
    contract: ComputePoolInstance<DynProvider>,
    mor: MorClient,
}

impl ComputePoolClient {
    /// The pool at `address`; `mor` pays deposits.
    pub fn new(address: Address, provider: DynProvider, mor: MorClient) -> Self {
        Self {
            contract: ComputePool::new(address, provider),
            mor,
        }
    }

    /// The pool's address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// Deposits `amount` MOR (approved here): emissions into the compute bucket.
    pub async fn deposit(&self, amount: U256) -> Result<TransactionReceipt> {
        self.mor.ensure_allowance(self.address(), amount).await?;
        send(self.contract.deposit(amount)).await
    }

    /// Names the one `SessionRouter` allowed to pay from the pool (owner only, once).
    pub async fn set_session_router(&self, session_router: Address) -> Result<TransactionReceipt> {
        send(self.contract.setSessionRouter(session_router)).await
    }

    /// Today's budget, spending and reserve.
    pub async fn today(&self) -> Result<DailyBudget> {
        let day = view(self.contract.currentDay()).await?;
        let t = view(self.contract.today()).await?;
        Ok(DailyBudget {
            day,
            budget: t.budget,
            spent: t.spent,
            reserve: t.reserve_,
        })
    }

    /// MOR (wei) the pool holds, the reserve included.
    pub async fn balance(&self) -> Result<U256> {
        view(self.contract.balance()).await
    }

    /// The bootstrap reserve (wei).
    pub async fn reserve(&self) -> Result<U256> {
        view(self.contract.reserve()).await
    }

    /// Unix time the bootstrap period ends.
    pub async fn bootstrap_end(&self) -> Result<U256> {
        view(self.contract.bootstrapEnd()).await
    }
}
