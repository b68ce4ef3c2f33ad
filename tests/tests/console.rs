//! The dispatcher console in a real browser (headless Chromium over WebDriver) against a
//! real server and a real `fieldsync daemon`, plus the console's auth rules over HTTP.
//! Screenshots of the board, order detail, assignment dialog and conflict inbox, in
//! English and Chinese, land in `target/screenshots/`.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use fieldsync_tests::console::{login, shoot, Console};
use fieldsync_tests::photos::{order_for, real_jpeg, sha256_hex};
use fieldsync_tests::webdriver::Browser;
use fieldsync_tests::{stderr, wait_for, Agent, Api, Server, DISPATCHER, ENGINEER};
use serde_json::json;

/// How long a new assignment may take to reach an online agent here: less than the
/// agent's poll interval (15 s), so only the live event can meet it. The promise (within one
/// second) is a figure, printed by the test, not an assertion a loaded machine could break.
const LIVE_ASSIGNMENT_WAIT_MAX: Duration = Duration::from_secs(8);

fn spawn_daemon(agent: &Agent) -> Child {
    agent
        .command(&["daemon"])
        // Long enough that only the live channel can explain a sub-second delivery.
        .env("FIELDSYNC_POLL_INTERVAL_MS", "60000")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn daemon")
}

fn stop(child: &mut Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "daemon ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether the agent's own store holds `order` assigned to `user` (read-only, beside the
/// running daemon).
fn agent_holds(agent: &Agent, order: &str, user: &str) -> bool {
    let Ok(conn) = rusqlite::Connection::open_with_flags(
        agent.db_path(),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    ) else {
        return false;
    };
    conn.query_row(
        "SELECT state FROM entities WHERE kind = 'work_order' AND id = ?1",
        [order],
        |r| r.get::<_, String>(0),
    )
    .ok()
    .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
    .is_some_and(|v| v["fields"]["assignee"]["v"] == user)
}

#[test]
fn dispatcher_story_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let api = server.api(DISPATCHER);
    let (s, _) = api.post(
        "/api/v1/entities/customer",
        &json!({"id": "cust-northwind", "name": "Northwind Dairy", "tier": "gold"}),
    );
    assert_eq!(s, 201);
    let (s, _) = api.post(
        "/api/v1/entities/asset",
        &json!({"id": "asset-chiller-7", "model": "Carrier 30RB chiller", "customer_id": "cust-northwind"}),
    );
    assert_eq!(s, 201);
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();
    let mut daemon = spawn_daemon(&eve);

    let b = Browser::start("en-US").expect("headless chromium (see .ci/run)");
    login(&b, &server, DISPATCHER);
    b.wait_css("#board-empty, #board").unwrap();

    // 1. Intake: a missing description is flagged next to the field.
    b.goto(&format!("{}/console/orders/new", server.url))
        .unwrap();
    b.find("#customer")
        .unwrap()
        .send_keys("cust-northwind")
        .unwrap();
    b.find("#asset")
        .unwrap()
        .send_keys("asset-chiller-7")
        .unwrap();
    b.find("#intake button[type=submit]")
        .unwrap()
        .click()
        .unwrap();
    let err = b.wait_css("#description-err").unwrap().text().unwrap();
    assert!(err.contains("Required"), "{err}");
    b.find("#description")
        .unwrap()
        .send_keys("Chiller 7 tripping on high pressure")
        .unwrap();
    b.exec("document.getElementById('priority').value = '2'")
        .unwrap();
    b.exec("document.getElementById('channel').value = 'email'")
        .unwrap();
    b.find("#reporter")
        .unwrap()
        .send_keys("Ann Lee, +44 20 7946 0001")
        .unwrap();
    b.find("#intake button[type=submit]")
        .unwrap()
        .click()
        .unwrap();
    b.wait_css("#assign-link").unwrap();
    let url = b.url().unwrap();
    let order = url
        .rsplit("/console/orders/")
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let text = b.text().unwrap();
    assert!(text.contains("Email") && text.contains("Ann Lee"), "{text}");

    // Assign to eve; the running daemon has it within a second.
    b.find("#assign-link").unwrap().click().unwrap();
    b.wait_css("#cand-eve").unwrap().click().unwrap();
    shoot(&b, "assign-en");
    let submitted = Instant::now();
    b.find("#assign-submit").unwrap().click().unwrap();
    wait_for(
        LIVE_ASSIGNMENT_WAIT_MAX,
        "the assignment on eve's device",
        || agent_holds(&eve, &order, "eve").then_some(()),
    );
    eprintln!(
        "the assignment reached the online agent in {} ms",
        submitted.elapsed().as_millis()
    );
    b.wait_css(".flash").unwrap();
    b.goto(&format!("{}/console", server.url)).unwrap();
    let row = b.wait_css(&format!("tr[data-id='{order}']")).unwrap();
    assert!(
        row.text().unwrap().contains("Northwind Dairy"),
        "the board names the customer: {}",
        row.text().unwrap()
    );
    shoot(&b, "board-en");

    // 2. Eve works offline while the dispatcher edits the same field.
    stop(&mut daemon);
    let engineer_text = "Chiller 7: HP switch failed, replaced; monitoring";
    eve.ok(&["edit", &order, "--description", engineer_text]);
    std::thread::sleep(Duration::from_millis(20));
    b.goto(&format!("{}/console/orders/{order}", server.url))
        .unwrap();
    let dispatcher_text = "Chiller 7 tripping on HP alarm; line 2 down since 06:00";
    let d = b.find("#description").unwrap();
    d.clear().unwrap();
    d.send_keys(dispatcher_text).unwrap();
    b.find("#save").unwrap().click().unwrap();
    b.wait_css(".flash").unwrap();
    assert_eq!(b.find_all("tr.conflict.open").unwrap(), 0);
    b.wait_css("body[data-live-ready]").unwrap();

    // 3. Eve syncs; the open page shows the conflict without a reload.
    eve.sync();
    b.wait_css("tr.conflict.open").unwrap();
    let page = b.text().unwrap();
    assert!(
        page.contains(engineer_text) && page.contains(dispatcher_text),
        "{page}"
    );
    assert!(page.contains("eve"), "the timeline says who: {page}");
    shoot(&b, "detail-en");
    b.goto(&format!("{}/console/conflicts", server.url))
        .unwrap();
    b.wait_css(&format!("#inbox a[href='/console/orders/{order}']"))
        .unwrap();
    shoot(&b, "conflicts-en");

    // The same four pages in Chinese, through the language switch.
    b.find("#lang-zh-CN").unwrap().click().unwrap();
    b.wait_css("html[lang='zh-CN']").unwrap();
    assert!(b.text().unwrap().contains("未解决的冲突"));
    shoot(&b, "conflicts-zh");
    b.goto(&format!("{}/console", server.url)).unwrap();
    b.wait_css("#board").unwrap();
    assert!(b.text().unwrap().contains("工单"));
    shoot(&b, "board-zh");
    b.goto(&format!("{}/console/orders/{order}", server.url))
        .unwrap();
    b.wait_css("tr.conflict.open").unwrap();
    shoot(&b, "detail-zh");
    b.goto(&format!("{}/console/orders/{order}/assign", server.url))
        .unwrap();
    b.wait_css("#candidates").unwrap();
    shoot(&b, "assign-zh");
    b.goto(&format!("{}/console/lang/en", server.url)).unwrap();

    // 4. Resolve: take the engineer's text. The agent sees it after its next sync.
    b.goto(&format!("{}/console/orders/{order}", server.url))
        .unwrap();
    b.wait_css("tr.conflict.open button.use-other")
        .unwrap()
        .click()
        .unwrap();
    b.wait_css("tr.conflict.resolved").unwrap();
    eve.sync();
    let seen = eve.show(&order);
    assert_eq!(seen["description"], engineer_text, "{seen}");
    let conflicts = seen["conflicts"].as_array().unwrap();
    assert!(
        conflicts.iter().all(|c| c["resolved"] == true),
        "the resolution reached the agent: {seen}"
    );
}

