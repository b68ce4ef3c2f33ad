//! Photo bytes: resumable, verified uploads by hash, and authorised reads of what a photo
//! record names (with Range), plus thumbnails for the console.
//!
//! An upload is bound to a photo record the caller may see (or that its own device
//! created): the record says how large the blob is and what type it must be, so the server
//! refuses an oversize or non-photo upload before it stores a byte. Each chunk carries its
//! own SHA-256; `held` only ever advances by whole, checked, fsynced chunks. When the last
//! chunk lands the whole blob's hash must equal its name, or everything staged is deleted.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use fieldsync_proto::wire::{BlobStatus, CHUNK_SHA256_HEADER};
use fieldsync_proto::{EntityId, EntityKind, EntityState, Role};
use futures_util::StreamExt;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::io::AsyncSeekExt;

use super::{now_ms, ApiError, AppState, Auth};
use crate::blobstore::{is_hash, BlobStoreError, Staged};
use crate::store::Actor;

/// How long a chunk waits for another request on the same blob (typically the one a cut
/// connection left behind, which ends as soon as the server notices the cut).
const UPLOAD_LOCK_WAIT_MS: u64 = 5_000;
/// Bytes gathered before they are hashed and written to the staging file, per upload.
const WRITE_BUFFER_BYTES: usize = 1024 * 1024;
/// Thumbnail sizes (longer side, pixels).
pub(crate) const THUMB_PX_DEFAULT: u32 = 256;
const THUMB_PX_MIN: u32 = 16;
const THUMB_PX_MAX: u32 = 1_024;
const DAY_MS: u64 = 24 * 3600 * 1000;

/// Routes without the response compression layer: blob bytes are already compressed
/// media, and compressing a ranged response would break its byte offsets.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/blobs/{hash}", get(status).put(put_chunk))
        .route("/api/v1/photos/{id}/blob", get(photo_blob))
        .route("/api/v1/photos/{id}/thumbnail", get(thumbnail))
}

impl From<BlobStoreError> for ApiError {
    fn from(e: BlobStoreError) -> Self {
        if e.is_disk_full() {
            return ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "storage_full",
                "the server is out of disk space; the upload can resume once space is freed",
            );
        }
        if matches!(e, BlobStoreError::BadHash) {
            return bad_hash();
        }
        tracing::error!(error = %e, "blob store failure");
        ApiError::internal("the server could not complete the request")
    }
}

fn bad_hash() -> ApiError {
    ApiError::bad_request(
        "invalid_hash",
        "a blob is named by its SHA-256 as 64 lowercase hex digits",
    )
}

fn check_hash(hash: &str) -> Result<(), ApiError> {
    if is_hash(hash) {
        Ok(())
    } else {
        Err(bad_hash())
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f).await?
}

