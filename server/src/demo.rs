//! `fieldsync-server demo`: a ready-to-try server with TLS, users and a realistic service
//! organisation's data, seeded once per data dir.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use fieldsync_proto::{EntityId, EntityKind, Role};
use serde_json::{json, Value};

use crate::api::now_ms;
use crate::auth::hash_password;
use crate::store::{Actor, ServerWrite, Store};

pub const USERS: &[(&str, Role, &str)] = &[
    ("dana", Role::Dispatcher, "dispatch-demo"),
    ("eve", Role::Engineer, "field-demo"),
    ("sam", Role::Engineer, "field-demo"),
    ("admin", Role::Admin, "admin-demo"),
];

fn put(
    store: &dyn Store,
    actor: &Actor,
    kind: EntityKind,
    id: &str,
    fields: Value,
) -> anyhow::Result<()> {
    let fields: BTreeMap<String, Value> = serde_json::from_value(fields)?;
    store
        .server_write(
            actor,
            ServerWrite {
                kind,
                id: EntityId::from(id),
                create: true,
                fields,
                base: BTreeMap::new(),
            },
            now_ms(),
        )?
        .map_err(|e| anyhow::anyhow!("seeding {kind} {id}: {e}"))
}

/// Create users and demo data unless the store already has users. Returns whether it seeded.
pub fn seed(store: &dyn Store) -> anyhow::Result<bool> {
    if store.user("dana")?.is_some() {
        return Ok(false);
    }
    for (name, role, password) in USERS {
        store.add_user(name, *role, &hash_password(password)?, now_ms())?;
    }
    let dana = Actor {
        user: "dana".into(),
        role: Role::Dispatcher,
        device: None,
    };
    let day = 24 * 3600 * 1000;
    let today = now_ms() / day * day;
    let customers = [
        (
            "cust-northwind",
            "Northwind Dairy",
            "gold",
            "+44 20 7946 0001",
        ),
        (
            "cust-harbor",
            "Harbor Hospital",
            "platinum",
            "+44 20 7946 0002",
        ),
        (
            "cust-ridge",
            "Ridge Brewing Co.",
            "standard",
            "+44 20 7946 0003",
        ),
    ];
    for (id, name, tier, phone) in customers {
        put(
            store,
            &dana,
            EntityKind::Customer,
            id,
            json!({"name": name, "tier": tier, "phone": phone}),
        )?;
    }
    let sites = [
        (
            "site-nw-plant",
            "cust-northwind",
            "Northwind bottling plant",
            "Unit 4, Meadow Rd, Leeds",
            "Gate code 4471; report to security",
        ),
        (
            "site-harbor-main",
            "cust-harbor",
            "Harbor Hospital main building",
            "1 Quay St, Bristol",
            "Plant room B2; escort required",
        ),
        (
            "site-ridge-brew",
            "cust-ridge",
            "Ridge brewhouse",
            "22 Hill Lane, York",
            "Park at the rear loading bay",
        ),
    ];
    for (id, cust, name, addr, notes) in sites {
        put(
            store,
            &dana,
            EntityKind::Site,
            id,
            json!({"customer_id": cust, "name": name, "address": addr, "access_notes": notes}),
        )?;
    }
    let assets = [
        (
            "asset-chiller-7",
            "cust-northwind",
            "site-nw-plant",
            "Carrier 30RB chiller",
            "CH7-22841",
        ),
        (
            "asset-boiler-2",
            "cust-harbor",
            "site-harbor-main",
            "Viessmann Vitocrossal 300 boiler",
            "VB2-99120",
        ),
        (
            "asset-filler-1",
            "cust-northwind",
            "site-nw-plant",
            "Krones Modulfill filler",
            "KF1-10233",
        ),
        (
            "asset-glycol-3",
            "cust-ridge",
            "site-ridge-brew",
            "Glycol chiller GC-3",
            "GC3-55012",
        ),
    ];
    for (id, cust, site, model, serial) in assets {
        put(
            store,
            &dana,
            EntityKind::Asset,
            id,
            json!({"customer_id": cust, "site_id": site, "model": model, "serial": serial}),
        )?;
    }
    let orders = [
        (
            "eve",
            "cust-northwind",
            "site-nw-plant",
            "asset-chiller-7",
            1,
            "Chiller 7 tripping on high pressure alarm since Monday; production line 2 at risk.",
        ),
        (
            "eve",
            "cust-harbor",
            "site-harbor-main",
            "asset-boiler-2",
            2,
            "Annual boiler service and flue gas analysis; certificate due end of month.",
        ),
        (
            "eve",
            "cust-northwind",
            "site-nw-plant",
            "asset-filler-1",
            3,
            "Filler valve 12 dripping; customer reports 2% underfill on 500 ml line.",
        ),
        (
            "sam",
            "cust-ridge",
            "site-ridge-brew",
            "asset-glycol-3",
            2,
            "Glycol temperature drifting 3 K above setpoint overnight.",
        ),
    ];
    // Checklists per work type (every engineer's laptop holds them).
    let templates = [
        (
            "cl-repair",
            "repair",
            "Repair checklist",
            "isolated | Unit isolated and locked out | yes/no\n\
             fault_found | Fault found as reported | yes/no\n\
             pressure | Operating pressure after repair (bar) | number\n\
             leak_test | Leak test passed | yes/no\n\
             remarks | Remarks",
        ),
        (
            "cl-inspection",
            "inspection",
            "Annual inspection",
            "visual | Visual inspection: no damage or corrosion | yes/no\n\
             flue_co2 | Flue gas CO2 (%) | number\n\
             safety_valves | Safety valves tested | yes/no\n\
             remarks | Remarks",
        ),
        (
            "cl-installation",
            "installation",
            "Installation and commissioning",
            "position | Positioned and levelled as per drawing | yes/no\n\
             commissioned | Commissioned and run for 30 minutes | yes/no\n\
             handover | Customer shown how to operate | yes/no\n\
             remarks | Remarks",
        ),
    ];
    for (id, work_type, title, items) in templates {
        put(
            store,
            &dana,
            EntityKind::ChecklistTemplate,
            id,
            json!({"work_type": work_type, "title": title, "items": items}),
        )?;
    }
    let work_types = ["repair", "inspection", "repair", "repair"];
    for (i, (who, cust, site, asset, prio, desc)) in orders.into_iter().enumerate() {
        let start = today + (8 + 2 * i as u64) * 3600 * 1000;
        put(
            store,
            &dana,
            EntityKind::WorkOrder,
            &format!("wo-{}", 1001 + i),
            json!({"description": desc, "priority": prio, "assignee": who, "customer_id": cust,
                   "site_id": site, "asset_id": asset, "scheduled_start": start,
                   "scheduled_end": start + 2 * 3600 * 1000, "work_type": work_types[i]}),
        )?;
    }
    // Chiller 7's last repair, by Sam: Eve's laptop holds it as the asset's history.
    let admin = Actor {
        user: "admin".into(),
        role: Role::Admin,
        device: None,
    };
    put(
        store,
        &admin,
        EntityKind::WorkOrder,
        "wo-0917",
        json!({"description": "Chiller 7 high pressure trips in the afternoon heat.", "priority": 2,
               "assignee": "sam", "customer_id": "cust-northwind", "site_id": "site-nw-plant",
               "asset_id": "asset-chiller-7", "work_type": "repair", "status": "completed",
               "arrived_at": today - 90 * day, "completed_at": today - 90 * day + 3 * 3600 * 1000,
               "fault_code": "HP-TRIP", "root_cause": "Condenser coil fouled",
               "resolution": "Cleaned the condenser coil; HP cut-out tested at 27 bar"}),
    )?;
    put(
        store,
        &dana,
        EntityKind::WorkOrder,
        "wo-1005",
        json!({"description": "New service request: ice machine not cooling (unassigned).", "priority": 3,
               "customer_id": "cust-ridge", "site_id": "site-ridge-brew"}),
    )?;
    seed_stock(store, &dana)?;
    seed_customer_care(store, &dana, today)?;
    Ok(true)
}

