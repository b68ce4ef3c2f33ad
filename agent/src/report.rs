//! The service report, captured offline: checklist answers, time entries, the customer's
//! sign-off and rating, the fields that close an order, the asset's service history, and
//! the printable report itself (the same renderer as the server's console page).
//!
//! Every record is its own append-only entity written by `Store::record`, so it is saved
//! with its outbox row before the command returns and can never overwrite anyone's.

use std::collections::BTreeMap;
use std::path::Path;

use fieldsync_proto::report::checklist::{self, Item};
use fieldsync_proto::report::history::{self, AssetHistory, HISTORY_ORDERS_MAX};
use fieldsync_proto::report::schema::{RATING_SCORE_MAX, RATING_SCORE_MIN, SIGNATURE_BYTES_MAX};
use fieldsync_proto::report::{self as proto_report, Lang};
use fieldsync_proto::view::{OrderView, RecordView};
use fieldsync_proto::{EntityId, EntityKind, EntityState, Op, OpKind};
use serde::Serialize;
use serde_json::{json, Value};

use crate::blob::BlobStore;
use crate::error::{AgentError, Result};
use crate::photos::{self, Kind, Refused};
use crate::store::Store;

/// Checklist templates a device reads to pick an order's (a handful per work type).
pub const CHECKLIST_TEMPLATES_MAX: usize = 500;
/// Answers given in one `fieldsync checklist` command.
pub const CHECKLIST_ANSWERS_PER_COMMAND_MAX: usize = 200;
/// Image bytes inlined into one offline report (`data:` URIs keep it one file); photos
/// beyond this print as placeholders naming their hash, so a report of a large job stays
/// a file a browser opens.
pub const REPORT_INLINE_BYTES_MAX: u64 = 64 * 1024 * 1024;

