//! The server's content-addressed blob store, under `DATA_DIR/blobs/`:
//!
//! - `sha256/ab/cd/<hash>`: verified blobs. A file appears here only by a rename from
//!   staging after its bytes were fsynced and hashed to exactly its name, so its presence
//!   is the verification. Nothing else is ever written here.
//! - `staging/<name>`: uploads in progress, under names the server draws at random. No
//!   part of any path comes from a client, except the hash, and only after it passed
//!   `is_hash` (64 lowercase hex digits).
//! - `thumbs/ab/<hash>-<px>.jpg`: thumbnails, made on first request.
//! - `index.db`: staged uploads and per-device daily byte counts.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use rand::RngCore;
use rusqlite::{params, Connection, OptionalExtension};
use sha2::{Digest, Sha256};

const MIGRATIONS: &[&str] = &[include_str!("../migrations/blobs/0001_blobs.sql")];
const OBJECTS_DIR: &str = "sha256";
const STAGING_DIR: &str = "staging";
const THUMBS_DIR: &str = "thumbs";
/// Uploads whose running hash is kept in memory between chunks; past this the cache is
/// cleared and hashes are rebuilt from the staged bytes when their upload resumes.
const HASHERS_CACHED_MAX: usize = 1_024;
/// Staged uploads untouched this long are abandoned and deleted at startup.
const STAGING_STALE_MS: u64 = 14 * 24 * 3600 * 1000;
/// Bytes read per step when re-hashing staged bytes or decoding.
const READ_BUFFER_BYTES: usize = 256 * 1024;
/// Decoding a photo for a thumbnail may allocate at most this much: a hostile "image"
/// must not take the server's memory.
const THUMB_DECODE_BYTES_MAX: u64 = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlobStoreError {
    #[error("blob store I/O: {0}")]
    Io(#[from] std::io::Error),
    #[error("blob index: {0}")]
    Db(#[from] rusqlite::Error),
    #[error("not a blob hash")]
    BadHash,
    #[error("thumbnail: {0}")]
    Image(String),
}

impl BlobStoreError {
    pub fn is_disk_full(&self) -> bool {
        match self {
            BlobStoreError::Io(e) => e.raw_os_error() == Some(28),
            BlobStoreError::Db(e) => e.sqlite_error_code() == Some(rusqlite::ErrorCode::DiskFull),
            _ => false,
        }
    }
}

type R<T> = Result<T, BlobStoreError>;

/// 64 lowercase hex digits: the only blob names there are.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// An upload in progress.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Staged {
    pub name: String,
    pub size: u64,
    pub held: u64,
}

pub struct BlobStore {
    root: PathBuf,
    index: Mutex<Connection>,
    locks: Mutex<HashMap<String, Weak<tokio::sync::Mutex<()>>>>,
    hashers: Mutex<HashMap<String, (u64, Sha256)>>,
}

fn sync_dir(dir: &Path) -> R<()> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl BlobStore {
    pub fn open(root: &Path) -> R<BlobStore> {
        for d in [OBJECTS_DIR, STAGING_DIR, THUMBS_DIR] {
            fs::create_dir_all(root.join(d))?;
        }
        let mut conn = Connection::open(root.join("index.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // Progress of unfinished uploads survives a server crash (WAL, NORMAL) but not
        // necessarily a power cut; `staged` and the final hash check catch what a power
        // cut loses, and the device, which keeps its copy until verified, re-sends it.
        // What is verified is durable by fsync (`finish`), not by this database.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        let have: usize = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(have) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", i + 1)?;
            tx.commit()?;
        }
        let store = BlobStore {
            root: root.to_owned(),
            index: Mutex::new(conn),
            locks: Mutex::new(HashMap::new()),
            hashers: Mutex::new(HashMap::new()),
        };
        store.sweep_staging()?;
        Ok(store)
    }

    /// Drop staged files without a row (a crash between creating one and recording it),
    /// rows without a file, and uploads abandoned long ago.
    fn sweep_staging(&self) -> R<()> {
        let conn = self.index.lock().expect("blob index");
        let stale_before = crate::now_ms().saturating_sub(STAGING_STALE_MS) as i64;
        let rows: Vec<(String, String, i64)> = conn
            .prepare("SELECT hash, name, updated_ms FROM staging")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<Result<_, _>>()?;
        let mut keep = std::collections::HashSet::new();
        for (hash, name, updated) in rows {
            let path = self.root.join(STAGING_DIR).join(&name);
            if updated < stale_before || !path.exists() {
                let _ = fs::remove_file(&path);
                conn.execute("DELETE FROM staging WHERE hash = ?1", [&hash])?;
            } else {
                keep.insert(name);
            }
        }
        for entry in fs::read_dir(self.root.join(STAGING_DIR))? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if !keep.contains(&name) {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }

    fn object_path(&self, hash: &str) -> R<PathBuf> {
        if !is_hash(hash) {
            return Err(BlobStoreError::BadHash);
        }
        Ok(self
            .root
            .join(OBJECTS_DIR)
            .join(&hash[0..2])
            .join(&hash[2..4])
            .join(hash))
    }

    pub fn staging_path(&self, staged: &Staged) -> PathBuf {
        self.root.join(STAGING_DIR).join(&staged.name)
    }

    /// A verified blob: its path, size and when it was stored.
    pub fn verified(&self, hash: &str) -> R<Option<(PathBuf, u64, u64)>> {
        let path = self.object_path(hash)?;
        match fs::metadata(&path) {
            Ok(m) => {
                let stored = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_millis() as u64)
                    .unwrap_or(0);
                Ok(Some((path, m.len(), stored)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The upload in progress for `hash`. One whose file holds fewer bytes than its row
    /// says (a power cut before the page cache reached the disk) is thrown away: it
    /// starts again from zero rather than from bytes the server no longer has.
    pub fn staged(&self, hash: &str) -> R<Option<Staged>> {
        let staged = self.staged_row(hash)?;
        if let Some(s) = &staged {
            let len = fs::metadata(self.staging_path(s))
                .map(|m| m.len())
                .unwrap_or(0);
            if len < s.held {
                tracing::warn!(%hash, held = s.held, len, "staged upload lost bytes: restarting it");
                self.discard(hash)?;
                return Ok(None);
            }
        }
        Ok(staged)
    }

    fn staged_row(&self, hash: &str) -> R<Option<Staged>> {
        let conn = self.index.lock().expect("blob index");
        let staged = conn
            .prepare_cached("SELECT name, size, held FROM staging WHERE hash = ?1")?
            .query_row([hash], |r| {
                Ok(Staged {
                    name: r.get(0)?,
                    size: r.get::<_, i64>(1)? as u64,
                    held: r.get::<_, i64>(2)? as u64,
                })
            })
            .optional()?;
        Ok(staged)
    }

    /// Start staging `hash`: an empty file under a fresh random name, and its row.
    pub fn begin(&self, hash: &str, size: u64, device: u32) -> R<Staged> {
        if !is_hash(hash) {
            return Err(BlobStoreError::BadHash);
        }
        let mut n = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut n);
        let staged = Staged {
            name: hex::encode(n),
            size,
            held: 0,
        };
        let path = self.staging_path(&staged);
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        let conn = self.index.lock().expect("blob index");
        let inserted = conn
            .prepare_cached(
                "INSERT INTO staging (hash, name, size, held, device, updated_ms) VALUES (?1, ?2, ?3, 0, ?4, ?5)",
            )?
            .execute(params![hash, staged.name, size as i64, device, crate::now_ms() as i64]);
        if let Err(e) = inserted {
            let _ = fs::remove_file(&path);
            return Err(e.into());
        }
        Ok(staged)
    }

    /// Record, in one commit, that the first `held` bytes of `hash` are written and
    /// checked, and that `device` sent `bytes` more today.
    pub fn chunk_done(&self, hash: &str, held: u64, device: u32, day: u64, bytes: u64) -> R<()> {
        let mut conn = self.index.lock().expect("blob index");
        let tx = conn.transaction()?;
        tx.prepare_cached("UPDATE staging SET held = ?2, updated_ms = ?3 WHERE hash = ?1")?
            .execute(params![hash, held as i64, crate::now_ms() as i64])?;
        add_quota(&tx, device, day, bytes)?;
        tx.commit()?;
        Ok(())
    }

    /// Throw a staged upload away: the file, its row and its running hash.
    pub fn discard(&self, hash: &str) -> R<()> {
        self.forget_hasher(hash);
        if let Some(s) = self.staged_row(hash)? {
            let _ = fs::remove_file(self.staging_path(&s));
        }
        let conn = self.index.lock().expect("blob index");
        conn.prepare_cached("DELETE FROM staging WHERE hash = ?1")?
            .execute([hash])?;
        Ok(())
    }

    /// Move a fully received, hash-checked upload into place. The rename is the moment
    /// the blob becomes verified.
    pub fn finish(&self, hash: &str, staged: &Staged) -> R<()> {
        let src = self.staging_path(staged);
        File::open(&src)?.sync_all()?;
        let dest = self.object_path(hash)?;
        let dir = dest.parent().expect("sharded path has a parent").to_owned();
        fs::create_dir_all(&dir)?;
        fs::rename(&src, &dest)?;
        sync_dir(&dir)?;
        self.forget_hasher(hash);
        let conn = self.index.lock().expect("blob index");
        conn.prepare_cached("DELETE FROM staging WHERE hash = ?1")?
            .execute([hash])?;
        Ok(())
    }

    /// Bytes `device` sent on UTC day `day`.
    pub fn quota_used(&self, device: u32, day: u64) -> R<u64> {
        let conn = self.index.lock().expect("blob index");
        let used = conn
            .prepare_cached("SELECT bytes FROM quota WHERE device = ?1 AND day = ?2")?
            .query_row(params![device, day as i64], |r| r.get::<_, i64>(0))
            .optional()?
            .unwrap_or(0);
        Ok(used as u64)
    }

    pub fn add_quota(&self, device: u32, day: u64, bytes: u64) -> R<()> {
        let conn = self.index.lock().expect("blob index");
        add_quota(&conn, device, day, bytes)
    }

    /// The lock one upload of `hash` holds, so two requests never write the same staging
    /// file at once.
    pub fn lock(&self, hash: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().expect("upload locks");
        if let Some(l) = locks.get(hash).and_then(Weak::upgrade) {
            return l;
        }
        locks.retain(|_, w| w.strong_count() > 0);
        let l = Arc::new(tokio::sync::Mutex::new(()));
        locks.insert(hash.to_owned(), Arc::downgrade(&l));
        l
    }

    /// The running SHA-256 of the first `held` staged bytes of `hash`: from memory, or
    /// re-read from the staged file (after a restart).
    pub fn hasher(&self, hash: &str, staged: &Staged) -> R<Sha256> {
        if let Some((held, h)) = self.hashers.lock().expect("hashers").get(hash) {
            if *held == staged.held {
                return Ok(h.clone());
            }
        }
        let mut h = Sha256::new();
        let mut f = File::open(self.staging_path(staged))?.take(staged.held);
        let mut buf = vec![0u8; READ_BUFFER_BYTES];
        let mut read = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
            read += n as u64;
        }
        if read != staged.held {
            return Err(BlobStoreError::Io(std::io::Error::other(format!(
                "staged upload of {hash} is shorter ({read}) than recorded ({})",
                staged.held
            ))));
        }
        Ok(h)
    }

    pub fn keep_hasher(&self, hash: &str, held: u64, h: Sha256) {
        let mut map = self.hashers.lock().expect("hashers");
        if map.len() >= HASHERS_CACHED_MAX && !map.contains_key(hash) {
            map.clear();
        }
        map.insert(hash.to_owned(), (held, h));
    }

    fn forget_hasher(&self, hash: &str) {
        self.hashers.lock().expect("hashers").remove(hash);
    }

    /// A JPEG thumbnail of a verified JPEG or PNG blob, at most `px` on its longer side,
    /// made once and kept.
    pub fn thumbnail(&self, hash: &str, px: u32) -> R<PathBuf> {
        let src = self.object_path(hash)?;
        let dir = self.root.join(THUMBS_DIR).join(&hash[0..2]);
        let dest = dir.join(format!("{hash}-{px}.jpg"));
        if dest.exists() {
            return Ok(dest);
        }
        let img_err = |e: image::ImageError| BlobStoreError::Image(e.to_string());
        let mut reader = image::ImageReader::open(&src)?
            .with_guessed_format()
            .map_err(BlobStoreError::Io)?;
        let mut limits = image::Limits::default();
        limits.max_alloc = Some(THUMB_DECODE_BYTES_MAX);
        reader.limits(limits);
        let img = reader.decode().map_err(img_err)?;
        let thumb = img.thumbnail(px, px).into_rgb8();
        let mut out = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80)
            .encode_image(&thumb)
            .map_err(img_err)?;
        fs::create_dir_all(&dir)?;
        let mut n = [0u8; 8];
        rand::thread_rng().fill_bytes(&mut n);
        let tmp = dir.join(format!(".{}.tmp", hex::encode(n)));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&out)?;
            f.sync_all()?;
        }
        fs::rename(&tmp, &dest)?;
        Ok(dest)
    }

    /// Everything under the store, for tests and operators: (verified blobs, staged
    /// uploads) as counts of files.
    pub fn counts(&self) -> R<(usize, usize)> {
        let mut verified = 0;
        for a in fs::read_dir(self.root.join(OBJECTS_DIR))? {
            for b in fs::read_dir(a?.path())? {
                verified += fs::read_dir(b?.path())?.count();
            }
        }
        let staged = fs::read_dir(self.root.join(STAGING_DIR))?.count();
        Ok((verified, staged))
    }
}

fn add_quota(conn: &Connection, device: u32, day: u64, bytes: u64) -> R<()> {
    conn.prepare_cached(
        "INSERT INTO quota (device, day, bytes) VALUES (?1, ?2, ?3)
         ON CONFLICT (device, day) DO UPDATE SET bytes = bytes + excluded.bytes",
    )?
    .execute(params![device, day as i64, bytes as i64])?;
    // Yesterday's and older counts no longer matter.
    conn.prepare_cached("DELETE FROM quota WHERE day < ?1")?
        .execute([day as i64 - 1])?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_upload_becomes_verified_by_rename_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let data = b"hello photo";
        let hash = hex::encode(Sha256::digest(data));
        assert!(store.verified(&hash).unwrap().is_none());
        let s = store.begin(&hash, data.len() as u64, 1).unwrap();
        assert!(
            !is_hash(&s.name) && s.name.len() == 32,
            "server-chosen name"
        );
        fs::write(store.staging_path(&s), &data[..5]).unwrap();
        store.chunk_done(&hash, 5, 1, 100, 5).unwrap();
        let s = store.staged(&hash).unwrap().unwrap();
        assert_eq!(s.held, 5);
        let h = store.hasher(&hash, &s).unwrap();
        let mut expect = Sha256::new();
        expect.update(&data[..5]);
        assert_eq!(
            h.finalize(),
            expect.finalize(),
            "rebuilt from the staged bytes"
        );
        fs::write(store.staging_path(&s), data).unwrap();
        store.finish(&hash, &s).unwrap();
        let (_, size, _) = store.verified(&hash).unwrap().unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(store.counts().unwrap(), (1, 0));
        assert!(matches!(
            store.verified("../etc"),
            Err(BlobStoreError::BadHash)
        ));
        assert_eq!(store.quota_used(1, 100).unwrap(), 5);
    }

    #[test]
    fn a_staged_file_shorter_than_recorded_starts_over() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let hash = "cd".repeat(32);
        let s = store.begin(&hash, 100, 1).unwrap();
        fs::write(store.staging_path(&s), [1u8; 10]).unwrap();
        store.chunk_done(&hash, 50, 1, 100, 50).unwrap();
        assert_eq!(store.staged(&hash).unwrap(), None, "lost bytes: from zero");
        assert_eq!(store.counts().unwrap(), (0, 0));
    }

    #[test]
    fn restart_sweeps_orphans() {
        let dir = tempfile::tempdir().unwrap();
        let hash = "ab".repeat(32);
        {
            let store = BlobStore::open(dir.path()).unwrap();
            store.begin(&hash, 10, 1).unwrap();
            fs::write(dir.path().join(STAGING_DIR).join("junk"), b"x").unwrap();
        }
        let store = BlobStore::open(dir.path()).unwrap();
        assert_eq!(store.counts().unwrap(), (0, 1), "the recorded upload stays");
        assert!(store.staged(&hash).unwrap().is_some());
        store.discard(&hash).unwrap();
        assert_eq!(store.counts().unwrap(), (0, 0));
    }

    #[test]
    fn quota_counts_per_device_and_day() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        store.add_quota(1, 100, 10).unwrap();
        store.add_quota(1, 100, 5).unwrap();
        store.add_quota(2, 100, 7).unwrap();
        assert_eq!(store.quota_used(1, 100).unwrap(), 15);
        assert_eq!(store.quota_used(2, 100).unwrap(), 7);
        assert_eq!(store.quota_used(1, 101).unwrap(), 0);
    }
}
