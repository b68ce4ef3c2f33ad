//! Blobs as plain files: `sha256/ab/cd/<hash>`, written to `tmp/` first and renamed into
//! place after an fsync, so a blob's name appears only once its bytes are durable.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rand::RngCore;

use super::{check_hash, stream_hashed, Backend, BlobError, BlobStore, Imported};

const OBJECTS_DIR: &str = "sha256";
const TMP_DIR: &str = "tmp";

pub struct FileStore {
    root: PathBuf,
}

/// Make a rename or create in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), BlobError> {
    File::open(dir)?.sync_all()?;
    Ok(())
}

impl FileStore {
    /// Open (creating) the store in `root`; partial imports a crash left in `tmp/` are
    /// deleted.
    pub fn open(root: &Path) -> Result<FileStore, BlobError> {
        fs::create_dir_all(root.join(OBJECTS_DIR))?;
        let tmp = root.join(TMP_DIR);
        fs::create_dir_all(&tmp)?;
        for entry in fs::read_dir(&tmp)? {
            let _ = fs::remove_file(entry?.path());
        }
        Ok(FileStore {
            root: root.to_owned(),
        })
    }

    /// Two levels of 256 folders: a few thousand photos per folder at most even with
    /// millions stored, which every filesystem lists quickly.
    fn path(&self, hash: &str) -> Result<PathBuf, BlobError> {
        check_hash(hash)?;
        Ok(self
            .root
            .join(OBJECTS_DIR)
            .join(&hash[0..2])
            .join(&hash[2..4])
            .join(hash))
    }
}

impl BlobStore for FileStore {
    fn backend(&self) -> Backend {
        Backend::Files
    }

    fn import(&self, src: &mut dyn Read) -> Result<Imported, BlobError> {
        let mut name = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut name);
        let tmp = self
            .root
            .join(TMP_DIR)
            .join(format!("{}.part", hex::encode(name)));
        let result = (|| {
            let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
            let (hash, size) = stream_hashed(src, |b| Ok(f.write_all(b)?))?;
            f.sync_all()?;
            drop(f);
            let dest = self.path(&hash)?;
            if dest.exists() {
                fs::remove_file(&tmp)?;
                return Ok(Imported {
                    hash,
                    size,
                    new: false,
                });
            }
            let dir = dest.parent().expect("sharded path has a parent");
            fs::create_dir_all(dir)?;
            fs::rename(&tmp, &dest)?;
            sync_dir(dir)?;
            Ok(Imported {
                hash,
                size,
                new: true,
            })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }

    fn size(&self, hash: &str) -> Result<Option<u64>, BlobError> {
        match fs::metadata(self.path(hash)?) {
            Ok(m) => Ok(Some(m.len())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn read_at(&self, hash: &str, offset: u64, buf: &mut [u8]) -> Result<usize, BlobError> {
        let mut f = match File::open(self.path(hash)?) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(BlobError::Missing(hash.to_owned()))
            }
            Err(e) => return Err(e.into()),
        };
        f.seek(SeekFrom::Start(offset))?;
        let mut filled = 0;
        while filled < buf.len() {
            match f.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(filled)
    }

    fn remove(&self, hash: &str) -> Result<bool, BlobError> {
        let path = self.path(hash)?;
        match fs::remove_file(&path) {
            Ok(()) => {
                sync_dir(path.parent().expect("sharded path has a parent"))?;
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn list(&self) -> Result<Vec<String>, BlobError> {
        let mut out = Vec::new();
        for a in fs::read_dir(self.root.join(OBJECTS_DIR))? {
            for b in fs::read_dir(a?.path())? {
                for f in fs::read_dir(b?.path())? {
                    let name = f?.file_name().to_string_lossy().into_owned();
                    if super::is_hash(&name) {
                        out.push(name);
                    }
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn disk_bytes(&self) -> Result<u64, BlobError> {
        du(&self.root)
    }
}

/// Allocated bytes under `path` (st_blocks, like `du`), so sparse or padded files count
/// as what they cost.
pub(crate) fn du(path: &Path) -> Result<u64, BlobError> {
    let meta = fs::symlink_metadata(path)?;
    let own = allocated(&meta);
    if !meta.is_dir() {
        return Ok(own);
    }
    let mut total = own;
    for entry in fs::read_dir(path)? {
        total += du(&entry?.path())?;
    }
    Ok(total)
}

#[cfg(unix)]
fn allocated(meta: &fs::Metadata) -> u64 {
    use std::os::unix::fs::MetadataExt;
    meta.blocks() * 512
}

#[cfg(not(unix))]
fn allocated(meta: &fs::Metadata) -> u64 {
    meta.len()
}
