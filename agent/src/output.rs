//! Human-readable output. Scripts use `--json`; this is for the engineer on site.

use std::sync::Mutex;

use fieldsync_agent::inbox::ScanReport;
use fieldsync_agent::photos::{Attached, PhotoStatus};
use fieldsync_agent::sync::SyncReport;
use fieldsync_proto::view::{OrderSummary, OrderView};
use serde_json::{Map, Value};

/// Unix ms as `2026-11-24 09:30 UTC`.
pub fn when(ms: u64) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| format!("{ms} ms"))
}

fn short(s: &str, max: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() <= max {
        return line.to_owned();
    }
    let mut out: String = line.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

pub fn orders(list: &[OrderSummary]) {
    if list.is_empty() {
        println!("No work orders. Run `fieldsync sync` when you have a connection.");
        return;
    }
    let width = list.iter().map(|o| o.id.len()).max().unwrap_or(2).max(2);
    println!("{:width$}  {:9}  P  DESCRIPTION", "ID", "STATUS");
    for o in list {
        let p = o
            .priority
            .map(|p| p.to_string())
            .unwrap_or_else(|| "-".into());
        let cancelled = if o.cancelled { "[cancelled] " } else { "" };
        println!(
            "{:width$}  {:9}  {p}  {cancelled}{}",
            o.id,
            o.status,
            short(&o.description, 70)
        );
    }
}

fn text(m: &Map<String, Value>, k: &str) -> String {
    match m.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(v) => v.to_string(),
    }
}

fn side(v: &Value) -> String {
    let value = match v.get("value") {
        Some(Value::String(s)) => format!("{s:?}"),
        Some(other) => other.to_string(),
        None => "?".into(),
    };
    let by = v.get("by").and_then(Value::as_str).unwrap_or("?");
    let at = v
        .get("at_ms")
        .and_then(Value::as_u64)
        .map(when)
        .unwrap_or_default();
    format!("{value} by {by} at {at}")
}

pub fn order(v: &OrderView) {
    let s = &v.summary;
    let p = s.priority.map(|p| format!("P{p}")).unwrap_or_default();
    let who = s.assignee.as_deref().unwrap_or("unassigned");
    println!("{}  [{}]  {p}  assigned to {who}", s.id, s.status);
    if s.cancelled {
        println!("CANCELLED by the dispatcher");
    }
    println!("{}", s.description);
    if let Some(c) = &v.customer {
        println!(
            "Customer: {} {} {}",
            text(c, "name"),
            text(c, "phone"),
            text(c, "tier")
        );
    }
    if let Some(site) = &v.site {
        println!(
            "Site:     {}, {}",
            text(site, "name"),
            text(site, "address")
        );
        let access = text(site, "access_notes");
        if !access.is_empty() {
            println!("Access:   {access}");
        }
    }
    if let Some(a) = &v.asset {
        println!(
            "Asset:    {} serial {}",
            text(a, "model"),
            text(a, "serial")
        );
    }
    if let (Some(a), Some(b)) = (s.scheduled_start, s.scheduled_end) {
        println!("Visit:    {} to {}", when(a), when(b));
    }
    if let Some(c) = &v.contract {
        println!("Contract: {}", text(c, "name"));
    }
    if let Some(sla) = &v.sla {
        println!("SLA:      {}", sla_line(sla));
    }
    if let Some(t) = v.arrived_at {
        println!("Arrived:  {}", when(t));
    }
    if let Some(t) = v.completed_at {
        println!("Completed: {}", when(t));
    }
    if let Some(r) = &v.resolution {
        println!("Resolution: {r}");
    }
    if !v.notes.is_empty() {
        println!("Notes:");
        for n in &v.notes {
            println!("  {} {}: {}", when(n.at_ms), n.by, text(&n.fields, "text"));
        }
    }
    if !v.parts.is_empty() {
        println!("Parts used:");
        for p in &v.parts {
            println!(
                "  {} x {} ({}, {})",
                text(&p.fields, "qty"),
                text(&p.fields, "sku"),
                p.by,
                when(p.at_ms)
            );
        }
    }
    service_report(v);
    if !v.conflicts.is_empty() {
        println!("Conflicts:");
        for c in &v.conflicts {
            let state = if c.resolved {
                "resolved"
            } else {
                "waiting for the dispatcher"
            };
            println!("  {} ({state}):", c.field);
            println!("    kept:     {}", side(&c.winner));
            println!("    also set: {}", side(&c.loser));
        }
    }
    if !v.suggested_articles.is_empty() {
        println!("Knowledge base (`fieldsync kb show ID`):");
        for a in &v.suggested_articles {
            println!("  {}  {}", a.id, a.title);
        }
    }
    if v.pending_ops > 0 {
        println!("{} change(s) not synced yet", v.pending_ops);
    }
    for r in &v.rejected {
        println!(
            "REFUSED by the server (change {}): {} ({})",
            r.seq, r.message, r.code
        );
    }
}