/// Session tokens in the server's database (read-only, beside the running server).
fn session_rows(server: &Server) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        server.dir.join("fieldsync.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM tokens WHERE device IS NULL",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

#[test]
fn console_auth_rules() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));

    // Not signed in: the console sends you to the login page.
    let c = Console::new(&server);
    let r = c.get("/console", "en");
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/console/login");

    // An engineer's credentials cannot open the console.
    let mut c = Console::new(&server);
    let (status, cookie) = c.login(ENGINEER);
    assert_eq!(status, 403);
    assert!(cookie.is_none(), "no session for an engineer");
    // Nor can an engineer's API session token, put in the cookie by hand.
    let eve_api = server.api(ENGINEER);
    c.cookie = Some(format!("fs_console={}", eve_api.token.clone().unwrap()));
    assert_eq!(c.get("/console", "en").status(), 403);

    // The login form is CSRF-protected too: a double-submit token, in a host-only cookie
    // and a hidden field. Without both, or with two that differ, the POST is refused before
    // the password is checked, with the reason next to the form, and no session exists.
    let mut c = Console::new(&server);
    let (set, token) = c.login_form();
    for attr in [
        "__Host-fs_login=",
        "Path=/;",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Max-Age=",
    ] {
        assert!(set.contains(attr), "{set} has {attr}");
    }
    assert!(!set.contains("Domain"), "{set}: host-only");
    let cookie = set.split(';').next().unwrap().to_owned();
    let sessions_before = session_rows(&server);
    let other = "0".repeat(64);
    let forged_cookie = format!("__Host-fs_login={other}");
    for (cookie, token) in [
        (None, None),
        (Some(cookie.as_str()), None),
        (None, Some(token.as_str())),
        (Some(cookie.as_str()), Some(other.as_str())),
        (Some(forged_cookie.as_str()), Some(token.as_str())),
    ] {
        let (status, session, page) = c.login_with(DISPATCHER, cookie, token);
        assert_eq!(status, 403, "cookie {cookie:?}, token {token:?}");
        assert!(session.is_none(), "no session cookie");
        assert!(
            page.contains(r#"id="login-error""#) && page.contains("sign-in form has expired"),
            "{page}"
        );
    }
    assert_eq!(
        session_rows(&server),
        sessions_before,
        "no session was made"
    );
    assert!(c.cookie.is_none());
    // The refusal's fresh form works, as the page it replaced would have.
    let (status, session, _) = c.login_with(DISPATCHER, Some(&cookie), Some(&token));
    assert_eq!(status, 303);
    assert!(session.is_some());
    assert_eq!(session_rows(&server), sessions_before + 1);

    // A dispatcher gets a hardened session cookie.
    let mut c = Console::new(&server);
    let (status, cookie) = c.login(DISPATCHER);
    assert_eq!(status, 303);
    let cookie = cookie.unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict"] {
        assert!(cookie.contains(attr), "{cookie} has {attr}");
    }
    let board = c.get("/console", "zh-CN,zh;q=0.9");
    assert_eq!(board.status(), 200);
    assert!(
        board.text().unwrap().contains("工单看板"),
        "Accept-Language picks Chinese"
    );

    // A POST without its CSRF token (or with another) is refused and changes nothing.
    let before = server.api(DISPATCHER).get("/api/v1/work-orders").1;
    let form = "description=Forged&priority=1&channel=web";
    assert_eq!(c.post("/console/orders/new", form).status(), 403);
    let forged = format!("{form}&csrf={}", "0".repeat(64));
    assert_eq!(c.post("/console/orders/new", &forged).status(), 403);
    assert_eq!(server.api(DISPATCHER).get("/api/v1/work-orders").1, before);
    let ok = format!("{form}&csrf={}", c.csrf());
    assert_eq!(c.post("/console/orders/new", &ok).status(), 303);

    // Revoking a device in the console: its next sync is refused.
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();
    let device = eve.meta("device_id").unwrap();
    let no_csrf = c.post(&format!("/console/devices/{device}/revoke"), "");
    assert_eq!(no_csrf.status(), 403);
    eve.sync();
    let r = c.post(
        &format!("/console/devices/{device}/revoke"),
        &format!("csrf={}", c.csrf()),
    );
    assert_eq!(r.status(), 303);
    let o = eve.run(&["sync"]);
    assert!(!o.status.success(), "a revoked device cannot sync");
    assert!(stderr(&o).contains("revoked"), "{}", stderr(&o));

    // Logging out ends the session on the server, not just in the browser.
    let old = c.cookie.clone();
    let r = c.post("/console/logout", &format!("csrf={}", c.csrf()));
    assert_eq!(r.status(), 303);
    c.cookie = old;
    assert_eq!(c.get("/console", "en").status(), 303);
}

