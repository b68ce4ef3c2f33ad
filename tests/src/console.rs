//! A plain HTTPS client for the console, as a browser without script uses it: sign in
//! through the login form (double-submit token), then GET pages and POST forms with the
//! session cookie and the page's CSRF token.

use crate::webdriver::Browser;
use crate::Server;

/// A plain HTTPS client for the console: cookies by hand, no redirects followed.
pub struct Console {
    pub http: reqwest::blocking::Client,
    pub base: String,
    pub cookie: Option<String>,
}

impl Console {
    pub fn new(server: &Server) -> Console {
        let ca = std::fs::read(&server.ca).unwrap();
        Console {
            http: reqwest::blocking::Client::builder()
                .use_rustls_tls()
                .tls_built_in_root_certs(false)
                .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: server.url.clone(),
            cookie: None,
        }
    }

    pub fn post(&self, path: &str, form: &str) -> reqwest::blocking::Response {
        let mut r = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form.to_owned());
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        r.send().unwrap()
    }

    pub fn get(&self, path: &str, lang: &str) -> reqwest::blocking::Response {
        self.get_with(path, &[("accept-language", lang)])
    }

    pub fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::blocking::Response {
        let mut r = self.http.get(format!("{}{path}", self.base));
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(c) = &self.cookie {
            r = r.header("cookie", c);
        }
        r.send().unwrap()
    }

    /// Open the login form: its `Set-Cookie` and the token in its hidden field.
    pub fn login_form(&self) -> (String, String) {
        let r = self.get("/console/login", "en");
        assert_eq!(r.status(), 200);
        let set = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        let page = r.text().unwrap();
        let at = page
            .find("name=\"login_csrf\" value=\"")
            .expect("a login_csrf field")
            + 25;
        (set, page[at..at + 64].to_owned())
    }

    /// POST the login form with this cookie header and form token; returns the status,
    /// the session's `Set-Cookie` if one was given, and the page.
    pub fn login_with(
        &mut self,
        who: (&str, &str),
        cookie: Option<&str>,
        token: Option<&str>,
    ) -> (u16, Option<String>, String) {
        let mut form = format!("user={}&password={}", who.0, who.1);
        if let Some(t) = token {
            form.push_str(&format!("&login_csrf={t}"));
        }
        let mut r = self
            .http
            .post(format!("{}/console/login", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form);
        if let Some(c) = cookie {
            r = r.header("cookie", c);
        }
        let r = r.send().unwrap();
        let set = r
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("fs_console="));
        if let Some(s) = &set {
            self.cookie = Some(s.split(';').next().unwrap().to_owned());
        }
        (r.status().as_u16(), set, r.text().unwrap())
    }

    /// Log in as a browser does: open the form, post it back with its cookie.
    pub fn login(&mut self, who: (&str, &str)) -> (u16, Option<String>) {
        let (set, token) = self.login_form();
        let cookie = set.split(';').next().unwrap().to_owned();
        let (status, session, _) = self.login_with(who, Some(&cookie), Some(&token));
        (status, session)
    }

    pub fn csrf(&self) -> String {
        let page = self.get("/console", "en").text().unwrap();
        let at = page.find("name=\"csrf\" value=\"").expect("a csrf field") + 19;
        page[at..at + 64].to_owned()
    }
}

/// An `application/x-www-form-urlencoded` body of these pairs.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| {
        let mut out = String::new();
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The value of the first input named `name` on a page, unescaped.
pub fn input_value(page: &str, name: &str) -> Option<String> {
    let at = page.find(&format!("name=\"{name}\" value=\""))? + name.len() + 15;
    let end = at + page[at..].find('"')?;
    Some(
        page[at..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

impl Console {
    /// A signed-in console for `who` (an office user).
    pub fn signed_in(server: &Server, who: (&str, &str)) -> Console {
        let mut c = Console::new(server);
        let (status, _) = c.login(who);
        assert_eq!(status, 303, "{} signs in", who.0);
        c
    }

    /// GET a page (English): its status and text.
    pub fn page(&self, path: &str) -> (u16, String) {
        let r = self.get(path, "en");
        (r.status().as_u16(), r.text().unwrap())
    }

    /// POST a form: its status, `Location` (if a redirect) and text.
    pub fn submit(&self, path: &str, pairs: &[(&str, &str)]) -> (u16, String, String) {
        let r = self.post(path, &form(pairs));
        let loc = r
            .headers()
            .get("location")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (r.status().as_u16(), loc, r.text().unwrap())
    }
}

/// Where screenshots go: `target/screenshots/` beside the binaries under test.
pub fn screenshots_dir() -> std::path::PathBuf {
    // target/debug -> target/screenshots
    crate::bin_dir()
        .parent()
        .map(|t| t.join("screenshots"))
        .unwrap_or_else(|| std::path::PathBuf::from("target/screenshots"))
}

/// Sign in through the login form in a real browser.
pub fn login(b: &Browser, server: &Server, who: (&str, &str)) {
    b.goto(&format!("{}/console/login", server.url)).unwrap();
    b.find("#user").unwrap().send_keys(who.0).unwrap();
    b.find("#password").unwrap().send_keys(who.1).unwrap();
    b.find("#login button[type=submit]")
        .unwrap()
        .click()
        .unwrap();
}

/// Save a screenshot as `NAME.png`; a `-zh` one needs a CJK font, or every glyph is a box.
pub fn shoot(b: &Browser, name: &str) {
    if name.ends_with("-zh") {
        let fonts = std::process::Command::new("fc-list")
            .arg(":lang=zh")
            .output()
            .expect("fontconfig's fc-list");
        assert!(
            !fonts.stdout.is_empty(),
            "no Chinese font is installed (Debian: fonts-wqy-microhei, which .ci/run installs)"
        );
    }
    let path = screenshots_dir().join(format!("{name}.png"));
    b.screenshot(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", path.display());
}
