//! Photos from the engineer's device to the order: EXIF read at import, the record synced,
//! the bytes uploaded and verified, the order listing them on the server, authorised
//! ranged reads, thumbnails, deduplication, and retention deleting the local copy only
//! after the server's verified receipt.

use fieldsync_tests::photos::{
    agent_settings, jpeg, order_for, real_jpeg, server_blob_files, sha256_hex, EXIF_LAT, EXIF_LON,
    EXIF_TAKEN_AT_MS,
};
use fieldsync_tests::{Server, DISPATCHER, ENGINEER, ENGINEER2};

#[test]
fn a_photo_reaches_the_order_verified_with_its_exif() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let dana = server.api(DISPATCHER);
    let order = order_for(&dana, "eve");
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    agent_settings(&eve, "upload_chunk_bytes = 65536\n");
    eve.sync();

    let bytes = jpeg(300_000, 1);
    let file = tmp.path().join("IMG_0001.JPG");
    std::fs::write(&file, &bytes).unwrap();
    let out = eve.ok(&[
        "photo",
        "add",
        &order[..13],
        file.to_str().unwrap(),
        "--caption",
        "Nameplate",
    ]);
    assert!(out.contains("attached"), "{out}");
    assert!(file.exists(), "photo add leaves the original where it is");

    let list = eve.json(&["photos", &order]);
    let p = &list[0];
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(p["state"], "local");
    assert_eq!(p["hash"], sha256_hex(&bytes));
    assert_eq!(p["bytes_sent"], 0);
    assert_eq!(p["size"], 300_000);
    assert_eq!(p["mime"], "image/jpeg");
    assert_eq!(p["name"], "IMG_0001.JPG");
    assert_eq!(p["caption"], "Nameplate");
    assert_eq!(p["taken_at"], EXIF_TAKEN_AT_MS);
    assert!((p["lat"].as_f64().unwrap() - EXIF_LAT).abs() < 1e-9, "{p}");
    assert!((p["lon"].as_f64().unwrap() - EXIF_LON).abs() < 1e-9, "{p}");
    let shown = eve.show(&order);
    assert_eq!(shown["photos"][0]["hash"], sha256_hex(&bytes), "{shown}");

    let report = eve.sync();
    assert_eq!(report["photos"]["verified"], 1, "{report}");
    assert_eq!(report["photos"]["bytes_sent"], 300_000, "{report}");
    assert_eq!(report["photos"]["pending"], 0, "{report}");
    let p = &eve.json(&["photos", &order])[0];
    assert_eq!(
        (p["state"].as_str(), p["bytes_sent"].as_u64()),
        (Some("verified"), Some(300_000))
    );
    assert_eq!(
        p["local_copy"], true,
        "kept: the retention period has not passed"
    );

    // The dispatcher's order lists it, stored, with what the device read from it.
    let view = dana.order(&order);
    let sp = &view["photos"][0];
    assert_eq!(sp["hash"], sha256_hex(&bytes), "{view}");
    assert_eq!(sp["stored"], true);
    assert_eq!(sp["by"], "eve");
    assert_eq!(sp["caption"], "Nameplate");
    assert_eq!(sp["taken_at"], EXIF_TAKEN_AT_MS);
    let id = sp["id"].as_str().unwrap();

    // Authorised reads, whole and ranged.
    let (status, h, body) = dana.get_bytes(&format!("/api/v1/photos/{id}/blob"), &[]);
    assert_eq!(status, 200);
    assert_eq!(body, bytes);
    assert_eq!(h["content-type"], "image/jpeg");
    assert_eq!(h["accept-ranges"], "bytes");
    let (status, h, body) = dana.get_bytes(
        &format!("/api/v1/photos/{id}/blob"),
        &[("range", "bytes=100-199")],
    );
    assert_eq!(status, 206);
    assert_eq!(body, &bytes[100..200]);
    assert_eq!(h["content-range"], "bytes 100-199/300000");
    let (status, _, body) = dana.get_bytes(
        &format!("/api/v1/photos/{id}/blob"),
        &[("range", "bytes=-10")],
    );
    assert_eq!((status, body.as_slice()), (206, &bytes[bytes.len() - 10..]));
    let (status, _, _) = dana.get_bytes(
        &format!("/api/v1/photos/{id}/blob"),
        &[("range", "bytes=400000-")],
    );
    assert_eq!(status, 416);
    // Sam holds no order with this photo.
    let sam = server.api(ENGINEER2);
    let (status, _, _) = sam.get_bytes(&format!("/api/v1/photos/{id}/blob"), &[]);
    assert_eq!(status, 404);
    let (status, _, _) = sam.get_bytes(&format!("/api/v1/photos/{id}/thumbnail"), &[]);
    assert_eq!(status, 404);

    // The same bytes again: nothing new is recorded or stored.
    let out = eve.ok(&["photo", "add", &order, file.to_str().unwrap()]);
    assert!(out.contains("already attached"), "{out}");
    assert_eq!(eve.json(&["photos", &order]).as_array().unwrap().len(), 1);
    assert_eq!(
        server_blob_files(&server.dir),
        (vec![sha256_hex(&bytes)], vec![])
    );
}