/// `GET /api/v1/blobs/{hash}`: how much of the blob the server holds.
pub async fn status(
    State(app): State<AppState>,
    _auth: Auth,
    Path(hash): Path<String>,
) -> Result<Json<BlobStatus>, ApiError> {
    check_hash(&hash)?;
    let size_max = app.settings.photo_bytes_max;
    let blobs = app.blobs.clone();
    blocking(move || {
        if let Some((_, size, stored)) = blobs.verified(&hash)? {
            return Ok(Json(BlobStatus {
                hash,
                size: Some(size),
                held: size,
                verified: true,
                size_max,
                stored_ms: Some(stored),
            }));
        }
        let staged = blobs.staged(&hash)?;
        Ok(Json(BlobStatus {
            hash,
            size: staged.as_ref().map(|s| s.size),
            held: staged.map(|s| s.held).unwrap_or(0),
            verified: false,
            size_max,
            stored_ms: None,
        }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PutQuery {
    photo: String,
    offset: u64,
}

/// The photo record an upload is for, if the caller may upload its bytes: they can see
/// it, or their device created it (an order reassigned after the record was pushed must
/// not strand its photos on the device).
async fn photo_for_upload(
    app: &AppState,
    actor: &Actor,
    device: u32,
    id: &str,
) -> Result<EntityState, ApiError> {
    let unknown = || {
        ApiError::not_found(format!(
            "no photo record {id}: sync the record before its bytes"
        ))
    };
    if !EntityId::is_valid(id) {
        return Err(ApiError::bad_request(
            "invalid_id",
            "photo must be a record id: 1-64 letters, digits, '-' or '_'",
        ));
    }
    let (store, actor2, id2) = (app.store.clone(), actor.clone(), id.to_owned());
    let (visible, any) = tokio::task::spawn_blocking(move || {
        let visible = store.entity(&actor2, EntityKind::Photo, &id2)?;
        let any = match &visible {
            Some(_) => None,
            None => store.entity(&system_reader(), EntityKind::Photo, &id2)?,
        };
        Ok::<_, crate::store::StoreError>((visible, any))
    })
    .await??;
    match (visible, any) {
        (Some(p), _) => Ok(p),
        (None, Some(p)) if p.version("hash").is_some_and(|v| v.dev == device) => Ok(p),
        _ => Err(unknown()),
    }
}

/// Reads every record, for checks the caller's own scope cannot answer.
fn system_reader() -> Actor {
    Actor {
        user: "server".into(),
        role: Role::Admin,
        device: None,
    }
}

fn photo_fields(photo: &EntityState) -> Result<(String, u64, String), ApiError> {
    let hash = photo.str("hash").unwrap_or_default().to_owned();
    let size = photo.get("size").and_then(|v| v.as_u64()).unwrap_or(0);
    let mime = photo.str("mime").unwrap_or_default().to_owned();
    if !is_hash(&hash) || size == 0 {
        return Err(ApiError::internal("photo record lacks hash or size"));
    }
    Ok((hash, size, mime))
}

fn receipt(hash: String, size: u64, size_max: u64, stored: u64) -> Json<BlobStatus> {
    Json(BlobStatus {
        hash,
        size: Some(size),
        held: size,
        verified: true,
        size_max,
        stored_ms: Some(stored),
    })
}

/// `PUT /api/v1/blobs/{hash}?photo=ID&offset=N`: one chunk.
pub async fn put_chunk(
    State(app): State<AppState>,
    auth: Auth,
    Path(hash): Path<String>,
    query: Result<Query<PutQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<BlobStatus>, ApiError> {
    check_hash(&hash)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let actor = auth.0;
    let device = actor.device.ok_or_else(|| {
        ApiError::forbidden("uploading photos needs a device token: enroll the device first")
    })?;
    let chunk_sha = match headers.get(CHUNK_SHA256_HEADER) {
        None => None,
        Some(v) => match v.to_str() {
            Ok(s) if is_hash(s) => Some(s.to_owned()),
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_header",
                    format!("{CHUNK_SHA256_HEADER} must be 64 lowercase hex digits"),
                ))
            }
        },
    };
    let len: u64 = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::LENGTH_REQUIRED,
                "length_required",
                "send each chunk with a Content-Length",
            )
        })?;
    let settings = app.settings.clone();
    if len > settings.upload_chunk_bytes_max as u64 {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "chunk_too_large",
            format!(
                "a chunk is at most {} bytes, this one is {len}",
                settings.upload_chunk_bytes_max
            ),
        ));
    }
    let photo = photo_for_upload(&app, &actor, device, &q.photo).await?;
    let (photo_hash, size, mime) = photo_fields(&photo)?;
    if photo_hash != hash {
        return Err(ApiError::bad_request(
            "wrong_photo",
            format!("photo {} holds blob {photo_hash}, not {hash}", q.photo),
        ));
    }
    if size > settings.photo_bytes_max {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "photo_too_large",
            format!(
                "this server accepts photos of at most {} bytes; this one has {size}; nothing was stored",
                settings.photo_bytes_max
            ),
        ));
    }
    let lock = app.blobs.lock(&hash);
    let guard = tokio::time::timeout(
        Duration::from_millis(UPLOAD_LOCK_WAIT_MS),
        lock.lock_owned(),
    )
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::CONFLICT,
            "upload_busy",
            "another upload of this blob is in progress; try again shortly",
        )
    })?;
    let chunk = Chunk {
        hash,
        size,
        mime,
        len,
        offset: q.offset,
        chunk_sha,
        device,
    };
    // The chunk is handled in its own task, which holds the blob's lock to the end: when
    // a client disconnects, hyper drops the request's future, and a write or truncation
    // cut off halfway must never interleave with the retry's.
    let task = tokio::spawn(async move {
        let r = apply_chunk(app, chunk, body).await;
        drop(guard);
        r
    });
    task.await?
}

