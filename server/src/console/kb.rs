//! Knowledge-base articles in the console: a list with search and filters, a form for a
//! new article, and an edit form with a rendered preview. Articles are the broadcast
//! `kb_article` kind, so a save reaches every engineer's laptop on their next pull, where
//! `fieldsync kb search` finds it offline.
//!
//! An edit never silently overwrites someone else's: the form carries, per field, the
//! version it showed and a hash of the value it showed. Only fields whose value the user
//! changed are written, each with the version it saw as its `base`, so a field another
//! dispatcher changed meanwhile becomes a conflict (kept, shown on the article and in the
//! inbox) while the fields they changed and this user did not are left alone.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::response::Response;
use fieldsync_proto::schema::FieldType;
use fieldsync_proto::state::Version;
use fieldsync_proto::view::ConflictView;
use fieldsync_proto::{EntityId, EntityKind, EntityState, Hlc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::html::{enc, esc, options, Form};
use super::i18n::Lang;
use super::pages::{
    blocking, conflict_table, described_by, field_error, html_response, layout, message_page,
    IntakeErrors,
};
use super::profiles::normalize_skills as normalize_list;
use super::{redirect, Posted, Session};
use crate::api::entities::{new_id, write};
use crate::api::{now_ms, AppState};
use crate::store::ServerWrite;

/// Articles read for the list page. The knowledge base is reference data of a few
/// thousand articles; past this the page says its list is incomplete.
pub const KB_ARTICLES_READ_MAX: usize = 20_000;
/// Rows shown on one list page (the search narrows the rest).
pub const KB_LIST_ROWS_MAX: usize = 500;
/// Conflicts read to find those of one article.
const KB_CONFLICTS_READ_MAX: usize = 500;

/// The fields the forms edit, with their labels.
const FIELDS: [(&str, &str); 5] = [
    ("title", "kb.title_field"),
    ("tags", "kb.tags"),
    ("models", "kb.models"),
    ("fault_codes", "kb.fault_codes"),
    ("body", "kb.body"),
];
const RETIRED: &str = "retired";

/// What an edit form showed of one field: the version (none if the field was unset) and a
/// hash of the value, so a save can tell which fields the user changed.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Shown {
    ver: Option<Version>,
    sha: String,
}

/// A base for a field the form showed unset: no version is this one, so if someone set
/// the field meanwhile, writing it raises a conflict instead of overwriting theirs.
const SAW_NOTHING: Version = Version {
    hlc: Hlc::ZERO,
    dev: 0,
};

fn value_hash(v: &str) -> String {
    hex::encode(&Sha256::digest(v.as_bytes())[..16])
}

fn max_chars(field: &str) -> usize {
    match EntityKind::KbArticle.spec().field(field).map(|f| f.ty) {
        Some(FieldType::Text { max_chars }) => max_chars,
        _ => 0,
    }
}

/// A field's value as the form shows and sends it.
fn shown_value(state: Option<&EntityState>, field: &str) -> String {
    match state {
        Some(s) if field == RETIRED => if s.bool(RETIRED) { "1" } else { "" }.to_owned(),
        Some(s) => s.str(field).unwrap_or("").to_owned(),
        None => String::new(),
    }
}

/// The form's values (lists normalised, line ends made `\n`) and the errors beside them.
fn read_form(lang: Lang, f: &Form) -> (BTreeMap<&'static str, String>, IntakeErrors) {
    let mut values = BTreeMap::new();
    let mut errs = IntakeErrors::default();
    for (name, _) in FIELDS {
        let v = match name {
            "tags" | "models" | "fault_codes" => normalize_list(f.get(name)),
            "body" => f.get(name).replace("\r\n", "\n").replace('\r', "\n"),
            _ => f.get(name).to_owned(),
        };
        let max = max_chars(name);
        let multiline = name == "body";
        if v.is_empty() && matches!(name, "title" | "body") {
            errs.0
                .insert(name, lang.t(&format!("kb.err_{name}")).to_owned());
        } else if v.chars().count() > max {
            errs.0.insert(
                name,
                lang.t("err.too_long").replace("{max}", &max.to_string()),
            );
        } else if v
            .chars()
            .any(|c| c.is_control() && !(multiline && (c == '\n' || c == '\t')))
        {
            errs.0.insert(name, lang.t("err.control_chars").to_owned());
        }
        values.insert(name, v);
    }
    let retired = if f.get(RETIRED).is_empty() { "" } else { "1" };
    values.insert(RETIRED, retired.to_owned());
    (values, errs)
}

