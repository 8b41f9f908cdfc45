//! The provider's node (`morpheus-worker run`): its configuration, its standing on-chain made
//! to match it at every start, and the automatic claims beside the API.

pub mod auto_claim;
pub mod config;
pub mod key;
pub mod onchain;
pub mod progress;
pub mod retry;

pub use config::{EthPrice, NodeConfig};