struct Chunk {
    hash: String,
    size: u64,
    mime: String,
    len: u64,
    offset: u64,
    chunk_sha: Option<String>,
    device: u32,
}

async fn apply_chunk(app: AppState, c: Chunk, body: Body) -> Result<Json<BlobStatus>, ApiError> {
    let Chunk {
        hash,
        size,
        mime,
        len,
        offset,
        chunk_sha,
        device,
    } = c;
    let settings = app.settings.clone();
    let blobs = app.blobs.clone();
    let (b, h) = (blobs.clone(), hash.clone());
    let (verified, staged) = blocking(move || Ok((b.verified(&h)?, b.staged(&h)?))).await?;
    if let Some((_, vsize, stored)) = verified {
        // Deduplicated: someone sent these bytes already.
        return Ok(receipt(hash, vsize, settings.photo_bytes_max, stored));
    }
    let held = staged.as_ref().map(|s| s.held).unwrap_or(0);
    if offset != held {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "offset_mismatch",
            format!("the server holds {held} bytes of this blob: send from there"),
        )
        .with_details(serde_json::json!({ "held": held })));
    }
    if len == 0 || held + len > size {
        return Err(ApiError::bad_request(
            "beyond_size",
            format!("a chunk of {len} bytes at {held} does not fit the photo's {size} bytes"),
        ));
    }
    let day = now_ms() / DAY_MS;
    let (b, quota) = (blobs.clone(), settings.device_upload_bytes_per_day);
    let used = blocking(move || Ok(b.quota_used(device, day)?)).await?;
    if used + len > quota {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "quota_exceeded",
            format!(
                "this device has sent {used} of its {quota} bytes for today; the rest waits until tomorrow (UTC)"
            ),
        )
        .with_details(serde_json::json!({ "used": used, "quota": quota })));
    }
    let staged = match staged {
        Some(s) => s,
        None => {
            let (b, h) = (blobs.clone(), hash.clone());
            blocking(move || Ok(b.begin(&h, size, device)?)).await?
        }
    };
    let (b, h, s) = (blobs.clone(), hash.clone(), staged.clone());
    let full = blocking(move || Ok(b.hasher(&h, &s)?)).await?;
    let outcome = receive(
        &blobs,
        &staged,
        body,
        len,
        full,
        (held == 0).then_some(mime.as_str()),
        chunk_sha.is_some(),
    )
    .await;
    // Every byte that arrived counts against the quota, kept or not.
    let full = match outcome {
        Ok(o) => o,
        Err(Refuse { error, discard }) => {
            let (b, h, s) = (blobs.clone(), hash.clone(), staged.clone());
            blocking(move || {
                b.add_quota(device, day, len)?;
                drop_chunk(&b, &h, &s, discard)
            })
            .await?;
            return Err(error);
        }
    };
    let new_held = held + len;
    if let Some(want) = chunk_sha {
        if Some(want) != full.chunk {
            let (b, h, s) = (blobs.clone(), hash.clone(), staged.clone());
            blocking(move || {
                b.add_quota(device, day, len)?;
                drop_chunk(&b, &h, &s, false)
            })
            .await?;
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "chunk_hash_mismatch",
                format!(
                    "the chunk at {held} does not match its {CHUNK_SHA256_HEADER}; it was not kept, send it again"
                ),
            ));
        }
    }
    let (b, h, s) = (blobs.clone(), hash.clone(), staged.clone());
    let whole = full.whole;
    let done = new_held == size;
    let result = blocking(move || {
        // No fsync per chunk: a chunk's bytes only need to outlive a server crash (the
        // page cache does that); a power cut is caught by `staged` and the final hash.
        // The blob is fsynced once, in `finish`, before it counts as verified.
        b.chunk_done(&h, new_held, device, day, len)?;
        if !done {
            b.keep_hasher(&h, new_held, whole);
            return Ok(None);
        }
        let got = hex::encode(whole.finalize());
        if got != h {
            b.discard(&h)?;
            return Ok(Some(Err(got)));
        }
        b.finish(&h, &s)?;
        Ok(Some(Ok(())))
    })
    .await?;
    match result {
        None => Ok(Json(BlobStatus {
            hash,
            size: Some(size),
            held: new_held,
            verified: false,
            size_max: settings.photo_bytes_max,
            stored_ms: None,
        })),
        Some(Ok(())) => {
            tracing::info!(%hash, size, device, "photo stored and verified");
            Ok(receipt(hash, size, settings.photo_bytes_max, now_ms()))
        }
        Some(Err(got)) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "hash_mismatch",
            format!("the bytes received hash to {got}, not {hash}; nothing was stored"),
        )),
    }
}

