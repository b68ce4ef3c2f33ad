//! `fieldsync-server`: serve, manage TLS and users, or run the demo.

use std::io::Read;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fieldsync_proto::Role;
use fieldsync_server::settings::{Settings, SettingsArgs};
use fieldsync_server::{demo, open_store, tls};

#[derive(Parser)]
#[command(name = "fieldsync-server", version, about = "fieldsync central server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct DataDir {
    /// Where the database, certificates and settings live.
    #[arg(long, env = "FIELDSYNC_DATA_DIR")]
    data_dir: Option<PathBuf>,
}

impl DataDir {
    fn get(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            dirs::data_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join("fieldsync-server")
        })
    }
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API over HTTPS with the certificates in DATA_DIR/tls.
    Serve {
        #[command(flatten)]
        dir: DataDir,
        #[command(flatten)]
        settings: SettingsArgs,
    },
    /// Certificates.
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
    /// Users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Write a consistent copy of the database to FILE; safe while the server is serving.
    Backup {
        #[command(flatten)]
        dir: DataDir,
        /// Where to write the backup (must not exist yet).
        #[arg(long)]
        out: PathBuf,
    },
    /// Replace the database with a backup. Stop the server first. The replaced database is
    /// kept beside it, and agents re-send whatever the backup lacks on their next sync.
    Restore {
        #[command(flatten)]
        dir: DataDir,
        /// The backup file to restore.
        #[arg(long)]
        from: PathBuf,
    },
    /// Import customers, sites, assets, work orders, catalog parts, checklist templates,
    /// stock locations or stock movements (opening stock as receipts) from a CSV file whose
    /// header names the fields (and optionally `id`). All or nothing: any bad row imports
    /// nothing and every problem is listed with its row and line. Stop the server first.
    Import {
        #[command(flatten)]
        dir: DataDir,
        /// What the file holds.
        #[arg(value_parser = [
            "customers", "sites", "assets", "work-orders", "parts", "checklist-templates",
            "stock-locations", "stock-movements",
        ])]
        kind: String,
        /// The CSV file (UTF-8, comma-separated, a header row).
        file: PathBuf,
        /// Whose name the imported records carry in their history.
        #[arg(long, default_value = "import")]
        by: String,
    },
    /// Preventive maintenance.
    Maintenance {
        #[command(subcommand)]
        command: MaintenanceCommand,
    },
    /// A server with TLS, users and demo data, printing what to try next.
    Demo {
        #[command(flatten)]
        dir: DataDir,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
    },
}

#[derive(Subcommand)]
enum MaintenanceCommand {
    /// Create the work orders maintenance plans have coming due now (the server also does
    /// this every `maintenance_interval_ms`). Safe beside a running server and other runs:
    /// each plan gets one order per due date.
    Run {
        #[command(flatten)]
        dir: DataDir,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum TlsCommand {
    /// Create a CA and a server certificate for the given host names or addresses.
    Init {
        #[command(flatten)]
        dir: DataDir,
        /// Host name or IP address clients use to reach the server (repeatable).
        #[arg(long = "host", required = true)]
        hosts: Vec<String>,
    },
}

#[derive(Subcommand)]
enum UserCommand {
    /// Add a user; the password is read from standard input.
    Add {
        #[command(flatten)]
        dir: DataDir,
        #[arg(long)]
        name: String,
        #[arg(long, value_parser = ["engineer", "dispatcher", "admin"])]
        role: String,
        /// Read the password from standard input (required: passwords never go in argv).
        #[arg(long, required = true)]
        password_stdin: bool,
    },
}

fn read_password() -> anyhow::Result<String> {
    let mut s = String::new();
    std::io::stdin()
        .read_to_string(&mut s)
        .context("reading password from stdin")?;
    let p = s.trim_end_matches(['\n', '\r']).to_owned();
    anyhow::ensure!(!p.is_empty(), "empty password on stdin");
    Ok(p)
}

fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b'-' | b'@'))
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIELDSYNC_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = real_main(Cli::parse()) {
        eprintln!("fieldsync-server: {e:#}");
        std::process::exit(1);
    }
}

