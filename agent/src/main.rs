//! `fieldsync`: the field engineer's offline agent.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use fieldsync_agent::actions::{self, Progress};
use fieldsync_agent::client::Client;
use fieldsync_agent::config::{Config, ConfigArgs};
use fieldsync_agent::store::Store;
use fieldsync_agent::sync::sync_once;
use fieldsync_agent::{blob, contact, daemon, inbox, photos, report, stock, AgentError};
use serde_json::json;

mod output;

#[derive(Parser)]
#[command(
    name = "fieldsync",
    version,
    about = "fieldsync agent: your work orders, offline"
)]
struct Cli {
    /// Where the agent keeps its store. Default: the platform data dir.
    #[arg(long, env = "FIELDSYNC_DATA_DIR", global = true)]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    config: ConfigArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Register this device with the server (needs the network once).
    Enroll {
        /// Server URL, e.g. https://fieldsync.example.com:8443
        #[arg(long)]
        server: String,
        /// CA certificate (PEM) of a self-hosted server.
        #[arg(long)]
        ca_cert: Option<PathBuf>,
        #[arg(long)]
        user: String,
        /// Read the password from standard input.
        #[arg(long, required = true)]
        password_stdin: bool,
        /// A name for this device, shown to dispatchers.
        #[arg(long)]
        device_name: Option<String>,
    },
    /// Your work orders.
    Orders {
        #[arg(long)]
        json: bool,
    },
    /// One work order with its customer, site, asset, notes, parts and conflicts.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Report progress on an order.
    Progress {
        id: String,
        state: Progress,
        /// What was done (with `completed`).
        #[arg(long)]
        resolution: Option<String>,
    },
    /// Add a note to an order.
    Note { id: String, text: String },
    /// Parts fitted on an order, and faulty parts sent back.
    Parts {
        #[command(subcommand)]
        command: PartsCommand,
    },
    /// Your van's stock, offline: on hand per part, with low-stock and overdraw flags.
    Stock {
        #[arg(long)]
        json: bool,
    },
    /// Ask the office for parts into your van (offline), and see their decisions.
    Requisition {
        #[command(subcommand)]
        command: RequisitionCommand,
    },
    /// Edit an order's shared fields.
    Edit {
        id: String,
        #[arg(long)]
        description: String,
    },
    /// Send pending changes and receive new ones now.
    Sync {
        #[arg(long)]
        json: bool,
    },
    /// This device: enrollment, pending and refused changes, last sync.
    Info {
        #[arg(long)]
        json: bool,
    },
    /// Keep syncing in the background, backing off while the server is unreachable, and
    /// import photos dropped into DATA_DIR/inbox/<order-id>/.
    Daemon,
    /// Attach photos and scanned documents.
    Photo {
        #[command(subcommand)]
        command: PhotoCommand,
    },
    /// The photos this device attached to an order: upload state, and files refused.
    Photos {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// The knowledge base, offline.
    Kb {
        #[command(subcommand)]
        command: KbCommand,
    },
    /// The order's checklist (by its work type): show it, or record answers.
    Checklist {
        id: String,
        /// An answer, `ITEM=VALUE` (repeatable): yes/no items take yes or no, number
        /// items a number. Answering again adds a newer answer; earlier ones stay visible.
        #[arg(long = "answer", value_name = "ITEM=VALUE", value_parser = item_value)]
        answers: Vec<(String, String)>,
        #[arg(long)]
        json: bool,
    },
    /// Record labour or travel time on an order, in minutes (one entry each time).
    #[command(group(clap::ArgGroup::new("activity").required(true).args(["labour", "travel"])))]
    Time {
        id: String,
        /// Minutes of work on site (1-1440).
        #[arg(long, value_name = "MIN", allow_negative_numbers = true)]
        labour: Option<i64>,
        /// Minutes of travel to or from the site (1-1440).
        #[arg(long, value_name = "MIN", allow_negative_numbers = true)]
        travel: Option<i64>,
        /// What the time was for.
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Record the order's resolution, fault code and root cause.
    Resolve {
        id: String,
        #[arg(long)]
        resolution: Option<String>,
        #[arg(long)]
        fault_code: Option<String>,
        #[arg(long)]
        root_cause: Option<String>,
    },
    /// The customer's sign-off: their name and a signature image (PNG or JPEG).
    Signoff {
        id: String,
        /// Who signed (the customer's representative).
        #[arg(long)]
        name: String,
        /// The signature image, PNG or JPEG, at most 1 MiB; left where it is.
        #[arg(long, value_name = "FILE.png")]
        signature: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// The customer's satisfaction, 1 (very poor) to 5 (excellent).
    Rate {
        id: String,
        /// 1 to 5.
        #[arg(allow_negative_numbers = true)]
        score: i64,
        /// The customer's words.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Log a call, email or visit with the customer about an order you hold.
    Contact {
        id: String,
        /// call, email, visit or other.
        #[arg(long)]
        channel: String,
        /// What was said or agreed.
        #[arg(long)]
        summary: String,
        /// in (the customer reached us) or out (we reached them).
        #[arg(long)]
        direction: Option<String>,
        /// The person spoken to.
        #[arg(long)]
        contact: Option<String>,
        /// When it happened, YYYY-MM-DD HH:MM UTC (default: now).
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Void a record added by mistake (note, part usage, photo, checklist answer, time
    /// entry, sign-off, rating). Records are never edited: void, then add the right one.
    Void { record: String },
    /// An asset's service history: every order on it this device holds.
    History {
        asset: String,
        #[arg(long)]
        json: bool,
    },
    /// The printable service report of an order, as HTML, offline.
    Report {
        id: String,
        /// Write it here instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
        /// en or zh-CN.
        #[arg(long, default_value = "en")]
        lang: String,
    },
}

/// `ITEM=VALUE` of `--answer`.
fn item_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_owned(), v.to_owned())),
        _ => Err(format!("expected ITEM=VALUE, got {s:?}")),
    }
}

#[derive(Subcommand)]
enum KbCommand {
    /// Articles containing every word given (any language, any part of a word).
    Search {
        #[arg(required = true)]
        words: Vec<String>,
        /// Most articles to list (at most 20).
        #[arg(long, default_value_t = 10)]
        limit: usize,
        #[arg(long)]
        json: bool,
    },
    /// One article in full.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PhotoCommand {
    /// Attach a photo (JPEG, PNG, HEIC) or a scanned document (PDF) to an order. The file
    /// is copied into this device's photo store and left where it is.
    Add {
        id: String,
        file: PathBuf,
        #[arg(long)]
        caption: Option<String>,
    },
    /// Import what is in DATA_DIR/inbox/<order-id>/ now, without the daemon.
    Scan {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum PartsCommand {
    /// Record parts fitted on an order, out of your van. Recorded even when the van shows
    /// none left: the overdraw is flagged for the office, never refused.
    Use {
        id: String,
        #[arg(long)]
        sku: String,
        #[arg(long, allow_negative_numbers = true)]
        qty: i64,
        /// The unit's serial number (needed for serial-tracked parts, one unit at a time).
        #[arg(long)]
        serial: Option<String>,
    },
    /// Send a faulty part back (RMA): the unit taken out of the customer's equipment
    /// (`--order`), or a unit of your van's stock that is dead on arrival (`--from-van`).
    Return {
        #[arg(long)]
        sku: String,
        #[arg(long, allow_negative_numbers = true, default_value_t = 1)]
        qty: i64,
        /// The work order it came from.
        #[arg(long)]
        order: Option<String>,
        /// It was a unit of your van's stock.
        #[arg(long)]
        from_van: bool,
        /// The warehouse it goes to (id or name).
        #[arg(long)]
        to: Option<String>,
        #[arg(long)]
        serial: Option<String>,
        /// What is wrong with it.
        #[arg(long)]
        reason: Option<String>,
    },
}

#[derive(Subcommand)]
enum RequisitionCommand {
    /// Ask for parts into your van; a dispatcher approves or rejects it in the console.
    Add {
        #[arg(long)]
        sku: String,
        #[arg(long, allow_negative_numbers = true)]
        qty: i64,
        /// The warehouse to take them from (id or name), if you know it.
        #[arg(long)]
        from: Option<String>,
        /// The work order they are for.
        #[arg(long)]
        order: Option<String>,
        #[arg(long)]
        note: Option<String>,
    },
    /// Your requisitions and their status, newest first.
    List {
        #[arg(long)]
        json: bool,
    },
}

fn data_dir(cli: &Cli) -> PathBuf {
    cli.data_dir.clone().unwrap_or_else(|| {
        dirs::data_dir()
            .unwrap_or_else(|| PathBuf::from("."))
            .join("fieldsync")
    })
}

const AGENT_NETWORK_THREADS: usize = 1;

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // The calling thread runs the store; one worker drives the network, so a push batch is
    // on the wire while the previous acknowledgement is folded in. No more: the agent
    // should stay small on an old laptop.
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(AGENT_NETWORK_THREADS)
        .enable_all()
        .build()?)
}

/// The client for the enrolled server, or for `FIELDSYNC_SERVER` when set (same CA and
/// token; e.g. to go through a proxy).
fn client(store: &Store, cfg: &Config) -> Result<Client, AgentError> {
    let who = store.require_enrollment()?;
    let url = std::env::var("FIELDSYNC_SERVER")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or(who.server);
    let ca = match store.ca_path() {
        Some(p) => Some(
            std::fs::read(&p)
                .map_err(|e| AgentError::Config(format!("reading {}: {e}", p.display())))?,
        ),
        None => None,
    };
    let client = Client::new(&url, ca.as_deref(), cfg)?.with_token(&who.token);
    // A progress bar only for a person watching: never in logs, pipes or scripts.
    Ok(if std::io::stderr().is_terminal() {
        client.with_progress(Arc::new(output::UploadBar::default()))
    } else {
        client
    })
}

fn print_json(v: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let dir = data_dir(&cli);
    let cfg = Config::load(&dir, &cli.config)?;
    let mut store = Store::open(&dir)?;
    match cli.command {
        Command::Enroll {
            server,
            ca_cert,
            user,
            password_stdin: _,
            device_name,
        } => {
            let ca = ca_cert
                .map(|p| std::fs::read(&p).with_context(|| format!("reading {}", p.display())))
                .transpose()?;
            let mut password = String::new();
            std::io::stdin()
                .read_to_string(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            let name = device_name.or_else(|| std::env::var("HOSTNAME").ok());
            let resp = runtime()?.block_on(actions::enroll(
                &mut store,
                &server,
                ca.as_deref(),
                &user,
                password,
                name,
                &cfg,
            ))?;
            println!(
                "enrolled as device {} for {} ({}); run `fieldsync sync` to fetch your work",
                resp.device_id,
                resp.user,
                resp.role.as_str()
            );
        }
        Command::Orders { json } => {
            let orders = store.orders()?;
            if json {
                print_json(&orders);
            } else {
                output::orders(&orders);
            }
        }
        Command::Show { id, json } => {
            let id = store.resolve_order(&id)?;
            let view = store
                .order_view(&id)?
                .ok_or_else(|| AgentError::NoSuchOrder(id.0.clone()))?;
            let in_scope = !store.order_left_scope(&id)?;
            if json {
                let mut v = serde_json::to_value(&view)?;
                v["in_scope"] = json!(in_scope);
                print_json(&v);
            } else {
                if !in_scope {
                    println!("NO LONGER ASSIGNED TO YOU (kept read-only for your own changes)");
                }
                output::order(&view);
            }
        }
        Command::Progress {
            id,
            state,
            resolution,
        } => {
            let id = store.resolve_order(&id)?;
            actions::progress(&mut store, &id, state, resolution.as_deref())?;
            println!("{id}: {} (saved; syncs when online)", state.as_str());
        }
        Command::Note { id, text } => {
            let id = store.resolve_order(&id)?;
            actions::note(&mut store, &id, &text)?;
            println!("{id}: note added (saved; syncs when online)");
        }
        Command::Parts {
            command:
                PartsCommand::Use {
                    id,
                    sku,
                    qty,
                    serial,
                },
        } => {
            let id = store.resolve_order(&id)?;
            actions::use_part(&mut store, &id, &sku, qty, serial.as_deref())?;
            println!("{id}: {qty} x {sku} used from your van (saved; syncs when online)");
            if let Some(line) = stock::van_stock(&store)?
                .lines
                .into_iter()
                .find(|l| l.sku == sku.trim() && l.overdrawn)
            {
                println!(
                    "note: your van now shows {} x {}: more than it held; the office sees the overdraw",
                    line.on_hand, line.sku
                );
            }
        }
        Command::Parts {
            command:
                PartsCommand::Return {
                    sku,
                    qty,
                    order,
                    from_van,
                    to,
                    serial,
                    reason,
                },
        } => {
            let order = order.map(|o| store.resolve_order(&o)).transpose()?;
            stock::rma(
                &mut store,
                stock::Return {
                    sku: &sku,
                    qty,
                    order: order.as_ref(),
                    from_van,
                    to: to.as_deref(),
                    serial: serial.as_deref(),
                    reason: reason.as_deref(),
                },
            )?;
            println!("{qty} x {sku} returned as faulty (saved; syncs when online)");
        }
        Command::Stock { json } => {
            let s = stock::van_stock(&store)?;
            if json {
                print_json(&s);
            } else {
                output::van_stock(&s);
            }
        }
        Command::Requisition {
            command:
                RequisitionCommand::Add {
                    sku,
                    qty,
                    from,
                    order,
                    note,
                },
        } => {
            let order = order.map(|o| store.resolve_order(&o)).transpose()?;
            let op = stock::requisition(
                &mut store,
                &sku,
                qty,
                from.as_deref(),
                order.as_ref(),
                note.as_deref(),
            )?;
            println!(
                "requisition {}: {qty} x {sku} asked for (saved; the office sees it after your next sync)",
                op.id
            );
        }
        Command::Requisition {
            command: RequisitionCommand::List { json },
        } => {
            let list = stock::requisitions(&store)?;
            if json {
                print_json(&list);
            } else {
                output::requisitions(&list);
            }
        }
        Command::Edit { id, description } => {
            let id = store.resolve_order(&id)?;
            actions::edit_description(&mut store, &id, &description)?;
            println!("{id}: description updated (saved; syncs when online)");
        }
        Command::Sync { json } => {
            let client = client(&store, &cfg)?;
            let report = runtime()?.block_on(sync_once(&mut store, &client, &cfg));
            let report = match report {
                Ok(r) => r,
                Err(e) => {
                    let pending = store.pending_count().unwrap_or(0);
                    return Err(anyhow::anyhow!("{e} ({pending} changes pending, kept)"));
                }
            };
            if let Some(w) = report.clock_warning() {
                eprintln!("warning: {w}");
            }
            if json {
                print_json(&report);
            } else {
                output::sync(&report);
                // The low-stock alert where the engineer looks after every sync. No van
                // (stock not kept for them) is not worth a word here.
                if let Ok(s) = stock::van_stock(&store) {
                    if s.alerts > 0 {
                        println!(
                            "{} part(s) in {} low or overdrawn: `fieldsync stock` lists them",
                            s.alerts, s.van
                        );
                    }
                }
            }
        }
        Command::Info { json } => {
            let who = store.require_enrollment()?;
            let rejected = store.rejected()?;
            let opt = |k: &str| -> anyhow::Result<Option<u64>> {
                Ok(store.meta(k)?.map(|v| v.parse()).transpose()?)
            };
            let info = json!({
                "device_id": who.device_id,
                "server": who.server,
                "user": who.user,
                "role": who.role.as_str(),
                "data_dir": dir,
                "pending_ops": store.pending_count()?,
                "rejected_ops": rejected.len(),
                "rejected": rejected,
                "last_sync": opt("last_sync_ms")?,
                "clock_offset_ms": store.meta("clock_offset_ms")?.map(|v| v.parse::<i64>()).transpose()?,
                "cursor": store.cursor()?,
                "acked_seq": store.meta_u64("acked_seq")?,
                "last_seq": store.meta_u64("next_seq")?,
            });
            if json {
                print_json(&info);
            } else {
                output::info(&info);
            }
        }
        Command::Photo {
            command: PhotoCommand::Add { id, file, caption },
        } => {
            let id = store.resolve_order(&id)?;
            let blobs = blob::open_shared(&dir, cfg.blob_store)?;
            let a = photos::add(
                &mut store,
                &*blobs,
                &id,
                &file,
                caption.as_deref(),
                cfg.photo_bytes_max,
            )?;
            output::attached(&a);
        }
        Command::Photo {
            command: PhotoCommand::Scan { json },
        } => {
            store.require_enrollment()?;
            let report = inbox::scan_once(&mut store, &cfg)?;
            if json {
                print_json(&report);
            } else {
                output::scan(&report, &inbox::inbox_dir(&dir));
            }
        }
        Command::Photos { id, json } => {
            // A refused inbox folder may not name a known order: list it by its name.
            let key = match store.resolve_order(&id) {
                Ok(order) => order.0,
                Err(AgentError::NoSuchOrder(_)) => id.clone(),
                Err(e) => return Err(e.into()),
            };
            let list = photos::list(&store, &key)?;
            if json {
                print_json(&list);
            } else {
                output::photos(&key, &list);
            }
        }
        Command::Kb {
            command: KbCommand::Search { words, limit, json },
        } => {
            let hits = store.kb_search(&words.join(" "), limit)?;
            if json {
                print_json(&hits);
            } else {
                output::kb_hits(&hits);
            }
        }
        Command::Kb {
            command: KbCommand::Show { id, json },
        } => {
            let article = store.kb_article(&id)?.ok_or_else(|| {
                AgentError::Invalid(format!(
                    "no article {id:?} on this device; `fieldsync kb search WORDS` finds them"
                ))
            })?;
            if json {
                print_json(&fieldsync_proto::view::plain(&article));
            } else {
                output::kb_article(&article);
            }
        }
        Command::Checklist { id, answers, json } => {
            let id = store.resolve_order(&id)?;
            if !answers.is_empty() {
                let ops = report::answer(&mut store, &id, &answers)?;
                if !json {
                    println!(
                        "{id}: {} answer(s) recorded (saved; syncs when online)",
                        ops.len()
                    );
                }
            }
            let state = report::checklist_state(&store, &id)?;
            if json {
                print_json(&state);
            } else {
                output::checklist(&state);
            }
        }
        Command::Time {
            id,
            labour,
            travel,
            note,
            json,
        } => {
            let id = store.resolve_order(&id)?;
            let (activity, minutes) = match (labour, travel) {
                (Some(m), _) => ("labour", m),
                (None, Some(m)) => ("travel", m),
                (None, None) => unreachable!("clap requires one"),
            };
            let op = report::time(&mut store, &id, activity, minutes, note.as_deref())?;
            if json {
                print_json(
                    &json!({"id": op.id, "order_id": id, "activity": activity, "minutes": minutes}),
                );
            } else {
                println!("{id}: {minutes} min {activity} recorded (saved; syncs when online)");
            }
        }
        Command::Resolve {
            id,
            resolution,
            fault_code,
            root_cause,
        } => {
            let id = store.resolve_order(&id)?;
            report::resolve(
                &mut store,
                &id,
                resolution.as_deref(),
                fault_code.as_deref(),
                root_cause.as_deref(),
            )?;
            println!("{id}: resolution recorded (saved; syncs when online)");
        }
        Command::Signoff {
            id,
            name,
            signature,
            json,
        } => {
            let id = store.resolve_order(&id)?;
            let blobs = blob::open_shared(&dir, cfg.blob_store)?;
            let s = report::signoff(&mut store, &*blobs, &id, &name, &signature)?;
            if json {
                print_json(&s);
            } else {
                println!(
                    "{id}: signed off by {} (signature {} bytes, saved; uploads when online)",
                    name.trim(),
                    s.size
                );
            }
        }
        Command::Rate { id, score, comment } => {
            let id = store.resolve_order(&id)?;
            report::rate(&mut store, &id, score, comment.as_deref())?;
            println!("{id}: rated {score}/5 (saved; syncs when online)");
        }
        Command::Contact {
            id,
            channel,
            summary,
            direction,
            contact: person,
            at,
            json,
        } => {
            let id = store.resolve_order(&id)?;
            let at_ms = at.as_deref().map(contact::parse_at).transpose()?;
            let op = contact::log(
                &mut store,
                &id,
                &contact::Entry {
                    channel: &channel,
                    direction: direction.as_deref(),
                    contact: person.as_deref(),
                    summary: &summary,
                    at_ms,
                },
            )?;
            if json {
                print_json(&json!({"id": op.id, "order_id": id}));
            } else {
                println!(
                    "{id}: {channel} logged as {} (saved; syncs when online)",
                    op.id
                );
            }
        }
        Command::Void { record } => {
            let (kind, _) = report::void(&mut store, &record)?;
            println!("{kind} {record}: void (saved; syncs when online)");
        }
        Command::History { asset, json } => {
            let h = report::asset_history(&store, &asset)?;
            if json {
                print_json(&h);
            } else {
                output::history(&h);
            }
        }
        Command::Report { id, out, lang } => {
            let id = store.resolve_order(&id)?;
            let lang = fieldsync_proto::report::Lang::parse(&lang)
                .ok_or_else(|| anyhow::anyhow!("--lang is en or zh-CN, not {lang:?}"))?;
            let blobs = blob::open_shared(&dir, cfg.blob_store)?;
            let html = report::render(&store, &*blobs, &id, lang)?;
            match out {
                Some(path) => {
                    std::fs::write(&path, html)
                        .with_context(|| format!("writing {}", path.display()))?;
                    println!("{id}: report written to {}", path.display());
                }
                None => print!("{html}"),
            }
        }
        Command::Daemon => {
            let client = client(&store, &cfg)?;
            tracing::info!(server = client.base(), "daemon started");
            runtime()?.block_on(daemon::run(&mut store, &client, &cfg, shutdown_signal()))?;
            tracing::info!("daemon stopped");
        }
    }
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FIELDSYNC_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("fieldsync: {msg}");
            ExitCode::FAILURE
        }
    }
}
