//! The HTTPS client for the sync API: rustls with the enrolled CA, gzip request bodies, the
//! protocol header on every call, and server errors turned into `AgentError`s.

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use fieldsync_proto::wire::{
    BlobStatus, DigestResponse, EnrollRequest, EnrollResponse, HelloResponse, PullPage,
    PushResponse, CHUNK_SHA256_HEADER, PROTOCOL_HEADER, PROTOCOL_VERSION,
};
use fieldsync_proto::{ErrorBody, Op};
use reqwest::header::{AUTHORIZATION, CONTENT_ENCODING, CONTENT_TYPE};
use reqwest::{RequestBuilder, Response};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::value::RawValue;

use crate::config::Config;
use crate::error::{AgentError, Result};

/// Request bodies at least this large are gzipped; smaller ones are not worth the CPU.
const GZIP_BODY_BYTES_MIN: usize = 1_024;

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// Told about upload bytes as they leave, for the CLI's progress bar.
    progress: Option<Arc<dyn crate::upload::Progress>>,
}

/// One chunk of blob `hash`, for photo record `photo`, starting at `offset`.
pub struct ChunkUpload<'a> {
    pub hash: &'a str,
    pub photo: &'a str,
    pub offset: u64,
    pub body: reqwest::Body,
    pub len: u64,
    /// Lowercase hex SHA-256 of this chunk's bytes, for the server to check the chunk
    /// on its own.
    pub sha256: Option<&'a str>,
    /// For the whole request: a rate-limited chunk takes longer than a normal one.
    pub timeout: Duration,
}

/// A server's answer that refuses a request for a reason worth acting on (not a transport
/// failure, not a 5xx): its status, code, message and details.
#[derive(Clone, Debug, PartialEq)]
pub struct Refusal {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

/// Plain HTTP is for tests and proxies on this machine only; anywhere else the token and
/// the data would cross the network in the clear.
fn check_url(url: &str) -> Result<String> {
    let base = url.trim_end_matches('/').to_owned();
    let parsed = reqwest::Url::parse(&base)
        .map_err(|e| AgentError::Config(format!("server URL {url:?} is not a URL: {e}")))?;
    match parsed.scheme() {
        "https" => Ok(base),
        "http" => {
            let host = parsed.host_str().unwrap_or("");
            let loopback = host == "localhost"
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback());
            if loopback {
                Ok(base)
            } else {
                Err(AgentError::Config(format!(
                    "refusing plain http to {url}: use https (plain http only to a loopback address)"
                )))
            }
        }
        other => Err(AgentError::Config(format!(
            "server URL scheme {other:?} is not https"
        ))),
    }
}

impl Client {
    /// A client for `url`, trusting only `ca_pem` when given (a self-hosted CA), else the
    /// public web roots.
    pub fn new(url: &str, ca_pem: Option<&[u8]>, cfg: &Config) -> Result<Client> {
        let base = check_url(url)?;
        let mut b = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("fieldsync-agent/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(Duration::from_millis(cfg.connect_timeout_ms))
            .timeout(Duration::from_millis(cfg.request_timeout_ms))
            .pool_idle_timeout(Duration::from_secs(60))
            .tls_built_in_root_certs(ca_pem.is_none());
        if let Some(pem) = ca_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| AgentError::Config(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(AgentError::Config(
                    "the CA file holds no certificate".into(),
                ));
            }
            for c in certs {
                b = b.add_root_certificate(c);
            }
        }
        let http = b
            .build()
            .map_err(|e| AgentError::Config(format!("HTTP client: {e}")))?;
        Ok(Client {
            http,
            base,
            token: None,
            progress: None,
        })
    }

    pub fn with_token(mut self, token: &str) -> Client {
        self.token = Some(token.to_owned());
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// Whether requests go over TLS, which authenticates every byte in transit.
    pub fn is_tls(&self) -> bool {
        self.base.starts_with("https://")
    }

    pub fn with_progress(mut self, progress: Arc<dyn crate::upload::Progress>) -> Client {
        self.progress = Some(progress);
        self
    }

    pub fn progress(&self) -> Option<&Arc<dyn crate::upload::Progress>> {
        self.progress.as_ref()
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let mut r = self
            .http
            .request(method, format!("{}{path}", self.base))
            .header(PROTOCOL_HEADER, PROTOCOL_VERSION);
        if let Some(t) = &self.token {
            r = r.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        r
    }

    fn json_body<T: Serialize>(r: RequestBuilder, body: &T) -> RequestBuilder {
        let raw = serde_json::to_vec(body).expect("request serialises");
        let r = r.header(CONTENT_TYPE, "application/json");
        if raw.len() < GZIP_BODY_BYTES_MIN {
            return r.body(raw);
        }
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(raw.len() / 4),
            flate2::Compression::fast(),
        );
        gz.write_all(&raw).expect("writing to memory");
        let zipped = gz.finish().expect("writing to memory");
        r.header(CONTENT_ENCODING, "gzip").body(zipped)
    }

    async fn send<T: DeserializeOwned>(&self, r: RequestBuilder) -> Result<T> {
        let resp = r.send().await.map_err(|e| self.unreachable(e))?;
        decode(resp, &self.base).await
    }

    fn unreachable(&self, e: reqwest::Error) -> AgentError {
        // The innermost cause says the most: "connection refused", "certificate unknown".
        let mut reason = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            reason = s.to_string();
            src = s.source();
        }
        AgentError::Unreachable {
            url: self.base.clone(),
            reason,
        }
    }

    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollResponse> {
        let r = self.request(reqwest::Method::POST, "/api/v1/devices/enroll");
        self.send(Self::json_body(r, req)).await
    }

