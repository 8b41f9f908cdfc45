#![doc = include_str!("../README.md")]

mod anvil;
mod binaries;
mod devnet;
mod error;
mod ids;
mod lock;
mod models;
mod postgres;
mod process;
mod setup;
mod worker;

pub use anvil::{ANVIL_ENV, anvil_path, spawn_anvil};
pub use binaries::workspace_binaries;
pub use devnet::{Devnet, FUNDED_ACCOUNTS};
pub use error::{Error, Result};
pub use ids::{unique_b256, unix_now};
pub use models::{
    gemma3_model, smollm2_model, tiny_arch_model, tiny_mixed_model, tiny_model,
    tiny_model_onnxruntime, tiny_weights,
};
pub use postgres::{
    POSTGRES_ENV, dump_text as postgres_dump_text, postgres_server,
    query_i64 as postgres_query_i64, recreate_database, run_sql as postgres_run_sql, test_database,
};
pub use process::{assert_refused, log_of, stop_with_signal};
pub use setup::{
    CACHE_ENV, cache_dir, ensure_installed, ort_environment, ort_library, python, repo_root,
};
pub use worker::{TestWorker, WorkerOptions};
