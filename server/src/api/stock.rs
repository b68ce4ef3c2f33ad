//! Stock for dispatchers' scripts: the derived stock report and the requisitions, and the
//! decision on a requisition. The console's stock page reads and decides through the same
//! functions, so both show the numbers `proto::stock` derives.

use axum::extract::{Path, Query, State};
use axum::Json;
use fieldsync_proto::stock::{self, RequisitionView, StockLine};
use fieldsync_proto::EntityState;
use serde::{Deserialize, Serialize};

use super::{now_ms, ApiError, AppState, Auth, JsonBody};
use crate::store::{Actor, Decision};

/// Movements read to derive stock. Past it the report says it is incomplete rather than
/// show numbers missing the oldest movements; a site that gets there needs a snapshot
/// movement per balance (a receipt from a count), which keeps every number derived.
pub const STOCK_MOVEMENTS_MAX: usize = 500_000;

/// What stock is derived from: the other stock states, the movements, and whether they
/// are all of them.
pub(crate) async fn states(app: &AppState) -> Result<StockData, ApiError> {
    let store = app.store.clone();
    let (states, movements) =
        tokio::task::spawn_blocking(move || store.stock_states(STOCK_MOVEMENTS_MAX + 1)).await??;
    let complete = movements.len() <= STOCK_MOVEMENTS_MAX;
    Ok(StockData {
        states,
        movements,
        complete,
    })
}

pub(crate) struct StockData {
    pub states: Vec<EntityState>,
    pub movements: Vec<stock::Movement>,
    pub complete: bool,
}

impl StockData {
    pub fn report(&self, only: Option<&str>) -> Vec<StockLine> {
        stock::report_from(self.movements.iter().cloned(), &self.states, only)
    }
}

#[derive(Serialize, Deserialize)]
pub struct StockResponse {
    pub stock: Vec<StockLine>,
    pub requisitions: Vec<RequisitionView>,
    /// False when there were more movements than `STOCK_MOVEMENTS_MAX`.
    pub complete: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StockQuery {
    location: Option<String>,
}

/// `GET /api/v1/stock[?location=ID]` (office).
pub async fn get_stock(
    State(app): State<AppState>,
    auth: Auth,
    Query(q): Query<StockQuery>,
) -> Result<Json<StockResponse>, ApiError> {
    auth.office()?;
    let data = states(&app).await?;
    Ok(Json(StockResponse {
        stock: data.report(q.location.as_deref()),
        requisitions: stock::requisitions(&data.states),
        complete: data.complete,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApproveRequest {
    /// The warehouse the units leave.
    pub from_location: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RejectRequest {
    #[serde(default)]
    pub note: Option<String>,
}

/// Decide as `actor`; shared with the console.
pub(crate) async fn decide(
    app: &AppState,
    actor: Actor,
    id: String,
    decision: Decision,
) -> Result<(), ApiError> {
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.decide_requisition(&actor, &id, decision, now_ms()))
        .await??
        .map_err(ApiError::from)
}

async fn decided(app: &AppState, id: &str) -> Result<Json<RequisitionView>, ApiError> {
    let data = states(app).await?;
    stock::requisitions(&data.states)
        .into_iter()
        .find(|r| r.id == id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no requisition {id}")))
}

/// `POST /api/v1/requisitions/{id}/approve` (office).
pub async fn approve(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ApproveRequest>,
) -> Result<Json<RequisitionView>, ApiError> {
    let actor = auth.office()?;
    decide(
        &app,
        actor,
        id.clone(),
        Decision::Approve {
            from: req.from_location,
        },
    )
    .await?;
    decided(&app, &id).await
}

/// `POST /api/v1/requisitions/{id}/reject` (office).
pub async fn reject(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<RejectRequest>,
) -> Result<Json<RequisitionView>, ApiError> {
    let actor = auth.office()?;
    decide(&app, actor, id.clone(), Decision::Reject { note: req.note }).await?;
    decided(&app, &id).await
}
