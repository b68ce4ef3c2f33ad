//! Blobs in sled, the embedded store the design names. A blob is a run of fixed-size
//! chunks under a fresh id, plus a manifest keyed by its hash that is written last: a
//! crash before the manifest leaves chunks nobody can see, swept on the next open.
//!
//! Keys: `m<hash>` → id (8) ‖ size (8); `c<id><index>` → chunk; `p<id>` marks an import
//! in progress.

use std::io::Read;
use std::path::Path;

use super::{check_hash, stream_hashed, Backend, BlobError, BlobStore, Imported};

/// Bytes per stored chunk: large enough that per-key overhead is small, small enough that
/// a ranged read pulls little more than it needs.
pub const SLED_CHUNK_BYTES: usize = 64 * 1024;
/// sled's page cache. Its default (1 GiB) would let the agent's memory grow with the
/// photos it reads; the blobs are streamed, not re-read, so a small cache costs nothing.
pub const SLED_CACHE_BYTES: u64 = 16 * 1024 * 1024;

pub struct SledStore {
    db: sled::Db,
    root: std::path::PathBuf,
}

fn manifest_key(hash: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(65);
    k.push(b'm');
    k.extend_from_slice(hash.as_bytes());
    k
}

fn chunk_key(id: u64, index: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = b'c';
    k[1..9].copy_from_slice(&id.to_be_bytes());
    k[9..].copy_from_slice(&index.to_be_bytes());
    k
}

fn pending_key(id: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'p';
    k[1..].copy_from_slice(&id.to_be_bytes());
    k
}

fn chunks(size: u64) -> u64 {
    size.div_ceil(SLED_CHUNK_BYTES as u64)
}

impl SledStore {
    pub fn open(root: &Path) -> Result<SledStore, BlobError> {
        let db = sled::Config::new()
            .path(root)
            .cache_capacity(SLED_CACHE_BYTES)
            .open()?;
        let store = SledStore {
            db,
            root: root.to_owned(),
        };
        store.sweep()?;
        Ok(store)
    }

    /// Delete the chunks of imports a crash interrupted.
    fn sweep(&self) -> Result<(), BlobError> {
        let pending: Vec<u64> = self
            .db
            .scan_prefix(b"p")
            .keys()
            .map(|k| -> Result<u64, BlobError> {
                let k = k?;
                let id: [u8; 8] = k[1..]
                    .try_into()
                    .map_err(|_| BlobError::Corrupt("bad pending key".into()))?;
                Ok(u64::from_be_bytes(id))
            })
            .collect::<Result<_, _>>()?;
        for id in pending {
            let prefix = chunk_key(id, 0);
            for k in self.db.scan_prefix(&prefix[..9]).keys() {
                self.db.remove(k?)?;
            }
            self.db.remove(pending_key(id))?;
        }
        self.db.flush()?;
        Ok(())
    }

    fn manifest(&self, hash: &str) -> Result<Option<(u64, u64)>, BlobError> {
        check_hash(hash)?;
        let Some(v) = self.db.get(manifest_key(hash))? else {
            return Ok(None);
        };
        if v.len() != 16 {
            return Err(BlobError::Corrupt(format!("manifest of {hash}")));
        }
        let id = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
        let size = u64::from_be_bytes(v[8..].try_into().expect("8 bytes"));
        Ok(Some((id, size)))
    }

    fn drop_chunks(&self, id: u64, size: u64) -> Result<(), BlobError> {
        for i in 0..chunks(size) {
            self.db.remove(chunk_key(id, i))?;
        }
        Ok(())
    }
}

impl BlobStore for SledStore {
    fn backend(&self) -> Backend {
        Backend::Sled
    }

    fn import(&self, src: &mut dyn Read) -> Result<Imported, BlobError> {
        let id = self.db.generate_id()?;
        self.db.insert(pending_key(id), &[])?;
        let mut pending: Vec<u8> = Vec::with_capacity(SLED_CHUNK_BYTES);
        let mut index = 0u64;
        let db = &self.db;
        let streamed = stream_hashed(src, |mut bytes| {
            while !bytes.is_empty() {
                let take = (SLED_CHUNK_BYTES - pending.len()).min(bytes.len());
                pending.extend_from_slice(&bytes[..take]);
                bytes = &bytes[take..];
                if pending.len() == SLED_CHUNK_BYTES {
                    db.insert(chunk_key(id, index), &pending[..])?;
                    index += 1;
                    pending.clear();
                }
            }
            Ok(())
        });
        let (hash, size) = match streamed {
            Ok(r) => r,
            Err(e) => {
                let _ = self.drop_chunks(id, index * SLED_CHUNK_BYTES as u64);
                let _ = self.db.remove(pending_key(id));
                return Err(e);
            }
        };
        if !pending.is_empty() {
            self.db.insert(chunk_key(id, index), &pending[..])?;
        }
        let new = self.manifest(&hash)?.is_none();
        if new {
            let mut v = [0u8; 16];
            v[..8].copy_from_slice(&id.to_be_bytes());
            v[8..].copy_from_slice(&size.to_be_bytes());
            self.db.insert(manifest_key(&hash), &v[..])?;
        } else {
            self.drop_chunks(id, size)?;
        }
        self.db.remove(pending_key(id))?;
        self.db.flush()?;
        Ok(Imported { hash, size, new })
    }

    fn size(&self, hash: &str) -> Result<Option<u64>, BlobError> {
        Ok(self.manifest(hash)?.map(|(_, size)| size))
    }

    fn read_at(&self, hash: &str, offset: u64, buf: &mut [u8]) -> Result<usize, BlobError> {
        let (id, size) = self
            .manifest(hash)?
            .ok_or_else(|| BlobError::Missing(hash.to_owned()))?;
        let mut filled = 0usize;
        let mut pos = offset;
        while filled < buf.len() && pos < size {
            let index = pos / SLED_CHUNK_BYTES as u64;
            let within = (pos % SLED_CHUNK_BYTES as u64) as usize;
            let chunk = self
                .db
                .get(chunk_key(id, index))?
                .ok_or_else(|| BlobError::Corrupt(format!("{hash} lacks chunk {index}")))?;
            let n = (chunk.len().saturating_sub(within)).min(buf.len() - filled);
            if n == 0 {
                return Err(BlobError::Corrupt(format!("{hash} chunk {index} is short")));
            }
            buf[filled..filled + n].copy_from_slice(&chunk[within..within + n]);
            filled += n;
            pos += n as u64;
        }
        Ok(filled)
    }

    fn remove(&self, hash: &str) -> Result<bool, BlobError> {
        let Some((id, size)) = self.manifest(hash)? else {
            return Ok(false);
        };
        // The manifest goes first: from then on the blob is invisible, and leftover
        // chunks of a crash here are only wasted space.
        self.db.remove(manifest_key(hash))?;
        self.drop_chunks(id, size)?;
        self.db.flush()?;
        Ok(true)
    }

    fn list(&self) -> Result<Vec<String>, BlobError> {
        self.db
            .scan_prefix(b"m")
            .keys()
            .map(|k| {
                let k = k?;
                String::from_utf8(k[1..].to_vec())
                    .map_err(|_| BlobError::Corrupt("manifest key".into()))
            })
            .collect()
    }

    fn disk_bytes(&self) -> Result<u64, BlobError> {
        super::file_store::du(&self.root)
    }
}
