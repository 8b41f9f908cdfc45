#![doc = include_str!("../README.md")]

pub mod api;
mod bootstrap;
mod chain_view;
mod config;
mod credit;
mod error;
mod fail;
mod metrics;
mod queue;
mod record;
mod reputation;
mod select;
mod service;
mod speed;
mod store;
mod usage;

pub use api::{router, run};
pub use config::RouterConfig;
pub use error::{Error, Result, Shortfall};
pub use fail::FailPolicy;
pub use service::AppState;
