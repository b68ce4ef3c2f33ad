//! Errors that cross the wire. One JSON error body serves every HTTP error and every
//! per-op rejection, so clients need exactly one parser for "what went wrong".

use serde::{Deserialize, Serialize};

/// Why one op was refused. Permanent: re-sending the same op gets the same answer, so the
/// agent keeps it marked rejected instead of retrying it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{code}: {message}")]
#[serde(deny_unknown_fields)]
pub struct OpError {
    pub code: String,
    pub message: String,
}

impl OpError {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        OpError {
            code: code.to_owned(),
            message: message.into(),
        }
    }
}

/// `{"error":{"code":"…","message":"…"}}`, the body of every HTTP error.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    /// Machine-readable extras, e.g. the server time for a clock-skew refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<serde_json::Value>,
}

impl ErrorBody {
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        ErrorBody {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
                details: None,
            },
        }
    }
}
