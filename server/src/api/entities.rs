//! Dispatcher endpoints: work orders, the records around them, and conflict resolution.
//! Every write becomes an op of the server's own device, so it is validated, merged and
//! synced exactly like an engineer's.

use std::collections::BTreeMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use fieldsync_proto::state::Version;
use fieldsync_proto::view::{self, OrderSummary, OrderView};
use fieldsync_proto::wire::{CreateOrderRequest, CreatedResponse};
use fieldsync_proto::{EntityId, EntityKind};
use rand::RngCore;
use serde::Deserialize;
use serde_json::{Map, Value};

use super::extract::json_error;
use super::{now_ms, ApiError, AppState, Auth, JsonBody};
use crate::store::{Actor, ServerWrite};

pub(crate) fn new_id(now: u64) -> EntityId {
    let mut r = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut r);
    EntityId::generate(now, r)
}

pub(crate) async fn write(app: &AppState, actor: Actor, w: ServerWrite) -> Result<(), ApiError> {
    let store = app.store.clone();
    tokio::task::spawn_blocking(move || store.server_write(&actor, w, now_ms()))
        .await??
        .map_err(ApiError::from)
}

pub(crate) async fn order_view(
    app: &AppState,
    actor: Actor,
    id: String,
) -> Result<OrderView, ApiError> {
    let (store, blobs) = (app.store.clone(), app.blobs.clone());
    tokio::task::spawn_blocking(move || {
        let mut view = store.order_view(&actor, &id)?;
        if let Some(v) = &mut view {
            super::photos::annotate(&blobs, &mut v.photos);
        }
        Ok::<_, crate::store::StoreError>(view)
    })
    .await??
    .ok_or_else(|| ApiError::not_found("no such work order, or it is not assigned to you"))
}

pub async fn create_order(
    State(app): State<AppState>,
    auth: Auth,
    JsonBody(req): JsonBody<CreateOrderRequest>,
) -> Result<(StatusCode, Json<CreatedResponse>), ApiError> {
    let actor = auth.0;
    let fields = match serde_json::to_value(&req).expect("request serialises") {
        Value::Object(m) => m
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .collect::<BTreeMap<_, _>>(),
        _ => unreachable!("a struct serialises to an object"),
    };
    let id = new_id(now_ms());
    let w = ServerWrite {
        kind: EntityKind::WorkOrder,
        id: id.clone(),
        create: true,
        fields,
        base: BTreeMap::new(),
    };
    write(&app, actor, w).await?;
    Ok((StatusCode::CREATED, Json(CreatedResponse { id })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    assignee: Option<String>,
    status: Option<String>,
}

pub async fn list_orders(
    State(app): State<AppState>,
    auth: Auth,
    query: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<Vec<OrderSummary>>, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let store = app.store.clone();
    let actor = auth.0;
    let list = tokio::task::spawn_blocking(move || {
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        store.list_orders(
            &actor,
            nonempty(&q.assignee).as_deref(),
            nonempty(&q.status).as_deref(),
        )
    })
    .await??;
    Ok(Json(list))
}

pub async fn get_order(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
) -> Result<Json<OrderView>, ApiError> {
    Ok(Json(order_view(&app, auth.0, id).await?))
}

type Fields = BTreeMap<String, Value>;

/// Split a PATCH body into field values and the optional `base` versions.
fn patch_fields(
    mut body: Map<String, Value>,
) -> Result<(Fields, BTreeMap<String, Version>), ApiError> {
    let base = match body.remove("base") {
        Some(b) => serde_json::from_value(b).map_err(json_error)?,
        None => BTreeMap::new(),
    };
    if body.is_empty() {
        return Err(ApiError::bad_request("empty_op", "the body sets no fields"));
    }
    Ok((body.into_iter().collect(), base))
}

pub async fn patch_order(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<OrderView>, ApiError> {
    let (fields, base) = patch_fields(body)?;
    let actor = auth.0;
    // An engineer may not learn that an order they cannot see exists.
    order_view(&app, actor.clone(), id.clone()).await?;
    let w = ServerWrite {
        kind: EntityKind::WorkOrder,
        id: EntityId(id.clone()),
        create: false,
        fields,
        base,
    };
    write(&app, actor.clone(), w).await?;
    Ok(Json(order_view(&app, actor, id).await?))
}

fn parse_kind(kind: &str) -> Result<EntityKind, ApiError> {
    let k = EntityKind::parse(&kind.replace('-', "_"))
        .ok_or_else(|| ApiError::not_found(format!("no entity kind {kind:?}")))?;
    Ok(k)
}

pub async fn create_entity(
    State(app): State<AppState>,
    auth: Auth,
    Path(kind): Path<String>,
    JsonBody(mut body): JsonBody<Map<String, Value>>,
) -> Result<(StatusCode, Json<CreatedResponse>), ApiError> {
    let kind = parse_kind(&kind)?;
    let id = match body.remove("id") {
        Some(Value::String(s)) => EntityId(s),
        Some(_) => return Err(ApiError::bad_request("invalid_type", "id must be a string")),
        // A minimum's id is its (location, part) pair's, so there is one per pair.
        None if kind == EntityKind::StockMin => {
            let s = |f: &str| body.get(f).and_then(Value::as_str).unwrap_or_default();
            fieldsync_proto::stock::min_id(s("location_id"), s("part_id"))
        }
        None => new_id(now_ms()),
    };
    let (fields, base) = patch_fields(body)?;
    if !base.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_base",
            "a create has no base versions",
        ));
    }
    let w = ServerWrite {
        kind,
        id: id.clone(),
        create: true,
        fields,
        base,
    };
    write(&app, auth.0, w).await?;
    Ok((StatusCode::CREATED, Json(CreatedResponse { id })))
}