/// The report's state in a few lines; `fieldsync checklist` and `report` give the detail.
fn service_report(v: &OrderView) {
    let live = |r: &&fieldsync_proto::view::RecordView| {
        r.fields.get("voided").and_then(Value::as_bool) != Some(true)
    };
    if let Some(w) = &v.work_type {
        println!("Work type: {w}");
    }
    for (label, value) in [("Fault code", &v.fault_code), ("Root cause", &v.root_cause)] {
        if let Some(value) = value {
            println!("{label}: {value}");
        }
    }
    let answered = v.checklist.iter().filter(live).count();
    if answered > 0 {
        println!(
            "Checklist: {answered} answer(s) (`fieldsync checklist {}`)",
            v.summary.id
        );
    }
    let minutes = |activity: &str| -> i64 {
        v.time_entries
            .iter()
            .filter(live)
            .filter(|e| e.fields.get("activity").and_then(Value::as_str) == Some(activity))
            .filter_map(|e| e.fields.get("minutes").and_then(Value::as_i64))
            .sum()
    };
    if v.time_entries.iter().any(|e| live(&e)) {
        println!(
            "Time: labour {} min, travel {} min",
            minutes("labour"),
            minutes("travel")
        );
    }
    for s in v.signoffs.iter().filter(live) {
        println!(
            "Signed off by {} at {}",
            text(&s.fields, "signer_name"),
            when(s.at_ms)
        );
    }
    for r in v.ratings.iter().filter(live) {
        println!(
            "Rated {}/5 {}",
            text(&r.fields, "score"),
            text(&r.fields, "comment")
        );
    }
    for c in &v.complaints {
        println!("COMPLAINT ({}): {}", when(c.at_ms), text(&c.fields, "text"));
    }
    if v.contact_log.iter().any(|c| live(&c)) {
        println!("Contact log:");
    }
    for c in v.contact_log.iter().filter(live) {
        let f = |k: &str| text(&c.fields, k);
        let with = if f("contact").is_empty() {
            String::new()
        } else {
            format!(" with {}", f("contact"))
        };
        let dir = match f("direction").as_str() {
            "in" => " (from customer)",
            "out" => " (to customer)",
            _ => "",
        };
        println!(
            "  {}  {}{dir}{with}, by {}: {}",
            when(fieldsync_proto::view::contact_time(c)),
            f("channel"),
            c.by,
            f("summary")
        );
    }
}

