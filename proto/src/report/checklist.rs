//! Checklist templates and answers: the item list's format, and the check that an answer
//! names an item of its template with a value of the item's type. Pure, so the agent
//! refuses a wrong answer offline with the same words the server would use.

use serde::Serialize;

use super::schema::{CHECKLIST_ITEMS_MAX, CHECKLIST_ITEM_ID_CHARS_MAX, CHECKLIST_VALUE_CHARS_MAX};
use crate::error::OpError;
use crate::schema::EntityKind;
use crate::state::EntityState;

/// What an item's answer must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemType {
    /// `yes` or `no`.
    YesNo,
    /// A decimal number (a reading: pressure, temperature, …).
    Number,
    /// Free text.
    Text,
}

impl ItemType {
    pub fn as_str(self) -> &'static str {
        match self {
            ItemType::YesNo => "yes/no",
            ItemType::Number => "number",
            ItemType::Text => "text",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Item {
    pub id: String,
    pub label: String,
    #[serde(rename = "type")]
    pub ty: ItemType,
}

fn is_item_id(s: &str) -> bool {
    !s.is_empty()
        && s.chars().count() <= CHECKLIST_ITEM_ID_CHARS_MAX
        && s.bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'-' || c == b'.')
}

/// Parse a template's `items`: one item per line, `id | label | type`. Blank lines and
/// lines starting with `#` are skipped; the type defaults to `text`. The error names the
/// line, so whoever writes a template can fix it.
pub fn parse_items(text: &str) -> Result<Vec<Item>, String> {
    let mut items: Vec<Item> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut parts = line.split('|').map(str::trim);
        let id = parts.next().unwrap_or_default();
        let label = parts.next().unwrap_or_default();
        let ty = match parts.next().unwrap_or("text") {
            "yes/no" | "yesno" | "bool" => ItemType::YesNo,
            "number" => ItemType::Number,
            "text" | "" => ItemType::Text,
            other => {
                return Err(format!(
                    "line {}: type {other:?} is not one of yes/no, number, text",
                    n + 1
                ))
            }
        };
        if parts.next().is_some() {
            return Err(format!(
                "line {}: expected `id | label | type`, found more than three parts",
                n + 1
            ));
        }
        if !is_item_id(id) {
            return Err(format!(
                "line {}: item id {id:?} must be 1-{CHECKLIST_ITEM_ID_CHARS_MAX} letters, digits, '_', '-' or '.'",
                n + 1
            ));
        }
        if items.iter().any(|i| i.id == id) {
            return Err(format!("line {}: item id {id:?} is used twice", n + 1));
        }
        if items.len() == CHECKLIST_ITEMS_MAX {
            return Err(format!(
                "a checklist has at most {CHECKLIST_ITEMS_MAX} items"
            ));
        }
        items.push(Item {
            id: id.to_owned(),
            label: if label.is_empty() { id } else { label }.to_owned(),
            ty,
        });
    }
    if items.is_empty() {
        return Err("a checklist needs at least one item (`id | label | type`)".into());
    }
    Ok(items)
}

/// A template's items; a template whose list no longer parses (it cannot be written
/// so, but may predate a rule) shows none rather than failing the whole report.
pub fn items(template: &EntityState) -> Vec<Item> {
    template
        .str("items")
        .and_then(|t| parse_items(t).ok())
        .unwrap_or_default()
}

/// Bring an answer into its canonical form for the item's type (`Y` → `yes`, ` 3,5` is
/// not a number), or say why it cannot be one. The agent stores the canonical form; the
/// server accepts only that.
pub fn normalize(item: &Item, value: &str) -> Result<String, String> {
    let v = value.trim();
    if v.is_empty() {
        return Err(format!("item {:?} needs an answer", item.id));
    }
    if v.chars().count() > CHECKLIST_VALUE_CHARS_MAX {
        return Err(format!(
            "the answer to {:?} is longer than {CHECKLIST_VALUE_CHARS_MAX} characters",
            item.id
        ));
    }
    match item.ty {
        ItemType::YesNo => match v.to_ascii_lowercase().as_str() {
            "yes" | "y" | "true" | "ok" | "是" => Ok("yes".into()),
            "no" | "n" | "false" | "否" => Ok("no".into()),
            _ => Err(format!(
                "item {:?} ({}) is answered yes or no, not {v:?}",
                item.id, item.label
            )),
        },
        ItemType::Number => match v.parse::<f64>() {
            Ok(n) if n.is_finite() => Ok(v.to_owned()),
            _ => Err(format!(
                "item {:?} ({}) is answered with a number, not {v:?}",
                item.id, item.label
            )),
        },
        ItemType::Text => Ok(v.to_owned()),
    }
}