/// An item with the answers recorded for it, as `fieldsync checklist` shows it.
#[derive(Clone, Debug, Serialize)]
pub struct ItemState {
    #[serde(flatten)]
    pub item: Item,
    /// The newest answer (not voided), if any.
    pub value: Option<String>,
    pub by: Option<String>,
    pub at_ms: Option<u64>,
    /// Every answer recorded, oldest first (earlier and concurrent ones included).
    pub answers: Vec<RecordView>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ChecklistState {
    pub order_id: String,
    pub work_type: Option<String>,
    pub template_id: Option<String>,
    pub title: Option<String>,
    pub items: Vec<ItemState>,
    /// Items without an answer yet.
    pub open: usize,
}

fn live(r: &RecordView) -> bool {
    r.fields.get("voided").and_then(Value::as_bool) != Some(true)
}

fn used_template(v: &OrderView) -> Option<String> {
    v.checklist
        .iter()
        .rev()
        .find_map(|a| a.fields.get("template_id").and_then(Value::as_str))
        .map(str::to_owned)
}

fn view_of(store: &Store, order: &EntityId) -> Result<OrderView> {
    store
        .order_view(order)?
        .ok_or_else(|| AgentError::NoSuchOrder(order.0.clone()))
}

/// The order's checklist template, picked as the server picks it.
pub fn template_for(store: &Store, v: &OrderView) -> Result<Option<EntityState>> {
    let templates = store.all_of_kind(EntityKind::ChecklistTemplate, CHECKLIST_TEMPLATES_MAX)?;
    let used = used_template(v);
    Ok(checklist::pick_template(v.work_type.as_deref(), used.as_deref(), &templates).cloned())
}

/// The checklist of an order with its answers so far.
pub fn checklist_state(store: &Store, order: &EntityId) -> Result<ChecklistState> {
    let v = view_of(store, order)?;
    let template = template_for(store, &v)?;
    let items = template.as_ref().map(checklist::items).unwrap_or_default();
    let tid = template.as_ref().map(|t| t.id.0.clone());
    let items: Vec<ItemState> = items
        .into_iter()
        .map(|item| {
            let answers: Vec<RecordView> = v
                .checklist
                .iter()
                .filter(|a| {
                    a.fields.get("template_id").and_then(Value::as_str) == tid.as_deref()
                        && a.fields.get("item").and_then(Value::as_str) == Some(&item.id)
                })
                .cloned()
                .collect();
            let last = answers.iter().rev().find(|a| live(a));
            ItemState {
                value: last.and_then(|a| a.fields.get("value")?.as_str().map(str::to_owned)),
                by: last.map(|a| a.by.clone()),
                at_ms: last.map(|a| a.at_ms),
                item,
                answers,
            }
        })
        .collect();
    Ok(ChecklistState {
        order_id: order.0.clone(),
        work_type: v.work_type.clone(),
        open: items.iter().filter(|i| i.value.is_none()).count(),
        template_id: tid,
        title: template
            .as_ref()
            .and_then(|t| t.str("title"))
            .map(str::to_owned),
        items,
    })
}

/// Record answers (`item=value`). All are checked against the template first, so a typo
/// in the third answer records none and says which; each answer is then its own record.
pub fn answer(
    store: &mut Store,
    order: &EntityId,
    answers: &[(String, String)],
) -> Result<Vec<Op>> {
    if answers.len() > CHECKLIST_ANSWERS_PER_COMMAND_MAX {
        return Err(AgentError::Invalid(format!(
            "at most {CHECKLIST_ANSWERS_PER_COMMAND_MAX} answers per command"
        )));
    }
    let v = view_of(store, order)?;
    let Some(template) = template_for(store, &v)? else {
        return Err(AgentError::Invalid(match &v.work_type {
            Some(wt) => format!(
                "no checklist template for {wt} work on this device; sync to fetch templates"
            ),
            None => format!(
                "order {order} has no work type, so no checklist applies; ask the dispatcher to set one"
            ),
        }));
    };
    let items = checklist::items(&template);
    let mut canon = Vec::with_capacity(answers.len());
    for (item, value) in answers {
        let Some(it) = items.iter().find(|i| &i.id == item) else {
            let known: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
            return Err(AgentError::Invalid(format!(
                "checklist {:?} has no item {item:?}; its items are: {}; nothing was recorded",
                template.str("title").unwrap_or(template.id.as_str()),
                known.join(", ")
            )));
        };
        let value = checklist::normalize(it, value)
            .map_err(|why| AgentError::Invalid(format!("{why}; nothing was recorded")))?;
        // The server's own check, offline.
        checklist::check_answer(Some(&template), template.id.as_str(), item, &value)
            .map_err(AgentError::Refused)?;
        canon.push((item.clone(), value));
    }
    let mut ops = Vec::with_capacity(canon.len());
    for (item, value) in canon {
        ops.push(create_child(
            store,
            EntityKind::ChecklistAnswer,
            order,
            [
                ("template_id", json!(template.id)),
                ("item", json!(item)),
                ("value", json!(value)),
            ],
        )?);
    }
    Ok(ops)
}

/// Labour or travel minutes, one entry each time.
pub fn time(
    store: &mut Store,
    order: &EntityId,
    activity: &str,
    minutes: i64,
    note: Option<&str>,
) -> Result<Op> {
    if minutes <= 0 {
        return Err(AgentError::Invalid(format!(
            "minutes must be a positive whole number, not {minutes}; to correct an entry, `fieldsync void ID` it and add the right one; nothing was recorded"
        )));
    }
    let mut fields = vec![("activity", json!(activity)), ("minutes", json!(minutes))];
    if let Some(n) = note.filter(|n| !n.trim().is_empty()) {
        fields.push(("note", json!(n)));
    }
    create_child_vec(store, EntityKind::TimeEntry, order, fields)
}

/// The customer's rating, 1 to 5, with an optional comment.
pub fn rate(store: &mut Store, order: &EntityId, score: i64, comment: Option<&str>) -> Result<Op> {
    if !(RATING_SCORE_MIN..=RATING_SCORE_MAX).contains(&score) {
        return Err(AgentError::Invalid(format!(
            "a rating is {RATING_SCORE_MIN} to {RATING_SCORE_MAX}, not {score}; nothing was recorded"
        )));
    }
    let mut fields = vec![("score", json!(score))];
    if let Some(c) = comment.filter(|c| !c.trim().is_empty()) {
        fields.push(("comment", json!(c)));
    }
    create_child_vec(store, EntityKind::Rating, order, fields)
}

/// What `fieldsync signoff` recorded.
#[derive(Clone, Debug, Serialize)]
pub struct SignedOff {
    pub signoff_id: String,
    pub photo_id: String,
    pub hash: String,
    pub size: u64,
}

/// The customer's sign-off: the signature image goes into the photo store and syncs as a
/// photo record (content-addressed, resumable, kept until the server verified it), and
/// the sign-off record names it. Everything is checked before anything is stored, so a
/// refused signature leaves no trace but the message.
pub fn signoff(
    store: &mut Store,
    blobs: &dyn BlobStore,
    order: &EntityId,
    signer: &str,
    file: &Path,
) -> Result<SignedOff> {
    if signer.trim().is_empty() {
        return Err(AgentError::Invalid(
            "a sign-off needs the name of the person signing (--name); nothing was recorded".into(),
        ));
    }
    let (f, kind) = match photos::check_file(file, SIGNATURE_BYTES_MAX as u64)? {
        Ok(checked) => checked,
        Err(Refused(why)) => {
            let why = why.replace("a photo may be", "a signature may be");
            return Err(AgentError::Invalid(format!(
                "signature {} refused: {why}; nothing was recorded",
                file.display()
            )));
        }
    };
    if !matches!(kind, Kind::Png | Kind::Jpeg) {
        return Err(AgentError::Invalid(format!(
            "signature {} refused: a signature is a PNG or JPEG image; nothing was recorded",
            file.display()
        )));
    }
    // Checked offline before the image is stored, so a refusal stores nothing.
    let current = store
        .view(EntityKind::WorkOrder, order.as_str())?
        .ok_or_else(|| AgentError::NoSuchOrder(order.0.clone()))?;
    let me = store.require_enrollment()?.user;
    if fieldsync_proto::scope::holder(&current) != Some(me.as_str()) {
        return Err(AgentError::Invalid(format!(
            "work order {order} is not assigned to you; nothing was recorded"
        )));
    }
    let a = photos::attach(store, blobs, order, file, f, kind, Some("signature"))?;
    let op = create_child_vec(
        store,
        EntityKind::Signoff,
        order,
        vec![
            ("signer_name", json!(signer.trim())),
            ("signature", json!(a.hash)),
            ("signature_size", json!(a.size)),
            ("signature_photo", json!(a.id)),
        ],
    )?;
    Ok(SignedOff {
        signoff_id: op.id.0,
        photo_id: a.id,
        hash: a.hash,
        size: a.size,
    })
}

/// Resolution, fault code and root cause: engineer-owned fields of the order, written with
/// the versions the engineer saw, so a concurrent change elsewhere becomes a conflict.
pub fn resolve(
    store: &mut Store,
    order: &EntityId,
    resolution: Option<&str>,
    fault_code: Option<&str>,
    root_cause: Option<&str>,
) -> Result<Op> {
    let fields: BTreeMap<String, Value> = [
        ("resolution", resolution),
        ("fault_code", fault_code),
        ("root_cause", root_cause),
    ]
    .into_iter()
    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), json!(v.trim()))))
    .collect();
    if fields.is_empty() {
        return Err(AgentError::Invalid(
            "give --resolution, --fault-code or --root-cause".into(),
        ));
    }
    store.record(EntityKind::WorkOrder, order, OpKind::Set, |_, _| Ok(fields))
}

