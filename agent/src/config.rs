//! Agent settings, layered: defaults, then `DATA_DIR/agent.toml`, then `FIELDSYNC_*`
//! environment, then flags (clap reads the environment for each flag, so a flag beats its
//! variable).

use std::path::{Path, PathBuf};

use fieldsync_proto::limits::{PHOTO_BYTES_MAX, UPLOAD_CHUNK_BYTES_MAX};
use serde::Deserialize;

use crate::blob::Backend;
use crate::error::{AgentError, Result};

/// Smallest upload chunk: below this, per-request overhead dominates.
pub const UPLOAD_CHUNK_BYTES_MIN: usize = 4 * 1024;

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Ops sent in one push request (the server accepts at most its own bound).
    pub push_batch_ops_max: usize,
    /// Entities asked for in one pull page.
    pub pull_page_entities_max: usize,
    /// Give up on one request after this long.
    pub request_timeout_ms: u64,
    pub connect_timeout_ms: u64,
    /// First retry delay of the daemon after a failed sync; doubles per failure.
    pub retry_delay_ms_base: u64,
    /// The retry delay never grows beyond this.
    pub retry_delay_ms_max: u64,
    /// How often the daemon syncs when everything works.
    pub poll_interval_ms: u64,
    /// Where photo bytes live on this device: `files` or `sled` (see the README's
    /// benchmark). Changing it does not move photos already stored.
    pub blob_store: Backend,
    /// Largest photo accepted at import, in bytes.
    pub photo_bytes_max: u64,
    /// Bytes per upload request: a cut connection re-sends at most this much.
    pub upload_chunk_bytes: usize,
    /// Upload rate limit in kilobits per second, for metered links; 0 = no limit.
    pub max_upload_kbps: u64,
    /// Days a photo's local copy is kept after import; it is deleted only once the
    /// server has verified it, and never before this.
    pub photo_retention_days: u64,
    /// How long a file in the inbox must stay unchanged before it is imported, in ms.
    pub inbox_settle_ms: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            push_batch_ops_max: 500,
            pull_page_entities_max: 2_000,
            request_timeout_ms: 30_000,
            connect_timeout_ms: 10_000,
            retry_delay_ms_base: 1_000,
            retry_delay_ms_max: 60_000,
            poll_interval_ms: 15_000,
            blob_store: Backend::Files,
            photo_bytes_max: PHOTO_BYTES_MAX,
            upload_chunk_bytes: 1024 * 1024,
            max_upload_kbps: 0,
            photo_retention_days: 30,
            inbox_settle_ms: 2_000,
        }
    }
}

/// Values given by flags or environment; each overrides the file when set.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ConfigArgs {
    /// Settings file (TOML). Default: DATA_DIR/agent.toml when it exists.
    #[arg(long, env = "FIELDSYNC_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    /// Most ops sent in one push.
    #[arg(long, env = "FIELDSYNC_PUSH_BATCH_OPS_MAX", global = true)]
    pub push_batch_ops_max: Option<usize>,
    /// Most entities asked for in one pull page.
    #[arg(long, env = "FIELDSYNC_PULL_PAGE_ENTITIES_MAX", global = true)]
    pub pull_page_entities_max: Option<usize>,
    /// Timeout of one request, in ms.
    #[arg(long, env = "FIELDSYNC_REQUEST_TIMEOUT_MS", global = true)]
    pub request_timeout_ms: Option<u64>,
    /// First delay before the daemon retries a failed sync, in ms (doubles per failure).
    #[arg(long, env = "FIELDSYNC_RETRY_DELAY_MS_BASE", global = true)]
    pub retry_delay_ms_base: Option<u64>,
    /// Longest delay between the daemon's retries, in ms.
    #[arg(long, env = "FIELDSYNC_RETRY_DELAY_MS_MAX", global = true)]
    pub retry_delay_ms_max: Option<u64>,
    /// How often the daemon syncs, in ms.
    #[arg(long, env = "FIELDSYNC_POLL_INTERVAL_MS", global = true)]
    pub poll_interval_ms: Option<u64>,
    /// Photo store backend on this device: files or sled.
    #[arg(long, env = "FIELDSYNC_BLOB_STORE", global = true, value_enum)]
    pub blob_store: Option<Backend>,
    /// Largest photo accepted at import, in bytes.
    #[arg(long, env = "FIELDSYNC_PHOTO_BYTES_MAX", global = true)]
    pub photo_bytes_max: Option<u64>,
    /// Bytes per photo upload request (a cut connection re-sends at most this much).
    #[arg(long, env = "FIELDSYNC_UPLOAD_CHUNK_BYTES", global = true)]
    pub upload_chunk_bytes: Option<usize>,
    /// Photo upload rate limit in kilobits per second, for metered links (0: none).
    #[arg(long, env = "FIELDSYNC_MAX_UPLOAD_KBPS", global = true)]
    pub max_upload_kbps: Option<u64>,
    /// Days a photo's local copy is kept after import (deleted only once the server has
    /// verified it).
    #[arg(long, env = "FIELDSYNC_PHOTO_RETENTION_DAYS", global = true)]
    pub photo_retention_days: Option<u64>,
    /// How long an inbox file must stay unchanged before it is imported, in ms.
    #[arg(long, env = "FIELDSYNC_INBOX_SETTLE_MS", global = true)]
    pub inbox_settle_ms: Option<u64>,
}

