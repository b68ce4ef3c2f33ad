//! Customers: a list, and a customer's page with its tier, contacts, sites, assets,
//! contracts, recent orders and communication log, where the office logs a call, email or
//! visit (a `contact_log` record) and edits the contact list.
//!
//! Log entries are append-only records, so two people logging at once both keep theirs;
//! the contact list is one field, edited with the version the page showed as its base, so
//! a concurrent edit becomes a conflict rather than a silent overwrite.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use fieldsync_proto::contact::{
    format_contacts, parse_contacts, CONTACTS_CHARS_MAX, CONTACT_CHANNELS, CONTACT_DIRECTIONS,
    CONTACT_SUMMARY_CHARS_MAX,
};
use fieldsync_proto::state::Version;
use fieldsync_proto::view::{contact_time, record_of, RecordView};
use fieldsync_proto::{EntityId, EntityKind, EntityState};
use serde_json::Value;

use super::html::{enc, esc, options, parse_time, time, time_input, Form};
use super::i18n::Lang;
use super::pages::{blocking, html_response, layout, message_page};
use super::{redirect, Posted, Session};
use crate::api::entities::{new_id, write};
use crate::api::{now_ms, AppState};
use crate::store::{BoardQuery, BoardSort, ServerWrite};

/// Customers read for the list page.
pub const CUSTOMERS_READ_MAX: usize = 20_000;
/// Rows on the customer list.
pub const CUSTOMER_ROWS_MAX: usize = 500;
/// Sites, assets and contracts shown on a customer's page, each.
pub const CUSTOMER_ITEMS_MAX: usize = 500;
/// Log entries read for a customer's page (the newest are shown first).
pub const CONTACT_LOG_READ_MAX: usize = 5_000;
/// Recent orders shown on a customer's page.
pub const CUSTOMER_ORDERS_SHOWN: usize = 20;

fn s<'a>(e: &'a EntityState, f: &str) -> &'a str {
    e.str(f).unwrap_or("")
}