/// Forget a refused chunk: cut the staged file back to what was held before it, or, when
/// nothing was held (or the upload can never be a photo), throw the staging away so no
/// empty or partial file is left behind.
fn drop_chunk(
    blobs: &crate::blobstore::BlobStore,
    hash: &str,
    staged: &Staged,
    discard: bool,
) -> Result<(), ApiError> {
    if discard || staged.held == 0 {
        blobs.discard(hash)?;
        return Ok(());
    }
    truncate(&blobs.staging_path(staged), staged.held)
}

fn truncate(path: &std::path::Path, len: u64) -> Result<(), ApiError> {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(BlobStoreError::from)?;
    f.set_len(len).map_err(BlobStoreError::from)?;
    f.sync_data().map_err(BlobStoreError::from)?;
    Ok(())
}

struct Hashes {
    whole: Sha256,
    /// Of this chunk alone, when asked for.
    chunk: Option<String>,
}

struct Refuse {
    error: ApiError,
    /// Throw the whole staged upload away (it cannot be a photo), not just this chunk.
    discard: bool,
}

impl From<ApiError> for Refuse {
    fn from(error: ApiError) -> Self {
        Refuse {
            error,
            discard: false,
        }
    }
}

/// Stream the request body into the staging file after what is held, hashing as it goes.
/// `sniff_as`: this is the blob's first chunk, whose first bytes must be of that type.
/// `chunk_hash`: also hash this chunk on its own (the client sent its hash to check).
///
/// Bytes are gathered into batches; while one batch is hashed and written on a blocking
/// thread, the next is received, so network, hashing and disk overlap.
async fn receive(
    blobs: &Arc<crate::blobstore::BlobStore>,
    staged: &Staged,
    body: Body,
    len: u64,
    whole: Sha256,
    sniff_as: Option<&str>,
    chunk_hash: bool,
) -> Result<Hashes, Refuse> {
    let io = |e: std::io::Error| Refuse::from(ApiError::from(BlobStoreError::Io(e)));
    let path = blobs.staging_path(staged);
    let held = staged.held;
    let file = tokio::task::spawn_blocking(move || -> std::io::Result<std::fs::File> {
        let f = std::fs::OpenOptions::new().write(true).open(path)?;
        // Whatever a cut request left past `held` is not ours to keep.
        f.set_len(held)?;
        Ok(f)
    })
    .await
    .map_err(|e| Refuse::from(ApiError::from(e)))?
    .map_err(io)?;
    let file = Arc::new(file);
    type Job = tokio::task::JoinHandle<std::io::Result<(Sha256, Option<Sha256>)>>;
    let mut pending: Option<Job> = None;
    let mut hashers = Some((whole, chunk_hash.then(Sha256::new)));
    let mut at = held;
    let mut batch: Vec<u8> = Vec::with_capacity(WRITE_BUFFER_BYTES);
    // Hand `batch` to a blocking thread once the previous batch is done.
    async fn flush(
        file: &Arc<std::fs::File>,
        pending: &mut Option<Job>,
        hashers: &mut Option<(Sha256, Option<Sha256>)>,
        batch: &mut Vec<u8>,
        at: &mut u64,
    ) -> Result<(), Refuse> {
        let (mut whole, mut chunk) = match pending.take() {
            Some(job) => finish_job(job).await?,
            None => hashers.take().expect("hashers are here when no job is"),
        };
        let data = std::mem::replace(batch, Vec::with_capacity(WRITE_BUFFER_BYTES));
        let (file, offset) = (file.clone(), *at);
        *at += data.len() as u64;
        *pending = Some(tokio::task::spawn_blocking(move || {
            use std::os::unix::fs::FileExt;
            whole.update(&data);
            if let Some(c) = &mut chunk {
                c.update(&data);
            }
            file.write_all_at(&data, offset)?;
            // Put the batch on disk now, while the next one is still arriving, rather
            // than all of the blob at the end: the fsync that makes it verified then
            // finds little left to write, and disk and network work at the same time.
            file.sync_data()?;
            Ok((whole, chunk))
        }));
        Ok(())
    }
    async fn finish_job(job: Job) -> Result<(Sha256, Option<Sha256>), Refuse> {
        job.await
            .map_err(|e| Refuse::from(ApiError::from(e)))?
            .map_err(|e| Refuse::from(ApiError::from(BlobStoreError::Io(e))))
    }
    let mut received = 0u64;
    let mut head: Vec<u8> = Vec::new();
    let mut stream = body.into_data_stream();
    let incomplete = |received: u64| {
        Refuse::from(ApiError::bad_request(
            "incomplete_chunk",
            format!("the chunk ended after {received} of {len} bytes; it was not kept"),
        ))
    };
    let result: Result<(), Refuse> = async {
        while let Some(frame) = stream.next().await {
            let bytes = frame.map_err(|_| incomplete(received))?;
            received += bytes.len() as u64;
            if received > len {
                return Err(incomplete(received));
            }
            if let Some(mime) = sniff_as {
                let want = fieldsync_proto::media::SNIFF_BYTES.min(len as usize);
                if head.len() < want {
                    head.extend_from_slice(&bytes[..bytes.len().min(want - head.len())]);
                    if head.len() == want {
                        let found = fieldsync_proto::media::sniff(&head);
                        if found != Some(mime) {
                            return Err(Refuse {
                                error: ApiError::new(
                                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                                    "not_a_photo",
                                    format!(
                                        "the bytes are {}, but the photo record says {mime}; nothing was stored",
                                        found.unwrap_or("not a JPEG, PNG, HEIC or PDF file")
                                    ),
                                ),
                                discard: true,
                            });
                        }
                    }
                }
            }
            batch.extend_from_slice(&bytes);
            if batch.len() >= WRITE_BUFFER_BYTES {
                flush(&file, &mut pending, &mut hashers, &mut batch, &mut at).await?;
            }
        }
        if received != len {
            return Err(incomplete(received));
        }
        if !batch.is_empty() {
            flush(&file, &mut pending, &mut hashers, &mut batch, &mut at).await?;
        }
        Ok(())
    }
    .await;
    // Never return while a write is still running: the caller may truncate next.
    let last = match pending.take() {
        Some(job) => Some(finish_job(job).await),
        None => None,
    };
    result?;
    let (whole, chunk) = match last {
        Some(r) => r?,
        None => hashers.take().expect("hashers are here when no job is"),
    };
    Ok(Hashes {
        whole,
        chunk: chunk.map(|c| hex::encode(c.finalize())),
    })
}

