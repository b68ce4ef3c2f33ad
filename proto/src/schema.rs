//! The entity schema: every entity type, its fields, their types and who owns them.
//!
//! Ownership is the authority model (DESIGN: "authority that must not depend on device
//! clocks comes from dispatcher-owned fields"). The server checks every op against this
//! table; the agent checks too, so an engineer learns at once, offline, that a write is not
//! theirs to make.

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityKind {
    WorkOrder,
    Customer,
    Site,
    Asset,
    User,
    Note,
    PartUsage,
    Conflict,
    Photo,
    Part,
    KbArticle,
    MaintenancePlan,
    Contract,
    // Service report (issue 5).
    ChecklistTemplate,
    ChecklistAnswer,
    TimeEntry,
    Signoff,
    Rating,
    Complaint,
    StockLocation,
    StockMovement,
    Requisition,
    StockMin,
    // Customer communication log (issue 5).
    ContactLog,
}

impl EntityKind {
    pub const ALL: [EntityKind; 24] = [
        EntityKind::WorkOrder,
        EntityKind::Customer,
        EntityKind::Site,
        EntityKind::Asset,
        EntityKind::User,
        EntityKind::Note,
        EntityKind::PartUsage,
        EntityKind::Conflict,
        EntityKind::Photo,
        EntityKind::Part,
        EntityKind::KbArticle,
        EntityKind::MaintenancePlan,
        EntityKind::Contract,
        EntityKind::ChecklistTemplate,
        EntityKind::ChecklistAnswer,
        EntityKind::TimeEntry,
        EntityKind::Signoff,
        EntityKind::Rating,
        EntityKind::Complaint,
        EntityKind::StockLocation,
        EntityKind::StockMovement,
        EntityKind::Requisition,
        EntityKind::StockMin,
        EntityKind::ContactLog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::WorkOrder => "work_order",
            EntityKind::Customer => "customer",
            EntityKind::Site => "site",
            EntityKind::Asset => "asset",
            EntityKind::User => "user",
            EntityKind::Note => "note",
            EntityKind::PartUsage => "part_usage",
            EntityKind::Conflict => "conflict",
            EntityKind::Photo => "photo",
            EntityKind::Part => "part",
            EntityKind::KbArticle => "kb_article",
            EntityKind::MaintenancePlan => "maintenance_plan",
            EntityKind::Contract => "contract",
            EntityKind::ChecklistTemplate => "checklist_template",
            EntityKind::ChecklistAnswer => "checklist_answer",
            EntityKind::TimeEntry => "time_entry",
            EntityKind::Signoff => "signoff",
            EntityKind::Rating => "rating",
            EntityKind::Complaint => "complaint",
            EntityKind::StockLocation => "stock_location",
            EntityKind::StockMovement => "stock_movement",
            EntityKind::Requisition => "requisition",
            EntityKind::StockMin => "stock_min",
            EntityKind::ContactLog => "contact_log",
        }
    }

    pub fn parse(s: &str) -> Option<EntityKind> {
        EntityKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Reference data every engineer holds offline, whatever their orders (the parts
    /// catalog, the knowledge base, contracts, checklist templates, stock locations).
    pub fn broadcast(self) -> bool {
        matches!(
            self,
            EntityKind::Part
                | EntityKind::KbArticle
                | EntityKind::Contract
                | EntityKind::ChecklistTemplate
                | EntityKind::StockLocation
        )
    }

    /// Stock records scoped by the location they concern rather than by an order: an
    /// engineer holds those of their own van (`stock.rs`).
    pub fn located(self) -> bool {
        matches!(
            self,
            EntityKind::StockMovement | EntityKind::Requisition | EntityKind::StockMin
        )
    }

    pub fn spec(self) -> &'static KindSpec {
        match self {
            EntityKind::WorkOrder => &WORK_ORDER,
            EntityKind::Customer => &CUSTOMER,
            EntityKind::Site => &SITE,
            EntityKind::Asset => &ASSET,
            EntityKind::User => &USER,
            EntityKind::Note => &NOTE,
            EntityKind::PartUsage => &PART_USAGE,
            EntityKind::Conflict => &CONFLICT,
            EntityKind::Photo => &PHOTO,
            EntityKind::Part => &PART,
            EntityKind::KbArticle => &KB_ARTICLE,
            EntityKind::MaintenancePlan => &MAINTENANCE_PLAN,
            EntityKind::Contract => &CONTRACT,
            EntityKind::ChecklistTemplate => &crate::report::schema::CHECKLIST_TEMPLATE,
            EntityKind::ChecklistAnswer => &crate::report::schema::CHECKLIST_ANSWER,
            EntityKind::TimeEntry => &crate::report::schema::TIME_ENTRY,
            EntityKind::Signoff => &crate::report::schema::SIGNOFF,
            EntityKind::Rating => &crate::report::schema::RATING,
            EntityKind::Complaint => &crate::report::schema::COMPLAINT,
            EntityKind::StockLocation => &STOCK_LOCATION,
            EntityKind::StockMovement => &STOCK_MOVEMENT,
            EntityKind::Requisition => &REQUISITION,
            EntityKind::StockMin => &STOCK_MIN,
            EntityKind::ContactLog => &crate::contact::CONTACT_LOG,
        }
    }
}

