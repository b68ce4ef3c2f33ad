//! Live notifications over server-sent events. Every commit moves the store's server
//! sequence (`Store::changes`); a listener wakes on that, checks whether it concerns its
//! subscriber, and sends one small event. Agents then sync at once instead of waiting for
//! their next poll; the console re-reads the page it shows.
//!
//! SSE rather than WebSocket: one direction is all we need, it is plain HTTP (through the
//! same TLS, auth and proxies as every other request), and a dropped stream is simply
//! reopened.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use bytes::Bytes;
use fieldsync_proto::DeviceId;

use crate::api::{ApiError, AppState, Auth};
use crate::store::Store;

/// A comment line this often keeps proxies and NATs from closing an idle stream, and lets
/// the server notice a client that went away.
pub const KEEPALIVE_MS: u64 = 15_000;
/// Commits are coalesced for this long before the console is told: a push of many batches
/// should cause one page refresh, not one per batch.
pub const CONSOLE_COALESCE_MS: u64 = 250;

/// Which devices hold a live stream open right now ("online now" in the console), and the
/// server's shutdown, which ends every stream so graceful shutdown does not wait on them.
#[derive(Default)]
pub struct Live {
    online: Mutex<HashMap<DeviceId, usize>>,
    closing: tokio::sync::watch::Sender<bool>,
}

impl Live {
    pub fn is_online(&self, device: DeviceId) -> bool {
        self.online
            .lock()
            .expect("live registry")
            .get(&device)
            .is_some_and(|n| *n > 0)
    }

    /// End every stream (the server is shutting down).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }

    fn connect(self: &Arc<Self>, device: DeviceId) -> OnlineGuard {
        *self
            .online
            .lock()
            .expect("live registry")
            .entry(device)
            .or_default() += 1;
        OnlineGuard(self.clone(), device)
    }
}

/// Counts a device as online for as long as its stream lives.
struct OnlineGuard(Arc<Live>, DeviceId);

impl Drop for OnlineGuard {
    fn drop(&mut self) {
        let mut online = self.0.online.lock().expect("live registry");
        if let Some(n) = online.get_mut(&self.1) {
            *n -= 1;
            if *n == 0 {
                online.remove(&self.1);
            }
        }
    }
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/v1/sync/events", get(agent_events))
}

/// What a stream waits for next, and what it says when woken.
pub(crate) struct Stream<F> {
    changes: tokio::sync::watch::Receiver<u64>,
    closing: tokio::sync::watch::Receiver<bool>,
    /// Decides, after a commit, whether to send an event; `None` sends nothing.
    check: F,
    coalesce_ms: u64,
    greeted: bool,
    _guard: Option<OnlineGuard>,
}

pub(crate) fn sse_response<F, Fut>(
    app: &AppState,
    check: F,
    coalesce_ms: u64,
    device: Option<DeviceId>,
) -> Response
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Option<String>> + Send,
{
    let st = Stream {
        changes: app.store.changes(),
        closing: app.live.closing.subscribe(),
        check,
        coalesce_ms,
        greeted: false,
        _guard: device.map(|d| app.live.connect(d)),
    };
    let stream = futures_util::stream::unfold(st, |mut st| async move {
        if !st.greeted {
            st.greeted = true;
            // Sent at once so the client knows the stream is up (and tests can wait on it).
            return Some((Ok::<_, std::io::Error>(Bytes::from(": ready\n\n")), st));
        }
        loop {
            if *st.closing.borrow() {
                return None;
            }
            tokio::select! {
                changed = st.changes.changed() => {
                    if changed.is_err() {
                        return None;
                    }
                    if st.coalesce_ms > 0 {
                        tokio::time::sleep(Duration::from_millis(st.coalesce_ms)).await;
                        st.changes.borrow_and_update();
                    }
                    if let Some(event) = (st.check)().await {
                        return Some((Ok(Bytes::from(event)), st));
                    }
                }
                _ = st.closing.changed() => return None,
                _ = tokio::time::sleep(Duration::from_millis(KEEPALIVE_MS)) => {
                    return Some((Ok(Bytes::from_static(b": keepalive\n\n")), st));
                }
            }
        }
    });
    (
        [
            (CONTENT_TYPE, "text/event-stream"),
            (CACHE_CONTROL, "no-store"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

async fn feed_seq(store: Arc<dyn Store>, user: String) -> Option<u64> {
    tokio::task::spawn_blocking(move || store.feed_seq(&user).ok())
        .await
        .ok()
        .flatten()
}

/// `GET /api/v1/sync/events`: an event `feed` whenever the device's user's pull would
/// return something new (a new or changed assignment, a reply to their work).
async fn agent_events(State(app): State<AppState>, auth: Auth) -> Result<Response, ApiError> {
    let device = auth
        .0
        .device
        .ok_or_else(|| ApiError::forbidden("live events need a device token"))?;
    let (store, user) = (app.store.clone(), auth.0.user.clone());
    let start = feed_seq(store.clone(), user.clone()).await.unwrap_or(0);
    let last = Arc::new(std::sync::atomic::AtomicU64::new(start));
    let check = move || {
        let (store, user, last) = (store.clone(), user.clone(), last.clone());
        async move {
            let seq = feed_seq(store, user).await?;
            // A feed row is only ever rewritten with a higher seq, so a larger maximum
            // means something new for this user.
            let before = last.fetch_max(seq, std::sync::atomic::Ordering::AcqRel);
            (seq > before).then(|| format!("event: feed\ndata: {seq}\n\n"))
        }
    };
    Ok(sse_response(&app, check, 0, Some(device)))
}
