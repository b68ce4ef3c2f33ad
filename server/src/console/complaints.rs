//! Complaints on an order, and the follow-up visit scheduled from one. A complaint is an
//! office record linked to the order (its holder's device receives it); the follow-up is a
//! new work order for the same customer, site, asset and work type, created together with
//! the complaint's link to it in one transaction, so neither exists without the other.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use fieldsync_proto::view::RecordView;
use fieldsync_proto::{EntityId, EntityKind};
use serde_json::Value;

use super::html::{enc, esc, time};
use super::i18n::Lang;
use super::pages::{blocking, message_page};
use super::{redirect, Posted, Session};
use crate::api::entities::{new_id, order_view, write};
use crate::api::{now_ms, AppState};
use crate::store::ServerWrite;

/// Characters of a complaint quoted in its follow-up order's description.
const FOLLOW_UP_QUOTE_CHARS_MAX: usize = 1_000;

/// The complaints section of an order's page: each complaint with its follow-up visit (or
/// the button that schedules one), and the form that logs a new one.
pub fn section(lang: Lang, s: &Session, order_id: &str, complaints: &[RecordView]) -> String {
    let t = |k: &str| lang.t(k);
    let mut b = format!(
        r#"<section aria-labelledby="cp-h"><h2 id="cp-h">{}</h2>"#,
        t("cp.title")
    );
    if complaints.is_empty() {
        let _ = write!(b, "<p>{}</p>", t("detail.none"));
    } else {
        b.push_str(r#"<ul id="complaints">"#);
        for c in complaints {
            let text = c.fields.get("text").and_then(Value::as_str).unwrap_or("");
            let follow = match c.fields.get("follow_up_order").and_then(Value::as_str) {
                Some(f) => format!(
                    r#"<a href="/console/orders/{}">{} {}</a>"#,
                    enc(f),
                    t("cp.follow_up_order"),
                    esc(f)
                ),
                None => format!(
                    r#"<form method="post" action="/console/complaints/{}/follow-up" class="inline"><input type="hidden" name="csrf" value="{}"><button type="submit">{}</button></form>"#,
                    enc(&c.id),
                    esc(&s.csrf),
                    t("cp.follow_up")
                ),
            };
            let _ = write!(
                b,
                r#"<li>{} <span class="meta">— {}, {}</span> {follow}</li>"#,
                esc(text),
                esc(&c.by),
                time(c.at_ms)
            );
        }
        b.push_str("</ul>");
    }
    let _ = write!(
        b,
        r#"<form method="post" action="/console/orders/{}/complaints" class="card" id="complaint-form"><input type="hidden" name="csrf" value="{}">
<div class="field"><label for="complaint">{}</label><textarea id="complaint" name="text" rows="2" required></textarea></div>
<button type="submit">{}</button></form></section>"#,
        enc(order_id),
        esc(&s.csrf),
        t("cp.text"),
        t("cp.add"),
    );
    b
}

/// `POST /console/orders/{id}/complaints`: log a complaint on the order.
pub async fn add(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { sess: s, form: f }: Posted,
) -> Response {
    let text = f.get("text").trim();
    if text.is_empty() {
        return redirect(&format!("/console/orders/{}", enc(&id)));
    }
    let w = ServerWrite {
        kind: EntityKind::Complaint,
        id: new_id(now_ms()),
        create: true,
        fields: BTreeMap::from([
            ("order_id".to_owned(), Value::from(id.as_str())),
            ("text".to_owned(), Value::from(text)),
        ]),
        base: BTreeMap::new(),
    };
    match write(&app, s.actor.clone(), w).await {
        Ok(()) => redirect(&format!("/console/orders/{}?msg=complaint", enc(&id))),
        Err(e) => message_page_text(s.lang, &e.body.error.message),
    }
}

fn message_page_text(lang: Lang, why: &str) -> Response {
    let body = format!(
        r#"<p class="error" role="alert">{} {}</p>"#,
        lang.t("err.refused"),
        esc(why)
    );
    super::pages::html_response(
        StatusCode::BAD_REQUEST,
        super::pages::layout(lang, None, lang.t("err.refused"), &body),
    )
}

/// `POST /console/complaints/{id}/follow-up`: a new order for the same customer, site,
/// asset and work type, unassigned, with the complaint's link to it, in one transaction;
/// then the assignment dialog of the new order.
pub async fn follow_up(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { sess: s, .. }: Posted,
) -> Response {
    let (store, actor, cid) = (app.store.clone(), s.actor.clone(), id.clone());
    let complaint = match blocking(move || store.entity(&actor, EntityKind::Complaint, &cid)).await
    {
        Ok(Some(c)) => c,
        Ok(None) => return message_page(s.lang, StatusCode::NOT_FOUND, "err.not_found"),
        Err(r) => return r,
    };
    let order_id = complaint.str("order_id").unwrap_or_default().to_owned();
    if let Some(existing) = complaint.str("follow_up_order") {
        // Already scheduled (a second click): show it rather than make another.
        return redirect(&format!("/console/orders/{}", enc(existing)));
    }
    let Ok(order) = order_view(&app, s.actor.clone(), order_id.clone()).await else {
        return message_page(s.lang, StatusCode::NOT_FOUND, "err.not_found");
    };
    let quote: String = complaint
        .str("text")
        .unwrap_or_default()
        .chars()
        .take(FOLLOW_UP_QUOTE_CHARS_MAX)
        .collect();
    let mut fields = BTreeMap::from([
        (
            "description".to_owned(),
            Value::from(format!(
                "{} {order_id}: {quote}",
                s.lang.t("cp.follow_up_desc")
            )),
        ),
        (
            "priority".to_owned(),
            Value::from(order.summary.priority.unwrap_or(2)),
        ),
    ]);
    let o = &order.summary;
    for (k, v) in [
        ("customer_id", &o.customer_id),
        ("site_id", &o.site_id),
        ("asset_id", &o.asset_id),
        ("work_type", &order.work_type),
    ] {
        if let Some(v) = v {
            fields.insert(k.to_owned(), Value::from(v.as_str()));
        }
    }
    let new_order = new_id(now_ms());
    let writes = vec![
        ServerWrite {
            kind: EntityKind::WorkOrder,
            id: new_order.clone(),
            create: true,
            fields,
            base: BTreeMap::new(),
        },
        ServerWrite {
            kind: EntityKind::Complaint,
            id: EntityId(id),
            create: false,
            fields: BTreeMap::from([(
                "follow_up_order".to_owned(),
                Value::from(new_order.as_str()),
            )]),
            base: BTreeMap::new(),
        },
    ];
    let (store, actor) = (app.store.clone(), s.actor.clone());
    match blocking(move || store.import(&actor, writes, now_ms())).await {
        Ok(refused) if refused.is_empty() => redirect(&format!(
            "/console/orders/{}/assign",
            enc(new_order.as_str())
        )),
        Ok(refused) => {
            let why: Vec<String> = refused.into_iter().map(|(_, e)| e.message).collect();
            message_page_text(s.lang, &why.join("; "))
        }
        Err(r) => r,
    }
}