/// Whether every thumbnail on the page has loaded and decoded.
const THUMBS_LOADED_JS: &str = "var i = document.querySelectorAll('#photos img'); \
     return i.length > 0 && Array.prototype.every.call(i, function (x) { return x.complete && x.naturalWidth > 0; });";

#[test]
fn order_photos_in_the_console() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let dana = server.api(DISPATCHER);
    let order = order_for(&dana, "eve");
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    eve.sync();
    let bytes = real_jpeg(640, 480);
    let file = tmp.path().join("IMG_0042.JPG");
    std::fs::write(&file, &bytes).unwrap();
    let path = file.to_str().unwrap();
    eve.ok(&["photo", "add", &order, path, "--caption", "Nameplate"]);
    let report = eve.sync();
    assert_eq!(report["photos"]["verified"], 1, "{report}");
    // A second photo whose bytes are still on a device: only its record has synced.
    let (status, body) = dana.post(
        "/api/v1/entities/photo",
        &json!({"order_id": order, "hash": sha256_hex(b"still on the laptop"), "size": 19,
                "mime": "image/jpeg", "caption": "Compressor", "taken_at": 1_714_558_953_000u64}),
    );
    assert_eq!(status, 201, "{body}");
    let waiting = body["id"].as_str().unwrap().to_owned();
    let view = dana.order(&order);
    let stored = view["photos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["stored"] == true)
        .unwrap_or_else(|| panic!("a stored photo: {view}"))["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // The order page shows the thumbnail linking to the full photo, and the placeholder.
    let mut c = Console::new(&server);
    assert_eq!(c.login(DISPATCHER).0, 303);
    let page = c
        .get(&format!("/console/orders/{order}"), "en")
        .text()
        .unwrap();
    for want in [
        format!(r#"<img src="/console/photos/{stored}/thumb" alt="Nameplate""#),
        format!(r#"href="/console/photos/{stored}""#),
        format!(r#"data-photo="{waiting}" data-stored="false""#),
        "Waiting for upload".to_owned(),
        "Compressor".to_owned(),
        "Taken 2024-05-01 10:22 UTC".to_owned(),
    ] {
        assert!(page.contains(&want), "{want} in {page}");
    }

    // The image routes answer a console session with the bytes and their type.
    let r = c.get(&format!("/console/photos/{stored}"), "en");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(r.bytes().unwrap().as_ref(), &bytes[..]);
    let again = c.get_with(
        &format!("/console/photos/{stored}"),
        &[("if-none-match", &etag)],
    );
    assert_eq!(again.status(), 304, "revalidated, not sent again");
    let r = c.get(&format!("/console/photos/{stored}/thumb"), "en");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "image/jpeg");
    let thumb = image::load_from_memory(&r.bytes().unwrap()).unwrap();
    assert_eq!((thumb.width(), thumb.height()), (256, 192));
    let r = c.get(&format!("/console/photos/{waiting}"), "en");
    assert_eq!(r.status(), 404, "no bytes yet");

    // Without a session, or with an engineer's token as the cookie: refused, no bytes.
    let anon = Console::new(&server);
    for path in [
        format!("/console/photos/{stored}"),
        format!("/console/photos/{stored}/thumb"),
    ] {
        let r = anon.get(&path, "en");
        assert_eq!(r.status(), 303, "{path}");
        assert_eq!(r.headers()["location"], "/console/login");
        let mut eng = Console::new(&server);
        eng.cookie = Some(format!(
            "fs_console={}",
            server.api(ENGINEER).token.clone().unwrap()
        ));
        assert_eq!(eng.get(&path, "en").status(), 403, "{path}");
    }

    // In a real browser the thumbnail loads under the page's CSP.
    let b = Browser::start("en-US").expect("headless chromium (see .ci/run)");
    login(&b, &server, DISPATCHER);
    b.wait_css("#board-empty, #board").unwrap();
    b.goto(&format!("{}/console/orders/{order}", server.url))
        .unwrap();
    b.wait_css(".photo .thumb.waiting").unwrap();
    wait_for(Duration::from_secs(10), "the thumbnail to load", || {
        (b.exec(THUMBS_LOADED_JS).ok()? == json!(true)).then_some(())
    });
    b.exec("document.getElementById('photos-h').scrollIntoView()")
        .unwrap();
    shoot(&b, "photos-en");

    // The printable service report: its inline stylesheet is allowed by its hash under the
    // report's own CSP (the page is styled), and the stored photo loads.
    b.goto(&format!("{}/console/orders/{order}/report", server.url))
        .unwrap();
    b.wait_css("main.report").unwrap();
    wait_for(
        Duration::from_secs(10),
        "the report's photo to load",
        || {
            let js = "var i = document.querySelectorAll('.photos img');
            return i.length > 0 && Array.prototype.every.call(i, function (x) { return x.complete && x.naturalWidth > 0; });";
            (b.exec(js).ok()? == json!(true)).then_some(())
        },
    );
    let styled = b
        .exec("return getComputedStyle(document.body).backgroundColor;")
        .unwrap();
    assert_eq!(
        styled,
        json!("rgb(238, 238, 238)"),
        "the report's style applies"
    );
    shoot(&b, "report-en");
}

/// WebDriver's Enter key.
const ENTER: &str = "\u{E007}";

/// The entity `kind`/`id` from an office device's pulls, paging from the start.
fn pulled(office: &Api, kind: &str, id: &str) -> Option<serde_json::Value> {
    let (mut cursor, mut found) = (0, None);
    loop {
        let (status, page) = office.pull(cursor);
        assert_eq!(status, 200, "{page}");
        for e in page["entities"].as_array().unwrap() {
            if e["kind"] == kind && e["id"] == id {
                found = Some(e.clone());
            }
        }
        cursor = page["cursor"].as_u64().unwrap();
        if page["more"] != true {
            return found;
        }
    }
}

/// The server's op log for one entity: (user, op body), oldest first.
fn logged_ops(server: &Server, kind: &str, id: &str) -> Vec<(String, serde_json::Value)> {
    let conn = rusqlite::Connection::open_with_flags(
        server.dir.join("fieldsync.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = conn
        .prepare("SELECT user, body FROM ops WHERE kind = ?1 AND id = ?2 ORDER BY received_ms, seq")
        .unwrap();
    stmt.query_map([kind, id], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })
    .unwrap()
    .map(|r| {
        let (user, body) = r.unwrap();
        (user, serde_json::from_str(&body).unwrap())
    })
    .collect()
}

#[test]
fn engineer_profiles_feed_the_assignment_hints() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let dana = server.api(DISPATCHER);
    let (s, _) = dana.post(
        "/api/v1/entities/asset",
        &json!({"id": "asset-chiller-7", "model": "Carrier 30RB chiller"}),
    );
    assert_eq!(s, 201);
    let order = dana.create_order(json!({"description": "Chiller 7 tripping", "priority": 2,
                                         "asset_id": "asset-chiller-7"}));
    let (office, _) = Api::enroll_device(&server, DISPATCHER);

    // Over HTTP: the form is CSRF-protected, and a bad value is named next to its field
    // (with nothing written).
    let mut c = Console::new(&server);
    assert_eq!(c.login(DISPATCHER).0, 303);
    let r = c.post("/console/engineers/eve/profile", "region=North");
    assert_eq!(r.status(), 403, "no CSRF token");
    let long = "x".repeat(201);
    let r = c.post(
        "/console/engineers/eve/profile",
        &format!("region={long}&skills=chillers&csrf={}", c.csrf()),
    );
    assert_eq!(r.status(), 422);
    let page = r.text().unwrap();
    for want in [
        r#"<details class="profile" open>"#,
        r#"aria-describedby="region-eve-err""#,
        r#"id="region-eve-err""#,
        "Too long: at most 200 characters.",
        r#"value="chillers""#,
    ] {
        assert!(page.contains(want), "{want} in {page}");
    }
    assert_eq!(
        dana.get("/api/v1/entities/user/eve").0,
        404,
        "nothing written"
    );

    // In the browser, by keyboard: open eve's editor, fill it in, submit with Enter.
    let b = Browser::start("en-US").expect("headless chromium (see .ci/run)");
    login(&b, &server, DISPATCHER);
    b.wait_css("#board-empty, #board").unwrap();
    b.goto(&format!("{}/console/engineers", server.url))
        .unwrap();
    b.wait_css("#profile-open-eve")
        .unwrap()
        .send_keys(ENTER)
        .unwrap();
    let open = b
        .exec("return document.getElementById('profile-open-eve').parentElement.open")
        .unwrap();
    assert_eq!(open, json!(true), "Enter on the summary opens the editor");
    b.find("#display_name-eve")
        .unwrap()
        .send_keys("Eve Adams")
        .unwrap();
    b.find("#region-eve")
        .unwrap()
        .send_keys("Leeds North")
        .unwrap();
    b.find("#skills-eve")
        .unwrap()
        .send_keys("chillers,Carrier ,, CHILLERS")
        .unwrap();
    shoot(&b, "profile-en");
    b.find("#skills-eve").unwrap().send_keys(ENTER).unwrap();
    b.wait_css(".flash").unwrap();
    let page = b.text().unwrap();
    for want in ["Eve Adams", "Leeds North", "chillers, Carrier"] {
        assert!(page.contains(want), "{want} in {page}");
    }

    // The assignment dialog's hints show it, the skill matched to the order's asset.
    b.goto(&format!("{}/console/orders/{order}/assign", server.url))
        .unwrap();
    b.wait_css("#cand-eve").unwrap();
    let row = b
        .exec("return document.getElementById('cand-eve').closest('tr').innerText")
        .unwrap();
    let row = row.as_str().unwrap();
    for want in ["Leeds North", "chillers, Carrier", "matches the asset"] {
        assert!(row.contains(want), "{want} in {row}");
    }

    // It is an op like any other: in the server's log (the server made the entity, dana
    // set the fields) and in an office device's pull, written by dana on device 0.
    let ops = logged_ops(&server, "user", "eve");
    assert_eq!(ops.len(), 2, "{ops:?}");
    assert_eq!(
        (ops[0].0.as_str(), &ops[0].1["op"]),
        ("server", &json!("create"))
    );
    assert_eq!(
        ops[0].1["fields"],
        json!({"name": "eve", "role": "engineer"})
    );
    assert_eq!(
        (ops[1].0.as_str(), &ops[1].1["op"]),
        ("dana", &json!("set"))
    );
    assert_eq!(
        ops[1].1["fields"],
        json!({"display_name": "Eve Adams", "region": "Leeds North", "skills": "chillers, Carrier"})
    );
    let eve = pulled(&office, "user", "eve").expect("the profile in an office pull");
    assert_eq!(eve["fields"]["region"]["v"], "Leeds North", "{eve}");
    assert_eq!(eve["fields"]["region"]["by"], "dana");
    assert_eq!(
        eve["fields"]["skills"]["ver"][1], 0,
        "device 0: the server's writes"
    );

    // The JSON API's write path makes the entity the same way.
    let (status, sam) = dana.patch("/api/v1/entities/user/sam", &json!({"region": "South"}));
    assert_eq!(status, 200, "{sam}");
    assert_eq!(sam["region"], "South");
    assert_eq!(sam["role"], "engineer");
}
