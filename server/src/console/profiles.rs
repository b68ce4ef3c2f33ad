//! The engineer profile editor on the engineers page: display name, region and skills, the
//! dispatcher-owned fields of the `user` entity that the assignment dialog's hints read.
//!
//! A save is a `ServerWrite` of the `user` kind, the same path as every console write, so
//! it is validated, logged in `ops` and reaches office devices' pulls like any op. Users
//! are added outside the op log (`fieldsync-server user add`), so the entity is made on
//! the first save (`Store::ensure_profile`): its `name` and `role` are the server's own
//! fields, which no actor's write may set.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use fieldsync_proto::schema::FieldType;
use fieldsync_proto::{EntityId, EntityKind, EntityState, Role};
use serde_json::Value;

use super::html::{enc, esc, Form};
use super::i18n::Lang;
use super::pages::{
    blocking, described_by, field_error, message_page, render_engineers, IntakeErrors,
};
use super::{redirect, Posted, Session};
use crate::api::entities::write;
use crate::api::{now_ms, AppState};
use crate::store::{Actor, PersonInfo, ServerWrite, Store, StoreError};

/// The profile fields the editor sets, with their labels.
const FIELDS: [(&str, &str); 3] = [
    ("display_name", "eng.display_name"),
    ("region", "as.region"),
    ("skills", "as.skills"),
];

/// A profile form to show again as it was sent: what was typed, and what is wrong.
pub struct ProfileEdit<'a> {
    pub user: &'a str,
    pub form: &'a Form,
    pub errs: &'a IntakeErrors,
    /// The server refused the write itself.
    pub refused: Option<String>,
}

/// The profile of each engineer on the page, where one exists (office reads see all).
pub fn load(
    store: &dyn Store,
    actor: &Actor,
    people: &[PersonInfo],
) -> Result<HashMap<String, EntityState>, StoreError> {
    let mut out = HashMap::new();
    for p in people.iter().filter(|p| p.role == Role::Engineer) {
        if let Some(state) = store.entity(actor, EntityKind::User, &p.name)? {
            out.insert(p.name.clone(), state);
        }
    }
    Ok(out)
}

fn max_chars(field: &str) -> usize {
    match EntityKind::User.spec().field(field).map(|f| f.ty) {
        Some(FieldType::Text { max_chars }) => max_chars,
        _ => 0,
    }
}