impl Config {
    pub fn load(data_dir: &Path, args: &ConfigArgs) -> Result<Config> {
        let file = args
            .config
            .clone()
            .or_else(|| Some(data_dir.join("agent.toml")).filter(|p| p.exists()));
        let mut c = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    AgentError::Config(format!("reading settings file {}: {e}", path.display()))
                })?;
                toml::from_str(&text).map_err(|e| {
                    AgentError::Config(format!("in settings file {}: {e}", path.display()))
                })?
            }
            None => Config::default(),
        };
        macro_rules! over {
            ($($f:ident),*) => { $(if let Some(v) = args.$f { c.$f = v; })* };
        }
        over!(
            push_batch_ops_max,
            pull_page_entities_max,
            request_timeout_ms,
            retry_delay_ms_base,
            retry_delay_ms_max,
            poll_interval_ms,
            blob_store,
            photo_bytes_max,
            upload_chunk_bytes,
            max_upload_kbps,
            photo_retention_days,
            inbox_settle_ms
        );
        c.check()?;
        Ok(c)
    }

    fn check(&self) -> Result<()> {
        let bad = |m: &str| Err(AgentError::Config(m.to_owned()));
        if self.push_batch_ops_max == 0
            || self.push_batch_ops_max > fieldsync_proto::limits::PUSH_BATCH_OPS_MAX
        {
            return bad("push_batch_ops_max must be between 1 and 1000");
        }
        if self.pull_page_entities_max == 0 {
            return bad("pull_page_entities_max must be positive");
        }
        if !(UPLOAD_CHUNK_BYTES_MIN..=UPLOAD_CHUNK_BYTES_MAX).contains(&self.upload_chunk_bytes) {
            return Err(AgentError::Config(format!(
                "upload_chunk_bytes must be between {UPLOAD_CHUNK_BYTES_MIN} and {UPLOAD_CHUNK_BYTES_MAX}"
            )));
        }
        if self.photo_bytes_max == 0 {
            return bad("photo_bytes_max must be positive");
        }
        if self.retry_delay_ms_base == 0 || self.retry_delay_ms_max < self.retry_delay_ms_base {
            return bad(
                "retry_delay_ms_max must be at least retry_delay_ms_base, which must be positive",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("agent.toml"),
            "push_batch_ops_max = 50\npoll_interval_ms = 2000\n",
        )
        .unwrap();
        let args = ConfigArgs {
            poll_interval_ms: Some(700),
            ..Default::default()
        };
        let c = Config::load(dir.path(), &args).unwrap();
        assert_eq!(c.push_batch_ops_max, 50, "from the file");
        assert_eq!(c.poll_interval_ms, 700, "flag beats file");
        assert_eq!(c.retry_delay_ms_max, Config::default().retry_delay_ms_max);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("agent.toml"), "push_batch_size = 5\n").unwrap();
        let err = Config::load(dir.path(), &ConfigArgs::default()).unwrap_err();
        assert!(err.to_string().contains("push_batch_size"), "{err}");
        std::fs::write(dir.path().join("agent.toml"), "push_batch_ops_max = 0\n").unwrap();
        assert!(Config::load(dir.path(), &ConfigArgs::default()).is_err());
    }
}
