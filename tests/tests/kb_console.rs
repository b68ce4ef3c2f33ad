//! Knowledge-base articles edited in the console (real server, real HTTP with the session
//! cookie and CSRF token, as a browser without script posts the forms) and found offline
//! by a real agent; concurrent edits of one field become a conflict; bad input is refused
//! with a clear message and changes nothing.

use fieldsync_tests::console::{input_value, login, shoot, Console};
use fieldsync_tests::webdriver::Browser;
use fieldsync_tests::{Server, ADMIN, DISPATCHER, ENGINEER};
use serde_json::json;

/// Article rows in the server's database (read-only, beside the running server).
fn articles(server: &Server) -> u64 {
    let conn = rusqlite::Connection::open_with_flags(
        server.dir.join("fieldsync.db"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    conn.query_row(
        "SELECT COUNT(*) FROM entities WHERE kind = 'kb_article'",
        [],
        |r| r.get(0),
    )
    .unwrap()
}

fn article_field(server: &Server, id: &str, field: &str) -> serde_json::Value {
    let (status, a) = server
        .api(DISPATCHER)
        .get(&format!("/api/v1/entities/kb_article/{id}"));
    assert_eq!(status, 200, "{a}");
    a[field].clone()
}

const BODY_V1: &str = "# E42 condenser pump\n\nCheck the **relay** first.\n\n- flow switch\n- pump fuse\n\n<script>alert(1)</script>";

#[test]
fn dispatchers_write_articles_that_engineers_search_offline() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::start(&tmp.path().join("server"));
    let dana = Console::signed_in(&server, DISPATCHER);
    let csrf = dana.csrf();

    // The list, empty, and the nav entry, in both languages.
    let (status, page) = dana.page("/console/kb");
    assert_eq!(status, 200);
    assert!(page.contains(r#"href="/console/kb""#), "nav entry");
    assert!(page.contains(r#"id="kb-empty""#), "{page}");
    let zh = dana.get("/console/kb/new", "zh-CN").text().unwrap();
    assert!(zh.contains("知识库") && zh.contains("新建文章") && zh.contains("标题"));
    assert!(!zh.contains("⟦missing⟧"));

    // Bad input: each refused beside its field, and nothing stored.
    let long = "x".repeat(100_001);
    for (pairs, expect) in [
        (
            vec![("title", "  "), ("body", "text")],
            "Give the article a title.",
        ),
        (
            vec![("title", "Too long"), ("body", long.as_str())],
            "Too long: at most 100000 characters.",
        ),
        (vec![("title", "T"), ("body", "")], "Write the article"),
        (
            vec![("title", "T\u{7}"), ("body", "b")],
            "Remove the control characters",
        ),
    ] {
        let mut pairs = pairs.clone();
        pairs.push(("csrf", &csrf));
        let (status, _, page) = dana.submit("/console/kb/new", &pairs);
        assert_eq!(status, 422, "{expect}");
        assert!(page.contains(expect), "{expect}: {page}");
        assert!(page.contains(r#"class="field-error""#));
    }
    let (status, _, _) = dana.submit(
        "/console/kb/new",
        &[
            ("title", "Forged"),
            ("body", "b"),
            ("csrf", "0".repeat(64).as_str()),
        ],
    );
    assert_eq!(status, 403, "a wrong CSRF token");
    let (status, _, _) = dana.submit("/console/kb/new", &[("title", "Forged"), ("body", "b")]);
    assert_eq!(status, 403, "no CSRF token");
    assert_eq!(articles(&server), 0, "nothing stored");

    // A new article.
    let (status, loc, _) = dana.submit(
        "/console/kb/new",
        &[
            ("title", "E42 condenser pump fault"),
            ("body", &BODY_V1.replace('\n', "\r\n")),
            ("tags", "pump, relay,, Pump"),
            ("models", "Carrier 30RB"),
            ("fault_codes", "E42"),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 303);
    let id = loc
        .strip_prefix("/console/kb/")
        .and_then(|r| r.strip_suffix("?msg=created"))
        .unwrap_or_else(|| panic!("{loc}"))
        .to_owned();
    assert_eq!(
        article_field(&server, &id, "body"),
        BODY_V1,
        "line ends made \\n"
    );
    assert_eq!(article_field(&server, &id, "tags"), "pump, relay");

    // Its page: the form, and a preview that renders Markdown and escapes HTML.
    let (status, page) = dana.page(&format!("/console/kb/{id}?msg=created"));
    assert_eq!(status, 200);
    assert!(page.contains("Article created."));
    let preview = &page[page.find(r#"id="kb-preview""#).unwrap()..];
    assert!(preview.contains("<h3>E42 condenser pump</h3>"), "{preview}");
    assert!(preview.contains("<strong>relay</strong>"));
    assert!(preview.contains("<li>flow switch</li>"));
    assert!(preview.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
    assert!(
        !page.contains("<script>alert"),
        "never markup from an article"
    );

    // The list finds it by title, tag, model and fault code; not by what it lacks.
    for q in [
        "q=condenser",
        "q=RELAY&in=tags",
        "q=30rb&in=models",
        "q=e42&in=fault_codes",
    ] {
        let (_, page) = dana.page(&format!("/console/kb?{q}"));
        assert!(page.contains(&format!(r#"data-article="{id}""#)), "{q}");
    }
    for q in ["q=condenser&in=tags", "q=E17", "q=pump+york"] {
        let (_, page) = dana.page(&format!("/console/kb?{q}"));
        assert!(page.contains(r#"id="kb-empty""#), "{q}");
    }

    // An engineer gets no console session, and cannot write an article through the API.
    let mut eve_console = Console::new(&server);
    assert_eq!(eve_console.login(ENGINEER).0, 403);
    let (status, body) = server.api(ENGINEER).patch(
        &format!("/api/v1/entities/kb_article/{id}"),
        &json!({"title": "mine"}),
    );
    assert_eq!(status, 403, "{body}");
    assert_eq!(
        article_field(&server, &id, "title"),
        "E42 condenser pump fault"
    );

    // The engineer's laptop receives it.
    let eve = server.agent(&tmp.path().join("eve"), ENGINEER);
    assert_eq!(eve.sync()["in_sync"], true);
    let hits = eve.json(&["kb", "search", "relay"]);
    assert_eq!(hits[0]["id"], id.as_str(), "{hits}");

    // Edit: new text (in Chinese too), through the form as it was shown.
    let (_, page) = dana.page(&format!("/console/kb/{id}"));
    let shown = input_value(&page, "shown").expect("the form says what it showed");
    let body_v2 = "# E42\n\nReplace the 流量开关 (flow switch) if the relay is fine.";
    let (status, loc, _) = dana.submit(
        &format!("/console/kb/{id}"),
        &[
            ("title", "E42 condenser pump fault"),
            ("body", body_v2),
            ("tags", "pump, relay"),
            ("models", "Carrier 30RB"),
            ("fault_codes", "E42, E43"),
            ("shown", &shown),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(
        (status, loc.as_str()),
        (303, format!("/console/kb/{id}?msg=saved").as_str())
    );
    assert_eq!(article_field(&server, &id, "body"), body_v2);
    assert_eq!(article_field(&server, &id, "fault_codes"), "E42, E43");

    // A bad edit changes nothing: an empty title, a forged token.
    let (_, page) = dana.page(&format!("/console/kb/{id}"));
    let shown = input_value(&page, "shown").unwrap();
    let (status, _, page) = dana.submit(
        &format!("/console/kb/{id}"),
        &[
            ("title", ""),
            ("body", "gone"),
            ("shown", &shown),
            ("csrf", &csrf),
        ],
    );
    assert_eq!(status, 422);
    assert!(page.contains("Give the article a title."));
    let (status, _, _) = dana.submit(
        &format!("/console/kb/{id}"),
        &[
            ("title", "x"),
            ("body", "gone"),
            ("shown", &shown),
            ("csrf", "bad"),
        ],
    );
    assert_eq!(status, 403);
    assert_eq!(article_field(&server, &id, "body"), body_v2);

    // Offline, the engineer finds the edited text, in Chinese and English.
    assert_eq!(eve.sync()["in_sync"], true);
    server.stop();
    for q in ["流量开关", "flow switch", "E43"] {
        let hits = eve.json(&["kb", "search", q]);
        assert_eq!(hits[0]["id"], id.as_str(), "{q}: {hits}");
    }
    let shown = eve.ok(&["kb", "show", &id]);
    assert!(shown.contains("流量开关"), "{shown}");
    let none = eve.json(&["kb", "search", "pump fuse"]);
    assert_eq!(none, json!([]), "the old text is gone from the index");
}

#[test]
fn a_concurrent_edit_of_the_same_field_becomes_a_conflict() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let (status, created) = server.api(DISPATCHER).post(
        "/api/v1/entities/kb_article",
        &json!({"id": "kb-e17", "title": "E17 overheating", "body": "Check the condenser."}),
    );
    assert_eq!(status, 201, "{created}");
    let dana = Console::signed_in(&server, DISPATCHER);
    let root = Console::signed_in(&server, ADMIN);

    // Both open the article.
    let shown_of = |c: &Console| {
        let (_, page) = c.page("/console/kb/kb-e17");
        (input_value(&page, "shown").unwrap(), c.csrf())
    };
    let (dana_shown, dana_csrf) = shown_of(&dana);
    let (root_shown, root_csrf) = shown_of(&root);

    // Dana saves a new title and body; then root, from the page opened before, saves
    // another body and retires the article.
    let (status, _, _) = dana.submit(
        "/console/kb/kb-e17",
        &[
            ("title", "E17: compressor overheating"),
            ("body", "Dana: descale the condenser."),
            ("shown", &dana_shown),
            ("csrf", &dana_csrf),
        ],
    );
    assert_eq!(status, 303);
    let (status, loc, _) = root.submit(
        "/console/kb/kb-e17",
        &[
            ("title", "E17 overheating"),
            ("body", "Root: check the water flow."),
            ("retired", "1"),
            ("shown", &root_shown),
            ("csrf", &root_csrf),
        ],
    );
    assert_eq!(
        (status, loc.as_str()),
        (303, "/console/kb/kb-e17?msg=saved")
    );

    // Root did not touch the title: Dana's stays. Both changed the body: the later write
    // wins everywhere, and Dana's is kept in a conflict until someone chooses.
    let (_, a) = server
        .api(DISPATCHER)
        .get("/api/v1/entities/kb_article/kb-e17");
    assert_eq!(a["title"], "E17: compressor overheating", "{a}");
    assert_eq!(a["body"], "Root: check the water flow.", "{a}");
    assert_eq!(a["retired"], true);
    let (_, page) = dana.page("/console/kb/kb-e17");
    let cf = &page[page
        .find(r#"id="kb-conflicts""#)
        .unwrap_or_else(|| panic!("the conflict is on the article: {page}"))..];
    assert!(
        cf.contains("Root: check the water flow.") && cf.contains("Dana: descale the condenser.")
    );
    assert!(page.contains(r#"id="kb-is-retired""#));
    assert_eq!(
        cf.matches(r#"<tr class="conflict open""#).count(),
        1,
        "only the body"
    );
    let (_, inbox) = dana.page("/console/conflicts");
    assert!(inbox.contains(r#"href="/console/kb/kb-e17""#), "{inbox}");

    // Retired articles leave the list unless asked for.
    let (_, list) = dana.page("/console/kb");
    assert!(!list.contains(r#"data-article="kb-e17""#));
    let (_, list) = dana.page("/console/kb?retired=1");
    assert!(list.contains(r#"data-article="kb-e17""#));

    // A form that does not say what it showed cannot overwrite anything.
    let (status, _, page) = dana.submit(
        "/console/kb/kb-e17",
        &[("title", "x"), ("body", "y"), ("csrf", &dana_csrf)],
    );
    assert_eq!(status, 422);
    assert!(page.contains("Reload the article"), "{page}");
    let (_, a) = server
        .api(DISPATCHER)
        .get("/api/v1/entities/kb_article/kb-e17");
    assert_eq!(a["title"], "E17: compressor overheating");
}

/// The knowledge-base and customer pages in headless Chromium, in English and Chinese,
/// with screenshots in `target/screenshots/` (kb-list, kb-edit, customer; -en and -zh).
#[test]
fn kb_and_customer_pages_in_a_real_browser() {
    let tmp = tempfile::tempdir().unwrap();
    let server = Server::start(&tmp.path().join("server"));
    let api = server.api(DISPATCHER);
    for (kind, body) in [
        (
            "kb_article",
            json!({"id": "kb-e42", "title": "E42 冷凝泵故障 / condenser pump fault",
                   "body": "# 检查步骤\n\n1. Check the **relay**.\n2. 检查流量开关。\n\n```\nreset --hard\n```",
                   "tags": "pump, 水泵", "models": "Carrier 30RB", "fault_codes": "E42"}),
        ),
        (
            "customer",
            json!({"id": "cust-acme", "name": "Acme Foods 食品", "tier": "platinum",
                   "contacts": "Li Wei | facilities manager | +86 21 5555 0100 | li.wei@acme.cn"}),
        ),
        (
            "contact_log",
            json!({"customer_id": "cust-acme", "channel": "email", "direction": "in",
                   "at": 1_795_512_600_000u64, "contact": "Li Wei",
                   "summary": "Asked for the annual inspection report."}),
        ),
    ] {
        let (status, b) = api.post(&format!("/api/v1/entities/{kind}"), &body);
        assert_eq!(status, 201, "{b}");
    }
    let b = Browser::start("en-US").expect("headless chromium (see .ci/run)");
    login(&b, &server, DISPATCHER);
    b.wait_css("#board-empty, #board").unwrap();
    b.find("a[href='/console/kb']").unwrap().click().unwrap();
    b.wait_css("#kb-list").unwrap();
    shoot(&b, "kb-list-en");

    // Edit the title in the browser; the save comes back with its message.
    b.goto(&format!("{}/console/kb/kb-e42", server.url))
        .unwrap();
    b.wait_css("#kb-preview h3").unwrap();
    shoot(&b, "kb-edit-en");
    let title = b.find("#kb-title").unwrap();
    title.clear().unwrap();
    title.send_keys("E42: condenser pump fault").unwrap();
    b.find("#kb-save").unwrap().click().unwrap();
    let flash = b.wait_css(".flash").unwrap().text().unwrap();
    assert!(flash.contains("Article saved"), "{flash}");
    assert_eq!(
        article_field(&server, "kb-e42", "title"),
        "E42: condenser pump fault"
    );
    assert_eq!(
        article_field(&server, "kb-e42", "tags"),
        "pump, 水泵",
        "untouched"
    );

    b.find("a[href='/console/customers']")
        .unwrap()
        .click()
        .unwrap();
    b.wait_css("#customers").unwrap();
    b.find("a[href='/console/customers/cust-acme']")
        .unwrap()
        .click()
        .unwrap();
    b.wait_css("#contact-log").unwrap();
    shoot(&b, "customer-en");

    b.find("#lang-zh-CN").unwrap().click().unwrap();
    b.wait_css("html[lang='zh-CN']").unwrap();
    let text = b.text().unwrap();
    assert!(text.contains("沟通记录") && text.contains("白金"), "{text}");
    shoot(&b, "customer-zh");
    b.goto(&format!("{}/console/kb/kb-e42", server.url))
        .unwrap();
    b.wait_css("#kb-preview").unwrap();
    assert!(b.text().unwrap().contains("预览"));
    shoot(&b, "kb-edit-zh");
    b.goto(&format!("{}/console/kb", server.url)).unwrap();
    b.wait_css("#kb-list").unwrap();
    shoot(&b, "kb-list-zh");
}