impl std::fmt::Display for EntityKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Engineer,
    Dispatcher,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Engineer => "engineer",
            Role::Dispatcher => "dispatcher",
            Role::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "engineer" => Some(Role::Engineer),
            "dispatcher" => Some(Role::Dispatcher),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// Who may write a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// Assignment, schedule, priority, links, SLA terms: dispatchers and admins.
    Dispatcher,
    /// Progress, arrival, resolution, signature: the engineer doing the work (and admins).
    Engineer,
    /// Description and similar: anyone with access to the record.
    Shared,
    /// Written only by the server itself (conflict records, user profiles).
    System,
}

impl Owner {
    pub fn allows(self, role: Role) -> bool {
        match (self, role) {
            (Owner::System, _) => false,
            (_, Role::Admin) => true,
            (Owner::Shared, _) => true,
            (Owner::Dispatcher, Role::Dispatcher) => true,
            (Owner::Engineer, Role::Engineer) => true,
            _ => false,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum FieldType {
    Text {
        max_chars: usize,
    },
    Int {
        min: i64,
        max: i64,
    },
    Number,
    Bool,
    /// Unix milliseconds.
    Time,
    Enum(&'static [&'static str]),
    Ref(EntityKind),
    /// A content hash of a blob (lowercase hex SHA-256).
    BlobHash,
    /// The last component of a path as the device knew it: never `.`/`..`, no `/`, `\\`
    /// or control characters, so nothing that reads it can mistake it for a path.
    FileName {
        max_chars: usize,
    },
    /// Arbitrary JSON; only for system-owned fields.
    Json,
    /// A contract's SLA terms: calendar and priority × tier matrix (`sla::SlaTerms`).
    SlaTerms,
    /// Time intervals `[[from_ms, to_ms or null], …]`, oldest first, at most `max`: when
    /// an order was on hold.
    Intervals {
        max: usize,
    },
}

#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: FieldType,
    pub owner: Owner,
    /// Must be present in the create op.
    pub required: bool,
    /// For append-only kinds: may still change after creation (e.g. `voided`).
    pub mutable: bool,
}

/// Who may create entities of a kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Creators {
    /// Dispatchers and admins.
    Office,
    /// Anyone with access to the parent work order.
    OrderParticipants,
    /// Only the server.
    System,
    /// The office, and an engineer for their own van: `stock::check_located` decides
    /// against the locations the record names.
    Located,
}

#[derive(Debug)]
pub struct KindSpec {
    pub kind: EntityKind,
    pub fields: &'static [FieldSpec],
    /// Records that only grow (notes, parts used): created once, never edited except the
    /// fields marked `mutable`, so they cannot conflict.
    pub append_only: bool,
    pub creators: Creators,
    /// The field that links a child record to its work order, if any.
    pub order_link: Option<&'static str>,
}

impl KindSpec {
    pub fn field(&self, name: &str) -> Option<&'static FieldSpec> {
        self.fields.iter().find(|f| f.name == name)
    }
}

