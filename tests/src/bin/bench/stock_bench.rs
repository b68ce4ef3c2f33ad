//! `fieldsync-bench stock`: what deriving stock on read costs. Seeds a server store
//! in-process with a catalog, a warehouse, one van per engineer and N movements (receipts
//! into the warehouse, transfers into the vans, consumption out of them), then times what
//! the console's stock page and `GET /api/v1/stock` do per view: read every stock state
//! (`Store::stock_states`) and derive the report (`proto::stock::report_from`). It checks the
//! derived totals against the seeded ones, so the work was really done.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fieldsync_proto::stock;
use fieldsync_proto::{EntityId, EntityKind, Role};
use fieldsync_server::store::{Actor, ServerWrite, SqliteStore, Store};
use serde_json::{json, Value};

use crate::report::{round, Checks, Obj};

/// A page a dispatcher waits for without noticing: the figure the cost is held against.
const STOCK_VIEW_MS_TARGET: f64 = 500.0;
/// Rows per seeding transaction.
const SEED_BATCH_ROWS: usize = 5_000;
const PARTS: usize = 500;
const VANS: usize = 50;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Stock movements seeded.
    #[arg(long, default_value_t = 100_000)]
    pub movements: usize,
    /// Timed views (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
}

fn write(kind: EntityKind, id: String, fields: Value) -> ServerWrite {
    ServerWrite {
        kind,
        id: EntityId(id),
        create: true,
        fields: serde_json::from_value::<BTreeMap<String, Value>>(fields).expect("an object"),
        base: BTreeMap::new(),
    }
}

fn seed(store: &SqliteStore, actor: &Actor, rows: Vec<ServerWrite>) -> anyhow::Result<()> {
    let now = crate::harness::now_ms();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let batch: Vec<ServerWrite> = rows.by_ref().take(SEED_BATCH_ROWS).collect();
        let refused = store.import(actor, batch, now)?;
        anyhow::ensure!(refused.is_empty(), "seed refused: {:?}", refused.first());
    }
    Ok(())
}

pub fn run(args: &Args) -> anyhow::Result<(Obj, bool)> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&dir.path().join("fieldsync.db"))?;
    let now = crate::harness::now_ms();
    store.add_user("dana", Role::Dispatcher, "x", now)?;
    let actor = Actor {
        user: "dana".into(),
        role: Role::Dispatcher,
        device: None,
    };
    let mut rows = Vec::new();
    for p in 0..PARTS {
        rows.push(write(
            EntityKind::Part,
            format!("p-{p}"),
            json!({"sku": format!("SKU-{p:04}"), "name": format!("Part {p}")}),
        ));
    }
    rows.push(write(
        EntityKind::StockLocation,
        "wh".into(),
        json!({"name": "Warehouse", "type": "warehouse"}),
    ));
    for v in 0..VANS {
        store.add_user(&format!("eng{v}"), Role::Engineer, "x", now)?;
        rows.push(write(
            EntityKind::StockLocation,
            format!("van-{v}"),
            json!({"name": format!("Van {v}"), "type": "van", "engineers": format!("eng{v}")}),
        ));
    }
    // Receipts, transfers and consumption in the proportions of a working week: one unit
    // comes in, goes out to a van and is fitted.
    let mut net_in = 0i64;
    for i in 0..args.movements {
        let part = format!("p-{}", i % PARTS);
        let van = format!("van-{}", (i / 3) % VANS);
        let fields = match i % 3 {
            0 => {
                net_in += 2;
                json!({"type": "receipt", "part_id": part, "qty": 2, "to_location": "wh"})
            }
            1 => json!({"type": "transfer", "part_id": part, "qty": 1,
                        "from_location": "wh", "to_location": van}),
            _ => {
                net_in -= 1;
                json!({"type": "consumption", "part_id": part, "qty": 1,
                       "from_location": van, "order_id": "wo-1"})
            }
        };
        rows.push(write(EntityKind::StockMovement, format!("m-{i}"), fields));
    }
    rows.insert(
        0,
        write(
            EntityKind::WorkOrder,
            "wo-1".into(),
            json!({"description": "bench", "priority": 3}),
        ),
    );
    let seeded = Instant::now();
    seed(&store, &actor, rows)?;
    let seed_s = seeded.elapsed().as_secs_f64();

    let mut read: Vec<Duration> = Vec::new();
    let mut derived: Vec<Duration> = Vec::new();
    let mut lines = Vec::new();
    for _ in 0..args.runs.max(1) {
        let t = Instant::now();
        let (states, moves) =
            store.stock_states(fieldsync_server::api::stock::STOCK_MOVEMENTS_MAX + 1)?;
        read.push(t.elapsed());
        let t = Instant::now();
        lines = stock::report_from(moves, &states, None);
        derived.push(t.elapsed());
    }
    let median = |ds: &mut Vec<Duration>| {
        ds.sort();
        ds[ds.len() / 2].as_secs_f64() * 1e3
    };
    let (read_ms, derive_ms) = (median(&mut read), median(&mut derived));
    let mut checks = Checks::default();
    checks.eq(
        "units_on_hand_add_up",
        lines.iter().map(|l| l.on_hand).sum::<i64>(),
        net_in,
    );
    let mut report = Obj::new();
    report
        .put("bench", "stock")
        .put("movements", args.movements as u64)
        .put("lines", lines.len() as u64)
        .put("seed_s", round(seed_s, 2))
        .put("read_states_median_ms", round(read_ms, 1))
        .put("derive_report_median_ms", round(derive_ms, 1))
        .figure(
            "stock_view_median_ms",
            round(read_ms + derive_ms, 1),
            STOCK_VIEW_MS_TARGET,
        )
        .obj("checks", checks.to_obj());
    Ok((report, checks.all_ok()))
}
