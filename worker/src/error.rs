//! The crate's one error type.

use std::path::PathBuf;

/// Everything that can go wrong in the worker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// ONNX Runtime refused a call (session creation, a run, a tensor).
    #[error("onnx runtime: {0}")]
    Ort(#[from] ort::Error),
    /// The ONNX Runtime shared library could not be found or loaded.
    #[error("onnx runtime library: {0}")]
    OrtLibrary(String),
    /// A model directory is missing a file or holds something the worker cannot serve.
    #[error("model {path}: {reason}")]
    Model {
        /// The model directory or file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The tokenizer failed to load, encode or decode.
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    /// The chat template failed to compile or render.
    #[error("chat template: {0}")]
    Template(#[from] minijinja::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// JSON that does not parse.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// A protocol message failed its check, or the model's Merkle tree could not be built.
    #[error(transparent)]
    Protocol(#[from] morpheus_sdk::Error),
    /// A generation request the engine cannot run (too long a prompt, bad sampling values).
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The engine's queue is full.
    #[error("the server is busy: {queued} requests are waiting")]
    Busy {
        /// Requests waiting.
        queued: usize,
    },
    /// The decoder behaved unexpectedly (a missing output, a wrong shape).
    #[error("engine: {0}")]
    Engine(String),
    /// The engine has stopped (shutdown or a fatal runtime error).
    #[error("the engine has stopped")]
    EngineStopped,
    /// The worker's database (`store`) could not be opened, read or written.
    #[error("database {path}: {source}")]
    Store {
        /// The database file.
        path: PathBuf,
        /// SQLite's error.
        source: rusqlite::Error,
    },
    /// A setting of the node's configuration is wrong (the message names it).
    #[error("configuration: {0}")]
    Config(String),
    /// Model preparation (the Python converter) failed.
    #[error("model preparation failed: {0}")]
    Prepare(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn store(path: impl Into<PathBuf>, source: rusqlite::Error) -> Self {
        Self::Store {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn model(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Self::Model {
            path: path.into(),
            reason: reason.into(),
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
