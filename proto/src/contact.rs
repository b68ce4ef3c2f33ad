//! The customer's communication log and contacts (issue 5: "a customer has a tier,
//! contacts, and a communication log").
//!
//! A `contact_log` entry is one call, email or visit: an append-only record, so two
//! people logging calls offline never write the same record and nothing can conflict.
//! It names its customer, and optionally the order it was about; with an order it is that
//! order's child (`order_link`), so it reaches the order's holder and the engineer on site
//! can log their own calls offline, against orders they hold. Without an order it is
//! office data. Kept out of `schema.rs` (which only points here), as the report's kinds are.
//!
//! A customer's `contacts` is a short text list, one person per line: `name | role |
//! phone | email`, the last three optional. Text rather than records because a customer
//! has a handful and the office edits them together; `parse_contacts` is the one reading
//! of it, and `check_op` refuses a list it cannot read, on the agent and the server alike.

use serde::{Deserialize, Serialize};

use crate::error::OpError;
use crate::op::Op;
use crate::schema::Creators;
use crate::schema::{f, fixed, EntityKind, FieldType, KindSpec, Owner, TEXT_SHORT};
use crate::state::EntityState;

/// How the customer was reached.
pub const CONTACT_CHANNELS: &[&str] = &["call", "email", "visit", "other"];
/// Who reached whom: the customer us (`in`) or we them (`out`).
pub const CONTACT_DIRECTIONS: &[&str] = &["in", "out"];
/// Characters in one log entry's summary.
pub const CONTACT_SUMMARY_CHARS_MAX: usize = 4_000;
/// People in one customer's contact list.
pub const CONTACTS_MAX: usize = 50;
/// Characters in one part (name, role, phone, email) of a contact.
pub const CONTACT_PART_CHARS_MAX: usize = 200;
/// Characters of the whole contact list.
pub const CONTACTS_CHARS_MAX: usize = 8_000;

pub static CONTACT_LOG: KindSpec = KindSpec {
    kind: EntityKind::ContactLog,
    append_only: true,
    creators: Creators::OrderParticipants,
    order_link: Some("order_id"),
    fields: &[
        fixed(
            "customer_id",
            FieldType::Ref(EntityKind::Customer),
            Owner::Shared,
            true,
        ),
        fixed(
            "order_id",
            FieldType::Ref(EntityKind::WorkOrder),
            Owner::Shared,
            false,
        ),
        fixed(
            "channel",
            FieldType::Enum(CONTACT_CHANNELS),
            Owner::Shared,
            true,
        ),
        fixed(
            "direction",
            FieldType::Enum(CONTACT_DIRECTIONS),
            Owner::Shared,
            false,
        ),
        // When the call or visit happened (event time), which may be before it was logged.
        fixed("at", FieldType::Time, Owner::Shared, true),
        // The person spoken to.
        fixed("contact", TEXT_SHORT, Owner::Shared, false),
        fixed(
            "summary",
            FieldType::Text {
                max_chars: CONTACT_SUMMARY_CHARS_MAX,
            },
            Owner::Shared,
            true,
        ),
        f("voided", FieldType::Bool, Owner::Shared),
    ],
};

/// One person of a customer's contact list.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub role: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub phone: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
}

/// Read a contact list: one person per non-blank line, `name | role | phone | email`.
/// Each problem names its line, so the office can fix the list in one go.
pub fn parse_contacts(text: &str) -> Result<Vec<Contact>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let at = n + 1;
        let parts: Vec<&str> = line.split('|').map(str::trim).collect();
        if parts.len() > 4 {
            return Err(format!(
                "line {at}: at most 4 parts, name | role | phone | email"
            ));
        }
        if let Some(long) = parts
            .iter()
            .find(|p| p.chars().count() > CONTACT_PART_CHARS_MAX)
        {
            return Err(format!(
                "line {at}: {:?}… is longer than {CONTACT_PART_CHARS_MAX} characters",
                long.chars().take(20).collect::<String>()
            ));
        }
        let part = |i: usize| parts.get(i).copied().unwrap_or("").to_owned();
        let c = Contact {
            name: part(0),
            role: part(1),
            phone: part(2),
            email: part(3),
        };
        if c.name.is_empty() {
            return Err(format!("line {at}: a contact needs a name"));
        }
        if !c.phone.is_empty()
            && !c
                .phone
                .chars()
                .all(|ch| ch.is_ascii_digit() || " +-().".contains(ch))
        {
            return Err(format!(
                "line {at}: phone {:?} may hold only digits, spaces and + - ( ) .",
                c.phone
            ));
        }
        if !c.email.is_empty() && !plausible_email(&c.email) {
            return Err(format!("line {at}: {:?} is not an email address", c.email));
        }
        out.push(c);
        if out.len() > CONTACTS_MAX {
            return Err(format!("at most {CONTACTS_MAX} contacts per customer"));
        }
    }
    Ok(out)
}

