//! The stock page: what each warehouse and van holds (derived by `proto::stock`, the same
//! numbers as `GET /api/v1/stock` and the engineer's `fieldsync stock`), low-stock and
//! overdraw alerts, the requisitions waiting for a decision, and forms to record a receipt
//! and set a minimum. Every write is a `ServerWrite` or the store's requisition decision,
//! so it is validated, logged and synced like any op; every POST checks the CSRF token.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use fieldsync_proto::stock::{self, LocationInfo, RequisitionView, StockLine};
use fieldsync_proto::{EntityId, EntityKind, EntityState};
use serde_json::Value;

use super::html::{enc, esc, options, time, Form};
use super::i18n::Lang;
use super::pages::{html_response, layout};
use super::{redirect, Posted, Session};
use crate::api::entities::write;
use crate::api::stock::{decide, states};
use crate::api::{ApiError, AppState};
use crate::store::{Decision, ServerWrite};

/// Decided requisitions shown under the pending ones: the recent past a dispatcher asks
/// about; older ones are in the API.
pub const DECIDED_REQUISITIONS_SHOWN_MAX: usize = 50;
/// Stock lines in the table (alerts are always all shown).
pub const STOCK_LINES_SHOWN_MAX: usize = 2_000;

fn msg_text(lang: Lang, key: &str) -> &'static str {
    match key {
        "approved" => lang.t("st.approved_msg"),
        "rejected" => lang.t("st.rejected_msg"),
        "received" => lang.t("st.received_msg"),
        "min_saved" => lang.t("st.min_saved_msg"),
        _ => "",
    }
}

