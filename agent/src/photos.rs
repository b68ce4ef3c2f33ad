//! Photos on the agent: what may be imported (magic bytes, completeness), what the file
//! says about itself (EXIF capture time and GPS), the import into the blob store with the
//! photo record written in the same transaction as its bookkeeping, and the listing
//! `fieldsync photos` shows.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use fieldsync_proto::schema::{FieldSpec, FieldType, Owner};
use fieldsync_proto::validate::check_value;
use fieldsync_proto::{EntityId, EntityKind, OpKind};
use rusqlite::{params, OptionalExtension};
use serde::Serialize;
use serde_json::{json, Value};

use crate::blob::BlobStore;
use crate::error::{AgentError, Result};
use crate::store::Store;

use fieldsync_proto::media::SNIFF_BYTES;

/// How far from the end a PDF's `%%EOF` may be (writers add a newline or two, some more).
const PDF_EOF_SCAN_BYTES: u64 = 1024;

/// What a photo file is, by its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Jpeg,
    Png,
    Heic,
    Pdf,
}

impl Kind {
    pub fn mime(self) -> &'static str {
        match self {
            Kind::Jpeg => "image/jpeg",
            Kind::Png => "image/png",
            Kind::Heic => "image/heic",
            Kind::Pdf => "application/pdf",
        }
    }
}

/// The allowlist: JPEG, PNG, HEIC, PDF, recognised by content, never by file name.
pub fn sniff(head: &[u8]) -> Option<Kind> {
    match fieldsync_proto::media::sniff(head)? {
        "image/jpeg" => Some(Kind::Jpeg),
        "image/png" => Some(Kind::Png),
        "image/heic" => Some(Kind::Heic),
        "application/pdf" => Some(Kind::Pdf),
        _ => None,
    }
}

fn describe_head(head: &[u8]) -> String {
    if head.is_empty() {
        return "it is empty".into();
    }
    let printable = head
        .iter()
        .take(8)
        .all(|b| b.is_ascii_graphic() || *b == b' ');
    if printable {
        format!(
            "it starts with {:?}",
            String::from_utf8_lossy(&head[..head.len().min(8)])
        )
    } else {
        format!(
            "it starts with bytes {}",
            hex::encode(&head[..head.len().min(8)])
        )
    }
}

fn read_tail(f: &mut File, len: u64, n: u64) -> std::io::Result<Vec<u8>> {
    let n = n.min(len);
    f.seek(SeekFrom::Start(len - n))?;
    let mut buf = vec![0u8; n as usize];
    f.read_exact(&mut buf)?;
    Ok(buf)
}

/// Whether the file's own structure says it is whole: a JPEG ends with its end-of-image
/// marker, a PNG with its IEND chunk, a PDF with `%%EOF`, and a HEIC's top-level boxes
/// add up to its length. A file still being written fails this even when its size
/// happens to pause.
pub fn looks_complete(f: &mut File, kind: Kind) -> std::io::Result<bool> {
    let len = f.metadata()?.len();
    let ok = match kind {
        Kind::Jpeg => {
            let tail = read_tail(f, len, 2)?;
            tail == [0xff, 0xd9]
        }
        Kind::Png => {
            let tail = read_tail(f, len, 12)?;
            tail == *b"\0\0\0\0IEND\xaeB`\x82"
        }
        Kind::Pdf => {
            let tail = read_tail(f, len, PDF_EOF_SCAN_BYTES)?;
            tail.windows(5).any(|w| w == b"%%EOF")
        }
        Kind::Heic => {
            let mut pos = 0u64;
            let mut whole = false;
            while pos + 8 <= len {
                f.seek(SeekFrom::Start(pos))?;
                let mut hdr = [0u8; 16];
                f.read_exact(&mut hdr[..8])?;
                let size32 = u32::from_be_bytes(hdr[..4].try_into().expect("4 bytes")) as u64;
                let size = match size32 {
                    // "Extends to the end of the file": nothing to check it against.
                    0 => {
                        whole = true;
                        break;
                    }
                    1 => {
                        if pos + 16 > len {
                            break;
                        }
                        f.read_exact(&mut hdr[8..16])?;
                        u64::from_be_bytes(hdr[8..16].try_into().expect("8 bytes"))
                    }
                    s => s,
                };
                if size < 8 {
                    break;
                }
                pos += size;
                if pos == len {
                    whole = true;
                }
            }
            whole
        }
    };
    f.seek(SeekFrom::Start(0))?;
    Ok(ok)
}

