//! What an engineer does, as ops on the local store. Each works offline and is saved (with
//! its outbox row) before the command returns.

use std::collections::BTreeMap;

use fieldsync_proto::sla;
use fieldsync_proto::wire::EnrollRequest;
use fieldsync_proto::{EntityId, EntityKind, Op, OpKind};
use rand::RngCore;
use serde_json::{json, Value};

use crate::client::Client;
use crate::config::Config;
use crate::error::{AgentError, Result};
use crate::store::Store;

/// The progress states an engineer reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Progress {
    EnRoute,
    OnSite,
    OnHold,
    Completed,
}

impl Progress {
    pub fn as_str(self) -> &'static str {
        match self {
            Progress::EnRoute => "en-route",
            Progress::OnSite => "on-site",
            Progress::OnHold => "on-hold",
            Progress::Completed => "completed",
        }
    }
}

pub(crate) fn new_id() -> EntityId {
    let mut random = [0u8; 10];
    rand::thread_rng().fill_bytes(&mut random);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    EntityId::generate(now, random)
}

/// Report progress. Arrival and completion times are the op's own event time, so they
/// record when it happened on site, not when it reached the server.
pub fn progress(
    store: &mut Store,
    order: &EntityId,
    state: Progress,
    resolution: Option<&str>,
) -> Result<Op> {
    if resolution.is_some() && state != Progress::Completed {
        return Err(AgentError::Invalid(
            "--resolution goes with `completed` only".into(),
        ));
    }
    store.record(EntityKind::WorkOrder, order, OpKind::Set, |current, hlc| {
        let mut f = BTreeMap::from([("status".to_owned(), json!(state.as_str()))]);
        let first = |field: &str| current.is_none_or(|c| c.get(field).is_none());
        // SLA: setting off or arriving is the response; a hold stops the clocks until
        // the next report (event times, from this device's hybrid clock).
        if matches!(
            state,
            Progress::EnRoute | Progress::OnSite | Progress::Completed
        ) && first("responded_at")
        {
            f.insert("responded_at".into(), json!(hlc.millis()));
        }
        let holds = current.and_then(|c| c.get("holds"));
        if let Some(h) = sla::order::holds_after(holds, state.as_str(), hlc.millis()) {
            f.insert("holds".into(), h);
        }
        match state {
            Progress::OnSite if first("arrived_at") => {
                f.insert("arrived_at".into(), json!(hlc.millis()));
            }
            Progress::Completed => {
                f.insert("completed_at".into(), json!(hlc.millis()));
                if let Some(r) = resolution {
                    f.insert("resolution".into(), json!(r));
                }
            }
            _ => {}
        }
        Ok(f)
    })
}

pub fn note(store: &mut Store, order: &EntityId, text: &str) -> Result<Op> {
    if text.trim().is_empty() {
        return Err(AgentError::Invalid("a note needs some text".into()));
    }
    create_child(store, EntityKind::Note, order, [("text", json!(text))])
}

/// Parts fitted on an order: a consumption movement out of the engineer's van
/// (`stock.rs`), the one record that lists the part on the order and moves stock.
pub fn use_part(
    store: &mut Store,
    order: &EntityId,
    sku: &str,
    qty: i64,
    serial: Option<&str>,
) -> Result<Op> {
    crate::stock::consume(store, order, sku, qty, serial)
}

fn create_child<const N: usize>(
    store: &mut Store,
    kind: EntityKind,
    order: &EntityId,
    fields: [(&str, Value); N],
) -> Result<Op> {
    let id = new_id();
    store.record(kind, &id, OpKind::Create, |_, _| {
        let mut f: BTreeMap<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        f.insert("order_id".into(), json!(order));
        Ok(f)
    })
}

pub fn edit_description(store: &mut Store, order: &EntityId, text: &str) -> Result<Op> {
    store.record(EntityKind::WorkOrder, order, OpKind::Set, |_, _| {
        Ok(BTreeMap::from([("description".to_owned(), json!(text))]))
    })
}

/// Enroll this data dir as a device of `user` on the server at `url`.
pub async fn enroll(
    store: &mut Store,
    url: &str,
    ca_pem: Option<&[u8]>,
    user: &str,
    password: &str,
    device_name: Option<String>,
    cfg: &Config,
) -> Result<fieldsync_proto::wire::EnrollResponse> {
    if let Some(e) = store.enrollment()? {
        return Err(AgentError::AlreadyEnrolled {
            device: e.device_id,
            user: e.user,
        });
    }
    let client = Client::new(url, ca_pem, cfg)?;
    let resp = client
        .enroll(&EnrollRequest {
            user: user.to_owned(),
            password: password.to_owned(),
            device_name,
        })
        .await?;
    store.save_enrollment(client.base(), &resp, ca_pem)?;
    Ok(resp)
}