/// Knowledge-base articles (one in Chinese, for the offline search across scripts),
/// customer contacts and a communication log: the console's KB and customer pages and
/// `fieldsync kb search` have something to show.
fn seed_customer_care(store: &dyn Store, dana: &Actor, today: u64) -> anyhow::Result<()> {
    let hour = 3600 * 1000;
    let articles = [
        (
            "kb-hp-trip",
            "Chiller high-pressure trips (HP-TRIP)",
            "## Symptoms\nThe compressor stops on the high-pressure switch, mostly on hot afternoons.\n\n\
             ## Check\n1. Condenser coil: clean it if fouled.\n2. Condenser fans: all running?\n\
             3. Test the HP cut-out against its setting (27 bar on the 30RB).\n\n\
             ## Fix\nReplace the HP switch (`SKU HP-SW-27`) if it trips below its setting.",
            "chiller, refrigeration",
            "Carrier 30RB chiller",
            "HP-TRIP",
        ),
        (
            "kb-e42-pump",
            "Boiler E42: circulation pump fault",
            "E42 means the boiler saw no flow. **Check the pump** first: power, seized rotor \
             (free it with a screwdriver on the shaft end), then the pressure (1-2 bar cold).",
            "boiler, pump",
            "Viessmann Vitocrossal 300 boiler",
            "E42",
        ),
        (
            "kb-glycol-leak",
            "乙二醇冷却机泄漏检查",
            "## 现象\n乙二醇液位下降，地面有粘稠液体。\n\n## 检查\n1. 检查泵密封和软管接头。\n\
             2. 用折射计测量浓度，补液前确认比例。",
            "制冷, 维修",
            "Glycol chiller GC-3",
            "GL-LOW",
        ),
    ];
    for (id, title, body, tags, models, codes) in articles {
        put(
            store,
            dana,
            EntityKind::KbArticle,
            id,
            json!({"title": title, "body": body, "tags": tags, "models": models, "fault_codes": codes}),
        )?;
    }
    let contacts = [
        (
            "cust-northwind",
            "Priya Shah | Maintenance manager | +44 20 7946 0101 | priya.shah@northwind.example",
        ),
        (
            "cust-harbor",
            "Tom Reed | Estates duty officer | +44 20 7946 0202 | estates@harbor.example",
        ),
    ];
    for (customer, line) in contacts {
        store
            .server_write(
                dana,
                ServerWrite {
                    kind: EntityKind::Customer,
                    id: EntityId::from(customer),
                    create: false,
                    fields: BTreeMap::from([("contacts".to_owned(), json!(line))]),
                    base: BTreeMap::new(),
                },
                now_ms(),
            )?
            .map_err(|e| anyhow::anyhow!("seeding the contacts of {customer}: {e}"))?;
    }
    let log = [
        (
            "log-demo-1",
            "cust-northwind",
            Some("wo-1001"),
            "call",
            "in",
            "Priya Shah",
            today.saturating_sub(20 * hour),
            "Reported chiller 7 tripping again; line 2 at risk. Promised an engineer tomorrow morning.",
        ),
        (
            "log-demo-2",
            "cust-northwind",
            None,
            "email",
            "out",
            "Priya Shah",
            today.saturating_sub(5 * hour),
            "Sent the quarterly maintenance plan and the renewal quote for the gold contract.",
        ),
        (
            "log-demo-3",
            "cust-harbor",
            None,
            "visit",
            "out",
            "Tom Reed",
            today.saturating_sub(48 * hour),
            "Site survey for the boiler replacement; access to plant room B2 only with an escort.",
        ),
    ];
    for (id, customer, order, channel, direction, contact, at, summary) in log {
        let mut fields = json!({"customer_id": customer, "channel": channel, "direction": direction,
                                "contact": contact, "at": at, "summary": summary});
        if let Some(order) = order {
            fields["order_id"] = json!(order);
        }
        put(store, dana, EntityKind::ContactLog, id, fields)?;
    }
    Ok(())
}