async fn visible_photo(app: &AppState, actor: Actor, id: String) -> Result<EntityState, ApiError> {
    let store = app.store.clone();
    let id2 = id.clone();
    tokio::task::spawn_blocking(move || store.entity(&actor, EntityKind::Photo, &id2))
        .await??
        .ok_or_else(|| ApiError::not_found(format!("no photo {id}, or it is not in your scope")))
}

fn not_uploaded() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_uploaded",
        "the photo's bytes have not reached the server yet",
    )
}

/// A single `bytes=` range over `size` bytes: `(start, end inclusive)`. None when the
/// header asks for something else (served whole, as HTTP allows); Err when unsatisfiable.
fn parse_range(h: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = h.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (a, b) = spec.split_once('-')?;
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        let n: u64 = b.parse().ok()?;
        if n == 0 || size == 0 {
            return Some(Err(()));
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start: u64 = a.parse().ok()?;
        let end: u64 = if b.is_empty() {
            size.saturating_sub(1)
        } else {
            b.parse::<u64>().ok()?.min(size.saturating_sub(1))
        };
        if start >= size || end < start {
            return Some(Err(()));
        }
        (start, end)
    };
    Some(Ok(range))
}

/// `GET /api/v1/photos/{id}/blob`: the bytes, whole or one `Range`.
pub async fn photo_blob(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve_photo(&app, auth.0, id, &headers).await
}