fn create_child<const N: usize>(
    store: &mut Store,
    kind: EntityKind,
    order: &EntityId,
    fields: [(&str, Value); N],
) -> Result<Op> {
    create_child_vec(store, kind, order, fields.into_iter().collect())
}

fn create_child_vec(
    store: &mut Store,
    kind: EntityKind,
    order: &EntityId,
    fields: Vec<(&str, Value)>,
) -> Result<Op> {
    let id = crate::actions::new_id();
    store.record(kind, &id, OpKind::Create, |_, _| {
        let mut f: BTreeMap<String, Value> =
            fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
        f.insert("order_id".into(), json!(order));
        Ok(f)
    })
}

/// Void a record added by mistake (a note, part usage, photo, checklist answer, time
/// entry, sign-off or rating): records are never edited, so a correction is this mark plus
/// a new record. The voided one stays visible, marked, and leaves totals and the report.
pub fn void(store: &mut Store, id: &str) -> Result<(EntityKind, Op)> {
    let kinds = EntityKind::ALL
        .into_iter()
        .filter(|k| k.spec().append_only && k.spec().field("voided").is_some());
    for kind in kinds {
        let Some(current) = store.view(kind, id)? else {
            continue;
        };
        if current.bool("voided") {
            return Err(AgentError::Invalid(format!("{kind} {id} is already void")));
        }
        let op = store.record(kind, &EntityId::from(id), OpKind::Set, |_, _| {
            Ok(BTreeMap::from([("voided".to_owned(), json!(true))]))
        })?;
        return Ok((kind, op));
    }
    Err(AgentError::Invalid(format!(
        "no record {id:?} on this device (`fieldsync show ORDER --json` lists record ids)"
    )))
}