/// A small parts catalog, a warehouse, a van each for eve and sam, and the stock that
/// reached them (receipts, then transfers): the stock page and `fieldsync stock` have
/// something to show, and the HP switch the walkthrough fits is the van's last one.
fn seed_stock(store: &dyn Store, dana: &Actor) -> anyhow::Result<()> {
    let parts = [
        (
            "part-hps-220",
            "HPS-220",
            "High-pressure switch 22 bar",
            64.0,
            false,
        ),
        ("part-valve-25", "VALVE-25", "Ball valve DN25", 18.5, false),
        (
            "part-ctl-9",
            "CTL-9",
            "Chiller controller board",
            420.0,
            true,
        ),
    ];
    for (id, sku, name, cost, serial) in parts {
        put(
            store,
            dana,
            EntityKind::Part,
            id,
            json!({"sku": sku, "name": name, "unit_cost": cost, "serial_tracked": serial}),
        )?;
    }
    let locations = [
        ("wh-leeds", "Leeds warehouse", "warehouse", None),
        ("van-eve", "Eve's van", "van", Some("eve")),
        ("van-sam", "Sam's van", "van", Some("sam")),
    ];
    for (id, name, ty, engineer) in locations {
        let mut f = json!({"name": name, "type": ty});
        if let Some(e) = engineer {
            f["engineers"] = json!(e);
        }
        put(store, dana, EntityKind::StockLocation, id, f)?;
    }
    let movements = [
        (
            "mv-demo-1",
            "receipt",
            "part-hps-220",
            4,
            None,
            Some("wh-leeds"),
        ),
        (
            "mv-demo-2",
            "receipt",
            "part-valve-25",
            20,
            None,
            Some("wh-leeds"),
        ),
        (
            "mv-demo-3",
            "transfer",
            "part-hps-220",
            1,
            Some("wh-leeds"),
            Some("van-eve"),
        ),
        (
            "mv-demo-4",
            "transfer",
            "part-valve-25",
            6,
            Some("wh-leeds"),
            Some("van-eve"),
        ),
        (
            "mv-demo-5",
            "transfer",
            "part-valve-25",
            4,
            Some("wh-leeds"),
            Some("van-sam"),
        ),
    ];
    for (id, ty, part, qty, from, to) in movements {
        let mut f = json!({"type": ty, "part_id": part, "qty": qty});
        if let Some(l) = from {
            f["from_location"] = json!(l);
        }
        if let Some(l) = to {
            f["to_location"] = json!(l);
        }
        put(store, dana, EntityKind::StockMovement, id, f)?;
    }
    for (location, part, min) in [
        ("van-eve", "part-hps-220", 1),
        ("wh-leeds", "part-hps-220", 2),
    ] {
        let id = fieldsync_proto::stock::min_id(location, part);
        put(
            store,
            dana,
            EntityKind::StockMin,
            id.as_str(),
            json!({"location_id": location, "part_id": part, "min_qty": min}),
        )?;
    }
    Ok(())
}

