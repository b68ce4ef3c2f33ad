//! The dispatcher's web console, rendered on the server. Every asset is compiled into the
//! binary (no CDN: it works on an air-gapped site network); one small script adds live
//! refresh and search-as-you-type, and every page works without it.
//!
//! Security: a session is the same hashed, expiring session token the JSON API uses, held
//! in an `HttpOnly; Secure; SameSite=Strict` cookie. Every POST carries a CSRF token
//! derived from the session token (so it is per session and cannot be computed without
//! the cookie) and is refused without it. Only dispatchers and admins may sign in.

// The error side of these results is the page to answer with; boxing it would only add an
// allocation on the one path that uses it.
#![allow(clippy::result_large_err)]

mod html;
pub mod i18n;
mod pages;
mod photos;

use axum::extract::{FromRequestParts, State};
use axum::http::header::{ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_TYPE, COOKIE, LOCATION};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use sha2::{Digest, Sha256};

use crate::api::{now_ms, AppState};
use crate::auth::token_hash;
use crate::store::{Actor, TokenStatus};
use i18n::Lang;

pub const SESSION_COOKIE: &str = "fs_console";
pub const LANG_COOKIE: &str = "fs_lang";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::board))
        .route("/console/", get(pages::board))
        .route("/console/login", get(pages::login_form).post(pages::login))
        .route("/console/logout", post(pages::logout))
        .route("/console/lang/{code}", get(set_lang))
        .route(
            "/console/orders/new",
            get(pages::intake_form).post(pages::intake),
        )
        .route("/console/orders/{id}", get(pages::detail))
        .route("/console/orders/{id}/edit", post(pages::edit))
        .route(
            "/console/orders/{id}/assign",
            get(pages::assign_form).post(pages::assign),
        )
        .route("/console/conflicts", get(pages::conflicts))
        .route("/console/conflicts/{id}/resolve", post(pages::resolve))
        .route("/console/engineers", get(pages::engineers))
        .route("/console/devices/{id}/revoke", post(pages::revoke))
        .route("/console/photos/{id}", get(photos::full))
        .route("/console/photos/{id}/thumb", get(photos::thumb))
        .route("/console/search", get(pages::search))
        .route("/console/events", get(pages::events))
        .route("/console/static/app.js", get(app_js))
        .route("/console/static/app.css", get(app_css))
}

/// The CSRF token of a session: a hash of its secret token under a fixed label. Whoever
/// can read it already holds the session, and another site cannot read either.
pub fn csrf_token(session_token: &str) -> String {
    hex::encode(Sha256::digest(format!("fieldsync-csrf\0{session_token}")))
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// The console's language: the user's pick (cookie), else the browser's preference.
pub fn lang_of(headers: &HeaderMap) -> Lang {
    cookie(headers, LANG_COOKIE)
        .and_then(Lang::parse)
        .unwrap_or_else(|| {
            Lang::negotiate(
                headers
                    .get(ACCEPT_LANGUAGE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or(""),
            )
        })
}

/// A signed-in office user.
pub struct Session {
    pub actor: Actor,
    pub token_hash: String,
    pub csrf: String,
    pub lang: Lang,
}

pub fn redirect(to: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(
            LOCATION,
            HeaderValue::from_str(to).unwrap_or(HeaderValue::from_static("/console")),
        )],
    )
        .into_response()
}

impl FromRequestParts<AppState> for Session {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, Response> {
        let lang = lang_of(&parts.headers);
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE).map(str::to_owned) else {
            return Err(redirect("/console/login"));
        };
        let hash = token_hash(&token);
        let store = app.store.clone();
        let h2 = hash.clone();
        let status = tokio::task::spawn_blocking(move || store.token(&h2, now_ms()))
            .await
            .ok()
            .and_then(Result::ok);
        match status {
            // A device token in the cookie is not a console session.
            Some(TokenStatus::Valid(actor)) if actor.device.is_none() && actor.is_office() => {
                Ok(Session {
                    actor,
                    token_hash: hash,
                    csrf: csrf_token(&token),
                    lang,
                })
            }
            Some(TokenStatus::Valid(_)) => Err(pages::message_page(
                lang,
                StatusCode::FORBIDDEN,
                "login.office_only",
            )),
            _ => Err(redirect("/console/login?expired=1")),
        }
    }
}

impl Session {
    /// Refuse a POST whose form lacks this session's CSRF token.
    pub fn check_csrf(&self, form: &html::Form) -> Result<(), Response> {
        let sent = form.get("csrf");
        if !sent.is_empty() && sent == self.csrf {
            return Ok(());
        }
        Err(pages::message_page(
            self.lang,
            StatusCode::FORBIDDEN,
            "err.csrf",
        ))
    }
}

/// Headers every console page carries: no framing (clickjacking), scripts only from us,
/// never cached (pages hold customer data).
pub fn secure_headers(resp: &mut Response) {
    let h = resp.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
}

async fn set_lang(
    State(_): State<AppState>,
    axum::extract::Path(code): axum::extract::Path<String>,
    headers: HeaderMap,
) -> Response {
    let lang = Lang::parse(&code).unwrap_or(Lang::En);
    // Back to the page the switch was clicked on, if it was one of ours.
    let back = headers
        .get(axum::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/console").map(|i| r[i..].to_owned()))
        .unwrap_or_else(|| "/console".to_owned());
    let mut resp = redirect(&back);
    resp.headers_mut().insert(
        axum::http::header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{LANG_COOKIE}={}; Path=/console; Max-Age=31536000; SameSite=Strict; Secure",
            lang.code()
        ))
        .expect("cookie is ASCII"),
    );
    resp
}

const APP_JS: &str = include_str!("assets/app.js");
const APP_CSS: &str = include_str!("assets/app.css");

async fn app_js() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS).into_response()
}

async fn app_css() -> Response {
    ([(CONTENT_TYPE, "text/css; charset=utf-8")], APP_CSS).into_response()
}
