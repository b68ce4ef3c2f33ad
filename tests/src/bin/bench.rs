//! `fieldsync-bench`: benchmark programs. Each prints one JSON object on stdout (progress
//! goes to stderr) and never asserts timings: it reports measured figures next to their
//! targets. It does check that the work was really done (counts, acks, digests) and exits
//! non-zero when a check fails.
//!
//! ```sh
//! cargo build --release --workspace --bins && target/release/fieldsync-bench sync
//! ```

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// A bin root's modules resolve next to it (src/bin/), so point them into bench/.
#[path = "bench/console_bench.rs"]
mod console_bench;
#[path = "bench/harness.rs"]
mod harness;
#[path = "bench/kb_bench.rs"]
mod kb_bench;
#[path = "bench/load_bench.rs"]
mod load_bench;
#[path = "bench/photos_bench.rs"]
mod photos_bench;
#[path = "bench/report.rs"]
mod report;
#[path = "bench/stock_bench.rs"]
mod stock_bench;
#[path = "bench/sync_bench.rs"]
mod sync_bench;

#[derive(Parser)]
#[command(
    name = "fieldsync-bench",
    about = "fieldsync benchmarks: print JSON figures next to their targets",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Options of `sync`, the default benchmark.
    #[command(flatten)]
    sync: sync_bench::Args,
}

#[derive(Subcommand)]
enum Command {
    /// Push 10,000 creates and 10,000 three-field edits, bytes per edit, a fresh device
    /// pulling 10,000 orders, and the agent's peak memory (the default).
    Sync(sync_bench::Args),
    /// Photos: blob stores (sled against plain files: import and read back, disk, RSS,
    /// crash safety), and 200 uploads of 3 MB against a plain HTTPS transfer.
    Photos(photos_bench::Args),
    /// The dispatcher console's board at 50,000 orders: server time per page.
    Console(console_bench::Args),
    /// 1,000 agents syncing at once against one server process: push latency p50/p99,
    /// errors, server peak RSS.
    Load(load_bench::Args),
    /// Offline knowledge-base search over 5,000 English and Chinese articles on an agent.
    Kb(kb_bench::Args),
    /// Stock derived on read: the console's stock view over 100,000 movements.
    Stock(stock_bench::Args),
    /// (internal) one blob store operation in a child process, for `photos`.
    #[command(hide = true)]
    PhotoStoreWorker(photos_bench::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or(Command::Sync(cli.sync)) {
        Command::Sync(args) => sync_bench::run(&args),
        Command::Photos(args) => photos_bench::run(&args),
        Command::Console(args) => console_bench::run(&args),
        Command::Load(args) => load_bench::run(&args),
        Command::Kb(args) => kb_bench::run(&args),
        Command::Stock(args) => stock_bench::run(&args),
        Command::PhotoStoreWorker(args) => {
            return match photos_bench::worker(&args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("fieldsync-bench photo-store-worker: {e:#}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match result {
        Ok((report, checks_ok)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("the report serialises")
            );
            if checks_ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("fieldsync-bench: some checks failed (see \"checks_failed\")");
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("fieldsync-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}
