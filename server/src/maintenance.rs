//! Preventive maintenance on the server: a periodic run inside `serve`, and the one-off
//! `fieldsync-server maintenance run`. Both call `Store::generate_maintenance`, which is
//! what makes overlapping runs (two servers, a cron job beside a server) create each order
//! once; the rules themselves are in `fieldsync_proto::maintenance`.

use std::sync::Arc;
use std::time::Duration;

use crate::api::now_ms;
use crate::store::{MaintenanceRun, Store, StoreError};

/// Run at once, then every `interval`, for as long as the server serves.
pub async fn run_every(store: Arc<dyn Store>, interval: Duration) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let store = store.clone();
        match tokio::task::spawn_blocking(move || run_once(&*store)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::error!(error = %e, "preventive maintenance run failed; retrying at the next interval")
            }
            Err(e) => tracing::error!(error = %e, "preventive maintenance run panicked"),
        }
    }
}

/// One run now, logged.
pub fn run_once(store: &dyn Store) -> Result<MaintenanceRun, StoreError> {
    let run = store.generate_maintenance(now_ms())?;
    if !run.created.is_empty() || !run.refused.is_empty() {
        tracing::info!(
            plans = run.plans,
            created = run.created.len(),
            existing = run.existing,
            refused = run.refused.len(),
            "preventive maintenance run"
        );
    }
    for (id, why) in &run.refused {
        tracing::warn!(order = %id, reason = %why, "a maintenance plan's order was refused");
    }
    Ok(run)
}