fn real_main(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Tls {
            command: TlsCommand::Init { dir, hosts },
        } => {
            let ca = tls::init(&dir.get(), &hosts)?;
            println!("{}", ca.display());
        }
        Command::User {
            command: UserCommand::Add {
                dir, name, role, ..
            },
        } => {
            anyhow::ensure!(
                valid_user_name(&name),
                "user names are 1-64 letters, digits, '.', '_', '-' or '@'"
            );
            let role = Role::parse(&role).context("unknown role")?;
            let password = read_password()?;
            let hash = fieldsync_server::auth::hash_password(&password)?;
            let store = open_store(&dir.get())?;
            store.add_user(&name, role, &hash, fieldsync_server::api::now_ms())?;
            println!("added {} {name}", role.as_str());
        }
        Command::Serve { dir, settings } => {
            let dir = dir.get();
            let settings = Settings::load(&dir, &settings)?;
            serve(dir, settings, None)?;
        }
        Command::Backup { dir, out } => {
            let summary = fieldsync_server::backup::backup(&dir.get(), &out)?;
            println!("{}", serde_json::to_string(&summary)?);
        }
        Command::Restore { dir, from } => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)?
                .as_millis() as u64;
            let summary = fieldsync_server::backup::restore(&dir.get(), &from, now)?;
            println!("{}", serde_json::to_string(&summary)?);
        }
        Command::Import {
            dir,
            kind,
            file,
            by,
        } => {
            let dir = dir.get();
            let _lock = fieldsync_server::backup::DataDirLock::acquire(&dir)?;
            let store = open_store(&dir)?;
            let kind_named =
                fieldsync_server::import::kind_named(&kind).context("unknown import kind")?;
            let actor = fieldsync_server::store::Actor {
                user: by,
                role: Role::Admin,
                device: None,
            };
            let now = fieldsync_server::api::now_ms();
            let n = fieldsync_server::import::import(&*store, &actor, kind_named, &file, now)
                .with_context(|| format!("importing {}", file.display()))?;
            println!("imported {n} {kind} from {}", file.display());
        }
        Command::Maintenance {
            command: MaintenanceCommand::Run { dir, json },
        } => {
            let dir = dir.get();
            let _lock = fieldsync_server::backup::DataDirLock::acquire_shared(&dir)?;
            let store = open_store(&dir)?;
            let run = fieldsync_server::maintenance::run_once(&*store)?;
            if json {
                println!("{}", serde_json::to_string(&run)?);
            } else {
                println!(
                    "{} plans: created {} orders, {} already existed, {} refused",
                    run.plans,
                    run.created.len(),
                    run.existing,
                    run.refused.len()
                );
                for id in &run.created {
                    println!("  created {id}");
                }
                for (id, why) in &run.refused {
                    println!("  refused {id}: {why}");
                }
            }
        }
        Command::Demo { dir, listen } => {
            let dir = dir
                .data_dir
                .clone()
                .unwrap_or_else(|| PathBuf::from("fieldsync-demo"));
            let hosts = vec![
                "localhost".to_owned(),
                "127.0.0.1".to_owned(),
                listen.ip().to_string(),
            ];
            let ca = demo::ensure_tls(&dir, &hosts)?;
            let seeded = demo::seed(&*open_store(&dir)?)?;
            let settings = Settings {
                listen,
                ..Settings::default()
            };
            let ca = std::fs::canonicalize(&ca).unwrap_or(ca);
            let abs_dir = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
            let note = if seeded {
                ""
            } else {
                "\n(reusing the existing demo data in that dir)"
            };
            // Built once the port is bound, so `--listen 127.0.0.1:0` prints the real one.
            let banner = move |addr: std::net::SocketAddr| {
                let url = if addr.ip().is_loopback() {
                    format!("https://localhost:{}", addr.port())
                } else {
                    format!("https://{addr}")
                };
                format!("{}{note}", demo::instructions(&url, &ca, &abs_dir))
            };
            serve(dir, settings, Some(Box::new(banner)))?;
        }
    }
    Ok(())
}

/// What to print once the server listens, given the address it bound.
type Banner = Box<dyn FnOnce(std::net::SocketAddr) -> String + Send>;

fn serve(dir: PathBuf, settings: Settings, banner: Option<Banner>) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(settings.listen)
            .await
            .with_context(|| format!("listening on {}", settings.listen))?;
        let addr = listener.local_addr()?;
        let scheme = if settings.insecure_http {
            "http"
        } else {
            "https"
        };
        tracing::info!("serving on {scheme}://{addr}");
        if let Some(b) = banner {
            println!("{}", b(addr));
        }
        fieldsync_server::run(
            listener,
            &dir,
            settings,
            fieldsync_server::serve::shutdown_signal(),
        )
        .await
    })
}
