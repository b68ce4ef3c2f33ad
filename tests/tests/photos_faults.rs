//! Photos survive a bad network and a killed agent: a fault-injecting proxy cuts the
//! upload at 100 random byte offsets, and an agent is SIGKILLed mid-upload. Every photo
//! still arrives verified, is stored once, and the cuts cost at most one chunk each.

use std::time::{Duration, Instant};

use fieldsync_tests::photos::{agent_settings, jpeg, order_for, server_blob_files, sha256_hex};
use fieldsync_tests::proxy::Proxy;
use fieldsync_tests::{wait_for, Agent, Server, DISPATCHER, ENGINEER};
use rand::{Rng, SeedableRng};
use serde_json::Value;

const CHUNK_BYTES: u64 = 64 * 1024;
const PHOTOS: u64 = 6;
const PHOTO_BYTES: usize = 200_000;
const CUTS: usize = 100;

/// Attach `PHOTOS` photos made from `seeds` to `order`; returns their bytes.
fn attach(
    agent: &Agent,
    order: &str,
    seeds: std::ops::Range<u64>,
    dir: &std::path::Path,
) -> Vec<Vec<u8>> {
    seeds
        .map(|seed| {
            let bytes = jpeg(PHOTO_BYTES, seed);
            let f = dir.join(format!("site-{seed}.jpg"));
            std::fs::write(&f, &bytes).unwrap();
            agent.ok(&["photo", "add", order, f.to_str().unwrap()]);
            bytes
        })
        .collect()
}

