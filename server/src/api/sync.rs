//! The agent's endpoints: push ops, pull pages of changes, compare digests.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use fieldsync_proto::wire::{
    DigestResponse, HelloResponse, PushResponse, PROTOCOL_HEADER, PROTOCOL_VERSION,
};
use fieldsync_proto::DeviceId;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::extract::json_error;
use super::{now_ms, ApiError, AppState, Auth, JsonBody};
use crate::store::{ReceivedOp, StoreError};
use std::sync::Arc;
use std::time::Duration;

fn check_protocol(headers: &HeaderMap) -> Result<(), ApiError> {
    let got = headers.get(PROTOCOL_HEADER).and_then(|v| v.to_str().ok());
    if got == Some(PROTOCOL_VERSION.to_string().as_str()) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "protocol_mismatch",
        format!(
            "this server speaks sync protocol {PROTOCOL_VERSION} (header {PROTOCOL_HEADER}), the client sent {}",
            got.unwrap_or("none")
        ),
    ))
}

fn device_of(auth: &Auth) -> Result<DeviceId, ApiError> {
    auth.0
        .device
        .ok_or_else(|| ApiError::forbidden("sync needs a device token: enroll the device first"))
}

/// How long a batch whose first op is ahead of the device's acknowledged ops waits for the
/// batches before it. Beyond that the gap is real (a lost batch) and is refused.
const PUSH_GAP_WAIT_MAX: Duration = Duration::from_secs(2);

/// A [`PushRequest`](fieldsync_proto::wire::PushRequest) whose ops are kept as the text they arrived in, for the op log.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushRequestText {
    ops: Vec<Box<RawValue>>,
}

impl PushRequestText {
    fn decode(self) -> Result<Vec<ReceivedOp>, ApiError> {
        self.ops
            .into_iter()
            .enumerate()
            .map(|(i, json)| match serde_json::from_str(json.get()) {
                Ok(op) => Ok(ReceivedOp { op, json }),
                Err(e) => Err(json_error(e).in_context(&format!("ops[{i}]"))),
            })
            .collect()
    }
}

pub async fn push(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    JsonBody(req): JsonBody<PushRequestText>,
) -> Result<Json<PushResponse>, ApiError> {
    check_protocol(&headers)?;
    let device = device_of(&auth)?;
    let max = app.settings.push_batch_ops_max;
    if req.ops.len() > max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "batch_too_large",
            format!(
                "a push carries at most {max} ops, this one has {}",
                req.ops.len()
            ),
        ));
    }
    let ops = req.decode()?;
    let now = now_ms();
    let bound = app.settings.clock_skew_ms_max;
    if let Some(op) = ops
        .iter()
        .map(|r| &r.op)
        .find(|op| op.hlc.millis() > now + bound)
    {
        let skew_ms = op.hlc.millis() - now;
        return Err(ApiError::bad_request(
            "clock_skew",
            format!(
                "op {} is stamped {} s ahead of the server clock (at most {} s allowed): \
                 the device clock is wrong; fix it and sync again, nothing was stored",
                op.seq,
                skew_ms / 1000,
                bound / 1000
            ),
        )
        .with_details(serde_json::json!({
            "seq": op.seq, "skew_ms": skew_ms, "server_time_ms": now, "bound_ms": bound
        })));
    }
    let first_seq = ops.first().map(|r| r.op.seq);
    let ops = Arc::new(ops);
    let deadline = tokio::time::Instant::now() + PUSH_GAP_WAIT_MAX;
    loop {
        // Registered before the attempt, so a commit between a refusal and the wait wakes it.
        let pushed = app.pushed.notified();
        tokio::pin!(pushed);
        pushed.as_mut().enable();
        let (store, actor, batch) = (app.store.clone(), auth.0.clone(), ops.clone());
        let attempt =
            tokio::task::spawn_blocking(move || store.push_received(&actor, device, &batch, now))
                .await?;
        match attempt {
            Ok(resp) => {
                app.pushed.notify_waiters();
                return Ok(Json(resp));
            }
            // The batch before this one is still on its way or being applied: an agent
            // keeps up to `PUSH_IN_FLIGHT_MAX` batches on the wire, and HTTP/2 may hand
            // them to us in either order.
            // A gap inside the batch is the sender's mistake: waiting cannot fill it.
            Err(StoreError::SeqGap { got, .. })
                if Some(got) == first_seq
                    && tokio::time::timeout_at(deadline, pushed).await.is_ok() => {}
            Err(e) => return Err(e.into()),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PullQuery {
    #[serde(default)]
    cursor: u64,
    limit: Option<usize>,
}

pub async fn pull(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
    query: Result<Query<PullQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    check_protocol(&headers)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let limit = q
        .limit
        .unwrap_or(app.settings.pull_page_entities_max)
        .clamp(1, app.settings.pull_page_entities_max);
    let store = app.store.clone();
    let actor = auth.0;
    let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, ApiError> {
        let mut page = store.pull(&actor, q.cursor, limit)?;
        page.server_time_ms = now_ms();
        Ok(serde_json::to_vec(&page).expect("page serialises"))
    })
    .await??;
    Ok((
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response())
}

pub async fn digest(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
) -> Result<Json<DigestResponse>, ApiError> {
    check_protocol(&headers)?;
    let store = app.store.clone();
    let actor = auth.0;
    Ok(Json(
        tokio::task::spawn_blocking(move || store.digest(&actor)).await??,
    ))
}

pub async fn hello(
    State(app): State<AppState>,
    auth: Auth,
    headers: HeaderMap,
) -> Result<Json<HelloResponse>, ApiError> {
    check_protocol(&headers)?;
    let device = device_of(&auth)?;
    let store = app.store.clone();
    let (epoch, acked_seq) = tokio::task::spawn_blocking(move || store.hello(device)).await??;
    Ok(Json(HelloResponse {
        protocol: PROTOCOL_VERSION,
        epoch,
        acked_seq,
        server_time_ms: now_ms(),
    }))
}

pub async fn revoke(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    auth.office()?;
    let id: DeviceId = id
        .parse()
        .map_err(|_| ApiError::bad_request("invalid_id", "device ids are numbers"))?;
    let store = app.store.clone();
    if !tokio::task::spawn_blocking(move || store.revoke_device(id)).await?? {
        return Err(ApiError::not_found(format!("no device {id}")));
    }
    Ok(Json(serde_json::json!({"revoked": id})))
}
