//! The printable service report, as one HTML document. The server's console page and the
//! agent's offline `fieldsync report` both call `render` on the same `OrderView` (built by
//! the same `view::order_view`), so a customer's printout is the same from either; only
//! the image addresses differ (the caller's `media` says where each image is).

use std::fmt::Write;

use serde_json::Value;

use super::checklist::{self, ItemType};
use super::i18n::Lang;
use crate::sla::calendar::Date;
use crate::state::EntityState;
use crate::view::{OrderView, RecordView};

/// The report's stylesheet: plain on screen, A4 with sensible breaks on paper. Inlined in
/// the document so an agent's saved report is one file; the server allows exactly this
/// style by its hash (`STYLE_CSP_SOURCE`).
pub const REPORT_CSS: &str = "\
body{font:11pt/1.45 system-ui,-apple-system,'Segoe UI','Noto Sans','Noto Sans CJK SC','PingFang SC','Microsoft YaHei',sans-serif;color:#111;margin:0;background:#eee}\
main.report{max-width:190mm;margin:1.5em auto;padding:12mm;background:#fff;box-shadow:0 0 4px #999}\
h1{font-size:18pt;margin:0}h2{font-size:12.5pt;border-bottom:1px solid #999;margin:1.2em 0 .4em;padding-bottom:.1em}\
header{display:flex;justify-content:space-between;align-items:baseline;border-bottom:2px solid #111;padding-bottom:.4em}\
.ref{font-family:ui-monospace,monospace}\
dl{display:grid;grid-template-columns:minmax(9em,max-content) 1fr;gap:.15em 1em;margin:0}dt{font-weight:600}dd{margin:0;white-space:pre-wrap}\
table{border-collapse:collapse;width:100%}th,td{border:1px solid #bbb;padding:.2em .4em;text-align:left;vertical-align:top}th{background:#f2f2f2}\
td.num{text-align:right}.muted{color:#666;font-size:9pt}\
.photos{display:flex;flex-wrap:wrap;gap:4mm}figure{margin:0;width:56mm}figure img{width:100%;max-height:60mm;object-fit:contain;border:1px solid #ccc}figcaption{font-size:9pt}\
.signature img{max-width:80mm;max-height:35mm;border-bottom:1px solid #111}\
.missing{display:inline-block;border:1px dashed #999;padding:1em;color:#666;font-size:9pt}\
.stars{font-size:16pt;letter-spacing:.1em}\
footer{margin-top:2em;border-top:1px solid #999;padding-top:.4em;font-size:9pt;color:#444}\
@page{size:A4;margin:14mm}\
@media print{body{background:#fff}main.report{box-shadow:none;margin:0;max-width:none;padding:0}section{break-inside:avoid}figure{break-inside:avoid}}";

/// Escape text for HTML element content and quoted attribute values.
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

/// `YYYY-MM-DD HH:MM UTC`: a printed report must mean the same wherever it is read, and
/// proto holds no time-zone data.
pub fn when(ms: u64) -> String {
    let secs = (ms / 1000) as i64;
    let d = Date::from_days_since_epoch(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        d.year,
        d.month,
        d.day,
        s / 3600,
        s % 3600 / 60
    )
}

fn day(ms: u64) -> String {
    when(ms)[..10].to_owned()
}

fn hours(minutes: i64) -> String {
    format!("{}:{:02}", minutes / 60, minutes % 60)
}

fn field<'a>(r: &'a RecordView, name: &str) -> Option<&'a str> {
    r.fields.get(name).and_then(Value::as_str)
}

fn int(r: &RecordView, name: &str) -> Option<i64> {
    r.fields.get(name).and_then(Value::as_i64)
}

fn live(records: &[RecordView]) -> impl Iterator<Item = &RecordView> {
    records
        .iter()
        .filter(|r| r.fields.get("voided").and_then(Value::as_bool) != Some(true))
}

fn obj<'a>(m: &'a Option<serde_json::Map<String, Value>>, key: &str) -> Option<&'a str> {
    m.as_ref()?.get(key)?.as_str()
}

/// An image, or a placeholder where the caller has no address for its bytes. The content
/// hash is always in the markup, so two printouts compare by what they show.
fn image(
    photo: &RecordView,
    alt: &str,
    lang: Lang,
    media: &dyn Fn(&RecordView) -> Option<String>,
) -> String {
    let hash = field(photo, "hash").unwrap_or_default();
    match media(photo) {
        Some(src) => format!(
            r#"<img src="{}" data-hash="{}" alt="{}">"#,
            esc(&src),
            esc(hash),
            esc(alt)
        ),
        None => format!(
            r#"<span class="missing" data-hash="{}">{}</span>"#,
            esc(hash),
            esc(&lang.t("not_available"))
        ),
    }
}

