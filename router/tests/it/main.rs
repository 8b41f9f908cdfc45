//! Integration tests of the router: a real anvil with the protocol deployed (`Devnet`), a real
//! SQLite file, a real `morpheus-worker` serving the tiny test model, all through `RouterClient`.

mod attacks;
mod attacks_endpoints;
mod attacks_liveness;
mod attacks_reports;
mod attacks_usage;
mod batching;
mod binary;
mod bootstrap;
mod chain_index;
mod common;
mod crash;
mod edges;
mod fail_policy;
mod flow;
mod health;
mod hygiene;
mod instances;
mod persistence;
mod queue;
mod refusals;
mod reputation;
mod select;
mod speed;
mod worker_claim;
mod worker_crash;
mod worker_node;
