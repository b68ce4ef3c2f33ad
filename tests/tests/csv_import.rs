//! `fieldsync-server import KIND FILE.csv`: moving customers, sites, assets and open work
//! orders off an old system. Good files go in as the server's own ops (an engineer's agent
//! then syncs the imported orders); a file with any bad row imports nothing and names every
//! problem by row and line; a running server is never written under.

use std::path::Path;

use fieldsync_tests::{server_cmd, stderr, stdout, Server, DISPATCHER, ENGINEER};

fn import(dir: &Path, kind: &str, file: &Path) -> std::process::Output {
    server_cmd(
        &[
            "import",
            "--data-dir",
            dir.to_str().unwrap(),
            kind,
            file.to_str().unwrap(),
        ],
        None,
    )
}

fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn csv_import_is_all_or_nothing_with_row_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("server");
    let mut server = Server::start(&data);

    // While the server runs, nothing is written under it.
    let customers = write(
        tmp.path(),
        "customers.csv",
        "id,name,tier,phone\n\
         cust-acme,Acme Foods,gold,+44 20 7946 0000\n\
         cust-bolt,\"Bolt & Sons, Ltd\",silver,\n\
         cust-cafe,Café Zhōu 周记,standard,+86 21 5555 0100\n",
    );
    let o = import(&data, "customers", &customers);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("a server is running"), "{}", stderr(&o));
    server.stop();

    let o = import(&data, "customers", &customers);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("imported 3 customers"),
        "{}",
        stdout(&o)
    );
    let sites = write(
        tmp.path(),
        "sites.csv",
        "id,customer_id,name,address,lat,lon,access_notes\n\
         site-acme-1,cust-acme,Acme Plant 1,1 Dock Rd,51.5,-0.1,Gate code 4412\n",
    );
    assert!(import(&data, "sites", &sites).status.success());
    let assets = write(
        tmp.path(),
        "assets.csv",
        "id,customer_id,site_id,model,serial,install_date,warranty_end\n\
         asset-ch7,cust-acme,site-acme-1,Carrier 30RB,SN-7,2021-03-15,2027-03-15\n",
    );
    let o = import(&data, "assets", &assets);
    assert!(o.status.success(), "{}", stderr(&o));

    // Problems the file shows by itself: every one listed, with row and line, none imported.
    let bad = write(
        tmp.path(),
        "bad-orders.csv",
        "id,description,priority,customer_id,assignee,scheduled_end\n\
         wo-good,Chiller alarm,2,cust-acme,eve,2026-12-03 17:00\n\
         wo-prio,Leak,9,cust-acme,eve,\n\
         wo-date,Noise,3,cust-acme,eve,next tuesday\n",
    );
    let o = import(&data, "work-orders", &bad);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(err.contains("2 problem(s); nothing was imported"), "{err}");
    assert!(
        err.contains("row 2 (line 3)") && err.contains("priority"),
        "{err}"
    );
    assert!(
        err.contains("row 3 (line 4)") && err.contains("scheduled_end"),
        "{err}"
    );
    // Problems only the database shows (a customer that does not exist): the same.
    let missing = write(
        tmp.path(),
        "missing-ref.csv",
        "id,description,priority,customer_id,assignee\n\
         wo-good,Chiller alarm,2,cust-acme,eve\n\
         wo-orphan,Boiler,2,cust-nobody,eve\n",
    );
    let o = import(&data, "work-orders", &missing);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("row 2 (line 3)") && err.contains("cust-nobody"),
        "{err}"
    );
    // A header with a column the entity does not have is refused whole.
    let unknown = write(
        tmp.path(),
        "unknown.csv",
        "id,description,priority,colour\nwo-x,Pump,2,red\n",
    );
    let o = import(&data, "work-orders", &unknown);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("\"colour\" is not a field of work_order"),
        "{}",
        stderr(&o)
    );

    // The parts catalog: a bad cost is a row problem like any other.
    let parts = "id,sku,name,unit_cost,serial_tracked\n\
                 part-hp,HP-SW-30,HP switch 30 bar,42.50,no\n\
                 part-comp,COMP-30RB,Compressor 30RB,\"1,200\",yes\n";
    let o = import(&data, "parts", &write(tmp.path(), "bad-parts.csv", parts));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("row 2 (line 3): unit_cost"),
        "{}",
        stderr(&o)
    );
    let parts = parts.replace("\"1,200\"", "1200");
    let o = import(&data, "parts", &write(tmp.path(), "parts.csv", &parts));
    assert!(o.status.success(), "{}", stderr(&o));

    let good = write(
        tmp.path(),
        "orders.csv",
        "id,description,priority,customer_id,site_id,asset_id,assignee,channel,reporter,scheduled_end\n\
         wo-1001,Chiller 7 tripping,1,cust-acme,site-acme-1,asset-ch7,eve,phone,Ann Lee,2026-12-03 17:00\n\
         wo-1002,Annual inspection,3,cust-cafe,,,eve,email,,\n",
    );
    let o = import(&data, "work-orders", &good);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("imported 2 work-orders"));

    // Only the good file's orders exist, and they are real: the API lists them and the
    // engineer's agent receives them with their customer, site and asset.
    server.restart();
    let office = server.api(DISPATCHER);
    let (status, list) = office.get("/api/v1/work-orders?assignee=eve");
    assert_eq!(status, 200);
    let mut ids: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    ids.sort();
    assert_eq!(ids, ["wo-1001", "wo-1002"], "{list}");
    let (_, order) = office.get("/api/v1/work-orders/wo-1001");
    assert_eq!(order["customer"]["name"], "Acme Foods", "{order}");
    assert_eq!(order["scheduled_end"], 1_796_317_200_000u64, "{order}");
    let (status, part) = office.get("/api/v1/entities/part/part-comp");
    assert_eq!(status, 200, "{part}");
    assert!(part.to_string().contains("Compressor 30RB"), "{part}");
    assert!(part.to_string().contains("1200"), "{part}");
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    let report = eve.sync();
    assert_eq!(report["in_sync"], true, "{report}");
    // The catalog reaches every engineer's laptop, whatever their orders.
    let conn = rusqlite::Connection::open(eve.db_path()).unwrap();
    let parts: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM entities WHERE kind = 'part'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(parts, 2);
    let shown = eve.show("wo-1001");
    assert_eq!(shown["asset"]["serial"], "SN-7", "{shown}");
    assert_eq!(shown["site"]["access_notes"], "Gate code 4412", "{shown}");
}