/// What to print once the demo server is up.
pub fn instructions(url: &str, ca: &Path, data_dir: &Path) -> String {
    let ca = ca.display();
    format!(
        "fieldsync demo server is running at {url}
  data dir : {dir}
  CA cert  : {ca}

Users (name / password / role):
  dana  / dispatch-demo / dispatcher
  eve   / field-demo    / engineer (3 orders assigned)
  sam   / field-demo    / engineer (2 orders: one open, one completed last quarter)
  admin / admin-demo    / admin

Try an engineer's offline day in another terminal:
  export FIELDSYNC_DATA_DIR=/tmp/fieldsync-eve
  echo field-demo | cargo run --release --bin fieldsync -- enroll --server {url} --ca-cert {ca} --user eve --password-stdin
  cargo run --release --bin fieldsync -- sync
  cargo run --release --bin fieldsync -- orders
  cargo run --release --bin fieldsync -- progress wo-1001 on-site
  cargo run --release --bin fieldsync -- note wo-1001 \"HP switch faulty, replacing\"
  cargo run --release --bin fieldsync -- parts use wo-1001 --sku HPS-220 --qty 1
  cargo run --release --bin fieldsync -- history asset-chiller-7
  cargo run --release --bin fieldsync -- checklist wo-1001 --answer isolated=yes --answer fault_found=yes
  cargo run --release --bin fieldsync -- time wo-1001 --labour 75
  cargo run --release --bin fieldsync -- resolve wo-1001 --fault-code HP-TRIP --root-cause \"HP switch worn\"
  cargo run --release --bin fieldsync -- rate wo-1001 5 --comment \"Quick and clear\"
  cargo run --release --bin fieldsync -- stock
  cargo run --release --bin fieldsync -- requisition add --sku HPS-220 --qty 2 --from wh-leeds
  cargo run --release --bin fieldsync -- progress wo-1001 completed --resolution \"Replaced HP switch, tested OK\"
  cargo run --release --bin fieldsync -- report wo-1001 --out wo-1001.html
  cargo run --release --bin fieldsync -- sync --json

And as the dispatcher, with curl:
  TOKEN=$(curl -s --cacert {ca} {url}/api/v1/session -H 'content-type: application/json' \\
          -d '{{\"user\":\"dana\",\"password\":\"dispatch-demo\"}}' | sed 's/.*\"token\":\"\\([^\"]*\\)\".*/\\1/')
  curl -s --cacert {ca} -H \"authorization: Bearer $TOKEN\" {url}/api/v1/work-orders
  curl -s --cacert {ca} -H \"authorization: Bearer $TOKEN\" {url}/api/v1/work-orders/wo-1001

Stop with Ctrl-C.",
        dir = data_dir.display()
    )
}

pub fn ensure_tls(data_dir: &Path, hosts: &[String]) -> anyhow::Result<std::path::PathBuf> {
    let ca = crate::tls::ca_path(data_dir);
    if ca.exists() && crate::tls::tls_dir(data_dir).join("server.pem").exists() {
        return Ok(ca);
    }
    crate::tls::init(data_dir, hosts).context("creating demo certificates")
}