/// Skills as one canonical list: split on commas (or semicolons, which the hints also
/// accept), trimmed, empty and repeated entries dropped, first spelling kept.
pub fn normalize_skills(raw: &str) -> String {
    let mut seen = std::collections::HashSet::new();
    raw.split([',', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty() && seen.insert(s.to_lowercase()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The form's values (empty means "clear"), and the errors to show next to the fields.
fn read_form(lang: Lang, f: &Form) -> (BTreeMap<&'static str, String>, IntakeErrors) {
    let mut values = BTreeMap::new();
    let mut errs = IntakeErrors::default();
    for (name, _) in FIELDS {
        let v = match name {
            "skills" => normalize_skills(f.get(name)),
            _ => f.get(name).to_owned(),
        };
        let max = max_chars(name);
        if v.chars().count() > max {
            errs.0.insert(
                name,
                lang.t("err.too_long").replace("{max}", &max.to_string()),
            );
        } else if v.chars().any(char::is_control) {
            errs.0.insert(name, lang.t("err.control_chars").to_owned());
        }
        values.insert(name, v);
    }
    (values, errs)
}

/// The fields whose value differs from the stored profile: `null` clears one.
fn changes(
    values: &BTreeMap<&'static str, String>,
    current: Option<&EntityState>,
) -> BTreeMap<String, Value> {
    values
        .iter()
        .filter(|(k, v)| current.and_then(|c| c.str(k)).unwrap_or("") != v.as_str())
        .map(|(k, v)| {
            let v = if v.is_empty() {
                Value::Null
            } else {
                Value::from(v.as_str())
            };
            (k.to_string(), v)
        })
        .collect()
}

/// One labelled input of the form, with its error beside it.
fn input(
    lang: Lang,
    user: &str,
    field: &str,
    label: &str,
    value: &str,
    err: Option<&str>,
) -> String {
    let id = format!("{field}-{user}");
    let hint = if field == "skills" {
        format!(
            r#"<small id="{id}-hint">{}</small>"#,
            lang.t("eng.skills_hint")
        )
    } else {
        String::new()
    };
    let hint_ref = if field == "skills" {
        format!(r#" aria-describedby="{id}-hint""#)
    } else {
        String::new()
    };
    format!(
        r#"<div class="field"><label for="{id}">{label}</label><input id="{id}" name="{field}" value="{v}" maxlength="{max}"{inv}{hint_ref}>{hint}{err}</div>"#,
        label = lang.t(label),
        v = esc(value),
        max = max_chars(field),
        // An error's description replaces the hint's: it is what the user needs now.
        inv = described_by(err, &id),
        hint_ref = if err.is_some() {
            String::new()
        } else {
            hint_ref
        },
        err = field_error(err, &id),
    )
}

fn edit_form(
    lang: Lang,
    s: &Session,
    user: &str,
    profile: Option<&EntityState>,
    edit: Option<&ProfileEdit<'_>>,
) -> String {
    let mut inputs = String::new();
    for (field, label) in FIELDS {
        let value = match edit {
            Some(e) => e.form.get(field),
            None => profile.and_then(|p| p.str(field)).unwrap_or(""),
        };
        let err = edit.and_then(|e| e.errs.get(field));
        inputs.push_str(&input(lang, &esc(user), field, label, value, err));
    }
    let refused = edit
        .and_then(|e| e.refused.as_deref())
        .map(|m| {
            format!(
                r#"<p class="error" role="alert">{} {}</p>"#,
                lang.t("err.refused"),
                esc(m)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<details class="profile"{open}><summary id="profile-open-{u}">{title}</summary><form method="post" action="/console/engineers/{ue}/profile" id="profile-{u}" novalidate>{refused}<input type="hidden" name="csrf" value="{csrf}">{inputs}<button type="submit" id="profile-save-{u}">{save}</button></form></details>"#,
        open = if edit.is_some() { " open" } else { "" },
        u = esc(user),
        ue = enc(user),
        title = lang.t("eng.profile"),
        csrf = esc(&s.csrf),
        save = lang.t("eng.save_profile"),
    )
}

/// The engineers table's name cell: the name, the display name, and for engineers the
/// profile editor (a disclosure, so the table stays a table until it is opened).
pub fn name_cell(
    lang: Lang,
    s: &Session,
    p: &PersonInfo,
    profile: Option<&EntityState>,
    edit: Option<&ProfileEdit<'_>>,
) -> String {
    let mut out = esc(&p.name);
    if let Some(d) = profile.and_then(|p| p.str("display_name")) {
        out.push_str(&format!(r#"<div class="meta">{}</div>"#, esc(d)));
    }
    if p.role != Role::Engineer {
        return out;
    }
    if !EntityId::is_valid(&p.name) {
        out.push_str(&format!(
            r#"<div class="meta">{}</div>"#,
            lang.t("eng.profile_unsupported")
        ));
        return out;
    }
    let edit = edit.filter(|e| e.user == p.name);
    out.push_str(&edit_form(lang, s, &p.name, profile, edit));
    out
}

/// `POST /console/engineers/{name}/profile`.
pub async fn save(
    State(app): State<AppState>,
    Path(user): Path<String>,
    Posted { sess: s, form: f }: Posted,
) -> axum::response::Response {
    if !EntityId::is_valid(&user) {
        return message_page(s.lang, StatusCode::NOT_FOUND, "eng.profile_unsupported");
    }
    let (values, errs) = read_form(s.lang, &f);
    if !errs.0.is_empty() {
        return again(&app, &s, &user, &f, errs, None).await;
    }
    let (store, actor, u) = (app.store.clone(), s.actor.clone(), user.clone());
    let current = match blocking(move || {
        if !store.ensure_profile(&u, now_ms())? {
            return Ok(None);
        }
        Ok(Some(store.entity(&actor, EntityKind::User, &u)?))
    })
    .await
    {
        Ok(Some(c)) => c,
        Ok(None) => return message_page(s.lang, StatusCode::NOT_FOUND, "err.no_user"),
        Err(r) => return r,
    };
    let fields = changes(&values, current.as_ref());
    let done = format!("/console/engineers?msg=profile_saved#eng-{}", enc(&user));
    if fields.is_empty() {
        return redirect(&done);
    }
    // No `base`: only office users write profiles, through the server and one at a time;
    // no device holds a stale copy to conflict with.
    let w = ServerWrite {
        kind: EntityKind::User,
        id: EntityId(user.clone()),
        create: false,
        fields,
        base: BTreeMap::new(),
    };
    match write(&app, s.actor.clone(), w).await {
        Ok(()) => redirect(&done),
        Err(e) => {
            let refused = Some(e.body.error.message);
            again(&app, &s, &user, &f, IntakeErrors::default(), refused).await
        }
    }
}

/// The engineers page again, with this profile form as it was sent and what is wrong.
async fn again(
    app: &AppState,
    s: &Session,
    user: &str,
    form: &Form,
    errs: IntakeErrors,
    refused: Option<String>,
) -> axum::response::Response {
    let edit = ProfileEdit {
        user,
        form,
        errs: &errs,
        refused,
    };
    render_engineers(app, s, "", Some(edit)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skills_become_one_clean_list() {
        assert_eq!(
            normalize_skills(" chillers,HVAC ;; Carrier, hvac ,"),
            "chillers, HVAC, Carrier"
        );
        assert_eq!(normalize_skills(" , "), "");
    }

    #[test]
    fn errors_sit_next_to_their_field() {
        let long = "x".repeat(201);
        let f = Form::parse(format!("region={long}&skills=a,b").as_bytes());
        let (values, errs) = read_form(Lang::En, &f);
        assert_eq!(values["skills"], "a, b");
        assert!(errs.get("region").unwrap().contains("200"));
        assert!(errs.get("skills").is_none());
        let html = input(
            Lang::En,
            "eve",
            "region",
            "as.region",
            &long,
            errs.get("region"),
        );
        assert!(
            html.contains(r#"aria-describedby="region-eve-err""#),
            "{html}"
        );
        assert!(html.contains(r#"<span class="field-error" id="region-eve-err""#));
    }

    #[test]
    fn the_server_makes_a_profile_once_then_dispatchers_set_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::SqliteStore::open(&dir.path().join("fs.db")).unwrap();
        store.add_user("eve", Role::Engineer, "x", 1).unwrap();
        store.add_user("anna.li", Role::Engineer, "x", 1).unwrap();
        let dana = Actor {
            user: "dana".into(),
            role: Role::Dispatcher,
            device: None,
        };
        let set = |create| ServerWrite {
            kind: EntityKind::User,
            id: EntityId("eve".into()),
            create,
            fields: BTreeMap::from([("region".to_owned(), Value::from("North"))]),
            base: BTreeMap::new(),
        };
        // No actor may create it: name and role are the server's.
        let refused = store.server_write(&dana, set(true), 2).unwrap();
        assert_eq!(refused.unwrap_err().code, "not_creator");
        assert!(!store.ensure_profile("nobody", 3).unwrap());
        assert!(store.ensure_profile("eve", 3).unwrap());
        assert!(store.ensure_profile("eve", 4).unwrap(), "once is enough");
        store.server_write(&dana, set(false), 5).unwrap().unwrap();
        let eve = store
            .entity(&dana, EntityKind::User, "eve")
            .unwrap()
            .unwrap();
        assert_eq!(
            (eve.str("name"), eve.str("role"), eve.str("region")),
            (Some("eve"), Some("engineer"), Some("North"))
        );
        assert_eq!(eve.version("role").unwrap().dev, 0, "the server's own op");
        let people = store.people().unwrap();
        let p = people.iter().find(|p| p.name == "eve").unwrap();
        assert_eq!(p.region.as_deref(), Some("North"), "the hints read it");
        // A name that cannot be an entity id gets no entity (and no error).
        assert!(store.ensure_profile("anna.li", 6).unwrap());
        assert!(store
            .entity(&dana, EntityKind::User, "anna.li")
            .unwrap()
            .is_none());
    }

    #[test]
    fn only_changed_fields_are_written_and_empty_clears() {
        let f = Form::parse(b"display_name=&region=North&skills=");
        let (values, _) = read_form(Lang::En, &f);
        let fields = changes(&values, None);
        assert_eq!(
            fields.len(),
            1,
            "nothing to clear on a new profile: {fields:?}"
        );
        assert_eq!(fields["region"], "North");
    }
}
