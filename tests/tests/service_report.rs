//! Issue 5, must-show 3: a service report completed offline — checklist answers, labour
//! and travel time, resolution, fault code and root cause, the customer's sign-off with a
//! signature image, a rating, and photos — syncs, and the server's printable report is the
//! same document as the one the agent printed offline (image addresses aside: the agent
//! inlines the bytes, the console links its photo route; both name each image's hash).
//! On the way: the asset's service history reaches the engineer with the assignment, and
//! every refused input is refused with its reason and records nothing.

use fieldsync_tests::photos::{real_jpeg, sha256_hex};
use fieldsync_tests::{Agent, Api, Server, ADMIN, DISPATCHER, ENGINEER};
use serde_json::{json, Value};

const TEMPLATE_ITEMS: &str = "# pump repair\n\
seal | Shaft seal intact | yes/no\n\
pressure | Outlet pressure after repair (bar) | number\n\
remarks | Remarks";

fn create(api: &Api, kind: &str, body: Value) -> String {
    let (status, resp) = api.post(&format!("/api/v1/entities/{kind}"), &body);
    assert_eq!(status, 201, "create {kind}: {resp}");
    resp["id"].as_str().unwrap().to_owned()
}

fn png(w: u32, h: u32) -> Vec<u8> {
    let img = image::GrayImage::from_fn(w, h, |x, y| {
        image::Luma([if (x + 2 * y) % 17 == 0 { 0 } else { 255 }])
    });
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

fn pending(eve: &Agent) -> u64 {
    eve.info()["pending_ops"].as_u64().unwrap()
}

/// The document with every image address blanked: what remains is what prints.
fn without_image_addresses(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(i) = rest.find(" src=\"") {
        out.push_str(&rest[..i + 6]);
        let after = &rest[i + 6..];
        let end = after.find('"').expect("closed attribute");
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

fn console_report(server: &Server, dana: &Api, order: &str, lang: &str) -> String {
    let token = dana.token.clone().unwrap();
    let cookie = format!("fs_console={token}; fs_lang={lang}");
    let anon = Api::anonymous(server);
    let (status, headers, body) = anon.get_bytes(
        &format!("/console/orders/{order}/report"),
        &[("cookie", &cookie)],
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("style-src 'sha256-"), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    String::from_utf8(body).unwrap()
}

#[test]
fn a_service_report_completed_offline_prints_the_same_on_the_server() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let dana = server.api(DISPATCHER);
    let root = server.api(ADMIN);

    let customer = create(
        &dana,
        "customer",
        json!({"name": "Harbour Foods Ltd", "address": "12 Quay Road", "tier": "gold"}),
    );
    let site = create(
        &dana,
        "site",
        json!({"customer_id": customer, "name": "Cold store 2", "address": "Dock 4"}),
    );
    let asset = create(
        &dana,
        "asset",
        json!({"customer_id": customer, "site_id": site, "model": "Grundfos CR 15", "serial": "P-20931"}),
    );
    let template = create(
        &dana,
        "checklist_template",
        json!({"work_type": "repair", "title": "Pump repair", "items": TEMPLATE_ITEMS}),
    );

    // Last year's visit to the same pump, done by someone else.
    let past = dana.create_order(json!({
        "description": "Pump noisy", "priority": 3, "asset_id": asset,
        "customer_id": customer, "site_id": site, "work_type": "repair", "assignee": "sam",
    }));
    let (status, body) = root.patch(
        &format!("/api/v1/work-orders/{past}"),
        &json!({"status": "completed", "fault_code": "E17", "root_cause": "Bearing worn",
                "resolution": "Bearing replaced", "completed_at": 1_700_000_000_000u64}),
    );
    assert_eq!(status, 200, "{body}");

    let order = dana.create_order(json!({
        "description": "Pump leaking at the shaft", "priority": 2, "asset_id": asset,
        "customer_id": customer, "site_id": site, "work_type": "repair", "assignee": "eve",
    }));
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();

    // The asset's history came with the assignment: last year's order, read-only.
    let history = eve.json(&["history", &asset]);
    let past_entry = history["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["id"] == past.as_str())
        .unwrap_or_else(|| panic!("past order in the history: {history}"));
    assert_eq!(past_entry["fault_code"], "E17", "{history}");
    assert_eq!(past_entry["root_cause"], "Bearing worn");
    assert_eq!(history["orders"].as_array().unwrap().len(), 2, "{history}");
    let mine = eve.json(&["orders"]);
    assert_eq!(
        mine.as_array().unwrap().len(),
        1,
        "only my order is listed: {mine}"
    );
    let e = eve.fail(&["note", &past, "looks fine"]);
    assert!(e.contains("not assigned to you"), "{e}");

    // Offline from here: the server is down while the whole report is captured.
    server.stop();
    eve.ok(&["progress", &order, "on-site"]);
    let checklist = eve.json(&["checklist", &order]);
    assert_eq!(checklist["template_id"], template.as_str(), "{checklist}");
    assert_eq!(checklist["open"], 3);
    let before = pending(&eve);
    for (bad, why) in [
        ("colour=red", "has no item \"colour\""),
        ("pressure=high", "with a number"),
        ("seal=maybe", "yes or no"),
    ] {
        let e = eve.fail(&["checklist", &order, "--answer", "seal=yes", "--answer", bad]);
        assert!(
            e.contains(why) && e.contains("nothing was recorded"),
            "{bad}: {e}"
        );
    }
    assert_eq!(
        pending(&eve),
        before,
        "a refused answer records nothing, not even the good one"
    );
    let checklist = eve.json(&[
        "checklist",
        &order,
        "--answer",
        "seal=Y",
        "--answer",
        "pressure=2.4",
        "--answer",
        "remarks=Seal kit replaced; no leak at 3 bar",
    ]);
    assert_eq!(checklist["open"], 0, "{checklist}");
    assert_eq!(checklist["items"][0]["value"], "yes");
    // Answering again adds a newer answer; the first stays in the record.
    eve.ok(&["checklist", &order, "--answer", "pressure=2.5"]);

    let e = eve.fail(&["time", &order, "--labour", "-5"]);
    assert!(
        e.contains("positive") && e.contains("nothing was recorded"),
        "{e}"
    );
    let e = eve.fail(&["time", &order, "--travel", "2000"]);
    assert!(e.contains("from 1 to 1440"), "{e}");
    eve.ok(&["time", &order, "--travel", "40"]);
    eve.ok(&[
        "time",
        &order,
        "--labour",
        "95",
        "--note",
        "seal replacement",
    ]);

    eve.ok(&[
        "resolve",
        &order,
        "--fault-code",
        "E42",
        "--root-cause",
        "Shaft seal worn",
        "--resolution",
        "Replaced the shaft seal kit and pressure-tested",
    ]);

    let photo = tmp.path().join("seal.jpg");
    std::fs::write(&photo, real_jpeg(320, 200)).unwrap();
    eve.ok(&[
        "photo",
        "add",
        &order,
        photo.to_str().unwrap(),
        "--caption",
        "New seal fitted",
    ]);

    let before = pending(&eve);
    let big = tmp.path().join("huge.png");
    let mut huge = png(64, 32);
    huge.resize(1024 * 1024 + 1, 0);
    std::fs::write(&big, &huge).unwrap();
    let e = eve.fail(&[
        "signoff",
        &order,
        "--name",
        "Li Wei",
        "--signature",
        big.to_str().unwrap(),
    ]);
    assert!(
        e.contains("a signature may be") && e.contains("nothing was recorded"),
        "{e}"
    );
    let e = eve.fail(&[
        "signoff",
        &order,
        "--name",
        "Li Wei",
        "--signature",
        photo
            .to_str()
            .unwrap()
            .replace("seal.jpg", "missing.png")
            .as_str(),
    ]);
    assert!(e.contains("missing.png"), "{e}");
    assert_eq!(pending(&eve), before, "a refused signature records nothing");
    let sig_bytes = png(300, 120);
    let sig = tmp.path().join("signature.png");
    std::fs::write(&sig, &sig_bytes).unwrap();
    let signed = eve.json(&[
        "signoff",
        &order,
        "--name",
        "Li Wei",
        "--signature",
        sig.to_str().unwrap(),
    ]);
    assert_eq!(signed["hash"], sha256_hex(&sig_bytes));

    for bad in ["0", "6", "-1"] {
        let e = eve.fail(&["rate", &order, bad]);
        assert!(
            e.contains("1 to 5") && e.contains("nothing was recorded"),
            "{bad}: {e}"
        );
    }
    eve.ok(&[
        "rate",
        &order,
        "5",
        "--comment",
        "Fast, tidy, explained everything",
    ]);
    eve.ok(&["progress", &order, "completed"]);
    assert!(eve.info()["rejected_ops"] == 0);

    let offline_en = tmp.path().join("report-en.html");
    eve.ok(&["report", &order, "--out", offline_en.to_str().unwrap()]);
    let offline_en = std::fs::read_to_string(&offline_en).unwrap();
    let offline_zh = eve.ok(&["report", &order, "--lang", "zh-CN"]);
    // To look at it: FIELDSYNC_REPORT_SAMPLE=/tmp/report.html cargo test --test service_report
    if let Ok(path) = std::env::var("FIELDSYNC_REPORT_SAMPLE") {
        std::fs::write(&path, &offline_en).unwrap();
        std::fs::write(format!("{path}.zh.html"), &offline_zh).unwrap();
    }
    assert!(
        offline_en.contains("data:image/png;base64,"),
        "the signature is inlined offline"
    );

    // Back online: everything syncs, bytes verified.
    server.restart();
    let dana = server.api(DISPATCHER);
    let report = eve.sync();
    assert_eq!(
        report["photos"]["verified"], 2,
        "photo and signature: {report}"
    );
    assert_eq!(eve.info()["pending_ops"], 0);
    assert_eq!(eve.info()["rejected_ops"], 0, "{}", eve.info());

    let v = dana.order(&order);
    assert_eq!(v["fault_code"], "E42");
    assert_eq!(v["root_cause"], "Shaft seal worn");
    assert_eq!(v["checklist"].as_array().unwrap().len(), 4, "{v}");
    assert_eq!(v["time_entries"].as_array().unwrap().len(), 2);
    assert_eq!(v["signoffs"][0]["signer_name"], "Li Wei");
    assert_eq!(v["ratings"][0]["score"], 5);

    // The same document from both, in both languages.
    let server_en = console_report(&server, &dana, &order, "en");
    let server_zh = console_report(&server, &dana, &order, "zh-CN");
    assert_eq!(
        without_image_addresses(&server_en),
        without_image_addresses(&offline_en),
        "the console's report differs from the agent's offline one"
    );
    assert_eq!(
        without_image_addresses(&server_zh),
        without_image_addresses(&offline_zh)
    );
    for shown in [
        "Li Wei",
        "★★★★★",
        "5/5",
        "Fast, tidy, explained everything",
        "E42",
        "Shaft seal worn",
        "Replaced the shaft seal kit",
        "Shaft seal intact",
        "Seal kit replaced",
        "1:35",
        "0:40",
        "Grundfos CR 15",
        "P-20931",
        "Harbour Foods Ltd",
        "New seal fitted",
        "Pump repair",
    ] {
        assert!(
            server_en.contains(shown),
            "{shown:?} missing from the report:\n{server_en}"
        );
    }
    assert!(server_en.contains(&format!("data-hash=\"{}\"", sha256_hex(&sig_bytes))));
    assert!(
        server_en.contains("src=\"/console/photos/"),
        "the console links its photos"
    );
    assert!(
        !server_en.contains("class=\"missing\""),
        "every image is on the server"
    );
    assert!(server_zh.contains("服务报告") && server_zh.contains("客户签字确认"));
    assert!(
        !server_en.contains('⟦') && !server_zh.contains('⟦'),
        "every label translated"
    );
    // The earlier answer is kept in view, not overwritten.
    assert!(server_en.contains("2.4") && server_en.contains("2.5"));

    // The order's console page summarises the report and links the printable page.
    let (status, _, page) = Api::anonymous(&server).get_bytes(
        &format!("/console/orders/{order}"),
        &[(
            "cookie",
            &format!("fs_console={}", dana.token.clone().unwrap()),
        )],
    );
    let page = String::from_utf8(page).unwrap();
    assert_eq!(status, 200, "{page}");
    for shown in [
        "Li Wei",
        "5/5",
        "labour 95 min",
        "Shaft seal worn",
        "/report\"",
    ] {
        assert!(
            page.contains(shown),
            "{shown:?} missing from the order page"
        );
    }
    assert!(!page.contains('⟦'), "every label translated");

    // The customer complains later; the dispatcher logs it and schedules a follow-up visit
    // from it in the console.
    let token = dana.token.clone().unwrap();
    let cookie = format!("fs_console={token}");
    let csrf = sha256_hex(format!("fieldsync-csrf\0{token}").as_bytes());
    let form = |path: &str, body: String| {
        let (status, resp) = Api::anonymous(&server).raw(
            reqwest::Method::POST,
            path,
            &[
                ("cookie", &cookie),
                ("content-type", "application/x-www-form-urlencoded"),
            ],
            body.into_bytes(),
        );
        assert!(status < 400, "{path}: {status} {resp}");
    };
    form(
        &format!("/console/orders/{order}/complaints"),
        format!("csrf={csrf}&text=Leaking+again+after+two+days"),
    );
    let v = dana.order(&order);
    let complaint = v["complaints"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        v["complaints"][0]["text"], "Leaking again after two days",
        "{v}"
    );
    form(
        &format!("/console/complaints/{complaint}/follow-up"),
        format!("csrf={csrf}"),
    );
    form(
        &format!("/console/complaints/{complaint}/follow-up"),
        format!("csrf={csrf}"),
    );
    let (status, c) = dana.get(&format!("/api/v1/entities/complaint/{complaint}"));
    assert_eq!(status, 200, "{c}");
    let follow = c["follow_up_order"]
        .as_str()
        .unwrap_or_else(|| panic!("{c}"))
        .to_owned();
    let f = dana.order(&follow);
    assert_eq!(f["asset_id"], asset.as_str(), "{f}");
    assert_eq!(f["customer_id"], customer.as_str());
    assert_eq!(f["work_type"], "repair");
    assert!(
        f["description"].as_str().unwrap().contains("Leaking again"),
        "{f}"
    );
    let (_, all) = dana.get("/api/v1/work-orders");
    let follow_ups = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| {
            o["description"]
                .as_str()
                .is_some_and(|d| d.contains("Leaking again"))
        })
        .count();
    assert_eq!(follow_ups, 1, "a second click makes no second visit");
    // The engineer who did the work sees the complaint on the order.
    eve.sync();
    assert_eq!(
        eve.show(&order)["complaints"][0]["text"],
        "Leaking again after two days"
    );
}
