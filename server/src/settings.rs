//! Server settings, layered: defaults, then the TOML file, then `FIELDSYNC_*` environment,
//! then flags (clap reads the environment for each flag, so a flag beats its variable).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use fieldsync_proto::limits;
use serde::Deserialize;

/// Default daily photo quota per device: a day of heavy site work (a few hundred
/// full-size photos) fits; a device stuck re-sending the same bytes does not fill the disk.
pub const DEVICE_UPLOAD_BYTES_PER_DAY: u64 = 4 * 1024 * 1024 * 1024;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub listen: SocketAddr,
    /// Serve plain HTTP. Refused unless `listen` is a loopback address.
    pub insecure_http: bool,
    pub push_batch_ops_max: usize,
    pub pull_page_entities_max: usize,
    pub request_body_bytes_max: usize,
    pub clock_skew_ms_max: u64,
    pub session_ttl_ms: u64,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace_ms: u64,
    /// Largest photo (or scanned document) accepted, in bytes.
    pub photo_bytes_max: u64,
    /// Photo bytes one device may send per UTC day.
    pub device_upload_bytes_per_day: u64,
    /// Largest chunk in one upload request, in bytes.
    pub upload_chunk_bytes_max: usize,
    /// How often preventive-maintenance plans are checked for orders coming due; 0 turns
    /// the server's own runs off (`fieldsync-server maintenance run` still works).
    pub maintenance_interval_ms: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: "0.0.0.0:8443".parse().expect("valid default address"),
            insecure_http: false,
            push_batch_ops_max: limits::PUSH_BATCH_OPS_MAX,
            pull_page_entities_max: limits::PULL_PAGE_ENTITIES_MAX,
            request_body_bytes_max: limits::REQUEST_BODY_BYTES_MAX,
            clock_skew_ms_max: limits::CLOCK_SKEW_MS_MAX,
            session_ttl_ms: 12 * 3600 * 1000,
            shutdown_grace_ms: 10_000,
            photo_bytes_max: limits::PHOTO_BYTES_MAX,
            device_upload_bytes_per_day: DEVICE_UPLOAD_BYTES_PER_DAY,
            upload_chunk_bytes_max: limits::UPLOAD_CHUNK_BYTES_MAX,
            maintenance_interval_ms: 15 * 60 * 1000,
        }
    }
}

/// Values given by flags or environment; each overrides the file when set.
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SettingsArgs {
    /// Address to listen on, e.g. 0.0.0.0:8443.
    #[arg(long, env = "FIELDSYNC_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Serve plain HTTP instead of HTTPS; only allowed on a loopback address.
    #[arg(long, env = "FIELDSYNC_INSECURE_HTTP")]
    pub insecure_http: bool,
    /// Settings file (TOML). Default: DATA_DIR/server.toml when it exists.
    #[arg(long, env = "FIELDSYNC_CONFIG")]
    pub config: Option<PathBuf>,
    /// Most ops accepted in one push.
    #[arg(long, env = "FIELDSYNC_PUSH_BATCH_OPS_MAX")]
    pub push_batch_ops_max: Option<usize>,
    /// Most entities sent in one pull page.
    #[arg(long, env = "FIELDSYNC_PULL_PAGE_ENTITIES_MAX")]
    pub pull_page_entities_max: Option<usize>,
    /// Largest request body, in bytes, after decompression.
    #[arg(long, env = "FIELDSYNC_REQUEST_BODY_BYTES_MAX")]
    pub request_body_bytes_max: Option<usize>,
    /// How far ahead of the server clock an op timestamp may be, in ms.
    #[arg(long, env = "FIELDSYNC_CLOCK_SKEW_MS_MAX")]
    pub clock_skew_ms_max: Option<u64>,
    /// Largest photo accepted, in bytes.
    #[arg(long, env = "FIELDSYNC_PHOTO_BYTES_MAX")]
    pub photo_bytes_max: Option<u64>,
    /// Photo bytes one device may send per UTC day.
    #[arg(long, env = "FIELDSYNC_DEVICE_UPLOAD_BYTES_PER_DAY")]
    pub device_upload_bytes_per_day: Option<u64>,
    /// Largest chunk in one photo upload request, in bytes.
    #[arg(long, env = "FIELDSYNC_UPLOAD_CHUNK_BYTES_MAX")]
    pub upload_chunk_bytes_max: Option<usize>,
    /// How often maintenance plans are checked for orders coming due, in ms (0: never).
    #[arg(long, env = "FIELDSYNC_MAINTENANCE_INTERVAL_MS")]
    pub maintenance_interval_ms: Option<u64>,
}

impl Settings {
    pub fn load(data_dir: &Path, args: &SettingsArgs) -> anyhow::Result<Settings> {
        let file = args
            .config
            .clone()
            .or_else(|| Some(data_dir.join("server.toml")).filter(|p| p.exists()));
        let mut s = match file {
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .with_context(|| format!("reading settings file {}", path.display()))?;
                toml::from_str(&text)
                    .with_context(|| format!("in settings file {}", path.display()))?
            }
            None => Settings::default(),
        };
        if let Some(v) = args.listen {
            s.listen = v;
        }
        s.insecure_http |= args.insecure_http;
        macro_rules! over {
            ($($f:ident),*) => { $(if let Some(v) = args.$f { s.$f = v; })* };
        }
        over!(
            push_batch_ops_max,
            pull_page_entities_max,
            request_body_bytes_max,
            clock_skew_ms_max,
            photo_bytes_max,
            device_upload_bytes_per_day,
            upload_chunk_bytes_max,
            maintenance_interval_ms
        );
        s.check()?;
        Ok(s)
    }

    pub fn check(&self) -> anyhow::Result<()> {
        if self.insecure_http && !self.listen.ip().is_loopback() {
            anyhow::bail!(
                "--insecure-http is only allowed on a loopback address, not {}",
                self.listen
            );
        }
        anyhow::ensure!(
            self.push_batch_ops_max > 0,
            "push_batch_ops_max must be positive"
        );
        anyhow::ensure!(
            self.pull_page_entities_max > 0,
            "pull_page_entities_max must be positive"
        );
        anyhow::ensure!(self.photo_bytes_max > 0, "photo_bytes_max must be positive");
        anyhow::ensure!(
            self.upload_chunk_bytes_max > 0,
            "upload_chunk_bytes_max must be positive"
        );
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
            dir.path().join("server.toml"),
            "push_batch_ops_max = 7\npull_page_entities_max = 9\n",
        )
        .unwrap();
        let args = SettingsArgs {
            pull_page_entities_max: Some(11),
            ..Default::default()
        };
        let s = Settings::load(dir.path(), &args).unwrap();
        assert_eq!(s.push_batch_ops_max, 7, "file beats default");
        assert_eq!(s.pull_page_entities_max, 11, "flag beats file");
    }

    #[test]
    fn refuses_unknown_keys_and_public_plain_http() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.toml"), "push_batch_max = 7\n").unwrap();
        let err = Settings::load(dir.path(), &SettingsArgs::default()).unwrap_err();
        assert!(format!("{err:#}").contains("push_batch_max"), "{err:#}");
        let args = SettingsArgs {
            insecure_http: true,
            listen: Some("0.0.0.0:80".parse().unwrap()),
            ..Default::default()
        };
        let empty = tempfile::tempdir().unwrap();
        assert!(Settings::load(empty.path(), &args).is_err());
    }
}