async fn entity_state(
    app: &AppState,
    actor: &Actor,
    kind: EntityKind,
    id: &str,
) -> Result<fieldsync_proto::EntityState, ApiError> {
    let (store, actor2, id2) = (app.store.clone(), actor.clone(), id.to_owned());
    tokio::task::spawn_blocking(move || store.entity(&actor2, kind, &id2))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("no {kind} {id}")))
}

pub async fn get_entity(
    State(app): State<AppState>,
    auth: Auth,
    Path((kind, id)): Path<(String, String)>,
) -> Result<Json<Map<String, Value>>, ApiError> {
    let kind = parse_kind(&kind)?;
    Ok(Json(view::plain(
        &entity_state(&app, &auth.0, kind, &id).await?,
    )))
}

pub async fn patch_entity(
    State(app): State<AppState>,
    auth: Auth,
    Path((kind, id)): Path<(String, String)>,
    JsonBody(body): JsonBody<Map<String, Value>>,
) -> Result<Json<Map<String, Value>>, ApiError> {
    let kind = parse_kind(&kind)?;
    let (fields, base) = patch_fields(body)?;
    let actor = auth.0;
    if kind == EntityKind::User && actor.is_office() {
        ensure_profile(&app, &id).await?;
    }
    entity_state(&app, &actor, kind, &id).await?;
    let w = ServerWrite {
        kind,
        id: EntityId(id.clone()),
        create: false,
        fields,
        base,
    };
    write(&app, actor.clone(), w).await?;
    Ok(Json(view::plain(
        &entity_state(&app, &actor, kind, &id).await?,
    )))
}

/// Users are added outside the op log, so their `user` entity is made by the server on
/// the first profile write (the console's and this API's alike).
async fn ensure_profile(app: &AppState, user: &str) -> Result<(), ApiError> {
    let (store, user) = (app.store.clone(), user.to_owned());
    tokio::task::spawn_blocking(move || store.ensure_profile(&user, now_ms())).await??;
    Ok(())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub enum Choice {
    /// Keep the value that won.
    Winner,
    /// Write the value that lost.
    Loser,
    /// Write a new value given in `value`.
    Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    pub choose: Choice,
    #[serde(default)]
    pub value: Option<Value>,
}

pub async fn resolve_conflict(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    JsonBody(req): JsonBody<ResolveRequest>,
) -> Result<Json<Map<String, Value>>, ApiError> {
    let actor = auth.office()?;
    Ok(Json(resolve(&app, actor, id, req).await?))
}

/// Settle a conflict as `actor` (an office user): the field write, then the conflict's
/// resolution, both ops that sync to agents. Shared by the API and the console.
pub(crate) async fn resolve(
    app: &AppState,
    actor: Actor,
    id: String,
    req: ResolveRequest,
) -> Result<Map<String, Value>, ApiError> {
    let conflict = entity_state(app, &actor, EntityKind::Conflict, &id).await?;
    if conflict.bool("resolved") {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "already_resolved",
            "this conflict is already resolved",
        ));
    }
    let chosen = match req.choose {
        Choice::Winner => None,
        Choice::Loser => conflict.get("loser").and_then(|l| l.get("value")).cloned(),
        Choice::Value => Some(req.value.clone().ok_or_else(|| {
            ApiError::bad_request("missing_field", "choose \"value\" needs a \"value\"")
        })?),
    };
    if let Some(v) = chosen.clone() {
        let kind = conflict
            .str("entity_kind")
            .and_then(EntityKind::parse)
            .ok_or_else(|| ApiError::internal("conflict names no entity kind"))?;
        let target_id = conflict.str("entity_id").unwrap_or_default().to_owned();
        let field = conflict.str("field").unwrap_or_default().to_owned();
        let target = entity_state(app, &actor, kind, &target_id).await?;
        let base = target
            .version(&field)
            .map(|v| BTreeMap::from([(field.clone(), v)]))
            .unwrap_or_default();
        let w = ServerWrite {
            kind,
            id: EntityId(target_id),
            create: false,
            fields: BTreeMap::from([(field, v)]),
            base,
        };
        write(app, actor.clone(), w).await?;
    }
    let resolution = serde_json::json!({
        "choose": match req.choose { Choice::Winner => "winner", Choice::Loser => "loser", Choice::Value => "value" },
        "value": chosen,
    });
    let w = ServerWrite {
        kind: EntityKind::Conflict,
        id: EntityId(id.clone()),
        create: false,
        fields: BTreeMap::from([
            ("resolved".to_owned(), Value::Bool(true)),
            ("resolution".to_owned(), resolution),
            ("resolved_by".to_owned(), Value::String(actor.user.clone())),
        ]),
        base: BTreeMap::new(),
    };
    write(app, actor.clone(), w).await?;
    Ok(view::plain(
        &entity_state(app, &actor, EntityKind::Conflict, &id).await?,
    ))
}