/// Check a new answer against its template: the item exists and the value is already in
/// canonical form. `template` is `None` when the device or server has no such template.
pub fn check_answer(
    template: Option<&EntityState>,
    template_id: &str,
    item: &str,
    value: &str,
) -> Result<(), OpError> {
    let Some(t) = template.filter(|t| t.kind == EntityKind::ChecklistTemplate) else {
        return Err(OpError::new(
            "not_found",
            format!("no checklist template {template_id}"),
        ));
    };
    let items = items(t);
    let Some(it) = items.iter().find(|i| i.id == item) else {
        let known: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        return Err(OpError::new(
            "unknown_item",
            format!(
                "checklist {:?} has no item {item:?}; its items are: {}",
                t.str("title").unwrap_or(template_id),
                known.join(", ")
            ),
        ));
    };
    match normalize(it, value) {
        Ok(canon) if canon == value => Ok(()),
        Ok(canon) => Err(OpError::new(
            "invalid_value",
            format!("answer {value:?} to {item:?} must be written {canon:?}"),
        )),
        Err(why) => Err(OpError::new("invalid_value", why)),
    }
}

/// The template for an order of `work_type`: the one its answers already use, else the
/// live template of that type with the smallest id (so every device picks the same).
/// Answers to items of another template still show, under "other answers".
pub fn pick_template<'a>(
    work_type: Option<&str>,
    used: Option<&str>,
    templates: impl IntoIterator<Item = &'a EntityState>,
) -> Option<&'a EntityState> {
    let mut by_type: Option<&EntityState> = None;
    for t in templates {
        if t.kind != EntityKind::ChecklistTemplate {
            continue;
        }
        if used == Some(t.id.as_str()) {
            return Some(t);
        }
        if work_type.is_some()
            && t.str("work_type") == work_type
            && !t.bool("retired")
            && by_type.is_none_or(|b| t.id < b.id)
        {
            by_type = Some(t);
        }
    }
    by_type
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use crate::state::{FieldState, Version};
    use serde_json::json;

    pub(crate) fn template(id: &str, work_type: &str, items: &str) -> EntityState {
        let mut s = EntityState::new(EntityKind::ChecklistTemplate, id.into());
        let ver = Version {
            hlc: Hlc(1),
            dev: 0,
        };
        for (k, v) in [
            ("work_type", work_type),
            ("title", "Pump inspection"),
            ("items", items),
        ] {
            s.fields.insert(
                k.into(),
                FieldState {
                    v: json!(v),
                    ver,
                    by: "dana".into(),
                },
            );
        }
        s
    }

    const ITEMS: &str = "# pump\nseal | Seal intact | yes/no\npressure | Pressure (bar) | number\n\nremarks | Remarks\n";

    #[test]
    fn items_parse_with_types_and_defaults() {
        let items = parse_items(ITEMS).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].ty, ItemType::YesNo);
        assert_eq!(items[1].ty, ItemType::Number);
        assert_eq!(
            (items[2].ty, items[2].label.as_str()),
            (ItemType::Text, "Remarks")
        );
        for (bad, why) in [
            ("a | b | colour", "line 1: type"),
            ("a b | x", "item id"),
            ("a | x\na | y", "used twice"),
            ("", "at least one"),
            ("a | b | text | d", "more than three"),
        ] {
            let e = parse_items(bad).unwrap_err();
            assert!(e.contains(why), "{bad:?}: {e}");
        }
    }

    #[test]
    fn answers_must_name_an_item_and_fit_its_type() {
        let t = template("t1", "inspection", ITEMS);
        assert!(check_answer(Some(&t), "t1", "seal", "yes").is_ok());
        assert!(check_answer(Some(&t), "t1", "pressure", "2.5").is_ok());
        let e = check_answer(Some(&t), "t1", "colour", "red").unwrap_err();
        assert_eq!(e.code, "unknown_item");
        assert!(
            e.message.contains("seal, pressure, remarks"),
            "{}",
            e.message
        );
        let e = check_answer(Some(&t), "t1", "pressure", "high").unwrap_err();
        assert_eq!(e.code, "invalid_value");
        assert!(e.message.contains("number"), "{}", e.message);
        assert_eq!(
            check_answer(Some(&t), "t1", "seal", "Y").unwrap_err().code,
            "invalid_value"
        );
        assert_eq!(
            check_answer(None, "t9", "seal", "yes").unwrap_err().code,
            "not_found"
        );
        let seal = &parse_items(ITEMS).unwrap()[0];
        assert_eq!(normalize(seal, " Y ").unwrap(), "yes");
        assert!(normalize(seal, "maybe").is_err());
        assert!(normalize(seal, "  ").is_err());
    }

    #[test]
    fn every_device_picks_the_same_template() {
        let a = template("t2", "repair", ITEMS);
        let b = template("t1", "repair", ITEMS);
        let c = template("t0", "inspection", ITEMS);
        let all = [&a, &b, &c];
        let pick = |wt, used| pick_template(wt, used, all).map(|t| t.id.as_str());
        assert_eq!(pick(Some("repair"), None), Some("t1"));
        assert_eq!(pick(Some("repair"), Some("t2")), Some("t2"));
        assert_eq!(pick(Some("installation"), None), None);
        assert_eq!(pick(None, None), None);
    }
}
