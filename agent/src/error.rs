//! The agent library's errors. Each says what happened and what the engineer can do.

use fieldsync_proto::OpError;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("this device is not enrolled yet: run `fieldsync enroll --server URL --user NAME --password-stdin`")]
    NotEnrolled,
    #[error(
        "this data dir is already enrolled as device {device} for {user}; use another --data-dir"
    )]
    AlreadyEnrolled { device: u32, user: String },
    #[error("the disk is full: the change was NOT saved; free some space and try again")]
    DiskFull,
    #[error("the disk reported an I/O error, so the local store undid its last change (the change was NOT saved; what was saved before is intact): check the disk, then try again")]
    DiskIo,
    #[error("local store: {0}")]
    Db(rusqlite::Error),
    #[error("local store is damaged: {0}")]
    Corrupt(String),
    #[error("no work order matches {0:?}; `fieldsync orders` lists yours")]
    NoSuchOrder(String),
    #[error("{input:?} matches several work orders ({matches}); type more of the id")]
    AmbiguousOrder { input: String, matches: String },
    #[error("{0}")]
    Invalid(String),
    #[error("refused: {} ({})", .0.message, .0.code)]
    Refused(OpError),
    #[error(
        "cannot reach the server at {url}: {reason}; pending changes are kept and will sync later"
    )]
    Unreachable { url: String, reason: String },
    #[error("the server refused this device's token ({0}); it may have been revoked, ask your dispatcher")]
    Unauthorized(String),
    #[error("server error {status}: {message} ({code})")]
    Server {
        status: u16,
        code: String,
        message: String,
    },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    RolledBackTooFar(String),
    #[error("photo store: {0}")]
    Blob(#[from] crate::blob::BlobError),
}

impl AgentError {
    /// Worth retrying later without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            AgentError::Unreachable { .. } => true,
            AgentError::Server { status, code, .. } => {
                *status >= 500 || *status == 429 || code == "clock_skew"
            }
            _ => false,
        }
    }
}

impl From<rusqlite::Error> for AgentError {
    fn from(e: rusqlite::Error) -> Self {
        match e.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => AgentError::DiskFull,
            Some(rusqlite::ErrorCode::SystemIoFailure) => AgentError::DiskIo,
            _ => AgentError::Db(e),
        }
    }
}

impl From<OpError> for AgentError {
    fn from(e: OpError) -> Self {
        AgentError::Refused(e)
    }
}

pub type Result<T, E = AgentError> = std::result::Result<T, E>;