pub(crate) const fn f(name: &'static str, ty: FieldType, owner: Owner) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        owner,
        required: false,
        mutable: true,
    }
}

pub(crate) const fn req(name: &'static str, ty: FieldType, owner: Owner) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        owner,
        required: true,
        mutable: true,
    }
}

/// A field of an append-only record, fixed at creation.
pub(crate) const fn fixed(
    name: &'static str,
    ty: FieldType,
    owner: Owner,
    required: bool,
) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        owner,
        required,
        mutable: false,
    }
}

pub(crate) const TEXT_SHORT: FieldType = FieldType::Text { max_chars: 200 };
pub(crate) const TEXT_LONG: FieldType = FieldType::Text { max_chars: 8_000 };

/// Engineer progress states, in the order work usually moves through them.
pub const STATUSES: &[&str] = &["open", "en-route", "on-site", "on-hold", "completed"];
pub const TIERS: &[&str] = &["standard", "silver", "gold", "platinum"];
pub const ROLES: &[&str] = &["engineer", "dispatcher", "admin"];
/// How a service request reached the dispatcher.
/// `preventive`: generated from a maintenance plan.
pub const CHANNELS: &[&str] = &["phone", "email", "web", "on-site", "preventive"];

pub static WORK_ORDER: KindSpec = KindSpec {
    kind: EntityKind::WorkOrder,
    append_only: false,
    creators: Creators::Office,
    order_link: None,
    fields: &[
        req(
            "description",
            FieldType::Text { max_chars: 4_000 },
            Owner::Shared,
        ),
        req(
            "priority",
            FieldType::Int { min: 1, max: 4 },
            Owner::Dispatcher,
        ),
        f("assignee", TEXT_SHORT, Owner::Dispatcher),
        f(
            "customer_id",
            FieldType::Ref(EntityKind::Customer),
            Owner::Dispatcher,
        ),
        f(
            "site_id",
            FieldType::Ref(EntityKind::Site),
            Owner::Dispatcher,
        ),
        f(
            "asset_id",
            FieldType::Ref(EntityKind::Asset),
            Owner::Dispatcher,
        ),
        f("scheduled_start", FieldType::Time, Owner::Dispatcher),
        f("scheduled_end", FieldType::Time, Owner::Dispatcher),
        f("cancelled", FieldType::Bool, Owner::Dispatcher),
        f("channel", FieldType::Enum(CHANNELS), Owner::Dispatcher),
        // Who reported the fault and how to reach them (name, phone or email).
        f("reporter", TEXT_SHORT, Owner::Dispatcher),
        // The plan that generated this order (channel `preventive`).
        f(
            "maintenance_plan_id",
            FieldType::Ref(EntityKind::MaintenancePlan),
            Owner::Dispatcher,
        ),
        f("status", FieldType::Enum(STATUSES), Owner::Engineer),
        f(
            "resolution",
            FieldType::Text { max_chars: 4_000 },
            Owner::Engineer,
        ),
        f("fault_code", TEXT_SHORT, Owner::Engineer),
        // SLA: the contract in force, set at intake with the deadlines it gives (no pauses
        // counted yet; the live clocks are `sla::order::order_sla`).
        f(
            "contract_id",
            FieldType::Ref(EntityKind::Contract),
            Owner::Dispatcher,
        ),
        f("reported_at", FieldType::Time, Owner::Dispatcher),
        f("response_due", FieldType::Time, Owner::Dispatcher),
        f("arrival_due", FieldType::Time, Owner::Dispatcher),
        f("resolution_due", FieldType::Time, Owner::Dispatcher),
        f("responded_at", FieldType::Time, Owner::Engineer),
        f(
            "holds",
            FieldType::Intervals {
                max: crate::sla::order::HOLDS_MAX,
            },
            Owner::Engineer,
        ),
        f("arrived_at", FieldType::Time, Owner::Engineer),
        f("completed_at", FieldType::Time, Owner::Engineer),
        f("signature", FieldType::BlobHash, Owner::Engineer),
        // Service report (issue 5): which checklist applies, and why the fault happened.
        f(
            "work_type",
            FieldType::Enum(crate::report::schema::WORK_TYPES),
            Owner::Dispatcher,
        ),
        f(
            "root_cause",
            FieldType::Text { max_chars: 4_000 },
            Owner::Engineer,
        ),
    ],
};

