//! The HTTP API: `/healthz`, sessions and enrollment, the sync endpoints the agent uses,
//! and the dispatcher's JSON endpoints. Documented in `docs/api.md`.

pub(crate) mod entities;
mod error;
mod extract;
pub(crate) mod photos;
pub mod stock;
mod sync;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use fieldsync_proto::wire::{
    EnrollRequest, EnrollResponse, SessionRequest, SessionResponse, PROTOCOL_VERSION,
};
use tower_http::compression::{CompressionLayer, CompressionLevel};

pub use error::ApiError;
pub use extract::{Auth, JsonBody};

use crate::auth::{new_token, token_hash, verify_password};
use crate::settings::Settings;
use crate::store::{Store, UserRecord};

#[derive(Clone)]
pub struct AppState {
    pub store: Arc<dyn Store>,
    pub settings: Arc<Settings>,
    pub blobs: Arc<crate::blobstore::BlobStore>,
    /// Live notification streams (agents, console).
    pub live: Arc<crate::live::Live>,
    /// Woken after every push commits: a device's next batch, sent before the answer to
    /// the one ahead of it, waits on it (see `sync::push`).
    pub pushed: Arc<tokio::sync::Notify>,
}

pub use crate::now_ms;

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/api/v1/session", post(session))
        .route("/api/v1/devices/enroll", post(enroll))
        .route("/api/v1/devices/{id}/revoke", post(sync::revoke))
        .route("/api/v1/sync/push", post(sync::push))
        .route("/api/v1/sync/pull", get(sync::pull))
        .route("/api/v1/sync/digest", get(sync::digest))
        .route("/api/v1/sync/hello", get(sync::hello))
        .route(
            "/api/v1/work-orders",
            post(entities::create_order).get(entities::list_orders),
        )
        .route(
            "/api/v1/work-orders/{id}",
            get(entities::get_order).patch(entities::patch_order),
        )
        .route("/api/v1/entities/{kind}", post(entities::create_entity))
        .route(
            "/api/v1/entities/{kind}/{id}",
            get(entities::get_entity).patch(entities::patch_entity),
        )
        .route(
            "/api/v1/conflicts/{id}/resolve",
            post(entities::resolve_conflict),
        )
        .route("/api/v1/stock", get(stock::get_stock))
        .route("/api/v1/requisitions/{id}/approve", post(stock::approve))
        .route("/api/v1/requisitions/{id}/reject", post(stock::reject))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(CompressionLayer::new().quality(CompressionLevel::Fastest))
        .merge(photos::routes())
        .merge(crate::live::routes())
        .merge(crate::console::routes())
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({"status": "ok", "protocol": PROTOCOL_VERSION}))
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint; the API lives under /api/v1")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Check a user's password off the async threads (argon2 is deliberately slow).
async fn login(app: &AppState, user: String, password: String) -> Result<UserRecord, ApiError> {
    // Each check holds ~19 MiB for tens of ms: a burst of logins (a fleet re-enrolling,
    // or an attacker) waits its turn instead of multiplying the server's memory.
    let _permit = crate::auth::PASSWORD_CHECKS
        .acquire()
        .await
        .map_err(|_| ApiError::internal("the password checker is closed"))?;
    let store = app.store.clone();
    let found = tokio::task::spawn_blocking(move || -> Result<Option<UserRecord>, ApiError> {
        let rec = store.user(&user)?;
        Ok(rec.filter(|r| verify_password(&password, &r.password_hash)))
    })
    .await??;
    found.ok_or_else(|| {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "bad_credentials",
            "unknown user or wrong password",
        )
    })
}

async fn session(
    State(app): State<AppState>,
    JsonBody(req): JsonBody<SessionRequest>,
) -> Result<Json<SessionResponse>, ApiError> {
    let user = login(&app, req.user, req.password).await?;
    let token = new_token();
    let (store, hash, now, ttl) = (
        app.store.clone(),
        token_hash(&token),
        now_ms(),
        app.settings.session_ttl_ms,
    );
    let name = user.name.clone();
    tokio::task::spawn_blocking(move || store.add_session(&name, &hash, now, now + ttl)).await??;
    Ok(Json(SessionResponse {
        token,
        role: user.role,
    }))
}

async fn enroll(
    State(app): State<AppState>,
    JsonBody(req): JsonBody<EnrollRequest>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let device_name = req
        .device_name
        .clone()
        .unwrap_or_else(|| "device".to_owned());
    if device_name.chars().count() > 100 {
        return Err(ApiError::bad_request(
            "invalid_value",
            "device_name is longer than 100 characters",
        ));
    }
    let user = login(&app, req.user, req.password).await?;
    let token = new_token();
    let (store, hash, now) = (app.store.clone(), token_hash(&token), now_ms());
    let name = user.name.clone();
    let device_id =
        tokio::task::spawn_blocking(move || store.enroll_device(&name, &device_name, &hash, now))
            .await??;
    tracing::info!(user = %user.name, device_id, "device enrolled");
    Ok(Json(EnrollResponse {
        device_id,
        token,
        user: user.name,
        role: user.role,
        protocol: PROTOCOL_VERSION,
        server_time_ms: now,
    }))
}