fn field_value(field: &str, v: &str) -> Value {
    match field {
        RETIRED => Value::Bool(!v.is_empty()),
        _ if v.is_empty() => Value::Null,
        _ => Value::from(v),
    }
}

fn msg_text(lang: Lang, key: &str) -> &'static str {
    match key {
        "created" => lang.t("kb.created"),
        "saved" => lang.t("kb.saved"),
        "unchanged" => lang.t("kb.unchanged"),
        _ => "",
    }
}

fn flash(msg: &str) -> String {
    if msg.is_empty() {
        String::new()
    } else {
        format!(r#"<p class="flash" role="status">{}</p>"#, esc(msg))
    }
}

/// What the list's search looks in.
const SEARCH_IN: [&str; 5] = ["all", "title", "tags", "models", "fault_codes"];

/// Whether an article matches the list's search: every word, case-insensitively, as a
/// substring of the chosen field (or of any of them), like the agent's search.
fn matches(a: &EntityState, words: &[String], within: &str) -> bool {
    let hay: String = match within {
        "title" | "tags" | "models" | "fault_codes" => a.str(within).unwrap_or("").to_lowercase(),
        _ => ["title", "tags", "models", "fault_codes"]
            .iter()
            .map(|f| a.str(f).unwrap_or(""))
            .chain([a.id.as_str()])
            .collect::<Vec<_>>()
            .join("\n")
            .to_lowercase(),
    };
    words.iter().all(|w| hay.contains(w.as_str()))
}

/// `GET /console/kb`: the articles, searched and filtered.
pub async fn list(State(app): State<AppState>, s: Session, RawQuery(q): RawQuery) -> Response {
    let lang = s.lang;
    let t = |k: &str| lang.t(k);
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    let store = app.store.clone();
    let all = match blocking(move || store.all_of_kind(EntityKind::KbArticle, KB_ARTICLES_READ_MAX))
        .await
    {
        Ok(a) => a,
        Err(r) => return r,
    };
    let within = SEARCH_IN
        .iter()
        .find(|w| **w == q.get("in"))
        .copied()
        .unwrap_or("all");
    let words: Vec<String> = q
        .get("q")
        .split_whitespace()
        .map(str::to_lowercase)
        .collect();
    let show_retired = !q.get(RETIRED).is_empty();
    let mut hits: Vec<&EntityState> = all
        .iter()
        .filter(|a| show_retired || !a.bool(RETIRED))
        .filter(|a| matches(a, &words, within))
        .collect();
    hits.sort_by(|a, b| {
        a.str("title")
            .unwrap_or("")
            .to_lowercase()
            .cmp(&b.str("title").unwrap_or("").to_lowercase())
            .then_with(|| a.id.cmp(&b.id))
    });
    let mut b = flash(msg_text(lang, q.get("msg")));
    let within_opts: Vec<(String, String)> = SEARCH_IN
        .iter()
        .map(|w| (w.to_string(), t(&format!("kb.in_{w}")).to_owned()))
        .collect();
    let _ = write!(
        b,
        r#"<p><a class="button" id="kb-new" href="/console/kb/new">{new}</a></p>
<form method="get" action="/console/kb" class="filters" id="kb-search" role="search">
<div class="field"><label for="kb-q">{search}</label><input id="kb-q" name="q" value="{qv}" type="search"></div>
<div class="field"><label for="kb-in">{in_}</label><select id="kb-in" name="in">{opts}</select></div>
<div class="field"><label><input type="checkbox" name="retired" value="1" id="kb-retired"{checked}> {retired}</label></div>
<button type="submit">{go}</button></form>"#,
        new = t("kb.new"),
        search = t("kb.search"),
        qv = esc(q.get("q")),
        in_ = t("kb.search_in"),
        opts = options(&within_opts, within),
        checked = if show_retired { " checked" } else { "" },
        retired = t("kb.show_retired"),
        go = t("kb.search_go"),
    );
    if all.len() >= KB_ARTICLES_READ_MAX {
        let _ = write!(
            b,
            r#"<p class="error" role="alert">{}</p>"#,
            t("kb.incomplete")
        );
    }
    if hits.is_empty() {
        let _ = write!(b, r#"<p id="kb-empty">{}</p>"#, t("kb.none"));
    } else {
        let _ = write!(
            b,
            r#"<p id="kb-count">{} {}</p><div class="scroll"><table id="kb-list"><thead><tr><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col">{}</th><th scope="col"></th></tr></thead><tbody>"#,
            hits.len(),
            t("kb.articles"),
            t("kb.title_field"),
            t("kb.tags"),
            t("kb.models"),
            t("kb.fault_codes"),
        );
        for a in hits.iter().take(KB_LIST_ROWS_MAX) {
            let _ = write!(
                b,
                r#"<tr data-article="{id}"><td><a href="/console/kb/{ide}">{title}</a></td><td>{tags}</td><td>{models}</td><td>{codes}</td><td>{retired}</td></tr>"#,
                id = esc(a.id.as_str()),
                ide = enc(a.id.as_str()),
                title = esc(a.str("title").unwrap_or("")),
                tags = esc(a.str("tags").unwrap_or("")),
                models = esc(a.str("models").unwrap_or("")),
                codes = esc(a.str("fault_codes").unwrap_or("")),
                retired = if a.bool(RETIRED) {
                    format!(r#"<b class="warn">{}</b>"#, t("kb.retired"))
                } else {
                    String::new()
                },
            );
        }
        b.push_str("</tbody></table></div>");
    }
    html_response(StatusCode::OK, layout(lang, Some(&s), t("kb.title"), &b))
}

/// The article form: new (`article` None) or edit, filled from the article or from what
/// was sent (`sent`, shown again with its errors).
fn form_html(
    lang: Lang,
    s: &Session,
    article: Option<&EntityState>,
    sent: Option<(&Form, &IntakeErrors)>,
    shown_json: &str,
) -> String {
    let t = |k: &str| lang.t(k);
    let action = match article {
        Some(a) => format!("/console/kb/{}", enc(a.id.as_str())),
        None => "/console/kb/new".to_owned(),
    };
    let mut inputs = String::new();
    for (field, label) in FIELDS {
        let value = match sent {
            Some((f, _)) => f.get(field).to_owned(),
            None => shown_value(article, field),
        };
        let err = sent.and_then(|(_, e)| e.get(field));
        let id = format!("kb-{field}");
        let control = if field == "body" {
            format!(
                r#"<textarea id="{id}" name="{field}" rows="16" maxlength="{max}"{inv}>{v}</textarea>"#,
                max = max_chars(field),
                inv = described_by(err, &id),
                v = esc(&value),
            )
        } else {
            format!(
                r#"<input id="{id}" name="{field}" value="{v}" maxlength="{max}"{inv}>"#,
                max = max_chars(field),
                inv = described_by(err, &id),
                v = esc(&value),
            )
        };
        let hint = match field {
            "tags" | "models" | "fault_codes" => {
                format!(r#"<small>{}</small>"#, t("kb.list_hint"))
            }
            "body" => format!(r#"<small>{}</small>"#, t("kb.body_hint")),
            _ => String::new(),
        };
        let _ = write!(
            inputs,
            r#"<div class="field"><label for="{id}">{label}</label>{control}{hint}{err}</div>"#,
            label = t(label),
            err = field_error(err, &id),
        );
    }
    if article.is_some() {
        let retired = match sent {
            Some((f, _)) => !f.get(RETIRED).is_empty(),
            None => article.is_some_and(|a| a.bool(RETIRED)),
        };
        let _ = write!(
            inputs,
            r#"<div class="field"><label><input type="checkbox" id="kb-retired-field" name="retired" value="1"{}> {}</label><small>{}</small></div>"#,
            if retired { " checked" } else { "" },
            t("kb.retire"),
            t("kb.retire_hint"),
        );
    }
    format!(
        r#"<form method="post" action="{action}" class="card" id="kb-form" novalidate><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="shown" value="{shown}">{inputs}<button type="submit" id="kb-save">{save}</button></form>"#,
        csrf = esc(&s.csrf),
        shown = esc(shown_json),
        save = t("kb.save"),
    )
}

/// What the edit form shows, as the `shown` field it carries.
fn shown_of(article: &EntityState) -> String {
    let mut m = BTreeMap::new();
    for field in FIELDS.iter().map(|f| f.0).chain([RETIRED]) {
        m.insert(
            field,
            Shown {
                ver: article.version(field),
                sha: value_hash(&shown_value(Some(article), field)),
            },
        );
    }
    serde_json::to_string(&m).expect("versions serialise")
}

/// `GET /console/kb/new`.
pub async fn new_form(s: Session) -> Response {
    new_page(&s, None, StatusCode::OK)
}

fn new_page(
    s: &Session,
    sent: Option<(&Form, &IntakeErrors, Option<String>)>,
    st: StatusCode,
) -> Response {
    let lang = s.lang;
    let mut b = String::new();
    if let Some(why) = sent.as_ref().and_then(|x| x.2.as_deref()) {
        let _ = write!(
            b,
            r#"<p class="error" role="alert">{} {}</p>"#,
            lang.t("err.refused"),
            esc(why)
        );
    }
    b.push_str(&form_html(
        lang,
        s,
        None,
        sent.as_ref().map(|x| (x.0, x.1)),
        "",
    ));
    html_response(st, layout(lang, Some(s), lang.t("kb.new"), &b))
}

/// `POST /console/kb/new`.
pub async fn create(State(app): State<AppState>, Posted { sess: s, form: f }: Posted) -> Response {
    let (values, errs) = read_form(s.lang, &f);
    if !errs.0.is_empty() {
        return new_page(
            &s,
            Some((&f, &errs, None)),
            StatusCode::UNPROCESSABLE_ENTITY,
        );
    }
    let fields: BTreeMap<String, Value> = values
        .iter()
        .filter(|(k, v)| **k != RETIRED && !v.is_empty())
        .map(|(k, v)| (k.to_string(), field_value(k, v)))
        .collect();
    let id = new_id(now_ms());
    let w = ServerWrite {
        kind: EntityKind::KbArticle,
        id: id.clone(),
        create: true,
        fields,
        base: BTreeMap::new(),
    };
    match write(&app, s.actor.clone(), w).await {
        Ok(()) => redirect(&format!("/console/kb/{}?msg=created", enc(id.as_str()))),
        Err(e) => new_page(
            &s,
            Some((&f, &errs, Some(e.body.error.message))),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    }
}

/// `GET /console/kb/{id}`.
pub async fn edit_form(
    State(app): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> Response {
    let q = Form::parse(q.unwrap_or_default().as_bytes());
    edit_page(&app, &s, &id, msg_text(s.lang, q.get("msg")), None).await
}

/// A form sent back with what is wrong with it.
struct Sent<'a> {
    form: &'a Form,
    errs: &'a IntakeErrors,
    refused: Option<String>,
}

async fn edit_page(
    app: &AppState,
    s: &Session,
    id: &str,
    msg: &str,
    sent: Option<Sent<'_>>,
) -> Response {
    let lang = s.lang;
    let t = |k: &str| lang.t(k);
    let (store, actor, aid) = (app.store.clone(), s.actor.clone(), id.to_owned());
    let (article, conflicts) = match blocking(move || {
        let a = store.entity(&actor, EntityKind::KbArticle, &aid)?;
        let c = store.open_conflicts(KB_CONFLICTS_READ_MAX)?;
        Ok((a, c))
    })
    .await
    {
        Ok((Some(a), c)) => (a, c),
        Ok((None, _)) => return message_page(lang, StatusCode::NOT_FOUND, "kb.not_found"),
        Err(r) => return r,
    };
    let conflicts: Vec<ConflictView> = conflicts
        .iter()
        .filter(|c| c.str("entity_kind") == Some("kb_article") && c.str("entity_id") == Some(id))
        .filter_map(|c| serde_json::from_value(Value::Object(fieldsync_proto::view::plain(c))).ok())
        .collect();
    let mut b = flash(msg);
    if let Some(why) = sent.as_ref().and_then(|x| x.refused.as_deref()) {
        let _ = write!(
            b,
            r#"<p class="error" role="alert">{} {}</p>"#,
            t("err.refused"),
            esc(why)
        );
    }
    if article.bool(RETIRED) {
        let _ = write!(
            b,
            r#"<p class="warn" id="kb-is-retired">{}</p>"#,
            t("kb.retired_note")
        );
    }
    if !conflicts.is_empty() {
        let _ = write!(
            b,
            r#"<section aria-labelledby="kb-cf-h"><h2 id="kb-cf-h">{}</h2><p>{}</p>{}</section>"#,
            t("detail.conflicts"),
            t("kb.conflict_hint"),
            conflict_table(lang, s, &conflicts, false, "kb-conflicts"),
        );
    }
    let _ = write!(
        b,
        r#"<p class="meta">{} <code>{}</code> · <a href="/console/kb">{}</a></p>"#,
        t("kb.id"),
        esc(id),
        t("kb.back"),
    );
    b.push_str(&form_html(
        lang,
        s,
        Some(&article),
        sent.as_ref().map(|x| (x.form, x.errs)),
        &shown_of(&article),
    ));
    let _ = write!(
        b,
        r#"<section aria-labelledby="kb-preview-h"><h2 id="kb-preview-h">{}</h2><article class="card kb-preview" id="kb-preview" lang="{}">{}</article></section>"#,
        t("kb.preview"),
        lang.code(),
        super::markdown::render(article.str("body").unwrap_or("")),
    );
    let status = if sent.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let title = format!(
        "{} {}",
        t("kb.edit"),
        esc(article.str("title").unwrap_or(id))
    );
    html_response(status, layout(lang, Some(s), &title, &b))
}

/// The fields the user changed and the base each was edited from. `None`: the form
/// does not say what it showed (not one of ours, or from an older page).
fn edits(
    values: &BTreeMap<&'static str, String>,
    shown: &str,
) -> Option<(BTreeMap<String, Value>, BTreeMap<String, Version>)> {
    let shown: BTreeMap<String, Shown> = serde_json::from_str(shown).ok()?;
    let mut fields = BTreeMap::new();
    let mut base = BTreeMap::new();
    for (field, v) in values {
        let was = shown.get(*field)?;
        if value_hash(v) == was.sha {
            continue;
        }
        fields.insert(field.to_string(), field_value(field, v));
        base.insert(field.to_string(), was.ver.unwrap_or(SAW_NOTHING));
    }
    Some((fields, base))
}

/// `POST /console/kb/{id}`: save the fields the user changed.
pub async fn save(
    State(app): State<AppState>,
    Path(id): Path<String>,
    Posted { sess: s, form: f }: Posted,
) -> Response {
    let (values, errs) = read_form(s.lang, &f);
    if !errs.0.is_empty() {
        let sent = Sent {
            form: &f,
            errs: &errs,
            refused: None,
        };
        return edit_page(&app, &s, &id, "", Some(sent)).await;
    }
    let Some((fields, base)) = edits(&values, f.get("shown")) else {
        let sent = Sent {
            form: &f,
            errs: &errs,
            refused: Some(s.lang.t("kb.err_stale_form").to_owned()),
        };
        return edit_page(&app, &s, &id, "", Some(sent)).await;
    };
    let back = format!("/console/kb/{}", enc(&id));
    if fields.is_empty() {
        return redirect(&format!("{back}?msg=unchanged"));
    }
    let w = ServerWrite {
        kind: EntityKind::KbArticle,
        id: EntityId(id.clone()),
        create: false,
        fields,
        base,
    };
    match write(&app, s.actor.clone(), w).await {
        Ok(()) => redirect(&format!("{back}?msg=saved")),
        Err(e) => {
            let sent = Sent {
                form: &f,
                errs: &errs,
                refused: Some(e.body.error.message),
            };
            edit_page(&app, &s, &id, "", Some(sent)).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_is_checked_field_by_field() {
        let long = "x".repeat(100_001);
        let f = Form::parse(format!("title=&body={long}&tags=a,,b;A&fault_codes=E%01").as_bytes());
        let (values, errs) = read_form(Lang::En, &f);
        assert!(errs.get("title").unwrap().contains("title"), "{:?}", errs.0);
        assert!(errs.get("body").unwrap().contains("100000"), "{:?}", errs.0);
        assert!(errs.get("fault_codes").is_some(), "control characters");
        assert_eq!(values["tags"], "a, b");
        let f = Form::parse(b"title=T&body=line1%0D%0A%09line2");
        let (values, errs) = read_form(Lang::ZhCn, &f);
        assert!(errs.0.is_empty(), "{:?}", errs.0);
        assert_eq!(values["body"], "line1\n\tline2");
    }

    #[test]
    fn only_what_the_user_changed_is_written_with_the_version_it_saw() {
        let ver = |n: u64| Version {
            hlc: Hlc(n),
            dev: 0,
        };
        let shown = serde_json::to_string(&BTreeMap::from([
            (
                "title",
                Shown {
                    ver: Some(ver(5)),
                    sha: value_hash("Old"),
                },
            ),
            (
                "body",
                Shown {
                    ver: Some(ver(6)),
                    sha: value_hash("b"),
                },
            ),
            (
                "tags",
                Shown {
                    ver: None,
                    sha: value_hash(""),
                },
            ),
            (
                "models",
                Shown {
                    ver: None,
                    sha: value_hash(""),
                },
            ),
            (
                "fault_codes",
                Shown {
                    ver: None,
                    sha: value_hash(""),
                },
            ),
            (
                "retired",
                Shown {
                    ver: None,
                    sha: value_hash(""),
                },
            ),
        ]))
        .unwrap();
        let f = Form::parse(b"title=New&body=b&tags=pump&retired=1");
        let (values, _) = read_form(Lang::En, &f);
        let (fields, base) = edits(&values, &shown).unwrap();
        assert_eq!(
            fields,
            BTreeMap::from([
                ("title".to_owned(), Value::from("New")),
                ("tags".to_owned(), Value::from("pump")),
                ("retired".to_owned(), Value::Bool(true)),
            ])
        );
        assert_eq!(base["title"], ver(5));
        assert_eq!(base["tags"], SAW_NOTHING, "unset when shown");
        assert!(edits(&values, "").is_none(), "no record of what was shown");
    }
}