/// What the file's EXIF data says, when it has any.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Exif {
    /// Capture time, Unix ms. Cameras record local time; with no offset recorded
    /// (`OffsetTimeOriginal`) it is taken as UTC.
    pub taken_at: Option<u64>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
}

fn exif_datetime(ex: &exif::Exif, tag: exif::Tag, offset_tag: exif::Tag) -> Option<u64> {
    let field = ex.get_field(tag, exif::In::PRIMARY)?;
    let exif::Value::Ascii(ref v) = field.value else {
        return None;
    };
    let mut dt = exif::DateTime::from_ascii(v.first()?).ok()?;
    if let Some(off) = ex.get_field(offset_tag, exif::In::PRIMARY) {
        if let exif::Value::Ascii(ref o) = off.value {
            if let Some(o) = o.first() {
                let _ = dt.parse_offset(o);
            }
        }
    }
    let month = time::Month::try_from(dt.month).ok()?;
    let date = time::Date::from_calendar_date(dt.year as i32, month, dt.day).ok()?;
    let t = time::Time::from_hms(dt.hour, dt.minute, dt.second).ok()?;
    let offset =
        time::UtcOffset::from_whole_seconds(dt.offset.map(i32::from).unwrap_or(0) * 60).ok()?;
    let at = time::PrimitiveDateTime::new(date, t).assume_offset(offset);
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

fn exif_degrees(ex: &exif::Exif, tag: exif::Tag, ref_tag: exif::Tag, neg: u8) -> Option<f64> {
    let field = ex.get_field(tag, exif::In::PRIMARY)?;
    let exif::Value::Rational(ref r) = field.value else {
        return None;
    };
    if r.len() < 3 || r.iter().take(3).any(|x| x.denom == 0) {
        return None;
    }
    let deg = r[0].to_f64() + r[1].to_f64() / 60.0 + r[2].to_f64() / 3600.0;
    let negative = match ex.get_field(ref_tag, exif::In::PRIMARY).map(|f| &f.value) {
        Some(exif::Value::Ascii(v)) => v.first().and_then(|s| s.first()) == Some(&neg),
        _ => false,
    };
    let deg = if negative { -deg } else { deg };
    deg.is_finite().then_some(deg)
}

/// Capture time and position, best effort: a photo without EXIF, or with broken EXIF, is
/// still a photo.
pub fn read_exif(f: &mut File, kind: Kind) -> Exif {
    if kind == Kind::Pdf {
        return Exif::default();
    }
    let parsed = {
        let mut r = BufReader::new(&mut *f);
        exif::Reader::new().read_from_container(&mut r)
    };
    let _ = f.seek(SeekFrom::Start(0));
    let Ok(ex) = parsed else {
        return Exif::default();
    };
    let taken_at = exif_datetime(
        &ex,
        exif::Tag::DateTimeOriginal,
        exif::Tag::OffsetTimeOriginal,
    )
    .or_else(|| exif_datetime(&ex, exif::Tag::DateTime, exif::Tag::OffsetTime));
    let lat = exif_degrees(&ex, exif::Tag::GPSLatitude, exif::Tag::GPSLatitudeRef, b'S')
        .filter(|d| (-90.0..=90.0).contains(d));
    let lon = exif_degrees(
        &ex,
        exif::Tag::GPSLongitude,
        exif::Tag::GPSLongitudeRef,
        b'W',
    )
    .filter(|d| (-180.0..=180.0).contains(d));
    let (lat, lon) = match (lat, lon) {
        (Some(a), Some(b)) => (Some(a), Some(b)),
        _ => (None, None),
    };
    Exif { taken_at, lat, lon }
}

/// A photo attached to an order.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attached {
    pub id: String,
    pub order_id: String,
    pub hash: String,
    pub size: u64,
    pub mime: &'static str,
    pub taken_at: Option<u64>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// False when this order already had a photo with the same bytes.
    pub new: bool,
}

