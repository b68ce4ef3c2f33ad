//! Named bounds shared by agent and server. Every queue, batch and page has one; the
//! server's copies are defaults that its settings may lower or raise.

/// Ops in one push request.
pub const PUSH_BATCH_OPS_MAX: usize = 1_000;
/// Entities (and departures) in one pull page.
pub const PULL_PAGE_ENTITIES_MAX: usize = 2_000;
/// Uncompressed bytes of one request body.
pub const REQUEST_BODY_BYTES_MAX: usize = 4 * 1024 * 1024;
/// How far ahead of the server's clock an op's timestamp may be.
pub const CLOCK_SKEW_MS_MAX: u64 = 5 * 60 * 1_000;
/// Fields set by one op.
pub const OP_FIELDS_MAX: usize = 32;
/// Default size limit of one photo (or scanned document) on the server; a setting there.
pub const PHOTO_BYTES_MAX: u64 = 50 * 1024 * 1024;
/// Hard bound of a photo record's `size` field, whatever a server is set to accept.
pub const PHOTO_SIZE_FIELD_MAX: i64 = 1 << 32;
/// Bytes in one blob upload request (one chunk); a server setting may lower it.
pub const UPLOAD_CHUNK_BYTES_MAX: usize = 16 * 1024 * 1024;
