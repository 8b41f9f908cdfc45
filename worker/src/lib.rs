#![doc = include_str!("../README.md")]

pub mod api;
pub mod bench;
pub mod claim;
mod config;
pub mod engine;
mod error;
mod heap;
pub mod kernels;
pub mod metrics;
pub mod model;
pub mod node;
pub mod runtime;
pub mod store;

pub use config::ProtocolConfig;
pub use error::{Error, Result};
