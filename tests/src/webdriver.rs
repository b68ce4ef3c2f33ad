//! A minimal W3C WebDriver client over blocking reqwest, driving Debian's `chromedriver`
//! and headless `chromium`. A handful of commands is all the console tests need, so this
//! avoids a browser-automation crate and its async stack.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// The key W3C WebDriver uses for element references.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";
/// How long `wait_css` and friends wait before failing.
pub const WAIT_MS: u64 = 10_000;

pub struct Browser {
    driver: Child,
    http: reqwest::blocking::Client,
    base: String,
}

pub struct Element<'a> {
    b: &'a Browser,
    id: String,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The chromium and chromedriver binaries, or why not.
pub fn find() -> Result<(String, String)> {
    let which = |names: &[&str]| {
        names
            .iter()
            .flat_map(|n| {
                ["/usr/bin/", "/usr/local/bin/", "/usr/lib/chromium/"]
                    .iter()
                    .map(move |d| format!("{d}{n}"))
            })
            .find(|p| Path::new(p).exists())
    };
    let chromium = which(&["chromium", "chromium-browser"])
        .ok_or_else(|| anyhow!("chromium is not installed (apt-get install chromium chromium-driver; .ci/run does this)"))?;
    let driver = which(&["chromedriver"]).ok_or_else(|| {
        anyhow!("chromedriver is not installed (apt-get install chromium-driver)")
    })?;
    Ok((chromium, driver))
}

impl Browser {
    /// Start chromedriver and a headless chromium session (`lang` sets Accept-Language).
    pub fn start(lang: &str) -> Result<Browser> {
        let (chromium, driver_bin) = find()?;
        let port = free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting chromedriver")?;
        let http = reqwest::blocking::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()?;
        let mut b = Browser {
            driver,
            http,
            base: format!("http://127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while b.http.get(format!("{}/status", b.base)).send().is_err() {
            if Instant::now() > deadline {
                bail!("chromedriver did not start");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // The test server's certificate comes from its own test CA.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": {
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                         "--disable-gpu", "--window-size=1024,1000", format!("--lang={lang}")],
                "prefs": {"intl.accept_languages": lang}
            }
        }}});
        let v = b.call("POST", "/session", Some(caps))?;
        let sid = v["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no session id in {v}"))?;
        b.base = format!("{}/session/{sid}", b.base);
        Ok(b)
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Result<Value> {
        let url = format!("{}{path}", self.base);
        let req = match method {
            "GET" => self.http.get(url),
            "DELETE" => self.http.delete(url),
            _ => self.http.post(url).json(&body.unwrap_or(json!({}))),
        };
        let resp = req.send().context("talking to chromedriver")?;
        let status = resp.status();
        let v: Value = resp.json().context("chromedriver answer")?;
        if !status.is_success() {
            bail!("webdriver {method} {path}: {status} {}", v["value"]);
        }
        Ok(v["value"].clone())
    }

    pub fn goto(&self, url: &str) -> Result<()> {
        self.call("POST", "/url", Some(json!({ "url": url })))?;
        Ok(())
    }

    pub fn url(&self) -> Result<String> {
        Ok(self
            .call("GET", "/url", None)?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    pub fn find(&self, css: &str) -> Result<Element<'_>> {
        let v = self.call(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        let id = v[ELEMENT_KEY]
            .as_str()
            .ok_or_else(|| anyhow!("no element in {v}"))?;
        Ok(Element {
            b: self,
            id: id.to_owned(),
        })
    }

    pub fn find_all(&self, css: &str) -> Result<usize> {
        let v = self.call(
            "POST",
            "/elements",
            Some(json!({"using": "css selector", "value": css})),
        )?;
        Ok(v.as_array().map(Vec::len).unwrap_or(0))
    }

    /// Wait until `css` matches, without navigating.
    pub fn wait_css(&self, css: &str) -> Result<Element<'_>> {
        let deadline = Instant::now() + Duration::from_millis(WAIT_MS);
        loop {
            if let Ok(e) = self.find(css) {
                return Ok(e);
            }
            if Instant::now() > deadline {
                bail!("{css} did not appear on {}", self.url()?);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn exec(&self, script: &str) -> Result<Value> {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
    }

    pub fn text(&self) -> Result<String> {
        Ok(self
            .exec("return document.body.innerText")?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }

    /// Save a PNG of the viewport.
    pub fn screenshot(&self, path: &Path) -> Result<()> {
        let b64 = self.call("GET", "/screenshot", None)?;
        let bytes = base64_decode(b64.as_str().unwrap_or(""))?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes)?;
        Ok(())
    }
}

impl Element<'_> {
    pub fn click(&self) -> Result<()> {
        self.b
            .call("POST", &format!("/element/{}/click", self.id), None)?;
        Ok(())
    }

    pub fn clear(&self) -> Result<()> {
        self.b
            .call("POST", &format!("/element/{}/clear", self.id), None)?;
        Ok(())
    }

    pub fn send_keys(&self, text: &str) -> Result<()> {
        self.b.call(
            "POST",
            &format!("/element/{}/value", self.id),
            Some(json!({ "text": text })),
        )?;
        Ok(())
    }

    pub fn text(&self) -> Result<String> {
        Ok(self
            .b
            .call("GET", &format!("/element/{}/text", self.id), None)?
            .as_str()
            .unwrap_or("")
            .to_owned())
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.call("DELETE", "", None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Result<Vec<u8>> {
    let val = |c: u8| -> Result<u32> {
        Ok(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => bail!("bad base64 byte {c}"),
        } as u32)
    };
    let clean: Vec<u8> = s.bytes().filter(|c| !c.is_ascii_whitespace()).collect();
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    for chunk in clean.chunks(4) {
        let pad = chunk.iter().filter(|c| **c == b'=').count();
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= if *c == b'=' { 0 } else { val(*c)? } << (18 - 6 * i);
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_decodes() {
        assert_eq!(super::base64_decode("aGVsbG8=").unwrap(), b"hello");
        assert_eq!(super::base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(super::base64_decode("YWJj").unwrap(), b"abc");
    }
}
