//! A local protocol for tests and demos: anvil from `node_modules`, the contracts deployed from
//! the committed artifacts, accounts funded with test MOR.

mod anvil;
mod devnet;

pub use anvil::{ANVIL_ENV, anvil_path, repo_root, spawn_anvil};
pub use devnet::{Devnet, FUNDED_ACCOUNTS};
