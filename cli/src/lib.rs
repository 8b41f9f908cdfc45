#![doc = include_str!("../README.md")]

pub mod account;
pub mod config;
pub mod devnet;
mod error;
pub mod gateway;
pub mod keystore;
pub mod network;

pub use error::{Error, Result};
