//! Checks an op against the schema and the author's role, then against what the server
//! knows of the target (exists? in the author's scope?). Pure, so the agent runs the same
//! checks offline and tells the engineer at once.

use serde_json::Value;

use crate::error::OpError;
use crate::ids::EntityId;
use crate::limits::OP_FIELDS_MAX;
use crate::op::{Op, OpKind};
use crate::schema::{Creators, FieldSpec, FieldType, Role};

fn with_article(word: &str) -> String {
    let vowel = word.starts_with(['a', 'e', 'i', 'o', 'u']);
    format!("{} {word}", if vowel { "an" } else { "a" })
}

/// Shape, types and field ownership: everything decidable from the op and role alone.
pub fn validate_op(op: &Op, role: Role) -> Result<(), OpError> {
    if !EntityId::is_valid(op.id.as_str()) {
        return Err(OpError::new(
            "invalid_id",
            format!(
                "id {:?} must be 1-64 characters of letters, digits, '-' or '_'",
                op.id.as_str()
            ),
        ));
    }
    if op.fields.is_empty() {
        return Err(OpError::new(
            "empty_op",
            "an op must set at least one field",
        ));
    }
    if op.fields.len() > OP_FIELDS_MAX {
        return Err(OpError::new(
            "too_many_fields",
            format!("an op sets at most {OP_FIELDS_MAX} fields"),
        ));
    }
    let spec = op.kind.spec();
    if op.op == OpKind::Create {
        let allowed = match spec.creators {
            Creators::Office => matches!(role, Role::Dispatcher | Role::Admin),
            Creators::OrderParticipants => true,
            Creators::System => false,
            Creators::Located => true,
        };
        if !allowed {
            return Err(OpError::new(
                "not_creator",
                format!(
                    "{} may not create a {}",
                    with_article(role.as_str()),
                    op.kind
                ),
            ));
        }
        if !op.base.is_empty() {
            return Err(OpError::new(
                "invalid_base",
                "a create has no base versions",
            ));
        }
        if let Some(missing) = spec
            .fields
            .iter()
            .find(|f| f.required && !op.fields.contains_key(f.name))
        {
            return Err(OpError::new(
                "missing_field",
                format!("creating a {} needs field {:?}", op.kind, missing.name),
            ));
        }
    }
    for (name, value) in &op.fields {
        let field = spec.field(name).ok_or_else(|| {
            OpError::new(
                "unknown_field",
                format!("{} has no field {name:?}", op.kind),
            )
        })?;
        if !field.owner.allows(role) {
            return Err(OpError::new(
                "not_owner",
                format!(
                    "field {name:?} of a {} is not writable by {}",
                    op.kind,
                    with_article(role.as_str())
                ),
            ));
        }
        if op.op == OpKind::Set && !field.mutable {
            return Err(OpError::new(
                "immutable_field",
                format!(
                    "field {name:?} of a {} is fixed at creation; void the record and add a new one",
                    op.kind
                ),
            ));
        }
        check_value(field, value).map_err(|why| {
            OpError::new(
                "invalid_value",
                format!("field {name:?} of a {}: {why}", op.kind),
            )
        })?;
    }
    if let Some(name) = op.base.keys().find(|k| !op.fields.contains_key(*k)) {
        return Err(OpError::new(
            "invalid_base",
            format!("base version given for {name:?}, which the op does not set"),
        ));
    }
    crate::report::check_op(op)?;
    crate::contact::check_op(op)?;
    crate::stock::check_shape(op, role)
}

