//! `fieldsync-server import KIND FILE.csv`: move customers, sites, assets, the parts
//! catalog and open work orders off an old system. The header names the entity's fields (plus an optional `id`);
//! each row becomes the server's own create op, so it syncs and shows in the timeline like
//! any console write. A file goes in whole or not at all: every row is checked, every
//! problem is reported with its row and line, and one bad row imports nothing.

use std::collections::BTreeMap;
use std::path::Path;

use fieldsync_proto::schema::{FieldSpec, FieldType, KindSpec};
use fieldsync_proto::sla::Date;
use fieldsync_proto::validate::validate_op;
use fieldsync_proto::{EntityId, EntityKind, Hlc, Op, OpKind, Role};
use rand::RngCore;
use serde_json::Value;

use crate::store::{Actor, ServerWrite, Store, StoreError};

/// Rows one import may hold: one transaction, so bounded.
pub const IMPORT_ROWS_MAX: usize = 200_000;
/// Problems listed before the rest are only counted.
const PROBLEMS_SHOWN_MAX: usize = 200;

/// What can be imported, by the name the command takes.
pub const KINDS: &[(&str, EntityKind)] = &[
    ("customers", EntityKind::Customer),
    ("sites", EntityKind::Site),
    ("assets", EntityKind::Asset),
    ("work-orders", EntityKind::WorkOrder),
    ("parts", EntityKind::Part),
    // Checklists per work type; `items` is a quoted multi-line cell, one item per line.
    ("checklist-templates", EntityKind::ChecklistTemplate),
    // Opening stock from an old system is a receipt per part and location, so the
    // figures stay derived from movements.
    ("stock-locations", EntityKind::StockLocation),
    ("stock-movements", EntityKind::StockMovement),
];

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Header(String),
    #[error("{} problem(s); nothing was imported:\n{}", .0.len(), show(.0))]
    Rows(Vec<String>),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn show(problems: &[String]) -> String {
    let mut out: Vec<String> = problems
        .iter()
        .take(PROBLEMS_SHOWN_MAX)
        .map(|p| format!("  {p}"))
        .collect();
    if problems.len() > PROBLEMS_SHOWN_MAX {
        out.push(format!(
            "  … and {} more",
            problems.len() - PROBLEMS_SHOWN_MAX
        ));
    }
    out.join("\n")
}

pub fn kind_named(name: &str) -> Option<EntityKind> {
    KINDS.iter().find(|(n, _)| *n == name).map(|(_, k)| *k)
}

/// Where a row came from, as people count: data row and line in the file.
#[derive(Clone, Copy)]
struct At {
    row: usize,
    line: u64,
}

impl std::fmt::Display for At {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "row {} (line {})", self.row, self.line)
    }
}

/// A cell as the field's JSON value; `Ok(None)` for an empty cell.
fn cell_value(spec: &FieldSpec, cell: &str) -> Result<Option<Value>, String> {
    let cell = cell.trim();
    if cell.is_empty() {
        return Ok(None);
    }
    let v = match spec.ty {
        FieldType::Int { .. } => Value::from(
            cell.parse::<i64>()
                .map_err(|_| format!("{}: {cell:?} is not a whole number", spec.name))?,
        ),
        FieldType::Number => {
            let n: f64 = cell
                .parse()
                .map_err(|_| format!("{}: {cell:?} is not a number", spec.name))?;
            serde_json::Number::from_f64(n)
                .map(Value::Number)
                .ok_or_else(|| format!("{}: {cell:?} is not a finite number", spec.name))?
        }
        FieldType::Bool => Value::Bool(match cell.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => true,
            "false" | "no" | "0" => false,
            _ => return Err(format!("{}: {cell:?} is not yes/no", spec.name)),
        }),
        FieldType::Time => Value::from(parse_time(cell).ok_or_else(|| {
            format!(
                "{}: {cell:?} is not a time (YYYY-MM-DD, YYYY-MM-DD HH:MM in UTC, or Unix ms)",
                spec.name
            )
        })?),
        FieldType::Json => return Err(format!("{} is set by the server only", spec.name)),
        FieldType::SlaTerms | FieldType::Intervals { .. } => {
            serde_json::from_str(cell).map_err(|e| format!("{}: not JSON: {e}", spec.name))?
        }
        _ => Value::String(cell.to_owned()),
    };
    Ok(Some(v))
}

/// `YYYY-MM-DD`, `YYYY-MM-DD HH:MM` or `YYYY-MM-DDTHH:MM[:SS][Z]` in UTC, or Unix ms.
fn parse_time(s: &str) -> Option<u64> {
    if let Ok(ms) = s.parse::<u64>() {
        return Some(ms);
    }
    let (date, time) = match s.split_once([' ', 'T']) {
        Some((d, t)) => (d, Some(t.trim_end_matches('Z'))),
        None => (s, None),
    };
    let days = Date::parse(date)?.days_since_epoch();
    let mut secs = 0i64;
    if let Some(t) = time {
        let mut parts = t.split(':');
        let h: i64 = parts.next()?.parse().ok()?;
        let m: i64 = parts.next()?.parse().ok()?;
        let sec: i64 = parts.next().map_or(Some(0), |x| x.parse().ok())?;
        if parts.next().is_some() || h > 23 || m > 59 || sec > 59 {
            return None;
        }
        secs = h * 3600 + m * 60 + sec;
    }
    u64::try_from((days * 86_400 + secs) * 1_000).ok()
}

