//! What must be refused, with a clear error, leaving nothing partial on the server: a
//! corrupted chunk, bytes that do not hash to their name, a non-image named .jpg,
//! traversal-style names, an oversize file.

use fieldsync_tests::photos::{
    agent_settings, jpeg, order_for, server_blob_files, sha256_hex, unexpected_server_files,
};
use fieldsync_tests::{assert_error, hlc_at, now_ms, Api, Server, DISPATCHER, ENGINEER};
use reqwest::Method;
use serde_json::{json, Value};

/// `Server::start_with` and limits small enough to test: 200 kB photos at most.
const PHOTO_BYTES_MAX: usize = 200_000;

fn photo_op(seq: u64, id: &str, order: &str, bytes: &[u8], extra: Value) -> Value {
    let mut fields = json!({
        "order_id": order, "hash": sha256_hex(bytes), "size": bytes.len(), "mime": "image/jpeg",
    });
    for (k, v) in extra.as_object().unwrap() {
        fields[k] = v.clone();
    }
    json!({"seq": seq, "kind": "photo", "id": id, "hlc": hlc_at(now_ms()), "op": "create",
           "fields": fields})
}

fn put(
    api: &Api,
    hash: &str,
    photo: &str,
    offset: usize,
    body: &[u8],
    chunk_sha: Option<&str>,
) -> (u16, Value) {
    let mut headers = vec![("content-type", "application/octet-stream")];
    if let Some(s) = chunk_sha {
        headers.push(("x-fieldsync-chunk-sha256", s));
    }
    api.raw(
        Method::PUT,
        &format!("/api/v1/blobs/{hash}?photo={photo}&offset={offset}"),
        &headers,
        body.to_vec(),
    )
}

fn held(api: &Api, hash: &str) -> u64 {
    let (status, body) = api.get(&format!("/api/v1/blobs/{hash}"));
    assert_eq!(status, 200, "{body}");
    body["held"].as_u64().unwrap()
}