/// Whether `v` fits the field's type. `null` clears an optional field.
pub fn check_value(field: &FieldSpec, v: &Value) -> Result<(), String> {
    if v.is_null() {
        return if field.required {
            Err("is required and cannot be cleared".into())
        } else {
            Ok(())
        };
    }
    match field.ty {
        FieldType::Text { max_chars } => {
            let s = v.as_str().ok_or("must be a string")?;
            if s.chars().count() > max_chars {
                return Err(format!("is longer than {max_chars} characters"));
            }
            if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
                return Err("contains control characters".into());
            }
            Ok(())
        }
        FieldType::Int { min, max } => match v.as_i64() {
            Some(n) if (min..=max).contains(&n) => Ok(()),
            _ => Err(format!("must be a whole number from {min} to {max}")),
        },
        FieldType::Number => v
            .as_f64()
            .filter(|n| n.is_finite())
            .map(|_| ())
            .ok_or_else(|| "must be a number".into()),
        FieldType::Bool => v
            .as_bool()
            .map(|_| ())
            .ok_or_else(|| "must be true or false".into()),
        FieldType::Time => v
            .as_u64()
            .map(|_| ())
            .ok_or_else(|| "must be Unix milliseconds".into()),
        FieldType::Enum(values) => match v.as_str() {
            Some(s) if values.contains(&s) => Ok(()),
            _ => Err(format!("must be one of {}", values.join(", "))),
        },
        FieldType::Ref(kind) => match v.as_str() {
            Some(s) if EntityId::is_valid(s) => Ok(()),
            _ => Err(format!("must be the id of a {kind}")),
        },
        FieldType::BlobHash => match v.as_str() {
            Some(s)
                if s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                Ok(())
            }
            _ => Err("must be a lowercase hex SHA-256".into()),
        },
        FieldType::FileName { max_chars } => {
            let s = v.as_str().ok_or("must be a string")?;
            if s.is_empty() || s == "." || s == ".." {
                return Err("must be a file name".into());
            }
            if s.chars().count() > max_chars {
                return Err(format!("is longer than {max_chars} characters"));
            }
            if s.contains(['/', '\\']) {
                return Err("must be a plain file name, without '/' or '\\'".into());
            }
            if s.chars().any(char::is_control) {
                return Err("contains control characters".into());
            }
            Ok(())
        }
        FieldType::Json => Ok(()),
        FieldType::SlaTerms => {
            let terms: crate::sla::SlaTerms = serde_json::from_value(v.clone())
                .map_err(|e| format!("is not SLA terms (calendar and rules): {e}"))?;
            terms.validate().map_err(|e| e.to_string())
        }
        FieldType::Intervals { max } => {
            let list = v.as_array().ok_or("must be a list of [from, to] pairs")?;
            if list.len() > max {
                return Err(format!("has more than {max} intervals"));
            }
            let mut last_end = 0;
            for (i, pair) in list.iter().enumerate() {
                let (from, to) = match pair.as_array().map(Vec::as_slice) {
                    Some([from, to]) => (from.as_u64(), to),
                    _ => return Err(format!("item {i} must be a [from, to] pair")),
                };
                let from = from.ok_or(format!("item {i}: from must be Unix milliseconds"))?;
                let open = to.is_null();
                let to = if open {
                    from
                } else {
                    to.as_u64()
                        .ok_or(format!("item {i}: to must be Unix milliseconds or null"))?
                };
                if from < last_end || to < from || (open && i + 1 != list.len()) {
                    return Err(format!(
                        "item {i}: intervals must be in order, not overlap, and only the last may be open"
                    ));
                }
                last_end = to;
            }
            Ok(())
        }
    }
}

/// What the server knows about an op's target when it authorises it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Target {
    /// The entity already exists.
    pub exists: bool,
    /// For a set: the entity is in the author's scope. For a create of a child record:
    /// its work order is. Office roles see everything.
    pub in_scope: bool,
}

