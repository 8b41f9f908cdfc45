use alloy::{
    primitives::{Address, U256},
    providers::DynProvider,
    rpc::types::TransactionReceipt,
};

use super::{
    bindings::test_mor::TestMOR::{self, TestMORInstance},
    call::{send, view},
};
use crate::{Error, Result};

/// Client of the MOR token (any ERC-20; `mint` exists only on the local test token).
#[derive(Debug, Clone)]
pub struct MorClient {
    contract: TestMORInstance<DynProvider>,
    sender: Option<Address>,
}

impl MorClient {
    /// The token at `address`.
    pub fn new(address: Address, provider: DynProvider, sender: Option<Address>) -> Self {
        Self {
            contract: TestMOR::new(address, provider),
            sender,
        }
    }

    /// The token's address.
    pub fn address(&self) -> Address {
        *self.contract.address()
    }

    /// MOR (wei) held by `account`.
    pub async fn balance_of(&self, account: Address) -> Result<U256> {
        view(self.contract.balanceOf(account)).await
    }

    /// MOR (wei) `spender` may move for `owner`.
    pub async fn allowance(&self, owner: Address, spender: Address) -> Result<U256> {
        view(self.contract.allowance(owner, spender)).await
    }

    /// Total MOR supply (wei); the access rate divides by it.
    pub async fn total_supply(&self) -> Result<U256> {
        view(self.contract.totalSupply()).await
    }

    /// Lets `spender` move `amount` of the sender's MOR.
    pub async fn approve(&self, spender: Address, amount: U256) -> Result<TransactionReceipt> {
        send(self.contract.approve(spender, amount)).await
    }

    /// Sends `amount` MOR to `to`.
    pub async fn transfer(&self, to: Address, amount: U256) -> Result<TransactionReceipt> {
        send(self.contract.transfer(to, amount)).await
    }

    /// Mints test MOR (local test token only; the owner only).
    pub async fn mint(&self, to: Address, amount: U256) -> Result<TransactionReceipt> {
        send(self.contract.mint(to, amount)).await
    }

    /// Approves `spender` for `amount` unless the allowance already covers it.
    pub(crate) async fn ensure_allowance(&self, spender: Address, amount: U256) -> Result<()> {
        let owner = self
            .sender
            .ok_or_else(|| Error::Rpc("no wallet: connect with a signer".into()))?;
        if self.allowance(owner, spender).await? < amount {
            self.approve(spender, amount).await?;
        }
        Ok(())
    }
}
