//! The agent's blob store: photo bytes, content-addressed by SHA-256, kept apart from the
//! record store (DESIGN: "Photos and other blobs"). Two backends behind one small trait:
//! plain files (the default) and sled. `fieldsync-bench photos` measures both; the figures
//! and the reason for the default are in the README.
//!
//! Invariants, for every backend:
//! - a blob is visible under its hash only once all its bytes are durable, so a crash
//!   mid-import leaves either nothing or the whole blob, never a short one;
//! - the hash is computed by the store from the bytes it wrote, never taken from a caller;
//! - importing the same bytes twice stores them once.

mod file_store;
mod sled_store;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use file_store::FileStore;
pub use sled_store::SledStore;

/// Bytes read from a source per step while importing: enough to keep the disk busy,
/// small enough that an import never holds a photo in memory.
pub const IMPORT_BUFFER_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("the photo store is damaged: {0}")]
    Corrupt(String),
    #[error("not a SHA-256 hash: {0:?}")]
    BadHash(String),
    #[error("no blob {0}")]
    Missing(String),
}

/// Which backend holds the blobs. A setting (`blob_store`), read once per process.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Files,
    Sled,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Files => "files",
            Backend::Sled => "sled",
        }
    }

    pub fn parse(s: &str) -> Option<Backend> {
        match s {
            "files" => Some(Backend::Files),
            "sled" => Some(Backend::Sled),
            _ => None,
        }
    }
}

/// What an import stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Imported {
    pub hash: String,
    pub size: u64,
    /// False when the same bytes were already stored.
    pub new: bool,
}

pub trait BlobStore: Send + Sync {
    fn backend(&self) -> Backend;
    /// Stream `src` in, hashing as it goes; durable when this returns.
    fn import(&self, src: &mut dyn Read) -> Result<Imported, BlobError>;
    /// The blob's size, if it is stored.
    fn size(&self, hash: &str) -> Result<Option<u64>, BlobError>;
    /// Read up to `buf.len()` bytes at `offset`; fewer only at the end of the blob.
    fn read_at(&self, hash: &str, offset: u64, buf: &mut [u8]) -> Result<usize, BlobError>;
    /// Delete a blob; false if it was not there.
    fn remove(&self, hash: &str) -> Result<bool, BlobError>;
    /// Every stored hash.
    fn list(&self) -> Result<Vec<String>, BlobError>;
    /// Bytes the store occupies on disk, overheads included.
    fn disk_bytes(&self) -> Result<u64, BlobError>;
}

/// Lowercase hex SHA-256: the only blob names either store accepts, so no name can
/// reach outside the store.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

pub(crate) fn check_hash(s: &str) -> Result<(), BlobError> {
    if is_hash(s) {
        Ok(())
    } else {
        Err(BlobError::BadHash(s.to_owned()))
    }
}

/// Read `src` to its end in `IMPORT_BUFFER_BYTES` steps, feeding each step to `sink`;
/// returns the SHA-256 and length of everything read.
pub(crate) fn stream_hashed(
    src: &mut dyn Read,
    mut sink: impl FnMut(&[u8]) -> Result<(), BlobError>,
) -> Result<(String, u64), BlobError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; IMPORT_BUFFER_BYTES];
    let mut total = 0u64;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e.into()),
        };
        h.update(&buf[..n]);
        sink(&buf[..n])?;
        total += n as u64;
    }
    Ok((hex::encode(h.finalize()), total))
}

