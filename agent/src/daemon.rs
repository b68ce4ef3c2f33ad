//! `fieldsync daemon`: sync now, then again every poll interval; after a failure, retry
//! with capped exponential backoff and jitter. Stops cleanly on Ctrl-C or SIGTERM, never in
//! the middle of a store transaction (those are synchronous and short).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;

use crate::backoff::retry_delay_ms;
use crate::client::Client;
use crate::config::Config;
use crate::error::{AgentError, Result};
use crate::store::Store;
use crate::sync::sync_once;

pub async fn run(
    store: &mut Store,
    client: &Client,
    cfg: &Config,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    tokio::pin!(shutdown);
    // The photo inbox is watched beside the sync loop; an import cuts the wait short so
    // the photo goes up without waiting for the next poll.
    let imported = Arc::new(tokio::sync::Notify::new());
    let _inbox = crate::inbox::spawn_watcher(store.dir(), cfg, imported.clone())?;
    // The server's live stream: a new or changed assignment wakes the loop at once, so it
    // reaches an online device within a second instead of at the next poll. Polling stays
    // as the fallback for when the stream is down.
    let pushed = Arc::new(tokio::sync::Notify::new());
    let _live = crate::live::spawn(client.clone(), pushed.clone());
    let mut failures: u32 = 0;
    loop {
        let wait_ms = tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = sync_once(store, client, cfg) => match r {
                Ok(report) => {
                    failures = 0;
                    tracing::info!(
                        pushed = report.pushed, pulled = report.pulled,
                        pending = report.pending, rejected = report.rejected,
                        in_sync = ?report.in_sync, "synced"
                    );
                    if let Some(w) = report.clock_warning() {
                        tracing::warn!("{w}");
                    }
                    cfg.poll_interval_ms
                }
                Err(e @ (AgentError::Unauthorized(_) | AgentError::NotEnrolled)) => return Err(e),
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = retry_delay_ms(
                        failures,
                        cfg.retry_delay_ms_base,
                        cfg.retry_delay_ms_max,
                        rand::thread_rng().gen(),
                    );
                    tracing::warn!(failures, retry_in_ms = delay, "sync failed: {e}");
                    delay
                }
            },
        };
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            _ = tokio::time::sleep(Duration::from_millis(wait_ms)) => {}
            _ = imported.notified(), if failures == 0 => {}
            _ = pushed.notified() => {}
        }
    }
}
