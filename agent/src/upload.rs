//! The photo upload queue. It runs after the record ops in every sync round: a blob goes
//! up only once the server has acknowledged a photo record naming it, so the server can
//! check the upload against that record (size, type, who may send it).
//!
//! Each blob: ask the server how much it holds, then send fixed-size chunks from there,
//! each with its own SHA-256. A cut connection costs at most the chunk in flight; a
//! killed agent resumes from what the server says, not from what it remembers. The
//! server's `verified` answer is the receipt; only after it, and only once the retention
//! period has passed and the server confirms it still holds the blob, is the local copy
//! deleted.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use bytes::Bytes;
use rusqlite::params;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::blob::{self, BlobStore};
use crate::client::{ChunkUpload, Client, Refusal};
use crate::config::Config;
use crate::error::{AgentError, Result};
use crate::photos::now_ms;
use crate::store::Store;

/// Bytes handed to the connection per step: the granularity of rate limiting and progress.
const BODY_SLICE_BYTES: usize = 64 * 1024;
/// Times one blob may be told "the server holds a different offset" in one round before
/// the queue gives up on it until the next round.
const OFFSET_RESYNCS_MAX: u32 = 4;
/// Times a blob whose local copy checks out may be restarted after the server computed a
/// different hash, before it is refused.
const HASH_RETRIES_MAX: u32 = 1;
/// Blobs uploaded at once. Two keep the connection busy while the server fsyncs and
/// renames the previous blob; more would only add memory (a chunk buffer each).
const UPLOADS_IN_FLIGHT_MAX: usize = 2;
/// How often an upload's progress is written to the store. The server's answer, not
/// this, is what a resumed upload starts from, so it need not be written per chunk
/// (each write is an fsync).
const PROGRESS_PERSIST_MS: u64 = 1_000;
const DAY_MS: u64 = 24 * 3600 * 1000;

/// Told how many upload bytes have left, for a progress bar.
pub trait Progress: Send + Sync {
    /// A queue run starts with `total` bytes to send.
    fn begin(&self, total: u64);
    fn advance(&self, bytes: u64);
    fn finish(&self);
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UploadReport {
    /// Photos the server verified in this round (uploaded, or already held).
    pub verified: u64,
    /// Blob bytes sent in this round.
    pub bytes_sent: u64,
    /// Photos still waiting to go up.
    pub pending: u64,
    /// Photos refused in this round (too large for the server, damaged copy).
    pub refused: u64,
    /// Local copies deleted after verification and retention.
    pub local_copies_deleted: u64,
    /// Time spent sending, in ms.
    pub upload_ms: u64,
}

/// Spreads bytes over time so the average stays at or under the limit: `--max-upload-kbps`
/// (kilobits per second) for metered links.
pub struct RateLimiter {
    bytes_per_s: f64,
    state: Mutex<(Instant, u64)>,
}

impl RateLimiter {
    pub fn new(kbps: u64) -> Option<Arc<RateLimiter>> {
        (kbps > 0).then(|| {
            Arc::new(RateLimiter {
                bytes_per_s: kbps as f64 * 1000.0 / 8.0,
                state: Mutex::new((Instant::now(), 0)),
            })
        })
    }

    /// Wait until `n` more bytes may be sent.
    pub async fn take(&self, n: u64) {
        let due = {
            let mut s = self.state.lock().expect("rate limiter");
            let due = s.0 + Duration::from_secs_f64(s.1 as f64 / self.bytes_per_s);
            s.1 += n;
            due
        };
        tokio::time::sleep_until(due).await;
    }