/// Whether the request already holds this version (`If-None-Match`): the bytes behind a
/// photo never change, so a client that revalidates needs no body.
fn not_modified(headers: &HeaderMap, etag: &str) -> Option<Response> {
    let sent = headers.get(header::IF_NONE_MATCH)?.to_str().ok()?;
    sent.split(',').any(|t| t.trim() == etag).then(|| {
        let mut r = StatusCode::NOT_MODIFIED.into_response();
        if let Ok(v) = HeaderValue::from_str(etag) {
            r.headers_mut().insert(header::ETAG, v);
        }
        r
    })
}

/// The bytes of a photo `actor` may see, whole or one `Range`. Shared by the API (bearer
/// token) and the console (session cookie), which differ only in how they authenticate.
pub(crate) async fn serve_photo(
    app: &AppState,
    actor: Actor,
    id: String,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let photo = visible_photo(app, actor, id).await?;
    let (hash, _, mime) = photo_fields(&photo)?;
    let etag = format!("\"{hash}\"");
    let (b, h) = (app.blobs.clone(), hash.clone());
    let (path, size, _) = blocking(move || Ok(b.verified(&h)?))
        .await?
        .ok_or_else(not_uploaded)?;
    if let Some(r) = not_modified(headers, &etag) {
        return Ok(r);
    }
    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|h| parse_range(h, size));
    let (status, start, end) = match range {
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
        Some(Ok((a, b))) => (StatusCode::PARTIAL_CONTENT, a, b),
        Some(Err(())) => {
            let mut resp = ApiError::new(
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range_not_satisfiable",
                format!("the photo has {size} bytes"),
            )
            .into_response();
            resp.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}")).expect("ascii"),
            );
            return Ok(resp);
        }
    };
    let len = if size == 0 { 0 } else { end - start + 1 };
    let mut file = tokio::fs::File::open(&path)
        .await
        .map_err(BlobStoreError::from)?;
    file.seek(std::io::SeekFrom::Start(start))
        .await
        .map_err(BlobStoreError::from)?;
    let stream = tokio_util::io::ReaderStream::new(tokio::io::AsyncReadExt::take(file, len));
    let mut resp = Response::new(Body::from_stream(stream));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&mime)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("hex is ascii"),
    );
    // Content-addressed: these bytes never change.
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    if status == StatusCode::PARTIAL_CONTENT {
        h.insert(
            header::CONTENT_RANGE,
            HeaderValue::from_str(&format!("bytes {start}-{end}/{size}")).expect("ascii"),
        );
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThumbQuery {
    px: Option<u32>,
}

/// `GET /api/v1/photos/{id}/thumbnail?px=N`: a JPEG at most N pixels on its longer side.
pub async fn thumbnail(
    State(app): State<AppState>,
    auth: Auth,
    Path(id): Path<String>,
    query: Result<Query<ThumbQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(|e| ApiError::bad_request("invalid_query", e.body_text()))?;
    let px = q.px.unwrap_or(THUMB_PX_DEFAULT);
    if !(THUMB_PX_MIN..=THUMB_PX_MAX).contains(&px) {
        return Err(ApiError::bad_request(
            "invalid_query",
            format!("px must be from {THUMB_PX_MIN} to {THUMB_PX_MAX}"),
        ));
    }
    serve_thumbnail(&app, auth.0, id, px, &headers).await
}

/// A JPEG thumbnail, at most `px` on its longer side, of a photo `actor` may see. Shared
/// by the API and the console.
pub(crate) async fn serve_thumbnail(
    app: &AppState,
    actor: Actor,
    id: String,
    px: u32,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let photo = visible_photo(app, actor, id).await?;
    let (hash, _, mime) = photo_fields(&photo)?;
    let etag = format!("\"{hash}-{px}\"");
    if !matches!(mime.as_str(), "image/jpeg" | "image/png") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "no_thumbnail",
            format!("thumbnails are made of JPEG and PNG photos, not {mime}; fetch the blob"),
        ));
    }
    let b = app.blobs.clone();
    let (b2, h2) = (b.clone(), hash.clone());
    if blocking(move || Ok(b2.verified(&h2)?)).await?.is_none() {
        return Err(not_uploaded());
    }
    if let Some(r) = not_modified(headers, &etag) {
        return Ok(r);
    }
    let bytes = blocking(move || {
        let path = b.thumbnail(&hash, px).map_err(|e| match e {
            BlobStoreError::Image(why) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "undecodable",
                format!("the photo cannot be decoded: {why}"),
            ),
            other => other.into(),
        })?;
        std::fs::read(path).map_err(|e| BlobStoreError::Io(e).into())
    })
    .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "image/jpeg".to_owned()),
            (header::CACHE_CONTROL, "private, max-age=86400".to_owned()),
            (header::ETAG, etag),
        ],
        bytes,
    )
        .into_response())
}

/// Say, for each photo of an order view, whether the server holds its bytes verified
/// (`stored`) and where to fetch them.
pub fn annotate(
    blobs: &crate::blobstore::BlobStore,
    photos: &mut [fieldsync_proto::view::RecordView],
) {
    for p in photos {
        let stored = p
            .fields
            .get("hash")
            .and_then(|h| h.as_str())
            .is_some_and(|h| matches!(blobs.verified(h), Ok(Some(_))));
        p.fields.insert("stored".into(), stored.into());
        p.fields
            .insert("url".into(), format!("/api/v1/photos/{}/blob", p.id).into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Some(Ok((0, 9))));
        assert_eq!(parse_range("bytes=90-", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=-10", 100), Some(Ok((90, 99))));
        assert_eq!(parse_range("bytes=50-500", 100), Some(Ok((50, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=0-1,5-6", 100), None, "served whole");
        assert_eq!(parse_range("items=0-1", 100), None);
    }
}