/// `GET /console/customers`.
pub async fn list(State(app): State<AppState>, sess: Session, RawQuery(q): RawQuery) -> Response {
    let lang = sess.lang;
    let t = |k: &str| lang.t(k);
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    let store = app.store.clone();
    let all =
        match blocking(move || store.all_of_kind(EntityKind::Customer, CUSTOMERS_READ_MAX)).await {
            Ok(a) => a,
            Err(r) => return r,
        };
    let words: Vec<String> = q
        .get("q")
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let mut hits: Vec<&EntityState> = all
        .iter()
        .filter(|c| {
            let hay = format!("{}\n{}\n{}", c.id, s(c, "name"), s(c, "tier")).to_lowercase();
            words.iter().all(|w| hay.contains(w.as_str()))
        })
        .collect();
    hits.sort_by_key(|c| s(c, "name").to_lowercase());
    let mut b = format!(
        r#"<form method="get" action="/console/customers" class="filters" role="search"><div class="field"><label for="cu-q">{}</label><input id="cu-q" name="q" type="search" value="{}"></div><button type="submit">{}</button></form>"#,
        t("cu.search"),
        esc(q.get("q")),
        t("kb.search_go"),
    );
    if hits.is_empty() {
        let _ = write!(b, r#"<p id="customers-empty">{}</p>"#, t("cu.none"));
    } else {
        let _ = write!(
            b,
            r#"<div class="scroll"><table id="customers"><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
            t("cu.name"),
            t("cu.tier"),
            t("cu.phone"),
            t("cu.email"),
        );
        for c in hits.iter().take(CUSTOMER_ROWS_MAX) {
            let _ = write!(
                b,
                r#"<tr data-customer="{id}"><td><a href="/console/customers/{ide}">{name}</a></td><td>{tier}</td><td>{phone}</td><td>{email}</td></tr>"#,
                id = esc(c.id.as_str()),
                ide = enc(c.id.as_str()),
                name = esc(c.str("name").unwrap_or(c.id.as_str())),
                tier = tier_label(lang, c.str("tier")),
                phone = esc(s(c, "phone")),
                email = esc(s(c, "email")),
            );
        }
        b.push_str("</tbody></table></div>");
    }
    html_response(StatusCode::OK, layout(lang, Some(&sess), t("cu.title"), &b))
}

fn or_dash(v: &str) -> String {
    if v.is_empty() {
        "—".to_owned()
    } else {
        esc(v)
    }
}

fn tier_label(lang: Lang, tier: Option<&str>) -> String {
    match tier {
        Some(t) if fieldsync_proto::schema::TIERS.contains(&t) => {
            lang.t(&format!("tier.{t}")).to_owned()
        }
        Some(t) => esc(t),
        None => "—".to_owned(),
    }
}

/// The communication log as a list, newest first: shared by the customer's page and the
/// order's page (`with_order`: link each entry's order).
pub fn log_list(lang: Lang, entries: &[RecordView], with_order: bool) -> String {
    let t = |k: &str| lang.t(k);
    if entries.is_empty() {
        return format!(r#"<p id="contact-log-empty">{}</p>"#, t("cl.none"));
    }
    let mut b = String::from(r#"<ul id="contact-log" class="log">"#);
    let mut sorted: Vec<&RecordView> = entries.iter().collect();
    sorted.sort_by_key(|r| std::cmp::Reverse((contact_time(r), r.id.clone())));
    for r in sorted {
        let f = |k: &str| r.fields.get(k).and_then(Value::as_str).unwrap_or("");
        let voided = r.fields.get("voided").and_then(Value::as_bool) == Some(true);
        let channel = match f("channel") {
            c if CONTACT_CHANNELS.contains(&c) => t(&format!("cl.channel_{c}")).to_owned(),
            c => esc(c),
        };
        let direction = match f("direction") {
            d if CONTACT_DIRECTIONS.contains(&d) => {
                format!(" · {}", t(&format!("cl.direction_{d}")))
            }
            _ => String::new(),
        };
        let who = if f("contact").is_empty() {
            String::new()
        } else {
            format!(" · {} {}", t("cl.with"), esc(f("contact")))
        };
        let order = match f("order_id") {
            o if with_order && !o.is_empty() => format!(
                r#" · <a href="/console/orders/{}">{} {}</a>"#,
                enc(o),
                t("cl.order"),
                esc(o)
            ),
            _ => String::new(),
        };
        let _ = write!(
            b,
            r#"<li data-entry="{id}" data-channel="{ch}"{cls}><div><b>{channel}</b>{direction} · {when}{who}{order}</div><div class="summary">{summary}</div><div class="meta">{by_l} {by}{void}</div></li>"#,
            id = esc(&r.id),
            ch = esc(f("channel")),
            cls = if voided { r#" class="voided""# } else { "" },
            when = time(contact_time(r)),
            summary = esc(f("summary")),
            by_l = t("cl.logged_by"),
            by = esc(&r.by),
            void = if voided {
                format!(" · {}", t("detail.voided"))
            } else {
                String::new()
            },
        );
    }
    b.push_str("</ul>");
    b
}

/// What the log form was sent with, to show again with what is wrong.
struct LogSent<'a> {
    form: &'a Form,
    error: String,
}

fn log_form(
    lang: Lang,
    sess: &Session,
    id: &str,
    orders: &[(String, String)],
    sent: Option<&LogSent<'_>>,
) -> String {
    let t = |k: &str| lang.t(k);
    let val = |k: &str| sent.map(|x| x.form.get(k).to_owned()).unwrap_or_default();
    let channels: Vec<(String, String)> = CONTACT_CHANNELS
        .iter()
        .map(|c| (c.to_string(), t(&format!("cl.channel_{c}")).to_owned()))
        .collect();
    let mut directions = vec![(String::new(), "—".to_owned())];
    directions.extend(
        CONTACT_DIRECTIONS
            .iter()
            .map(|d| (d.to_string(), t(&format!("cl.direction_{d}")).to_owned())),
    );
    let mut order_opts = vec![(String::new(), t("cl.no_order").to_owned())];
    order_opts.extend(orders.iter().cloned());
    let at = match sent {
        Some(x) => x.form.get("at").to_owned(),
        None => time_input(now_ms()),
    };
    let err = sent
        .map(|x| {
            format!(
                r#"<p class="error" role="alert" id="log-error">{}</p>"#,
                esc(&x.error)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<form method="post" action="/console/customers/{ide}/log" class="card" id="log-form" novalidate>{err}<input type="hidden" name="csrf" value="{csrf}">
<div class="field"><label for="cl-channel">{lch}</label><select id="cl-channel" name="channel">{chs}</select></div>
<div class="field"><label for="cl-direction">{ldir}</label><select id="cl-direction" name="direction">{dirs}</select></div>
<div class="field"><label for="cl-at">{lat}</label><input id="cl-at" name="at" type="datetime-local" value="{at}"><small>UTC</small></div>
<div class="field"><label for="cl-contact">{lwho}</label><input id="cl-contact" name="contact" maxlength="200" value="{who}"></div>
<div class="field"><label for="cl-order">{lord}</label><select id="cl-order" name="order_id">{ords}</select></div>
<div class="field"><label for="cl-summary">{lsum}</label><textarea id="cl-summary" name="summary" rows="3" maxlength="{max}">{sum}</textarea></div>
<button type="submit" id="log-save">{save}</button></form>"#,
        ide = enc(id),
        csrf = esc(&sess.csrf),
        lch = t("cl.channel"),
        chs = options(&channels, &val("channel")),
        ldir = t("cl.direction"),
        dirs = options(&directions, &val("direction")),
        lat = t("cl.at"),
        at = esc(&at),
        lwho = t("cl.contact"),
        who = esc(&val("contact")),
        lord = t("cl.order"),
        ords = options(&order_opts, &val("order_id")),
        lsum = t("cl.summary"),
        max = CONTACT_SUMMARY_CHARS_MAX,
        sum = esc(&val("summary")),
        save = t("cl.add"),
    )
}

fn msg_text(lang: Lang, key: &str) -> &'static str {
    match key {
        "logged" => lang.t("cl.logged"),
        "contacts_saved" => lang.t("cu.contacts_saved"),
        _ => "",
    }
}

/// `GET /console/customers/{id}`.
pub async fn page(
    State(app): State<AppState>,
    sess: Session,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    render(
        &app,
        &sess,
        &id,
        msg_text(sess.lang, q.get("msg")),
        None,
        None,
    )
    .await
}

/// Everything the customer's page shows.
struct CustomerData {
    customer: EntityState,
    sites: Vec<EntityState>,
    assets: Vec<EntityState>,
    contracts: Vec<EntityState>,
    log: Vec<EntityState>,
}

async fn render(
    app: &AppState,
    sess: &Session,
    id: &str,
    msg: &str,
    log_sent: Option<LogSent<'_>>,
    contacts_sent: Option<(&Form, String)>,
) -> Response {
    let lang = sess.lang;
    let t = |k: &str| lang.t(k);
    let (store, actor, cid) = (app.store.clone(), sess.actor.clone(), id.to_owned());
    let data = blocking(move || {
        let Some(customer) = store.entity(&actor, EntityKind::Customer, &cid)? else {
            return Ok(None);
        };
        let of = |k| store.of_customer(k, &cid, CUSTOMER_ITEMS_MAX);
        Ok(Some(CustomerData {
            customer,
            sites: of(EntityKind::Site)?,
            assets: of(EntityKind::Asset)?,
            contracts: of(EntityKind::Contract)?,
            log: store.of_customer(EntityKind::ContactLog, &cid, CONTACT_LOG_READ_MAX)?,
        }))
    })
    .await;
    let d = match data {
        Ok(Some(d)) => d,
        Ok(None) => return message_page(lang, StatusCode::NOT_FOUND, "cu.not_found"),
        Err(r) => return r,
    };
    let (store, cid) = (app.store.clone(), id.to_owned());
    let orders = match blocking(move || {
        store.board(&BoardQuery {
            customer_id: Some(cid),
            sort: BoardSort::Recent,
            limit: CUSTOMER_ORDERS_SHOWN,
            ..Default::default()
        })
    })
    .await
    {
        Ok(p) => p.rows,
        Err(r) => return r,
    };
    let c = &d.customer;
    let mut b = String::new();
    if !msg.is_empty() {
        let _ = write!(b, r#"<p class="flash" role="status">{}</p>"#, esc(msg));
    }
    let _ = write!(
        b,
        r#"<dl class="facts" id="customer-facts"><dt>{lt}</dt><dd id="customer-tier">{tier}</dd><dt>{lp}</dt><dd>{phone}</dd><dt>{le}</dt><dd>{email}</dd><dt>{la}</dt><dd>{addr}</dd></dl>"#,
        lt = t("cu.tier"),
        tier = tier_label(lang, c.str("tier")),
        lp = t("cu.phone"),
        phone = or_dash(s(c, "phone")),
        le = t("cu.email"),
        email = or_dash(s(c, "email")),
        la = t("cu.address"),
        addr = or_dash(s(c, "address")),
    );

    // Contacts, and the form that edits them.
    let _ = write!(
        b,
        r#"<section aria-labelledby="cu-contacts-h"><h2 id="cu-contacts-h">{}</h2>"#,
        t("cu.contacts")
    );
    let contacts = parse_contacts(s(c, "contacts")).unwrap_or_default();
    if contacts.is_empty() {
        let _ = write!(b, "<p>{}</p>", t("detail.none"));
    } else {
        let _ = write!(
            b,
            r#"<div class="scroll"><table id="contacts"><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th></tr></thead><tbody>"#,
            t("cu.name"),
            t("cu.role"),
            t("cu.phone"),
            t("cu.email"),
        );
        for p in &contacts {
            let _ = write!(
                b,
                "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&p.name),
                esc(&p.role),
                esc(&p.phone),
                esc(&p.email)
            );
        }
        b.push_str("</tbody></table></div>");
    }
    let base = c
        .version("contacts")
        .map(|v| serde_json::to_string(&v).unwrap_or_default())
        .unwrap_or_default();
    let (contacts_text, contacts_err) = match &contacts_sent {
        Some((f, e)) => (f.get("contacts").to_owned(), e.clone()),
        None => (s(c, "contacts").to_owned(), String::new()),
    };
    let _ = write!(
        b,
        r#"<details{open}><summary id="contacts-edit">{edit}</summary><form method="post" action="/console/customers/{ide}/contacts" id="contacts-form" novalidate>{err}<input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="base" value="{base}"><div class="field"><label for="cu-contacts">{label}</label><textarea id="cu-contacts" name="contacts" rows="5" maxlength="{max}">{text}</textarea><small>{hint}</small></div><button type="submit" id="contacts-save">{save}</button></form></details></section>"#,
        open = if contacts_sent.is_some() { " open" } else { "" },
        edit = t("cu.edit_contacts"),
        ide = enc(id),
        err = if contacts_err.is_empty() {
            String::new()
        } else {
            format!(
                r#"<p class="error" role="alert" id="contacts-error">{}</p>"#,
                esc(&contacts_err)
            )
        },
        csrf = esc(&sess.csrf),
        base = esc(&base),
        label = t("cu.contacts"),
        max = CONTACTS_CHARS_MAX,
        text = esc(&contacts_text),
        hint = t("cu.contacts_hint"),
        save = t("cu.save_contacts"),
    );

    // Communication log: what was said, newest first, then the form for the next entry.
    let _ = write!(
        b,
        r#"<section aria-labelledby="cl-h"><h2 id="cl-h">{}</h2>"#,
        t("cl.title")
    );
    let order_opts: Vec<(String, String)> = orders
        .iter()
        .map(|o| {
            let desc: String = o.description.chars().take(60).collect();
            (o.id.clone(), format!("{} — {desc}", o.id))
        })
        .collect();
    let records: Vec<RecordView> = d.log.iter().map(record_of).collect();
    b.push_str(&log_list(lang, &records, true));
    b.push_str(&log_form(lang, sess, id, &order_opts, log_sent.as_ref()));
    b.push_str("</section>");

    // Sites, assets, contracts, recent orders.
    let list = |title: &str, sid: &str, items: Vec<String>| -> String {
        let mut out =
            format!(r#"<section aria-labelledby="{sid}-h"><h2 id="{sid}-h">{title}</h2>"#);
        if items.is_empty() {
            let _ = write!(out, "<p>{}</p>", t("detail.none"));
        } else {
            let _ = write!(out, r#"<ul id="{sid}">"#);
            for i in items {
                let _ = write!(out, "<li>{i}</li>");
            }
            out.push_str("</ul>");
        }
        out.push_str("</section>");
        out
    };
    b.push_str(&list(
        t("cu.sites"),
        "sites",
        d.sites
            .iter()
            .map(|x| {
                format!(
                    "{} <span class=\"meta\">{}</span>",
                    esc(s(x, "name")),
                    esc(s(x, "address"))
                )
            })
            .collect(),
    ));
    b.push_str(&list(
        t("cu.assets"),
        "assets",
        d.assets
            .iter()
            .map(|x| {
                let warranty = x
                    .get("warranty_end")
                    .and_then(Value::as_u64)
                    .map(|w| format!(" · {} {}", t("cu.warranty_end"), time(w)))
                    .unwrap_or_default();
                format!(
                    "{} <span class=\"meta\">{} {}{warranty}</span>",
                    esc(s(x, "model")),
                    esc(x.id.as_str()),
                    esc(s(x, "serial")),
                )
            })
            .collect(),
    ));
    b.push_str(&list(
        t("cu.contracts"),
        "contracts",
        d.contracts
            .iter()
            .map(|x| {
                let valid = |f: &str| {
                    x.get(f)
                        .and_then(Value::as_u64)
                        .map(time)
                        .unwrap_or_default()
                };
                format!(
                    "{} <span class=\"meta\">{} – {}</span>",
                    esc(s(x, "name")),
                    valid("valid_from"),
                    valid("valid_until")
                )
            })
            .collect(),
    ));
    b.push_str(&list(
        t("cu.orders"),
        "customer-orders",
        orders
            .iter()
            .map(|o| {
                let desc: String = o.description.chars().take(90).collect();
                format!(
                    r#"<a href="/console/orders/{}">{}</a> {} <span class="meta">{}</span>"#,
                    enc(&o.id),
                    esc(&o.id),
                    esc(&desc),
                    esc(&o.status)
                )
            })
            .collect(),
    ));
    let status = if log_sent.is_some() || contacts_sent.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let title = format!("{} {}", t("cu.customer"), esc(c.str("name").unwrap_or(id)));
    html_response(status, layout(lang, Some(sess), &title, &b))
}

/// `POST /console/customers/{id}/log`: record a call, email or visit.
pub async fn add_log(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { sess, form: f }: Posted,
) -> Response {
    let lang = sess.lang;
    let again = |error: String| LogSent { form: &f, error };
    let channel = f.get("channel");
    if !CONTACT_CHANNELS.contains(&channel) {
        return render(
            &app,
            &sess,
            &id,
            "",
            Some(again(lang.t("cl.err_channel").into())),
            None,
        )
        .await;
    }
    let summary = f.get("summary").replace("\r\n", "\n");
    if summary.is_empty() {
        return render(
            &app,
            &sess,
            &id,
            "",
            Some(again(lang.t("cl.err_summary").into())),
            None,
        )
        .await;
    }
    let Some(at) = parse_time(f.get("at")) else {
        return render(
            &app,
            &sess,
            &id,
            "",
            Some(again(lang.t("err.time").into())),
            None,
        )
        .await;
    };
    let mut fields = BTreeMap::from([
        ("customer_id".to_owned(), Value::from(id.as_str())),
        ("channel".to_owned(), Value::from(channel)),
        ("at".to_owned(), Value::from(at)),
        ("summary".to_owned(), Value::from(summary)),
    ]);
    for k in ["direction", "contact", "order_id"] {
        if let Some(v) = f.opt(k) {
            fields.insert(k.to_owned(), Value::from(v));
        }
    }
    let w = ServerWrite {
        kind: EntityKind::ContactLog,
        id: new_id(now_ms()),
        create: true,
        fields,
        base: BTreeMap::new(),
    };
    match write(&app, sess.actor.clone(), w).await {
        Ok(()) => redirect(&format!("/console/customers/{}?msg=logged", enc(&id))),
        Err(e) => {
            let why = format!("{} {}", lang.t("err.refused"), e.body.error.message);
            render(&app, &sess, &id, "", Some(again(why)), None).await
        }
    }
}

/// `POST /console/customers/{id}/contacts`: save the contact list, from the version shown.
pub async fn save_contacts(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { sess, form: f }: Posted,
) -> Response {
    let lang = sess.lang;
    let text = f.get("contacts").replace("\r\n", "\n");
    let list = match parse_contacts(&text) {
        Ok(l) => l,
        Err(why) => {
            let msg = format!("{} {why}", lang.t("cu.err_contacts"));
            return render(&app, &sess, &id, "", None, Some((&f, msg))).await;
        }
    };
    let canonical = format_contacts(&list);
    let value = if canonical.is_empty() {
        Value::Null
    } else {
        Value::from(canonical)
    };
    // The version shown, or "none" when the list was empty: either way a list someone else
    // saved meanwhile is kept as a conflict, not overwritten.
    let base: Version = serde_json::from_str(f.get("base")).unwrap_or(Version {
        hlc: fieldsync_proto::Hlc::ZERO,
        dev: 0,
    });
    let w = ServerWrite {
        kind: EntityKind::Customer,
        id: EntityId(id.clone()),
        create: false,
        fields: BTreeMap::from([("contacts".to_owned(), value)]),
        base: BTreeMap::from([("contacts".to_owned(), base)]),
    };
    match write(&app, sess.actor.clone(), w).await {
        Ok(()) => redirect(&format!(
            "/console/customers/{}?msg=contacts_saved",
            enc(&id)
        )),
        Err(e) => {
            let msg = format!("{} {}", lang.t("err.refused"), e.body.error.message);
            render(&app, &sess, &id, "", None, Some((&f, msg))).await
        }
    }
}