/// The header's columns as fields of `spec`, or the columns `id` (at most once).
fn columns(
    spec: &'static KindSpec,
    header: &csv::StringRecord,
) -> Result<Vec<Option<&'static FieldSpec>>, ImportError> {
    let mut seen = std::collections::BTreeSet::new();
    let mut cols = Vec::new();
    for name in header.iter().map(str::trim) {
        if !seen.insert(name.to_owned()) {
            return Err(ImportError::Header(format!(
                "column {name:?} appears twice"
            )));
        }
        if name == "id" {
            cols.push(None);
            continue;
        }
        let field = spec
            .field(name)
            .filter(|f| !matches!(f.ty, FieldType::Json));
        cols.push(Some(field.ok_or_else(|| {
            let known: Vec<&str> = spec.fields.iter().map(|f| f.name).collect();
            ImportError::Header(format!(
                "column {name:?} is not a field of {}: use id, {}",
                spec.kind,
                known.join(", ")
            ))
        })?));
    }
    for f in spec.fields.iter().filter(|f| f.required) {
        if !seen.contains(f.name) {
            return Err(ImportError::Header(format!(
                "the header lacks the required column {:?}",
                f.name
            )));
        }
    }
    Ok(cols)
}

/// Import `file` as entities of `kind` through `store`, as `actor`. Returns how many rows
/// were imported; any problem imports nothing.
pub fn import(
    store: &dyn Store,
    actor: &Actor,
    kind: EntityKind,
    file: &Path,
    now_ms: u64,
) -> Result<usize, ImportError> {
    let read = |source| ImportError::Read {
        path: file.display().to_string(),
        source,
    };
    let mut reader = csv::ReaderBuilder::new()
        .flexible(false)
        .from_reader(std::fs::File::open(file).map_err(read)?);
    let header = reader
        .headers()
        .map_err(|e| ImportError::Header(format!("reading the header: {e}")))?
        .clone();
    let spec = kind.spec();
    let cols = columns(spec, &header)?;
    let mut problems = Vec::new();
    let mut writes = Vec::new();
    let mut places = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let at = At {
            row: i + 1,
            line: 0,
        };
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                problems.push(format!(
                    "{}: {e}",
                    At {
                        line: e.position().map_or(0, |p| p.line()),
                        ..at
                    }
                ));
                continue;
            }
        };
        let at = At {
            line: record.position().map_or(0, |p| p.line()),
            ..at
        };
        if writes.len() + problems.len() >= IMPORT_ROWS_MAX {
            problems.push(format!(
                "{at}: more than {IMPORT_ROWS_MAX} rows; split the file"
            ));
            break;
        }
        match row_write(spec, &cols, &record, now_ms) {
            Ok(w) => {
                writes.push(w);
                places.push(at);
            }
            Err(e) => problems.push(format!("{at}: {e}")),
        }
    }
    if !problems.is_empty() {
        return Err(ImportError::Rows(problems));
    }
    let n = writes.len();
    let refused = store.import(actor, writes, now_ms)?;
    if !refused.is_empty() {
        return Err(ImportError::Rows(
            refused
                .into_iter()
                .map(|(i, e)| format!("{}: {} ({})", places[i], e.message, e.code))
                .collect(),
        ));
    }
    Ok(n)
}

fn row_write(
    spec: &'static KindSpec,
    cols: &[Option<&'static FieldSpec>],
    record: &csv::StringRecord,
    now_ms: u64,
) -> Result<ServerWrite, String> {
    let mut fields = BTreeMap::new();
    let mut id = None;
    for (col, cell) in cols.iter().zip(record.iter()) {
        match col {
            None if !cell.trim().is_empty() => {
                let given = EntityId(cell.trim().to_owned());
                if !EntityId::is_valid(&given.0) {
                    return Err(format!(
                        "id {:?}: use 1-64 letters, digits, - or _",
                        given.0
                    ));
                }
                id = Some(given);
            }
            None => {}
            Some(field) => {
                if let Some(v) = cell_value(field, cell)? {
                    fields.insert(field.name.to_owned(), v);
                }
            }
        }
    }
    let id = id.unwrap_or_else(|| {
        let mut random = [0u8; 10];
        rand::thread_rng().fill_bytes(&mut random);
        EntityId::generate(now_ms, random)
    });
    // The same checks the server makes on every op, before anything is written, so a
    // file's problems are all reported at once.
    let op = Op {
        seq: 1,
        kind: spec.kind,
        id: id.clone(),
        hlc: Hlc::from_millis(now_ms),
        op: OpKind::Create,
        fields: fields.clone(),
        base: BTreeMap::new(),
    };
    validate_op(&op, Role::Dispatcher).map_err(|e| e.message)?;
    Ok(ServerWrite {
        kind: spec.kind,
        id,
        create: true,
        fields,
        base: BTreeMap::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_the_forms_old_systems_export() {
        assert_eq!(parse_time("1970-01-02"), Some(86_400_000));
        assert_eq!(parse_time("1970-01-01 01:02"), Some(3_720_000));
        assert_eq!(parse_time("1970-01-01T00:00:05Z"), Some(5_000));
        assert_eq!(parse_time("1700000000000"), Some(1_700_000_000_000));
        assert_eq!(parse_time("2026-02-30"), None);
        assert_eq!(parse_time("2026-01-01 24:00"), None);
        assert_eq!(parse_time("soon"), None);
    }
}