#[test]
fn same_bytes_on_two_orders_go_up_once_and_thumbnails_come_from_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let dana = server.api(DISPATCHER);
    let (a, b) = (order_for(&dana, "eve"), order_for(&dana, "eve"));
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();
    let photo = real_jpeg(640, 480);
    let file = tmp.path().join("finished-work.jpg");
    std::fs::write(&file, &photo).unwrap();
    eve.ok(&["photo", "add", &a, file.to_str().unwrap()]);
    eve.ok(&["photo", "add", &b, file.to_str().unwrap()]);
    let pdf = b"%PDF-1.4\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n".to_vec();
    let scan = tmp.path().join("signed-job-sheet.pdf");
    std::fs::write(&scan, &pdf).unwrap();
    eve.ok(&["photo", "add", &a, scan.to_str().unwrap()]);

    let report = eve.sync();
    assert_eq!(report["photos"]["verified"], 2, "two blobs: {report}");
    assert_eq!(
        report["photos"]["bytes_sent"],
        (photo.len() + pdf.len()) as u64,
        "the shared photo went up once: {report}"
    );
    for order in [&a, &b] {
        let list = eve.json(&["photos", order]);
        assert!(
            list.as_array()
                .unwrap()
                .iter()
                .all(|p| p["state"] == "verified"),
            "{list}"
        );
    }
    let (mut verified, staged) = server_blob_files(&server.dir);
    let mut want = vec![sha256_hex(&photo), sha256_hex(&pdf)];
    want.sort();
    verified.sort();
    assert_eq!((verified, staged), (want, vec![]));

    let view = dana.order(&b);
    let id = view["photos"][0]["id"].as_str().unwrap();
    let (status, h, thumb) = dana.get_bytes(&format!("/api/v1/photos/{id}/thumbnail?px=128"), &[]);
    assert_eq!(status, 200);
    assert_eq!(h["content-type"], "image/jpeg");
    let img = image::load_from_memory(&thumb).unwrap();
    assert_eq!((img.width(), img.height()), (128, 96), "aspect kept");
    let pdf_id = dana.order(&a)["photos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["mime"] == "application/pdf")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, _, _) = dana.get_bytes(&format!("/api/v1/photos/{pdf_id}/thumbnail"), &[]);
    assert_eq!(status, 415, "no thumbnails of PDFs");
    let (status, _, body) = dana.get_bytes(&format!("/api/v1/photos/{pdf_id}/blob"), &[]);
    assert_eq!((status, body), (200, pdf));
}

#[test]
fn the_local_copy_goes_only_after_the_verified_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let dana = server.api(DISPATCHER);
    let order = order_for(&dana, "eve");
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    // Retention 0: delete as soon as it is allowed, which is after verification.
    agent_settings(&eve, "photo_retention_days = 0\n");
    eve.sync();
    let bytes = jpeg(50_000, 7);
    let file = tmp.path().join("meter.jpg");
    std::fs::write(&file, &bytes).unwrap();
    eve.ok(&["photo", "add", &order, file.to_str().unwrap()]);
    let hash = sha256_hex(&bytes);
    let local = eve
        .dir
        .join("blobs/sha256")
        .join(&hash[0..2])
        .join(&hash[2..4])
        .join(&hash);
    assert!(local.exists());

    server.kill();
    let err = eve.fail(&["sync"]);
    assert!(err.contains("cannot reach"), "{err}");
    assert!(local.exists(), "no receipt, no deletion");
    let p = &eve.json(&["photos", &order])[0];
    assert_eq!(
        (p["state"].as_str(), p["local_copy"].as_bool()),
        (Some("local"), Some(true))
    );

    server.restart();
    let report = eve.sync();
    assert_eq!(report["photos"]["verified"], 1, "{report}");
    assert_eq!(report["photos"]["local_copies_deleted"], 1, "{report}");
    assert!(!local.exists(), "deleted after the receipt");
    let p = &eve.json(&["photos", &order])[0];
    assert_eq!(
        (p["state"].as_str(), p["local_copy"].as_bool()),
        (Some("verified"), Some(false))
    );
    let id = p["id"].as_str().unwrap();
    let (status, _, body) = dana.get_bytes(&format!("/api/v1/photos/{id}/blob"), &[]);
    assert_eq!((status, body), (200, bytes), "the server has it");
}
