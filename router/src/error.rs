//! The router's one error type: refusals with a reason for the client, and internal failures.

use std::path::PathBuf;

use alloy::primitives::{Address, B256, U256};

/// Everything that can go wrong in the router.
///
/// The refusals (bad input) carry a message that names what was wrong and go back to the client
/// as a 4xx; chain, database and I/O failures are logged and answered with a generic 5xx, so no
/// internal detail leaks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The body or a path/query parameter does not parse.
    #[error("{0}")]
    BadRequest(String),
    /// A signature does not recover (not 65 bytes, malleable, no address).
    #[error("bad signature on the {message}: {reason}")]
    BadSignature {
        /// Which message.
        message: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// A request is signed by someone other than the user it names.
    #[error("the request names user {user} but is signed by {signer}")]
    WrongSigner {
        /// The user the message names.
        user: Address,
        /// The address the signature recovers to.
        signer: Address,
    },
    /// A request's deadline is past.
    #[error("the request's deadline {deadline} is past (now {now})")]
    Expired {
        /// The deadline (unix seconds).
        deadline: u64,
        /// The router's clock (unix seconds).
        now: u64,
    },
    /// A nonce was already used by this user.
    #[error("nonce {nonce} was already used by {user}")]
    NonceUsed {
        /// The user.
        user: Address,
        /// The replayed nonce.
        nonce: U256,
    },
    /// The request would take the user over today's allowance.
    #[error("{0}")]
    OverAllowance(Box<Shortfall>),
    /// The model id is not registered in `ProviderRegistry`.
    #[error("model {0} is not registered")]
    UnknownModel(B256),
    /// No provider could be assigned.
    #[error("no live provider for model {model}: {reason}")]
    NoProvider {
        /// The model asked for.
        model: B256,
        /// Why (no bids, all full, all failed liveness).
        reason: String,
    },
    /// Every live provider of the model stayed at capacity while the request waited its turn
    /// (or the queues were full): try again after `retry_after` seconds.
    #[error("every provider of model {model} is busy: {reason}")]
    Busy {
        /// The model asked for.
        model: B256,
        /// How long the request waited and why it gave up.
        reason: String,
        /// Seconds to wait before asking again (the `Retry-After` header).
        retry_after: u64,
    },
    /// A report names a session this router never assigned.
    #[error("unknown session {0}")]
    UnknownSession(B256),
    /// A report is signed by someone other than the session's user.
    #[error("session {session} belongs to {user}; the report is signed by {signer}")]
    WrongReporter {
        /// The session.
        session: B256,
        /// The session's user.
        user: Address,
        /// Who signed the report.
        signer: Address,
    },
    /// Too many requests from one client address or one user: try again after `retry_after`
    /// seconds.
    #[error("too many requests from {who}; try again in {retry_after} s")]
    RateLimited {
        /// The client address or the user.
        who: String,
        /// Seconds until a request is accepted again (the `Retry-After` header).
        retry_after: u64,
    },
    /// A request body over the router's limit ([`MAX_BODY_BYTES`](crate::api::MAX_BODY_BYTES)).
    #[error("the request body is over {limit} bytes")]
    TooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// A session was already reported.
    #[error("session {0} was already reported")]
    AlreadyReported(B256),
    /// No session of the provider was reported at this router: there is nothing to sign.
    #[error("provider {0} has no reported session at this router")]
    NoCredit(Address),
    /// The router's configuration is unusable (key not authorised, bad settings).
    #[error("configuration: {0}")]
    Config(String),
    /// The chain could not be read, or a signature could not be made.
    #[error("chain: {0}")]
    Chain(#[from] morpheus_sdk::Error),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] rusqlite::Error),
    /// The database file could not be opened or set up (not a SQLite database, unreadable,
    /// a schema that does not fit).
    #[error("cannot open the database {}: {source}", path.display())]
    OpenDatabase {
        /// The database file.
        path: PathBuf,
        /// SQLite's reason ("file is not a database", ...).
        source: rusqlite::Error,
    },
    /// The PostgreSQL database failed (a statement, or the connection).
    #[error("database: {0}")]
    Postgres(#[from] postgres::Error),
    /// The PostgreSQL database could not be reached or set up (a bad URL, no server, a schema
    /// from a newer router).
    #[error("cannot open the database {url}: {reason}")]
    OpenPostgres {
        /// The database's URL, without its password.
        url: String,
        /// Why.
        reason: String,
    },
    /// A value read back from the database does not parse: the file was changed outside the
    /// router or is damaged. Never replaced by a default (a zero address would be credited).
    #[error("the database holds a bad value in {column}: {value:?} ({reason})")]
    CorruptDatabase {
        /// `table.column` the value was read from.
        column: &'static str,
        /// The value as stored.
        value: String,
        /// Why it is not what the column holds.
        reason: String,
    },
    /// A database call on the blocking thread pool panicked or was cancelled.
    #[error("database task: {0}")]
    DatabaseTask(#[from] tokio::task::JoinError),
    /// A database call on the store's own thread panicked, or the thread is gone.
    #[error("database call: {0}")]
    DatabaseCall(String),
    /// Binding or serving the listener failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}

/// How far a request is over the user's allowance for the day.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{user} asks for {requested} tokens but has {remaining} left today \
     (userMax {user_max}, used {used})",
    remaining = user_max.saturating_sub(*used)
)]
pub struct Shortfall {
    /// The user.
    pub user: Address,
    /// `tokenMax` of the request.
    pub requested: U256,
    /// `SessionRouter.userMax(user)`.
    pub user_max: U256,
    /// Tokens used or reserved today.
    pub used: U256,
}

/// The router's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// HTTP status, OpenAI error `type` and a stable `code` for this error.
    pub fn classify(&self) -> (u16, &'static str, &'static str) {
        match self {
            Self::BadRequest(_) => (400, "invalid_request_error", "invalid_request"),
            Self::BadSignature { .. } => (401, "authentication_error", "bad_signature"),
            Self::WrongSigner { .. } => (401, "authentication_error", "wrong_signer"),
            Self::Expired { .. } => (400, "invalid_request_error", "expired"),
            Self::NonceUsed { .. } => (409, "invalid_request_error", "nonce_used"),
            Self::OverAllowance(_) => (429, "rate_limit_error", "allowance_exceeded"),
            Self::UnknownModel(_) => (404, "not_found_error", "unknown_model"),
            Self::NoProvider { .. } => (503, "service_unavailable", "no_provider"),
            Self::Busy { .. } => (503, "service_unavailable", "busy"),
            Self::RateLimited { .. } => (429, "rate_limit_error", "rate_limited"),
            Self::UnknownSession(_) => (404, "not_found_error", "unknown_session"),
            Self::WrongReporter { .. } => (403, "permission_error", "wrong_reporter"),
            Self::AlreadyReported(_) => (409, "invalid_request_error", "already_reported"),
            Self::NoCredit(_) => (404, "not_found_error", "no_credit"),
            Self::TooLarge { .. } => (413, "invalid_request_error", "body_too_large"),
            Self::Chain(_) => (502, "server_error", "chain_unavailable"),
            Self::Config(_)
            | Self::Database(_)
            | Self::Postgres(_)
            | Self::OpenPostgres { .. }
            | Self::OpenDatabase { .. }
            | Self::CorruptDatabase { .. }
            | Self::DatabaseTask(_)
            | Self::DatabaseCall(_)
            | Self::Io(_) => (500, "server_error", "internal_error"),
        }
    }

    /// What the client is told: the reason for a refusal, a generic line for internal failures
    /// (the column and value of a corrupt row go to the log only).
    pub fn public_message(&self) -> String {
        match self {
            Self::Chain(_) => "the router could not read the chain; try again".into(),
            Self::CorruptDatabase { .. } => {
                "internal router error: the router's database is corrupt".into()
            }
            Self::Config(_)
            | Self::Database(_)
            | Self::Postgres(_)
            | Self::OpenPostgres { .. }
            | Self::OpenDatabase { .. }
            | Self::DatabaseTask(_)
            | Self::DatabaseCall(_)
            | Self::Io(_) => "internal router error".into(),
            other => other.to_string(),
        }
    }
}
