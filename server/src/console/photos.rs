//! Photos in the console: an order's thumbnails, and the session-checked routes that serve
//! them. The bytes come from the same code as the API's photo routes
//! (`api::photos::serve_photo`, `serve_thumbnail`), so access rules, range handling and
//! the thumbnail cache cannot drift between the two; only the authentication differs.

use std::fmt::Write as _;

use axum::extract::{Path, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use fieldsync_proto::view::RecordView;
use serde_json::Value;

use super::html::{enc, esc, time};
use super::i18n::Lang;
use super::Session;
use crate::api::photos::{serve_photo, serve_thumbnail, THUMB_PX_DEFAULT};
use crate::api::{ApiError, AppState};

/// Types a browser shows as an image; anything else (PDF, HEIC) is offered as a download
/// rather than opened as a document on the console's origin.
const INLINE_MIMES: &[&str] = &["image/jpeg", "image/png"];

/// `GET /console/photos/{id}`: the photo's bytes, for a signed-in dispatcher or admin.
pub async fn full(
    State(app): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    console_media(serve_photo(&app, s.actor, id, &headers).await)
}

/// `GET /console/photos/{id}/thumb`: the photo's thumbnail, as the order page shows it.
pub async fn thumb(
    State(app): State<AppState>,
    s: Session,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    console_media(serve_thumbnail(&app, s.actor, id, THUMB_PX_DEFAULT, &headers).await)
}

/// Console rules on top of the shared photo response. The browser may keep a copy but must
/// ask again before each use (the ETag makes that a 304), so once the session ends the
/// photos stop showing, like the pages that hold them (`no-store`).
fn console_media(r: Result<Response, ApiError>) -> Response {
    let mut r = r.unwrap_or_else(IntoResponse::into_response);
    let inline = r
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| INLINE_MIMES.contains(&m));
    let h = r.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static("private, no-cache"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if r.status().is_success() && !inline {
        r.headers_mut()
            .insert(CONTENT_DISPOSITION, HeaderValue::from_static("attachment"));
    }
    r
}

fn field<'a>(r: &'a RecordView, name: &str) -> Option<&'a str> {
    r.fields
        .get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn flag(r: &RecordView, name: &str) -> bool {
    r.fields.get(name).and_then(Value::as_bool).unwrap_or(false)
}

/// The picture part of one photo: its thumbnail linking to the full file, a link for
/// files without a preview, or a placeholder while the bytes are still on the device.
fn preview(lang: Lang, r: &RecordView, label: &str) -> String {
    let id = enc(&r.id);
    let mime = field(r, "mime").unwrap_or("");
    if !flag(r, "stored") {
        return format!(
            r#"<div class="thumb waiting" role="img" aria-label="{w}">{w}</div>"#,
            w = lang.t("photo.waiting")
        );
    }
    if INLINE_MIMES.contains(&mime) {
        format!(
            r#"<a class="thumb" href="/console/photos/{id}" title="{open}"><img src="/console/photos/{id}/thumb" alt="{alt}" loading="lazy"></a>"#,
            open = lang.t("photo.open"),
            alt = esc(label),
        )
    } else {
        format!(
            r#"<a class="thumb file" href="/console/photos/{id}">{open} <small>({mime})</small></a>"#,
            open = lang.t("photo.file"),
            mime = esc(mime),
        )
    }
}

fn photo_item(lang: Lang, r: &RecordView) -> String {
    let label = field(r, "caption")
        .or_else(|| field(r, "name"))
        .unwrap_or_else(|| lang.t("photo.untitled"));
    let voided = flag(r, "voided");
    let taken = r
        .fields
        .get("taken_at")
        .and_then(Value::as_u64)
        .map(|ms| {
            format!(
                r#"<div class="meta taken">{} {} UTC</div>"#,
                lang.t("photo.taken"),
                time(ms)
            )
        })
        .unwrap_or_default();
    format!(
        r#"<li class="photo{cls}" data-photo="{id}" data-stored="{stored}">{pic}<div class="caption">{label}</div>{taken}<div class="meta">— {by}, {at}{void}</div></li>"#,
        cls = if voided { " voided" } else { "" },
        id = esc(&r.id),
        stored = flag(r, "stored"),
        pic = preview(lang, r, label),
        label = esc(label),
        by = esc(&r.by),
        at = time(r.at_ms),
        void = if voided {
            format!(" · {}", lang.t("detail.voided"))
        } else {
            String::new()
        },
    )
}

/// The order page's photo section.
pub fn gallery(lang: Lang, photos: &[RecordView]) -> String {
    let mut out = format!(
        r#"<section aria-labelledby="photos-h"><h2 id="photos-h">{}</h2>"#,
        lang.t("detail.photos")
    );
    if photos.is_empty() {
        let _ = write!(out, "<p>{}</p>", lang.t("detail.no_photos"));
    } else {
        out.push_str(r#"<ul id="photos" class="photos">"#);
        for r in photos {
            out.push_str(&photo_item(lang, r));
        }
        out.push_str("</ul>");
    }
    out.push_str("</section>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(fields: serde_json::Value) -> RecordView {
        RecordView {
            id: "ph-1".into(),
            fields: fields.as_object().unwrap().clone(),
            by: "eve".into(),
            at_ms: 0,
        }
    }

    #[test]
    fn stored_photos_show_thumbnails_and_others_wait() {
        let stored = record(serde_json::json!({"mime": "image/jpeg", "stored": true,
            "caption": "Nameplate <b>", "taken_at": 1_709_251_140_000u64}));
        let html = gallery(Lang::En, &[stored]);
        assert!(html.contains(r#"<img src="/console/photos/ph-1/thumb" alt="Nameplate &lt;b&gt;""#));
        assert!(html.contains(r#"href="/console/photos/ph-1""#));
        assert!(html.contains("Taken 2024-02-29 23:59 UTC"), "{html}");
        let waiting = record(serde_json::json!({"mime": "image/jpeg", "stored": false}));
        let html = gallery(Lang::ZhCn, &[waiting]);
        assert!(
            html.contains("等待上传") && !html.contains("<img"),
            "{html}"
        );
        let pdf = record(serde_json::json!({"mime": "application/pdf", "stored": true}));
        let html = gallery(Lang::En, &[pdf]);
        assert!(
            !html.contains("<img") && html.contains("thumb file"),
            "{html}"
        );
    }
}
