//! `fieldsync-bench console`: the dispatcher board at 50,000 orders. Seeds a server store
//! in-process (pushed in batches, as devices would), then times one board page per filter
//! and sort, as the console's handler runs it (`Store::board`).

use std::collections::BTreeMap;
use std::time::Instant;

use fieldsync_proto::{EntityId, EntityKind, Hlc, Op, OpKind, Role};
use fieldsync_server::store::{Actor, BoardQuery, BoardSort, SqliteStore, Store};
use serde_json::Value;

use crate::report::{round, Checks, Obj};

/// The bound on server time per board page.
const BOARD_PAGE_MS_TARGET: f64 = 50.0;
const SEED_BATCH_OPS: usize = 1_000;
const ENGINEERS: usize = 40;
const CUSTOMERS: usize = 500;

#[derive(clap::Args, Clone, Debug)]
pub struct Args {
    /// Work orders seeded.
    #[arg(long, default_value_t = 50_000)]
    pub orders: usize,
    /// Timed runs per query (the median is reported).
    #[arg(long, default_value_t = 20)]
    pub runs: usize,
}

pub fn run(args: &Args) -> anyhow::Result<(Obj, bool)> {
    let dir = tempfile::tempdir()?;
    let store = SqliteStore::open(&dir.path().join("fieldsync.db"))?;
    let now = crate::harness::now_ms();
    store.add_user("dana", Role::Dispatcher, "x", now)?;
    for e in 0..ENGINEERS {
        store.add_user(&format!("eng{e}"), Role::Engineer, "x", now)?;
    }
    let device = store.enroll_device("dana", "bench", "bench-token", now)?;
    let actor = Actor {
        user: "dana".into(),
        role: Role::Dispatcher,
        device: Some(device),
    };
    let seeded = Instant::now();
    let mut seq = 0u64;
    let mut ops = Vec::with_capacity(SEED_BATCH_OPS);
    let flush = |ops: &mut Vec<Op>| -> anyhow::Result<()> {
        store.push(&actor, device, ops, now)?;
        ops.clear();
        Ok(())
    };
    for c in 0..CUSTOMERS {
        seq += 1;
        let fields = BTreeMap::from([("name".to_owned(), Value::from(format!("Customer {c}")))]);
        ops.push(op(
            seq,
            EntityKind::Customer,
            format!("cust-{c}"),
            now,
            fields,
        ));
        if ops.len() == SEED_BATCH_OPS {
            flush(&mut ops)?;
        }
    }
    for i in 0..args.orders {
        seq += 1;
        let fields = BTreeMap::from([
            (
                "description".to_owned(),
                Value::from(format!("Order {i}: unit not cooling, alarm on panel")),
            ),
            ("priority".to_owned(), Value::from((i % 4 + 1) as i64)),
            (
                "assignee".to_owned(),
                Value::from(format!("eng{}", i % ENGINEERS)),
            ),
            (
                "customer_id".to_owned(),
                Value::from(format!("cust-{}", i % CUSTOMERS)),
            ),
            (
                "scheduled_end".to_owned(),
                Value::from(now + (i as u64 * 7_919 % 1_000_000) * 1_000),
            ),
        ]);
        ops.push(op(
            seq,
            EntityKind::WorkOrder,
            format!("wo-{i}"),
            now,
            fields,
        ));
        if ops.len() == SEED_BATCH_OPS {
            flush(&mut ops)?;
        }
    }
    if !ops.is_empty() {
        flush(&mut ops)?;
    }
    let seed_s = seeded.elapsed().as_secs_f64();

    let q = |sort, f: &dyn Fn(&mut BoardQuery)| {
        let mut b = BoardQuery {
            sort,
            limit: 50,
            ..Default::default()
        };
        f(&mut b);
        b
    };
    let cases: Vec<(&str, BoardQuery)> = vec![
        ("recent_first_page", q(BoardSort::Recent, &|_| {})),
        (
            "recent_page_100",
            q(BoardSort::Recent, &|b| b.offset = 5_000),
        ),
        ("priority_sort", q(BoardSort::Priority, &|_| {})),
        ("due_sort", q(BoardSort::Due, &|_| {})),
        (
            "status_open",
            q(BoardSort::Recent, &|b| b.status = Some("open".into())),
        ),
        (
            "engineer_filter",
            q(BoardSort::Due, &|b| b.assignee = Some("eng7".into())),
        ),
        (
            "customer_filter",
            q(BoardSort::Recent, &|b| {
                b.customer_id = Some("cust-42".into())
            }),
        ),
        (
            "priority_1_due",
            q(BoardSort::Due, &|b| b.priority = Some(1)),
        ),
    ];
    let mut checks = Checks::default();
    let mut pages = Obj::new();
    let mut worst: f64 = 0.0;
    for (name, query) in &cases {
        let mut times = Vec::with_capacity(args.runs);
        let mut rows = 0;
        for _ in 0..args.runs.max(1) {
            let t = Instant::now();
            let page = store.board(query)?;
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            rows = page.rows.len();
        }
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        worst = worst.max(median);
        let mut o = Obj::new();
        o.figure("median_ms", round(median, 2), BOARD_PAGE_MS_TARGET);
        o.put("max_ms", round(*times.last().unwrap_or(&0.0), 2));
        o.put("rows", rows);
        pages.obj(name, o);
        checks.check(
            &format!("board page {name} <= {BOARD_PAGE_MS_TARGET} ms"),
            median <= BOARD_PAGE_MS_TARGET,
            format!("{median:.2} ms"),
        );
    }
    let mut report = Obj::new();
    report.put("orders", args.orders);
    report.put("seed_s", round(seed_s, 1));
    report.figure(
        "board_page_worst_median_ms",
        round(worst, 2),
        BOARD_PAGE_MS_TARGET,
    );
    report.obj("pages", pages);
    let ok = checks.all_ok();
    Ok((report, ok))
}

fn op(seq: u64, kind: EntityKind, id: String, now: u64, fields: BTreeMap<String, Value>) -> Op {
    Op {
        seq,
        kind,
        id: EntityId(id),
        hlc: Hlc((now << 16) | (seq & 0xffff)),
        op: OpKind::Create,
        fields,
        base: BTreeMap::new(),
    }
}
