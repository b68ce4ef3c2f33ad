//! The service report: checklist templates and answers, time entries, sign-off, rating,
//! the asset's service history, and the one printable rendering of an order that the
//! console serves and the agent writes offline.

pub mod checklist;
pub mod history;
pub mod i18n;
pub mod render;
pub mod schema;

pub use i18n::Lang;
pub use render::{render, REPORT_CSS};

use sha2::{Digest, Sha256};

use crate::error::OpError;
use crate::op::Op;
use crate::schema::EntityKind;

/// Checks of a report record beyond its fields' types, decidable from the op alone:
/// `validate_op` runs them, so the agent and the server refuse the same things.
pub fn check_op(op: &Op) -> Result<(), OpError> {
    if op.kind == EntityKind::ChecklistTemplate {
        if let Some(items) = op.fields.get("items").and_then(|v| v.as_str()) {
            checklist::parse_items(items).map_err(|why| {
                OpError::new(
                    "invalid_value",
                    format!("field \"items\" of a checklist_template: {why}"),
                )
            })?;
        }
    }
    if op.kind == EntityKind::Signoff {
        if let Some(name) = op.fields.get("signer_name").and_then(|v| v.as_str()) {
            if name.trim().is_empty() {
                return Err(OpError::new(
                    "invalid_value",
                    "a sign-off needs the name of the person signing",
                ));
            }
        }
    }
    Ok(())
}

/// Standard base64 (RFC 4648, padded): `data:` URIs in the agent's self-contained report
/// and the CSP hash of its style. Twenty lines do not earn a dependency.
pub fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The CSP source that allows the report's inline stylesheet and nothing else:
/// `'sha256-…'` of `REPORT_CSS`.
pub fn style_csp_source() -> String {
    format!(
        "'sha256-{}'",
        base64(&Sha256::digest(REPORT_CSS.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hlc::Hlc;
    use crate::op::OpKind;
    use crate::schema::Role;
    use crate::validate::validate_op;
    use serde_json::{json, Value};

    fn create(kind: EntityKind, fields: Value) -> Op {
        Op {
            seq: 1,
            kind,
            id: "r1".into(),
            hlc: Hlc(1),
            op: OpKind::Create,
            fields: serde_json::from_value(fields).unwrap(),
            base: Default::default(),
        }
    }

    fn refusal(op: &Op) -> (String, String) {
        let e = validate_op(op, Role::Engineer).unwrap_err();
        (e.code, e.message)
    }

    #[test]
    fn report_records_out_of_range_are_refused_with_the_reason() {
        let rating = |score: i64| {
            create(
                EntityKind::Rating,
                json!({"order_id": "w1", "score": score}),
            )
        };
        assert!(validate_op(&rating(5), Role::Engineer).is_ok());
        for bad in [0, 6, -1] {
            let (code, msg) = refusal(&rating(bad));
            assert_eq!(code, "invalid_value");
            assert!(
                msg.contains("\"score\"") && msg.contains("from 1 to 5"),
                "{msg}"
            );
        }
        let time = |m: i64| {
            create(
                EntityKind::TimeEntry,
                json!({"order_id": "w1", "activity": "labour", "minutes": m}),
            )
        };
        assert!(validate_op(&time(90), Role::Engineer).is_ok());
        for bad in [-30, 0, 24 * 60 + 1] {
            let (code, msg) = refusal(&time(bad));
            assert_eq!(code, "invalid_value");
            assert!(msg.contains("from 1 to 1440"), "{msg}");
        }
        let signoff = |size: i64, name: &str| {
            create(
                EntityKind::Signoff,
                json!({"order_id": "w1", "signer_name": name, "signature": "a".repeat(64),
                       "signature_size": size, "signature_photo": "p1"}),
            )
        };
        assert!(validate_op(&signoff(20_000, "Li Wei"), Role::Engineer).is_ok());
        let (code, msg) = refusal(&signoff(schema::SIGNATURE_BYTES_MAX + 1, "Li Wei"));
        assert_eq!(code, "invalid_value");
        assert!(msg.contains("signature_size"), "{msg}");
        assert_eq!(refusal(&signoff(100, "  ")).0, "invalid_value");
        let template = |items: &str| {
            create(
                EntityKind::ChecklistTemplate,
                json!({"work_type": "repair", "title": "Repair", "items": items}),
            )
        };
        assert!(validate_op(&template("a | A | yes/no"), Role::Dispatcher).is_ok());
        let e = validate_op(&template("a | A | colour"), Role::Dispatcher).unwrap_err();
        assert!(e.message.contains("line 1"), "{}", e.message);
        // Answers are facts, never rewritten: a second answer is a new record.
        let mut rewrite = create(EntityKind::ChecklistAnswer, json!({"value": "no"}));
        rewrite.op = OpKind::Set;
        assert_eq!(refusal(&rewrite).0, "immutable_field");
    }

    #[test]
    fn base64_matches_rfc4648() {
        for (raw, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(raw.as_bytes()), enc);
        }
    }
}