/// Re-read a stored blob and check it still hashes to its name.
pub fn verify(store: &dyn BlobStore, hash: &str) -> Result<bool, BlobError> {
    let size = store
        .size(hash)?
        .ok_or_else(|| BlobError::Missing(hash.to_owned()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; IMPORT_BUFFER_BYTES];
    let mut off = 0u64;
    while off < size {
        let n = store.read_at(hash, off, &mut buf)?;
        if n == 0 {
            return Ok(false);
        }
        h.update(&buf[..n]);
        off += n as u64;
    }
    Ok(hex::encode(h.finalize()) == hash)
}

/// Where a backend keeps its data inside the agent's data dir.
pub fn path_of(data_dir: &Path, backend: Backend) -> PathBuf {
    match backend {
        Backend::Files => data_dir.join("blobs"),
        Backend::Sled => data_dir.join("blobs-sled"),
    }
}

pub fn open(data_dir: &Path, backend: Backend) -> Result<Arc<dyn BlobStore>, BlobError> {
    let path = path_of(data_dir, backend);
    Ok(match backend {
        Backend::Files => Arc::new(FileStore::open(&path)?),
        Backend::Sled => Arc::new(SledStore::open(&path)?),
    })
}

type Registry = Mutex<HashMap<(PathBuf, Backend), Weak<dyn BlobStore>>>;

/// The process's one handle on the blob store in `data_dir`. sled locks its directory
/// per process, so the daemon's inbox watcher and its sync loop must share a handle
/// rather than each open their own.
pub fn open_shared(data_dir: &Path, backend: Backend) -> Result<Arc<dyn BlobStore>, BlobError> {
    static OPEN: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    let reg = OPEN.get_or_init(Default::default);
    let mut map = reg.lock().expect("blob store registry");
    let key = (data_dir.to_owned(), backend);
    if let Some(s) = map.get(&key).and_then(Weak::upgrade) {
        return Ok(s);
    }
    let s = open(data_dir, backend)?;
    map.insert(key, Arc::downgrade(&s));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exercise(store: &dyn BlobStore) {
        let data: Vec<u8> = (0..(IMPORT_BUFFER_BYTES * 3 + 17))
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let a = store.import(&mut &data[..]).unwrap();
        assert_eq!(a.size, data.len() as u64);
        assert!(a.new);
        assert_eq!(a.hash, hex::encode(Sha256::digest(&data)));
        let again = store.import(&mut &data[..]).unwrap();
        assert_eq!((again.hash.as_str(), again.new), (a.hash.as_str(), false));
        assert_eq!(store.list().unwrap(), vec![a.hash.clone()], "stored once");
        assert_eq!(store.size(&a.hash).unwrap(), Some(data.len() as u64));
        let mut buf = vec![0u8; 1000];
        let off = IMPORT_BUFFER_BYTES as u64 - 10;
        let n = store.read_at(&a.hash, off, &mut buf).unwrap();
        assert_eq!(&buf[..n], &data[off as usize..off as usize + 1000]);
        let tail = store
            .read_at(&a.hash, data.len() as u64 - 5, &mut buf)
            .unwrap();
        assert_eq!(tail, 5, "short read only at the end");
        assert!(verify(store, &a.hash).unwrap());
        let empty = store.import(&mut &b""[..]).unwrap();
        assert_eq!(empty.size, 0);
        assert!(store.remove(&a.hash).unwrap());
        assert!(!store.remove(&a.hash).unwrap());
        assert_eq!(store.size(&a.hash).unwrap(), None);
        assert!(matches!(
            store.size("../../etc/passwd"),
            Err(BlobError::BadHash(_))
        ));
    }

    #[test]
    fn file_store_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        exercise(&FileStore::open(dir.path()).unwrap());
    }

    #[test]
    fn sled_store_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        exercise(&SledStore::open(dir.path()).unwrap());
    }

    #[test]
    fn an_import_that_fails_midway_leaves_nothing() {
        struct Broken(usize);
        impl Read for Broken {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.0 == 0 {
                    return Err(std::io::Error::other("cable pulled"));
                }
                self.0 -= 1;
                buf.fill(1);
                Ok(buf.len())
            }
        }
        for backend in [Backend::Files, Backend::Sled] {
            let dir = tempfile::tempdir().unwrap();
            let store = open(dir.path(), backend).unwrap();
            assert!(store.import(&mut Broken(3)).is_err());
            assert!(store.list().unwrap().is_empty(), "{backend:?}");
            drop(store);
            // Reopening sweeps whatever a crash might have left.
            let store = open(dir.path(), backend).unwrap();
            assert!(store.list().unwrap().is_empty(), "{backend:?}");
        }
    }
}