pub fn sync(r: &SyncReport) {
    let check = match r.in_sync {
        Some(true) => ", verified in sync",
        Some(false) => ", NOT in sync with the server (run sync again)",
        None => "",
    };
    println!(
        "sent {}, received {}, pending {}, refused {}{check}",
        r.pushed, r.pulled, r.pending, r.rejected
    );
    let p = &r.photos;
    if p.verified + p.pending + p.refused + p.local_copies_deleted > 0 {
        println!(
            "photos: {} uploaded and verified ({}), {} waiting, {} refused{}",
            p.verified,
            size(p.bytes_sent),
            p.pending,
            p.refused,
            if p.local_copies_deleted > 0 {
                format!(
                    ", {} local copies deleted after retention",
                    p.local_copies_deleted
                )
            } else {
                String::new()
            }
        );
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 {
        format!("{:.1} MB", bytes as f64 / (1024.0 * 1024.0))
    } else {
        format!("{:.0} kB", (bytes as f64 / 1024.0).ceil())
    }
}

pub fn attached(a: &Attached) {
    let mut extra = Vec::new();
    if let Some(t) = a.taken_at {
        extra.push(format!("taken {}", when(t)));
    }
    if let (Some(lat), Some(lon)) = (a.lat, a.lon) {
        extra.push(format!("at {lat:.5}, {lon:.5}"));
    }
    let extra = if extra.is_empty() {
        String::new()
    } else {
        format!(", {}", extra.join(", "))
    };
    if a.new {
        println!(
            "{}: photo {} attached ({}, {}{extra}) (saved; uploads when online)",
            a.order_id,
            a.id,
            a.mime,
            size(a.size)
        );
    } else {
        println!(
            "{}: already attached as photo {} (same content); nothing new recorded",
            a.order_id, a.id
        );
    }
}

pub fn scan(r: &ScanReport, inbox: &std::path::Path) {
    for a in &r.imported {
        attached(a);
    }
    for (path, why) in &r.refused {
        println!("refused {path}: {why}");
    }
    for path in &r.waiting {
        println!("waiting for {path} to be complete");
    }
    if r.imported.is_empty() && r.refused.is_empty() && r.waiting.is_empty() {
        println!(
            "nothing to import in {} (put photos in a folder named after the order)",
            inbox.display()
        );
    }
}

pub fn photos(order: &str, list: &[PhotoStatus]) {
    if list.is_empty() {
        println!("{order}: no photos from this device");
        return;
    }
    for p in list {
        let name = p.name.as_deref().unwrap_or(&p.source);
        let hash = p.hash.as_deref().map(|h| &h[..12]).unwrap_or("-");
        let progress = match p.state.as_str() {
            "uploading" => format!(" {}/{}", size(p.bytes_sent), size(p.size)),
            "verified" if !p.local_copy => " (local copy deleted)".into(),
            _ => String::new(),
        };
        println!("{:9} {hash}  {name}{progress}", p.state);
        if let Some(c) = &p.caption {
            println!("          {c}");
        }
        if let Some(r) = &p.reason {
            println!("          why: {r}");
        }
    }
}

/// The upload progress bar on a terminal.
#[derive(Default)]
pub struct UploadBar(Mutex<Option<indicatif::ProgressBar>>);

impl fieldsync_agent::upload::Progress for UploadBar {
    fn begin(&self, total: u64) {
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "photos {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            )
            .expect("valid template"),
        );
        *self.0.lock().expect("progress bar") = Some(bar);
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = &*self.0.lock().expect("progress bar") {
            b.inc(bytes);
        }
    }

    fn finish(&self) {
        if let Some(b) = self.0.lock().expect("progress bar").take() {
            b.finish_and_clear();
        }
    }
}