/// One `@` with something either side and a dot in the domain: enough to catch a phone
/// number or name typed in the wrong column, without pretending to check deliverability.
fn plausible_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// The list written back in its one canonical form (what the console saves).
pub fn format_contacts(contacts: &[Contact]) -> String {
    contacts
        .iter()
        .map(|c| {
            let mut parts = vec![c.name.as_str(), &c.role, &c.phone, &c.email];
            while parts.len() > 1 && parts.last().is_some_and(|p| p.is_empty()) {
                parts.pop();
            }
            parts.join(" | ")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A log entry about an order is about that order's customer: `order` is the order the
/// entry names, as the server (or the agent) holds it.
pub fn check_order_customer(op: &Op, order: Option<&EntityState>) -> Result<(), OpError> {
    let named = op.fields.get("customer_id").and_then(|v| v.as_str());
    let of_order = order.and_then(|o| o.str("customer_id"));
    match (named, of_order) {
        (Some(c), Some(o)) if c != o => Err(OpError::new(
            "invalid_value",
            format!(
                "contact log {}: the order is for customer {o}, not {c}",
                op.id
            ),
        )),
        _ => Ok(()),
    }
}

/// Checks beyond the fields' types (`validate_op` runs them): a log entry says something,
/// and a contact list can be read.
pub fn check_op(op: &Op) -> Result<(), OpError> {
    if op.kind == EntityKind::ContactLog {
        if let Some(s) = op.fields.get("summary").and_then(|v| v.as_str()) {
            if s.trim().is_empty() {
                return Err(OpError::new(
                    "invalid_value",
                    "a contact log entry needs a summary of what was said",
                ));
            }
        }
    }
    if op.kind == EntityKind::Customer {
        if let Some(text) = op.fields.get("contacts").and_then(|v| v.as_str()) {
            parse_contacts(text).map_err(|why| {
                OpError::new(
                    "invalid_value",
                    format!("field \"contacts\" of a customer: {why}"),
                )
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contacts_parse_and_round_trip() {
        let text = "Li Wei | facilities manager | +86 21 5555-0100 | li.wei@acme.cn\n\n  Ops desk || 400-800-1234\nAnna";
        let list = parse_contacts(text).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[1].name, "Ops desk");
        assert_eq!(list[1].role, "");
        assert_eq!(list[1].phone, "400-800-1234");
        assert_eq!(
            format_contacts(&list),
            "Li Wei | facilities manager | +86 21 5555-0100 | li.wei@acme.cn\nOps desk |  | 400-800-1234\nAnna"
        );
        assert_eq!(parse_contacts(&format_contacts(&list)).unwrap(), list);
        assert_eq!(parse_contacts("").unwrap(), vec![]);
    }

    #[test]
    fn bad_contacts_name_their_line() {
        for (text, why) in [
            ("ok\n | role", "line 2: a contact needs a name"),
            ("a | b | call me", "line 1: phone"),
            ("a | b | 123 | not-an-email", "line 1: \"not-an-email\""),
            ("a | b | c | d | e", "line 1: at most 4 parts"),
        ] {
            let err = parse_contacts(text).unwrap_err();
            assert!(err.contains(why), "{text:?}: {err}");
        }
        let many = "x\n".repeat(CONTACTS_MAX + 1);
        assert!(parse_contacts(&many).unwrap_err().contains("at most"));
    }
}
