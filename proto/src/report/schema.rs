//! The service report's entity kinds. They live here rather than in `schema.rs` so the
//! report is one place to read; `EntityKind::spec` points at them.
//!
//! Everything an engineer captures on site is its own append-only record (an answer, a
//! time entry, a sign-off, a rating): two devices offline never edit the same record, so
//! nothing can be overwritten; a mistake is voided and recorded again.

use crate::schema::{
    f, fixed, req, Creators, EntityKind, FieldType, KindSpec, Owner, TEXT_LONG, TEXT_SHORT,
};

/// What a visit is for; picks the checklist template.
pub const WORK_TYPES: &[&str] = &["inspection", "repair", "installation"];
/// What a time entry counts.
pub const TIME_ACTIVITIES: &[&str] = &["labour", "travel"];
/// One time entry is at most a day; a longer job is several entries (one per day).
pub const TIME_ENTRY_MINUTES_MAX: i64 = 24 * 60;
/// A signature is a small drawing; anything larger is not one (and would slow every
/// report that embeds it).
pub const SIGNATURE_BYTES_MAX: i64 = 1024 * 1024;
/// Satisfaction is rated 1 (very poor) to 5 (excellent).
pub const RATING_SCORE_MIN: i64 = 1;
pub const RATING_SCORE_MAX: i64 = 5;
/// Items in one checklist template.
pub const CHECKLIST_ITEMS_MAX: usize = 200;
/// Characters of a checklist item's id (its key in answers).
pub const CHECKLIST_ITEM_ID_CHARS_MAX: usize = 64;
/// Characters of one checklist answer.
pub const CHECKLIST_VALUE_CHARS_MAX: usize = 1_000;
/// Characters of a template's item list (`CHECKLIST_ITEMS_MAX` lines of id, label, type).
pub const CHECKLIST_ITEMS_CHARS_MAX: usize = 40_000;

/// A checklist per work type, written in the office and held by every engineer offline
/// (a broadcast kind). `items` is one item per line: `id | label | type`, type one of
/// `yes/no`, `number`, `text` (the default); see `checklist::parse_items`.
pub static CHECKLIST_TEMPLATE: KindSpec = KindSpec {
    kind: EntityKind::ChecklistTemplate,
    append_only: false,
    creators: Creators::Office,
    order_link: None,
    fields: &[
        req("work_type", FieldType::Enum(WORK_TYPES), Owner::Dispatcher),
        req("title", TEXT_SHORT, Owner::Dispatcher),
        req(
            "items",
            FieldType::Text {
                max_chars: CHECKLIST_ITEMS_CHARS_MAX,
            },
            Owner::Dispatcher,
        ),
        f("retired", FieldType::Bool, Owner::Dispatcher),
    ],
};

/// One answer to one checklist item on one order. Answering again adds a record (the
/// newest is shown, earlier ones stay visible), so concurrent answers never overwrite.
pub static CHECKLIST_ANSWER: KindSpec = KindSpec {
    kind: EntityKind::ChecklistAnswer,
    append_only: true,
    creators: Creators::OrderParticipants,
    order_link: Some("order_id"),
    fields: &[
        fixed(
            "order_id",
            FieldType::Ref(EntityKind::WorkOrder),
            Owner::Shared,
            true,
        ),
        fixed(
            "template_id",
            FieldType::Ref(EntityKind::ChecklistTemplate),
            Owner::Shared,
            true,
        ),
        fixed(
            "item",
            FieldType::Text {
                max_chars: CHECKLIST_ITEM_ID_CHARS_MAX,
            },
            Owner::Shared,
            true,
        ),
        fixed(
            "value",
            FieldType::Text {
                max_chars: CHECKLIST_VALUE_CHARS_MAX,
            },
            Owner::Shared,
            true,
        ),
        f("voided", FieldType::Bool, Owner::Shared),
    ],
};

/// Labour or travel time on an order, in whole minutes.
pub static TIME_ENTRY: KindSpec = KindSpec {
    kind: EntityKind::TimeEntry,
    append_only: true,
    creators: Creators::OrderParticipants,
    order_link: Some("order_id"),
    fields: &[
        fixed(
            "order_id",
            FieldType::Ref(EntityKind::WorkOrder),
            Owner::Shared,
            true,
        ),
        fixed(
            "activity",
            FieldType::Enum(TIME_ACTIVITIES),
            Owner::Shared,
            true,
        ),
        fixed(
            "minutes",
            FieldType::Int {
                min: 1,
                max: TIME_ENTRY_MINUTES_MAX,
            },
            Owner::Shared,
            true,
        ),
        fixed("note", TEXT_SHORT, Owner::Shared, false),
        f("voided", FieldType::Bool, Owner::Shared),
    ],
};

/// The customer's sign-off: who signed, and the signature image. The image is a `photo`
/// record (`signature_photo`) so its bytes travel the photo path: content-addressed,
/// resumable, verified, never deleted from the device before the server holds them.
pub static SIGNOFF: KindSpec = KindSpec {
    kind: EntityKind::Signoff,
    append_only: true,
    creators: Creators::OrderParticipants,
    order_link: Some("order_id"),
    fields: &[
        fixed(
            "order_id",
            FieldType::Ref(EntityKind::WorkOrder),
            Owner::Shared,
            true,
        ),
        fixed("signer_name", TEXT_SHORT, Owner::Shared, true),
        fixed("signature", FieldType::BlobHash, Owner::Shared, true),
        fixed(
            "signature_size",
            FieldType::Int {
                min: 1,
                max: SIGNATURE_BYTES_MAX,
            },
            Owner::Shared,
            true,
        ),
        fixed(
            "signature_photo",
            FieldType::Ref(EntityKind::Photo),
            Owner::Shared,
            true,
        ),
        f("voided", FieldType::Bool, Owner::Shared),
    ],
};

/// The customer's satisfaction, 1–5 with a comment: taken on site at sign-off or by the
/// office after completion (the survey).
pub static RATING: KindSpec = KindSpec {
    kind: EntityKind::Rating,
    append_only: true,
    creators: Creators::OrderParticipants,
    order_link: Some("order_id"),
    fields: &[
        fixed(
            "order_id",
            FieldType::Ref(EntityKind::WorkOrder),
            Owner::Shared,
            true,
        ),
        fixed(
            "score",
            FieldType::Int {
                min: RATING_SCORE_MIN,
                max: RATING_SCORE_MAX,
            },
            Owner::Shared,
            true,
        ),
        fixed("comment", TEXT_LONG, Owner::Shared, false),
        f("voided", FieldType::Bool, Owner::Shared),
    ],
};

/// A customer's complaint about an order, taken by the office; a follow-up visit is a new
/// work order created from it (`follow_up_order`).
pub static COMPLAINT: KindSpec = KindSpec {
    kind: EntityKind::Complaint,
    append_only: false,
    creators: Creators::Office,
    order_link: Some("order_id"),
    fields: &[
        fixed(
            "order_id",
            FieldType::Ref(EntityKind::WorkOrder),
            Owner::Dispatcher,
            true,
        ),
        fixed("text", TEXT_LONG, Owner::Dispatcher, true),
        f(
            "follow_up_order",
            FieldType::Ref(EntityKind::WorkOrder),
            Owner::Dispatcher,
        ),
        f("resolved", FieldType::Bool, Owner::Dispatcher),
    ],
};