pub fn info(i: &Value) {
    let g = |k: &str| match &i[k] {
        Value::String(s) => s.clone(),
        Value::Null => "never".into(),
        v => v.to_string(),
    };
    println!(
        "device {} of {} ({}) on {}",
        g("device_id"),
        g("user"),
        g("role"),
        g("server")
    );
    println!("data dir:   {}", g("data_dir"));
    let last = i["last_sync"]
        .as_u64()
        .map(when)
        .unwrap_or_else(|| "never".into());
    println!("last sync:  {last}");
    if let Some(off) = i["clock_offset_ms"].as_i64() {
        println!("clock:      {} s from the server's", off / 1000);
    }
    println!("pending:    {}", g("pending_ops"));
    println!("refused:    {}", g("rejected_ops"));
    if let Some(list) = i["rejected"].as_array() {
        for r in list {
            println!(
                "  change {} on {} {}: {} ({})",
                r["seq"],
                r["kind"].as_str().unwrap_or(""),
                r["id"].as_str().unwrap_or(""),
                r["message"].as_str().unwrap_or(""),
                r["code"].as_str().unwrap_or("")
            );
        }
    }
}

pub fn kb_hits(hits: &[fieldsync_agent::kb::KbHit]) {
    if hits.is_empty() {
        println!("no article contains all of those words");
        return;
    }
    for h in hits {
        println!("{}  {}", h.id, h.title);
        if !h.snippet.is_empty() {
            println!("    {}", h.snippet);
        }
    }
}

pub fn kb_article(a: &fieldsync_proto::EntityState) {
    let field = |f: &str| a.str(f).unwrap_or_default();
    println!("{}\n", field("title"));
    for (label, f) in [
        ("Tags", "tags"),
        ("Models", "models"),
        ("Fault codes", "fault_codes"),
    ] {
        if !field(f).is_empty() {
            println!("{label}: {}", field(f));
        }
    }
    println!("\n{}", field("body"));
}

/// `response met · arrival due 14:30 (at risk) · resolution breached — escalated`.
fn sla_line(sla: &fieldsync_proto::sla::OrderSla) -> String {
    use fieldsync_proto::sla::{ClockState, Deadline, Escalation};
    let clock = |name: &str, c: &fieldsync_proto::sla::ClockStatus| {
        let due = match c.deadline {
            Deadline::At { ms } => format!("due {}", when(ms)),
            Deadline::Paused { remaining_ms } => {
                format!("{} min left", remaining_ms / 60_000)
            }
            Deadline::Never => "no open hours".to_owned(),
        };
        match c.state {
            ClockState::Running => format!("{name} {due}"),
            ClockState::AtRisk => format!("{name} {due} (AT RISK)"),
            ClockState::Paused => format!("{name} paused, {due}"),
            ClockState::Breached => format!("{name} BREACHED ({due})"),
            ClockState::Met => format!("{name} met"),
            ClockState::Missed => format!("{name} MISSED"),
        }
    };
    let mut line = [
        clock("response", &sla.response),
        clock("arrival", &sla.arrival),
        clock("resolution", &sla.resolution),
    ]
    .join(" · ");
    match sla.escalation {
        Escalation::Breach => line.push_str(" — escalated"),
        Escalation::Warning => line.push_str(" — warning"),
        Escalation::None => {}
    }
    line
}

pub fn checklist(c: &fieldsync_agent::report::ChecklistState) {
    let Some(title) = &c.title else {
        match &c.work_type {
            Some(wt) => println!(
                "{}: no checklist template for {wt} work on this device",
                c.order_id
            ),
            None => println!("{}: no work type set, so no checklist applies", c.order_id),
        }
        return;
    };
    println!(
        "{}  {title}  ({} of {} open)",
        c.order_id,
        c.open,
        c.items.len()
    );
    for i in &c.items {
        let answer = match (&i.value, &i.by, i.at_ms) {
            (Some(v), Some(by), Some(at)) => format!("{v}  ({by}, {})", when(at)),
            _ => "—".to_owned(),
        };
        println!(
            "  {:20} {:40} [{}] {answer}",
            i.item.id,
            short(&i.item.label, 40),
            i.item.ty.as_str()
        );
        let earlier = i.answers.len().saturating_sub(1);
        if earlier > 0 {
            println!(
                "  {:20} ({earlier} earlier answer(s); --json lists them)",
                ""
            );
        }
    }
}

