//! The console's pages and form handlers. Pages are plain HTML forms; every write goes
//! through the same `ServerWrite` path as the JSON API, so it is validated, merged, logged
//! and synced like any op.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::header::{CONTENT_TYPE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use fieldsync_proto::schema::{CHANNELS, STATUSES};
use fieldsync_proto::view::ConflictView;
use fieldsync_proto::{EntityId, EntityKind, Role};
use serde_json::Value;

use super::html::{enc, esc, options, parse_time, time, time_input, Form};
use super::i18n::Lang;
use super::profiles::{self, ProfileEdit};
use super::{
    lang_of, login_cookie, login_token, login_token_ok, redirect, secure_headers, Posted, Session,
    SESSION_COOKIE,
};
use crate::api::entities::{
    order_view, resolve as resolve_conflict, write, Choice, ResolveRequest,
};
use crate::api::{now_ms, ApiError, AppState};
use crate::auth::{new_token, token_hash, verify_password};
use crate::store::{BoardQuery, BoardSort, PersonInfo, ServerWrite, UserRecord};

/// Rows on one board page: a screenful, and a page query stays well under a millisecond
/// per row.
pub const BOARD_PAGE_ROWS: usize = 50;
/// Deepest offset the board pages to; past it, filters narrow faster than paging.
pub const BOARD_OFFSET_MAX: usize = 100_000;
/// Matches offered while typing a customer, site or asset.
pub const SEARCH_RESULTS_MAX: usize = 20;
/// Ops shown on an order's timeline.
pub const TIMELINE_ENTRIES_MAX: usize = 500;
/// Conflicts listed in the inbox.
pub const INBOX_CONFLICTS_MAX: usize = 500;
/// A device whose newest op was stamped this far ahead of the server's clock gets a
/// warning (the hard refusal is `clock_skew_ms_max`).
pub const CLOCK_AHEAD_WARN_MS: i64 = 60_000;
/// An order description shown on the board is cut here.
const BOARD_DESCRIPTION_CHARS: usize = 90;

type Page = Response;