    /// How long `n` bytes take at the limit.
    fn duration(&self, n: u64) -> Duration {
        Duration::from_secs_f64(n as f64 / self.bytes_per_s)
    }
}

fn body(
    chunk: Bytes,
    limiter: Option<Arc<RateLimiter>>,
    progress: Option<Arc<dyn Progress>>,
) -> reqwest::Body {
    let stream = futures_util::stream::unfold(0usize, move |pos| {
        let chunk = chunk.clone();
        let limiter = limiter.clone();
        let progress = progress.clone();
        async move {
            if pos >= chunk.len() {
                return None;
            }
            let end = (pos + BODY_SLICE_BYTES).min(chunk.len());
            if let Some(l) = &limiter {
                l.take((end - pos) as u64).await;
            }
            if let Some(p) = &progress {
                p.advance((end - pos) as u64);
            }
            Some((Ok::<_, std::io::Error>(chunk.slice(pos..end)), end))
        }
    });
    reqwest::Body::wrap_stream(stream)
}

struct Work {
    hash: String,
    size: u64,
    sent: u64,
    photo: String,
}

enum Outcome {
    Verified {
        sent: u64,
    },
    Refused(String),
    /// The server does not know the photo record yet; try next round.
    NotYet,
}

fn set_progress(store: &Store, hash: &str, held: u64) -> Result<()> {
    store
        .conn()
        .prepare_cached(
            "UPDATE uploads SET bytes_sent = ?2,
               state = CASE WHEN ?2 > 0 THEN 'uploading' ELSE 'local' END, error = NULL
             WHERE hash = ?1 AND state IN ('local', 'uploading')",
        )?
        .execute(params![hash, held as i64])?;
    Ok(())
}

fn set_verified(store: &Store, hash: &str, size: u64) -> Result<()> {
    store
        .conn()
        .prepare_cached(
            "UPDATE uploads SET state = 'verified', bytes_sent = ?2, verified_ms = ?3, error = NULL
             WHERE hash = ?1",
        )?
        .execute(params![hash, size as i64, now_ms() as i64])?;
    Ok(())
}

fn set_refused(store: &Store, hash: &str, why: &str) -> Result<()> {
    store
        .conn()
        .prepare_cached(
            "UPDATE uploads SET state = 'refused', error = ?2 WHERE hash = ?1 AND state != 'verified'",
        )?
        .execute(params![hash, why])?;
    Ok(())
}

/// Blobs to send: not yet verified or refused, with a photo record the server has
/// acknowledged (not pending, not refused).
fn work(store: &Store) -> Result<Vec<Work>> {
    let mut stmt = store.conn().prepare_cached(
        "SELECT u.hash, u.size, u.bytes_sent, MIN(p.id) FROM uploads u JOIN photos p ON p.hash = u.hash
         WHERE u.state IN ('local', 'uploading')
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.kind = 'photo' AND o.id = p.id)
         GROUP BY u.hash ORDER BY MIN(u.created_ms), u.hash",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok(Work {
            hash: r.get(0)?,
            size: r.get::<_, i64>(1)? as u64,
            sent: r.get::<_, i64>(2)? as u64,
            photo: r.get(3)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Photos not yet verified nor refused.
pub fn pending_count(store: &Store) -> Result<u64> {
    Ok(store.conn().query_row(
        "SELECT COUNT(*) FROM photos p JOIN uploads u ON u.hash = p.hash
         WHERE u.state IN ('local', 'uploading')
           AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.kind = 'photo' AND o.id = p.id
                           AND o.rejected_code IS NOT NULL)",
        [],
        |r| r.get::<_, i64>(0),
    )? as u64)
}

/// Send every pending blob, then apply retention. A transport failure stops the queue
/// (what was sent is kept); a refusal of one photo does not stop the others.
pub async fn run_queue(store: &mut Store, client: &Client, cfg: &Config) -> Result<UploadReport> {
    let mut report = UploadReport::default();
    let todo = work(store)?;
    if !todo.is_empty() {
        let blobs = blob::open_shared(store.dir(), cfg.blob_store)?;
        let limiter = RateLimiter::new(cfg.max_upload_kbps);
        let progress = client.progress().cloned();
        if let Some(p) = &progress {
            p.begin(todo.iter().map(|w| w.size.saturating_sub(w.sent)).sum());
        }
        let started = std::time::Instant::now();
        let result = send_all(store, client, cfg, &*blobs, &limiter, todo, &mut report).await;
        report.upload_ms = started.elapsed().as_millis() as u64;
        if let Some(p) = &progress {
            p.finish();
        }
        result?;
    }
    report.local_copies_deleted = apply_retention(store, client, cfg).await?;
    report.pending = pending_count(store)?;
    Ok(report)
}

async fn send_all(
    store: &Store,
    client: &Client,
    cfg: &Config,
    blobs: &dyn BlobStore,
    limiter: &Option<Arc<RateLimiter>>,
    todo: Vec<Work>,
    report: &mut UploadReport,
) -> Result<()> {
    use futures_util::StreamExt;
    let mut running = futures_util::stream::iter(todo.into_iter().map(|w| async move {
        let outcome = upload_one(store, client, cfg, blobs, limiter, &w).await;
        (w, outcome)
    }))
    .buffer_unordered(UPLOADS_IN_FLIGHT_MAX);
    // The first transport failure ends the round; uploads still in flight are dropped
    // and resume from what the server holds next time.
    while let Some((w, outcome)) = running.next().await {
        match outcome? {
            Outcome::Verified { sent } => {
                report.verified += 1;
                report.bytes_sent += sent;
            }
            Outcome::Refused(why) => {
                tracing::warn!(hash = %w.hash, "photo refused: {why}");
                set_refused(store, &w.hash, &why)?;
                report.refused += 1;
            }
            Outcome::NotYet => {}
        }
    }
    Ok(())
}

fn refusal_text(r: &Refusal) -> String {
    format!("{} ({})", r.message, r.code)
}

async fn upload_one(
    store: &Store,
    client: &Client,
    cfg: &Config,
    blobs: &dyn BlobStore,
    limiter: &Option<Arc<RateLimiter>>,
    w: &Work,
) -> Result<Outcome> {
    let status = client.blob_status(&w.hash).await?;
    if status.verified {
        set_verified(store, &w.hash, w.size)?;
        return Ok(Outcome::Verified { sent: 0 });
    }
    if status.size_max > 0 && w.size > status.size_max {
        return Ok(Outcome::Refused(format!(
            "the server accepts photos of at most {} bytes; this one has {}",
            status.size_max, w.size
        )));
    }
    if blobs.size(&w.hash)? != Some(w.size) {
        return Ok(Outcome::Refused(
            "the local copy is missing or damaged; attach the photo again".into(),
        ));
    }
    let mut offset = status.held.min(w.size);
    set_progress(store, &w.hash, offset)?;
    let mut persisted = std::time::Instant::now();
    let chunk_max = cfg.upload_chunk_bytes as u64;
    let (mut resyncs, mut restarts, mut sent) = (0u32, 0u32, 0u64);
    loop {
        let n = chunk_max.min(w.size - offset) as usize;
        let mut buf = vec![0u8; n];
        if blobs.read_at(&w.hash, offset, &mut buf)? != n {
            return Ok(Outcome::Refused(
                "the local copy is shorter than its record; attach the photo again".into(),
            ));
        }
        // Over TLS every byte is already authenticated in transit, and the server checks
        // the whole blob's hash at the end; a per-chunk hash would only cost two more
        // passes over the data. Plain HTTP (loopback only) gets one.
        let sha = (!client.is_tls()).then(|| hex::encode(Sha256::digest(&buf)));
        let timeout = Duration::from_millis(cfg.request_timeout_ms)
            + limiter
                .as_ref()
                .map(|l| l.duration(n as u64))
                .unwrap_or_default();
        let answer = client
            .put_blob_chunk(ChunkUpload {
                hash: &w.hash,
                photo: &w.photo,
                offset,
                body: body(
                    Bytes::from(buf),
                    limiter.clone(),
                    client.progress().cloned(),
                ),
                len: n as u64,
                sha256: sha.as_deref(),
                timeout,
            })
            .await?;
        match answer {
            Ok(st) => {
                sent += n as u64;
                if st.verified {
                    set_verified(store, &w.hash, w.size)?;
                    return Ok(Outcome::Verified { sent });
                }
                if st.held <= offset {
                    return Err(AgentError::Server {
                        status: 200,
                        code: "no_progress".into(),
                        message: format!(
                            "the server took a chunk of {} at {offset} but holds {}",
                            w.hash, st.held
                        ),
                    });
                }
                offset = st.held.min(w.size);
                if persisted.elapsed() >= Duration::from_millis(PROGRESS_PERSIST_MS) {
                    set_progress(store, &w.hash, offset)?;
                    persisted = std::time::Instant::now();
                }
            }
            Err(r) if r.code == "offset_mismatch" && resyncs < OFFSET_RESYNCS_MAX => {
                resyncs += 1;
                let held = r
                    .details
                    .as_ref()
                    .and_then(|d| d.get("held"))
                    .and_then(|h| h.as_u64());
                match held {
                    Some(h) => offset = h.min(w.size),
                    None => offset = client.blob_status(&w.hash).await?.held.min(w.size),
                }
                set_progress(store, &w.hash, offset)?;
            }
            Err(r) if r.code == "hash_mismatch" => {
                // The server threw the staged bytes away. If our copy is what its name
                // says, start over; if not, no retry can fix it.
                if !blob::verify(blobs, &w.hash)? {
                    return Ok(Outcome::Refused(
                        "the local copy is damaged (it no longer matches its hash)".into(),
                    ));
                }
                if restarts >= HASH_RETRIES_MAX {
                    return Ok(Outcome::Refused(refusal_text(&r)));
                }
                restarts += 1;
                offset = 0;
                set_progress(store, &w.hash, 0)?;
            }
            Err(r) if r.code == "chunk_hash_mismatch" && restarts < HASH_RETRIES_MAX => {
                // Bytes changed between our read and the server: send the chunk again.
                restarts += 1;
            }
            Err(r) if r.status == 404 => {
                tracing::debug!(hash = %w.hash, "server does not know the photo yet: {}", r.message);
                return Ok(Outcome::NotYet);
            }
            Err(r) if matches!(r.status, 409 | 423) => {
                return Err(AgentError::Server {
                    status: r.status,
                    code: r.code,
                    message: r.message,
                })
            }
            Err(r) => return Ok(Outcome::Refused(refusal_text(&r))),
        }
    }
}

/// Delete local copies that the server holds verified and that are older than the
/// retention period. The server is asked again first: a receipt from weeks ago does not
/// prove the blob survived a restore since.
async fn apply_retention(store: &mut Store, client: &Client, cfg: &Config) -> Result<u64> {
    let cutoff = now_ms().saturating_sub(cfg.photo_retention_days.saturating_mul(DAY_MS));
    let due: Vec<(String, u64)> = {
        let mut stmt = store.conn().prepare_cached(
            "SELECT hash, size FROM uploads WHERE state = 'verified' AND local = 1 AND created_ms <= ?1",
        )?;
        let rows = stmt.query_map([cutoff as i64], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
        })?;
        rows.collect::<Result<_, _>>()?
    };
    if due.is_empty() {
        return Ok(0);
    }
    let blobs = blob::open_shared(store.dir(), cfg.blob_store)?;
    let mut deleted = 0;
    for (hash, size) in due {
        let st = client.blob_status(&hash).await?;
        if !(st.verified && st.size == Some(size)) {
            tracing::warn!(%hash, "the server no longer holds this photo verified: uploading it again");
            store
                .conn()
                .prepare_cached(
                    "UPDATE uploads SET state = 'local', bytes_sent = 0, verified_ms = NULL WHERE hash = ?1",
                )?
                .execute([&hash])?;
            continue;
        }
        // Mark first: a crash between the two leaves a copy we think is gone, which is
        // only wasted space; the other order could report a copy that no longer exists.
        store
            .conn()
            .prepare_cached("UPDATE uploads SET local = 0 WHERE hash = ?1")?
            .execute([&hash])?;
        blobs.remove(&hash)?;
        deleted += 1;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn rate_limiter_spreads_bytes_over_time() {
        let l = RateLimiter::new(80).unwrap(); // 10,000 bytes per second
        let start = Instant::now();
        for _ in 0..5 {
            l.take(1_000).await;
        }
        // The first 1 kB goes at once; four more take 0.4 s.
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(395), "{took:?}");
        assert!(took < Duration::from_millis(1_500), "{took:?}");
        assert!(RateLimiter::new(0).is_none(), "0 means no limit");
    }
}
