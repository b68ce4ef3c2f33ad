//! The live channel: hold the server's change stream (server-sent events) open and wake
//! the daemon when the server says this user's feed moved. Only a hint: the sync that
//! follows is the ordinary push/pull, so a lost or duplicated event costs nothing.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::sync::Notify;

use crate::client::Client;
use crate::error::AgentError;

/// A stream is replaced after this long, so a connection that died without a FIN cannot
/// leave the device deaf for longer (the server also sends a comment every 15 s).
pub const LIVE_STREAM_LIFETIME_MS: u64 = 10 * 60 * 1_000;
/// Wait between attempts to reopen the stream, plus up to as much again in jitter, so
/// a restarted server is not hit by every device at once.
pub const LIVE_RECONNECT_MS: u64 = 2_000;

/// Stops the stream's task when the daemon stops.
pub struct LiveTask(tokio::task::JoinHandle<()>);

impl Drop for LiveTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Run the live stream beside the daemon; every `feed` event calls `wake.notify_one()`.
pub fn spawn(client: Client, wake: Arc<Notify>) -> LiveTask {
    LiveTask(tokio::spawn(async move {
        let mut connected_before = false;
        loop {
            match client
                .events(Duration::from_millis(LIVE_STREAM_LIFETIME_MS))
                .await
            {
                Ok(mut resp) => {
                    if connected_before {
                        // Events may have been missed while the stream was down.
                        wake.notify_one();
                    }
                    connected_before = true;
                    let mut buf = String::new();
                    while let Ok(Some(chunk)) = resp.chunk().await {
                        buf.push_str(&String::from_utf8_lossy(&chunk));
                        while let Some(end) = buf.find("\n\n") {
                            let event: String = buf.drain(..end + 2).collect();
                            if event.lines().any(|l| l.trim() == "event: feed") {
                                tracing::debug!("live: feed changed");
                                wake.notify_one();
                            }
                        }
                    }
                }
                // The sync loop sees the same refusal and stops the daemon.
                Err(AgentError::Unauthorized(_)) => return,
                Err(e) => tracing::debug!("live stream unavailable: {e}"),
            }
            let jitter = rand::thread_rng().gen_range(0..=LIVE_RECONNECT_MS);
            tokio::time::sleep(Duration::from_millis(LIVE_RECONNECT_MS + jitter)).await;
        }
    }))
}
