//! The kit's one error type.

use std::path::PathBuf;

/// What can go wrong while setting up a test's world.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An SDK call (deploying, a transaction, a signature) failed.
    #[error(transparent)]
    Sdk(#[from] morpheus_sdk::Error),
    /// The worker failed to load or serve.
    #[error(transparent)]
    Worker(#[from] morpheus_worker::Error),
    /// A file or directory could not be used.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An install step, a local node or a model preparation failed.
    #[error("{0}")]
    Setup(String),
}

impl Error {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The kit's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