/// The whole report. `template` is the order's checklist template (see
/// `checklist::pick_template`); `media` gives the address of a photo record's image (a
/// console URL, or a `data:` URI on the agent), `None` when its bytes are not at hand.
pub fn render(
    v: &OrderView,
    template: Option<&EntityState>,
    lang: Lang,
    media: &dyn Fn(&RecordView) -> Option<String>,
) -> String {
    let t = |k: &str| esc(&lang.t(k));
    let o = &v.summary;
    let mut b = String::with_capacity(16 * 1024);
    let _ = write!(
        b,
        r#"<!DOCTYPE html>
<html lang="{code}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} {id}</title><style>{css}</style></head>
<body><main class="report">
<header><h1>{title}</h1><span class="ref">{lorder} {id}</span></header>
"#,
        code = lang.code(),
        title = t("title"),
        lorder = t("order"),
        id = esc(&o.id),
        css = REPORT_CSS,
    );

    // Who, where, what and when.
    let dash = || "—".to_owned();
    let customer = [obj(&v.customer, "name"), obj(&v.customer, "address")]
        .into_iter()
        .flatten()
        .map(esc)
        .collect::<Vec<_>>()
        .join("\n");
    let site = [obj(&v.site, "name"), obj(&v.site, "address")]
        .into_iter()
        .flatten()
        .map(esc)
        .collect::<Vec<_>>()
        .join("\n");
    let asset = match (obj(&v.asset, "model"), obj(&v.asset, "serial")) {
        (Some(m), Some(s)) => format!("{} ({} {})", esc(m), t("serial"), esc(s)),
        (Some(m), None) => esc(m),
        _ => dash(),
    };
    let work_type = v
        .work_type
        .as_deref()
        .map(|w| t(&format!("wt.{w}")))
        .unwrap_or_else(dash);
    let _ = write!(
        b,
        r#"<section class="parties"><dl>
<dt>{lc}</dt><dd>{customer}</dd>
<dt>{ls}</dt><dd>{site}</dd>
<dt>{la}</dt><dd>{asset}</dd>
<dt>{lw}</dt><dd>{work_type}</dd>
<dt>{le}</dt><dd>{engineer}</dd>
<dt>{lst}</dt><dd>{status}</dd>
<dt>{lar}</dt><dd>{arrived}</dd>
<dt>{lco}</dt><dd>{completed}</dd>
</dl></section>
"#,
        lc = t("customer"),
        customer = if customer.is_empty() {
            dash()
        } else {
            customer
        },
        ls = t("site"),
        site = if site.is_empty() { dash() } else { site },
        la = t("asset"),
        lw = t("work_type"),
        le = t("engineer"),
        engineer = o.assignee.as_deref().map(esc).unwrap_or_else(dash),
        lst = t("status"),
        status = t(&format!("st.{}", o.status)),
        lar = t("arrived"),
        arrived = v.arrived_at.map(when).unwrap_or_else(dash),
        lco = t("completed"),
        completed = v.completed_at.map(when).unwrap_or_else(dash),
    );

    let opt = |s: &Option<String>| s.as_deref().map(esc).unwrap_or_else(dash);
    let _ = write!(
        b,
        r#"<section class="work"><h2>{h}</h2><dl>
<dt>{lr}</dt><dd>{desc}</dd>
<dt>{lf}</dt><dd>{fault}</dd>
<dt>{lrc}</dt><dd>{cause}</dd>
<dt>{lres}</dt><dd>{res}</dd>
</dl></section>
"#,
        h = t("work"),
        lr = t("reported"),
        desc = esc(&o.description),
        lf = t("fault_code"),
        fault = opt(&v.fault_code),
        lrc = t("root_cause"),
        cause = opt(&v.root_cause),
        lres = t("resolution"),
        res = opt(&v.resolution),
    );

    checklist_section(&mut b, v, template, lang);
    time_section(&mut b, v, lang);

    let _ = write!(b, r#"<section class="parts"><h2>{}</h2>"#, t("parts"));
    let parts: Vec<&RecordView> = live(&v.parts).collect();
    if parts.is_empty() {
        let _ = write!(b, "<p>{}</p>", t("none"));
    } else {
        let _ = write!(
            b,
            "<table><thead><tr><th>{}</th><th>{}</th></tr></thead><tbody>",
            t("sku"),
            t("qty")
        );
        for p in parts {
            let _ = write!(
                b,
                r#"<tr><td>{}</td><td class="num">{}</td></tr>"#,
                esc(field(p, "sku").unwrap_or_default()),
                int(p, "qty").unwrap_or(0)
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>\n");

    // Photos, without the signature images (they print under the sign-off).
    let signatures: Vec<&str> = live(&v.signoffs)
        .filter_map(|s| field(s, "signature_photo"))
        .collect();
    let photos: Vec<&RecordView> = live(&v.photos)
        .filter(|p| !signatures.contains(&p.id.as_str()))
        .collect();
    let _ = write!(
        b,
        r#"<section class="photos-section"><h2>{}</h2>"#,
        t("photos")
    );
    if photos.is_empty() {
        let _ = write!(b, "<p>{}</p>", t("none"));
    } else {
        b.push_str(r#"<div class="photos">"#);
        for p in photos {
            let caption = field(p, "caption").or(field(p, "name")).unwrap_or_default();
            let is_image = field(p, "mime").is_some_and(|m| m.starts_with("image/"));
            let shown = if is_image {
                let alt = if caption.is_empty() {
                    lang.t("photos")
                } else {
                    caption.to_owned()
                };
                image(p, &alt, lang, media)
            } else {
                format!(
                    r#"<span class="missing" data-hash="{}">{}</span>"#,
                    esc(field(p, "hash").unwrap_or_default()),
                    t("document")
                )
            };
            let taken = p
                .fields
                .get("taken_at")
                .and_then(Value::as_u64)
                .unwrap_or(p.at_ms);
            let _ = write!(
                b,
                r#"<figure>{shown}<figcaption>{}<br><span class="muted">{}</span></figcaption></figure>"#,
                esc(caption),
                when(taken)
            );
        }
        b.push_str("</div>");
    }
    b.push_str("</section>\n");

    let _ = write!(b, r#"<section class="signoff"><h2>{}</h2>"#, t("signoff"));
    let signoffs: Vec<&RecordView> = live(&v.signoffs).collect();
    if signoffs.is_empty() {
        let _ = write!(b, "<p>{}</p>", t("not_signed"));
    }
    for s in signoffs {
        let photo = field(s, "signature_photo").and_then(|id| v.photos.iter().find(|p| p.id == id));
        let shown = match photo {
            Some(p) => image(p, &lang.t("signature"), lang, media),
            None => format!(
                r#"<span class="missing" data-hash="{}">{}</span>"#,
                esc(field(s, "signature").unwrap_or_default()),
                t("not_available")
            ),
        };
        let _ = write!(
            b,
            r#"<dl><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd>{}</dd><dt>{}</dt><dd class="signature">{shown}</dd></dl>"#,
            t("signer"),
            esc(field(s, "signer_name").unwrap_or_default()),
            t("signed_at"),
            when(s.at_ms),
            t("signature"),
        );
    }
    b.push_str("</section>\n");

    let _ = write!(b, r#"<section class="rating"><h2>{}</h2>"#, t("rating"));
    let ratings: Vec<&RecordView> = live(&v.ratings).collect();
    if ratings.is_empty() {
        let _ = write!(b, "<p>{}</p>", t("not_rated"));
    }
    for r in ratings {
        let score = int(r, "score").unwrap_or(0).clamp(0, 5) as usize;
        let _ = write!(
            b,
            r#"<p><span class="stars" aria-hidden="true">{}{}</span> <strong>{score}/5</strong> <span class="muted">{}</span></p>"#,
            "★".repeat(score),
            "☆".repeat(5 - score),
            when(r.at_ms)
        );
        if let Some(c) = field(r, "comment").filter(|c| !c.is_empty()) {
            let _ = write!(b, "<p>{}: {}</p>", t("comment"), esc(c));
        }
    }
    b.push_str("</section>\n");

    let _ = write!(
        b,
        "<footer>{} · {} {}</footer>\n</main></body></html>\n",
        t("footer"),
        t("order"),
        esc(&o.id)
    );
    b
}

fn checklist_section(b: &mut String, v: &OrderView, template: Option<&EntityState>, lang: Lang) {
    let t = |k: &str| esc(&lang.t(k));
    let answers: Vec<&RecordView> = live(&v.checklist).collect();
    if template.is_none() && answers.is_empty() {
        return;
    }
    let title = template
        .and_then(|t| t.str("title"))
        .map(|s| format!(" — {}", esc(s)))
        .unwrap_or_default();
    let _ = write!(
        b,
        r#"<section class="checklist"><h2>{}{title}</h2><table><thead><tr><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>"#,
        t("checklist"),
        t("item"),
        t("answer"),
        t("by")
    );
    let items = template.map(checklist::items).unwrap_or_default();
    let shown = |ty: ItemType, value: &str| -> String {
        match (ty, value) {
            (ItemType::YesNo, "yes") => t("yes"),
            (ItemType::YesNo, "no") => t("no"),
            _ => esc(value),
        }
    };
    // Newest answer per item; earlier differing answers stay in view (nothing an engineer
    // recorded disappears from the report because someone answered again).
    let row = |b: &mut String, label: &str, ty: ItemType, of_item: &[&RecordView]| {
        let Some(last) = of_item.last() else {
            let _ = write!(
                b,
                r#"<tr><td>{}</td><td class="muted">{}</td><td></td></tr>"#,
                esc(label),
                t("unanswered")
            );
            return;
        };
        let value = field(last, "value").unwrap_or_default();
        let mut earlier = String::new();
        for e in &of_item[..of_item.len() - 1] {
            let ev = field(e, "value").unwrap_or_default();
            if ev != value {
                let _ = write!(
                    earlier,
                    r#"<br><span class="muted">{}: {} ({}, {})</span>"#,
                    t("earlier"),
                    shown(ty, ev),
                    esc(&e.by),
                    when(e.at_ms)
                );
            }
        }
        let _ = write!(
            b,
            r#"<tr><td>{}</td><td>{}{earlier}</td><td>{}<br><span class="muted">{}</span></td></tr>"#,
            esc(label),
            shown(ty, value),
            esc(&last.by),
            when(last.at_ms)
        );
    };
    let tid = template.map(|t| t.id.as_str());
    for it in &items {
        let of_item: Vec<&RecordView> = answers
            .iter()
            .copied()
            .filter(|a| field(a, "template_id") == tid && field(a, "item") == Some(&it.id))
            .collect();
        row(b, &it.label, it.ty, &of_item);
    }
    b.push_str("</tbody></table>");
    let others: Vec<&RecordView> = answers
        .iter()
        .copied()
        .filter(|a| {
            field(a, "template_id") != tid
                || !items
                    .iter()
                    .any(|i| Some(i.id.as_str()) == field(a, "item"))
        })
        .collect();
    if !others.is_empty() {
        let _ = write!(b, "<p>{}</p><table><tbody>", t("other_answers"));
        for a in others {
            row(
                b,
                field(a, "item").unwrap_or_default(),
                ItemType::Text,
                &[a],
            );
        }
        b.push_str("</tbody></table>");
    }
    b.push_str("</section>\n");
}

fn time_section(b: &mut String, v: &OrderView, lang: Lang) {
    let t = |k: &str| esc(&lang.t(k));
    let _ = write!(b, r#"<section class="time"><h2>{}</h2>"#, t("time"));
    let entries: Vec<&RecordView> = live(&v.time_entries).collect();
    if entries.is_empty() {
        let _ = writeln!(b, "<p>{}</p></section>", t("none"));
        return;
    }
    let _ = write!(
        b,
        "<table><thead><tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr></thead><tbody>",
        t("date"),
        t("activity"),
        t("engineer"),
        t("minutes")
    );
    let (mut labour, mut travel) = (0i64, 0i64);
    for e in entries {
        let activity = field(e, "activity").unwrap_or_default();
        let minutes = int(e, "minutes").unwrap_or(0);
        match activity {
            "travel" => travel += minutes,
            _ => labour += minutes,
        }
        let _ = write!(
            b,
            r#"<tr><td>{}</td><td>{}</td><td>{}</td><td class="num">{minutes}</td></tr>"#,
            day(e.at_ms),
            t(&format!("act.{activity}")),
            esc(&e.by),
        );
    }
    let _ = writeln!(
        b,
        r#"</tbody></table><p>{}: {} {} · {} {} (h:mm)</p></section>"#,
        t("total"),
        t("act.labour"),
        hours(labour),
        t("act.travel"),
        hours(travel)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(when(0), "1970-01-01 00:00 UTC");
        assert_eq!(when(1_796_140_380_000), "2026-12-01 15:53 UTC");
        assert_eq!(hours(135), "2:15");
    }

    #[test]
    fn text_is_escaped() {
        assert_eq!(
            esc(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