/// Why a file is not imported: permanent for this file as it is now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refused(pub String);

/// The file name worth keeping on the record: the last path component, when it is a
/// valid name (the schema refuses anything that could be read as a path).
fn record_name(path: &Path) -> Option<String> {
    const NAME: FieldSpec = FieldSpec {
        name: "name",
        ty: FieldType::FileName { max_chars: 255 },
        owner: Owner::Shared,
        required: false,
        mutable: false,
    };
    let name = path.file_name()?.to_string_lossy().into_owned();
    check_value(&NAME, &json!(name)).ok().map(|_| name)
}

fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
}

/// Check a file against the allowlist and size limit without importing it. `Ok(Err)` is a
/// refusal; the file's type on success.
pub fn check_file(
    path: &Path,
    size_max: u64,
) -> Result<std::result::Result<(File, Kind), Refused>> {
    let refuse = |why: String| Ok(Err(Refused(why)));
    let meta = match std::fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) => return Err(AgentError::Invalid(format!("{}: {e}", path.display()))),
    };
    if !meta.file_type().is_file() {
        return refuse("not a regular file (links and folders are not imported)".into());
    }
    if meta.len() == 0 {
        return refuse("the file is empty".into());
    }
    if meta.len() > size_max {
        return refuse(format!(
            "the file is {}, more than the {} a photo may be",
            mb(meta.len()),
            mb(size_max)
        ));
    }
    let mut f = File::open(path)
        .map_err(|e| AgentError::Invalid(format!("cannot open {}: {e}", path.display())))?;
    let mut head = Vec::with_capacity(SNIFF_BYTES);
    (&mut f)
        .take(SNIFF_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(|e| AgentError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    let Some(kind) = sniff(&head) else {
        return refuse(format!(
            "not a JPEG, PNG, HEIC or PDF file: {} (the name does not matter, the content does)",
            describe_head(&head)
        ));
    };
    f.seek(SeekFrom::Start(0))
        .map_err(|e| AgentError::Invalid(format!("cannot read {}: {e}", path.display())))?;
    Ok(Ok((f, kind)))
}

/// Import an already checked file into the blob store and attach it to `order`. The
/// record's op and this device's bookkeeping (`photos`, `uploads`) commit together.
pub fn attach(
    store: &mut Store,
    blobs: &dyn BlobStore,
    order: &EntityId,
    path: &Path,
    mut file: File,
    kind: Kind,
    caption: Option<&str>,
) -> Result<Attached> {
    let size_before = file
        .metadata()
        .map_err(|e| AgentError::Invalid(format!("{}: {e}", path.display())))?
        .len();
    let exif = read_exif(&mut file, kind);
    let imported = blobs.import(&mut file)?;
    if imported.size != size_before {
        if imported.new {
            let _ = blobs.remove(&imported.hash);
        }
        return Err(AgentError::Invalid(format!(
            "{} changed while it was being imported; try again once it is complete",
            path.display()
        )));
    }
    if let Some(existing) = existing_photo(store, order, &imported.hash)? {
        return Ok(Attached {
            id: existing,
            order_id: order.0.clone(),
            hash: imported.hash,
            size: imported.size,
            mime: kind.mime(),
            taken_at: exif.taken_at,
            lat: exif.lat,
            lon: exif.lon,
            new: false,
        });
    }
    let id = crate::actions::new_id();
    let name = record_name(path);
    let mut fields: BTreeMap<String, Value> = BTreeMap::from([
        ("order_id".to_owned(), json!(order)),
        ("hash".to_owned(), json!(imported.hash)),
        ("size".to_owned(), json!(imported.size)),
        ("mime".to_owned(), json!(kind.mime())),
    ]);
    let mut opt = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            fields.insert(k.to_owned(), v);
        }
    };
    opt("name", name.clone().map(Value::from));
    opt(
        "caption",
        caption.filter(|c| !c.trim().is_empty()).map(Value::from),
    );
    opt("taken_at", exif.taken_at.map(Value::from));
    opt("lat", exif.lat.map(Value::from));
    opt("lon", exif.lon.map(Value::from));
    let source = path.display().to_string();
    let now = now_ms();
    let recorded = store.record_with(
        EntityKind::Photo,
        &id,
        OpKind::Create,
        |_, _| Ok(fields),
        |tx, op| {
            let f = |k: &str| op.fields.get(k).cloned().unwrap_or(Value::Null);
            tx.prepare_cached(
                "INSERT INTO photos (id, order_id, hash, name, caption, mime, size, taken_at, lat, lon, source, imported_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            )?
            .execute(params![
                op.id.as_str(),
                order.as_str(),
                imported.hash,
                f("name").as_str(),
                f("caption").as_str(),
                kind.mime(),
                imported.size as i64,
                f("taken_at").as_u64().map(|t| t as i64),
                f("lat").as_f64(),
                f("lon").as_f64(),
                source,
                now as i64
            ])?;
            // A blob seen before keeps its state: a verified one need not go up again.
            tx.prepare_cached(
                "INSERT INTO uploads (hash, size, state, created_ms) VALUES (?1, ?2, 'local', ?3)
                 ON CONFLICT (hash) DO UPDATE SET local = 1 WHERE uploads.local = 0",
            )?
            .execute(params![imported.hash, imported.size as i64, now as i64])?;
            Ok(())
        },
    );
    if let Err(e) = recorded {
        if imported.new && !hash_in_use(store, &imported.hash)? {
            let _ = blobs.remove(&imported.hash);
        }
        return Err(e);
    }
    clear_refusal(store, path)?;
    Ok(Attached {
        id: id.0,
        order_id: order.0.clone(),
        hash: imported.hash,
        size: imported.size,
        mime: kind.mime(),
        taken_at: exif.taken_at,
        lat: exif.lat,
        lon: exif.lon,
        new: true,
    })
}