pub fn history(h: &fieldsync_proto::report::history::AssetHistory) {
    println!(
        "{}  {} serial {}  ({} orders)",
        h.asset_id,
        h.model.as_deref().unwrap_or("?"),
        h.serial.as_deref().unwrap_or("?"),
        h.orders.len() + h.more
    );
    for o in &h.orders {
        let at = o
            .completed_at
            .map(when)
            .unwrap_or_else(|| "not completed".into());
        println!(
            "- {}  [{}] {}  {}  by {}",
            o.id,
            o.status,
            o.work_type.as_deref().unwrap_or("-"),
            at,
            o.assignee.as_deref().unwrap_or("-")
        );
        println!("    {}", short(&o.description, 90));
        for (label, v) in [
            ("fault", &o.fault_code),
            ("cause", &o.root_cause),
            ("done", &o.resolution),
        ] {
            if let Some(v) = v {
                println!("    {label}: {}", short(v, 90));
            }
        }
        if o.labour_minutes + o.travel_minutes > 0 || !o.parts.is_empty() {
            let parts: Vec<String> = o.parts.iter().map(|(s, q)| format!("{q} x {s}")).collect();
            println!(
                "    labour {} min, travel {} min; parts: {}",
                o.labour_minutes,
                o.travel_minutes,
                if parts.is_empty() {
                    "none".into()
                } else {
                    parts.join(", ")
                }
            );
        }
        if let Some(r) = o.rating {
            println!(
                "    rated {r}/5{}",
                o.signed_by
                    .as_deref()
                    .map(|s| format!(", signed by {s}"))
                    .unwrap_or_default()
            );
        }
    }
    if h.more > 0 {
        println!("({} older orders not listed)", h.more);
    }
}

pub fn van_stock(s: &fieldsync_agent::stock::VanStock) {
    println!("{} ({})", s.van, s.van_id);
    if s.lines.is_empty() {
        println!("No stock recorded for your van yet.");
    } else {
        let w = s
            .lines
            .iter()
            .map(|l| l.sku.len())
            .max()
            .unwrap_or(3)
            .max(3);
        println!(
            "{:w$}  {:>7}  {:>5}  {:>6}  NAME",
            "SKU", "ON HAND", "MIN", "FAULTY"
        );
        for l in &s.lines {
            let min = l
                .min_qty
                .map(|m| m.to_string())
                .unwrap_or_else(|| "-".into());
            let mut flags = Vec::new();
            if l.overdrawn {
                flags.push("OVERDRAWN");
            }
            if l.low {
                flags.push("LOW");
            }
            println!(
                "{:w$}  {:>7}  {:>5}  {:>6}  {}{}",
                l.sku,
                l.on_hand,
                min,
                l.faulty,
                short(&l.name, 40),
                if flags.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", flags.join(", "))
                }
            );
        }
    }
    if s.alerts > 0 {
        println!(
            "{} part(s) low or overdrawn: `fieldsync requisition add --sku SKU --qty N` asks for more.",
            s.alerts
        );
    }
    if s.unsent > 0 {
        println!(
            "{} stock change(s) not yet synced (counted above).",
            s.unsent
        );
    }
}

pub fn requisitions(list: &[fieldsync_agent::stock::MyRequisition]) {
    if list.is_empty() {
        println!("No requisitions. `fieldsync requisition add --sku SKU --qty N` asks for parts.");
        return;
    }
    for r in list {
        let v = &r.view;
        let mut status = v.status.clone();
        if let Some(by) = &v.decided_by {
            status.push_str(&format!(" by {by}"));
        }
        if let Some(n) = &v.decision_note {
            status.push_str(&format!(": {n}"));
        }
        if r.unsent {
            status.push_str(" (not yet sent)");
        }
        println!(
            "{}  {} x {} {}  {}  {}",
            when(v.at_ms),
            v.qty,
            v.sku,
            short(&v.name, 30),
            status,
            v.id
        );
    }
}