pub(super) fn html_response(status: StatusCode, body: String) -> Response {
    let mut r = (status, [(CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response();
    secure_headers(&mut r);
    r
}

/// The frame around every page: navigation, language switch, logout, live refresh.
pub(super) fn layout(lang: Lang, s: Option<&Session>, title: &str, body: &str) -> String {
    let t = |k: &str| lang.t(k);
    let mut nav = String::new();
    if let Some(s) = s {
        let _ = write!(
            nav,
            r#"<nav aria-label="main"><a href="/console">{}</a> <a href="/console/orders/new">{}</a> <a href="/console/conflicts">{}</a> <a href="/console/engineers">{}</a> <a href="/console/stock">{}</a> <a href="/console/customers">{}</a> <a href="/console/kb">{}</a>
<form method="post" action="/console/logout" class="inline"><input type="hidden" name="csrf" value="{}"><span class="who">{}</span> <button type="submit">{}</button></form></nav>"#,
            t("nav.board"),
            t("nav.new"),
            t("nav.conflicts"),
            t("nav.engineers"),
            t("nav.stock"),
            t("nav.customers"),
            t("nav.kb"),
            esc(&s.csrf),
            esc(&s.actor.user),
            t("nav.logout"),
        );
    }
    let langs: Vec<String> = Lang::ALL
        .iter()
        .map(|l| {
            let name = match l {
                Lang::En => "English",
                Lang::ZhCn => "简体中文",
            };
            if *l == lang {
                format!(r#"<strong aria-current="true">{name}</strong>"#)
            } else {
                format!(
                    r#"<a href="/console/lang/{}" lang="{}" id="lang-{}">{name}</a>"#,
                    l.code(),
                    l.code(),
                    l.code()
                )
            }
        })
        .collect();
    format!(
        r##"<!doctype html>
<html lang="{code}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {app}</title><link rel="stylesheet" href="/console/static/app.css"><script src="/console/static/app.js" defer></script></head>
<body{live}><a class="skip" href="#main">{skip}</a>
<header><span class="brand">{app}</span>{nav}<span class="langs" aria-label="{langlabel}">{langs}</span></header>
<main id="main"><h1>{title}</h1>
{body}
</main></body></html>"##,
        code = lang.code(),
        app = t("app.title"),
        skip = t("nav.skip"),
        live = if s.is_some() {
            r#" data-live="/console/events""#
        } else {
            ""
        },
        langlabel = t("nav.language"),
        langs = langs.join(" · "),
    )
}

pub fn message_page(lang: Lang, status: StatusCode, key: &str) -> Response {
    let body = format!(
        r#"<p class="error" role="alert">{}</p><p><a href="/console">{}</a></p>"#,
        lang.t(key),
        lang.t("nav.board")
    );
    html_response(status, layout(lang, None, lang.t("app.title"), &body))
}

fn flash(text: &str) -> String {
    if text.is_empty() {
        String::new()
    } else {
        format!(r#"<p class="flash" role="status">{}</p>"#, esc(text))
    }
}

pub(super) fn field_error(msg: Option<&str>, id: &str) -> String {
    msg.map(|m| {
        format!(
            r#"<span class="field-error" id="{id}-err" role="alert">{}</span>"#,
            esc(m)
        )
    })
    .unwrap_or_default()
}

pub(super) fn described_by(msg: Option<&str>, id: &str) -> String {
    msg.map(|_| format!(r#" aria-invalid="true" aria-describedby="{id}-err""#))
        .unwrap_or_default()
}

pub(super) async fn blocking<R: Send + 'static>(
    f: impl FnOnce() -> Result<R, crate::store::StoreError> + Send + 'static,
) -> Result<R, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => Err(ApiError::from(e).into_response()),
        Err(e) => Err(ApiError::from(e).into_response()),
    }
}

fn status_label(lang: Lang, status: &str) -> String {
    match STATUSES.iter().find(|s| **s == status) {
        Some(s) => lang.t(&format!("status.{s}")).to_owned(),
        None => esc(status),
    }
}

fn priority_label(lang: Lang, p: Option<i64>) -> String {
    match p {
        Some(p @ 1..=4) => lang.t(&format!("priority.{p}")).to_owned(),
        Some(p) => p.to_string(),
        None => "—".into(),
    }
}

// ---------------------------------------------------------------- login

pub async fn login_form(headers: HeaderMap, RawQuery(q): RawQuery) -> Page {
    let lang = lang_of(&headers);
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    let msg = if q.get("expired") == "1" {
        Some(lang.t("login.expired"))
    } else {
        None
    };
    login_page(&headers, "", msg, StatusCode::OK)
}

/// The sign-in form, with its double-submit token in a hidden field and in a cookie.
fn login_page(headers: &HeaderMap, user: &str, error: Option<&str>, status: StatusCode) -> Page {
    let lang = lang_of(headers);
    let t = |k: &str| lang.t(k);
    let token = login_token(headers);
    let body = format!(
        r#"<form method="post" action="/console/login" class="card narrow" id="login">
{err}<input type="hidden" name="login_csrf" value="{token}">
<label for="user">{lu}</label><input id="user" name="user" autocomplete="username" required value="{user}" autofocus>
<label for="password">{lp}</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">{submit}</button></form>"#,
        err = error
            .map(|e| format!(
                r#"<p class="error" role="alert" id="login-error">{}</p>"#,
                esc(e)
            ))
            .unwrap_or_default(),
        lu = t("login.user"),
        lp = t("login.password"),
        user = esc(user),
        submit = t("login.submit"),
    );
    let mut resp = html_response(status, layout(lang, None, t("login.title"), &body));
    resp.headers_mut()
        .append(SET_COOKIE, login_cookie(Some(&token)));
    resp
}

/// The user whose password matches, if any. argon2 is deliberately slow and memory-hard:
/// off the async threads, a few at a time.
async fn check_password(app: &AppState, user: &str, password: String) -> Option<UserRecord> {
    let (store, user) = (app.store.clone(), user.to_owned());
    let _permit = crate::auth::PASSWORD_CHECKS.acquire().await;
    tokio::task::spawn_blocking(move || {
        store
            .user(&user)
            .ok()
            .flatten()
            .filter(|r| verify_password(&password, &r.password_hash))
    })
    .await
    .ok()
    .flatten()
}

pub async fn login(State(app): State<AppState>, headers: HeaderMap, body: Bytes) -> Page {
    let lang = lang_of(&headers);
    let form = Form::parse(&body);
    let user = form.get("user").to_owned();
    // Before the password is even checked: a forged sign-in (logging the victim into the
    // attacker's account) must not get a session, and must not cost an argon2 run.
    if !login_token_ok(&headers, &form) {
        let msg = lang.t("err.login_csrf");
        return login_page(&headers, &user, Some(msg), StatusCode::FORBIDDEN);
    }
    let Some(rec) = check_password(&app, &user, form.get("password").to_owned()).await else {
        let msg = lang.t("login.bad");
        return login_page(&headers, &user, Some(msg), StatusCode::UNAUTHORIZED);
    };
    if !matches!(rec.role, Role::Dispatcher | Role::Admin) {
        let msg = lang.t("login.office_only");
        return login_page(&headers, &user, Some(msg), StatusCode::FORBIDDEN);
    }
    let token = new_token();
    let (store, hash, now, ttl) = (
        app.store.clone(),
        token_hash(&token),
        now_ms(),
        app.settings.session_ttl_ms,
    );
    if let Err(r) = blocking(move || store.add_session(&rec.name, &hash, now, now + ttl)).await {
        return r;
    }
    let mut resp = redirect("/console");
    resp.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{SESSION_COOKIE}={token}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
            ttl / 1000
        ))
        .expect("cookie is ASCII"),
    );
    // The form's token has done its job; a new sign-in gets a new form.
    resp.headers_mut().append(SET_COOKIE, login_cookie(None));
    resp
}

pub async fn logout(State(app): State<AppState>, Posted { sess: s, .. }: Posted) -> Page {
    let store = app.store.clone();
    let hash = s.token_hash.clone();
    if let Err(r) = blocking(move || store.end_session(&hash)).await {
        return r;
    }
    let mut resp = redirect("/console/login");
    resp.headers_mut().insert(
        SET_COOKIE,
        HeaderValue::from_static(
            "fs_console=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    resp
}

// ---------------------------------------------------------------- board

pub async fn board(State(app): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Page {
    let lang = s.lang;
    let t = |k: &str| lang.t(k);
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    let sort = match q.get("sort") {
        "priority" => BoardSort::Priority,
        "due" => BoardSort::Due,
        "status" => BoardSort::Status,
        _ => BoardSort::Recent,
    };
    let page: usize = q.get("page").parse().unwrap_or(0);
    let query = BoardQuery {
        status: q.opt("status"),
        priority: q.get("priority").parse().ok(),
        assignee: q.opt("engineer"),
        customer_id: q.opt("customer"),
        sort,
        offset: (page * BOARD_PAGE_ROWS).min(BOARD_OFFSET_MAX),
        limit: BOARD_PAGE_ROWS,
    };
    let store = app.store.clone();
    let qq = query.clone();
    let started = std::time::Instant::now();
    let (data, people) = match blocking(move || Ok((store.board(&qq)?, store.people()?))).await {
        Ok(d) => d,
        Err(r) => return r,
    };
    let mut b = String::new();
    // Counts per status: each a link that filters the board.
    let total_all: u64 = data.counts.iter().map(|c| c.1).sum();
    let _ = write!(
        b,
        r#"<section aria-label="{}" class="counts" id="counts">"#,
        t("board.counts")
    );
    let _ = write!(
        b,
        r#"<a href="/console" class="count">{} <b>{total_all}</b></a>"#,
        t("board.all")
    );
    for st in STATUSES {
        let n = data
            .counts
            .iter()
            .find(|c| c.0 == *st)
            .map(|c| c.1)
            .unwrap_or(0);
        let _ = write!(
            b,
            r#"<a href="/console?status={st}" class="count status-{st}" data-status="{st}">{} <b>{n}</b></a>"#,
            status_label(lang, st)
        );
    }
    b.push_str("</section>");
    // Filters.
    let mut status_opts = vec![(String::new(), t("board.any").to_owned())];
    status_opts.extend(
        STATUSES
            .iter()
            .map(|s| (s.to_string(), status_label(lang, s))),
    );
    let mut prio_opts = vec![(String::new(), t("board.any").to_owned())];
    prio_opts.extend((1..=4).map(|p| (p.to_string(), priority_label(lang, Some(p)))));
    let sort_opts: Vec<(String, String)> = ["recent", "priority", "due", "status"]
        .iter()
        .map(|k| (k.to_string(), t(&format!("board.sort.{k}")).to_owned()))
        .collect();
    let engineers: String = people
        .iter()
        .filter(|p| p.role == Role::Engineer)
        .map(|p| format!(r#"<option value="{}">"#, esc(&p.name)))
        .collect();
    let _ = write!(
        b,
        r#"<form method="get" action="/console" class="filters" id="filters" aria-label="{filter}">
<label>{ls}<select name="status" id="f-status">{so}</select></label>
<label>{lp}<select name="priority" id="f-priority">{po}</select></label>
<label>{le}<input name="engineer" id="f-engineer" list="engineers" value="{ev}"></label><datalist id="engineers">{engineers}</datalist>
<label>{lc}<input name="customer" id="f-customer" list="customers" data-search="customer" value="{cv}"></label><datalist id="customers"></datalist>
<label>{lsort}<select name="sort" id="f-sort">{sorto}</select></label>
<button type="submit">{apply}</button> <a href="/console">{clear}</a></form>"#,
        filter = t("board.filter"),
        ls = t("field.status"),
        so = options(&status_opts, q.get("status")),
        lp = t("field.priority"),
        po = options(&prio_opts, q.get("priority")),
        le = t("field.engineer"),
        ev = esc(q.get("engineer")),
        lc = t("field.customer"),
        cv = esc(q.get("customer")),
        lsort = t("board.sort"),
        sorto = options(&sort_opts, q.get("sort")),
        apply = t("board.apply"),
        clear = t("board.clear"),
    );
    let _ = write!(
        b,
        r#"<p class="hint" id="live-hint">{}</p>"#,
        t("board.live")
    );
    if data.behind {
        let _ = write!(
            b,
            r#"<p class="flash warn" id="board-behind" role="status">{}</p>"#,
            t("board.behind")
        );
    }
    if data.rows.is_empty() {
        let _ = write!(b, r#"<p id="board-empty">{}</p>"#, t("board.empty"));
    } else {
        let _ = write!(
            b,
            r#"<div class="scroll"><table id="board"><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
            t("field.id"),
            t("field.priority"),
            t("field.status"),
            t("field.description"),
            t("field.engineer"),
            t("field.customer"),
            t("field.due"),
            t("field.updated"),
        );
        for r in &data.rows {
            let desc: String = r
                .description
                .chars()
                .take(BOARD_DESCRIPTION_CHARS)
                .collect();
            let _ = write!(
                b,
                r#"<tr data-id="{id}" class="p{prio}{cancel}"><td><a href="/console/orders/{ide}">{idshort}</a></td><td>{p}</td><td>{st}</td><td>{desc}</td><td>{eng}</td><td>{cust}</td><td>{due}</td><td>{upd}</td></tr>"#,
                id = esc(&r.id),
                ide = enc(&r.id),
                idshort = esc(&r.id),
                prio = r.priority.unwrap_or(0),
                cancel = if r.cancelled { " cancelled" } else { "" },
                p = priority_label(lang, r.priority),
                st = status_label(lang, &r.status),
                desc = esc(&desc),
                eng = r
                    .assignee
                    .as_deref()
                    .map(esc)
                    .unwrap_or_else(|| t("field.unassigned").to_owned()),
                cust = r
                    .customer_id
                    .as_deref()
                    .map(|c| {
                        format!(
                            r#"<a href="/console/customers/{}">{}</a>"#,
                            enc(c),
                            esc(data.customer_names.get(c).map_or(c, String::as_str))
                        )
                    })
                    .unwrap_or_default(),
                due = r.scheduled_end.map(time).unwrap_or_default(),
                upd = time(r.updated_ms),
            );
        }
        b.push_str("</tbody></table></div>");
    }
    // Paging.
    let from = query.offset + 1;
    let to = query.offset + data.rows.len();
    let link = |p: usize| {
        let mut parts = Vec::new();
        for k in ["status", "priority", "engineer", "customer", "sort"] {
            if !q.get(k).is_empty() {
                parts.push(format!("{k}={}", enc(q.get(k))));
            }
        }
        parts.push(format!("page={p}"));
        format!("/console?{}", parts.join("&"))
    };
    let _ = write!(
        b,
        r#"<nav class="pager" aria-label="pages"><span id="showing">{} {from}–{to} {} {}</span>"#,
        t("board.showing"),
        t("board.of"),
        data.total
    );
    if page > 0 {
        let _ = write!(
            b,
            r#" <a rel="prev" href="{}">{}</a>"#,
            esc(&link(page - 1)),
            t("board.prev")
        );
    }
    if (to as u64) < data.total && query.offset + BOARD_PAGE_ROWS <= BOARD_OFFSET_MAX {
        let _ = write!(
            b,
            r#" <a rel="next" id="next-page" href="{}">{}</a>"#,
            esc(&link(page + 1)),
            t("board.next")
        );
    }
    b.push_str("</nav>");
    let mut resp = html_response(StatusCode::OK, layout(lang, Some(&s), t("board.title"), &b));
    // The board's own server time, for the bench (it measures this header, not the network).
    if let Ok(v) = HeaderValue::from_str(&format!(
        "board;dur={:.3}",
        started.elapsed().as_secs_f64() * 1000.0
    )) {
        resp.headers_mut().insert("server-timing", v);
    }
    resp
}

// ---------------------------------------------------------------- search

pub async fn search(State(app): State<AppState>, _s: Session, RawQuery(q): RawQuery) -> Response {
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    let kind = match q.get("kind") {
        "customer" => EntityKind::Customer,
        "site" => EntityKind::Site,
        "asset" => EntityKind::Asset,
        _ => {
            return ApiError::bad_request("invalid_query", "kind is customer, site or asset")
                .into_response()
        }
    };
    let prefix = q.get("q").to_owned();
    let store = app.store.clone();
    match blocking(move || store.search(kind, &prefix, SEARCH_RESULTS_MAX)).await {
        Ok(rows) => axum::Json(
            rows.into_iter()
                .map(|(id, label)| serde_json::json!({"id": id, "label": label}))
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------- intake

/// Form errors by field name, each shown next to its field.
#[derive(Default)]
pub(super) struct IntakeErrors(pub(super) BTreeMap<&'static str, String>);

impl IntakeErrors {
    pub(super) fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
}

pub async fn intake_form(State(_app): State<AppState>, s: Session) -> Page {
    intake_page(&s, &Form::default(), &IntakeErrors::default(), None)
}

fn intake_page(s: &Session, f: &Form, errs: &IntakeErrors, refused: Option<String>) -> Page {
    let lang = s.lang;
    let t = |k: &str| lang.t(k);
    let pick = |name: &str, label: &str, kind: &str| {
        format!(
            r#"<div class="field"><label for="{name}">{label}</label><input id="{name}" name="{name}" list="{name}-list" data-search="{kind}" autocomplete="off" value="{v}" aria-describedby="{name}-hint"{inv}><datalist id="{name}-list"></datalist><small id="{name}-hint">{hint}</small>{err}</div>"#,
            v = esc(f.get(name)),
            hint = t("intake.search_hint"),
            inv = described_by(errs.get(name), name),
            err = field_error(errs.get(name), name),
        )
    };
    let mut prio = vec![(String::new(), "—".to_owned())];
    prio.extend((1..=4).map(|p| (p.to_string(), priority_label(lang, Some(p)))));
    let chans: Vec<(String, String)> = CHANNELS
        .iter()
        .map(|c| (c.to_string(), t(&format!("channel.{c}")).to_owned()))
        .collect();
    // Which checklist the engineer fills in (none when not set).
    let mut work_types = vec![(String::new(), "—".to_owned())];
    work_types.extend(
        fieldsync_proto::report::schema::WORK_TYPES
            .iter()
            .map(|w| (w.to_string(), t(&format!("work_type.{w}")).to_owned())),
    );
    let body = format!(
        r#"{refused}<form method="post" action="/console/orders/new" class="card" id="intake" novalidate>
<input type="hidden" name="csrf" value="{csrf}">
{cust}{site}{asset}
<div class="field"><label for="priority">{lp}</label><select id="priority" name="priority"{pinv}>{po}</select>{perr}</div>
<div class="field"><label for="description">{ld}</label><textarea id="description" name="description" rows="4"{dinv}>{dv}</textarea>{derr}</div>
<div class="field"><label for="channel">{lch}</label><select id="channel" name="channel">{co}</select></div>
<div class="field"><label for="reporter">{lr}</label><input id="reporter" name="reporter" value="{rv}"></div>
<div class="field"><label for="work_type">{lwt}</label><select id="work_type" name="work_type">{wto}</select></div>
<button type="submit">{submit}</button></form>"#,
        refused = refused
            .map(|m| format!(
                r#"<p class="error" role="alert">{} {}</p>"#,
                t("err.refused"),
                esc(&m)
            ))
            .unwrap_or_default(),
        csrf = esc(&s.csrf),
        cust = pick("customer", t("field.customer"), "customer"),
        site = pick("site", t("field.site"), "site"),
        asset = pick("asset", t("field.asset"), "asset"),
        lp = t("field.priority"),
        po = options(&prio, f.get("priority")),
        pinv = described_by(errs.get("priority"), "priority"),
        perr = field_error(errs.get("priority"), "priority"),
        ld = t("field.description"),
        dinv = described_by(errs.get("description"), "description"),
        dv = esc(f.get("description")),
        derr = field_error(errs.get("description"), "description"),
        lch = t("field.channel"),
        co = options(
            &chans,
            if f.get("channel").is_empty() {
                "phone"
            } else {
                f.get("channel")
            }
        ),
        lr = t("field.reporter"),
        rv = esc(f.get("reporter")),
        lwt = t("field.work_type"),
        wto = options(&work_types, f.get("work_type")),
        submit = t("intake.submit"),
    );
    let status = if errs.0.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    html_response(status, layout(lang, Some(s), t("intake.title"), &body))
}

async fn exists(app: &AppState, s: &Session, kind: EntityKind, id: &str) -> bool {
    let (store, actor, id) = (app.store.clone(), s.actor.clone(), id.to_owned());
    blocking(move || store.entity(&actor, kind, &id))
        .await
        .ok()
        .flatten()
        .is_some()
}

pub(super) fn new_id() -> EntityId {
    let mut r = [0u8; 10];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut r);
    EntityId::generate(now_ms(), r)
}

pub async fn intake(State(app): State<AppState>, Posted { sess: s, form: f }: Posted) -> Page {
    let lang = s.lang;
    let mut errs = IntakeErrors::default();
    if f.get("description").is_empty() {
        errs.0.insert("description", lang.t("err.required").into());
    }
    let priority: Option<i64> = f
        .get("priority")
        .parse()
        .ok()
        .filter(|p| (1..=4).contains(p));
    if priority.is_none() {
        errs.0.insert("priority", lang.t("err.priority").into());
    }
    for (name, kind, key) in [
        ("customer", EntityKind::Customer, "err.unknown_customer"),
        ("site", EntityKind::Site, "err.unknown_site"),
        ("asset", EntityKind::Asset, "err.unknown_asset"),
    ] {
        if let Some(id) = f.opt(name) {
            if !exists(&app, &s, kind, &id).await {
                errs.0.insert(name, lang.t(key).into());
            }
        }
    }
    if !errs.0.is_empty() {
        return intake_page(&s, &f, &errs, None);
    }
    let mut fields = BTreeMap::new();
    fields.insert("description".to_owned(), Value::from(f.get("description")));
    fields.insert("priority".to_owned(), Value::from(priority.unwrap_or(3)));
    for (form_name, field) in [
        ("customer", "customer_id"),
        ("site", "site_id"),
        ("asset", "asset_id"),
        ("channel", "channel"),
        ("reporter", "reporter"),
        ("work_type", "work_type"),
    ] {
        if let Some(v) = f.opt(form_name) {
            fields.insert(field.to_owned(), Value::from(v));
        }
    }
    let id = new_id();
    let w = ServerWrite {
        kind: EntityKind::WorkOrder,
        id: id.clone(),
        create: true,
        fields,
        base: BTreeMap::new(),
    };
    if let Err(e) = write(&app, s.actor.clone(), w).await {
        return intake_page(&s, &f, &errs, Some(e.body.error.message));
    }
    redirect(&format!("/console/orders/{}?msg=created", enc(id.as_str())))
}

// ---------------------------------------------------------------- detail

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "—".into(),
        other => other.to_string(),
    }
}

fn conflict_rows(lang: Lang, s: &Session, conflicts: &[ConflictView], with_order: bool) -> String {
    let t = |k: &str| lang.t(k);
    let side = |v: &Value| {
        format!(
            r#"<div class="value">{}</div><div class="meta">{} {} · {} #{} · {}</div>"#,
            esc(&value_text(v.get("value").unwrap_or(&Value::Null))),
            t("cf.by"),
            esc(v.get("by").and_then(Value::as_str).unwrap_or("?")),
            t("tl.device"),
            v.get("device").and_then(Value::as_u64).unwrap_or(0),
            v.get("at_ms")
                .and_then(Value::as_u64)
                .map(time)
                .unwrap_or_default(),
        )
    };
    let mut b = String::new();
    for c in conflicts {
        let order_cell = if with_order {
            // Each conflict opens the page that edits what it is about.
            let link = match c.entity_kind.as_str() {
                "kb_article" => format!("/console/kb/{}", enc(&c.entity_id)),
                "customer" => format!("/console/customers/{}", enc(&c.entity_id)),
                _ => format!("/console/orders/{}", enc(&c.entity_id)),
            };
            format!(r#"<td><a href="{link}">{}</a></td>"#, esc(&c.entity_id))
        } else {
            String::new()
        };
        let action = if c.resolved {
            format!(
                r#"<span class="ok">{} ({} {})</span>"#,
                t("cf.resolved"),
                t("cf.by"),
                esc(c.resolved_by.as_deref().unwrap_or("?"))
            )
        } else {
            format!(
                r#"<form method="post" action="/console/conflicts/{id}/resolve" class="inline"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="back" value="{back}"><button name="choose" value="winner" class="keep">{keep}</button> <button name="choose" value="loser" class="use-other">{other}</button></form>"#,
                id = enc(&c.id),
                csrf = esc(&s.csrf),
                back = if with_order { "inbox" } else { "order" },
                keep = t("cf.keep"),
                other = t("cf.use_other"),
            )
        };
        let _ = write!(
            b,
            r#"<tr class="conflict{res}" data-conflict="{id}">{order_cell}<td>{field}</td><td>{w}</td><td>{l}</td><td>{action}</td></tr>"#,
            res = if c.resolved { " resolved" } else { " open" },
            id = esc(&c.id),
            field = esc(&c.field),
            w = side(&c.winner),
            l = side(&c.loser),
        );
    }
    b
}

pub(super) fn conflict_table(
    lang: Lang,
    s: &Session,
    conflicts: &[ConflictView],
    with_order: bool,
    id: &str,
) -> String {
    let t = |k: &str| lang.t(k);
    format!(
        r#"<div class="scroll"><table id="{id}"><thead><tr>{oh}<th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col"></th></tr></thead><tbody>{}</tbody></table></div>"#,
        t("cf.field"),
        t("cf.winner"),
        t("cf.loser"),
        conflict_rows(lang, s, conflicts, with_order),
        oh = if with_order {
            format!(r#"<th scope="col">{}</th>"#, t("cf.order"))
        } else {
            String::new()
        },
    )
}

fn msg_text(lang: Lang, key: &str) -> &'static str {
    match key {
        "created" => lang.t("intake.created"),
        "saved" => lang.t("detail.saved"),
        "assigned" => lang.t("as.done"),
        "resolved" => lang.t("cf.resolved_msg"),
        "revoked" => lang.t("eng.revoked_msg"),
        "already_resolved" => lang.t("err.already_resolved"),
        "profile_saved" => lang.t("eng.profile_saved"),
        "complaint" => lang.t("cp.logged"),
        "follow_up" => lang.t("cp.follow_up_created"),
        _ => "",
    }
}

pub async fn detail(
    State(app): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Page {
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    render_detail(&app, &s, &id, msg_text(s.lang, q.get("msg")), None).await
}

async fn render_detail(
    app: &AppState,
    s: &Session,
    id: &str,
    msg: &str,
    error: Option<String>,
) -> Page {
    let lang = s.lang;
    let t = |k: &str| lang.t(k);
    let Ok(v) = order_view(app, s.actor.clone(), id.to_owned()).await else {
        return message_page(lang, StatusCode::NOT_FOUND, "err.not_found");
    };
    let (store, oid, actor) = (app.store.clone(), id.to_owned(), s.actor.clone());
    let (timeline, raw) = match blocking(move || {
        Ok((
            store.timeline(&oid, TIMELINE_ENTRIES_MAX)?,
            store.entity(&actor, EntityKind::WorkOrder, &oid)?,
        ))
    })
    .await
    {
        Ok(t) => t,
        Err(r) => return r,
    };
    let o = &v.summary;
    let mut b = flash(msg);
    if let Some(e) = error {
        let _ = write!(
            b,
            r#"<p class="error" role="alert">{} {}</p>"#,
            t("err.refused"),
            esc(&e)
        );
    }
    let named =
        |m: &Option<serde_json::Map<String, Value>>, key: &str, fallback: &Option<String>| {
            m.as_ref()
                .and_then(|m| m.get(key).and_then(Value::as_str).map(str::to_owned))
                .or_else(|| fallback.clone())
                .map(|s| esc(&s))
                .unwrap_or_else(|| "—".into())
        };
    let extra = |f: &str| -> String { detail_field(lang, raw.as_ref(), f) };
    let _ = write!(
        b,
        r#"<dl class="facts" id="facts">
<dt>{ls}</dt><dd id="order-status">{st}{cancel}</dd>
<dt>{lp}</dt><dd>{p}</dd>
<dt>{le}</dt><dd id="order-engineer">{eng}</dd>
<dt>{lsch}</dt><dd>{sched}</dd>
<dt>{lc}</dt><dd>{cust}</dd><dt>{lsi}</dt><dd>{site}</dd><dt>{la}</dt><dd>{asset}</dd>
<dt>{lch}</dt><dd>{chan}</dd><dt>{lrep}</dt><dd>{rep}</dd>
<dt>{larr}</dt><dd>{arr}</dd><dt>{lcomp}</dt><dd>{comp}</dd>
<dt>{lres}</dt><dd>{res}</dd><dt>{lfc}</dt><dd>{fc}</dd>
</dl>
<p><a class="button" id="assign-link" href="/console/orders/{ide}/assign">{assign}</a> <a class="button" id="report-link" href="/console/orders/{ide}/report">{report}</a></p>"#,
        ls = t("field.status"),
        st = status_label(lang, &o.status),
        cancel = if o.cancelled {
            format!(" · {}", t("field.cancelled"))
        } else {
            String::new()
        },
        lp = t("field.priority"),
        p = priority_label(lang, o.priority),
        le = t("field.engineer"),
        eng = o
            .assignee
            .as_deref()
            .map(esc)
            .unwrap_or_else(|| t("field.unassigned").into()),
        lsch = t("field.scheduled"),
        sched = match (o.scheduled_start, o.scheduled_end) {
            (None, None) => "—".to_owned(),
            (a, b) => format!(
                "{} – {} UTC",
                a.map(time).unwrap_or_default(),
                b.map(time).unwrap_or_default()
            ),
        },
        lc = t("field.customer"),
        cust = match &o.customer_id {
            Some(c) => format!(
                r#"<a href="/console/customers/{}" id="customer-link">{}</a>"#,
                enc(c),
                named(&v.customer, "name", &o.customer_id)
            ),
            None => "—".to_owned(),
        },
        lsi = t("field.site"),
        site = named(&v.site, "name", &o.site_id),
        la = t("field.asset"),
        asset = named(&v.asset, "model", &o.asset_id),
        lch = t("field.channel"),
        chan = extra("channel"),
        lrep = t("field.reporter"),
        rep = extra("reporter"),
        larr = t("field.arrived"),
        arr = v.arrived_at.map(time).unwrap_or_else(|| "—".into()),
        lcomp = t("field.completed"),
        comp = v.completed_at.map(time).unwrap_or_else(|| "—".into()),
        lres = t("field.resolution"),
        res = v
            .resolution
            .as_deref()
            .map(esc)
            .unwrap_or_else(|| "—".into()),
        lfc = t("field.fault_code"),
        fc = v
            .fault_code
            .as_deref()
            .map(esc)
            .unwrap_or_else(|| "—".into()),
        ide = enc(&o.id),
        assign = t("detail.assign"),
        report = t("detail.report"),
    );
    b.push_str(&sla_block(lang, &v));
    // Edit: the versions shown travel with the form, so an engineer's change that lands
    // in between is kept as a conflict instead of being silently overwritten.
    let base: serde_json::Map<String, Value> = ["description", "priority"]
        .iter()
        .filter_map(|f| {
            v.versions.get(*f).map(|ver| {
                (
                    f.to_string(),
                    serde_json::to_value(ver).unwrap_or(Value::Null),
                )
            })
        })
        .collect();
    let mut prio = Vec::new();
    prio.extend((1..=4).map(|p| (p.to_string(), priority_label(lang, Some(p)))));
    let _ = write!(
        b,
        r#"<section aria-labelledby="edit-h"><h2 id="edit-h">{edit}</h2><form method="post" action="/console/orders/{ide}/edit" class="card" id="edit">
<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="base" value="{base}">
<div class="field"><label for="description">{ld}</label><textarea id="description" name="description" rows="3">{dv}</textarea></div>
<div class="field"><label for="priority">{lp}</label><select id="priority" name="priority">{po}</select></div>
<button type="submit" id="save">{save}</button></form></section>"#,
        edit = t("detail.edit"),
        ide = enc(&o.id),
        csrf = esc(&s.csrf),
        base = esc(&Value::Object(base).to_string()),
        ld = t("field.description"),
        dv = esc(&o.description),
        lp = t("field.priority"),
        po = options(
            &prio,
            &o.priority.map(|p| p.to_string()).unwrap_or_default()
        ),
        save = t("detail.save"),
    );
    // Conflicts.
    let _ = write!(
        b,
        r#"<section aria-labelledby="cf-h"><h2 id="cf-h">{}</h2>"#,
        t("detail.conflicts")
    );
    if v.conflicts.is_empty() {
        let _ = write!(b, "<p>{}</p>", t("detail.none"));
    } else {
        b.push_str(&conflict_table(
            lang,
            s,
            &v.conflicts,
            false,
            "order-conflicts",
        ));
    }
    b.push_str("</section>");
    // Notes, parts, photos.
    let records = |title: &str,
                   id: &str,
                   items: &[fieldsync_proto::view::RecordView],
                   show: &dyn Fn(&fieldsync_proto::view::RecordView) -> String| {
        let mut out = format!(r#"<section aria-labelledby="{id}-h"><h2 id="{id}-h">{title}</h2>"#);
        if items.is_empty() {
            let _ = write!(out, "<p>{}</p>", t("detail.none"));
        } else {
            let _ = write!(out, r#"<ul id="{id}">"#);
            for r in items {
                let voided = r
                    .fields
                    .get("voided")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let _ = write!(
                    out,
                    r#"<li{cls}>{body} <span class="meta">— {by}, {at}{void}</span></li>"#,
                    cls = if voided { r#" class="voided""# } else { "" },
                    body = show(r),
                    by = esc(&r.by),
                    at = time(r.at_ms),
                    void = if voided {
                        format!(" · {}", t("detail.voided"))
                    } else {
                        String::new()
                    },
                );
            }
            out.push_str("</ul>");
        }
        out.push_str("</section>");
        out
    };
    b.push_str(&records(t("detail.notes"), "notes", &v.notes, &|r| {
        esc(r.fields.get("text").and_then(Value::as_str).unwrap_or(""))
    }));
    b.push_str(&records(t("detail.parts"), "parts", &v.parts, &|r| {
        format!(
            "{} × {}",
            r.fields.get("qty").map(value_text).unwrap_or_default(),
            esc(r.fields.get("sku").and_then(Value::as_str).unwrap_or(""))
        )
    }));
    b.push_str(&super::photos::gallery(lang, &v.photos));
    b.push_str(&super::report::summary_section(lang, &v));
    b.push_str(&super::complaints::section(lang, s, &o.id, &v.complaints));
    let _ = write!(
        b,
        r#"<section aria-labelledby="cl-h"><h2 id="cl-h">{}</h2>{}{}</section>"#,
        t("cl.title"),
        super::customers::log_list(lang, &v.contact_log, false),
        o.customer_id
            .as_deref()
            .map(|c| format!(
                r#"<p><a href="/console/customers/{}#cl-h" id="log-contact">{}</a></p>"#,
                enc(c),
                t("cl.add_on_customer")
            ))
            .unwrap_or_default(),
    );
    // Timeline.
    let _ = write!(
        b,
        r#"<section aria-labelledby="tl-h"><h2 id="tl-h">{}</h2><div class="scroll"><table id="timeline"><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
        t("detail.timeline"),
        t("tl.event"),
        t("tl.arrived"),
        t("tl.who"),
        t("tl.device"),
        t("tl.change"),
    );
    for e in &timeline {
        let fields = e.op.get("fields").and_then(Value::as_object);
        let change = fields
            .map(|m| {
                m.iter()
                    .map(|(k, v)| format!("{}={}", esc(k), esc(&value_text(v))))
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        let verb = match e.op.get("op").and_then(Value::as_str) {
            Some("create") => t("tl.created"),
            _ => t("tl.set"),
        };
        let _ = write!(
            b,
            r#"<tr{cls}><td>{ev}</td><td>{arr}</td><td>{who}</td><td>{dev}</td><td>{verb} {kind}: {change}{rej}</td></tr>"#,
            cls = if e.rejected.is_some() {
                r#" class="rejected""#
            } else {
                ""
            },
            ev = time(e.event_ms),
            arr = time(e.received_ms),
            who = esc(&e.user),
            dev = if e.device == 0 {
                t("tl.server").to_owned()
            } else {
                format!("{} #{}", esc(&e.device_name), e.device)
            },
            kind = esc(&e.kind),
            rej = e
                .rejected
                .as_deref()
                .map(|c| format!(r#" <b class="error">{} ({})</b>"#, t("tl.rejected"), esc(c)))
                .unwrap_or_default(),
        );
    }
    b.push_str("</tbody></table></div></section>");
    let title = format!("{} {}", t("detail.title"), esc(&o.id));
    html_response(StatusCode::OK, layout(lang, Some(s), &title, &b))
}

/// A field the order view does not carry (channel, reporter), from the order itself.
fn detail_field(lang: Lang, raw: Option<&fieldsync_proto::EntityState>, field: &str) -> String {
    match (field, raw.and_then(|r| r.get(field))) {
        ("channel", Some(Value::String(c))) if CHANNELS.contains(&c.as_str()) => {
            lang.t(&format!("channel.{c}")).to_owned()
        }
        (_, Some(v)) => esc(&value_text(v)),
        (_, None) => "—".into(),
    }
}

pub async fn edit(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { sess: s, form: f }: Posted,
) -> Page {
    let Ok(current) = order_view(&app, s.actor.clone(), id.clone()).await else {
        return message_page(s.lang, StatusCode::NOT_FOUND, "err.not_found");
    };
    let mut fields = BTreeMap::new();
    if f.get("description") != current.summary.description && !f.get("description").is_empty() {
        fields.insert("description".to_owned(), Value::from(f.get("description")));
    }
    if let Ok(p) = f.get("priority").parse::<i64>() {
        if Some(p) != current.summary.priority {
            fields.insert("priority".to_owned(), Value::from(p));
        }
    }
    if fields.is_empty() {
        return redirect(&format!("/console/orders/{}", enc(&id)));
    }
    let all_base: BTreeMap<String, fieldsync_proto::state::Version> =
        serde_json::from_str(f.get("base")).unwrap_or_default();
    let base = all_base
        .into_iter()
        .filter(|(k, _)| fields.contains_key(k))
        .collect();
    let w = ServerWrite {
        kind: EntityKind::WorkOrder,
        id: EntityId(id.clone()),
        create: false,
        fields,
        base,
    };
    match write(&app, s.actor.clone(), w).await {
        Ok(()) => redirect(&format!("/console/orders/{}?msg=saved", enc(&id))),
        Err(e) => render_detail(&app, &s, &id, "", Some(e.body.error.message)).await,
    }
}

// ---------------------------------------------------------------- assign

fn skill_match(p: &PersonInfo, asset: Option<&serde_json::Map<String, Value>>) -> bool {
    let (Some(skills), Some(asset)) = (&p.skills, asset) else {
        return false;
    };
    let model = asset
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_lowercase();
    skills
        .split([',', ';'])
        .map(|s| s.trim().to_lowercase())
        .any(|s| !s.is_empty() && model.contains(&s))
}

pub async fn assign_form(State(app): State<AppState>, s: Session, Path(id): Path<String>) -> Page {
    render_assign(&app, &s, &id, &Form::default(), &IntakeErrors::default()).await
}

async fn render_assign(
    app: &AppState,
    s: &Session,
    id: &str,
    f: &Form,
    errs: &IntakeErrors,
) -> Page {
    let lang = s.lang;
    let t = |k: &str| lang.t(k);
    let Ok(v) = order_view(app, s.actor.clone(), id.to_owned()).await else {
        return message_page(lang, StatusCode::NOT_FOUND, "err.not_found");
    };
    let store = app.store.clone();
    let people = match blocking(move || store.people()).await {
        Ok(p) => p,
        Err(r) => return r,
    };
    let current = v.summary.assignee.clone();
    let chosen = f
        .opt("engineer")
        .or_else(|| current.clone())
        .unwrap_or_default();
    let mut rows = String::new();
    for p in people.iter().filter(|p| p.role == Role::Engineer) {
        let online = p
            .devices
            .iter()
            .any(|d| !d.revoked && app.live.is_online(d.id));
        let last = p.devices.iter().filter_map(|d| d.last_seen_ms).max();
        let matched = skill_match(p, v.asset.as_ref());
        let _ = write!(
            rows,
            r#"<tr><td><label><input type="radio" name="engineer" value="{n}" id="cand-{n}"{checked}> {n}{cur}</label></td><td>{skills}{m}</td><td>{region}</td><td class="num">{load}</td><td>{online}</td></tr>"#,
            n = esc(&p.name),
            checked = if p.name == chosen { " checked" } else { "" },
            cur = if current.as_deref() == Some(p.name.as_str()) {
                format!(r#" <em>({})</em>"#, t("as.current"))
            } else {
                String::new()
            },
            skills = p.skills.as_deref().map(esc).unwrap_or_else(|| "—".into()),
            m = if matched {
                format!(r#" <b class="ok">✓ {}</b>"#, t("as.match"))
            } else {
                String::new()
            },
            region = p.region.as_deref().map(esc).unwrap_or_else(|| "—".into()),
            load = p.open_load,
            online = if online {
                format!(r#"<b class="ok online">● {}</b>"#, t("as.online"))
            } else {
                format!(
                    "{}: {}",
                    t("as.last_sync"),
                    last.map(time).unwrap_or_else(|| t("as.never").into())
                )
            },
        );
    }
    let start = f
        .opt("start")
        .or_else(|| v.summary.scheduled_start.map(time_input))
        .unwrap_or_default();
    let end = f
        .opt("end")
        .or_else(|| v.summary.scheduled_end.map(time_input))
        .unwrap_or_default();
    let body = format!(
        r#"<p><a href="/console/orders/{ide}">← {title} {idt}</a>: {desc}</p>
<form method="post" action="/console/orders/{ide}/assign" class="card dialog" id="assign" role="dialog" aria-labelledby="as-h" novalidate>
<h2 id="as-h">{ttl}</h2><input type="hidden" name="csrf" value="{csrf}">
<fieldset><legend>{cands}</legend>{eerr}<div class="scroll"><table id="candidates"><thead><tr><th scope="col">{le}</th><th scope="col">{ls}</th><th scope="col">{lr}</th><th scope="col">{ll}</th><th scope="col">{lo}</th></tr></thead><tbody>{rows}</tbody></table></div></fieldset>
<div class="row"><div class="field"><label for="start">{lst}</label><input type="datetime-local" id="start" name="start" value="{start}"{sinv}>{serr}</div>
<div class="field"><label for="end">{len}</label><input type="datetime-local" id="end" name="end" value="{end}"{einv}>{eerr2}</div></div>
{confirm}
<button type="submit" id="assign-submit">{submit}</button></form>"#,
        ide = enc(id),
        title = t("detail.title"),
        idt = esc(id),
        desc = esc(&v.summary.description),
        ttl = t("as.title"),
        csrf = esc(&s.csrf),
        cands = t("as.candidates"),
        eerr = field_error(errs.get("engineer"), "engineer"),
        le = t("field.engineer"),
        ls = t("as.skills"),
        lr = t("as.region"),
        ll = t("as.load"),
        lo = t("as.online"),
        lst = t("field.start"),
        sinv = described_by(errs.get("start"), "start"),
        serr = field_error(errs.get("start"), "start"),
        len = t("field.end"),
        einv = described_by(errs.get("end"), "end"),
        eerr2 = field_error(errs.get("end"), "end"),
        confirm = if current.is_some() {
            format!(
                r#"<div class="field"><label><input type="checkbox" name="confirm_reassign" value="1" id="confirm_reassign"{inv}> {}</label>{err}</div>"#,
                t("as.confirm"),
                inv = described_by(errs.get("confirm_reassign"), "confirm_reassign"),
                err = field_error(errs.get("confirm_reassign"), "confirm_reassign"),
            )
        } else {
            String::new()
        },
        submit = t("as.submit"),
    );
    let status = if errs.0.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    html_response(status, layout(lang, Some(s), t("as.title"), &body))
}

pub async fn assign(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { sess: s, form: f }: Posted,
) -> Page {
    let lang = s.lang;
    let Ok(v) = order_view(&app, s.actor.clone(), id.clone()).await else {
        return message_page(lang, StatusCode::NOT_FOUND, "err.not_found");
    };
    let mut errs = IntakeErrors::default();
    let engineer = f.opt("engineer");
    if engineer.is_none() {
        errs.0
            .insert("engineer", lang.t("err.pick_engineer").into());
    }
    let mut times = [None, None];
    for (i, name) in ["start", "end"].into_iter().enumerate() {
        if let Some(raw) = f.opt(name) {
            match parse_time(&raw) {
                Some(ms) => times[i] = Some(ms),
                None => {
                    errs.0.insert(name, lang.t("err.time").into());
                }
            }
        }
    }
    if let [Some(a), Some(b)] = times {
        if b <= a {
            errs.0.insert("end", lang.t("err.end_before_start").into());
        }
    }
    // Reassigning is explicit: the dispatcher confirms taking the order from someone.
    let reassign = v.summary.assignee.is_some() && v.summary.assignee != engineer;
    if reassign && f.get("confirm_reassign") != "1" {
        errs.0
            .insert("confirm_reassign", lang.t("err.confirm_reassign").into());
    }
    if !errs.0.is_empty() {
        return render_assign(&app, &s, &id, &f, &errs).await;
    }
    let mut fields = BTreeMap::new();
    if v.summary.assignee != engineer {
        fields.insert(
            "assignee".to_owned(),
            engineer.map(Value::from).unwrap_or(Value::Null),
        );
    }
    for (i, name) in ["scheduled_start", "scheduled_end"].into_iter().enumerate() {
        let old = if i == 0 {
            v.summary.scheduled_start
        } else {
            v.summary.scheduled_end
        };
        if times[i] != old && (times[i].is_some() || old.is_some()) {
            fields.insert(
                name.to_owned(),
                times[i].map(Value::from).unwrap_or(Value::Null),
            );
        }
    }
    if fields.is_empty() {
        return redirect(&format!("/console/orders/{}", enc(&id)));
    }
    let w = ServerWrite {
        kind: EntityKind::WorkOrder,
        id: EntityId(id.clone()),
        create: false,
        fields,
        base: BTreeMap::new(),
    };
    match write(&app, s.actor.clone(), w).await {
        Ok(()) => redirect(&format!("/console/orders/{}?msg=assigned", enc(&id))),
        Err(e) => render_detail(&app, &s, &id, "", Some(e.body.error.message)).await,
    }
}

// ---------------------------------------------------------------- conflicts

pub async fn conflicts(State(app): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Page {
    let lang = s.lang;
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    let store = app.store.clone();
    let states = match blocking(move || store.open_conflicts(INBOX_CONFLICTS_MAX)).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let views: Vec<ConflictView> = states
        .iter()
        .filter_map(|c| serde_json::from_value(Value::Object(fieldsync_proto::view::plain(c))).ok())
        .collect();
    let mut b = flash(msg_text(lang, q.get("msg")));
    if views.is_empty() {
        let _ = write!(b, r#"<p id="inbox-empty">{}</p>"#, lang.t("cf.none"));
    } else {
        b.push_str(&conflict_table(lang, &s, &views, true, "inbox"));
    }
    html_response(
        StatusCode::OK,
        layout(lang, Some(&s), lang.t("cf.inbox"), &b),
    )
}

pub async fn resolve(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { sess: s, form: f }: Posted,
) -> Page {
    let choose = match f.get("choose") {
        "loser" => Choice::Loser,
        _ => Choice::Winner,
    };
    let order = {
        let (store, actor, cid) = (app.store.clone(), s.actor.clone(), id.clone());
        blocking(move || store.entity(&actor, EntityKind::Conflict, &cid))
            .await
            .ok()
            .flatten()
            .and_then(|c| c.str("order_id").map(str::to_owned))
    };
    let result = resolve_conflict(
        &app,
        s.actor.clone(),
        id,
        ResolveRequest {
            choose,
            value: None,
        },
    )
    .await;
    let msg = match &result {
        Ok(_) => "resolved",
        Err(e) if e.body.error.code == "already_resolved" => "already_resolved",
        Err(e) => {
            return render_detail(
                &app,
                &s,
                order.as_deref().unwrap_or(""),
                "",
                Some(e.body.error.message.clone()),
            )
            .await
        }
    };
    match (f.get("back"), order) {
        ("order", Some(o)) => redirect(&format!("/console/orders/{}?msg={msg}", enc(&o))),
        _ => redirect(&format!("/console/conflicts?msg={msg}")),
    }
}

// ---------------------------------------------------------------- engineers

pub async fn engineers(State(app): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Page {
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    render_engineers(&app, &s, msg_text(s.lang, q.get("msg")), None).await
}

/// The engineers page; `edit` re-shows one profile form as it was sent, with its errors.
pub(super) async fn render_engineers(
    app: &AppState,
    s: &Session,
    msg: &str,
    edit: Option<ProfileEdit<'_>>,
) -> Page {
    let lang = s.lang;
    let t = |k: &str| lang.t(k);
    let (store, actor) = (app.store.clone(), s.actor.clone());
    let (people, profiles) = match blocking(move || {
        let people = store.people()?;
        let profiles = profiles::load(store.as_ref(), &actor, &people)?;
        Ok((people, profiles))
    })
    .await
    {
        Ok(p) => p,
        Err(r) => return r,
    };
    let mut b = flash(msg);
    let _ = write!(
        b,
        r#"<div class="scroll"><table id="engineers"><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
        t("eng.name"),
        t("eng.role"),
        t("as.region"),
        t("as.skills"),
        t("as.load"),
        t("eng.devices"),
    );
    for p in &people {
        let mut devs = String::new();
        if p.devices.is_empty() {
            devs.push_str(t("eng.no_devices"));
        } else {
            devs.push_str(r#"<table class="devices"><thead><tr>"#);
            for k in [
                "eng.device",
                "eng.last_seen",
                "eng.acked",
                "eng.rejected",
                "eng.skew",
                "",
            ] {
                let _ = write!(
                    devs,
                    r#"<th scope="col">{}</th>"#,
                    if k.is_empty() { "" } else { t(k) }
                );
            }
            devs.push_str("</tr></thead><tbody>");
            for d in &p.devices {
                let online = !d.revoked && app.live.is_online(d.id);
                let skew = match d.ahead_ms {
                    Some(ms) if ms > CLOCK_AHEAD_WARN_MS => format!(
                        r#"<b class="warn">+{} s {}</b>"#,
                        ms / 1000,
                        t("eng.skew_warn")
                    ),
                    _ => t("eng.skew_ok").to_owned(),
                };
                let action = if d.revoked {
                    format!(r#"<span class="error">{}</span>"#, t("eng.revoked"))
                } else {
                    format!(
                        r#"<form method="post" action="/console/devices/{id}/revoke" class="inline"><input type="hidden" name="csrf" value="{csrf}"><button type="submit" class="danger" data-confirm="{confirm}" id="revoke-{id}">{label}</button></form>"#,
                        id = d.id,
                        csrf = esc(&s.csrf),
                        confirm = esc(t("eng.revoke_confirm")),
                        label = t("eng.revoke"),
                    )
                };
                let _ = write!(
                    devs,
                    r#"<tr data-device="{id}"><td>{name} #{id}{on}</td><td>{seen}</td><td class="num">{acked}</td><td class="num">{rej}</td><td>{skew}</td><td>{action}</td></tr>"#,
                    id = d.id,
                    name = esc(&d.name),
                    on = if online {
                        format!(r#" <b class="ok online">● {}</b>"#, t("as.online"))
                    } else {
                        String::new()
                    },
                    seen = d
                        .last_seen_ms
                        .map(time)
                        .unwrap_or_else(|| t("as.never").into()),
                    acked = d.acked_seq,
                    rej = d.rejected,
                );
            }
            devs.push_str("</tbody></table>");
        }
        let profile = profiles.get(&p.name);
        let name_cell = profiles::name_cell(lang, s, p, profile, edit.as_ref());
        let _ = write!(
            b,
            r#"<tr><th scope="row" id="eng-{}">{}</th><td>{}</td><td>{}</td><td>{}</td><td class="num">{}</td><td>{}</td></tr>"#,
            esc(&p.name),
            name_cell,
            t(&format!("role.{}", p.role.as_str())),
            p.region.as_deref().map(esc).unwrap_or_else(|| "—".into()),
            p.skills.as_deref().map(esc).unwrap_or_else(|| "—".into()),
            p.open_load,
            devs,
        );
    }
    b.push_str("</tbody></table></div>");
    let status = match &edit {
        Some(e) if !e.errs.0.is_empty() => StatusCode::UNPROCESSABLE_ENTITY,
        _ => StatusCode::OK,
    };
    html_response(status, layout(lang, Some(s), t("eng.title"), &b))
}

pub async fn revoke(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { sess: s, .. }: Posted,
) -> Page {
    let Ok(device) = id.parse::<fieldsync_proto::DeviceId>() else {
        return message_page(s.lang, StatusCode::NOT_FOUND, "err.not_found");
    };
    let store = app.store.clone();
    match blocking(move || store.revoke_device(device)).await {
        Ok(_) => redirect("/console/engineers?msg=revoked"),
        Err(r) => r,
    }
}

// ---------------------------------------------------------------- live

/// Server-sent events for the console: one `change` event per burst of commits. The page
/// script re-reads the page it shows.
pub async fn events(State(app): State<AppState>, _s: Session) -> Response {
    let check = || async { Some("event: change\ndata: {}\n\n".to_owned()) };
    crate::live::sse_response(&app, check, crate::live::CONSOLE_COALESCE_MS, None)
}

/// The order's contract and SLA clocks: each clock's state and deadline, and the
/// escalation, computed as of this request by the same code the agent runs offline.
fn sla_block(lang: Lang, v: &fieldsync_proto::view::OrderView) -> String {
    use fieldsync_proto::sla::{ClockState, Deadline, Escalation};
    let t = |k: &str| lang.t(k);
    let Some(sla) = &v.sla else {
        return String::new();
    };
    let contract = v
        .contract
        .as_ref()
        .and_then(|c| c.get("name").and_then(Value::as_str))
        .unwrap_or("—");
    let mut out = format!(
        r#"<section id="sla" class="sla"><h2>{} · {}</h2><table><tr><th></th><th>{}</th><th>{}</th></tr>"#,
        t("sla.title"),
        esc(contract),
        t("sla.state"),
        t("sla.deadline")
    );
    for (key, c) in [
        ("sla.response", &sla.response),
        ("sla.arrival", &sla.arrival),
        ("sla.resolution", &sla.resolution),
    ] {
        let (state, class) = match c.state {
            ClockState::Running => ("sla.running", "ok"),
            ClockState::AtRisk => ("sla.at_risk", "warn"),
            ClockState::Paused => ("sla.paused", "ok"),
            ClockState::Breached => ("sla.breached", "bad"),
            ClockState::Met => ("sla.met", "ok"),
            ClockState::Missed => ("sla.missed", "bad"),
        };
        let deadline = match c.deadline {
            Deadline::At { ms } => format!("{} UTC", time(ms)),
            Deadline::Paused { remaining_ms } => {
                format!("{} {}", remaining_ms / 60_000, t("sla.minutes_left"))
            }
            Deadline::Never => "—".to_owned(),
        };
        let _ = write!(
            out,
            r#"<tr class="{class}"><th>{}</th><td>{}</td><td>{}</td></tr>"#,
            t(key),
            t(state),
            esc(&deadline)
        );
    }
    out.push_str("</table>");
    match sla.escalation {
        Escalation::Breach => {
            let _ = write!(
                out,
                r#"<p class="error" id="sla-escalation">{}</p>"#,
                t("sla.escalated")
            );
        }
        Escalation::Warning => {
            let _ = write!(
                out,
                r#"<p class="warn" id="sla-escalation">{}</p>"#,
                t("sla.warning")
            );
        }
        Escalation::None => {}
    }
    out.push_str("</section>");
    out
}
