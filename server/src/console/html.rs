//! Small helpers for server-rendered HTML: escaping, dates, urlencoded forms.

use std::collections::HashMap;

/// Escape text for HTML content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encode a query value.
/// `<option>`s for `(value, label)` pairs, the one equal to `selected` selected; both
/// escaped.
pub fn options(items: &[(String, String)], selected: &str) -> String {
    items
        .iter()
        .map(|(v, label)| {
            format!(
                r#"<option value="{}"{}>{}</option>"#,
                esc(v),
                if v == selected { " selected" } else { "" },
                esc(label)
            )
        })
        .collect()
}

pub fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match u8::from_str_radix(
                    std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"),
                    16,
                ) {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An `application/x-www-form-urlencoded` body or query string.
#[derive(Debug, Default)]
pub struct Form(HashMap<String, String>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        let s = String::from_utf8_lossy(body);
        Form(
            s.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }

    /// The trimmed value, empty when absent.
    pub fn get(&self, key: &str) -> &str {
        self.0.get(key).map(|v| v.trim()).unwrap_or("")
    }

    pub fn opt(&self, key: &str) -> Option<String> {
        Some(self.get(key))
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(m);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `YYYY-MM-DD HH:MM` in UTC: one format for every language, unambiguous on a phone call.
pub fn time(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let sod = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{mo:02}-{d:02} {:02}:{:02}",
        sod / 3600,
        sod % 3600 / 60
    )
}

/// For `<input type="datetime-local">`.
pub fn time_input(ms: u64) -> String {
    time(ms).replacen(' ', "T", 1)
}

/// Parse `YYYY-MM-DD HH:MM` or `YYYY-MM-DDTHH:MM` (optionally `:SS`) as UTC.
pub fn parse_time(s: &str) -> Option<u64> {
    let s = s.trim();
    let (date, clock) = s.split_once(['T', ' '])?;
    let mut dp = date.split('-');
    let (y, m, d): (i64, u32, u32) = (
        dp.next()?.parse().ok()?,
        dp.next()?.parse().ok()?,
        dp.next()?.parse().ok()?,
    );
    let mut cp = clock.split(':');
    let (h, mi): (i64, i64) = (cp.next()?.parse().ok()?, cp.next()?.parse().ok()?);
    let sec: i64 = cp.next().map(|v| v.parse().ok()).unwrap_or(Some(0))?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 59 || y < 1970
    {
        return None;
    }
    let days = days_from_civil(y, m, d);
    Some(((days * 86_400 + h * 3600 + mi * 60 + sec) * 1000) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_round_trip() {
        assert_eq!(time(0), "1970-01-01 00:00");
        assert_eq!(time(1_795_543_268_878), "2026-11-24 18:01");
        let t = parse_time("2026-11-25T17:21").unwrap();
        assert_eq!(time(t), "2026-11-25 17:21");
        assert_eq!(parse_time("2024-02-29 23:59"), Some(1_709_251_140_000));
        assert_eq!(parse_time("2024-13-01 00:00"), None);
        assert_eq!(parse_time("soon"), None);
    }

    #[test]
    fn forms_decode_and_escape() {
        let f = Form::parse(b"a=1+2&b=%E4%BD%A0%26&c=&csrf=x%3");
        assert_eq!(f.get("a"), "1 2");
        assert_eq!(f.get("b"), "你&");
        assert_eq!(f.opt("c"), None);
        assert_eq!(f.get("csrf"), "x%3");
        assert_eq!(
            esc("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
        assert_eq!(enc("a b/ü"), "a%20b%2F%C3%BC");
    }
}
