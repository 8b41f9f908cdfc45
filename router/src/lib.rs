#![doc = include_str!("../README.md")]

pub mod api;
mod booked;
mod bootstrap;
mod chain_index;
mod chain_view;
mod config;
mod credit;
mod error;
mod fail;
mod metrics;
mod queue;
mod rate_limit;
mod receipts;
mod reconcile;
mod record;
mod reputation;
mod request_context;
mod select;
mod service;
mod session_id;
mod speed;
mod store;
mod usage;

pub use api::{router, run};
pub use config::RouterConfig;
pub use error::{Error, Result, Shortfall};
pub use fail::FailPolicy;
pub use rate_limit::RateLimit;
pub use request_context::REQUEST_ID;
pub use service::AppState;