/// `GET /console/stock`.
pub async fn page(State(app): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Response {
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    render(&app, &s, msg_text(s.lang, q.get("msg")), None, None).await
}

fn flags(lang: Lang, l: &StockLine) -> String {
    let mut out = Vec::new();
    if l.overdrawn {
        out.push(format!(
            r#"<b class="error overdrawn">{}</b>"#,
            lang.t("st.overdrawn")
        ));
    }
    if l.low {
        out.push(format!(r#"<b class="warn low">{}</b>"#, lang.t("st.low")));
    }
    out.join(" ")
}

/// The page; `error` is shown at the form it belongs to (`receipt`, `min`, or a
/// requisition id), with the form's values kept in `form`.
async fn render(
    app: &AppState,
    s: &Session,
    msg: &str,
    error: Option<(&str, String)>,
    form: Option<&Form>,
) -> Response {
    let lang = s.lang;
    let t = |k: &str| lang.t(k);
    let data = match states(app).await {
        Ok(x) => x,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let (all, complete) = (&data.states, data.complete);
    let lines = data.report(None);
    let reqs = stock::requisitions(all);
    let locations: Vec<LocationInfo> = all.iter().filter_map(LocationInfo::of).collect();
    let err_at = |at: &str| -> String {
        match &error {
            Some((where_, m)) if *where_ == at => {
                format!(r#"<p class="error" role="alert">{}</p>"#, esc(m))
            }
            _ => String::new(),
        }
    };
    let val = |k: &str| form.map(|f| f.get(k).to_owned()).unwrap_or_default();
    let mut b = String::new();
    if !msg.is_empty() {
        let _ = write!(b, r#"<p class="flash" role="status">{}</p>"#, esc(msg));
    }
    if !complete {
        let _ = write!(
            b,
            r#"<p class="error" role="alert">{}</p>"#,
            t("st.incomplete")
        );
    }

    // Alerts first: what needs someone's attention.
    let alerts: Vec<&StockLine> = lines.iter().filter(|l| l.overdrawn || l.low).collect();
    let _ = write!(
        b,
        r#"<section aria-labelledby="st-alerts"><h2 id="st-alerts">{}</h2>"#,
        t("st.alerts")
    );
    if alerts.is_empty() {
        let _ = write!(b, r#"<p id="no-alerts">{}</p>"#, t("st.no_alerts"));
    } else {
        b.push_str(r#"<ul id="alerts">"#);
        for l in alerts {
            let _ = write!(
                b,
                r#"<li data-location="{loc}" data-part="{part}">{flags} {where_}: {sku} {name} — {on_hand_label} {on_hand}{min}</li>"#,
                loc = esc(&l.location_id),
                part = esc(&l.part_id),
                flags = flags(lang, l),
                where_ = esc(&l.location),
                sku = esc(&l.sku),
                name = esc(&l.name),
                on_hand_label = t("st.on_hand"),
                on_hand = l.on_hand,
                min = l
                    .min_qty
                    .map(|m| format!(" / {} {m}", t("st.min")))
                    .unwrap_or_default(),
            );
        }
        b.push_str("</ul>");
    }
    b.push_str("</section>");

    // Requisitions.
    let warehouses: Vec<(String, String)> = locations
        .iter()
        .filter(|l| !l.van)
        .map(|l| (l.id.clone(), l.name.clone()))
        .collect();
    let _ = write!(
        b,
        r#"<section aria-labelledby="st-reqs"><h2 id="st-reqs">{}</h2>"#,
        t("st.requisitions")
    );
    let pending: Vec<&RequisitionView> = reqs.iter().filter(|r| r.status == "pending").collect();
    let decided: Vec<&RequisitionView> = reqs
        .iter()
        .filter(|r| r.status != "pending")
        .take(DECIDED_REQUISITIONS_SHOWN_MAX)
        .collect();
    // A decision on a requisition that is no longer pending (decided in another tab) has
    // no form left to show its error beside: it goes above the table.
    if let Some((at, m)) = &error {
        let in_form = ["receipt", "min"].contains(at) || pending.iter().any(|r| r.id == *at);
        if !in_form {
            let _ = write!(b, r#"<p class="error" role="alert">{}</p>"#, esc(m));
        }
    }
    if reqs.is_empty() {
        let _ = write!(
            b,
            r#"<p id="no-requisitions">{}</p>"#,
            t("st.no_requisitions")
        );
    } else {
        let _ = write!(
            b,
            r#"<div class="scroll"><table id="requisitions"><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col" class="num">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
            t("st.when"),
            t("st.engineer"),
            t("st.van"),
            t("st.part"),
            t("st.qty"),
            t("st.order"),
            t("st.note"),
            t("st.status"),
        );
        for r in pending.iter().chain(decided.iter()) {
            let action = if r.status == "pending" {
                let from = form
                    .filter(|_| matches!(&error, Some((w, _)) if *w == r.id.as_str()))
                    .map(|f| f.get("from_location").to_owned())
                    .or_else(|| r.from_location.clone())
                    .unwrap_or_default();
                format!(
                    r#"{err}<form method="post" action="/console/requisitions/{ide}/approve" class="inline"><input type="hidden" name="csrf" value="{csrf}"><label for="from-{id}">{from_label}</label> <select id="from-{id}" name="from_location"><option value="">—</option>{wh}</select> <button type="submit" id="approve-{id}">{approve}</button></form> <form method="post" action="/console/requisitions/{ide}/reject" class="inline"><input type="hidden" name="csrf" value="{csrf}"><label for="why-{id}">{why}</label> <input id="why-{id}" name="note" maxlength="200"> <button type="submit" class="danger" id="reject-{id}">{reject}</button></form>"#,
                    err = err_at(&r.id),
                    ide = enc(&r.id),
                    id = esc(&r.id),
                    csrf = esc(&s.csrf),
                    from_label = t("st.from"),
                    wh = options(&warehouses, &from),
                    approve = t("st.approve"),
                    why = t("st.reason"),
                    reject = t("st.reject"),
                )
            } else {
                let mut d = format!(
                    r#"<span class="status-{st}">{label}</span> {by}"#,
                    st = esc(&r.status),
                    label = t(&format!("st.status_{}", r.status)),
                    by = esc(r.decided_by.as_deref().unwrap_or("")),
                );
                if let Some(n) = &r.decision_note {
                    let _ = write!(d, " — {}", esc(n));
                }
                d
            };
            let order = r
                .order_id
                .as_deref()
                .map(|o| format!(r#"<a href="/console/orders/{}">{}</a>"#, enc(o), esc(o)))
                .unwrap_or_default();
            let _ = write!(
                b,
                r#"<tr data-requisition="{id}" data-status="{st}"><td>{when}</td><td>{by}</td><td>{van}</td><td>{sku} {name}</td><td class="num">{qty}</td><td>{order}</td><td>{note}</td><td>{action}</td></tr>"#,
                id = esc(&r.id),
                st = esc(&r.status),
                when = time(r.at_ms),
                by = esc(&r.by),
                van = esc(&r.van),
                sku = esc(&r.sku),
                name = esc(&r.name),
                qty = r.qty,
                note = esc(r.note.as_deref().unwrap_or("")),
            );
        }
        b.push_str("</tbody></table></div>");
    }
    b.push_str("</section>");

    // Stock by location.
    let _ = write!(
        b,
        r#"<section aria-labelledby="st-stock"><h2 id="st-stock">{}</h2>"#,
        t("st.by_location")
    );
    if lines.is_empty() {
        let _ = write!(b, r#"<p id="no-stock">{}</p>"#, t("st.no_stock"));
    } else {
        let _ = write!(
            b,
            r#"<div class="scroll"><table id="stock"><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col" class="num">{}</th><th scope="col" class="num">{}</th><th scope="col" class="num">{}</th><th scope="col"></th></tr></thead><tbody>"#,
            t("st.location"),
            t("st.part"),
            t("st.on_hand"),
            t("st.min"),
            t("st.faulty"),
        );
        for l in lines.iter().take(STOCK_LINES_SHOWN_MAX) {
            let _ = write!(
                b,
                r#"<tr data-location="{loc}" data-part="{part}" data-on-hand="{on_hand}"><td>{where_}</td><td>{sku} {name}</td><td class="num">{on_hand}</td><td class="num">{min}</td><td class="num">{faulty}</td><td>{flags}</td></tr>"#,
                loc = esc(&l.location_id),
                part = esc(&l.part_id),
                where_ = esc(&l.location),
                sku = esc(&l.sku),
                name = esc(&l.name),
                on_hand = l.on_hand,
                min = l.min_qty.map(|m| m.to_string()).unwrap_or_default(),
                faulty = l.faulty,
                flags = flags(lang, l),
            );
        }
        b.push_str("</tbody></table></div>");
    }
    b.push_str("</section>");

    // Forms: a receipt, a minimum.
    let all_locations: Vec<(String, String)> = locations
        .iter()
        .map(|l| (l.id.clone(), l.name.clone()))
        .collect();
    let _ = write!(
        b,
        r#"<section aria-labelledby="st-receipt"><h2 id="st-receipt">{title}</h2>{err}<form method="post" action="/console/stock/receipt" id="receipt-form"><input type="hidden" name="csrf" value="{csrf}">
<div class="field"><label for="rc-location">{loc}</label><select id="rc-location" name="location"><option value="">—</option>{locs}</select></div>
<div class="field"><label for="rc-sku">{sku}</label><input id="rc-sku" name="sku" value="{sku_v}" maxlength="64"></div>
<div class="field"><label for="rc-qty">{qty}</label><input id="rc-qty" name="qty" inputmode="numeric" value="{qty_v}"></div>
<div class="field"><label for="rc-note">{note}</label><input id="rc-note" name="note" value="{note_v}" maxlength="1000"></div>
<button type="submit" id="receipt-save">{save}</button></form></section>"#,
        title = t("st.receipt"),
        err = err_at("receipt"),
        csrf = esc(&s.csrf),
        loc = t("st.location"),
        locs = options(&all_locations, &val("location")),
        sku = t("st.sku"),
        sku_v = esc(&val("sku")),
        qty = t("st.qty"),
        qty_v = esc(&val("qty")),
        note = t("st.note"),
        note_v = esc(&val("note")),
        save = t("st.record_receipt"),
    );
    let _ = write!(
        b,
        r#"<section aria-labelledby="st-min"><h2 id="st-min">{title}</h2>{err}<form method="post" action="/console/stock/min" id="min-form"><input type="hidden" name="csrf" value="{csrf}">
<div class="field"><label for="mn-location">{loc}</label><select id="mn-location" name="location"><option value="">—</option>{locs}</select></div>
<div class="field"><label for="mn-sku">{sku}</label><input id="mn-sku" name="sku" value="{sku_v}" maxlength="64"></div>
<div class="field"><label for="mn-min">{min}</label><input id="mn-min" name="min_qty" inputmode="numeric" value="{min_v}"></div>
<button type="submit" id="min-save">{save}</button></form></section>"#,
        title = t("st.set_min"),
        err = err_at("min"),
        csrf = esc(&s.csrf),
        loc = t("st.location"),
        locs = options(&all_locations, &val("location")),
        sku = t("st.sku"),
        sku_v = esc(&val("sku")),
        min = t("st.min"),
        min_v = esc(&val("min_qty")),
        save = t("st.save_min"),
    );
    let status = if error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    html_response(status, layout(lang, Some(s), t("st.title"), &b))
}

/// The part with this SKU (or id) in the catalog.
fn part_by_sku<'a>(all: &'a [EntityState], sku: &str) -> Option<&'a EntityState> {
    let sku = sku.trim();
    all.iter()
        .filter(|s| s.kind == EntityKind::Part)
        .find(|p| p.str("sku") == Some(sku))
        .or_else(|| {
            all.iter()
                .find(|s| s.kind == EntityKind::Part && s.id.as_str() == sku)
        })
}

/// A whole number of at least `min`, as typed.
fn whole(raw: &str, min: i64, max: i64) -> Option<i64> {
    raw.trim()
        .parse::<i64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
}

/// The location and part a receipt or minimum form names, or the error to show.
fn located_part(lang: Lang, all: &[EntityState], f: &Form) -> Result<(String, String), String> {
    let loc = f.get("location");
    if !all
        .iter()
        .any(|s| s.kind == EntityKind::StockLocation && s.id.as_str() == loc)
    {
        return Err(lang.t("st.err_location").to_owned());
    }
    let part = part_by_sku(all, f.get("sku")).ok_or_else(|| lang.t("st.err_sku").to_owned())?;
    Ok((loc.to_owned(), part.id.0.clone()))
}

fn refused(lang: Lang, e: &ApiError) -> String {
    format!("{} {}", lang.t("err.refused"), e.body.error.message)
}

/// `POST /console/stock/receipt`.
pub async fn receipt(State(app): State<AppState>, Posted { sess: s, form: f }: Posted) -> Response {
    let lang = s.lang;
    let all = match states(&app).await {
        Ok(data) => data.states,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let err = |m: String| render(&app, &s, "", Some(("receipt", m)), Some(&f));
    let (location, part) = match located_part(lang, &all, &f) {
        Ok(x) => x,
        Err(m) => return err(m).await,
    };
    let Some(qty) = whole(f.get("qty"), 1, fieldsync_proto::schema::STOCK_QTY_MAX) else {
        return err(lang.t("st.err_qty").to_owned()).await;
    };
    let mut fields = BTreeMap::from([
        ("type".to_owned(), Value::from("receipt")),
        ("part_id".to_owned(), Value::from(part)),
        ("qty".to_owned(), Value::from(qty)),
        ("to_location".to_owned(), Value::from(location)),
    ]);
    if let Some(n) = f.opt("note").filter(|n| !n.trim().is_empty()) {
        fields.insert("note".into(), Value::from(n));
    }
    let w = ServerWrite {
        kind: EntityKind::StockMovement,
        id: super::pages::new_id(),
        create: true,
        fields,
        base: BTreeMap::new(),
    };
    match write(&app, s.actor.clone(), w).await {
        Ok(()) => redirect("/console/stock?msg=received"),
        Err(e) => err(refused(lang, &e)).await,
    }
}

/// `POST /console/stock/min`: create or change the one minimum of a part at a location.
pub async fn set_min(State(app): State<AppState>, Posted { sess: s, form: f }: Posted) -> Response {
    let lang = s.lang;
    let all = match states(&app).await {
        Ok(data) => data.states,
        Err(e) => return axum::response::IntoResponse::into_response(e),
    };
    let err = |m: String| render(&app, &s, "", Some(("min", m)), Some(&f));
    let (location, part) = match located_part(lang, &all, &f) {
        Ok(x) => x,
        Err(m) => return err(m).await,
    };
    let Some(min) = whole(f.get("min_qty"), 0, 1_000_000) else {
        return err(lang.t("st.err_min").to_owned()).await;
    };
    let id: EntityId = stock::min_id(&location, &part);
    let exists = all
        .iter()
        .any(|s| s.kind == EntityKind::StockMin && s.id == id);
    let mut fields = BTreeMap::from([("min_qty".to_owned(), Value::from(min))]);
    if !exists {
        fields.insert("location_id".into(), Value::from(location));
        fields.insert("part_id".into(), Value::from(part));
    }
    let w = ServerWrite {
        kind: EntityKind::StockMin,
        id,
        create: !exists,
        fields,
        base: BTreeMap::new(),
    };
    match write(&app, s.actor.clone(), w).await {
        Ok(()) => redirect("/console/stock?msg=min_saved"),
        Err(e) => err(refused(lang, &e)).await,
    }
}

/// `POST /console/requisitions/{id}/approve`: the transfer warehouse -> van and the
/// decision, in one transaction.
pub async fn approve(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { sess: s, form: f }: Posted,
) -> Response {
    let from = f.get("from_location").to_owned();
    if from.is_empty() {
        let m = s.lang.t("st.err_from").to_owned();
        return render(&app, &s, "", Some((id.as_str(), m)), Some(&f)).await;
    }
    match decide(
        &app,
        s.actor.clone(),
        id.clone(),
        Decision::Approve { from },
    )
    .await
    {
        Ok(()) => redirect("/console/stock?msg=approved"),
        Err(e) => {
            render(
                &app,
                &s,
                "",
                Some((id.as_str(), refused(s.lang, &e))),
                Some(&f),
            )
            .await
        }
    }
}

/// `POST /console/requisitions/{id}/reject`.
pub async fn reject(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { sess: s, form: f }: Posted,
) -> Response {
    let note = f.opt("note");
    match decide(&app, s.actor.clone(), id.clone(), Decision::Reject { note }).await {
        Ok(()) => redirect("/console/stock?msg=rejected"),
        Err(e) => {
            render(
                &app,
                &s,
                "",
                Some((id.as_str(), refused(s.lang, &e))),
                Some(&f),
            )
            .await
        }
    }
}