/// Object-level authorisation, after `validate_op` passed.
pub fn authorize(op: &Op, role: Role, target: Target) -> Result<(), OpError> {
    match (op.op, target.exists) {
        (OpKind::Create, true) => {
            return Err(OpError::new(
                "already_exists",
                format!("a {} with id {} already exists", op.kind, op.id),
            ))
        }
        (OpKind::Set, false) => {
            return Err(OpError::new(
                "not_found",
                format!("no {} with id {}", op.kind, op.id),
            ))
        }
        _ => {}
    }
    if role == Role::Engineer && !target.in_scope {
        let what = match op.op {
            OpKind::Create => "its work order is not assigned to you",
            OpKind::Set => "it is not in your assigned work",
        };
        return Err(OpError::new(
            "out_of_scope",
            format!("cannot write {} {}: {what}", op.kind, op.id),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use crate::schema::EntityKind;
    use serde_json::json;
    use std::collections::BTreeMap;

    fn op(kind: EntityKind, kind_op: OpKind, fields: Value) -> Op {
        let fields: BTreeMap<String, Value> = serde_json::from_value(fields).unwrap();
        Op {
            seq: 1,
            kind,
            id: "x1".into(),
            hlc: Hlc(1),
            op: kind_op,
            fields,
            base: BTreeMap::new(),
        }
    }

    fn code(r: Result<(), OpError>) -> String {
        r.unwrap_err().code
    }

    #[test]
    fn engineer_cannot_write_dispatcher_fields_or_create_orders() {
        let assign = op(
            EntityKind::WorkOrder,
            OpKind::Set,
            json!({"assignee": "bob"}),
        );
        assert_eq!(code(validate_op(&assign, Role::Engineer)), "not_owner");
        assert!(validate_op(&assign, Role::Dispatcher).is_ok());
        let create = op(
            EntityKind::WorkOrder,
            OpKind::Create,
            json!({"description": "d", "priority": 2}),
        );
        assert_eq!(code(validate_op(&create, Role::Engineer)), "not_creator");
        assert!(validate_op(&create, Role::Dispatcher).is_ok());
    }

    #[test]
    fn types_required_and_immutables() {
        let bad_prio = op(EntityKind::WorkOrder, OpKind::Set, json!({"priority": 9}));
        assert_eq!(
            code(validate_op(&bad_prio, Role::Dispatcher)),
            "invalid_value"
        );
        let bad_status = op(
            EntityKind::WorkOrder,
            OpKind::Set,
            json!({"status": "done"}),
        );
        assert_eq!(
            code(validate_op(&bad_status, Role::Engineer)),
            "invalid_value"
        );
        let missing = op(EntityKind::Note, OpKind::Create, json!({"order_id": "w1"}));
        assert_eq!(code(validate_op(&missing, Role::Engineer)), "missing_field");
        let rewrite = op(EntityKind::Note, OpKind::Set, json!({"text": "changed"}));
        assert_eq!(
            code(validate_op(&rewrite, Role::Engineer)),
            "immutable_field"
        );
        let void = op(EntityKind::Note, OpKind::Set, json!({"voided": true}));
        assert!(validate_op(&void, Role::Engineer).is_ok());
        let unknown = op(EntityKind::Note, OpKind::Set, json!({"colour": "red"}));
        assert_eq!(code(validate_op(&unknown, Role::Engineer)), "unknown_field");
        let clear_required = op(
            EntityKind::WorkOrder,
            OpKind::Set,
            json!({"description": null}),
        );
        assert_eq!(
            code(validate_op(&clear_required, Role::Dispatcher)),
            "invalid_value"
        );
    }

    #[test]
    fn photo_names_cannot_be_paths() {
        let photo = |name: &str| {
            op(
                EntityKind::Photo,
                OpKind::Create,
                json!({"order_id": "w1", "hash": "a".repeat(64), "size": 10,
                       "mime": "image/jpeg", "name": name}),
            )
        };
        assert!(validate_op(&photo("IMG_0001.JPG"), Role::Engineer).is_ok());
        for bad in ["../x", "/etc/passwd", "a\\b", "x\0y", "..", ""] {
            assert_eq!(
                code(validate_op(&photo(bad), Role::Engineer)),
                "invalid_value",
                "{bad:?}"
            );
        }
        let mut not_hex = photo("a.jpg");
        not_hex
            .fields
            .insert("hash".into(), json!("../../etc/passwd"));
        assert_eq!(code(validate_op(&not_hex, Role::Engineer)), "invalid_value");
        let mut exe = photo("a.jpg");
        exe.fields
            .insert("mime".into(), json!("application/x-msdownload"));
        assert_eq!(code(validate_op(&exe, Role::Engineer)), "invalid_value");
        let rewrite = op(EntityKind::Photo, OpKind::Set, json!({"caption": "x"}));
        assert_eq!(
            code(validate_op(&rewrite, Role::Engineer)),
            "immutable_field"
        );
    }

    #[test]
    fn scope_and_existence() {
        let set = op(
            EntityKind::WorkOrder,
            OpKind::Set,
            json!({"status": "on-site"}),
        );
        let here = Target {
            exists: true,
            in_scope: true,
        };
        assert!(authorize(&set, Role::Engineer, here).is_ok());
        let elsewhere = Target {
            exists: true,
            in_scope: false,
        };
        assert_eq!(
            code(authorize(&set, Role::Engineer, elsewhere)),
            "out_of_scope"
        );
        assert!(authorize(&set, Role::Dispatcher, elsewhere).is_ok());
        let missing = Target {
            exists: false,
            in_scope: false,
        };
        assert_eq!(
            code(authorize(&set, Role::Dispatcher, missing)),
            "not_found"
        );
    }
}