/// `fieldsync photo add`: check, import and attach one file. The file itself is left
/// where it is. A refusal is recorded (so `fieldsync photos` shows it) and returned as an
/// error.
pub fn add(
    store: &mut Store,
    blobs: &dyn BlobStore,
    order: &EntityId,
    path: &Path,
    caption: Option<&str>,
    size_max: u64,
) -> Result<Attached> {
    match check_file(path, size_max)? {
        Ok((file, kind)) => attach(store, blobs, order, path, file, kind, caption),
        Err(Refused(why)) => {
            record_refusal(store, path, order.as_str(), &why, false)?;
            Err(AgentError::Invalid(format!(
                "{} refused: {why}; nothing was attached",
                path.display()
            )))
        }
    }
}

fn existing_photo(store: &Store, order: &EntityId, hash: &str) -> Result<Option<String>> {
    Ok(store
        .conn()
        .prepare_cached("SELECT id FROM photos WHERE order_id = ?1 AND hash = ?2")?
        .query_row(params![order.as_str(), hash], |r| r.get(0))
        .optional()?)
}

fn hash_in_use(store: &Store, hash: &str) -> Result<bool> {
    Ok(store
        .conn()
        .prepare_cached("SELECT 1 FROM uploads WHERE hash = ?1")?
        .query_row([hash], |_| Ok(()))
        .optional()?
        .is_some())
}

pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

