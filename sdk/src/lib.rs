#![doc = include_str!("../README.md")]

pub mod contracts;
pub mod deployments;
mod error;
mod http;
pub mod merkle;
pub mod messages;
pub mod openai;
pub mod provider;
pub mod router;

pub use deployments::{Deployment, Network};
pub use error::{Error, Result, TransportKind};