    pub async fn push(&self, ops: &[Op]) -> Result<PushResponse> {
        /// `PushRequest`, borrowing the ops instead of cloning them.
        #[derive(Serialize)]
        struct Borrowed<'a> {
            ops: &'a [Op],
        }
        let r = self.request(reqwest::Method::POST, "/api/v1/sync/push");
        self.send(Self::json_body(r, &Borrowed { ops })).await
    }

    /// [`Client::push`] of ops as the outbox holds them, their JSON text, which is what
    /// serialising them would give: the agent neither parses nor writes them again.
    pub async fn push_raw(&self, ops: &[Box<RawValue>]) -> Result<PushResponse> {
        #[derive(Serialize)]
        struct Raw<'a> {
            ops: &'a [Box<RawValue>],
        }
        let r = self.request(reqwest::Method::POST, "/api/v1/sync/push");
        self.send(Self::json_body(r, &Raw { ops })).await
    }

    pub async fn pull(&self, cursor: u64, limit: usize) -> Result<PullPage> {
        let r = self.request(
            reqwest::Method::GET,
            &format!("/api/v1/sync/pull?cursor={cursor}&limit={limit}"),
        );
        self.send(r).await
    }

    /// Open the server's live change stream (`GET /api/v1/sync/events`, server-sent
    /// events). `lifetime` bounds the whole stream, so a connection that died silently is
    /// replaced; the caller reopens it.
    pub async fn events(&self, lifetime: Duration) -> Result<Response> {
        let resp = self
            .request(reqwest::Method::GET, "/api/v1/sync/events")
            .timeout(lifetime)
            .send()
            .await
            .map_err(|e| self.unreachable(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        decode::<serde_json::Value>(resp, &self.base).await?;
        Err(AgentError::Invalid(
            "the server did not open the live stream".into(),
        ))
    }

    pub async fn hello(&self) -> Result<HelloResponse> {
        self.send(self.request(reqwest::Method::GET, "/api/v1/sync/hello"))
            .await
    }

    pub async fn digest(&self) -> Result<DigestResponse> {
        self.send(self.request(reqwest::Method::GET, "/api/v1/sync/digest"))
            .await
    }

    /// How much of a blob the server holds.
    pub async fn blob_status(&self, hash: &str) -> Result<BlobStatus> {
        self.send(self.request(reqwest::Method::GET, &format!("/api/v1/blobs/{hash}")))
            .await
    }

    /// Send one chunk. `Ok(Err)` is the server refusing it (offset mismatch, too large,
    /// bad hash...).
    pub async fn put_blob_chunk(
        &self,
        c: ChunkUpload<'_>,
    ) -> Result<std::result::Result<BlobStatus, Refusal>> {
        let mut r = self
            .request(
                reqwest::Method::PUT,
                &format!(
                    "/api/v1/blobs/{}?photo={}&offset={}",
                    c.hash, c.photo, c.offset
                ),
            )
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(reqwest::header::CONTENT_LENGTH, c.len)
            .timeout(c.timeout);
        if let Some(sha) = c.sha256 {
            r = r.header(CHUNK_SHA256_HEADER, sha);
        }
        let r = r.body(c.body);
        let resp = r.send().await.map_err(|e| self.unreachable(e))?;
        let status = resp.status();
        if status.is_success() || status == reqwest::StatusCode::UNAUTHORIZED {
            return decode(resp, &self.base).await.map(Ok);
        }
        if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
            return Err(decode::<serde_json::Value>(resp, &self.base)
                .await
                .expect_err("an error status decodes to an error"));
        }
        let bytes = resp.bytes().await.map_err(|e| AgentError::Unreachable {
            url: self.base.clone(),
            reason: format!("reading the response: {e}"),
        })?;
        Ok(Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(b) => Refusal {
                status: status.as_u16(),
                code: b.error.code,
                message: b.error.message,
                details: b.error.details,
            },
            Err(_) => Refusal {
                status: status.as_u16(),
                code: "http".into(),
                message: String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
                details: None,
            },
        }))
    }
}

async fn decode<T: DeserializeOwned>(resp: Response, url: &str) -> Result<T> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(|e| AgentError::Unreachable {
        url: url.to_owned(),
        reason: format!("reading the response: {e}"),
    })?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map_err(|e| AgentError::Server {
            status: status.as_u16(),
            code: "bad_response".into(),
            message: format!("unexpected response body: {e}"),
        });
    }
    let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
        Ok(b) => (b.error.code, b.error.message),
        Err(_) => (
            "http".to_owned(),
            String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned(),
        ),
    };
    if status == reqwest::StatusCode::UNAUTHORIZED {
        return Err(AgentError::Unauthorized(message));
    }
    Err(AgentError::Server {
        status: status.as_u16(),
        code,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_loopback() {
        assert!(check_url("http://127.0.0.1:9000/").is_ok());
        assert!(check_url("http://localhost:9000").is_ok());
        assert!(check_url("https://fs.example.com").is_ok());
        let err = check_url("http://10.0.0.5:8443").unwrap_err();
        assert!(err.to_string().contains("plain http"), "{err}");
        assert!(check_url("ftp://x").is_err());
        assert!(check_url("not a url").is_err());
    }
}