#[test]
fn bad_uploads_are_refused_and_leave_nothing_partial() {
    let tmp = tempfile::tempdir().unwrap();
    let limit = PHOTO_BYTES_MAX.to_string();
    let server = Server::start_with(
        &tmp.path().join("server"),
        false,
        &["--photo-bytes-max", &limit],
    );
    let dana = server.api(DISPATCHER);
    let order = order_for(&dana, "eve");
    let (dev, _) = Api::enroll_device(&server, ENGINEER);

    let good = jpeg(150_000, 1);
    let claimed = jpeg(150_000, 2); // the record names these bytes...
    let sent_instead = jpeg(150_000, 3); // ...but these are sent
    let exe = {
        let mut b = b"MZ\x90\x00\x03\x00\x00\x00This program cannot be run in DOS mode".to_vec();
        b.resize(20_000, 0x41);
        b
    };
    let big = jpeg(PHOTO_BYTES_MAX + 1, 4);
    let (status, body) = dev.push(&json!({"ops": [
        photo_op(1, "ph-good", &order, &good, json!({})),
        photo_op(2, "ph-claimed", &order, &claimed, json!({})),
        photo_op(3, "ph-exe", &order, &exe, json!({"name": "invoice.jpg"})),
        photo_op(4, "ph-big", &order, &big, json!({})),
        photo_op(5, "ph-dots", &order, &good, json!({"name": "../x"})),
        photo_op(6, "ph-abs", &order, &good, json!({"name": "/etc/passwd"})),
        photo_op(7, "ph-nul", &order, &good, json!({"name": "a\u{0}b.jpg"})),
        photo_op(8, "ph-hash", &order, &good, json!({"hash": "../../etc/passwd"})),
    ]}));
    assert_eq!(status, 200, "{body}");
    let rejected: Vec<(u64, String, String)> = body["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["seq"].as_u64().unwrap(),
                r["code"].as_str().unwrap().to_owned(),
                r["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rejected.iter().map(|r| r.0).collect::<Vec<_>>(),
        [5, 6, 7, 8],
        "traversal-style names and hashes are refused as records: {body}"
    );
    assert!(
        rejected.iter().all(|r| r.1 == "invalid_value"),
        "{rejected:?}"
    );
    assert!(rejected[0].2.contains("plain file name"), "{rejected:?}");
    assert!(rejected[2].2.contains("control characters"), "{rejected:?}");
    assert!(rejected[3].2.contains("SHA-256"), "{rejected:?}");
    // The same through the dispatcher's JSON API.
    let r = dana.post(
        "/api/v1/entities/photo",
        &json!({"order_id": order, "hash": sha256_hex(&good), "size": good.len(),
                "mime": "image/jpeg", "name": "../../x"}),
    );
    assert_error(&r, 400, "invalid_value");

    // A corrupted chunk: its bytes do not match the hash sent with it. Not kept.
    let h = sha256_hex(&good);
    let first = &good[..65_536];
    let mut corrupted = first.to_vec();
    corrupted[1000] ^= 0x01;
    let r = put(&dev, &h, "ph-good", 0, &corrupted, Some(&sha256_hex(first)));
    assert_error(&r, 422, "chunk_hash_mismatch");
    assert_eq!(held(&dev, &h), 0);
    assert_eq!(
        server_blob_files(&server.dir),
        (vec![], vec![]),
        "nothing staged"
    );
    // Good chunks are held; a corrupted later one costs only itself.
    let r = put(&dev, &h, "ph-good", 0, first, Some(&sha256_hex(first)));
    assert_eq!((r.0, r.1["held"].as_u64()), (200, Some(65_536)), "{r:?}");
    let second = &good[65_536..131_072];
    let mut bad = second.to_vec();
    bad[5] ^= 0xff;
    let r = put(&dev, &h, "ph-good", 65_536, &bad, Some(&sha256_hex(second)));
    assert_error(&r, 422, "chunk_hash_mismatch");
    assert_eq!(held(&dev, &h), 65_536);
    let (_, staged) = server_blob_files(&server.dir);
    let staged_len = std::fs::metadata(server.dir.join("blobs/staging").join(&staged[0]))
        .unwrap()
        .len();
    assert_eq!(staged_len, 65_536, "the refused chunk's bytes are gone");
    // A chunk that does not start where the server is.
    let r = put(&dev, &h, "ph-good", 0, first, None);
    assert_error(&r, 409, "offset_mismatch");
    assert_eq!(r.1["error"]["details"]["held"], 65_536);
    let r = put(&dev, &h, "ph-good", 65_536, &good[65_536..], None);
    assert_eq!((r.0, r.1["verified"].as_bool()), (200, Some(true)), "{r:?}");

    // The wrong bytes for a hash: each chunk is self-consistent, the whole is not.
    let c = sha256_hex(&claimed);
    let r = put(&dev, &c, "ph-claimed", 0, &sent_instead[..100_000], None);
    assert_eq!((r.0, r.1["held"].as_u64()), (200, Some(100_000)), "{r:?}");
    let r = put(
        &dev,
        &c,
        "ph-claimed",
        100_000,
        &sent_instead[100_000..],
        None,
    );
    assert_error(&r, 422, "hash_mismatch");
    assert!(r.1["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing was stored"));
    assert_eq!(held(&dev, &c), 0);

    // A program renamed .jpg: its record says JPEG, its bytes say otherwise.
    let e = sha256_hex(&exe);
    let r = put(&dev, &e, "ph-exe", 0, &exe, None);
    assert_error(&r, 415, "not_a_photo");

    // Over the server's limit: refused before a byte is stored.
    let b = sha256_hex(&big);
    let r = put(&dev, &b, "ph-big", 0, &big[..1000], None);
    assert_error(&r, 413, "photo_too_large");

    // Names in the URL are checked before anything else looks at them.
    let r = put(&dev, "..%2F..%2Fetc%2Fpasswd", "ph-good", 0, b"x", None);
    assert_error(&r, 400, "invalid_hash");
    let r = put(&dev, &"A".repeat(64), "ph-good", 0, b"x", None);
    assert_error(&r, 400, "invalid_hash");
    let r = put(&dev, &h, "..%2Fx", 0, b"x", None);
    assert_error(&r, 400, "invalid_id");
    let r = dev.get("/api/v1/blobs/%2Fetc%2Fpasswd");
    assert_error(&r, 400, "invalid_hash");
    let r = dana.get("/api/v1/photos/..%2Fx/blob");
    assert_error(&r, 404, "not_found");
    // Bytes for a photo record that names another blob.
    let r = put(&dev, &c, "ph-good", 0, &claimed[..10], None);
    assert_error(&r, 400, "wrong_photo");

    // After all that: exactly the one good photo, nothing staged, nothing stray.
    assert_eq!(server_blob_files(&server.dir), (vec![h.clone()], vec![]));
    assert_eq!(unexpected_server_files(&server.dir), Vec::<String>::new());
    let view = dana.order(&order);
    let stored: Vec<(&str, bool)> = view["photos"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p["stored"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        stored
            .iter()
            .filter(|s| s.1)
            .map(|s| s.0)
            .collect::<Vec<_>>(),
        ["ph-good"],
        "{view}"
    );
}

#[test]
fn the_agent_refuses_non_photos_and_oversize_files_and_leaves_them_in_place() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let dana = server.api(DISPATCHER);
    let order = order_for(&dana, "eve");
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    agent_settings(&eve, "photo_bytes_max = 100000\n");
    eve.sync();

    let fake = tmp.path().join("holiday.jpg");
    std::fs::write(&fake, b"MZ\x90\x00\x03\x00\x00\x00 not a photo at all").unwrap();
    let err = eve.fail(&["photo", "add", &order, fake.to_str().unwrap()]);
    assert!(err.contains("not a JPEG, PNG, HEIC or PDF"), "{err}");
    let big = tmp.path().join("huge.jpg");
    std::fs::write(&big, jpeg(100_001, 1)).unwrap();
    let err = eve.fail(&["photo", "add", &order, big.to_str().unwrap()]);
    assert!(err.contains("more than the"), "{err}");
    let dir = tmp.path().join("a-folder.jpg");
    std::fs::create_dir(&dir).unwrap();
    let err = eve.fail(&["photo", "add", &order, dir.to_str().unwrap()]);
    assert!(err.contains("not a regular file"), "{err}");

    assert!(
        fake.exists() && big.exists(),
        "refused files stay where they were"
    );
    let list = eve.json(&["photos", &order]);
    let states: Vec<(&str, &str)> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["state"].as_str().unwrap(), p["reason"].as_str().unwrap()))
        .collect();
    assert_eq!(states.len(), 3, "{list}");
    assert!(states.iter().all(|s| s.0 == "refused"), "{list}");
    assert!(states.iter().any(|s| s.1.contains("not a JPEG")), "{list}");
    assert_eq!(eve.info()["pending_ops"], 0, "no record was made");
    let report = eve.sync();
    assert_eq!(report["photos"]["verified"], 0, "{report}");
    assert_eq!(server_blob_files(&server.dir), (vec![], vec![]));
}