pub static CUSTOMER: KindSpec = KindSpec {
    kind: EntityKind::Customer,
    append_only: false,
    creators: Creators::Office,
    order_link: None,
    fields: &[
        req("name", TEXT_SHORT, Owner::Dispatcher),
        f("tier", FieldType::Enum(TIERS), Owner::Dispatcher),
        f("phone", TEXT_SHORT, Owner::Dispatcher),
        f("email", TEXT_SHORT, Owner::Dispatcher),
        f("address", TEXT_SHORT, Owner::Dispatcher),
        // The people to talk to, one per line: `name | role | phone | email`
        // (`contact::parse_contacts`).
        f(
            "contacts",
            FieldType::Text {
                max_chars: crate::contact::CONTACTS_CHARS_MAX,
            },
            Owner::Dispatcher,
        ),
    ],
};

pub static SITE: KindSpec = KindSpec {
    kind: EntityKind::Site,
    append_only: false,
    creators: Creators::Office,
    order_link: None,
    fields: &[
        req(
            "customer_id",
            FieldType::Ref(EntityKind::Customer),
            Owner::Dispatcher,
        ),
        req("name", TEXT_SHORT, Owner::Dispatcher),
        f("address", TEXT_SHORT, Owner::Dispatcher),
        f("lat", FieldType::Number, Owner::Dispatcher),
        f("lon", FieldType::Number, Owner::Dispatcher),
        f("access_notes", TEXT_LONG, Owner::Shared),
    ],
};

pub static ASSET: KindSpec = KindSpec {
    kind: EntityKind::Asset,
    append_only: false,
    creators: Creators::Office,
    order_link: None,
    fields: &[
        f(
            "customer_id",
            FieldType::Ref(EntityKind::Customer),
            Owner::Dispatcher,
        ),
        f(
            "site_id",
            FieldType::Ref(EntityKind::Site),
            Owner::Dispatcher,
        ),
        req("model", TEXT_SHORT, Owner::Dispatcher),
        f("serial", TEXT_SHORT, Owner::Dispatcher),
        f("install_date", FieldType::Time, Owner::Dispatcher),
        f("warranty_end", FieldType::Time, Owner::Dispatcher),
    ],
};

pub static USER: KindSpec = KindSpec {
    kind: EntityKind::User,
    append_only: false,
    creators: Creators::System,
    order_link: None,
    fields: &[
        req("name", TEXT_SHORT, Owner::System),
        req("role", FieldType::Enum(ROLES), Owner::System),
        f("display_name", TEXT_SHORT, Owner::Dispatcher),
        f("region", TEXT_SHORT, Owner::Dispatcher),
        f("skills", TEXT_SHORT, Owner::Dispatcher),
    ],
};

pub static NOTE: KindSpec = KindSpec {
    kind: EntityKind::Note,
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
        fixed("text", TEXT_LONG, Owner::Shared, true),
        f("voided", FieldType::Bool, Owner::Shared),
    ],
};

pub static PART_USAGE: KindSpec = KindSpec {
    kind: EntityKind::PartUsage,
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
            "sku",
            FieldType::Text { max_chars: 64 },
            Owner::Shared,
            true,
        ),
        fixed(
            "qty",
            FieldType::Int {
                min: 1,
                max: 100_000,
            },
            Owner::Shared,
            true,
        ),
        f("voided", FieldType::Bool, Owner::Shared),
    ],
};

/// The file types a photo record may hold: camera formats, and PDF for scanned paperwork.
pub const PHOTO_MIMES: &[&str] = &["image/jpeg", "image/png", "image/heic", "application/pdf"];