fn states(agent: &Agent, order: &str) -> Vec<(String, u64)> {
    agent
        .json(&["photos", order])
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["state"].as_str().unwrap().to_owned(),
                p["bytes_sent"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Every photo of `order` is served back byte for byte.
fn assert_served(server: &Server, order: &str, photos: &[Vec<u8>]) {
    let dana = server.api(DISPATCHER);
    let view = dana.order(order);
    let listed = view["photos"].as_array().unwrap();
    assert_eq!(listed.len(), photos.len(), "{view}");
    for p in listed {
        assert_eq!(p["stored"], true, "{p}");
        let (status, _, body) = dana.get_bytes(
            &format!("/api/v1/photos/{}/blob", p["id"].as_str().unwrap()),
            &[],
        );
        assert_eq!(status, 200);
        assert!(
            photos.contains(&body),
            "served bytes are one of the originals"
        );
        assert_eq!(p["hash"], sha256_hex(&body));
    }
}

#[test]
fn a_hundred_random_cuts_lose_nothing_and_resend_at_most_a_chunk_each() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let dana = server.api(DISPATCHER);
    let proxy = Proxy::start(format!("127.0.0.1:{}", server.port()).parse().unwrap());
    let via_proxy = format!("https://127.0.0.1:{}", proxy.addr.port());
    let settings = format!("upload_chunk_bytes = {CHUNK_BYTES}\n");

    // The same workload without faults, through the same proxy, gives the bytes a clean
    // upload takes.
    let clean_order = order_for(&dana, "eve");
    let mut clean = server.agent(&tmp.path().join("clean"), ENGINEER);
    clean.server_override = Some(via_proxy.clone());
    agent_settings(&clean, &settings);
    clean.sync();
    attach(&clean, &clean_order, 1..1 + PHOTOS, tmp.path());
    proxy.reset_counters();
    let r = clean.sync();
    assert_eq!(r["photos"]["verified"], PHOTOS, "{r}");
    let clean_bytes = proxy.bytes().0;

    // Now with 100 cuts at random offsets of the upload stream.
    let order = order_for(&dana, "eve");
    let mut eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.server_override = Some(via_proxy);
    agent_settings(&eve, &settings);
    eve.sync();
    let photos = attach(&eve, &order, 101..101 + PHOTOS, tmp.path());
    let seed: u64 = rand::random();
    println!("cut offsets seed: {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let offsets: Vec<u64> = (0..CUTS).map(|_| rng.gen_range(1..clean_bytes)).collect();
    proxy.reset_counters();
    proxy.cut_at_offsets(offsets);
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut runs = 0;
    loop {
        runs += 1;
        let o = eve.run(&["sync", "--json"]);
        if o.status.success() {
            let r: Value = serde_json::from_slice(&o.stdout).unwrap();
            if r["photos"]["pending"] == 0 && proxy.offset_cuts_done() == CUTS {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "still not uploaded after {runs} syncs"
        );
    }
    let faulty_bytes = proxy.bytes().0;
    assert_eq!(proxy.offset_cuts_done(), CUTS);
    assert!(
        runs > CUTS / 2,
        "the cuts really interrupted syncs ({runs} runs)"
    );

    let states = states(&eve, &order);
    assert_eq!(states.len(), PHOTOS as usize);
    assert!(
        states
            .iter()
            .all(|(s, sent)| s == "verified" && *sent == PHOTO_BYTES as u64),
        "{states:?}"
    );
    assert_served(&server, &order, &photos);
    let (verified, staged) = server_blob_files(&server.dir);
    assert_eq!(
        verified.len(),
        2 * PHOTOS as usize,
        "each photo stored once"
    );
    assert!(staged.is_empty(), "nothing left half-uploaded: {staged:?}");

    // Everything sent beyond the clean run: re-sent chunk bytes, plus the reconnects and
    // the sync requests each retry repeats. At most one chunk per cut.
    let resent = faulty_bytes.saturating_sub(clean_bytes);
    println!("clean {clean_bytes} B, with {CUTS} cuts {faulty_bytes} B, resent {resent} B in {runs} syncs");
    assert!(
        resent <= CUTS as u64 * CHUNK_BYTES,
        "resent {resent} bytes over {CUTS} cuts: more than one {CHUNK_BYTES}-byte chunk per cut"
    );
}

#[test]
fn a_killed_agent_resumes_its_upload_without_loss_or_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let dana = server.api(DISPATCHER);
    let order = order_for(&dana, "eve");
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    // Slow enough to be caught mid-upload: 4 Mbit/s, 32 kB chunks.
    agent_settings(&eve, "upload_chunk_bytes = 32768\nmax_upload_kbps = 4000\n");
    eve.sync();
    let photos: Vec<Vec<u8>> = (0..3)
        .map(|seed| {
            let bytes = jpeg(400_000, 50 + seed);
            let f = tmp.path().join(format!("p{seed}.jpg"));
            std::fs::write(&f, &bytes).unwrap();
            eve.ok(&["photo", "add", &order, f.to_str().unwrap()]);
            bytes
        })
        .collect();
    let hashes: Vec<String> = photos.iter().map(|p| sha256_hex(p)).collect();
    let total: u64 = photos.iter().map(|p| p.len() as u64).sum();

    let mut child = eve.spawn_sync(&[]);
    let held = |h: &str| -> u64 {
        let (_, b) = dana.get(&format!("/api/v1/blobs/{h}"));
        b["held"].as_u64().unwrap_or(0)
    };
    // Kill it once a good part is up, in the middle of things.
    wait_for(
        Duration::from_secs(60),
        "the upload to be well under way",
        || (hashes.iter().map(|h| held(h)).sum::<u64>() >= 300_000).then_some(()),
    );
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let before: Vec<u64> = hashes.iter().map(|h| held(h)).collect();
    let mut done: Vec<String> = (0..3)
        .filter(|&i| before[i] == 400_000)
        .map(|i| hashes[i].clone())
        .collect();
    done.sort();
    let partial = before.iter().filter(|&&h| h > 0 && h < 400_000).count();
    assert!(
        partial >= 1 && done.len() < 3,
        "killed mid-upload: {before:?}"
    );
    let (mut verified, staged) = server_blob_files(&server.dir);
    verified.sort();
    assert_eq!((verified, staged.len()), (done, partial), "{before:?}");
    let list = eve.json(&["photos", &order]);
    let local: Vec<(String, String)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["hash"].as_str().unwrap().to_owned(),
                p["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for (hash, state) in &local {
        let i = hashes.iter().position(|h| h == hash).unwrap();
        let want: &[&str] = if before[i] == 400_000 {
            // Verified on the server; the agent may have died before hearing so.
            &["verified", "uploading", "local"]
        } else {
            &["uploading", "local"]
        };
        assert!(want.contains(&state.as_str()), "{local:?} {before:?}");
    }
    // Restart at full speed: it continues where the server is, not from zero.
    agent_settings(&eve, "upload_chunk_bytes = 32768\n");
    let r = eve.sync();
    let already: u64 = before.iter().sum();
    let verified_before = local.iter().filter(|(s, _)| s == "verified").count() as u64;
    assert_eq!(r["photos"]["verified"], 3 - verified_before, "{r}");
    assert_eq!(
        r["photos"]["bytes_sent"].as_u64().unwrap(),
        total - already,
        "only the bytes the server did not hold were sent: {r}"
    );
    assert!(states(&eve, &order)
        .iter()
        .all(|(s, sent)| s == "verified" && *sent == 400_000));
    let (mut verified, staged) = server_blob_files(&server.dir);
    let mut want = hashes.clone();
    want.sort();
    verified.sort();
    assert_eq!(
        (verified, staged),
        (want, vec![]),
        "each stored once, nothing staged"
    );
    assert_served(&server, &order, &photos);
    // And a further sync has nothing left to do.
    let r = eve.sync();
    assert_eq!(
        (
            r["photos"]["verified"].as_u64(),
            r["photos"]["bytes_sent"].as_u64()
        ),
        (Some(0), Some(0))
    );
}