/// The asset's service history as this device holds it, offline.
pub fn asset_history(store: &Store, asset: &str) -> Result<AssetHistory> {
    let state = store.view(EntityKind::Asset, asset)?;
    let views = store.asset_order_views(asset, HISTORY_ORDERS_MAX)?;
    if state.is_none() && views.is_empty() {
        return Err(AgentError::Invalid(format!(
            "no asset {asset:?} on this device: an asset's history arrives with an order for it"
        )));
    }
    let s = |k: &str| state.as_ref().and_then(|a| a.str(k)).map(str::to_owned);
    Ok(history::asset_history(
        asset,
        s("model"),
        s("serial"),
        &views,
    ))
}

fn read_blob(blobs: &dyn BlobStore, hash: &str, size: u64) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; usize::try_from(size).ok()?];
    let mut at = 0usize;
    while at < buf.len() {
        match blobs.read_at(hash, at as u64, &mut buf[at..]) {
            Ok(0) | Err(_) => return None,
            Ok(n) => at += n,
        }
    }
    Some(buf)
}

/// The printable report of an order, offline, as one HTML file: the renderer the console
/// uses, with each image inlined as a `data:` URI from this device's photo store. An
/// image whose bytes are no longer here (retention removed them once the server held
/// them) prints as a placeholder naming its hash.
pub fn render(
    store: &Store,
    blobs: &dyn BlobStore,
    order: &EntityId,
    lang: Lang,
) -> Result<String> {
    let v = view_of(store, order)?;
    let template = template_for(store, &v)?;
    let budget = std::cell::Cell::new(REPORT_INLINE_BYTES_MAX);
    let media = |p: &RecordView| -> Option<String> {
        let hash = p.fields.get("hash")?.as_str()?;
        let mime = p.fields.get("mime")?.as_str()?;
        let size = blobs.size(hash).ok()??;
        // A signature is small and the point of the report: it is always inlined.
        if size > budget.get() && size > SIGNATURE_BYTES_MAX as u64 {
            return None;
        }
        let bytes = read_blob(blobs, hash, size)?;
        budget.set(budget.get().saturating_sub(size));
        Some(format!(
            "data:{mime};base64,{}",
            proto_report::base64(&bytes)
        ))
    };
    Ok(proto_report::render(&v, template.as_ref(), lang, &media))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::blob::{self, Backend};
    use fieldsync_proto::apply::apply_op;
    use fieldsync_proto::wire::{EnrollResponse, PullPage};
    use fieldsync_proto::{Hlc, Role};

    fn state(kind: EntityKind, id: &str, fields: Value) -> EntityState {
        let op = Op {
            seq: 1,
            kind,
            id: id.into(),
            hlc: Hlc(1_000 << 16),
            op: OpKind::Create,
            fields: serde_json::from_value(fields).unwrap(),
            base: BTreeMap::new(),
        };
        apply_op(None, &op, 0, "dana").state
    }

    /// Eve's store holding her order `w1` (a repair on asset `a1`), sam's past order `w0`
    /// on the same asset, and the repair checklist.
    fn store(dir: &Path) -> Store {
        let mut s = Store::open(dir).unwrap();
        s.save_enrollment(
            "https://example.test",
            &EnrollResponse {
                device_id: 7,
                token: "t".into(),
                user: "eve".into(),
                role: Role::Engineer,
                protocol: 1,
                server_time_ms: 1_000,
            },
            None,
        )
        .unwrap();
        let order = |id: &str, who: &str| {
            state(
                EntityKind::WorkOrder,
                id,
                json!({"description": "pump leaking", "priority": 2, "assignee": who,
                       "asset_id": "a1", "work_type": "repair"}),
            )
        };
        s.apply_page(&PullPage {
            entities: vec![
                order("w1", "eve"),
                order("w0", "sam"),
                state(EntityKind::Asset, "a1", json!({"model": "CR 15"})),
                state(
                    EntityKind::ChecklistTemplate,
                    "t1",
                    json!({"work_type": "repair", "title": "Pump repair",
                           "items": "seal | Seal intact | yes/no\npressure | Pressure (bar) | number"}),
                ),
            ],
            left: vec![],
            cursor: 4,
            more: false,
            hlc: Hlc(1_000 << 16),
            server_time_ms: 1_000,
        })
        .unwrap();
        s
    }

    fn err(r: Result<impl std::fmt::Debug>) -> String {
        r.unwrap_err().to_string()
    }

    #[test]
    fn refused_report_input_says_why_and_records_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut s = store(dir.path());
        let w1 = EntityId::from("w1");
        let kv = |k: &str, v: &str| (k.to_owned(), v.to_owned());

        let e = err(answer(
            &mut s,
            &w1,
            &[kv("seal", "yes"), kv("colour", "red")],
        ));
        assert!(
            e.contains("no item \"colour\"") && e.contains("seal, pressure"),
            "{e}"
        );
        let e = err(answer(&mut s, &w1, &[kv("pressure", "high")]));
        assert!(e.contains("with a number"), "{e}");
        let e = err(time(&mut s, &w1, "labour", -5, None));
        assert!(e.contains("positive"), "{e}");
        let e = err(time(&mut s, &w1, "travel", 1_441, None));
        assert!(e.contains("from 1 to 1440"), "{e}");
        for bad in [0, 6] {
            let e = err(rate(&mut s, &w1, bad, None));
            assert!(e.contains("1 to 5"), "{e}");
        }
        let blobs = blob::open(dir.path(), Backend::Files).unwrap();
        let big = dir.path().join("sig.png");
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.resize(SIGNATURE_BYTES_MAX as usize + 1, 0);
        std::fs::write(&big, png).unwrap();
        let e = err(signoff(&mut s, &*blobs, &w1, "Li Wei", &big));
        assert!(e.contains("a signature may be"), "{e}");
        let e = err(signoff(&mut s, &*blobs, &w1, "  ", &big));
        assert!(e.contains("name of the person signing"), "{e}");
        assert_eq!(s.pending_count().unwrap(), 0, "nothing recorded");
        assert!(blobs.list().unwrap().is_empty(), "no signature bytes kept");

        // The asset's past order is there to read, not to write.
        let h = asset_history(&s, "a1").unwrap();
        assert_eq!(h.orders.len(), 2);
        let e = err(time(&mut s, &EntityId::from("w0"), "labour", 30, None));
        assert!(e.contains("not assigned to you"), "{e}");
        assert_eq!(
            s.orders().unwrap().len(),
            1,
            "only eve's own order is listed"
        );

        // Good input is recorded, one record each.
        answer(&mut s, &w1, &[kv("seal", "Y"), kv("pressure", "2.5")]).unwrap();
        time(&mut s, &w1, "labour", 90, None).unwrap();
        rate(&mut s, &w1, 4, Some("good")).unwrap();
        assert_eq!(s.pending_count().unwrap(), 4);
        let mistake = time(&mut s, &w1, "travel", 600, None).unwrap();
        let (kind, _) = void(&mut s, mistake.id.as_str()).unwrap();
        assert_eq!(kind, EntityKind::TimeEntry);
        assert!(err(void(&mut s, mistake.id.as_str())).contains("already void"));
        assert!(err(void(&mut s, "nope")).contains("no record"));
        let h = asset_history(&s, "a1").unwrap();
        let mine = h.orders.iter().find(|o| o.id == "w1").unwrap();
        assert_eq!((mine.labour_minutes, mine.travel_minutes), (90, 0));
        let c = checklist_state(&s, &w1).unwrap();
        assert_eq!((c.open, c.items[0].value.as_deref()), (0, Some("yes")));
    }
}