/// A photo (or scanned document) attached to a work order. Grow-only like a note: the
/// bytes live in blob stores under `hash`, and this record is what syncs and lists them.
pub static PHOTO: KindSpec = KindSpec {
    kind: EntityKind::Photo,
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
        fixed("hash", FieldType::BlobHash, Owner::Shared, true),
        fixed(
            "size",
            FieldType::Int {
                min: 1,
                max: crate::limits::PHOTO_SIZE_FIELD_MAX,
            },
            Owner::Shared,
            true,
        ),
        fixed("mime", FieldType::Enum(PHOTO_MIMES), Owner::Shared, true),
        fixed(
            "name",
            FieldType::FileName { max_chars: 255 },
            Owner::Shared,
            false,
        ),
        fixed(
            "caption",
            FieldType::Text { max_chars: 1_000 },
            Owner::Shared,
            false,
        ),
        // Capture time and position from the file's EXIF data, when it has them.
        fixed("taken_at", FieldType::Time, Owner::Shared, false),
        fixed("lat", FieldType::Number, Owner::Shared, false),
        fixed("lon", FieldType::Number, Owner::Shared, false),
        f("voided", FieldType::Bool, Owner::Shared),
    ],
};

/// A catalog part: what a part usage's `sku` names. Stock is not a field: it is derived
/// from movements (DESIGN), which arrive with van stock.
pub static PART: KindSpec = KindSpec {
    kind: EntityKind::Part,
    append_only: false,
    creators: Creators::Office,
    order_link: None,
    fields: &[
        req("sku", FieldType::Text { max_chars: 64 }, Owner::Dispatcher),
        req("name", TEXT_SHORT, Owner::Dispatcher),
        // In the organisation's currency, per unit.
        f("unit_cost", FieldType::Number, Owner::Dispatcher),
        // Each unit has a serial number that a usage or return must name.
        f("serial_tracked", FieldType::Bool, Owner::Dispatcher),
        f("discontinued", FieldType::Bool, Owner::Dispatcher),
    ],
};

/// A knowledge-base article, in Markdown, searchable offline on every engineer's laptop
/// (`fieldsync kb search`). `models` and `fault_codes` (comma-separated) say which assets
/// and faults it is about, so an order can suggest it.
pub static KB_ARTICLE: KindSpec = KindSpec {
    kind: EntityKind::KbArticle,
    append_only: false,
    creators: Creators::Office,
    order_link: None,
    fields: &[
        req("title", TEXT_SHORT, Owner::Dispatcher),
        req(
            "body",
            FieldType::Text { max_chars: 100_000 },
            Owner::Dispatcher,
        ),
        f("tags", TEXT_SHORT, Owner::Dispatcher),
        f("models", TEXT_LONG, Owner::Dispatcher),
        f("fault_codes", TEXT_LONG, Owner::Dispatcher),
        f("retired", FieldType::Bool, Owner::Dispatcher),
    ],
};

/// A preventive-maintenance plan on an asset: the server generates one work order per due
/// date, `lead_days` ahead (see `maintenance.rs`). Office data; engineers see the orders.
pub static MAINTENANCE_PLAN: KindSpec = KindSpec {
    kind: EntityKind::MaintenancePlan,
    append_only: false,
    creators: Creators::Office,
    order_link: None,
    fields: &[
        req("name", TEXT_SHORT, Owner::Dispatcher),
        req(
            "asset_id",
            FieldType::Ref(EntityKind::Asset),
            Owner::Dispatcher,
        ),
        req(
            "interval",
            FieldType::Enum(crate::maintenance::INTERVALS),
            Owner::Dispatcher,
        ),
        req("first_due", FieldType::Time, Owner::Dispatcher),
        f(
            "lead_days",
            FieldType::Int { min: 1, max: 90 },
            Owner::Dispatcher,
        ),
        f("description", TEXT_LONG, Owner::Dispatcher),
        f(
            "priority",
            FieldType::Int { min: 1, max: 4 },
            Owner::Dispatcher,
        ),
        f("assignee", TEXT_SHORT, Owner::Dispatcher),
        f(
            "site_id",
            FieldType::Ref(EntityKind::Site),
            Owner::Dispatcher,
        ),
        f(
            "customer_id",
            FieldType::Ref(EntityKind::Customer),
            Owner::Dispatcher,
        ),
        f("paused", FieldType::Bool, Owner::Dispatcher),
    ],
};