pub(crate) fn mtime_ms(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Remember why `path` was refused, with its size and mtime so an unchanged file is not
/// examined again (unless `retry`: the refusal is about its folder, which may change).
/// Returns whether this is news (not the same refusal of the same file as before).
pub fn record_refusal(
    store: &Store,
    path: &Path,
    order: &str,
    why: &str,
    retry: bool,
) -> Result<bool> {
    let meta = std::fs::symlink_metadata(path).ok();
    let size = meta.as_ref().map(|m| m.len() as i64).unwrap_or(0);
    let mtime = meta.as_ref().map(|m| mtime_ms(m) as i64).unwrap_or(0);
    let same = store
        .conn()
        .prepare_cached(
            "SELECT 1 FROM photo_refusals WHERE path = ?1 AND reason = ?2 AND size = ?3 AND mtime_ms = ?4",
        )?
        .query_row(params![path.display().to_string(), why, size, mtime], |_| Ok(()))
        .optional()?
        .is_some();
    if same {
        return Ok(false);
    }
    store
        .conn()
        .prepare_cached(
            "INSERT INTO photo_refusals (path, order_id, reason, retry, size, mtime_ms, at_ms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (path) DO UPDATE SET order_id = excluded.order_id, reason = excluded.reason,
               retry = excluded.retry, size = excluded.size, mtime_ms = excluded.mtime_ms,
               at_ms = excluded.at_ms",
        )?
        .execute(params![
            path.display().to_string(),
            order,
            why,
            retry,
            size,
            mtime,
            now_ms() as i64
        ])?;
    Ok(true)
}

pub fn clear_refusal(store: &Store, path: &Path) -> Result<()> {
    store
        .conn()
        .prepare_cached("DELETE FROM photo_refusals WHERE path = ?1")?
        .execute([path.display().to_string()])?;
    Ok(())
}

/// Whether `path` was refused as it is now (same size and mtime) for a reason of its
/// own, and so need not be examined again.
pub fn refused_unchanged(store: &Store, path: &Path, meta: &std::fs::Metadata) -> Result<bool> {
    Ok(store
        .conn()
        .prepare_cached(
            "SELECT 1 FROM photo_refusals WHERE path = ?1 AND size = ?2 AND mtime_ms = ?3
               AND retry = 0",
        )?
        .query_row(
            params![
                path.display().to_string(),
                meta.len() as i64,
                mtime_ms(meta) as i64
            ],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// One line of `fieldsync photos`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PhotoStatus {
    /// The photo record's id; null for a refused file, which has no record.
    pub id: Option<String>,
    pub name: Option<String>,
    pub caption: Option<String>,
    /// Where it was imported from (refused: where it still is).
    pub source: String,
    pub hash: Option<String>,
    pub size: u64,
    pub mime: Option<String>,
    pub taken_at: Option<u64>,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// `local`, `uploading`, `verified` or `refused`.
    pub state: String,
    /// Bytes the server holds, as it last said.
    pub bytes_sent: u64,
    /// Whether this device still has its copy (retention deletes it after verification).
    pub local_copy: bool,
    /// Why it was refused.
    pub reason: Option<String>,
    pub at_ms: u64,
}

/// Every photo this device attached to `order`, oldest first, then the files refused for
/// it.
pub fn list(store: &Store, order: &str) -> Result<Vec<PhotoStatus>> {
    let conn = store.conn();
    let mut stmt = conn.prepare_cached(
        "SELECT p.id, p.name, p.caption, p.source, p.hash, p.size, p.mime, p.taken_at, p.lat, p.lon,
                u.state, u.bytes_sent, u.local, u.error, p.imported_ms,
                o.rejected_code, o.rejected_message
         FROM photos p JOIN uploads u ON u.hash = p.hash
         LEFT JOIN outbox o ON o.kind = 'photo' AND o.id = p.id AND o.rejected_code IS NOT NULL
         WHERE p.order_id = ?1 ORDER BY p.imported_ms, p.id",
    )?;
    let rows = stmt.query_map([order], |r| {
        let rejected: Option<String> = r.get(15)?;
        let state: String = r.get(10)?;
        let (state, reason) = match rejected {
            Some(code) => (
                "refused".to_owned(),
                Some(format!("{} ({code})", r.get::<_, String>(16)?)),
            ),
            None => {
                let err: Option<String> = r.get(13)?;
                let reason = if state == "refused" { err } else { None };
                (state, reason)
            }
        };
        Ok(PhotoStatus {
            id: Some(r.get(0)?),
            name: r.get(1)?,
            caption: r.get(2)?,
            source: r.get(3)?,
            hash: Some(r.get(4)?),
            size: r.get::<_, i64>(5)? as u64,
            mime: Some(r.get(6)?),
            taken_at: r.get::<_, Option<i64>>(7)?.map(|t| t as u64),
            lat: r.get(8)?,
            lon: r.get(9)?,
            state,
            bytes_sent: r.get::<_, i64>(11)? as u64,
            local_copy: r.get(12)?,
            reason,
            at_ms: r.get::<_, i64>(14)? as u64,
        })
    })?;
    let mut out: Vec<PhotoStatus> = rows.collect::<Result<_, _>>()?;
    let mut stmt = conn.prepare_cached(
        "SELECT path, reason, size, at_ms FROM photo_refusals WHERE order_id = ?1 ORDER BY at_ms, path",
    )?;
    let refused = stmt.query_map([order], |r| {
        let path: String = r.get(0)?;
        Ok(PhotoStatus {
            id: None,
            name: Path::new(&path)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned()),
            caption: None,
            source: path,
            hash: None,
            size: r.get::<_, i64>(2)? as u64,
            mime: None,
            taken_at: None,
            lat: None,
            lon: None,
            state: "refused".into(),
            bytes_sent: 0,
            local_copy: true,
            reason: Some(r.get(1)?),
            at_ms: r.get::<_, i64>(3)? as u64,
        })
    })?;
    for r in refused {
        out.push(r?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_is_by_content() {
        assert_eq!(sniff(b"\xff\xd8\xff\xe1\0\0Exif"), Some(Kind::Jpeg));
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some(Kind::Png));
        assert_eq!(sniff(b"%PDF-1.7\n%\xe2\xe3"), Some(Kind::Pdf));
        assert_eq!(sniff(b"\0\0\0\x18ftypheic\0\0\0\0"), Some(Kind::Heic));
        assert_eq!(
            sniff(b"\0\0\0\x18ftypavif\0\0\0\0"),
            None,
            "AVIF is not HEIC"
        );
        assert_eq!(sniff(b"MZ\x90\0\x03\0\0\0"), None, "an .exe renamed .jpg");
        assert_eq!(sniff(b"<html>"), None);
        assert!(describe_head(b"<html><body>").contains("<html>"));
    }

    fn complete(bytes: &[u8], kind: Kind) -> bool {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, bytes).unwrap();
        looks_complete(&mut File::open(&p).unwrap(), kind).unwrap()
    }

    #[test]
    fn half_written_files_do_not_look_complete() {
        let jpeg = [&[0xff, 0xd8, 0xff, 0xe0][..], &[7u8; 100], &[0xff, 0xd9]].concat();
        assert!(complete(&jpeg, Kind::Jpeg));
        assert!(!complete(&jpeg[..60], Kind::Jpeg));
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        png.extend_from_slice(&[1u8; 40]);
        png.extend_from_slice(b"\0\0\0\0IEND\xaeB`\x82");
        assert!(complete(&png, Kind::Png));
        assert!(!complete(&png[..30], Kind::Png));
        assert!(complete(b"%PDF-1.4\n...\n%%EOF\n", Kind::Pdf));
        assert!(!complete(b"%PDF-1.4\n...\n", Kind::Pdf));
        let mut heic = Vec::new();
        heic.extend_from_slice(&24u32.to_be_bytes());
        heic.extend_from_slice(b"ftypheic\0\0\0\0mif1heic");
        heic.extend_from_slice(&16u32.to_be_bytes());
        heic.extend_from_slice(b"mdat12345678");
        assert!(complete(&heic, Kind::Heic));
        assert!(!complete(&heic[..30], Kind::Heic));
    }

    #[test]
    fn names_that_look_like_paths_are_not_kept() {
        assert_eq!(
            record_name(Path::new("/tmp/in/IMG_1.jpg")).as_deref(),
            Some("IMG_1.jpg")
        );
        assert_eq!(record_name(Path::new("/tmp/in/a\u{1}b.jpg")), None);
        assert_eq!(record_name(Path::new("/")), None);
    }
}
