//! fieldsync-server: the central server. HTTPS API over a `Store`, the per-user change
//! feeds that scope every pull, and the CLI's building blocks.

pub mod api;
pub mod auth;
pub mod backup;
pub mod blobstore;
pub mod console;
pub mod demo;
pub mod import;
pub mod live;
pub mod maintenance;
pub mod serve;
pub mod settings;
pub mod store;
pub mod tls;

/// The wall clock, in Unix ms: one definition for the API, the store and the blob store.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;

pub use settings::Settings;
pub use store::{SqliteStore, Store};

/// The store file inside a data dir.
pub fn db_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("fieldsync.db")
}

/// The blob store (photos) inside a data dir.
pub fn blobs_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("blobs")
}

pub fn open_store(data_dir: &Path) -> anyhow::Result<Arc<dyn Store>> {
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating data dir {}", data_dir.display()))?;
    let path = db_path(data_dir);
    let store = SqliteStore::open(&path).with_context(|| format!("opening {}", path.display()))?;
    Ok(Arc::new(store))
}

/// Serve `data_dir` on `listener` until `shutdown` resolves. HTTPS with `DIR/tls` unless
/// `settings.insecure_http`, which is refused off loopback. Tests call this in-process on
/// `127.0.0.1:0`.
pub async fn run(
    listener: TcpListener,
    data_dir: &Path,
    mut settings: Settings,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<()> {
    // Held while serving, so `restore` cannot swap the database out from under us.
    let _lock = backup::DataDirLock::acquire_shared(data_dir)?;
    let local = listener.local_addr()?;
    settings.listen = local;
    settings.check()?;
    let tls = if settings.insecure_http {
        None
    } else {
        Some(tls::server_config(data_dir)?)
    };
    let store = open_store(data_dir)?;
    let blobs = blobstore::BlobStore::open(&blobs_path(data_dir))
        .with_context(|| format!("opening the blob store in {}", data_dir.display()))?;
    let grace = Duration::from_millis(settings.shutdown_grace_ms);
    let live = Arc::new(live::Live::default());
    let maintenance = (settings.maintenance_interval_ms > 0).then(|| {
        tokio::spawn(maintenance::run_every(
            store.clone(),
            Duration::from_millis(settings.maintenance_interval_ms),
        ))
    });
    let app = api::router(api::AppState {
        store,
        settings: Arc::new(settings),
        blobs: Arc::new(blobs),
        live: live.clone(),
        pushed: Arc::default(),
    });
    // Live streams never end on their own; close them so shutdown does not wait out its
    // grace period on them.
    let shutdown = async move {
        shutdown.await;
        live.close();
    };
    let served = serve::run(listener, app, tls, shutdown, grace).await;
    if let Some(m) = maintenance {
        m.abort();
    }
    served?;
    Ok(())
}