/// A service contract: what it covers (the customer's listed assets and sites, or all of
/// them), when it is valid, its SLA terms and what it includes free. A broadcast kind:
/// every engineer holds the contracts offline to show SLA clocks and billing.
pub static CONTRACT: KindSpec = KindSpec {
    kind: EntityKind::Contract,
    append_only: false,
    creators: Creators::Office,
    order_link: None,
    fields: &[
        req(
            "customer_id",
            FieldType::Ref(EntityKind::Customer),
            Owner::Dispatcher,
        ),
        req("name", TEXT_SHORT, Owner::Dispatcher),
        req("valid_from", FieldType::Time, Owner::Dispatcher),
        req("valid_until", FieldType::Time, Owner::Dispatcher),
        req("sla", FieldType::SlaTerms, Owner::Dispatcher),
        // Comma-separated ids; both empty: everything of the customer's.
        f("asset_ids", TEXT_LONG, Owner::Dispatcher),
        f("site_ids", TEXT_LONG, Owner::Dispatcher),
        f("includes_labour", FieldType::Bool, Owner::Dispatcher),
        f("includes_travel", FieldType::Bool, Owner::Dispatcher),
        f("includes_parts", FieldType::Bool, Owner::Dispatcher),
        f("includes_after_hours", FieldType::Bool, Owner::Dispatcher),
    ],
};

/// Where stock is kept: a warehouse, or a van. Every engineer has one van; a crew of
/// engineers may share one (`engineers`, comma-separated user names). Every engineer holds
/// all locations offline (a requisition names the warehouse it asks from); only the
/// movements of their own van reach them.
pub const LOCATION_TYPES: &[&str] = &["warehouse", "van"];

pub static STOCK_LOCATION: KindSpec = KindSpec {
    kind: EntityKind::StockLocation,
    append_only: false,
    creators: Creators::Office,
    order_link: None,
    fields: &[
        req("name", TEXT_SHORT, Owner::Dispatcher),
        req("type", FieldType::Enum(LOCATION_TYPES), Owner::Dispatcher),
        f("engineers", TEXT_SHORT, Owner::Dispatcher),
        f("retired", FieldType::Bool, Owner::Dispatcher),
    ],
};

/// How stock moves. Stock is never a stored number: it is derived from these records
/// (`stock::derive`), so two engineers consuming offline add up instead of overwriting.
pub const MOVEMENT_TYPES: &[&str] = &["receipt", "transfer", "consumption", "rma"];
/// Units in one movement or requisition.
pub const STOCK_QTY_MAX: i64 = 100_000;
const STOCK_QTY: FieldType = FieldType::Int {
    min: 1,
    max: STOCK_QTY_MAX,
};

/// One movement of stock, created once and never edited (a mistake is voided and
/// recorded again). Consumption on an order is a movement from the engineer's van with
/// `order_id`: the one record of a part used (`part_usage` is the older, stockless form).
pub static STOCK_MOVEMENT: KindSpec = KindSpec {
    kind: EntityKind::StockMovement,
    append_only: true,
    creators: Creators::Located,
    order_link: None,
    fields: &[
        fixed("type", FieldType::Enum(MOVEMENT_TYPES), Owner::Shared, true),
        fixed(
            "part_id",
            FieldType::Ref(EntityKind::Part),
            Owner::Shared,
            true,
        ),
        fixed("qty", STOCK_QTY, Owner::Shared, true),
        fixed(
            "from_location",
            FieldType::Ref(EntityKind::StockLocation),
            Owner::Shared,
            false,
        ),
        fixed(
            "to_location",
            FieldType::Ref(EntityKind::StockLocation),
            Owner::Shared,
            false,
        ),
        fixed(
            "order_id",
            FieldType::Ref(EntityKind::WorkOrder),
            Owner::Shared,
            false,
        ),
        fixed(
            "serial",
            FieldType::Text { max_chars: 64 },
            Owner::Shared,
            false,
        ),
        fixed(
            "requisition_id",
            FieldType::Ref(EntityKind::Requisition),
            Owner::Dispatcher,
            false,
        ),
        fixed(
            "note",
            FieldType::Text { max_chars: 1_000 },
            Owner::Shared,
            false,
        ),
        f("voided", FieldType::Bool, Owner::Shared),
    ],
};

