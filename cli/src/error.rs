//! The crate's errors: each names what was wrong, in one line a user can act on.

use std::path::PathBuf;

/// What can go wrong in `morpheus`.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A setting is missing or makes no sense (the message names it and where it comes from).
    #[error("config: {0}")]
    Config(String),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The keystore file is missing, unreadable or cannot be decrypted with the password.
    #[error("keystore {path}: {reason}")]
    Keystore {
        /// The keystore file.
        path: PathBuf,
        /// Why (a wrong password says so; the key itself never appears).
        reason: String,
    },
    /// No key is configured: neither a keystore file nor `MORPHEUS_KEY`.
    #[error(
        "no key: create one with `morpheus key new` (or import one with `morpheus key import`), or set MORPHEUS_KEY"
    )]
    NoKey,
    /// An amount of MOR that is not a decimal number of MOR.
    #[error("{what}: {value:?} is not an amount of MOR ({reason})")]
    BadAmount {
        /// Which argument.
        what: &'static str,
        /// What was given.
        value: String,
        /// Why it does not parse.
        reason: String,
    },
    /// The SDK (chain, router or provider) refused or failed.
    #[error(transparent)]
    Sdk(#[from] morpheus_sdk::Error),
    /// A chat request the gateway will not send: the message names what is wrong, `param` the
    /// field (OpenAI's `param`).
    #[error("{message}")]
    BadRequest {
        /// What is wrong.
        message: String,
        /// The field, as a path (`messages[0].role`), when one is to blame.
        param: Option<String>,
    },
    /// No model of that name is registered (the gateway's `/v1/models` lists those served).
    #[error("the model {0:?} does not exist on the network (GET /v1/models lists those served)")]
    UnknownModel(String),
    /// Every provider the router assigned failed before its first token, or none was left.
    #[error("no provider answered: {0}")]
    NoAnswer(String),
    /// The provider's answer broke off after it had begun (an error, a timeout, a cut stream).
    #[error("the provider's answer broke off: {0}")]
    AnswerCut(String),
    /// The gateway's outbox of unsent usage reports could not be opened, read or written.
    #[error("outbox {}: {reason}", path.display())]
    Outbox {
        /// The outbox file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// `morpheus devnet`: ports it was told to use are taken (each named with its flag).
    #[error("ports in use: {0}; stop what listens there, or pick others (0 takes any free port)")]
    PortsInUse(String),
    /// `morpheus devnet`: a program it needs is missing, or a step failed (the message names the
    /// step's log and quotes its end).
    #[error("devnet: {0}")]
    Devnet(String),
    /// `morpheus devnet` was stopped by Ctrl-C or SIGTERM before it finished; everything it
    /// started was stopped.
    #[error("interrupted: everything the devnet started was stopped")]
    Interrupted,
}

impl Error {
    /// An [`Error::Io`] for `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
