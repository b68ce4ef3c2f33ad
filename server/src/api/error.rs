//! Every HTTP error is `{"error":{"code","message"}}` with a fitting status.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use fieldsync_proto::{ErrorBody, OpError};

use crate::store::StoreError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            body: ErrorBody::new(code, message),
        }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.body.error.details = Some(details);
        self
    }

    /// Say where in the request the problem is: `ops[3]: unknown field ...`.
    pub fn in_context(mut self, place: &str) -> Self {
        self.body.error.message = format!("{place}: {}", self.body.error.message);
        self
    }

    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(self.body)).into_response()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Full => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                e.to_string(),
            ),
            StoreError::Conflict(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            StoreError::SeqGap { .. } => {
                ApiError::new(StatusCode::CONFLICT, "seq_gap", e.to_string())
            }
            StoreError::Db(_) | StoreError::Corrupt(_) => {
                tracing::error!(error = %e, "store failure");
                ApiError::internal("the server could not complete the request; nothing was changed")
            }
        }
    }
}

/// A refused write made through the API.
impl From<OpError> for ApiError {
    fn from(e: OpError) -> Self {
        let status = match e.code.as_str() {
            "not_found" => StatusCode::NOT_FOUND,
            "not_owner" | "not_creator" | "out_of_scope" => StatusCode::FORBIDDEN,
            "already_exists" | "already_decided" => StatusCode::CONFLICT,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError::new(status, &e.code, e.message)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(e: tokio::task::JoinError) -> Self {
        tracing::error!(error = %e, "blocking task failed");
        ApiError::internal("the server could not complete the request")
    }
}