/// A dispatcher's decision on a requisition; absent while it waits.
pub const REQUISITION_STATUSES: &[&str] = &["approved", "rejected"];

/// An engineer's request for parts into their van, made offline. A dispatcher approves
/// it in the console, which records a transfer movement warehouse -> van, or rejects it.
pub static REQUISITION: KindSpec = KindSpec {
    kind: EntityKind::Requisition,
    append_only: true,
    creators: Creators::Located,
    order_link: None,
    fields: &[
        fixed(
            "part_id",
            FieldType::Ref(EntityKind::Part),
            Owner::Shared,
            true,
        ),
        fixed("qty", STOCK_QTY, Owner::Shared, true),
        fixed(
            "van_id",
            FieldType::Ref(EntityKind::StockLocation),
            Owner::Shared,
            true,
        ),
        fixed(
            "from_location",
            FieldType::Ref(EntityKind::StockLocation),
            Owner::Shared,
            false,
        ),
        fixed(
            "order_id",
            FieldType::Ref(EntityKind::WorkOrder),
            Owner::Shared,
            false,
        ),
        fixed(
            "note",
            FieldType::Text { max_chars: 1_000 },
            Owner::Shared,
            false,
        ),
        f(
            "status",
            FieldType::Enum(REQUISITION_STATUSES),
            Owner::Dispatcher,
        ),
        f("decided_by", TEXT_SHORT, Owner::Dispatcher),
        f("decision_note", TEXT_SHORT, Owner::Dispatcher),
        f(
            "transfer_id",
            FieldType::Ref(EntityKind::StockMovement),
            Owner::Dispatcher,
        ),
    ],
};

/// The low-stock threshold of one part at one location. Its id is derived from the pair
/// (`stock::min_id`), so setting it twice edits one record instead of making two.
pub static STOCK_MIN: KindSpec = KindSpec {
    kind: EntityKind::StockMin,
    append_only: false,
    creators: Creators::Office,
    order_link: None,
    fields: &[
        fixed(
            "location_id",
            FieldType::Ref(EntityKind::StockLocation),
            Owner::Dispatcher,
            true,
        ),
        fixed(
            "part_id",
            FieldType::Ref(EntityKind::Part),
            Owner::Dispatcher,
            true,
        ),
        req(
            "min_qty",
            FieldType::Int {
                min: 0,
                max: 1_000_000,
            },
            Owner::Dispatcher,
        ),
    ],
};

/// A recorded concurrent same-field write. Created by the server; resolved by a
/// dispatcher, whose resolution is itself an op and so reaches the agents.
pub static CONFLICT: KindSpec = KindSpec {
    kind: EntityKind::Conflict,
    append_only: false,
    creators: Creators::System,
    order_link: Some("order_id"),
    fields: &[
        req(
            "order_id",
            FieldType::Ref(EntityKind::WorkOrder),
            Owner::System,
        ),
        req("entity_kind", TEXT_SHORT, Owner::System),
        req("entity_id", TEXT_SHORT, Owner::System),
        req("field", TEXT_SHORT, Owner::System),
        req("winner", FieldType::Json, Owner::System),
        req("loser", FieldType::Json, Owner::System),
        f("resolved", FieldType::Bool, Owner::Dispatcher),
        f("resolution", FieldType::Json, Owner::Dispatcher),
        f("resolved_by", TEXT_SHORT, Owner::Dispatcher),
    ],
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_its_name() {
        for k in EntityKind::ALL {
            assert_eq!(EntityKind::parse(k.as_str()), Some(k));
            assert_eq!(k.spec().kind, k);
            let json = serde_json::to_string(&k).unwrap();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
    }

    #[test]
    fn ownership_table() {
        assert!(!Owner::Dispatcher.allows(Role::Engineer));
        assert!(Owner::Dispatcher.allows(Role::Dispatcher));
        assert!(!Owner::Engineer.allows(Role::Dispatcher));
        assert!(Owner::Engineer.allows(Role::Engineer));
        assert!(Owner::Shared.allows(Role::Engineer));
        assert!(!Owner::System.allows(Role::Admin));
    }
}
