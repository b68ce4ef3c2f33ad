//! Request extractors that answer bad input with the JSON error body: bounded, optionally
//! gzip-compressed JSON bodies that refuse unknown fields, and bearer-token auth.

use std::io::Read;

use axum::extract::{FromRef, FromRequest, FromRequestParts, Request};
use axum::http::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use super::{now_ms, ApiError, AppState};
use crate::auth::token_hash;
use crate::store::{Actor, TokenStatus};

pub struct JsonBody<T>(pub T);

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!("request body is larger than {limit} bytes"),
    )
}

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    AppState: FromRef<S>,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let limit = AppState::from_ref(state).settings.request_body_bytes_max;
        let headers = req.headers();
        let json = headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as Content-Type: application/json",
            ));
        }
        let gzip = match headers
            .get(CONTENT_ENCODING)
            .map(|v| v.to_str().unwrap_or("?"))
        {
            None | Some("identity") => false,
            Some("gzip") => true,
            Some(other) => {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_encoding",
                    format!("content encoding {other:?} is not supported; use gzip or none"),
                ))
            }
        };
        let raw = axum::body::to_bytes(req.into_body(), limit)
            .await
            .map_err(|_| too_large(limit))?;
        let bytes = if gzip {
            let mut out = Vec::with_capacity(raw.len() * 4);
            // Bound the output too: a small compressed body must not inflate without limit.
            flate2::read::GzDecoder::new(&raw[..])
                .take(limit as u64 + 1)
                .read_to_end(&mut out)
                .map_err(|e| {
                    ApiError::bad_request(
                        "invalid_encoding",
                        format!("body is not valid gzip: {e}"),
                    )
                })?;
            if out.len() > limit {
                return Err(too_large(limit));
            }
            bytes::Bytes::from(out)
        } else {
            raw
        };
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(json_error)
    }
}

/// A serde error as an API error whose code says what kind of problem it is.
pub fn json_error(e: serde_json::Error) -> ApiError {
    use serde_json::error::Category;
    let msg = e.to_string();
    let code = match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => "invalid_json",
        Category::Data if msg.starts_with("unknown field") => "unknown_field",
        Category::Data if msg.starts_with("unknown variant") => "unknown_variant",
        Category::Data if msg.starts_with("invalid type") => "invalid_type",
        Category::Data if msg.starts_with("missing field") => "missing_field",
        Category::Data => "invalid_request",
    };
    ApiError::bad_request(code, msg)
}

/// The authenticated caller.
pub struct Auth(pub Actor);

impl<S> FromRequestParts<S> for Auth
where
    S: Send + Sync,
    AppState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let app = AppState::from_ref(state);
        let token = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "unauthorized",
                    "send Authorization: Bearer <token> (from POST /api/v1/session or enrollment)",
                )
            })?;
        let hash = token_hash(token.trim());
        let store = app.store.clone();
        let status = tokio::task::spawn_blocking(move || store.token(&hash, now_ms())).await??;
        match status {
            TokenStatus::Valid(actor) => Ok(Auth(actor)),
            TokenStatus::Revoked => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "device_revoked",
                "this device has been revoked; ask a dispatcher to enroll it again",
            )),
            TokenStatus::Unknown => Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                "the token is unknown or has expired",
            )),
        }
    }
}

impl Auth {
    pub fn office(self) -> Result<Actor, ApiError> {
        if self.0.is_office() {
            Ok(self.0)
        } else {
            Err(ApiError::forbidden(
                "only dispatchers and admins may do this",
            ))
        }
    }
}
