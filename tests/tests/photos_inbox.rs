//! The watched inbox: a file dropped into DATA_DIR/inbox/<order-id>/ is attached once
//! complete and moved to inbox/imported/, never deleted; a file still being written is
//! never imported half-written; refused files stay with a reason.

use std::io::Write;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use fieldsync_tests::photos::{agent_settings, jpeg, order_for, server_blob_files, sha256_hex};
use fieldsync_tests::{wait_for, Agent, Server, DISPATCHER, ENGINEER};
use serde_json::Value;

struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn daemon(agent: &Agent) -> Daemon {
    let log = std::fs::File::create(agent.dir.join("daemon.log")).unwrap();
    let child = agent
        .command(&["daemon"])
        .env("FIELDSYNC_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    Daemon(child)
}

fn photos(agent: &Agent, order: &str) -> Vec<Value> {
    agent.json(&["photos", order]).as_array().unwrap().clone()
}

#[test]
fn a_slow_writer_is_never_imported_half_written() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let dana = server.api(DISPATCHER);
    let order = order_for(&dana, "eve");
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    // Settle quickly, poll rarely: anything that happens soon is the watcher's doing.
    agent_settings(&eve, "inbox_settle_ms = 300\npoll_interval_ms = 600000\n");
    eve.sync();
    let _d = daemon(&eve);
    let folder = eve.dir.join("inbox").join(&order);
    wait_for(
        Duration::from_secs(20),
        "the daemon to create the inbox",
        || eve.dir.join("inbox/imported").exists().then_some(()),
    );
    std::fs::create_dir_all(&folder).unwrap();

    let bytes = jpeg(120_000, 9);
    let path = folder.join("IMG_2001.jpg");
    let mut f = std::fs::File::create(&path).unwrap();
    // 40 pieces: mostly quick, but twice a pause well past the settle time, as a camera
    // card or a slow network share does.
    let started = Instant::now();
    for (i, piece) in bytes.chunks(3_000).enumerate() {
        f.write_all(piece).unwrap();
        f.flush().unwrap();
        let pause = if i == 10 || i == 25 { 1_200 } else { 40 };
        std::thread::sleep(Duration::from_millis(pause));
        assert!(
            photos(&eve, &order).is_empty(),
            "imported while being written ({} of {} bytes, {:?} in)",
            (i + 1) * 3_000,
            bytes.len(),
            started.elapsed()
        );
        assert!(path.exists(), "moved while being written");
    }
    drop(f);

    let list = wait_for(Duration::from_secs(30), "the photo to be imported", || {
        let l = photos(&eve, &order);
        (!l.is_empty()).then_some(l)
    });
    assert_eq!(list.len(), 1, "imported once: {list:?}");
    assert_eq!(list[0]["hash"], sha256_hex(&bytes), "the whole file");
    assert_eq!(list[0]["size"], bytes.len());
    assert!(!path.exists(), "moved out of the inbox");
    let moved = eve
        .dir
        .join("inbox/imported")
        .join(&order)
        .join("IMG_2001.jpg");
    assert_eq!(std::fs::read(&moved).unwrap(), bytes, "kept, not deleted");

    // The daemon uploads it without waiting for its next poll.
    wait_for(Duration::from_secs(30), "the photo to be verified", || {
        (photos(&eve, &order)[0]["state"] == "verified").then_some(())
    });
    assert_eq!(server_blob_files(&server.dir).0, vec![sha256_hex(&bytes)]);
}

#[test]
fn scan_imports_what_is_complete_and_explains_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let dana = server.api(DISPATCHER);
    let order = order_for(&dana, "eve");
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    agent_settings(&eve, "inbox_settle_ms = 200\n");
    eve.sync();
    let inbox = eve.dir.join("inbox");
    let folder = inbox.join(&order);
    std::fs::create_dir_all(&folder).unwrap();
    let good = jpeg(40_000, 1);
    std::fs::write(folder.join("a.jpg"), &good).unwrap();
    let png = {
        let mut p = b"\x89PNG\r\n\x1a\n".to_vec();
        p.extend_from_slice(&[7u8; 500]);
        p.extend_from_slice(b"\0\0\0\0IEND\xaeB`\x82");
        p
    };
    std::fs::write(folder.join("b.png"), &png).unwrap();
    std::fs::write(folder.join("c.jpg"), b"GIF89a renamed to jpg").unwrap();
    // Cut short: no end-of-image marker yet. Waited for, not imported, not refused.
    std::fs::write(folder.join("d.jpg"), &jpeg(40_000, 2)[..20_000]).unwrap();
    std::fs::write(folder.join("e.jpg.part"), &good).unwrap();
    let unknown = inbox.join("wo-nope");
    std::fs::create_dir_all(&unknown).unwrap();
    std::fs::write(unknown.join("x.jpg"), &good).unwrap();
    // Not an id at all (ids are letters, digits, '-' and '_').
    let traversal = inbox.join("wo 1 (copy)");
    std::fs::create_dir_all(&traversal).unwrap();
    std::fs::write(traversal.join("y.jpg"), &good).unwrap();

    let r = eve.json(&["photo", "scan"]);
    let imported: Vec<&str> = r["imported"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["hash"].as_str().unwrap())
        .collect();
    assert_eq!(imported, [sha256_hex(&good), sha256_hex(&png)], "{r}");
    let refused: Vec<String> = r["refused"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x[0].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(refused.len(), 3, "{r}");
    assert!(refused.iter().any(|p| p.ends_with("c.jpg")), "{r}");
    assert!(refused.iter().any(|p| p.ends_with("wo-nope/x.jpg")), "{r}");
    assert!(
        refused.iter().any(|p| p.ends_with("wo 1 (copy)/y.jpg")),
        "{r}"
    );
    assert!(r["waiting"][0].as_str().unwrap().ends_with("d.jpg"), "{r}");

    for kept in ["c.jpg", "d.jpg", "e.jpg.part"] {
        assert!(folder.join(kept).exists(), "{kept} stays in the inbox");
    }
    assert!(unknown.join("x.jpg").exists() && traversal.join("y.jpg").exists());
    let imported_dir = inbox.join("imported").join(&order);
    assert!(imported_dir.join("a.jpg").exists() && imported_dir.join("b.png").exists());

    let list = photos(&eve, &order);
    let refused_here: Vec<&Value> = list.iter().filter(|p| p["state"] == "refused").collect();
    assert_eq!(refused_here.len(), 1, "{list:?}");
    assert!(refused_here[0]["reason"]
        .as_str()
        .unwrap()
        .contains("not a JPEG"));
    let other = photos(&eve, "wo-nope");
    assert!(
        other[0]["reason"]
            .as_str()
            .unwrap()
            .contains("no work order"),
        "{other:?}"
    );
    let other = photos(&eve, "wo 1 (copy)");
    assert!(
        other[0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a work order id"),
        "{other:?}"
    );

    // Once the cut-short file is complete it goes in; the same name is free again.
    std::fs::write(folder.join("d.jpg"), jpeg(40_000, 2)).unwrap();
    let r = eve.json(&["photo", "scan"]);
    assert_eq!(r["imported"].as_array().unwrap().len(), 1, "{r}");
    assert!(imported_dir.join("d.jpg").exists());
    // Scanning again changes nothing and reports no old refusals as news.
    let r = eve.json(&["photo", "scan"]);
    assert!(r["imported"].as_array().unwrap().is_empty(), "{r}");
    assert!(r["refused"].as_array().unwrap().is_empty(), "{r}");
    let report = eve.sync();
    assert_eq!(report["photos"]["verified"], 3, "{report}");
}
