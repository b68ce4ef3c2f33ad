//! The printable service report for the customer: `/console/orders/{id}/report`. The page
//! is `fieldsync_proto::report::render` of the same order view the API serves, so it
//! prints exactly what the engineer's offline `fieldsync report` prints; only the image
//! addresses differ (here the console's own photo route, behind the same session).

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::Response;
use fieldsync_proto::report::{self, checklist};
use fieldsync_proto::view::RecordView;
use fieldsync_proto::EntityKind;
use serde_json::Value;

use super::html::enc;
use super::pages::{blocking, html_response, message_page};
use super::Session;
use crate::api::entities::order_view;
use crate::api::AppState;

/// Checklist templates read to pick an order's (there are a handful per work type).
pub const CHECKLIST_TEMPLATES_MAX: usize = 500;

/// The template an order's report shows: the one its newest answer used, else the live
/// one for its work type (`checklist::pick_template`, as on the agent).
pub fn used_template(answers: &[RecordView]) -> Option<String> {
    answers
        .iter()
        .rev()
        .find_map(|a| a.fields.get("template_id").and_then(Value::as_str))
        .map(str::to_owned)
}

pub async fn page(State(app): State<AppState>, s: Session, Path(id): Path<String>) -> Response {
    let Ok(v) = order_view(&app, s.actor.clone(), id).await else {
        return message_page(s.lang, StatusCode::NOT_FOUND, "err.not_found");
    };
    let store = app.store.clone();
    let templates = match blocking(move || {
        store.all_of_kind(EntityKind::ChecklistTemplate, CHECKLIST_TEMPLATES_MAX)
    })
    .await
    {
        Ok(t) => t,
        Err(r) => return r,
    };
    let used = used_template(&v.checklist);
    let template = checklist::pick_template(v.work_type.as_deref(), used.as_deref(), &templates);
    let lang = report::Lang::from(s.lang);
    // Only bytes the server holds verified are linked; the rest print as placeholders.
    let media = |p: &RecordView| {
        (p.fields.get("stored").and_then(Value::as_bool) == Some(true))
            .then(|| format!("/console/photos/{}", enc(&p.id)))
    };
    let html = report::render(&v, template, lang, &media);
    let mut resp = html_response(StatusCode::OK, html);
    // The console's policy allows only its own stylesheet file; the report carries its
    // style inline (so the agent's copy is one file), allowed here by its exact hash.
    let csp = format!(
        "default-src 'none'; img-src 'self'; style-src {}; frame-ancestors 'none'; form-action 'none'; base-uri 'none'",
        report::style_csp_source()
    );
    resp.headers_mut().insert(
        "content-security-policy",
        HeaderValue::from_str(&csp).expect("the policy is ASCII"),
    );
    resp
}

/// The order page's summary of its service report: work type, root cause, checklist
/// progress, time, sign-off and rating, with the link to the printable page.
pub fn summary_section(lang: super::i18n::Lang, v: &fieldsync_proto::view::OrderView) -> String {
    use super::html::{esc, time};
    use std::fmt::Write as _;
    let t = |k: &str| lang.t(k);
    let live = |r: &&RecordView| r.fields.get("voided").and_then(Value::as_bool) != Some(true);
    let minutes = |activity: &str| -> i64 {
        v.time_entries
            .iter()
            .filter(live)
            .filter(|e| e.fields.get("activity").and_then(Value::as_str) == Some(activity))
            .filter_map(|e| e.fields.get("minutes").and_then(Value::as_i64))
            .sum()
    };
    let dash = || "—".to_owned();
    let signed = v
        .signoffs
        .iter()
        .filter(live)
        .map(|s| {
            format!(
                "{} ({})",
                esc(s
                    .fields
                    .get("signer_name")
                    .and_then(Value::as_str)
                    .unwrap_or("")),
                time(s.at_ms)
            )
        })
        .collect::<Vec<_>>()
        .join("; ");
    let rated = v
        .ratings
        .iter()
        .filter(live)
        .map(|r| {
            let score = r.fields.get("score").and_then(Value::as_i64).unwrap_or(0);
            let comment = r
                .fields
                .get("comment")
                .and_then(Value::as_str)
                .unwrap_or("");
            format!("{score}/5 {}", esc(comment))
        })
        .collect::<Vec<_>>()
        .join("; ");
    let time_spent = format!(
        "{} {} min · {} {} min",
        t("rp.labour"),
        minutes("labour"),
        t("rp.travel"),
        minutes("travel")
    );
    let mut b = String::new();
    let _ = write!(
        b,
        r#"<section aria-labelledby="rp-h"><h2 id="rp-h">{h}</h2><dl class="facts" id="report-facts">
<dt>{lwt}</dt><dd>{wt}</dd><dt>{lrc}</dt><dd>{rc}</dd>
<dt>{lcl}</dt><dd>{cl}</dd><dt>{ltm}</dt><dd>{tm}</dd>
<dt>{lso}</dt><dd>{so}</dd><dt>{lra}</dt><dd>{ra}</dd></dl>
<p><a class="button" href="/console/orders/{id}/report">{print}</a></p></section>"#,
        h = t("rp.title"),
        lwt = t("field.work_type"),
        wt = v
            .work_type
            .as_deref()
            .map(|w| t(&format!("work_type.{w}")).to_owned())
            .unwrap_or_else(dash),
        lrc = t("rp.root_cause"),
        rc = v.root_cause.as_deref().map(esc).unwrap_or_else(dash),
        lcl = t("rp.checklist"),
        cl = v.checklist.iter().filter(live).count(),
        ltm = t("rp.time"),
        tm = time_spent,
        lso = t("rp.signed"),
        so = if signed.is_empty() { dash() } else { signed },
        lra = t("rp.rating"),
        ra = if rated.is_empty() { dash() } else { rated },
        id = enc(&v.summary.id),
        print = t("detail.report"),
    );
    b
}
